"""Issue 21: nothing a user types loses their files.

D1-D6 of the issue (a folder of someone's files written into or deleted, a stray manifest.json
taken for a run, exports onto a run's ledger or manifest, a damaged ledger read and written
without a word), the run lock between two real processes (and a stale lock of a killed one), and
each traceback the issue lists, all through the real CLI. Every case asserts one line, exit
status 1 and that the files around it are byte-identical afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import geopandas as gpd
import pytest
import yaml
from click.testing import CliRunner
from shapely.geometry import LineString, Point
from tests.test_bad_inputs import _host, finished_run
from tests.test_core_engine import CRS

from thawdetect.cli.main import cli
from thawdetect.core.run.engine import Engine
from thawdetect.core.run.rundir import LOCK_FILE, MARKER

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One finished run (real rasters, ledger, reference review) and its inputs."""
    d = tmp_path_factory.mktemp("data-safety")
    files, cfg, good, run = finished_run(d)
    return {"dir": d, "run": run, "good": good, "cfg": cfg, **files}  # type: ignore[dict-item]


@pytest.fixture
def w(made: dict[str, Path], tmp_path: Path) -> dict[str, Path]:
    """A private copy of the world (the run and its inputs), for cases that may write."""
    d = tmp_path / "w"
    shutil.copytree(made["dir"], d, symlinks=True)
    cfg = json.loads(json.dumps(made["cfg"]))  # the config names the shared inputs: fine
    good = d / "run.yaml"
    good.write_text(yaml.safe_dump(cfg))
    return {"dir": d, "run": d / "run", "good": good}


def _digest(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_symlink():
            out[str(p.relative_to(root))] = "-> " + os.readlink(p)
        elif p.is_file():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _cli(*args: object) -> tuple[int, list[str], str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], obj={"host": _host()})
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    return result.exit_code, lines, result.output


def _refused(root: Path, *args: object, expected: str) -> str:
    """Run the CLI; assert one ``Error:`` line containing ``expected``, exit 1, nothing changed."""
    before = _digest(root)
    code, lines, output = _cli(*args)
    assert code == 1, output
    assert "Traceback" not in output
    assert len(lines) == 1, output
    assert lines[0].startswith("Error: "), lines[0]
    assert expected in lines[0], lines[0]
    assert _digest(root) == before, "files changed"
    return lines[0]


# -- D1, D2: a folder of someone's files is never written into or deleted --------------------------


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
def test_d1_run_into_a_folder_of_files_is_refused(w, overwrite):
    docs = w["dir"] / "Documents"
    docs.mkdir()
    (docs / "thesis.txt").write_text("years of work")
    (docs / ".bashrc").write_text("alias ll='ls -l'")
    extra = ["--overwrite"] if overwrite else []
    _refused(
        w["dir"], "run", "--config", w["good"], "--output-dir", docs, *extra,
        expected="is not a thawdetect run (a folder of other files)",
    )  # fmt: skip
    assert (docs / "thesis.txt").read_text() == "years of work"


def test_d2_a_folder_with_some_manifest_json_is_not_a_run(w, made):
    site = w["dir"] / "website"
    site.mkdir()
    (site / "manifest.json").write_text('{"name": "my web app", "icons": []}')
    (site / "index.html").write_text("<html>")
    _refused(w["dir"], "run", "--config", w["good"], "--output-dir", site, "--overwrite",
             expected="is not a thawdetect run")  # fmt: skip
    # even a real thawdetect manifest copied into a folder does not make it a run
    copied = w["dir"] / "copied"
    copied.mkdir()
    shutil.copy(made["run"] / "manifest.json", copied / "manifest.json")
    (copied / "notes.txt").write_text("mine")
    _refused(w["dir"], "run", "--config", w["good"], "--output-dir", copied, "--overwrite",
             expected="is not a thawdetect run")  # fmt: skip


def test_overwrite_deletes_only_what_the_run_wrote(w):
    run = w["run"]
    (run / "my-notes.txt").write_text("keep me")
    outside = w["dir"] / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me too")
    (run / "link-out").symlink_to(outside)  # a link inside the run is not followed
    code, _lines, output = _cli(
        "run", "--config", w["good"], "--output-dir", run, "--overwrite", "--max-iterations", "1"
    )
    assert code == 0, output
    assert (run / "my-notes.txt").read_text() == "keep me"
    assert (outside / "precious.txt").read_text() == "keep me too"
    assert "kept 2 entries the old run did not write: link-out, my-notes.txt" in output
    assert (run / MARKER).is_file()


