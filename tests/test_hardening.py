"""Issue 10 (hardening) regressions, one per numbered defect and habit, and issue 12 item 4
(a run whose inputs changed continues as a new iteration).

Each test fails on the commit before the fix. Real rasters, real ledgers, real reviewers, a real
HTTP server on 127.0.0.1 for /vsicurl/; the CLI through click's runner.
"""

from __future__ import annotations

import http.server
import json
import logging
import os
import threading
import tomllib
import warnings
import zipfile
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
import rasterio
import yaml
from click.testing import CliRunner
from rich.console import Console
from shapely.geometry import Point
from tests import test_core_engine as _engine_tests
from tests.plugins import toy_detectors
from tests.test_core_engine import CRS, ORIGIN, RES, _config, _host

from thawdetect.cli import main as cli_main
from thawdetect.cli.main import cli, iterations_table
from thawdetect.core.config import RunConfig, cache_dir
from thawdetect.core.errors import ConfigError, InputError, PluginError
from thawdetect.core.plugin_api.detector import Detector, DetectorConfig
from thawdetect.core.plugin_api.hookspecs import hookimpl
from thawdetect.core.plugin_api.host import PluginHost
from thawdetect.core.run.engine import Engine
from thawdetect.core.run.ledger import Ledger

REPO = Path(__file__).resolve().parents[1]
scene = _engine_tests.scene  # the engine tests' real two-raster scene (fixture)


def _invoke(*args: str, host: PluginHost | None = None):
    return CliRunner().invoke(cli, [str(a) for a in args], obj={"host": host or _host()})


def _validation(scene: dict[str, Path], path: Path) -> Path:
    """Validation points with a label column: the 6 real blobs (1) and the look-alike (0)."""
    from tests.test_core_engine import BLOBS

    pts, labels = [], []
    for r, c, _rad, _va, _vb, real in BLOBS:
        pts.append(Point(ORIGIN[0] + (c + 0.5) * RES, ORIGIN[1] - (r + 0.5) * RES))
        labels.append("landslide" if real else "checked-not-landslide")
    gpd.GeoDataFrame({"label": labels}, geometry=pts, crs=CRS).to_file(path)
    return path


# -- 1. --overwrite deletes only runs, and only after validation -----------------------------------


def test_overwrite_never_deletes_a_non_run_and_validates_first(scene, tmp_path):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "chapter1.tex").write_text("years of work")
    with pytest.raises(InputError, match="not a thawdetect run"):
        Engine(_config(scene), thesis, _host(), overwrite=True)
    assert (thesis / "chapter1.tex").read_text() == "years of work"

    run = tmp_path / "run"
    Engine(_config(scene, max_iterations=1), run, _host()).run()
    before = sorted(p.name for p in run.iterdir())
    bad = _config(scene).model_copy(update={"detectors": {"nosuch": {}}})
    with pytest.raises(InputError, match="unknown detector"):
        Engine(bad, run, _host(), overwrite=True)
    missing = _config(scene, toy_a={"raster": str(tmp_path / "gone.tif")})
    with pytest.raises(InputError, match=r"gone\.tif: file does not exist"):
        Engine(missing, run, _host(), overwrite=True)
    assert sorted(p.name for p in run.iterdir()) == before
    # a real run is replaced when the new configuration checks out
    Engine(_config(scene, min_mapping_unit_ha=1.0), run, _host(), overwrite=True)
    assert json.loads((run / "manifest.json").read_text())["run_config"]["min_mapping_unit_ha"] == 1
    assert not (run / "ledger.gpkg").exists()


# -- 2. accuracy --run uses the label column and the run's own validation file ---------------------


def test_accuracy_cli_on_a_run_gives_the_runs_own_answer(scene, tmp_path):
    val = _validation(scene, tmp_path / "val.gpkg")
    cfg = _config(scene, max_iterations=1).model_copy(update={"validation": val})
    run = tmp_path / "run"
    result = Engine(cfg, run, _host()).run()
    own = result.accuracy_scores.scores["overall"]
    assert own["n_negatives"] == 1 and own["n"] == 6  # the look-alike is a checked negative
    for args in (["--validation", val], []):
        res = _invoke("accuracy", "--run", run, *args, "--json", "-")
        assert res.exit_code == 0, res.output
        cli_overall = json.loads(res.output)["overall"]
        for key in ("tp", "fp", "fn", "n", "tpr", "fpr", "fnr"):
            assert cli_overall[key] == own[key], key


