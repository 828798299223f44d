"""Delineation: hysteresis growth, grouping on one facet, holes, smoothing (hand-made rasters)."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS

from thawdetect.core.grid import GridSpec
from thawdetect.plugins.insar_sbas.candidates import polygonize_labels
from thawdetect.plugins.insar_sbas.delineation import delineate, noise_floor


def _bump(shape=(30, 30), centre=(15, 15), peak=-40.0, sigma=4.0):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    d2 = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2
    return peak * np.exp(-0.5 * d2 / sigma**2), d2


class TestGrow:
    def test_grows_to_the_floor_where_threshold_keeps_the_core(self):
        rate, d2 = _bump()
        seeds = np.abs(rate) >= 30
        old = delineate(rate, seeds, method="threshold", min_pixels=1)
        new = delineate(rate, seeds, floor_mm_yr=5.0, relative_floor=0.0, min_pixels=1)
        assert old.n == new.n == 1
        # hand computed: |rate| >= 30 is d² <= 2·16·ln(40/30) = 9.2; >= 5 is d² <= 66.5
        np.testing.assert_array_equal(old.labels > 0, d2 <= 9)
        np.testing.assert_array_equal(new.labels > 0, d2 <= 66)
        assert new.seed_pixels.tolist() == [int((d2 <= 9).sum())]

    def test_relative_floor_stops_a_fast_core_in_slow_background(self):
        rate, _d2 = _bump(peak=-60.0)
        rate = rate - 3.0  # a slow, correlated background above a 2 mm/yr noise floor
        seeds = np.abs(rate) >= 50
        kw = {"floor_mm_yr": 2.0, "min_pixels": 1, "reach_factor": 0.0}
        leak = delineate(rate, seeds, relative_floor=0.0, **kw)
        assert (leak.labels > 0).all()  # the whole scene
        own = delineate(rate, seeds, relative_floor=0.2, **kw)
        core = float(np.median(np.abs(rate[seeds])))
        np.testing.assert_array_equal(own.labels > 0, np.abs(rate) >= 0.2 * core)

    def test_reach_stops_a_band_of_creep(self):
        rate = np.full((20, 80), -15.0)  # a band of creep above the floor, running on ...
        rate[5:15, 5:15] = -40.0  # ... from a landslide of 100 px
        seeds = np.abs(rate) >= 30
        d = delineate(rate, seeds, floor_mm_yr=5.0, relative_floor=0.0, min_pixels=1)
        r_seeds = np.sqrt(100 / np.pi)
        cols = np.flatnonzero((d.labels > 0).any(axis=0))
        assert cols.max() <= 14 + 2 + 2.5 * r_seeds + 1  # not the 80 px of the band
        assert (d.labels[5:15, 5:15] == 1).all()

    def test_two_landslides_on_moving_ground_stay_two(self):
        rate, _ = _bump(shape=(30, 60), centre=(15, 15), peak=-40.0)
        b, _ = _bump(shape=(30, 60), centre=(15, 40), peak=-35.0)
        rate = rate + b - 12.0  # both on ground moving at 12 mm/yr, 25 px apart
        d = delineate(rate, np.abs(rate) >= 30, floor_mm_yr=3.0, min_pixels=1)
        assert d.n == 2
        assert d.labels[15, 15] != d.labels[15, 40]

    def test_opposite_sign_does_not_join(self):
        rate, _ = _bump(shape=(20, 40), centre=(10, 10))
        up, _ = _bump(shape=(20, 40), centre=(10, 24), peak=40.0)
        rate = rate + up
        d = delineate(rate, np.abs(rate) >= 30, floor_mm_yr=3.0, min_pixels=1)
        assert d.n == 2
        signs = {float(np.sign(rate[d.labels == i]).mean()) for i in (1, 2)}
        assert signs == {-1.0, 1.0}

    def test_growth_stays_in_grow_ok_and_passes_unknown_pixels(self):
        rate, d2 = _bump()
        grow_ok = np.ones(rate.shape, bool)
        grow_ok[:, 19:] = False  # e.g. outside the relaxed terrain masks
        d = delineate(rate, np.abs(rate) >= 30, grow_ok=grow_ok, floor_mm_yr=5.0, min_pixels=1)
        assert not (d.labels[:, 19:] > 0).any()
        # a decorrelated ring cuts the growth without `unknown`, not with it
        ring = (d2 >= 16) & (d2 <= 26)  # closed for 8-connected growth
        coherent = ~ring
        cut = delineate(rate, np.abs(rate) >= 30, grow_ok=coherent, floor_mm_yr=5.0, min_pixels=1)
        through = delineate(
            rate,
            np.abs(rate) >= 30,
            grow_ok=coherent,
            floor_mm_yr=5.0,
            relative_floor=0.0,
            min_pixels=1,
            unknown=ring,
        )
        assert (cut.labels > 0).sum() < (d2 <= 25).sum()
        np.testing.assert_array_equal(through.labels > 0, d2 <= 66)

    def test_min_pixels_counts_seeds(self):
        rate, _ = _bump()
        seeds = np.abs(rate) >= 39.5  # one seed pixel
        assert delineate(rate, seeds, floor_mm_yr=5.0, min_pixels=2).n == 0
        assert delineate(rate, seeds, floor_mm_yr=5.0, min_pixels=1).n == 1


class TestGrouping:
    """Clusters that only unreliable ground separates are one landslide; measured ground is not."""

    @staticmethod
    def _two_lobes(gap: int):
        rate = np.zeros((12, 30))
        rate[3:9, 4:10] = -40.0
        rate[3:9, 10 + gap : 16 + gap] = -40.0
        rate[3:9, 10 : 10 + gap] = np.nan  # decorrelated between them (fast motion)
        return rate

    @staticmethod
    def _run(rate, aspect, **kw):
        unknown = np.isnan(rate)
        return delineate(
            rate, rate <= -30, floor_mm_yr=5.0, aspect_deg=aspect, unknown=unknown, **kw
        )

    def test_fragments_within_two_pixels_on_one_facet_become_one(self):
        rate = self._two_lobes(gap=2)
        d = self._run(rate, np.full(rate.shape, 90.0), smooth=False)
        assert d.n == 1 and d.fragments.tolist() == [2]
        assert (d.labels[3:9, 10:12] == 1).all()  # the gap between them is part of it

    def test_measured_stable_ground_between_keeps_them_apart(self):
        rate = np.nan_to_num(self._two_lobes(gap=2), nan=0.0)  # the gap is measured, stable
        d = self._run(rate, np.full(rate.shape, 90.0))
        assert d.n == 2

    def test_a_line_of_decorrelated_ground_between_two_landslides_keeps_them_apart(self):
        rate = self._two_lobes(gap=2)
        rate[3:9, 9] = rate[3:9, 12] = -8.0  # slow edges beside the gap: two landslides'
        rate[3:9, 8] = rate[3:9, 13] = -15.0  # rates fall off towards it from both cores
        assert self._run(rate, np.full(rate.shape, 90.0)).n == 2

    def test_three_pixels_apart_stay_two(self):
        rate = self._two_lobes(gap=3)
        assert self._run(rate, np.full(rate.shape, 90.0)).n == 2

    def test_a_ridge_between_keeps_them_apart(self):
        rate = self._two_lobes(gap=2)
        aspect = np.full(rate.shape, 90.0)
        aspect[:, 10:12] = 270.0  # the gap faces the other way: a ridge
        assert self._run(rate, aspect).n == 2

    def test_different_facets_stay_apart(self):
        rate = self._two_lobes(gap=2)
        aspect = np.full(rate.shape, 90.0)
        aspect[:, 12:] = 180.0  # second lobe faces south, 90° from the first
        assert self._run(rate, aspect).n == 2


def test_holes_filled_and_corner_spur_and_edge_notch_smoothed():
    rate = np.zeros((20, 20))
    rate[4:16, 4:16] = -40.0
    rate[9:11, 9:11] = 0.0  # a stable hole in the middle
    rate[16, 16] = -40.0  # a one-pixel spur off a corner ...
    seeds = rate <= -30
    seeds[16, 16] = False  # ... that is not a seed
    rate[4, 9] = 0.0  # a one-pixel notch in the edge
    d = delineate(rate, seeds, floor_mm_yr=5.0, min_pixels=1)
    expected = np.zeros((20, 20), bool)
    expected[4:16, 4:16] = True
    np.testing.assert_array_equal(d.labels > 0, expected)


def test_smoothed_polygon_within_a_pixel_of_the_pixel_outline():
    grid = GridSpec(CRS.from_epsg(32647), Affine(30, 0, 0, 0, -30, 900), 30, 30)
    _, d2 = _bump()
    labels = (d2 <= 49).astype(np.int32)
    raw = polygonize_labels(labels, grid).iloc[0]
    smooth = polygonize_labels(labels, grid, smooth=True).iloc[0]
    assert len(smooth.exterior.coords) < len(raw.exterior.coords) / 2
    assert raw.hausdorff_distance(smooth) <= 0.75 * 30.0 + 1e-9  # under a 30 m pixel
    assert smooth.area == pytest.approx(raw.area, rel=0.1)


def test_noise_floor_ignores_moving_pixels():
    rng = np.random.default_rng(0)
    rate = rng.normal(0, 1.5, (100, 100))
    rate[:20, :20] -= 40  # a landslide inside the "stable" mask
    floor, sigma = noise_floor(rate, np.ones(rate.shape, bool))
    assert sigma == pytest.approx(1.5, rel=0.1) and floor == pytest.approx(2 * sigma)


def test_background_levels_islands_and_keeps_landslides():
    from thawdetect.plugins.insar_sbas.delineation import local_background

    rng = np.random.default_rng(1)
    rate = rng.normal(0.0, 1.0, (120, 120))
    reliable = np.ones(rate.shape, bool)
    reliable[:, 59:61] = False  # a decorrelated band cuts the scene in two islands
    rate[:, 61:] += 25.0  # the right island is shifted (an unwrapping error of the whole island)
    rate[20:30, 80:90] += 40.0  # a landslide on it
    bg = local_background(rate, reliable, window_px=40, min_island_px=1000)
    resid = rate - bg
    assert abs(float(np.median(resid[:, 61:]))) < 1.0  # the island's offset is gone ...
    assert float(np.median(resid[20:30, 80:90])) > 35.0  # ... the landslide is not
    assert abs(float(np.median(resid[:, :59]))) < 1.0


@pytest.mark.parametrize("seed", range(12))
def test_sparse_h_maxima_is_scikit_images(seed):
    """The per-patch h-maxima gives scikit-image's pixels exactly: patches of several sizes,
    touching the edges, with holes and plateaus, and heights where no pixel reaches level + h."""
    from skimage.morphology import h_maxima

    from thawdetect.plugins.insar_sbas.delineation import _h_maxima

    rng = np.random.default_rng(seed)
    level = float(rng.uniform(1, 8))
    h = level / 2.0
    shape = (int(rng.integers(40, 120)), int(rng.integers(40, 120)))
    height = np.full(shape, level)
    for _ in range(int(rng.integers(1, 12))):
        r, c = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        rad = int(rng.integers(1, 9))
        yy, xx = np.ogrid[: shape[0], : shape[1]]
        blob = (yy - r) ** 2 + (xx - c) ** 2 <= rad**2
        peak = float(rng.uniform(0.1, 6.0) * level) if seed % 4 else float(rng.uniform(0, h))
        bump = peak * np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2.0 * max(rad, 1) ** 2))
        height = np.where(blob, np.maximum(height, level + bump), height)
    height += np.where(height > level, rng.normal(0, 0.3 * level, shape).clip(0), 0.0)
    height[rng.random(shape) < 0.02] = level  # holes and ragged patch edges
    if seed == 3:
        height[:, :] = level  # flat: nothing
    expected = h_maxima(height, h) > 0
    np.testing.assert_array_equal(_h_maxima(height, h, level), expected)


@pytest.mark.parametrize("seed", range(8))
def test_reach_per_basin_is_the_whole_arrays(seed):
    """The reach limit computed basin by basin marks the pixels the whole-array distance
    transform marks (basins of many sizes, seeds in and out of them, at the array's edges)."""
    from scipy import ndimage

    from thawdetect.plugins.insar_sbas.delineation import _beyond_reach

    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(30, 150)), int(rng.integers(30, 150)))
    ws, _ = ndimage.label(ndimage.binary_dilation(rng.random(shape) < 0.02, iterations=3))
    ws = ws.astype(np.int32)
    seeds = (rng.random(shape) < 0.03) & ((ws > 0) | (rng.random(shape) < 0.3))
    k = int(ws.max())
    allow = np.r_[-1.0, rng.uniform(0.5, 12.0, k)]
    expected = (ndimage.distance_transform_edt(~seeds) > allow[ws]) & (ws > 0)
    np.testing.assert_array_equal(_beyond_reach(ws, seeds, allow), expected)
