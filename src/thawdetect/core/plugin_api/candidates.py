"""The candidate schema a detector's ``propose`` returns, and the check the engine applies to it.

Nothing a detector returns may break a run: :func:`validate_candidates` runs before anything of
the answer is written, and either hands the engine a frame the later stages can always use
(polygons in the working CRS, valid, 2-D, a finite score) or refuses the whole answer with one
:class:`~thawdetect.core.errors.PluginError` line naming the detector. What it can fix without
guessing, it fixes: another known CRS is reprojected, invalid geometries are repaired
(``make_valid``, keeping their polygonal parts; a warning when that changes an area by more than
1 % or leaves none), empty ones dropped (with a warning), Z dropped. What it cannot fix, it
refuses: no CRS, coordinates that do not fit their CRS (metres labelled as degrees), candidates
far outside the region, points or lines, a score that is not a finite number, duplicate column
names, columns the engine owns.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from thawdetect.core.errors import PluginError, ThawdetectWarning

if TYPE_CHECKING:
    from thawdetect.core.regions import Region

__all__ = [
    "ENGINE_COLUMNS",
    "FAR_OUTSIDE_M",
    "POLYGON_TYPES",
    "SCORE_COLUMN",
    "SERIES_COLUMN",
    "empty_candidates",
    "unusable_geometries",
    "validate_candidates",
]

#: Columns the engine owns; a detector's ``propose`` must not return them (it adds them).
ENGINE_COLUMNS = ("candidate_id", "detector", "iteration")
#: Optional column: JSON time series (see :class:`~thawdetect.TimeSeries`) for review plots.
SERIES_COLUMN = "series_json"
#: Required column: a ranking score, higher is more likely (probability for optical, |rate| etc.).
SCORE_COLUMN = "score"
#: The geometry types a candidate may have.
POLYGON_TYPES = ("Polygon", "MultiPolygon")
#: Candidates farther than this from the region's AOI (its bounding box in the working CRS) are
#: refused as a wrong CRS or offset (m). Without an AOI the working CRS's area of use, widened
#: by :data:`_FAR_OUTSIDE_DEG`, is the limit.
FAR_OUTSIDE_M = 100_000.0
_FAR_OUTSIDE_DEG = 15.0


class _Check:
    """Messages of one validation: refusals raise, repairs warn (both name the detector)."""

    def __init__(self, detector: str, plugin: str | None, warn: Callable[[str], None] | None):
        self.who = f"detector '{detector}'" + (f" (plugin '{plugin}')" if plugin else "")
        self._warn = warn

    def refuse(self, problem: str) -> NoReturn:
        raise PluginError(f"{self.who}: {problem}")

    def warn(self, message: str) -> None:
        if self._warn is not None:
            self._warn(f"{self.who}: {message}")
        else:
            warnings.warn(f"{self.who}: {message}", ThawdetectWarning, stacklevel=3)


def _type_name(value: Any) -> str:
    return "None" if value is None else type(value).__name__


def _crs_name(crs: Any) -> str:
    from pyproj import CRS

    c = CRS.from_user_input(crs)
    code = c.to_epsg()
    return f"EPSG:{code}" if code else c.name


def _columns(gdf: gpd.GeoDataFrame, check: _Check) -> gpd.GeoDataFrame:
    """Column names as text, none twice, none the engine's; the geometry column ``geometry``."""
    try:
        geometry_name = gdf.geometry.name
    except AttributeError:
        check.refuse("propose() returned a GeoDataFrame without an active geometry column")
    names = [str(c) for c in gdf.columns]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        check.refuse(f"proposed candidates have duplicate columns: {', '.join(twice)}")
    clash = [c for c in ENGINE_COLUMNS if c in names]
    if clash:
        check.refuse(f"propose() must not set {', '.join(clash)} (the engine adds them)")
    if SCORE_COLUMN not in names:
        check.refuse(f"proposed candidates lack a '{SCORE_COLUMN}' column")
    gdf = gdf.copy()
    if names != list(gdf.columns):
        gdf.columns = pd.Index(names)
        geometry_name = str(geometry_name)
    if geometry_name != "geometry":
        if "geometry" in names:
            check.refuse(f"the geometry column is '{geometry_name}' but a 'geometry' column exists")
        gdf = gdf.rename_geometry("geometry")
    return gdf.reset_index(drop=True)


def _polygonal(geom: Any) -> Any:
    """The polygonal part of a repaired geometry (None when it has no area)."""
    if geom is None or geom.geom_type in POLYGON_TYPES:
        return geom
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in POLYGON_TYPES]
    parts = [q for p in parts for q in shapely.get_parts(p)]  # MultiPolygon parts in collections
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


