"""Atomic file writes: a temporary file beside the target, then ``os.replace`` onto it.

Every writer in thawdetect that must never leave a half-written file at its destination goes
through :func:`atomic_path` (or the two small helpers built on it). The temporary name is
unique (process id and a random part), so two processes writing the same target never share a
temporary file, and it lies in the target's folder, so the final ``os.replace`` is a rename
within one file system: readers see the old file or the new one, never a part of either.

Example::

    from thawdetect.core.atomic import atomic_path, write_text_atomic

    with atomic_path(run_dir / "scores.gpkg") as tmp:
        pyogrio.write_dataframe(frame, tmp, layer="scores", driver="GPKG")
    # scores.gpkg now holds the complete layer; had the write failed, it would be unchanged

    write_text_atomic(run_dir / "summary.json", json.dumps(summary, indent=2))
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "atomic_path",
    "fsync_dir",
    "fsync_file",
    "temp_path_for",
    "write_bytes_atomic",
    "write_text_atomic",
]


def temp_path_for(path: str | Path, *, suffix: str | None = None) -> Path:
    """A fresh, uniquely named hidden temporary path in the folder of ``path``.

    The name is ``.{name}.{pid}.{random}.tmp{suffix}``; ``suffix`` defaults to the suffix of
    ``path`` so that libraries that pick a format by extension (GDAL, GeoPackage, ``np.save``)
    treat the temporary file as they would the target.

    Example::

        temp_path_for("out/inventory.gpkg")  # out/.inventory.gpkg.4242.1f0c9a2b7d3e.tmp.gpkg
    """
    path = Path(path)
    ext = path.suffix if suffix is None else suffix
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp{ext}")


@contextlib.contextmanager
def atomic_path(
    path: str | Path, *, suffix: str | None = None, fsync: bool = True
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    The parent folder of ``path`` is created. The caller writes the temporary path (a file, or
    a folder when ``path`` does not exist yet or is an empty folder). When the block ends
    normally the temporary file is flushed to disk (``fsync``) and ``os.replace``-d onto
    ``path``; when it raises, whatever was written at the temporary path (file, folder, or
    sidecar files named after it such as ``-journal`` or ``.aux.xml``) is removed and the
    exception propagates, leaving ``path`` as it was. Nothing half-written ever appears at
    ``path``.

    Args:
        path: the final path.
        suffix: the temporary file's extension (default: that of ``path``).
        fsync: flush the file (and, where the platform allows, its folder) to disk before and
            after the rename, so that a crash leaves the old file or the complete new one.

    Example::

        with atomic_path(out / "model.onnx") as tmp:
            torch.onnx.export(model, args, str(tmp))

    Raises:
        FileNotFoundError: when the block ended normally but wrote nothing at the temporary
            path (``path`` is left unchanged).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path, suffix=suffix)
    try:
        yield tmp
        if fsync and tmp.is_file():
            fsync_file(tmp)
        os.replace(tmp, path)
        if fsync:
            fsync_dir(path.parent)
    finally:
        _remove_leftovers(tmp)


def write_text_atomic(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`).

    Example::

        write_text_atomic(run_dir / "stamp.json", json.dumps(stamp))
    """
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`).

    Example::

        write_bytes_atomic(cache / "tile.png", png_bytes)
    """
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def fsync_file(path: str | Path) -> None:
    """Flush a file's data to disk (``os.fsync`` on a read-only descriptor)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | Path) -> None:
    """Flush a folder's entries (a rename into it) to disk; quietly nothing where the OS cannot
    open a folder (Windows)."""
    with contextlib.suppress(OSError):
        fsync_file(path)


def _remove_leftovers(tmp: Path) -> None:
    """Remove the temporary path (file or folder) and any sidecar named after it.

    After a successful replace only sidecars can remain (a driver's ``.aux.xml``, a database's
    ``-journal``); they belong to a name no one else can know, so they are orphans.
    """
    pattern = os.path.join(glob.escape(str(tmp.parent)), glob.escape(tmp.name) + "*")
    for leftover in glob.glob(pattern):
        with contextlib.suppress(OSError):
            if os.path.isdir(leftover) and not os.path.islink(leftover):
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                os.unlink(leftover)