def test_overwrite_through_a_symlinked_run_is_refused(w):
    link = w["dir"] / "run-link"
    link.symlink_to(w["run"])
    _refused(w["dir"], "run", "--config", w["good"], "--output-dir", link, "--overwrite",
             expected="is a symbolic link")  # fmt: skip
    # resuming through the link is fine (nothing is deleted)
    code, _lines, output = _cli("run", "--config", w["good"], "--output-dir", link)
    assert code == 0, output


def test_an_empty_folder_becomes_a_run_and_a_legacy_run_resumes_and_gets_its_marker(w):
    empty = w["dir"] / "empty"
    empty.mkdir()
    code, _lines, output = _cli("run", "--config", w["good"], "--output-dir", empty)
    assert code == 0, output
    marker = json.loads((empty / MARKER).read_text())
    assert marker["run_id"] == json.loads((empty / "manifest.json").read_text())["run_id"]
    # a run made before the marker existed: recognised by its manifest and its ledger
    (w["run"] / MARKER).unlink()
    manifest = json.loads((w["run"] / "manifest.json").read_text())
    manifest.pop("run_id")
    (w["run"] / "manifest.json").write_text(json.dumps(manifest))
    code, _lines, output = _cli("run", "--config", w["good"], "--output-dir", w["run"])
    assert code == 0, output
    assert (w["run"] / MARKER).is_file()
    assert "run_id" in json.loads((w["run"] / "manifest.json").read_text())


# -- D3-D5: no output onto a run's own files -------------------------------------------------------


def test_d3_d4_d5_exports_onto_the_runs_own_files_are_refused(w):
    d, run = w["dir"], w["run"]
    for args in (
        ["review", "export", run, run / "ledger.gpkg", "--status", "all"],
        ["inventory", "export", run, run / "ledger.gpkg"],
    ):
        _refused(d, *args, expected="would replace ledger.gpkg of the thawdetect run")
    _refused(d, "accuracy", "--run", run, "--json", run / "manifest.json",
             expected="would replace manifest.json of the thawdetect run")  # fmt: skip
    _refused(d, "inventory", "export", run, run / "run.log", "--format", "csv",
             expected="would replace run.log")  # fmt: skip
    _refused(d, "review", "export", run, run / "iterations" / "x.gpkg",
             expected="would replace iterations")  # fmt: skip
    # through a symbolic link, and a hard link, to the ledger
    (d / "sneaky.gpkg").symlink_to(run / "ledger.gpkg")
    _refused(d, "review", "export", run, d / "sneaky.gpkg", expected="would replace ledger.gpkg")
    os.link(run / "ledger.gpkg", d / "hard.gpkg")
    _refused(d, "inventory", "export", run, d / "hard.gpkg", expected="is the run's own")
    # the run still resumes and has every decision
    code, _lines, output = _cli("status", run)
    assert code == 0, output
    code, _lines, output = _cli("review", "list", run, "--status", "confirmed", "--json")
    assert code == 0 and len(json.loads(output)) > 0


def test_exports_beside_the_run_are_fine(w):
    run = w["run"]
    code, _lines, output = _cli("review", "export", run, run / "review.gpkg", "--status", "all")
    assert code == 0, output
    code, _lines, output = _cli("accuracy", "--run", run, "--json", run / "figures.json")
    assert code == 0, output


# -- D6: one integrity check everywhere ------------------------------------------------------------


def _flip_bytes_in_a_table(ledger: Path, table: str) -> None:
    """64 bytes overwritten inside the b-tree page of ``table`` (what the issue did)."""
    with sqlite3.connect(ledger) as con:
        page_size = con.execute("PRAGMA page_size").fetchone()[0]
        root = con.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,))
        page = root.fetchone()[0]
    con.close()
    with open(ledger, "r+b") as fh:
        fh.seek((page - 1) * page_size + 8)
        fh.write(b"\xa5" * 64)


