"""Output files the user names: never one of a run's own files, and errors in one line.

Every command that writes a file the user names (``review export``, ``inventory export``,
``accuracy --json``, ...) calls :func:`check_output_file` before it reads anything and writes
inside :func:`writing_output`:

* a target that is (or, links followed, resolves to, or is a hard link of) a run's
  ``ledger.gpkg``, ``manifest.json``, ``run.log``, marker, lock or anything under its
  ``iterations/`` is refused: an export must not replace the run it comes from (or any other);
* a directory, a parent that is a file, or a folder that cannot be written is named in one line;
* an ``OSError`` while writing (read-only file system, disk full) becomes one line naming the file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from thawdetect.core.errors import InputError

__all__ = ["check_output_file", "writing_output"]


def check_output_file(
    out: str | os.PathLike[str], *, what: str = "output", run_dir: str | Path | None = None
) -> Path:
    """Refuse an output path that would replace a run's own files or cannot be written.

    Args:
        out: the file to write.
        what: what it is, for messages (``--json file``).
        run_dir: the run the command reads (its files are compared by inode too: hard links).

    Returns:
        ``out`` as a ``Path``.

    Raises:
        InputError: one line naming ``out`` and the problem.
    """
    from thawdetect.core.run.rundir import RUN_ENTRIES, run_files_of

    path = Path(out)
    if path.is_dir():
        raise InputError(path, f"is a directory; the {what} must be a file name")
    owner = run_files_of(path)
    if owner is not None:
        run, entry = owner
        raise InputError(
            path,
            f"would replace {entry} of the thawdetect run {run}; write the {what} outside the "
            "run's own files",
        )
    if run_dir is not None and path.exists():
        for name in RUN_ENTRIES:
            own = Path(run_dir) / name
            if "*" not in name and own.is_file() and _same_file(path, own):
                raise InputError(path, f"is the run's own {name} (a link to it); write elsewhere")
    parent = path.absolute().parent
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(path, f"cannot be written: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(path, f"cannot be written: {existing} is not writable")
    if path.exists() and not os.access(path, os.W_OK) and not os.access(parent, os.W_OK):
        raise InputError(path, "cannot be written: permission denied")
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


@contextlib.contextmanager
def writing_output(out: str | os.PathLike[str], what: str = "output") -> Iterator[None]:
    """Turn an ``OSError`` raised while writing ``out`` into one line naming it."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise InputError(out, f"cannot write the {what}: {reason}") from None
