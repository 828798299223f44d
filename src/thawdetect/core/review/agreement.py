"""Agreement between reviewers: Cohen's kappa on the candidates two reviewers both decided.

Split out of :mod:`thawdetect.core.review.decisions` (which still re-exports both names). The
import of ``decisions`` is deferred to call time because ``decisions`` re-exports this module's
names: importing either module first then works.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from thawdetect.core.errors import InputError

__all__ = ["cohen_kappa", "reviewer_agreement"]


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
    from thawdetect.core.review.decisions import effective_decisions, history

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
