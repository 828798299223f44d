"""A LiCSBAS stack through the real CLI: ``thawdetect run --detector insar_sbas --config``.

The stack is written in LiCSBAS's own layout (``GEOCml1/EQA.dem_par``, ``TS_GEOCml1/cum_filt.h5``
with ``cum`` in mm and ``imdates``, raw float32 ``results/{coh_avg,hgt,mask}``; see
``tests/test_insar_licsbas.py``) with a few planted moving patches on an east-facing slope.
The run (inline synthetic region, reference reviewer on the planted outlines) must finish and
its candidates must cover the planted patches.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import geopandas as gpd
import h5py
import numpy as np
import pytest
import yaml
from shapely.geometry import box

from thawdetect.core.cog import cog_problems

ROWS, COLS, EPOCHS = 80, 80, 40
LAT0, LON0, DLAT, DLON = 38.2, 100.1, -0.0009, 0.0009  # pixel centres (GAMMA registration)
#: (row, col, size px, LOS rate mm/yr; negative = away from the satellite)
PATCHES = [(12, 14, 7, -70.0), (15, 55, 6, -60.0), (50, 20, 7, -65.0), (55, 58, 6, -75.0)]


def _write_stack(root: Path) -> Path:
    rng = np.random.default_rng(24)
    t0 = date(2019, 1, 5)
    days = np.arange(EPOCHS) * 12
    dates = [(t0 + timedelta(days=int(d))).strftime("%Y%m%d") for d in days]
    t = days / 365.25
    cum = rng.normal(0, 1.5, (EPOCHS, ROWS, COLS)).astype(np.float32)
    for r, c, n, rate in PATCHES:
        motion = rate * t + 6 * np.sin(2 * np.pi * t)  # trend + a 12 mm peak-to-peak season
        cum[:, r : r + n, c : c + n] += motion[:, None, None].astype(np.float32)
    cum -= cum[0]  # referenced to the first epoch and to refarea, as LiCSBAS13 does
    cum -= cum[:, 70:71, 40:41]
    geoc, ts = root / "GEOCml1", root / "TS_GEOCml1"
    (ts / "results").mkdir(parents=True)
    geoc.mkdir()
    (geoc / "EQA.dem_par").write_text(
        "Gamma DIFF&GEO DEM/MAP parameter file\ntitle: LiCSAR\nDEM_projection:     EQA\n"
        f"data_format:        REAL*4\nwidth:                {COLS}\nnlines:               {ROWS}\n"
        f"corner_lat:     {LAT0}  decimal degrees\ncorner_lon:    {LON0}  decimal degrees\n"
        f"post_lat:   {DLAT} decimal degrees\npost_lon:    {DLON} decimal degrees\n"
        "ellipsoid_name: WGS 84\n"
    )
    cum_file = ts / "cum_filt.h5"
    with h5py.File(cum_file, "w") as f:
        f.create_dataset("imdates", data=[np.int32(d) for d in dates])
        f.create_dataset("cum", data=cum, compression="gzip")
        f.create_dataset("vel", data=np.zeros((ROWS, COLS), np.float32))
        f.create_dataset("refarea", data="40:41/70:71")
    coh = np.full((ROWS, COLS), 0.9, np.float32)
    coh[:4, 70:] = 0.1
    coh.tofile(ts / "results" / "coh_avg")
    # an east-facing slope (~3°) from 3950 m down to 3634 m, inside the first schedule row's
    # 3600-4000 m and 1-30°
    hgt = (3950 - 4.0 * np.arange(COLS)[None, :] + np.zeros((ROWS, 1))).astype(np.float32)
    hgt.tofile(ts / "results" / "hgt")
    np.ones((ROWS, COLS), np.float32).tofile(ts / "results" / "mask")
    return cum_file


def _planted(path: Path) -> gpd.GeoDataFrame:
    shapes = []
    for r, c, n, _rate in PATCHES:
        x0, y0 = LON0 - DLON / 2 + c * DLON, LAT0 - DLAT / 2 + r * DLAT
        shapes.append(box(x0, y0 + n * DLAT, x0 + n * DLON, y0))
    planted = gpd.GeoDataFrame({"name": range(len(shapes))}, geometry=shapes, crs="EPSG:4326")
    planted.to_file(path, driver="GPKG")
    return planted


@pytest.fixture(scope="module")
def licsbas_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, gpd.GeoDataFrame]:
    d = tmp_path_factory.mktemp("licsbas-run")
    cum = _write_stack(d / "licsbas")
    planted = _planted(d / "planted.gpkg")
    cfg = {
        "region": {"name": "licsbas-frame", "crs": "EPSG:32647", "synthetic": True},
        "detectors": {"insar_sbas": {"timeseries_file": str(cum)}},
        "reviewer": f"reference:{d / 'planted.gpkg'}",
        "evidence": False,
    }
    (d / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    run = d / "run"
    done = subprocess.run(
        [sys.executable, "-m", "thawdetect", "run", "--detector", "insar_sbas", "--config",
         str(d / "cfg.yaml"), "--output-dir", str(run)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return run, planted


def test_licsbas_stack_runs_to_the_end_and_finds_the_planted_patches(
    licsbas_run: tuple[Path, gpd.GeoDataFrame],
) -> None:
    from thawdetect.core.run.ledger import Ledger

    run, planted = licsbas_run
    assert json.loads((run / "manifest.json").read_text())["status"] == "finished"
    cands = Ledger(run).read("candidates")
    assert len(cands) == len(PATCHES)
    assert (cands["status"] == "confirmed").all()
    # each planted patch is one candidate on the right ground: the grid from LiCSBAS's corner
    # (pixel centres) and postings, the mm and the sign kept
    truth = planted.to_crs(cands.crs)
    for i, patch in enumerate(truth.geometry):
        over = cands.geometry.intersection(patch).area
        best = cands.loc[over.idxmax()]
        iou = over.max() / best.geometry.union(patch).area
        assert iou >= 0.95, (i, iou)  # half a posting off would give ~0.75
        rate = PATCHES[i][3]
        assert best["insar_sbas__core_rate_mm_yr"] == pytest.approx(rate, abs=5)


def test_licsbas_run_rasters_are_cogs(licsbas_run: tuple[Path, gpd.GeoDataFrame]) -> None:
    run, _ = licsbas_run
    rasters = sorted(run.rglob("*.tif"))
    assert any(p.name == "dem.tif" for p in rasters)  # LiCSBAS hgt became the DEM
    bad = {str(p.relative_to(run)): cog_problems(p) for p in rasters}
    assert {k: v for k, v in bad.items() if v} == {}
