"""The run ledger: one GeoPackage per run holding every candidate, decision and inventory.

QGIS opens it directly. Every change goes through :meth:`Ledger.transaction`: one SQLite
transaction (``BEGIN IMMEDIATE`` … ``COMMIT``, rollback journal, ``synchronous=FULL``) on the
GeoPackage itself, under an exclusive file lock (:mod:`filelock`). Rows are appended, updated and
deleted in place, so the cost of a change is the size of the change, not the size of the ledger. A
process killed at any moment leaves SQLite's hot journal, which the next connection rolls back: the
ledger is always the state after the last committed transaction, and no recorded decision is lost.
A brand-new ledger is made in a uniquely named temporary file that replaces ``ledger.gpkg`` with
``os.replace`` on commit; stale temporary files of killed processes are removed on open.

GeoPackage rules kept by every write: each feature table has its ``gpkg_contents`` row (extent
grown to cover the rows written, ``last_change`` set), its ``gpkg_geometry_columns`` row, and the
``gpkg_rtree_index`` extension: an R*Tree kept valid by the standard triggers (the ``ST_*``
functions they call are registered on the connection), so QGIS and GDAL use the index directly.
Geometries are standard GeoPackage binary (little-endian header with the envelope, ISO WKB).

Layers (``*`` = spatial, working CRS):
    candidates*   merged candidates of every iteration with their current status
    proposals*    raw candidates per detector, before merging
    decisions     append-only review history (candidate_id, decision, probability, note,
                  reviewer, timestamp, iteration)
    inventory*    confirmed slope failures (known inventory + confirmed candidates)
    positives*    training positives;  negatives*  training negatives
    iterations    one row per iteration (the published tables' columns)
    stages        finished stages (iteration, stage, finished_at): what a re-run skips

The GeoPackage/SQLite internals (geometry blobs, connections, layer tables and their
``gpkg_*`` bookkeeping, R-tree triggers and their bulk replacement, SQL helpers) live in
:mod:`thawdetect.core.run._gpkg`. This module stays near 700 lines because it is one unit: the
layer schemas, the :class:`LedgerTransaction` write paths (append/update/delete, decisions) and
:class:`Ledger`'s open/recover/commit protocol (file lock, hot journal, temporary new ledger,
fsync), whose crash-safety reasoning reads best in one place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
import threading
import uuid
import warnings
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import filelock
import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyogrio

from thawdetect.core.atomic import fsync_dir, fsync_file, write_bytes_atomic, write_text_atomic
from thawdetect.core.errors import InputError
from thawdetect.core.run._gpkg import (
    Where,
    _bulk_index,
    _check_gpkg,
    _chunks,
    _column_from_sql,
    _count,
    _create_layer,
    _crs_of,
    _decode_geometries,
    _drop_layer,
    _ensure_index,
    _geometry_blobs,
    _layer_info,
    _layer_names,
    _LayerInfo,
    _needs_widening,
    _open,
    _q,
    _reading,
    _sql_type,
    _sql_values,
    _stamp_contents,
    _suspend_insert_triggers,
    _suspend_update_triggers,
    _where_sql,
    _widen,
)

LEDGER_FILE = "ledger.gpkg"

DECISIONS = ("confirmed", "rejected", "unsure", "part_of")
#: History-only value: a row that cancels an earlier decision batch (``undoes`` = its batch_id).
UNDO = "undo"
PROBABILITIES = ("high", "medium", "low")
STATUSES = ("pending", *DECISIONS)

SPATIAL_LAYERS = ("candidates", "proposals", "inventory", "positives", "negatives")
#: Feature layers the engine only reads whole (by iteration, never by area): created without a
#: GeoPackage R-tree, whose upkeep (~25 µs per row in SQLite) would be most of their write cost.
#: QGIS opens them as any layer (it reads them whole); candidates, inventory and every layer a
#: plugin adds keep their spatial index.
UNINDEXED_LAYERS = frozenset({"proposals", "positives", "negatives"})
TABLE_SCHEMAS: dict[str, dict[str, str]] = {
    "decisions": {
        "candidate_id": "object",
        "decision": "object",
        "probability": "object",
        "note": "object",
        "reviewer": "object",
        "timestamp": "object",
        "iteration": "int64",
        "geometry_wkt": "object",
        "part_of": "object",
        "batch_id": "object",
        "undoes": "object",
    },
    "iterations": {
        "iteration": "int64",
        "detectors": "object",
        "training_positives": "int64",
        "training_negatives": "int64",
        "candidates_proposed": "int64",
        "candidates_reviewed": "int64",
        "newly_confirmed": "int64",
        "rejected": "int64",
        "inventory_size": "int64",
        "thresholds_json": "object",
    },
    "stages": {"iteration": "int64", "stage": "object", "finished_at": "object"},
}
SPATIAL_SCHEMAS: dict[str, dict[str, str]] = {
    "candidates": {
        "candidate_id": "object",
        "iteration": "int64",
        "detectors": "object",
        "n_detectors": "int64",
        "score": "float64",
        "status": "object",
        "probability": "object",
        "evidence_json": "object",
        "series_json": "object",
    },
    "proposals": {
        "detector": "object",
        "iteration": "int64",
        "score": "float64",
        "evidence_json": "object",
    },
    "inventory": {
        "inventory_id": "object",
        "candidate_id": "object",
        "source": "object",
        "iteration": "int64",
        "probability": "object",
        "detectors": "object",
    },
    "positives": {"source": "object", "iteration": "int64"},
    "negatives": {"source": "object", "iteration": "int64"},
}


_TEMP_GLOB = ".ledger.*.tmp.gpkg*"  # this module's temporary files (and their journals)
_BULK_ROWS = 64  # from this many rows on, an insert writes the R-tree itself


def now_iso() -> str:
    """The current UTC time as ISO 8601 with seconds (timestamps in the ledger)."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def _empty(layer: str, crs: Any) -> pd.DataFrame | gpd.GeoDataFrame:
    if layer in TABLE_SCHEMAS:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in TABLE_SCHEMAS[layer].items()})
    schema = SPATIAL_SCHEMAS.get(layer, {})
    cols = {c: pd.Series(dtype=t) for c, t in schema.items()}
    return gpd.GeoDataFrame(cols, geometry=gpd.GeoSeries([], crs=crs), crs=crs)


