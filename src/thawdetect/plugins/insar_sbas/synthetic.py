"""Synthetic SBAS time series (for the bundled sample, tests and the benchmark).

Everything written here is marked synthetic (HDF5 attribute ``THAWDETECT_SYNTHETIC``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from thawdetect.core.grid import GridSpec
from thawdetect.plugins.insar_sbas.mintpy_io import mintpy_attrs_for_grid
from thawdetect.plugins.insar_sbas.timefunc import design_matrix

__all__ = ["acquisition_dates", "model_series_m", "write_timeseries_h5"]

SYNTHETIC_NOTE = "SYNTHETIC data made by thawdetect for tests/samples; not a real observation"


def acquisition_dates(n: int, start: date = date(2018, 1, 3), step_days: int = 12) -> list[date]:
    """``n`` Sentinel-1-like acquisition dates every ``step_days`` days."""
    return [start + timedelta(days=step_days * i) for i in range(n)]


def model_series_m(
    dates: Sequence[date],
    rate_mm_yr: NDArray[np.floating],
    amplitude_pp_mm: NDArray[np.floating],
    phase_rad: NDArray[np.floating] | float = 0.0,
    period_yr: float = 1.0,
) -> NDArray[np.float64]:
    """Displacement in metres, shape ``(epochs, *rate.shape)``: b·t + (A/2)·sin(2πt/T + phase)."""
    G = design_matrix(dates, period_yr)
    t = G[:, 1]
    rate = np.asarray(rate_mm_yr, dtype=np.float64)
    half = np.asarray(amplitude_pp_mm, dtype=np.float64) / 2.0
    ph = np.broadcast_to(np.asarray(phase_rad, dtype=np.float64), rate.shape)
    w = 2 * np.pi / period_yr
    ts = rate[None] * t.reshape((-1,) + (1,) * rate.ndim)
    arg = w * t.reshape((-1,) + (1,) * rate.ndim) + ph[None]
    ts = ts + half[None] * np.sin(arg)
    ts = ts - ts[0:1]  # referenced to the first date, like MintPy
    return ts / 1000.0


def write_timeseries_h5(
    path: str | Path,
    ts_m: NDArray[np.floating],
    dates: Sequence[date],
    grid: GridSpec,
    *,
    ref_yx: tuple[int, int] = (0, 0),
    wavelength_m: float = 0.055465763,
    chunk_rows: int | None = None,
) -> Path:
    """Write a MintPy-layout ``timeseries.h5`` (datasets ``timeseries`` m, ``date``, ``bperp``).

    Args:
        path: output file.
        ts_m: displacement in metres, ``(epochs, rows, cols)``; may be a generator-filled array.
        dates: acquisition dates.
        grid: the geocoded grid (written as MintPy X_FIRST/Y_FIRST/... attributes).
        ref_yx: reference pixel (row, col).
        wavelength_m: radar wavelength.
        chunk_rows: HDF5 chunk height (default: MintPy's layout, one chunk per epoch block).
    """
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(dates)
    attrs = {
        "FILE_TYPE": "timeseries",
        "UNIT": "m",
        "PROCESSOR": "hyp3",
        "PLATFORM": "Sen",
        "WAVELENGTH": str(wavelength_m),
        "REF_DATE": dates[0].strftime("%Y%m%d"),
        "START_DATE": dates[0].strftime("%Y%m%d"),
        "END_DATE": dates[-1].strftime("%Y%m%d"),
        "REF_Y": str(ref_yx[0]),
        "REF_X": str(ref_yx[1]),
        "CENTER_LINE_UTC": "0",
        "THAWDETECT_SYNTHETIC": SYNTHETIC_NOTE,
        **mintpy_attrs_for_grid(grid),
    }
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        chunks = (n, chunk_rows, grid.width) if chunk_rows else True
        f.create_dataset("timeseries", data=np.asarray(ts_m, dtype=np.float32), chunks=chunks)
        f.create_dataset("date", data=np.array([d.strftime("%Y%m%d").encode() for d in dates]))
        f.create_dataset("bperp", data=np.zeros(n, dtype=np.float32))
        for k, v in attrs.items():
            f.attrs[k] = v
    tmp.replace(path)
    return path
