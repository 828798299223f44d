"""Nothing a detector returns can break a run (issue 22): real rasters, ledger and review.

``tests/plugins/misbehaving_detectors.py`` thresholds a raster like ``toy_a`` and then damages its
answer on purpose. Through the real engine, each damage is either repaired (another known CRS
reprojected, invalid geometries made valid, empty ones dropped, each with a warning) and the run
gives the same inventory as the undamaged detector, or refused in one line that names the
detector and its plugin, with nothing of the answer in the ledger: once the plugin is fixed, the
same run resumes and finishes as if nothing had happened.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry import Point, box
from tests.plugins import misbehaving_detectors
from tests.plugins.misbehaving_detectors import Misbehaving
from tests.test_core_engine import CRS, ORIGIN, RES, _write

from thawdetect import IterationContext, validate_candidates
from thawdetect.core.config import RunConfig
from thawdetect.core.errors import PluginError, ThawdetectWarning
from thawdetect.core.plugin_api.host import PluginHost
from thawdetect.core.regions import Region
from thawdetect.core.run import engine as engine_module
from thawdetect.core.run.engine import Engine
from thawdetect.core.run.ledger import Ledger

#: (row, col) of the disks above the threshold; all real landslides
DISKS = [(15, 15), (15, 45), (45, 15), (45, 45)]


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("scene")
    n = 60
    yy, xx = np.mgrid[0:n, 0:n]
    arr = np.random.default_rng(0).uniform(0, 0.2, (n, n))
    truth = []
    for r, c in DISKS:
        arr[(yy - r) ** 2 + (xx - c) ** 2 <= 25] = 0.9
        truth.append(Point(ORIGIN[0] + (c + 0.5) * RES, ORIGIN[1] - (r + 0.5) * RES).buffer(50))
    raster = _write(tmp / "a.tif", arr)
    ref = tmp / "reference.gpkg"
    gpd.GeoDataFrame({"name": list("abcd")}, geometry=truth, crs=CRS).to_file(ref)
    return {"raster": raster, "ref": ref}


def _config(scene: dict[str, Path], defect: str, region: Region | None = None) -> RunConfig:
    return RunConfig(
        region=region or Region(name="toy", crs=CRS),
        detectors={"misbehaving": {"raster": str(scene["raster"]), "defect": defect}},
        reviewer=f"reference:{scene['ref']}",
        evidence=False,
    )


def _run(scene: dict[str, Path], run: Path, defect: str, lines: list[str] | None = None):
    host = PluginHost(plugins=[("bad", misbehaving_detectors)])
    echo = lines.append if lines is not None else None
    return Engine(_config(scene, defect), run, host, echo=echo).run()


REFUSED = {
    "wrong_crs": "is in degrees, but their coordinates reach",
    "wrong_crs_mercator": "far outside where EPSG:32646 is used",
    "far_away": "far outside where EPSG:32646 is used",
    "no_crs": "have no CRS",
    "points": "must be Polygon or MultiPolygon; 4 of 4 are Point",
    "some_lines": "are GeometryCollection, LineString",
    "not_a_frame": "must return a GeoDataFrame, not list",
    "none_returned": "must return a GeoDataFrame, not None",
    "plain_dataframe": "must return a GeoDataFrame, not DataFrame",
    "text_score": "'score' must be numbers: 1 of 4 values are not (e.g. 'high')",
    "nan_score": "'score' must be finite: 1 of 4",
    "no_score": "lack a 'score' column",
    "duplicate_columns": "duplicate columns: mean_value",
    "engine_columns": "must not set candidate_id",
}


@pytest.mark.parametrize("defect", sorted(REFUSED))
def test_refused_in_one_line_then_resumes_once_fixed(scene, tmp_path, monkeypatch, defect):
    run = tmp_path / "run"
    with pytest.raises(PluginError) as err:
        _run(scene, run, defect)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("detector 'misbehaving' (plugin 'bad'): ")
    assert REFUSED[defect] in msg
    # nothing of the refused answer is in the ledger; the traceback-free line is in run.log
    ledger = Ledger(run)
    assert len(ledger.read("proposals")) == 0
    assert not ledger.stage_done(1, "propose:misbehaving")
    assert REFUSED[defect] in (run / "run.log").read_text()
    # the author fixes the plugin; the same run (same config) resumes and finishes
    monkeypatch.setattr(Misbehaving, "fixed", True)
    result = _run(scene, run, defect)
    assert result.status == "finished"
    assert result.iterations["newly_confirmed"].tolist() == [len(DISKS)]
    assert Ledger(run).integrity_check()


REPAIRED = {
    "none": None,
    "other_crs": None,
    "z_coordinates": None,
    "duplicate_index": None,
    "geometry_name": None,
    "nan_evidence": None,
    "odd_evidence": None,
    "invalid": "repaired 1 invalid geometries (make_valid changed their area by more than 1 %)",
    "empty_geometries": "dropped 3 candidates with an empty or missing geometry",
}


@pytest.mark.parametrize("defect", sorted(REPAIRED))
def test_repaired_or_harmless_runs_to_the_same_inventory(scene, tmp_path, defect):
    lines: list[str] = []
    result = _run(scene, tmp_path / "run", defect, lines)
    assert result.status == "finished"
    warned = [ln for ln in lines if "warning:" in ln]
    if REPAIRED[defect] is None:
        assert warned == []
        assert result.iterations["newly_confirmed"].tolist() == [len(DISKS)]
    else:
        assert warned == [f"  warning: detector 'misbehaving' (plugin 'bad'): {REPAIRED[defect]}"]
        assert REPAIRED[defect] in (tmp_path / "run" / "run.log").read_text()
    props = Ledger(tmp_path / "run").read("proposals")
    assert set(props.geom_type) <= {"Polygon", "MultiPolygon"}
    assert props.geometry.is_valid.all()
    assert not shapely.has_z(props.geometry.values).any()
    assert np.isfinite(props.total_bounds).all()
    # stored in the working CRS, where the raster is, whatever CRS the detector used
    x0, y0, x1, y1 = props.total_bounds
    assert ORIGIN[0] <= x0 and x1 <= ORIGIN[0] + 600 and ORIGIN[1] - 600 <= y0 and y1 <= ORIGIN[1]


def test_a_ledger_with_unusable_proposals_resumes_once_fixed(scene, tmp_path, monkeypatch):
    """A run written without the check (what versions before issue 22 stored: POINT (Infinity
    Infinity) from a wrong CRS) could never resume; now its bad proposals are removed with one
    line naming the detector, and the fixed plugin proposes again."""

    def unchecked(gdf, detector, target_crs=None, **kw):  # the old check: reproject blindly
        return gdf.to_crs(target_crs).reset_index(drop=True)

    run = tmp_path / "run"
    monkeypatch.setattr(engine_module, "validate_candidates", unchecked)
    monkeypatch.setattr(Engine, "_check_proposals", lambda self, k, props: None)
    # the old merge died deep inside shapely on the infinite coordinates: GEOS's own error, or
    # (with warnings as errors, as this suite runs) numpy's invalid-value warning before it
    with pytest.raises(
        (RuntimeWarning, shapely.errors.GEOSException), match=r"invalid|GEOS|Infinity"
    ):
        _run(scene, run, "wrong_crs")
    assert Ledger(run).stage_done(1, "propose:misbehaving")
    monkeypatch.undo()
    with pytest.raises(PluginError, match=r"detector\(s\) misbehaving have unusable geometries"):
        _run(scene, run, "wrong_crs")
    assert not Ledger(run).stage_done(1, "propose:misbehaving")
    assert len(Ledger(run).read("proposals")) == 0
    monkeypatch.setattr(Misbehaving, "fixed", True)
    result = _run(scene, run, "wrong_crs")
    assert result.status == "finished"
    assert result.iterations["newly_confirmed"].tolist() == [len(DISKS)]


def test_far_outside_the_region_aoi_is_refused(scene, tmp_path):
    """With an AOI, candidates more than 100 km from it are refused (a wrong region or offset)."""
    far = Region(name="elsewhere", bbox_wgs84=(95.0, 30.0, 95.5, 30.5), crs=CRS)
    host = PluginHost(plugins=[("bad", misbehaving_detectors)])
    with pytest.raises(PluginError, match="more than 100 km outside region 'elsewhere'"):
        Engine(_config(scene, "none", far), tmp_path / "run", host).run()
    near = Region(name="here", bbox_wgs84=(91.8, 34.7, 92.0, 34.9), crs=CRS)
    result = Engine(_config(scene, "none", near), tmp_path / "run2", host).run()
    assert result.iterations["newly_confirmed"].tolist() == [len(DISKS)]


class TestValidateCandidates:
    """The public check on its own (as a plugin's tests use it)."""

    def _frame(self, **kw) -> gpd.GeoDataFrame:
        data = {"score": [1.0, 2.0], **kw}
        return gpd.GeoDataFrame(data, geometry=[box(0, 0, 10, 10), box(20, 0, 30, 10)], crs=CRS)

    def test_repairs_warn_without_a_callback(self):
        gdf = self._frame()
        gdf.loc[1, "geometry"] = shapely.Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])
        with pytest.warns(ThawdetectWarning, match="repaired 1 invalid geometries"):
            out = validate_candidates(gdf, "mine", CRS)
        assert out.geometry.is_valid.all()
        assert set(out.geom_type) <= {"Polygon", "MultiPolygon"}

    def test_collapsed_geometry_is_dropped(self):
        gdf = self._frame()
        gdf.loc[1, "geometry"] = shapely.Polygon([(0, 0), (10, 10), (20, 20), (0, 0)])
        seen: list[str] = []
        out = validate_candidates(gdf, "mine", CRS, warn=seen.append)
        assert len(out) == 1
        assert seen == ["detector 'mine': dropped 1 invalid geometries without area"]

    def test_score_numbers_as_text_are_numbers(self):
        out = validate_candidates(self._frame(score=["1", "2.5"]), "mine", CRS)
        assert out["score"].tolist() == [1.0, 2.5]

    def test_non_text_column_names_become_text(self):
        gdf = self._frame()
        gdf[7] = [1, 2]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = validate_candidates(gdf, "mine", CRS)
        assert "7" in out.columns

    def test_empty_frame_without_crs_gets_the_working_crs(self):
        gdf = gpd.GeoDataFrame({"score": []}, geometry=gpd.GeoSeries([]))
        out = validate_candidates(gdf, "mine", CRS)
        assert out.crs == CRS and len(out) == 0


