"""Manual review of a run's candidates: queue, decisions, undo, history, outline checks.

Everything is stored in the run ledger (:mod:`thawdetect.core.run.ledger`): each decision appends
a row to the ``decisions`` history (candidate_id, decision, probability, note, reviewer, timestamp,
iteration) and updates the candidate's ``status``/``probability`` in the same transaction.

Decisions are ``confirmed`` / ``rejected`` / ``unsure``; probability classes ``high`` / ``medium``
/ ``low`` (Xia et al. 2022). The QGIS round trip writes the pending candidates to a GeoPackage with
empty, editable ``decision``, ``probability``, ``note`` and ``reviewer`` fields; importing applies
every filled row in one transaction, or nothing when any row is wrong.

The QGIS round trip lives in :mod:`thawdetect.core.review.qgis` and reviewer agreement in
:mod:`thawdetect.core.review.agreement`; both build on this module, which imports neither (no
import circle).

About 450 lines: the rest is one unit (normalising input, the outline and "part of" checks,
decide, undo, history) sharing private helpers that the QGIS import uses too; splitting it
further would only scatter them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from thawdetect.core.errors import InputError
from thawdetect.core.run.access import open_run_ledger
from thawdetect.core.run.ledger import (
    DECISIONS,
    PROBABILITIES,
    STATUSES,
    TABLE_SCHEMAS,
    UNDO,
    now_iso,
)
from thawdetect.core.run.rundir import writing_to_run

__all__ = [
    "EDIT_FIELDS",
    "MAX_OUTLINE_AREA_RATIO",
    "MAX_OUTLINE_DISTANCE_M",
    "check_outline",
    "check_part_of",
    "check_part_of_targets",
    "decide",
    "effective_decisions",
    "history",
    "latest_decisions",
    "open_ledger",
    "read_outline_file",
    "review_queue",
    "undo_last_decision",
]

#: Fields of the QGIS export a reviewer fills in (and the geometry, when the outline is wrong).
EDIT_FIELDS = ("decision", "probability", "note", "reviewer", "part_of")
#: Other spellings of a decision accepted on input.
DECISION_ALIASES = {"same_as": "part_of", "partof": "part_of", "duplicate": "part_of"}
#: A reviewed outline farther than this from the candidate's detector outline is refused
#: (the chips show the candidate's bounding box + 300 m).
MAX_OUTLINE_DISTANCE_M = 300.0
#: A reviewed outline more than this many times larger (or smaller) than the candidate's needs
#: ``force`` (a 100 x 100 km box or a 1 cm² box was taken as a 4.4 ha landslide's outline).
MAX_OUTLINE_AREA_RATIO = 50.0


#: The run's ledger or InputError (kept under this name for the CLI and the evidence pages).
open_ledger = open_run_ledger


def review_queue(
    run_dir: str | Path, *, status: str | None = "pending", iteration: int | None = None
) -> gpd.GeoDataFrame:
    """Candidates to review, most promising first.

    In :func:`thawdetect.core.review.order.sort_queue`'s order: agreeing detectors, then the
    chance of a confirmation learned from the decisions of the earlier iterations (the
    detectors' confidence on one 0-1 scale until there are enough), then id (computed over the
    whole ledger, so a filter or a decision in the same iteration never reorders; the page uses
    the same).

    Args:
        run_dir: the run directory.
        status: keep only this status (pending/confirmed/rejected/unsure); None keeps all.
        iteration: keep only this iteration.

    Raises:
        InputError: not a run directory or an unknown status.
    """
    if status is not None and status not in STATUSES:
        raise InputError(run_dir, f"unknown status '{status}'; use one of {list(STATUSES)}")
    from thawdetect.core.review.order import sort_queue

    ledger = open_ledger(run_dir).read("candidates")
    cands = sort_queue(ledger, decided=ledger)
    if status is not None:
        cands = cands[cands["status"] == status]
    if iteration is not None:
        cands = cands[cands["iteration"] == iteration]
    return cands.reset_index(drop=True)


def _normalise_probability(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip().lower()
    return text or None


def _text(value: Any) -> str:
    """``""`` for None/NaN/blank, else the stripped string."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value).strip()


def _texts(values: Any) -> NDArray[Any]:
    """:func:`_text` of each value, as an object array (a plain string skips the call)."""
    arr = np.asarray(values, dtype=object)
    out = np.empty(len(arr), dtype=object)
    out[:] = [v.strip() if type(v) is str else _text(v) for v in arr]
    return out


