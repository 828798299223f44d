"""Downslope projection of LOS rates, checked against vectors worked out by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from thawdetect.core.errors import ConfigError, MissingBandError
from thawdetect.plugins.insar_sbas.config import InsarSbasConfig
from thawdetect.plugins.insar_sbas.downslope import (
    downslope_unit_vector,
    los_geometry,
    los_unit_vector,
    project_downslope,
)

# Sentinel-1, incidence 39°. MintPy azimuthAngle (ground -> satellite, from north anti-clockwise):
# ascending +100° (satellite to the west), descending -100° (to the east).
# u = (-sin39·sin φ, sin39·cos φ, cos39), sin39 = 0.62932, cos39 = 0.77715
U_ASC = (-0.62932 * 0.98481, 0.62932 * -0.17365, 0.77715)  # (-0.61976, -0.10928, 0.77715)
U_DESC = (0.62932 * 0.98481, 0.62932 * -0.17365, 0.77715)  # (+0.61976, -0.10928, 0.77715)
# s = (cos20·sin α, cos20·cos α, -sin20), cos20 = 0.93969, sin20 = 0.34202
S_EAST = (0.93969, 0.0, -0.34202)  # a 20° slope facing east (α = 90°)
S_WEST = (-0.93969, 0.0, -0.34202)  # facing west (α = 270°)
S_NORTH = (0.0, 0.93969, -0.34202)  # facing north (α = 0°)


def _dot(a, b):
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_unit_vectors_match_hand_computation():
    np.testing.assert_allclose(los_unit_vector(39.0, 100.0), U_ASC, atol=1e-4)
    np.testing.assert_allclose(los_unit_vector(39.0, -100.0), U_DESC, atol=1e-4)
    np.testing.assert_allclose(downslope_unit_vector(20.0, 90.0), S_EAST, atol=1e-5)
    np.testing.assert_allclose(downslope_unit_vector(20.0, 270.0), S_WEST, atol=1e-5)
    np.testing.assert_allclose(downslope_unit_vector(20.0, 0.0), S_NORTH, atol=1e-5)


@pytest.mark.parametrize(
    ("azimuth", "aspect", "u", "s", "cos_hand"),
    [
        (100.0, 90.0, U_ASC, S_EAST, -0.84818),  # ascending, slope faces away from the satellite
        (100.0, 270.0, U_ASC, S_WEST, 0.31658),  # ascending, slope faces the satellite
        (100.0, 0.0, U_ASC, S_NORTH, -0.36849),
        (-100.0, 90.0, U_DESC, S_EAST, 0.31658),  # descending: the roles swap
        (-100.0, 270.0, U_DESC, S_WEST, -0.84818),
        (-100.0, 0.0, U_DESC, S_NORTH, -0.36849),
    ],
)
def test_projection_ascending_and_descending(azimuth, aspect, u, s, cos_hand):
    assert _dot(u, s) == pytest.approx(cos_hand, abs=2e-4)
    d_mm_yr = 10.0  # moving 10 mm/yr downhill
    los = np.array([[d_mm_yr * cos_hand]])
    down, cos, unstable = project_downslope(
        los, np.array([[20.0]]), np.array([[aspect]]), 39.0, azimuth, min_cos=0.3
    )
    assert float(cos[0, 0]) == pytest.approx(cos_hand, abs=2e-4)
    assert not unstable[0, 0]
    assert float(down[0, 0]) == pytest.approx(d_mm_yr, rel=1e-3)


def test_unstable_projection_is_masked():
    los = np.array([[3.1658]])  # descending, east-facing: |cos| = 0.31658
    down, _, unstable = project_downslope(
        los, np.array([[20.0]]), np.array([[90.0]]), 39.0, -100.0, min_cos=0.35
    )
    assert unstable[0, 0] and np.isnan(down[0, 0])


def _scene_files(tmp_path):
    from thawdetect.plugins.insar_sbas.synthetic import make_scene, write_scene

    return write_scene(make_scene(seed=5, size_px=96, n_epochs=30, n_slides=4), tmp_path)


def test_geometry_without_angles_is_one_line(tmp_path):
    from thawdetect.plugins.insar_sbas.mintpy_h5 import mintpy_attrs_for_grid, write_mintpy_h5
    from thawdetect.plugins.insar_sbas.synthetic import make_scene

    scene = make_scene(seed=5, size_px=48, n_epochs=12, n_slides=1, n_adjacent_pairs=0)
    geom = write_mintpy_h5(
        tmp_path / "geometryGeo.h5",
        {"height": scene.dem_m},
        {"FILE_TYPE": "geometry", **mintpy_attrs_for_grid(scene.grid)},
    )
    cfg = InsarSbasConfig(rate_file=tmp_path / "r.tif", geometry_file=geom, downslope=True)
    with pytest.raises(MissingBandError) as exc:
        los_geometry(cfg, scene.grid)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(str(geom))
    assert "incidenceAngle or azimuthAngle" in msg and "downslope" in msg
    with pytest.raises(ConfigError, match="needs the LOS geometry"):
        los_geometry(InsarSbasConfig(rate_file=tmp_path / "r.tif", downslope=True), scene.grid)


def test_hyp3_look_vectors_convert_as_mintpy_does(tmp_path):
    from thawdetect.plugins.insar_sbas.rasters import write_geotiff
    from thawdetect.plugins.insar_sbas.synthetic import make_scene

    scene = make_scene(seed=5, size_px=32, n_epochs=12, n_slides=0, n_adjacent_pairs=0)
    g = scene.grid
    # HyP3: lv_theta = elevation of the look vector from horizontal, lv_phi = azimuth from east
    theta = np.full(g.shape, np.deg2rad(90 - 39.0), np.float32)
    phi = np.full(g.shape, np.deg2rad(100.0 + 90.0), np.float32)
    cfg = InsarSbasConfig(
        rate_file=tmp_path / "r.tif",
        lv_theta_file=write_geotiff(tmp_path / "t.tif", theta, g),
        lv_phi_file=write_geotiff(tmp_path / "p.tif", phi, g),
    )
    geom = los_geometry(cfg, g)
    np.testing.assert_allclose(geom.incidence_deg, 39.0, atol=1e-4)
    np.testing.assert_allclose(geom.azimuth_deg, 100.0, atol=1e-4)


def test_detector_thresholds_downslope_rates(tmp_path):
    from thawdetect.core.plugin_api.context import IterationContext
    from thawdetect.core.plugin_api.detector import validate_candidates
    from thawdetect.core.plugin_api.host import PluginHost

    paths = _scene_files(tmp_path / "scene")
    host = PluginHost()
    cfg = InsarSbasConfig(
        timeseries_file=paths["timeseries"],
        coherence_file=paths["coherence"],
        dem_file=paths["dem"],
        geometry_file=paths["geometry"],
        downslope=True,
        schedule_index=4,
    )
    ctx = IterationContext.standalone(host.region("qilian"), tmp_path / "run", host=host)
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    cands = validate_candidates(host.detector("insar_sbas")(cfg).propose(ctx), "insar_sbas")
    rec = json.loads((ctx.work_dir / "thresholds.json").read_text())
    assert rec["rate"] == "downslope"
    assert rec["downslope"]["geometry"].endswith("(incidenceAngle, azimuthAngle)")
    assert 0 < rec["downslope"]["unstable_fraction"] < 1
    assert (ctx.work_dir / "downslope_rate_mm_yr.tif").exists()
    # downslope motion is downhill: positive, at least the LOS rate in magnitude
    assert len(cands) and (cands["core_rate_mm_yr"] > 0).all()
