"""The QGIS round trip of a review: export the candidates to an editable GeoPackage, import it.

:func:`export_for_qgis` writes the pending candidates with empty, editable ``decision``,
``probability``, ``note``, ``reviewer`` and ``part_of`` fields; :func:`import_from_qgis` applies
every filled row (and edited outline) in one ledger transaction, or nothing when any row is wrong.

Split out of :mod:`thawdetect.core.review.decisions` (which still re-exports both names). The
imports of ``decisions`` are deferred to call time because ``decisions`` re-exports this
module's names: importing either module first then works.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from thawdetect.core.atomic import atomic_path
from thawdetect.core.errors import InputError
from thawdetect.core.run.ledger import DECISIONS, PROBABILITIES, TABLE_SCHEMAS, now_iso

__all__ = ["EXPORTED_AT", "PREFER", "export_for_qgis", "import_from_qgis"]

#: Field of the review export holding when it was written (UTC, ISO 8601).
EXPORTED_AT = "exported_at"
#: How an import settles a row against another reviewer's decision made after the export.
PREFER = ("newer", "file")


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

    from thawdetect.core.review.decisions import EDIT_FIELDS, open_ledger, review_queue

    out_path = Path(out_path)
    if out_path.suffix.lower() != ".gpkg":
        raise InputError(out_path, "the review export must be a GeoPackage (.gpkg)")
    queue = review_queue(run_dir, status=status)
    drop = [c for c in ("evidence_json", "series_json", "probability") if c in queue.columns]
    out = queue.drop(columns=drop)
    # the page's order, for sorting QGIS's attribute table the same way
    out.insert(1, "review_rank", np.arange(1, len(out) + 1, dtype=np.int64))
    for col in EDIT_FIELDS:
        out[col] = pd.Series([""] * len(out), dtype=object, index=out.index)
    out[EXPORTED_AT] = now_iso()  # an import warns about decisions made after this
    out = gpd.GeoDataFrame(out, geometry="geometry", crs=queue.crs)
    inventory = open_ledger(run_dir).read("inventory")
    with atomic_path(out_path, suffix=".gpkg") as tmp:
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
        _style_export(tmp, out, inventory, EDIT_FIELDS)
    return out_path


def _style_export(
    path: Path, review: pd.DataFrame, inventory: pd.DataFrame, edit_fields: Sequence[str]
) -> None:
    """Store QGIS styles in the export: ``review`` by decision with its form (value maps for
    decision and probability, a drop-down of the ids a ``part_of`` may name, read-only evidence),
    ``inventory`` by probability class."""
    from thawdetect.core.qgis_styles import inventory_style, review_style, store_styles

    targets = [str(v) for v in inventory.get("inventory_id", pd.Series(dtype=object)) if v]
    targets += [str(v) for v in review["candidate_id"]]
    styles = [review_style(targets, edit_fields=edit_fields)]
    if len(inventory):
        styles.append(inventory_style())
    store_styles(path, styles)


def _blank(v: Any) -> bool:
    from thawdetect.core.review.decisions import _text

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
    run_dir: str | Path,
    edited_path: str | Path,
    *,
    reviewer: str | None = None,
    prefer: str = "newer",
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
        prefer: a row whose candidate another reviewer decided after the export was written
            (a stale file) keeps that newer decision (``"newer"``, the default) or is applied
            over it (``"file"``); either way the candidates are listed in
            ``rows.attrs["conflicts"]`` (candidate_id, reviewer, decision, timestamp).

    Returns:
        The applied decision rows.

    Raises:
        InputError: the file is unreadable, lacks the fields, or holds bad rows (message names
            the file, the candidate and the problem).
    """
    import pyogrio

    from thawdetect.core.review.decisions import (
        _normalise_decision,
        _normalise_probability,
        _rows,
        _text,
        _wkt,
        check_outline,
        check_part_of,
        check_part_of_targets,
        latest_decisions,
        open_ledger,
    )

    if prefer not in PREFER:
        raise InputError(edited_path, f"prefer='{prefer}': use one of {list(PREFER)}")
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
    unknown = ledger.unknown_candidates(df["candidate_id"])
    if not unknown:
        cands = ledger.read(
            "candidates", where={"candidate_id": list(dict.fromkeys(df["candidate_id"]))}
        )
    if unknown:
        raise InputError(edited_path, f"unknown candidate ids: {', '.join(unknown[:10])}")
    detector_outline = cands.set_index("candidate_id").geometry
    geoms = df.geometry
    if df.crs is not None and ledger.crs is not None and len(df):
        geoms = geoms.to_crs(ledger.crs)
    inventory = ledger.read("inventory")
    named = {_text(t) for t in df.get("part_of", [])} - {""}
    if named:  # a target may be any candidate of the run, not only one of this file
        cands_and_targets = ledger.read(
            "candidates", where={"candidate_id": sorted(set(df["candidate_id"]) | named)}
        )
    else:
        cands_and_targets = cands
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
            checked = check_outline(one, ledger.crs, original, cid, source=edited_path, force=True)
            outlines.append(_wkt(checked))  # no --force on import: the size is not checked
        else:
            outlines.append("")
        if dec == "part_of":
            targets.append(
                check_part_of(cid, target, inventory, cands_and_targets, source=edited_path)
            )
        elif not _blank(target):
            raise InputError(
                edited_path, f"candidate {cid}: part_of '{_text(target)}' needs decision part_of"
            )
        else:
            targets.append("")
    check_part_of_targets(
        ledger,
        dict(zip(df["candidate_id"], zip(df["decision"], targets, strict=True), strict=True)),
        source=edited_path,
    )
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
        stale = _stale(rows, current, df)
        if prefer == "newer" and stale:
            rows = rows[~rows["candidate_id"].isin([c[0] for c in stale])].reset_index(drop=True)
        if len(rows):
            t.record_decisions(rows)
    rows.attrs["conflicts"] = stale
    return rows


def _stale(
    rows: pd.DataFrame, current: pd.DataFrame, edited: pd.DataFrame
) -> list[tuple[str, str, str, str]]:
    """Rows whose candidate another reviewer decided after the export was written.

    Returns:
        (candidate_id, that reviewer, that decision, its timestamp) per such row; none for a
        file without the ``exported_at`` field (written before it existed).
    """
    from thawdetect.core.review.decisions import _text

    if EXPORTED_AT not in edited or not len(rows):
        return []
    when = dict(zip(edited["candidate_id"], map(_text, edited[EXPORTED_AT]), strict=True))
    out = []
    for r in rows.itertuples(index=False):
        cid, exported = str(r.candidate_id), when.get(str(r.candidate_id), "")
        if not exported or cid not in current.index:
            continue
        c = current.loc[cid]
        if _text(c["timestamp"]) > exported and _text(c["reviewer"]) != r.reviewer:
            out.append((cid, _text(c["reviewer"]), _text(c["decision"]), _text(c["timestamp"])))
    return out