def _normalise_decision(value: Any) -> str:
    text = _text(value).lower().replace(" ", "_").replace("-", "_")
    return DECISION_ALIASES.get(text, text)


def _wkt(geom: Any) -> str:
    return "" if geom is None else str(shapely.to_wkt(geom, rounding_precision=3, trim=True))


def check_outline(
    geometry: Any,
    crs: Any,
    candidate_geometry: Any,
    candidate_id: str,
    *,
    source: str | Path | None = None,
    force: bool = False,
) -> Any:
    """Validate a reviewer's outline and return it as one shapely (Multi)Polygon in ``crs``.

    Args:
        geometry: a shapely geometry in ``crs``, or a GeoSeries/GeoDataFrame (reprojected to
            ``crs`` when it carries a CRS; several features are unioned).
        crs: the run's working CRS.
        candidate_geometry: the candidate's detector outline (for the distance check).
        candidate_id: for messages.
        source: file or run directory named in messages.
        force: accept an outline more than :data:`MAX_OUTLINE_AREA_RATIO` times larger or
            smaller than the candidate.

    Raises:
        InputError: empty, not a polygon, invalid, farther than
            :data:`MAX_OUTLINE_DISTANCE_M` from the candidate, far larger or smaller than it
            (without ``force``), or labelled longitude/latitude with coordinates that are not
            (message names the candidate).
    """
    what = f"candidate {candidate_id}: reviewed outline"
    no_crs = False
    if isinstance(geometry, gpd.GeoDataFrame):
        geometry = geometry.geometry
    if isinstance(geometry, gpd.GeoSeries):
        series = geometry[geometry.notna()]
        if series.crs is None:
            no_crs = True
        elif crs is not None and len(series):
            if series.crs.is_geographic and len(series.dropna()):
                x0, y0, x1, y1 = series.total_bounds
                if min(x0, y0) < -180 or x1 > 360 or max(abs(y0), abs(y1)) > 90:
                    raise InputError(
                        source,
                        f"{what}: coordinates ({x0:,.0f}, {y0:,.0f}) are not longitude/latitude "
                        f"though the file says {series.crs.to_string()} (GeoJSON is read as "
                        "WGS 84 unless it names its CRS: save it as GeoPackage with its CRS)",
                    )
            series = series.to_crs(crs)
        if len(series) == 0:
            raise InputError(source, f"{what} is empty")
        bad = [str(shapely.is_valid_reason(g)) for g in series if not shapely.is_valid(g)]
        if bad:
            raise InputError(source, f"{what} is invalid ({bad[0]})")
        geometry = shapely.union_all(series.to_numpy())
    if geometry is None or geometry.is_empty:
        raise InputError(source, f"{what} is empty")
    if geometry.geom_type not in ("Polygon", "MultiPolygon"):
        raise InputError(source, f"{what} is a {geometry.geom_type}, not a polygon")
    if not shapely.is_valid(geometry):
        raise InputError(source, f"{what} is invalid ({shapely.is_valid_reason(geometry)})")
    if candidate_geometry is not None and not candidate_geometry.is_empty:
        dist = float(geometry.distance(candidate_geometry))
        if dist > MAX_OUTLINE_DISTANCE_M:
            hint = (
                " (the file has no CRS: a missing .prj? coordinates are read in the run's CRS)"
                if no_crs
                else ""
            )
            raise InputError(
                source,
                f"{what} lies {dist:,.0f} m from the candidate (more than "
                f"{MAX_OUTLINE_DISTANCE_M:.0f} m){hint}",
            )
        area, cand_area = float(geometry.area), float(candidate_geometry.area)
        ratio = area / cand_area if cand_area > 0 else 1.0
        if not force and not 1 / MAX_OUTLINE_AREA_RATIO <= ratio <= MAX_OUTLINE_AREA_RATIO:
            size = f"{ratio:,.0f} times" if ratio > 1 else f"1/{1 / max(ratio, 1e-12):,.0f} of"
            raise InputError(
                source,
                f"{what} is {size} the candidate's area ({_ha(area)} against "
                f"{_ha(cand_area)}); check its CRS and extent, or pass --force",
            )
    return geometry


def _ha(area_m2: float) -> str:
    return f"{area_m2 / 1e4:,.4g} ha" if area_m2 >= 1 else f"{area_m2:.2g} m²"


