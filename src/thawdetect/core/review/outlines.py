"""From review decisions to inventory features: reviewed outlines, fragments merged into X.

The engine's update stage calls :func:`build_inventory_update` once per iteration:

* a ``confirmed`` candidate becomes a new inventory feature with the reviewed outline of its
  latest decision (``geometry_wkt``), or its detector outline when the reviewer kept it;
* a ``part_of`` candidate (fragment or duplicate of X) is merged into X: X's outline becomes the
  decision's outline when one was drawn, else X ∪ the fragment; X keeps its id; the fragment is
  never a training negative (it is a training positive with source ``part_of``). X may be an
  inventory feature (inventory_id, or the candidate_id that made it) or a candidate confirmed in
  the same iteration; chains (A part of B part of C) are followed;
* the candidates keep their detector outlines; the ledger's decision history keeps the reviewed
  ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from thawdetect.core.review.decisions import _inventory_targets, _text, outline_from_wkt

__all__ = ["build_inventory_update", "union_outline"]

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
