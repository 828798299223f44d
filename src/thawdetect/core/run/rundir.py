"""Run-directory ownership: thawdetect writes into, and deletes, only its own runs.

A run directory is thawdetect's when it holds the marker file ``.thawdetect-run`` (written when
the run is created: format, version and the run's id) and a ``manifest.json`` carrying the same
``run_id``. A run made before the marker existed (a "legacy" run) is recognised by a thawdetect
manifest (``thawdetect_version``, ``run_config``, ``iterations``) beside a GeoPackage ledger with
a ``stages`` table; it gets its marker on the next resume. A folder merely holding some
``manifest.json`` is not a run.

* :func:`check_output_dir` (nothing written) says what ``run --output-dir`` may do with a
  directory: create it, resume the run in it, replace the run (``--overwrite``), or refuse: a
  non-empty folder that is not a run is never written into or deleted, and ``--overwrite`` never
  goes through a symbolic link.
* :func:`create_run_dir` makes the directory and its marker; with ``overwrite`` it first deletes
  only what a run writes (:data:`RUN_ENTRIES`, the detectors' work folders), never following a
  link, and keeps (and names) anything else found there.
* the run lock (:mod:`thawdetect.core.run.runlock`, re-exported here) keeps a second run, or a
  review write, out of a run that is going.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import sqlite3
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thawdetect.core.errors import InputError
from thawdetect.core.run.runlock import LOCK_FILE, RunLock, RunLockedError, writing_to_run

if TYPE_CHECKING:
    from thawdetect.core.run.manifest import Manifest

__all__ = [
    "LOCK_FILE",
    "MARKER",
    "RUN_ENTRIES",
    "RunLock",
    "RunLockedError",
    "check_output_dir",
    "create_run_dir",
    "ensure_marker",
    "is_run_dir",
    "make_dir",
    "run_files_of",
    "writing_to_run",
]

log = logging.getLogger(__name__)

MARKER = ".thawdetect-run"
RUN_FORMAT = "thawdetect-run"
FORMAT_VERSION = 1
#: What a run writes at the top of its directory (names, or name prefixes ending in ``*``).
RUN_ENTRIES = (
    MARKER,
    LOCK_FILE,
    "manifest.json",
    "ledger.gpkg",
    "ledger.gpkg-journal",
    "ledger.gpkg-wal",
    "ledger.gpkg-shm",
    ".ledger.lock",
    ".ledger.*",  # temporary new ledgers
    ".manifest.json.*",  # atomic-write temporaries
    ".accuracy.json.*",
    "run.log",
    "accuracy.json",
    "iterations",
)
#: A run's bookkeeping: what no export may write onto (the rest of ``RUN_ENTRIES`` too).
_WORK_PREFIXES = ("it",)  # a detector's default work folder: it1, it2, ...


def _matches(name: str, pattern: str) -> bool:
    return name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern


def _is_run_entry(name: str, detectors: tuple[str, ...] = ()) -> bool:
    if any(_matches(name, p) for p in RUN_ENTRIES):
        return True
    if name.startswith(_WORK_PREFIXES) and name[2:].isdigit():
        return True
    # a detector's own work/cache folders: insar_sbas_cache, insar_sbas_mintpy, ...
    return any(name == d or name.startswith(f"{d}_") for d in detectors)


def _read_json(path: Path) -> Any:
    try:
        if path.is_symlink() or not path.is_file():
            return None
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _marker(run_dir: Path) -> dict[str, Any] | None:
    data = _read_json(run_dir / MARKER)
    if isinstance(data, dict) and data.get("format") == RUN_FORMAT:
        return data
    return None


def _looks_like_thawdetect_manifest(data: Any) -> bool:
    return (
        isinstance(data, dict)
        and "thawdetect_version" in data
        and isinstance(data.get("iterations"), dict)
        and isinstance(data.get("run_config"), dict)
    )


def _ledger_is_a_run_ledger(path: Path) -> bool:
    """A GeoPackage with the ledger's ``stages`` table (read-only look; no journal rolled back)."""
    if path.is_symlink() or not path.is_file():
        return False
    try:
        with open(path, "rb") as fh:
            if fh.read(16) != b"SQLite format 3\x00":
                return False
        uri = f"file:{path.resolve()}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as con:
            row = con.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'stages'"
            ).fetchone()
            return bool(row and row[0])
    except (OSError, sqlite3.Error):
        return False


