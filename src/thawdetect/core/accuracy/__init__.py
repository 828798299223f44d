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

Every proportion gets a 95 % Wilson score interval (Wilson 1927), computed by
``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``. F1 is not a binomial proportion
and has no interval (``f1_ci95`` is null).
"""

from thawdetect.core.accuracy.matching import parse_labels, point_accuracy, polygon_accuracy
from thawdetect.core.accuracy.metrics import (
    NEGATIVE_LABELS,
    POSITIVE_LABELS,
    AccuracyReport,
    wilson_interval,
)
from thawdetect.core.accuracy.scoring import (
    RunAccuracy,
    format_run_table,
    point_accuracy_files,
    polygon_accuracy_files,
    read_detections,
    run_accuracy,
    score_run,
)

__all__ = [
    "NEGATIVE_LABELS",
    "POSITIVE_LABELS",
    "AccuracyReport",
    "RunAccuracy",
    "format_run_table",
    "parse_labels",
    "point_accuracy",
    "point_accuracy_files",
    "polygon_accuracy",
    "polygon_accuracy_files",
    "read_detections",
    "run_accuracy",
    "score_run",
    "wilson_interval",
]
