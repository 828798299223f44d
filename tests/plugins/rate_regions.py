"""Candidates of a LOS-rate GeoTIFF, as a small InSAR-like detector proposes them: each
8-connected region at or above a |rate| with its mean rate, score and a 60-epoch series
(rate · t + a 4 mm seasonal term + 2 mm noise, the fit given). Shared by the review page's
tests (``tests/test_review_web.py``) and its latency bench (``bench/bench_review_latency.py``).
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import rasterio.features
from scipy import ndimage
from shapely.geometry import shape

from thawdetect import TimeSeries


def rate_regions(rate_file: Path, abs_rate_mm_yr: float) -> gpd.GeoDataFrame:
    """One candidate per region of ``|rate| ≥ abs_rate_mm_yr`` (NaN is no motion)."""
    with rasterio.open(rate_file) as src:
        rate = src.read(1)
        transform, crs = src.transform, src.crs
    labels, n = ndimage.label(np.abs(np.nan_to_num(rate)) >= abs_rate_mm_yr)
    mean_rate = ndimage.mean(rate, labels, np.arange(1, n + 1))
    geoms, ids = [], []
    for geom, value in rasterio.features.shapes(
        labels.astype("int32"), mask=labels > 0, transform=transform
    ):
        geoms.append(shape(geom))
        ids.append(int(value))
    gdf = gpd.GeoDataFrame({"label": ids}, geometry=geoms, crs=crs).dissolve(
        "label", as_index=False
    )
    gdf["mean_rate_mm_yr"] = mean_rate[gdf["label"].to_numpy() - 1]
    gdf["score"] = np.abs(gdf["mean_rate_mm_yr"])
    start = date(2018, 1, 3)
    dates = [start + timedelta(days=12 * i) for i in range(60)]
    t = np.arange(60) * 12 / 365.25
    rng = np.random.default_rng(1)
    series = []
    for b in gdf["mean_rate_mm_yr"]:
        values = b * t + 4.0 * np.cos(2 * np.pi * t) + rng.normal(0, 2.0, t.size)
        fit = {"a_mm": 0.0, "b_mm_yr": float(b), "c_mm": 4.0, "d_mm": 0.0}
        ts = TimeSeries(dates, list(values), fit=fit, fit_t0=start,
                        label="LOS displacement (mm), + towards the satellite")  # fmt: skip
        series.append(ts.to_json())
    gdf["series_json"] = series
    return gdf.drop(columns="label")
