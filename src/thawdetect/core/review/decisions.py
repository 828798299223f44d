"""Manual review of a run's candidates: queue, decisions, history, agreement, QGIS round trip.

Everything is stored in the run ledger (:mod:`thawdetect.core.run.ledger`): each decision appends
a row to the ``decisions`` history (candidate_id, decision, probability, note, reviewer, timestamp,
iteration) and updates the candidate's ``status``/``probability`` in the same transaction.

Decisions are ``confirmed`` / ``rejected`` / ``unsure``; probability classes ``high`` / ``medium``
/ ``low`` (Xia et al. 2022). The QGIS round trip writes the pending candidates to a GeoPackage with
empty, editable ``decision``, ``probability``, ``note`` and ``reviewer`` fields; importing applies
every filled row in one transaction, or nothing when any row is wrong.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from thawdetect.core.errors import InputError
from thawdetect.core.run.ledger import (
    DECISIONS,
    PROBABILITIES,
    STATUSES,
    TABLE_SCHEMAS,
    UNDO,
    Ledger,
    now_iso,
)

__all__ = [
    "EDIT_FIELDS",
    "MAX_OUTLINE_DISTANCE_M",
    "check_outline",
    "check_part_of",
    "cohen_kappa",
    "decide",
    "effective_decisions",
    "export_for_qgis",
    "history",
    "import_from_qgis",
    "latest_decisions",
    "open_ledger",
    "outline_from_wkt",
    "review_queue",
    "reviewer_agreement",
    "undo_last_decision",
]

#: Fields of the QGIS export a reviewer fills in (and the geometry, when the outline is wrong).
EDIT_FIELDS = ("decision", "probability", "note", "reviewer", "part_of")
#: Other spellings of a decision accepted on input.
DECISION_ALIASES = {"same_as": "part_of", "partof": "part_of", "duplicate": "part_of"}
#: A reviewed outline farther than this from the candidate's detector outline is refused
#: (the chips show the candidate's bounding box + 300 m).
MAX_OUTLINE_DISTANCE_M = 300.0


def open_ledger(run_dir: str | Path) -> Ledger:
    """The run's ledger.

    Raises:
        InputError: ``run_dir`` has no ``ledger.gpkg``.
    """
    ledger = Ledger(run_dir)
    if not ledger.exists():
        raise InputError(run_dir, "not a run directory (no ledger.gpkg)")
    return ledger


def review_queue(
    run_dir: str | Path, *, status: str | None = "pending", iteration: int | None = None
) -> gpd.GeoDataFrame:
    """Candidates to review, most promising first.

    Ordered by the number of agreeing detectors (descending), then score (descending), then id,
    so candidates that several independent methods found come first.

    Args:
        run_dir: the run directory.
        status: keep only this status (pending/confirmed/rejected/unsure); None keeps all.
        iteration: keep only this iteration.

    Raises:
        InputError: not a run directory or an unknown status.
    """
    if status is not None and status not in STATUSES:
        raise InputError(run_dir, f"unknown status '{status}'; use one of {list(STATUSES)}")
    cands = open_ledger(run_dir).read("candidates")
    if status is not None:
        cands = cands[cands["status"] == status]
    if iteration is not None:
        cands = cands[cands["iteration"] == iteration]
    return cands.sort_values(
        ["n_detectors", "score", "candidate_id"], ascending=[False, False, True], kind="stable"
    ).reset_index(drop=True)


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


def _normalise_decision(value: Any) -> str:
    text = _text(value).lower().replace(" ", "_").replace("-", "_")
    return DECISION_ALIASES.get(text, text)


def _wkt(geom: Any) -> str:
    return "" if geom is None else str(shapely.to_wkt(geom, rounding_precision=3, trim=True))


def outline_from_wkt(text: Any) -> Any:
    """The reviewed outline stored in a decision row (None when the row carries none)."""
    t = _text(text)
    return shapely.from_wkt(t) if t else None


def check_outline(
    geometry: Any,
    crs: Any,
    candidate_geometry: Any,
    candidate_id: str,
    *,
    source: str | Path | None = None,
) -> Any:
    """Validate a reviewer's outline and return it as one shapely (Multi)Polygon in ``crs``.

    Args:
        geometry: a shapely geometry in ``crs``, or a GeoSeries/GeoDataFrame (reprojected to
            ``crs`` when it carries a CRS; several features are unioned).
        crs: the run's working CRS.
        candidate_geometry: the candidate's detector outline (for the distance check).
        candidate_id: for messages.
        source: file or run directory named in messages.

    Raises:
        InputError: empty, not a polygon, invalid, or farther than
            :data:`MAX_OUTLINE_DISTANCE_M` from the candidate (message names the candidate).
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
    return geometry


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

    Returns:
        The decision rows appended to the history (with ``batch_id``, the undo handle).

    Raises:
        InputError: unknown ids, illegal decision or probability, a bad outline or an unknown
            "part of" target (nothing is recorded).
    """
    ids = [candidate_ids] if isinstance(candidate_ids, str) else [str(i) for i in candidate_ids]
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
    cands = ledger.read("candidates")
    known = set(cands["candidate_id"])
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise InputError(run_dir, f"unknown candidate ids: {', '.join(unknown[:10])}")
    outline = ""
    if geometry is not None:
        cgeom = cands.loc[cands["candidate_id"] == ids[0], "geometry"].iloc[0]
        attrs = getattr(geometry, "attrs", None) or {}
        src = attrs.get("source", run_dir)
        outline = _wkt(check_outline(geometry, ledger.crs, cgeom, ids[0], source=src))
    target = ""
    if decision == "part_of":
        inventory = ledger.read("inventory")
        for cid in ids:
            target = check_part_of(cid, part_of, inventory, cands, source=run_dir)
    n = len(ids)
    rows = _rows(
        ids, [decision] * n, [prob] * n, [note] * n, [reviewer] * n, [outline] * n, [target] * n
    )
    with ledger.transaction() as t:
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
    with ledger.transaction() as t:
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
        cands = t.read("candidates")
        sel = cands["candidate_id"].isin(set(rows["candidate_id"]))
        ids = cands.loc[sel, "candidate_id"]
        cands.loc[sel, "status"] = ids.map(after["decision"]).fillna("pending").to_numpy()
        prob = ids.map(after["probability"])
        cands.loc[sel, "probability"] = prob.where(prob.notna(), None).to_numpy()
        t.write("candidates", cands)
    return rows


def history(run_dir: str | Path, candidate_id: str | None = None) -> pd.DataFrame:
    """The decision history (all candidates, or one), oldest first (undo rows included)."""
    dec = open_ledger(run_dir).read("decisions").reset_index(drop=True)
    if candidate_id is not None:
        dec = dec[dec["candidate_id"] == candidate_id]
    return dec.reset_index(drop=True)


def cohen_kappa(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Cohen's kappa between two raters' labels of the same items.

    Args:
        a: labels of rater A.
        b: labels of rater B (same length, same item order).

    Returns:
        κ = (p_o − p_e) / (1 − p_e); NaN (undefined) for fewer than 2 items or when both raters
        use one and the same single label (chance agreement is 1, κ is 0/0).

    Examples:
        >>> cohen_kappa(["y", "y", "n", "n"], ["y", "y", "n", "n"])
        1.0
        >>> round(cohen_kappa(["y", "y", "n", "n"], ["y", "n", "n", "n"]), 3)
        0.5
        >>> cohen_kappa(["y", "y"], ["y", "y"])
        nan
    """
    a_arr = np.asarray(list(a), dtype=object)
    b_arr = np.asarray(list(b), dtype=object)
    if len(a_arr) != len(b_arr):
        raise ValueError("both raters must label the same items")
    n = len(a_arr)
    if n < 2:
        return float("nan")
    cats = sorted(set(a_arr) | set(b_arr), key=str)
    p_o = float(np.mean(a_arr == b_arr))
    p_e = sum(float(np.mean(a_arr == c)) * float(np.mean(b_arr == c)) for c in cats)
    if p_e >= 1.0:
        return float("nan")
    return (p_o - p_e) / (1.0 - p_e)


