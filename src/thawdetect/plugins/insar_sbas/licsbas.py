"""LiCSBAS time series (COMET LiCSAR frames) as ``insar_sbas`` input.

``timeseries_file`` may name LiCSBAS's ``cum.h5`` or ``cum_filt.h5`` (recognised by its ``cum``
and ``imdates`` datasets). :func:`licsbas_inputs` converts it once into MintPy's layout in the
run's cache, and the detector reads that as any MintPy time series. What is read (LiCSBAS
``LiCSBAS13_sb_inv.py`` / ``LiCSBAS16_filt_ts.py`` layout, ``TS_GEOCml*/``):

    cum*.h5      ``cum`` (epochs × rows × cols, float32, **mm**), ``imdates`` (int yyyymmdd),
                 ``corner_lat``/``corner_lon``/``post_lat``/``post_lon`` (geocoded stacks),
                 ``refarea`` ("x1:x2/y1:y2"), and in v1.5.2+ ``coh_avg``, ``hgt``
    results/     raw little-endian float32 rows × cols: ``coh_avg`` (mean coherence 0-1),
                 ``hgt`` (DEM height, m), ``mask`` (1 = kept by LiCSBAS15, 0 = masked)
    EQA.dem_par  GAMMA ``key: value`` grid (``width``, ``nlines``, ``corner_lat``, ...), in the
                 sibling ``GEOCml*/`` folder; used when ``cum*.h5`` lacks the corner datasets

Conventions, stated: LiCSBAS displacement is LOS, **positive = LOS decrease (toward the
satellite, uplift)**, in mm, referenced to the first epoch and the reference area: the same sign as
MintPy (d = -phase·λ/4π), so no sign change; the unit is kept (MintPy ``UNIT = mm``). The corner
coordinates are pixel centres (GAMMA grid registration): the GeoTIFF-style origin is half a
posting further out. Pixels masked by LiCSBAS (``results/mask`` = 0) become NaN. ``coh_avg``
(average interferometric coherence) stands in for MintPy's temporal coherence unless
``coherence_file`` is set; ``hgt`` becomes the DEM unless ``dem_file``/``geometry_file`` is set.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from rasterio.crs import CRS
from rasterio.transform import Affine

from thawdetect.plugin_api import GridSpec, InputError, MissingBandError, atomic_path

if TYPE_CHECKING:
    from thawdetect.plugins.insar_sbas.config import InsarSbasConfig

__all__ = ["LicsbasStack", "is_licsbas_cum", "licsbas_inputs", "read_dem_par", "read_licsbas"]

#: Rows converted at a time (bounded memory on a whole LiCSAR frame).
_BLOCK_ROWS = 256


def is_licsbas_cum(path: str | Path) -> bool:
    """Whether ``path`` is a LiCSBAS ``cum*.h5`` (HDF5 with ``cum`` and ``imdates``)."""
    p = Path(path)
    if p.suffix.lower() not in (".h5", ".hdf5") or not p.is_file():
        return False
    from thawdetect.plugins.insar_sbas.mintpy_h5 import open_h5

    try:
        with open_h5(p) as f:
            return "cum" in f and "imdates" in f and "timeseries" not in f
    except Exception:
        return False


def read_dem_par(path: str | Path) -> dict[str, str]:
    """A GAMMA ``.par`` file (``EQA.dem_par``) as ``{key: first value}``.

    Raises:
        InputError: unreadable, or lacking width/nlines/corner/post entries.
    """
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror})") from None
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and value.split():
            out[key.strip()] = value.split()[0]
    need = ["width", "nlines", "corner_lat", "corner_lon", "post_lat", "post_lon"]
    missing = [k for k in need if k not in out]
    if missing:
        raise InputError(path, f"not a GAMMA EQA.dem_par: no {', '.join(missing)}")
    return out


def _grid(
    cum_path: Path, f: Any, shape: tuple[int, int]
) -> tuple[GridSpec, str]:  # (grid, where it came from)
    rows, cols = shape
    keys = ("corner_lat", "corner_lon", "post_lat", "post_lon")
    if all(k in f for k in keys):
        lat, lon, dlat, dlon = (float(np.asarray(f[k][()])) for k in keys)
        source = f"{cum_path.name} corner_lat/lon"
    else:
        par_path = _find_dem_par(cum_path)
        if par_path is None:
            raise InputError(
                cum_path,
                "LiCSBAS stack without corner_lat/corner_lon (radar coordinates?) and no "
                f"EQA.dem_par in {cum_path.parent} or its GEOCml* sibling: cannot place it",
            )
        par = read_dem_par(par_path)
        if (int(par["nlines"]), int(par["width"])) != shape:
            raise InputError(
                par_path,
                f"grid {par['nlines']}x{par['width']} differs from {cum_path.name}'s {rows}x{cols}",
            )
        lat, lon = float(par["corner_lat"]), float(par["corner_lon"])
        dlat, dlon = float(par["post_lat"]), float(par["post_lon"])
        source = str(par_path)
    if not (dlat < 0 < dlon):
        raise InputError(cum_path, f"unexpected postings post_lat={dlat}, post_lon={dlon}")
    # corner_* are pixel centres (grid registration): the pixel edge is half a posting out
    transform = Affine(dlon, 0.0, lon - dlon / 2, 0.0, dlat, lat - dlat / 2)
    return GridSpec(CRS.from_epsg(4326), transform, cols, rows), source


def _find_dem_par(cum_path: Path) -> Path | None:
    ts_dir = cum_path.parent
    candidates = [ts_dir / "EQA.dem_par", ts_dir / "results" / "EQA.dem_par"]
    if ts_dir.name.startswith("TS_"):
        candidates.insert(0, ts_dir.parent / ts_dir.name[3:] / "EQA.dem_par")
    return next((p for p in candidates if p.is_file()), None)


def _layer(cum_path: Path, f: Any, name: str, shape: tuple[int, int]) -> NDArray[np.float32] | None:
    """``results/<name>`` (raw float32) or the ``name`` dataset of cum*.h5; None when neither."""
    raw = cum_path.parent / "results" / name
    if raw.is_file():
        n = shape[0] * shape[1]
        size = raw.stat().st_size
        if size != 4 * n:
            raise InputError(
                raw,
                f"{size} bytes; a LiCSBAS float32 layer of {shape[0]}x{shape[1]} has {4 * n}",
            )
        return np.fromfile(raw, dtype="<f4").reshape(shape)
    if name in f:
        data = np.asarray(f[name][()], dtype=np.float32)
        if data.shape != shape:
            raise InputError(cum_path, f"dataset {name} is {data.shape}, expected {shape}")
        return data
    return None


class LicsbasStack:
    """What :func:`read_licsbas` found: dates, grid, and the optional layers."""

    def __init__(self, path: Path, dates: list[str], grid: GridSpec, grid_source: str) -> None:
        self.path = path
        self.dates = dates
        self.grid = grid
        self.grid_source = grid_source
        self.layers: dict[str, NDArray[np.float32]] = {}
        self.ref_yx: tuple[int, int] | None = None


def read_licsbas(path: str | Path) -> LicsbasStack:
    """Dates, grid and ``results/`` layers of a LiCSBAS ``cum*.h5`` (not the cube itself).

    Raises:
        InputError: not a LiCSBAS stack, bad shapes, no way to place it on the ground.
    """
    from thawdetect.plugins.insar_sbas.mintpy_h5 import open_h5

    path = Path(path)
    with open_h5(path) as f:
        for name in ("cum", "imdates"):
            if name not in f:
                raise MissingBandError(path, f"no '{name}' dataset (not a LiCSBAS cum*.h5)")
        cum = f["cum"]
        if cum.ndim != 3:
            raise InputError(path, f"cum is {cum.shape}; LiCSBAS writes (epochs, rows, cols)")
        dates = [str(int(d)) for d in np.asarray(f["imdates"][()]).ravel()]
        if len(dates) != cum.shape[0]:
            raise InputError(path, f"{len(dates)} imdates for {cum.shape[0]} epochs of cum")
        if len(dates) < 2:
            raise InputError(path, "a LiCSBAS time series of fewer than 2 epochs")
        shape = (int(cum.shape[1]), int(cum.shape[2]))
        grid, source = _grid(path, f, shape)
        stack = LicsbasStack(path, dates, grid, source)
        for name in ("coh_avg", "hgt", "mask"):
            layer = _layer(path, f, name, shape)
            if layer is not None:
                stack.layers[name] = layer
        if "refarea" in f:
            text = f["refarea"][()]
            text = text.decode() if isinstance(text, bytes) else str(text)
            try:
                xs, ys = text.split("/")
                stack.ref_yx = (int(ys.split(":")[0]), int(xs.split(":")[0]))
            except ValueError:
                stack.ref_yx = None
    return stack


def _key(path: Path) -> str:
    st = path.stat()
    results = path.parent / "results"
    parts = [str(path.resolve()), str(st.st_size), str(st.st_mtime_ns)]
    for name in ("coh_avg", "hgt", "mask"):
        p = results / name
        if p.is_file():
            parts += [name, str(p.stat().st_size), str(p.stat().st_mtime_ns)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def convert_licsbas(path: str | Path, out_dir: str | Path) -> dict[str, Path]:
    """Write a LiCSBAS stack in MintPy's layout into ``out_dir`` (reused when up to date).

    Returns:
        ``{"timeseries": timeseries.h5, "coherence": ..., "dem": dem.tif}`` (the last two when
        LiCSBAS gave ``coh_avg`` / ``hgt``).
    """
    from thawdetect.plugins.insar_sbas.mintpy_h5 import _h5py, mintpy_attrs_for_grid, open_h5
    from thawdetect.plugins.insar_sbas.rasters import write_geotiff

    path = Path(path)
    out_dir = Path(out_dir) / _key(path)
    done_file = out_dir / "licsbas.json"
    if done_file.is_file():
        done = json.loads(done_file.read_text())
        paths = {k: out_dir / v for k, v in done["files"].items()}
        if all(p.is_file() for p in paths.values()):
            return paths
    stack = read_licsbas(path)
    out_dir.mkdir(parents=True, exist_ok=True)
    attrs = {
        **mintpy_attrs_for_grid(stack.grid),
        "FILE_TYPE": "timeseries",
        "UNIT": "mm",
        "PROCESSOR": "licsbas",
        "DATA_TYPE": "float32",
        "WAVELENGTH": "0.05546576",  # Sentinel-1 C band (LiCSAR); not used for a time series
        "LICSBAS_SOURCE": str(path),
        "LICSBAS_GRID": stack.grid_source,
        "SIGN": "LOS displacement, positive toward the satellite (LiCSBAS and MintPy)",
    }
    if stack.ref_yx is not None:
        attrs["REF_Y"], attrs["REF_X"] = (str(v) for v in stack.ref_yx)
    keep = stack.layers.get("mask")
    h5py = _h5py()
    ts_path = out_dir / "timeseries.h5"
    n, rows, cols = len(stack.dates), stack.grid.height, stack.grid.width
    with open_h5(path) as src, atomic_path(ts_path) as tmp, h5py.File(tmp, "w") as dst:
        ds = dst.create_dataset(
            "timeseries", shape=(n, rows, cols), dtype="float32",
            chunks=(n, min(rows, 128), min(cols, 128)),
        )  # fmt: skip
        dst.create_dataset("date", data=np.array([d.encode() for d in stack.dates]))
        for r0 in range(0, rows, _BLOCK_ROWS):
            r1 = min(rows, r0 + _BLOCK_ROWS)
            block = np.asarray(src["cum"][:, r0:r1, :], dtype=np.float32)
            if keep is not None:
                block[:, ~(keep[r0:r1] > 0)] = np.nan
            ds[:, r0:r1, :] = block
        for k, v in attrs.items():
            dst.attrs[k] = str(v)
    files = {"timeseries": ts_path.name}
    if "coh_avg" in stack.layers:
        coh = stack.layers["coh_avg"].copy()
        coh[coh == 0] = np.nan  # LiCSBAS writes 0 where nothing was unwrapped
        write_geotiff(out_dir / "coh_avg.tif", coh, stack.grid, description="mean coherence")
        files["coherence"] = "coh_avg.tif"
    if "hgt" in stack.layers:
        hgt = stack.layers["hgt"].copy()
        hgt[hgt == 0] = np.nan
        if np.isfinite(hgt).any():
            write_geotiff(out_dir / "dem.tif", hgt, stack.grid, description="LiCSBAS hgt (m)")
            files["dem"] = "dem.tif"
    done_file.write_text(json.dumps({"source": str(path), "files": files}, indent=1))
    return {k: out_dir / v for k, v in files.items()}


def licsbas_inputs(cfg: InsarSbasConfig, run_dir: Path) -> InsarSbasConfig:
    """The config with a LiCSBAS ``timeseries_file`` replaced by its MintPy-layout conversion
    (cached in ``<run_dir>/insar_sbas_cache/licsbas``); any other config is returned as is."""
    ts = cfg.timeseries_file
    if ts is None or not is_licsbas_cum(ts):
        return cfg
    out = convert_licsbas(ts, Path(run_dir) / "insar_sbas_cache" / "licsbas")
    update: dict[str, Any] = {"timeseries_file": out["timeseries"]}
    if cfg.coherence_file is None and "coherence" in out:
        update["coherence_file"] = out["coherence"]
    if cfg.dem_file is None and cfg.geometry_file is None and "dem" in out:
        update["dem_file"] = out["dem"]
    return cfg.model_copy(update=update)
