"""Scoring files and whole runs: overall, per iteration and per detector."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import geopandas as gpd
import numpy as np
import pandas as pd

from thawdetect.core.accuracy.matching import (
    _polygons_only,
    point_accuracy,
    polygon_accuracy,
)
from thawdetect.core.accuracy.metrics import AccuracyReport, _pct
from thawdetect.core.errors import InputError
from thawdetect.core.paths import input_location

# -- files and runs -------------------------------------------------------------------------------


def _with_path(exc: InputError, path: str | Path) -> InputError:
    """Re-issue an InputError raised without a path so its message starts with ``path``."""
    if exc.path is not None:
        return exc
    return type(exc)(path, exc.problem)


def read_detections(path: str | Path) -> gpd.GeoDataFrame:
    """Read a detections file; an empty file is valid (every validation point becomes a miss)."""
    from thawdetect.core.vector import read_vector

    path = input_location(path)
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
    label_column: str | None = "auto",
) -> AccuracyReport:
    """:func:`point_accuracy` on files; errors name the offending file.

    ``label_column="auto"`` (the default) uses the validation file's ``label`` column when it has
    one, as a run's own accuracy report does.
    """
    from thawdetect.core.vector import read_vector

    det = read_detections(detections_path)
    vpath = input_location(validation_path)
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
    rpath = input_location(reference_path)
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

    * ``overall``: the confirmed part of the inventory, with its reviewed outlines (fragments
      merged in); features of a known inventory given as input are not detections and are not
      scored. Before any update stage: the candidates whose status is confirmed.
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
    from thawdetect.core.run.access import open_run_ledger
    from thawdetect.core.run.checks import check_ledger
    from thawdetect.core.vector import read_vector

    run_dir = Path(run_dir)
    ledger = open_run_ledger(run_dir)
    check_ledger(ledger)
    paths = (
        [input_location(p) for p in validation_path]
        if isinstance(validation_path, list | tuple)
        else [input_location(validation_path)]
    )
    vpath = paths[0]
    frames = [read_vector(p, crs=ledger.crs, what="validation points") for p in paths]
    val = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry")
    if label_column == "auto":
        label_column = "label" if "label" in val.columns else None
    elif label_column is not None and label_column not in val.columns:
        raise InputError(
            vpath,
            f"label column '{label_column}' not found; columns: "
            f"{[c for c in val.columns if c != val.geometry.name]}",
        )
    inventory = ledger.read("inventory")
    known = _known_as_given(ledger, inventory)
    excluded = 0
    if len(known) and len(val):
        on_known = sorted(set(val.sindex.query(known.geometry, predicate="intersects")[1]))
        excluded = len(on_known)
        val = val.drop(index=val.index[on_known]).reset_index(drop=True)
    cands = ledger.read("candidates")
    # the reviewed outlines: inventory features the run confirmed (fragments merged in); a
    # ledger whose update stage has not run yet scores the confirmed candidates' outlines
    found = _found(inventory, cands)
    confirmed = found if len(found) else cands[cands["status"] == "confirmed"]

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
    conf_lists = confirmed["detectors"].fillna("").astype(str).str.split(",")
    for name in names:
        sel = conf_lists.map(lambda ds, n=name: n in [d.strip() for d in ds])
        # a boolean mask even when nothing was confirmed (an empty object array would select
        # no columns instead of no rows, and the frame would lose its geometry)
        out["per_detector"][name] = score(confirmed.loc[sel.to_numpy(dtype=bool)])
    return out


def _known_as_given(ledger: Any, inventory: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The known inventory as the run was given it: the iteration-0 positives of source known.

    Not the inventory's known features: a known point that a confirmed outline became, or a
    known polygon a candidate joined, has the run's outline now, and validation points in that
    outline were not given as known (a ledger without those positives: the inventory's).
    """
    given = ledger.read("positives", where={"iteration": 0})
    if len(given) and "source" in given.columns:
        given = given[given["source"] == "known"]
        if len(given):
            return given
    return inventory[inventory["source"] == "known"] if len(inventory) else inventory


