"""``thawdetect inventory export``: the run's confirmed slope failures as GPKG/GeoJSON/CSV/ARTS."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("inventory")
def inventory() -> None:
    """Export a run's inventory of confirmed slope failures."""


@inventory.command("export")
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
@click.argument("out", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--roads", type=click.Path(dir_okay=False),
              help="Roads/railways (lines, any CRS; a path or a GDAL/fsspec URI) for the "
              "near-road flag; default: the run's (its config's roads, else its "
              "region's).")  # fmt: skip
@click.option("--near-road-m", type=float, default=None,
              help="Centroid within this distance (m) of a road is near the road; default: the "
              "run's near_road_m (500).")  # fmt: skip
@click.option("--arts", is_flag=True, help="Add the ARTS field standard (CentroidLat, UID, ...).")
@click.option("--arts-field", "arts_fields", multiple=True, metavar="NAME=VALUE",
              help="Value of an ARTS field, e.g. BaseMapDate=2020-07-05 (repeatable).")  # fmt: skip
@click.option("--format", "fmt", metavar="NAME",
              help="Output format: gpkg, geojson, csv or one a plugin registers (default: from "
              "the suffix of OUT).")  # fmt: skip
def export(
    run_dir: Path,
    out: Path,
    roads: str | None,
    near_road_m: float | None,
    arts: bool,
    arts_fields: tuple[str, ...],
    fmt: str | None,
) -> None:
    """Write the inventory of RUN_DIR to OUT (.gpkg, .geojson, .csv, or a plugin's format).

    Fields: id, centroid lon/lat, area_ha, perimeter_m, probability class, initiation period,
    near-road flag and distance, and every detector's evidence.

    \b
    Examples:
      thawdetect inventory export runs/qtec inventory.gpkg --roads g109.gpkg
      thawdetect inventory export runs/qtec arts.geojson --arts --arts-field BaseMapDate=2020-07-05
    """
    import math

    from thawdetect.core.errors import InputError
    from thawdetect.core.exporters import choose_exporter
    from thawdetect.core.inventory import export_inventory, run_roads
    from thawdetect.core.plugin_api.host import PluginHost
    from thawdetect.core.run.access import open_run_ledger
    from thawdetect.core.safe_paths import check_output_file, writing_output

    open_run_ledger(run_dir)  # not a run, or a damaged ledger: one line, nothing written
    run_road_file, run_near_m = run_roads(run_dir)
    if near_road_m is None:
        near_road_m = run_near_m
    if not math.isfinite(near_road_m):
        raise InputError(None, f"--near-road-m must be a number of metres, got {near_road_m}")
    if roads is None and run_road_file is not None:
        roads = run_road_file
        click.echo(f"near road: the run's roads {roads} (within {near_road_m:g} m)")
    check_output_file(out, what="inventory export", run_dir=run_dir)
    exporters = PluginHost().exporters
    exporter = choose_exporter(out, fmt, exporters)  # an unknown format: one line, before work

    values = {}
    for item in arts_fields:
        name, sep, value = item.partition("=")
        if not sep:
            raise InputError(None, f"--arts-field '{item}': use NAME=VALUE")
        values[name.strip()] = value
    if values and not arts:
        raise InputError(None, "--arts-field needs --arts")
    for line in _not_yet_in_inventory(run_dir):
        click.echo(f"warning: {line}", err=True)
    with writing_output(out, "inventory export"):
        path = export_inventory(
            run_dir, out, fmt=exporter.name, roads=roads, near_road_m=near_road_m, arts=arts,
            arts_fields=values or None, exporters=exporters,
        )  # fmt: skip
    click.echo(f"{exporter.features_in(path)} features written to {path} ({exporter.name})")


def _not_yet_in_inventory(run_dir: Path) -> list[str]:
    """Why the inventory may lack candidates: an iteration awaiting review, or reviewed but not
    applied yet (decisions join the inventory when the run resumes)."""
    from thawdetect.core.run.access import open_run_ledger

    ledger = open_run_ledger(run_dir)
    cands = ledger.read("candidates", columns=["iteration", "status"], geometry=False)
    if not len(cands):
        return []
    done = set(ledger.read("iterations", columns=["iteration"], geometry=False)["iteration"])
    k = int(cands["iteration"].max())
    if k in done:
        return []
    status = cands.loc[cands["iteration"] == k, "status"].fillna("pending")
    pending = int((status == "pending").sum())
    decided = len(status) - pending
    lines = []
    if decided:
        lines.append(
            f"{decided} decision(s) of iteration {k} are not in the inventory yet: run the same "
            "'thawdetect run' command again to resume, then export"
        )
    if pending:
        lines.append(f"{pending} candidate(s) of iteration {k} still await review")
    return lines