READERS_AND_WRITERS = [
    ["status", "{run}"],
    ["review", "list", "{run}"],
    ["review", "show", "{run}", "it01-0001"],
    ["review", "decide", "{run}", "it01-0001", "rejected"],
    ["review", "undo", "{run}"],
    ["review", "export", "{run}", "{d}/out.gpkg"],
    ["inventory", "export", "{run}", "{d}/inv.gpkg"],
    ["accuracy", "--run", "{run}"],
    ["run", "--config", "{d}/run.yaml", "--output-dir", "{run}"],
]


@pytest.mark.parametrize("damage", ["bytes-flipped", "decisions-dropped", "decisions-gone"])
def test_d6_a_damaged_ledger_is_one_line_everywhere_and_nothing_is_written(w, damage):
    d, run = w["dir"], w["run"]
    ledger = run / "ledger.gpkg"
    if damage == "bytes-flipped":
        _flip_bytes_in_a_table(ledger, "candidates")
        expected = "run ledger is corrupt"
    else:
        with sqlite3.connect(ledger) as con:
            con.execute("DROP TABLE decisions")
            if damage == "decisions-gone":  # as GDAL drops a layer: its contents row goes too
                con.execute("DELETE FROM gpkg_contents WHERE table_name = 'decisions'")
                con.execute("DELETE FROM gpkg_ogr_contents WHERE table_name = 'decisions'")
        con.close()
        expected = "decisions"
    for args in READERS_AND_WRITERS:
        argv = [a.replace("{d}", str(d)).replace("{run}", str(run)) for a in args]
        line = _refused(d, *argv, expected=expected)
        assert str(ledger) in line, line


# -- the run lock: two real processes --------------------------------------------------------------

_HOLDER = """
import sys, time
sys.path.insert(0, {repo!r})
import yaml
from tests.test_bad_inputs import _host
from thawdetect.core.config import RunConfig
from thawdetect.core.run.engine import Engine

cfg = RunConfig.model_validate(yaml.safe_load(open({good!r})))
engine = Engine(cfg, {run!r}, _host())  # holds the run lock from its checks on
print("ready", flush=True)
time.sleep(120)
"""


def test_a_second_run_is_refused_while_one_runs_and_a_killed_ones_lock_is_taken_over(w):
    d, run = w["dir"], w["run"]
    script = d / "holder.py"
    script.write_text(textwrap.dedent(_HOLDER.format(repo=str(REPO), good=str(w["good"]),
                                                     run=str(run))))  # fmt: skip
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, cwd=REPO)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        holder = f"pid {proc.pid} on "
        for args in (
            ["run", "--config", w["good"], "--output-dir", run],
            ["run", "--config", w["good"], "--output-dir", run, "--overwrite"],
            ["review", "decide", run, "it01-0001", "rejected"],
            ["review", "undo", run],
        ):
            line = _refused(d, *args, expected="a run is in progress here: thawdetect run")
            assert holder in line, line
        # reading is fine while it runs
        code, _lines, output = _cli("review", "list", run, "--status", "all")
        assert code == 0, output
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # a killed run leaves its lock file behind
        proc.wait()
    assert json.loads((run / LOCK_FILE).read_text())["pid"] == proc.pid
    code, _lines, output = _cli("run", "--config", w["good"], "--output-dir", run)
    assert code == 0, output
    assert f"took over the run lock left by thawdetect run (pid {proc.pid}" in output
    assert (run / LOCK_FILE).read_text() == ""  # released at the end


# -- the tracebacks the issue lists, now one line --------------------------------------------------


def test_config_problems_are_one_line(w):
    d = w["dir"]
    _refused(d, "run", "--config", d, "--output-dir", d / "new",
             expected="is a directory, not a config file")  # fmt: skip
    latin1 = d / "latin1.yaml"
    latin1.write_bytes(b"region: toy\nnote: caf\xe9\n")
    _refused(d, "run", "--config", latin1, "--output-dir", d / "new",
             expected="is not UTF-8 text (byte 21, line 2)")  # fmt: skip
    bomb = d / "bomb.yaml"
    levels = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    bomb.write_text("\n".join(levels) + "\ndetectors:\n  toy_a:\n    schedule: *a9\n")
    assert bomb.stat().st_size < 600
    _refused(d, "run", "--config", bomb, "--output-dir", d / "new",
             expected="expands to more than 100,000 values")  # fmt: skip


