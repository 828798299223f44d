"""Masks on a hand-computed grid (incl. an aspect interval through north) and one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

from thawdetect.core.errors import ConfigError
from thawdetect.core.grid import GridSpec
from thawdetect.core.models import AngleRange, Range
from thawdetect.core.plugin_api.services import TerrainLayers
from thawdetect.plugins.terrain.masks import aspect_mask, coerce_ranges, terrain_mask
from thawdetect.plugins.terrain.toolkit import TerrainToolkit

nan = np.nan
# 4 x 5 grid written by hand
ELEV = np.array(
    [
        [90, 100, 250, 400, 401],
        [120, 200, 300, nan, 350],
        [399, 150, 100, 220, 230],
        [260, 270, 280, 290, 300],
    ],
    dtype=np.float32,
)
SLOPE = np.array(
    [
        [5, 5, 0.5, 30, 5],
        [1, 12, 31, 5, 8],
        [10, nan, 29.9, 15, 20],
        [2, 3, 4, 6, 7],
    ],
    dtype=np.float32,
)
ASPECT = np.array(
    [
        [0, 10, 10, 45, 0],
        [315, 314.9, 350, 20, 46],
        [360, 90, 180, 170, 200],
        [359.99, 45.01, 330, 180, 190],
    ],
    dtype=np.float32,
)
# aspect in 315-45 (through north) or 170-190
ASPECT_IN = np.array(
    [
        [1, 1, 1, 1, 1],
        [1, 0, 1, 1, 0],
        [1, 0, 1, 1, 0],
        [1, 0, 1, 1, 1],
    ],
    dtype=bool,
)
# elevation 100-400 and slope 1-30 and aspect as above; NaN anywhere -> False
EXPECTED = np.array(
    [
        [0, 1, 0, 1, 0],  # 90 m too low; 0.5° too flat; 400 m and 30° inclusive; 401 m too high
        [1, 0, 0, 0, 0],  # 314.9° just outside; 31° too steep; NaN elevation; 46° outside
        [1, 0, 1, 1, 0],  # 360° == north; NaN slope; 100 m inclusive; 170° inclusive; 200° out
        [1, 0, 1, 1, 1],  # 359.99° in; 45.01° out
    ],
    dtype=bool,
)
RANGES = {
    "elevation_m": Range(min=100, max=400),
    "slope_deg": Range(min=1, max=30),
    "aspect_deg": [AngleRange(min=315, max=45), AngleRange(min=170, max=190)],
}


def layers() -> TerrainLayers:
    from affine import Affine
    from rasterio.crs import CRS

    grid = GridSpec(CRS.from_epsg(32633), Affine(20, 0, 0, 0, -20, 100), 5, 4)
    return TerrainLayers(ELEV, SLOPE, ASPECT, grid)


def test_aspect_union_with_wrap():
    assert np.array_equal(aspect_mask(ASPECT, RANGES["aspect_deg"]), ASPECT_IN)


def test_combined_mask_by_hand():
    got = terrain_mask(ELEV, SLOPE, ASPECT, coerce_ranges(**RANGES))
    assert np.array_equal(got, EXPECTED)


def test_service_mask_accepts_models_and_pairs():
    kit = TerrainToolkit()
    a = kit.mask(layers(), **RANGES)
    b = kit.mask(
        layers(), elevation_m=(100, 400), slope_deg=(1, 30), aspect_deg=[(315, 45), (170, 190)]
    )
    assert np.array_equal(a, EXPECTED) and np.array_equal(b, EXPECTED)
    assert a.dtype == bool


def test_single_constraints():
    kit = TerrainToolkit()
    only_slope = kit.mask(layers(), slope_deg=Range(min=1, max=30))
    assert only_slope.sum() == 16  # 20 cells - NaN slope - NaN elevation - 0.5° - 31°
    assert not only_slope[1, 3] and not only_slope[2, 1]
    everything = kit.mask(layers())
    assert everything.sum() == 18  # every cell with no NaN in any layer


def test_interval_ending_at_360_holds_north():
    a = np.array([0.0, 359.0, 270.0, 269.9])
    assert aspect_mask(a, [AngleRange(min=270, max=360)]).tolist() == [True, True, True, False]
    assert aspect_mask(a, [AngleRange(min=0, max=360)]).all()


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"aspect_deg": [(300, 400)]}, "aspect_deg.0.max", "less than or equal to 360"),
        ({"aspect_deg": [(-10, 40)]}, "aspect_deg.0.min", "greater than or equal to 0"),
        ({"slope_deg": (40, 10)}, "slope_deg", "above max"),
        ({"elevation_m": {"min": 4000, "max": 3600}}, "elevation_m", "above max"),
    ],
)
def test_bad_ranges_one_line(kwargs, field, words):
    with pytest.raises(ConfigError) as exc:
        coerce_ranges(**kwargs, source="run.yaml: detectors.insar_sbas")
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(f"run.yaml: detectors.insar_sbas: {field}")
    assert words in msg


def test_aspect_outside_0_360_wraps_as_a_compass_angle():
    """Aspects below 0 or at/above 360 (some DEM tools write -1 or 360) are taken modulo 360,
    in range ones untouched, NaN out; only the out-of-range cells are wrapped."""
    a = np.array([-90.0, -360.0, 360.0, 450.0, 720.0, 10.0, 359.9, np.nan])
    want = np.where(a >= 360.0, a - 360.0, a) % 360.0
    ivs = [AngleRange(min=0, max=112.5), AngleRange(min=135, max=360)]
    got = aspect_mask(a, ivs)
    with np.errstate(invalid="ignore"):
        ref = ((want >= 0) & (want <= 112.5)) | ((want >= 135) & (want <= 360)) | (want == 0)
    assert got.tolist() == ref.tolist()
    assert got.tolist() == [True, True, True, True, True, True, True, False]
    a2 = a.copy()
    aspect_mask(a2, ivs)
    np.testing.assert_array_equal(a2, a)  # the caller's layer is not changed
