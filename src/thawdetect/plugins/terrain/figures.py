"""PNG figures of inventory versus landscape terrain: histograms and an aspect rose (Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from thawdetect.plugin_api import TerrainLayers

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["write_figures"]


def _figure(figsize: tuple[float, float], dpi: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)  # no pyplot: no global state, no GUI backend
    return fig


def write_figures(layers: TerrainLayers, samples: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Write ``elevation_hist.png``, ``slope_hist.png`` and ``aspect_rose.png``.

    Histograms show the density of the inventory's per-feature values against all valid DEM cells;
    the rose shows the fraction of each in 16 sectors (0 = north, clockwise), like the published
    QTEC figures (Xia et al. 2022, Fig. 5).

    Args:
        layers: the DEM's terrain layers.
        samples: per-feature values (``feature_summaries``).
        out_dir: folder for the PNGs (created).

    Returns:
        The paths written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ok = samples["n_cells"] > 0
    valid = np.isfinite(layers.slope_deg) & np.isfinite(layers.aspect_deg)
    paths = []
    for col, label in (("elevation_m", "Elevation (m)"), ("slope_deg", "Slope (°)")):
        land = getattr(layers, col)[valid]
        inv = samples.loc[ok, col].to_numpy()
        bins = np.histogram_bin_edges(np.concatenate([land, inv]), bins=40)
        fig = _figure(figsize=(5, 3.5), dpi=100)
        ax = fig.add_subplot()
        ax.hist(land, bins=list(bins), density=True, color="0.7", label="landscape (all cells)")
        ax.hist(
            inv,
            bins=list(bins),
            density=True,
            histtype="step",
            lw=2,
            color="C3",
            label=f"inventory (n={inv.size})",
        )
        ax.set_xlabel(label)
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / f"{col.split('_')[0]}_hist.png"
        fig.savefig(path)
        paths.append(path)
    edges = np.linspace(0.0, 360.0, 17)
    centres = np.deg2rad(edges[:-1] + 11.25)

    def frac(a: np.ndarray) -> np.ndarray:
        h, _ = np.histogram((a + 11.25) % 360.0, bins=edges)
        return h / max(a.size, 1)

    fig = _figure(figsize=(4.5, 4.5), dpi=100)
    ax = fig.add_subplot(projection="polar")
    ax.set_theta_zero_location("N")  # type: ignore[attr-defined]  # a PolarAxes
    ax.set_theta_direction(-1)  # type: ignore[attr-defined]
    width = np.deg2rad(22.5)
    ax.bar(
        centres - np.deg2rad(11.25),
        frac(layers.aspect_deg[valid]),
        width=width,
        color="0.75",
        edgecolor="0.4",
        label="landscape",
    )
    ax.bar(
        centres - np.deg2rad(11.25),
        frac(samples.loc[ok, "aspect_deg"].to_numpy()),
        width=width,
        fill=False,
        edgecolor="C3",
        lw=2,
        label="inventory",
    )
    ax.set_title("Aspect (fraction per 22.5° sector)", fontsize=9)
    ax.legend(loc="lower left", bbox_to_anchor=(-0.1, -0.12), fontsize=8)
    path = out_dir / "aspect_rose.png"
    fig.savefig(path)
    paths.append(path)
    return paths
