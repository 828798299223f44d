"""Reading vector inputs (inventories, validation points, roads) with one-line errors.

GeoPackage, shapefile, GeoJSON, KML (anything OGR reads), CSV with a WKT geometry column
(``geometry_wkt``, as ``thawdetect inventory export --format csv`` writes) or lon/lat columns
(WGS84) and XLSX with lon/lat columns. Any CRS; callers reproject with :func:`read_vector`'s
``crs``.
GDAL virtual paths and URLs (``/vsizip/...``, ``/vsicurl/...``, ``s3://...``, ``https://...``) are
passed to OGR as given (see :mod:`thawdetect.core.paths`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from thawdetect.core.errors import CRSMismatchError, EmptyInventoryError, InputError
from thawdetect.core.paths import input_location, local_exists, suffix_of

LON_NAMES = (
    "lon", "longitude", "x", "centroidlon", "centroid_lon", "location_center_lon", "long", "lng",
)  # fmt: skip
LAT_NAMES = ("lat", "latitude", "y", "centroidlat", "centroid_lat", "location_center_lat")
#: Columns of a table holding WKT geometries (WGS84), tried before lon/lat columns.
WKT_NAMES = ("geometry_wkt", "wkt", "geom_wkt")


def _find_column(columns: Sequence[str], names: Sequence[str], path: str | Path, what: str) -> str:
    lower = {c.lower().replace(" ", ""): c for c in columns}
    for n in names:
        if n in lower:
            return lower[n]
    raise InputError(
        path, f"no {what} column found (looked for {', '.join(names)}); columns: {list(columns)}"
    )


def _table_to_frame(
    df: pd.DataFrame, path: str | Path, lon: str | None, lat: str | None
) -> gpd.GeoDataFrame:
    """A table's geometries: its WKT column when it has one (and no lon/lat was asked), else
    points from lon/lat columns."""
    lower = {c.lower().strip(): c for c in df.columns}
    wkt_col = next((lower[n] for n in WKT_NAMES if n in lower), None)
    if wkt_col is None or lon or lat:
        return _table_to_points(df, path, lon, lat)
    text = df[wkt_col].astype(object).where(df[wkt_col].notna(), None)
    try:
        geoms = gpd.GeoSeries.from_wkt(text, on_invalid="raise")
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(path, f"column '{wkt_col}' holds text that is not WKT ({msg})") from None
    return gpd.GeoDataFrame(df.drop(columns=[wkt_col]), geometry=geoms.values, crs="EPSG:4326")


def _table_to_points(
    df: pd.DataFrame, path: str | Path, lon: str | None, lat: str | None
) -> gpd.GeoDataFrame:
    lon = lon or _find_column(list(df.columns), LON_NAMES, path, "longitude")
    lat = lat or _find_column(list(df.columns), LAT_NAMES, path, "latitude")
    for col in (lon, lat):
        if col not in df.columns:
            raise InputError(path, f"column '{col}' not found; columns: {list(df.columns)}")
    x = pd.to_numeric(df[lon], errors="coerce")
    y = pd.to_numeric(df[lat], errors="coerce")
    ok = x.notna() & y.notna()
    if ok.sum() == 0:
        raise EmptyInventoryError(path, f"no row has numeric '{lon}'/'{lat}' coordinates")
    if (x[ok].abs() > 180).any() or (y[ok].abs() > 90).any():
        raise CRSMismatchError(
            path,
            f"'{lon}'/'{lat}' values are outside degrees range; CSV/XLSX must hold WGS84 lon/lat",
        )
    df = df.loc[ok].reset_index(drop=True)
    return gpd.GeoDataFrame(
        df, geometry=gpd.points_from_xy(x[ok].to_numpy(), y[ok].to_numpy()), crs="EPSG:4326"
    )


def read_vector(
    path: str | Path,
    *,
    crs: Any | None = None,
    layer: str | None = None,
    lon_column: str | None = None,
    lat_column: str | None = None,
    allow_empty: bool = False,
    what: str = "inventory",
) -> gpd.GeoDataFrame:
    """Read a vector file into a GeoDataFrame, optionally reprojected.

    Args:
        path: GPKG, SHP, GeoJSON, KML, CSV or XLSX (the latter two with a ``geometry_wkt`` or
            lon/lat columns in WGS84); a local path or a GDAL/fsspec URI (kept as a string).
        crs: reproject to this CRS when given.
        layer: layer name for multi-layer files.
        lon_column: longitude column of a table (auto-detected when None).
        lat_column: latitude column of a table (auto-detected when None).
        allow_empty: return an empty frame instead of raising on zero usable features.
        what: what the file is, for messages ("validation points", "roads").

    Raises:
        InputError: missing, unreadable, without CRS, or no usable geometry.
        EmptyInventoryError: no usable feature (unless ``allow_empty``).
    """
    path = input_location(path)
    if local_exists(path) is False:
        raise InputError(path, f"{what} file does not exist")
    if isinstance(path, Path) and path.is_dir() and path.suffix.lower() != ".gdb":
        raise InputError(path, f"is a directory, not a {what} file")
    suffix = suffix_of(path)
    try:
        if suffix in (".csv", ".txt", ".tsv") and not str(path).startswith("/vsi"):
            sep = "\t" if suffix == ".tsv" else None
            # index_col=False: rows with a trailing comma must not shift the column names
            df = pd.read_csv(path, sep=sep, engine="python", index_col=False, skipinitialspace=True)
            gdf = _table_to_frame(df, path, lon_column, lat_column)
        elif suffix in (".xlsx", ".xls"):
            try:
                df = pd.read_excel(path)
            except ImportError as exc:
                raise InputError(path, "reading XLSX needs openpyxl: pip install openpyxl") from exc
            gdf = _table_to_frame(df, path, lon_column, lat_column)
        else:
            import pyogrio

            kwargs: dict[str, Any] = {"layer": layer} if layer else {}
            gdf = gpd.read_file(path, engine="pyogrio", **kwargs)
            _ = pyogrio  # engine pinned: QGIS-compatible OGR drivers
    except InputError:
        raise
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(path, f"cannot be read as a {what} ({msg})") from exc
    if "geometry" not in gdf or not isinstance(gdf, gpd.GeoDataFrame) or gdf.geometry.name is None:
        raise InputError(path, f"{what} has no geometry column")
    geom_ok = gdf.geometry.notna() & ~gdf.geometry.is_empty
    gdf = gdf.loc[geom_ok].reset_index(drop=True)
    if len(gdf) == 0:
        if allow_empty:
            return gdf if crs is None or gdf.crs is None else gdf.to_crs(crs)
        raise EmptyInventoryError(path, f"{what} holds no usable geometry")
    if gdf.crs is None:
        raise CRSMismatchError(path, f"{what} has no CRS (add a .prj or set one in QGIS)")
    if crs is not None:
        try:
            gdf = gdf.to_crs(crs)
        except Exception as exc:
            raise CRSMismatchError(
                path, f"cannot transform from {gdf.crs} to {crs}: {exc}"
            ) from exc
        bad = ~np.isfinite(gdf.geometry.bounds.to_numpy()).all(axis=1)
        if bad.any():
            raise CRSMismatchError(
                path, f"{int(bad.sum())} features cannot be transformed to {crs}"
            )
    invalid = np.flatnonzero(~gdf.geometry.is_valid.to_numpy())
    if len(invalid):  # repaired below; callers may say so ("invalid": row -> reason)
        reasons = shapely.is_valid_reason(gdf.geometry.to_numpy()[invalid])
        gdf.attrs["invalid"] = {int(i): str(r) for i, r in zip(invalid, reasons, strict=True)}
    gdf["geometry"] = valid_geometries(gdf.geometry)
    return gdf


def valid_geometries(geoms: gpd.GeoSeries) -> gpd.GeoSeries:
    """``geoms`` with the invalid ones repaired (``make_valid``); valid ones are kept as they are.

    The same result as ``geoms.make_valid()`` (GEOS returns a valid geometry unchanged), without
    repairing every geometry: the validity test costs a fraction of the repair.
    """
    bad = ~geoms.is_valid.to_numpy() & geoms.notna().to_numpy()
    if not bad.any():
        return geoms
    out = geoms.copy()
    out[bad] = geoms[bad].make_valid()
    return out


def distance_to_nearest(gdf: gpd.GeoDataFrame, lines: gpd.GeoDataFrame) -> NDArray[np.float64]:
    """Distance in metres from each feature's centroid to the nearest feature of ``lines``.

    Both frames must be in the same projected CRS (metres). NaN when ``lines`` is empty.

    Examples:
        >>> from shapely.geometry import Point, LineString
        >>> pts = gpd.GeoDataFrame(geometry=[Point(0, 0), Point(0, 600)], crs="EPSG:32646")
        >>> road = gpd.GeoDataFrame(geometry=[LineString([(-10, 0), (10, 0)])], crs="EPSG:32646")
        >>> distance_to_nearest(pts, road).tolist()
        [0.0, 600.0]
    """
    if len(lines) == 0 or len(gdf) == 0:
        return np.full(len(gdf), np.nan)
    if gdf.crs != lines.crs:
        lines = lines.to_crs(gdf.crs)
    centroids = gdf.geometry.centroid
    tree = lines.sindex
    idx = tree.nearest(centroids, return_all=False, return_distance=True)
    (_, nearest), dist = idx
    out = np.full(len(gdf), np.nan)
    out[_] = dist
    del nearest
    return out
