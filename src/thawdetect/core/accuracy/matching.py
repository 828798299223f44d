"""Matching detections to validation points (Wei et al.) or reference polygons (IoU, one-to-one)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from numpy.typing import NDArray

from thawdetect.core.accuracy.metrics import (
    NEGATIVE_LABELS,
    POSITIVE_LABELS,
    AccuracyReport,
)
from thawdetect.core.errors import CRSMismatchError, InputError

# -- inputs ---------------------------------------------------------------------------------------


def _normalise_label(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "1" if v else "0"
    if isinstance(v, (int, float, np.number)) and float(v).is_integer():
        return str(int(v))
    return " ".join(str(v).strip().lower().split())


def parse_labels(values: pd.Series, *, source: str | Path | None, column: str) -> NDArray[np.bool_]:
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


#: Geometry types a validation file may hold (polygons are scored at a representative point).
VALIDATION_TYPES = frozenset({"Point", "MultiPoint", "Polygon", "MultiPolygon"})


def check_validation_geometry(val: gpd.GeoDataFrame, source: str | Path | None = None) -> None:
    """Refuse validation features that are not points (or polygons): lines are not scored.

    Raises:
        InputError: naming the geometry types found.
    """
    bad = sorted(set(val.geom_type.dropna()) - VALIDATION_TYPES)
    if bad:
        raise InputError(
            source,
            f"validation features must be points (or polygons), found {', '.join(bad)}",
        )


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
            None: every point is a landslide; ``"auto"``: ``label`` when the validation points
            have such a column, else None.

    Returns:
        The :class:`AccuracyReport` (warnings list small N and duplicate points).

    Raises:
        InputError: negative tolerance, missing or unknown labels, non-polygon detections.
        CRSMismatchError: a frame without CRS or one that cannot be transformed.
    """
    if not math.isfinite(tolerance_m) or tolerance_m < 0:
        raise InputError(None, f"tolerance_m must be ≥ 0, got {tolerance_m}")
    report_warnings: list[str] = []
    val = validation[validation.geometry.notna() & ~validation.geometry.is_empty].copy()
    check_validation_geometry(val)
    if label_column == "auto":
        label_column = "label" if "label" in val.columns else None
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
