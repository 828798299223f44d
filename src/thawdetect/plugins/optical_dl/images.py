"""Pre-processing of optical scenes: discovery by date, input checks, mosaic VRT, 16→8-bit stretch.

PlanetScope 4-band (B, G, R, NIR) and Sentinel-2 (B2, B3, B4, ...) scenes both give natural-colour
RGB as bands (3, 2, 1). Xia et al. (2022, §2.2) turned 16-bit PlanetScope into 8-bit RGB with a
linear stretch before mosaicking; the stretch used is recorded (``stretch.json`` and raster tags).
Everything reads in windows or at reduced resolution, so memory does not grow with the mosaic.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from thawdetect.plugin_api import CRSMismatchError, InputError, MissingBandError

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from thawdetect.plugins.optical_dl.config import OpticalDLConfig

__all__ = [
    "Stretch",
    "apply_stretch",
    "build_mosaic",
    "check_scene",
    "compute_stretch",
    "find_images",
    "gdal_cache_bounded",
    "read_rgb",
]

#: GDAL's block cache while inferring and polygonizing (MB). GDAL's default is 5 % of the
#: machine's memory: reading the mosaic and writing the probability map filled it, so the peak
#: grew with the mosaic up to that share (612 MB for reading an 8192² mosaic on a 24 GB machine,
#: 6 GB on a 128 GB one). One row of tiles needs a few tens of MB. A ``GDAL_CACHEMAX`` set in the
#: environment is kept.
GDAL_CACHE_MB = 256


def gdal_cache_bounded() -> Any:
    """A context with GDAL's block cache at :data:`GDAL_CACHE_MB` (unless ``GDAL_CACHEMAX`` is
    set in the environment)."""
    if "GDAL_CACHEMAX" in os.environ:
        return contextlib.nullcontext()
    # in bytes: rasterio passes the number to GDALSetCacheMax64 as it is (256 would be 256
    # bytes, no cache at all: the COG copy then took 3x as long)
    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB * 2**20)


_DATE_RE = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)")


def find_images(patterns: list[str]) -> dict[str, list[Path]]:
    """Expand file names / glob patterns and group the files by acquisition date.

    Args:
        patterns: paths or glob patterns.

    Returns:
        ``{"YYYY-MM-DD": [paths]}`` sorted by date; files without a date go under ``"undated"``.

    Raises:
        InputError: a pattern matches nothing.

    Examples:
        >>> find_images([])
        {}
    """
    groups: dict[str, list[Path]] = {}
    for pattern in patterns:
        hits = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        hits = [h for h in hits if Path(h).exists()]
        if not hits:
            raise InputError(pattern, "no image file matches")
        for hit in hits:
            m = _DATE_RE.search(Path(hit).name)
            key = f"{m.group(1)}-{m.group(2)}-{m.group(3)}" if m else "undated"
            groups.setdefault(key, []).append(Path(hit))
    return dict(sorted(groups.items()))


def check_scene(path: Path, config: OpticalDLConfig) -> None:
    """Fail with one line when a scene cannot be used (band count, bit depth, CRS).

    Raises:
        InputError: unreadable, no CRS, 8-bit where 16-bit is expected (or the reverse).
        MissingBandError: wrong band count.
    """
    try:
        src = rasterio.open(path)
    except RasterioIOError as exc:
        raise InputError(
            path, "cannot be opened as a raster (missing, corrupt or wrong format)"
        ) from exc
    with src:
        if config.band_count is not None and src.count != config.band_count:
            raise MissingBandError(
                path,
                f"expected {config.band_count} bands (band_count), found {src.count}; "
                "set band_count/rgb_bands for this sensor",
            )
        if max(config.rgb_bands) > src.count:
            raise MissingBandError(path, f"rgb_bands {config.rgb_bands} but only {src.count} bands")
        if src.crs is None:
            raise CRSMismatchError(path, "raster has no CRS; assign one (gdal_edit.py -a_srs)")
        dtype = src.dtypes[config.rgb_bands[0] - 1]
        if config.input_bit_depth == 16:
            if dtype == "uint8":
                raise InputError(
                    path, "is 8-bit (uint8) but 16-bit input is expected; set input_bit_depth: 8"
                )
            if dtype not in ("uint16", "int16"):
                raise InputError(path, f"data type {dtype} is not 16-bit integer reflectance")
            scale = max(1, max(src.width, src.height) // 512)
            sample = src.read(
                list(config.rgb_bands),
                out_shape=(3, max(1, src.height // scale), max(1, src.width // scale)),
                masked=True,
            )
            if sample.count() and int(sample.max()) <= 255:
                raise InputError(
                    path,
                    "16-bit file holds only values 0-255 (8-bit data stored as 16-bit?); "
                    "set input_bit_depth: 8",
                )
        elif dtype != "uint8":
            raise InputError(path, f"is {dtype} but 8-bit input is expected (input_bit_depth: 8)")


def _vrt_source(
    path: Path,
    band: int,
    nodata: float,
    src_shape: tuple[int, int],
    dst: tuple[float, float, float, float],
) -> str:
    xoff, yoff, xsize, ysize = dst
    return (
        f'<ComplexSource><SourceFilename relativeToVRT="0">{escape(str(path))}</SourceFilename>'
        f"<SourceBand>{band}</SourceBand>"
        f'<SrcRect xOff="0" yOff="0" xSize="{src_shape[1]}" ySize="{src_shape[0]}"/>'
        f'<DstRect xOff="{xoff}" yOff="{yoff}" xSize="{xsize}" ySize="{ysize}"/>'
        f"<NODATA>{nodata:g}</NODATA></ComplexSource>"
    )


def build_mosaic(
    paths: list[Path], out_dir: Path, name: str, mixed_crs: str = "error", crs: CRS | None = None
) -> Path:
    """Mosaic scenes of one date into a virtual raster (VRT), without copying pixels.

    Scenes in another CRS than the first (or ``crs``) are reprojected through a warped VRT when
    ``mixed_crs == "reproject"``. Later scenes are drawn over earlier ones; nodata stays nodata.

    Args:
        paths: scene files (same band layout).
        out_dir: where the VRT files are written.
        name: base name of the mosaic VRT.
        mixed_crs: ``"error"`` or ``"reproject"``.
        crs: target CRS (default: the first scene's).

    Returns:
        The mosaic path (the scene itself when there is just one scene in the target CRS).

    Raises:
        CRSMismatchError: scenes in different CRSs and ``mixed_crs == "error"``.
    """
    from rasterio.shutil import copy as rio_copy
    from rasterio.vrt import WarpedVRT

    out_dir.mkdir(parents=True, exist_ok=True)
    with rasterio.open(paths[0]) as first:
        target = crs or first.crs
    sources: list[Path] = []
    for i, path in enumerate(paths):
        with rasterio.open(path) as src:
            if src.crs == target:
                sources.append(path)
                continue
            if mixed_crs != "reproject":
                raise CRSMismatchError(
                    path,
                    f"CRS {src.crs.to_string()} differs from the mosaic's {target.to_string()} "
                    f"({paths[0].name}); reproject it or set mixed_crs: reproject",
                )
            warped = out_dir / f"{name}_warp{i}.vrt"
            nodata = src.nodata if src.nodata is not None else 0
            with WarpedVRT(src, crs=target, nodata=nodata) as vrt:
                rio_copy(vrt, warped, driver="VRT")
            sources.append(warped)
    if len(sources) == 1:
        return sources[0]
    infos = []
    for path in sources:
        with rasterio.open(path) as src:
            infos.append((path, src.bounds, src.res, src.count, src.dtypes[0], src.nodata))
    res = min(min(i[2]) for i in infos)
    left = min(i[1].left for i in infos)
    top = max(i[1].top for i in infos)
    right = max(i[1].right for i in infos)
    bottom = min(i[1].bottom for i in infos)
    width = round((right - left) / res)
    height = round((top - bottom) / res)
    count = infos[0][3]
    gdal_type = {"uint16": "UInt16", "int16": "Int16", "uint8": "Byte"}.get(infos[0][4], "Float32")
    nodata = infos[0][5] if infos[0][5] is not None else 0
    bands = []
    for b in range(1, count + 1):
        srcs = []
        for path, bnd, _r, _c, _d, nd in infos:
            with rasterio.open(path) as s:
                shape = (s.height, s.width)
            dst = (
                (bnd.left - left) / res,
                (top - bnd.top) / res,
                (bnd.right - bnd.left) / res,
                (bnd.top - bnd.bottom) / res,
            )
            srcs.append(_vrt_source(path, b, nd if nd is not None else 0, shape, dst))
        bands.append(
            f'<VRTRasterBand dataType="{gdal_type}" band="{b}"><NoDataValue>{nodata:g}'
            f"</NoDataValue>{''.join(srcs)}</VRTRasterBand>"
        )
    xml = (
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">'
        f"<SRS>{escape(target.to_wkt())}</SRS>"
        f"<GeoTransform>{left!r}, {res!r}, 0, {top!r}, 0, {-res!r}</GeoTransform>"
        f"{''.join(bands)}</VRTDataset>"
    )
    out = out_dir / f"{name}.vrt"
    out.write_text(xml)
    return out


@dataclass(frozen=True)
class Stretch:
    """A linear 16→8-bit stretch: band values ``low_dn`` → 0 and ``high_dn`` → 255 (R, G, B)."""

    method: str
    low_dn: tuple[float, float, float]
    high_dn: tuple[float, float, float]

    def to_json(self) -> str:
        """Serialize (written to ``stretch.json`` and raster tags)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Stretch:
        """Parse :meth:`to_json` output."""
        d = json.loads(text)
        return cls(d["method"], tuple(d["low_dn"]), tuple(d["high_dn"]))


def compute_stretch(path: Path, config: OpticalDLConfig) -> Stretch:
    """The stretch for a mosaic: fixed DN range or per-band percentiles of a decimated read.

    For 8-bit input the identity (0→0, 255→255) is returned.
    """
    if config.input_bit_depth == 8:
        return Stretch("identity", (0.0, 0.0, 0.0), (255.0, 255.0, 255.0))
    if config.stretch == "fixed":
        lo, hi = config.stretch_range_dn.min, config.stretch_range_dn.max
        return Stretch("fixed", (lo, lo, lo), (hi, hi, hi))

    # a decimated read of a mosaic without overviews reads every block: bounded cache
    with gdal_cache_bounded(), rasterio.open(path) as src:
        scale = max(1, max(src.width, src.height) // 2048)
        data = src.read(
            list(config.rgb_bands),
            out_shape=(3, max(1, src.height // scale), max(1, src.width // scale)),
            masked=True,
        )
    lows, highs = [], []
    for band in data:
        values = band.compressed()
        if values.size == 0:
            raise InputError(path, "mosaic holds no valid pixel (all nodata)")
        lo, hi = np.percentile(
            values, [config.stretch_percentiles.min, config.stretch_percentiles.max]
        )
        lows.append(float(lo))
        highs.append(float(max(hi, lo + 1)))
    return Stretch("percentile", tuple(lows), tuple(highs))  # type: ignore[arg-type]


def apply_stretch(raw: NDArray, stretch: Stretch) -> NDArray[np.uint8]:
    """Stretch a (3, rows, cols) array to uint8 (values clipped).

    Examples:
        >>> s = Stretch("fixed", (0, 0, 0), (1000, 1000, 1000))
        >>> apply_stretch(np.array([[[0, 500, 2000]]] * 3), s)[0].tolist()
        [[0, 128, 255]]
    """
    lo = np.asarray(stretch.low_dn, np.float32)[:, None, None]
    hi = np.asarray(stretch.high_dn, np.float32)[:, None, None]
    out = (raw.astype(np.float32) - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def read_rgb(
    src: rasterio.io.DatasetReader,
    window: Window,
    rgb_bands: tuple[int, int, int],
    stretch: Stretch,
) -> tuple[NDArray[np.uint8], NDArray[np.bool_]]:
    """Read a window as stretched 8-bit RGB plus a validity mask (False = nodata).

    The window may extend past the raster; outside pixels are invalid and filled by reflection of
    the valid part (so the model sees plausible context at the mosaic edge).
    """
    full = Window(0, 0, src.width, src.height)
    inner = window.intersection(full) if windows_overlap(window, full) else None
    rows, cols = int(window.height), int(window.width)
    rgb: np.ndarray = np.zeros((3, rows, cols), np.uint8)
    valid = np.zeros((rows, cols), bool)
    if inner is None:
        return rgb, valid
    r0 = int(inner.row_off - window.row_off)
    c0 = int(inner.col_off - window.col_off)
    h, w = int(inner.height), int(inner.width)
    raw = src.read(list(rgb_bands), window=inner)
    mask = src.read_masks(rgb_bands[0], window=inner) > 0
    rgb_inner = apply_stretch(raw, stretch)
    pads = ((r0, rows - r0 - h), (c0, cols - c0 - w))
    if any(p for pair in pads for p in pair):
        mode = "reflect" if min(h, w) > max(max(p) for p in pads) else "edge"
        rgb = np.pad(rgb_inner, ((0, 0), *pads), mode=mode)  # type: ignore[call-overload]
        valid[r0 : r0 + h, c0 : c0 + w] = mask
    else:
        rgb = rgb_inner
        valid = mask
    return rgb, valid


def windows_overlap(a: Window, b: Window) -> bool:
    """Whether two pixel windows share at least one pixel (touching edges do not count)."""
    return (
        a.col_off < b.col_off + b.width
        and b.col_off < a.col_off + a.width
        and a.row_off < b.row_off + b.height
        and b.row_off < a.row_off + a.height
    )
