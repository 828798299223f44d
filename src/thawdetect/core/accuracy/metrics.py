"""Accuracy figures: label vocabularies, Wilson intervals and the :class:`AccuracyReport`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

#: Label values (case-insensitive, stripped) meaning "confirmed landslide / RTS".
POSITIVE_LABELS = frozenset(
    {
        "1",
        "1.0",
        "true",
        "t",
        "yes",
        "y",
        "landslide",
        "confirmed",
        "positive",
        "pos",
        "rts",
        "ftl",
        "slump",
        "present",
        "tp",
        "true positive",
    }
)
#: Label values meaning "checked, not a landslide".
NEGATIVE_LABELS = frozenset(
    {
        "0",
        "0.0",
        "false",
        "f",
        "no",
        "n",
        "not landslide",
        "not_landslide",
        "not-landslide",
        "checked-not-landslide",
        "checked_not_landslide",
        "non-landslide",
        "nonlandslide",
        "rejected",
        "negative",
        "neg",
        "background",
        "absent",
        "none",
        "fp",
        "false positive",
    }
)
#: A rate's 95 % interval wider than this (in proportion units) triggers a small-N warning.
WIDE_INTERVAL = 0.2
Z95 = 1.959963984540054

RATE_KEYS = ("tpr", "fpr", "fnr", "precision", "recall", "f1")


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of a binomial proportion k/n (``scipy.stats.binomtest``).

    Args:
        k: successes (0 ≤ k ≤ n).
        n: trials.
        z: normal quantile (1.96 for 95 %).

    Returns:
        (low, high) as proportions, or None when n is 0 or k > n (not a proportion).

    Examples:
        >>> lo, hi = wilson_interval(14, 15)
        >>> round(lo, 3), round(hi, 3)
        (0.702, 0.988)
        >>> wilson_interval(0, 0) is None
        True
    """
    if n <= 0 or k < 0 or k > n:
        return None
    from scipy.stats import binomtest, norm

    confidence = 1.0 - 2.0 * float(norm.sf(z))  # z = 1.96 -> 0.95
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    # the bounds are exactly 0 at k = 0 and 1 at k = n; rounding must not put p outside them
    low = 0.0 if k == 0 else max(0.0, float(ci.low))
    high = 1.0 if k == n else min(1.0, float(ci.high))
    return (low, high)


def _ratio(k: int, n: int) -> float | None:
    return None if n == 0 else k / n


@dataclass
class AccuracyReport:
    """Counts and rates of one comparison.

    Attributes:
        mode: ``"point"`` or ``"polygon"``.
        tp: true positives. fp: false positives. fn: false negatives.
        n: TP + FN (validation landslides, or reference polygons).
        n_validation: features in the validation/reference file that were used.
        n_negatives: validation points labelled not-landslide (point mode).
        n_detections: detections compared.
        unmatched_detections: detections matching no positive (information, not FP in point mode).
        mean_iou: mean IoU of matched pairs (polygon mode).
        tolerance_m: point-matching tolerance in metres (point mode).
        iou_threshold: IoU needed for a match (polygon mode).
        warnings: human-readable warnings (small N, duplicates).
    """

    mode: str
    tp: int
    fp: int
    fn: int
    n_validation: int = 0
    n_negatives: int = 0
    n_detections: int = 0
    unmatched_detections: int = 0
    mean_iou: float | None = None
    tolerance_m: float | None = None
    iou_threshold: float | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        """N = TP + FN (Wei et al.)."""
        return self.tp + self.fn

    def rates(self) -> dict[str, float | None]:
        """TPR, FPR, FNR (over N), precision, recall and F1 as proportions (None if undefined)."""
        f1_den = 2 * self.tp + self.fp + self.fn
        return {
            "tpr": _ratio(self.tp, self.n),
            "fpr": _ratio(self.fp, self.n),
            "fnr": _ratio(self.fn, self.n),
            "precision": _ratio(self.tp, self.tp + self.fp),
            "recall": _ratio(self.tp, self.n),
            "f1": _ratio(2 * self.tp, f1_den),
        }

    def intervals(self) -> dict[str, tuple[float, float] | None]:
        """95 % Wilson intervals of each rate (F1 has none)."""
        return {
            "tpr": wilson_interval(self.tp, self.n),
            "fpr": wilson_interval(self.fp, self.n),
            "fnr": wilson_interval(self.fn, self.n),
            "precision": wilson_interval(self.tp, self.tp + self.fp),
            "recall": wilson_interval(self.tp, self.n),
            "f1": None,
        }

    def to_dict(self) -> dict[str, Any]:
        """Stable JSON-ready dict (keys in ``docs/accuracy.md``); rates are proportions."""
        out: dict[str, Any] = {
            "mode": self.mode,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "n": self.n,
        }
        rates = self.rates()
        cis = self.intervals()
        for key in RATE_KEYS:
            out[key] = rates[key]
            ci = cis[key]
            out[f"{key}_ci95"] = None if ci is None else [ci[0], ci[1]]
        out.update(
            n_validation=self.n_validation,
            n_negatives=self.n_negatives,
            n_detections=self.n_detections,
            unmatched_detections=self.unmatched_detections,
            mean_iou=self.mean_iou,
            tolerance_m=self.tolerance_m,
            iou_threshold=self.iou_threshold,
            warnings=list(self.warnings),
        )
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AccuracyReport:
        """Rebuild a report from :meth:`to_dict` output (e.g. one scope of :func:`run_accuracy`)."""
        fields = (
            "n_validation",
            "n_negatives",
            "n_detections",
            "unmatched_detections",
            "mean_iou",
            "tolerance_m",
            "iou_threshold",
        )
        return cls(
            mode=data["mode"],
            tp=int(data["tp"]),
            fp=int(data["fp"]),
            fn=int(data["fn"]),
            warnings=list(data.get("warnings") or []),
            **{k: data[k] for k in fields if k in data},
        )

    def to_json(self) -> str:
        """:meth:`to_dict` as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)

    def format_table(self, title: str | None = None) -> str:
        """A plain-text table of counts and rates (percent, 95 % Wilson intervals) plus warnings."""
        lines = []
        if title:
            lines.append(title)
        lines.append(
            f"TP {self.tp}  FP {self.fp}  FN {self.fn}  N {self.n}  "
            f"({self.n_detections} detections, {self.n_validation} validation features)"
        )
        names = {
            "tpr": "TPR = TP/N",
            "fpr": "FPR = FP/N",
            "fnr": "FNR = FN/N",
            "precision": "precision",
            "recall": "recall",
            "f1": "F1",
        }
        rates, cis = self.rates(), self.intervals()
        for key in RATE_KEYS:
            lines.append(f"  {names[key]:<12} {_pct(rates[key]):>7}   95% CI {_ci(cis[key])}")
        if self.mean_iou is not None:
            lines.append(f"  mean IoU     {self.mean_iou:.3f}")
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)

    def _check_width(self) -> None:
        ci = wilson_interval(self.tp, self.n)
        if self.n == 0:
            self.warnings.append("N = 0: no validation landslide, rates are undefined")
        elif ci is not None and ci[1] - ci[0] > WIDE_INTERVAL:
            self.warnings.append(
                f"N = {self.n} is small: the 95 % interval of TPR spans "
                f"{100 * ci[0]:.1f}-{100 * ci[1]:.1f} %"
            )


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f} %"


def _ci(ci: tuple[float, float] | None) -> str:
    return "n/a" if ci is None else f"{100 * ci[0]:.1f}-{100 * ci[1]:.1f} %"
