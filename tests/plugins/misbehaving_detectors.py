"""A detector whose ``propose`` returns broken output on purpose: what the core must survive.

``misbehaving`` thresholds a GeoTIFF the test wrote (as ``toy_a`` does) and then damages its
answer as ``defect`` says: a wrong or missing CRS, invalid or empty geometries, points, a score
that is text, NaN evidence, duplicate columns, something that is not a GeoDataFrame at all...
Setting ``Misbehaving.fixed = True`` (the test's monkeypatch) is "the author fixed the plugin":
the same config then gets the correct answer, so a test can resume the run that failed.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any, ClassVar

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pydantic import Field
from shapely.affinity import translate
from shapely.geometry import LineString, Point, Polygon
from tests.plugins.toy_detectors import _threshold_polygons

from thawdetect.core.paths import InputPath
from thawdetect.core.plugin_api.context import IterationContext
from thawdetect.core.plugin_api.detector import Detector, DetectorConfig, ReviewOutcome
from thawdetect.core.plugin_api.hookspecs import hookimpl


class MisbehavingConfig(DetectorConfig):
    raster: InputPath | None = Field(None, description="single-band GeoTIFF (path or URI)")
    threshold: float = 0.5
    defect: str = Field("none", description="what to break (see _DEFECTS)")


def _bowtie(poly: Any) -> Polygon:
    """A self-intersecting polygon over ``poly``'s bounding box (invalid; make_valid repairs)."""
    x0, y0, x1, y1 = poly.bounds
    return Polygon([(x0, y0), (x1, y1), (x1, y0), (x0, y1)])


def _break(gdf: gpd.GeoDataFrame, defect: str) -> Any:
    n = len(gdf)
    if defect == "none":
        return gdf
    if defect == "wrong_crs":  # metres labelled as degrees: reprojecting gives Infinity
        return gdf.set_crs("EPSG:4326", allow_override=True)
    if defect == "wrong_crs_mercator":  # metres labelled as another metric CRS: lands far away
        return gdf.set_crs("EPSG:3857", allow_override=True)
    if defect == "other_crs":  # correct, only not the working CRS: the core reprojects
        return gdf.to_crs("EPSG:4326")
    if defect == "no_crs":
        return gdf.set_crs(None, allow_override=True)
    if defect == "far_away":  # right CRS, coordinates 3000 km off (a unit or offset bug)
        out = gdf.copy()
        out["geometry"] = [translate(g, 3_000_000, 0) for g in gdf.geometry]
        return out
    if defect == "invalid":
        out = gdf.copy()
        out.loc[out.index[0], "geometry"] = _bowtie(out.geometry.iloc[0])
        return out
    if defect == "empty_geometries":
        extra = gpd.GeoDataFrame(
            {"score": [0.9, 0.9, 0.9], "mean_value": [0.9, 0.9, 0.9]},
            geometry=[None, Polygon(), shapely.from_wkt("MULTIPOLYGON EMPTY")],
            crs=gdf.crs,
        )
        return pd.concat([gdf, extra], ignore_index=True)
    if defect == "points":
        return gdf.set_geometry(gdf.geometry.centroid)
    if defect == "some_lines":  # polygons plus a stray line and a collection holding a polygon
        extra = gpd.GeoDataFrame(
            {"score": [0.9, 0.9], "mean_value": [0.9, 0.9]},
            geometry=[
                LineString([(0, 0), (1, 1)]),
                shapely.GeometryCollection(
                    [gdf.geometry.iloc[0].buffer(-1), Point(gdf.geometry.iloc[0].centroid)]
                ),
            ],
            crs=gdf.crs,
        )
        return pd.concat([gdf.iloc[1:], extra], ignore_index=True)
    if defect == "z_coordinates":
        return gdf.set_geometry(shapely.force_3d(gdf.geometry.values, 4500.0), crs=gdf.crs)
    if defect == "not_a_frame":
        return gdf.drop(columns="geometry").to_dict("records")
    if defect == "none_returned":
        return None
    if defect == "plain_dataframe":
        return pd.DataFrame(gdf)
    if defect == "text_score":
        out = gdf.copy()
        out["score"] = ["high"] + ["0.9"] * (n - 1)
        return out
    if defect == "nan_score":
        out = gdf.copy()
        out["score"] = out["score"].astype(float)
        out.loc[out.index[0], "score"] = np.nan
        return out
    if defect == "no_score":
        return gdf.drop(columns="score")
    if defect == "nan_evidence":
        out = gdf.copy()
        out["mean_value"] = out["mean_value"].astype(float)
        out.loc[out.index[0], "mean_value"] = np.nan
        out["rate_mm_yr"] = np.inf
        out["note"] = None
        return out
    if defect == "odd_evidence":
        out = gdf.copy()
        out["tags"] = [{"a": {1, 2}, "b": b"\x00\xff"}] * n
        out["when"] = pd.Timestamp("2020-01-01")
        out["day"] = datetime.date(2020, 1, 1)
        out["where"] = Path("/tmp/x")
        out["other_shape"] = Point(0, 0)
        out[7] = 1.0  # a column whose name is not text
        return out
    if defect == "duplicate_columns":
        out = pd.concat([gdf, gdf[["mean_value"]]], axis=1)
        return gpd.GeoDataFrame(out, geometry="geometry", crs=gdf.crs)
    if defect == "duplicate_index":
        out = gdf.copy()
        out.index = [0] * n
        return out
    if defect == "engine_columns":
        out = gdf.copy()
        out["candidate_id"] = 1
        return out
    if defect == "geometry_name":
        return gdf.rename_geometry("outline")
    raise ValueError(f"unknown defect {defect!r}")


class Misbehaving(Detector):
    name = "misbehaving"
    description = "returns damaged candidates on purpose (tests)"
    config_model = MisbehavingConfig
    config: MisbehavingConfig
    #: the author's fix: True makes ``propose`` return the undamaged candidates
    fixed: ClassVar[bool] = False

    def propose(self, context: IterationContext) -> Any:
        assert self.config.raster is not None
        found = _threshold_polygons(self.config.raster, self.config.threshold)
        return found if self.fixed else _break(found, self.config.defect)

    def next_config(self, outcome: ReviewOutcome) -> MisbehavingConfig | None:
        return None


@hookimpl
def thawdetect_register_detectors(register):
    register(Misbehaving)
