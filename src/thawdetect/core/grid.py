"""Raster grid description shared by plugins (what another detector's grid looks like)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import rasterio
from affine import Affine
from rasterio.crs import CRS

from thawdetect.core.errors import InputError


@dataclass(frozen=True)
class GridSpec:
    """A georeferenced raster grid: CRS, affine transform and shape (rows = height)."""

    crs: CRS
    transform: Affine
    width: int
    height: int

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width)."""
        return (self.height, self.width)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in the grid's CRS."""
        from rasterio.transform import array_bounds

        # rasterio's array_bounds returns (west, south, east, north) despite its docstring order
        west, south, east, north = array_bounds(self.height, self.width, self.transform)
        return (west, south, east, north)

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size (x, y), positive, in CRS units."""
        return (abs(self.transform.a), abs(self.transform.e))

    @classmethod
    def from_raster(cls, path: str | Path) -> GridSpec:
        """Read the grid of a raster file.

        Raises:
            InputError: the file cannot be opened or has no CRS.
        """
        try:
            with rasterio.open(path) as src:
                if src.crs is None:
                    raise InputError(path, "raster has no CRS; assign one (gdal_edit.py -a_srs)")
                return cls(src.crs, src.transform, src.width, src.height)
        except rasterio.errors.RasterioIOError as exc:
            raise InputError(
                path, "cannot be opened as a raster (missing, corrupt or wrong format)"
            ) from exc
