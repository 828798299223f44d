"""Two small but real detectors for engine tests: threshold a GeoTIFF the test wrote.

They read rasters with rasterio, label connected pixels and polygonize them, so the engine is
tested with real candidates, real files and real review; only the science is trivial.
"""

from __future__ import annotations

import os
import signal
from datetime import date, timedelta
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import rasterio.features
from pydantic import Field
from scipy import ndimage
from shapely.geometry import shape

from thawdetect.core.paths import InputPath
from thawdetect.core.plugin_api.context import IterationContext
from thawdetect.core.plugin_api.detector import (
    Detector,
    DetectorConfig,
    ImageFrame,
    ReviewOutcome,
    TimeSeries,
    empty_candidates,
)
from thawdetect.core.plugin_api.hookspecs import hookimpl


class ToyConfig(DetectorConfig):
    raster: InputPath | None = Field(None, description="single-band GeoTIFF (path or URI)")
    schedule: list[float] = Field(default_factory=lambda: [0.8, 0.5, 0.3])
    index: int = 0
    kill_at_iteration: int = Field(0, description="SIGKILL the process in propose (tests)")
    kill_flag: Path | None = Field(None, json_schema_extra={"output": True})
    fail_at_iteration: int = 0


def _threshold_polygons(path: Path, threshold: float) -> gpd.GeoDataFrame:
    with rasterio.open(path) as src:
        arr = src.read(1)
        transform, crs = src.transform, src.crs
    mask = arr >= threshold
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if n == 0:
        return empty_candidates(crs)
    means = ndimage.mean(arr, labels, np.arange(1, n + 1))
    geoms, vals = [], []
    for geom, value in rasterio.features.shapes(
        labels.astype("int32"), mask=labels > 0, transform=transform
    ):
        geoms.append(shape(geom))
        vals.append(int(value))
    gdf = gpd.GeoDataFrame({"label": vals}, geometry=geoms, crs=crs).dissolve(
        "label", as_index=False
    )
    gdf["mean_value"] = means[gdf["label"].to_numpy() - 1]
    gdf["score"] = gdf["mean_value"]
    return gdf.drop(columns="label")


class _Toy(Detector):
    config_model = ToyConfig
    config: ToyConfig

    def propose(self, context: IterationContext) -> gpd.GeoDataFrame:
        c = self.config
        if c.fail_at_iteration == context.iteration:
            raise RuntimeError("toy failure")
        if c.kill_at_iteration == context.iteration and c.kill_flag and not c.kill_flag.exists():
            c.kill_flag.write_text("killed once")
            os.kill(os.getpid(), signal.SIGKILL)
        gdf = _threshold_polygons(c.raster, c.schedule[c.index])
        (context.work_dir / "done.txt").write_text(str(len(gdf)))
        start = date(2020, 1, 1)
        dates = [start + timedelta(days=12 * i) for i in range(30)]
        t = np.arange(30) * 12 / 365.25
        gdf["series_json"] = [
            TimeSeries(
                dates,
                list(-20 * t + 5 * np.cos(2 * np.pi * t)),
                fit={"a_mm": 0.0, "b_mm_yr": -20.0, "c_mm": 5.0, "d_mm": 0.0},
                fit_t0=start,
            ).to_json()
            for _ in range(len(gdf))
        ]
        return gdf

    def next_config(self, outcome: ReviewOutcome) -> ToyConfig | None:
        if self.config.index + 1 >= len(self.config.schedule):
            return None
        return self.config.model_copy(update={"index": self.config.index + 1})

    def summary(self) -> dict[str, str]:
        return {"threshold": f">={self.config.schedule[self.config.index]:g}"}

    def image_frames(self, context: IterationContext) -> list[ImageFrame]:
        return [ImageFrame("toy", self.config.raster, bands=(1,), value_range=(0.0, 1.0))]


class ToyA(_Toy):
    name = "toy_a"
    description = "threshold raster A (tests)"


class ToyB(_Toy):
    name = "toy_b"
    description = "threshold raster B (tests)"


class ToySchedule(_Toy):
    name = "toy_schedule"
    description = "threshold raster A along a relaxation schedule (tests)"
    relaxes_schedule = True


@hookimpl
def thawdetect_register_detectors(register):
    register(ToyA)
    register(ToyB)
    register(ToySchedule)
