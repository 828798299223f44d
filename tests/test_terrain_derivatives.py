"""Slope/aspect through xdem: known planes, windowed == whole array, real Svalbard DEM, bad DEMs."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from tests.conftest import SHARED_DATA

from thawdetect.core.errors import ConfigError, InputError
from thawdetect.plugins.terrain.config import FLAT_ASPECT_DEG, FLAT_SLOPE_DEG
from thawdetect.plugins.terrain.derivatives import derive, slope_aspect

xdem = pytest.importorskip("xdem")

DATA = SHARED_DATA
SVALBARD_DEM = DATA / "dem" / "longyearbyen_svalbard" / "DEM_1995.tif"
FITS = ["Horn", "ZevenbergThorne", "Florinsky"]


def write_dem(path: Path, arr: np.ndarray, *, res: float = 10.0, crs="EPSG:32633", nodata=-9999.0):
    """A float32 GeoTIFF with a real CRS/transform (NaN in ``arr`` becomes ``nodata``)."""
    data = np.where(np.isnan(arr), nodata, arr).astype(np.float32)
    profile = {
        "driver": "GTiff",
        "dtype": "float32",
        "count": 1,
        "width": arr.shape[1],
        "height": arr.shape[0],
        "transform": Affine(res, 0, 500000.0, 0, -res, 8600000.0),
        "nodata": nodata,
    }
    if crs is not None:
        profile["crs"] = CRS.from_user_input(crs)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return path


def rough_terrain(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """Smooth random hills (metres) with a nodata hole, deterministic."""
    rng = np.random.default_rng(seed)
    r, c = np.mgrid[0:rows, 0:cols].astype(np.float64)
    z = 300 + 40 * np.sin(r / 23.0) * np.cos(c / 31.0) + 0.2 * r + rng.normal(0, 0.5, (rows, cols))
    z[200:230, 300:340] = np.nan
    return z.astype(np.float32)


class TestPlanes:
    """Tilted planes whose slope and aspect are known by hand."""

    # (dz per row southward, dz per column eastward, slope °, aspect °) with 10 m cells
    CASES: ClassVar = [
        (10.0, 0.0, 45.0, 0.0),  # rises to the south -> faces north
        (-10.0, 0.0, 45.0, 180.0),  # rises to the north -> faces south
        (0.0, 10.0, 45.0, 270.0),  # rises to the east -> faces west
        (0.0, -10.0, 45.0, 90.0),  # rises to the west -> faces east
        (10.0, 10.0, np.degrees(np.arctan(np.sqrt(2.0))), 315.0),  # faces north-west
        (0.0, 0.0, 0.0, FLAT_ASPECT_DEG),  # flat: defined as 180
    ]

    @pytest.mark.parametrize("fit", FITS)
    @pytest.mark.parametrize(("dz_row", "dz_col", "slope", "aspect"), CASES)
    def test_plane(self, fit, dz_row, dz_col, slope, aspect):
        r, c = np.mgrid[0:9, 0:9].astype(np.float32)
        z = 500.0 + dz_row * r + dz_col * c
        s, a = slope_aspect(z, 10.0, fit)
        inner = (slice(2, -2), slice(2, -2))
        np.testing.assert_allclose(s[inner], slope, atol=1e-4)
        np.testing.assert_allclose(a[inner], aspect, atol=1e-4)
        assert np.isnan(s[0]).all() and np.isnan(a[:, 0]).all()  # the DEM edge has no neighbours

    def test_unknown_surface_fit(self):
        with pytest.raises(ConfigError, match="Bilinear"):
            slope_aspect(np.zeros((5, 5), np.float32), 1.0, "Bilinear")


class TestWindowed:
    @pytest.mark.parametrize("fit", FITS)
    def test_blocks_equal_whole_array(self, tmp_path, fit):
        z = rough_terrain(530, 700)
        dem = write_dem(tmp_path / "dem.tif", z)
        res = derive(dem, tmp_path / "out", surface_fit=fit, block_size_px=256)
        with rasterio.open(res.slope_path) as s, rasterio.open(res.aspect_path) as a:
            slope, aspect = s.read(1), a.read(1)
            assert s.profile["tiled"] and s.profile["blockxsize"] == 256
            assert s.profile["compress"] == "deflate"
            assert s.tags()["surface_fit"] == fit
            assert "0 = N" in a.tags()["aspect_convention"]
        whole_s, whole_a = slope_aspect(z, 10.0, fit)
        # 3 x 3 blocks of 256 incl. partial ones: identical to xdem on the whole array, bit for bit
        assert np.array_equal(slope, whole_s, equal_nan=True)
        assert np.array_equal(aspect, whole_a, equal_nan=True)
        raw = xdem.terrain.slope(z, resolution=10.0, surface_fit=fit)
        assert np.array_equal(slope, raw, equal_nan=True)
        assert res.metadata["halo_px"] == (2 if fit == "Florinsky" else 1)
        assert np.isnan(slope[215, 320]) and np.isfinite(slope[100, 100])

    def test_mask_file(self, tmp_path):
        from thawdetect.plugins.terrain.masks import coerce_ranges, terrain_mask

        z = rough_terrain(300, 300)
        dem = write_dem(tmp_path / "dem.tif", z)
        ranges = coerce_ranges(elevation_m=(280, 330), slope_deg=(0.5, 20), aspect_deg=[(315, 45)])
        res = derive(dem, tmp_path / "o", block_size_px=256, mask=ranges, overviews=True)
        with rasterio.open(res.mask_path) as m:
            mask = m.read(1)
            assert m.overviews(1) == [2, 4, 8, 16]
        s, a = slope_aspect(z, 10.0)
        expected = terrain_mask(z, s, a, ranges)
        assert np.array_equal(mask == 1, expected)
        assert ((mask == 255) == np.isnan(s)).all()
        assert 0 < expected.mean() < 1

    def test_bad_block_size(self, tmp_path):
        dem = write_dem(tmp_path / "dem.tif", rough_terrain(50, 50))
        with pytest.raises(ConfigError, match="multiple of 256"):
            derive(dem, tmp_path / "o", block_size_px=300)


class TestSvalbard:
    """Real DEM: NPI DTM20 1995 around Longyearbyen (20 m, EPSG:25833), nodata -3.4e38."""

    @pytest.mark.parametrize("fit", FITS)
    def test_agrees_with_xdem(self, tmp_path, fit):
        res = derive(SVALBARD_DEM, tmp_path, surface_fit=fit, block_size_px=512)
        with rasterio.open(SVALBARD_DEM) as src:
            z = src.read(1, masked=True).filled(np.nan).astype(np.float32)
        ref_s = xdem.terrain.slope(z, resolution=20.0, surface_fit=fit)
        ref_a = xdem.terrain.aspect(z, surface_fit=fit)
        with rasterio.open(res.slope_path) as s, rasterio.open(res.aspect_path) as a:
            slope, aspect = s.read(1), a.read(1)
        assert np.array_equal(slope, ref_s, equal_nan=True)
        assert np.array_equal(np.isnan(aspect), np.isnan(ref_a))
        sloped = ref_s >= FLAT_SLOPE_DEG
        diff = np.abs(aspect - ref_a)[sloped]
        diff = np.minimum(diff, 360 - diff)
        assert diff.max() < 1e-3  # float32 rounding only
        flat = np.isfinite(ref_s) & ~sloped
        assert flat.sum() < 200  # lake/sea cells, noise-level gradients
        assert (aspect[flat] == FLAT_ASPECT_DEG).all()
        assert 30 < np.nanmax(slope) < 80 and 5 < np.nanmean(slope) < 30


class TestBadDem:
    def _one_line(self, exc, path):
        msg = str(exc.value)
        assert "\n" not in msg and msg.startswith(str(path))
        return msg

    def test_no_crs(self, tmp_path):
        dem = write_dem(tmp_path / "nocrs.tif", rough_terrain(40, 40), crs=None)
        with pytest.raises(InputError) as exc:
            derive(dem, tmp_path / "o")
        assert "no CRS" in self._one_line(exc, dem)

    def test_all_nodata(self, tmp_path):
        dem = write_dem(tmp_path / "empty.tif", np.full((300, 300), np.nan, np.float32))
        with pytest.raises(InputError) as exc:
            derive(dem, tmp_path / "o", block_size_px=256)
        assert "nodata" in self._one_line(exc, dem)
        assert sorted(p.name for p in (tmp_path / "o").iterdir()) == []  # no half-written file

    def test_missing_and_not_a_raster(self, tmp_path):
        with pytest.raises(InputError) as exc:
            derive(tmp_path / "missing.tif", tmp_path / "o")
        self._one_line(exc, tmp_path / "missing.tif")
        bad = tmp_path / "notes.tif"
        bad.write_text("not a raster")
        with pytest.raises(InputError) as exc:
            derive(bad, tmp_path / "o")
        assert "cannot be opened" in self._one_line(exc, bad)

    def test_geographic_dem_is_warped_to_utm(self, tmp_path):
        # a 45° north-facing plane in UTM 33N, reprojected to lon/lat by rasterio.warp
        from rasterio.warp import Resampling, calculate_default_transform, reproject

        r, _c = np.mgrid[0:120, 0:120].astype(np.float32)
        utm = write_dem(tmp_path / "utm.tif", 200 + 10.0 * r)
        with rasterio.open(utm) as src:
            tr, w, h = calculate_default_transform(
                src.crs, "EPSG:4326", src.width, src.height, *src.bounds
            )
            geo = np.full((h, w), np.nan, np.float32)
            reproject(
                src.read(1),
                geo,
                src_transform=src.transform,
                src_crs=src.crs,
                src_nodata=src.nodata,
                dst_transform=tr,
                dst_crs="EPSG:4326",
                dst_nodata=np.nan,
                resampling=Resampling.bilinear,
            )
        path = tmp_path / "geo.tif"
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            dtype="float32",
            count=1,
            width=w,
            height=h,
            transform=tr,
            crs="EPSG:4326",
            nodata=np.nan,
        ) as dst:
            dst.write(geo, 1)
        res = derive(path, tmp_path / "o", block_size_px=256)
        assert "warped" in res.metadata["derivative_grid"]
        assert res.metadata["crs"] == "EPSG:32633"
        with rasterio.open(res.slope_path) as s, rasterio.open(res.aspect_path) as a:
            slope, aspect = s.read(1), a.read(1)
        ok = np.isfinite(slope)
        assert ok.sum() > 5000
        assert abs(np.median(slope[ok]) - 45.0) < 1.5
        med = np.median(np.where(aspect[ok] > 180, aspect[ok] - 360, aspect[ok]))
        assert abs(med) < 5.0  # still faces (grid) north, within the UTM grid convergence
