"""The run ledger: one GeoPackage per run holding every candidate, decision and inventory.

QGIS opens it directly. Every change goes through :meth:`Ledger.transaction`: the GeoPackage is
copied, the copy is changed, flushed and moved over the original with ``os.replace`` (atomic on
POSIX), under an exclusive file lock. A process killed at any moment leaves either the old or the
new ledger, never a half-written one, and no recorded decision is lost.

Layers (``*`` = spatial, working CRS):
    candidates*   merged candidates of every iteration with their current status
    proposals*    raw candidates per detector, before merging
    decisions     append-only review history (candidate_id, decision, probability, note,
                  reviewer, timestamp, iteration)
    inventory*    confirmed slope failures (known inventory + confirmed candidates)
    positives*    training positives;  negatives*  training negatives
    iterations    one row per iteration (the published tables' columns)
    stages        finished stages (iteration, stage, finished_at): what a re-run skips
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sqlite3
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyogrio

from thawdetect.core.errors import InputError

LEDGER_FILE = "ledger.gpkg"

DECISIONS = ("confirmed", "rejected", "unsure", "part_of")
#: History-only value: a row that cancels an earlier decision batch (``undoes`` = its batch_id).
UNDO = "undo"
PROBABILITIES = ("high", "medium", "low")
STATUSES = ("pending", *DECISIONS)

SPATIAL_LAYERS = ("candidates", "proposals", "inventory", "positives", "negatives")
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
    "proposals": {"detector": "object", "iteration": "int64", "score": "float64"},
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


def now_iso() -> str:
    """The current UTC time as ISO 8601 with seconds (timestamps in the ledger)."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def _empty(layer: str, crs: Any) -> pd.DataFrame | gpd.GeoDataFrame:
    if layer in TABLE_SCHEMAS:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in TABLE_SCHEMAS[layer].items()})
    schema = SPATIAL_SCHEMAS.get(layer, {})
    cols = {c: pd.Series(dtype=t) for c, t in schema.items()}
    return gpd.GeoDataFrame(cols, geometry=gpd.GeoSeries([], crs=crs), crs=crs)


def _list_layers(path: Path) -> set[str]:
    if not path.exists():
        return set()
    try:
        return {str(name) for name, _ in pyogrio.list_layers(path)}
    except Exception as exc:
        raise InputError(path, "run ledger is corrupt (not a readable GeoPackage)") from exc


def _read(path: Path, layer: str, crs: Any) -> pd.DataFrame | gpd.GeoDataFrame:
    if layer not in _list_layers(path):
        return _empty(layer, crs)
    if layer in TABLE_SCHEMAS:
        df = pyogrio.read_dataframe(path, layer=layer, read_geometry=False)
        df = pd.DataFrame(df)
        for col, dtype in TABLE_SCHEMAS[layer].items():
            if col not in df.columns:
                df[col] = pd.Series(dtype=dtype)
        return df
    gdf = gpd.read_file(path, layer=layer, engine="pyogrio")
    if gdf.crs is None and crs is not None:
        gdf = gdf.set_crs(crs)
    for col in ("evidence_json", "series_json", "probability", "note"):
        if col in gdf.columns:
            gdf[col] = gdf[col].astype(object).where(gdf[col].notna(), None)
    return gdf


