"""GeoTIFF I/O on the InSAR grid: grid comparison, overlap checks, reading onto a grid, writing.

Every reader fails with a one-line :class:`~thawdetect.core.errors.InputError` that starts with the
file path.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from numpy.typing import NDArray
from rasterio.enums import Resampling

from thawdetect.plugin_api import CRSMismatchError, GridMismatchError, GridSpec, InputError

__all__ = ["check_overlap", "read_raster_on_grid", "same_grid", "write_geotiff"]


def same_grid(a: GridSpec, b: GridSpec, tol: float = 1e-6) -> bool:
    """Whether two grids are identical (CRS, shape, transform within ``tol`` of a pixel)."""
    if a.shape != b.shape or a.crs != b.crs:
        return False
    ta, tb = np.array(a.transform)[:6], np.array(b.transform)[:6]
    return bool(np.all(np.abs(ta - tb) <= tol * max(a.res)))


def check_overlap(path: str | Path, other: GridSpec, grid: GridSpec, what: str) -> None:
    """Raise :class:`GridMismatchError` when ``other`` does not overlap ``grid``."""
    from rasterio.warp import transform_bounds

    try:
        left, bottom, right, top = transform_bounds(other.crs, grid.crs, *other.bounds)
    except Exception as exc:
        raise CRSMismatchError(path, f"cannot transform {what} from {other.crs} ({exc})") from None
    gl, gb, gr, gt = grid.bounds
    if left >= gr or right <= gl or bottom >= gt or top <= gb:
        raise GridMismatchError(
            path,
            f"{what} does not overlap the InSAR grid ({what} bounds in {grid.crs}: "
            f"{left:.6g}, {bottom:.6g}, {right:.6g}, {top:.6g}; InSAR: "
            f"{gl:.6g}, {gb:.6g}, {gr:.6g}, {gt:.6g})",
        )


def read_raster_on_grid(
    path: str | Path,
    grid: GridSpec,
    *,
    what: str = "raster",
    resampling: Resampling = Resampling.bilinear,
) -> NDArray[np.float32]:
    """Read band 1 of a GeoTIFF onto ``grid`` (identical grids: copied; otherwise resampled).

    A raster on the same pixel lattice but with extra rows/columns (HyP3 masks) is cropped
    exactly. Nodata and cells outside the raster become NaN.

    Raises:
        InputError: unreadable, no CRS; GridMismatchError: no overlap.
    """
    from rasterio.warp import reproject

    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    try:
        src = rasterio.open(path)
    except rasterio.errors.RasterioIOError:
        raise InputError(path, f"cannot be opened as a raster ({what})") from None
    with src:
        if src.crs is None:
            raise CRSMismatchError(path, f"{what} has no CRS; assign one (gdal_edit.py -a_srs)")
        own = GridSpec(src.crs, src.transform, src.width, src.height)
        check_overlap(path, own, grid, what)
        if same_grid(own, grid):
            data = src.read(1, masked=True)
            return np.ma.filled(data.astype(np.float32), np.nan)
        if src.crs == grid.crs and np.allclose(own.res, grid.res):
            off = ~own.transform * (grid.transform.c, grid.transform.f)
            if np.allclose(off, np.round(off), atol=1e-6):
                from rasterio.windows import Window

                win = Window(round(off[0]), round(off[1]), grid.width, grid.height)
                data = src.read(1, window=win, boundless=True, masked=True)
                return np.ma.filled(data.astype(np.float32), np.nan)
        out = np.full(grid.shape, np.nan, dtype=np.float32)
        src_nodata = src.nodata
        reproject(
            rasterio.band(src, 1),
            out,
            src_nodata=src_nodata,
            dst_transform=grid.transform,
            dst_crs=grid.crs,
            dst_nodata=np.nan,
            resampling=resampling,
        )
        return out


def write_geotiff(
    path: str | Path,
    array: NDArray[Any],
    grid: GridSpec,
    *,
    nodata: float | None = None,
    tags: Mapping[str, str] | None = None,
    description: str | None = None,
) -> Path:
    """Write one band (float NaN nodata by default) as a Cloud-Optimised GeoTIFF (tiled,
    deflate-compressed, with overviews: :func:`thawdetect.core.cog.to_cog`).

    The raster is first made uncompressed in memory (``/vsimem``), so it is compressed once, by
    the COG copy (half the time of a compressed temporary file for a 1500² mask).
    """
    from thawdetect.plugin_api import to_cog

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if nodata is None and np.issubdtype(array.dtype, np.floating):
        nodata = float("nan")
    profile = {
        "driver": "GTiff",
        "width": grid.width,
        "height": grid.height,
        "count": 1,
        "dtype": array.dtype.name,
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": nodata,
    }
    if grid.width >= 256 and grid.height >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    with rasterio.MemoryFile(ext=".tif") as mem:
        with mem.open(**profile) as dst:
            dst.write(array, 1)
            if tags:
                dst.update_tags(**tags)
            if description:
                dst.set_band_description(1, description)
        return to_cog(mem.name, path, remove_src=False)
