"""The update stage as of commit f58208a, frozen: the reference for the update-stage speed-up.

Verbatim copies of ``latest_decisions`` (with ``effective_decisions``, ``_batch_keys``,
``_text``, ``outline_from_wkt``, ``_inventory_targets``) from core/review/decisions.py,
``union_outline`` and ``build_inventory_update`` from core/review/outlines.py, and
``InventoryUpdate``, ``inventory_update``, ``iteration_summary``, ``changed_features`` and
``concat`` from core/run/layers.py, before they were vectorised (issue 13). Used by
``bench/bench_update.py`` (old vs new seconds) and ``tests/test_update_stage.py`` (the new code
must give the same frames). Not part of the package; do not change it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

UNDO = "undo"


def _text(value: Any) -> str:
    """``""`` for None/NaN/blank, else the stripped string."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value).strip()


def outline_from_wkt(text: Any) -> Any:
    """The reviewed outline stored in a decision row (None when the row carries none)."""
    t = _text(text)
    return shapely.from_wkt(t) if t else None


def _batch_keys(dec: pd.DataFrame) -> pd.Series:
    """Each history row's batch key (its batch_id; rows without one are their own batch)."""
    ids = dec["batch_id"] if "batch_id" in dec else pd.Series("", index=dec.index)
    ids = ids.map(_text)
    return ids.where(ids != "", pd.Series([f"row-{i}" for i in dec.index], index=dec.index))


def effective_decisions(decisions: pd.DataFrame) -> pd.DataFrame:
    """Decision rows still in effect, in history order: undo rows and what they undid removed.

    Args:
        decisions: the ledger's ``decisions`` table (append order = time order).

    Returns:
        The remaining rows (index reset) with a ``batch_key`` column.
    """
    dec = decisions.reset_index(drop=True).copy()
    dec["batch_key"] = _batch_keys(dec)
    is_undo = dec["decision"] == UNDO
    undone = {
        (c, _text(u))
        for c, u in zip(dec.loc[is_undo, "candidate_id"], dec.loc[is_undo, "undoes"], strict=True)
    }
    hit = [(c, k) in undone for c, k in zip(dec["candidate_id"], dec["batch_key"], strict=True)]
    keep = ~is_undo.to_numpy() & ~np.asarray(hit, dtype=bool)
    out: pd.DataFrame = dec[keep].reset_index(drop=True)
    return out


def latest_decisions(decisions: pd.DataFrame) -> pd.DataFrame:
    """Each candidate's decision in effect (the latest not undone), indexed by candidate_id."""
    eff = effective_decisions(decisions)
    return eff.drop_duplicates("candidate_id", keep="last").set_index("candidate_id")


def _inventory_targets(inventory: pd.DataFrame) -> dict[str, str]:
    """Names a "part of" decision may use for an inventory feature → its inventory_id."""
    out: dict[str, str] = {}
    if len(inventory) == 0:
        return out
    for inv_id, cid in zip(inventory["inventory_id"], inventory["candidate_id"], strict=True):
        if _text(cid):
            out[_text(cid)] = str(inv_id)
        out[str(inv_id)] = str(inv_id)
    return out


_AREAL = ("Polygon", "MultiPolygon")


def union_outline(a: Any, b: Any) -> Any:
    """Union of the areal parts of two geometries (a known point X gives way to b's outline)."""
    parts = [g for g in (a, b) if g is not None and not g.is_empty and g.geom_type in _AREAL]
    if not parts:
        return b if b is not None else a
    out = shapely.union_all(parts)
    return shapely.make_valid(out) if not shapely.is_valid(out) else out


