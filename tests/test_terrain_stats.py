"""Inventory statistics and relaxation schedules on the real Svalbard DEM and RTS inventories."""

from __future__ import annotations

import itertools

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from tests.conftest import SHARED_DATA

from thawdetect.core.errors import ConfigError, EmptyInventoryError
from thawdetect.core.models import AngleRange
from thawdetect.core.plugin_api.services import TerrainRanges
from thawdetect.plugins.terrain.config import TerrainConfig
from thawdetect.plugins.terrain.sampling import feature_summaries
from thawdetect.plugins.terrain.stats import (
    circular_range,
    kept_fraction,
    relaxation_schedule,
)
from thawdetect.plugins.terrain.toolkit import TerrainToolkit

pytest.importorskip("xdem")

DATA = SHARED_DATA
SVALBARD_DEM = DATA / "dem" / "longyearbyen_svalbard" / "DEM_1995.tif"
#: Nicu et al. 2021 thaw slumps, Nordenskiöld Land (EPSG:32633; the DEM is EPSG:25833)
NICU = DATA / "rts_inventories" / "arts_whrc" / "Nicu2021_svalbard" / "thaw_slides.shp"
#: Lantz group slumps on Banks Island (EPSG:32610), far outside the Svalbard DEM
BANKS = (
    DATA / "rts_inventories" / "arts_whrc" / "Huang2022_canadian_arctic" / "Banks_Island_slumps.shp"
)
#: Bernhard et al. 2022 RTS points with their own TanDEM-X slope/aspect/elevation
BERNHARD = (
    DATA
    / "rts_inventories"
    / "arts_whrc"
    / "Bernhard2022_pan_arctic_points"
    / "RTS_data_Inventory.csv"
)


@pytest.fixture(scope="module")
def kit() -> TerrainToolkit:
    return TerrainToolkit()


@pytest.fixture(scope="module")
def svalbard(kit):
    layers = kit.layers(SVALBARD_DEM)
    inv = gpd.read_file(NICU).to_crs(layers.grid.crs)
    samples = feature_summaries(layers, inv.geometry)
    return layers, samples[samples["n_cells"] > 0]


class TestCircularRange:
    def test_wraps_through_north(self):
        a = np.array([350.0, 355, 0, 5, 10, 15, 20, 340])
        (r,) = circular_range(a, 0, 100)
        assert (r.min, r.max) == (340.0, 20.0) and r.wraps

    def test_percentiles_trim_on_the_circle(self):
        a = (np.arange(0, 101) - 50.0) % 360  # 310..360..50 evenly
        (r,) = circular_range(a, 10, 90)
        assert r.min == pytest.approx(320.0) and r.max == pytest.approx(40.0)

    def test_not_wrapping_and_full_circle(self):
        assert circular_range(np.array([90.0, 100, 110]), 0, 100) == [AngleRange(min=90, max=110)]
        spread = np.linspace(0, 359, 360)
        (r,) = circular_range(spread, 0, 100)
        assert r.max - r.min >= 358 or r.wraps


class TestSchedule:
    def test_widens_step_by_step(self, svalbard):
        _, samples = svalbard
        sched = relaxation_schedule(samples, (5.0, 95.0), steps=5)
        assert len(sched) == 5
        p5, p95 = np.percentile(samples["elevation_m"], [5, 95])
        assert sched[0].elevation_m.min == pytest.approx(p5)
        assert sched[0].elevation_m.max == pytest.approx(p95)
        for a, b in itertools.pairwise(sched):
            assert b.elevation_m.min <= a.elevation_m.min and b.elevation_m.max >= a.elevation_m.max
            assert b.slope_deg.min <= a.slope_deg.min and b.slope_deg.max >= a.slope_deg.max
            assert b.kept_fraction >= a.kept_fraction
        assert sched[-1].elevation_m.min == samples["elevation_m"].min()
        assert sched[-1].kept_fraction == 1.0
        assert 0.6 < sched[0].kept_fraction < 0.95  # three 90 % ranges at once

    @pytest.mark.parametrize("bad", [(95, 5), (-1, 50), (5, 101)])
    def test_bad_percentiles(self, svalbard, bad):
        with pytest.raises(ConfigError, match=r"terrain\.percentiles") as exc:
            relaxation_schedule(svalbard[1], bad)
        assert "\n" not in str(exc.value)

    def test_half_keeps_most_of_other_half(self, svalbard):
        """Ranges from a random half of the 59 Svalbard slumps, tested on the other half.

        Averaged over 50 random splits. Measured (200 splits): row 0 (p5-p95) keeps 62 % of the
        other half on average, the last row (the half's full range) 80 %.
        """
        _, samples = svalbard
        assert len(samples) == 59
        kept = []
        for seed in range(50):
            idx = np.random.default_rng(seed).permutation(len(samples))
            a, b = samples.iloc[idx[:29]], samples.iloc[idx[29:]]
            kept.append([kept_fraction(b, r) for r in relaxation_schedule(a, (5, 95), 5)])
        mean = np.mean(kept, axis=0)
        assert mean[0] > 0.55
        assert mean[-1] > 0.75
        assert np.all(np.diff(mean) >= 0)