def run_kind(run_dir: str | Path) -> str:
    """What ``run_dir`` is: ``missing``, ``empty``, ``run``, ``legacy`` (a run from before the
    marker file), ``starting`` (a marker, no manifest yet: a run killed while being created),
    ``file`` or ``foreign`` (a folder of someone's files)."""
    run_dir = Path(run_dir)
    if not run_dir.exists() and not run_dir.is_symlink():
        return "missing"
    if not run_dir.is_dir():
        return "file"
    try:
        names = [p.name for p in run_dir.iterdir()]
    except OSError:
        return "foreign"
    if not names:
        return "empty"
    marker = _marker(run_dir)
    manifest = _read_json(run_dir / "manifest.json")
    if marker is not None:
        if not (run_dir / "manifest.json").exists():
            return "starting"
        # the ids match, the manifest has none yet (a legacy run being marked) or it is
        # unreadable (corrupt: the resume says so); a different id is a copied marker
        if not isinstance(manifest, dict) or manifest.get("run_id") in (None, marker.get("run_id")):
            return "run"
        return "foreign"
    if (manifest is None or _looks_like_thawdetect_manifest(manifest)) and (
        _ledger_is_a_run_ledger(run_dir / "ledger.gpkg")
    ):
        return "legacy"  # (a corrupt manifest beside a run ledger: the resume says so)
    if set(names) <= {LOCK_FILE}:  # only our lock file: what a refused start can leave
        return "empty"
    return "foreign"


def is_run_dir(path: str | Path) -> bool:
    """Whether ``path`` is a thawdetect run directory (marked, or a legacy run)."""
    return run_kind(path) in ("run", "legacy", "starting")


def check_output_dir(run_dir: Path, *, overwrite: bool) -> str:
    """What ``run`` may do with ``run_dir``; writes nothing.

    Returns:
        ``new`` (create it), ``resume`` (a run is there) or ``replace`` (``overwrite`` of a run).

    Raises:
        InputError: a file, a folder of someone's files (with or without ``overwrite``), or a
            symbolic link with ``overwrite``.
    """
    kind = run_kind(run_dir)
    if kind == "file":
        raise InputError(run_dir, "is a file; --output-dir must be a directory")
    parent = _first_existing_parent(run_dir)
    if parent is not None and not parent.is_dir():
        raise InputError(run_dir, f"cannot be created: {parent} is a file, not a directory")
    if kind == "foreign":
        raise InputError(
            run_dir,
            "is not a thawdetect run (a folder of other files); thawdetect never writes into "
            "or deletes it, with or without --overwrite: choose another --output-dir",
        )
    if kind in ("missing", "empty"):
        if kind == "missing" and parent is not None and not os.access(parent, os.W_OK | os.X_OK):
            raise InputError(run_dir, f"cannot be created: {parent} is not writable")
        if kind == "empty" and not os.access(run_dir, os.W_OK | os.X_OK):
            raise InputError(run_dir, "is not writable")
        return "new"
    if not os.access(run_dir, os.W_OK | os.X_OK):
        raise InputError(run_dir, "is not writable: the run cannot go on here")
    if overwrite:
        if run_dir.is_symlink():
            raise InputError(
                run_dir,
                f"is a symbolic link (to {os.readlink(run_dir)}); --overwrite never deletes "
                "through a link: give the run's real directory",
            )
        return "replace"
    return "starting" if kind == "starting" else "resume"


def _first_existing_parent(path: Path) -> Path | None:
    for parent in path.absolute().parents:
        if parent.exists():
            return parent
    return None