def _found(inventory: gpd.GeoDataFrame, cands: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The inventory features the run confirmed: its own, and known ones a confirmed candidate
    outlined or joined (one feature per landslide), dated by the iteration of that candidate."""
    if len(inventory) == 0:
        return inventory
    own = (inventory["source"] != "known").to_numpy()
    joined_ids = [
        [c for c in [_text(cid), *_text(merged).split(",")] if c]
        for cid, merged in zip(
            inventory.get("candidate_id", pd.Series(None, index=inventory.index)),
            inventory.get("merged_candidates", pd.Series(None, index=inventory.index)),
            strict=True,
        )
    ]
    joined = ~own & np.asarray([bool(ids) for ids in joined_ids], dtype=bool)
    rows = np.flatnonzero(own | joined)
    found = inventory.iloc[rows].copy()
    if joined.any() and len(cands):
        it_of = dict(zip(cands["candidate_id"], cands["iteration"].astype(int), strict=True))
        for pos in np.flatnonzero(joined[rows]):
            its = [it_of[c] for c in joined_ids[int(rows[pos])] if c in it_of]
            if its:
                found.iloc[pos, found.columns.get_loc("iteration")] = min(its)
    return found


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value).strip()


def score_run(
    run_dir: str | Path,
    validation: str | Path | list[str | Path] | None = None,
    *,
    tolerance_m: float | None = None,
    label_column: str | None = None,
) -> dict[str, Any]:
    """Score a run the way the run scored itself: :func:`run_accuracy` with the run's settings.

    Both ``thawdetect run`` (at the end) and ``thawdetect accuracy --run`` call this, so the same
    run and the same file give the same figures.

    Args:
        run_dir: the run directory.
        validation: validation file(s); default: the run's own (``manifest.json`` files).
        tolerance_m: default: the run's ``validation_tolerance_m`` (0 when not set).
        label_column: default: the run's ``validation_label_column``, else ``"auto"`` (the
            file's ``label`` column when it has one).

    Raises:
        InputError: not a run directory, a corrupt manifest, or no validation file to use.
    """
    from thawdetect.core.run.manifest import read_manifest

    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir, missing_ok=True)
    run_cfg = manifest.run_config
    if validation is None:
        validation = list(manifest.files.validation)
        if not validation:
            raise InputError(run_dir, "the run names no validation file: give --validation FILE")
    if tolerance_m is None:
        tolerance_m = float(run_cfg.get("validation_tolerance_m") or 0.0)
    if label_column is None:
        label_column = run_cfg.get("validation_label_column") or "auto"
    return run_accuracy(run_dir, validation, tolerance_m=tolerance_m, label_column=label_column)


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


@dataclass(frozen=True)
class RunAccuracy:
    """A run's accuracy as one typed object: :func:`score_run`'s figures (what
    ``accuracy.json`` holds), their overall :class:`AccuracyReport` and the per-scope table.

    Attributes:
        scores: :func:`run_accuracy`'s result as written to ``accuracy.json`` (``overall``,
            ``proposed``, ``per_iteration``, ``per_detector``, ``excluded_in_known_inventory``...).
    """

    scores: dict[str, Any]

    #: the file a run keeps its accuracy in
    FILE: ClassVar[str] = "accuracy.json"

    @property
    def overall(self) -> AccuracyReport:
        """The overall report (TPR/FPR/FNR with 95 % intervals)."""
        return AccuracyReport.from_dict(self.scores["overall"])

    @property
    def table(self) -> str:
        """Plain-text table, one row per scope (:func:`format_run_table`)."""
        return format_run_table(self.scores)

    @property
    def excluded_in_known_inventory(self) -> int:
        """Validation points inside the known inventory (not scored)."""
        return int(self.scores.get("excluded_in_known_inventory") or 0)

    @classmethod
    def read(cls, run_dir: str | Path) -> RunAccuracy | None:
        """The run's ``accuracy.json`` (None when it has none).

        Raises:
            InputError: the file is corrupt (one line).
        """
        path = Path(run_dir) / cls.FILE
        if not path.exists():
            return None
        try:
            scores = json.loads(path.read_text())
            out = cls(scores)
            out.overall  # noqa: B018 (a file without a readable overall report is corrupt)
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            raise InputError(path, f"accuracy report is corrupt ({type(exc).__name__})") from None
        return out

    def write(self, run_dir: str | Path) -> None:
        """Write ``accuracy.json`` atomically."""
        from thawdetect.core.run.ledger import write_atomic

        write_atomic(Path(run_dir) / self.FILE, json.dumps(self.scores, indent=2, default=str))

    def __getitem__(self, key: str) -> Any:
        """The mapping this object replaces (``["report"]``, ``["table"]``, ``["dict"]``), kept
        so that scripts written against it still work."""
        old = {"report": "overall", "table": "table", "dict": "scores"}
        if key not in old:
            raise KeyError(key)
        return getattr(self, old[key])
