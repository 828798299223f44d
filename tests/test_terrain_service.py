"""The ``"terrain"`` service via the plugin host: layers on another grid, candidate attributes."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from shapely.geometry import LineString, box
from tests.conftest import SHARED_DATA

from thawdetect.core.errors import InputError
from thawdetect.core.grid import GridSpec
from thawdetect.core.plugin_api.host import PluginHost
from thawdetect.core.plugin_api.services import TerrainService
from thawdetect.plugins.terrain.attributes import headwall_upslope

pytest.importorskip("xdem")

DATA = SHARED_DATA
SVALBARD_DEM = DATA / "dem" / "longyearbyen_svalbard" / "DEM_1995.tif"


@pytest.fixture(scope="module")
def terrain() -> TerrainService:
    host = PluginHost()  # loads the built-in plugins through their entry points
    service = host.service("terrain")
    assert isinstance(service, TerrainService)
    return service


def test_native_layers_metadata(terrain):
    layers = terrain.layers(SVALBARD_DEM)
    assert layers.elevation_m.shape == (985, 1332) and layers.elevation_m.dtype == np.float32
    assert layers.metadata["surface_fit"] == "Horn"
    assert "0 = N" in layers.metadata["aspect_convention"]
    assert layers.metadata["derivatives_computed_on"] == "native DEM grid"
    assert np.nanmin(layers.elevation_m) > 0 and np.nanmax(layers.elevation_m) < 1100


class TestOtherGrid:
    def test_same_grid_is_identity(self, terrain):
        native = terrain.layers(SVALBARD_DEM)
        again = terrain.layers(SVALBARD_DEM, native.grid)
        inner = np.isfinite(native.slope_deg)
        np.testing.assert_allclose(again.elevation_m[inner], native.elevation_m[inner], atol=1e-3)
        np.testing.assert_allclose(again.slope_deg[inner], native.slope_deg[inner], atol=1e-3)
        d = np.abs(again.aspect_deg[inner] - native.aspect_deg[inner])
        assert np.minimum(d, 360 - d).max() < 1e-2
        assert again.metadata["resampling"]["elevation_m"] == "bilinear"

    def test_lonlat_grid(self, terrain):
        # a 0.002° x 0.0005° lon/lat grid (like a MintPy geocoded product) inside the DEM
        grid = GridSpec(CRS.from_epsg(4326), Affine(0.002, 0, 15.5, 0, -0.0005, 78.12), 300, 200)
        layers = terrain.layers(SVALBARD_DEM, grid)
        assert layers.grid == grid and layers.elevation_m.shape == (200, 300)
        ok = np.isfinite(layers.slope_deg)
        assert ok.mean() > 0.9
        assert ((layers.aspect_deg[ok] >= 0) & (layers.aspect_deg[ok] < 360)).all()
        assert layers.metadata["resampling"]["target_crs"] == "EPSG:4326"
        assert "sin, cos" in layers.metadata["resampling"]["aspect_deg"]
        mask = terrain.mask(layers, slope_deg=(1, 30))
        assert mask.shape == grid.shape and not mask[~ok].any()

    def test_grid_without_overlap(self, terrain):
        grid = GridSpec(CRS.from_epsg(4326), Affine(0.01, 0, 100, 0, -0.01, 30), 10, 10)
        with pytest.raises(InputError) as exc:
            terrain.layers(SVALBARD_DEM, grid)
        msg = str(exc.value)
        assert "\n" not in msg and msg.startswith(str(SVALBARD_DEM)) and "overlap" in msg


class TestAttributes:
    @pytest.fixture
    def dem(self, tmp_path):
        """A plane rising 5 m per 10 m cell to the north (faces south, 26.565°), EPSG:32633."""
        rows = np.arange(100, dtype=np.float32)[:, None]
        z = np.broadcast_to(1000.0 - 5.0 * rows, (100, 100)).astype(np.float32)
        path = tmp_path / "plane.tif"
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            dtype="float32",
            count=1,
            width=100,
            height=100,
            crs="EPSG:32633",
            transform=Affine(10, 0, 500000, 0, -10, 8600000),
        ) as dst:
            dst.write(z, 1)
        return path

    def test_plane_candidates_and_roads(self, terrain, dem, tmp_path):
        # 200 m x 100 m box: cells rows 30-39 (centres inside), x 500300-500500
        near = box(500300, 8599600, 500500, 8599700)
        far = box(500300, 8599100, 500400, 8599200)
        cands = gpd.GeoDataFrame({"candidate_id": [1, 2]}, geometry=[near, far], crs="EPSG:32633")
        cands = cands.to_crs("EPSG:4326")  # another CRS on purpose
        road = gpd.GeoDataFrame(
            geometry=[LineString([(499000, 8599950), (501000, 8599950)])], crs="EPSG:32633"
        )
        roads = tmp_path / "roads.gpkg"
        road.to_crs("EPSG:3413").to_file(roads)
        out = terrain.attributes(cands, dem, roads=roads, near_road_m=500.0)
        assert out.crs == cands.crs and list(out["candidate_id"]) == [1, 2]
        # rows 30..39 -> elevations 850 .. 805 m: mean 827.5, relief 45 m
        assert out.loc[0, "mean_elevation_m"] == pytest.approx(827.5, abs=1e-3)
        assert out.loc[0, "relief_m"] == pytest.approx(45.0, abs=1e-3)
        assert out.loc[0, "mean_slope_deg"] == pytest.approx(np.degrees(np.arctan(0.5)), abs=1e-3)
        assert out.loc[0, "aspect_deg"] == pytest.approx(180.0, abs=1e-3)
        assert bool(out.loc[0, "headwall_upslope"])
        # centroid 8599650 is 300 m from the road, the far one 800 m
        assert out.loc[0, "distance_to_road_m"] == pytest.approx(300.0, abs=0.5)
        assert out.loc[1, "distance_to_road_m"] == pytest.approx(800.0, abs=0.5)
        assert out["near_road"].tolist() == [True, False]

    def test_without_roads_and_off_dem(self, terrain, dem):
        off = box(600000, 8000000, 600100, 8000100)
        cands = gpd.GeoDataFrame({"candidate_id": [7]}, geometry=[off], crs="EPSG:32633")
        out = terrain.attributes(cands, dem)
        assert np.isnan(out.loc[0, "mean_elevation_m"]) and np.isnan(
            out.loc[0, "distance_to_road_m"]
        )
        assert not out.loc[0, "near_road"] and not out.loc[0, "headwall_upslope"]

    def test_headwall_at_toe_is_false(self):
        x, y = np.meshgrid(np.arange(10.0), np.arange(10.0))
        z = -((y - 2.0) ** 2)  # highest near the southern (downslope) edge of a south-facing box
        assert not headwall_upslope(x.ravel(), y.ravel(), z.ravel(), 180.0)
        assert headwall_upslope(x.ravel(), y.ravel(), z.ravel(), 0.0)  # faces north: it is upslope


def test_commands_hook_adds_group():
    import click

    from thawdetect.plugins.terrain import plugin

    group = click.Group("x")
    plugin.thawdetect_register_commands(cli=group)
    assert set(group.commands["terrain"].commands) == {"stats", "derive"}
