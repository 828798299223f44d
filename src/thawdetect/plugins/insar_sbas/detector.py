"""The ``insar_sbas`` detector: |LOS rate| above a threshold inside relaxing terrain masks.

Each iteration applies one row of the schedule (elevation, slope, aspect, |rate|, optional
seasonal amplitude band; Wei et al., Qilian) or, in derived mode, terrain ranges from a known
inventory (terrain plugin's ``inventory_ranges``) with a rate schedule. Pixels passing the row are
seeds; candidates are the 8-connected groups of seeds (``delineation: threshold``, the default),
or, with ``delineation: grow``, whole landslides grown from them against their competitors
(:mod:`.delineation`). Rates may first be projected downslope (:mod:`.downslope`).

The detector (~480 lines) is the one place that turns a schedule row into masks, seeds and
candidates and writes the review frames; the maths lives in ``seasonal_fit``, ``delineation``,
``downslope`` and ``candidates``.
"""

from __future__ import annotations

import itertools
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
from numpy.typing import NDArray

from thawdetect.plugin_api import (
    AngleRange,
    ConfigError,
    Detector,
    GridSpec,
    ImageFrame,
    IterationContext,
    Range,
    ReviewOutcome,
    release_pages,
    trim_memory,
)
from thawdetect.plugins.insar_sbas.config import InsarSbasConfig, ScheduleRow
from thawdetect.plugins.insar_sbas.delineation import RELEASE_MIN_BYTES

__all__ = ["InsarSbasDetector", "format_summary"]


def _num(v: float) -> str:
    """Short display of a threshold: at most one decimal (derived ranges are long floats).

    Examples:
        >>> _num(3600.0), _num(112.5), _num(4674.0213), _num(3.20148)
        ('3600', '112.5', '4674', '3.2')
    """
    return f"{round(v, 1) if abs(v) < 1000 else round(v):g}"


def format_summary(row: ScheduleRow) -> dict[str, str]:
    """Short strings for the iterations table: ``{"elevation_m": "3600-4000", ...}``."""

    def rng(r: Range | None) -> str:
        return "any" if r is None else f"{_num(r.min)}-{_num(r.max)}"

    def ang(a: list[AngleRange] | None) -> str:
        return "any" if not a else ",".join(f"{_num(x.min)}-{_num(x.max)}" for x in a)

    return {
        "elevation_m": rng(row.elevation_m),
        "slope_deg": rng(row.slope_deg),
        "aspect_deg": ang(row.aspect_deg),
        "abs_rate_mm_yr": f">={_num(row.abs_rate_mm_yr)}",
    }


log = logging.getLogger(__name__)


