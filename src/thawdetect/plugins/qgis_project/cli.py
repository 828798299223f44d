"""``thawdetect qgis RUN_DIR [--output run.qgz]``: a QGIS project of a run.

Bad input raises a :class:`~thawdetect.core.errors.ThawdetectError`; the main CLI prints it as one
line and exits 1.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="qgis")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Project file (.qgz or .qgs); default RUN_DIR/run.qgz.",
)
def qgis(run_dir: Path, output: Path | None) -> None:
    """Write a QGIS project of a run: styled ledger layers over the run's rasters.

    Layers, top to bottom: validation points by label, candidates by status, inventory by
    probability class, training positives/negatives and proposals (hidden), the InSAR maps (LOS
    rate, seasonal amplitude, displacement), the optical probability and frames, and the DEM
    hillshade. The ledger's own layers are styled too (``layer_styles``), so ``ledger.gpkg``
    also opens styled on its own.

    \b
    Example:
        thawdetect qgis runs/qilian && qgis runs/qilian/run.qgz
    """
    from thawdetect.plugin_api import write_project

    messages: list[str] = []
    out = write_project(run_dir, output, messages=messages)
    for m in messages:
        click.echo(f"note: {m}", err=True)
    click.echo(f"QGIS project: {out}")