def _write(path: Path, layer: str, frame: pd.DataFrame, crs: Any) -> None:
    frame = frame.reset_index(drop=True)
    if layer in TABLE_SCHEMAS or not isinstance(frame, gpd.GeoDataFrame):
        df = pd.DataFrame(frame).copy()
        if "geometry" in df.columns:
            df = df.drop(columns="geometry")
        _write_table(path, layer, df)
        return
    gdf = frame
    if gdf.crs is None and crs is not None:
        gdf = gdf.set_crs(crs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pyogrio.write_dataframe(
            gdf,
            path,
            layer=layer,
            driver="GPKG",
            geometry_type="Unknown" if len(gdf) == 0 else None,
            promote_to_multi=False,
            layer_options={"OVERWRITE": "YES"},
        )


def _write_table(path: Path, layer: str, df: pd.DataFrame) -> None:
    """Write a non-spatial table as a GeoPackage attributes table (QGIS shows it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pyogrio.write_dataframe(
            df,
            path,
            layer=layer,
            driver="GPKG",
            layer_options={"OVERWRITE": "YES"},
        )


class LedgerTransaction:
    """A set of changes to a copy of the ledger; committed atomically on leaving the block."""

    def __init__(self, path: Path, crs: Any) -> None:
        self.path = path
        self.crs = crs

    def read(self, layer: str) -> pd.DataFrame | gpd.GeoDataFrame:
        """Read a layer as it is inside this transaction."""
        return _read(self.path, layer, self.crs)

    def write(self, layer: str, frame: pd.DataFrame | gpd.GeoDataFrame) -> None:
        """Replace a layer."""
        _write(self.path, layer, frame, self.crs)

    def append(self, layer: str, rows: pd.DataFrame | gpd.GeoDataFrame) -> None:
        """Append rows to a layer (read, concatenate, replace)."""
        if len(rows) == 0:
            return
        current = self.read(layer)
        if len(current) == 0:
            self.write(layer, rows)
            return
        combined = pd.concat([current, rows], ignore_index=True)
        if isinstance(current, gpd.GeoDataFrame):
            combined = gpd.GeoDataFrame(combined, geometry="geometry", crs=current.crs)
        self.write(layer, combined)

    def mark_stage(self, iteration: int, stage: str) -> None:
        """Record a finished stage (committed together with the stage's data)."""
        row = pd.DataFrame([{"iteration": iteration, "stage": stage, "finished_at": now_iso()}])
        self.append("stages", row)

    def record_decisions(self, decisions: pd.DataFrame) -> None:
        """Append review decisions and update the candidates' status and probability.

        Args:
            decisions: columns candidate_id, decision, and optionally probability, note,
                reviewer, timestamp, iteration.

        Raises:
            InputError: unknown candidate ids or illegal decision/probability values
                (nothing is written).
        """
        d = decisions.copy()
        cands = self.read("candidates")
        known = set(cands["candidate_id"])
        unknown = sorted(set(d["candidate_id"]) - known)
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
        it = cands.set_index("candidate_id")["iteration"]
        if "iteration" not in d:
            d["iteration"] = d["candidate_id"].map(it)
        d["iteration"] = d["iteration"].fillna(d["candidate_id"].map(it)).astype("int64")
        d = d[list(TABLE_SCHEMAS["decisions"])]
        self.append("decisions", d)
        latest = d.drop_duplicates("candidate_id", keep="last").set_index("candidate_id")
        sel = cands["candidate_id"].isin(latest.index)
        cands.loc[sel, "status"] = cands.loc[sel, "candidate_id"].map(latest["decision"])
        cands.loc[sel, "probability"] = cands.loc[sel, "candidate_id"].map(latest["probability"])
        self.write("candidates", cands)


class Ledger:
    """The GeoPackage ledger of one run.

    Args:
        run_dir: the run directory.
        crs: the run's working CRS (for empty layers and CRS-less frames).
    """

    def __init__(self, run_dir: str | Path, crs: Any = None) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LEDGER_FILE
        self.crs = crs
        if self.crs is None and self.path.exists():
            self.crs = self._stored_crs()

    def _stored_crs(self) -> Any:
        for layer in SPATIAL_LAYERS:
            if layer in _list_layers(self.path):
                info = pyogrio.read_info(self.path, layer=layer)
                if info.get("crs"):
                    return info["crs"]
        return None

    def exists(self) -> bool:
        """Whether the ledger file exists."""
        return self.path.exists()

    def layers(self) -> set[str]:
        """Names of the layers present."""
        return _list_layers(self.path)

    def read(self, layer: str) -> pd.DataFrame | gpd.GeoDataFrame:
        """Read a layer (an empty frame with the layer's schema when it does not exist yet)."""
        return _read(self.path, layer, self.crs)

    def stage_done(self, iteration: int, stage: str) -> bool:
        """Whether ``stage`` of ``iteration`` finished (and was committed)."""
        st = self.read("stages")
        return bool(((st["iteration"] == iteration) & (st["stage"] == stage)).any())

    @contextlib.contextmanager
    def transaction(self) -> Iterator[LedgerTransaction]:
        """Change the ledger atomically.

        Yields:
            A :class:`LedgerTransaction` working on a private copy; on normal exit the copy
            replaces the ledger, on an exception it is discarded and the ledger is untouched.
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        lock_path = self.run_dir / ".ledger.lock"
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            tmp = self.run_dir / f".ledger.{os.getpid()}.tmp.gpkg"
            try:
                if self.path.exists():
                    shutil.copy2(self.path, tmp)
                elif tmp.exists():
                    tmp.unlink()
                txn = LedgerTransaction(tmp, self.crs)
                yield txn
                if not tmp.exists():  # nothing written into a new ledger: create it empty
                    _write_table(tmp, "stages", _empty("stages", None))
                _fsync(tmp)
                os.replace(tmp, self.path)
                _fsync_dir(self.run_dir)
            finally:
                if tmp.exists():
                    tmp.unlink()
                fcntl.flock(lock, fcntl.LOCK_UN)

    def integrity_check(self) -> bool:
        """SQLite's integrity check of the GeoPackage (True when sound)."""
        with contextlib.closing(sqlite3.connect(self.path)) as con:
            return con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        _fsync(path)


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write a small file atomically (temp file in the same directory, then ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(tmp, mode) as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
