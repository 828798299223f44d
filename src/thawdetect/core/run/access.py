"""Opening an existing run: its ledger and its manifest, or one line saying why not.

The one place that decides "is this a run directory?" for the review, inventory and accuracy
commands and the Python API (:func:`thawdetect.open_run`).
"""

from __future__ import annotations

from pathlib import Path

from thawdetect.core.errors import InputError
from thawdetect.core.run.integrity import check_ledger_file
from thawdetect.core.run.ledger import Ledger
from thawdetect.core.run.manifest import read_manifest

__all__ = ["open_run_ledger", "read_manifest"]


def open_run_ledger(run_dir: str | Path, *, check: bool = True) -> Ledger:
    """The run's ledger, checked (:func:`~thawdetect.core.run.integrity.check_ledger_file`).

    Raises:
        InputError: ``run_dir`` has no ``ledger.gpkg``, or the ledger is damaged (one line).
    """
    ledger = Ledger(run_dir)
    if not ledger.exists():
        raise InputError(run_dir, "not a run directory (no ledger.gpkg)")
    if check:
        check_ledger_file(ledger.path)
    return ledger
