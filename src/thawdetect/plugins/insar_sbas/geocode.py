"""Geocode MintPy products in radar coordinates through MintPy's own ``geocode.py``.

A MintPy product without ``X_FIRST``/``Y_FIRST`` is in radar coordinates (rows = azimuth lines,
columns = range samples). With a lookup table that gives the latitude and longitude of every
radar pixel, this module calls :func:`mintpy.cli.geocode.main` (pyresample, the same call as
``geocode.py FILE -l LOOKUP --lalo-step DLAT DLON -i nearest -o OUT``) and hands back the
``geo_*.h5`` it wrote. Supported lookup tables:

* MintPy ``inputs/geometryRadar.h5`` (``latitude`` and ``longitude`` datasets, radar grid);
* ISCE2 ``lat.rdr`` with ``lon.rdr`` beside it (each with its ``.xml``/``.vrt``, multilooked to
  the product's grid).

Lookup tables in geo coordinates (GAMMA/ROI_PAC ``azimuthCoord``/``rangeCoord``) are refused with
one line: MintPy cannot choose the output step for them.

Outputs are cached under ``<cache_dir>/<key>/`` where the key hashes the input and lookup paths,
sizes and modification times, the output step, the resampling method and the MintPy version, so
each product is geocoded once per run. Next to the ``geo_*.h5`` are ``geocode.json`` (the call,
the step in degrees and metres, the output grid) and ``geocode.log`` (MintPy's own output).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import math
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from thawdetect.plugin_api import (
    GridMismatchError,
    InputError,
    MissingBandError,
    MissingDependencyError,
)

__all__ = [
    "GeocodeResult",
    "LookupTable",
    "geocode_product",
    "is_radar_coded",
    "lalo_step_deg",
    "open_lookup",
]

log = logging.getLogger(__name__)

#: MintPy's mean Earth radius (``mintpy.constants.EARTH_RADIUS``), metres.
EARTH_RADIUS_M = 6371.0088e3


def _mintpy_version() -> str:
    try:
        from mintpy.version import version
    except ImportError as exc:
        raise MissingDependencyError(
            "mintpy", "insar", "geocoding radar-coordinate products"
        ) from exc
    return str(version)


def is_radar_coded(attrs: dict[str, str]) -> bool:
    """Whether MintPy attributes describe a product in radar coordinates (no ``Y_FIRST``)."""
    return "Y_FIRST" not in attrs or "X_FIRST" not in attrs


@dataclass(frozen=True)
class LookupTable:
    """A checked radar-coordinate lookup table.

    Attributes:
        path: the lookup file given in the config (``geometryRadar.h5`` or ``lat.rdr``).
        lon_file: ``lon.rdr`` for an ISCE2 lookup, None for MintPy HDF5.
        shape: (rows, columns) of the radar grid it covers.
        lat_range_deg: (min, max) latitude of valid pixels, degrees.
        lon_range_deg: (min, max) longitude of valid pixels, degrees.
    """

    path: Path
    lon_file: Path | None
    shape: tuple[int, int]
    lat_range_deg: tuple[float, float]
    lon_range_deg: tuple[float, float]

    @property
    def kind(self) -> str:
        """``"mintpy"`` (geometryRadar.h5) or ``"isce2"`` (lat.rdr/lon.rdr)."""
        return "mintpy" if self.lon_file is None else "isce2"

    def stamp(self) -> list[Any]:
        """Path, size and mtime of the file(s), for cache keys."""
        files = [self.path] if self.lon_file is None else [self.path, self.lon_file]
        return [_stamp(p) for p in files]


def _stamp(path: Path) -> list[Any]:
    st = Path(path).stat()
    return [str(Path(path).resolve()), st.st_size, st.st_mtime_ns]


def _isce_lon_file(lat_file: Path) -> Path:
    name = lat_file.name
    if not name.startswith("lat"):
        raise InputError(
            lat_file,
            "ISCE2 lookup must be the latitude file (lat.rdr) with lon.rdr beside it",
        )
    return lat_file.with_name("lon" + name[3:])


def _valid_range(a: np.ndarray, path: Path, what: str, lo: float, hi: float) -> tuple[float, float]:
    ok = np.isfinite(a) & (a != 0)
    if not ok.any():
        raise InputError(path, f"{what} has no valid value (all zero or NaN)")
    vmin, vmax = float(a[ok].min()), float(a[ok].max())
    if vmin < lo or vmax > hi:
        raise InputError(path, f"{what} spans {vmin:g}..{vmax:g}, not degrees ({lo:g}..{hi:g})")
    return vmin, vmax


def open_lookup(path: str | Path) -> LookupTable:
    """Check a lookup table and read its extent.

    Args:
        path: MintPy ``geometryRadar.h5`` or ISCE2 ``lat.rdr`` (``lon.rdr`` beside it).

    Raises:
        InputError: missing, unreadable, in geo coordinates, values not degrees.
        MissingBandError: no ``latitude``/``longitude`` dataset.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "lookup table not found")
    import h5py

    if h5py.is_hdf5(path):
        try:
            f = h5py.File(path, "r")
        except OSError as exc:
            raise InputError(path, f"lookup table cannot be opened as HDF5 ({exc})") from None
        with f:
            attrs = {k: str(v) for k, v in f.attrs.items()}
            if not is_radar_coded(attrs):
                raise InputError(
                    path,
                    "lookup table is in geo coordinates (X_FIRST/Y_FIRST); give the "
                    "radar-coordinate one with latitude/longitude (MintPy inputs/geometryRadar.h5)",
                )
            missing = [d for d in ("latitude", "longitude") if d not in f]
            if missing:
                raise MissingBandError(
                    path,
                    f"lookup table has no {'/'.join(repr(m) for m in missing)} dataset "
                    f"(datasets: {', '.join(sorted(f.keys())) or 'none'}); "
                    "use MintPy inputs/geometryRadar.h5",
                )
            lat, lon = f["latitude"], f["longitude"]
            if lat.ndim != 2 or lat.shape != lon.shape:
                raise InputError(
                    path, f"latitude {lat.shape} and longitude {lon.shape} are not one 2-D grid"
                )
            lat_a = lat[()].astype(np.float64)
            lon_a = lon[()].astype(np.float64)
        lon_file = None
    else:
        lon_file = _isce_lon_file(path)
        if not lon_file.exists():
            raise InputError(path, f"ISCE2 lookup: {lon_file.name} not found beside it")
        lat_a = _read_isce(path, "latitude")
        lon_a = _read_isce(lon_file, "longitude")
        if lat_a.shape != lon_a.shape:
            raise GridMismatchError(
                path, f"latitude {lat_a.shape} and {lon_file.name} {lon_a.shape} differ in shape"
            )
    lat_r = _valid_range(lat_a, path, "latitude", -90.0, 90.0)
    lon_r = _valid_range(lon_a, path, "longitude", -180.0, 360.0)
    return LookupTable(path, lon_file, (int(lat_a.shape[0]), int(lat_a.shape[1])), lat_r, lon_r)


