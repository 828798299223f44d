"""One inventory feature per landslide: confirmed outlines join the features they already are.

The update stage (:func:`thawdetect.core.run.layers.inventory_update`) calls
:func:`join_same_landslides` after the iteration's decisions made their new features:

* a known **point** inside a confirmed outline becomes that outline: the feature keeps its
  inventory id and source (``known``), gains the outline (``outline`` = how it was made:
  ``reviewed`` for a reviewer's outline, ``detector`` for the detector's), the candidate's id and
  its evidence where the known feature had none;
* an inventory **polygon** (known, or confirmed earlier) that a confirmed outline overlaps by
  ``duplicate_overlap`` of the smaller area takes it in as "part of": its outline becomes the
  reviewed outline when one was drawn, else the union, exactly as a "part of" decision does; the
  candidate is listed in ``merged_candidates``.

The new feature is then not added: the inventory counts each landslide once (the reference
reviewer confirms a landslide whose known point lies outside the detector's outline with the
landslide's reference outline, which holds the point: both were kept before). The confirmed
outline stays a training positive. Matching is one STRtree query and whole-array areas; only the
joined features are touched one by one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from thawdetect.core.review.outlines import union_outline

__all__ = ["join_same_landslides"]

#: columns a joined feature never takes from the candidate
_OWN = ("inventory_id", "source", "iteration", "outline", "merged_candidates", "probability")


def join_same_landslides(
    k: int,
    new_features: gpd.GeoDataFrame,
    inventory: gpd.GeoDataFrame,
    touched: NDArray[np.intp],
    *,
    overlap: float,
    echo: Callable[[str], None] | None = None,
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, NDArray[np.intp]]:
    """Join iteration ``k``'s new features to the earlier features they already are.

    Args:
        k: the iteration (the new features' ids are renumbered ``rts-KK-NNNN``).
        new_features: the iteration's new inventory features (``build_inventory_change``).
        inventory: the earlier inventory (changed in place: pass the update stage's copy).
        touched: positions of earlier features already changed this iteration.
        overlap: a polygon overlap, as a fraction of the smaller area, that makes two outlines
            one landslide (the run's ``duplicate_overlap``).
        echo: where to say what was joined (one line).

    Returns:
        ``(new_features, inventory, touched)``: the new features left (renumbered), the
        inventory with the joined features changed, and every changed position (ascending).
    """
    if len(new_features) == 0 or len(inventory) == 0:
        return new_features, inventory, touched
    target = _targets(new_features, inventory, overlap)
    joined = np.flatnonzero(target >= 0)
    if len(joined) == 0:
        return new_features, inventory, touched
    geoms = inventory.geometry.to_numpy().copy()
    cols = {c: inventory[c].astype(object).to_numpy().copy() for c in inventory.columns
            if c != inventory.geometry.name}  # fmt: skip
    for c in new_features.columns:  # evidence columns the earlier features lack
        if c not in cols and c != new_features.geometry.name:
            cols[c] = np.full(len(inventory), None, dtype=object)
    new_geoms = new_features.geometry.to_numpy()
    changed = set(touched.tolist())
    n_points = n_polygons = 0
    for j in joined.tolist():
        i = int(target[j])
        row = new_features.iloc[j]
        cid = row.get("candidate_id")
        fragments = [m for m in str(row.get("merged_candidates") or "").split(",") if m]
        was_point = geoms[i] is not None and geoms[i].geom_type in ("Point", "MultiPoint")
        if was_point or (_text(cid) != "" and _text(cols["candidate_id"][i]) == _text(cid)):
            # the known point becomes the outline (again, on a re-run of the stage)
            n_points += 1
            geoms[i] = new_geoms[j]
            cols["outline"][i] = row.get("outline") or "detector"
            for c in new_features.columns:
                if c in _OWN or c == new_features.geometry.name:
                    continue
                if _missing(cols[c][i]) and not _missing(row[c]):
                    cols[c][i] = row[c]
            merged = fragments
        else:
            n_polygons += 1
            reviewed = str(row.get("outline") or "").startswith("reviewed")
            geoms[i] = new_geoms[j] if reviewed else union_outline(geoms[i], new_geoms[j])
            cols["outline"][i] = "reviewed" if reviewed else f"{cols['outline'][i]}+union"
            if _missing(cols["candidate_id"][i]):
                cols["candidate_id"][i] = cid
            merged = [_text(cid), *fragments]
            dets = {d for d in str(cols["detectors"][i] or "").split(",") if d}
            dets |= {d for d in str(row.get("detectors") or "").split(",") if d}
            cols["detectors"][i] = ",".join(sorted(dets))
        before = [m for m in _text(cols["merged_candidates"][i]).split(",") if m]
        cols["merged_candidates"][i] = ",".join(dict.fromkeys([*before, *merged]))
        changed.add(i)
    out = pd.DataFrame(cols, index=inventory.index)
    for c in inventory.columns:  # keep each column's dtype where its values allow
        if c in out and c != inventory.geometry.name:
            out[c] = _like(out[c], inventory[c])
    inventory = gpd.GeoDataFrame(
        out, geometry=gpd.GeoSeries(geoms, index=inventory.index, crs=inventory.crs)
    )
    keep = target < 0
    left = new_features[keep].reset_index(drop=True)
    left["inventory_id"] = [f"rts-{k:02d}-{i + 1:04d}" for i in range(len(left))]
    if echo is not None:
        echo(
            f"  one feature per landslide: {n_points} confirmed outline(s) became the outline "
            f"of a known point, {n_polygons} joined an overlapping inventory feature"
        )
    return left, inventory, np.asarray(sorted(changed), dtype=np.intp)


def _targets(new: gpd.GeoDataFrame, inventory: gpd.GeoDataFrame, overlap: float) -> NDArray[Any]:
    """For each new feature: the position of the first earlier feature it is (-1: none)."""
    target = np.full(len(new), -1, dtype=np.int64)
    ng = np.asarray(new.geometry.to_numpy(), dtype=object)
    ig = np.asarray(inventory.geometry.to_numpy(), dtype=object)
    areal = ~shapely.is_missing(ng) & np.isin(shapely.get_type_id(ng), (3, 6))
    if not areal.any():
        return target
    cand = np.flatnonzero(areal)
    ng_valid = shapely.make_valid(ng[cand])
    present = np.flatnonzero(~shapely.is_missing(ig) & ~shapely.is_empty(ig))
    if len(present) == 0:
        return target
    ig_valid = shapely.make_valid(ig[present])
    a, b = shapely.STRtree(ig_valid).query(ng_valid, predicate="intersects")
    if len(a) == 0:
        return target
    kind = shapely.get_type_id(ig_valid[b])
    point = np.isin(kind, (0, 4))
    ok = point.copy()
    poly = np.flatnonzero(np.isin(kind, (3, 6)))
    if len(poly):
        ga, gb = ng_valid[a[poly]], ig_valid[b[poly]]
        inter = shapely.area(shapely.intersection(ga, gb))
        denom = np.minimum(shapely.area(ga), shapely.area(gb))
        frac = np.divide(inter, denom, out=np.zeros_like(inter), where=denom > 0)
        ok[poly] = frac >= overlap
    a, b = a[ok], present[b[ok]]
    if len(a) == 0:
        return target
    order = np.lexsort((b, a))  # per new feature, the first earlier feature in inventory order
    a, b = a[order], b[order]
    first = np.r_[True, a[1:] != a[:-1]]
    target[cand[a[first]]] = b[first]
    return target


def _text(value: Any) -> str:
    return "" if _missing(value) else str(value).strip()


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def _like(values: pd.Series, original: pd.Series) -> pd.Series:
    """``values`` (object) back in ``original``'s dtype when that holds them unchanged."""
    if original.dtype == object:
        return values
    try:
        cast = values.astype(original.dtype)
    except (TypeError, ValueError):
        return values
    return cast
