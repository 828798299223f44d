"""``thawdetect accuracy`` through the real CLI group: the 15-point case, JSON, one-line errors."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from test_accuracy import _make_run, _qilian_scene, _write_csv
from thawdetect.cli.main import cli


@pytest.fixture
def files(tmp_path):
    det, val = _qilian_scene()
    det.to_file(tmp_path / "det.gpkg")
    return tmp_path / "det.gpkg", _write_csv(val, tmp_path / "val.csv"), det


def test_fifteen_points_cli_and_json(tmp_path, files):
    det, val, _ = files
    out = tmp_path / "acc.json"
    res = CliRunner().invoke(
        cli, ["accuracy", "--detections", str(det), "--validation", str(val), "--json", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert "TP 14  FP 0  FN 1  N 15" in res.output
    assert re.search(r"TPR = TP/N\s+93\.3 %\s+95% CI 70\.2-98\.8 %", res.output)
    assert re.search(r"FPR = FP/N\s+0\.0 %\s+95% CI 0\.0-20\.4 %", res.output)
    assert re.search(r"FNR = FN/N\s+6\.7 %\s+95% CI 1\.2-29\.8 %", res.output)
    assert "70.2-98.8 %" in res.output and "warning: N = 15 is small" in res.output
    d = json.loads(out.read_text())
    assert (d["tp"], d["fp"], d["fn"], d["n"]) == (14, 0, 1, 15)
    assert round(100 * d["tpr"], 1) == 93.3 and d["fpr"] == 0 and round(100 * d["fnr"], 1) == 6.7
    assert [round(v, 3) for v in d["tpr_ci95"]] == [0.702, 0.988]
    for key in ("tp", "fp", "fn", "n", "tpr", "fpr", "fnr", "precision", "recall", "f1"):
        assert key in d
    for key in ("tpr", "fpr", "fnr", "precision", "recall", "f1"):
        assert f"{key}_ci95" in d


def test_json_to_stdout(files):
    det, val, _ = files
    res = CliRunner().invoke(
        cli, ["accuracy", "--detections", str(det), "--validation", str(val), "--json", "-"]
    )
    assert res.exit_code == 0
    assert json.loads(res.output)["tp"] == 14


def test_reference_mode(tmp_path, files):
    det, _, _gdf = files
    res = CliRunner().invoke(
        cli, ["accuracy", "--detections", str(det), "--reference", str(det), "--json", "-"]
    )
    assert res.exit_code == 0
    d = json.loads(res.output)
    assert d["mode"] == "polygon" and d["f1"] == 1.0 and d["mean_iou"] == pytest.approx(1.0)


def test_run_mode(tmp_path, files):
    _, val, gdf = files
    _make_run(tmp_path / "run", gdf)
    res = CliRunner().invoke(
        cli, ["accuracy", "--run", str(tmp_path / "run"), "--validation", str(val)]
    )
    assert res.exit_code == 0, res.output
    assert "overall" in res.output and "detector optical_dl" in res.output
    assert "iteration ≤ 2" in res.output


@pytest.mark.parametrize(
    "make, args, start",
    [
        (
            lambda p: (p / "v.csv").write_text("a,b\n1,2\n"),
            ["--validation", "{p}/v.csv"],
            "{p}/v.csv:",
        ),
        (lambda p: None, ["--validation", "{p}/missing.csv"], "{p}/missing.csv:"),
        (
            lambda p: (p / "l.csv").write_text("lon,lat,label\n99.5,37.5,yes\n99.6,37.5,dunno\n"),
            ["--validation", "{p}/l.csv", "--label-column", "label"],
            "{p}/l.csv: label column 'label' has unknown values 'dunno'",
        ),
    ],
)
def test_bad_input_one_line(tmp_path, files, make, args, start):
    det, _, _ = files
    make(tmp_path)
    args = [a.format(p=tmp_path) for a in args]
    res = CliRunner().invoke(cli, ["accuracy", "--detections", str(det), *args])
    assert res.exit_code == 1
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1, res.output
    assert lines[0].startswith("Error: " + start.format(p=tmp_path))


def test_empty_detections_are_all_misses(tmp_path, files):
    _, val, gdf = files
    gdf.iloc[:0].to_file(tmp_path / "empty.gpkg")
    res = CliRunner().invoke(
        cli,
        [
            "accuracy",
            "--detections",
            str(tmp_path / "empty.gpkg"),
            "--validation",
            str(val),
            "--json",
            "-",
        ],
    )
    assert res.exit_code == 0
    d = json.loads(res.output)
    assert (d["tp"], d["fn"], d["fnr"]) == (0, 15, 1.0)


def test_option_misuse(files):
    _det, val, _ = files
    res = CliRunner().invoke(cli, ["accuracy", "--validation", str(val)])
    assert res.exit_code == 1 and "exactly one of --detections" in res.output