def _read_isce(path: Path, what: str) -> np.ndarray:
    _mintpy_version()
    from mintpy.utils import readfile

    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = readfile.read(str(path))[0]
    except Exception as exc:
        raise InputError(
            path,
            f"cannot read the ISCE2 {what} lookup ({type(exc).__name__}: {exc}); "
            "it needs its .xml or .vrt beside it",
        ) from None
    if data.ndim != 2:
        raise InputError(path, f"ISCE2 {what} lookup is {data.shape}, not one 2-D band")
    return data.astype(np.float64)


def lalo_step_deg(
    lookup: LookupTable, *, step_m: float, step_deg: tuple[float, float] | None = None
) -> tuple[float, float]:
    """Output (latitude, longitude) step in degrees, latitude negative (MintPy's ``--lalo-step``).

    Args:
        lookup: the lookup table (its mid latitude sets the longitude step).
        step_m: output pixel size in metres, used when ``step_deg`` is None.
        step_deg: (latitude, longitude) step in degrees; overrides ``step_m``.
    """
    if step_deg is not None:
        return -abs(float(step_deg[0])), abs(float(step_deg[1]))
    lat_c = 0.5 * (lookup.lat_range_deg[0] + lookup.lat_range_deg[1])
    dlat = math.degrees(step_m / EARTH_RADIUS_M)
    dlon = math.degrees(step_m / (EARTH_RADIUS_M * math.cos(math.radians(lat_c))))
    return -dlat, dlon


@dataclass(frozen=True)
class GeocodeResult:
    """Where a geocoded product went and how it was made.

    Attributes:
        source: the radar-coordinate input.
        path: the ``geo_*.h5`` MintPy wrote.
        record: what ``geocode.json`` holds (call, step, grid).
        cached: whether an earlier call's output was reused.
    """

    source: Path
    path: Path
    record: dict[str, Any]
    cached: bool