def test_output_dir_that_cannot_be_made_is_one_line(w):
    d = w["dir"]
    (d / "a-file.txt").write_text("x")
    _refused(d, "run", "--config", w["good"], "--output-dir", d / "a-file.txt" / "run",
             expected="a-file.txt is a file, not a directory")  # fmt: skip
    ro = Path("/proc/self/thawdetect-run")  # a file system nobody can write, root included
    _refused(d, "run", "--config", w["good"], "--output-dir", ro, expected=str(ro))


def test_unwritable_outputs_are_one_line(w):
    d, run = w["dir"], w["run"]
    _refused(d, "accuracy", "--run", run, "--json", "/proc/self/figures.json",
             expected="/proc/self/figures.json")  # fmt: skip
    _refused(d, "accuracy", "--run", run, "--json", d, expected="is a directory")
    _refused(d, "review", "export", run, "/proc/self/review.gpkg",
             expected="/proc/self/review.gpkg")  # fmt: skip
    (d / "a-file.txt").write_text("x")
    _refused(d, "review", "export", run, d / "a-file.txt" / "review.gpkg",
             expected="a-file.txt is a file, not a directory")  # fmt: skip


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_review_serve_bad_port_is_one_line(w, port):
    _refused(w["dir"], "review", "serve", w["run"], "--port", port,
             expected="is not in the range 0<=x<=65535")  # fmt: skip


# -- checked before the run directory exists -------------------------------------------------------


def _variant(w: dict[str, Path], name: str, **changes: object) -> Path:
    data = yaml.safe_load(w["good"].read_text())
    data.update(changes)
    path = w["dir"] / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_validation_problems_fail_before_the_run_directory_exists(w):
    d = w["dir"]
    (d / "val-dir").mkdir()
    gpd.GeoDataFrame({"label": [1]}, geometry=[Point(400_100, 3_849_900)], crs=CRS).to_file(
        d / "one.gpkg"
    )
    gpd.GeoDataFrame({"label": ["maybe"]}, geometry=[Point(400_100, 3_849_900)], crs=CRS).to_file(
        d / "maybe.gpkg"
    )
    line = LineString([(400_000, 3_849_000), (400_500, 3_849_500)])
    gpd.GeoDataFrame({"label": [1]}, geometry=[line], crs=CRS).to_file(d / "lines.gpkg")
    gpd.GeoDataFrame({"label": [1]}, geometry=[Point(95.0, 30.0)], crs=4326).to_file(d / "far.gpkg")
    region = {"name": "toy", "crs": CRS, "bbox_wgs84": [91.0, 34.0, 93.0, 36.0]}
    cases = [
        (_variant(w, "v-dir", validation=str(d / "val-dir")), "is a directory"),
        (_variant(w, "v-labels", validation=str(d / "maybe.gpkg")), "unknown values 'maybe'"),
        (
            _variant(w, "v-col", validation=str(d / "one.gpkg"), validation_label_column="x"),
            "label column 'x' not found",
        ),
        (_variant(w, "v-lines", validation=str(d / "lines.gpkg")), "found LineString"),
        (
            _variant(w, "v-far", validation=str(d / "far.gpkg"), region=region),
            "no validation point lies in region 'toy'",
        ),
    ]
    for cfg, expected in cases:
        _refused(d, "run", "--config", cfg, "--output-dir", d / "new", expected=expected)
        assert not (d / "new").exists()


def test_nan_numeric_options_are_refused(w):
    d, run = w["dir"], w["run"]
    _refused(d, "accuracy", "--run", run, "--tolerance-m", "nan",
             expected="--tolerance-m must be a number of metres")  # fmt: skip
    _refused(d, "inventory", "export", run, d / "inv.gpkg", "--near-road-m", "nan",
             expected="--near-road-m must be a number of metres")  # fmt: skip


def test_the_same_id_twice_in_one_decide_is_one_decision(w):
    run = w["run"]
    code, _lines, output = _cli("review", "list", run, "--status", "all", "--json")
    cid = json.loads(output)[0]["candidate_id"]
    code, _lines, output = _cli("review", "decide", run, cid, cid, cid, "unsure")
    assert code == 0, output
    assert "1 candidate(s) unsure" in output


