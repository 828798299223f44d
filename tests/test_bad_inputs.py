"""The bad-input table: every case exits 1 with one line, no traceback, and writes nothing.

One finished run (real rasters, real ledger, reference review) is made once; each case runs the
real CLI against it (or beside it) and the whole folder holding the run, its inputs and the
corrupt copies is checksummed before and after: a bad input must not create, change or delete
any file (issue 10: "nothing already written is lost or half-written").
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from shapely.geometry import Point
from tests.plugins import toy_detectors
from tests.test_core_engine import BLOBS, CRS, ORIGIN, RES, _write

from thawdetect.cli.main import cli
from thawdetect.core.config import RunConfig
from thawdetect.core.plugin_api.host import PluginHost
from thawdetect.core.run.engine import Engine


def _host() -> PluginHost:
    return PluginHost(plugins=[("toy", toy_detectors)])


def _scene(d: Path) -> dict[str, Path]:
    n = 100
    yy, xx = np.mgrid[0:n, 0:n]
    a = np.random.default_rng(0).uniform(0, 0.2, (n, n))
    truth, points, labels = [], [], []
    for r, c, rad, va, _vb, real in BLOBS:
        disk = (yy - r) ** 2 + (xx - c) ** 2 <= rad**2 if rad else (yy == r) & (xx == c)
        a[disk] = va
        x, y = ORIGIN[0] + (c + 0.5) * RES, ORIGIN[1] - (r + 0.5) * RES
        points.append(Point(x, y))
        labels.append(1 if real else 0)
        if real:
            truth.append(Point(x, y).buffer(max(rad, 0.5) * RES))
    ref = d / "reference.gpkg"
    gpd.GeoDataFrame({"name": range(len(truth))}, geometry=truth, crs=CRS).to_file(ref)
    val = d / "validation.gpkg"
    gpd.GeoDataFrame({"label": labels}, geometry=points, crs=CRS).to_file(val)
    return {"a": _write(d / "a.tif", a), "ref": ref, "val": val}


def finished_run(d: Path) -> tuple[dict[str, Path], dict[str, Any], Path, Path]:
    """The toy scene in ``d``, its run config (``d/run.yaml``) and one finished run of it
    (``d/run``: real rasters, ledger, reference review): ``(files, cfg, yaml, run)``."""
    files = _scene(d)
    cfg = {
        "region": {"name": "toy", "crs": CRS},
        "detectors": {"toy_a": {"raster": str(files["a"])}},
        "reviewer": f"reference:{files['ref']}",
        "validation": str(files["val"]),
        "evidence": False,
        "max_iterations": 1,
    }
    good = d / "run.yaml"
    good.write_text(yaml.safe_dump(cfg))
    run = d / "run"
    result = Engine(RunConfig.model_validate(cfg), run, _host(), source=str(good)).run()
    assert result.status == "finished"
    return files, cfg, good, run


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad-inputs")
    files, _, good, run = finished_run(d)
    corrupt = d / "corrupt-manifest"
    shutil.copytree(run, corrupt)
    (corrupt / "manifest.json").write_text('{"status": "finished", ')
    broken = d / "corrupt-ledger"
    shutil.copytree(run, broken)
    with open(broken / "ledger.gpkg", "r+b") as fh:  # garbage past the SQLite header
        fh.seek(4096)
        fh.write(b"\xde\xad\xbe\xef" * 4096)
    notrun = d / "my-thesis"
    notrun.mkdir()
    (notrun / "chapter1.tex").write_text("years of work")
    (d / "a-file.txt").write_text("not a directory")
    (d / "garbage.gpkg").write_bytes(b"this is not a geopackage")
    (d / "nolonlat.csv").write_text("name,value\na,1\n")
    (d / "outofrange.csv").write_text("lon,lat\n500,95\n")
    (d / "badlabels.csv").write_text("lon,lat,label\n93.0,36.0,maybe\n")
    gpd.GeoDataFrame(geometry=[Point(400_100, 3_849_900)], crs=CRS).to_file(d / "points.gpkg")
    (d / "notwkt.csv").write_text("geometry_wkt,name\nnot wkt at all,a\n")

    def variant(name: str, **changes: object) -> Path:
        data = yaml.safe_load(good.read_text())
        for key, value in changes.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        path = d / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    variant("det-list", detectors=["toy_a"])
    variant("det-unknown", detectors={"nosuch": {}})
    variant("det-typo", detectors={"toy_a": {"raster": str(files["a"]), "schedul": [0.5]}})
    variant("det-notmap", detectors={"toy_a": 5})
    variant("raster-missing", detectors={"toy_a": {"raster": str(d / "gone.tif")}})
    variant("known-missing", known_inventory=str(d / "gone.gpkg"))
    variant("val-missing", validation=str(d / "gone.gpkg"))
    variant("roads-missing", roads=str(d / "gone-roads.gpkg"))
    variant("unknown-key", max_iteration=3)
    variant("mmu-negative", min_mapping_unit_ha=-1)
    variant("other-config", min_mapping_unit_ha=1.0)
    variant("no-region", region=None)
    variant("no-detectors", detectors=None)
    variant("reviewer-bogus", reviewer="bogus")
    variant("reviewer-missing", reviewer=f"reference:{d / 'gone.gpkg'}")
    variant("reviewer-option", reviewer=f"reference:{files['ref']}?tolerance_m=abc")
    variant("max-zero", max_iterations=0)
    (d / "list-root.yaml").write_text("- region: toy\n")
    (d / "not-yaml.yaml").write_text("region: [toy\n")
    _issue_21_files(d, run, variant)
    return {"dir": d, "run": run, "good": good, **files}


def _issue_21_files(d: Path, run: Path, variant: Callable[..., Path]) -> None:
    """The inputs of issue 21's cases (each is also tested on its own in test_data_safety)."""
    from shapely.geometry import LineString, box

    from thawdetect.core.review.decisions import review_queue

    (d / "latin1.yaml").write_bytes(b"region: toy\nnote: caf\xe9\n")
    levels = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    (d / "bomb.yaml").write_text("\n".join(levels) + "\ndetectors:\n  toy_a:\n    schedule: *a9\n")
    (d / "val-dir").mkdir()
    pt = Point(400_100, 3_849_900)
    gpd.GeoDataFrame({"label": ["maybe"]}, geometry=[pt], crs=CRS).to_file(d / "maybe.gpkg")
    gpd.GeoDataFrame({"label": [1]}, geometry=[pt], crs=CRS).to_file(d / "one.gpkg")
    line = LineString([(400_000, 3_849_000), (400_500, 3_849_500)])
    gpd.GeoDataFrame({"label": [1]}, geometry=[line], crs=CRS).to_file(d / "lines.gpkg")
    gpd.GeoDataFrame({"label": [1]}, geometry=[Point(95.0, 30.0)], crs=4326).to_file(d / "far.gpkg")
    region = {"name": "toy", "crs": CRS, "bbox_wgs84": [91.0, 34.0, 93.0, 36.0]}
    variant("v-dir", validation=str(d / "val-dir"))
    variant("v-labels", validation=str(d / "maybe.gpkg"))
    variant("v-col", validation=str(d / "one.gpkg"), validation_label_column="x")
    variant("v-lines", validation=str(d / "lines.gpkg"))
    variant("v-far", validation=str(d / "far.gpkg"), region=region)
    (d / "garbage.tif").write_bytes(b"II*\x00 this is not a GeoTIFF")
    _write(d / "nan.tif", np.full((100, 100), np.nan))
    variant("in-garbage", detectors={"toy_a": {"raster": str(d / "garbage.tif")}})
    variant("in-nan", detectors={"toy_a": {"raster": str(d / "nan.tif")}})
    geom = review_queue(run, status=None).set_index("candidate_id").geometry["it01-0001"]
    cx, cy = geom.centroid.x, geom.centroid.y
    for name, outline in [
        ("huge", box(cx - 50_000, cy - 50_000, cx + 50_000, cy + 50_000)),
        ("tiny", box(cx, cy, cx + 0.01, cy + 0.01)),
    ]:
        gpd.GeoDataFrame(geometry=[outline], crs=CRS).to_file(d / f"{name}.gpkg")
    (d / "utm.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": [{
            "type": "Feature", "properties": {},
            "geometry": json.loads(gpd.GeoSeries([geom]).to_json())["features"][0]["geometry"],
        }]})
    )  # fmt: skip


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# (case id, CLI arguments with {d} = the folder, {run} = the finished run; expected text)
CASES: list[tuple[str, list[str], str]] = [
    # run: configuration
    ("run-unknown-detector-overwrite",
     ["run", "--config", "{d}/run.yaml", "--detector", "nosuch", "--output-dir", "{run}",
      "--overwrite"], "unknown detector 'nosuch'"),
    ("run-unknown-region-overwrite",
     ["run", "--config", "{d}/run.yaml", "--region", "atlantis", "--output-dir", "{run}",
      "--overwrite"], "unknown region 'atlantis'"),
    ("run-max-iterations-negative",
     ["run", "--config", "{d}/run.yaml", "--max-iterations", "-1", "--output-dir", "{run}"],
     "--max-iterations: Input should be greater than or equal to 1"),
    ("run-max-iterations-zero",
     ["run", "--config", "{d}/run.yaml", "--max-iterations", "0", "--output-dir", "{run}"],
     "--max-iterations: Input should be greater than or equal to 1"),
    ("run-max-iterations-zero-in-yaml",
     ["run", "--config", "{d}/max-zero.yaml", "--output-dir", "{d}/new"],
     "max_iterations: Input should be greater than or equal to 1"),
    ("run-output-dir-is-file",
     ["run", "--config", "{d}/run.yaml", "--output-dir", "{d}/a-file.txt"],
     "a-file.txt: is a file"),
    ("run-overwrite-non-run-dir",
     ["run", "--config", "{d}/run.yaml", "--output-dir", "{d}/my-thesis", "--overwrite"],
     "is not a thawdetect run (a folder of other files)"),
    ("run-detectors-as-list",
     ["run", "--config", "{d}/det-list.yaml", "--output-dir", "{d}/new"],
     "detectors: expected a mapping"),
    ("run-detector-unknown-in-yaml",
     ["run", "--config", "{d}/det-unknown.yaml", "--output-dir", "{d}/new"],
     "unknown detector 'nosuch'"),
    ("run-detector-section-typo",
     ["run", "--config", "{d}/det-typo.yaml", "--output-dir", "{d}/new"],
     "detectors.toy_a: schedul: Extra inputs are not permitted"),
    ("run-detector-section-not-mapping",
     ["run", "--config", "{d}/det-notmap.yaml", "--output-dir", "{d}/new"],
     "detectors.toy_a: expected a mapping"),
    ("run-config-missing",
     ["run", "--config", "{d}/nope.yaml", "--output-dir", "{d}/new"],
     "config file does not exist"),
    ("run-config-not-yaml",
     ["run", "--config", "{d}/not-yaml.yaml", "--output-dir", "{d}/new"], "is not valid YAML"),
    ("run-config-root-list",
     ["run", "--config", "{d}/list-root.yaml", "--output-dir", "{d}/new"],
     "expected a mapping of settings"),
    ("run-config-unknown-key",
     ["run", "--config", "{d}/unknown-key.yaml", "--output-dir", "{d}/new"],
     "max_iteration: Extra inputs are not permitted"),
    ("run-config-bad-value",
     ["run", "--config", "{d}/mmu-negative.yaml", "--output-dir", "{d}/new"],
     "min_mapping_unit_ha: Input should be greater than or equal to 0"),
    ("run-no-region",
     ["run", "--config", "{d}/no-region.yaml", "--output-dir", "{d}/new"], "no region given"),
    ("run-no-detector",
     ["run", "--config", "{d}/no-detectors.yaml", "--output-dir", "{d}/new"],
     "no detector selected"),
    # run: inputs and reviewer, found before the run directory exists
    ("run-detector-input-missing",
     ["run", "--config", "{d}/raster-missing.yaml", "--output-dir", "{d}/new"],
     "gone.tif: file does not exist"),
    ("run-detector-input-missing-overwrite",
     ["run", "--config", "{d}/raster-missing.yaml", "--output-dir", "{run}", "--overwrite"],
     "gone.tif: file does not exist"),
    ("run-known-inventory-missing",
     ["run", "--config", "{d}/known-missing.yaml", "--output-dir", "{d}/new"],
     "known inventory file does not exist"),
    ("run-validation-missing-yaml",
     ["run", "--config", "{d}/val-missing.yaml", "--output-dir", "{d}/new"],
     "validation file does not exist"),
    ("run-roads-missing-yaml",
     ["run", "--config", "{d}/roads-missing.yaml", "--output-dir", "{d}/new"],
     "gone-roads.gpkg: roads file does not exist"),
    ("run-validation-missing-option",
     ["run", "--config", "{d}/run.yaml", "--validation", "{d}/gone.gpkg", "--output-dir",
      "{d}/new"], "validation file does not exist"),
    ("run-reviewer-bogus",
     ["run", "--config", "{d}/reviewer-bogus.yaml", "--output-dir", "{d}/new"],
     "reviewer 'bogus' is not understood"),
    ("run-reviewer-bogus-option",
     ["run", "--config", "{d}/run.yaml", "--reviewer", "bogus", "--output-dir", "{d}/new"],
     "reviewer 'bogus' is not understood"),
    ("run-reviewer-reference-missing",
     ["run", "--config", "{d}/reviewer-missing.yaml", "--output-dir", "{d}/new"], "gone.gpkg"),
    ("run-reviewer-reference-missing-resume",
     ["run", "--config", "{d}/run.yaml", "--reviewer", "reference:{d}/gone.gpkg",
      "--output-dir", "{run}"], "gone.gpkg"),
    ("run-reviewer-bad-option",
     ["run", "--config", "{d}/reviewer-option.yaml", "--output-dir", "{d}/new"],
     "tolerance_m='abc' is not a number"),
    ("run-reviewer-reference-garbage",
     ["run", "--config", "{d}/run.yaml", "--reviewer", "reference:{d}/garbage.gpkg",
      "--output-dir", "{d}/new"], "garbage.gpkg"),
    # run: resuming
    ("run-different-config-names-keys",
     ["run", "--config", "{d}/other-config.yaml", "--output-dir", "{run}"],
     "min_mapping_unit_ha: 0.05 -> 1.0"),
    ("run-corrupt-manifest",
     ["run", "--config", "{d}/run.yaml", "--output-dir", "{d}/corrupt-manifest"],
     "run manifest is corrupt"),
    ("run-corrupt-ledger",
     ["run", "--config", "{d}/run.yaml", "--output-dir", "{d}/corrupt-ledger"],
     "run ledger is corrupt"),
    ("run-unknown-option", ["run", "--nosuch"], "No such option"),
    ("status-corrupt-ledger", ["status", "{d}/corrupt-ledger"], "run ledger is corrupt"),
    ("accuracy-run-corrupt-ledger", ["accuracy", "--run", "{d}/corrupt-ledger"],
     "run ledger is corrupt"),
    ("inventory-corrupt-ledger", ["inventory", "export", "{d}/corrupt-ledger", "{d}/o.gpkg"],
     "run ledger is corrupt"),
    # status
    ("status-not-a-run", ["status", "{d}/my-thesis"], "is not a thawdetect run directory"),
    ("status-corrupt-manifest", ["status", "{d}/corrupt-manifest"], "run manifest is corrupt"),
    ("status-missing-dir", ["status", "{d}/nowhere"], "does not exist"),
    ("unknown-command", ["nosuch"], "No such command 'nosuch'"),
    # review
    ("review-decide-illegal-value",
     ["review", "decide", "{run}", "it01-0001", "maybe"], "'maybe' is not one of"),
    ("review-decide-unknown-candidate",
     ["review", "decide", "{run}", "it99-0001", "confirmed"], "it99-0001"),
    ("review-list-not-a-run", ["review", "list", "{d}/my-thesis"], "my-thesis"),
    ("review-decide-bad-probability",
     ["review", "decide", "{run}", "it01-0001", "confirmed", "-p", "certain"],
     "'certain' is not one of"),
    # accuracy
    ("accuracy-both-sources",
     ["accuracy", "--run", "{run}", "--detections", "{d}/points.gpkg"], "exactly one of"),
    ("accuracy-no-source", ["accuracy", "--validation", "{d}/validation.gpkg"], "exactly one of"),
    ("accuracy-validation-missing",
     ["accuracy", "--run", "{run}", "--validation", "{d}/gone.gpkg"],
     "validation points file does not exist"),
    ("accuracy-validation-no-lonlat",
     ["accuracy", "--run", "{run}", "--validation", "{d}/nolonlat.csv"], "no longitude column"),
    ("accuracy-validation-out-of-range",
     ["accuracy", "--run", "{run}", "--validation", "{d}/outofrange.csv"],
     "outside degrees range"),
    ("accuracy-label-column-missing",
     ["accuracy", "--run", "{run}", "--label-column", "checked"],
     "label column 'checked' not found"),
    ("accuracy-labels-unknown",
     ["accuracy", "--run", "{run}", "--validation", "{d}/badlabels.csv"], "unknown values"),
    ("accuracy-tolerance-negative",
     ["accuracy", "--run", "{run}", "--tolerance-m", "-5"], "--tolerance-m must be ≥ 0"),
    ("accuracy-detections-missing",
     ["accuracy", "--detections", "{d}/gone.gpkg", "--validation", "{d}/validation.gpkg"],
     "detections file does not exist"),
    ("accuracy-detections-are-points",
     ["accuracy", "--detections", "{d}/points.gpkg", "--validation", "{d}/validation.gpkg"],
     "points.gpkg"),
    ("accuracy-detections-not-wkt",
     ["accuracy", "--detections", "{d}/notwkt.csv", "--validation", "{d}/validation.gpkg"],
     "is not WKT"),
    ("accuracy-reference-missing",
     ["accuracy", "--detections", "{d}/reference.gpkg", "--reference", "{d}/gone.gpkg"],
     "reference polygons file does not exist"),
    ("accuracy-run-not-a-run",
     ["accuracy", "--run", "{d}/my-thesis", "--validation", "{d}/validation.gpkg"],
     "not a run directory"),
    ("accuracy-run-corrupt-manifest", ["accuracy", "--run", "{d}/corrupt-manifest"],
     "run manifest is corrupt"),
    # inventory export
    ("inventory-unknown-suffix", ["inventory", "export", "{run}", "{d}/out.txt"],
     "unknown inventory format '.txt'"),
    ("inventory-format-contradicts-suffix",
     ["inventory", "export", "{run}", "{d}/out.gpkg", "--format", "csv"],
     "--format csv does not match the file suffix '.gpkg'"),
    ("inventory-arts-field-no-equals",
     ["inventory", "export", "{run}", "{d}/out.gpkg", "--arts", "--arts-field", "BaseMapDate"],
     "use NAME=VALUE"),
    ("inventory-arts-field-without-arts",
     ["inventory", "export", "{run}", "{d}/out.gpkg", "--arts-field", "BaseMapDate=2020"],
     "--arts-field needs --arts"),
    ("inventory-arts-field-unknown",
     ["inventory", "export", "{run}", "{d}/out.gpkg", "--arts", "--arts-field", "Colour=red"],
     "not ARTS fields: ['Colour']"),
    ("inventory-roads-missing",
     ["inventory", "export", "{run}", "{d}/out.gpkg", "--roads", "{d}/gone.gpkg"],
     "roads file does not exist"),
    ("inventory-near-road-negative",
     ["inventory", "export", "{run}", "{d}/out.gpkg", "--near-road-m", "-1"],
     "near_road_m must be ≥ 0"),
    ("inventory-not-a-run", ["inventory", "export", "{d}/my-thesis", "{d}/out.gpkg"],
     "not a run directory"),
    ("inventory-arts-corrupt-manifest",
     ["inventory", "export", "{d}/corrupt-manifest", "{d}/out.gpkg", "--arts"],
     "run manifest is corrupt"),
    # config
    ("config-template-unknown-detector", ["config", "template", "--detector", "nosuch"],
     "unknown detector 'nosuch'"),
    # issue 21: data loss (D1, D3-D5), tracebacks, checked before the run directory exists
    ("run-into-a-folder-of-files",
     ["run", "--config", "{d}/run.yaml", "--output-dir", "{d}/my-thesis"],
     "is not a thawdetect run (a folder of other files)"),
    ("review-export-onto-the-ledger",
     ["review", "export", "{run}", "{run}/ledger.gpkg", "--status", "all"],
     "would replace ledger.gpkg of the thawdetect run"),
    ("inventory-export-onto-the-ledger", ["inventory", "export", "{run}", "{run}/ledger.gpkg"],
     "would replace ledger.gpkg of the thawdetect run"),
    ("accuracy-json-onto-the-manifest",
     ["accuracy", "--run", "{run}", "--json", "{run}/manifest.json"],
     "would replace manifest.json of the thawdetect run"),
    ("run-config-is-a-directory", ["run", "--config", "{d}", "--output-dir", "{d}/new"],
     "is a directory, not a config file"),
    ("run-config-not-utf8", ["run", "--config", "{d}/latin1.yaml", "--output-dir", "{d}/new"],
     "is not UTF-8 text (byte 21, line 2)"),
    ("run-config-alias-bomb", ["run", "--config", "{d}/bomb.yaml", "--output-dir", "{d}/new"],
     "expands to more than 100,000 values"),
    ("run-output-dir-under-a-file",
     ["run", "--config", "{d}/run.yaml", "--output-dir", "{d}/a-file.txt/run"],
     "a-file.txt is a file, not a directory"),
    ("accuracy-json-unwritable",
     ["accuracy", "--run", "{run}", "--json", "/proc/self/figures.json"],
     "/proc/self/figures.json"),
    ("review-export-unwritable", ["review", "export", "{run}", "/proc/self/review.gpkg"],
     "/proc/self/review.gpkg"),
    ("serve-port-too-large", ["review", "serve", "{run}", "--port", "70000"],
     "is not in the range 0<=x<=65535"),
    ("serve-port-negative", ["review", "serve", "{run}", "--port", "-1"],
     "is not in the range 0<=x<=65535"),
    ("serve-token-short", ["review", "serve", "{run}", "--token", "a"],
     "--token must be at least 16 characters"),
    ("run-validation-is-a-directory",
     ["run", "--config", "{d}/v-dir.yaml", "--output-dir", "{d}/new"], "is a directory"),
    ("run-validation-labels-unknown",
     ["run", "--config", "{d}/v-labels.yaml", "--output-dir", "{d}/new"],
     "unknown values 'maybe'"),
    ("run-validation-label-column-missing",
     ["run", "--config", "{d}/v-col.yaml", "--output-dir", "{d}/new"],
     "label column 'x' not found"),
    ("run-validation-lines", ["run", "--config", "{d}/v-lines.yaml", "--output-dir", "{d}/new"],
     "found LineString"),
    ("run-validation-far-away", ["run", "--config", "{d}/v-far.yaml", "--output-dir", "{d}/new"],
     "no validation point lies in region 'toy'"),
    ("run-detector-input-not-a-raster",
     ["run", "--config", "{d}/in-garbage.yaml", "--output-dir", "{d}/new"],
     "garbage.tif: cannot be read as a raster ("),
    ("run-detector-input-all-nan",
     ["run", "--config", "{d}/in-nan.yaml", "--output-dir", "{d}/new"],
     "nan.tif: holds no finite value: every pixel is NaN"),
    ("run-detector-input-all-nan-overwrite",
     ["run", "--config", "{d}/in-nan.yaml", "--output-dir", "{run}", "--overwrite"],
     "nan.tif: holds no finite value"),
    ("accuracy-tolerance-nan", ["accuracy", "--run", "{run}", "--tolerance-m", "nan"],
     "--tolerance-m must be a number of metres"),
    ("inventory-near-road-nan",
     ["inventory", "export", "{run}", "{d}/inv.gpkg", "--near-road-m", "nan"],
     "--near-road-m must be a number of metres"),
    ("review-decide-outline-far-larger",
     ["review", "decide", "{run}", "it01-0001", "confirmed", "-g", "{d}/huge.gpkg"],
     "times the candidate's area"),
    ("review-decide-outline-far-smaller",
     ["review", "decide", "{run}", "it01-0001", "confirmed", "-g", "{d}/tiny.gpkg"],
     "of the candidate's area (0.0001 m² against"),
    ("review-decide-outline-utm-geojson",
     ["review", "decide", "{run}", "it01-0001", "confirmed", "-g", "{d}/utm.geojson"],
     "are not longitude/latitude though the file says EPSG:4326"),
    ("review-decide-part-of-itself",
     ["review", "decide", "{run}", "it01-0001", "part_of", "--part-of", "it01-0001"],
     "cannot be part of itself"),
]  # fmt: skip


def test_the_table_is_large_enough():
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(("args", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_writes_nothing(world, args, expected):
    d, run = world["dir"], world["run"]
    argv = [a.replace("{d}", str(d)).replace("{run}", str(run)) for a in args]
    before = _tree_digest(d)
    result = CliRunner().invoke(cli, argv, obj={"host": _host()})
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: "), lines[0]
    assert expected in lines[0], lines[0]
    after = _tree_digest(d)
    assert after == before, "a bad input changed files: " + json.dumps(
        sorted(set(after.items()) ^ set(before.items()))
    )
