"""Regions: an AOI in WGS84, a working CRS, and where each detector finds its data there.

Built-in presets (Xia et al. 2022 QTEC corridor; Wei et al. Qilian; the Beiluhe site) are
registered by the core plugin; detector plugins add their data settings to them through
``thawdetect_register_regions``. A run config may also define its own region inline.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator
from pyproj import CRS
from shapely.geometry import Polygon, box

from thawdetect.core.models import StrictModel


class RegionDetectorData(StrictModel):
    """Where one detector finds its data in a region.

    Strings may contain ``{sample_dir}``: the directory of the bundled sample named by ``sample``,
    built on first use.
    """

    sample: str | None = Field(None, description="bundled sample scene this data comes from")
    config: dict[str, Any] = Field(
        default_factory=dict, description="defaults for the detector's config section"
    )
    reference: str | None = Field(
        None, description="reference inventory for the 'reference' reviewer (GPKG/SHP/GeoJSON)"
    )
    known_inventory: str | None = Field(
        None, description="inventory known before the run (initial training positives)"
    )
    validation: str | None = Field(None, description="validation points for the accuracy report")
    roads: str | None = Field(
        None,
        description="roads and railways (lines): each candidate's distance to the nearest and "
        "near-road flag (Xia et al.: centroid within 500 m) in review and the inventory export",
    )


class Region(StrictModel):
    """A named area of interest.

    Attributes:
        name: preset name (``--region``).
        title: human-readable name.
        bbox_wgs84: (west, south, east, north) in degrees, when the AOI is a box.
        aoi_wkt: AOI polygon in WGS84 as WKT (overrides ``bbox_wgs84``).
        crs: working CRS (EPSG code or string); default: the UTM zone of the AOI centre.
        synthetic: True when this region's data is a synthetic sample (said on every output).
        detectors: per-detector data settings.
    """

    name: str = Field(description="preset name used with --region")
    title: str = Field("", description="human-readable name")
    bbox_wgs84: tuple[float, float, float, float] | None = Field(
        None, description="west, south, east, north (degrees)"
    )
    aoi_wkt: str | None = Field(None, description="AOI polygon in WGS84 as WKT")
    crs: str | None = Field(None, description="working CRS; default: UTM zone of the AOI centre")
    synthetic: bool = Field(False, description="data for this region is a synthetic sample")
    detectors: dict[str, RegionDetectorData] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Region:
        if self.bbox_wgs84 is not None:
            w, s, e, n = self.bbox_wgs84
            if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
                raise ValueError(f"bbox_wgs84 {self.bbox_wgs84} is not west<east, south<north")
        if self.crs is not None:
            try:
                CRS.from_user_input(self.crs)
            except Exception as exc:
                raise ValueError(f"crs {self.crs!r} is not a valid CRS") from exc
        return self

    @property
    def aoi(self) -> Polygon | None:
        """The AOI polygon in WGS84, or None if the region has none."""
        if self.aoi_wkt:
            from shapely import wkt

            return wkt.loads(self.aoi_wkt)
        if self.bbox_wgs84:
            return box(*self.bbox_wgs84)
        return None

    def working_crs(self) -> CRS:
        """The working CRS: ``crs`` if set, else the UTM zone of the AOI centre.

        Examples:
            >>> Region(name="q", bbox_wgs84=(99.6, 37.4, 101.1, 38.4)).working_crs().to_epsg()
            32647
        """
        if self.crs:
            return CRS.from_user_input(self.crs)
        aoi = self.aoi
        if aoi is None:
            raise ValueError(f"region '{self.name}' has neither an AOI nor a CRS")
        c = aoi.centroid
        zone = int((c.x + 180) // 6) + 1
        return CRS.from_epsg((32600 if c.y >= 0 else 32700) + zone)

    def merged_with(self, other: Region) -> Region:
        """This region with ``other``'s detector data (and unset fields) added."""
        data = self.model_dump()
        for key in ("title", "bbox_wgs84", "aoi_wkt", "crs"):
            if data[key] in (None, "") and getattr(other, key) not in (None, ""):
                data[key] = getattr(other, key)
        data["synthetic"] = self.synthetic or other.synthetic
        dets = dict(self.detectors)
        dets.update(other.detectors)
        data["detectors"] = {k: v.model_dump() for k, v in dets.items()}
        return Region.model_validate(data)


#: Built-in presets. Detector data is added by the detector plugins.
BUILTIN_REGIONS = (
    Region(
        name="qtec",
        title="Qinghai-Tibet Engineering Corridor (Xia et al. 2022)",
        bbox_wgs84=(90.91, 31.74, 95.15, 35.99),
        crs="EPSG:32646",
    ),
    Region(
        name="qilian",
        title="Qilian Mountains (Wei et al., SBAS-InSAR freeze-thaw landslides)",
        bbox_wgs84=(99.6, 37.4, 101.1, 38.4),
        crs="EPSG:32647",
    ),
    Region(
        name="beiluhe",
        title="Beiluhe basin, QTEC (permafrost observatory)",
        bbox_wgs84=(92.75, 34.75, 93.05, 34.95),
        crs="EPSG:32646",
    ),
)