def _in_effect(decisions: pd.DataFrame) -> tuple[NDArray[Any], NDArray[Any]]:
    """``(keep, batch_keys)`` of each history row, by position.

    A row's batch key is its batch_id (``row-<position>`` when it has none); ``keep`` is False
    for undo rows and for the rows of (candidate, batch) pairs an undo row undid.
    """
    n = len(decisions)
    if "batch_id" in decisions:
        keys = _texts(decisions["batch_id"].to_numpy())
    else:
        keys = np.full(n, "", dtype=object)
    blank = np.flatnonzero(keys == "")
    if len(blank):
        keys[blank] = [f"row-{i}" for i in blank]
    is_undo = (decisions["decision"] == UNDO).to_numpy()
    keep = ~is_undo
    if is_undo.any():  # the pairs undone; without undo rows nothing is
        cids = decisions["candidate_id"].to_numpy()
        undone = set(
            zip(cids[is_undo], _texts(decisions["undoes"].to_numpy()[is_undo]), strict=True)
        )
        pairs = zip(cids, keys, strict=True)
        keep &= ~np.fromiter((p in undone for p in pairs), dtype=bool, count=n)
    return keep, keys


def effective_decisions(decisions: pd.DataFrame) -> pd.DataFrame:
    """Decision rows still in effect, in history order: undo rows and what they undid removed.

    Args:
        decisions: the ledger's ``decisions`` table (append order = time order).

    Returns:
        The remaining rows (index reset) with a ``batch_key`` column.
    """
    keep, keys = _in_effect(decisions)
    dec = decisions.reset_index(drop=True)
    dec["batch_key"] = keys
    out: pd.DataFrame = dec[keep].reset_index(drop=True)
    return out


def latest_decisions(decisions: pd.DataFrame) -> pd.DataFrame:
    """Each candidate's decision in effect (the latest not undone), indexed by candidate_id.

    The rows of :func:`effective_decisions`, the last per candidate, taken in one step.
    """
    keep, keys = _in_effect(decisions)
    rows = np.flatnonzero(keep)
    ids = decisions["candidate_id"].iloc[rows].to_frame()
    rows = rows[~ids.duplicated("candidate_id", keep="last").to_numpy()]
    out: pd.DataFrame = decisions.iloc[rows].set_index("candidate_id")
    out["batch_key"] = keys[rows]
    return out


def _inventory_targets(inventory: pd.DataFrame) -> dict[str, str]:
    """Names a "part of" decision may use for an inventory feature → its inventory_id."""
    if len(inventory) == 0:
        return {}
    n = len(inventory)
    inv_ids = np.empty(n, dtype=object)
    inv_ids[:] = [i if type(i) is str else str(i) for i in inventory["inventory_id"].to_numpy()]
    cids = _texts(inventory["candidate_id"].to_numpy())
    # row by row, later rows winning: the candidate_id (when there is one), then the inventory_id
    names = np.empty(2 * n, dtype=object)
    names[0::2], names[1::2] = cids, inv_ids
    named = np.ones(2 * n, dtype=bool)
    named[0::2] = cids != ""
    return dict(zip(names[named], np.repeat(inv_ids, 2)[named], strict=True))


def check_part_of(
    candidate_id: str,
    target: Any,
    inventory: pd.DataFrame,
    candidates: pd.DataFrame,
    *,
    source: str | Path | None = None,
) -> str:
    """Validate a "part of X" target: an inventory_id, or the id of another candidate.

    Returns:
        The target as given (stripped).

    Raises:
        InputError: no target, the candidate itself, or an unknown X (names candidate and X).
    """
    x = _text(target)
    if not x:
        raise InputError(source, f"candidate {candidate_id}: decision part_of needs a target X")
    if x == candidate_id:
        raise InputError(source, f"candidate {candidate_id}: cannot be part of itself")
    if x in _inventory_targets(inventory) or x in set(candidates["candidate_id"]):
        return x
    raise InputError(
        source,
        f"candidate {candidate_id}: 'part of' target '{x}' is neither an inventory feature "
        "nor a candidate of this run",
    )


