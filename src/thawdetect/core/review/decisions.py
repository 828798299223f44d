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
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from thawdetect.core.errors import InputError
from thawdetect.core.run.ledger import DECISIONS, PROBABILITIES, STATUSES, Ledger, now_iso

__all__ = [
    "EDIT_FIELDS",
    "cohen_kappa",
    "decide",
    "export_for_qgis",
    "history",
    "import_from_qgis",
    "open_ledger",
    "review_queue",
    "reviewer_agreement",
]

#: Fields of the QGIS export a reviewer fills in.
EDIT_FIELDS = ("decision", "probability", "note", "reviewer")


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


def decide(
    run_dir: str | Path,
    candidate_ids: str | Sequence[str],
    decision: str,
    *,
    probability: str | None = None,
    note: str = "",
    reviewer: str = "unknown",
) -> pd.DataFrame:
    """Record one decision for one or more candidates (one transaction).

    Args:
        run_dir: the run directory.
        candidate_ids: one id or several.
        decision: confirmed, rejected or unsure.
        probability: high, medium or low (usually with ``confirmed``), or None.
        note: free text.
        reviewer: the reviewer's name.

    Returns:
        The decision rows appended to the history.

    Raises:
        InputError: unknown ids, illegal decision or probability (nothing is recorded).
    """
    ids = [candidate_ids] if isinstance(candidate_ids, str) else list(candidate_ids)
    if decision not in DECISIONS:
        raise InputError(run_dir, f"illegal decision '{decision}'; use one of {list(DECISIONS)}")
    prob = _normalise_probability(probability)
    if prob is not None and prob not in PROBABILITIES:
        raise InputError(run_dir, f"illegal probability '{probability}'; use {list(PROBABILITIES)}")
    ledger = open_ledger(run_dir)
    unknown = ledger.unknown_candidates(ids)  # an indexed lookup, not a read of every candidate
    if unknown:
        raise InputError(run_dir, f"unknown candidate ids: {', '.join(unknown[:10])}")
    rows = pd.DataFrame(
        {
            "candidate_id": ids,
            "decision": decision,
            "probability": prob,
            "note": note,
            "reviewer": reviewer,
            "timestamp": now_iso(),
        }
    )
    with ledger.transaction() as t:
        t.record_decisions(rows)
    return rows


def history(run_dir: str | Path, candidate_id: str | None = None) -> pd.DataFrame:
    """The decision history (all candidates, or one), oldest first."""
    dec = open_ledger(run_dir).read("decisions")
    if candidate_id is not None:
        dec = dec[dec["candidate_id"] == candidate_id]
    return dec.sort_values("timestamp", kind="stable").reset_index(drop=True)


