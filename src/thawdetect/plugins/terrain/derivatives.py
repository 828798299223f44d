"""Slope and aspect through xdem, on whole arrays or block by block into tiled GeoTIFFs.

Conventions (written into every output's metadata):

* slope in degrees, 0 = flat;
* aspect in degrees clockwise from grid north, the direction the slope faces: 0 = N, 90 = E;
  flat cells (slope < 1e-4°, i.e. rounding noise) get 180° (GDAL/xdem documentation);
* cells whose 3×3 neighbourhood (5×5 for Florinsky) touches nodata or the DEM edge are NaN (xdem).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from numpy.typing import NDArray
from rasterio.windows import Window

from thawdetect.plugin_api import ConfigError, InputError, MissingDependencyError
from thawdetect.plugins.terrain._blocks import BlockIndices, iter_blocks
from thawdetect.plugins.terrain.config import (
    ASPECT_CONVENTION,
    FLAT_ASPECT_DEG,
    FLAT_SLOPE_DEG,
    SURFACE_FITS,
    MaskRanges,
)
from thawdetect.plugins.terrain.dem import open_dem, read_block
from thawdetect.plugins.terrain.masks import terrain_mask

__all__ = ["DeriveResult", "derive", "halo_px", "slope_aspect", "slope_aspect_of", "strips"]

TILE_PX = 256
MASK_NODATA = 255


def _check_surface_fit(surface_fit: str) -> str:
    if surface_fit not in SURFACE_FITS:
        raise ConfigError(
            f"terrain.surface_fit: '{surface_fit}' is not one of {', '.join(SURFACE_FITS)}"
        )
    return surface_fit


def halo_px(surface_fit: str) -> int:
    """Halo (cells each side) for ``surface_fit``: 1 for 3×3 Horn/ZevenbergThorne, 2 for Florinsky.

    Examples:
        >>> halo_px("Horn"), halo_px("Florinsky")
        (1, 2)
    """
    return 2 if _check_surface_fit(surface_fit) == "Florinsky" else 1


def slope_aspect(
    elevation_m: NDArray[np.floating], resolution_m: float, surface_fit: str = "Horn"
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Slope and aspect of a whole elevation array with xdem (one surface fit for both).

    Args:
        elevation_m: 2-D elevations in metres, NaN for nodata.
        resolution_m: square pixel size in metres.
        surface_fit: ``"Horn"`` (default, the usual GIS convention), ``"ZevenbergThorne"`` or
            ``"Florinsky"`` (xdem's own default).

    Returns:
        ``(slope_deg, aspect_deg)``, float32; aspect 0 = north, clockwise; flat cells 180°.

    Raises:
        MissingDependencyError: xdem is not installed.
        ConfigError: unknown surface fit.
    """
    _check_surface_fit(surface_fit)
    try:
        from xdem.terrain import get_terrain_attribute
    except ImportError as exc:
        raise MissingDependencyError("xdem", "terrain", "slope and aspect") from exc
    slope, aspect = get_terrain_attribute(
        np.asarray(elevation_m, dtype=np.float32),
        ["slope", "aspect"],
        resolution=float(resolution_m),
        surface_fit=surface_fit,
    )
    slope = np.asarray(slope, dtype=np.float32)
    aspect = np.asarray(aspect, dtype=np.float32)
    # On flat cells xdem returns 0, 180 or the angle of rounding noise; pin the documented 180.
    aspect[slope < FLAT_SLOPE_DEG] = FLAT_ASPECT_DEG
    # rad2deg of a value just below 2π can round to 360.0 in float32: same direction as 0.
    aspect[aspect >= 360.0] = 0.0
    return slope, aspect


@dataclass
class DeriveResult:
    """Files written by :func:`derive` and what was computed."""

    slope_path: Path
    aspect_path: Path
    mask_path: Path | None
    metadata_path: Path
    metadata: dict[str, Any] = field(default_factory=dict)


