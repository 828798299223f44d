"""Merging candidates of different detectors that overlap into one candidate carrying all evidence.

Overlap graph: two proposals are linked when their (optionally buffered) outlines intersect; each
connected component becomes one candidate whose outline is the union, whose score is the highest,
and which carries every member's evidence as ``<detector>__<column>`` plus ``evidence_json``.

Whole-table: one sort of all proposals by (group, detector, score descending, NaN last, input
order) picks each detector's best member of every group at once; ``union_all`` runs only for groups
with more than one member. Ties in score go to the member that comes first in the input.
"""

from __future__ import annotations

import json
import math
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd

from thawdetect.core.plugin_api.detector import SCORE_COLUMN, SERIES_COLUMN
from thawdetect.core.run._json import json_objects
from thawdetect.core.vector import valid_geometries

#: two outlines of one detector are one candidate only when they share at least this fraction
#: of the smaller one's area (touching outlines and smoothing slivers along a shared edge stay
#: two candidates)
SAME_DETECTOR_OVERLAP = 0.5


def overlap_fraction(
    a: gpd.GeoDataFrame, b: gpd.GeoDataFrame, *, of: str = "smaller"
) -> npt.NDArray[Any]:
    """For each feature of ``a``: max over features of ``b`` of area(a∩b) / min(area a, area b)
    (``of="larger"``: / max(area a, area b), i.e. both are mostly the same ground)."""
    out = np.zeros(len(a))
    if len(a) == 0 or len(b) == 0:
        return out
    ia, ib = b.sindex.query(a.geometry, predicate="intersects")
    if len(ia) == 0:
        return out
    ga = a.geometry.to_numpy()[ia]
    gb = b.geometry.to_numpy()[ib]
    import shapely

    inter = shapely.area(shapely.intersection(ga, gb))
    pick = np.maximum if of == "larger" else np.minimum
    denom = pick(shapely.area(ga), shapely.area(gb))
    frac = np.divide(inter, denom, out=np.zeros_like(inter), where=denom > 0)
    np.maximum.at(out, ia, frac)
    return out


