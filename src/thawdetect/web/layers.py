"""The run's own raster layers, as web-map tiles (rio-tiler), addressed by an index.

The list of layers is built once from what the run already knows: every detector's review frames
(:meth:`~thawdetect.core.plugin_api.detector.Detector.image_frames`: optical mosaics per date,
LOS rate, seasonal amplitude, ...) for each iteration of the manifest, and the DEMs its detector
configs name (``*dem_file`` keys) as a hillshade. The browser asks for ``/tiles/{index}/z/x/y``:
no path it sends ever reaches the file system.

Tile maths, windowed reads and reprojection are rio-tiler's (``Reader.tile``); rendered PNGs are
kept in a small in-memory LRU cache.
"""

from __future__ import annotations

import logging
import math
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from thawdetect.core.run.manifest import Manifest

log = logging.getLogger(__name__)

#: rio-tiler colour maps read as diverging (symmetric stretch, translucent near zero).
DIVERGING_MAPS = {"rdbu", "rdbu_r", "bwr", "bwr_r", "seismic", "seismic_r", "coolwarm",
                  "coolwarm_r", "rdylbu", "rdylbu_r", "puor", "puor_r", "brbg", "brbg_r",
                  "piyg", "piyg_r", "prgn", "prgn_r", "rdgy", "rdgy_r", "balance", "curl",
                  "delta", "diff"}  # fmt: skip
#: Rendered tiles kept in memory (about 20-60 kB each).
TILE_CACHE_SIZE = 2048
#: Colour maps by layer kind (rio-tiler names) and their stops sent to the page's colour bar.
COLORMAPS = {"diverging": "rdbu", "sequential": "viridis", "grey": "greys_r"}
#: Hillshade light altitude (deg).
SUN_ALTITUDE_DEG = 45.0
#: Lights of the multi-directional hillshade (deg, 0 = north, clockwise) and relief exaggeration.
HILLSHADE_AZIMUTHS_DEG = (225.0, 270.0, 315.0, 360.0)
HILLSHADE_Z_FACTOR = 3.0
_EARTH_CIRCUMFERENCE_M = 2 * math.pi * 6378137.0


@dataclass
class Layer:
    """One raster layer the page can show.

    Attributes:
        index: position in the run's layer list (what the browser names).
        label: what it shows, e.g. ``"LOS rate mm/yr"`` or ``"2018-07-14"``.
        path: the raster (never sent to the browser).
        bands: 1-based bands (three for RGB, one for a colour-mapped or grey layer).
        kind: ``rgb``, ``diverging`` (symmetric stretch, e.g. rate), ``sequential``,
            ``grey`` or ``hillshade``.
        value_range: display stretch (min, max) in the layer's units.
        units: units of the values (``mm/yr``, ``mm``, ``m``), for the colour bar.
        iteration: the iteration whose detector gave it (0 = the whole run, e.g. the DEM).
        detector: the detector that gave it ("" for the DEM).
        bounds_wgs84: (west, south, east, north).
    """

    index: int
    label: str
    path: Path
    bands: tuple[int, ...]
    kind: str
    value_range: tuple[float, float] | None
    units: str
    iteration: int
    detector: str
    bounds_wgs84: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    maxzoom: int = 18
    minzoom: int = 0
    colorbar: list[str] = field(default_factory=list)
    colormap: str = ""
    base: str = ""
    date: str = ""
    band_ranges: list[tuple[float, float]] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        """What the page gets (no path)."""
        return {
            "index": self.index,
            "label": self.label,
            "kind": self.kind,
            "value_range": list(self.value_range) if self.value_range else None,
            "units": self.units,
            "iteration": self.iteration,
            "detector": self.detector,
            "bounds_wgs84": list(self.bounds_wgs84),
            "minzoom": self.minzoom,
            "maxzoom": self.maxzoom,
            "colorbar": self.colorbar,
            "base": self.base or self.label,
            "date": self.date,
        }


def _units(label: str) -> str:
    text = label.lower()
    if "mm/yr" in text or "mm_yr" in text or "rate" in text:
        return "mm/yr"
    if "mm" in text or "amplitude" in text:
        return "mm"
    return ""


def _kind(label: str, bands: tuple[int, ...], value_range: tuple[float, float] | None) -> str:
    if len(bands) >= 3:
        return "rgb"
    text = label.lower()
    if "rate" in text or (value_range is not None and value_range[0] == -value_range[1] != 0):
        return "diverging"
    if "amplitude" in text or _units(label):
        return "sequential"
    return "grey"


