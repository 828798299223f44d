"""``thawdetect terrain stats`` and ``thawdetect terrain derive``.

Heavy modules (xdem, geopandas, matplotlib) load inside the commands. Bad input raises a
:class:`~thawdetect.core.errors.ThawdetectError`; the main CLI prints it as one line and exits 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from thawdetect.plugin_api import write_text_atomic

SURFACE_FIT_CHOICE = click.Choice(["Horn", "ZevenbergThorne", "Florinsky"])


@click.group(name="terrain")
def terrain() -> None:
    """DEM derivatives, terrain masks and inventory terrain statistics."""


@terrain.command()
@click.option("--dem", required=True, type=click.Path(path_type=Path), help="DEM GeoTIFF (m).")
@click.option(
    "--inventory",
    required=True,
    type=click.Path(path_type=Path),
    help="RTS inventory: points or polygons (GPKG, SHP, GeoJSON, CSV/XLSX lon/lat), any CRS.",
)
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="Write statistics here.")
@click.option(
    "--percentiles",
    nargs=2,
    type=float,
    default=(5.0, 95.0),
    show_default=True,
    help="Low and high percentile of the first ranges.",
)
@click.option("--steps", type=int, default=5, show_default=True, help="Rows of the schedule.")
@click.option("--surface-fit", type=SURFACE_FIT_CHOICE, default="Horn", show_default=True)
@click.option(
    "--figures",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write elevation/slope histograms and an aspect rose (PNG) into this folder.",
)
def stats(
    dem: Path,
    inventory: Path,
    json_out: Path | None,
    percentiles: tuple[float, float],
    steps: int,
    surface_fit: str,
    figures: Path | None,
) -> None:
    """Terrain of an inventory versus the whole DEM, with derived ranges.

    Prints the ranges of each relaxation step, the fraction of the inventory each keeps and the
    fraction of the landscape it leaves to search.

    \b
    Example:
      thawdetect terrain stats --dem DEM_1995.tif --inventory thaw_slides.shp \\
          --json stats.json --figures figs/
    """
    from thawdetect.plugins.terrain.config import TerrainConfig
    from thawdetect.plugins.terrain.stats import check_percentiles
    from thawdetect.plugins.terrain.toolkit import TerrainToolkit

    percentiles = check_percentiles(percentiles, "--percentiles")
    if steps < 1:
        from thawdetect.plugin_api import ConfigError

        raise ConfigError(f"--steps: must be >= 1, got {steps}")
    kit = TerrainToolkit(TerrainConfig.model_validate({"surface_fit": surface_fit}))
    st, samples, layers = kit.statistics(dem, inventory, percentiles=percentiles, steps=steps)
    click.echo(
        f"{st.inventory}: {st.n_sampled} of {st.n_features} features on valid DEM cells "
        f"({st.n_outside_or_nodata} outside or on nodata); surface fit {surface_fit}"
    )
    click.echo("step  elevation_m          slope_deg        aspect_deg          kept  landscape")
    for k, (row, land) in enumerate(zip(st.schedule, st.landscape_fraction, strict=True)):
        asp = " ∪ ".join(f"{a.min:.0f}-{a.max:.0f}" for a in row.aspect_deg)
        click.echo(
            f"{k:>4}  {row.elevation_m.min:7.1f}-{row.elevation_m.max:<7.1f}  "
            f"{row.slope_deg.min:6.2f}-{row.slope_deg.max:<6.2f}  {asp:<18}  "
            f"{row.kept_fraction:5.1%}  {land:6.1%}"
        )
    if json_out is not None:
        write_text_atomic(json_out, json.dumps(st.to_json(), indent=2) + "\n")
        click.echo(f"wrote {json_out}")
    if figures is not None:
        from thawdetect.plugins.terrain.figures import write_figures

        for p in write_figures(layers, samples, figures):
            click.echo(f"wrote {p}")


@terrain.command()
@click.option("--dem", required=True, type=click.Path(path_type=Path), help="DEM GeoTIFF (m).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--surface-fit", type=SURFACE_FIT_CHOICE, default="Horn", show_default=True)
@click.option(
    "--block-size",
    type=int,
    default=1024,
    show_default=True,
    help="Processing block edge in pixels (multiple of 256); memory grows with it, not the DEM.",
)
@click.option("--elevation-m", nargs=2, type=float, help="Mask: elevation MIN MAX (m).")
@click.option("--slope-deg", nargs=2, type=float, help="Mask: slope MIN MAX (degrees).")
@click.option(
    "--aspect-deg",
    nargs=2,
    type=float,
    multiple=True,
    help="Mask: aspect interval MIN MAX (degrees from north clockwise; MIN > MAX wraps through "
    "north); repeat for a union.",
)
@click.option(
    "--overviews/--no-overviews",
    default=False,
    help="Fixed overview levels 2, 4, 8, 16 (default: GDAL COG's own, down to one tile).",
)
def derive(
    dem: Path,
    out_dir: Path,
    surface_fit: str,
    block_size: int,
    elevation_m: tuple[float, float] | None,
    slope_deg: tuple[float, float] | None,
    aspect_deg: tuple[tuple[float, float], ...],
    overviews: bool,
) -> None:
    """Write slope_deg.tif and aspect_deg.tif (and terrain_mask.tif with mask options).

    Cloud-Optimised GeoTIFFs (tiled 256 × 256, deflate, overviews), computed block by block
    with a 1-pixel halo (2 for Florinsky). Metadata (surface fit, aspect convention) go into the
    GeoTIFF tags and terrain_metadata.json.

    \b
    Example:
      thawdetect terrain derive --dem DEM_1995.tif --out terrain/ \\
          --slope-deg 1 30 --aspect-deg 315 45
    """
    from thawdetect.plugins.terrain.derivatives import derive as run_derive
    from thawdetect.plugins.terrain.masks import coerce_ranges

    mask = None
    if elevation_m or slope_deg or aspect_deg:
        mask = coerce_ranges(
            elevation_m=elevation_m or None,
            slope_deg=slope_deg or None,
            aspect_deg=list(aspect_deg) or None,
            source="terrain derive",
        )
    res = run_derive(
        dem,
        out_dir,
        surface_fit=surface_fit,
        block_size_px=block_size,
        mask=mask,
        overviews=overviews,
    )
    for p in (res.slope_path, res.aspect_path, res.mask_path, res.metadata_path):
        if p is not None:
            click.echo(f"wrote {p}")
