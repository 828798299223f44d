"""Initiation period of each candidate from the multi-date images (Xia et al. 2022).

The QTEC inventory gives every RTS an initiation period read from the 2016-2020 time series. Here
the trained model is run on each date's image in a window around the candidate (bounding box plus
a margin, windowed reads), and the slump counts as present on a date when at least
``min_fraction`` of the pixels inside its outline reach the probability threshold. The initiation
period is the interval between the last date it was absent and the first date it was present:
``"2017-08-01/2018-08-01"`` (ISO 8601 interval), ``"before 2016-08-01"`` when it is present on the
first date, or None when it is present on no date but the mosaic's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.features import rasterize
from rasterio.windows import Window, from_bounds

from thawdetect.plugins.optical_dl.config import OpticalDLConfig
from thawdetect.plugins.optical_dl.images import compute_stretch, read_rgb
from thawdetect.plugins.optical_dl.infer import predict_array

MULTIPLE_PX = 32  # DeepLabv3+ (output stride 16) wants input sides divisible by 32


def _window(bounds: tuple[float, float, float, float], src: Any, margin_px: int) -> Window:
    w = from_bounds(*bounds, transform=src.transform).round_offsets().round_lengths()
    col0, row0 = int(w.col_off) - margin_px, int(w.row_off) - margin_px
    width = max(MULTIPLE_PX, -(-(int(w.width) + 2 * margin_px) // MULTIPLE_PX) * MULTIPLE_PX)
    height = max(MULTIPLE_PX, -(-(int(w.height) + 2 * margin_px) // MULTIPLE_PX) * MULTIPLE_PX)
    return Window(col0, row0, width, height)


def presence(
    candidates: gpd.GeoDataFrame,
    frames: list[tuple[str, Path]],
    session: Any,
    config: OpticalDLConfig,
    *,
    margin_px: int = 32,
) -> np.ndarray:
    """Boolean (candidates × dates): whether each candidate is predicted on each date's image."""
    out = np.zeros((len(candidates), len(frames)), dtype=bool)
    for j, (_, path) in enumerate(frames):
        stretch = compute_stretch(path, config)
        with rasterio.open(path) as src:
            geoms = candidates.to_crs(src.crs).geometry
            for i, geom in enumerate(geoms):
                window = _window(geom.bounds, src, margin_px)
                rgb, valid = read_rgb(src, window, config.rgb_bands, stretch)
                prob = predict_array(session, rgb[None])[0]
                inside = rasterize(
                    [geom],
                    out_shape=prob.shape,
                    transform=src.window_transform(window),
                    all_touched=False,
                ).astype(bool)
                inside &= valid
                if inside.any():
                    hit = prob[inside] >= config.probability_threshold
                    out[i, j] = hit.mean() >= config.initiation_min_fraction
    return out


def initiation_periods(present: np.ndarray, dates: list[str]) -> list[str | None]:
    """Initiation period per row of a presence matrix (dates ascending).

    Examples:
        >>> p = np.array([[False, True, True], [True, True, True], [False, False, False]])
        >>> initiation_periods(p, ["2016-08-01", "2017-08-01", "2018-08-01"])
        ['2016-08-01/2017-08-01', 'before 2016-08-01', None]
    """
    out: list[str | None] = []
    for row in present:
        idx = np.flatnonzero(row)
        if idx.size == 0:
            out.append(None)
        elif idx[0] == 0:
            out.append(f"before {dates[0]}")
        else:
            out.append(f"{dates[idx[0] - 1]}/{dates[idx[0]]}")
    return out
