"""Whole-array terrain layers of a DEM, optionally resampled onto another detector's grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from thawdetect.plugin_api import GridSpec, InputError, TerrainLayers
from thawdetect.plugins.terrain.config import ASPECT_CONVENTION, FLAT_ASPECT_DEG, FLAT_SLOPE_DEG
from thawdetect.plugins.terrain.dem import open_dem
from thawdetect.plugins.terrain.derivatives import slope_aspect_of

__all__ = ["compute_layers", "warp_layers"]


def compute_layers(
    dem: str | Path, grid: GridSpec | None = None, *, surface_fit: str = "Horn"
) -> TerrainLayers:
    """Elevation, slope and aspect of ``dem`` as float32 arrays (NaN = no data).

    Slope and aspect are always computed on the DEM's own metric grid (the native one, or the
    local UTM zone for a geographic DEM), then resampled onto ``grid`` when one is given:
    elevation and slope bilinear, aspect bilinear on its (sin, cos) unit vector so that 359° and
    1° average to 0°, not 180°. ``metadata`` records these choices, the surface fit and the aspect
    convention.

    Args:
        dem: DEM raster, elevations in metres, any CRS.
        grid: target grid (e.g. an InSAR velocity grid); the DEM's metric grid when None.
        surface_fit: xdem surface fit (``"Horn"``, ``"ZevenbergThorne"``, ``"Florinsky"``).

    Raises:
        InputError: unreadable DEM, no CRS, no valid cell, or no overlap with ``grid``.
    """
    dem = Path(dem)
    with open_dem(dem) as (src, grid_meta):
        native = GridSpec(src.crs, src.transform, src.width, src.height)
    # block by block in Dask tasks that read the DEM by path (identical to the whole array)
    elevation, slope, aspect = slope_aspect_of(dem, surface_fit)
    if not np.isfinite(elevation).any():
        raise InputError(dem, "DEM holds no valid elevation: every cell is nodata")
    metadata = {
        "source_dem": str(dem),
        "surface_fit": surface_fit,
        "aspect_convention": ASPECT_CONVENTION,
        "flat_slope_deg": FLAT_SLOPE_DEG,
        "flat_aspect_deg": FLAT_ASPECT_DEG,
        "derivatives_computed_on": grid_meta["derivative_grid"],
        "resampling": None,
    }
    layers = TerrainLayers(elevation, slope, aspect, native, metadata)
    if grid is not None:
        layers = warp_layers(layers, grid, source=dem)
    return layers


def _warp(
    arr: NDArray[np.float32], src: GridSpec, dst: GridSpec, resampling: str
) -> NDArray[np.float32]:
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    out = np.full(dst.shape, np.nan, dtype=np.float32)
    reproject(
        arr,
        out,
        src_transform=src.transform,
        src_crs=src.crs,
        src_nodata=np.nan,
        dst_transform=dst.transform,
        dst_crs=dst.crs,
        dst_nodata=np.nan,
        resampling=Resampling[resampling],
    )
    return out


def warp_layers(
    layers: TerrainLayers, grid: GridSpec, *, source: str | Path | None = None
) -> TerrainLayers:
    """Resample layers onto ``grid`` (rasterio.warp): bilinear; aspect through its unit vector.

    Args:
        layers: layers on their own grid.
        grid: the target grid.
        source: file named in errors.

    Raises:
        InputError: the target grid holds no valid cell of the DEM (no overlap).
    """
    src = layers.grid
    elevation = _warp(layers.elevation_m, src, grid, "bilinear")
    slope = _warp(layers.slope_deg, src, grid, "bilinear")
    rad = np.deg2rad(layers.aspect_deg.astype(np.float64))
    east = _warp(np.sin(rad).astype(np.float32), src, grid, "bilinear")
    north = _warp(np.cos(rad).astype(np.float32), src, grid, "bilinear")
    aspect = (np.rad2deg(np.arctan2(east, north)) % 360.0).astype(np.float32)
    aspect[aspect >= 360.0] = 0.0
    aspect[slope < FLAT_SLOPE_DEG] = FLAT_ASPECT_DEG
    invalid = ~(np.isfinite(elevation) & np.isfinite(slope) & np.isfinite(aspect))
    slope[invalid] = np.nan
    aspect[invalid] = np.nan
    if not np.isfinite(elevation).any():
        from rasterio.transform import array_bounds

        south, west, north, east = array_bounds(grid.height, grid.width, grid.transform)
        raise InputError(
            source or layers.metadata.get("source_dem"),
            f"DEM does not overlap the target grid (bounds {west:.6g}, {south:.6g}, {east:.6g}, "
            f"{north:.6g} in {grid.crs.to_string()})",
        )
    metadata = dict(layers.metadata)
    metadata["resampling"] = {
        "elevation_m": "bilinear",
        "slope_deg": "bilinear",
        "aspect_deg": "bilinear on the (sin, cos) unit vector, then atan2",
        "target_crs": grid.crs.to_string(),
        "target_res": list(grid.res),
    }
    return TerrainLayers(elevation, slope, aspect, grid, metadata)
