"""The rows the engine's stages write to the ledger's layers, built from explicit inputs.

The known inventory read and turned into the first inventory and positives (stage ``init``), a
detector's candidates turned into proposal rows (``propose:<name>``), merged candidates screened
against what is already known and numbered (``merge``), and the inventory, positives and negatives
after a review (``update``). Nothing here reads or writes the ledger: the engine does, one
transaction per stage.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from thawdetect.core.errors import InputError
from thawdetect.core.plugin_api.detector import SCORE_COLUMN
from thawdetect.core.run.merge import overlap_fraction
from thawdetect.core.vector import read_vector

#: Geometry types a known inventory may hold (outlines or locations).
KNOWN_TYPES = ("Polygon", "MultiPolygon", "Point", "MultiPoint")


def read_known_inventory(
    paths: list[str], crs: Any, echo: Callable[[str], None]
) -> gpd.GeoDataFrame:
    """The known inventory: polygons and points (field inventories are often points).

    Raises:
        InputError: a file holding lines or other geometry types (one line naming it).
    """
    parts = []
    for p in paths:
        gdf = read_vector(p, crs=crs, what="known inventory")
        gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
        types = gdf.geom_type
        other = sorted(set(types) - set(KNOWN_TYPES))
        if other:
            n = int((~types.isin(KNOWN_TYPES)).sum())
            raise InputError(
                p,
                f"known inventory holds {n} {'/'.join(other)} feature(s); use polygons "
                "(outlines) or points (locations)",
            )
        gdf = gdf[["geometry"]].explode(index_parts=False).reset_index(drop=True)
        n_pts = int(gdf.geom_type.eq("Point").sum())
        echo(
            f"known inventory {p}: {len(gdf)} features read "
            f"({len(gdf) - n_pts} polygons, {n_pts} points)"
        )
        parts.append(gdf)
    if not parts:
        return gpd.GeoDataFrame(geometry=gpd.GeoSeries([], crs=crs), crs=crs)
    return gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=crs)


def initial_layers(known: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """``(inventory, positives)`` of iteration 0: the known inventory's features."""
    inv = known.copy()
    inv["inventory_id"] = [f"known-{i + 1:04d}" for i in range(len(inv))]
    inv["candidate_id"] = None
    inv["source"] = "known"
    inv["iteration"] = 0
    inv["probability"] = "high"
    inv["detectors"] = ""
    inv["outline"] = np.where(known.geom_type == "Point", "point", "known")
    inv["merged_candidates"] = ""
    pos = known.copy()
    pos["source"] = "known"
    pos["iteration"] = 0
    return inv, pos


def proposal_rows(cands: gpd.GeoDataFrame, name: str, k: int, crs: Any) -> gpd.GeoDataFrame:
    """The ``proposals`` rows of detector ``name`` at iteration ``k``: evidence columns as JSON."""
    rows = cands.copy()
    rows.insert(0, "detector", name)
    rows.insert(1, "iteration", k)
    evidence_cols = [
        c for c in rows.columns if c not in ("detector", "iteration", SCORE_COLUMN, "geometry")
    ]
    encode = json.JSONEncoder(default=_json_default).encode  # json.dumps(default=...), reused
    return gpd.GeoDataFrame(
        {
            "detector": rows["detector"],
            "iteration": rows["iteration"],
            SCORE_COLUMN: rows[SCORE_COLUMN],
            "evidence_json": [
                encode(dict(zip(evidence_cols, values, strict=True)))
                for values in zip(*(rows[c].astype(object) for c in evidence_cols), strict=True)
            ]
            if evidence_cols
            else ["{}"] * len(rows),
        },
        geometry=rows.geometry,
        crs=crs,
    )