def _stops(name: str, n: int = 11) -> list[str]:
    from rio_tiler.colormap import cmap

    cm = cmap.get(name)
    keys = np.linspace(0, 255, n).round().astype(int)
    return ["#{:02x}{:02x}{:02x}".format(*cm[int(k)][:3]) for k in keys]


def _preview_range(path: Path, bands: tuple[int, ...], kind: str) -> tuple[float, float] | None:
    """A 2-98 % stretch from the raster's overview (symmetric for diverging layers)."""
    from rio_tiler.io import Reader

    with Reader(str(path)) as src:
        img = src.preview(indexes=bands, max_size=512)
    data = img.array.compressed() if np.ma.isMaskedArray(img.array) else img.array.ravel()
    data = data[np.isfinite(data)]
    if data.size == 0:
        return None
    if kind == "diverging":
        lim = float(np.percentile(np.abs(data), 98)) or 1.0
        return (-lim, lim)
    lo, hi = (float(v) for v in np.percentile(data, [2, 98]))
    return (lo, hi if hi > lo else lo + 1.0)


def _band_ranges(path: Path, bands: tuple[int, ...]) -> list[tuple[float, float]]:
    """A 2-98 % stretch per band (an RGB frame's colours, as its review chips stretch them)."""
    from rio_tiler.io import Reader

    with Reader(str(path)) as src:
        img = src.preview(indexes=bands, max_size=512)
    out = []
    for b in range(img.array.shape[0]):
        band = img.array[b]
        data = band.compressed() if np.ma.isMaskedArray(band) else np.ravel(band)
        data = data[np.isfinite(data)]
        if data.size == 0:
            out.append((0.0, 1.0))
            continue
        lo, hi = (float(v) for v in np.percentile(data, [2, 98]))
        out.append((lo, hi if hi > lo else lo + 1.0))
    return out


def _chip_stretch(path: Path, band: int) -> tuple[float, float]:
    """The fixed stretch the evidence chips draw this value map with (one for the raster)."""
    from thawdetect.core.review._styles import _raster_stretch

    lo, hi, _ = _raster_stretch(path, band)
    return (lo, hi)


def discover_layers(
    run_dir: Path, manifest: Manifest, host: Any, messages: list[str]
) -> list[Layer]:
    """Every raster layer of the run, in a stable order (iteration, detector, frame).

    Args:
        run_dir: the run directory.
        manifest: its ``manifest.json``.
        host: a :class:`~thawdetect.core.plugin_api.host.PluginHost` that knows the detectors.
        messages: problems are appended here (shown on the page), never raised: a missing
            detector plugin or raster only removes its layers.
    """
    from thawdetect.core.errors import ThawdetectError
    from thawdetect.core.models import validate_section
    from thawdetect.core.plugin_api.context import IterationContext
    from thawdetect.core.qgis_project import dem_paths

    found: list[dict[str, Any]] = []
    dems: list[str] = []
    try:
        region = manifest.region_model()
    except Exception as exc:
        messages.append(f"manifest region unreadable ({exc.__class__.__name__}); no layers")
        return []
    for k, configs in sorted(manifest.iterations.items()):
        for name, cfg in (configs or {}).items():
            if cfg is None:
                continue
            dems += dem_paths(cfg)
            work = run_dir / "iterations" / f"{k:02d}" / name
            if not work.is_dir():
                continue  # iteration not proposed yet
            try:
                cls = host.detector(name)
                det = cls(validate_section(cls.config_model, cfg, f"manifest: {name}"))
                ctx = IterationContext.standalone(
                    region, run_dir, host=host, iteration=k, work_dir=work
                )
                frames = det.image_frames(ctx)
            except (ThawdetectError, OSError, ValueError) as exc:
                msg = " ".join(str(exc).split()) or exc.__class__.__name__
                messages.append(f"layers of detector '{name}' (iteration {k}) unavailable: {msg}")
                continue
            for f in frames:
                vr = tuple(float(v) for v in f.value_range) if f.value_range else None
                date = str(getattr(f, "date", "") or "")
                label = f.label if not date or date in f.label else f"{f.label}, {date}"
                found.append(
                    {
                        "label": label,
                        "base": f.label,
                        "date": date,
                        "path": Path(f.path),
                        "bands": tuple(f.bands),
                        "value_range": vr,
                        "iteration": k,
                        "detector": name,
                        "units": str(getattr(f, "units", "") or ""),
                        "colormap": getattr(f, "colormap", None),
                    }
                )
    seen_dem: set[str] = set()
    for d in dems:
        if d not in seen_dem and Path(d).is_file():
            seen_dem.add(d)
            found.append(
                {"label": "DEM hillshade", "base": "DEM hillshade", "date": "",
                 "path": Path(d), "bands": (1,), "value_range": None,
                 "iteration": 0, "detector": "", "units": "m", "colormap": None}
            )  # fmt: skip
    layers: list[Layer] = []
    for spec in found:
        try:
            layers.append(_make_layer(len(layers), **spec))
        except Exception as exc:  # an unreadable raster removes only its layer
            msg = " ".join(str(exc).split())[:200]
            messages.append(f"{spec['path']}: cannot be shown ({msg})")
    return layers


