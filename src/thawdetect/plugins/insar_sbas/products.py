"""Turn an :class:`InsarSbasConfig`'s inputs into :class:`InsarProducts` on one grid."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rasterio.enums import Resampling

from thawdetect.plugin_api import ConfigError, GridMismatchError, GridSpec, InputError
from thawdetect.plugins.insar_sbas.config import INPUT_SOURCES, InsarSbasConfig
from thawdetect.plugins.insar_sbas.interferogram import read_unw_rate
from thawdetect.plugins.insar_sbas.mintpy_h5 import (
    mintpy_grid,
    read_attrs,
    read_coherence,
    read_geometry_height,
    read_velocity,
)
from thawdetect.plugins.insar_sbas.rasters import read_raster_on_grid, same_grid
from thawdetect.plugins.insar_sbas.timefunc import SeasonalFit

__all__ = ["SOURCES", "InsarProducts", "Source", "load_products"]


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
        geometry_file: the MintPy geometry file on this grid (geocoded when the input was in
            radar coordinates), for the LOS angles of the downslope projection.
        timeseries_checksum: checksum of the time series (its dates and per-epoch digests, from
            the seasonal fit's cache), for the run's caches of what is made from it.
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
    geometry_file: Path | None = None
    timeseries_checksum: str = ""
    notes: dict[str, Any] = field(default_factory=dict)


_RATE_FILE_SCALE = {"mm/yr": 1.0, "cm/yr": 10.0, "m/yr": 1000.0}


@dataclass(frozen=True)
class Source:
    """One kind of InSAR input and what the detector does with it.

    Attributes:
        name: a key of :data:`~.config.INPUT_SOURCES` (whose fields select it), or a stage of its
            own selected by ``selects`` (e.g. ``licsbas``: a ``timeseries_file`` in LiCSBAS's
            layout).
        prepare: ``prepare(cfg, run_dir, region) -> cfg``: turns the input into a later
            source's (SLCs and HyP3 stacks into MintPy products, LiCSBAS into MintPy layout),
            cached in the run directory.
        read: ``read(cfg, run_dir) -> InsarProducts``: reads the rate (and what else the input
            has) onto its grid.
        selects: whether a config uses this source (default: one of its fields is set).
    """

    name: str
    prepare: Callable[[InsarSbasConfig, Path, Any], InsarSbasConfig] | None = None
    read: Callable[[InsarSbasConfig, Path], InsarProducts] | None = None
    selects: Callable[[InsarSbasConfig], bool] | None = None

    def selected(self, cfg: InsarSbasConfig) -> bool:
        """Whether ``cfg`` uses this source."""
        if self.selects is not None:
            return self.selects(cfg)
        return any(getattr(cfg, f) is not None for f in INPUT_SOURCES.get(self.name, ()))


def _prepare_isce2(cfg: InsarSbasConfig, run_dir: Path, region: Any) -> InsarSbasConfig:
    from thawdetect.plugins.insar_sbas.isce2 import run_isce2_stack

    # stops with one line without ISCE2 or at a failed step (resumable)
    out = run_isce2_stack(cfg, run_dir=run_dir, region=region)
    return cfg.model_copy(
        update={
            "slc_dir": None,
            "timeseries_file": out["timeseries"],
            "coherence_file": cfg.coherence_file or out["temporalCoherence"],
            "geometry_file": cfg.geometry_file or out["geometry"],
            "lookup_file": cfg.lookup_file or out["geometry"],
        }
    )


def _prepare_hyp3(cfg: InsarSbasConfig, run_dir: Path, region: Any) -> InsarSbasConfig:
    from thawdetect.plugins.insar_sbas.hyp3 import run_smallbaseline

    out = run_smallbaseline(cfg, run_dir=run_dir)
    return cfg.model_copy(
        update={
            "hyp3_dir": None,
            "timeseries_file": out["timeseries"],
            "coherence_file": cfg.coherence_file or out["temporalCoherence"],
            "geometry_file": cfg.geometry_file or out.get("geometry"),
        }
    )


def _prepare_licsbas(cfg: InsarSbasConfig, run_dir: Path, region: Any) -> InsarSbasConfig:
    from thawdetect.plugins.insar_sbas.licsbas import licsbas_inputs

    return licsbas_inputs(cfg, run_dir)  # a LiCSBAS cum*.h5 → MintPy layout (cached)


def _read_geotiff(cfg: InsarSbasConfig, run_dir: Path) -> InsarProducts:
    assert cfg.rate_file is not None
    grid = GridSpec.from_raster(cfg.rate_file)
    rate = read_raster_on_grid(cfg.rate_file, grid, what="rate")
    rate *= np.float32(_RATE_FILE_SCALE[cfg.rate_file_unit])
    products = InsarProducts(grid=grid, rate_mm_yr=rate, source=Path(cfg.rate_file))
    if cfg.amplitude_file is not None:
        products.amplitude_pp_mm = read_raster_on_grid(
            cfg.amplitude_file, grid, what="seasonal amplitude"
        )
    return products


def _read_unwrapped(cfg: InsarSbasConfig, run_dir: Path) -> InsarProducts:
    assert cfg.unw_phase_file is not None
    rate, grid, notes = read_unw_rate(
        cfg.unw_phase_file,
        wavelength_m=cfg.wavelength_m,
        span_days=cfg.interferogram_span_days,
        water_mask=cfg.water_mask_file,
        reference_yx=cfg.reference_yx,
    )
    products = InsarProducts(grid=grid, rate_mm_yr=rate, source=Path(cfg.unw_phase_file))
    products.notes.update(notes)
    return products


def _is_timeseries(cfg: InsarSbasConfig) -> bool:
    return cfg.timeseries_file is not None


def load_products(
    config: InsarSbasConfig, *, run_dir: Path, work_dir: Path, region: Any = None
) -> InsarProducts:
    """Read (or, for HyP3/SLC stacks, produce) the rate, amplitude, coherence and DEM.

    The config's source (:data:`SOURCES`) is prepared (SLCs, HyP3 and LiCSBAS stacks become
    MintPy products, cached), inputs in radar coordinates are geocoded, and the first source
    that reads gives the rate; then coherence, DEM and geometry join it on its grid.

    Args:
        config: the detector config.
        run_dir: the run directory (caches: MintPy work folder, seasonal fit).
        work_dir: this iteration's directory.
        region: the region (AOI for ISCE2's bounding box).

    Raises:
        ConfigError: no input configured.
        InputError: an input file is unusable (message starts with its path).
    """
    if not config.has_input():
        fields = [f for group in INPUT_SOURCES.values() for f in group]
        raise ConfigError(
            f"detectors.insar_sbas: no input; set {', '.join(fields[:-1])} or {fields[-1]}"
        )
    cfg = config
    for source in SOURCES:
        if source.prepare is not None and source.selected(cfg):
            cfg = source.prepare(cfg, Path(run_dir), region)
    cfg, geocoded = _geocode_radar_inputs(cfg, Path(run_dir))
    reader = next((s for s in SOURCES if s.read is not None and s.selected(cfg)), None)
    if reader is None or reader.read is None:
        raise ConfigError("detectors.insar_sbas: no source reads this input (see INPUT_SOURCES)")
    products = reader.read(cfg, Path(run_dir))
    if cfg.coherence_file is not None:
        products.coherence = _coherence(Path(cfg.coherence_file), products.grid, Path(run_dir))
    if cfg.dem_file is not None:
        products.dem = Path(cfg.dem_file)
    elif cfg.geometry_file is not None:
        products.dem = _dem_from_geometry(Path(cfg.geometry_file), work_dir, Path(run_dir))
    if cfg.geometry_file is not None:
        products.geometry_file = Path(cfg.geometry_file)
    if geocoded:
        products.notes["geocode"] = geocoded
    if cfg.reference_yx is not None and cfg.unw_phase_file is None:
        _rereference(products, cfg)
    return products


def _coherence(path: Path, grid: GridSpec, run_dir: Path) -> NDArray[np.float32]:
    """Temporal coherence on ``grid``, read (or resampled) once per file checksum and grid."""
    from thawdetect.plugins.insar_sbas.invariants import (
        cache_dir,
        cached_arrays,
        file_digest,
        grid_digest,
    )

    key = ["coherence", str(path.resolve()), file_digest(path), grid_digest(grid)]
    arrays, _ = cached_arrays(
        cache_dir(run_dir, "inputs"),
        key,
        lambda: {"coherence": read_coherence(path, grid)},
    )
    return arrays["coherence"]


def _dem_from_geometry(geometry: Path, work_dir: Path, run_dir: Path) -> Path:
    """The ``height`` of a MintPy geometry file as a GeoTIFF, written once per file checksum and
    linked into this iteration's folder as ``dem_from_geometry.tif``."""
    from thawdetect.plugins.insar_sbas.invariants import (
        cache_dir,
        cached_file,
        file_digest,
        link_into,
    )

    kept = cached_file(
        cache_dir(run_dir, "inputs"),
        ["dem_from_geometry", str(geometry.resolve()), file_digest(geometry)],
        "dem_from_geometry.tif",
        lambda path: read_geometry_height(geometry, path),
    )
    return link_into(kept, work_dir / "dem_from_geometry.tif")


_GEOCODABLE = ("velocity_file", "timeseries_file", "coherence_file", "geometry_file")
_H5 = (".h5", ".he5", ".hdf5")


def _geocode_radar_inputs(
    cfg: InsarSbasConfig, run_dir: Path
) -> tuple[InsarSbasConfig, dict[str, dict[str, Any]]]:
    """Geocode the MintPy inputs that are in radar coordinates through MintPy (``lookup_file``).

    Returns the config with those inputs replaced by their ``geo_*.h5`` (cached in
    ``<run_dir>/insar_sbas_cache/geocode``) and, per replaced field, MintPy's call and the grid.
    When another input is already geocoded in degrees, the radar ones go onto its grid exactly.
    """
    from thawdetect.plugins.insar_sbas.geocode import is_radar_coded

    radar: dict[str, tuple[Path, dict[str, str]]] = {}
    target = None  # the grid of an input that is already geocoded in degrees
    for name in _GEOCODABLE:
        p = getattr(cfg, name)
        if p is None or Path(p).suffix.lower() not in _H5:
            continue
        if name == "geometry_file" and cfg.dem_file is not None:
            continue  # not read
        attrs = read_attrs(p)
        if is_radar_coded(attrs):
            radar[name] = (Path(p), attrs)
        elif target is None and name != "geometry_file":
            grid = mintpy_grid(p, attrs)
            if grid.crs.is_geographic:
                left, bottom, right, top = grid.bounds
                target = ((bottom, top, left, right), (grid.transform.e, grid.transform.a))
    if not radar:
        return cfg, {}
    if cfg.lookup_file is None:
        first = next(iter(radar.values()))[0]
        raise InputError(
            first,
            "in radar coordinates (no X_FIRST/Y_FIRST); set detectors.insar_sbas.lookup_file "
            "(MintPy inputs/geometryRadar.h5 or ISCE2 lat.rdr) to geocode it through MintPy, "
            "or give its geo_* file",
        )
    from thawdetect.plugins.insar_sbas.geocode import geocode_product, open_lookup

    lookup = open_lookup(cfg.lookup_file)
    update: dict[str, Path] = {}
    records: dict[str, dict[str, Any]] = {}
    for name, (path, attrs) in radar.items():
        try:
            shape = (int(attrs["LENGTH"]), int(attrs["WIDTH"]))
        except (KeyError, ValueError):
            raise InputError(path, "no LENGTH/WIDTH attributes (not a MintPy product)") from None
        res = geocode_product(
            path,
            lookup,
            cache_dir=run_dir / "insar_sbas_cache" / "geocode",
            step_m=cfg.geocode_step_m,
            step_deg=cfg.geocode_step_deg,
            interp_method=cfg.geocode_interp,
            product_shape=shape,
            target_grid=target,
        )
        update[name] = res.path
        records[name] = res.record
    return cfg.model_copy(update=update), records


def _rereference(p: InsarProducts, cfg: InsarSbasConfig) -> None:
    y, x = cfg.reference_yx  # type: ignore[misc]
    if not (0 <= y < p.grid.height and 0 <= x < p.grid.width):
        raise InputError(p.source, f"reference point {(y, x)} is outside the {p.grid.shape} grid")
    v = float(p.rate_mm_yr[y, x])
    if not np.isfinite(v):
        raise InputError(p.source, f"reference point {(y, x)} is in a masked area (no data there)")
    if p.coherence is not None and not p.coherence[y, x] >= cfg.min_temporal_coherence:
        raise InputError(
            p.source,
            f"reference point {(y, x)} is in a masked area (temporal coherence "
            f"{p.coherence[y, x]:.2f} < {cfg.min_temporal_coherence})",
        )
    p.rate_mm_yr -= np.float32(v)
    p.notes["reference_rate_mm_yr"] = v


def _fit(cfg: InsarSbasConfig, run_dir: Path) -> Any:
    """The seasonal fit of ``timeseries_file``, cached in the run directory and updated when the
    file gains epochs (see :mod:`.seasonal_fit`)."""
    from thawdetect.plugins.insar_sbas.seasonal_fit import fit_timeseries_file

    return fit_timeseries_file(
        Path(cfg.timeseries_file),  # type: ignore[arg-type]
        period_yr=cfg.period_yr,
        min_epochs=cfg.min_valid_epochs,
        chunk_pixels=cfg.chunk_pixels,
        cache_dir=Path(run_dir) / "insar_sbas_cache" / "fit",
    )


def _from_mintpy(cfg: InsarSbasConfig, run_dir: Path) -> InsarProducts:
    fit = dates = None
    ts_grid = None
    checksum = ""
    ts_attrs: dict[str, str] = {}
    notes: dict[str, Any] = {}
    if cfg.timeseries_file is not None:
        res = _fit(cfg, run_dir)
        fit, dates, ts_grid, ts_attrs = res.fit, res.dates, res.grid, res.attrs
        notes["seasonal_fit"] = res.record()
        checksum = res.checksum
    if cfg.velocity_file is not None:
        rate, grid, _ = read_velocity(cfg.velocity_file)
        source = Path(cfg.velocity_file)
        if ts_grid is not None and not same_grid(ts_grid, grid):
            raise GridMismatchError(
                cfg.timeseries_file,
                f"time-series grid {ts_grid.shape} differs from velocity grid {grid.shape} "
                f"({cfg.velocity_file}); use products of one MintPy run",
            )
    else:
        assert fit is not None and ts_grid is not None
        grid, source = ts_grid, Path(cfg.timeseries_file)  # type: ignore[arg-type]
        rate = fit.rate_mm_yr.astype(np.float32)
    unit = ts_attrs.get("UNIT", "m")
    return InsarProducts(
        grid=grid,
        rate_mm_yr=rate,
        source=source,
        amplitude_pp_mm=None if fit is None else fit.seasonal_amplitude_pp_mm.astype(np.float32),
        fit=fit,
        dates=dates,
        timeseries_file=None if cfg.timeseries_file is None else Path(cfg.timeseries_file),
        timeseries_scale_mm={"m": 1000.0, "cm": 10.0, "mm": 1.0}.get(unit, 1000.0),
        timeseries_checksum=checksum,
        notes=notes,
    )


def resample_to(path: Path, grid: GridSpec, what: str) -> np.ndarray:
    """Read a GeoTIFF onto the InSAR grid (nearest neighbour)."""
    return read_raster_on_grid(path, grid, what=what, resampling=Resampling.nearest)


#: The sources in the order they apply: the preparing stages first (each hands the next a MintPy
#: time series), then the first source that reads. A new kind of input is one entry here (and
#: its fields in :data:`~.config.INPUT_SOURCES`), not edits across the detector.
SOURCES: list[Source] = [
    Source("isce2", prepare=_prepare_isce2),
    Source("hyp3", prepare=_prepare_hyp3),
    Source("licsbas", prepare=_prepare_licsbas, selects=_is_timeseries),
    Source("mintpy", read=_from_mintpy),
    Source("geotiff", read=_read_geotiff),
    Source("unwrapped", read=_read_unwrapped),
]