def test_an_error_during_the_run_is_one_line_not_two(w, monkeypatch):
    from thawdetect.core.errors import InputError

    def broken(self: Engine) -> None:
        raise InputError(w["run"], "something went wrong in a stage")

    monkeypatch.setattr(Engine, "_initialise", broken)
    code, lines, output = _cli("run", "--config", w["good"], "--output-dir", w["run"])
    assert code == 1, output
    assert len(lines) == 1 and lines[0].startswith("Error: "), output
    assert "something went wrong in a stage" in (w["run"] / "run.log").read_text()


# -- the review page: body limit, token length, Referrer-Policy, --host 0.0.0.0 -----------------


def test_review_serve_refuses_a_short_token(w):
    _refused(w["dir"], "review", "serve", w["run"], "--token", "a",
             expected="--token must be at least 16 characters")  # fmt: skip


def test_review_page_limits_bodies_sends_no_referrer_and_serves_ip_hosts(made):
    from fastapi.testclient import TestClient

    from thawdetect.web.app import MAX_BODY_BYTES, ServerConfig, create_app

    token = "t" * 24
    config = ServerConfig(
        run_dir=made["run"], token=token, read_only=True, allowed_hosts=("testserver",),
        any_ip_host=True,
    )  # fmt: skip
    client = TestClient(create_app(config))
    hdr = {"X-Thawdetect-Token": token}
    r = client.get("/api/run", headers=hdr)
    assert r.status_code == 200, r.text
    assert r.headers["Referrer-Policy"] == "no-referrer"
    # bound to 0.0.0.0: the machine's LAN address is served, a DNS name still is not
    assert client.get("/api/run", headers={**hdr, "Host": "192.168.1.20:8000"}).status_code == 200
    assert client.get("/api/run", headers={**hdr, "Host": "evil.example"}).status_code == 403
    big = b'{"note": "' + b"x" * (MAX_BODY_BYTES + 1) + b'"}'
    r = client.post(
        "/api/decide",
        content=big,
        headers={**hdr, "Origin": "http://testserver", "Content-Type": "application/json"},
    )
    assert r.status_code == 413, r.text


# -- part of: any candidate of the run is a target, rejected ones and cycles are not -------------


def _statuses(run: Path) -> dict[str, str]:
    code, _lines, output = _cli("review", "list", run, "--status", "all", "--json")
    assert code == 0, output
    return {r["candidate_id"]: r["status"] for r in json.loads(output)}


def test_part_of_targets_same_iteration_rejected_and_cycles(w):
    d, run = w["dir"], w["run"]
    a, b, c = sorted(_statuses(run))[:3]
    # a candidate of the same iteration (not named in the command) is a target (was refused)
    code, _lines, output = _cli("review", "decide", run, a, "part_of", "--part-of", b)
    assert code == 0, output
    _refused(d, "review", "decide", run, b, "part_of", "--part-of", a,
             expected=f"would make a cycle ({b} -> {a} -> {b})")  # fmt: skip
    code, _lines, output = _cli("review", "decide", run, b, "part_of", "--part-of", c)
    assert code == 0, output
    _refused(d, "review", "decide", run, c, "part_of", "--part-of", a,
             expected=f"would make a cycle ({c} -> {a} -> {b} -> {c})")  # fmt: skip
    code, _lines, output = _cli("review", "decide", run, a, "rejected")
    assert code == 0, output
    _refused(d, "review", "decide", run, c, "part_of", "--part-of", a,
             expected=f"'part of' target '{a}' was rejected")  # fmt: skip


