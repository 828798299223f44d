"""Every raster a run writes is a Cloud-Optimised GeoTIFF with overviews (GDAL's validator), so
the review page's tile server reads overviews and no longer warns ``NoOverviewWarning``."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from thawdetect.core.cog import cog_problems, to_cog
from thawdetect.core.grid import GridSpec
from thawdetect.plugins.insar_sbas.rasters import write_geotiff


def _grid(n: int) -> GridSpec:
    return GridSpec(crs="EPSG:32647", transform=from_origin(500000, 4200000, 30, 30), width=n,
                    height=n)  # fmt: skip


def test_write_geotiff_is_a_cog_keeping_values_tags_and_description(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rate = rng.normal(0, 10, (700, 700)).astype(np.float32)
    rate[:5] = np.nan
    out = write_geotiff(tmp_path / "rate.tif", rate, _grid(700), tags={"SOURCE": "x.h5"},
                        description="LOS rate (mm/yr)")  # fmt: skip
    assert cog_problems(out) == []
    with rasterio.open(out) as src:
        assert src.overviews(1)  # 700 px: at least one level, down to one 256 px tile
        assert src.block_shapes[0] == (256, 256)
        assert src.tags()["SOURCE"] == "x.h5"
        assert src.descriptions[0] == "LOS rate (mm/yr)"
        np.testing.assert_array_equal(src.read(1), rate)
    mask = (rate > 5).astype(np.uint8)
    out = write_geotiff(tmp_path / "mask.tif", mask, _grid(700), nodata=255)
    assert cog_problems(out) == []
    with rasterio.open(out) as src:
        assert set(np.unique(src.read(1, out_shape=(350, 350)))) <= {0, 1}  # nearest overviews
    assert not list(tmp_path.glob(".*"))  # no temporary file left


def test_to_cog_flags_a_plain_geotiff(tmp_path: Path) -> None:
    plain = tmp_path / "plain.tif"
    with rasterio.open(plain, "w", driver="GTiff", width=600, height=600, count=1,
                       dtype="float32", crs="EPSG:32647",
                       transform=from_origin(0, 600, 30, 30)) as dst:  # fmt: skip
        dst.write(np.ones((1, 600, 600), np.float32))
    assert cog_problems(plain)
    assert cog_problems(to_cog(plain, tmp_path / "cog.tif")) == []
    assert not plain.exists()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("cog") / "run"
    done = subprocess.run(
        [sys.executable, "-m", "thawdetect", "run", "--detector", "insar_sbas", "--region",
         "qilian", "--reviewer", "manual", "--output-dir", str(run)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return run


def test_every_raster_of_a_run_is_a_cog(run_dir: Path) -> None:
    rasters = sorted(run_dir.rglob("*.tif"))
    assert len(rasters) >= 5
    bad = {str(p.relative_to(run_dir)): cog_problems(p) for p in rasters}
    assert {k: v for k, v in bad.items() if v} == {}


def test_tile_server_reads_run_rasters_without_overview_warning(run_dir: Path) -> None:
    rio_tiler = pytest.importorskip("rio_tiler.io")
    from rio_tiler.errors import NoOverviewWarning

    big = _grid(1200)
    rate = np.random.default_rng(1).normal(0, 5, (1200, 1200)).astype(np.float32)
    path = write_geotiff(run_dir / "iterations" / "big_rate.tif", rate, big)
    for p in [path, *run_dir.rglob("rate_mm_yr.tif")]:
        with warnings.catch_warnings():
            warnings.simplefilter("error", NoOverviewWarning)
            with rio_tiler.Reader(str(p)) as src:
                src.preview(max_size=256)
    path.unlink()


def test_terrain_derive_writes_cogs(tmp_path: Path) -> None:
    """``thawdetect terrain derive`` (the real CLI): slope, aspect and mask are COGs with their
    values, tags and nodata; aspect and mask overviews are not averaged (no invented angles or
    classes)."""
    n = 600
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    z = 3800 + 0.3 * xx + 40 * np.sin(yy / 40) * np.cos(xx / 55)
    z[:3, :3] = np.nan
    dem = tmp_path / "dem.tif"
    with rasterio.open(dem, "w", driver="GTiff", width=n, height=n, count=1, dtype="float32",
                       crs="EPSG:32647", transform=from_origin(500000, 4200000, 10, 10),
                       nodata=np.nan) as dst:  # fmt: skip
        dst.write(z.astype(np.float32), 1)
    out = tmp_path / "terrain"
    done = subprocess.run(
        [sys.executable, "-m", "thawdetect", "terrain", "derive", "--dem", str(dem), "--out",
         str(out), "--slope-deg", "1", "30", "--aspect-deg", "315", "45"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    written = sorted(out.glob("*.tif"))
    assert [p.name for p in written] == ["aspect_deg.tif", "slope_deg.tif", "terrain_mask.tif"]
    assert {p.name: cog_problems(p) for p in written} == {p.name: [] for p in written}
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left
    from thawdetect.plugins.terrain.derivatives import slope_aspect

    slope, aspect = slope_aspect(z, 10.0)
    with rasterio.open(out / "slope_deg.tif") as s, rasterio.open(out / "aspect_deg.tif") as a:
        assert s.overviews(1) and a.overviews(1)
        assert s.tags()["surface_fit"] == "Horn" and s.tags()["layer"] == "slope"
        np.testing.assert_array_equal(s.read(1), slope)
        np.testing.assert_array_equal(a.read(1), aspect)
        full = set(np.unique(aspect[np.isfinite(aspect)]))
        small = a.read(1, out_shape=(n // 4, n // 4))
        assert set(np.unique(small[np.isfinite(small)])) <= full  # nearest: real angles only
    with rasterio.open(out / "terrain_mask.tif") as m:
        assert m.nodata == 255 and m.overviews(1)
        assert set(np.unique(m.read(1, out_shape=(n // 4, n // 4)))) <= {0, 1, 255}