# -- 3. inventory export layer names and format/suffix clash ---------------------------------------


@pytest.fixture
def finished_run(scene, tmp_path) -> Path:
    run = tmp_path / "run"
    Engine(_config(scene, max_iterations=1), run, _host()).run()
    return run


def test_export_layer_names_are_not_temp_names(finished_run, tmp_path):
    for name, extra in (("x.geojson", []), ("arts.geojson", ["--arts"]), ("y.gpkg", [])):
        res = _invoke("inventory", "export", finished_run, tmp_path / name, *extra)
        assert res.exit_code == 0, res.output
        layers = [str(n) for n, _ in pyogrio.list_layers(tmp_path / name)]
        expected = "inventory" if name.endswith(".gpkg") else Path(name).stem
        assert layers == [expected]
    assert not list(tmp_path.glob(".*.tmp*"))
    res = _invoke("inventory", "export", finished_run, tmp_path / "z.gpkg", "--format", "csv")
    assert res.exit_code == 1 and "does not match the file suffix" in res.output
    assert not (tmp_path / "z.gpkg").exists()


# -- 4. accuracy reads thawdetect's own CSV export -------------------------------------------------


def test_accuracy_reads_our_csv_export(scene, finished_run, tmp_path):
    val = _validation(scene, tmp_path / "val.gpkg")
    figures = {}
    for name in ("inv.gpkg", "inv.csv"):
        assert _invoke("inventory", "export", finished_run, tmp_path / name).exit_code == 0
        res = _invoke(
            "accuracy", "--detections", tmp_path / name, "--validation", val, "--json", "-"
        )
        assert res.exit_code == 0, res.output
        figures[name] = json.loads(res.output)
    assert figures["inv.csv"]["tp"] == figures["inv.gpkg"]["tp"] == 3
    for key in ("tp", "fp", "fn", "n", "n_detections"):
        assert figures["inv.csv"].get(key) == figures["inv.gpkg"].get(key)


# -- 5 / 6. one line instead of tracebacks; bad input found before anything is written -------------


def test_missing_input_leaves_no_run_dir_and_corrected_rerun_works(scene, tmp_path):
    run = tmp_path / "run"
    bad = _config(scene, toy_a={"raster": str(tmp_path / "typo.tif")})
    with pytest.raises(InputError, match=r"typo\.tif: file does not exist"):
        Engine(bad, run, _host())
    assert not run.exists()
    assert Engine(_config(scene, max_iterations=1), run, _host()).run().status == "finished"


def test_reviewer_checked_before_iteration_one(scene, tmp_path):
    cfg = _config(scene).model_copy(update={"reviewer": f"reference:{tmp_path / 'gone.gpkg'}"})
    with pytest.raises(InputError, match=r"gone\.gpkg"):
        Engine(cfg, tmp_path / "run", _host())
    assert not (tmp_path / "run").exists()
    cfg = _config(scene).model_copy(update={"reviewer": "bogus"})
    with pytest.raises(ConfigError, match="reviewer 'bogus' is not understood"):
        Engine(cfg, tmp_path / "run", _host())
    assert not (tmp_path / "run").exists()


def test_different_config_names_the_keys(scene, tmp_path):
    Engine(_config(scene, max_iterations=1), tmp_path / "run", _host()).run()
    changed = _config(scene, min_mapping_unit_ha=1.0, toy_a={"schedule": [0.9]})
    with pytest.raises(ConfigError) as exc:
        Engine(changed, tmp_path / "run", _host())
    msg = str(exc.value)
    assert "min_mapping_unit_ha: 0.05 -> 1.0" in msg
    assert "detectors.toy_a.schedule: (unset) -> [0.9]" in msg
    assert "\n" not in msg
    from thawdetect.core.run.engine import config_differences

    assert config_differences({"a": {"b": 1}}, {"a": {"b": 1}}) == []


