"""Seasonal deformation model y = a + b·t + c·cos(2πt/T) + d·sin(2πt/T), fitted per pixel.

The design matrix is MintPy's (``mintpy.utils.time_func``): ``t`` in decimal years
(``year + (day_of_year - 1) / 365.25``) relative to the first date, columns
``[1, t, cos(2πt/T), sin(2πt/T)]``. The fit is vectorized over pixels in chunks (bounded memory):
pixels valid at every epoch share one pseudo-inverse (a single matrix product); pixels with some
NaN epochs solve their own 4×4 normal equations (batched). Pixels with fewer than ``min_epochs``
valid epochs, or an ill-conditioned epoch set, are NaN.

Conventions:
    * ``seasonal_amplitude_pp_mm`` is the peak-to-peak amplitude A = 2·sqrt(c² + d²) (Wei et al.).
      MintPy's ``annualAmplitude`` is sqrt(c² + d²): half of it.
    * ``phase_rad`` = atan2(c, d), as MintPy's ``annualPhase``: the seasonal term is
      (A/2)·sin(2πt/T + phase).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from thawdetect.plugin_api import InputError

__all__ = ["SeasonalFit", "decimal_years", "design_matrix", "fit_seasonal", "parse_dates"]

N_PARAMS = 4
_UNIT_TO_MM = {"m": 1000.0, "cm": 10.0, "mm": 1.0}


@dataclass
class SeasonalFit:
    """Per-pixel fit results (arrays shaped like the input's spatial dimensions).

    Attributes:
        offset_mm: a, displacement at the first date, mm.
        rate_mm_yr: b, linear rate, mm/yr.
        cos_mm: c, mm.
        sin_mm: d, mm.
        seasonal_amplitude_pp_mm: A = 2·sqrt(c² + d²), peak-to-peak, mm.
        phase_rad: atan2(c, d), radians (MintPy's ``annualPhase``).
        residual_rms_mm: RMS of the residuals over valid epochs, mm.
        valid_epochs: number of finite epochs per pixel.
        t0: the date t = 0 refers to (the first date).
        period_yr: the seasonal period T, years.
    """

    offset_mm: NDArray[np.float64]
    rate_mm_yr: NDArray[np.float64]
    cos_mm: NDArray[np.float64]
    sin_mm: NDArray[np.float64]
    seasonal_amplitude_pp_mm: NDArray[np.float64]
    phase_rad: NDArray[np.float64]
    residual_rms_mm: NDArray[np.float64]
    valid_epochs: NDArray[np.int32]
    t0: date
    period_yr: float = 1.0

    #: The per-pixel array attributes, in order (for concatenating, caching, masking).
    ARRAY_FIELDS: ClassVar[tuple[str, ...]] = (
        "offset_mm",
        "rate_mm_yr",
        "cos_mm",
        "sin_mm",
        "seasonal_amplitude_pp_mm",
        "phase_rad",
        "residual_rms_mm",
        "valid_epochs",
    )

    def params_at(self, index: tuple[int, ...] | int) -> dict[str, float]:
        """The fit at one pixel as ``TimeSeries.fit`` keys (a_mm, b_mm_yr, c_mm, d_mm)."""
        return {
            "a_mm": float(self.offset_mm[index]),
            "b_mm_yr": float(self.rate_mm_yr[index]),
            "c_mm": float(self.cos_mm[index]),
            "d_mm": float(self.sin_mm[index]),
        }


def parse_dates(values: Sequence[str | bytes | date]) -> list[date]:
    """Dates from MintPy's ``date`` dataset (``b'20170101'``) or ISO strings or dates."""
    out = []
    for v in values:
        if isinstance(v, datetime):
            out.append(v.date())
        elif isinstance(v, date):
            out.append(v)
        else:
            s = v.decode() if isinstance(v, bytes) else str(v)
            s = s.strip().replace("-", "")[:8]
            out.append(datetime.strptime(s, "%Y%m%d").date())
    return out


def decimal_years(dates: Sequence[date]) -> NDArray[np.float64]:
    """MintPy's decimal year: ``year + (day_of_year - 1) / 365.25``."""
    return np.array(
        [d.year + (d.timetuple().tm_yday - 1) / 365.25 for d in dates], dtype=np.float64
    )


def design_matrix(dates: Sequence[date], period_yr: float = 1.0) -> NDArray[np.float64]:
    """Design matrix ``[1, t, cos(2πt/T), sin(2πt/T)]`` with t in years since the first date."""
    t = decimal_years(dates)
    t = t - t[0]
    w = 2.0 * np.pi / period_yr
    return np.column_stack([np.ones_like(t), t, np.cos(w * t), np.sin(w * t)])


def fit_seasonal(
    ts: NDArray[np.floating],
    dates: Sequence[date | str],
    *,
    unit: str = "m",
    period_yr: float = 1.0,
    chunk_pixels: int = 250_000,
    min_epochs: int = 10,
    max_condition: float = 1e8,
    source: str | None = None,
) -> SeasonalFit:
    """Fit y = a + b·t + c·cos(2πt/T) + d·sin(2πt/T) to every pixel of a time series.

    Args:
        ts: displacement, shape ``(epochs, ...)`` (e.g. ``(epochs, rows, cols)``); NaN = no data.
        dates: acquisition dates, one per epoch, increasing.
        unit: unit of ``ts``: ``"m"`` (MintPy), ``"cm"`` or ``"mm"``. Outputs are in mm.
        period_yr: seasonal period T in years.
        chunk_pixels: pixels solved at once (memory ≈ 8 · epochs · chunk_pixels bytes × 3).
        min_epochs: pixels with fewer finite epochs are NaN (at least 5).
        max_condition: pixels whose epoch set gives a worse-conditioned system are NaN.
        source: file name for error messages.

    Returns:
        A :class:`SeasonalFit` with arrays shaped ``ts.shape[1:]``.

    Raises:
        InputError: fewer epochs than parameters, dates not matching epochs, unknown unit.
    """
    dates = parse_dates(dates)
    n_epochs = ts.shape[0]
    if len(dates) != n_epochs:
        raise InputError(source, f"{len(dates)} dates for {n_epochs} epochs")
    if n_epochs < N_PARAMS + 1:
        raise InputError(
            source,
            f"time series has {n_epochs} epochs, fewer than the {N_PARAMS + 1} needed to fit "
            f"{N_PARAMS} parameters (offset, rate, cos, sin) with a residual",
        )
    if unit not in _UNIT_TO_MM:
        raise InputError(source, f"unknown displacement unit '{unit}' (expected m, cm or mm)")
    if any(b <= a for a, b in itertools.pairwise(dates)):
        raise InputError(source, "dates are not strictly increasing")
    min_epochs = min(max(int(min_epochs), N_PARAMS + 1), n_epochs)
    scale = _UNIT_TO_MM[unit]

    G = design_matrix(dates, period_yr)
    G_pinv = np.linalg.pinv(G)
    # products G[e,k]·G[e,l] for the per-pixel normal equations of partially valid pixels
    GG = (G[:, :, None] * G[:, None, :]).reshape(n_epochs, N_PARAMS * N_PARAMS)

    spatial = ts.shape[1:]
    n_pix = int(np.prod(spatial)) if spatial else 1
    flat = ts.reshape(n_epochs, n_pix)
    m = np.full((N_PARAMS, n_pix), np.nan)
    rms = np.full(n_pix, np.nan)
    nvalid = np.zeros(n_pix, dtype=np.int32)

    for start in range(0, n_pix, chunk_pixels):
        stop = min(start + chunk_pixels, n_pix)
        Y = flat[:, start:stop]
        valid = np.isfinite(Y)
        nv = valid.sum(axis=0)
        nvalid[start:stop] = nv
        full = nv == n_epochs  # min_epochs <= n_epochs, so these always qualify
        if full.all():
            # the common case: one matrix product in the data's precision (float32 for MintPy
            # files, as MintPy itself solves), accumulated and returned in float64
            dt = Y.dtype if Y.dtype in (np.float32, np.float64) else np.float64
            mc = (G_pinv.astype(dt) @ Y).astype(np.float64)
            resid = Y - (G.astype(dt) @ mc.astype(dt))
        else:
            Y = np.asarray(Y, dtype=np.float64)
            mc = np.full((N_PARAMS, stop - start), np.nan)
            if full.any():
                mc[:, full] = G_pinv @ Y[:, full]
            part = (~full) & (nv >= min_epochs)
            if part.any():
                W = valid[:, part].astype(np.float64)
                Y0 = np.where(valid[:, part], Y[:, part], 0.0)
                N = (W.T @ GG).reshape(-1, N_PARAMS, N_PARAMS)
                b = (G.T @ Y0).T
                cond = np.linalg.cond(N)
                ok = np.isfinite(cond) & (cond < max_condition)
                sol = np.full((part.sum(), N_PARAMS), np.nan)
                if ok.any():
                    sol[ok] = np.linalg.solve(N[ok], b[ok][..., None])[..., 0]
                mc[:, part] = sol.T
            resid = np.where(valid, Y, 0.0) - G @ np.nan_to_num(mc)
            resid *= valid
        ss = np.einsum("ij,ij->j", resid, resid, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.sqrt(ss / np.maximum(nv, 1))
        r[~np.isfinite(mc[0])] = np.nan
        m[:, start:stop] = mc
        rms[start:stop] = r

    m *= scale
    rms *= scale
    c, d = m[2], m[3]
    amp = 2.0 * np.hypot(c, d)
    phase = np.arctan2(c, d)
    shape = spatial
    return SeasonalFit(
        offset_mm=m[0].reshape(shape),
        rate_mm_yr=m[1].reshape(shape),
        cos_mm=c.reshape(shape),
        sin_mm=d.reshape(shape),
        seasonal_amplitude_pp_mm=amp.reshape(shape),
        phase_rad=phase.reshape(shape),
        residual_rms_mm=rms.reshape(shape),
        valid_epochs=nvalid.reshape(shape),
        t0=dates[0],
        period_yr=period_yr,
    )