def _make_layer(
    index: int,
    label: str,
    path: Path,
    bands: tuple[int, ...],
    value_range: tuple[float, float] | None,
    iteration: int,
    detector: str,
    units: str = "",
    colormap: str | None = None,
    base: str = "",
    date: str = "",
) -> Layer:
    from rio_tiler.colormap import cmap
    from rio_tiler.io import Reader

    hillshade = label == "DEM hillshade"
    kind = "hillshade" if hillshade else _kind(label, bands, value_range)
    if kind == "grey" and units:  # a value map by its declared units
        kind = "sequential"
    units = units or ("m" if hillshade else _units(label))
    cm_name = (colormap or "").lower()
    if cm_name and cm_name in cmap.list() and kind not in ("rgb", "hillshade"):
        kind = "diverging" if cm_name in DIVERGING_MAPS else "sequential"
    else:
        cm_name = COLORMAPS.get(kind, "")
    with Reader(str(path)) as src:
        bounds = tuple(float(v) for v in src.get_geographic_bounds(src.tms.rasterio_geographic_crs))
        minzoom, maxzoom = int(src.minzoom), int(src.maxzoom)
    band_ranges: list[tuple[float, float]] = []
    if value_range is None and kind == "rgb":
        band_ranges = _band_ranges(path, bands)
        value_range = (min(r[0] for r in band_ranges), max(r[1] for r in band_ranges))
    elif value_range is None and not hillshade and units:
        value_range = _chip_stretch(path, bands[0])  # map and chips: one stretch
    elif value_range is None:
        value_range = _preview_range(path, bands, "grey" if hillshade else kind)
    return Layer(
        index=index,
        label=label,
        path=path,
        bands=bands,
        kind=kind,
        value_range=value_range,
        units=units,
        iteration=iteration,
        detector=detector,
        bounds_wgs84=bounds,  # type: ignore[arg-type]
        minzoom=max(0, minzoom - 6),
        maxzoom=min(22, maxzoom + 3),
        colorbar=_stops(cm_name) if cm_name else [],
        colormap=cm_name,
        base=base or label,
        date=date,
        band_ranges=band_ranges,
    )


def hillshade(elevation_m: np.ndarray, pixel_m: float) -> np.ndarray:
    """Multi-directional hillshade (0-1) of an elevation array, relief exaggerated.

    The mean of four lights at :data:`SUN_ALTITUDE_DEG` from the azimuths of
    :data:`HILLSHADE_AZIMUTHS_DEG` (as ``gdaldem hillshade -multidirectional``), so slopes of
    every aspect show (one light from the north-west leaves north-west and south-east slopes
    flat), on elevations scaled by :data:`HILLSHADE_Z_FACTOR` (gentle permafrost slopes and a
    30 m DEM resampled to map zoom would otherwise be nearly featureless).

    Args:
        elevation_m: 2-D elevations (m).
        pixel_m: pixel size (m).

    Examples:
        >>> round(float(hillshade(np.zeros((3, 3)), 30.0)[1, 1]), 3)
        0.707
    """
    dz_dy, dz_dx = np.gradient(HILLSHADE_Z_FACTOR * elevation_m.astype("float64"), pixel_m)
    # Rows grow southwards: north-facing component is +dz_dy.
    slope = np.arctan(np.hypot(dz_dx, dz_dy))
    aspect = np.arctan2(-dz_dx, dz_dy)  # direction of steepest descent, 0 = north, clockwise
    alt = math.radians(SUN_ALTITUDE_DEG)
    shade = np.zeros_like(slope)
    for az_deg in HILLSHADE_AZIMUTHS_DEG:
        az = math.radians(az_deg)
        shade += np.sin(alt) * np.cos(slope) + np.cos(alt) * np.sin(slope) * np.cos(az - aspect)
    return np.clip(shade / len(HILLSHADE_AZIMUTHS_DEG), 0.0, 1.0)


