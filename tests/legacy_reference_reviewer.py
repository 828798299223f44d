"""The reference reviewer as of f58208a (before issue 13's speed-up), kept verbatim as the
reference that tests/test_reference_reviewer_equivalence.py compares the current one with,
plus issue 20's one rule change (marked "issue 20": a candidate is decided as its best match not
yet mapped), written as the plain loop it is.

Only ``reference_decisions`` and its helpers; spec parsing and the hook are unchanged.
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from thawdetect.core.errors import ConfigError, InputError

__all__ = ["reference_decisions"]

OUTLINES = ("reference", "detector")

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
    # issue 20: each candidate is decided as its best match not yet mapped (inventory or an
    # earlier candidate), else as its best match; one plain pass in review order
    options: dict[int, list[int]] = {}
    for c, r in _pairs(cand, ref, crs, tolerance_m, min_overlap):
        options.setdefault(c, []).append(r)
    taken = set(owner)
    for c in range(len(cand)):
        if c in options:
            pick = next((r for r in options[c] if r not in taken), options[c][0])
            match[c] = pick
            taken.add(pick)
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