class TestInventoryRanges:
    def test_service_on_real_data_different_crs(self, kit):
        sched = kit.inventory_ranges(SVALBARD_DEM, NICU, percentiles=(10, 90), steps=3)
        assert len(sched) == 3 and all(isinstance(r, TerrainRanges) for r in sched)
        assert 0 < sched[0].kept_fraction < sched[-1].kept_fraction == 1.0
        # the slumps sit low in Adventdalen and on gentle slopes (Nicu et al. 2021)
        assert sched[0].elevation_m.max < 400 and sched[0].slope_deg.max < 25

    def test_points_equal_their_cells(self, kit, svalbard):
        layers, _ = svalbard
        inv = gpd.read_file(NICU).to_crs(layers.grid.crs)
        pts = gpd.GeoDataFrame(geometry=inv.geometry.representative_point(), crs=inv.crs)
        pts = pts.to_crs("EPSG:4326")  # a third CRS
        stats, samples, _ = kit.statistics(SVALBARD_DEM, pts, steps=2)
        assert stats.n_sampled == 59 and set(stats.sampled_by) == {"point", "outside DEM"}
        assert samples["n_cells"].max() == 1
        ok = samples["n_cells"] > 0
        xy = pts.to_crs(layers.grid.crs).geometry[ok]
        cols, rows = ~layers.grid.transform * (xy.x.to_numpy(), xy.y.to_numpy())
        cell_elev = layers.elevation_m[rows.astype(int), cols.astype(int)]
        np.testing.assert_allclose(samples.loc[ok, "elevation_m"], cell_elev)

    def test_statistics_json(self, kit):
        stats, _, _ = kit.statistics(SVALBARD_DEM, NICU)
        d = stats.to_json()
        assert d["n_features"] == 562 and d["n_sampled"] == 59
        assert d["n_outside_or_nodata"] == 503
        assert d["metadata"]["surface_fit"] == "Horn"
        inv_med = d["inventory_summary"]["elevation_m"]["p50"]
        land_med = d["landscape_summary"]["elevation_m"]["p50"]
        assert inv_med < land_med  # slumps are in the valleys
        assert all(0 < r["landscape_fraction"] < 1 for r in d["schedule"])

    def test_inventory_outside_dem(self, kit):
        with pytest.raises(EmptyInventoryError) as exc:
            kit.inventory_ranges(SVALBARD_DEM, BANKS)
        msg = str(exc.value)
        assert "\n" not in msg and msg.startswith(str(BANKS)) and "DEM_1995.tif" in msg


class TestBernhardSanity:
    """Real RTS (1832 points) with their own DEM terrain: masks must not exclude most of them."""

    @pytest.fixture(scope="class")
    def bernhard(self):
        # the CSV's rows end with a comma: index_col=False keeps columns aligned
        df = pd.read_csv(BERNHARD, index_col=False, skipinitialspace=True)
        assert len(df) == 1832
        return pd.DataFrame(
            {
                "elevation_m": df["dem_elevation"],
                "slope_deg": df["dem_avg_slope"],
                "aspect_deg": df["dem_aspect"],
                "n_cells": 1,
            }
        )

    def test_default_mask_keeps_real_rts(self, bernhard):
        assert kept_fraction(bernhard, TerrainConfig().default_mask) > 0.95

    def test_half_split(self, bernhard):
        sched = relaxation_schedule(bernhard.iloc[::2], (5, 95), 3)
        kept = [kept_fraction(bernhard.iloc[1::2], r) for r in sched]
        assert kept[0] > 0.6 and kept[-1] > 0.95
