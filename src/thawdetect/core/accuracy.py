"""Accuracy of detections against validation points or reference polygons.

Point mode follows Wei et al. (Qilian freeze-thaw landslides): with N = TP + FN validation
landslides, TPR = TP/N, FPR = FP/N and FNR = FN/N. A validation point matches a detection when it
lies inside the detection's polygon (boundary included) or within ``tolerance_m`` of it.

* TP: validation points labelled as landslides that match a detection.
* FN: validation points labelled as landslides that match no detection.
* FP: validation points labelled *checked, not a landslide* that fall inside (or within the
  tolerance of) a detection. Without a label column every point is a landslide, so FP is 0 by
  construction: a detection with no validation point inside is *not* a false positive, because
  validation points are a sample, not a census. ``unmatched_detections`` reports those separately.

Polygon mode (``polygon_accuracy``) matches detections to reference polygons one-to-one at
IoU ≥ ``iou_threshold`` (0.5, as optical RTS pipelines report, e.g. Nitze et al. 2021), greedily in
order of decreasing IoU: TP = matched pairs, FP = unmatched detections, FN = unmatched references,
N = TP + FN (the number of reference polygons).

Every proportion gets a 95 % Wilson score interval (Wilson 1927). F1 is not a binomial proportion
and has no interval (``f1_ci95`` is null).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from thawdetect.core.errors import CRSMismatchError, InputError

__all__ = [
    "NEGATIVE_LABELS",
    "POSITIVE_LABELS",
    "AccuracyReport",
    "format_run_table",
    "parse_labels",
    "point_accuracy",
    "polygon_accuracy",
    "run_accuracy",
    "wilson_interval",
]

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
    """Wilson score interval of a binomial proportion k/n.

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
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


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


# -- inputs ---------------------------------------------------------------------------------------


def _normalise_label(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "1" if v else "0"
    if isinstance(v, (int, float, np.number)) and float(v).is_integer():
        return str(int(v))
    return " ".join(str(v).strip().lower().split())


def parse_labels(values: pd.Series, *, source: str | Path | None, column: str) -> np.ndarray:
    """Map a label column to booleans (True = landslide, False = checked not landslide).

    Raises:
        InputError: empty or unknown label values (listed).
    """
    text = values.map(_normalise_label)
    pos = text.isin(POSITIVE_LABELS)
    neg = text.isin(NEGATIVE_LABELS)
    unknown = sorted(set(text[~(pos | neg)]))
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:8])
        raise InputError(
            source,
            f"label column '{column}' has unknown values {shown}; use e.g. 1/0, "
            "landslide/not_landslide, positive/negative, confirmed/rejected",
        )
    return pos.to_numpy()


def _metric_crs(*frames: gpd.GeoDataFrame) -> Any:
    for f in frames:
        if f.crs is not None and f.crs.is_projected and len(f):
            return f.crs
    for f in frames:
        if f.crs is not None and len(f):
            return f.estimate_utm_crs()
    for f in frames:
        if f.crs is not None and f.crs.is_projected:
            return f.crs
    return None


def _to_crs(gdf: gpd.GeoDataFrame, crs: Any, what: str) -> gpd.GeoDataFrame:
    if crs is None or gdf.crs == crs:
        return gdf
    if gdf.crs is None:
        if len(gdf) == 0:
            return gdf.set_crs(crs, allow_override=True)
        raise CRSMismatchError(None, f"{what} has no CRS")
    try:
        out = gdf.to_crs(crs)
    except Exception as exc:
        raise CRSMismatchError(None, f"{what}: cannot transform from {gdf.crs} to {crs}") from exc
    if len(out) and not np.isfinite(out.geometry.bounds.to_numpy()).all():
        raise CRSMismatchError(None, f"{what}: some features cannot be transformed to {crs}")
    return out