def build_inventory_update(
    k: int,
    candidates: gpd.GeoDataFrame,
    latest: pd.DataFrame,
    inventory: gpd.GeoDataFrame,
    crs: Any,
    *,
    echo: Callable[[str], None] | None = None,
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """The inventory change of iteration ``k``.

    Args:
        k: the iteration.
        candidates: the candidates of iteration ``k`` (detector outlines, current status).
        latest: each candidate's decision in effect (:func:`latest_decisions`).
        inventory: the inventory before this iteration (rows of iteration ``k`` removed).
        crs: the working CRS.
        echo: where to say that a fragment's target was not confirmed.

    Returns:
        ``(new_features, inventory, fragments)``: the new inventory features of iteration ``k``
        (``outline`` = reviewed / detector / union, ``merged_candidates``), the earlier inventory
        with fragments merged into it, and the fragments (candidate_id, detector outline).
    """
    say = echo or (lambda _msg: None)
    cands = candidates.set_index("candidate_id", drop=False)
    status = cands["status"]

    def reviewed(cid: str) -> Any:
        if cid not in latest.index or "geometry_wkt" not in latest.columns:
            return None
        return outline_from_wkt(latest.at[cid, "geometry_wkt"])

    def target_of(cid: str) -> str:
        if cid not in latest.index or "part_of" not in latest.columns:
            return ""
        return _text(latest.at[cid, "part_of"])

    new: dict[str, dict[str, Any]] = {}
    for cid in cands.index[status == "confirmed"]:
        outline = reviewed(cid)
        new[cid] = {
            "geometry": outline if outline is not None else cands.at[cid, "geometry"],
            "outline": "reviewed" if outline is not None else "detector",
            "merged": [],
        }
    inventory = inventory.copy()
    for col, default in (("outline", "detector"), ("merged_candidates", "")):
        if col not in inventory.columns:
            inventory[col] = default
    targets = _inventory_targets(inventory)
    inv_pos = {iid: i for i, iid in enumerate(inventory["inventory_id"])} if len(inventory) else {}
    inv_geoms = inventory.geometry.to_numpy().copy()
    inv_outline = inventory["outline"].astype(object).to_numpy().copy()
    inv_merged = inventory["merged_candidates"].map(_text).to_numpy().copy()
    frag_ids: list[str] = []
    frag_geoms: list[Any] = []
    for cid in cands.index[status == "part_of"]:
        x, seen = target_of(cid), {cid}
        while x in status.index and status[x] == "part_of" and x not in seen:
            seen.add(x)
            x = target_of(x)
        own = cands.at[cid, "geometry"]
        outline = reviewed(cid)
        if x in new:
            feat = new[x]
            feat["geometry"] = (
                outline if outline is not None else union_outline(feat["geometry"], own)
            )
            feat["outline"] = "reviewed" if outline is not None else feat["outline"] + "+union"
            feat["merged"].append(cid)
        elif x in targets:
            i = inv_pos[targets[x]]
            inv_geoms[i] = outline if outline is not None else union_outline(inv_geoms[i], own)
            inv_outline[i] = "reviewed" if outline is not None else f"{inv_outline[i]}+union"
            merged = [m for m in inv_merged[i].split(",") if m]
            inv_merged[i] = ",".join(dict.fromkeys([*merged, cid]))
        else:
            say(
                f"  {cid}: part of '{x}', which is not confirmed; kept as its own inventory feature"
            )
            new[cid] = {
                "geometry": outline if outline is not None else own,
                "outline": "reviewed" if outline is not None else "detector",
                "merged": [],
            }
        frag_ids.append(cid)
        frag_geoms.append(own)
    if len(inventory):
        inventory["outline"] = inv_outline
        inventory["merged_candidates"] = inv_merged
        inventory = inventory.set_geometry(gpd.GeoSeries(inv_geoms, index=inventory.index, crs=crs))
    ids = list(new)
    rows = cands.loc[ids].drop(columns=["status", "iteration"], errors="ignore").copy()
    rows = rows.reset_index(drop=True)
    rows.insert(0, "inventory_id", [f"rts-{k:02d}-{i + 1:04d}" for i in range(len(ids))])
    rows["source"] = "confirmed"
    rows["iteration"] = k
    rows["outline"] = [new[c]["outline"] for c in ids]
    rows["merged_candidates"] = [",".join(new[c]["merged"]) for c in ids]
    new_inv = gpd.GeoDataFrame(
        rows.drop(columns="geometry"),
        geometry=gpd.GeoSeries([new[c]["geometry"] for c in ids], crs=crs),
        crs=crs,
    )
    fragments = gpd.GeoDataFrame(
        {"candidate_id": np.asarray(frag_ids, dtype=object)},
        geometry=gpd.GeoSeries(frag_geoms, crs=crs),
        crs=crs,
    )
    return new_inv, inventory, fragments


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
