"""One integrity check of a run's ledger, made before every command reads or writes it.

:func:`check_ledger_file` refuses, in one line naming the file, a ledger that is not a GeoPackage,
fails SQLite's ``PRAGMA quick_check``, lists a table in ``gpkg_contents`` that is gone, lacks a
table the run's own records say it wrote (``stages`` always; ``inventory``, ``positives`` and
``negatives`` once initialised; ``candidates`` once merged; ``decisions`` once a reviewed
candidate was decided). ``run`` (resume), ``status``, ``review list/show/decide/undo/import/
export``, ``accuracy --run``, ``inventory export`` and the review page all call it (through
:func:`thawdetect.core.run.access.open_run_ledger`).

A check that passed is remembered for the file as it stands (inode, size, modification time), so
one command that opens the ledger several times checks it once.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path

from thawdetect.core.errors import InputError

__all__ = ["check_ledger_file"]

_GPKG_APPLICATION_ID = 0x47504B47  # "GPKG"
_SOUND: dict[str, tuple[int, int, int]] = {}
_GUARD = threading.Lock()


def _stamp(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _corrupt(path: Path, detail: str) -> InputError:
    return InputError(
        path, f"run ledger is corrupt ({detail}); restore it from a backup or use --overwrite"
    )


def check_ledger_file(path: str | Path) -> None:
    """Raise a one-line :class:`InputError` when the ledger at ``path`` is damaged.

    Call it after :class:`~thawdetect.core.run.ledger.Ledger` opened the run (which rolls back a
    killed writer's journal). A missing file is not checked (the caller says what is missing).
    """
    path = Path(path)
    if not path.is_file():
        return
    key = str(path.resolve())
    try:
        stamp = _stamp(path)
    except OSError:
        return
    with _GUARD:
        if _SOUND.get(key) == stamp:
            return
    try:
        with open(path, "rb") as fh:
            header = fh.read(16)
    except OSError as exc:
        raise InputError(path, f"cannot read the run ledger: {exc.strerror or exc}") from None
    if header != b"SQLite format 3\x00":
        raise _corrupt(path, "not an SQLite database")
    try:
        uri = f"file:{path.resolve()}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as con:
            _check(con, path)
    except sqlite3.DatabaseError as exc:
        raise _corrupt(path, str(exc)) from None
    with _GUARD:
        _SOUND[key] = stamp


def _check(con: sqlite3.Connection, path: Path) -> None:
    app = con.execute("PRAGMA application_id").fetchone()[0]
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if app != _GPKG_APPLICATION_ID or "gpkg_contents" not in tables:
        raise _corrupt(path, "not a GeoPackage")
    problems = [r[0] for r in con.execute("PRAGMA quick_check(5)")]
    if problems != ["ok"]:
        raise _corrupt(path, "SQLite integrity check failed: " + "; ".join(problems)[:200])
    listed = {r[0] for r in con.execute("SELECT table_name FROM gpkg_contents")}
    gone = sorted(listed - tables)
    if gone:
        raise _corrupt(path, f"table {', '.join(gone)} listed in gpkg_contents is missing")
    if "stages" not in tables:
        raise _corrupt(path, "no 'stages' table")
    stages = {str(r[0]) for r in con.execute("SELECT DISTINCT stage FROM stages")}
    needed = []
    if "init" in stages:
        needed += ["inventory", "positives", "negatives"]
    if "merge" in stages:
        needed.append("candidates")
    if "candidates" in tables and "review" in stages:  # (a hand-made ledger has no stages)
        decided = con.execute(
            "SELECT count(*) FROM candidates WHERE status IS NOT NULL AND status != 'pending'"
        ).fetchone()[0]
        if decided:
            needed.append("decisions")
    missing = [t for t in needed if t not in tables]
    if missing:
        raise _corrupt(path, f"table {', '.join(missing)} is missing")
