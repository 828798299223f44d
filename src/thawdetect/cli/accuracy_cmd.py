"""``thawdetect accuracy``: score detections or a run against validation points or polygons."""

from __future__ import annotations

import json
from pathlib import Path

import click

from thawdetect.core.errors import InputError

_PATH = click.Path(path_type=Path, dir_okay=False)


@click.command("accuracy")
@click.option("--detections", type=_PATH, help="Detection polygons (GPKG, SHP, GeoJSON).")
@click.option(
    "--run", "run_dir", type=click.Path(path_type=Path, file_okay=False),
    help="A run directory: score it per iteration, per detector and overall.",
)  # fmt: skip
@click.option("--validation", type=_PATH, help="Validation points (GPKG/SHP/GeoJSON/CSV, any CRS).")
@click.option("--reference", type=_PATH, help="Reference polygons: instance matching at IoU.")
@click.option("--tolerance-m", type=float, default=0.0, show_default=True,
              help="A point within this distance (m) of a detection matches it.")  # fmt: skip
@click.option("--label-column", help="Column saying landslide / checked-not-landslide.")
@click.option("--iou-threshold", type=float, default=0.5, show_default=True,
              help="IoU a detection needs to match a reference polygon.")  # fmt: skip
@click.option("--json", "json_out", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write the figures as JSON (use - for stdout).")  # fmt: skip
def accuracy(
    detections: Path | None,
    run_dir: Path | None,
    validation: Path | None,
    reference: Path | None,
    tolerance_m: float,
    label_column: str | None,
    iou_threshold: float,
    json_out: Path | None,
) -> None:
    """Accuracy against validation points (TPR = TP/N, FPR = FP/N, FNR = FN/N, N = TP + FN).

    Rates follow Wei et al.; every rate has a 95 % Wilson interval. FP counts validation points
    labelled not-landslide (--label-column) that fall in a detection. With --reference, detections
    are matched one-to-one to reference polygons at IoU ≥ --iou-threshold.

    \b
    Examples:
      thawdetect accuracy --detections inventory.gpkg --validation points.csv
      thawdetect accuracy --detections d.gpkg --validation v.gpkg --label-column checked \\
          --tolerance-m 30 --json accuracy.json
      thawdetect accuracy --run runs/qilian --validation points.csv
      thawdetect accuracy --detections d.gpkg --reference truth.shp
    """
    from thawdetect.core import accuracy as acc

    if (detections is None) == (run_dir is None):
        raise InputError(None, "give exactly one of --detections FILE or --run RUN_DIR")
    if (validation is None) == (reference is None):
        raise InputError(None, "give exactly one of --validation FILE or --reference FILE")
    if run_dir is not None:
        if validation is None:
            raise InputError(run_dir, "--run is scored against --validation points")
        result = acc.run_accuracy(
            run_dir, validation, tolerance_m=tolerance_m, label_column=label_column
        )
        text = acc.format_run_table(result)
        data = result
    else:
        assert detections is not None
        if reference is not None:
            report = acc.polygon_accuracy_files(detections, reference, iou_threshold=iou_threshold)
        else:
            assert validation is not None
            report = acc.point_accuracy_files(
                detections, validation, tolerance_m=tolerance_m, label_column=label_column
            )
        text = report.format_table()
        data = report.to_dict()
    payload = json.dumps(data, indent=2)
    if json_out is not None and str(json_out) == "-":
        click.echo(payload)
        return
    click.echo(text)
    if json_out is not None:
        from thawdetect.core.run.ledger import write_atomic

        write_atomic(json_out, payload + "\n")
        click.echo(f"figures written to {json_out}")
