"""Inventory terrain statistics, derived ranges and the relaxation schedule.

Each feature of an inventory counts once (not weighted by area): a point takes its cell, a
polygon the median elevation and slope and the circular mean aspect of the cells inside it (see
:func:`~thawdetect.plugins.terrain.sampling.feature_summaries`). Ranges are percentiles of these
per-feature values; aspect percentiles are taken on the circle, cut at the middle of the widest
empty gap between the inventory's aspects, so a north-facing inventory gives e.g. 300-60° rather
than 0-360°.

Schedule (relaxation): row ``k`` of ``steps`` uses the percentiles moved linearly from
``(low, high)`` (row 0) to ``(0, 100)`` (last row: the inventory's full range), as the Qilian
method widens its elevation, slope and aspect windows each iteration (Wei et al. 2025).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from numpy.typing import NDArray

from thawdetect.plugin_api import (
    AngleRange,
    ConfigError,
    EmptyInventoryError,
    Range,
    TerrainLayers,
    TerrainRanges,
)
from thawdetect.plugins.terrain.config import MaskRanges
from thawdetect.plugins.terrain.masks import aspect_mask, range_mask, terrain_mask
from thawdetect.plugins.terrain.sampling import circular_mean_deg, feature_summaries

__all__ = [
    "InventoryStats",
    "check_percentiles",
    "circular_range",
    "inventory_statistics",
    "kept_fraction",
    "percentile_range",
    "relaxation_schedule",
]

SUMMARY_PERCENTILES = (5.0, 25.0, 50.0, 75.0, 95.0)
SECTORS = ("N", "NE", "E", "SE", "S", "SW", "W", "NW")


def check_percentiles(percentiles: Any, source: str = "terrain.percentiles") -> tuple[float, float]:
    """Validate a ``(low, high)`` percentile pair; raise a one-line ConfigError.

    Examples:
        >>> check_percentiles((5, 95))
        (5.0, 95.0)
    """
    try:
        lo, hi = (float(p) for p in percentiles)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: need two numbers (low high), got {percentiles!r}") from None
    if not (0.0 <= lo < hi <= 100.0):
        raise ConfigError(f"{source}: need 0 <= low < high <= 100, got {lo:g} {hi:g}")
    return lo, hi


def percentile_range(values: NDArray[np.floating], low: float, high: float) -> Range:
    """``Range`` between two percentiles of the finite ``values``.

    Examples:
        >>> percentile_range(np.arange(101.0), 5, 95)
        Range(min=5.0, max=95.0)
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    lo, hi = np.percentile(v, [low, high])
    return Range(min=float(lo), max=float(hi))


def circular_range(aspect_deg: NDArray[np.floating], low: float, high: float) -> list[AngleRange]:
    """Aspect interval between two percentiles on the circle.

    The circle is cut at the middle of the widest gap between sorted aspects, the values are
    unrolled from there, and linear percentiles are taken; the result may wrap through north.

    Examples:
        >>> circular_range(np.array([340.0, 350.0, 0.0, 10.0, 20.0]), 0, 100)
        [AngleRange(min=340.0, max=20.0)]
    """
    a = np.asarray(aspect_deg, dtype=np.float64)
    a = np.sort(a[np.isfinite(a)] % 360.0)
    if a.size == 1:
        return [AngleRange(min=float(a[0]), max=float(a[0]))]
    gaps = np.diff(np.concatenate([a, [a[0] + 360.0]]))
    i = int(np.argmax(gaps))
    start = a[(i + 1) % a.size]  # first aspect after the widest gap
    unrolled = (a - start) % 360.0
    lo, hi = np.percentile(unrolled, [low, high])
    if hi - lo >= 360.0 - 1e-9:
        return [AngleRange(min=0.0, max=360.0)]
    amin, amax = (start + lo) % 360.0, (start + hi) % 360.0
    if amax == 0.0 and hi > lo:
        amax = 360.0
    return [AngleRange(min=float(amin), max=float(amax))]


