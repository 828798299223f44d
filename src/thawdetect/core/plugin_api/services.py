"""Typed interfaces of services plugins offer each other through the registry.

A consumer never imports the provider: ``terrain = context.host.service("terrain")``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from thawdetect.core.grid import GridSpec
from thawdetect.core.models import AngleRange, Range

if TYPE_CHECKING:
    import geopandas as gpd

    from thawdetect.core.plugin_api.host import PluginHost


@dataclass
class TerrainLayers:
    """Elevation (m), slope (degrees) and aspect (degrees, 0 = north, clockwise) on one grid.

    Arrays are float32 with NaN where the DEM has no data.
    """

    elevation_m: NDArray[np.float32]
    slope_deg: NDArray[np.float32]
    aspect_deg: NDArray[np.float32]
    grid: GridSpec
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class TerrainRanges:
    """One row of a terrain relaxation schedule."""

    elevation_m: Range
    slope_deg: Range
    aspect_deg: list[AngleRange]
    kept_fraction: float | None = None


@runtime_checkable
class TerrainService(Protocol):
    """What the terrain plugin provides under the service name ``"terrain"``."""

    def layers(
        self, dem: str | Path, grid: GridSpec | None = None, *, surface_fit: str = "Horn"
    ) -> TerrainLayers:
        """Elevation, slope and aspect of ``dem``, resampled onto ``grid`` when given."""
        ...

    def mask(
        self,
        layers: TerrainLayers,
        *,
        elevation_m: Range | None = None,
        slope_deg: Range | None = None,
        aspect_deg: Sequence[AngleRange] | None = None,
    ) -> NDArray[np.bool_]:
        """Cells inside every given range (aspect: union of intervals); NaN cells are False."""
        ...

    def inventory_ranges(
        self,
        dem: str | Path,
        inventory: str | Path | gpd.GeoDataFrame,
        *,
        percentiles: tuple[float, float] = (5.0, 95.0),
        steps: int = 5,
    ) -> list[TerrainRanges]:
        """Ranges from an inventory's terrain statistics, widened step by step (a schedule)."""
        ...


def terrain_service(host: PluginHost) -> TerrainService:
    """The terrain service (``host.service("terrain")``), typed.

    Raises:
        PluginError: no plugin provides it (the terrain plugin is disabled or missing).
    """
    service: TerrainService = host.service("terrain")
    return service