def test_import_refuses_part_of_cycles_and_rejected_targets(w):
    d, run = w["dir"], w["run"]
    a, b, gone = sorted(_statuses(run))[:3]
    code, _lines, output = _cli("review", "decide", run, gone, "rejected")
    assert code == 0, output
    rejected = [gone]
    out = d / "review.gpkg"
    code, _lines, output = _cli("review", "export", run, out, "--status", "all")
    assert code == 0, output
    df = gpd.read_file(out, layer="review")
    df["decision"], df["part_of"] = "", ""
    df.loc[df["candidate_id"] == a, ["decision", "part_of"]] = ["part_of", b]
    df.loc[df["candidate_id"] == b, ["decision", "part_of"]] = ["part_of", a]
    df.to_file(d / "cycle.gpkg", layer="review")
    _refused(d, "review", "import", run, d / "cycle.gpkg",
             expected=f"would make a cycle ({a} -> {b} -> {a})")  # fmt: skip
    df["decision"], df["part_of"] = "", ""
    df.loc[df["candidate_id"] == a, ["decision", "part_of"]] = ["part_of", rejected[0]]
    df.to_file(d / "onto-rejected.gpkg", layer="review")
    _refused(d, "review", "import", run, d / "onto-rejected.gpkg",
             expected=f"'part of' target '{rejected[0]}' was rejected")  # fmt: skip
    # the same target confirmed in the same file is fine
    df.loc[df["candidate_id"] == rejected[0], "decision"] = "confirmed"
    df.to_file(d / "onto-confirmed.gpkg", layer="review")
    code, _lines, output = _cli("review", "import", run, d / "onto-confirmed.gpkg")
    assert code == 0, output


def test_a_stale_export_does_not_silently_override_a_newer_decision(w):
    import time

    d, run = w["dir"], w["run"]
    a = sorted(_statuses(run))[0]
    out = d / "ann.gpkg"
    code, _lines, output = _cli("review", "export", run, out, "--status", "all")
    assert code == 0, output
    df = gpd.read_file(out, layer="review")
    df["decision"], df["reviewer"] = "", ""
    df.loc[df["candidate_id"] == a, ["decision", "reviewer"]] = ["rejected", "ann"]
    df.to_file(out, layer="review")
    time.sleep(1.1)  # ledger timestamps have whole seconds
    code, _lines, output = _cli("review", "decide", run, a, "confirmed", "-r", "bob")
    assert code == 0, output
    code, lines, output = _cli("review", "import", run, out)
    assert code == 0, output
    warning = [ln for ln in lines if ln.startswith("warning: ")]
    assert len(warning) == 1, output
    assert f"before another reviewer decided {a} (confirmed by bob" in warning[0]
    assert "kept the newer decisions" in warning[0]
    assert _statuses(run)[a] == "confirmed"
    code, lines, output = _cli("review", "import", run, out, "--prefer", "file")
    assert code == 0, output
    assert "applied the file's decisions over them" in output
    assert _statuses(run)[a] == "rejected"


# -- each detector's inputs opened before the run directory exists ---------------------------------


def _nan_raster(path: Path) -> Path:
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    profile = {"driver": "GTiff", "height": 20, "width": 20, "count": 1, "dtype": "float32",
               "crs": CRS, "transform": from_origin(400_000, 3_850_000, 10, 10)}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.full((1, 20, 20), np.nan, dtype="float32"))
    return path


def test_detector_inputs_unreadable_or_all_nan_fail_before_the_run_directory(w):
    d = w["dir"]
    (d / "garbage.tif").write_bytes(b"II*\x00 this is not a GeoTIFF")
    _nan_raster(d / "nan.tif")
    cases = [
        ("garbage.tif", "garbage.tif: cannot be read as a raster ("),
        ("nan.tif", "nan.tif: holds no finite value: every pixel is NaN"),
    ]
    for name, expected in cases:
        cfg = _variant(w, f"in-{name}", detectors={"toy_a": {"raster": str(d / name)}})
        line = _refused(d, "run", "--config", cfg, "--output-dir", d / "new", expected=expected)
        assert "detectors.toy_a.raster" in line
        assert not (d / "new").exists()
    # the same on a resume-or-replace: the old run stays as it was
    cfg = _variant(w, "in-nan-over", detectors={"toy_a": {"raster": str(d / "nan.tif")}})
    _refused(d, "run", "--config", cfg, "--output-dir", w["run"], "--overwrite",
             expected="nan.tif: holds no finite value")  # fmt: skip


def _insar_cli(*args: object) -> tuple[int, list[str], str]:
    from thawdetect.core.plugin_api.host import PluginHost

    result = CliRunner().invoke(cli, [str(a) for a in args], obj={"host": PluginHost()})
    return result.exit_code, [ln for ln in result.output.splitlines() if ln.strip()], result.output