def expand_proposals(props: gpd.GeoDataFrame, crs: Any) -> gpd.GeoDataFrame:
    """Proposal rows with their evidence JSON expanded back into columns (for merging)."""
    # one parse of all rows (as a JSON array) instead of one call per row
    texts = [ev if ev else "{}" for ev in props["evidence_json"].tolist()]
    evidence = json.loads("[" + ",".join(texts) + "]")
    expanded = [
        {"detector": det, SCORE_COLUMN: score, **ev}
        for det, score, ev in zip(props["detector"], props[SCORE_COLUMN], evidence, strict=True)
    ]
    return gpd.GeoDataFrame(
        pd.DataFrame(expanded, index=props.index), geometry=props.geometry, crs=crs
    )


def screen_candidates(
    merged: gpd.GeoDataFrame,
    seen: gpd.GeoDataFrame,
    k: int,
    *,
    duplicate_overlap: float,
    min_mapping_unit_ha: float,
) -> tuple[gpd.GeoDataFrame, int, int]:
    """``(candidates, n_already_seen, n_too_small)``: merged candidates to review at iteration k.

    A candidate overlapping ``seen`` (decided candidates, the inventory) by at least
    ``duplicate_overlap``, or containing a known point, is dropped, and so is one below the
    minimum mapping unit. The rest are sorted by score, numbered and marked pending.
    """
    dup = overlap_fraction(merged, seen) >= duplicate_overlap
    points = seen[seen.geom_type == "Point"]
    if len(points) and len(merged):  # a candidate containing a known point is known
        hit, _ = points.sindex.query(merged.geometry, predicate="contains")
        dup = dup | pd.Series(np.isin(np.arange(len(merged)), hit), index=merged.index)
    merged = merged[~dup]
    area_ha = merged.geometry.area / 1e4
    small = area_ha < min_mapping_unit_ha
    merged = merged[~small].copy()
    merged = merged.sort_values(
        [SCORE_COLUMN, "n_detectors"], ascending=False, kind="stable"
    ).reset_index(drop=True)
    merged.insert(0, "candidate_id", [f"it{k:02d}-{i + 1:04d}" for i in range(len(merged))])
    merged.insert(1, "iteration", k)
    merged["status"] = "pending"
    merged["probability"] = None
    merged["area_ha"] = merged.geometry.area / 1e4
    merged["perimeter_m"] = merged.geometry.length
    return merged, int(dup.sum()), int(small.sum())


@dataclass
class InventoryUpdate:
    """The layers after the review of iteration ``k`` (see :func:`inventory_update`)."""

    #: rows of iteration k to write (each layer's rows of k are replaced)
    new_positives: gpd.GeoDataFrame
    new_negatives: gpd.GeoDataFrame
    new_inventory: gpd.GeoDataFrame
    #: "part of" candidates merged into an earlier feature
    fragments: gpd.GeoDataFrame
    #: earlier inventory features that fragments changed (updated in place)
    grown: gpd.GeoDataFrame
    #: the whole layers after the update
    positives: gpd.GeoDataFrame
    negatives: gpd.GeoDataFrame
    inventory: gpd.GeoDataFrame


