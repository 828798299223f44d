"""The rows the engine's stages write to the ledger's layers, built from explicit inputs.

The known inventory read and turned into the first inventory and positives (stage ``init``), a
detector's candidates turned into proposal rows (``propose:<name>``), and the inventory,
positives and negatives after a review (``update``); ``guard.py`` screens merged candidates
(``merge``). Nothing here reads or writes the ledger: the engine does, one transaction per stage.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from thawdetect.core.errors import InputError
from thawdetect.core.plugin_api.detector import SCORE_COLUMN
from thawdetect.core.run._json import json_objects
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
        invalid: dict[int, str] = gdf.attrs.get("invalid") or {}
        if invalid:  # a bow-tie became two polygons: say so, it was silent
            row, reason = next(iter(invalid.items()))
            n_parts = len(shapely.get_parts(gdf.geometry.iloc[row]))
            more = f" and {len(invalid) - 1} more" if len(invalid) > 1 else ""
            echo(
                f"warning: known inventory {p}: feature {row + 1} is invalid ({reason}) and was "
                f"repaired into {n_parts} polygon(s){more}; fix it in QGIS to keep one outline"
            )
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
            "evidence_json": json_objects(
                evidence_cols, [rows[c].astype(object).tolist() for c in evidence_cols], encode
            )
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
    *,
    same_landslide_overlap: float | None = None,
) -> InventoryUpdate:
    """Inventory, positives and negatives after iteration ``k``'s candidates ``mine`` were decided.

    With ``same_landslide_overlap`` (the engine passes the run's ``duplicate_overlap``), a
    confirmed outline that holds a known point, or overlaps an earlier feature by that fraction
    of the smaller area, joins that feature instead of adding one
    (:func:`thawdetect.core.run.landslides.join_same_landslides`): one feature per landslide.

    Idempotent on re-run: rows of iteration ``k`` in ``sets`` are replaced, not appended twice
    (and a union into an earlier feature is the same union again).
    """
    from thawdetect.core.review.outlines import build_inventory_change

    # the rejected candidates' ids and outlines (filtered as a frame, as before: same index)
    rejected = mine[["candidate_id", mine.geometry.name]][mine["status"] == "rejected"]
    positives = sets["positives"][sets["positives"]["iteration"] != k]
    negatives = sets["negatives"][sets["negatives"]["iteration"] != k]
    inventory = sets["inventory"][sets["inventory"]["iteration"] != k]  # copied by the call below
    new_inv, inventory, fragments, touched = build_inventory_change(
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
    if same_landslide_overlap is not None:
        from thawdetect.core.run.landslides import join_same_landslides

        new_inv, inventory, touched = join_same_landslides(
            k, new_inv, inventory, touched, overlap=same_landslide_overlap, echo=echo
        )
    positives = concat(concat(positives, new_pos, crs), frag_pos, crs)
    negatives = concat(negatives, new_neg, crs)
    inventory = concat(inventory, new_inv, crs)  # the earlier features first, in their order
    # only the earlier features a fragment was merged into can differ from the ledger's rows
    # (the others are the same rows): compare those, whatever the inventory's size
    grown = changed_features(sets["inventory"], inventory.iloc[touched])
    return InventoryUpdate(
        new_positives=concat(new_pos, frag_pos, crs),
        new_negatives=new_neg,
        new_inventory=new_inv,
        fragments=fragments,
        grown=grown,
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
        "training_positives": int((positives["iteration"] < k).sum()),
        "training_negatives": int((negatives["iteration"] < k).sum()),
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
    QTEC size): outlines with ``shapely.equals``, attributes as text, against the last row of
    ``before`` with the same inventory_id. Most rows are unchanged, so cheap exact checks settle
    them first (the same valid outline, plain strings, bit-identical numbers); only the rest go
    through ``shapely.equals`` and ``astype(str)``.
    """
    if len(after) == 0 or "inventory_id" not in after.columns or len(before) == 0:
        return after.iloc[:0]
    prev_ids = before["inventory_id"]
    last = np.flatnonzero(~prev_ids.duplicated(keep="last").to_numpy())
    prev_index = pd.Index(prev_ids.to_numpy()[last])
    known = after["inventory_id"].isin(prev_index).to_numpy()
    if not known.any():
        return after[known]
    rows = np.flatnonzero(known)  # rows of after, and the matching rows of before
    old_rows = last[prev_index.get_indexer(after["inventory_id"].to_numpy()[rows])]
    same = _same_outlines(
        np.asarray(after.geometry.to_numpy(), dtype=object)[rows],
        np.asarray(before["geometry"].to_numpy(), dtype=object)[old_rows],
    )
    for col in after.columns:
        if col in ("geometry", "inventory_id") or col not in before.columns:
            continue
        same &= _same_text(after[col], rows, before[col], old_rows)
    known[rows[same]] = False
    return after[known]


def _same_outlines(a: NDArray[Any], b: NDArray[Any]) -> NDArray[Any]:
    """``shapely.equals(a, b)``, called only where the WKB differs or the outline is not valid.

    A valid outline equals an outline with the same WKB; None, an invalid outline (which may not
    equal itself) and different bytes are left to ``shapely.equals``.
    """
    import shapely

    ident = np.fromiter((x is y for x, y in zip(a, b, strict=True)), dtype=bool, count=len(a))
    other = np.flatnonzero(~ident)
    if len(other):  # different objects: the same bytes?
        ident[other] = shapely.to_wkb(a[other]) == shapely.to_wkb(b[other])
    same = np.zeros(len(a), dtype=bool)
    quick = np.flatnonzero(ident)
    same[quick] = shapely.is_valid(a[quick])
    slow = np.flatnonzero(~same)
    if len(slow):
        same[slow] = shapely.equals(a[slow], b[slow])
    return same


def _same_text(
    a: pd.Series, a_rows: NDArray[Any], b: pd.Series, b_rows: NDArray[Any]
) -> NDArray[Any]:
    """``a[a_rows].astype(str) == b[b_rows].astype(str)`` element-wise, most rows without astype.

    Plain strings are their own text; None's text is the same wherever it is (whether it equals
    itself is asked of pandas once); bit-identical numbers other than NaN print the same. Other
    rows go through ``astype(str)``; when no row is settled (say a datetime column, whose text may
    depend on the whole column), the whole column does.
    """
    x, y = a.to_numpy()[a_rows], b.to_numpy()[b_rows]
    equal = np.zeros(len(x), dtype=bool)
    sure = np.zeros(len(x), dtype=bool)  # rows settled without astype
    if x.dtype == object and y.dtype == object:
        if _all_str(x) and _all_str(y):
            return np.asarray(x == y, dtype=bool)
        kx, ky = _kinds(x), _kinds(y)
        both = kx == ky
        text = both & (kx == 1)
        equal[text] = x[text] == y[text]
        none = both & (kx == 2)
        equal[none] = _none_text_equal()
        sure = text | none
    elif x.dtype == y.dtype and x.dtype.kind in "biuf":
        sure = x.view(f"u{x.dtype.itemsize}") == y.view(f"u{y.dtype.itemsize}")
        if x.dtype.kind == "f":
            sure &= ~np.isnan(x)  # NaN's text is left to astype
        equal = sure.copy()
    rest = np.flatnonzero(~sure)
    if len(rest) == len(x):
        return np.asarray(
            a.take(a_rows).astype(str).to_numpy() == b.take(b_rows).astype(str).to_numpy(),
            dtype=bool,
        )
    if len(rest):
        equal[rest] = (
            a.take(a_rows[rest]).astype(str).to_numpy()
            == b.take(b_rows[rest]).astype(str).to_numpy()
        )
    return equal


def _all_str(values: NDArray[Any]) -> bool:
    """Whether every element is a string (a C-level check)."""
    return bool(pd.api.types.infer_dtype(values, skipna=False) == "string")


def _kinds(values: NDArray[Any]) -> NDArray[Any]:
    """1 for a plain Python string, 2 for None, 0 for anything else."""
    if _all_str(values):
        return np.ones(len(values), dtype=np.int8)
    return np.fromiter(
        (1 if type(v) is str else 2 if v is None else 0 for v in values),
        dtype=np.int8,
        count=len(values),
    )


@functools.cache
def _none_text_equal() -> bool:
    """Whether pandas gives None in an object column a text equal to itself (``"None"``)."""
    text = pd.Series([None, None], dtype=object).astype(str).to_numpy()
    return bool(text[0] == text[1])


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