class InsarSbasDetector(Detector):
    """Freeze-thaw landslide candidates from SBAS-InSAR rates and seasonal amplitude."""

    name = "insar_sbas"
    config_model = InsarSbasConfig
    description = "SBAS-InSAR |rate| thresholds inside relaxing elevation/slope/aspect masks"
    # MintPy .h5 products are read with h5py; the terrain masks come from the terrain service,
    # which needs xdem. MintPy itself is only needed to geocode radar-coordinate products.
    optional_dependencies = ("h5py", "xdem")
    relaxes_schedule = True  # Wei et al. run every row, even after a row that found nothing

    def __init__(self, config: InsarSbasConfig) -> None:
        super().__init__(config)
        self.config: InsarSbasConfig = config
        self._row: ScheduleRow | None = None

    # -- schedule ---------------------------------------------------------------------------------

    def rows(
        self, context: IterationContext | None = None, dem: Path | None = None
    ) -> list[ScheduleRow]:
        """Every row of the schedule (derived mode asks the terrain service)."""
        cfg = self.config
        if not cfg.derive_from_inventory:
            return list(cfg.schedule)
        if context is None or dem is None:
            raise ConfigError(
                "detectors.insar_sbas: derive_from_inventory needs dem_file (or geometry_file)"
            )
        inventory: Any = cfg.known_inventory_file
        if inventory is None:
            inventory = context.positives
            if inventory is None or len(inventory) == 0:
                raise ConfigError(
                    "detectors.insar_sbas: derive_from_inventory needs known_inventory_file "
                    "or training positives (the region's known inventory)"
                )
        terrain = context.host.service("terrain")
        ranges = terrain.inventory_ranges(
            dem, inventory, percentiles=tuple(cfg.inventory_percentiles), steps=cfg.n_rows
        )
        out = []
        for k, rate in enumerate(cfg.rate_schedule_mm_yr):
            r = ranges[min(k, len(ranges) - 1)]
            out.append(
                ScheduleRow(
                    elevation_m=r.elevation_m,
                    slope_deg=r.slope_deg,
                    aspect_deg=list(r.aspect_deg) if r.aspect_deg else None,
                    abs_rate_mm_yr=rate,
                )
            )
        return out

    def current_row(
        self, context: IterationContext | None = None, dem: Path | None = None
    ) -> ScheduleRow:
        """The thresholds of this iteration (derived mode asks the terrain service)."""
        return self.rows(context, dem)[self.config.schedule_index]

    @classmethod
    def check_inputs(cls, config: InsarSbasConfig) -> list[str]:
        """A warning when the |rate| thresholds rise from one row to the next (issue 21)."""
        rates = (
            config.rate_schedule_mm_yr
            if config.derive_from_inventory
            else [r.abs_rate_mm_yr for r in config.schedule]
        )
        if all(b <= a for a, b in itertools.pairwise(rates)):
            return []
        seq = " -> ".join(_num(r) for r in rates)
        return [f"the |rate| thresholds ({seq} mm/yr) tighten instead of relaxing"]

    def summary(self) -> dict[str, Any]:
        """Thresholds of this iteration as short strings (iterations table)."""
        if self._row is not None:
            return format_summary(self._row)
        cfg = self.config
        if cfg.derive_from_inventory:
            return {
                "terrain": f"derived p{_num(cfg.inventory_percentiles[0])}-"
                f"p{_num(cfg.inventory_percentiles[1])} step {cfg.schedule_index + 1}",
                "abs_rate_mm_yr": f">={_num(cfg.rate_schedule_mm_yr[cfg.schedule_index])}",
            }
        return format_summary(cfg.schedule[cfg.schedule_index])

    def next_config(self, outcome: ReviewOutcome) -> InsarSbasConfig | None:
        """The next schedule row, or None after the last one."""
        nxt = self.config.schedule_index + 1
        if nxt >= self.config.n_rows:
            return None
        return self.config.model_copy(update={"schedule_index": nxt})

    def image_frames(self, context: IterationContext) -> list[ImageFrame]:
        """Review frames: LOS rate and seasonal amplitude maps, then a cumulative-displacement
        time-lapse (one frame per date of ``displacement_mm.tif``).

        The rate is shown on a symmetric stretch of ±2× this iteration's |rate| threshold, so
        pixels that passed it are saturated; the displacement frames share one symmetric stretch.
        """
        import rasterio

        work = Path(context.work_dir)
        frames = []
        rate = work / "rate_mm_yr.tif"
        disp = work / "displacement_mm.tif"
        dates: list[str] = []
        stretch_mm = None
        if disp.exists():
            with rasterio.open(disp) as src:
                dates = [d or "" for d in src.descriptions]
                stretch_mm = float(src.tags().get("STRETCH_MM", "nan"))
        span = f"{dates[0]} to {dates[-1]}" if dates else ""
        source = "SBAS-InSAR"
        if rate.exists():
            with rasterio.open(rate) as src:
                name = Path(src.tags().get("SOURCE", "")).name
            source = f"SBAS-InSAR, {name}" if name else source
            cfg = self.config
            if cfg.derive_from_inventory:
                lim = 2.0 * float(cfg.rate_schedule_mm_yr[cfg.schedule_index])
            else:
                lim = 2.0 * float(cfg.schedule[cfg.schedule_index].abs_rate_mm_yr)
            frames.append(
                ImageFrame("LOS rate", rate, bands=(1,), value_range=(-lim, lim), units="mm/yr",
                           date=span, source=source, group="maps", colormap="RdBu")
            )  # fmt: skip
        amp = work / "seasonal_amplitude_pp_mm.tif"
        if amp.exists():
            frames.append(
                ImageFrame("seasonal amplitude A (peak-to-peak)", amp, bands=(1,), units="mm",
                           date=span, source=source, group="maps", colormap="viridis")
            )  # fmt: skip
        if dates and stretch_mm is not None and np.isfinite(stretch_mm):
            for i, d in enumerate(dates, start=1):
                frames.append(
                    ImageFrame("cumulative LOS displacement", disp, bands=(i,),
                               value_range=(-stretch_mm, stretch_mm), units="mm",
                               date=f"{d} (since {dates[0]})", source=source, group="timelapse",
                               colormap="RdBu")
                )  # fmt: skip
        return frames

    # -- proposing --------------------------------------------------------------------------------

    def _terrain_masks(
        self,
        context: IterationContext,
        layers: Any,
        rows: list[ScheduleRow],
        dem: Path,
    ) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
        """This row's terrain mask and the relaxed one (any of this and the later rows)."""
        cfg = self.config
        terrain = context.host.service("terrain")

        def mask(r: ScheduleRow) -> NDArray[np.bool_]:
            m = np.asarray(
                terrain.mask(
                    layers,
                    elevation_m=r.elevation_m,
                    slope_deg=r.slope_deg,
                    aspect_deg=r.aspect_deg,
                ),
                dtype=bool,
            )
            if m.shape != layers.elevation_m.shape:
                raise ConfigError(
                    f"terrain service returned a {m.shape} mask for a "
                    f"{layers.elevation_m.shape} grid"
                )
            return m

        row = rows[cfg.schedule_index]
        current = mask(row)
        relaxed = current.copy()
        if cfg.grow_within == "relaxed":
            for later in rows[cfg.schedule_index + 1 :]:
                relaxed |= mask(later)
        if not current.any():
            elev = layers.elevation_m[np.isfinite(layers.elevation_m)]
            span = f"{elev.min():.0f}-{elev.max():.0f} m" if elev.size else "no data"
            log.warning(
                "%s: no cell passes this iteration's terrain masks (%s; DEM elevation %s): "
                "set detectors.insar_sbas.schedule for your area or derive_from_inventory",
                dem,
                ", ".join(f"{k} {v}" for k, v in format_summary(row).items()),
                span,
            )
        return current, relaxed

    def propose(self, context: IterationContext) -> gpd.GeoDataFrame:
        """Candidates of this iteration; masks and rates are written to ``context.work_dir``.

        Four steps, each its own method: :meth:`_masks` (coherence, seasonal amplitude, terrain),
        :meth:`_rate` (LOS, or projected downslope), :meth:`_seeds` (this row's threshold, the
        background, and for ``grow`` the noise floor), then the delineation
        (:func:`~.delineation.delineate`) and the candidate table; :meth:`_write_rasters` keeps
        what an iteration computed for inspection and review.
        """
        from thawdetect.plugins.insar_sbas.candidates import candidate_series, candidate_table
        from thawdetect.plugins.insar_sbas.delineation import delineate
        from thawdetect.plugins.insar_sbas.products import load_products

        cfg = self.config
        work = Path(context.work_dir)
        work.mkdir(parents=True, exist_ok=True)
        p = load_products(cfg, run_dir=Path(context.run_dir), work_dir=work, region=context.region)
        rows = self.rows(context, p.dem)
        row = rows[cfg.schedule_index]
        self._row = row
        record: dict[str, Any] = {}
        masks = self._masks(context, p, row, rows, record)
        rate = self._rate(p, masks, work, record)
        seeds = self._seeds(context, p.grid, rate, masks, row.abs_rate_mm_yr, record)
        # the kept fit and terrain layers are read-only maps: pages the masks touched stay
        # resident until released (1.8 GB at frame scale); each step faults in what it reads
        _release_maps(p, masks, seeds)
        # the masks' rasters are written while the delineation runs, the labels' while the
        # candidates' series and table are made: GDAL's COG copy releases the GIL, so the
        # second core compresses (a later 1500² iteration: 0.3 s of rasters)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="insar_sbas-rasters") as pool:
            tags = {"THAWDETECT_ITERATION": str(context.iteration), "SOURCE": str(p.source)}
            written = [pool.submit(self._write_masks, context, p.grid, masks, seeds, tags)]
            d = delineate(
                rate,
                seeds.seeds,
                method=cfg.delineation,
                grow_ok=seeds.grow_ok,
                floor_mm_yr=seeds.floor_mm_yr,
                relative_floor=cfg.grow_relative_floor,
                merge_ratio=cfg.grow_merge_ratio,
                reach_factor=cfg.grow_reach_factor,
                min_pixels=cfg.min_pixels,
                aspect_deg=None if masks.layers is None else masks.layers.aspect_deg,
                group_distance_px=cfg.group_distance_px,
                facet_tolerance_deg=cfg.facet_tolerance_deg,
                smooth=cfg.smooth_outline,
                unknown=(~masks.coherent)
                if masks.relaxed is None
                else (~masks.coherent & masks.relaxed),
                background_mm_yr=seeds.background,
            )
            _release_maps(p, masks, seeds)
            written.append(pool.submit(self._write_labels, context, p.grid, d.labels, tags))
            series = None
            if d.n and p.timeseries_file is not None and p.dates is not None:
                series = candidate_series(
                    d.labels, d.n, p.timeseries_file, p.dates, p.timeseries_scale_mm, cfg.period_yr
                )
            table = candidate_table(
                d.labels,
                d.n,
                p.grid,
                context.crs,
                rate_mm_yr=rate,
                amplitude_pp_mm=p.amplitude_pp_mm,
                coherence=p.coherence,
                series=series,
                seeds=d.seeds,
                fragments=d.fragments,
                floor_mm_yr=d.floor_mm_yr,
                prone_amplitude_pp_mm=cfg.prone_amplitude_pp_mm,
                smooth=cfg.delineation == "grow" and cfg.smooth_outline,
                background_mm_yr=seeds.background,
            )
            for done in written:
                done.result()  # a failed write fails the iteration, as it did in line
        self._write_rasters(context, p, row, d.n, record)
        _release_maps(p, masks, seeds)
        del d, seeds, masks, rate, p
        trim_memory()  # freed grids back to the system: a frame's iteration frees gigabytes
        return table

    def _masks(
        self, context: IterationContext, p: Any, row: Any, rows: list[Any], record: dict[str, Any]
    ) -> _Masks:
        """Where a pixel may be a candidate: coherent, in the seasonal-amplitude band, inside
        this row's terrain masks (and where growth may go: the relaxed masks)."""
        from thawdetect.plugins.insar_sbas.rasters import check_overlap

        cfg = self.config
        grid = p.grid
        coherent = np.isfinite(p.rate_mm_yr)
        if p.coherence is not None:
            coherent &= np.nan_to_num(p.coherence, nan=0.0) >= cfg.min_temporal_coherence
        amplitude_ok: np.ndarray = np.ones(grid.shape, dtype=bool)
        band = row.seasonal_amplitude_pp_mm or cfg.seasonal_amplitude_pp_mm
        if band is not None:
            if p.amplitude_pp_mm is None:
                raise ConfigError(
                    "detectors.insar_sbas: seasonal_amplitude_pp_mm needs a time series "
                    "(timeseries_file, hyp3_dir) or amplitude_file"
                )
            a = np.nan_to_num(p.amplitude_pp_mm, nan=-1.0)
            amplitude_ok = (a >= band.min) & (a <= band.max)
            record["seasonal_amplitude_pp_mm"] = band.model_dump()

        has_terrain = row.elevation_m is not None or row.slope_deg is not None or row.aspect_deg
        if (has_terrain or cfg.downslope) and p.dem is None:
            need = "the schedule has terrain ranges" if has_terrain else "downslope: true"
            raise ConfigError(
                f"detectors.insar_sbas: {need} but no DEM is set (dem_file or geometry_file)"
            )
        layers = None
        if p.dem is not None and (has_terrain or cfg.downslope or cfg.delineation == "grow"):
            from thawdetect.plugins.insar_sbas.invariants import terrain_layers

            check_overlap(p.dem, GridSpec.from_raster(p.dem), grid, "DEM")
            # once per run: the DEM's layers on this grid are the same in every iteration
            layers = terrain_layers(context.host.service("terrain"), p.dem, grid, context.run_dir)
        terrain = relaxed = None
        if has_terrain:
            assert layers is not None and p.dem is not None
            terrain, relaxed = self._terrain_masks(context, layers, rows, p.dem)
        return _Masks(coherent, amplitude_ok, terrain, relaxed, layers)

    def _rate(self, p: Any, masks: _Masks, work: Path, record: dict[str, Any]) -> np.ndarray:
        """The rate the thresholds apply to: the LOS rate, or (``downslope``) its projection
        onto the local downslope direction (+ downhill)."""
        cfg = self.config
        if not cfg.downslope:
            return p.rate_mm_yr  # type: ignore[no-any-return]
        from thawdetect.plugins.insar_sbas.downslope import los_geometry, project_downslope
        from thawdetect.plugins.insar_sbas.rasters import write_geotiff

        layers = masks.layers
        assert layers is not None
        los = p.rate_mm_yr
        # the geometry file on this grid (geocoded, or from the ISCE2/MintPy run)
        geom = los_geometry(cfg.model_copy(update={"geometry_file": p.geometry_file}), p.grid)
        rate, cos, unstable = project_downslope(
            los,
            layers.slope_deg,
            layers.aspect_deg,
            geom.incidence_deg,
            geom.azimuth_deg,
            min_cos=cfg.min_projection_cos,
        )
        n_ok = int(np.isfinite(los).sum())
        record["downslope"] = {
            "geometry": geom.source,
            "min_projection_cos": cfg.min_projection_cos,
            "unstable_pixels": int(unstable.sum()),
            "unstable_fraction": round(int(unstable.sum()) / max(n_ok, 1), 4),
        }
        write_geotiff(
            work / "downslope_rate_mm_yr.tif",
            rate,
            p.grid,
            description="downslope rate mm/yr (LOS / cos), + downhill",
        )
        write_geotiff(work / "projection_cos.tif", cos, p.grid, description="s·u (unitless)")
        return rate  # type: ignore[no-any-return]

    def _seeds(
        self,
        context: IterationContext,
        grid: GridSpec,
        rate: np.ndarray,
        masks: _Masks,
        threshold: float,
        record: dict[str, Any],
    ) -> _Seeds:
        """This row's seeds (|rate| at or above ``threshold`` inside the masks), where growth may
        go, the large-scale background (the candidates' own rate is measured against it with
        either delineation; ``grow``'s seeds and growth too) and for ``grow`` the noise floor."""
        from thawdetect.plugins.insar_sbas.delineation import noise_floor

        cfg = self.config
        coherent = masks.coherent
        background = None
        if cfg.grow_background_window_m is not None:
            px = max(abs(grid.transform.a), abs(grid.transform.e))
            if grid.crs is not None and grid.crs.is_geographic:
                px *= 111_320.0  # metres per degree (latitude; enough for a window)
            window = max(round(cfg.grow_background_window_m / px), 3)
            window = min(window, max(grid.shape))
            island = max(round(cfg.grow_background_window_m**2 / 2.25 / px**2), 100)
            background = _cached_background(rate, coherent, window, island, context.run_dir)
        # the rate the threshold applies to: the LOS (or downslope) rate; for grow with
        # seed_rate measured_or_relative also that rate against the large-scale background, so
        # that a landslide whose own motion passes counts even where atmosphere, a ramp or creep
        # offsets its measured rate below the threshold
        abs_rate = np.abs(np.nan_to_num(rate, nan=0.0))
        if cfg.downslope:  # landslides move downhill: an uphill "rate" is noise or not a slide
            rate_ok = np.isfinite(rate) & (np.nan_to_num(rate, nan=0.0) >= threshold)
        else:
            rate_ok = np.isfinite(rate) & (abs_rate >= threshold)
        relative = (
            cfg.delineation == "grow"
            and background is not None
            and cfg.seed_rate == "measured_or_relative"
        )
        if relative:
            assert background is not None
            own = np.nan_to_num(rate - background, nan=0.0)
            if not cfg.downslope:
                np.abs(own, out=own)
            rate_ok |= np.isfinite(rate) & (own >= threshold)
            np.maximum(abs_rate, np.abs(own), out=abs_rate)
            del own
        seeds = rate_ok & coherent & masks.amplitude_ok
        if masks.terrain is not None:
            seeds &= masks.terrain
        grow_ok = coherent.copy()
        if masks.relaxed is not None:
            grow_ok &= masks.relaxed
        floor = sigma = float("nan")
        if cfg.delineation == "grow":
            stable = coherent & np.isfinite(rate) & (abs_rate < threshold)
            if background is not None:
                floor, sigma = noise_floor(rate - background, stable, cfg.noise_sigma_factor)
            else:
                floor, sigma = noise_floor(rate, stable, cfg.noise_sigma_factor)
            if cfg.grow_floor_mm_yr is not None:
                floor = cfg.grow_floor_mm_yr
            if not np.isfinite(floor):
                floor = threshold  # no stable pixel to measure the noise on: no growth
            floor = min(floor, threshold)
            record["growth"] = {
                "floor_mm_yr": round(float(floor), 3),
                "noise_sigma_mm_yr": None if not np.isfinite(sigma) else round(sigma, 3),
                "floor_from": "grow_floor_mm_yr"
                if cfg.grow_floor_mm_yr is not None
                else f"{cfg.noise_sigma_factor:g} x robust sigma on stable coherent pixels",
                "relative_floor": cfg.grow_relative_floor,
                "merge_ratio": cfg.grow_merge_ratio,
                "reach_factor": cfg.grow_reach_factor,
                "background_window_m": cfg.grow_background_window_m,
                "background_mm_yr": None
                if background is None
                else [
                    round(float(np.nanmin(background)), 2),
                    round(float(np.nanmax(background)), 2),
                ],
                "grow_within": cfg.grow_within,
                "seed_rate": "measured_or_relative" if relative else "measured",
            }
        return _Seeds(rate_ok, seeds, grow_ok, floor, background)

    def _write_masks(
        self,
        context: IterationContext,
        grid: GridSpec,
        masks: _Masks,
        seeds: _Seeds,
        tags: dict[str, str],
    ) -> None:
        """This row's masks as rasters (``rate_mask``, ``seed_mask``, ``growth_mask``,
        ``terrain_mask``), for inspection and review."""
        from thawdetect.plugins.insar_sbas.rasters import write_geotiff

        work = Path(context.work_dir)
        masks_out = {"rate_mask.tif": seeds.rate_ok, "seed_mask.tif": seeds.seeds}
        if self.config.delineation == "grow":
            masks_out["growth_mask.tif"] = seeds.grow_ok
        if masks.terrain is not None:
            masks_out["terrain_mask.tif"] = masks.terrain
        for name, mask in masks_out.items():
            write_geotiff(work / name, mask.astype(np.uint8), grid, nodata=255, tags=tags)

    def _write_labels(
        self, context: IterationContext, grid: GridSpec, labels: np.ndarray, tags: dict[str, str]
    ) -> None:
        from thawdetect.plugins.insar_sbas.rasters import write_geotiff

        write_geotiff(
            Path(context.work_dir) / "candidate_labels.tif",
            labels.astype(np.int32),
            grid,
            nodata=0,
            tags=tags,
        )

    def _write_rasters(
        self,
        context: IterationContext,
        p: Any,
        row: Any,
        n: int,
        record: dict[str, Any],
    ) -> None:
        """The rasters that do not depend on the schedule row (written once per run and linked
        into each iteration's folder) and ``thresholds.json``, last: after the masks and labels
        (:meth:`_write_masks`, :meth:`_write_labels`)."""
        cfg = self.config
        work = Path(context.work_dir)
        grid = p.grid
        _write_invariant(
            work / "rate_mm_yr.tif",
            p.rate_mm_yr.astype(np.float32),
            grid,
            context.run_dir,
            source=str(p.source),
            description="LOS rate mm/yr, + towards the satellite",
        )
        if p.amplitude_pp_mm is not None:
            _write_invariant(
                work / "seasonal_amplitude_pp_mm.tif",
                p.amplitude_pp_mm.astype(np.float32),
                grid,
                context.run_dir,
                source=str(p.source),
                description="seasonal amplitude, peak-to-peak mm",
            )
        (work / "thresholds.json").write_text(
            json.dumps(
                {
                    "schedule_index": cfg.schedule_index,
                    **row.model_dump(mode="json"),
                    "rate": "downslope" if cfg.downslope else "los",
                    "delineation": cfg.delineation,
                    "min_temporal_coherence": cfg.min_temporal_coherence,
                    "candidates": n,
                    **record,
                    **{k: p.notes[k] for k in ("geocode", "seasonal_fit") if k in p.notes},
                },
                indent=2,
            )
        )
        if p.timeseries_file is not None and p.dates:
            _link_displacement_stack(work / "displacement_mm.tif", p, grid, context.run_dir)


