"""The review queue's order: the candidates most likely to be confirmed first.

Reviewers' hours are the loop's cost (Xia et al.: 2-6 h per iteration for two experts), so the
queue puts first what predicts a confirmation:

1. **cross-detector agreement**: candidates that more independent detectors proposed;
2. candidates with a ``PRONE_FIELDS`` evidence field set (off by default, see there: the
   InSAR detector's ``amplitude_prone``, Wei et al., did not predict confirmations in the bench);
3. **the detector's own confidence on one scale**: a detector's ``probability`` evidence when it
   gives one, else the percentile among that detector's candidates of the ledger of its
   ``STRENGTH_FIELDS`` evidence (InSAR: the |core rate| of its seed pixels) or its score (so
   an InSAR score of ~1000 and a network's 0.9 compare; a mixed candidate takes the mean over
   its detectors);
4. then the id, so the order is stable.

``bench/bench_review_order.py`` measures how many candidates a reviewer sees before 90 % and
100 % of the confirmed ones, and the ranking AUC, against the order before (agreement, score).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

#: Evidence fields that put a candidate first within its agreement level ("amplitude-prone",
#: after Wei et al.). Empty: on the InSAR scene families ``amplitude_prone`` predicts a
#: confirmation in one family and the opposite in the other (pooled AUC 0.61 and 0.40,
#: bench/bench_review_order.py), and the InSAR score already weighs it.
PRONE_FIELDS: tuple[str, ...] = ()
#: Evidence fields ranked (by magnitude) instead of a detector's score where present (first
#: found wins): the InSAR candidate's core rate, the mean LOS rate of its seed pixels. A mean
#: over the pixels that passed the threshold stands for the landslide; the peak |rate| of one
#: pixel is often noise on a false alarm. In the first half of each queue, on three decided
#: scene sets (bench/bench_review_order.py; docs/review_web.md): 76.8 / 78.3 / 77.5 % of the
#: confirmed slumps against 75.3 / 71.7 / 74.5 % by peak |rate| (ideal 81.4 / 79.3 / 78.4 %).
STRENGTH_FIELDS: tuple[str, ...] = ("core_rate_mm_yr", "max_abs_rate_mm_yr")


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


def sort_queue(cands: pd.DataFrame) -> pd.DataFrame:
    """``cands`` in review order (see the module docstring), index reset."""
    if cands.empty:
        return cands.reset_index(drop=True)
    key = priority(cands)
    key["candidate_id"] = cands["candidate_id"].astype(str).to_numpy()
    order = key.sort_values(
        ["n_detectors", "prone", "confidence", "candidate_id"],
        ascending=[False, False, False, True],
        kind="stable",
    ).index
    return cands.loc[order].reset_index(drop=True)


def _num(v: Any, default: float) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return default
    return x if np.isfinite(x) else default


def _truthy(v: Any) -> bool:
    return v is True or (isinstance(v, int | float) and not isinstance(v, bool) and v > 0)
