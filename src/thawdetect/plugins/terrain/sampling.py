"""Which DEM cells belong to each feature of a vector layer (points or polygons)."""

from __future__ import annotations

from collections.abc import Iterator

import geopandas as gpd
import numpy as np
import pandas as pd
from affine import Affine
from numpy.typing import NDArray
from rasterio.features import geometry_mask
from rasterio.windows import Window, from_bounds

from thawdetect.plugin_api import TerrainLayers

__all__ = ["circular_mean_deg", "feature_cells", "feature_summaries", "pixel_window"]


def circular_mean_deg(angles_deg: NDArray[np.floating]) -> float:
    """Circular mean of compass angles in degrees, in [0, 360); NaN for no angle.

    Examples:
        >>> round(circular_mean_deg(np.array([350.0, 10.0])), 6) % 360
        0.0
    """
    a = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    a = a[np.isfinite(a)]
    if a.size == 0:
        return float("nan")
    return float(np.rad2deg(np.arctan2(np.sin(a).mean(), np.cos(a).mean())) % 360.0)


def _cell_of(
    x: float, y: float, transform: Affine, shape: tuple[int, int]
) -> tuple[int, int] | None:
    col, row = ~transform * (x, y)
    r, c = int(np.floor(row)), int(np.floor(col))
    if 0 <= r < shape[0] and 0 <= c < shape[1]:
        return r, c
    return None


def pixel_window(
    bounds: tuple[float, float, float, float],
    transform: Affine,
    shape: tuple[int, int],
    pad_px: int = 0,
) -> Window | None:
    """Integer window of a grid covering ``bounds`` (grown by ``pad_px``), clipped; None if off it.

    Examples:
        >>> pixel_window((10, -35, 25, -5), Affine(10, 0, 0, 0, -10, 0), (4, 4))
        Window(col_off=1, row_off=0, width=2, height=4)
    """
    win = from_bounds(*bounds, transform=transform)
    c0 = max(int(np.floor(win.col_off)) - pad_px, 0)
    r0 = max(int(np.floor(win.row_off)) - pad_px, 0)
    c1 = min(int(np.ceil(win.col_off + win.width)) + pad_px, shape[1])
    r1 = min(int(np.ceil(win.row_off + win.height)) + pad_px, shape[0])
    if c1 <= c0 or r1 <= r0:
        return None
    return Window(c0, r0, c1 - c0, r1 - r0)


def feature_cells(
    geoms: gpd.GeoSeries, transform: Affine, shape: tuple[int, int]
) -> Iterator[tuple[int, NDArray[np.intp], NDArray[np.intp], str]]:
    """Yield ``(position, rows, cols, how)`` for each feature that touches the grid.

    Polygons take the cells whose centres lie inside them (rasterio's rule); a polygon smaller
    than that (no centre inside) takes the cell under its representative point. Points take the
    cell they fall in. ``how`` is ``"cells"``, ``"point"`` or ``"representative point"``.
    Features off the grid are skipped. The loop is over features, never pixels.

    Args:
        geoms: geometries in the grid's CRS.
        transform: the grid's affine transform.
        shape: (rows, cols) of the grid.
    """
    for pos, geom in enumerate(geoms):
        if geom is None or geom.is_empty:
            continue
        if geom.geom_type in ("Point", "MultiPoint"):
            p = geom if geom.geom_type == "Point" else geom.centroid
            cell = _cell_of(p.x, p.y, transform, shape)
            if cell is not None:
                yield pos, np.array([cell[0]]), np.array([cell[1]]), "point"
            continue
        win = pixel_window(geom.bounds, transform, shape)
        if win is None:
            continue
        h, w = int(win.height), int(win.width)
        inside = np.zeros((0,), dtype=bool)
        if h > 0 and w > 0:
            wt = transform * Affine.translation(win.col_off, win.row_off)
            inside = geometry_mask([geom], out_shape=(h, w), transform=wt, invert=True)
        if inside.any():
            rr, cc = np.nonzero(inside)
            yield pos, rr + int(win.row_off), cc + int(win.col_off), "cells"
            continue
        p = geom.representative_point()
        cell = _cell_of(p.x, p.y, transform, shape)
        if cell is not None:
            yield pos, np.array([cell[0]]), np.array([cell[1]]), "representative point"


def feature_summaries(layers: TerrainLayers, geoms: gpd.GeoSeries) -> pd.DataFrame:
    """One row per feature: median elevation and slope, circular mean aspect of its cells.

    Args:
        layers: terrain layers; ``geoms`` must be in ``layers.grid.crs``.
        geoms: points or polygons.

    Returns:
        DataFrame indexed like ``geoms`` (positions) with ``elevation_m``, ``slope_deg``,
        ``aspect_deg``, ``n_cells`` (valid cells used) and ``sampled_by``; features off the grid
        or without any valid cell have NaN values and ``n_cells`` 0.
    """
    n = len(geoms)
    out = pd.DataFrame(
        {
            "elevation_m": np.full(n, np.nan),
            "slope_deg": np.full(n, np.nan),
            "aspect_deg": np.full(n, np.nan),
            "n_cells": np.zeros(n, dtype=int),
            "sampled_by": ["outside DEM"] * n,
        }
    )
    for pos, rows, cols, how in feature_cells(geoms, layers.grid.transform, layers.grid.shape):
        e = layers.elevation_m[rows, cols]
        s = layers.slope_deg[rows, cols]
        a = layers.aspect_deg[rows, cols]
        ok = np.isfinite(e) & np.isfinite(s) & np.isfinite(a)
        out.loc[pos, "sampled_by"] = how if ok.any() else "nodata"
        if not ok.any():
            continue
        out.loc[pos, "elevation_m"] = float(np.median(e[ok]))
        out.loc[pos, "slope_deg"] = float(np.median(s[ok]))
        out.loc[pos, "aspect_deg"] = circular_mean_deg(a[ok])
        out.loc[pos, "n_cells"] = int(ok.sum())
    out.index = geoms.index
    return out