def check_part_of_targets(
    ledger: Any,
    batch: dict[str, tuple[str, str]],
    *,
    source: str | Path | None = None,
) -> None:
    """Refuse "part of" targets that are rejected candidates or that close a cycle.

    Args:
        ledger: the run's ledger.
        batch: candidate_id -> (decision, part_of target) of the decisions about to be recorded;
            they count as in effect (a target rejected in the same batch is refused too).

    Raises:
        InputError: naming the candidate and its target (a rejected target), or the cycle
            (A -> B -> A); nothing is recorded.
    """
    wanted = {c: t for c, (d, t) in batch.items() if d == "part_of" and t}
    if not wanted:
        return
    statuses = ledger.read("candidates", where={"candidate_id": sorted(set(wanted.values()))})
    status = dict(zip(statuses["candidate_id"], statuses["status"], strict=True))
    status.update({c: d for c, (d, _t) in batch.items()})
    for cid, target in wanted.items():
        if status.get(target) == "rejected":
            raise InputError(
                source,
                f"candidate {cid}: 'part of' target '{target}' was rejected (not a landslide); "
                "decide it again first or choose another target",
            )
    graph: dict[str, str] = {}
    current = latest_decisions(ledger.read("decisions"))
    if len(current):
        is_part = (current["decision"] == "part_of").to_numpy()
        graph = {
            str(c): _text(t)
            for c, t in zip(
                current.index[is_part], current["part_of"].to_numpy()[is_part], strict=True
            )
            if _text(t)
        }
    for cid, (dec, target) in batch.items():
        if dec == "part_of" and target:
            graph[cid] = target
        else:
            graph.pop(cid, None)
    for cid in wanted:
        chain, node = [cid], graph[cid]
        while node in graph and node not in chain and len(chain) <= len(graph):
            chain.append(node)
            node = graph[node]
        if node == cid:
            raise InputError(
                source,
                f"candidate {cid}: 'part of' would make a cycle "
                f"({' -> '.join([*chain, cid])}); a feature cannot be part of its own part",
            )


def _rows(
    ids: Sequence[str],
    decisions: Sequence[str],
    probabilities: Sequence[str | None],
    notes: Sequence[str],
    reviewers: Sequence[str],
    outlines: Sequence[str],
    part_ofs: Sequence[str],
) -> pd.DataFrame:
    batch = uuid.uuid4().hex[:12]
    return pd.DataFrame(
        {
            "candidate_id": list(ids),
            "decision": list(decisions),
            "probability": list(probabilities),
            "note": list(notes),
            "reviewer": list(reviewers),
            "timestamp": now_iso(),
            "geometry_wkt": list(outlines),
            "part_of": list(part_ofs),
            "batch_id": batch,
            "undoes": "",
        }
    )


def decide(
    run_dir: str | Path,
    candidate_ids: str | Sequence[str],
    decision: str,
    *,
    probability: str | None = None,
    note: str = "",
    reviewer: str = "unknown",
    geometry: Any = None,
    part_of: str | None = None,
    force: bool = False,
) -> pd.DataFrame:
    """Record one decision for one or more candidates (one transaction).

    Args:
        run_dir: the run directory.
        candidate_ids: one id or several.
        decision: confirmed, rejected, unsure or part_of ("same_as" is read as part_of).
        probability: high, medium or low (usually with ``confirmed``), or None.
        note: free text.
        reviewer: the reviewer's name.
        geometry: the reviewer's corrected outline (one candidate only): a shapely geometry in
            the run's working CRS, or a GeoSeries/GeoDataFrame carrying its CRS. With
            ``part_of`` it is the new outline of X (default: X ∪ the fragment).
        part_of: with ``decision="part_of"``: the inventory_id (or candidate id) of the feature
            this candidate is a fragment/duplicate of.
        force: accept a reviewed outline far larger or smaller than the candidate
            (:data:`MAX_OUTLINE_AREA_RATIO`; not checked with ``part_of``, where it is X's).

    Returns:
        The decision rows appended to the history (with ``batch_id``, the undo handle).

    Raises:
        InputError: unknown ids, illegal decision or probability, a bad outline or an unknown
            "part of" target (nothing is recorded).
    """
    ids = [candidate_ids] if isinstance(candidate_ids, str) else [str(i) for i in candidate_ids]
    ids = list(dict.fromkeys(ids))  # an id given twice is decided once (one history row)
    decision = _normalise_decision(decision)
    if decision not in DECISIONS:
        raise InputError(run_dir, f"illegal decision '{decision}'; use one of {list(DECISIONS)}")
    prob = _normalise_probability(probability)
    if prob is not None and prob not in PROBABILITIES:
        raise InputError(run_dir, f"illegal probability '{probability}'; use {list(PROBABILITIES)}")
    if part_of is not None and _text(part_of) and decision != "part_of":
        raise InputError(run_dir, f"part_of='{part_of}' needs decision part_of, not {decision}")
    if geometry is not None and len(ids) != 1:
        raise InputError(run_dir, "a reviewed outline (geometry) applies to one candidate only")
    ledger = open_ledger(run_dir)
    unknown = ledger.unknown_candidates(ids)  # an indexed lookup, not a read of every candidate
    if not unknown:
        cands = ledger.read("candidates", where={"candidate_id": list(dict.fromkeys(ids))})
    if unknown:
        raise InputError(run_dir, f"unknown candidate ids: {', '.join(unknown[:10])}")
    outline = ""
    if geometry is not None:
        cgeom = cands.loc[cands["candidate_id"] == ids[0], "geometry"].iloc[0]
        attrs = getattr(geometry, "attrs", None) or {}
        src = attrs.get("source", run_dir)
        outline = _wkt(
            check_outline(
                geometry, ledger.crs, cgeom, ids[0], source=src,
                force=force or decision == "part_of",
            )
        )  # fmt: skip
    target = ""
    if decision == "part_of":
        inventory = ledger.read("inventory")
        x = _text(part_of)  # a candidate of the run, of this iteration or not, is a target
        known = cands if not x else ledger.read("candidates", where={"candidate_id": [*ids, x]})
        for cid in ids:
            target = check_part_of(cid, part_of, inventory, known, source=run_dir)
        check_part_of_targets(ledger, {c: (decision, target) for c in ids}, source=run_dir)
    n = len(ids)
    rows = _rows(
        ids, [decision] * n, [prob] * n, [note] * n, [reviewer] * n, [outline] * n, [target] * n
    )
    with writing_to_run(run_dir), ledger.transaction() as t:  # refused while a run is going
        t.record_decisions(rows)
    return rows


