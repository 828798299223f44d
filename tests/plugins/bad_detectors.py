"""Deliberately bad but real detectors: what the engine's guard (core/run/guard.py) must catch.

``bad_fused`` thresholds a GeoTIFF the test wrote, as ``toy_a`` does, then fuses every region
above the threshold into ONE MultiPolygon (a delineation that joins separate landslides along an
unreliable network). ``bad_blanket`` proposes one rectangle over most of the raster (a detector
that flags the whole scene). Only the defect is deliberate; the files, the ledger and the
review are real. ``bad_reach`` draws one outline over two neighbouring regions, the same one
every iteration (a delineation that runs from one landslide into the next).
"""

from __future__ import annotations

import geopandas as gpd
import rasterio
import shapely
from pydantic import Field
from tests.plugins.toy_detectors import _threshold_polygons

from thawdetect.core.paths import InputPath
from thawdetect.core.plugin_api.context import IterationContext
from thawdetect.core.plugin_api.detector import (
    Detector,
    DetectorConfig,
    ReviewOutcome,
    empty_candidates,
)
from thawdetect.core.plugin_api.hookspecs import hookimpl


class BadConfig(DetectorConfig):
    raster: InputPath | None = Field(None, description="single-band GeoTIFF (path or URI)")
    threshold: float = 0.5


class BadFused(Detector):
    name = "bad_fused"
    description = "every region above the threshold fused into one MultiPolygon (tests)"
    config_model = BadConfig
    config: BadConfig

    def propose(self, context: IterationContext) -> gpd.GeoDataFrame:
        found = _threshold_polygons(self.config.raster, self.config.threshold)
        if len(found) == 0:
            return found
        fused = shapely.union_all(found.geometry.to_numpy())
        return gpd.GeoDataFrame(
            {"score": [float(found["score"].max())], "n_regions": [len(found)]},
            geometry=[fused],
            crs=found.crs,
        )

    def next_config(self, outcome: ReviewOutcome) -> BadConfig | None:
        return None


class BadBlanket(Detector):
    name = "bad_blanket"
    description = "one rectangle over most of the raster (tests)"
    config_model = BadConfig
    config: BadConfig

    def propose(self, context: IterationContext) -> gpd.GeoDataFrame:
        with rasterio.open(self.config.raster) as src:
            left, bottom, right, top = src.bounds
            crs = src.crs
        if right <= left:
            return empty_candidates(crs)
        margin = 0.05 * (right - left)
        blanket = shapely.box(left + margin, bottom + margin, right - margin, top - margin)
        return gpd.GeoDataFrame({"score": [1.0]}, geometry=[blanket], crs=crs)

    def next_config(self, outcome: ReviewOutcome) -> BadConfig | None:
        return None


class ReachConfig(BadConfig):
    iterations: int = 2


class BadReach(Detector):
    name = "bad_reach"
    description = "one outline over the 2nd and 3rd regions of the top row, every iteration"
    config_model = ReachConfig
    config: ReachConfig

    def propose(self, context: IterationContext) -> gpd.GeoDataFrame:
        found = _threshold_polygons(self.config.raster, self.config.threshold)
        if len(found) < 3:
            return empty_candidates(found.crs)
        c = found.geometry.centroid
        top = found.assign(_x=c.x, _y=c.y).sort_values(["_y", "_x"], ascending=[False, True])
        pair = top.geometry.to_numpy()[1:3]
        hull = shapely.convex_hull(shapely.union_all(pair))
        return gpd.GeoDataFrame({"score": [1.0]}, geometry=[hull], crs=found.crs)

    def next_config(self, outcome: ReviewOutcome) -> ReachConfig | None:
        if self.config.iterations <= 1:
            return None
        return self.config.model_copy(update={"iterations": self.config.iterations - 1})


@hookimpl
def thawdetect_register_detectors(register):
    register(BadFused)
    register(BadBlanket)
    register(BadReach)