def _profile(ds: Any, dtype: str, nodata: float) -> dict[str, Any]:
    return {
        "driver": "GTiff",
        "dtype": dtype,
        "count": 1,
        "width": ds.width,
        "height": ds.height,
        "crs": ds.crs,
        "transform": ds.transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": TILE_PX,
        "blockysize": TILE_PX,
        "compress": "deflate",
        "zlevel": 1,  # level 6 costs ~60 % more time for ~1 % smaller float files
        "num_threads": "ALL_CPUS",  # GDAL compresses tiles in parallel
        "predictor": 3 if dtype == "float32" else 2,
        "BIGTIFF": "IF_SAFER",
    }


def _strip_task(
    dem: str,
    blocks: list[BlockIndices],
    surface_fit: str,
    mask: MaskRanges | None,
    part_path: str,
) -> tuple[str, int, int, int]:
    """One Dask task: slope, aspect (and mask) of a strip of blocks, into an uncompressed file.

    Runs on any worker: it opens the DEM by path and writes ``part_path`` (bands: slope, aspect,
    and the mask as float32), so no raster goes through the scheduler.

    Returns:
        (part path, first row of the strip, its height, valid cells).
    """
    row0 = min(int(b.out.row_off) for b in blocks)
    row1 = max(int(b.out.row_off + b.out.height) for b in blocks)
    n_valid = 0
    with open_dem(Path(dem)) as (src, _):
        res_m = float(src.res[0])
        profile = {
            "driver": "GTiff",
            "dtype": "float32",
            "count": 3 if mask is not None else 2,
            "width": src.width,
            "height": row1 - row0,
            "crs": src.crs,
            "transform": src.window_transform(Window(0, row0, src.width, row1 - row0)),
            "tiled": True,
            "blockxsize": TILE_PX,
            "blockysize": TILE_PX,
        }
        with rasterio.open(part_path, "w", **profile) as part:
            for blk in blocks:
                elev = read_block(src, blk.read, blk.pad)
                slope, aspect = slope_aspect(elev, res_m, surface_fit)
                rows, cols = blk.inner
                slope, aspect, elev = slope[rows, cols], aspect[rows, cols], elev[rows, cols]
                n_valid += int(np.count_nonzero(np.isfinite(elev)))
                win = Window(
                    int(blk.out.col_off),
                    int(blk.out.row_off) - row0,
                    int(blk.out.width),
                    int(blk.out.height),
                )
                part.write(slope, 1, window=win)
                part.write(aspect, 2, window=win)
                if mask is not None:
                    m = terrain_mask(elev, slope, aspect, mask).astype(np.float32)
                    m[np.isnan(slope)] = MASK_NODATA
                    part.write(m, 3, window=win)
    return part_path, row0, row1 - row0, n_valid