def _detector_names() -> tuple[str, ...]:
    return ("insar_sbas", "optical_dl", "terrain")


def delete_run_files(run_dir: Path, detectors: tuple[str, ...] = ()) -> list[str]:
    """Delete what a run wrote in ``run_dir`` (links unlinked, never followed).

    Returns:
        The names of the entries kept (not written by a run), sorted.
    """
    names = (*_detector_names(), *detectors)
    kept = []
    for entry in sorted(run_dir.iterdir(), key=lambda p: p.name):
        if entry.name == LOCK_FILE:
            continue  # held by this process: it stays, truncated by the new holder
        if not _is_run_entry(entry.name, names):
            kept.append(entry.name)
            continue
        if entry.is_symlink() or not entry.is_dir():
            entry.unlink()
        else:
            shutil.rmtree(entry)  # does not follow links inside (fd-based on POSIX)
    return kept


def make_dir(run_dir: Path) -> None:
    """Create ``run_dir`` (and its parents), or say in one line why it cannot be."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(run_dir, f"cannot create the run directory: {_os_reason(exc)}") from None


def create_run_dir(
    run_dir: Path, run_id: str, *, replace: bool = False, detectors: tuple[str, ...] = ()
) -> list[str]:
    """Make the existing ``run_dir`` a new run (call with the run lock held): its marker
    written; ``replace`` deletes the old run's files first. Returns the names of entries kept
    beside the run.

    Raises:
        InputError: another process filled the directory meanwhile, or it cannot be written.
    """
    kept: list[str] = []
    if not replace and run_kind(run_dir) != "empty":
        raise InputError(
            run_dir, "was filled by another process while this run was being checked; run again"
        )
    try:
        if replace:
            kept = delete_run_files(run_dir, detectors)
        write_marker(run_dir, run_id)
    except OSError as exc:
        raise InputError(run_dir, f"cannot write the run directory: {_os_reason(exc)}") from None
    return kept


def write_marker(run_dir: Path, run_id: str) -> None:
    from thawdetect import __version__
    from thawdetect.core.run.ledger import now_iso, write_atomic

    body = {
        "format": RUN_FORMAT,
        "version": FORMAT_VERSION,
        "run_id": run_id,
        "created": now_iso(),
        "thawdetect_version": __version__,
        "note": "this folder is a thawdetect run: thawdetect writes into (and, with --overwrite, "
        "deletes) only folders holding this file",
    }
    write_atomic(run_dir / MARKER, json.dumps(body, indent=2) + "\n")


def ensure_marker(run_dir: Path, manifest: Manifest) -> bool:
    """Give a legacy run (or one whose marker went missing) its marker and ``run_id``.

    Returns whether ``manifest`` gained a ``run_id`` (the caller saves it).
    """
    marker = _marker(run_dir)
    if marker is not None and marker.get("run_id") == manifest.run_id:
        return False
    run_id = manifest.run_id or uuid.uuid4().hex
    write_marker(run_dir, run_id)
    changed = manifest.run_id != run_id
    manifest.run_id = run_id
    return changed


def new_run_id() -> str:
    return uuid.uuid4().hex


def _os_reason(exc: OSError) -> str:
    return exc.strerror or errno.errorcode.get(exc.errno or 0, type(exc).__name__)


# -- the files of a run (for outputs that must not replace them) ----------------------------------


def run_files_of(path: Path) -> tuple[Path, str] | None:
    """``(run_dir, entry)`` when ``path`` is, or lies inside, one of a run's own entries.

    ``path`` is resolved (links followed) first; every directory above it is looked at.
    """
    try:
        target = path.resolve()
    except (OSError, RuntimeError):
        target = path.absolute()
    for run_dir in target.parents:
        if not (run_dir / MARKER).exists() and not (run_dir / "manifest.json").exists():
            continue
        if not is_run_dir(run_dir):
            continue
        entry = target.relative_to(run_dir).parts[0]
        if _is_run_entry(entry, _detector_names()):
            return run_dir, entry
    return None