#: Opacity of a diverging layer's near-zero values (stable ground shows the hillshade through).
DIVERGING_MIN_ALPHA = 0.3


def _render_diverging(img: Any, layer: Layer, colormap: Any) -> bytes:
    """A symmetric-stretch tile whose opacity grows with |value| (NaN transparent)."""
    from rio_tiler.utils import render

    lo, hi = layer.value_range or (-1.0, 1.0)
    lim = max(abs(lo), abs(hi)) or 1.0
    values = np.ma.filled(img.array[0].astype("float64"), np.nan)
    ok = np.isfinite(values)
    v = np.where(ok, values, 0.0)
    index = np.clip(np.rint((v - lo) / (hi - lo) * 255.0), 0, 255).astype("uint8")
    lut = np.array([colormap[i][:3] for i in range(256)], dtype="uint8")
    rgb = np.moveaxis(lut[index], -1, 0)
    strength = np.clip(np.abs(v) / (0.5 * lim), 0.0, 1.0)
    alpha = 255.0 * (DIVERGING_MIN_ALPHA + (1.0 - DIVERGING_MIN_ALPHA) * strength)
    alpha = np.where(ok, alpha, 0.0).astype("uint8")
    return bytes(render(rgb, mask=alpha, img_format="PNG"))


class TileRenderer:
    """Renders PNG tiles of the run's layers with rio-tiler, cached in memory (LRU)."""

    def __init__(self, layers: list[Layer], cache_size: int = TILE_CACHE_SIZE) -> None:
        self.layers = layers
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[int, int, int, int], bytes | None] = OrderedDict()
        self._lock = threading.Lock()
        self._render_lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def tile(self, index: int, z: int, x: int, y: int) -> bytes | None:
        """PNG bytes of one tile, or None when the tile lies outside the layer."""
        key = (index, z, x, y)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                self.hits += 1
                return self._cache[key]
        with self._render_lock:  # one at a time: warnings filters are process-global
            png = self._render(self.layers[index], z, x, y)
        with self._lock:
            self.misses += 1
            self._cache[key] = png
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return png

    def _render(self, layer: Layer, z: int, x: int, y: int) -> bytes | None:
        from rio_tiler.colormap import cmap
        from rio_tiler.errors import TileOutsideBounds
        from rio_tiler.io import Reader
        from rio_tiler.utils import render

        shaded = layer.kind == "hillshade"
        with warnings.catch_warnings(), Reader(str(layer.path)) as src:
            # NaN nodata cast to the output dtype warns inside rio-tiler; the mask carries it.
            warnings.simplefilter("ignore", RuntimeWarning)
            if not src.tile_exists(x, y, z):
                return None
            try:
                img = src.tile(
                    x,
                    y,
                    z,
                    indexes=layer.bands,
                    buffer=1 if shaded else None,
                    reproject_method="bilinear" if shaded else "nearest",
                )
            except TileOutsideBounds:
                return None
            if layer.kind == "diverging":
                return _render_diverging(img, layer, cmap.get(layer.colormap or "rdbu"))
            if not shaded:
                vr = layer.value_range or (0.0, 1.0)
                ranges = layer.band_ranges or [vr] * len(layer.bands)
                img = img.rescale(in_range=ranges)
                colormap = cmap.get(layer.colormap) if layer.colormap else None
                return img.render(img_format="PNG", colormap=colormap)
        data = np.ma.filled(img.array[0].astype("float64"), np.nan)
        lat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * (y + 0.5) / 2**z))))
        pixel_m = _EARTH_CIRCUMFERENCE_M * math.cos(math.radians(lat)) / (256 * 2**z)
        ok = np.isfinite(data)
        filled = np.where(ok, data, np.nanmean(data) if ok.any() else 0.0)
        shade = hillshade(filled, pixel_m)[1:-1, 1:-1]
        grey = (40 + 200 * shade).astype("uint8")
        mask = ok[1:-1, 1:-1]
        return render(grey[None], mask=(mask * 255).astype("uint8"), img_format="PNG")
