"""One pixel of the run's layers: its values and, from a dated stack, its own time series.

A reviewer clicks the map (MintPy's ``tsview``): the page asks for the values of every layer of
the candidate's iteration under that point, and for the series of every stack of dated frames
(the InSAR detector's cumulative LOS displacement, ``displacement_mm.tif``, one band per date),
with the model y = a + b·t + c·cos(2πt) + d·sin(2πt) fitted by least squares (t in years since
the first date), drawn by the same code as a candidate's own series.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from thawdetect.web.layers import Layer
from thawdetect.web.state import clean, series_view

_ISO = re.compile(r"\d{4}-\d{2}-\d{2}")
#: A stack needs this many dates for the seasonal fit (four parameters and some redundancy);
#: with fewer, only the linear trend is fitted.
MIN_DATES_SEASONAL = 6


def _read_point(path: Path, bands: list[int], lon: float, lat: float) -> list[float] | None:
    """Values of ``bands`` at (lon, lat) (NaN for no-data), or None outside the raster."""
    import rasterio
    from rasterio.warp import transform as warp

    with rasterio.open(path) as src:
        xs, ys = warp("EPSG:4326", src.crs, [lon], [lat])
        row, col = src.index(xs[0], ys[0])
        if not (0 <= row < src.height and 0 <= col < src.width):
            return None
        window = ((row, row + 1), (col, col + 1))
        data = src.read(bands, window=window, masked=True).astype("float64")
    values = np.ma.filled(data[:, 0, 0], np.nan)
    return [float(v) for v in values]


def _short(base: str) -> str:
    """``cumulative LOS displacement`` -> ``LOS displacement`` (fits the plot's axis)."""
    return base.removeprefix("cumulative ").strip() or base


def fit_series(dates: list[date], values_mm: list[float]) -> dict[str, float] | None:
    """Least-squares a + b·t + c·cos(2πt) + d·sin(2πt), t in years since ``dates[0]``.

    With fewer than :data:`MIN_DATES_SEASONAL` valid dates only a + b·t is fitted (c = d = 0).

    Examples:
        >>> ds = [date(2018, 1, 1), date(2018, 7, 2), date(2019, 1, 1), date(2019, 7, 2)]
        >>> f = fit_series(ds, [0.0, -10.0, -20.0, -30.0])
        >>> round(f["b_mm_yr"], 1)
        -20.0
    """
    t = np.array([(d.toordinal() - dates[0].toordinal()) / 365.25 for d in dates])
    y = np.asarray(values_mm, dtype="float64")
    ok = np.isfinite(y)
    if ok.sum() < 2:
        return None
    t, y = t[ok], y[ok]
    cols = [np.ones_like(t), t]
    if ok.sum() >= MIN_DATES_SEASONAL:
        cols += [np.cos(2 * np.pi * t), np.sin(2 * np.pi * t)]
    coef, *_ = np.linalg.lstsq(np.column_stack(cols), y, rcond=None)
    coef = np.concatenate([coef, np.zeros(4 - coef.size)])
    return {k: float(v) for k, v in zip(("a_mm", "b_mm_yr", "c_mm", "d_mm"), coef, strict=True)}


def pixel_report(layers: list[Layer], iteration: int, lon: float, lat: float) -> dict[str, Any]:
    """Values of the layers of ``iteration`` (and the run's, e.g. the DEM) at one point.

    Returns:
        ``{"lon", "lat", "values": [{"label", "value", "units", "index"}], "series": [...]}``;
        each series is :func:`~thawdetect.web.state.series_view`'s dict plus ``"source"``.
    """
    values: list[dict[str, Any]] = []
    stacks: dict[tuple[Any, ...], list[Layer]] = defaultdict(list)
    wanted = [la for la in layers if la.iteration in (0, iteration) and la.kind != "rgb"]
    by_path: dict[Path, list[Layer]] = defaultdict(list)
    for la in wanted:
        by_path[la.path].append(la)
    read: dict[tuple[Path, int], float] = {}
    for path, group in by_path.items():
        bands = sorted({b for la in group for b in la.bands})
        try:
            got = _read_point(path, bands, lon, lat)
        except Exception:  # an unreadable raster only loses its values
            got = None
        if got is not None:
            read.update({(path, b): v for b, v in zip(bands, got, strict=True)})
    for la in wanted:
        v = read.get((la.path, la.bands[0]))
        if v is None:
            continue
        m = _ISO.search(la.date or "")
        if m and la.kind != "hillshade":
            stacks[(la.iteration, la.detector, la.base, str(la.path))].append(la)
            continue
        label = "elevation (DEM)" if la.kind == "hillshade" else la.label
        values.append(
            {"label": label, "value": v, "units": la.units, "index": la.index, "kind": la.kind}
        )
    series: list[dict[str, Any]] = []
    for (_, detector, base, _), members in stacks.items():
        if len(members) < 3:
            for la in members:
                values.append(
                    {"label": la.label, "value": read.get((la.path, la.bands[0])),
                     "units": la.units, "index": la.index, "kind": la.kind}
                )  # fmt: skip
            continue
        pts = sorted(
            (date.fromisoformat(_ISO.search(la.date).group(0)), read[(la.path, la.bands[0])])  # type: ignore[union-attr]
            for la in members
        )
        dates = [d for d, _ in pts]
        vals = [v for _, v in pts]
        if not any(math.isfinite(v) for v in vals):
            continue
        fit = fit_series(dates, vals)
        units = members[0].units or "mm"
        text = json.dumps(
            {
                "dates": [d.isoformat() for d in dates],
                "values_mm": [v if math.isfinite(v) else None for v in vals],
                "fit": fit,
                "fit_t0": dates[0].isoformat(),
                # the axis shows the part before the comma
                "label": f"{_short(base)} ({units}), at this pixel",
            }
        )
        view = series_view(text)
        if view is not None:
            view["source"] = f"{detector}: {base}, {len(dates)} dates of the run's stack"
            series.append(view)
    return clean({"lon": lon, "lat": lat, "values": values, "series": series})  # type: ignore[no-any-return]