def cohen_kappa(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Cohen's kappa between two raters' labels of the same items.

    Args:
        a: labels of rater A.
        b: labels of rater B (same length, same item order).

    Returns:
        κ = (p_o − p_e) / (1 − p_e); 1.0 when both raters use one and the same single label
        (perfect, chance-free agreement is undefined; reported as 1), NaN for no items.

    Examples:
        >>> cohen_kappa(["y", "y", "n", "n"], ["y", "y", "n", "n"])
        1.0
        >>> round(cohen_kappa(["y", "y", "n", "n"], ["y", "n", "n", "n"]), 3)
        0.5
    """
    a_arr = np.asarray(list(a), dtype=object)
    b_arr = np.asarray(list(b), dtype=object)
    if len(a_arr) != len(b_arr):
        raise ValueError("both raters must label the same items")
    n = len(a_arr)
    if n == 0:
        return float("nan")
    cats = sorted(set(a_arr) | set(b_arr), key=str)
    p_o = float(np.mean(a_arr == b_arr))
    p_e = sum(float(np.mean(a_arr == c)) * float(np.mean(b_arr == c)) for c in cats)
    if p_e >= 1.0:
        return 1.0 if p_o == 1.0 else 0.0
    return (p_o - p_e) / (1.0 - p_e)


def reviewer_agreement(run_dir: str | Path, reviewer_a: str, reviewer_b: str) -> dict[str, Any]:
    """Agreement of two reviewers on the candidates both decided (each one's latest decision).

    Returns:
        ``{"reviewer_a", "reviewer_b", "n", "observed_agreement", "kappa", "confusion"}``;
        ``confusion`` maps ``"A_decision|B_decision"`` to a count.

    Raises:
        InputError: a reviewer with no decision, or no candidate decided by both.
    """
    dec = history(run_dir)
    latest = {}
    for name in (reviewer_a, reviewer_b):
        d = dec[dec["reviewer"] == name].drop_duplicates("candidate_id", keep="last")
        if len(d) == 0:
            known = sorted(set(dec["reviewer"].dropna()))
            raise InputError(run_dir, f"reviewer '{name}' made no decision; reviewers: {known}")
        latest[name] = d.set_index("candidate_id")["decision"]
    common = latest[reviewer_a].index.intersection(latest[reviewer_b].index)
    if len(common) == 0:
        raise InputError(
            run_dir, f"reviewers '{reviewer_a}' and '{reviewer_b}' decided no common candidate"
        )
    a = latest[reviewer_a].loc[common].to_numpy()
    b = latest[reviewer_b].loc[common].to_numpy()
    confusion: dict[str, int] = {}
    for x, y in zip(a, b, strict=True):
        confusion[f"{x}|{y}"] = confusion.get(f"{x}|{y}", 0) + 1
    return {
        "reviewer_a": reviewer_a,
        "reviewer_b": reviewer_b,
        "n": len(common),
        "observed_agreement": float(np.mean(a == b)),
        "kappa": cohen_kappa(a, b),
        "confusion": confusion,
    }


# -- QGIS round trip ------------------------------------------------------------------------------


def export_for_qgis(
    run_dir: str | Path, out_path: str | Path, *, status: str | None = "pending"
) -> Path:
    """Write candidates to a GeoPackage with empty, editable decision fields (atomic write).

    Columns: candidate_id, iteration, detectors, n_detectors, score, status, the flattened evidence
    columns, then decision, probability, note, reviewer (empty strings to fill in QGIS).

    Args:
        run_dir: the run directory.
        out_path: the ``.gpkg`` to write (replaced if it exists).
        status: which candidates (default the pending ones; None for all).

    Returns:
        ``out_path``.
    """
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".gpkg":
        raise InputError(out_path, "the review export must be a GeoPackage (.gpkg)")
    queue = review_queue(run_dir, status=status)
    drop = [c for c in ("evidence_json", "series_json", "probability") if c in queue.columns]
    out = queue.drop(columns=drop)
    for col in EDIT_FIELDS:
        out[col] = pd.Series([""] * len(out), dtype=object, index=out.index)
    out = gpd.GeoDataFrame(out, geometry="geometry", crs=queue.crs)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.stem}.{os.getpid()}.tmp.gpkg")
    try:
        import pyogrio

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            pyogrio.write_dataframe(
                out,
                tmp,
                layer="review",
                driver="GPKG",
                geometry_type="Unknown" if len(out) == 0 else None,
            )
        os.replace(tmp, out_path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out_path


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or str(v).strip() == ""


def import_from_qgis(
    run_dir: str | Path, edited_path: str | Path, *, reviewer: str | None = None
) -> pd.DataFrame:
    """Apply the decisions filled in an exported GeoPackage, in one transaction.

    Rows with an empty ``decision`` are skipped. Any unknown or duplicated candidate id, or an
    illegal decision/probability, raises and applies nothing.

    Args:
        run_dir: the run directory.
        edited_path: the edited export.
        reviewer: name used where the file's ``reviewer`` field is empty (default "qgis").

    Returns:
        The applied decision rows.

    Raises:
        InputError: the file is unreadable, lacks the fields, or holds bad rows (message names
            the file and the offending ids/values).
    """
    edited_path = Path(edited_path)
    if not edited_path.exists():
        raise InputError(edited_path, "edited review file does not exist")
    try:
        import pyogrio

        df = pyogrio.read_dataframe(edited_path, read_geometry=False)
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(edited_path, f"cannot be read as a review GeoPackage ({msg})") from exc
    missing = [c for c in ("candidate_id", "decision") if c not in df.columns]
    if missing:
        raise InputError(
            edited_path, f"missing field(s) {missing}; edit a 'thawdetect review export'"
        )
    df = df[~df["decision"].map(_blank)].copy()
    if len(df) == 0:
        return pd.DataFrame(columns=["candidate_id", *EDIT_FIELDS, "timestamp"])
    df["decision"] = df["decision"].map(lambda v: str(v).strip().lower())
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
    unknown = ledger.unknown_candidates(df["candidate_id"])
    if unknown:
        raise InputError(edited_path, f"unknown candidate ids: {', '.join(unknown[:10])}")
    default_reviewer = reviewer or "qgis"
    names = df["reviewer"] if "reviewer" in df else pd.Series(None, index=df.index)
    rows = pd.DataFrame(
        {
            "candidate_id": df["candidate_id"].to_numpy(),
            "decision": df["decision"].to_numpy(),
            "probability": df["probability"].to_numpy(),
            "note": [
                "" if _blank(v) else str(v)
                for v in (df["note"] if "note" in df else [None] * len(df))
            ],
            "reviewer": [default_reviewer if _blank(v) else str(v).strip() for v in names],
            "timestamp": now_iso(),
        }
    )
    with ledger.transaction() as t:
        t.record_decisions(rows)
    return rows