def _reproject(gdf: gpd.GeoDataFrame, target_crs: Any, check: _Check) -> gpd.GeoDataFrame:
    """``gdf`` in ``target_crs``; refused when its coordinates do not fit its own CRS."""
    src = gdf.crs
    if src.is_geographic:
        xmin, ymin, xmax, ymax = gdf.total_bounds
        if not (xmin >= -180 and xmax <= 360 and ymin >= -90 and ymax <= 90):
            check.refuse(
                f"the candidates' CRS {_crs_name(src)} is in degrees, but their coordinates reach "
                f"({xmin:.6g}, {ymin:.6g}, {xmax:.6g}, {ymax:.6g}): set the CRS of the data they "
                "were made from"
            )
    try:
        out = gdf.to_crs(target_crs)
    except Exception as exc:
        check.refuse(f"cannot reproject candidates from {_crs_name(src)} to "
                     f"{_crs_name(target_crs)}: {exc}")  # fmt: skip
    bad = ~np.isfinite(out.geometry.bounds.to_numpy()).all(axis=1)
    if bad.any():
        check.refuse(
            f"{int(bad.sum())} of {len(out)} candidates cannot be reprojected from "
            f"{_crs_name(src)} to {_crs_name(target_crs)} (their coordinates do not fit "
            f"{_crs_name(src)}: is it the CRS of the data they were made from?)"
        )
    return out


def _area_of_use(crs: Any) -> Any:
    """The CRS's area of use (a CRS read from a raster's WKT has none: ask its EPSG code's)."""
    from pyproj import CRS

    if crs.area_of_use is not None:
        return crs.area_of_use
    code = crs.to_epsg()
    return CRS.from_epsg(code).area_of_use if code else None


def _far_outside(gdf: gpd.GeoDataFrame, region: Region | None, check: _Check) -> None:
    """Refuse candidates far outside the region (or the working CRS's area of use)."""
    from pyproj import Transformer

    crs = gdf.crs
    bounds = gdf.geometry.bounds.to_numpy()
    x = (bounds[:, 0] + bounds[:, 2]) / 2
    y = (bounds[:, 1] + bounds[:, 3]) / 2
    aoi = region.aoi if region is not None else None
    if aoi is not None and region is not None:
        w, s, e, n = gpd.GeoSeries([aoi], crs="EPSG:4326").to_crs(crs).total_bounds
        d = FAR_OUTSIDE_M if crs.is_projected else FAR_OUTSIDE_M / 111_000
        far = (x < w - d) | (x > e + d) | (y < s - d) | (y > n + d)
        where = f"more than {FAR_OUTSIDE_M / 1000:g} km outside region '{region.name}'"
    else:
        area = _area_of_use(crs)
        if area is None:
            return
        to_deg = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        lon, lat = (np.asarray(v) for v in to_deg.transform(x, y))
        m = _FAR_OUTSIDE_DEG
        inside = (
            np.isfinite(lon)
            & np.isfinite(lat)
            & (lon >= area.west - m)
            & (lon <= area.east + m)
            & (lat >= area.south - m)
            & (lat <= area.north + m)
        )
        far = ~inside
        where = (
            f"far outside where {_crs_name(crs)} is used ({area.west:g}..{area.east:g}°E, "
            f"{area.south:g}..{area.north:g}°N)"
        )
    if far.any():
        i = int(np.flatnonzero(far)[0])
        check.refuse(
            f"{int(far.sum())} of {len(gdf)} candidates lie {where}, e.g. one centred at "
            f"({x[i]:.0f}, {y[i]:.0f}) in {_crs_name(crs)}: a wrong CRS or offset on the "
            "candidates (or the wrong region)"
        )


def _score(gdf: gpd.GeoDataFrame, check: _Check) -> gpd.GeoDataFrame:
    raw = gdf[SCORE_COLUMN]
    score = pd.to_numeric(raw, errors="coerce").astype(float)
    text = score.isna() & raw.notna()
    if text.any():
        check.refuse(
            f"'{SCORE_COLUMN}' must be numbers: {int(text.sum())} of {len(gdf)} values are not "
            f"(e.g. {raw[text].iloc[0]!r})"
        )
    bad = ~np.isfinite(score.to_numpy())
    if bad.any():
        check.refuse(
            f"'{SCORE_COLUMN}' must be finite: {int(bad.sum())} of {len(gdf)} values are NaN, "
            "missing or infinite"
        )
    gdf[SCORE_COLUMN] = score
    return gdf