def _release_maps(p: Any, masks: _Masks, seeds: _Seeds) -> None:
    """:func:`release_pages` of every memory-mapped grid an iteration holds."""
    grids = [p.rate_mm_yr, p.amplitude_pp_mm, p.coherence, seeds.background]
    if p.fit is not None:
        grids += [getattr(p.fit, name) for name in p.fit.ARRAY_FIELDS]
    if masks.layers is not None:
        grids += [masks.layers.elevation_m, masks.layers.slope_deg, masks.layers.aspect_deg]
    release_pages(*grids, min_bytes=RELEASE_MIN_BYTES)


@dataclass(frozen=True)
class _Masks:
    """Where a pixel may be a candidate (:meth:`InsarSbasDetector._masks`)."""

    coherent: np.ndarray
    amplitude_ok: np.ndarray
    terrain: np.ndarray | None  # this row's terrain masks
    relaxed: np.ndarray | None  # the union of this and the later rows' masks (growth)
    layers: Any  # the terrain layers on the grid, or None


@dataclass(frozen=True)
class _Seeds:
    """This row's seeds and growth domain (:meth:`InsarSbasDetector._seeds`)."""

    rate_ok: np.ndarray
    seeds: np.ndarray
    grow_ok: np.ndarray
    floor_mm_yr: float
    background: np.ndarray | None