def kept_fraction(samples: pd.DataFrame, ranges: TerrainRanges | MaskRanges) -> float:
    """Fraction of sampled features whose elevation, slope and aspect all lie in ``ranges``."""
    ok = samples["n_cells"].to_numpy() > 0
    if not ok.any():
        return float("nan")
    s = samples.loc[ok]
    keep = np.ones(len(s), dtype=bool)
    if ranges.elevation_m is not None:
        keep &= range_mask(s["elevation_m"].to_numpy(), ranges.elevation_m)
    if ranges.slope_deg is not None:
        keep &= range_mask(s["slope_deg"].to_numpy(), ranges.slope_deg)
    if ranges.aspect_deg is not None:
        keep &= aspect_mask(s["aspect_deg"].to_numpy(), ranges.aspect_deg)
    return float(keep.mean())


def relaxation_schedule(
    samples: pd.DataFrame, percentiles: tuple[float, float] = (5.0, 95.0), steps: int = 5
) -> list[TerrainRanges]:
    """Ranges from per-feature terrain values, widened step by step (see module docstring).

    Args:
        samples: per-feature values (:func:`feature_summaries`), columns ``elevation_m``,
            ``slope_deg``, ``aspect_deg``, ``n_cells``.
        percentiles: ``(low, high)`` of row 0.
        steps: number of rows (≥ 1); the last one spans the inventory's full range.

    Raises:
        ConfigError: bad percentiles or steps.
        EmptyInventoryError: no sampled feature.
    """
    lo, hi = check_percentiles(percentiles)
    if not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"terrain.steps: must be an integer >= 1, got {steps!r}")
    s = samples.loc[samples["n_cells"] > 0]
    if len(s) == 0:
        raise EmptyInventoryError(None, "no inventory feature has valid terrain values")
    rows = []
    for k in range(steps):
        t = k / (steps - 1) if steps > 1 else 0.0
        plo, phi = lo * (1 - t), hi + (100.0 - hi) * t
        row = TerrainRanges(
            elevation_m=percentile_range(s["elevation_m"].to_numpy(), plo, phi),
            slope_deg=percentile_range(s["slope_deg"].to_numpy(), plo, phi),
            aspect_deg=circular_range(s["aspect_deg"].to_numpy(), plo, phi),
        )
        row.kept_fraction = kept_fraction(s, row)
        rows.append(row)
    return rows


def _ranges_json(r: TerrainRanges) -> dict[str, Any]:
    return {
        "elevation_m": r.elevation_m.model_dump(),
        "slope_deg": r.slope_deg.model_dump(),
        "aspect_deg": [a.model_dump() for a in r.aspect_deg],
        "kept_fraction": r.kept_fraction,
    }


