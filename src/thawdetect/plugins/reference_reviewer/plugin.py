"""The built-in automatic reviewer: decide candidates against a known reference inventory.

Registered through the ``thawdetect`` entry-point group as ``reference_reviewer``. Reviewer specs:

* ``reference``: the region's reference inventories (``context.reference_paths``, a list
  of paths the engine fills from the region).
* ``reference:PATH``: one inventory file (GPKG, SHP, GeoJSON, KML, CSV/XLSX with lon/lat).
* Options after ``?``, ``&``-separated: ``tolerance_m`` (metres, default 0), ``min_overlap``
  (fraction, default 0.1) and ``outline`` (``reference``, the default, or ``detector``), e.g.
  ``reference:truth.gpkg?tolerance_m=30&min_overlap=0.2``. They also apply to
  ``reference?outline=detector``.

Match rule (:func:`reference_decisions`):

* polygon reference: a candidate is confirmed when, for some reference polygon,
  ``area(candidate ∩ reference) ≥ min_overlap × min(area(candidate), area(reference))``; with
  ``tolerance_m > 0`` the reference polygons are buffered by the tolerance first.
* point reference: a candidate is confirmed when a point lies inside it or within ``tolerance_m``.

It decides the way a person does (Xia et al. and Wei et al. redraw inaccurate boundaries):

* the first candidate matching a reference feature is ``confirmed`` (probability ``high``, a note
  naming the feature) **with the reference outline** as its reviewed outline (``outline=detector``
  keeps the detector outline; point references always keep it); the choice is returned in
  ``attrs["review_settings"]`` and the engine records it in the manifest;
* further candidates matching the same reference feature in the same batch are ``part_of`` that
  first candidate (one inventory feature per reference feature);
* a candidate matching a reference feature already in the run's inventory is ``part_of`` that
  inventory feature (never a training negative);
* a candidate that touches a reference polygon without reaching ``min_overlap`` is ``unsure``
  (neither a positive nor a negative on a real slump);
* every other candidate is ``rejected`` (no probability).
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

_OPTIONS: dict[str, Any] = {"tolerance_m": float, "min_overlap": float, "outline": str}
OUTLINES = ("reference", "detector")


def parse_reference_spec(spec: str) -> tuple[str | None, dict[str, Any]] | None:
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
    options: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in _OPTIONS:
            raise ConfigError(
                f"reviewer '{spec}': unknown option '{key}'; supported: {', '.join(_OPTIONS)}"
            )
        if key == "outline":
            if value not in OUTLINES:
                raise ConfigError(
                    f"reviewer '{spec}': outline={value!r}; use {' or '.join(OUTLINES)}"
                )
            options[key] = value
            continue
        try:
            options[key] = _OPTIONS[key](value)
        except ValueError:
            raise ConfigError(f"reviewer '{spec}': {key}={value!r} is not a number") from None
        if options[key] < 0:
            raise ConfigError(f"reviewer '{spec}': {key} must be ≥ 0")
    return path, options


_ID_COLUMNS = ("id", "Id", "ID", "inventory_id", "Slump_ID", "slide_id", "UID", "name")


def _ids(ref: gpd.GeoDataFrame) -> list[Any]:
    for col in _ID_COLUMNS:
        if col in ref.columns:
            return ref[col].tolist()
    return list(range(len(ref)))


def _id_labels(ref: gpd.GeoDataFrame) -> list[str]:
    """``column=value`` naming each reference feature (whole columns, not a lookup per row)."""
    out: list[str | None] = [None] * len(ref)
    for col in _ID_COLUMNS:
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
    outline: str = "reference",
) -> pd.DataFrame:
    """Decide each candidate against a reference inventory (rules in the module docstring).

    Args:
        candidates: candidates with ``candidate_id`` and polygon geometry (any CRS), in the
            order a reviewer would see them (the first of several matching one feature wins).
        reference_gdf: reference polygons and/or points (any CRS).
        tolerance_m: distance tolerance in metres.
        min_overlap: fraction of the smaller polygon's area the intersection must reach.
        already_mapped: the run's inventory so far (``inventory_id``, geometry). A candidate
            matching a reference feature this inventory already holds becomes ``part_of`` it.
        outline: ``reference`` (confirm with the matched reference outline) or ``detector``.

    Returns:
        DataFrame ``candidate_id, decision, probability, note, geometry_wkt, part_of`` in the
        candidates' order (``geometry_wkt`` in the candidates' CRS, "" = detector outline);
        ``attrs["review_settings"]`` records the outline choice and the options.

    Raises:
        InputError: a frame without CRS.
        ConfigError: an unknown ``outline``.
    """
    import shapely

    if outline not in OUTLINES:
        raise ConfigError(f"reference reviewer: outline={outline!r}; use {' or '.join(OUTLINES)}")
    cols = ["candidate_id", "decision", "probability", "note", "geometry_wkt", "part_of"]
    settings = {"outline": outline, "tolerance_m": tolerance_m, "min_overlap": min_overlap}
    if len(candidates) == 0:
        out = pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
        out.attrs["review_settings"] = settings
        return out
    if candidates.crs is None or (len(reference_gdf) and reference_gdf.crs is None):
        raise InputError(None, "candidates and reference inventory need a CRS")
    crs = candidates.crs if candidates.crs.is_projected else candidates.estimate_utm_crs()
    cand = candidates.to_crs(crs).reset_index(drop=True)
    ref = reference_gdf[reference_gdf.geometry.notna() & ~reference_gdf.geometry.is_empty]
    ref = ref.to_crs(crs).reset_index(drop=True) if len(ref) else ref
    match = _match(cand, ref, crs, tolerance_m, min_overlap)
    # reference features the inventory already holds → that inventory feature's id
    owner: dict[int, str] = {}
    if already_mapped is not None and len(already_mapped) and len(ref) and (match >= 0).any():
        mapped = already_mapped.to_crs(crs).reset_index(drop=True)
        names = (
            mapped["inventory_id"].astype(str).tolist()
            if "inventory_id" in mapped.columns
            else [f"inventory feature {i}" for i in range(len(mapped))]
        )
        for m, r in _pairs(mapped, ref, crs, tolerance_m, min_overlap):
            owner.setdefault(r, names[m])
    touch = _touches(cand, ref, crs) if (match < 0).any() else np.zeros(len(cand), dtype=bool)
    first: dict[int, str] = {}
    labels = _id_labels(ref) if (match >= 0).any() else []
    polygonal = ref.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy() if len(ref) else []
    # reference outlines in the candidates' CRS, once (not one reprojection per candidate)
    ref_out = ref.geometry.to_crs(candidates.crs) if outline == "reference" and len(ref) else None
    decision: list[str] = []
    prob: list[str | None] = []
    note: list[str] = []
    wkt: list[str] = []
    part: list[str] = []
    for i, cid in enumerate(cand["candidate_id"].astype(str)):
        m = int(match[i])
        if m < 0:
            decision.append("unsure" if touch[i] else "rejected")
            prob.append(None)
            note.append(
                "touches a reference feature below min_overlap"
                if touch[i]
                else "no reference match"
            )
            wkt.append("")
            part.append("")
            continue
        geom = ""
        if ref_out is not None and polygonal[m]:
            geom = str(shapely.to_wkt(ref_out.iloc[m], rounding_precision=3, trim=True))
        name = labels[m]
        if m in owner:
            decision.append("part_of")
            prob.append(None)
            note.append(f"reference match: {name}, already in the inventory as {owner[m]}")
            part.append(owner[m])
        elif m in first:
            decision.append("part_of")
            prob.append(None)
            note.append(f"reference match: {name}, same feature as {first[m]}")
            part.append(first[m])
        else:
            first[m] = cid
            decision.append("confirmed")
            prob.append("high")
            note.append(f"reference match: {name}")
            part.append("")
        wkt.append(geom)
    out = pd.DataFrame(
        {
            "candidate_id": cand["candidate_id"].to_numpy(),
            "decision": decision,
            "probability": prob,
            "note": note,
            "geometry_wkt": wkt,
            "part_of": part,
        }
    )
    out.attrs["review_settings"] = settings
    return out


def _pairs(
    cand: gpd.GeoDataFrame, ref: gpd.GeoDataFrame, crs: Any, tolerance_m: float, min_overlap: float
) -> list[tuple[int, int]]:
    """Every (candidate, reference) pair that matches, with the intersection area for polygons.

    Points (and lines) of the reference match a candidate they lie in or within the tolerance;
    polygons match when the intersection reaches ``min_overlap`` of the smaller area (after a
    ``tolerance_m`` buffer). Sorted by candidate, then by decreasing intersection area.
    """
    import shapely

    out: list[tuple[int, int, float]] = []
    if len(ref) == 0 or len(cand) == 0:
        return []
    is_area = ref.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy()
    rgeom = ref.geometry.to_numpy()
    cgeom = cand.geometry.to_numpy()
    pts = np.flatnonzero(~is_area)
    if len(pts):
        pref = gpd.GeoSeries(rgeom[pts], crs=crs)
        if tolerance_m > 0:
            ci, ri = pref.sindex.query(cand.geometry, predicate="dwithin", distance=tolerance_m)
        else:
            ci, ri = pref.sindex.query(cand.geometry, predicate="intersects")
        out += [(int(c), int(pts[r]), 0.0) for c, r in zip(ci, ri, strict=True)]
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
            ok = (inter >= min_overlap * smaller) & (inter > 0)
            out += [
                (int(c), int(polys[r]), float(a))
                for c, r, a in zip(ci[ok], ri[ok], inter[ok], strict=True)
            ]
    out.sort(key=lambda t: (t[0], -t[2], t[1]))
    return [(c, r) for c, r, _ in out]


def _match(
    cand: gpd.GeoDataFrame, ref: gpd.GeoDataFrame, crs: Any, tolerance_m: float, min_overlap: float
) -> np.ndarray:
    """Index of the reference feature each candidate matches best (-1: none).

    Best = largest intersection area (points: the first point found).
    """
    match = np.full(len(cand), -1, dtype=np.int64)
    for c, r in _pairs(cand, ref, crs, tolerance_m, min_overlap):
        if match[c] < 0:
            match[c] = r
    return match


def _touches(cand: gpd.GeoDataFrame, ref: gpd.GeoDataFrame, crs: Any) -> np.ndarray:
    """Whether each candidate shares area with some reference polygon."""
    import shapely

    out = np.zeros(len(cand), dtype=bool)
    polys = ref[ref.geom_type.isin(["Polygon", "MultiPolygon"])]
    if len(polys) == 0:
        return out
    ci, ri = polys.sindex.query(cand.geometry, predicate="intersects")
    if len(ci):
        inter = shapely.area(
            shapely.intersection(cand.geometry.to_numpy()[ci], polys.geometry.to_numpy()[ri])
        )
        out[ci[inter > 0]] = True
    return out


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
