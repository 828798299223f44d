"""QGIS plugin hooks: the ``thawdetect qgis`` command, and styles stored in each run's ledger.

Imports nothing heavy: the project writer loads when the command or a hook runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from thawdetect.plugin_api import hookimpl

if TYPE_CHECKING:
    import click
    import geopandas as gpd

    from thawdetect.plugin_api import IterationContext


@hookimpl
def thawdetect_register_commands(cli: click.Group) -> None:
    """Add ``thawdetect qgis RUN_DIR [--output run.qgz]``."""
    from thawdetect.plugins.qgis_project.cli import qgis

    cli.add_command(qgis)


def _style(context: IterationContext) -> None:
    from thawdetect.plugin_api import style_ledger

    style_ledger(context.run_dir)


@hookimpl
def thawdetect_candidates_proposed(
    detector: str, iteration: int, candidates: gpd.GeoDataFrame, context: IterationContext
) -> None:
    """Store the ledger's QGIS styles once it exists (a no-op read when they are current)."""
    _style(context)


@hookimpl
def thawdetect_iteration_finished(
    iteration: int, summary: dict[str, Any], context: IterationContext
) -> None:
    """Store the ledger's QGIS styles (a run resumed from an older version gets them too)."""
    _style(context)
