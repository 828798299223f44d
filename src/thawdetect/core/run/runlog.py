"""``RUN_DIR/run.log``: every session's progress lines, stage timings and warnings, appended.

:func:`run_log` attaches a file handler to the root logger for the length of one session: it keeps
thawdetect's INFO lines and every other library's warnings (Python warnings are captured into the
log while it is attached, unless something already captures them).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

RUN_LOG = "run.log"


@contextlib.contextmanager
def run_log(
    run_dir: Path, logger: logging.Logger, header: str, pre_run: list[str]
) -> Iterator[logging.Handler]:
    """Attach ``run_dir/run.log`` (INFO: thawdetect's lines and timings; every warning).

    Args:
        run_dir: the run directory.
        logger: the logger whose name the session's first lines carry.
        header: the session's first line.
        pre_run: lines said before the log was attached; written after ``header``, then cleared.

    Yields:
        The handler (detached and closed on exit).
    """
    handler = logging.FileHandler(run_dir / RUN_LOG, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    handler.addFilter(_run_log_filter)
    root = logging.getLogger()
    own = logging.getLogger("thawdetect")
    old_level = own.level
    if own.getEffectiveLevel() > logging.INFO:
        own.setLevel(logging.INFO)
    root.addHandler(handler)
    capturing = logging.getLogger("py.warnings").handlers or _warnings_captured()
    if not capturing:
        logging.captureWarnings(True)
    try:
        for msg in [header, *pre_run]:
            handler.emit(logger.makeRecord(logger.name, logging.INFO, __file__, 0, msg, (), None))
        pre_run.clear()
        yield handler
    finally:
        if not capturing:
            logging.captureWarnings(False)
        root.removeHandler(handler)
        own.setLevel(old_level)
        handler.close()


def _warnings_captured() -> bool:
    return bool(getattr(warnings.showwarning, "__module__", "") == "logging")


def _run_log_filter(record: logging.LogRecord) -> bool:
    """``run.log`` keeps thawdetect's INFO lines and every other library's warnings."""
    return record.name.startswith("thawdetect") or record.levelno >= logging.WARNING
