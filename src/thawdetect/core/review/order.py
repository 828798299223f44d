"""The review queue's order: the candidates most likely to be confirmed first.

Reviewers' hours are the loop's cost (Xia et al.: 2-6 h per iteration for two experts), so the
queue puts first what predicts a confirmation:

1. **cross-detector agreement**: candidates that more independent detectors proposed;
2. candidates with a ``PRONE_FIELDS`` evidence field set (off by default, see there: the
   InSAR detector's ``amplitude_prone``, Wei et al., did not predict confirmations in the bench);
3. **what this reviewer confirmed earlier in this run** (:func:`learned`): once the decided
   candidates of the iterations before a candidate's hold ``MIN_PER_CLASS`` real slumps
   (confirmed, part_of) and as many rejections, a small logistic regression on the detectors'
   evidence (:func:`evidence_features`: log |value| of every numeric field, each relative to its
   iteration's queue) and on the prior confidence below, strongly regularised (``RIDGE``) so
   that with few decisions it keeps the prior's order. It learns what the reviewer confirms on
   this region, whichever way round (a reviewer who confirms slow slumps and rejects fast noise
   reverses the prior). A decision never reorders its own iteration's queue;
4. until then, and in the first iteration, **the detector's own confidence on one scale**: a
   detector's ``probability`` evidence when it gives one, else the percentile among that
   detector's candidates of the ledger of its ``STRENGTH_FIELDS`` evidence (InSAR: its own
   rate, the fastest seed pixel against the large-scale background) or its score (so an
   InSAR score of ~1000 and a network's 0.9 compare; a mixed candidate takes the mean over
   its detectors);
5. then the id, so the order is stable.

``bench/bench_review_order.py`` measures, on decided runs, the share of the confirmed slumps in
the first half of each iteration's queue, how many candidates a reviewer sees before 90 % and
100 % of them, and the ranking AUC, against the order before issue 23 (agreement, score) and the
detectors' confidence alone; the learned order gets only the decisions a running system had.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

#: Evidence fields that put a candidate first within its agreement level ("amplitude-prone",
#: after Wei et al.). Empty: on the InSAR scene families ``amplitude_prone`` predicts a
#: confirmation in one family and the opposite in the other (pooled AUC 0.61 and 0.40,
#: bench/bench_review_order.py), and the InSAR score already weighs it.
PRONE_FIELDS: tuple[str, ...] = ()
#: Evidence fields ranked (by magnitude) instead of a detector's score where present (first
#: found wins): the InSAR candidate's own rate, its fastest seed pixel against the large-scale
#: background (what a landslide does, not what atmosphere, creep or a ramp add to it), else its
#: core rate (the mean rate of its seed pixels), else its peak |rate|. Measured on decided runs
#: (bench/bench_review_order.py; docs/review_web.md).
STRENGTH_FIELDS: tuple[str, ...] = (
    "peak_own_rate_mm_yr",
    "core_rate_mm_yr",
    "max_abs_rate_mm_yr",
)
#: The column :func:`sort_queue` adds: the 0-1 key within an agreement level (what the page's queue
#: shows, ``review list`` prints and the QGIS export carries).
PRIORITY = "review_priority"
#: Decisions that count as a real slump when the order learns from them (the rest: rejected).
REAL_STATUSES: tuple[str, ...] = ("confirmed", "part_of")
#: The order learns from earlier decisions only once they hold this many real slumps and this
#: many rejections (before that, and in the first iteration, the detectors' confidence).
MIN_PER_CLASS = 5
#: L2 penalty on each standardised evidence feature of the learned order (a Gaussian prior of
#: standard deviation 1/sqrt(RIDGE) on its coefficient).
RIDGE = 1.0
#: L2 penalty on the prior confidence's coefficient: light, so that with few decisions the order
#: stays the prior's, but not zero, so that decisions the prior separates perfectly (a queue of
#: agreeing detectors all confirmed) do not drive it to infinity and every priority to 1.00 or
#: 0.00 (0.1 against 1e-3: the same first halves on eight decided families, the qtec mixed
#: run's last queue AUC 0.889 -> 1.0; bench/bench_review_order.py).
PRIOR_RIDGE = 0.1
#: Evidence fields the learned order never fits on: the outline's perimeter (with the area, its
#: compactness follows how the synthetic generator draws false alarms, not real ground).
IGNORED_FIELDS: frozenset[str] = frozenset({"perimeter_m"})


def _evidence(text: Any) -> dict[str, Any]:
    if not isinstance(text, str) or not text.strip():
        return {}
    try:
        ev = json.loads(text)
    except ValueError:
        return {}
    return ev if isinstance(ev, dict) else {}


def priority(cands: pd.DataFrame) -> pd.DataFrame:
    """Per candidate: ``n_detectors``, ``prone`` (0/1) and ``confidence`` (0-1), the keys
    :func:`sort_queue` orders by (the index is ``cands``'s).

    Examples:
        >>> c = pd.DataFrame({"candidate_id": ["a", "b", "c"], "n_detectors": [1, 1, 1],
        ...     "score": [5.0, 900.0, 0.2], "detectors": ["x", "x", "y"],
        ...     "evidence_json": ['{"x": {"score": 5}}', '{"x": {"score": 900}}',
        ...                       '{"y": {"probability": 0.8, "amplitude_prone": 1}}']})
        >>> priority(c)[["prone", "confidence"]].values.tolist()
        [[0.0, 0.5], [0.0, 1.0], [0.0, 0.8]]
    """
    n = len(cands)
    evs = [_evidence(t) for t in cands.get("evidence_json", pd.Series([None] * n))]
    dets = [[d for d in str(t or "").split(",") if d] for t in cands.get("detectors", [""] * n)]
    raw = pd.to_numeric(cands.get("score", pd.Series(np.nan, index=cands.index)))
    score = raw.to_numpy(dtype=float, na_value=np.nan)
    # a detector's score (its own evidence field, else the candidate's) for its percentile
    rows: list[tuple[int, str, float, float]] = []  # (row, detector, score, probability)
    prone = np.zeros(n)
    for i, (ev, ds) in enumerate(zip(evs, dets, strict=True)):
        for d in ds or [""]:
            got = ev.get(d)
            e: dict[str, Any] = got if isinstance(got, dict) else {}
            if any(_truthy(e.get(f)) for f in PRONE_FIELDS):
                prone[i] = 1.0
            s = _num(e.get("score"), score[i])
            for f in STRENGTH_FIELDS:
                if f in e:
                    s = abs(_num(e.get(f), s))
                    break
            rows.append((i, d, s, _num(e.get("probability"), np.nan)))
    table = pd.DataFrame(rows, columns=["row", "det", "score", "prob"])
    pct = table.groupby("det")["score"].rank(pct=True, method="average")
    # a detector that gives a probability in 0-1 is taken at its word
    given = table["prob"].between(0, 1)
    table["conf"] = np.where(given, table["prob"], pct.fillna(0.0))
    conf = table.groupby("row")["conf"].mean().reindex(range(n), fill_value=0.0).to_numpy()
    nd = pd.to_numeric(cands.get("n_detectors", pd.Series(1, index=cands.index)))
    return pd.DataFrame(
        {"n_detectors": nd.fillna(1).to_numpy(dtype=int), "prone": prone, "confidence": conf},
        index=cands.index,
    )


def sort_queue(cands: pd.DataFrame, decided: pd.DataFrame | None = None) -> pd.DataFrame:
    """``cands`` in review order (see the module docstring), index reset, with the ``PRIORITY``
    column: the 0-1 key it ranks by within an agreement level (the learned chance of a
    confirmation, else the detectors' confidence).

    Args:
        cands: the candidates (``candidate_id``, ``detectors``, ``n_detectors``, ``score``,
            ``evidence_json``; ``iteration`` to learn per iteration).
        decided: the run's decided candidates (same columns and ``status``), e.g. the whole
            ledger. Each iteration's candidates are then ranked, within their agreement level,
            by what the decisions of the *earlier* iterations confirmed (:func:`learned`); None,
            or too few decisions, keeps the detectors' confidence.
    """
    if cands.empty:
        return cands.assign(**{PRIORITY: pd.Series(dtype=float)}).reset_index(drop=True)
    key = priority(cands)
    if decided is not None and len(decided):
        key["confidence"] = learned(cands, decided, prior=key["confidence"])
    key["candidate_id"] = cands["candidate_id"].astype(str).to_numpy()
    order = key.sort_values(
        ["n_detectors", "prone", "confidence", "candidate_id"],
        ascending=[False, False, False, True],
        kind="stable",
    ).index
    out = cands.loc[order].reset_index(drop=True)
    out[PRIORITY] = key.loc[order, "confidence"].round(4).to_numpy()
    return out


def evidence_features(cands: pd.DataFrame) -> pd.DataFrame:
    """Per candidate, the numbers :func:`learned` fits on (the index is ``cands``'s):
    ``log1p(|value|)`` of every numeric evidence field of each of its detectors (column
    ``detector.field``; NaN where the detector did not propose it or gave no value), except the
    ``IGNORED_FIELDS``, and ``det:<detector>`` 0/1.

    Examples:
        >>> c = pd.DataFrame({"detectors": ["x", "y"], "evidence_json": [
        ...     '{"x": {"core_rate_mm_yr": -19.0855, "note": "a"}}',
        ...     '{"y": {"probability": 0.5}}']})
        >>> evidence_features(c).round(3).fillna(-1).values.tolist()
        [[3.0, -1.0, 1.0, 0.0], [-1.0, 0.405, 0.0, 1.0]]
    """
    n = len(cands)
    evs = [_evidence(t) for t in cands.get("evidence_json", pd.Series([None] * n))]
    dets = [[d for d in str(t or "").split(",") if d] for t in cands.get("detectors", [""] * n)]
    cols: dict[str, NDArray[np.float64]] = {}
    for i, (ev, ds) in enumerate(zip(evs, dets, strict=True)):
        for d in ds:
            got = ev.get(d)
            e: dict[str, Any] = got if isinstance(got, dict) else {}
            for f, v in e.items():
                if f in IGNORED_FIELDS or isinstance(v, str) or v is None:
                    continue
                x = _num(v, np.nan)
                if np.isfinite(x):
                    _column(cols, f"{d}.{f}", n, np.nan)[i] = np.log1p(abs(x))
            _column(cols, f"det:{d}", n, 0.0)[i] = 1.0
    names = sorted(c for c in cols if not c.startswith("det:"))
    names += sorted(c for c in cols if c.startswith("det:"))
    return pd.DataFrame({c: cols[c] for c in names}, index=cands.index)


def _column(
    cols: dict[str, NDArray[np.float64]], name: str, n: int, fill: float
) -> NDArray[np.float64]:
    if name not in cols:
        cols[name] = np.full(n, fill)
    return cols[name]


def learned(
    cands: pd.DataFrame, decided: pd.DataFrame, prior: pd.Series | None = None
) -> NDArray[np.float64]:
    """Per candidate of ``cands`` (0-1): the chance that the reviewer confirms it (relative to
    its iteration's queue), learned from the ``decided`` candidates of the iterations before the
    candidate's (all of them where ``cands`` has no ``iteration``); its ``prior`` confidence
    (:func:`priority`'s) where those hold fewer than ``MIN_PER_CLASS`` real slumps (confirmed,
    part_of) or fewer rejections.

    A logistic regression on :func:`evidence_features` and the prior confidence, each minus its
    mean over the candidate's iteration (the schedule lowers the thresholds from one iteration
    to the next: what tells a slump within a queue carries over, the level does not), fitted by
    Newton's method with an L2 penalty ``RIDGE`` on the standardised evidence and a light one
    (``PRIOR_RIDGE``) on the prior, so with few decisions it keeps the prior's order and with
    many it weighs what this reviewer confirmed on this region. ``unsure`` and pending
    candidates are not learned from.
    """
    prior_s = priority(cands)["confidence"] if prior is None else prior
    prior_v = prior_s.to_numpy(dtype=float)
    out = prior_v.copy()
    if "status" not in decided or decided.empty:
        return out
    dec = decided[decided["status"].isin((*REAL_STATUSES, "rejected"))]
    # one feature table (one percentile scale) over the candidates and the other decided ones
    ids = set(cands["candidate_id"].astype(str))
    extra = dec[~dec["candidate_id"].astype(str).isin(ids)]
    both = pd.concat([cands, extra], ignore_index=True)
    feats = evidence_features(both)
    # the prior on the scale of the candidates and the decided ones together
    feats.insert(0, "prior", priority(both)["confidence"].to_numpy() if len(extra) else prior_v)
    feats = feats - feats.groupby(_iterations(both)).transform("mean").fillna(0.0)
    row_of = {cid: j for j, cid in enumerate(both["candidate_id"].astype(str))}
    dec_rows = np.array([row_of[c] for c in dec["candidate_id"].astype(str)], dtype=np.int64)
    y_all = dec["status"].isin(REAL_STATUSES).to_numpy(dtype=float)
    dec_it = _iterations(dec)
    cand_it = _iterations(cands)
    X = feats.to_numpy(dtype=float)
    for k in np.unique(cand_it):
        rows = np.flatnonzero(cand_it == k)
        train = dec_it < k if np.isfinite(k) else np.ones(len(dec), bool)
        y = y_all[train]
        if min(y.sum(), len(y) - y.sum()) < MIN_PER_CLASS:
            continue
        out[rows] = _fit_predict(X[dec_rows[train]], y, X[rows])
    return out


def _iterations(df: pd.DataFrame) -> NDArray[np.float64]:
    if "iteration" not in df:
        return np.full(len(df), np.inf)
    it = pd.to_numeric(df["iteration"], errors="coerce").to_numpy(dtype=float)
    return np.where(np.isfinite(it), it, np.inf)


def _fit_predict(
    X: NDArray[np.float64], y: NDArray[np.float64], X_new: NDArray[np.float64]
) -> NDArray[np.float64]:
    """P(y = 1) at ``X_new`` of a logistic regression fitted on (X, y): column 0 (the prior)
    lightly penalised (``PRIOR_RIDGE``), the rest standardised on X and penalised by ``RIDGE``;
    missing = mean."""
    use = np.isfinite(X).sum(axis=0) > 0
    use[0] = True
    X, X_new = X[:, use], X_new[:, use]
    mu = np.nanmean(X, axis=0)
    sd = np.nanstd(X, axis=0)
    keep = sd > 1e-9
    keep[0] = True
    sd = np.where(sd > 1e-9, sd, 1.0)

    def design(a: NDArray[np.float64]) -> NDArray[np.float64]:
        z = np.nan_to_num((a - mu) / sd, nan=0.0)[:, keep]
        return np.column_stack([np.ones(len(a)), z])

    A, A_new = design(X), design(X_new)
    pen = np.full(A.shape[1], RIDGE)
    pen[0], pen[1] = 0.0, PRIOR_RIDGE  # intercept free; the prior lightly held
    w = np.zeros(A.shape[1])
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(A @ w, -30, 30)))
        grad = A.T @ (p - y) + pen * w
        hess = (A * (p * (1 - p))[:, None]).T @ A + np.diag(pen + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    p_new: NDArray[np.float64] = 1.0 / (1.0 + np.exp(-np.clip(A_new @ w, -30, 30)))
    return p_new


def _num(v: Any, default: float) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return default
    return x if np.isfinite(x) else default


def _truthy(v: Any) -> bool:
    return v is True or (isinstance(v, int | float) and not isinstance(v, bool) and v > 0)