def inventory_update(
    k: int,
    mine: gpd.GeoDataFrame,
    latest: pd.DataFrame,
    sets: dict[str, gpd.GeoDataFrame],
    crs: Any,
    echo: Callable[[str], None],
) -> InventoryUpdate:
    """Inventory, positives and negatives after iteration ``k``'s candidates ``mine`` were decided.

    Idempotent on re-run: rows of iteration ``k`` in ``sets`` are replaced, not appended twice
    (and a union into an earlier feature is the same union again).
    """
    from thawdetect.core.review.outlines import build_inventory_update

    rejected = mine[mine["status"] == "rejected"]
    positives = sets["positives"][sets["positives"]["iteration"] != k]
    negatives = sets["negatives"][sets["negatives"]["iteration"] != k]
    inventory = sets["inventory"][sets["inventory"]["iteration"] != k].copy()
    new_inv, inventory, fragments = build_inventory_update(
        k, mine, latest, inventory, crs, echo=echo
    )
    new_pos = gpd.GeoDataFrame(
        {"source": "confirmed", "iteration": k, "candidate_id": new_inv["candidate_id"]},
        geometry=new_inv.geometry.to_numpy(),
        crs=crs,
    )
    frag_pos = gpd.GeoDataFrame(
        {"source": "part_of", "iteration": k, "candidate_id": fragments["candidate_id"]},
        geometry=fragments.geometry.to_numpy(),
        crs=crs,
    )
    new_neg = gpd.GeoDataFrame(
        {"source": "rejected", "iteration": k, "candidate_id": rejected["candidate_id"]},
        geometry=rejected.geometry,
        crs=crs,
    )
    positives = concat(concat(positives, new_pos, crs), frag_pos, crs)
    negatives = concat(negatives, new_neg, crs)
    inventory = concat(inventory, new_inv, crs)
    return InventoryUpdate(
        new_positives=concat(new_pos, frag_pos, crs),
        new_negatives=new_neg,
        new_inventory=new_inv,
        fragments=fragments,
        grown=changed_features(sets["inventory"], inventory[inventory["iteration"] != k]),
        positives=positives,
        negatives=negatives,
        inventory=inventory,
    )


def iteration_summary(
    k: int,
    detectors: list[str],
    mine: gpd.GeoDataFrame,
    upd: InventoryUpdate,
    n_proposed: int,
    thresholds: dict[str, Any],
) -> dict[str, Any]:
    """The ``iterations`` row of iteration ``k`` (``thresholds``: each detector's summary)."""
    positives, negatives = upd.positives, upd.negatives
    return {
        "iteration": k,
        "detectors": ",".join(detectors),
        "training_positives": len(positives[positives["iteration"] < k]),
        "training_negatives": len(negatives[negatives["iteration"] < k]),
        "candidates_proposed": n_proposed,
        "candidates_reviewed": len(mine),
        "newly_confirmed": int((mine["status"] == "confirmed").sum()),
        "rejected": int((mine["status"] == "rejected").sum()),
        "inventory_size": len(upd.inventory),
        "thresholds_json": json.dumps(thresholds, default=str),
    }


def changed_features(before: gpd.GeoDataFrame, after: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Rows of ``after`` whose outline or attributes differ from ``before`` (same inventory_id).

    Whole-column comparisons (the inventory grows by thousands of features per iteration at
    QTEC size): outlines with ``shapely.equals``, attributes as text.
    """
    import shapely

    if len(after) == 0 or "inventory_id" not in after.columns or len(before) == 0:
        return after.iloc[:0]
    prev = before.drop_duplicates("inventory_id", keep="last").set_index("inventory_id")
    known = after["inventory_id"].isin(prev.index).to_numpy()
    cand = after[known]
    if len(cand) == 0:
        return cand
    old = prev.loc[cand["inventory_id"].to_numpy()]
    same = np.asarray(
        shapely.equals(
            np.asarray(cand.geometry.to_numpy(), dtype=object),
            np.asarray(old["geometry"].to_numpy(), dtype=object),
        ),
        dtype=bool,
    )
    for col in cand.columns:
        if col in ("geometry", "inventory_id") or col not in old.columns:
            continue
        same &= cand[col].astype(str).to_numpy() == old[col].astype(str).to_numpy()
    return cand[~same]


def concat(a: gpd.GeoDataFrame, b: gpd.GeoDataFrame, crs: Any) -> gpd.GeoDataFrame:
    """``a`` then ``b`` as one GeoDataFrame in ``crs`` (either may be empty)."""
    if len(b) == 0:
        return gpd.GeoDataFrame(a, geometry="geometry", crs=crs)
    if len(a) == 0:
        return gpd.GeoDataFrame(b, geometry="geometry", crs=crs)
    return gpd.GeoDataFrame(pd.concat([a, b], ignore_index=True), geometry="geometry", crs=crs)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (pd.Timestamp,)):
        return value.isoformat()
    return str(value)