def _components(n: int, pairs_a: npt.NDArray[Any], pairs_b: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Connected-component label of each of ``n`` nodes given undirected edges (union-find)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if n == 0:
        return np.zeros(0, dtype=int)
    graph = coo_matrix((np.ones(len(pairs_a)), (pairs_a, pairs_b)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return np.asarray(labels)


def merge_candidates(
    proposals: gpd.GeoDataFrame, crs: Any, *, buffer_m: float = 0.0
) -> gpd.GeoDataFrame:
    """Merge overlapping candidates of different detectors into one candidate each.

    Args:
        proposals: validated candidates of all detectors of one iteration, with ``detector``,
            ``score``, optional ``series_json``, evidence columns; working CRS (metres).
        crs: the working CRS.
        buffer_m: candidates closer than this (metres) count as overlapping.

    Returns:
        One row per merged candidate: geometry (union), ``detectors`` (sorted, comma-separated),
        ``n_detectors``, ``score`` (the highest within-detector rank percentile, 0-1, so scores of
        different detectors compare), ``evidence_json`` ({detector: {column: value}} of the
        best-scoring member of each detector, the first in input order among equal scores),
        flattened ``<detector>__<column>`` columns, and ``series_json`` of the best member that
        has one (of the first detector, in name order, that has any). Rows come in the order of
        each group's first member.
    """
    if len(proposals) == 0:
        return gpd.GeoDataFrame(
            {"detectors": [], "n_detectors": [], SCORE_COLUMN: [], "evidence_json": []},
            geometry=gpd.GeoSeries([], crs=crs),
            crs=crs,
        )
    p = proposals.reset_index(drop=True).copy()
    p["_rank"] = p.groupby("detector")[SCORE_COLUMN].rank(pct=True, method="max").fillna(0.0)
    geoms = p.geometry.buffer(buffer_m / 2.0) if buffer_m > 0 else p.geometry
    ia, ib = gpd.GeoSeries(geoms, crs=crs).sindex.query(geoms, predicate="intersects")
    # Same-detector overlaps are joined too: a detector's own outputs should not overlap, and if
    # they do (e.g. two images of one slump) they are one candidate for review. Outlines of one
    # detector that only touch, or share a sliver (less than SAME_DETECTOR_OVERLAP of the
    # smaller), are kept apart: a detector that delineates neighbouring landslides on one pixel
    # grid (insar_sbas's competing growth) draws them edge to edge, and smoothing the two
    # outlines (simplified within a pixel) makes them overlap along the shared edge.
    det = p["detector"].to_numpy()
    same = (det[ia] == det[ib]) & (ia != ib)
    if same.any():
        import shapely

        garr = np.asarray(geoms, dtype=object)
        ga, gb = garr[ia[same]], garr[ib[same]]
        shared = shapely.area(shapely.intersection(ga, gb))
        smaller = np.minimum(shapely.area(ga), shapely.area(gb))
        apart = np.zeros(len(ia), dtype=bool)
        apart[same] = shared < SAME_DETECTOR_OVERLAP * smaller
        ia, ib = ia[~apart], ib[~apart]
    labels = _components(len(p), ia, ib)
    evidence_cols = [
        c for c in p.columns if c not in ("geometry", "detector", "_rank", SERIES_COLUMN)
    ]
    n = len(p)
    # Groups in order of their first member; detectors in sorted order within a group.
    group_ids, group_of = np.unique(labels, return_index=False, return_inverse=True)[0:2]
    first_seen = np.full(len(group_ids), n, dtype=np.int64)
    np.minimum.at(first_seen, group_of, np.arange(n))
    group_rank = np.empty(len(group_ids), dtype=np.int64)
    group_rank[np.argsort(first_seen, kind="stable")] = np.arange(len(group_ids))
    gpos = group_rank[group_of]  # output row of each proposal
    det_codes, det_names = pd.factorize(p["detector"], sort=True)
    score = p[SCORE_COLUMN].to_numpy(dtype=float)
    nan_score = np.isnan(score)
    # Best member of each (group, detector): highest score, NaN last, ties -> input order.
    order = np.lexsort((np.arange(n), -np.where(nan_score, 0.0, score), nan_score, det_codes, gpos))
    key = gpos[order] * len(det_names) + det_codes[order]
    first = np.r_[True, key[1:] != key[:-1]]
    best = order[first]
    n_parts = np.diff(np.r_[np.flatnonzero(first), n])
    values = {c: _python_values(p[c].to_numpy()[best]) for c in evidence_cols}
    best_group = gpos[best]
    best_det = det_codes[best]
    n_groups = len(group_ids)
    encode = json.JSONEncoder(default=str).encode  # = json.dumps(default=str), one encoder
    # Each best member's evidence object ({column: value, ..., "n_parts": k}) as JSON, then each
    # group's {detector: evidence} object joined from its members' texts (JSON composes: the
    # same text json.dumps gives the nested dict). ``best`` runs by group, then detector.
    member_json = json_objects(
        [*evidence_cols, "n_parts"], [*(values[c] for c in evidence_cols), n_parts.tolist()], encode
    )
    det_key = [encode(str(d)) + ": " for d in det_names]
    best_det_list = best_det.tolist()
    starts_b = np.flatnonzero(np.r_[True, best_group[1:] != best_group[:-1]]).tolist()
    ends_b = [*starts_b[1:], len(best)]
    evidence_json = [
        "{" + ", ".join(det_key[best_det_list[j]] + member_json[j] for j in range(a, b)) + "}"
        for a, b in zip(starts_b, ends_b, strict=True)
    ]
    detectors = [
        ",".join(str(det_names[best_det_list[j]]) for j in range(a, b))
        for a, b in zip(starts_b, ends_b, strict=True)
    ]
    series: list[Any] = [None] * n_groups
    if SERIES_COLUMN in p:
        has = p[SERIES_COLUMN].notna().to_numpy()[order]
        with_series = order[has]
        if len(with_series):
            # first detector (sorted) with a series, its best-scoring member with one
            gs = gpos[with_series]
            firsts = with_series[np.r_[True, gs[1:] != gs[:-1]]]
            col = p[SERIES_COLUMN].to_numpy()
            for i in firsts:
                series[gpos[i]] = col[i]
    top = np.zeros(n_groups)
    np.maximum.at(top, gpos, p["_rank"].to_numpy(dtype=float))
    size = np.bincount(gpos, minlength=n_groups)
    geom_arr = p.geometry.to_numpy()
    out_geoms = np.empty(n_groups, dtype=object)
    out_geoms[gpos] = geom_arr  # single-member groups keep their outline
    multi = np.flatnonzero(size > 1)
    if len(multi):
        import shapely

        by_group = np.argsort(gpos, kind="stable")
        starts = np.r_[0, np.cumsum(size)[:-1]]
        for g in multi:
            members = by_group[starts[g] : starts[g] + size[g]]
            out_geoms[g] = shapely.union_all(geom_arr[members])
    # The frame, built by columns exactly as pandas builds it from one dict per group: columns
    # in order of first appearance (group 0's keys, geometry among them, then each detector's
    # flattened columns where it first appears), NaN where a group lacks a key, and the same
    # per-column type inference (a list of rows goes through it as a list of dicts does).
    n_det_group = np.diff(np.r_[starts_b, len(best)])
    base: dict[str, list[Any]] = {
        "detectors": detectors,
        "n_detectors": n_det_group.tolist(),
        SCORE_COLUMN: top.tolist(),
        "evidence_json": evidence_json,
        SERIES_COLUMN: series,
    }
    first_group = np.full(len(det_names), n_groups, dtype=np.int64)
    np.minimum.at(first_group, best_det, best_group)
    dets_in_order = sorted(
        (d for d in range(len(det_names)) if first_group[d] < n_groups),
        key=lambda d: (first_group[d], d),
    )
    columns = list(base)
    flat_cols: dict[str, tuple[int, str]] = {}
    for d in dets_in_order:
        if first_group[d] > 0 and "geometry" not in columns:
            columns.append("geometry")
        for c in evidence_cols:
            name = f"{det_names[d]}__{c}"
            if name not in flat_cols:
                flat_cols[name] = (d, c)
                columns.append(name)
    if "geometry" not in columns:
        columns.append("geometry")
    content = np.full((n_groups, len(columns)), np.nan, dtype=object)
    value_objects = {c: _objects(values[c]) for c in evidence_cols}  # once per column
    for i, name in enumerate(columns):
        if name in base:
            content[:, i] = _objects(base[name])
        elif name == "geometry":
            content[:, i] = out_geoms
        else:
            d, c = flat_cols[name]
            mine = best_det == d
            content[best_group[mine], i] = value_objects[c][mine]
    out = gpd.GeoDataFrame(
        pd.DataFrame(content.tolist(), columns=columns), geometry="geometry", crs=crs
    )
    out["geometry"] = valid_geometries(out.geometry)
    return out


def _objects(values: list[Any]) -> npt.NDArray[Any]:
    """A 1-D object array of ``values`` as they are (lists stay list objects, not a 2-D array)."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


def _python_values(arr: npt.NDArray[Any]) -> list[Any]:
    """Plain Python values (numpy scalars unboxed, NaN/inf as None), as the JSON evidence wants."""
    out = arr.astype(object).tolist() if arr.dtype != object else list(arr)
    for i, v in enumerate(out):
        if isinstance(v, np.generic):
            v = out[i] = v.item()
        if isinstance(v, float) and not math.isfinite(v):
            out[i] = None
    return out
