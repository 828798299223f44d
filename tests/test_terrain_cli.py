"""``thawdetect terrain stats|derive`` through the main CLI, and bad input as one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner
from tests.conftest import SHARED_DATA

from thawdetect.cli.main import cli

pytest.importorskip("xdem")

DATA = SHARED_DATA
SVALBARD_DEM = DATA / "dem" / "longyearbyen_svalbard" / "DEM_1995.tif"
NICU = DATA / "rts_inventories" / "arts_whrc" / "Nicu2021_svalbard" / "thaw_slides.shp"
BANKS = (
    DATA / "rts_inventories" / "arts_whrc" / "Huang2022_canadian_arctic" / "Banks_Island_slumps.shp"
)


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result, name: str) -> str:
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    assert name in lines[0]
    return lines[0]


def test_help_lists_terrain():
    result = run("terrain", "--help")
    assert result.exit_code == 0 and "stats" in result.output and "derive" in result.output


def test_stats_real_data(tmp_path):
    out = tmp_path / "stats.json"
    figs = tmp_path / "figs"
    result = run(
        "terrain",
        "stats",
        "--dem",
        SVALBARD_DEM,
        "--inventory",
        NICU,
        "--json",
        out,
        "--percentiles",
        "10",
        "90",
        "--steps",
        "3",
        "--figures",
        figs,
    )
    assert result.exit_code == 0, result.output
    assert "59 of 562 features" in result.output
    d = json.loads(out.read_text())
    assert d["percentiles"] == [10.0, 90.0] and len(d["schedule"]) == 3
    assert d["schedule"][-1]["kept_fraction"] == 1.0
    for name in ("elevation_hist.png", "slope_hist.png", "aspect_rose.png"):
        png = figs / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_derive_with_mask(tmp_path):
    result = run(
        "terrain",
        "derive",
        "--dem",
        SVALBARD_DEM,
        "--out",
        tmp_path,
        "--block-size",
        "512",
        "--slope-deg",
        "1",
        "30",
        "--aspect-deg",
        "315",
        "45",
        "--aspect-deg",
        "170",
        "190",
        "--surface-fit",
        "ZevenbergThorne",
    )
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "terrain_metadata.json").read_text())
    assert meta["surface_fit"] == "ZevenbergThorne"
    assert meta["mask_ranges"]["aspect_deg"][0] == {"min": 315.0, "max": 45.0}
    with rasterio.open(tmp_path / "terrain_mask.tif") as m:
        mask = m.read(1)
    assert set(np.unique(mask)) == {0, 1, 255}


class TestBadInput:
    def test_dem_without_crs(self, tmp_path):
        dem = tmp_path / "nocrs.tif"
        with rasterio.open(
            dem,
            "w",
            driver="GTiff",
            dtype="float32",
            count=1,
            width=20,
            height=20,
            transform=Affine(10, 0, 0, 0, -10, 0),
        ) as dst:
            dst.write(np.ones((20, 20), np.float32), 1)
        line = one_line_error(
            run("terrain", "derive", "--dem", dem, "--out", tmp_path / "o"), str(dem)
        )
        assert "no CRS" in line

    def test_all_nodata_dem(self, tmp_path):
        dem = tmp_path / "empty.tif"
        with rasterio.open(
            dem,
            "w",
            driver="GTiff",
            dtype="float32",
            count=1,
            width=20,
            height=20,
            transform=Affine(10, 0, 0, 0, -10, 0),
            crs="EPSG:32633",
            nodata=-9999,
        ) as dst:
            dst.write(np.full((20, 20), -9999, np.float32), 1)
        line = one_line_error(run("terrain", "stats", "--dem", dem, "--inventory", NICU), str(dem))
        assert "nodata" in line

    def test_inventory_outside_dem(self):
        line = one_line_error(
            run("terrain", "stats", "--dem", SVALBARD_DEM, "--inventory", BANKS), str(BANKS)
        )
        assert "no feature lies on valid cells" in line

    def test_aspect_outside_0_360(self, tmp_path):
        line = one_line_error(
            run(
                "terrain",
                "derive",
                "--dem",
                SVALBARD_DEM,
                "--out",
                tmp_path,
                "--aspect-deg",
                "300",
                "400",
            ),
            "aspect_deg.0.max",
        )
        assert "360" in line

    def test_min_above_max(self, tmp_path):
        line = one_line_error(
            run(
                "terrain",
                "derive",
                "--dem",
                SVALBARD_DEM,
                "--out",
                tmp_path,
                "--slope-deg",
                "30",
                "1",
            ),
            "slope_deg",
        )
        assert "above max" in line

    def test_bad_percentiles(self):
        line = one_line_error(
            run(
                "terrain",
                "stats",
                "--dem",
                SVALBARD_DEM,
                "--inventory",
                NICU,
                "--percentiles",
                "95",
                "5",
            ),
            "--percentiles",
        )
        assert "low < high" in line

    def test_bad_block_size(self, tmp_path):
        one_line_error(
            run(
                "terrain",
                "derive",
                "--dem",
                SVALBARD_DEM,
                "--out",
                tmp_path,
                "--block-size",
                "1000",
            ),
            "block_size",
        )
