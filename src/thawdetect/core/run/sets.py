"""The run's training sets (positives, negatives, inventory), read once and then kept current.

Every stage's contexts carry the ledger's positives, negatives and inventory. They change only in
the init stage and in each iteration's update stage, so :class:`TrainingSets` reads them once and,
after an update the engine itself committed, reads only what that update wrote (the rows of its
iteration and the earlier inventory features it grew) instead of the whole layers again: the cost
of keeping them current stays that of one iteration however long the run is.

The patched frames equal a full read (same rows in ledger order, same columns, same dtypes); where
that cannot be guaranteed cheaply (a new column, a dtype that a full read would widen, rows of the
iteration already present) the layers are read whole, as before. ``tests/test_core_engine.py``
compares the two after every iteration.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from thawdetect.core.run.ledger import Ledger

LAYERS = ("positives", "negatives", "inventory")


class TrainingSets:
    """Positives, negatives and inventory of a run's ledger as they stand."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._version: int | None = None
        self._sets: dict[str, gpd.GeoDataFrame] = {}

    def _current_version(self) -> int:
        # positives, negatives and inventory change only in the init and update stages
        return self.ledger.count("stages", {"stage": ["init", "update"]})

    def get(self) -> dict[str, gpd.GeoDataFrame]:
        """The three layers (each caller gets its own copy)."""
        self._refresh()
        return {k: v.copy() for k, v in self._sets.items()}

    def geometry(self, layer: str) -> gpd.GeoSeries:
        """The geometry of one of the three layers (a copy)."""
        self._refresh()
        return self._sets[layer].geometry.copy()

    def _refresh(self) -> None:
        version = self._current_version()
        if self._version != version:
            self._sets = {layer: self.ledger.read(layer) for layer in LAYERS}
            self._version = version

    def updated(self, iteration: int, grown_ids: Collection[str]) -> None:
        """Take in the update stage of ``iteration`` just committed by this process.

        Args:
            iteration: the iteration whose update stage committed.
            grown_ids: ``inventory_id`` of earlier inventory features it changed in place.
        """
        version = self._current_version()
        if self._version is None or version != self._version + 1:
            self._version = None  # someone else changed the ledger too: read whole next time
            return
        patched: dict[str, gpd.GeoDataFrame] = {}
        for layer, old in self._sets.items():
            grown = list(grown_ids) if layer == "inventory" else []
            new = self.ledger.read(layer, where={"iteration": iteration})
            replacement = self.ledger.read(layer, where={"inventory_id": grown}) if grown else None
            frame = _patched(old, iteration, new, grown, replacement)
            if frame is None:
                self._version = None
                return
            patched[layer] = frame
        self._sets = patched
        self._version = version


def _same_schema(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    return list(a.columns) == list(b.columns) and all(a[c].dtype == b[c].dtype for c in a.columns)


def _patched(
    old: gpd.GeoDataFrame,
    iteration: int,
    new: gpd.GeoDataFrame,
    grown: list[str],
    replacement: gpd.GeoDataFrame | None,
) -> gpd.GeoDataFrame | None:
    """``old`` with the rows ``grown`` replaced and ``new`` appended (None: read it whole)."""
    if "iteration" in old and (old["iteration"] == iteration).any():
        return None  # the stage replaced rows of its own iteration: positions unknown
    if len(new) and not _same_schema(old, new):
        return None
    out = old.copy()
    if grown:
        if replacement is None or not _same_schema(old, replacement):
            return None
        mask = out["inventory_id"].isin(grown).to_numpy()
        # both in ledger (fid) order, the ids unique: row i of the replacement is hit i of mask
        if mask.sum() != len(replacement) or set(replacement["iteration"]) & {iteration}:
            return None
        if not np.array_equal(out["inventory_id"].to_numpy()[mask], replacement["inventory_id"]):
            return None
        rows = np.flatnonzero(mask)
        for j, col in enumerate(out.columns):
            out.iloc[rows, j] = replacement[col].to_numpy()
    if not len(new):
        return out
    if not len(out):
        return new
    joined = pd.concat([out, new], ignore_index=True)
    return gpd.GeoDataFrame(joined, geometry=old.geometry.name, crs=old.crs)


class DecidedOutlines:
    """Outlines of the ledger's decided candidates (what the merge stage screens against).

    The statuses are read each time (one attribute column, no geometry); an outline is decoded
    once per candidate: a candidate's outline never changes once it is decided (reviewers' edits
    go to the decisions layer), so the cost per iteration is that of the newly decided ones.
    """

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._outlines: dict[str, Any] = {}

    def get(self, statuses: Collection[str]) -> gpd.GeoSeries:
        """Outlines of the candidates whose status is one of ``statuses``, in ledger order."""
        ids = self.ledger.read(
            "candidates", columns=["candidate_id"], where={"status": list(statuses)}, geometry=False
        )["candidate_id"].tolist()
        missing = [i for i in ids if i not in self._outlines]
        if missing:
            rows = self.ledger.read(
                "candidates", columns=["candidate_id"], where={"candidate_id": missing}
            )
            self._outlines.update(zip(rows["candidate_id"], rows.geometry, strict=True))
        return gpd.GeoSeries(
            [self._outlines[i] for i in ids], crs=self.ledger.crs, index=pd.RangeIndex(len(ids))
        )
