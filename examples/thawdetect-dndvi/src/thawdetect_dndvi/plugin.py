"""A ΔNDVI detector plugin for thawdetect (the example third-party plugin).

Candidates are 8-connected groups of pixels where NDVI dropped by at least ``-threshold`` between
two dates; each iteration relaxes the threshold along ``threshold_schedule``.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import rasterio.features
import rasterio.warp
from pydantic import Field, field_validator
from scipy import ndimage
from shapely.geometry import shape

from thawdetect import (
    Detector,
    DetectorConfig,
    GridMismatchError,
    ImageFrame,
    InputError,
    IterationContext,
    MissingBandError,
    Region,
    RegionDetectorData,
    ReviewOutcome,
    empty_candidates,
    hookimpl,
)


class DndviConfig(DetectorConfig):
    """Config section ``detectors.dndvi``."""

    ndvi_before: Path | None = Field(None, description="NDVI raster of the earlier date")
    ndvi_after: Path | None = Field(None, description="NDVI raster of the later date")
    threshold_schedule: list[float] = Field(
        default_factory=lambda: [-0.30, -0.20, -0.15],
        description="ΔNDVI threshold per iteration (candidates: ΔNDVI <= threshold)",
    )
    schedule_index: int = Field(0, ge=0, description="current row of threshold_schedule")
    min_pixels: int = Field(4, ge=1, description="smallest candidate, in pixels")

    @field_validator("threshold_schedule")
    @classmethod
    def _negative(cls, v: list[float]) -> list[float]:
        if not v or any(t >= 0 or t < -2 for t in v):
            raise ValueError("thresholds must lie in [-2, 0): NDVI loss is negative")
        return v


def _read_band(path: Path) -> tuple[np.ndarray, rasterio.Affine, object]:
    try:
        with rasterio.open(path) as src:
            if src.count < 1:
                raise MissingBandError(path, "has no band")
            if src.crs is None:
                raise InputError(path, "raster has no CRS")
            arr = src.read(1, masked=True).astype("float32").filled(np.nan)
            return arr, src.transform, src.crs
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(path, "cannot be opened as a raster") from exc


class DndviDetector(Detector):
    """Vegetation loss between two NDVI rasters."""

    name = "dndvi"
    config_model = DndviConfig
    description = "vegetation loss (ΔNDVI) between two NDVI rasters; example third-party plugin"
    optional_dependencies = ("scipy",)
    relaxes_schedule = True  # a threshold schedule: go on after an iteration with nothing new

    config: DndviConfig

    @property
    def threshold(self) -> float:
        """The ΔNDVI threshold of this iteration."""
        return self.config.threshold_schedule[self.config.schedule_index]

    def _inputs(self) -> tuple[Path, Path]:
        if self.config.ndvi_before is None or self.config.ndvi_after is None:
            raise InputError(None, "detectors.dndvi: set ndvi_before and ndvi_after")
        return self.config.ndvi_before, self.config.ndvi_after

    def propose(self, context: IterationContext) -> gpd.GeoDataFrame:
        """Polygons of connected pixels with ΔNDVI <= threshold."""
        before_path, after_path = self._inputs()
        before, transform, crs = _read_band(before_path)
        after, t2, crs2 = _read_band(after_path)
        if after.shape != before.shape or t2 != transform or crs2 != crs:
            resampled = np.full(before.shape, np.nan, dtype="float32")
            rasterio.warp.reproject(
                after,
                resampled,
                src_transform=t2,
                src_crs=crs2,
                dst_transform=transform,
                dst_crs=crs,
                src_nodata=np.nan,
                dst_nodata=np.nan,
                resampling=rasterio.warp.Resampling.bilinear,
            )
            if np.isnan(resampled).all():
                raise GridMismatchError(after_path, f"does not overlap {before_path.name}")
            after = resampled
        dndvi = after - before
        mask = np.nan_to_num(dndvi, nan=0.0) <= self.threshold
        labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
        if n == 0:
            return empty_candidates(crs)
        idx = np.arange(1, n + 1)
        counts = ndimage.sum_labels(mask, labels, idx)
        means = ndimage.mean(dndvi, labels, idx)
        mins = ndimage.minimum(dndvi, labels, idx)
        keep = counts >= self.config.min_pixels
        labels[~keep[labels - 1] & (labels > 0)] = 0
        geoms, ids = [], []
        for geom, value in rasterio.features.shapes(
            labels.astype("int32"), mask=labels > 0, transform=transform, connectivity=8
        ):
            geoms.append(shape(geom))
            ids.append(int(value))
        gdf = gpd.GeoDataFrame({"label": ids}, geometry=geoms, crs=crs)
        gdf = gdf.dissolve("label", as_index=False)
        i = gdf["label"].to_numpy() - 1
        gdf["mean_dndvi"] = means[i]
        gdf["min_dndvi"] = mins[i]
        gdf["pixel_count"] = counts[i].astype(int)
        gdf["threshold_dndvi"] = self.threshold
        gdf["score"] = -gdf["mean_dndvi"]
        return gdf.drop(columns="label")

    def next_config(self, outcome: ReviewOutcome) -> DndviConfig | None:
        """Relax to the next threshold; done after the last."""
        nxt = self.config.schedule_index + 1
        if nxt >= len(self.config.threshold_schedule):
            return None
        return self.config.model_copy(update={"schedule_index": nxt})

    def summary(self) -> dict[str, str]:
        """The threshold of this iteration, for the iterations table."""
        return {"dndvi": f"<={self.threshold:g}"}

    def image_frames(self, context: IterationContext) -> list[ImageFrame]:
        """Both NDVI rasters as grey review frames."""
        before, after = self._inputs()
        return [
            ImageFrame("NDVI before", before, bands=(1,), value_range=(-0.1, 0.8)),
            ImageFrame("NDVI after", after, bands=(1,), value_range=(-0.1, 0.8)),
        ]


def build_demo_sample(out_dir: Path) -> None:
    """A SYNTHETIC NDVI pair with vegetation-loss patches of graded strength (deterministic)."""
    from shapely.geometry import Point

    rng = np.random.default_rng(7)
    size, res = 200, 10.0
    x0, y0 = 500_000.0, 4_150_000.0  # UTM 47N, inside the Qilian preset's latitude band
    transform = rasterio.transform.from_origin(x0, y0, res, res)
    yy, xx = np.mgrid[0:size, 0:size]
    before = 0.55 + 0.1 * np.sin(xx / 17.0) * np.cos(yy / 23.0) + rng.normal(0, 0.02, (size, size))
    after = before + rng.normal(0, 0.02, (size, size))
    patches = [
        (40, 40, -0.45),
        (150, 60, -0.40),
        (60, 150, -0.28),
        (120, 120, -0.25),
        (170, 170, -0.18),
        (30, 100, -0.17),
    ]
    truth = []
    for r, c, loss in patches:
        disk = (yy - r) ** 2 + (xx - c) ** 2 <= 6**2
        after[disk] += loss
        x, y = rasterio.transform.xy(transform, r, c)
        truth.append(Point(x, y).buffer(6 * res))
    profile = {
        "driver": "GTiff",
        "height": size,
        "width": size,
        "count": 1,
        "dtype": "float32",
        "crs": "EPSG:32647",
        "transform": transform,
        "nodata": np.nan,
    }
    for name, arr in (("ndvi_before.tif", before), ("ndvi_after.tif", after)):
        with rasterio.open(out_dir / name, "w", **profile) as dst:
            dst.write(arr.astype("float32"), 1)
            dst.update_tags(SYNTHETIC="yes: thawdetect-dndvi demo sample, not real data")
    gpd.GeoDataFrame({"synthetic": ["yes"] * len(truth)}, geometry=truth, crs="EPSG:32647").to_file(
        out_dir / "reference.gpkg", driver="GPKG"
    )
    (out_dir / "README.txt").write_text("SYNTHETIC demo data of the thawdetect-dndvi example.\n")


@hookimpl
def thawdetect_register_detectors(register):
    register(DndviDetector)


@hookimpl
def thawdetect_register_samples(register):
    register("dndvi_demo", build_demo_sample)


@hookimpl
def thawdetect_register_regions(register):
    register(
        Region(
            name="dndvi_demo",
            title="ΔNDVI example plugin demo (synthetic)",
            crs="EPSG:32647",
            synthetic=True,
            detectors={
                "dndvi": RegionDetectorData(
                    sample="dndvi_demo",
                    config={
                        "ndvi_before": "{sample_dir}/ndvi_before.tif",
                        "ndvi_after": "{sample_dir}/ndvi_after.tif",
                    },
                    reference="{sample_dir}/reference.gpkg",
                )
            },
        )
    )