def test_corrupt_ledger_is_one_line(finished_run, scene):
    with open(finished_run / "ledger.gpkg", "r+b") as fh:
        fh.seek(4096)
        fh.write(b"\x00garbage" * 2048)
    with pytest.raises(InputError, match="run ledger is corrupt"):
        Engine(_config(scene, max_iterations=1), finished_run, _host())


def test_review_decide_illegal_value_is_one_line_exit_1(finished_run):
    res = _invoke("review", "decide", finished_run, "it01-0001", "maybe")
    assert res.exit_code == 1
    assert len(res.output.strip().splitlines()) == 1, res.output


# -- 8. plugins reports what insar_sbas needs; the insar extra installs it -------------------------


def test_insar_dependencies_reported_and_in_the_extra():
    res = CliRunner().invoke(cli, ["plugins", "--json"])
    info = {p["name"]: p for p in json.loads(res.output)}
    deps = set(info["insar_sbas"]["dependencies"])
    assert deps == {"h5py", "xdem"}
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    names = {r.split("=")[0].split(">")[0].split("[")[0].strip() for r in extras["insar"]}
    assert deps <= names


# -- 9. registration goes through pluggy -----------------------------------------------------------


class _SpecnameConfig(DetectorConfig):
    pass


class _SpecnameDetector(Detector):
    name = "via_specname"
    config_model = _SpecnameConfig


class _UnmarkedDetector(Detector):
    name = "unmarked"
    config_model = _SpecnameConfig


class _Plugin:
    @hookimpl(specname="thawdetect_register_detectors")
    def add_mine(self, register):
        register(_SpecnameDetector)

    def thawdetect_register_regions(self, register):  # not marked: must not be called
        raise AssertionError("an unmarked method was used as a hook implementation")

    def thawdetect_register_samples(self, register):  # not marked either
        register("unmarked", lambda out: None)


def test_registration_through_pluggy_hookimpls():
    host = PluginHost(plugins=[("mine", _Plugin())])
    assert host.detectors["via_specname"] is _SpecnameDetector
    assert host.detector_plugin("via_specname") == "mine"
    assert "unmarked" not in host.samples


# -- 10. fail loudly -------------------------------------------------------------------------------


def test_evidence_import_error_fails_the_stage(scene, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "thawdetect.core.review.evidence", None)
    cfg = _config(scene, max_iterations=1, evidence=True)
    with pytest.raises(PluginError, match="review evidence cannot be made"):
        Engine(cfg, tmp_path / "run", _host()).run()
    assert not Ledger(tmp_path / "run").stage_done(1, "evidence")


def test_command_module_that_fails_to_import_is_one_line(monkeypatch):
    broken = (*cli_main.CORE_COMMANDS, ("thawdetect.cli.no_such_cmd", "nothing"))
    monkeypatch.setattr(cli_main, "CORE_COMMANDS", broken)
    monkeypatch.setattr(cli, "_thawdetect_built", False, raising=False)
    res = CliRunner().invoke(cli, ["accuracy", "--help"])
    assert res.exit_code == 1
    assert res.output.strip().count("\n") == 0
    assert "command module thawdetect.cli.no_such_cmd failed to import" in res.output


# -- 11. URIs stay strings end to end --------------------------------------------------------------


