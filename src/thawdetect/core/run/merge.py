"""Merging candidates of different detectors that overlap into one candidate carrying all evidence.

Overlap graph: two proposals are linked when their (optionally buffered) outlines intersect; each
connected component becomes one candidate whose outline is the union, whose score is the highest,
and which carries every member's evidence as ``<detector>__<column>`` plus ``evidence_json``.
"""

from __future__ import annotations

import json
from typing import Any

import geopandas as gpd
import numpy as np

from thawdetect.core.plugin_api.detector import SCORE_COLUMN, SERIES_COLUMN


def overlap_fraction(a: gpd.GeoDataFrame, b: gpd.GeoDataFrame) -> np.ndarray:
    """For each feature of ``a``: max over features of ``b`` of area(a∩b) / min(area a, area b)."""
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
    denom = np.minimum(shapely.area(ga), shapely.area(gb))
    frac = np.divide(inter, denom, out=np.zeros_like(inter), where=denom > 0)
    np.maximum.at(out, ia, frac)
    return out


def _components(n: int, pairs_a: np.ndarray, pairs_b: np.ndarray) -> np.ndarray:
    """Connected-component label of each of ``n`` nodes given undirected edges (union-find)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if n == 0:
        return np.zeros(0, dtype=int)
    graph = coo_matrix((np.ones(len(pairs_a)), (pairs_a, pairs_b)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels


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
        best-scoring member of each detector), flattened ``<detector>__<column>`` columns, and
        ``series_json`` of the best member that has one.
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
    # they do (e.g. two images of one slump) they are one candidate for review.
    labels = _components(len(p), ia, ib)
    p["_group"] = labels
    evidence_cols = [
        c for c in p.columns if c not in ("geometry", "detector", "_rank", "_group", SERIES_COLUMN)
    ]
    rows = []
    for _, grp in p.groupby("_group", sort=False):
        ev: dict[str, dict[str, Any]] = {}
        flat: dict[str, Any] = {}
        series = None
        for det, dg in grp.groupby("detector"):
            best = dg.sort_values(SCORE_COLUMN, ascending=False).iloc[0]
            vals = {}
            for c in evidence_cols:
                v = best[c]
                if isinstance(v, np.generic):
                    v = v.item()
                if isinstance(v, float) and not np.isfinite(v):
                    v = None
                vals[c] = v
                flat[f"{det}__{c}"] = v
            vals["n_parts"] = len(dg)
            ev[str(det)] = vals
            if series is None and SERIES_COLUMN in dg:
                with_series = dg[dg[SERIES_COLUMN].notna()]
                if len(with_series):
                    series = with_series.sort_values(SCORE_COLUMN, ascending=False).iloc[0][
                        SERIES_COLUMN
                    ]
        dets = sorted(ev)
        rows.append(
            {
                "detectors": ",".join(dets),
                "n_detectors": len(dets),
                SCORE_COLUMN: float(grp["_rank"].max()),
                "evidence_json": json.dumps(ev, default=str),
                SERIES_COLUMN: series,
                **flat,
                "geometry": grp.geometry.union_all() if len(grp) > 1 else grp.geometry.iloc[0],
            }
        )
    out = gpd.GeoDataFrame(rows, geometry="geometry", crs=crs)
    out["geometry"] = out.geometry.make_valid()
    return out