#: Dates of the review time-lapse (evenly spread over the series, first and last included).
TIMELAPSE_DATES = 12


def _write_invariant(
    path: Path,
    array: NDArray[Any],
    grid: GridSpec,
    run_dir: Path,
    *,
    source: str,
    description: str,
) -> None:
    """A raster that is the same in every iteration (tags ``SOURCE`` only): written once per
    content, grid and description into the run's cache and linked to ``path``."""
    from thawdetect.plugins.insar_sbas.invariants import (
        array_digest,
        cache_dir,
        cached_file,
        grid_digest,
        link_into,
    )
    from thawdetect.plugins.insar_sbas.rasters import write_geotiff

    key = [path.name, array_digest(array), grid_digest(grid), source, description]
    kept = cached_file(
        cache_dir(run_dir, "rasters"),
        key,
        path.name,
        lambda out: write_geotiff(
            out, array, grid, tags={"SOURCE": source}, description=description
        ),
    )
    link_into(kept, path)


def _cached_background(
    rate: np.ndarray, coherent: np.ndarray, window: int, island: int, run_dir: Any
) -> np.ndarray:
    """:func:`~.delineation.local_background`, computed once per rate map, coherent mask and
    window (the same in every iteration of a run) and kept in ``<run>/insar_sbas_cache/``."""
    from thawdetect.plugins.insar_sbas.delineation import local_background
    from thawdetect.plugins.insar_sbas.invariants import array_digest, cache_dir, cached_arrays

    key = [
        "background",
        array_digest(rate),
        array_digest(np.packbits(coherent)),
        list(coherent.shape),
        int(window),
        int(island),
    ]
    arrays, _ = cached_arrays(
        cache_dir(run_dir, "background"),
        key,
        lambda: {"background": local_background(rate, coherent, window, island)},
    )
    return np.asarray(arrays["background"])


