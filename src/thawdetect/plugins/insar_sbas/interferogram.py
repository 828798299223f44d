"""One unwrapped interferogram (HyP3 ``*_unw_phase.tif``) as a LOS rate."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rasterio.enums import Resampling

from thawdetect.plugin_api import GridSpec, InputError
from thawdetect.plugins.insar_sbas.rasters import read_raster_on_grid
from thawdetect.plugins.insar_sbas.timefunc import parse_dates

__all__ = ["HYP3_NAME", "read_unw_rate"]

HYP3_NAME = re.compile(r"S1\w\w_(\d{8})T\d{6}_(\d{8})T\d{6}_")


def read_unw_rate(
    path: str | Path,
    *,
    wavelength_m: float,
    span_days: float | None = None,
    water_mask: str | Path | None = None,
    reference_yx: tuple[int, int] | None = None,
) -> tuple[NDArray[np.float32], GridSpec, dict[str, Any]]:
    """LOS rate (mm/yr) from one unwrapped interferogram (radians, HyP3 ``*_unw_phase.tif``).

    Displacement d = -phase·λ/4π (MintPy's sign: positive towards the satellite), referenced to
    ``reference_yx`` or, when None, to the median of valid pixels; rate = d / span. The span comes
    from a HyP3 file name (``S1AA_YYYYMMDDThhmmss_YYYYMMDDThhmmss_...``) or ``span_days``.
    Water (mask value 0) and phase nodata (0) become NaN.

    Raises:
        InputError: unreadable, no span, reference pixel masked; GridMismatchError: mask grid.
    """
    path = Path(path)
    m = HYP3_NAME.search(path.name)
    if m:
        d1, d2 = parse_dates(list(m.groups()))
        span = float((d2 - d1).days)
    elif span_days is not None:
        span = float(span_days)
    else:
        raise InputError(
            path,
            "no dates in the file name (HyP3 S1xx_YYYYMMDDThhmmss_YYYYMMDDThhmmss_...); "
            "set interferogram_span_days",
        )
    grid = GridSpec.from_raster(path)
    phase = read_raster_on_grid(path, grid, what="unwrapped phase")
    if water_mask is not None:
        wm = read_raster_on_grid(water_mask, grid, what="water mask", resampling=Resampling.nearest)
        phase[~(wm > 0)] = np.nan
    disp_mm = -phase * np.float32(wavelength_m / (4 * np.pi) * 1000.0)
    if reference_yx is not None:
        ref = _reference_value(disp_mm, reference_yx, path)
    else:
        ref = float(np.nanmedian(disp_mm)) if np.isfinite(disp_mm).any() else 0.0
    rate = ((disp_mm - ref) / np.float32(span / 365.25)).astype(np.float32)
    return rate, grid, {"span_days": span, "reference_mm": ref}


def _reference_value(a: NDArray[np.floating], yx: tuple[int, int], path: Path) -> float:
    y, x = yx
    if not (0 <= y < a.shape[0] and 0 <= x < a.shape[1]):
        raise InputError(path, f"reference point {yx} is outside the {a.shape} grid")
    v = float(a[y, x])
    if not np.isfinite(v):
        raise InputError(path, f"reference point {yx} is in a masked area (no data there)")
    return v
