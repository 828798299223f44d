"""Readers and the insar_sbas detector on real MintPy / HyP3 products (../shared/data/insar)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.conftest import SHARED_DATA

from thawdetect.core.errors import GridMismatchError, InputError, MissingBandError
from thawdetect.core.grid import GridSpec
from thawdetect.core.plugin_api.context import IterationContext
from thawdetect.core.plugin_api.detector import validate_candidates
from thawdetect.core.plugin_api.host import PluginHost
from thawdetect.core.regions import Region
from thawdetect.plugins.insar_sbas.config import InsarSbasConfig
from thawdetect.plugins.insar_sbas.interferogram import read_unw_rate
from thawdetect.plugins.insar_sbas.mintpy_h5 import read_coherence, read_velocity
from thawdetect.plugins.insar_sbas.rasters import read_raster_on_grid

DATA = SHARED_DATA / "insar"
KIRI = DATA / "mintpy_alos2_kirishima"
CADIA = DATA / "mintpy_s1_cadia_geo"
HYP3 = DATA / "hyp3_int80_unw_aleutians"


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost()


def ctx(host, tmp: Path, region: Region) -> IterationContext:
    return IterationContext.standalone(region, tmp, host=host)


def test_kirishima_velocity_reader():
    v, grid, attrs = read_velocity(KIRI / "velocity.h5")
    assert grid.shape == (541, 541) and grid.crs.to_epsg() == 4326
    assert grid.transform.c == pytest.approx(130.8199074, abs=1e-6)
    assert np.nanmin(v) == pytest.approx(-56, abs=1.5) and np.nanmax(v) == pytest.approx(
        52, abs=1.5
    )
    ry, rx = int(attrs["REF_Y"]), int(attrs["REF_X"])
    assert v[ry, rx] == 0.0  # the reference pixel keeps its 0; other zeros are no-data
    coh = read_coherence(KIRI / "temporalCoherence.h5", grid)
    assert coh.shape == grid.shape and np.nanmin(coh) >= 0 and np.nanmax(coh) <= 1
    # the DEM GeoTIFF is on the same grid: read exactly, no resampling
    dem = read_raster_on_grid(KIRI / "height.tif", grid)
    assert np.nanmin(dem) > 400 and np.nanmax(dem) < 1750


def test_kirishima_detector_with_terrain(host, tmp_path):
    region = Region(name="kirishima", bbox_wgs84=(130.82, 31.88, 130.92, 31.98), crs="EPSG:32652")
    cfg = InsarSbasConfig(
        velocity_file=KIRI / "velocity.h5",
        coherence_file=KIRI / "temporalCoherence.h5",
        dem_file=KIRI / "height.tif",
        schedule=[
            {
                "elevation_m": {"min": 400, "max": 1800},
                "slope_deg": {"min": 1, "max": 60},
                "aspect_deg": [{"min": 0, "max": 360}],
                "abs_rate_mm_yr": 15,
            },
        ],
        min_temporal_coherence=0.7,
    )
    det = host.detector("insar_sbas")(cfg)
    c = ctx(host, tmp_path, region)
    cands = validate_candidates(det.propose(c), "insar_sbas", c.crs)
    assert len(cands) >= 1
    assert cands.crs.to_epsg() == 32652
    assert (cands["max_abs_rate_mm_yr"] >= 15).all()
    assert (cands["mean_coherence"] >= 0.7).all()
    assert cands["series_json"].isna().all()  # a velocity file has no time series
    # 0.000185° pixels are ~17.5 m x 19.6 m: area per pixel in the working CRS
    per_px = (cands["area_m2"] / cands["pixel_count"]).median()
    assert 300 < per_px < 400
    assert (tmp_path / "it1" / "terrain_mask.tif").exists()


def test_cadia_geo_velocity_with_extra_datasets(host, tmp_path):
    v, grid, _ = read_velocity(CADIA / "geo_velocity.h5")
    assert grid.shape == (253, 224)
    region = Region(name="cadia", bbox_wgs84=(148.96, -33.54, 149.06, -33.45), crs="EPSG:32755")
    cfg = InsarSbasConfig(
        velocity_file=CADIA / "geo_velocity.h5",
        coherence_file=CADIA / "geo_temporalCoherence.h5",
        schedule=[{"abs_rate_mm_yr": 10}],
    )
    cands = host.detector("insar_sbas")(cfg).propose(ctx(host, tmp_path, region))
    assert len(cands) >= 1
    assert cands["max_abs_rate_mm_yr"].max() == pytest.approx(np.nanmax(np.abs(v)), abs=1e-3) or (
        cands["max_abs_rate_mm_yr"].max() <= np.nanmax(np.abs(v))
    )
    assert cands["mean_rate_mm_yr"].min() < -10  # the mine subsides (negative LOS)


def test_hyp3_unw_with_misaligned_water_mask(host, tmp_path):
    """The water mask has one extra column: it is cropped onto the phase grid exactly."""
    rate, grid, notes = read_unw_rate(
        HYP3 / "test_unw_phase.tif",
        wavelength_m=0.055465763,
        span_days=12,
        water_mask=HYP3 / "test_water_mask.tif",
    )
    assert grid.shape == (718, 2314) and rate.shape == grid.shape
    mask = read_raster_on_grid(HYP3 / "test_water_mask.tif", grid)
    assert mask.shape == grid.shape
    assert np.isnan(rate[~(mask > 0)]).all()
    assert abs(np.nanmedian(rate)) < 1e-3  # referenced to the median
    assert notes["span_days"] == 12
    region = Region(name="aleutians", bbox_wgs84=(-168.6, 53.1, -165.7, 53.6), crs="EPSG:32602")
    cfg = InsarSbasConfig(
        unw_phase_file=HYP3 / "test_unw_phase.tif",
        water_mask_file=HYP3 / "test_water_mask.tif",
        interferogram_span_days=12,
        schedule=[{"abs_rate_mm_yr": 500}],
        min_pixels=20,
    )
    cands = host.detector("insar_sbas")(cfg).propose(ctx(host, tmp_path, region))
    assert len(cands) >= 1 and (cands["pixel_count"] >= 20).all()


def test_unw_without_dates_needs_span():
    with pytest.raises(InputError, match=r"test_unw_phase\.tif: no dates in the file name"):
        read_unw_rate(HYP3 / "test_unw_phase.tif", wavelength_m=0.0555)


def test_unw_reference_point_masked():
    with pytest.raises(InputError, match=r"reference point .* is in a masked area"):
        read_unw_rate(
            HYP3 / "test_unw_phase.tif",
            wavelength_m=0.0555,
            span_days=12,
            water_mask=HYP3 / "test_water_mask.tif",
            reference_yx=(0, 0),
        )


def test_not_a_mintpy_product_and_missing_velocity(tmp_path):
    with pytest.raises(InputError, match=r"height\.tif: not an HDF5 file"):
        read_velocity(KIRI / "height.tif")
    with pytest.raises(MissingBandError, match=r"temporalCoherence\.h5: no 'velocity' dataset"):
        read_velocity(KIRI / "temporalCoherence.h5")
    import h5py

    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["velocity"] = np.zeros((2, 2), np.float32)
    with pytest.raises(InputError, match=r"plain\.h5: not a MintPy product \(no FILE_TYPE"):
        read_velocity(plain)


def test_dem_of_another_place_does_not_overlap(host, tmp_path):
    region = Region(name="cadia", bbox_wgs84=(148.96, -33.54, 149.06, -33.45), crs="EPSG:32755")
    cfg = InsarSbasConfig(
        velocity_file=CADIA / "geo_velocity.h5",
        dem_file=KIRI / "height.tif",  # Japan, not Australia
        schedule=[{"elevation_m": {"min": 0, "max": 3000}, "abs_rate_mm_yr": 10}],
    )
    with pytest.raises(
        GridMismatchError, match=r"height\.tif: DEM does not overlap the InSAR grid"
    ):
        host.detector("insar_sbas")(cfg).propose(ctx(host, tmp_path, region))


def test_coherence_on_another_grid(tmp_path):
    grid = GridSpec.from_raster(KIRI / "height.tif")
    with pytest.raises(
        GridMismatchError, match=r"geo_temporalCoherence\.h5: coherence does not overlap"
    ):
        read_coherence(CADIA / "geo_temporalCoherence.h5", grid)
