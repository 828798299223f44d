"""From review decisions to inventory features: reviewed outlines, fragments merged into X.

The engine's update stage calls :func:`build_inventory_change` once per iteration:

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
from typing import Any, NamedTuple

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from thawdetect.core.review.decisions import _inventory_targets, _texts

__all__ = ["InventoryChange", "build_inventory_change", "union_outline"]


class InventoryChange(NamedTuple):
    """What :func:`build_inventory_change` makes of an iteration's decisions."""

    #: the new inventory features of the iteration
    new_features: gpd.GeoDataFrame
    #: the earlier inventory with fragments merged into it (a copy)
    inventory: gpd.GeoDataFrame
    #: the "part of" candidates (candidate_id, detector outline)
    fragments: gpd.GeoDataFrame
    #: positions (in ``inventory``, ascending) of the earlier features a fragment was merged
    #: into or whose ``merged_candidates`` text was tidied; every other row is the input's row
    touched: NDArray[np.intp]


_AREAL = ("Polygon", "MultiPolygon")


def union_outline(a: Any, b: Any) -> Any:
    """Union of the areal parts of two geometries (a known point X gives way to b's outline)."""
    parts = [g for g in (a, b) if g is not None and not g.is_empty and g.geom_type in _AREAL]
    if not parts:
        return b if b is not None else a
    out = shapely.union_all(parts)
    return shapely.make_valid(out) if not shapely.is_valid(out) else out


