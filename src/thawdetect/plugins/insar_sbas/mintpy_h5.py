"""Readers and writers for MintPy HDF5 products (velocity, time series, coherence, geometry).

Every reader fails with a one-line :class:`~thawdetect.core.errors.InputError` that starts with
the file path. h5py is imported inside functions (the ``insar`` extra).

MintPy conventions used here: ``X_FIRST``/``Y_FIRST`` are the outer corner of the first pixel,
``X_STEP``/``Y_STEP`` the pixel size (``Y_STEP`` negative); the CRS is the ``EPSG`` attribute,
else WGS84 when ``X_UNIT`` is degrees. Displacement is LOS, positive towards the satellite
(MintPy: d = -phase·λ/4π); ``velocity`` is in ``UNIT`` (normally m/year).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from numpy.typing import NDArray
from rasterio.crs import CRS
from rasterio.enums import Resampling

from thawdetect.plugin_api import (
    CRSMismatchError,
    GridMismatchError,
    GridSpec,
    InputError,
    MissingBandError,
    MissingDependencyError,
    atomic_path,
)
from thawdetect.plugins.insar_sbas.rasters import (
    check_overlap,
    read_raster_on_grid,
    same_grid,
    write_geotiff,
)
from thawdetect.plugins.insar_sbas.timefunc import parse_dates

__all__ = [
    "mintpy_attrs_for_grid",
    "mintpy_grid",
    "open_h5",
    "read_attrs",
    "read_coherence",
    "read_geometry_height",
    "read_label_means",
    "read_timeseries_info",
    "read_timeseries_mean",
    "read_velocity",
    "write_mintpy_h5",
]

_RATE_UNITS = {
    "m/year": 1000.0,
    "m/yr": 1000.0,
    "m": 1000.0,
    "cm/year": 10.0,
    "cm/yr": 10.0,
    "cm": 10.0,
    "mm/year": 1.0,
    "mm/yr": 1.0,
    "mm": 1.0,
}


def _h5py() -> Any:
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is a core dependency today
        raise MissingDependencyError("h5py", "insar", "reading MintPy products") from exc
    return h5py


def open_h5(path: str | Path, **kwargs: Any) -> Any:
    """Open an HDF5 file read-only, or raise a one-line :class:`InputError` naming it
    (``kwargs``: h5py's, e.g. the chunk cache ``rdcc_nbytes``)."""
    h5py = _h5py()
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if not h5py.is_hdf5(path):
        raise InputError(path, "not an HDF5 file, so not a MintPy product")
    try:
        return h5py.File(path, "r", **kwargs)
    except OSError as exc:
        raise InputError(path, f"cannot be opened as HDF5 ({exc})") from None


def _attr_str(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.size == 1:
        return _attr_str(value.item())
    return str(value)


def read_attrs(path: str | Path) -> dict[str, str]:
    """MintPy root attributes of an HDF5 file as strings.

    Raises:
        InputError: not HDF5, or no ``FILE_TYPE`` attribute (not a MintPy product).
    """
    with open_h5(path) as f:
        attrs = {k: _attr_str(v) for k, v in f.attrs.items()}
        if "FILE_TYPE" not in attrs:
            raise InputError(
                path, f"not a MintPy product (no FILE_TYPE attribute; datasets: {sorted(f.keys())})"
            )
        return attrs


def mintpy_grid(path: str | Path, attrs: Mapping[str, str]) -> GridSpec:
    """The geocoded grid of a MintPy product.

    Raises:
        InputError: the product is in radar coordinates or lacks size attributes.
    """
    need = ("X_FIRST", "Y_FIRST", "X_STEP", "Y_STEP")
    if not all(k in attrs for k in need):
        raise InputError(
            path,
            "in radar coordinates (no X_FIRST/Y_FIRST); set detectors.insar_sbas.lookup_file "
            "(MintPy inputs/geometryRadar.h5 or ISCE2 lat.rdr) to geocode it through MintPy, "
            "or give its geo_* file",
        )
    try:
        x0, y0 = float(attrs["X_FIRST"]), float(attrs["Y_FIRST"])
        dx, dy = float(attrs["X_STEP"]), float(attrs["Y_STEP"])
        width, length = int(attrs["WIDTH"]), int(attrs["LENGTH"])
    except (KeyError, ValueError) as exc:
        raise InputError(path, f"bad or missing grid attribute ({exc})") from None
    if "EPSG" in attrs and attrs["EPSG"] not in ("", "None"):
        crs = CRS.from_epsg(int(float(attrs["EPSG"])))
    elif attrs.get("UTM_ZONE"):
        zone = attrs["UTM_ZONE"]
        num = int(re.sub(r"\D", "", zone))
        crs = CRS.from_epsg((32700 if zone.upper().endswith("S") else 32600) + num)
    elif attrs.get("X_UNIT", "degrees").lower().startswith("deg") and abs(x0) <= 360:
        crs = CRS.from_epsg(4326)
    else:
        raise CRSMismatchError(path, "grid is not in degrees and has no EPSG/UTM_ZONE attribute")
    return GridSpec(crs, Affine(dx, 0.0, x0, 0.0, dy, y0), width, length)


def _dataset(f: Any, path: str | Path, names: tuple[str, ...]) -> Any:
    for n in names:
        if n in f:
            return f[n]
    raise MissingBandError(
        path, f"no '{names[0]}' dataset (datasets: {', '.join(sorted(f.keys())) or 'none'})"
    )


def read_velocity(path: str | Path) -> tuple[NDArray[np.float32], GridSpec, dict[str, str]]:
    """Read MintPy ``velocity`` (any ``UNIT``) as mm/yr, with its grid and attributes.

    Zero-valued pixels that are not the reference pixel are MintPy's no-data and become NaN.

    Raises:
        InputError: not a MintPy product, no ``velocity`` dataset, unknown unit, radar coordinates.
    """
    attrs = read_attrs(path)
    grid = mintpy_grid(path, attrs)
    unit = attrs.get("UNIT", "m/year")
    with open_h5(path) as f:
        ds = _dataset(f, path, ("velocity",))
        if unit not in _RATE_UNITS:
            raise InputError(path, f"velocity UNIT '{unit}' is not a length per year")
        if ds.shape != grid.shape:
            raise InputError(path, f"velocity is {ds.shape}, attributes say {grid.shape}")
        v = ds[()].astype(np.float32) * np.float32(_RATE_UNITS[unit])
    _zero_to_nan(v, attrs)
    return v, grid, attrs


def _zero_to_nan(a: NDArray[np.floating], attrs: Mapping[str, str]) -> None:
    ref = None
    with contextlib.suppress(KeyError, ValueError):
        ref = (int(attrs["REF_Y"]), int(attrs["REF_X"]))
    keep = a[ref] if ref and 0 <= ref[0] < a.shape[0] and 0 <= ref[1] < a.shape[1] else None
    a[a == 0] = np.nan
    if keep is not None:
        a[ref] = keep


def read_timeseries_info(
    path: str | Path,
) -> tuple[list[date], GridSpec, dict[str, str], tuple[int, int, int]]:
    """Dates, grid, attributes and ``(epochs, rows, cols)`` of a MintPy ``timeseries*.h5``.

    Raises:
        InputError: not a MintPy time series, missing ``timeseries``/``date`` datasets, a shape
            that disagrees with the attributes.
    """
    attrs = read_attrs(path)
    grid = mintpy_grid(path, attrs)
    with open_h5(path) as f:
        ds = _dataset(f, path, ("timeseries",))
        if "date" not in f:
            raise MissingBandError(path, "no 'date' dataset (not a MintPy time series)")
        dates = parse_dates(list(f["date"][()]))
        if ds.ndim != 3 or ds.shape[1:] != grid.shape:
            raise InputError(path, f"timeseries is {ds.shape}, expected (epochs, {grid.shape})")
        if len(dates) != ds.shape[0]:
            raise InputError(path, f"{len(dates)} dates for {ds.shape[0]} epochs")
        shape = (int(ds.shape[0]), int(ds.shape[1]), int(ds.shape[2]))
    return dates, grid, attrs, shape


def read_timeseries_mean(
    path: str | Path, rows: slice, cols: slice, pixels: NDArray[np.bool_]
) -> NDArray[np.float64]:
    """Mean displacement (file unit) per epoch over ``pixels`` inside the window (NaN-aware)."""
    with open_h5(path) as f:
        return _window_mean(f["timeseries"], rows, cols, pixels)


#: Rows per band of :func:`read_label_means` where the stack is not chunked.
_LABEL_BAND_ROWS = 256


def read_label_means(path: str | Path, labels: NDArray[np.integer], n: int) -> NDArray[np.float64]:
    """Mean displacement (file unit) per epoch of each label 1..``n`` of ``labels``: an
    ``(n, epochs)`` array, NaN where a label has no valid pixel at an epoch.

    The same figures as :func:`read_timeseries_mean` over each label's pixels (NaN-aware; a
    pixel that is 0 at every epoch, MintPy's "no data", is left out), read in one pass: the
    grid is cut into the file's chunk tiles (bands of ``_LABEL_BAND_ROWS`` rows where it is not
    chunked), and each run of neighbouring tiles that holds labelled pixels is read once, all
    epochs together. Per-candidate windows read a chunk once per candidate that touches it (and
    again after the chunk cache evicted it): at frame scale, 5556 candidates took 19-32 s, this
    15-20 s.
    """
    with open_h5(path) as f:
        ts = f["timeseries"]
        ne, h, w = ts.shape
        if labels.shape != (h, w):
            raise ValueError(f"labels {labels.shape} on a {h} × {w} time series ({path})")
        _, cr, cc = ts.chunks or (ne, _LABEL_BAND_ROWS, w)
        sums = np.zeros((ne, n + 1))
        counts = np.zeros((ne, n + 1))
        nr, nc = -(-h // cr), -(-w // cc)
        busy = np.zeros((nr * cr, nc * cc), dtype=bool)
        busy[:h, :w] = labels > 0
        need: NDArray[np.bool_] = np.asarray(busy.reshape(nr, cr, nc, cc).any(axis=(1, 3)))
        del busy
        for i in np.flatnonzero(need.any(axis=1)):
            tiles = np.flatnonzero(need[i])
            cut = np.flatnonzero(np.diff(tiles) > 1)
            rows = slice(int(i) * cr, min((int(i) + 1) * cr, h))
            runs = zip(tiles[np.r_[0, cut + 1]], tiles[np.r_[cut, tiles.size - 1]] + 1, strict=True)
            for a, b in runs:
                cols = slice(int(a) * cc, min(int(b) * cc, w))
                lab = labels[rows, cols]
                sel = lab > 0
                vals = ts[:, rows, cols][:, sel].astype(np.float64)
                vals[:, (vals == 0).all(axis=0)] = np.nan
                idx = lab[sel]
                order = np.argsort(idx, kind="stable")
                idx, vals = idx[order], vals[:, order]
                first = np.r_[0, np.flatnonzero(np.diff(idx)) + 1]
                ok = np.isfinite(vals)
                sums[:, idx[first]] += np.add.reduceat(np.where(ok, vals, 0.0), first, axis=1)
                counts[:, idx[first]] += np.add.reduceat(ok, first, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums / counts)[:, 1:].T


def _window_mean(
    ts: Any, rows: slice, cols: slice, pixels: NDArray[np.bool_]
) -> NDArray[np.float64]:
    block = ts[:, rows, cols].astype(np.float64)
    block[:, (block == 0).all(axis=0)] = np.nan
    vals = block[:, pixels]
    with np.errstate(invalid="ignore"), _quiet():
        return np.nanmean(vals, axis=1) if vals.size else np.full(block.shape[0], np.nan)


class _quiet:
    def __enter__(self) -> None:
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: Any) -> None:
        self._w.__exit__(*exc)


def read_coherence(path: str | Path, grid: GridSpec) -> NDArray[np.float32]:
    """Temporal coherence (0-1) on ``grid`` from MintPy HDF5 or a GeoTIFF.

    Raises:
        InputError: not MintPy/GeoTIFF, no coherence dataset, grids differ or do not overlap.
    """
    path = Path(path)
    if path.suffix.lower() in (".h5", ".he5", ".hdf5"):
        attrs = read_attrs(path)
        own = mintpy_grid(path, attrs)
        with open_h5(path) as f:
            data = _dataset(f, path, ("temporalCoherence", "coherence", "mask")).__getitem__(())
        data = data.astype(np.float32)
        if same_grid(own, grid):
            return data
        check_overlap(path, own, grid, "coherence")
        raise GridMismatchError(
            path,
            f"coherence grid {own.shape} differs from the InSAR grid {grid.shape}; "
            "geocode both onto one grid (MintPy geocode.py --lalo-step)",
        )
    return read_raster_on_grid(path, grid, what="coherence", resampling=Resampling.nearest)


def read_geometry_height(path: str | Path, out_tif: str | Path) -> Path:
    """Write the ``height`` of a MintPy ``geometryGeo.h5`` to a GeoTIFF (for the terrain masks)."""
    attrs = read_attrs(path)
    grid = mintpy_grid(path, attrs)
    with open_h5(path) as f:
        h = _dataset(f, path, ("height",))[()].astype(np.float32)
    h[h == 0] = np.nan
    return write_geotiff(out_tif, h, grid, tags={"SOURCE": str(path)})


def write_mintpy_h5(
    path: str | Path,
    datasets: Mapping[str, NDArray[Any]],
    attrs: Mapping[str, Any],
) -> Path:
    """Write an HDF5 file as MintPy's ``writefile`` does (datasets + string root attributes)."""
    h5py = _h5py()
    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for name, data in datasets.items():
            f.create_dataset(name, data=data)
        for k, v in attrs.items():
            f.attrs[k] = str(v)
    return path


def mintpy_attrs_for_grid(grid: GridSpec) -> dict[str, str]:
    """MintPy geocoding attributes (X_FIRST … EPSG) describing ``grid``."""
    t = grid.transform
    geographic = grid.crs.is_geographic
    out = {
        "LENGTH": str(grid.height),
        "WIDTH": str(grid.width),
        "X_FIRST": repr(float(t.c)),
        "Y_FIRST": repr(float(t.f)),
        "X_STEP": repr(float(t.a)),
        "Y_STEP": repr(float(t.e)),
        "X_UNIT": "degrees" if geographic else "meters",
        "Y_UNIT": "degrees" if geographic else "meters",
    }
    epsg = grid.crs.to_epsg()
    if epsg:
        out["EPSG"] = str(epsg)
        if 32601 <= epsg <= 32760:
            out["UTM_ZONE"] = f"{epsg % 100}{'N' if epsg < 32700 else 'S'}"
    return out