def test_a_plugin_that_raises_leaves_status_failed_and_its_traceback_in_run_log(
    scene, tmp_path, monkeypatch
):
    def broken(self, context):
        raise ZeroDivisionError("division by zero in my_plugin")

    monkeypatch.setattr(Misbehaving, "propose", broken)
    run = tmp_path / "run"
    with pytest.raises(PluginError) as err:
        _run(scene, run, "none")
    assert "\n" not in str(err.value)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["stop_reason"] == str(err.value)
    assert "failed in propose at iteration 1: ZeroDivisionError" in manifest["stop_reason"]
    log = (run / "run.log").read_text()
    assert "Traceback (most recent call last)" in log
    assert 'raise ZeroDivisionError("division by zero in my_plugin")' in log
    monkeypatch.undo()
    result = _run(scene, run, "none")
    assert result.status == "finished"
    assert json.loads((run / "manifest.json").read_text())["status"] == "finished"


def test_standalone_context_creates_work_dir(tmp_path):
    region = Region(name="toy", crs=CRS)
    host = PluginHost(plugins=[("bad", misbehaving_detectors)])
    ctx = IterationContext.standalone(region, tmp_path / "run", host=host, iteration=2)
    assert ctx.work_dir == tmp_path / "run" / "it2" and ctx.work_dir.is_dir()
    own = IterationContext.standalone(region, tmp_path, host=host, work_dir=tmp_path / "a" / "b")
    assert own.work_dir.is_dir()