_LOCKS: dict[str, filelock.FileLock] = {}
_LOCKS_GUARD = threading.Lock()


def _file_lock(run_dir: Path) -> filelock.FileLock:
    """One lock object per run directory and process (re-entrant within a thread)."""
    key = str((run_dir / ".ledger.lock").resolve())
    with _LOCKS_GUARD:
        if key not in _LOCKS:
            _LOCKS[key] = filelock.FileLock(key)
        return _LOCKS[key]


def _remove_stale_temps(run_dir: Path) -> None:
    """Delete temporary ledgers (and journals) left by killed processes; call under the lock."""
    for stale in run_dir.glob(_TEMP_GLOB):
        with contextlib.suppress(OSError):
            stale.unlink()


def _empty_read(
    layer: str, crs: Any, columns: Sequence[str] | None, geometry: bool
) -> pd.DataFrame | gpd.GeoDataFrame:
    """What reading a missing layer gives: its empty schema, cut as the read asked."""
    empty = _empty(layer, crs)
    if columns is not None:
        keep = [c for c in empty.columns if c in columns or (geometry and c == "geometry")]
        empty = empty[keep]
    elif not geometry and "geometry" in empty:
        empty = empty.drop(columns="geometry")
    return empty if geometry else pd.DataFrame(empty)


def _read_layer(
    con: sqlite3.Connection,
    layer: str,
    crs: Any,
    columns: Sequence[str] | None = None,
    where: Where | None = None,
    geometry: bool = True,
) -> pd.DataFrame | gpd.GeoDataFrame:
    info = _layer_info(con, layer)
    if info is None:
        return _empty_read(layer, crs, columns, geometry)
    if not geometry and info.geometry is not None:
        info = dataclasses.replace(info, geometry=None)
    attrs = [c for c in info.columns if columns is None or c in columns]
    select = [_q(c) for c in attrs] + ([_q(info.geometry)] if info.geometry else [])
    clause, params = _where_sql(info, where)
    sql = (
        f"SELECT {', '.join(select) or 'NULL'} FROM {_q(info.name)}{clause} ORDER BY {_q(info.fid)}"
    )
    rows = con.execute(sql, params).fetchall()
    data = list(zip(*rows, strict=True)) if rows else [()] * len(select)
    frame = pd.DataFrame(
        {c: _column_from_sql(v, info.columns[c]) for c, v in zip(attrs, data, strict=False)},
        index=pd.RangeIndex(len(rows)),
    )
    if info.geometry is None or layer in TABLE_SCHEMAS:
        df = pd.DataFrame(frame)
        if columns is None:
            for col, dtype in TABLE_SCHEMAS.get(layer, {}).items():
                if col not in df.columns:
                    df[col] = pd.Series(dtype=dtype)
        return df
    stored_crs = _crs_of(con, info.srs_id)
    geoms = _decode_geometries(data[-1]) if rows else np.array([], dtype=object)
    gdf = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=stored_crs), crs=stored_crs)
    if gdf.crs is None and crs is not None:
        gdf = gdf.set_crs(crs)
    for col in ("evidence_json", "series_json", "probability", "note"):
        if col in gdf.columns:
            gdf[col] = gdf[col].astype(object).where(gdf[col].notna(), None)
    return gdf