def test_uris_survive_the_config():
    cfg = RunConfig(validation="s3://bucket/v.gpkg", known_inventory="/vsizip/a.zip/k.shp")
    assert cfg.validation == "s3://bucket/v.gpkg"
    assert cfg.model_dump(mode="json")["known_inventory"] == "/vsizip/a.zip/k.shp"
    assert InputError("https://h/x.tif", "bad").path == "https://h/x.tif"


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with HTTP Range support (what GDAL's /vsicurl/ asks for)."""

    def log_message(self, *args):  # quiet
        pass

    def send_head(self):
        path = Path(self.translate_path(self.path))
        rng = self.headers.get("Range")
        if not rng or not path.is_file():
            return super().send_head()
        data = path.read_bytes()
        start_s, _, end_s = rng.removeprefix("bytes=").partition("-")
        start = int(start_s)
        end = min(int(end_s) if end_s else len(data) - 1, len(data) - 1)
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        import io

        return io.BytesIO(data[start : end + 1])


@pytest.fixture
def http_dir(tmp_path, monkeypatch):
    root = tmp_path / "www"
    root.mkdir()

    def handler(*a, **k):
        return _RangeHandler(*a, directory=str(root), **k)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR")
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_vsicurl_cog_and_vsizip_inputs_run_end_to_end(scene, tmp_path, http_dir):
    root, url = http_dir
    with rasterio.open(scene["a"]) as src:
        arr, profile = src.read(1), src.profile
    profile.update(driver="COG", blocksize=64)
    profile.pop("blockxsize", None), profile.pop("blockysize", None), profile.pop("tiled", None)
    with rasterio.open(root / "a_cog.tif", "w", **profile) as dst:
        dst.write(arr, 1)
    raster_uri = f"/vsicurl/{url}/a_cog.tif"
    val = _validation(scene, tmp_path / "val.gpkg")
    with zipfile.ZipFile(tmp_path / "val.zip", "w") as zf:
        zf.write(val, "points/val.gpkg")
    val_uri = f"/vsizip/{tmp_path / 'val.zip'}/points/val.gpkg"
    cfg = _config(scene, max_iterations=1, toy_a={"raster": raster_uri})
    cfg = cfg.model_copy(update={"validation": val_uri})
    run = tmp_path / "run"
    result = Engine(cfg, run, _host()).run()
    assert result.iterations["newly_confirmed"].tolist() == [3]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["iterations"]["1"]["toy_a"]["raster"] == raster_uri
    assert manifest["files"]["validation"] == [val_uri]
    assert result.accuracy_scores.scores["overall"]["tp"] == 3
    res = _invoke("accuracy", "--run", run, "--validation", val_uri, "--json", "-")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["overall"]["tp"] == 3


# -- 13. cache directory from platformdirs ---------------------------------------------------------


def test_cache_dir_comes_from_platformdirs(monkeypatch, tmp_path):
    import platformdirs

    monkeypatch.delenv("THAWDETECT_CACHE_DIR", raising=False)
    fake = tmp_path / "AppData" / "Local" / "thawdetect" / "Cache"
    monkeypatch.setattr(platformdirs, "user_cache_dir", lambda *a, **k: str(fake))
    assert cache_dir() == fake
    monkeypatch.setenv("THAWDETECT_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"


# -- habits: run log, -v, table width, Wilson interval from scipy ----------------------------------


class _Noisy:
    @hookimpl
    def thawdetect_candidates_proposed(self, detector, iteration, candidates, context):
        warnings.warn("toy warning from a plugin", UserWarning, stacklevel=1)
        logging.getLogger("rasterio.noisy").warning("a library warning")
        logging.getLogger("rasterio.noisy").info("library chatter that must not be logged")


@pytest.mark.filterwarnings("default::UserWarning")
def test_run_log_has_timings_and_every_warning(scene, tmp_path):
    host = PluginHost(plugins=[("toy", toy_detectors), ("noisy", _Noisy())])
    Engine(_config(scene, max_iterations=1), tmp_path / "run", host).run()
    text = (tmp_path / "run" / "run.log").read_text()
    assert "INFO" in text and "iteration 1, stage propose:toy_a:" in text
    assert "iteration 1, stage update:" in text and "stopped: reached max_iterations" in text
    assert "toy warning from a plugin" in text
    assert "a library warning" in text
    assert "library chatter" not in text


def test_verbose_raises_only_thawdetect_loggers():
    for name in ("rasterio", "h5py", "matplotlib"):
        logging.getLogger(name).setLevel(logging.NOTSET)
    res = CliRunner().invoke(cli, ["-vv", "regions"])
    assert res.exit_code == 0
    assert logging.getLogger("thawdetect.core").getEffectiveLevel() == logging.DEBUG
    for name in ("rasterio", "h5py", "matplotlib"):
        assert logging.getLogger(name).getEffectiveLevel() >= logging.WARNING, name
    CliRunner().invoke(cli, ["regions"])
    assert logging.getLogger("thawdetect.core").getEffectiveLevel() == logging.WARNING


def test_iterations_table_fits_100_columns():
    insar = {
        "elevation_m": "3600-4000",
        "slope_deg": "10-35",
        "aspect_deg": "0-90,270-360",
        "abs_rate_mm_yr": ">=50",
    }
    optical = {"threshold": ">=0.50", "train_chips": "1240", "val_iou": "0.731", "epochs": "25"}
    rows = [
        {
            "iteration": k,
            "detectors": "insar_sbas,optical_dl",
            "training_positives": 1000 + k,
            "training_negatives": 200 + k,
            "candidates_proposed": 3000 + k,
            "candidates_reviewed": 2500 + k,
            "newly_confirmed": 100 + k,
            "rejected": 50 + k,
            "inventory_size": 4000 + k,
            "thresholds_json": json.dumps({"insar_sbas": insar, "optical_dl": optical}),
        }
        for k in range(1, 6)
    ]
    console = Console(width=100, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(iterations_table(pd.DataFrame(rows)))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "…" not in text
    for value in [*insar.values(), *optical.values(), "4005", "3005"]:
        assert value in text, value


def test_wilson_interval_is_scipys():
    from scipy.stats import binomtest

    from thawdetect.core.accuracy import wilson_interval

    for k, n in ((14, 15), (0, 15), (15, 15), (3, 7), (130, 1000)):
        ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        lo, hi = wilson_interval(k, n)
        assert lo == pytest.approx(ci.low, abs=1e-12) and hi == pytest.approx(ci.high, abs=1e-12)


# -- issue 12 item 4: inputs that changed ----------------------------------------------------------


def test_changed_input_continues_a_finished_run_as_a_new_iteration(scene, tmp_path):
    run = tmp_path / "run"
    cfg = _config(scene, toy_a={"schedule": [0.8, 0.5]})
    first = Engine(cfg, run, _host()).run()
    assert first.iterations["iteration"].tolist() == [1, 2]
    decided_before = Ledger(run).read("decisions")
    # the raster gains a new bright slump (as a MintPy stack gains epochs), also in the reference
    with rasterio.open(scene["a"], "r+") as dst:
        arr = dst.read(1)
        arr[40:48, 85:93] = 0.95
        dst.write(arr, 1)
    new = Point(ORIGIN[0] + 89 * RES, ORIGIN[1] - 44 * RES).buffer(40)
    ref = gpd.read_file(scene["ref"])
    gpd.GeoDataFrame(
        pd.concat([ref, gpd.GeoDataFrame({"name": ["new"]}, geometry=[new], crs=CRS)]),
        crs=CRS,
    ).to_file(scene["ref"])
    said: list[str] = []
    engine = Engine(cfg, run, _host(), echo=said.append)
    changed = [s for s in said if s.startswith("input changed:")]
    assert len(changed) == 1 and str(scene["a"]) in changed[0]
    assert any("continuing as iteration 3" in s for s in said)
    second = engine.run()
    it = second.iterations.sort_values("iteration")
    assert it["iteration"].tolist() == [1, 2, 3]
    assert it.loc[it["iteration"] == 3, "newly_confirmed"].item() == 1
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["iterations"]["3"]["toy_a"]["index"] == 1  # the last effective config
    assert manifest["input_updates"][0]["continues_as_iteration"] == 3
    decisions = Ledger(run).read("decisions")
    earlier = decisions[decisions["iteration"] < 3]
    assert len(earlier) == len(decided_before)  # reviewed work was not redone
    # nothing changed since: a re-run neither says so nor adds an iteration
    said.clear()
    third = Engine(cfg, run, _host(), echo=said.append).run()
    assert not [s for s in said if "changed" in s]
    assert third.iterations["iteration"].tolist() == [1, 2, 3]


def test_yaml_written_config_round_trips(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"region": "qilian", "validation": "s3://b/v.gpkg"}))
    from thawdetect.core.config import load_run_config

    assert load_run_config(path).validation == "s3://b/v.gpkg"
