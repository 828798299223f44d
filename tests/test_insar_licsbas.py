"""LiCSBAS ``cum.h5``/``cum_filt.h5`` stacks as insar_sbas input.

The fixtures are written exactly as LiCSBAS writes them (``LiCSBAS13_sb_inv.py``: ``cum`` in mm,
``imdates`` int yyyymmdd, ``corner_lat``/``corner_lon``/``post_lat``/``post_lon`` scalars,
``refarea``; ``results/`` raw little-endian float32; ``GEOCml*/EQA.dem_par`` GAMMA text). The same
displacement written as a MintPy ``timeseries.h5`` must give the same products.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import h5py
import numpy as np
import pytest

from thawdetect.core.errors import InputError
from thawdetect.plugins.insar_sbas.config import InsarSbasConfig
from thawdetect.plugins.insar_sbas.licsbas import convert_licsbas, is_licsbas_cum, read_licsbas
from thawdetect.plugins.insar_sbas.mintpy_h5 import (
    mintpy_attrs_for_grid,
    read_timeseries_info,
    write_mintpy_h5,
)
from thawdetect.plugins.insar_sbas.products import load_products

ROWS, COLS = 40, 50
LAT0, LON0, DLAT, DLON = 38.2, 100.1, -0.0009, 0.0009  # pixel centres (GAMMA registration)


def _series() -> tuple[list[str], np.ndarray]:
    """28 epochs at 12 days; a landslide moving -40 mm/yr with a 10 mm annual cycle."""
    rng = np.random.default_rng(3)
    t0 = date(2019, 1, 5)
    days = np.arange(28) * 12
    dates = [(t0 + timedelta(days=int(d))).strftime("%Y%m%d") for d in days]
    t = days / 365.25
    cum = rng.normal(0, 1.0, (len(t), ROWS, COLS)).astype(np.float32)
    cum[:, 10:16, 20:27] += (-40 * t + 5 * np.sin(2 * np.pi * t))[:, None, None].astype(np.float32)
    cum -= cum[0]  # referenced to the first epoch and to refarea "3:4/5:6", as LiCSBAS13 does
    cum -= cum[:, 5:6, 3:4]
    return dates, cum


def _dem_par(path: Path) -> None:
    path.write_text(
        "Gamma DIFF&GEO DEM/MAP parameter file\n"
        "title: LiCSAR\nDEM_projection:     EQA\ndata_format:        REAL*4\n"
        f"width:                {COLS}\nnlines:               {ROWS}\n"
        f"corner_lat:     {LAT0}  decimal degrees\ncorner_lon:    {LON0}  decimal degrees\n"
        f"post_lat:   {DLAT} decimal degrees\npost_lon:    {DLON} decimal degrees\n"
        "ellipsoid_name: WGS 84\nellipsoid_ra:        6378137.000   m\n"
        "ellipsoid_reciprocal_flattening:  298.2572236\n"
    )


def write_licsbas(root: Path, *, corners: bool = True, results: bool = True) -> Path:
    """A LiCSBAS work folder: GEOCml1/EQA.dem_par and TS_GEOCml1/{cum.h5, results/}."""
    dates, cum = _series()
    geoc, ts = root / "GEOCml1", root / "TS_GEOCml1"
    (ts / "results").mkdir(parents=True)
    geoc.mkdir()
    _dem_par(geoc / "EQA.dem_par")
    cum_file = ts / "cum.h5"
    with h5py.File(cum_file, "w") as f:
        f.create_dataset("imdates", data=[np.int32(d) for d in dates])
        f.create_dataset("cum", data=cum, compression="gzip")
        f.create_dataset("vel", data=np.zeros((ROWS, COLS), np.float32), compression="gzip")
        f.create_dataset("vintercept", data=np.zeros((ROWS, COLS), np.float32))
        f.create_dataset("gap", data=np.zeros((len(dates) - 1, ROWS, COLS), np.int8))
        f.create_dataset("refarea", data="3:4/5:6")
        if corners:
            f.create_dataset("corner_lat", data=LAT0)
            f.create_dataset("corner_lon", data=LON0)
            f.create_dataset("post_lat", data=DLAT)
            f.create_dataset("post_lon", data=DLON)
    if results:
        coh = np.full((ROWS, COLS), 0.8, np.float32)
        coh[30:, :5] = 0.2
        coh.tofile(ts / "results" / "coh_avg")
        hgt = (3500 + 10 * np.arange(ROWS)[:, None] + np.zeros((1, COLS))).astype(np.float32)
        hgt.tofile(ts / "results" / "hgt")
        mask = np.ones((ROWS, COLS), np.float32)
        mask[0, 0] = 0
        mask.tofile(ts / "results" / "mask")
    return cum_file


def test_read_licsbas_grid_dates_and_layers(tmp_path: Path) -> None:
    cum = write_licsbas(tmp_path)
    assert is_licsbas_cum(cum)
    stack = read_licsbas(cum)
    assert stack.dates[0] == "20190105" and len(stack.dates) == 28
    # GeoTIFF-style origin: half a posting out from the corner pixel centre
    t = stack.grid.transform
    assert (t.c, t.f) == pytest.approx((LON0 - DLON / 2, LAT0 - DLAT / 2))
    assert (t.a, t.e) == pytest.approx((DLON, DLAT))
    assert stack.grid.crs.to_epsg() == 4326
    assert set(stack.layers) == {"coh_avg", "hgt", "mask"}
    assert stack.ref_yx == (5, 3)


def test_grid_from_eqa_dem_par_when_cum_has_no_corners(tmp_path: Path) -> None:
    a = read_licsbas(write_licsbas(tmp_path / "a"))
    b = read_licsbas(write_licsbas(tmp_path / "b", corners=False))
    assert b.grid.transform.almost_equals(a.grid.transform)
    assert b.grid_source.endswith("EQA.dem_par")


def test_conversion_keeps_mm_sign_and_mask(tmp_path: Path) -> None:
    cum = write_licsbas(tmp_path / "stack")
    out = convert_licsbas(cum, tmp_path / "cache")
    dates, _grid, attrs, shape = read_timeseries_info(out["timeseries"])
    assert shape == (28, ROWS, COLS) and attrs["UNIT"] == "mm"
    assert dates[0] == date(2019, 1, 5)
    with h5py.File(cum) as f, h5py.File(out["timeseries"]) as g:
        src, dst = f["cum"][()], g["timeseries"][()]
    assert np.isnan(dst[:, 0, 0]).all()  # masked by LiCSBAS15
    np.testing.assert_array_equal(dst[:, 1:, 1:], src[:, 1:, 1:])  # same sign, same mm
    assert {"coherence", "dem"} <= set(out)
    # a second conversion of the unchanged stack is the cached one
    assert convert_licsbas(cum, tmp_path / "cache") == out


def test_same_products_as_the_same_series_in_mintpy_format(tmp_path: Path) -> None:
    cum = write_licsbas(tmp_path / "stack", results=False)
    stack = read_licsbas(cum)
    with h5py.File(cum) as f:
        series = f["cum"][()]
    mintpy = write_mintpy_h5(
        tmp_path / "timeseries.h5",
        {"timeseries": series / 1000.0, "date": np.array([d.encode() for d in stack.dates])},
        {
            **mintpy_attrs_for_grid(stack.grid),
            "FILE_TYPE": "timeseries",
            "UNIT": "m",
            "REF_Y": "5",
            "REF_X": "3",
        },
    )
    runs = {}
    for name, ts in (("licsbas", cum), ("mintpy", mintpy)):
        cfg = InsarSbasConfig(timeseries_file=ts)
        work = tmp_path / name
        work.mkdir()
        runs[name] = load_products(cfg, run_dir=work, work_dir=work)
    a, b = runs["licsbas"], runs["mintpy"]
    assert a.grid.transform.almost_equals(b.grid.transform) and a.grid.shape == b.grid.shape
    np.testing.assert_allclose(a.rate_mm_yr, b.rate_mm_yr, rtol=1e-4, atol=1e-3)
    assert np.nanmean(a.rate_mm_yr[10:16, 20:27]) == pytest.approx(-40, abs=3)
    assert a.amplitude_pp_mm is not None and b.amplitude_pp_mm is not None
    np.testing.assert_allclose(a.amplitude_pp_mm, b.amplitude_pp_mm, rtol=1e-4, atol=1e-3)


def test_licsbas_layers_become_coherence_and_dem(tmp_path: Path) -> None:
    cum = write_licsbas(tmp_path / "stack")
    cfg = InsarSbasConfig(timeseries_file=cum)
    p = load_products(cfg, run_dir=tmp_path, work_dir=tmp_path)
    assert p.coherence is not None and p.coherence[35, 2] == pytest.approx(0.2)
    assert p.dem is not None and p.dem.name == "dem.tif"
    assert np.isnan(p.rate_mm_yr[0, 0])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("no_imdates", "no 'imdates' dataset"),
        ("no_grid", "cannot place it"),
        ("short_results", "a LiCSBAS float32 layer of 40x50"),
        ("bad_dem_par", "not a GAMMA EQA.dem_par"),
    ],
)
def test_missing_pieces_give_one_line(tmp_path: Path, damage: str, message: str) -> None:
    cum = write_licsbas(tmp_path, corners=damage == "short_results")
    if damage == "no_imdates":
        with h5py.File(cum, "a") as f:
            del f["imdates"]
    elif damage == "no_grid":
        (tmp_path / "GEOCml1" / "EQA.dem_par").unlink()
    elif damage == "short_results":
        (tmp_path / "TS_GEOCml1" / "results" / "hgt").write_bytes(b"\0" * 100)
    else:
        (tmp_path / "GEOCml1" / "EQA.dem_par").write_text("width: 50\n")
    with pytest.raises(InputError) as err:
        read_licsbas(cum)
    text = str(err.value)
    assert message in text and "\n" not in text
