"""The run's training sets (positives, negatives, inventory), read once and then kept current.

Every stage's contexts carry the ledger's positives, negatives and inventory. They change only in
the init stage and in each iteration's update stage, so :class:`TrainingSets` reads them once and,
after an update the engine itself committed, reads only what that update wrote (the rows of its
iteration and the earlier inventory features it grew) instead of the whole layers again: the cost
of keeping them current stays that of one iteration however long the run is.

The patched frames equal a full read (same rows in ledger order, same columns, same dtypes); where
that cannot be guaranteed cheaply (a new column, a dtype that a full read would widen, rows of the
iteration already present) the layers are read whole, as before. ``tests/test_training_sets.py``
compares the two after every update.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Collection
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from thawdetect.core.plugin_api.detector import DeferredFrame
from thawdetect.core.run._gpkg import _chunks, _decode_geometries, _layer_info, _q, _reading
from thawdetect.core.run.ledger import Ledger

LAYERS = ("positives", "negatives", "inventory")


class TrainingSets:
    """Positives, negatives and inventory of a run's ledger as they stand.

    Each layer is kept as the chunks it was read in (the whole layer, then one chunk per update
    taken in), so taking in an update costs what it wrote; a caller gets the chunks joined, which
    is the copy it would get anyway.
    """

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._version: int | None = None
        self._chunks: dict[str, list[gpd.GeoDataFrame]] = {}

    def _current_version(self) -> int:
        # positives, negatives and inventory change only in the init and update stages
        return self.ledger.count("stages", {"stage": ["init", "update"]})

    def get(self) -> dict[str, gpd.GeoDataFrame]:
        """The three layers (each caller gets its own copy)."""
        self._refresh()
        return {layer: _joined(chunks) for layer, chunks in self._chunks.items()}

    def deferred(self) -> dict[str, DeferredFrame]:
        """The three layers as they stand now, each joined into its own copy only when first
        used (contexts carry them; most reviewers and hooks never look). The chunks are taken
        now: a later update does not change what these give."""
        self._refresh()
        return {
            layer: DeferredFrame(functools.partial(_joined, list(chunks)))
            for layer, chunks in self._chunks.items()
        }

    def geometry(self, layer: str) -> gpd.GeoSeries:
        """The geometry of one of the three layers (a copy)."""
        self._refresh()
        chunks = self._chunks[layer]
        if len(chunks) == 1:
            return chunks[0].geometry.copy()
        return gpd.GeoSeries(
            pd.concat([c.geometry for c in chunks], ignore_index=True), crs=chunks[0].crs
        )

    def _refresh(self) -> None:
        version = self._current_version()
        if self._version != version:
            self._chunks = {layer: [self.ledger.read(layer)] for layer in LAYERS}
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
        patched: dict[str, list[gpd.GeoDataFrame]] = {}
        for layer, old in self._chunks.items():
            grown = list(grown_ids) if layer == "inventory" else []
            new = self.ledger.read(layer, where={"iteration": iteration})
            replacement = self.ledger.read(layer, where={"inventory_id": grown}) if grown else None
            chunks = _patched(old, iteration, new, grown, replacement)
            if chunks is None:
                self._version = None
                return
            patched[layer] = chunks
        self._chunks = patched
        self._version = version


def _joined(chunks: list[gpd.GeoDataFrame]) -> gpd.GeoDataFrame:
    if len(chunks) == 1:
        return chunks[0].copy()
    first = chunks[0]
    return gpd.GeoDataFrame(
        pd.concat(chunks, ignore_index=True), geometry=first.geometry.name, crs=first.crs
    )


def _same_schema(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    return list(a.columns) == list(b.columns) and all(a[c].dtype == b[c].dtype for c in a.columns)


def _patched(
    old: list[gpd.GeoDataFrame],
    iteration: int,
    new: gpd.GeoDataFrame,
    grown: list[str],
    replacement: gpd.GeoDataFrame | None,
) -> list[gpd.GeoDataFrame] | None:
    """``old`` chunks with the rows ``grown`` replaced and ``new`` appended (None: read whole).

    Only chunks that change are copied; the others are shared with the previous state (never
    handed out: callers get joined copies).
    """
    head = old[0]
    if any("iteration" in c and (c["iteration"] == iteration).any() for c in old):
        return None  # the stage replaced rows of its own iteration: positions unknown
    if len(new) and not _same_schema(head, new):
        return None
    out = list(old)
    if grown:
        if replacement is None or not _same_schema(head, replacement):
            return None
        if set(replacement["iteration"]) & {iteration}:
            return None
        # chunks and replacement both in ledger (fid) order, ids unique: hits in chunk order
        taken = 0
        for i, chunk in enumerate(old):
            mask = chunk["inventory_id"].isin(grown).to_numpy()
            hits = int(mask.sum())
            if not hits:
                continue
            repl = replacement.iloc[taken : taken + hits]
            if not np.array_equal(chunk["inventory_id"].to_numpy()[mask], repl["inventory_id"]):
                return None
            chunk = chunk.copy()
            rows = np.flatnonzero(mask)
            for j, col in enumerate(chunk.columns):
                chunk.iloc[rows, j] = repl[col].to_numpy()
            out[i] = chunk
            taken += hits
        if taken != len(replacement):
            return None
    if len(new):
        if sum(len(c) for c in out) == 0:
            return [new]
        out.append(new)
    if len(out) > 16:  # keep joins cheap on very long runs
        out = [_joined(out)]
    return out


class DecidedOutlines:
    """Outlines of the ledger's decided candidates (what the merge stage screens against).

    A candidate's status changes only with a decision (``record_decisions``: the decision row
    and the new status commit together), and its outline never changes once decided (reviewers'
    edits go to the decisions layer). So each call takes in only the decision rows appended
    since the last one (the ``decisions`` layer only grows: undo is a new row), re-reads those
    candidates' status (one indexed read of their iterations) and decodes the outlines of the
    newly decided: its cost is that of one iteration's decisions, not of the whole run (reading
    every status was 0.3-0.5 s at iteration 9 of 10,510 candidates).

    Before answering it checks, in one SQL pass, that the number of candidates with one of the
    statuses and the sum of their row ids equal what it holds; if anything changed a status
    another way (a ledger edited by hand, a re-run stage), it reads every decided candidate
    again. ``tests/test_training_sets.py`` compares it with a full read after every stage.
    """

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._statuses: frozenset[str] | None = None
        self._last_decision = 0  # decisions rows up to this fid are taken in
        self._rows: dict[Any, tuple[int, Any]] = {}  # candidate_id -> (candidate fid, outline)
        self.full_reads = 0  # times every decided candidate had to be read (tests, diagnostics)

    def get(self, statuses: Collection[str]) -> gpd.GeoSeries:
        """Outlines of the candidates whose status is one of ``statuses``, in ledger order."""
        wanted = frozenset(statuses)
        if wanted != self._statuses:
            self._statuses, self._last_decision, self._rows = wanted, 0, {}
        if self.ledger.path.exists():
            with _reading(self.ledger.path) as con:
                self._refresh(con, wanted)
        rows = sorted(self._rows.values(), key=lambda r: r[0])
        geoms = np.empty(len(rows), dtype=object)
        geoms[:] = [g for _, g in rows]
        return gpd.GeoSeries(
            gpd.array.from_shapely(geoms, crs=self.ledger.crs),
            index=pd.RangeIndex(len(rows)),
            crs=self.ledger.crs,
        )

    def _refresh(self, con: sqlite3.Connection, wanted: frozenset[str]) -> None:
        info = _layer_info(con, "candidates")
        if info is None or info.geometry is None or "status" not in info.columns:
            self._rows = {}
            return
        fid, geom = _q(info.fid), _q(info.geometry)
        status_in = f"status IN ({', '.join('?' * len(wanted))})"
        params = sorted(wanted)
        decisions = _layer_info(con, "decisions")
        if decisions is not None:
            new = con.execute(
                f"SELECT {_q(decisions.fid)}, candidate_id, iteration FROM decisions "
                f"WHERE {_q(decisions.fid)} > ? ORDER BY {_q(decisions.fid)}",
                (self._last_decision,),
            ).fetchall()
            if new:
                self._last_decision = int(new[-1][0])
                touched = {cid for _, cid, _ in new}
                # the candidates of those decisions: by their iterations (indexed, one read per
                # iteration decided), or by id when a decision lacks its iteration
                by, keys = "iteration", sorted({it for _, _, it in new if it is not None})
                if any(it is None for _, _, it in new):
                    by, keys = "candidate_id", sorted(touched, key=str)
                rows: list[Any] = []
                for chunk in _chunks(keys):
                    rows += con.execute(
                        f"SELECT {fid}, candidate_id, status, {geom} FROM candidates "
                        f"WHERE {by} IN ({', '.join('?' * len(chunk))})",
                        list(chunk),
                    ).fetchall()
                rows = [r for r in rows if r[1] in touched]
                for _, cid, status, _ in rows:
                    if status not in wanted:
                        self._rows.pop(cid, None)
                decided = [r for r in rows if r[2] in wanted]
                outlines = _decode_geometries([r[3] for r in decided])
                for (f, cid, _, _), outline in zip(decided, outlines, strict=True):
                    self._rows[cid] = (int(f), outline)
        count, total = con.execute(
            f"SELECT count(*), total({fid}) FROM candidates WHERE {status_in}", params
        ).fetchone()
        if count != len(self._rows) or total != float(sum(f for f, _ in self._rows.values())):
            # changed another way: every decided candidate again
            self.full_reads += 1
            rows = con.execute(
                f"SELECT {fid}, candidate_id, {geom} FROM candidates WHERE {status_in}", params
            ).fetchall()
            outlines = _decode_geometries([r[2] for r in rows])
            self._rows = {cid: (int(f), g) for (f, cid, _), g in zip(rows, outlines, strict=True)}
