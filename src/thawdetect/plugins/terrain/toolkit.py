"""The object the terrain plugin registers as the ``"terrain"`` service."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thawdetect.plugins.terrain.config import TerrainConfig

if TYPE_CHECKING:
    import geopandas as gpd
    import numpy as np
    from numpy.typing import NDArray

    from thawdetect.plugin_api import AngleRange, GridSpec, Range, TerrainLayers, TerrainRanges

__all__ = ["TerrainToolkit"]


def _load_inventory(
    inventory: str | Path | gpd.GeoDataFrame, crs: Any
) -> tuple[gpd.GeoDataFrame, str]:
    import geopandas as gpd

    from thawdetect.plugin_api import CRSMismatchError, EmptyInventoryError, read_vector

    if isinstance(inventory, gpd.GeoDataFrame):
        if len(inventory) == 0:
            raise EmptyInventoryError(None, "inventory holds no feature")
        if inventory.crs is None:
            raise CRSMismatchError(None, "inventory GeoDataFrame has no CRS")
        return inventory.to_crs(crs), "<GeoDataFrame>"
    return read_vector(inventory, crs=crs, what="inventory"), str(inventory)


class TerrainToolkit:
    """Terrain layers, masks, inventory ranges and candidate attributes (``TerrainService``).

    Args:
        config: plugin settings (surface fit used by :meth:`attributes`, near-road distance).
    """

    def __init__(self, config: TerrainConfig | None = None) -> None:
        self.config = config or TerrainConfig()

    def layers(
        self, dem: str | Path, grid: GridSpec | None = None, *, surface_fit: str = "Horn"
    ) -> TerrainLayers:
        """Elevation (m), slope and aspect (degrees, 0 = north, clockwise) of ``dem``.

        See :func:`thawdetect.plugins.terrain.layers.compute_layers` (resampling onto ``grid``).
        """
        from thawdetect.plugins.terrain.layers import compute_layers

        return compute_layers(dem, grid, surface_fit=surface_fit)

    def mask(
        self,
        layers: TerrainLayers,
        *,
        elevation_m: Range | None = None,
        slope_deg: Range | None = None,
        aspect_deg: Sequence[AngleRange] | None = None,
    ) -> NDArray[np.bool_]:
        """Cells inside every given range (aspect: union of intervals, may wrap); NaN is False.

        Ranges may also be given as ``(min, max)`` pairs or mappings; invalid ones raise a
        one-line :class:`~thawdetect.core.errors.ConfigError` naming the field.
        """
        from thawdetect.plugins.terrain.masks import coerce_ranges, terrain_mask

        ranges = coerce_ranges(elevation_m=elevation_m, slope_deg=slope_deg, aspect_deg=aspect_deg)
        return terrain_mask(layers.elevation_m, layers.slope_deg, layers.aspect_deg, ranges)

    def inventory_ranges(
        self,
        dem: str | Path,
        inventory: str | Path | gpd.GeoDataFrame,
        *,
        percentiles: tuple[float, float] = (5.0, 95.0),
        steps: int = 5,
    ) -> list[TerrainRanges]:
        """Relaxation schedule of ranges from an inventory (row 0: the percentile ranges).

        Each row carries ``kept_fraction``: the share of the inventory's features inside it.
        See :mod:`thawdetect.plugins.terrain.stats`.
        """
        return self.statistics(dem, inventory, percentiles=percentiles, steps=steps)[0].schedule

    def statistics(
        self,
        dem: str | Path,
        inventory: str | Path | gpd.GeoDataFrame,
        *,
        percentiles: tuple[float, float] = (5.0, 95.0),
        steps: int = 5,
        surface_fit: str | None = None,
    ) -> tuple[Any, Any, TerrainLayers]:
        """``(InventoryStats, per-feature samples, layers)`` of an inventory on a DEM."""
        from thawdetect.plugins.terrain.stats import check_percentiles, inventory_statistics

        check_percentiles(percentiles)
        layers = self.layers(dem, surface_fit=surface_fit or self.config.surface_fit)
        inv, name = _load_inventory(inventory, layers.grid.crs)
        stats, samples = inventory_statistics(
            layers,
            inv,
            percentiles=percentiles,
            steps=steps,
            dem_name=str(dem),
            inventory_name=name,
        )
        return stats, samples, layers

    def attributes(
        self,
        candidates: gpd.GeoDataFrame,
        dem: str | Path,
        *,
        roads: str | Path | gpd.GeoDataFrame | None = None,
        near_road_m: float = 500.0,
    ) -> gpd.GeoDataFrame:
        """Candidates with mean elevation/slope, circular mean aspect, relief, headwall check,
        distance to the nearest road and the near-road flag (see ``attributes.py``)."""
        from thawdetect.plugins.terrain.attributes import candidate_attributes

        return candidate_attributes(
            candidates,
            dem,
            roads=roads,
            near_road_m=near_road_m,
            surface_fit=self.config.surface_fit,
        )
