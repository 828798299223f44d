"""The Python API for notebooks (``thawdetect.run`` / ``thawdetect.open_run``), run for real.

The run is the README's main job (``--detector insar_sbas --region qilian``) through the API: the
same five-iteration schedule of Wei et al. the CLI test (tests/test_main_job.py) checks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from tests.test_docs_plugins import FENCE, _check_public_only

import thawdetect

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def qilian_run(tmp_path_factory: pytest.TempPathFactory) -> thawdetect.RunResult:
    out = tmp_path_factory.mktemp("api") / "r"
    return thawdetect.run(region="qilian", detectors=["insar_sbas"], output_dir=out, progress=False)


def test_run_follows_the_wei_schedule(qilian_run):
    assert qilian_run.status == "finished"
    assert qilian_run.stop_reason == "every detector finished its schedule"
    assert qilian_run.synthetic is True
    it = qilian_run.iterations
    assert isinstance(it, pd.DataFrame) and not isinstance(it, gpd.GeoDataFrame)
    assert it["iteration"].tolist() == [1, 2, 3, 4, 5]
    assert (it["newly_confirmed"] > 0).all()  # every row of the schedule finds new ones
    rates = [">=50", ">=40", ">=30", ">=20", ">=10"]
    stored = [json.loads(t)["insar_sbas"]["abs_rate_mm_yr"] for t in it["thresholds_json"]]
    assert stored == rates
    assert it["insar_sbas__abs_rate_mm_yr"].tolist() == rates  # unpacked for notebooks
    # the inventory only grows, by exactly what each iteration confirmed
    sizes = it["inventory_size"].tolist()
    assert sizes == sorted(sizes)
    assert (it["inventory_size"].diff().iloc[1:] == it["newly_confirmed"].iloc[1:]).all()
    # progress lines are collected (not printed: progress=False) and end like the CLI's output
    assert any("SYNTHETIC" in m for m in qilian_run.messages)
    assert "stopped: every detector finished its schedule" in qilian_run.messages
    assert any("TPR = TP/N" in m for m in qilian_run.messages)


def test_run_progress_false_prints_nothing(qilian_run, capsys, tmp_path):
    # resuming the finished run is instant and, with progress=False, silent
    again = thawdetect.run(
        region="qilian", detectors=["insar_sbas"], output_dir=qilian_run.run_dir, progress=False
    )
    assert capsys.readouterr().out == ""
    assert again.iterations.equals(qilian_run.iterations)
    seen: list[str] = []
    thawdetect.run(
        region="qilian", detectors=["insar_sbas"], output_dir=qilian_run.run_dir, echo=seen.append
    )
    assert capsys.readouterr().out == ""
    assert "stopped: every detector finished its schedule" in seen


def test_inventory_is_the_published_table(qilian_run):
    inv = qilian_run.inventory
    assert isinstance(inv, gpd.GeoDataFrame)
    assert len(inv) == qilian_run.iterations["inventory_size"].iloc[-1]
    assert {"inventory_id", "centroid_lon", "centroid_lat", "area_ha"} <= set(inv.columns)
    # the Qilian preset's AOI (99.6-101.1 E, 37.4-38.4 N): lon/lat are degrees, not metres
    assert inv["centroid_lon"].between(99.6, 101.1).all()
    assert inv["centroid_lat"].between(37.4, 38.4).all()
    assert (inv["area_ha"] > 0).all()
    assert inv["inventory_id"].is_unique
    confirmed = qilian_run.candidates.query("status == 'confirmed'")
    assert len(confirmed) == qilian_run.iterations["newly_confirmed"].sum()
    assert set(qilian_run.decisions["candidate_id"]) >= set(confirmed["candidate_id"])


def test_accuracy_is_a_report_with_tpr(qilian_run):
    acc = qilian_run.accuracy
    assert isinstance(acc, thawdetect.AccuracyReport)
    assert acc.mode == "point"
    assert acc.n >= 10 and acc.n_negatives >= 1
    tpr = acc.rates()["tpr"]
    assert tpr is not None and tpr >= 0.8
    assert tpr == acc.tp / acc.n
    low, high = acc.intervals()["tpr"]
    assert low <= tpr <= high
    # a perfect score lies inside its own interval (the Wilson bound is exactly 1 at TP = N)
    perfect = thawdetect.AccuracyReport(mode="point", tp=13, fp=0, fn=0)
    assert perfect.intervals()["tpr"][1] == 1.0 and perfect.intervals()["fnr"][0] == 0.0


def test_open_run_reads_the_same_run(qilian_run):
    same = thawdetect.open_run(qilian_run.run_dir)
    assert same.status == "finished" and same.pending == 0
    assert same.stop_reason == qilian_run.stop_reason
    assert same.messages == []
    pd.testing.assert_frame_equal(same.iterations, qilian_run.iterations)
    a, b = same.inventory, qilian_run.inventory
    pd.testing.assert_frame_equal(a.drop(columns="geometry"), b.drop(columns="geometry"))
    assert a.geometry.geom_equals(b.geometry).all()
    assert same.accuracy == qilian_run.accuracy
    assert same.ledger_path.is_file() and same.manifest["status"] == "finished"


@pytest.mark.parametrize("make", ["empty_dir", "missing", "file"])
def test_open_run_on_a_non_run_says_so_in_one_line(tmp_path, make):
    path = tmp_path / "not_a_run"
    if make == "empty_dir":
        path.mkdir()
        (path / "notes.txt").write_text("hello")
    elif make == "file":
        path.write_text("hello")
    with pytest.raises(thawdetect.InputError) as exc:
        thawdetect.open_run(path)
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(str(path))
    assert "run directory" in msg
    assert not (path / "manifest.json").exists()  # nothing written


def test_corrupt_accuracy_report_is_one_line(qilian_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(qilian_run.run_dir, copy)
    (copy / "accuracy.json").write_text("{ not json")
    with pytest.raises(thawdetect.InputError, match=r"accuracy\.json: accuracy report is corrupt"):
        thawdetect.open_run(copy).accuracy  # noqa: B018


def test_dict_config_runs(tmp_path, monkeypatch):
    # one iteration of the same job, from a dict of the run YAML's keys (an empty section, as
    # `insar_sbas:` with nothing under it in YAML, is allowed)
    from thawdetect.core import progress

    bars_during_run: list[bool] = []

    class Probe:
        @thawdetect.hookimpl
        def thawdetect_iteration_finished(self, iteration):
            bars_during_run.append(progress.enabled())

    monkeypatch.setenv("THAWDETECT_PROGRESS", "1")  # bars forced on ...
    host = thawdetect.PluginHost(plugins=[("probe", Probe())])
    cfg = {"region": "qilian", "detectors": {"insar_sbas": None}, "max_iterations": 1}
    result = thawdetect.run(cfg, output_dir=tmp_path / "r", progress=False, host=host)
    assert bars_during_run == [False]  # ... but progress=False turns them off for the run
    assert os.environ["THAWDETECT_PROGRESS"] == "1"  # and the setting is restored after it
    assert result.status == "finished"
    assert result.stop_reason == "reached max_iterations (1)"
    it = result.iterations
    assert it["iteration"].tolist() == [1]
    assert it["insar_sbas__abs_rate_mm_yr"].tolist() == [">=50"]
    assert it["newly_confirmed"].iloc[0] > 0


def test_dict_config_with_a_typo_is_one_line(tmp_path):
    with pytest.raises(thawdetect.ConfigError) as exc:
        thawdetect.run({"region": "qilian", "max_iteration": 2}, output_dir=tmp_path / "r")
    msg = str(exc.value)
    assert "max_iteration" in msg and "\n" not in msg
    assert not (tmp_path / "r").exists()  # nothing was started


def _python(code: str) -> str:
    """Run ``code`` in a fresh interpreter that imports this tree's thawdetect."""
    src = str(Path(thawdetect.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    return done.stdout.strip()


def test_import_thawdetect_is_light():
    assert _python("import thawdetect; print(thawdetect.__file__)") == thawdetect.__file__
    code = (
        "import sys, thawdetect; "
        "heavy = [m for m in ('geopandas', 'rasterio', 'pandas', 'shapely') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    assert _python(code) == ""
    # the names load them on first use
    code = "import sys, thawdetect; thawdetect.Detector; print('geopandas' in sys.modules)"
    assert _python(code) == "True"


def test_every_public_name_resolves():
    assert len(thawdetect.__all__) == len(set(thawdetect.__all__))
    for name in thawdetect.__all__:
        assert getattr(thawdetect, name) is not None, name
        assert name in dir(thawdetect)
    # the lazy names are the real objects, not copies
    from thawdetect.core.plugin_api.detector import Detector

    assert thawdetect.Detector is Detector
    assert issubclass(thawdetect.GridMismatchError, thawdetect.InputError)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        thawdetect.Nope  # noqa: B018


def test_manual_review_from_python(tmp_path):
    out = tmp_path / "manual"
    first = thawdetect.run(
        region="qilian",
        detectors="insar_sbas",  # one name is fine too
        reviewer="manual",
        max_iterations=1,
        output_dir=out,
        progress=False,
    )
    assert first.status == "awaiting review"
    pending = first.candidates.query("status == 'pending'")
    assert first.pending == len(pending) >= 2
    with pytest.raises(thawdetect.InputError, match="illegal decision 'maybe'"):
        first.decide(pending["candidate_id"], "maybe")
    assert len(first.decisions) == 0  # nothing recorded
    rejected = pending["candidate_id"].iloc[0]
    first.decide(rejected, "rejected", note="a talus cone, not a slump", reviewer="ann")
    assert first.pending == len(pending) - 1
    first.decide(pending["candidate_id"].iloc[1:], "confirmed", probability="high", reviewer="ann")
    assert first.pending == 0
    history = first.decisions
    assert history["reviewer"].tolist() == ["ann"] * len(pending)
    assert history["candidate_id"].iloc[0] == rejected  # oldest first
    done = thawdetect.run(
        region="qilian", detectors=["insar_sbas"], max_iterations=1, output_dir=out, progress=False
    )
    assert done.status == "finished"
    assert done.iterations["newly_confirmed"].tolist() == [len(pending) - 1]
    assert done.iterations["rejected"].tolist() == [1]
    assert thawdetect.open_run(out).status == "finished"


# -- docs/api.md ----------------------------------------------------------------------------------

DOC = REPO / "docs" / "api.md"


def _doc_blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(DOC.read_text())]


def test_docs_api_blocks_import_only_the_public_api():
    blocks = [code for lang, code in _doc_blocks() if lang == "python"]
    assert len(blocks) >= 8
    for i, code in enumerate(blocks):
        _check_public_only(code, f"docs/api.md python block {i + 1}")


def test_docs_api_worked_example_prints_what_the_doc_shows(
    qilian_run, tmp_path, monkeypatch, capsys
):
    # the worked example, cell by cell, on a copy of the finished run (its first cell resumes
    # it); every ```text block must be what the cell before it prints
    text = DOC.read_text()
    section = text[text.index("## Worked example") :]
    section = section[: section.index("\n## ", 1)]
    blocks = [(m.group(1), m.group(2)) for m in FENCE.finditer(section)]
    shutil.copytree(qilian_run.run_dir, tmp_path / "runs" / "qilian")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    compared = 0
    for i, (lang, code) in enumerate(blocks):
        if lang != "python":
            continue
        capsys.readouterr()
        exec(compile(code, f"docs/api.md worked example cell {i + 1}", "exec"), namespace)
        printed = capsys.readouterr().out
        if i + 1 < len(blocks) and blocks[i + 1][0] == "text":
            assert printed.strip() == blocks[i + 1][1].strip(), f"cell {i + 1}"
            compared += 1
    assert compared >= 5
    assert (tmp_path / "qilian_inventory.gpkg").is_file()
    assert namespace["result"].status == "finished"


def test_review_page_accuracy_is_the_runs_on_the_qilian_sample(qilian_run):
    """The review page's overview and the run's accuracy.json are one figure (issue 23)."""
    from thawdetect.web.app import ReviewApp, ServerConfig

    page = ReviewApp(ServerConfig(run_dir=qilian_run.run_dir, read_only=True)).accuracy()
    assert page is not None and "overall" in page
    stored = json.loads((qilian_run.run_dir / "accuracy.json").read_text())
    for key in ("tp", "fp", "fn", "n"):
        assert page["overall"][key] == stored["overall"][key], key