def _insar_config(w: dict[str, Path], name: str, **detector: object) -> Path:
    cfg = {"region": {"name": "toy", "crs": CRS}, "detectors": {"insar_sbas": detector},
           "reviewer": "bogus", "evidence": False}  # fmt: skip
    path = w["dir"] / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_insar_time_series_all_nan_or_not_hdf5_is_one_line_naming_the_file(w):
    import h5py
    import numpy as np

    d = w["dir"]
    with h5py.File(d / "timeseries.h5", "w") as f:
        f["timeseries"] = np.full((4, 30, 30), np.nan, dtype="float32")
        f["date"] = np.array([b"20200101", b"20200201", b"20200301", b"20200401"])
    (d / "fake.h5").write_text("not hdf5")
    for name, expected in [
        ("timeseries.h5", "timeseries.h5: holds no finite value: every pixel is NaN"),
        ("fake.h5", "fake.h5: is not an HDF5 file"),
    ]:
        cfg = _insar_config(w, f"insar-{name}", timeseries_file=str(d / name))
        before = _digest(d)
        code, lines, output = _insar_cli("run", "--config", cfg, "--output-dir", d / "new")
        assert code == 1 and len(lines) == 1, output
        assert lines[0].startswith("Error: ") and expected in lines[0], output
        assert "detectors.insar_sbas.timeseries_file" in lines[0]
        assert _digest(d) == before and not (d / "new").exists()


def test_a_schedule_that_tightens_is_a_warning_before_anything_is_written(w):
    import h5py
    import numpy as np

    d = w["dir"]
    with h5py.File(d / "ts.h5", "w") as f:
        f["timeseries"] = np.zeros((3, 30, 30), dtype="float32")
    rows = [{"abs_rate_mm_yr": r} for r in (10, 30, 50)]
    cfg = _insar_config(w, "tighten", timeseries_file=str(d / "ts.h5"), schedule=rows)
    before = _digest(d)
    # the bogus reviewer stops the run after the input checks: nothing is written
    code, lines, output = _insar_cli("run", "--config", cfg, "--output-dir", d / "new")
    assert code == 1, output
    warning = [ln for ln in lines if "warning:" in ln]
    assert len(warning) == 1, output
    assert "insar_sbas: the |rate| thresholds (10 -> 30 -> 50 mm/yr) tighten" in warning[0]
    assert _digest(d) == before and not (d / "new").exists()
    relaxing = [{"abs_rate_mm_yr": r} for r in (50, 30, 10)]
    cfg = _insar_config(w, "relax", timeseries_file=str(d / "ts.h5"), schedule=relaxing)
    code, lines, output = _insar_cli("run", "--config", cfg, "--output-dir", d / "new")
    assert not [ln for ln in lines if "warning:" in ln], output


# -- --geometry: far larger or smaller than the candidate needs --force; the CRS is said ----------


def _candidate(run: Path) -> tuple[str, object]:
    from thawdetect.core.review.decisions import review_queue

    cands = review_queue(run, status=None)
    return str(cands["candidate_id"].iloc[0]), cands.geometry.iloc[0]


def test_an_outline_far_larger_or_smaller_than_its_candidate_needs_force(w):
    from shapely.geometry import box

    d, run = w["dir"], w["run"]
    cid, geom = _candidate(run)
    cx, cy = geom.centroid.x, geom.centroid.y
    huge = box(cx - 50_000, cy - 50_000, cx + 50_000, cy + 50_000)  # 100 x 100 km
    tiny = box(cx, cy, cx + 0.01, cy + 0.01)  # 1 cm²
    for name, outline, expected in [
        ("huge", huge, "times the candidate's area"),
        ("tiny", tiny, "of the candidate's area (0.0001 m² against"),
    ]:
        gpd.GeoDataFrame(geometry=[outline], crs=CRS).to_file(d / f"{name}.gpkg")
        _refused(d, "review", "decide", run, cid, "confirmed", "--geometry", d / f"{name}.gpkg",
                 expected=expected)  # fmt: skip
    code, _lines, output = _cli(
        "review", "decide", run, cid, "confirmed", "--geometry", d / "huge.gpkg", "--force"
    )
    assert code == 0 and "with the reviewed outline" in output, output


