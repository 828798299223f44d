"""Progress bars for long steps (rich.progress), quiet when stderr is not a terminal.

Every long loop (training epochs, inference tiles, seasonal-fit chunks, evidence per candidate,
MintPy/ISCE2 steps) wraps its iterable in :func:`track`::

    for tile in track(tiles, "inference tiles", total=len(tiles)):
        ...

Bars go to stderr and only when it is a terminal (or ``THAWDETECT_PROGRESS=1``);
``THAWDETECT_PROGRESS=0`` turns them off. Log files and CI output stay clean either way.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

__all__ = ["enabled", "track"]

_T = TypeVar("_T")


def enabled() -> bool:
    """Whether progress bars are shown (stderr is a terminal, unless THAWDETECT_PROGRESS says)."""
    env = os.environ.get("THAWDETECT_PROGRESS", "").strip().lower()
    if env in ("0", "false", "no", "off"):
        return False
    if env in ("1", "true", "yes", "on"):
        return True
    return sys.stderr.isatty()


def track(iterable: Iterable[_T], description: str, *, total: int | None = None) -> Iterator[_T]:
    """Yield from ``iterable`` with a progress bar named ``description`` when :func:`enabled`."""
    if not enabled():
        yield from iterable
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        for item in iterable:
            yield item
            bar.advance(task)
