"""The iteration engine end to end: real rasters, real ledger, real reference review."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import Point
from tests.plugins import toy_detectors

from thawdetect.core.config import RunConfig
from thawdetect.core.errors import ConfigError, InputError, PluginError
from thawdetect.core.plugin_api.host import PluginHost
from thawdetect.core.regions import Region
from thawdetect.core.run.engine import Engine
from thawdetect.core.run.ledger import Ledger
from thawdetect.core.run.merge import merge_candidates

CRS = "EPSG:32646"
RES = 10.0
ORIGIN = (400_000.0, 3_850_000.0)
# (row, col, radius px, value in A, value in B, real slump?)
BLOBS = [
    (20, 20, 5, 0.95, 0.9, True),
    (20, 70, 5, 0.9, 0.0, True),
    (70, 20, 5, 0.6, 0.7, True),
    (70, 70, 5, 0.55, 0.0, False),  # look-alike: rejected
    (45, 45, 4, 0.35, 0.0, True),
    (90, 90, 1, 0.9, 0.0, True),  # 3x3 px = 0.09 ha: kept; 1 px would fall under the MMU
    (5, 95, 0, 0.9, 0.0, True),  # a single 10 m pixel = 0.01 ha: below the 0.05 ha MMU
]


def _write(path: Path, arr: np.ndarray) -> Path:
    profile = dict(
        driver="GTiff",
        width=arr.shape[1],
        height=arr.shape[0],
        count=1,
        dtype="float32",
        crs=CRS,
        transform=from_origin(*ORIGIN, RES, RES),
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr.astype("float32"), 1)
    return path


@pytest.fixture
def scene(tmp_path: Path) -> dict[str, Path]:
    n = 100
    yy, xx = np.mgrid[0:n, 0:n]
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 0.2, (n, n))
    b = rng.uniform(0, 0.2, (n, n))
    truth = []
    for r, c, rad, va, vb, real in BLOBS:
        disk = (yy - r) ** 2 + (xx - c) ** 2 <= rad**2 if rad else (yy == r) & (xx == c)
        a[disk] = va
        if vb:
            b[disk] = vb
        if real:
            x = ORIGIN[0] + (c + 0.5) * RES
            y = ORIGIN[1] - (r + 0.5) * RES
            truth.append(Point(x, y).buffer(max(rad, 0.5) * RES))
    ref = tmp_path / "reference.gpkg"
    gpd.GeoDataFrame(
        {"name": [f"s{i}" for i in range(len(truth))]}, geometry=truth, crs=CRS
    ).to_file(ref)
    return {"a": _write(tmp_path / "a.tif", a), "b": _write(tmp_path / "b.tif", b), "ref": ref}


def _host() -> PluginHost:
    return PluginHost(plugins=[("toy", toy_detectors)])


def _config(scene: dict[str, Path], detectors=("toy_a",), **kw) -> RunConfig:
    sections = {"toy_a": {"raster": str(scene["a"])}, "toy_b": {"raster": str(scene["b"])}}
    return RunConfig(
        region=Region(name="toy", crs=CRS),
        detectors={d: {**sections[d], **kw.pop(d, {})} for d in detectors},
        reviewer=f"reference:{scene['ref']}",
        evidence=kw.pop("evidence", False),
        **kw,
    )


class TestLoop:
    def test_multi_iteration_reaches_stop_rule(self, scene, tmp_path):
        result = Engine(_config(scene), tmp_path / "run", _host()).run()
        assert result.status == "finished"
        assert result.stop_reason == "every detector finished its schedule"
        it = result.iterations.sort_values("iteration")
        assert it["iteration"].tolist() == [1, 2, 3]
        # >=0.8: blobs 0, 1, 5 (6 is under the MMU); >=0.5: + blobs 2 and 3 (look-alike);
        # >=0.3: + blob 4.
        assert it["newly_confirmed"].tolist() == [3, 1, 1]
        assert it["rejected"].tolist() == [0, 1, 0]
        assert it["inventory_size"].tolist() == [3, 4, 5]
        assert it["training_positives"].tolist() == [0, 3, 4]
        assert it["training_negatives"].tolist() == [0, 0, 1]
        assert json.loads(it["thresholds_json"].iloc[0]) == {"toy_a": {"threshold": ">=0.8"}}
        ledger = Ledger(tmp_path / "run")
        cands = ledger.read("candidates")
        assert (cands["area_ha"] >= 0.05).all()
        assert set(cands["status"]) == {"confirmed", "rejected"}
        # candidates of earlier iterations are not proposed again for review
        assert cands.groupby("iteration").size().tolist() == [3, 2, 1]
        assert ledger.integrity_check()
        manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
        assert manifest["status"] == "finished"
        assert str(scene["a"]) in manifest["input_checksums"]
        assert manifest["iterations"]["4"] == {"toy_a": None}

    def test_nothing_new_stops(self, scene, tmp_path):
        cfg = _config(scene, toy_a={"schedule": [0.8, 0.8, 0.8]})
        result = Engine(cfg, tmp_path / "run", _host()).run()
        assert result.stop_reason == "iteration 2 confirmed nothing new"

    def test_schedule_detector_goes_on_after_nothing_new(self, scene, tmp_path):
        cfg = _config(scene, max_iterations=5)
        cfg = cfg.model_copy(
            update={
                "detectors": {
                    "toy_schedule": {"raster": str(scene["a"]), "schedule": [2.0, 2.0, 0.8]}
                }
            }
        )
        result = Engine(cfg, tmp_path / "run", _host()).run()
        assert result.iterations["newly_confirmed"].tolist() == [0, 0, 3]
        assert result.stop_reason == "every detector finished its schedule"

    def test_max_iterations(self, scene, tmp_path):
        result = Engine(_config(scene, max_iterations=1), tmp_path / "run", _host()).run()
        assert result.stop_reason == "reached max_iterations (1)"

    def test_two_detectors_merge_and_carry_both_evidences(self, scene, tmp_path):
        cfg = _config(scene, detectors=("toy_a", "toy_b"), max_iterations=1)
        Engine(cfg, tmp_path / "run", _host()).run()
        cands = Ledger(tmp_path / "run").read("candidates")
        both = cands[cands["n_detectors"] == 2]
        assert len(both) == 1  # blob 0 is the one bright in A and B at >= 0.8
        ev = json.loads(both["evidence_json"].iloc[0])
        assert set(ev) == {"toy_a", "toy_b"}
        assert both["toy_a__mean_value"].iloc[0] == pytest.approx(0.95, abs=1e-6)
        assert both["toy_b__mean_value"].iloc[0] == pytest.approx(0.9, abs=1e-6)
        assert both["detectors"].iloc[0] == "toy_a,toy_b"

    def test_manual_review_pauses_and_resumes(self, scene, tmp_path):
        cfg = _config(scene).model_copy(update={"reviewer": "manual"})
        run = tmp_path / "run"
        first = Engine(cfg, run, _host()).run()
        assert first.status == "awaiting review"
        assert first.pending == 3
        ledger = Ledger(run)
        ids = ledger.read("candidates")["candidate_id"].tolist()
        with ledger.transaction() as t:
            t.record_decisions(
                pd.DataFrame(
                    {
                        "candidate_id": ids,
                        "decision": ["confirmed", "rejected", "unsure"],
                        "reviewer": "ana",
                    }
                )
            )
        second = Engine(cfg, run, _host()).run()
        assert second.status == "awaiting review"  # iteration 2 now waits
        it = second.iterations
        assert it.loc[it["iteration"] == 1, "newly_confirmed"].item() == 1
        assert it.loc[it["iteration"] == 1, "rejected"].item() == 1


class TestResume:
    def test_killed_run_resumes_to_identical_inventory(self, scene, tmp_path):
        reference = Engine(_config(scene), tmp_path / "ref", _host()).run()
        assert reference.status == "finished"
        flag = tmp_path / "killed.flag"
        script = tmp_path / "run.py"
        script.write_text(
            textwrap.dedent(f"""
            import sys
            sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
            from tests.plugins import toy_detectors
            from thawdetect.core.config import RunConfig
            from thawdetect.core.run.engine import Engine
            from thawdetect.core.plugin_api.host import PluginHost
            cfg = RunConfig.model_validate_json({_config(scene).model_dump_json()!r})
            cfg.detectors["toy_a"].update(kill_at_iteration=2, kill_flag={str(flag)!r})
            host = PluginHost(plugins=[("toy", toy_detectors)])
            print(Engine(cfg, {str(tmp_path / "run")!r}, host).run().status)
        """)
        )
        killed = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
        assert killed.returncode == -9, killed.stderr
        assert flag.exists()
        ledger = Ledger(tmp_path / "run")
        assert ledger.integrity_check()
        assert ledger.stage_done(1, "update") and not ledger.stage_done(2, "propose:toy_a")
        again = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
        assert again.returncode == 0, again.stderr
        assert "finished" in again.stdout
        a = Ledger(tmp_path / "ref").read("inventory").sort_values("inventory_id")
        b = ledger.read("inventory").sort_values("inventory_id")
        assert a["inventory_id"].tolist() == b["inventory_id"].tolist()
        assert np.allclose(a.geometry.area.to_numpy(), b.geometry.area.to_numpy())
        assert a.geometry.geom_equals(b.geometry.set_axis(a.index)).all()
        # iteration 1 was not redone: its decisions were recorded exactly once
        decisions = ledger.read("decisions")
        assert not decisions.duplicated(["candidate_id", "decision"]).any()

    def test_exception_in_transaction_leaves_ledger_untouched(self, tmp_path):
        ledger = Ledger(tmp_path, crs=CRS)
        with ledger.transaction() as t:
            t.mark_stage(1, "a")
        before = (tmp_path / "ledger.gpkg").read_bytes()
        with pytest.raises(RuntimeError), ledger.transaction() as t:
            t.mark_stage(1, "b")
            raise RuntimeError("killed")
        assert (tmp_path / "ledger.gpkg").read_bytes() == before
        assert not ledger.stage_done(1, "b")
        assert not list(tmp_path.glob(".ledger.*.tmp.gpkg"))


class TestBadInput:
    def test_plugin_raising_in_propose_names_it_and_keeps_ledger(self, scene, tmp_path):
        cfg = _config(scene, toy_a={"fail_at_iteration": 2})
        with pytest.raises(
            PluginError, match=r"detector 'toy_a' \(plugin 'toy'\) failed in propose"
        ):
            Engine(cfg, tmp_path / "run", _host()).run()
        ledger = Ledger(tmp_path / "run")
        assert ledger.integrity_check()
        assert ledger.stage_done(1, "update")
        assert len(ledger.read("inventory")) == 3

    def test_unknown_detector_lists_installed(self, scene, tmp_path):
        cfg = _config(scene).model_copy(update={"detectors": {"nope": {}}})
        with pytest.raises(
            InputError, match=r"unknown detector 'nope'; installed detectors: .*toy_a"
        ):
            Engine(cfg, tmp_path / "run", _host())

    def test_bad_detector_value_is_one_line(self, scene, tmp_path):
        cfg = _config(scene, toy_a={"schedul": [0.5]})
        with pytest.raises(ConfigError) as exc:
            Engine(cfg, tmp_path / "run", _host())
        assert "detectors.toy_a: schedul: Extra inputs are not permitted" in str(exc.value)
        assert "\n" not in str(exc.value)

    def test_changed_config_in_same_dir_refused(self, scene, tmp_path):
        Engine(_config(scene, max_iterations=1), tmp_path / "run", _host()).run()
        with pytest.raises(ConfigError, match="different configuration"):
            Engine(_config(scene, min_mapping_unit_ha=1.0), tmp_path / "run", _host())


def test_merge_candidates_unions_overlaps():
    from shapely.geometry import box

    gdf = gpd.GeoDataFrame(
        {"detector": ["a", "b", "a"], "score": [1.0, 50.0, 0.5], "x_m": [1, 2, 3]},
        geometry=[box(0, 0, 10, 10), box(5, 5, 15, 15), box(100, 100, 110, 110)],
        crs=CRS,
    )
    merged = merge_candidates(gdf, CRS)
    assert len(merged) == 2
    joint = merged[merged["n_detectors"] == 2].iloc[0]
    assert joint.geometry.area == pytest.approx(175.0)
    assert joint["a__x_m"] == 1 and joint["b__x_m"] == 2