def strips(
    height: int, width: int, block_size_px: int, halo: int, n_strips: int | None = None
) -> list[list[BlockIndices]]:
    """Blocks grouped into horizontal strips (one Dask task each), rows of blocks kept whole.

    ``n_strips`` None: one strip per row of blocks. Otherwise at most ``n_strips`` strips of
    consecutive block rows (fewer, larger tasks).
    """
    rows: dict[int, list[BlockIndices]] = {}
    for blk in iter_blocks(height, width, block_size_px, halo):
        rows.setdefault(int(blk.out.row_off), []).append(blk)
    groups = [rows[k] for k in sorted(rows)]
    if n_strips is None or n_strips >= len(groups):
        return groups
    per = -(-len(groups) // max(1, n_strips))
    return [[b for g in groups[i : i + per] for b in g] for i in range(0, len(groups), per)]


def derive(
    dem: str | Path,
    out_dir: str | Path,
    *,
    surface_fit: str = "Horn",
    block_size_px: int = 1024,
    mask: MaskRanges | None = None,
    overviews: bool = False,
) -> DeriveResult:
    """Write slope, aspect (and optionally a terrain mask) of a DEM, block by block.

    Each block of ``block_size_px`` cells is read with a halo of 1 pixel (2 for Florinsky), passed
    to xdem, cropped, and written into tiled (256 × 256), deflate-compressed GeoTIFFs, so memory
    depends on the block size, not on the DEM size. Results are identical to xdem on the whole
    array. Files are written under temporary names, then copied into Cloud-Optimised GeoTIFFs
    (overviews; :func:`thawdetect.core.cog.to_cog`) that replace the final names atomically.

    Each row of blocks is one Dask task (:func:`thawdetect.core.compute.compute`, the scheduler
    of ``--scheduler`` / ``compute.scheduler``): the task opens the DEM by path and writes an
    uncompressed strip file next to the outputs (a cluster's workers need that folder on a
    shared file system); the strips are then copied into the compressed outputs here. Results are
    identical on every scheduler.

    Args:
        dem: DEM raster (metres, any CRS; geographic or non-square ones are warped first, see
            :func:`~thawdetect.plugins.terrain.dem.open_dem`).
        out_dir: output folder (created).
        surface_fit: xdem surface fit, ``"Horn"``, ``"ZevenbergThorne"`` or ``"Florinsky"``.
        block_size_px: processing block edge in pixels, a positive multiple of 256.
        mask: ranges for ``terrain_mask.tif`` (uint8: 1 inside, 0 outside, 255 nodata); none
            written when None.
        overviews: fixed overview levels (2, 4, 8, 16) instead of the COG driver's own (down to
            one 256 px tile). Every output is a Cloud-Optimised GeoTIFF either way.

    Returns:
        The paths written and the metadata (also saved as ``terrain_metadata.json``).

    Raises:
        InputError: DEM missing, unreadable, without CRS, or with no valid cell.
        ConfigError: bad surface fit or block size.
    """
    import shutil
    import tempfile

    import dask

    from thawdetect.plugin_api import compute

    _check_surface_fit(surface_fit)
    if block_size_px <= 0 or block_size_px % TILE_PX:
        raise ConfigError(
            f"terrain.block_size_px: must be a positive multiple of {TILE_PX}, got {block_size_px}"
        )
    dem = Path(dem)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    halo = halo_px(surface_fit)
    paths = {"slope": out_dir / "slope_deg.tif", "aspect": out_dir / "aspect_deg.tif"}
    if mask is not None:
        paths["mask"] = out_dir / "terrain_mask.tif"
    tmp = {k: p.with_name(f".{p.name}.{os.getpid()}.partial") for k, p in paths.items()}
    parts_dir = Path(tempfile.mkdtemp(prefix=".derive-", dir=out_dir))
    n_valid = 0
    try:
        with open_dem(dem) as (src, grid_meta):
            res_m = float(src.res[0])
            meta: dict[str, Any] = {
                "source_dem": str(dem),
                "surface_fit": surface_fit,
                "slope_units": "degrees (0 = flat)",
                "flat_slope_deg": FLAT_SLOPE_DEG,
                "aspect_convention": ASPECT_CONVENTION,
                "flat_aspect_deg": FLAT_ASPECT_DEG,
                "halo_px": halo,
                "block_size_px": block_size_px,
                "resolution_m": res_m,
                "crs": src.crs.to_string(),
                **grid_meta,
            }
            if mask is not None:
                meta["mask_ranges"] = mask.model_dump(mode="json")
            tags = {k: str(v) for k, v in meta.items() if k != "mask_ranges"}
            tasks = [
                dask.delayed(_strip_task, pure=False)(
                    str(dem), strip, surface_fit, mask, str(parts_dir / f"strip_{i:05d}.tif")
                )
                for i, strip in enumerate(strips(src.height, src.width, block_size_px, halo))
            ]
            done = compute(*tasks, description="terrain blocks")
            dsts = {
                "slope": rasterio.open(tmp["slope"], "w", **_profile(src, "float32", np.nan)),
                "aspect": rasterio.open(tmp["aspect"], "w", **_profile(src, "float32", np.nan)),
            }
            if mask is not None:
                dsts["mask"] = rasterio.open(
                    tmp["mask"], "w", **_profile(src, "uint8", MASK_NODATA)
                )
            try:
                for part_path, row0, height, valid in done:
                    n_valid += valid
                    with rasterio.open(part_path) as part:
                        for r in range(0, height, block_size_px):
                            h = min(block_size_px, height - r)
                            src_win = Window(0, r, part.width, h)
                            dst_win = Window(0, row0 + r, part.width, h)
                            data = part.read(window=src_win)
                            dsts["slope"].write(data[0], 1, window=dst_win)
                            dsts["aspect"].write(data[1], 1, window=dst_win)
                            if mask is not None:
                                dsts["mask"].write(data[2].astype(np.uint8), 1, window=dst_win)
                    os.remove(part_path)
                for name, dst in dsts.items():
                    dst.update_tags(**tags, layer=name)
                    if overviews:
                        from rasterio.enums import Resampling

                        rs = Resampling.nearest if name == "mask" else Resampling.average
                        dst.build_overviews([2, 4, 8, 16], rs)
            finally:
                for dst in dsts.values():
                    dst.close()
        if n_valid == 0:
            raise InputError(dem, "DEM holds no valid elevation: every cell is nodata")
        from thawdetect.plugin_api import to_cog

        for k in paths:
            # a COG (overviews, 256 px tiles) under the final name, atomically: the review page's
            # tile server and QGIS read overviews; aspect (an angle) and the mask are not averaged
            to_cog(tmp[k], paths[k], resampling="AVERAGE" if k == "slope" else "NEAREST")
    finally:
        for p in tmp.values():
            p.unlink(missing_ok=True)
        shutil.rmtree(parts_dir, ignore_errors=True)
    meta["valid_cells"] = n_valid
    meta_path = out_dir / "terrain_metadata.json"
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return DeriveResult(paths["slope"], paths["aspect"], paths.get("mask"), meta_path, meta)


def _layers_task(
    dem: str, blocks: list[BlockIndices], surface_fit: str
) -> tuple[int, NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
    """One Dask task: elevation, slope, aspect of a strip of blocks, read by path."""
    row0 = min(int(b.out.row_off) for b in blocks)
    row1 = max(int(b.out.row_off + b.out.height) for b in blocks)
    with open_dem(Path(dem)) as (src, _):
        res_m = float(src.res[0])
        out = np.full((3, row1 - row0, src.width), np.nan, np.float32)
        for blk in blocks:
            elev = read_block(src, blk.read, blk.pad)
            slope, aspect = slope_aspect(elev, res_m, surface_fit)
            rows, cols = blk.inner
            r = slice(int(blk.out.row_off) - row0, int(blk.out.row_off + blk.out.height) - row0)
            c = slice(int(blk.out.col_off), int(blk.out.col_off + blk.out.width))
            out[0, r, c] = elev[rows, cols]
            out[1, r, c] = slope[rows, cols]
            out[2, r, c] = aspect[rows, cols]
    return row0, out[0], out[1], out[2]


def slope_aspect_of(
    dem: str | Path, surface_fit: str = "Horn", block_size_px: int = 1024
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
    """Elevation, slope and aspect of a whole DEM as arrays, computed block by block in Dask tasks.

    Each row of blocks is one task that opens the DEM by path (``open_dem``: metric grid), so the
    result is identical to :func:`slope_aspect` on the whole elevation array, on any scheduler.

    Returns:
        ``(elevation_m, slope_deg, aspect_deg)`` on the DEM's metric grid, float32, NaN = no data.
    """
    import dask

    from thawdetect.plugin_api import compute

    _check_surface_fit(surface_fit)
    halo = halo_px(surface_fit)
    with open_dem(Path(dem)) as (src, _):
        height, width = src.height, src.width
    tasks = [
        dask.delayed(_layers_task, pure=False)(str(dem), strip, surface_fit)
        for strip in strips(height, width, block_size_px, halo)
    ]
    done = sorted(compute(*tasks, description="terrain blocks"), key=lambda t: t[0])
    return (
        np.concatenate([d[1] for d in done]),
        np.concatenate([d[2] for d in done]),
        np.concatenate([d[3] for d in done]),
    )