def geocode_product(
    path: str | Path,
    lookup: LookupTable,
    *,
    cache_dir: str | Path,
    step_m: float = 30.0,
    step_deg: tuple[float, float] | None = None,
    interp_method: Literal["nearest", "linear"] = "nearest",
    product_shape: tuple[int, int] | None = None,
    target_grid: tuple[tuple[float, float, float, float], tuple[float, float]] | None = None,
) -> GeocodeResult:
    """Geocode one radar-coordinate MintPy HDF5 product with MintPy's ``geocode.py``.

    Args:
        path: the product (``velocity.h5``, ``timeseries.h5``, ``temporalCoherence.h5``,
            ``geometryRadar.h5``), in radar coordinates.
        lookup: the checked lookup table (:func:`open_lookup`).
        cache_dir: parent folder of the cache entries.
        step_m: output pixel size, metres (converted at the lookup's mid latitude).
        step_deg: output (latitude, longitude) step, degrees; overrides ``step_m``.
        interp_method: MintPy ``--interp``: nearest (default; keeps values) or linear.
        product_shape: the product's (LENGTH, WIDTH); read from the file when None.
        target_grid: ((south, north, west, east), (lat_step, lon_step)) in degrees, outer pixel
            edges: put the output exactly on this grid (another input that is already geocoded)
            instead of the lookup's extent; overrides ``step_m``/``step_deg``.

    Returns:
        The ``geo_*.h5`` path and its record.

    Raises:
        GridMismatchError: the lookup's shape differs from the product's (message names the
            lookup file).
        InputError: MintPy's geocoding failed (message names the product and the log).
    """
    path = Path(path)
    version = _mintpy_version()
    if product_shape is None:
        from thawdetect.plugins.insar_sbas.mintpy_h5 import read_attrs

        a = read_attrs(path)
        product_shape = (int(a["LENGTH"]), int(a["WIDTH"]))
    if tuple(product_shape) != lookup.shape:
        raise GridMismatchError(
            lookup.path,
            f"lookup table is {lookup.shape[0]} x {lookup.shape[1]} (rows x columns) but "
            f"{path.name} is {product_shape[0]} x {product_shape[1]}; use the lookup of the "
            "same MintPy run (same looks and subset)",
        )
    snwe = None
    if target_grid is not None:
        snwe, step_deg = target_grid
    dlat, dlon = lalo_step_deg(lookup, step_m=step_m, step_deg=step_deg)
    key_blob = json.dumps(
        [_stamp(path), lookup.stamp(), [dlat, dlon], snwe, interp_method, version], default=str
    )
    key = hashlib.sha1(key_blob.encode()).hexdigest()[:16]
    entry = Path(cache_dir) / f"{path.stem}_{key}"
    out = entry / f"geo_{path.name}"
    record_file = entry / "geocode.json"
    if out.exists() and record_file.exists():
        return GeocodeResult(path, out, json.loads(record_file.read_text()), cached=True)

    tmp = entry.with_name(entry.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    args = [str(path), "-l", str(lookup.path)]
    if lookup.lon_file is not None:
        args += ["--lat-file", str(lookup.path), "--lon-file", str(lookup.lon_file)]
    if snwe is not None:
        args += ["--bbox", *(repr(float(v)) for v in snwe)]
    args += [
        "--lalo-step",
        repr(dlat),
        repr(dlon),
        "--interp",
        interp_method,
        "--software",
        "pyresample",
        "--nprocs",
        "1",
        "-o",
        str(tmp / out.name),
    ]
    buf = io.StringIO()
    from mintpy.cli import geocode as mintpy_geocode

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with contextlib.redirect_stdout(buf):
                mintpy_geocode.main(args)
        except (Exception, SystemExit) as exc:
            (tmp / "geocode.log").write_text(buf.getvalue())
            raise InputError(
                path,
                f"MintPy geocode.py failed ({type(exc).__name__}: {exc}); "
                f"see {tmp / 'geocode.log'}",
            ) from None
    for w in caught:
        log.warning("%s: MintPy geocode.py: %s", path, w.message)
    (tmp / "geocode.log").write_text(buf.getvalue())
    produced = tmp / out.name
    if not produced.exists():
        raise InputError(path, f"MintPy geocode.py wrote no output; see {tmp / 'geocode.log'}")

    from thawdetect.plugins.insar_sbas.mintpy_h5 import read_attrs

    geo = read_attrs(produced)
    lat_c = 0.5 * (lookup.lat_range_deg[0] + lookup.lat_range_deg[1])
    record: dict[str, Any] = {
        "source": str(path),
        "lookup_file": str(lookup.path),
        "lookup_kind": lookup.kind,
        "mintpy_version": version,
        "mintpy_call": "geocode.py " + " ".join(args).replace(str(tmp), str(entry)),
        "interp_method": interp_method,
        "lat_step_deg": dlat,
        "lon_step_deg": dlon,
        "step_m": {
            "requested": None if step_deg is not None else step_m,
            "from_target_grid": snwe is not None,
            "lat": abs(dlat) * math.pi / 180 * EARTH_RADIUS_M,
            "lon": abs(dlon) * math.pi / 180 * EARTH_RADIUS_M * math.cos(math.radians(lat_c)),
        },
        "output_shape": [int(geo["LENGTH"]), int(geo["WIDTH"])],
        "x_first": float(geo["X_FIRST"]),
        "y_first": float(geo["Y_FIRST"]),
    }
    (tmp / "geocode.json").write_text(json.dumps(record, indent=2))
    shutil.rmtree(entry, ignore_errors=True)
    tmp.replace(entry)
    log.info(
        "%s: geocoded through MintPy onto a %.3g m grid: %s", path, record["step_m"]["lat"], out
    )
    return GeocodeResult(path, out, record, cached=False)
