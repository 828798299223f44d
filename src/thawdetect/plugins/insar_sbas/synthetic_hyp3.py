"""A SYNTHETIC HyP3 INSAR_GAMMA stack written from displacements (tests of the MintPy path)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from thawdetect.plugin_api import GridSpec
from thawdetect.plugins.insar_sbas.synthetic import SYNTHETIC_NOTE

__all__ = ["write_hyp3_stack"]


def write_hyp3_stack(
    out_dir: str | Path,
    dates: Sequence[date],
    disp_m: NDArray[np.floating],
    grid: GridSpec,
    *,
    connections: int = 2,
    wavelength_m: float = 0.055465763,
    seed: int = 0,
) -> list[Path]:
    """Write a HyP3 INSAR_GAMMA-format stack (one folder per pair) from displacements.

    Each pair gets ``*_unw_phase.tif`` (phase = -4π/λ·(d2 - d1), MintPy's sign), ``*_corr.tif``,
    ``*_dem.tif``, ``*_lv_theta.tif``, ``*_lv_phi.tif``, ``*_water_mask.tif`` and the
    ``Key: value`` metadata ``.txt``, named like ``S1AA_20170101T000000_20170113T000000_VVP012_
    INT80_G_ueF_ABCD``. A little phase noise is added (MintPy's quick overview needs some).

    Args:
        out_dir: output folder.
        dates: acquisition dates.
        disp_m: LOS displacement in metres, ``(epochs, rows, cols)``.
        grid: projected grid of the products.
        connections: each date is paired with the next ``connections`` dates.
        wavelength_m: radar wavelength.
        seed: noise seed.
    """
    from thawdetect.plugins.insar_sbas.rasters import write_geotiff

    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    shape = grid.shape
    dem = (3800 + 0.5 * np.arange(shape[0])[:, None] + np.zeros(shape)).astype(np.float32)
    theta = np.full(
        shape, np.deg2rad(90 - 39.0), np.float32
    )  # HyP3 lv_theta: look-vector elevation
    phi = np.full(shape, np.deg2rad(-100.0), np.float32)
    tags = {"THAWDETECT_SYNTHETIC": SYNTHETIC_NOTE}
    written = []
    for i, d1 in enumerate(dates):
        for j in range(i + 1, min(i + 1 + connections, len(dates))):
            d2 = dates[j]
            name = (
                f"S1AA_{d1:%Y%m%d}T000000_{d2:%Y%m%d}T000000_VVP{(d2 - d1).days:03d}_INT80_G_ueF_"
                f"{(i * 37 + j) % 65536:04X}"
            )
            folder = out_dir / name
            folder.mkdir(parents=True, exist_ok=True)
            phase = -4 * np.pi / wavelength_m * (disp_m[j] - disp_m[i])
            phase = phase + rng.normal(0, 0.15, shape)
            write_geotiff(
                folder / f"{name}_unw_phase.tif",
                phase.astype(np.float32),
                grid,
                nodata=0.0,
                tags=tags,
            )
            corr = np.clip(0.85 + 0.05 * rng.normal(0, 1, shape), 0.3, 1).astype(np.float32)
            write_geotiff(folder / f"{name}_corr.tif", corr, grid, nodata=0.0, tags=tags)
            write_geotiff(folder / f"{name}_dem.tif", dem, grid, nodata=0.0, tags=tags)
            write_geotiff(folder / f"{name}_lv_theta.tif", theta, grid, nodata=0.0, tags=tags)
            write_geotiff(folder / f"{name}_lv_phi.tif", phi, grid, nodata=0.0, tags=tags)
            write_geotiff(
                folder / f"{name}_water_mask.tif",
                np.ones(shape, np.uint8),
                grid,
                nodata=255,
                tags=tags,
            )
            meta = {
                "Reference Granule": f"S1A_IW_SLC__1SDV_{d1:%Y%m%d}T000000_{d1:%Y%m%d}T000030_"
                "014000_016A00_ABCD",
                "Secondary Granule": f"S1A_IW_SLC__1SDV_{d2:%Y%m%d}T000000_{d2:%Y%m%d}T000030_"
                "014100_016B00_DCBA",
                "Reference Pass Time": f"{d1:%Y-%m-%d}T000000",
                "Reference Orbit Number": "14000",
                "Baseline": f"{rng.normal(0, 40):.3f}",
                "UTC time": "43200.0",
                "Heading": "-167.0",
                "Spacecraft height": "693000.0",
                "Earth radius at nadir": "6337286.0",
                "Slant range near": "799000.0",
                "Slant range center": "846000.0",
                "Slant range far": "893000.0",
                "Range looks": "20",
                "Azimuth looks": "4",
                "INSAR phase filter": "adf",
                "Phase filter parameter": "0.6",
                "Range bandpass filter": "no",
                "Azimuth bandpass filter": "no",
                "DEM source": "SYNTHETIC",
                "DEM resolution (m)": "30",
                "Unwrapping type": "mcf",
                "Speckle filter": "no",
            }
            (folder / f"{name}.txt").write_text("".join(f"{k}: {v}\n" for k, v in meta.items()))
            written.append(folder)
    return written