def _polygons_only(det: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    det = det[det.geometry.notna() & ~det.geometry.is_empty]
    bad = set(det.geom_type) - {"Polygon", "MultiPolygon"}
    if bad:
        raise InputError(None, f"detections must be polygons, got {sorted(bad)}")
    return det


# -- point mode -----------------------------------------------------------------------------------


def point_accuracy(
    detections: gpd.GeoDataFrame,
    validation: gpd.GeoDataFrame,
    *,
    tolerance_m: float = 0.0,
    label_column: str | None = None,
) -> AccuracyReport:
    """Score detection polygons against validation points (Wei et al. definitions).

    Args:
        detections: detection polygons (any CRS; may be empty: then every point is a miss).
        validation: validation points (any CRS; polygons are reduced to representative points).
        tolerance_m: a point within this distance (metres) of a detection matches it.
        label_column: column saying landslide / checked-not-landslide (see :func:`parse_labels`);
            None: every point is a landslide.

    Returns:
        The :class:`AccuracyReport` (warnings list small N and duplicate points).

    Raises:
        InputError: negative tolerance, missing or unknown labels, non-polygon detections.
        CRSMismatchError: a frame without CRS or one that cannot be transformed.
    """
    if tolerance_m < 0:
        raise InputError(None, f"tolerance_m must be ≥ 0, got {tolerance_m}")
    report_warnings: list[str] = []
    val = validation[validation.geometry.notna() & ~validation.geometry.is_empty].copy()
    if label_column is not None:
        if label_column not in val.columns:
            raise InputError(
                None,
                f"label column '{label_column}' not found; columns: "
                f"{[c for c in val.columns if c != val.geometry.name]}",
            )
        labels = parse_labels(val[label_column], source=None, column=label_column)
    else:
        labels = np.ones(len(val), dtype=bool)
    det = _polygons_only(detections)
    crs = _metric_crs(det, val)
    det = _to_crs(det, crs, "detections").reset_index(drop=True)
    val = _to_crs(val, crs, "validation").reset_index(drop=True)
    if len(val) and not (val.geom_type == "Point").all():
        val["geometry"] = val.geometry.representative_point()
    # identical points counted twice would inflate N: keep the first, say so
    key = val.geometry.to_wkb()
    dup = key.duplicated().to_numpy()
    if dup.any():
        report_warnings.append(f"{int(dup.sum())} duplicate validation points ignored")
        val = val.loc[~dup].reset_index(drop=True)
        labels = labels[~dup]
    matched = np.zeros(len(val), dtype=bool)
    det_hit = np.zeros(len(det), dtype=bool)
    if len(det) and len(val):
        if tolerance_m > 0:
            vi, di = det.sindex.query(val.geometry, predicate="dwithin", distance=tolerance_m)
        else:
            vi, di = det.sindex.query(val.geometry, predicate="intersects")
        matched[vi] = True
        pos_pairs = labels[vi]
        det_hit[di[pos_pairs]] = True
    tp = int((matched & labels).sum())
    fn = int((~matched & labels).sum())
    fp = int((matched & ~labels).sum())
    rep = AccuracyReport(
        mode="point",
        tp=tp,
        fp=fp,
        fn=fn,
        n_validation=len(val),
        n_negatives=int((~labels).sum()),
        n_detections=len(det),
        unmatched_detections=int((~det_hit).sum()),
        tolerance_m=float(tolerance_m),
        warnings=report_warnings,
    )
    rep._check_width()
    return rep


# -- polygon mode ---------------------------------------------------------------------------------


def polygon_accuracy(
    detections: gpd.GeoDataFrame, reference: gpd.GeoDataFrame, *, iou_threshold: float = 0.5
) -> AccuracyReport:
    """Instance-level precision/recall/F1 of detection polygons against reference polygons.

    Args:
        detections: detection polygons (any CRS, may be empty).
        reference: reference polygons (any CRS).
        iou_threshold: intersection-over-union a pair needs to match (0 < t ≤ 1).

    Returns:
        The report; ``mean_iou`` is the mean IoU of matched pairs.

    Raises:
        InputError: threshold out of range, non-polygon geometry.
    """
    if not 0 < iou_threshold <= 1:
        raise InputError(None, f"iou_threshold must be in (0, 1], got {iou_threshold}")
    det = _polygons_only(detections)
    ref = _polygons_only(reference)
    crs = _metric_crs(ref, det)
    det = _to_crs(det, crs, "detections").reset_index(drop=True)
    ref = _to_crs(ref, crs, "reference").reset_index(drop=True)
    pairs: list[tuple[float, int, int]] = []
    if len(det) and len(ref):
        ri, di = det.sindex.query(ref.geometry, predicate="intersects")
        if len(ri):
            rg = ref.geometry.to_numpy()[ri]
            dg = det.geometry.to_numpy()[di]
            import shapely

            inter = shapely.area(shapely.intersection(rg, dg))
            union = shapely.area(rg) + shapely.area(dg) - inter
            iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
            keep = iou >= iou_threshold
            pairs = sorted(zip(iou[keep], ri[keep], di[keep], strict=True), key=lambda p: -p[0])
    used_r: set[int] = set()
    used_d: set[int] = set()
    ious = []
    for v, r, d in pairs:
        if r in used_r or d in used_d:
            continue
        used_r.add(int(r))
        used_d.add(int(d))
        ious.append(float(v))
    tp = len(ious)
    rep = AccuracyReport(
        mode="polygon",
        tp=tp,
        fp=len(det) - tp,
        fn=len(ref) - tp,
        n_validation=len(ref),
        n_detections=len(det),
        unmatched_detections=len(det) - tp,
        mean_iou=float(np.mean(ious)) if ious else None,
        iou_threshold=float(iou_threshold),
    )
    rep._check_width()
    return rep


# -- files and runs -------------------------------------------------------------------------------


def _with_path(exc: InputError, path: Path) -> InputError:
    """Re-issue an InputError raised without a path so its message starts with ``path``."""
    if exc.path is not None:
        return exc
    return type(exc)(path, exc.problem)


def read_detections(path: str | Path) -> gpd.GeoDataFrame:
    """Read a detections file; an empty file is valid (every validation point becomes a miss)."""
    from thawdetect.core.vector import read_vector

    path = Path(path)
    det = read_vector(path, allow_empty=True, what="detections")
    try:
        return _polygons_only(det)
    except InputError as exc:
        raise _with_path(exc, path) from None


def point_accuracy_files(
    detections_path: str | Path,
    validation_path: str | Path,
    *,
    tolerance_m: float = 0.0,
    label_column: str | None = None,
) -> AccuracyReport:
    """:func:`point_accuracy` on files; errors name the offending file."""
    from thawdetect.core.vector import read_vector

    det = read_detections(detections_path)
    vpath = Path(validation_path)
    val = read_vector(vpath, what="validation points")
    try:
        return point_accuracy(det, val, tolerance_m=tolerance_m, label_column=label_column)
    except InputError as exc:
        raise _with_path(exc, vpath) from None


def polygon_accuracy_files(
    detections_path: str | Path, reference_path: str | Path, *, iou_threshold: float = 0.5
) -> AccuracyReport:
    """:func:`polygon_accuracy` on files; errors name the offending file."""
    from thawdetect.core.vector import read_vector

    det = read_detections(detections_path)
    rpath = Path(reference_path)
    ref = read_vector(rpath, what="reference polygons")
    try:
        return polygon_accuracy(det, ref, iou_threshold=iou_threshold)
    except InputError as exc:
        raise _with_path(exc, rpath) from None


def run_accuracy(
    run_dir: str | Path,
    validation_path: str | Path | list[str | Path] | tuple[str | Path, ...],
    *,
    tolerance_m: float = 0.0,
    label_column: str | None = None,
) -> dict[str, Any]:
    """Score a run's results against validation points: overall, per iteration, per detector.

    * ``overall``: every candidate whose current status is confirmed (the confirmed part of the
      inventory; features of a known inventory given as input are not detections and are not
      scored).
    * ``proposed``: every candidate the detectors proposed, before review (the reviewers' effect
      is the difference to ``overall``).
    * ``per_iteration[k]``: candidates confirmed in iterations 1..k (the inventory after k).
    * ``per_detector[d]``: confirmed candidates that detector ``d`` proposed (alone or merged).

    Validation points lying in the run's known inventory (given as input, so not findable) are
    left out and counted in ``excluded_in_known_inventory``.

    Args:
        run_dir: the run directory holding ``ledger.gpkg``.
        validation_path: validation points (GPKG, SHP, GeoJSON, CSV/XLSX lon/lat), or a list
            of such files (concatenated).
        tolerance_m: matching tolerance in metres.
        label_column: landslide / not-landslide label column (None: all points are landslides;
            ``"auto"``: ``label`` when the file has such a column, else None).

    Returns:
        ``{"run_dir", "validation", "overall", "proposed", "per_iteration", "per_detector"}``,
        each report as :meth:`AccuracyReport.to_dict`.

    Raises:
        InputError: no ledger in ``run_dir``; bad validation file.
    """
    from thawdetect.core.ledger import Ledger
    from thawdetect.core.vector import read_vector

    run_dir = Path(run_dir)
    ledger = Ledger(run_dir)
    if not ledger.exists():
        raise InputError(run_dir, "not a run directory (no ledger.gpkg)")
    paths = (
        [Path(p) for p in validation_path]
        if isinstance(validation_path, list | tuple)
        else [Path(validation_path)]
    )
    vpath = paths[0]
    frames = [read_vector(p, crs=ledger.crs, what="validation points") for p in paths]
    val = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry")
    if label_column == "auto":
        label_column = "label" if "label" in val.columns else None
    inventory = ledger.read("inventory")
    known = inventory[inventory["source"] == "known"] if len(inventory) else inventory
    excluded = 0
    if len(known) and len(val):
        on_known = sorted(set(val.sindex.query(known.geometry, predicate="intersects")[1]))
        excluded = len(on_known)
        val = val.drop(index=val.index[on_known]).reset_index(drop=True)
    cands = ledger.read("candidates")
    confirmed = cands[cands["status"] == "confirmed"]

    def score(det: gpd.GeoDataFrame) -> dict[str, Any]:
        try:
            return point_accuracy(
                det, val, tolerance_m=tolerance_m, label_column=label_column
            ).to_dict()
        except InputError as exc:
            raise _with_path(exc, vpath) from None

    out: dict[str, Any] = {
        "run_dir": str(run_dir),
        "validation": str(vpath) if len(paths) == 1 else [str(p) for p in paths],
        "excluded_in_known_inventory": excluded,
        "tolerance_m": tolerance_m,
        "label_column": label_column,
        "overall": score(confirmed),
        "proposed": score(cands),
        "per_iteration": {},
        "per_detector": {},
    }
    for it in sorted(set(cands["iteration"].astype(int))):
        out["per_iteration"][str(it)] = score(confirmed[confirmed["iteration"] <= it])
    det_lists = cands["detectors"].fillna("").astype(str).str.split(",")
    names = sorted({d.strip() for ds in det_lists for d in ds if d.strip()})
    conf_lists = det_lists[cands["status"] == "confirmed"]
    for name in names:
        sel = conf_lists.map(lambda ds, n=name: n in [d.strip() for d in ds])
        out["per_detector"][name] = score(confirmed[sel.to_numpy()])
    return out


def format_run_table(result: dict[str, Any]) -> str:
    """Plain-text summary of :func:`run_accuracy`: one row per scope."""
    rows = [("overall", result["overall"]), ("proposed (unreviewed)", result["proposed"])]
    rows += [(f"iteration ≤ {k}", v) for k, v in result["per_iteration"].items()]
    rows += [(f"detector {k}", v) for k, v in result["per_detector"].items()]
    head = f"{'scope':<24} {'TP':>4} {'FP':>4} {'FN':>4} {'N':>4} {'TPR':>7} {'FPR':>7} {'FNR':>7}"
    lines = [head]
    for name, r in rows:
        lines.append(
            f"{name:<24} {r['tp']:>4} {r['fp']:>4} {r['fn']:>4} {r['n']:>4} "
            f"{_pct(r['tpr']):>7} {_pct(r['fpr']):>7} {_pct(r['fnr']):>7}"
        )
    ci = result["overall"]["tpr_ci95"]
    if ci:
        lines.append(f"overall TPR 95% CI {100 * ci[0]:.1f}-{100 * ci[1]:.1f} %")
    lines.extend(f"warning: {w}" for w in result["overall"]["warnings"])
    return "\n".join(lines)