@dataclass
class InventoryStats:
    """Terrain of an inventory versus the whole DEM, and the derived schedule."""

    dem: str
    inventory: str
    n_features: int
    n_sampled: int
    n_outside_or_nodata: int
    sampled_by: dict[str, int]
    percentiles: tuple[float, float]
    inventory_summary: dict[str, dict[str, float]]
    landscape_summary: dict[str, dict[str, float]]
    schedule: list[TerrainRanges]
    landscape_fraction: list[float]
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (ranges as ``{min, max}``)."""
        d = asdict(self)
        d["schedule"] = [
            {**_ranges_json(r), "landscape_fraction": f}
            for r, f in zip(self.schedule, self.landscape_fraction, strict=True)
        ]
        d.pop("landscape_fraction")
        return d


def _summary(values: NDArray[np.floating], circular: bool = False) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {}
    if circular:
        rad = np.deg2rad(v)
        out = {
            "circular_mean": circular_mean_deg(v),
            "mean_resultant_length": float(np.hypot(np.sin(rad).mean(), np.cos(rad).mean())),
        }
        # 45° sectors centred on N, NE, ... (N = 337.5-22.5)
        counts, _ = np.histogram((v + 22.5) % 360.0, bins=8, range=(0.0, 360.0))
        for name, c in zip(SECTORS, counts, strict=True):
            out[f"fraction_{name}"] = float(c / v.size)
        return out
    pct = np.percentile(v, SUMMARY_PERCENTILES)
    out = {f"p{p:g}": float(x) for p, x in zip(SUMMARY_PERCENTILES, pct, strict=True)}
    out["mean"] = float(v.mean())
    return out


def inventory_statistics(
    layers: TerrainLayers,
    inventory: gpd.GeoDataFrame,
    *,
    percentiles: tuple[float, float] = (5.0, 95.0),
    steps: int = 5,
    dem_name: str = "",
    inventory_name: str = "",
) -> tuple[InventoryStats, pd.DataFrame]:
    """Inventory versus landscape terrain, ranges and schedule.

    Args:
        layers: terrain layers of the DEM.
        inventory: features already in ``layers.grid.crs``.
        percentiles: ``(low, high)`` for the first ranges.
        steps: rows of the relaxation schedule.
        dem_name: DEM path for reports and errors.
        inventory_name: inventory path for reports and errors.

    Returns:
        The statistics and the per-feature samples.

    Raises:
        EmptyInventoryError: no feature lies on valid DEM cells (names the inventory and DEM).
    """
    check_percentiles(percentiles)
    samples = feature_summaries(layers, inventory.geometry)
    n_ok = int((samples["n_cells"] > 0).sum())
    if n_ok == 0:
        from rasterio.transform import array_bounds

        south, west, north, east = array_bounds(*layers.grid.shape, layers.grid.transform)
        raise EmptyInventoryError(
            inventory_name or None,
            f"no feature lies on valid cells of DEM {dem_name} "
            f"(DEM bounds {west:.0f}, {south:.0f}, {east:.0f}, {north:.0f} in "
            f"{layers.grid.crs.to_string()})",
        )
    schedule = relaxation_schedule(samples, percentiles, steps)
    valid = np.isfinite(layers.slope_deg) & np.isfinite(layers.aspect_deg)
    n_valid = int(valid.sum())
    land_frac = []
    for row in schedule:
        m = terrain_mask(
            layers.elevation_m,
            layers.slope_deg,
            layers.aspect_deg,
            MaskRanges(
                elevation_m=row.elevation_m, slope_deg=row.slope_deg, aspect_deg=row.aspect_deg
            ),
        )
        land_frac.append(float(m.sum() / n_valid) if n_valid else float("nan"))
    ok = samples["n_cells"] > 0
    stats = InventoryStats(
        dem=dem_name,
        inventory=inventory_name,
        n_features=len(inventory),
        n_sampled=n_ok,
        n_outside_or_nodata=len(inventory) - n_ok,
        sampled_by={str(k): int(v) for k, v in samples["sampled_by"].value_counts().items()},
        percentiles=(float(percentiles[0]), float(percentiles[1])),
        inventory_summary={
            "elevation_m": _summary(samples.loc[ok, "elevation_m"].to_numpy()),
            "slope_deg": _summary(samples.loc[ok, "slope_deg"].to_numpy()),
            "aspect_deg": _summary(samples.loc[ok, "aspect_deg"].to_numpy(), circular=True),
        },
        landscape_summary={
            "elevation_m": _summary(layers.elevation_m[valid]),
            "slope_deg": _summary(layers.slope_deg[valid]),
            "aspect_deg": _summary(layers.aspect_deg[valid], circular=True),
        },
        schedule=schedule,
        landscape_fraction=land_frac,
        metadata={
            **layers.metadata,
            "feature_sampling": (
                "polygons: cells whose centres lie inside (median elevation/slope, circular mean "
                "aspect); smaller polygons: the cell under the representative point; points: "
                "their cell"
            ),
            "schedule": "row k: percentiles moved linearly from (low, high) to (0, 100)",
        },
    )
    return stats, samples


def inventory_path_name(inventory: str | Path | gpd.GeoDataFrame) -> str:
    """A printable name for an inventory argument."""
    return "<GeoDataFrame>" if isinstance(inventory, gpd.GeoDataFrame) else str(inventory)
