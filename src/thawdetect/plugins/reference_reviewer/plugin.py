"""The built-in automatic reviewer: decide candidates against a known reference inventory.

Registered through the ``thawdetect`` entry-point group as ``reference_reviewer``. Reviewer specs:

* ``reference``: the region's reference inventories (``context.reference_paths``, a list
  of paths the engine fills from the region).
* ``reference:PATH``: one inventory file (GPKG, SHP, GeoJSON, KML, CSV/XLSX with lon/lat).
* Options after ``?``, ``&``-separated: ``tolerance_m`` (metres, default 0) and ``min_overlap``
  (fraction, default 0.1), e.g. ``reference:truth.gpkg?tolerance_m=30&min_overlap=0.2``. They also
  apply to ``reference?tolerance_m=30``.

Match rule (:func:`reference_decisions`):

* polygon reference: a candidate is confirmed when, for some reference polygon,
  ``area(candidate ∩ reference) ≥ min_overlap × min(area(candidate), area(reference))``; with
  ``tolerance_m > 0`` the reference polygons are buffered by the tolerance first.
* point reference: a candidate is confirmed when a point lies inside it or within ``tolerance_m``.

Confirmed candidates get probability ``high`` and a note naming the matched reference feature;
every other candidate is ``rejected`` (no probability).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import geopandas as gpd
import numpy as np
import pandas as pd

from thawdetect.core.errors import ConfigError, InputError
from thawdetect.core.plugin_api.hookspecs import hookimpl

__all__ = ["parse_reference_spec", "reference_decisions", "thawdetect_review_candidates"]

_OPTIONS = {"tolerance_m": float, "min_overlap": float}


def parse_reference_spec(spec: str) -> tuple[str | None, dict[str, float]] | None:
    """Split a reviewer spec into (path or None, options); None when it is not a reference spec.

    Examples:
        >>> parse_reference_spec("reference:truth.gpkg?tolerance_m=30")
        ('truth.gpkg', {'tolerance_m': 30.0})
        >>> parse_reference_spec("reference")
        (None, {})
        >>> parse_reference_spec("manual") is None
        True

    Raises:
        ConfigError: an unknown option or a value that is not a number.
    """
    if not isinstance(spec, str):
        return None
    head, _, query = spec.partition("?")
    if head == "reference":
        path = None
    elif head.startswith("reference:"):
        path = head[len("reference:") :]
        if not path:
            raise ConfigError(f"reviewer '{spec}': no path after 'reference:'")
    else:
        return None
    options: dict[str, float] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in _OPTIONS:
            raise ConfigError(
                f"reviewer '{spec}': unknown option '{key}'; supported: {', '.join(_OPTIONS)}"
            )
        try:
            options[key] = _OPTIONS[key](value)
        except ValueError:
            raise ConfigError(f"reviewer '{spec}': {key}={value!r} is not a number") from None
        if options[key] < 0:
            raise ConfigError(f"reviewer '{spec}': {key} must be ≥ 0")
    return path, options


def _ids(ref: gpd.GeoDataFrame) -> list[Any]:
    for col in ("id", "Id", "ID", "inventory_id", "Slump_ID", "UID", "name"):
        if col in ref.columns:
            return ref[col].tolist()
    return list(range(len(ref)))


def _id_labels(ref: gpd.GeoDataFrame) -> list[str]:
    """``column=value`` naming each reference feature (whole columns, not a lookup per row)."""
    out: list[str | None] = [None] * len(ref)
    for col in ("id", "Id", "ID", "inventory_id", "Slump_ID", "UID", "name"):
        if col in ref.columns:
            values, missing = ref[col].tolist(), ref[col].isna().to_numpy()
            for i, (v, na) in enumerate(zip(values, missing, strict=True)):
                if out[i] is None and not na:
                    out[i] = f"{col}={v}"
    return [f"feature {i}" if o is None else o for i, o in enumerate(out)]


def reference_decisions(
    candidates: gpd.GeoDataFrame,
    reference_gdf: gpd.GeoDataFrame,
    *,
    tolerance_m: float = 0.0,
    min_overlap: float = 0.1,
    already_mapped: gpd.GeoDataFrame | None = None,
) -> pd.DataFrame:
    """Decide each candidate against a reference inventory (rule in the module docstring).

    Args:
        candidates: candidates with ``candidate_id`` and polygon geometry (any CRS).
        reference_gdf: reference polygons and/or points (any CRS).
        tolerance_m: distance tolerance in metres.
        min_overlap: fraction of the smaller polygon's area the intersection must reach.
        already_mapped: the run's inventory so far. Reference features it already matches are
            taken: a candidate that matches only taken features is rejected as a duplicate
            (a reviewer would not map the same slump twice).

    Returns:
        DataFrame ``candidate_id, decision, probability, note`` in the candidates' order.

    Raises:
        InputError: a frame without CRS.
    """
    cols = ["candidate_id", "decision", "probability", "note"]
    if len(candidates) == 0:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    if candidates.crs is None or (len(reference_gdf) and reference_gdf.crs is None):
        raise InputError(None, "candidates and reference inventory need a CRS")
    crs = candidates.crs if candidates.crs.is_projected else candidates.estimate_utm_crs()
    cand = candidates.to_crs(crs).reset_index(drop=True)
    ref = reference_gdf[reference_gdf.geometry.notna() & ~reference_gdf.geometry.is_empty]
    ref = ref.to_crs(crs).reset_index(drop=True) if len(ref) else ref
    match = _match(cand, ref, crs, tolerance_m, min_overlap, None)
    duplicate = np.zeros(len(cand), dtype=bool)
    if already_mapped is not None and len(already_mapped) and len(ref) and (match >= 0).any():
        mapped = already_mapped.to_crs(crs).reset_index(drop=True)
        taken = np.zeros(len(ref), dtype=bool)
        hit = _match(mapped, ref, crs, tolerance_m, min_overlap, None, all_matches=True)
        taken[hit[hit >= 0]] = True
        if taken.any():
            free = _match(cand, ref, crs, tolerance_m, min_overlap, taken)
            duplicate = (match >= 0) & (free < 0)
            match = free
    confirmed = match >= 0
    labels = _id_labels(ref) if confirmed.any() else []
    notes = [
        f"reference match: {labels[int(m)]}"
        if m >= 0
        else ("matches only slumps already in the inventory" if dup else "no reference match")
        for m, dup in zip(match, duplicate, strict=True)
    ]
    return pd.DataFrame(
        {
            "candidate_id": cand["candidate_id"].to_numpy(),
            "decision": np.where(confirmed, "confirmed", "rejected"),
            "probability": np.where(confirmed, "high", None),
            "note": notes,
        }
    )


def _match(
    cand: gpd.GeoDataFrame,
    ref: gpd.GeoDataFrame,
    crs: Any,
    tolerance_m: float,
    min_overlap: float,
    taken: np.ndarray | None,
    *,
    all_matches: bool = False,
) -> np.ndarray:
    """Index of the first reference feature each candidate matches (-1: none).

    ``taken`` reference features are skipped. With ``all_matches`` the result instead lists the
    index of every matched reference feature (one entry per candidate-reference pair).
    """
    match = np.full(len(cand), -1, dtype=np.int64)
    pairs: list[int] = []
    if len(ref):
        import shapely

        is_area = ref.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy()
        rgeom = ref.geometry.to_numpy()
        cgeom = cand.geometry.to_numpy()
        # points (and lines): inside or within the tolerance
        pts = np.flatnonzero(~is_area)
        if len(pts):
            pref = gpd.GeoSeries(rgeom[pts], crs=crs)
            if tolerance_m > 0:
                ci, ri = pref.sindex.query(cand.geometry, predicate="dwithin", distance=tolerance_m)
            else:
                ci, ri = pref.sindex.query(cand.geometry, predicate="intersects")
            for c, r in zip(ci, ri, strict=True):
                if taken is not None and taken[pts[r]]:
                    continue
                pairs.append(int(pts[r]))
                if match[c] < 0:
                    match[c] = pts[r]
        polys = np.flatnonzero(is_area)
        if len(polys):
            pg = rgeom[polys]
            if tolerance_m > 0:
                pg = shapely.buffer(pg, tolerance_m)
            pser = gpd.GeoSeries(pg, crs=crs)
            ci, ri = pser.sindex.query(cand.geometry, predicate="intersects")
            if len(ci):
                inter = shapely.area(shapely.intersection(cgeom[ci], pg[ri]))
                smaller = np.minimum(shapely.area(cgeom[ci]), shapely.area(pg[ri]))
                ok = inter >= min_overlap * smaller
                ok &= inter > 0
                for c, r in zip(ci[ok], ri[ok], strict=True):
                    if taken is not None and taken[polys[r]]:
                        continue
                    pairs.append(int(polys[r]))
                    if match[c] < 0:
                        match[c] = polys[r]
    if all_matches:
        return np.asarray(pairs, dtype=np.int64)
    return match


def _read_references(paths: list[Path], crs: Any) -> gpd.GeoDataFrame:
    from thawdetect.core.vector import read_vector

    frames = [read_vector(p, crs=crs, what="reference inventory") for p in paths]
    frames = [
        gpd.GeoDataFrame({"id": _ids(f)}, geometry=f.geometry.to_numpy(), crs=f.crs) for f in frames
    ]
    if len(frames) == 1:
        return frames[0]
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=crs)


@hookimpl
def thawdetect_review_candidates(
    candidates: gpd.GeoDataFrame, reviewer: str, context: Any
) -> pd.DataFrame | None:
    """Decide candidates for ``reference`` and ``reference:PATH[?options]`` specs (else None).

    Raises:
        ConfigError: ``reference`` without reference paths in the region, or a bad option.
        InputError: an unreadable reference file.
    """
    parsed = parse_reference_spec(reviewer)
    if parsed is None:
        return None
    path, options = parsed
    if path is None:
        paths = [Path(p) for p in getattr(context, "reference_paths", None) or []]
        if not paths:
            raise ConfigError(
                "reviewer 'reference': the region names no reference inventory; "
                "use --reviewer reference:PATH"
            )
    else:
        paths = [Path(path).expanduser()]
    ref = _read_references(paths, candidates.crs)
    inventory = getattr(context, "inventory", None)
    return reference_decisions(candidates, ref, already_mapped=inventory, **options)