def validate_candidates(
    gdf: Any,
    detector: str,
    target_crs: Any | None = None,
    *,
    region: Region | None = None,
    plugin: str | None = None,
    warn: Callable[[str], None] | None = None,
) -> gpd.GeoDataFrame:
    """Check a detector's ``propose`` result against the candidate schema; repair what is safe.

    Args:
        gdf: what the detector returned.
        detector: its name (for messages).
        target_crs: reproject to this CRS when given (a frame without CRS is refused unless
            it is empty).
        region: the run's region: candidates more than :data:`FAR_OUTSIDE_M` outside its AOI
            are refused (without an AOI: far outside the CRS's area of use).
        plugin: the plugin that registered the detector (for messages).
        warn: where repair messages go (default: ``warnings.warn`` with ``ThawdetectWarning``).

    Returns:
        The candidates: Polygon/MultiPolygon, valid, 2-D, no empty geometry, in ``target_crs``,
        a float ``score`` that is finite, a fresh 0..n-1 index, column names as text.

    Raises:
        PluginError: the result breaks the schema (one line naming the detector).
    """
    check = _Check(detector, plugin, warn)
    if not isinstance(gdf, gpd.GeoDataFrame):
        check.refuse(f"propose() must return a GeoDataFrame, not {_type_name(gdf)}")
    gdf = _columns(gdf, check)
    missing = (gdf.geometry.isna() | gdf.geometry.is_empty).to_numpy()
    if missing.any():
        check.warn(f"dropped {int(missing.sum())} candidates with an empty or missing geometry")
        gdf = gdf[~missing].reset_index(drop=True)
    types = gdf.geom_type
    other = ~types.isin(POLYGON_TYPES)
    if other.any():
        kinds = ", ".join(sorted(set(types[other])))
        check.refuse(
            f"candidates must be Polygon or MultiPolygon; {int(other.sum())} of {len(gdf)} "
            f"are {kinds}"
        )
    if len(gdf) and shapely.has_z(gdf.geometry.values).any():
        gdf["geometry"] = shapely.force_2d(gdf.geometry.values)
    if len(gdf) and gdf.crs is None:
        where = f"; the run works in {_crs_name(target_crs)}" if target_crs is not None else ""
        check.refuse(f"proposed candidates have no CRS (set the CRS of their data{where})")
    if target_crs is not None and gdf.crs is None:
        gdf = gdf.set_crs(target_crs)
    elif target_crs is not None and len(gdf) and gdf.crs != target_crs:
        gdf = _reproject(gdf, target_crs, check)
    elif len(gdf) and not np.isfinite(gdf.geometry.bounds.to_numpy()).all():
        check.refuse("candidates have coordinates that are not finite numbers")
    if len(gdf):
        _far_outside(gdf, region, check)
    invalid = (~gdf.geometry.is_valid).to_numpy()
    if invalid.any():
        # polygonized rasters often have self-touching rings: repaired silently (same area);
        # a repair that changes the area (a bow-tie) or leaves no area is said
        before = gdf.geometry[invalid].area.to_numpy()
        fixed = [_polygonal(g) for g in gdf.geometry[invalid].make_valid()]
        gdf.loc[invalid, "geometry"] = gpd.GeoSeries(fixed, index=gdf.index[invalid], crs=gdf.crs)
        lost = (gdf.geometry.isna() | gdf.geometry.is_empty).to_numpy()
        after = gdf.geometry[invalid].area.fillna(0.0).to_numpy()
        changed = ~np.isclose(after, before, rtol=0.01) & ~lost[invalid]
        said = []
        if changed.any():
            said.append(f"repaired {int(changed.sum())} invalid geometries (make_valid changed "
                        "their area by more than 1 %)")  # fmt: skip
        if lost.any():
            said.append(f"dropped {int(lost.sum())} invalid geometries without area")
        if said:
            check.warn("; ".join(said))
        gdf = gdf[~lost].reset_index(drop=True)
    return _score(gdf, check)


def unusable_geometries(geoms: gpd.GeoSeries) -> NDArray[np.bool_]:
    """Rows the later stages cannot use: not a polygon, empty, non-finite coordinates.

    The engine checks the proposals it stored with this before merging them (proposals written by
    a version that did not validate as :func:`validate_candidates` does).
    """
    values = geoms.values
    bad = geoms.isna().to_numpy() | shapely.is_empty(values)
    bad |= ~geoms.geom_type.isin(POLYGON_TYPES).to_numpy()
    bounds = shapely.bounds(values)
    bad |= ~np.isfinite(bounds).all(axis=1)
    return np.asarray(bad)


def empty_candidates(crs: Any, columns: Mapping[str, str] | None = None) -> gpd.GeoDataFrame:
    """An empty, schema-valid candidates frame (for detectors that found nothing)."""
    cols: dict[str, Any] = {SCORE_COLUMN: pd.Series([], dtype=float)}
    for name, dtype in (columns or {}).items():
        cols[name] = pd.Series([], dtype=dtype)
    return gpd.GeoDataFrame(cols, geometry=gpd.GeoSeries([], crs=crs), crs=crs)