def _bootstrap(path: Path) -> None:
    """A new, empty GeoPackage (GDAL writes the GeoPackage system tables and ``stages``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pyogrio.write_dataframe(_empty("stages", None), path, layer="stages", driver="GPKG")


class LedgerTransaction:
    """Changes made inside one SQLite transaction; committed on leaving the ``with`` block.

    :meth:`append`, :meth:`update` and :meth:`delete` touch only the rows they name;
    :meth:`write` replaces a whole layer (for small layers and tests). :meth:`read` sees the
    changes made so far in this transaction.
    """

    def __init__(self, path: Path, crs: Any, con: sqlite3.Connection | None = None) -> None:
        self.path = path
        self.crs = crs
        if con is None:
            raise ValueError("a LedgerTransaction comes from Ledger.transaction()")
        self._con = con
        self._extents: dict[str, npt.NDArray[Any]] = {}
        self._touched: set[str] = set()

    # -- reading ---------------------------------------------------------------------------

    def read(
        self, layer: str, *, columns: Sequence[str] | None = None, where: Where | None = None
    ) -> pd.DataFrame | gpd.GeoDataFrame:
        """Read a layer as it is inside this transaction (optionally some columns/rows)."""
        return _read_layer(self._con, layer, self.crs, columns, where)

    def count(self, layer: str, where: Where | None = None) -> int:
        """Number of rows of ``layer`` (matching ``where``)."""
        return _count(self._con, layer, where)

    # -- writing ---------------------------------------------------------------------------

    def write(self, layer: str, frame: pd.DataFrame | gpd.GeoDataFrame) -> None:
        """Replace a layer (its columns become the frame's)."""
        _drop_layer(self._con, layer)
        self._extents.pop(layer, None)
        self._insert(layer, frame)

    def append(self, layer: str, rows: pd.DataFrame | gpd.GeoDataFrame) -> None:
        """Append rows to a layer (created on first use; new columns are added)."""
        self._insert(layer, rows)

    def delete(self, layer: str, where: Where) -> int:
        """Delete the rows matching ``where`` (an empty mapping deletes every row)."""
        info = _layer_info(self._con, layer)
        if info is None:
            return 0
        clause, params = _where_sql(info, where)
        cur = self._con.execute(f"DELETE FROM {_q(layer)}{clause}", params)
        self._touched.add(layer)
        return int(cur.rowcount)

    def update(self, layer: str, key: str, rows: pd.DataFrame) -> int:
        """Set the columns of ``rows`` on the rows whose ``key`` column matches (in place).

        Returns:
            The number of ledger rows changed.
        """
        info = _layer_info(self._con, layer)
        if info is None or len(rows) == 0:
            return 0
        spatial = isinstance(rows, gpd.GeoDataFrame) and info.geometry is not None
        cols = [c for c in rows.columns if c not in (key, "geometry")]
        info = self._ensure_columns(info, rows[cols])
        sets = [f"{_q(c)} = ?" for c in cols]
        values = [_sql_values(rows[c], info.columns[c]) for c in cols]
        if spatial:
            blobs, _ = _geometry_blobs(self._con, info, rows, self._extents)
            sets.append(f"{_q(str(info.geometry))} = ?")
            values.append(blobs)
        keys = _sql_values(rows[key], info.columns.get(key, "TEXT"))
        if not sets:
            return 0
        sql = f"UPDATE {_q(layer)} SET {', '.join(sets)} WHERE {_q(key)} = ?"
        suspended = (
            _suspend_update_triggers(self._con, info)
            if not spatial and len(rows) >= _BULK_ROWS
            else {}
        )
        before = self._con.total_changes
        self._con.executemany(sql, zip(*values, keys, strict=True))
        changed = self._con.total_changes - before
        for trigger in suspended.values():
            self._con.execute(trigger)
        self._touched.add(layer)
        return changed

    def mark_stage(self, iteration: int, stage: str) -> None:
        """Record a finished stage (committed together with the stage's data)."""
        row = pd.DataFrame([{"iteration": iteration, "stage": stage, "finished_at": now_iso()}])
        self.append("stages", row)

    def unknown_candidates(self, ids: Iterable[Any]) -> list[str]:
        """The ids among ``ids`` that are not candidates of the ledger (sorted)."""
        return _unknown_candidates(self._con, ids)

    def record_decisions(self, decisions: pd.DataFrame) -> None:
        """Append review decisions and update the candidates' status and probability in place.

        Args:
            decisions: columns candidate_id, decision, and optionally probability, note,
                reviewer, timestamp, iteration.

        Raises:
            InputError: unknown candidate ids or illegal decision/probability values
                (nothing is written).
        """
        d = decisions.copy()
        it = _candidate_iterations(self._con, d["candidate_id"])  # one indexed lookup
        unknown = sorted({str(i) for i in d["candidate_id"] if i not in it})
        if unknown:
            raise InputError(
                self.path, f"unknown candidate ids: {', '.join(map(str, unknown[:10]))}"
            )
        bad = sorted(set(d["decision"]) - set(DECISIONS))
        if bad:
            raise InputError(self.path, f"illegal decision values {bad}; use {list(DECISIONS)}")
        if "probability" not in d:
            d["probability"] = None
        d["probability"] = d["probability"].where(d["probability"].notna(), None)
        d["probability"] = d["probability"].map(lambda v: v.lower() if isinstance(v, str) else v)
        d["probability"] = d["probability"].replace("", None)
        badp = sorted({p for p in d["probability"] if p is not None} - set(PROBABILITIES))
        if badp:
            raise InputError(
                self.path, f"illegal probability values {badp}; use {list(PROBABILITIES)}"
            )
        for col, default in (
            ("note", ""),
            ("reviewer", "unknown"),
            ("timestamp", now_iso()),
            ("geometry_wkt", ""),
            ("part_of", ""),
            ("batch_id", ""),
            ("undoes", ""),
        ):
            if col not in d:
                d[col] = default
            d[col] = d[col].where(d[col].notna(), default)
        if "iteration" not in d:
            d["iteration"] = d["candidate_id"].map(it)
        d["iteration"] = d["iteration"].fillna(d["candidate_id"].map(it)).astype("int64")
        d = d[list(TABLE_SCHEMAS["decisions"])]
        self.append("decisions", d)
        latest = d.drop_duplicates("candidate_id", keep="last")
        _ensure_index(self._con, "candidates", "candidate_id")
        self.update(
            "candidates",
            "candidate_id",
            latest[["candidate_id", "decision", "probability"]].rename(
                columns={"decision": "status"}
            ),
        )

    # -- internals -------------------------------------------------------------------------

    def _ensure_columns(self, info: _LayerInfo, frame: pd.DataFrame) -> _LayerInfo:
        changed = False
        for col in frame.columns:
            if col == "geometry" or col == info.fid or col == info.geometry:
                continue
            if col not in info.columns:
                self._con.execute(
                    f"ALTER TABLE {_q(info.name)} ADD COLUMN {_q(col)} {_sql_type(frame[col])}"
                )
                changed = True
            else:
                wider = _needs_widening(info.columns[col], frame[col])
                if wider:
                    _widen(self._con, info.name, col, wider)
                    changed = True
        if changed:
            new = _layer_info(self._con, info.name)
            assert new is not None
            return new
        return info

    def _insert(self, layer: str, frame: pd.DataFrame) -> None:
        frame = frame.reset_index(drop=True)
        spatial = isinstance(frame, gpd.GeoDataFrame) and layer not in TABLE_SCHEMAS
        attrs = [
            c
            for c in frame.columns
            if c != "geometry"
            and not (isinstance(frame, gpd.GeoDataFrame) and c == frame.geometry.name)
        ]
        info = _layer_info(self._con, layer)
        if info is None:
            columns = {c: _sql_type(frame[c]) for c in attrs}
            crs = frame.crs if spatial and frame.crs is not None else self.crs
            info = _create_layer(
                self._con, layer, columns, spatial, crs, spatial_index=layer not in UNINDEXED_LAYERS
            )
        else:
            info = self._ensure_columns(info, frame[attrs])
        self._touched.add(layer)
        if len(frame) == 0:
            return
        n = len(frame)
        names = [info.fid, *attrs]
        # explicit fids (what AUTOINCREMENT would give), so the R-tree rows can be bulk-written
        start = self._con.execute(
            f"SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = ?), 0), "
            f"coalesce((SELECT max({_q(info.fid)}) FROM {_q(layer)}), 0))",
            (layer,),
        ).fetchone()[0]
        fids = list(range(int(start) + 1, int(start) + 1 + n))
        values: list[list[Any]] = [fids]
        values += [_sql_values(frame[c], info.columns[c]) for c in attrs]
        bounds = None
        if info.geometry is not None and isinstance(frame, gpd.GeoDataFrame):
            names.append(str(info.geometry))
            blobs, bounds = _geometry_blobs(self._con, info, frame, self._extents)
            values.append(blobs)
        sql = (
            f"INSERT INTO {_q(layer)} ({', '.join(_q(c) for c in names)}) "
            f"VALUES ({', '.join('?' * len(names))})"
        )
        if n < _BULK_ROWS:  # the GeoPackage triggers keep the R-tree and the count
            self._con.executemany(sql, zip(*values, strict=True))
            return
        # Bulk: the per-row triggers would call back into Python five times per row; suspend
        # them, write the R-tree rows and the count directly, restore them (same transaction).
        triggers = _suspend_insert_triggers(self._con, info)
        self._con.executemany(sql, zip(*values, strict=True))
        _bulk_index(self._con, layer, info, fids, bounds, triggers)

    def _finish(self) -> None:
        """Grow the extents and stamp ``last_change`` of the layers this transaction changed."""
        _stamp_contents(self._con, self._touched, self._extents)


def _candidate_iterations(con: sqlite3.Connection, ids: Iterable[Any]) -> dict[Any, int]:
    unique = list(dict.fromkeys(v.item() if isinstance(v, np.generic) else v for v in ids))
    if _layer_info(con, "candidates") is None:
        return {}
    out: dict[Any, int] = {}
    for chunk in _chunks(unique):
        sql = (
            "SELECT candidate_id, iteration FROM candidates "
            f"WHERE candidate_id IN ({', '.join('?' * len(chunk))})"
        )
        out.update({k: int(v) if v is not None else v for k, v in con.execute(sql, list(chunk))})
    return out


def _unknown_candidates(con: sqlite3.Connection, ids: Iterable[Any]) -> list[str]:
    ids = list(ids)
    known = _candidate_iterations(con, ids)
    return sorted({str(i) for i in ids if i not in known})


class Ledger:
    """The GeoPackage ledger of one run.

    Args:
        run_dir: the run directory.
        crs: the run's working CRS (for empty layers and CRS-less frames).
    """

    def __init__(self, run_dir: str | Path, crs: Any = None) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LEDGER_FILE
        self._crs = crs
        self._crs_known = crs is not None
        self._recover()

    @property
    def crs(self) -> Any:
        """The working CRS: as given, else the stored layers' (looked up on first use)."""
        if not self._crs_known and self.path.exists():
            self._crs = self._stored_crs()
            self._crs_known = True
        return self._crs

    @crs.setter
    def crs(self, value: Any) -> None:
        self._crs = value
        self._crs_known = value is not None

    def _recover(self) -> None:
        """Clean up after a killed process: stale temporary ledgers, and a hot journal."""
        journal = self.path.with_name(self.path.name + "-journal")
        if not self.run_dir.is_dir():
            return
        stale = next(iter(self.run_dir.glob(_TEMP_GLOB)), None)
        if stale is None and not journal.exists():
            return
        lock = _file_lock(self.run_dir)
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            return  # another process is writing; it cleans up under the lock
        try:
            _remove_stale_temps(self.run_dir)
            if journal.exists() and self.path.exists():
                with _reading(self.path) as con:  # rolls a hot journal back and deletes it
                    con.execute("SELECT count(*) FROM sqlite_master").fetchone()
                    # A process killed right after creating its journal leaves one with a zeroed
                    # header: not hot, ignored by SQLite, but never deleted. With the write lock
                    # held no writer can own it.
                    con.execute("PRAGMA busy_timeout = 200")
                    with contextlib.suppress(sqlite3.OperationalError):
                        con.execute("BEGIN IMMEDIATE")
                        with contextlib.suppress(OSError):
                            journal.unlink()
                        con.execute("ROLLBACK")
        finally:
            lock.release()

    def _stored_crs(self) -> Any:
        with _reading(self.path) as con:
            for layer in SPATIAL_LAYERS:
                info = _layer_info(con, layer)
                if info is not None and info.geometry is not None:
                    crs = _crs_of(con, info.srs_id)
                    if crs is not None:
                        return crs
        return None

    def exists(self) -> bool:
        """Whether the ledger file exists."""
        return self.path.exists()

    def layers(self) -> set[str]:
        """Names of the layers present."""
        if not self.path.exists():
            return set()
        with _reading(self.path) as con:
            return _layer_names(con)

    def read(
        self,
        layer: str,
        *,
        columns: Sequence[str] | None = None,
        where: Where | None = None,
        geometry: bool = True,
    ) -> pd.DataFrame | gpd.GeoDataFrame:
        """Read a layer as last committed (an empty frame with its schema when it is missing).

        Args:
            layer: the layer name.
            columns: attribute columns to read (geometry comes with spatial layers unless
                ``geometry`` is False).
            where: keep the rows matching these column values (see :data:`Where`).
            geometry: False: attributes only (a plain DataFrame; no geometry decoded).
        """
        if not self.path.exists():
            return _empty_read(layer, self.crs, columns, geometry)
        with _reading(self.path) as con:
            return _read_layer(con, layer, self.crs, columns, where, geometry)

    def count(self, layer: str, where: Where | None = None) -> int:
        """Number of committed rows of ``layer`` matching ``where``."""
        if not self.path.exists():
            return 0
        with _reading(self.path) as con:
            return _count(con, layer, where)

    def unknown_candidates(self, ids: Iterable[Any]) -> list[str]:
        """The ids among ``ids`` that are not candidates of the ledger (sorted)."""
        if not self.path.exists():
            return sorted({str(i) for i in ids})
        with _reading(self.path) as con:
            return _unknown_candidates(con, ids)

    def stage_done(self, iteration: int, stage: str) -> bool:
        """Whether ``stage`` of ``iteration`` finished (and was committed)."""
        return self.count("stages", {"iteration": iteration, "stage": stage}) > 0

    @contextlib.contextmanager
    def transaction(self) -> Iterator[LedgerTransaction]:
        """Change the ledger atomically.

        Yields:
            A :class:`LedgerTransaction` inside one SQLite transaction; on normal exit it is
            committed, on an exception rolled back and the ledger is untouched.
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with _file_lock(self.run_dir):
            _remove_stale_temps(self.run_dir)
            fresh = not self.path.exists()
            target = self.path
            if fresh:  # a new ledger appears whole, or not at all
                target = self.run_dir / f".ledger.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp.gpkg"
                _bootstrap(target)
            committed = False
            try:
                con = _open(target)
                try:
                    _check_gpkg(con, target)
                    con.execute("BEGIN IMMEDIATE")
                    txn = LedgerTransaction(target, self.crs, con)
                    try:
                        yield txn
                        txn._finish()
                        con.execute("COMMIT")
                        committed = True
                    finally:
                        if not committed and con.in_transaction:
                            con.execute("ROLLBACK")
                except sqlite3.DatabaseError as exc:
                    raise InputError(self.path, f"run ledger is corrupt ({exc})") from exc
                finally:
                    con.close()
                if fresh:
                    fsync_file(target)
                    os.replace(target, self.path)
                    fsync_dir(self.run_dir)
            finally:
                if fresh:
                    for leftover in (target, target.with_name(target.name + "-journal")):
                        with contextlib.suppress(OSError):
                            leftover.unlink()

    def integrity_check(self) -> bool:
        """SQLite's integrity check of the GeoPackage (True when sound)."""
        with contextlib.closing(sqlite3.connect(self.path)) as con:
            return bool(con.execute("PRAGMA integrity_check").fetchone()[0] == "ok")


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write a small file atomically (UTF-8 text or bytes; see :mod:`thawdetect.core.atomic`)."""
    if isinstance(data, bytes):
        write_bytes_atomic(path, data)
    else:
        write_text_atomic(path, data)