def reviewer_agreement(run_dir: str | Path, reviewer_a: str, reviewer_b: str) -> dict[str, Any]:
    """Agreement of two reviewers on the candidates both decided (each one's latest decision).

    Returns:
        ``{"reviewer_a", "reviewer_b", "n", "observed_agreement", "kappa", "kappa_defined",
        "confusion"}``; ``confusion`` maps ``"A_decision|B_decision"`` to a count; ``kappa`` is
        None (undefined) with fewer than 2 common candidates or when only one class is used.

    Raises:
        InputError: a reviewer with no decision.
    """
    dec = effective_decisions(history(run_dir))
    latest = {}
    for name in (reviewer_a, reviewer_b):
        d = dec[dec["reviewer"] == name].drop_duplicates("candidate_id", keep="last")
        if len(d) == 0:
            known = sorted(set(dec["reviewer"].dropna()))
            raise InputError(run_dir, f"reviewer '{name}' made no decision; reviewers: {known}")
        latest[name] = d.set_index("candidate_id")["decision"]
    common = latest[reviewer_a].index.intersection(latest[reviewer_b].index)
    a = latest[reviewer_a].loc[common].to_numpy()
    b = latest[reviewer_b].loc[common].to_numpy()
    confusion: dict[str, int] = {}
    for x, y in zip(a, b, strict=True):
        confusion[f"{x}|{y}"] = confusion.get(f"{x}|{y}", 0) + 1
    kappa = cohen_kappa(list(a), list(b))
    defined = bool(np.isfinite(kappa))
    if len(common) < 2:
        why = f"{len(common)} common candidate(s); kappa needs at least 2"
    elif not defined:
        why = f"both reviewers used only '{a[0]}'; kappa is 0/0"
    else:
        why = ""
    return {
        "reviewer_a": reviewer_a,
        "reviewer_b": reviewer_b,
        "n": len(common),
        "observed_agreement": float(np.mean(a == b)) if len(common) else None,
        "kappa": kappa if defined else None,
        "kappa_defined": defined,
        "kappa_undefined_reason": why,
        "confusion": confusion,
    }


