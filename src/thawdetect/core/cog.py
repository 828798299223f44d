"""Cloud-Optimised GeoTIFFs: what every raster a run writes ends as.

A writer makes its GeoTIFF as before (any layout, a temporary name), then :func:`to_cog` copies it
through GDAL's COG driver: 256 px tiles, internal overviews down to one tile, DEFLATE, tags and
band descriptions kept, and the final name appears atomically. Tile servers (the review page's
rio-tiler, QGIS, a browser on object storage) then read overviews instead of whole rasters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from thawdetect.core.atomic import atomic_path

__all__ = ["COG_BLOCK_PX", "cog_problems", "to_cog"]

#: Tile size (px) of the COGs written.
COG_BLOCK_PX = 256


def to_cog(
    src: str | Path, dst: str | Path, *, resampling: str | None = None, remove_src: bool = True
) -> Path:
    """Copy the GeoTIFF ``src`` to a COG at ``dst`` (replacing it atomically).

    Args:
        src: the GeoTIFF written by the caller (often a temporary file).
        dst: the final path.
        resampling: overview resampling (GDAL name); default ``NEAREST`` for integer rasters
            (masks, labels: no invented classes) and ``AVERAGE`` for floating point.
        remove_src: delete ``src`` afterwards (when it is not ``dst``).

    Returns:
        ``dst``.
    """
    import rasterio
    import rasterio.shutil

    src, dst = Path(src), Path(dst)
    with rasterio.open(src) as ds:
        floating = ds.dtypes[0].startswith("float")
    options: dict[str, Any] = {
        "COMPRESS": "DEFLATE",
        "PREDICTOR": "YES",  # floating-point or horizontal, by data type
        "BLOCKSIZE": str(COG_BLOCK_PX),
        "OVERVIEWS": "AUTO",
        "OVERVIEW_RESAMPLING": resampling or ("AVERAGE" if floating else "NEAREST"),
        "BIGTIFF": "IF_SAFER",
        "NUM_THREADS": "ALL_CPUS",
    }
    with atomic_path(dst, suffix=".cog.tif") as tmp:
        rasterio.shutil.copy(src, tmp, driver="COG", **options)
    if remove_src and src.resolve() != dst.resolve():
        src.unlink(missing_ok=True)
    return dst


def cog_problems(path: str | Path) -> list[str]:
    """Why ``path`` is not a valid COG with overviews (empty when it is).

    Uses GDAL's own validator (``validate_cloud_optimized_geotiff``) when its Python bindings are
    installed, else checks the layout GDAL reports, the tiling and the overviews.
    """
    import rasterio

    path = Path(path)
    problems: list[str] = []
    with rasterio.open(path) as ds:
        if ds.driver != "GTiff":
            return [f"driver {ds.driver}, not GTiff"]
        if ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") != "COG":
            problems.append("no COG layout")
        if ds.block_shapes[0][0] == 1 or ds.block_shapes[0][0] == ds.height > COG_BLOCK_PX:
            problems.append("not tiled")
        if max(ds.width, ds.height) > COG_BLOCK_PX and not ds.overviews(1):
            problems.append("no overviews")
    try:
        from osgeo_utils.samples.validate_cloud_optimized_geotiff import (  # type: ignore[import-not-found,unused-ignore]
            validate,
        )
    except ImportError:
        return problems
    _warnings, errors, _ = validate(str(path), full_check=True)
    return problems + [str(e) for e in errors]
