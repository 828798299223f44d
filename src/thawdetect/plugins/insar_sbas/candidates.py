"""From candidate labels to candidate polygons with evidence (whole-array operations)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from numpy.typing import NDArray

from thawdetect.plugin_api import GridSpec, TimeSeries, empty_candidates

__all__ = ["EVIDENCE_COLUMNS", "candidate_series", "candidate_table", "polygonize_labels"]

#: Evidence columns (and dtypes) of every insar_sbas candidate.
EVIDENCE_COLUMNS: dict[str, str] = {
    "pixel_count": "int64",
    "seed_pixel_count": "int64",
    "seed_area_m2": "float64",
    "grown_area_m2": "float64",
    "fragments": "int64",
    "core_rate_mm_yr": "float64",
    "peak_own_rate_mm_yr": "float64",
    "growth_floor_mm_yr": "float64",
    "amplitude_prone": "int64",
    "area_m2": "float64",
    "perimeter_m": "float64",
    "mean_rate_mm_yr": "float64",
    "mean_abs_rate_mm_yr": "float64",
    "max_abs_rate_mm_yr": "float64",
    "mean_seasonal_amplitude_pp_mm": "float64",
    "mean_coherence": "float64",
    "series_json": "object",
}


#: Douglas-Peucker tolerance of smoothed outlines, pixels (a one-pixel stair-step is 0.71 px
#: from its diagonal).
SIMPLIFY_TOLERANCE_PX = 0.75


def polygonize_labels(
    labels: NDArray[np.int32], grid: GridSpec, *, smooth: bool = False
) -> gpd.GeoSeries:
    """One (Multi)Polygon per label 1..n, in the grid's CRS, indexed by label.

    With ``smooth``, the pixel outline is simplified (Douglas-Peucker) with a tolerance of 0.75
    pixel: the one-pixel stair-steps of diagonal edges (0.71 pixel from the diagonal) become
    straight lines, and the outline stays within 0.75 pixel of the pixel outline.
    """
    from rasterio.features import shapes
    from shapely.geometry import shape

    tol = SIMPLIFY_TOLERANCE_PX * min(abs(grid.transform.a), abs(grid.transform.e))
    geoms = [
        (int(v), shape(g).simplify(tol, preserve_topology=True) if smooth else shape(g))
        for g, v in shapes(labels, mask=labels > 0, transform=grid.transform, connectivity=8)
    ]
    if not geoms:
        return gpd.GeoSeries([], crs=grid.crs)
    s = gpd.GeoSeries([g for _, g in geoms], index=[v for v, _ in geoms], crs=grid.crs)
    return s.groupby(level=0).agg(lambda x: x.union_all()) if s.index.has_duplicates else s


def _group_mean(values: NDArray[np.floating] | None, labels: NDArray[np.int32], n: int):
    """Mean of ``values`` per label 1..n (finite values only; NaN where a label has none)."""
    if values is None:
        return np.full(n, np.nan)
    v = values.ravel().astype(np.float64)
    lab = labels.ravel()
    ok = np.isfinite(v) & (lab > 0)
    s = np.bincount(lab[ok], weights=v[ok], minlength=n + 1)[1:]
    c = np.bincount(lab[ok], minlength=n + 1)[1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c > 0, s / np.maximum(c, 1), np.nan)


def candidate_table(
    labels: NDArray[np.int32],
    n: int,
    grid: GridSpec,
    crs: Any,
    *,
    rate_mm_yr: NDArray[np.floating],
    amplitude_pp_mm: NDArray[np.floating] | None = None,
    coherence: NDArray[np.floating] | None = None,
    series: list[TimeSeries | None] | None = None,
    seeds: NDArray[np.bool_] | None = None,
    fragments: NDArray[np.int64] | None = None,
    floor_mm_yr: float = float("nan"),
    prone_amplitude_pp_mm: float | None = None,
    smooth: bool = True,
    background_mm_yr: NDArray[np.floating] | None = None,
) -> gpd.GeoDataFrame:
    """Candidates (one per label) with the evidence columns, reprojected to ``crs``.

    ``score`` (the review order) is the maximum |rate| (mm/yr), plus 1000 when
    ``prone_amplitude_pp_mm`` is set and the candidate's mean seasonal amplitude reaches it
    (Wei et al.: landslides with A > 10 mm are more prone), so those are reviewed first.
    ``amplitude_prone`` says which. Seed pixels are those that passed this iteration's threshold;
    ``core_rate_mm_yr`` is their mean rate, ``mean_rate_mm_yr`` that of the whole outline.
    ``peak_own_rate_mm_yr`` is the fastest seed pixel's rate against ``background_mm_yr`` (the
    large-scale background, with either delineation; the rate itself without one), signed as
    the core: the landslide's own motion, which predicts a reviewer's confirmation far better
    than the measured rate (docs/review_web.md). Area and perimeter are measured in ``crs``
    (the run's metric working CRS).
    """
    if n == 0:
        return empty_candidates(crs, EVIDENCE_COLUMNS)
    from scipy import ndimage

    idx = np.arange(1, n + 1)
    geoms = polygonize_labels(labels, grid, smooth=smooth).reindex(idx)
    pixel_m2 = abs(grid.transform.a * grid.transform.e)
    # every figure below is per label: work on the labelled pixels only (in raster order, so
    # sums add in the same order), not on grid-sized copies (a frame is 48 Mpx, candidates a
    # few per cent of it)
    pix = np.flatnonzero(labels.ravel() > 0)
    lab = labels.ravel()[pix]

    def at(values: NDArray[Any] | None) -> NDArray[Any] | None:
        return None if values is None else values.ravel()[pix]

    rate_l = at(rate_mm_yr)
    assert rate_l is not None
    abs_rate = np.abs(np.nan_to_num(rate_l.astype(np.float64), nan=0.0))
    counts = np.bincount(lab, minlength=n + 1)[1:].astype(np.int64)
    seed_lab = lab if seeds is None else np.where(seeds.ravel()[pix], lab, 0)
    seed_counts = np.bincount(seed_lab, minlength=n + 1)[1:].astype(np.int64)
    core = _group_mean(rate_l, seed_lab, n)
    own_l = rate_l.astype(np.float64)  # a copy: the rate against the background, in place
    if background_mm_yr is not None:
        own_l -= np.asarray(at(background_mm_yr), dtype=np.float64)
    own_peak = np.asarray(
        ndimage.maximum(np.abs(np.nan_to_num(own_l, nan=0.0)), seed_lab, idx), dtype=float
    )
    del own_l
    amp_mean = _group_mean(at(amplitude_pp_mm), lab, n)
    prone = (
        np.zeros(n, dtype=np.int64)
        if prone_amplitude_pp_mm is None
        else (np.nan_to_num(amp_mean, nan=-1.0) >= prone_amplitude_pp_mm).astype(np.int64)
    )
    gdf = gpd.GeoDataFrame(
        {
            "pixel_count": counts,
            "seed_pixel_count": seed_counts,
            "seed_area_m2": seed_counts * pixel_m2 if grid.crs.is_projected else np.nan,
            "grown_area_m2": counts * pixel_m2 if grid.crs.is_projected else np.nan,
            "fragments": np.ones(n, np.int64) if fragments is None else fragments,
            "core_rate_mm_yr": core,
            "peak_own_rate_mm_yr": np.where(np.isfinite(core), np.sign(core) * own_peak, np.nan),
            "growth_floor_mm_yr": np.full(n, floor_mm_yr),
            "amplitude_prone": prone,
            "mean_rate_mm_yr": _group_mean(rate_l, lab, n),
            "mean_abs_rate_mm_yr": _group_mean(np.abs(rate_l), lab, n),
            "max_abs_rate_mm_yr": np.asarray(ndimage.maximum(abs_rate, lab, idx), dtype=float),
            "mean_seasonal_amplitude_pp_mm": amp_mean,
            "mean_coherence": _group_mean(at(coherence), lab, n),
        },
        geometry=geoms.to_numpy(),
        crs=grid.crs,
    )
    gdf = gdf.to_crs(crs) if crs is not None else gdf
    metric = gdf if gdf.crs.is_projected else gdf.to_crs(gdf.estimate_utm_crs())
    gdf["area_m2"] = metric.geometry.area.to_numpy()
    gdf["perimeter_m"] = metric.geometry.length.to_numpy()
    gdf["score"] = gdf["max_abs_rate_mm_yr"].astype(float) + 1000.0 * prone
    gdf["series_json"] = pd.Series(
        [s.to_json() if s is not None else None for s in (series or [None] * n)],
        index=gdf.index,
        dtype=object,
    )
    cols = ["score", *EVIDENCE_COLUMNS]
    return gdf[[*cols, "geometry"]].reset_index(drop=True)


def candidate_series(
    labels: NDArray[np.int32],
    n: int,
    timeseries_file: Path,
    dates: list,
    scale_mm: float,
    period_yr: float,
) -> list[TimeSeries | None]:
    """Mean displacement series (mm) and its seasonal fit for each candidate (the stack read
    once, chunk tile by chunk tile where candidates lie: :func:`.mintpy_h5.read_label_means`)."""
    from thawdetect.plugins.insar_sbas.mintpy_h5 import read_label_means
    from thawdetect.plugins.insar_sbas.timefunc import fit_seasonal

    means = read_label_means(timeseries_file, labels, n)
    present = np.bincount(labels.ravel(), minlength=n + 1)[1:] > 0
    out: list[TimeSeries | None] = []
    for lab in range(n):
        if not present[lab]:
            out.append(None)
            continue
        mean_mm = means[lab] * scale_mm
        fit = fit_seasonal(mean_mm[:, None], dates, unit="mm", period_yr=period_yr, min_epochs=5)
        params = {k: v for k, v in fit.params_at(0).items()}
        ok = all(np.isfinite(v) for v in params.values())
        out.append(
            TimeSeries(
                dates=list(dates),
                values_mm=[float(v) for v in mean_mm],
                fit=params if ok else None,
                fit_t0=dates[0],
                label="LOS displacement (mm), + towards the satellite",
            )
        )
    return out