# -- QGIS round trip ------------------------------------------------------------------------------


def export_for_qgis(
    run_dir: str | Path, out_path: str | Path, *, status: str | None = "pending"
) -> Path:
    """Write candidates to a GeoPackage with empty, editable decision fields (atomic write).

    Layer ``review``: candidate_id, iteration, detectors, n_detectors, score, status, the
    flattened evidence columns, then decision, probability, note, reviewer, part_of (empty
    strings to fill in QGIS); the geometry is the detector outline; edit its vertices where the
    outline is wrong and the edited outline is imported as the reviewed one. Layer ``inventory``
    (for reference, not read back): the inventory features a ``part_of`` may name.

    Args:
        run_dir: the run directory.
        out_path: the ``.gpkg`` to write (replaced if it exists).
        status: which candidates (default the pending ones; None for all).

    Returns:
        ``out_path``.
    """
    import pyogrio

    out_path = Path(out_path)
    if out_path.suffix.lower() != ".gpkg":
        raise InputError(out_path, "the review export must be a GeoPackage (.gpkg)")
    queue = review_queue(run_dir, status=status)
    drop = [c for c in ("evidence_json", "series_json", "probability") if c in queue.columns]
    out = queue.drop(columns=drop)
    for col in EDIT_FIELDS:
        out[col] = pd.Series([""] * len(out), dtype=object, index=out.index)
    out = gpd.GeoDataFrame(out, geometry="geometry", crs=queue.crs)
    inventory = open_ledger(run_dir).read("inventory")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.stem}.{os.getpid()}.tmp.gpkg")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            pyogrio.write_dataframe(
                out,
                tmp,
                layer="review",
                driver="GPKG",
                geometry_type="Unknown" if len(out) == 0 else None,
            )
            if len(inventory):
                keep = [
                    c
                    for c in ("inventory_id", "candidate_id", "source", "iteration")
                    if c in inventory.columns
                ]
                pyogrio.write_dataframe(
                    gpd.GeoDataFrame(
                        inventory[keep], geometry=inventory.geometry.to_numpy(), crs=inventory.crs
                    ),
                    tmp,
                    layer="inventory",
                    driver="GPKG",
                    geometry_type="Unknown",
                )
        os.replace(tmp, out_path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out_path


def _blank(v: Any) -> bool:
    return _text(v) == ""


def _edited(geom: Any, original: Any) -> bool:
    """Whether QGIS changed the outline (more than 1 cm² + 1 ppm of the area differs)."""
    if geom is None or original is None:
        return geom is not None and original is None
    if geom.is_empty:
        return True
    try:
        diff = float(shapely.area(shapely.symmetric_difference(geom, original)))
    except shapely.errors.GEOSException:
        return True
    return diff > 1e-4 + 1e-6 * float(original.area)


def import_from_qgis(
    run_dir: str | Path, edited_path: str | Path, *, reviewer: str | None = None
) -> pd.DataFrame:
    """Apply the decisions (and edited outlines) of an exported GeoPackage, in one transaction.

    Rows with an empty ``decision`` are skipped. A row whose geometry differs from the
    candidate's detector outline carries that geometry as the reviewed outline. A row identical
    to the decision already in effect for its candidate (decision, probability, note, reviewer,
    outline, part_of) is skipped, so importing the same file twice (or again after a kill)
    adds nothing. Any unknown or duplicated candidate id, illegal decision/probability, bad
    outline or unknown "part of" target raises and applies nothing.

    Args:
        run_dir: the run directory.
        edited_path: the edited export.
        reviewer: name used where the file's ``reviewer`` field is empty (default "qgis").

    Returns:
        The applied decision rows.

    Raises:
        InputError: the file is unreadable, lacks the fields, or holds bad rows (message names
            the file, the candidate and the problem).
    """
    import pyogrio

    edited_path = Path(edited_path)
    if not edited_path.exists():
        raise InputError(edited_path, "edited review file does not exist")
    try:
        layers = {str(n) for n, _ in pyogrio.list_layers(edited_path)}
        layer = "review" if "review" in layers else None
        df = gpd.read_file(edited_path, layer=layer, engine="pyogrio")
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(edited_path, f"cannot be read as a review GeoPackage ({msg})") from exc
    missing = [c for c in ("candidate_id", "decision") if c not in df.columns]
    if missing:
        raise InputError(
            edited_path, f"missing field(s) {missing}; edit a 'thawdetect review export'"
        )
    empty = pd.DataFrame(columns=list(TABLE_SCHEMAS["decisions"]))
    df = df[~df["decision"].map(_blank)].copy()
    if len(df) == 0:
        return empty
    df["decision"] = df["decision"].map(_normalise_decision)
    bad = sorted(set(df["decision"]) - set(DECISIONS))
    if bad:
        raise InputError(edited_path, f"illegal decision values {bad}; use {list(DECISIONS)}")
    probs = df["probability"] if "probability" in df else pd.Series(None, index=df.index)
    df["probability"] = probs.map(_normalise_probability)
    badp = sorted({p for p in df["probability"] if p is not None} - set(PROBABILITIES))
    if badp:
        raise InputError(
            edited_path, f"illegal probability values {badp}; use {list(PROBABILITIES)}"
        )
    df["candidate_id"] = df["candidate_id"].astype(str)
    dups = sorted(set(df.loc[df["candidate_id"].duplicated(), "candidate_id"]))
    if dups:
        raise InputError(edited_path, f"duplicate candidate ids: {', '.join(dups[:10])}")
    ledger = open_ledger(run_dir)
    cands = ledger.read("candidates")
    unknown = sorted(set(df["candidate_id"]) - set(cands["candidate_id"]))
    if unknown:
        raise InputError(edited_path, f"unknown candidate ids: {', '.join(unknown[:10])}")
    detector_outline = cands.set_index("candidate_id").geometry
    geoms = df.geometry
    if df.crs is not None and ledger.crs is not None and len(df):
        geoms = geoms.to_crs(ledger.crs)
    inventory = ledger.read("inventory")
    outlines, targets = [], []
    for cid, dec, geom, target in zip(
        df["candidate_id"],
        df["decision"],
        geoms,
        df["part_of"] if "part_of" in df else [None] * len(df),
        strict=True,
    ):
        original = detector_outline.get(cid)
        if geom is not None and _edited(geom, original):
            one = gpd.GeoSeries([geom], crs=ledger.crs if df.crs is not None else None)
            outlines.append(_wkt(check_outline(one, ledger.crs, original, cid, source=edited_path)))
        else:
            outlines.append("")
        if dec == "part_of":
            targets.append(check_part_of(cid, target, inventory, cands, source=edited_path))
        elif not _blank(target):
            raise InputError(
                edited_path, f"candidate {cid}: part_of '{_text(target)}' needs decision part_of"
            )
        else:
            targets.append("")
    default_reviewer = reviewer or "qgis"
    names = df["reviewer"] if "reviewer" in df else pd.Series(None, index=df.index)
    notes = df["note"] if "note" in df else pd.Series(None, index=df.index)
    rows = _rows(
        df["candidate_id"].tolist(),
        df["decision"].tolist(),
        df["probability"].tolist(),
        [_text(v) for v in notes],
        [default_reviewer if _blank(v) else _text(v) for v in names],
        outlines,
        targets,
    )
    with ledger.transaction() as t:
        current = latest_decisions(t.read("decisions"))
        same = np.zeros(len(rows), dtype=bool)
        for i, r in enumerate(rows.itertuples(index=False)):
            if r.candidate_id not in current.index:
                continue
            c = current.loc[str(r.candidate_id)]
            same[i] = (
                _text(c["decision"]) == r.decision
                and _text(c["probability"]) == _text(r.probability)
                and _text(c["note"]) == r.note
                and _text(c["reviewer"]) == r.reviewer
                and _text(c.get("geometry_wkt")) == r.geometry_wkt
                and _text(c.get("part_of")) == r.part_of
            )
        rows = rows[~same].reset_index(drop=True)
        if len(rows):
            t.record_decisions(rows)
    return rows


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
