"""Readers (and small writers) for MintPy HDF5 products, rate GeoTIFFs and HyP3 interferograms.

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
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from numpy.typing import NDArray
from rasterio.crs import CRS
from rasterio.enums import Resampling

from thawdetect.core.errors import (
    CRSMismatchError,
    GridMismatchError,
    InputError,
    MissingBandError,
    MissingDependencyError,
)
from thawdetect.core.grid import GridSpec
from thawdetect.plugins.insar_sbas.timefunc import SeasonalFit, fit_seasonal, parse_dates

__all__ = [
    "InsarProducts",
    "check_overlap",
    "mintpy_grid",
    "read_attrs",
    "read_coherence",
    "read_geometry_height",
    "read_raster_on_grid",
    "read_timeseries_fit",
    "read_unw_rate",
    "read_velocity",
    "same_grid",
    "write_geotiff",
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
HYP3_NAME = re.compile(r"S1\w\w_(\d{8})T\d{6}_(\d{8})T\d{6}_")


@dataclass
class InsarProducts:
    """Everything the detector needs, on one grid.

    Attributes:
        grid: the InSAR grid.
        rate_mm_yr: LOS rate, mm/yr, NaN = no data.
        source: the file the rate came from (for messages).
        amplitude_pp_mm: seasonal amplitude A (peak-to-peak, mm), when known.
        coherence: temporal coherence 0-1, when known.
        fit: the seasonal fit, when a time series was read.
        dates: the time-series dates, when a time series was read.
        timeseries_file: the time-series file, for candidate mean series.
        timeseries_scale_mm: factor from the file's unit to mm.
        dem: DEM file for the terrain masks, when known.
    """

    grid: GridSpec
    rate_mm_yr: NDArray[np.float32]
    source: Path
    amplitude_pp_mm: NDArray[np.float32] | None = None
    coherence: NDArray[np.float32] | None = None
    fit: SeasonalFit | None = None
    dates: list[date] | None = None
    timeseries_file: Path | None = None
    timeseries_scale_mm: float = 1000.0
    dem: Path | None = None
    notes: dict[str, Any] = field(default_factory=dict)


def _h5py() -> Any:
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is a core dependency today
        raise MissingDependencyError("h5py", "insar", "reading MintPy products") from exc
    return h5py


def _open_h5(path: str | Path) -> Any:
    h5py = _h5py()
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if not h5py.is_hdf5(path):
        raise InputError(path, "not an HDF5 file, so not a MintPy product")
    try:
        return h5py.File(path, "r")
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
    with _open_h5(path) as f:
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
    with _open_h5(path) as f:
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


def read_timeseries_fit(
    path: str | Path,
    *,
    period_yr: float = 1.0,
    min_epochs: int = 10,
    chunk_pixels: int = 250_000,
) -> tuple[SeasonalFit, list[date], GridSpec, dict[str, str]]:
    """Fit the seasonal model to a MintPy ``timeseries*.h5``, reading it in row blocks.

    Returns:
        (fit, dates, grid, attributes).

    Raises:
        InputError: not a MintPy time series, missing ``timeseries``/``date`` datasets, fewer
            epochs than parameters.
    """
    attrs = read_attrs(path)
    grid = mintpy_grid(path, attrs)
    unit = attrs.get("UNIT", "m")
    with _open_h5(path) as f:
        ds = _dataset(f, path, ("timeseries",))
        if "date" not in f:
            raise MissingBandError(path, "no 'date' dataset (not a MintPy time series)")
        dates = parse_dates(list(f["date"][()]))
        if ds.ndim != 3 or ds.shape[1:] != grid.shape:
            raise InputError(path, f"timeseries is {ds.shape}, expected (epochs, {grid.shape})")
        n_ep, length, width = ds.shape
        rows = max(1, chunk_pixels // max(width, 1))
        fits = []
        for r0 in range(0, length, rows):
            block = ds[:, r0 : r0 + rows, :].astype(np.float32)
            # MintPy no-data: pixels zero at every epoch (the reference pixel is fixed below)
            block[:, (block == 0).all(axis=0)] = np.nan
            fits.append(
                fit_seasonal(
                    block,
                    dates,
                    unit=unit,
                    period_yr=period_yr,
                    chunk_pixels=chunk_pixels,
                    min_epochs=min_epochs,
                    source=str(path),
                )
            )
    fit = _concat_fits(fits)
    try:
        ry, rx = int(attrs["REF_Y"]), int(attrs["REF_X"])
        if 0 <= ry < length and 0 <= rx < width:
            for name in (
                "offset_mm",
                "rate_mm_yr",
                "cos_mm",
                "sin_mm",
                "seasonal_amplitude_pp_mm",
                "residual_rms_mm",
            ):
                getattr(fit, name)[ry, rx] = 0.0
            fit.phase_rad[ry, rx] = 0.0
            fit.valid_epochs[ry, rx] = n_ep
    except (KeyError, ValueError):
        pass
    return fit, dates, grid, attrs


def _concat_fits(fits: list[SeasonalFit]) -> SeasonalFit:
    first = fits[0]
    arrays = {
        name: np.concatenate([getattr(x, name) for x in fits], axis=0)
        for name in SeasonalFit.ARRAY_FIELDS
    }
    return SeasonalFit(**arrays, t0=first.t0, period_yr=first.period_yr)


def read_timeseries_mean(
    path: str | Path, rows: slice, cols: slice, pixels: NDArray[np.bool_]
) -> NDArray[np.float64]:
    """Mean displacement (file unit) per epoch over ``pixels`` inside the window (NaN-aware)."""
    with _open_h5(path) as f:
        block = f["timeseries"][:, rows, cols].astype(np.float64)
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

    def __exit__(self, *exc: object) -> None:
        self._w.__exit__(*exc)


def same_grid(a: GridSpec, b: GridSpec, tol: float = 1e-6) -> bool:
    """Whether two grids are identical (CRS, shape, transform within ``tol`` of a pixel)."""
    if a.shape != b.shape or a.crs != b.crs:
        return False
    ta, tb = np.array(a.transform)[:6], np.array(b.transform)[:6]
    return bool(np.all(np.abs(ta - tb) <= tol * max(a.res)))


def check_overlap(path: str | Path, other: GridSpec, grid: GridSpec, what: str) -> None:
    """Raise :class:`GridMismatchError` when ``other`` does not overlap ``grid``."""
    from rasterio.warp import transform_bounds

    try:
        left, bottom, right, top = transform_bounds(other.crs, grid.crs, *other.bounds)
    except Exception as exc:
        raise CRSMismatchError(path, f"cannot transform {what} from {other.crs} ({exc})") from None
    gl, gb, gr, gt = grid.bounds
    if left >= gr or right <= gl or bottom >= gt or top <= gb:
        raise GridMismatchError(
            path,
            f"{what} does not overlap the InSAR grid ({what} bounds in {grid.crs}: "
            f"{left:.6g}, {bottom:.6g}, {right:.6g}, {top:.6g}; InSAR: "
            f"{gl:.6g}, {gb:.6g}, {gr:.6g}, {gt:.6g})",
        )


def read_raster_on_grid(
    path: str | Path,
    grid: GridSpec,
    *,
    what: str = "raster",
    resampling: Resampling = Resampling.bilinear,
) -> NDArray[np.float32]:
    """Read band 1 of a GeoTIFF onto ``grid`` (identical grids: copied; otherwise resampled).

    A raster on the same pixel lattice but with extra rows/columns (HyP3 masks) is cropped
    exactly. Nodata and cells outside the raster become NaN.

    Raises:
        InputError: unreadable, no CRS; GridMismatchError: no overlap.
    """
    from rasterio.warp import reproject

    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    try:
        src = rasterio.open(path)
    except rasterio.errors.RasterioIOError:
        raise InputError(path, f"cannot be opened as a raster ({what})") from None
    with src:
        if src.crs is None:
            raise CRSMismatchError(path, f"{what} has no CRS; assign one (gdal_edit.py -a_srs)")
        own = GridSpec(src.crs, src.transform, src.width, src.height)
        check_overlap(path, own, grid, what)
        if same_grid(own, grid):
            data = src.read(1, masked=True)
            return np.ma.filled(data.astype(np.float32), np.nan)
        if src.crs == grid.crs and np.allclose(own.res, grid.res):
            off = ~own.transform * (grid.transform.c, grid.transform.f)
            if np.allclose(off, np.round(off), atol=1e-6):
                from rasterio.windows import Window

                win = Window(round(off[0]), round(off[1]), grid.width, grid.height)
                data = src.read(1, window=win, boundless=True, masked=True)
                return np.ma.filled(data.astype(np.float32), np.nan)
        out = np.full(grid.shape, np.nan, dtype=np.float32)
        src_nodata = src.nodata
        reproject(
            rasterio.band(src, 1),
            out,
            src_nodata=src_nodata,
            dst_transform=grid.transform,
            dst_crs=grid.crs,
            dst_nodata=np.nan,
            resampling=resampling,
        )
        return out


def read_coherence(path: str | Path, grid: GridSpec) -> NDArray[np.float32]:
    """Temporal coherence (0-1) on ``grid`` from MintPy HDF5 or a GeoTIFF.

    Raises:
        InputError: not MintPy/GeoTIFF, no coherence dataset, grids differ or do not overlap.
    """
    path = Path(path)
    if path.suffix.lower() in (".h5", ".he5", ".hdf5"):
        attrs = read_attrs(path)
        own = mintpy_grid(path, attrs)
        with _open_h5(path) as f:
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
    with _open_h5(path) as f:
        h = _dataset(f, path, ("height",))[()].astype(np.float32)
    h[h == 0] = np.nan
    return write_geotiff(out_tif, h, grid, tags={"SOURCE": str(path)})


def read_unw_rate(
    path: str | Path,
    *,
    wavelength_m: float,
    span_days: float | None = None,
    water_mask: str | Path | None = None,
    reference_yx: tuple[int, int] | None = None,
) -> tuple[NDArray[np.float32], GridSpec, dict[str, Any]]:
    """LOS rate (mm/yr) from one unwrapped interferogram (radians, HyP3 ``*_unw_phase.tif``).

    Displacement d = -phase·λ/4π (MintPy's sign: positive towards the satellite), referenced to
    ``reference_yx`` or, when None, to the median of valid pixels; rate = d / span. The span comes
    from a HyP3 file name (``S1AA_YYYYMMDDThhmmss_YYYYMMDDThhmmss_...``) or ``span_days``.
    Water (mask value 0) and phase nodata (0) become NaN.

    Raises:
        InputError: unreadable, no span, reference pixel masked; GridMismatchError: mask grid.
    """
    path = Path(path)
    m = HYP3_NAME.search(path.name)
    if m:
        d1, d2 = parse_dates(list(m.groups()))
        span = float((d2 - d1).days)
    elif span_days is not None:
        span = float(span_days)
    else:
        raise InputError(
            path,
            "no dates in the file name (HyP3 S1xx_YYYYMMDDThhmmss_YYYYMMDDThhmmss_...); "
            "set interferogram_span_days",
        )
    grid = GridSpec.from_raster(path)
    phase = read_raster_on_grid(path, grid, what="unwrapped phase")
    if water_mask is not None:
        wm = read_raster_on_grid(water_mask, grid, what="water mask", resampling=Resampling.nearest)
        phase[~(wm > 0)] = np.nan
    disp_mm = -phase * np.float32(wavelength_m / (4 * np.pi) * 1000.0)
    if reference_yx is not None:
        ref = _reference_value(disp_mm, reference_yx, path)
    else:
        ref = float(np.nanmedian(disp_mm)) if np.isfinite(disp_mm).any() else 0.0
    rate = ((disp_mm - ref) / np.float32(span / 365.25)).astype(np.float32)
    return rate, grid, {"span_days": span, "reference_mm": ref}


def _reference_value(a: NDArray[np.floating], yx: tuple[int, int], path: Path) -> float:
    y, x = yx
    if not (0 <= y < a.shape[0] and 0 <= x < a.shape[1]):
        raise InputError(path, f"reference point {yx} is outside the {a.shape} grid")
    v = float(a[y, x])
    if not np.isfinite(v):
        raise InputError(path, f"reference point {yx} is in a masked area (no data there)")
    return v


def write_geotiff(
    path: str | Path,
    array: NDArray[Any],
    grid: GridSpec,
    *,
    nodata: float | None = None,
    tags: Mapping[str, str] | None = None,
    description: str | None = None,
) -> Path:
    """Write one band (float NaN nodata by default) as a tiled, deflate-compressed GeoTIFF."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if nodata is None and np.issubdtype(array.dtype, np.floating):
        nodata = float("nan")
    profile = {
        "driver": "GTiff",
        "width": grid.width,
        "height": grid.height,
        "count": 1,
        "dtype": array.dtype.name,
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": nodata,
        "compress": "deflate",
    }
    if grid.width >= 256 and grid.height >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    tmp = path.with_name(path.name + ".tmp.tif")
    with rasterio.open(tmp, "w", **profile) as dst:
        dst.write(array, 1)
        if tags:
            dst.update_tags(**tags)
        if description:
            dst.set_band_description(1, description)
    tmp.replace(path)
    return path


def write_mintpy_h5(
    path: str | Path,
    datasets: Mapping[str, NDArray[Any]],
    attrs: Mapping[str, Any],
) -> Path:
    """Write an HDF5 file as MintPy's ``writefile`` does (datasets + string root attributes)."""
    h5py = _h5py()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        for name, data in datasets.items():
            f.create_dataset(name, data=data)
        for k, v in attrs.items():
            f.attrs[k] = str(v)
    tmp.replace(path)
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