def _link_displacement_stack(path: Path, p: Any, grid: GridSpec, run_dir: Path) -> None:
    """:func:`_write_displacement_stack` once per run (keyed by the time series' checksum, the
    pixels with a rate and the grid), linked to ``path`` in each iteration."""
    from thawdetect.plugins.insar_sbas.invariants import (
        array_digest,
        cache_dir,
        cached_file,
        grid_digest,
        link_into,
    )

    ts = Path(p.timeseries_file)
    checksum = p.timeseries_checksum
    if not checksum:  # no fit cache: the file's identity
        st = ts.stat()
        checksum = f"{ts.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    key = [
        "displacement",
        checksum,
        [d.isoformat() for d in p.dates],
        p.timeseries_scale_mm,
        array_digest(np.packbits(np.isfinite(p.rate_mm_yr))),
        grid_digest(grid),
        TIMELAPSE_DATES,
        str(p.source),
    ]
    made = cached_file(
        cache_dir(run_dir, "rasters"),
        key,
        path.name,
        lambda target: _write_displacement_stack(target, p, grid, {"SOURCE": str(p.source)}),
    )
    if made.exists():  # not written for a time series on another grid
        link_into(made, path)


#: pixels × dates of the time-lapse held at once (a band of rows; ~100 MB of float32)
_TIMELAPSE_BAND_PIXELS = 25_000_000


