"""Opening DEMs: validation with one-line errors, a metric square-pixel view, NaN nodata."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from numpy.typing import NDArray
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from thawdetect.plugin_api import InputError

__all__ = ["open_dem", "read_block", "utm_crs_for"]


def utm_crs_for(lon: float, lat: float) -> CRS:
    """The WGS84 UTM zone CRS (or UPS beyond ±84°) for a point.

    Examples:
        >>> utm_crs_for(15.6, 78.1).to_epsg()
        32633
    """
    if lat > 84:
        return CRS.from_epsg(32661)
    if lat < -80:
        return CRS.from_epsg(32761)
    zone = min(int((lon + 180) // 6) + 1, 60)
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def _metric_view(src: DatasetReader, path: Path) -> tuple[Any, dict[str, Any]]:
    """``src`` itself, or a WarpedVRT in metres with square pixels (xdem needs both)."""
    xres, yres = src.res
    metric = bool(src.crs.is_projected) and math.isclose(src.crs.linear_units_factor[1], 1.0)
    square = math.isclose(xres, yres, rel_tol=1e-6)
    if metric and square:
        return src, {"derivative_grid": "native DEM grid"}
    from rasterio.warp import calculate_default_transform, transform_bounds

    if metric:
        dst_crs = src.crs
    else:
        west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
        dst_crs = utm_crs_for((west + east) / 2, (south + north) / 2)
    transform, width, height = calculate_default_transform(
        src.crs, dst_crs, src.width, src.height, *src.bounds
    )
    res_m = min(abs(transform.a), abs(transform.e))
    transform, width, height = calculate_default_transform(
        src.crs, dst_crs, src.width, src.height, *src.bounds, resolution=(res_m, res_m)
    )
    vrt = WarpedVRT(
        src,
        crs=dst_crs,
        transform=transform,
        width=width,
        height=height,
        resampling=Resampling.bilinear,
        src_nodata=src.nodata,
        nodata=np.nan,
        dtype="float32",
    )
    why = "CRS not in metres" if not metric else f"non-square pixels {xres} x {yres}"
    return vrt, {
        "derivative_grid": (
            f"DEM warped (bilinear) to {dst_crs.to_string()} at {res_m:.3f} m square pixels "
            f"before slope/aspect ({why})"
        )
    }


@contextlib.contextmanager
def open_dem(path: str | Path) -> Iterator[tuple[Any, dict[str, Any]]]:
    """Open a DEM for slope/aspect: checks it and yields a metric, square-pixel dataset.

    Yields ``(dataset, metadata)``: the file itself when it is already projected in metres with
    square pixels, otherwise a :class:`rasterio.vrt.WarpedVRT` onto the local UTM zone (geographic
    DEMs) or square pixels (bilinear); ``metadata["derivative_grid"]`` says which.

    Args:
        path: a single-band GeoTIFF (or any GDAL raster) of elevations in metres.

    Raises:
        InputError: missing or unreadable file, no CRS.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "DEM file does not exist")
    try:
        src = rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(
            path, "cannot be opened as a raster DEM (corrupt or wrong format)"
        ) from exc
    try:
        if src.crs is None:
            raise InputError(
                path, "DEM has no CRS; assign one first (gdal_edit.py -a_srs EPSG:xxxx)"
            )
        view, meta = _metric_view(src, path)
        try:
            yield view, meta
        finally:
            if view is not src:
                view.close()
    finally:
        src.close()


def read_block(
    ds: Any, window: Window | None = None, pad: tuple[int, int, int, int] = (0, 0, 0, 0)
) -> NDArray[np.float32]:
    """Band 1 of ``ds`` in ``window`` as float32 with NaN for nodata, NaN-padded by ``pad``.

    Args:
        ds: an open dataset or WarpedVRT.
        window: the window to read (whole raster when None).
        pad: (top, bottom, left, right) cells of NaN to add around the block.
    """
    arr = ds.read(1, window=window, masked=True)
    out = np.ma.filled(arr.astype(np.float32), np.nan)
    out[~np.isfinite(out)] = np.nan
    if any(pad):
        top, bottom, left, right = pad
        out = np.pad(out, ((top, bottom), (left, right)), constant_values=np.nan)
    return out
