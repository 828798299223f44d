"""Terrain attributes of candidate polygons (QTEC criteria, Xia et al. 2022)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
from affine import Affine

from thawdetect.plugin_api import (
    CRSMismatchError,
    GridSpec,
    InputError,
    TerrainLayers,
    distance_to_nearest,
    read_vector,
)
from thawdetect.plugins.terrain.dem import open_dem, read_block
from thawdetect.plugins.terrain.derivatives import halo_px, slope_aspect
from thawdetect.plugins.terrain.sampling import circular_mean_deg, feature_cells, pixel_window

__all__ = ["ATTRIBUTE_COLUMNS", "candidate_attributes", "headwall_upslope"]

ATTRIBUTE_COLUMNS = (
    "mean_elevation_m",
    "mean_slope_deg",
    "aspect_deg",
    "relief_m",
    "headwall_upslope",
    "distance_to_road_m",
    "near_road",
)

#: The highest cell must lie in this upslope fraction of the candidate's extent.
HEADWALL_UPSLOPE_FRACTION = 1.0 / 3.0


def headwall_upslope(
    x_m: np.ndarray, y_m: np.ndarray, elevation_m: np.ndarray, aspect_deg: float
) -> bool:
    """Whether the highest cell lies on the upslope edge of a candidate (QTEC criterion).

    The cells are projected onto the upslope direction (opposite to the candidate's mean
    aspect); the highest cell must fall in the upslope third of that extent.

    Args:
        x_m: cell centre eastings, metres.
        y_m: cell centre northings, metres.
        elevation_m: cell elevations, metres.
        aspect_deg: the candidate's mean aspect (direction it faces, 0 = north, clockwise).

    Examples:
        >>> x, y = np.meshgrid(np.arange(5.0), np.arange(5.0))
        >>> headwall_upslope(x.ravel(), y.ravel(), y.ravel(), 180.0)  # rises to the north
        True
        >>> headwall_upslope(x.ravel(), y.ravel(), -y.ravel(), 180.0)  # highest at the toe
        False
    """
    if elevation_m.size < 3 or not np.isfinite(aspect_deg):
        return False
    a = np.deg2rad(aspect_deg)
    t = -(x_m * np.sin(a) + y_m * np.cos(a))  # distance along the upslope direction
    span = t.max() - t.min()
    if span <= 0:
        return False
    top = t[int(np.argmax(elevation_m))]
    return bool(top - t.min() >= (1.0 - HEADWALL_UPSLOPE_FRACTION) * span)


def _window_layers(
    dem: Path, bounds: tuple[float, float, float, float], surface_fit: str
) -> TerrainLayers | None:
    """Layers of the DEM window covering ``bounds`` (DEM CRS) plus the kernel halo."""
    halo = halo_px(surface_fit)
    with open_dem(dem) as (src, meta):
        win = pixel_window(bounds, src.transform, (src.height, src.width), pad_px=halo + 1)
        if win is None:
            return None
        elev = read_block(src, win)
        transform = src.window_transform(win)
        grid = GridSpec(src.crs, transform, int(win.width), int(win.height))
    slope, aspect = slope_aspect(elev, grid.res[0], surface_fit)
    return TerrainLayers(elev, slope, aspect, grid, {"surface_fit": surface_fit, **meta})


def candidate_attributes(
    candidates: gpd.GeoDataFrame,
    dem: str | Path,
    *,
    roads: str | Path | gpd.GeoDataFrame | None = None,
    near_road_m: float = 500.0,
    surface_fit: str = "Horn",
) -> gpd.GeoDataFrame:
    """A copy of ``candidates`` with terrain and road-distance columns.

    Added columns: ``mean_elevation_m``, ``mean_slope_deg`` and ``relief_m`` (max - min elevation)
    of the cells inside each polygon, ``aspect_deg`` (circular mean), ``headwall_upslope`` (see
    :func:`headwall_upslope`), ``distance_to_road_m`` (centroid to the nearest road/railway line,
    NaN without roads) and ``near_road`` (distance ≤ ``near_road_m``). Polygons smaller than a
    cell use the cell under their representative point; features off the DEM get NaN/False.
    Only the DEM window around the candidates is read.

    Args:
        candidates: candidate polygons (or points), any CRS.
        dem: DEM raster, metres.
        roads: road/railway lines (file or frame, any CRS), or None.
        near_road_m: distance for ``near_road``, metres.
        surface_fit: xdem surface fit.

    Raises:
        InputError: candidates without CRS, unreadable DEM or roads.
    """
    dem = Path(dem)
    out = candidates.copy()
    n = len(out)
    cols: dict[str, np.ndarray] = {
        "mean_elevation_m": np.full(n, np.nan),
        "mean_slope_deg": np.full(n, np.nan),
        "aspect_deg": np.full(n, np.nan),
        "relief_m": np.full(n, np.nan),
        "headwall_upslope": np.zeros(n, dtype=bool),
        "distance_to_road_m": np.full(n, np.nan),
        "near_road": np.zeros(n, dtype=bool),
    }
    if n and candidates.crs is None:
        raise CRSMismatchError(None, "candidates have no CRS")
    if near_road_m < 0:
        raise InputError(None, f"near_road_m must be >= 0, got {near_road_m}")
    if n:
        with open_dem(dem) as (src, _meta):
            dem_crs = src.crs
        local = candidates.to_crs(dem_crs)
        layers = _window_layers(dem, tuple(local.total_bounds), surface_fit)
        if layers is not None:
            tr: Affine = layers.grid.transform
            for pos, rows, cc, _how in feature_cells(local.geometry, tr, layers.grid.shape):
                e = layers.elevation_m[rows, cc]
                s = layers.slope_deg[rows, cc]
                a = layers.aspect_deg[rows, cc]
                ok = np.isfinite(e)
                if not ok.any():
                    continue
                cols["mean_elevation_m"][pos] = float(e[ok].mean())
                cols["relief_m"][pos] = float(e[ok].max() - e[ok].min())
                if np.isfinite(s).any():
                    cols["mean_slope_deg"][pos] = float(np.nanmean(s))
                mean_aspect = circular_mean_deg(a)
                cols["aspect_deg"][pos] = mean_aspect
                x, y = tr * (cc[ok] + 0.5, rows[ok] + 0.5)
                cols["headwall_upslope"][pos] = headwall_upslope(
                    np.asarray(x), np.asarray(y), e[ok], mean_aspect
                )
        if roads is not None:
            if isinstance(roads, gpd.GeoDataFrame):
                if roads.crs is None:
                    raise CRSMismatchError(None, "roads have no CRS")
                lines = roads.to_crs(dem_crs)
            else:
                lines = read_vector(roads, crs=dem_crs, what="roads", allow_empty=True)
            dist = distance_to_nearest(local, lines)
            cols["distance_to_road_m"] = dist
            with np.errstate(invalid="ignore"):
                cols["near_road"] = np.asarray(dist <= near_road_m)
    for name, values in cols.items():
        out[name] = values
    return out
