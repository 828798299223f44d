"""Projection of LOS rates onto the steepest-descent direction of the slope.

Wei et al. note that LOS rates underestimate downslope motion on slopes facing away from the line
of sight. Assuming the landslide moves along the steepest descent of the DEM surface, its
downslope rate D relates to the LOS rate by LOS = D · (s · u), where, in east-north-up
coordinates,

* u, the unit vector from the ground to the satellite (MintPy's ``enu2los``):
  u = (-sin θ · sin φ, sin θ · cos φ, cos θ), θ = incidence angle from vertical, φ = azimuth of
  that vector in degrees from north, **anti-clockwise** (MintPy ``azimuthAngle``);
* s, the unit vector of steepest descent: s = (cos β · sin α, cos β · cos α, -sin β), β = slope,
  α = aspect (degrees from north, clockwise, the direction the slope faces).

So D = LOS / (s · u). Where |s · u| is small the projection amplifies noise without bound; those
pixels are masked (``min_projection_cos``). D > 0 is motion downhill.

LOS geometry comes, per pixel, from a MintPy geometry file (``incidenceAngle``, ``azimuthAngle``),
or from HyP3's ``*_lv_theta.tif``/``*_lv_phi.tif`` (radians: elevation of the look vector from
horizontal, azimuth from east anti-clockwise; converted as MintPy's loader does), or as two
constants from the ISCE2/HyP3 metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from thawdetect.plugin_api import ConfigError, GridSpec, InputError, MissingBandError

__all__ = [
    "LosGeometry",
    "downslope_unit_vector",
    "los_geometry",
    "los_unit_vector",
    "project_downslope",
]


def los_unit_vector(
    incidence_deg: NDArray[np.floating] | float, azimuth_deg: NDArray[np.floating] | float
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """(east, north, up) of the ground-to-satellite unit vector (MintPy's convention).

    Examples:
        >>> e, n, u = los_unit_vector(30.0, 90.0)  # satellite due west, 30° off vertical
        >>> round(float(e), 3), round(float(n), 3), round(float(u), 3)
        (-0.5, 0.0, 0.866)
    """
    th = np.deg2rad(np.asarray(incidence_deg, dtype=np.float64))
    ph = np.deg2rad(np.asarray(azimuth_deg, dtype=np.float64))
    return -np.sin(th) * np.sin(ph), np.sin(th) * np.cos(ph), np.cos(th)


def downslope_unit_vector(
    slope_deg: NDArray[np.floating] | float, aspect_deg: NDArray[np.floating] | float
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """(east, north, up) of the steepest-descent unit vector.

    Examples:
        >>> e, n, u = downslope_unit_vector(30.0, 90.0)  # an east-facing 30° slope
        >>> round(float(e), 3), round(float(n), 3), round(float(u), 3)
        (0.866, 0.0, -0.5)
    """
    b = np.deg2rad(np.asarray(slope_deg, dtype=np.float64))
    a = np.deg2rad(np.asarray(aspect_deg, dtype=np.float64))
    return np.cos(b) * np.sin(a), np.cos(b) * np.cos(a), -np.sin(b)


def project_downslope(
    los_mm_yr: NDArray[np.floating],
    slope_deg: NDArray[np.floating],
    aspect_deg: NDArray[np.floating],
    incidence_deg: NDArray[np.floating] | float,
    azimuth_deg: NDArray[np.floating] | float,
    *,
    min_cos: float = 0.3,
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.bool_]]:
    """Downslope rate D = LOS / (s · u), mm/yr.

    Returns:
        ``(downslope_mm_yr, cos, unstable)``: D (NaN where unstable or no data), s · u, and the
        pixels masked because ``|s · u| < min_cos``.
    """
    se, sn, su = downslope_unit_vector(slope_deg, aspect_deg)
    ue, un, uu = los_unit_vector(incidence_deg, azimuth_deg)
    cos = se * ue + sn * un + su * uu
    with np.errstate(invalid="ignore"):
        unstable = np.isfinite(cos) & (np.abs(cos) < min_cos)
        d = np.where(unstable | ~np.isfinite(cos), np.nan, np.asarray(los_mm_yr) / cos)
    return d.astype(np.float32), cos.astype(np.float32), unstable


@dataclass
class LosGeometry:
    """Per-pixel (or constant) LOS angles on the InSAR grid, degrees (MintPy convention)."""

    incidence_deg: NDArray[np.float32] | float
    azimuth_deg: NDArray[np.float32] | float
    source: str


def los_geometry(config: Any, grid: GridSpec) -> LosGeometry:
    """The LOS geometry the config gives, on ``grid``.

    Order: ``geometry_file`` (MintPy ``incidenceAngle``/``azimuthAngle``), HyP3 ``lv_theta_file``
    + ``lv_phi_file``, then ``los_incidence_deg`` + ``los_azimuth_deg``.

    Raises:
        MissingBandError: the geometry file lacks incidence or azimuth angles (and no constants
            are given).
        ConfigError: no geometry at all.
    """
    geometry = getattr(config, "geometry_file", None)
    have_constants = config.los_incidence_deg is not None
    if geometry is not None and Path(geometry).suffix.lower() in (".h5", ".he5", ".hdf5"):
        from thawdetect.plugins.insar_sbas.mintpy_h5 import mintpy_grid, open_h5, read_attrs
        from thawdetect.plugins.insar_sbas.rasters import same_grid

        attrs = read_attrs(geometry)
        with open_h5(geometry) as f:
            missing = [k for k in ("incidenceAngle", "azimuthAngle") if k not in f]
            if not missing:
                own = mintpy_grid(geometry, attrs)
                if not same_grid(own, grid):
                    raise InputError(
                        geometry,
                        f"geometry grid {own.shape} differs from the InSAR grid {grid.shape}",
                    )
                inc = f["incidenceAngle"][()].astype(np.float32)
                az = f["azimuthAngle"][()].astype(np.float32)
                inc[inc == 0] = np.nan
                return LosGeometry(inc, az, f"{geometry} (incidenceAngle, azimuthAngle)")
        if config.lv_theta_file is None and not have_constants:
            raise MissingBandError(
                geometry,
                f"no {' or '.join(missing)} dataset, needed for downslope: true (give a "
                "geometry file with LOS angles, lv_theta_file/lv_phi_file or "
                "los_incidence_deg/los_azimuth_deg)",
            )
    if config.lv_theta_file is not None:
        from rasterio.enums import Resampling

        from thawdetect.plugins.insar_sbas.rasters import read_raster_on_grid

        theta = read_raster_on_grid(
            config.lv_theta_file, grid, what="lv_theta", resampling=Resampling.nearest
        )
        phi = read_raster_on_grid(
            config.lv_phi_file, grid, what="lv_phi", resampling=Resampling.nearest
        )
        theta[theta == 0] = np.nan
        phi[phi == 0] = np.nan
        inc = 90.0 - np.rad2deg(theta)  # MintPy's HyP3 conversion (stackDict.py)
        az = (np.rad2deg(phi) - 90.0 + 180.0) % 360.0 - 180.0
        return LosGeometry(
            inc.astype(np.float32), az.astype(np.float32), f"{config.lv_theta_file} (HyP3)"
        )
    if have_constants:
        return LosGeometry(
            float(config.los_incidence_deg), float(config.los_azimuth_deg), "config constants"
        )
    raise ConfigError(
        "detectors.insar_sbas: downslope: true needs the LOS geometry: geometry_file (MintPy "
        "geometryGeo.h5 with incidenceAngle/azimuthAngle), lv_theta_file + lv_phi_file (HyP3), "
        "or los_incidence_deg + los_azimuth_deg"
    )