def _write_displacement_stack(path: Path, p: Any, grid: GridSpec, tags: dict[str, str]) -> bool:
    """Cumulative LOS displacement (mm, since the first date) at up to 12 dates, one band each.

    Band descriptions are the ISO dates; tag ``STRETCH_MM`` is the symmetric display stretch
    (99.9th percentile of |displacement| at the last date, rounded up: landslides are a small
    share of the scene), shared by every frame.
    """
    import rasterio
    from rasterio.windows import Window

    from thawdetect.plugins.insar_sbas.mintpy_h5 import open_h5

    n = len(p.dates)
    idx = np.unique(np.round(np.linspace(0, n - 1, min(TIMELAPSE_DATES, n))).astype(int)).tolist()
    scale = np.float32(p.timeseries_scale_mm)
    rate_ok = np.isfinite(p.rate_mm_yr)
    with open_h5(p.timeseries_file) as f:
        ds = f["timeseries"]
        if tuple(ds.shape[1:]) != tuple(grid.shape):
            return False  # a time series on another grid (radar geometry): no time-lapse
        # by bands of rows (whole HDF5 chunk rows): memory is a band's 12 dates, not the
        # grid's (2.3 GB for a Sentinel-1 frame)
        ch = ds.chunks[1] if ds.chunks else 1
        step = max(ch, (_TIMELAPSE_BAND_PIXELS // max(grid.width * len(idx), 1)) // ch * ch)

        def band(r0: int) -> NDArray[np.float32]:
            block = ds[idx, r0 : r0 + step, :].astype(np.float32) * scale
            block[:, (block == 0).all(axis=0)] = np.nan
            block -= block[0]
            block[:, ~rate_ok[r0 : r0 + step]] = np.nan
            return block  # type: ignore[no-any-return]

        profile = {
            "driver": "GTiff", "width": grid.width, "height": grid.height, "count": len(idx),
            "dtype": "float32", "crs": grid.crs, "transform": grid.transform,
            "nodata": float("nan"), "compress": "deflate",
        }  # fmt: skip
        tmp = path.with_name(path.name + ".tmp.tif")
        lasts = []
        with rasterio.open(tmp, "w", **profile) as dst:
            for r0 in range(0, grid.height, step):
                block = band(r0)
                dst.write(block, window=Window(0, r0, grid.width, block.shape[1]))
                lasts.append(np.abs(block[-1][np.isfinite(block[-1])]))
            last = np.concatenate(lasts) if lasts else np.zeros(0, np.float32)
            lim = float(np.percentile(last, 99.9)) if last.size else 1.0
            del lasts, last
            k = 10 ** np.floor(np.log10(max(lim, 1e-6)))
            lim = float(min(m * k for m in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if m * k >= lim))
            dst.update_tags(**tags, STRETCH_MM=str(lim), UNITS="mm")
            for b, i in enumerate(idx, start=1):
                dst.set_band_description(b, p.dates[i].isoformat())
    from thawdetect.plugin_api import to_cog

    to_cog(tmp, path)
    return True