def undo_last_decision(run_dir: str | Path, *, reviewer: str | None = None) -> pd.DataFrame | None:
    """Undo the latest decision still in effect (of ``reviewer``, or of anyone).

    The candidates of that decision (one ``decide`` call or import row) return to their
    previous status, probability and outline; the history keeps an ``undo`` row per candidate
    (``undoes`` = the batch undone).

    Returns:
        The undo rows appended, or None when there is nothing to undo.
    """
    ledger = open_ledger(run_dir)
    with writing_to_run(run_dir), ledger.transaction() as t:
        dec = t.read("decisions")
        eff = effective_decisions(dec)
        mine = eff if reviewer is None else eff[eff["reviewer"] == reviewer]
        if len(mine) == 0:
            return None
        key = mine["batch_key"].iloc[-1]
        target = mine[mine["batch_key"] == key]
        rows = pd.DataFrame(
            {
                "candidate_id": target["candidate_id"].to_numpy(),
                "decision": UNDO,
                "probability": None,
                "note": [f"undo {d}" for d in target["decision"]],
                "reviewer": reviewer if reviewer is not None else target["reviewer"].to_numpy(),
                "timestamp": now_iso(),
                "iteration": target["iteration"].astype("int64").to_numpy(),
                "geometry_wkt": "",
                "part_of": "",
                "batch_id": uuid.uuid4().hex[:12],
                "undoes": key,
            }
        )[list(TABLE_SCHEMAS["decisions"])]
        t.append("decisions", rows)
        after = latest_decisions(pd.concat([dec, rows], ignore_index=True))
        ids = pd.Series(list(dict.fromkeys(rows["candidate_id"])))
        prob = ids.map(after["probability"])
        t.update(
            "candidates",
            "candidate_id",
            pd.DataFrame(
                {
                    "candidate_id": ids,
                    "status": ids.map(after["decision"]).fillna("pending"),
                    "probability": prob.where(prob.notna(), None),
                }
            ),
        )
    return rows


def history(run_dir: str | Path, candidate_id: str | None = None) -> pd.DataFrame:
    """The decision history (all candidates, or one), oldest first (undo rows included)."""
    dec = open_ledger(run_dir).read("decisions").reset_index(drop=True)
    if candidate_id is not None:
        dec = dec[dec["candidate_id"] == candidate_id]
    return dec.reset_index(drop=True)


def read_outline_file(path: str | Path) -> gpd.GeoSeries:
    """Read a reviewer's outline file (GPKG, SHP, GeoJSON, ...) as a GeoSeries with its CRS.

    A file without a CRS (a shapefile without .prj) gives a GeoSeries without CRS: its
    coordinates are taken in the run's CRS and refused when that puts them far from the
    candidate (:func:`check_outline`).

    Raises:
        InputError: missing or unreadable file, or no features.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "outline file does not exist")
    try:
        gdf = gpd.read_file(path, engine="pyogrio")
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(path, f"cannot be read as an outline ({msg})") from exc
    if len(gdf) == 0 or gdf.geometry.isna().all():
        raise InputError(path, "outline file holds no feature")
    series = gdf.geometry
    series.attrs["source"] = str(path)
    return series