def build_inventory_change(
    k: int,
    candidates: gpd.GeoDataFrame,
    latest: pd.DataFrame,
    inventory: gpd.GeoDataFrame,
    crs: Any,
    *,
    echo: Callable[[str], None] | None = None,
) -> InventoryChange:
    """The inventory change of iteration ``k``.

    Args:
        k: the iteration.
        candidates: the candidates of iteration ``k`` (detector outlines, current status).
        latest: each candidate's decision in effect (:func:`latest_decisions`).
        inventory: the inventory before this iteration (rows of iteration ``k`` removed).
        crs: the working CRS.
        echo: where to say that a fragment's target was not confirmed.

    Returns:
        The new inventory features of iteration ``k`` (``outline`` = reviewed / detector /
        union, ``merged_candidates``), the earlier inventory with fragments merged into it, the
        fragments (candidate_id, detector outline), and which earlier features were merged into
        (so that only those need comparing with what the ledger holds).
    """
    say = echo or (lambda _msg: None)
    # Whole columns: each candidate's id, status, detector outline and, for the confirmed and
    # "part of" ones, the decision's target and reviewed outline (all WKT parsed in one call).
    cids = candidates["candidate_id"].to_numpy()
    own = np.asarray(candidates["geometry"].to_numpy(), dtype=object)
    conf = np.flatnonzero((candidates["status"] == "confirmed").to_numpy())
    part = np.flatnonzero((candidates["status"] == "part_of").to_numpy())
    conf_outline = _reviewed_outlines(latest, cids[conf])
    frag_outline = _reviewed_outlines(latest, cids[part])

    has = ~shapely.is_missing(conf_outline)
    geoms = list(np.where(has, conf_outline, own[conf]))  # of the new features, in order
    outlines = list(np.where(has, "reviewed", "detector").astype(object))
    merged_into: dict[int, list[str]] = {}  # new feature -> the fragments merged into it
    extra: list[tuple[int, Any, str]] = []  # fragments kept as their own features

    inventory = inventory.copy()
    for col, default in (("outline", "detector"), ("merged_candidates", "")):
        if col not in inventory.columns:
            inventory[col] = default
    inv_geoms = inventory.geometry.to_numpy().copy()
    inv_outline = inventory["outline"].astype(object).to_numpy().copy()
    merged_before = inventory["merged_candidates"].to_numpy()
    inv_merged = _texts(merged_before)
    # features whose merged_candidates text is tidied here (None, NaN, padded) are changed too
    touched = set(
        np.flatnonzero(
            pd.Series(merged_before, dtype=object).ne(pd.Series(inv_merged, dtype=object))
        ).tolist()
    )
    if len(part):  # "part of" decisions are few: one at a time, in candidate order
        new: dict[Any, int] = {c: j for j, c in enumerate(cids[conf])}  # id -> new feature
        to = _decision_texts(latest, "part_of", cids[part])
        frag_target = dict(zip(cids[part], to, strict=True))
        targets = _inventory_targets(inventory)
        inv_pos = {iid: i for i, iid in enumerate(inventory["inventory_id"])}
        for row, outline in zip(part, frag_outline, strict=True):
            cid = cids[row]
            x, seen = frag_target[cid], {cid}
            while x in frag_target and x not in seen:  # chains: A part of B part of C
                seen.add(x)
                x = frag_target[x]
            if x in new:
                j = new[x]
                geoms[j] = outline if outline is not None else union_outline(geoms[j], own[row])
                outlines[j] = "reviewed" if outline is not None else outlines[j] + "+union"
                merged_into.setdefault(j, []).append(cid)
            elif x in targets:
                i = inv_pos[targets[x]]
                touched.add(i)
                inv_geoms[i] = (
                    outline if outline is not None else union_outline(inv_geoms[i], own[row])
                )
                inv_outline[i] = "reviewed" if outline is not None else f"{inv_outline[i]}+union"
                merged = [m for m in inv_merged[i].split(",") if m]
                inv_merged[i] = ",".join(dict.fromkeys([*merged, cid]))
            else:
                say(
                    f"  {cid}: part of '{x}', which is not confirmed; kept as its own inventory "
                    "feature"
                )
                new[cid] = len(geoms)
                extra.append((int(row), cid, "fragment"))
                geoms.append(outline if outline is not None else own[row])
                outlines.append("reviewed" if outline is not None else "detector")
    if len(inventory):
        inventory["outline"] = inv_outline
        inventory["merged_candidates"] = inv_merged
        inventory.set_geometry(
            gpd.GeoSeries(inv_geoms, index=inventory.index, crs=crs), inplace=True
        )
    # the new features: the candidates' attributes, then inventory_id first and four more
    pos = np.concatenate([conf, np.asarray([r for r, _, _ in extra], dtype=np.intp)])
    keep = [
        i for i, c in enumerate(candidates.columns) if c not in ("status", "iteration", "geometry")
    ]
    rows = pd.DataFrame(candidates).iloc[pos, keep].reset_index(drop=True)  # no geometry
    n_new = len(pos)
    rows.insert(0, "inventory_id", list(map(f"rts-{k:02d}-%04d".__mod__, range(1, n_new + 1))))
    rows["source"] = "confirmed"
    rows["iteration"] = k
    rows["outline"] = outlines
    rows["merged_candidates"] = [",".join(merged_into.get(j, ())) for j in range(n_new)]
    new_inv = gpd.GeoDataFrame(rows, geometry=gpd.GeoSeries(geoms, crs=crs), crs=crs)
    fragments = gpd.GeoDataFrame(
        {"candidate_id": np.asarray(cids[part], dtype=object)},
        geometry=gpd.GeoSeries(list(own[part]), crs=crs),
        crs=crs,
    )
    return InventoryChange(
        new_inv, inventory, fragments, np.asarray(sorted(touched), dtype=np.intp)
    )


def _decision_texts(latest: pd.DataFrame, column: str, ids: NDArray[Any]) -> NDArray[Any]:
    """``_text`` of ``latest[column]`` at each of ``ids`` ("" where no decision or column)."""
    out = np.full(len(ids), "", dtype=object)
    if column not in latest.columns or len(ids) == 0:
        return out
    at = latest.index.get_indexer(pd.Index(ids))
    found = at >= 0
    out[found] = _texts(latest[column].to_numpy()[at[found]])
    return out


def _reviewed_outlines(latest: pd.DataFrame, ids: NDArray[Any]) -> NDArray[Any]:
    """The reviewed outline of each of ``ids`` (None where its decision carries none)."""
    text = _decision_texts(latest, "geometry_wkt", ids)
    drawn = text != ""
    out = np.full(len(ids), None, dtype=object)
    if drawn.any():
        out[drawn] = shapely.from_wkt(text[drawn])
    return out
