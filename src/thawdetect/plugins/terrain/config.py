"""Configuration of the terrain plugin: surface fit, aspect convention, derived-range settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from thawdetect.plugin_api import AngleRange, Range, StrictModel

__all__ = [
    "ASPECT_CONVENTION",
    "FLAT_ASPECT_DEG",
    "FLAT_SLOPE_DEG",
    "SURFACE_FITS",
    "MaskRanges",
    "SurfaceFit",
    "TerrainConfig",
]

SurfaceFit = Literal["Horn", "ZevenbergThorne", "Florinsky"]
SURFACE_FITS: tuple[str, ...] = ("Horn", "ZevenbergThorne", "Florinsky")

#: Aspect of flat cells (GDAL's and xdem's documented convention). xdem 0.2.3 itself returns 0, 180
#: or rounding noise there (the sign of floating-point zeros decides), so it is pinned here.
FLAT_ASPECT_DEG = 180.0

#: Slopes below this (degrees) count as flat: 1e-4° is 3.5e-5 m over a 20 m cell, below float32
#: precision of elevations above ~300 m, so such a gradient is rounding noise with a random aspect.
FLAT_SLOPE_DEG = 1e-4

ASPECT_CONVENTION = (
    "degrees clockwise from grid north, direction the slope faces (downslope): "
    "0 = N, 90 = E, 180 = S, 270 = W; flat cells (slope < 1e-4 deg) = 180"
)


class MaskRanges(StrictModel):
    """Ranges a terrain mask keeps; a missing range does not constrain that layer.

    ``aspect_deg`` is a union of intervals, each of which may wrap through north (min > max).
    """

    elevation_m: Range | None = Field(default=None, description="elevation band, metres")
    slope_deg: Range | None = Field(default=None, description="slope band, degrees")
    aspect_deg: list[AngleRange] | None = Field(
        default=None, description="union of aspect intervals, degrees from north clockwise"
    )


class TerrainConfig(StrictModel):
    """Settings of the terrain service: passed to ``TerrainToolkit(config)`` (the ``thawdetect
    terrain`` commands set ``surface_fit`` from ``--surface-fit``); there is no run-YAML section."""

    surface_fit: SurfaceFit = Field(
        default="Horn",
        description="xdem surface fit for slope/aspect (Horn = the usual GIS convention)",
    )
    block_size_px: int = Field(
        default=1024, ge=256, description="processing window (pixels, multiple of 256)"
    )
    percentiles: tuple[float, float] = Field(
        default=(5.0, 95.0), description="inventory percentiles giving the first ranges"
    )
    steps: int = Field(default=5, ge=1, le=50, description="rows of the relaxation schedule")
    near_road_m: float = Field(default=500.0, ge=0, description="near-road distance, metres")
    default_mask: MaskRanges = Field(
        default_factory=lambda: MaskRanges(slope_deg=Range(min=1.0, max=40.0)),
        description="mask used when no inventory is given (Qilian's widest slope band)",
    )

    @field_validator("block_size_px")
    @classmethod
    def _multiple_of_256(cls, v: int) -> int:
        if v % 256:
            raise ValueError(f"must be a multiple of 256 (the output tile size), got {v}")
        return v

    @field_validator("percentiles")
    @classmethod
    def _ordered_percentiles(cls, v: tuple[float, float]) -> tuple[float, float]:
        lo, hi = v
        if not (0.0 <= lo < hi <= 100.0):
            raise ValueError(f"need 0 <= low < high <= 100, got {lo} {hi}")
        return v
