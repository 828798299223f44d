"""``thawdetect accuracy``: score detections or a run against validation points or polygons."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from thawdetect.core.errors import InputError

# strings, not Paths: a GDAL/fsspec URI (/vsizip/..., s3://...) must reach OGR unchanged
_PATH = click.Path(dir_okay=False)


@click.command("accuracy")
@click.option("--detections", type=_PATH, help="Detection polygons (GPKG, SHP, GeoJSON).")
@click.option(
    "--run", "run_dir", type=click.Path(path_type=Path, file_okay=False),
    help="A run directory: score it per iteration, per detector and overall.",
)  # fmt: skip
@click.option("--validation", type=_PATH,
              help="Validation points (GPKG/SHP/GeoJSON/CSV, any CRS); with --run, default: "
              "the run's own validation file.")  # fmt: skip
@click.option("--reference", type=_PATH, help="Reference polygons: instance matching at IoU.")
@click.option("--tolerance-m", type=float,
              help="A point within this distance (m) of a detection matches it "
              "[default: the run's setting with --run, else 0].")  # fmt: skip
@click.option("--label-column",
              help="Column saying landslide / checked-not-landslide [default: 'label' when the "
              "validation file has it; with --run, the run's setting].")  # fmt: skip
@click.option("--iou-threshold", type=float, default=0.5, show_default=True,
              help="IoU a detection needs to match a reference polygon.")  # fmt: skip
@click.option("--json", "json_out", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write the figures as JSON (use - for stdout).")  # fmt: skip
def accuracy(
    detections: str | None,
    run_dir: Path | None,
    validation: str | None,
    reference: str | None,
    tolerance_m: float | None,
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
      thawdetect accuracy --run runs/qilian     # the run's own validation file and settings
      thawdetect accuracy --detections d.gpkg --reference truth.shp
    """
    from thawdetect.core import accuracy as acc

    if (detections is None) == (run_dir is None):
        raise InputError(None, "give exactly one of --detections FILE or --run RUN_DIR")
    if validation is not None and reference is not None:
        raise InputError(None, "give one of --validation FILE or --reference FILE, not both")
    if tolerance_m is not None and not math.isfinite(tolerance_m):
        raise InputError(None, f"--tolerance-m must be a number of metres, got {tolerance_m}")
    if tolerance_m is not None and tolerance_m < 0:
        raise InputError(None, f"--tolerance-m must be ≥ 0, got {tolerance_m:g}")
    if json_out is not None and str(json_out) != "-":
        from thawdetect.core.safe_paths import check_output_file

        check_output_file(json_out, what="--json file", run_dir=run_dir)
    if run_dir is not None:
        if reference is not None:
            raise InputError(run_dir, "--run is scored against validation points, not --reference")
        # the same function the run used for its own report: same run, same file, same answer
        result = acc.score_run(
            run_dir, validation, tolerance_m=tolerance_m, label_column=label_column
        )
        text = acc.format_run_table(result)
        data = result
    else:
        assert detections is not None
        if validation is None and reference is None:
            raise InputError(None, "give exactly one of --validation FILE or --reference FILE")
        if reference is not None:
            report = acc.polygon_accuracy_files(detections, reference, iou_threshold=iou_threshold)
        else:
            assert validation is not None
            report = acc.point_accuracy_files(
                detections,
                validation,
                tolerance_m=tolerance_m or 0.0,
                label_column=label_column or "auto",
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
        from thawdetect.core.safe_paths import writing_output

        with writing_output(json_out, "--json file"):
            write_atomic(json_out, payload + "\n")
        click.echo(f"figures written to {json_out}")