def test_the_crs_of_an_outline_is_said_or_its_absence_named(w):
    d, run = w["dir"], w["run"]
    cid, geom = _candidate(run)
    outline = geom.buffer(5)
    with pytest.warns(UserWarning, match="'crs' was not provided"):
        gpd.GeoDataFrame(geometry=[outline]).to_file(d / "noprj.shp")  # a .shp without .prj
    assert not (d / "noprj.prj").exists()
    code, lines, output = _cli("review", "decide", run, cid, "confirmed", "-g", d / "noprj.shp")
    assert code == 0, output
    assert f"note: {d / 'noprj.shp'} has no CRS" in lines[0], output
    assert "taken in the run's CRS EPSG:32646" in lines[0]
    # a GeoJSON in UTM metres without a crs member: GDAL reads it as WGS 84
    (d / "utm.geojson").write_text(json.dumps({
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "properties": {},
                      "geometry": json.loads(gpd.GeoSeries([outline]).to_json())["features"][0]
                      ["geometry"]}],
    }))  # fmt: skip
    _refused(d, "review", "decide", run, cid, "confirmed", "-g", d / "utm.geojson",
             expected="are not longitude/latitude though the file says EPSG:4326")  # fmt: skip


def test_a_bow_tie_in_the_known_inventory_is_repaired_with_a_warning(w):
    from shapely.geometry import Polygon, box

    d = w["dir"]
    x, y = 400_050, 3_849_050
    bow_tie = Polygon([(x, y), (x + 40, y + 40), (x + 40, y), (x, y + 40)])
    ok = [box(x + 200, y, x + 230, y + 30), box(x + 400, y, x + 430, y + 30)]
    gpd.GeoDataFrame({"name": ["a", "b", "c"]}, geometry=[ok[0], bow_tie, ok[1]], crs=CRS).to_file(
        d / "known.gpkg"
    )
    cfg = _variant(w, "with-known", known_inventory=str(d / "known.gpkg"))
    code, lines, output = _cli("run", "--config", cfg, "--output-dir", d / "new")
    assert code == 0, output
    warning = [ln for ln in lines if "warning: known inventory" in ln]
    assert len(warning) == 1, output
    assert "feature 2 is invalid (Self-intersection" in warning[0]
    assert "repaired into 2 polygon(s)" in warning[0]


def test_one_web_post_with_10000_copies_of_an_id_is_one_decision(w):
    from fastapi.testclient import TestClient

    from thawdetect.core.review.decisions import history
    from thawdetect.web.app import ServerConfig, create_app

    run = w["run"]
    cid = sorted(_statuses(run))[0]
    before = len(history(run, cid))
    token = "t" * 24
    config = ServerConfig(run_dir=run, token=token, reviewer="web", allowed_hosts=("testserver",))
    client = TestClient(create_app(config))
    r = client.post(
        "/api/decide",
        json={"candidate_ids": [cid] * 10_000, "decision": "unsure"},
        headers={"X-Thawdetect-Token": token, "Origin": "http://testserver"},
    )
    assert r.status_code == 200, r.text
    assert len(history(run, cid)) == before + 1


def test_library_warnings_stay_off_the_terminal(w):
    import warnings

    d, run = w["dir"], w["run"]
    path = d / "two-layers.gpkg"
    gpd.GeoDataFrame({"label": ["maybe"]}, geometry=[Point(400_100, 3_849_900)], crs=CRS).to_file(
        path, layer="points"
    )
    gpd.GeoDataFrame({"x": [1]}, geometry=[Point(400_100, 3_849_900)], crs=CRS).to_file(
        path, layer="other"
    )
    with warnings.catch_warnings(record=True) as seen:  # the library does warn
        warnings.simplefilter("always")
        gpd.read_file(path)
    assert any("More than one layer found" in str(m.message) for m in seen)
    with warnings.catch_warnings():  # as in a fresh process: printed on stderr, once
        warnings.simplefilter("always")

        def to_stderr(message, category, filename, lineno, file=None, line=None):
            sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

        warnings.showwarning = to_stderr
        _refused(d, "accuracy", "--run", run, "--validation", path,
                 expected="unknown values 'maybe'")  # fmt: skip
