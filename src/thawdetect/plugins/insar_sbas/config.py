"""Configuration of the ``insar_sbas`` detector (YAML section ``detectors.insar_sbas``).

Inputs, from most to least processed (exactly one primary source):

* ``velocity_file`` and/or ``timeseries_file``: MintPy products (``velocity.h5``,
  ``timeseries*.h5``, ``geo_*``), with ``coherence_file`` and a DEM (``dem_file`` GeoTIFF or
  ``geometry_file`` ``geometryGeo.h5``); products in radar coordinates are geocoded through
  MintPy's ``geocode.py`` with ``lookup_file`` (``geometryRadar.h5`` or ISCE2 ``lat.rdr``);
* ``rate_file``: a LOS-rate GeoTIFF (mm/yr), with optional ``amplitude_file`` (peak-to-peak mm);
* ``unw_phase_file``: one unwrapped interferogram (HyP3 ``*_unw_phase.tif``), rate = LOS / span;
* ``hyp3_dir``: a HyP3 interferogram stack; thawdetect writes a MintPy template and runs
  ``smallbaselineApp.py``;
* ``slc_dir``: Sentinel-1 SLCs; thawdetect writes the ISCE2 ``stackSentinel.py`` call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from thawdetect.plugin_api import AngleRange, DetectorConfig, Range, StrictModel

__all__ = [
    "DEFAULT_SCHEDULE",
    "INPUT_SOURCES",
    "InsarSbasConfig",
    "Isce2Options",
    "MintpyOptions",
    "ScheduleRow",
]


#: The primary input sources, from most to least processed, and the config fields that select
#: each (exactly one source per config). :data:`.products.SOURCES` holds what reads or prepares
#: each one; a new kind of input is one entry here and one there.
INPUT_SOURCES: dict[str, tuple[str, ...]] = {
    "mintpy": ("velocity_file", "timeseries_file"),
    "geotiff": ("rate_file",),
    "unwrapped": ("unw_phase_file",),
    "hyp3": ("hyp3_dir",),
    "isce2": ("slc_dir",),
}


class ScheduleRow(StrictModel):
    """One row of the relaxation schedule (Wei et al., Qilian, table of iterations)."""

    elevation_m: Range | None = Field(None, description="elevation band, metres")
    slope_deg: Range | None = Field(None, description="slope band, degrees")
    aspect_deg: list[AngleRange] | None = Field(
        None, description="union of aspect intervals, degrees from north clockwise"
    )
    abs_rate_mm_yr: float = Field(
        ge=0, description="minimum |rate| of a seed pixel, mm/yr (LOS; downslope when downslope)"
    )
    seasonal_amplitude_pp_mm: Range | None = Field(
        None,
        description="optional band of seasonal amplitude A (peak-to-peak, mm) for this row's "
        "seeds; overrides the detector-wide band (Wei et al.: A > 10 mm more prone)",
    )


def _row(elev: tuple[float, float], slope: tuple[float, float], aspect, rate: float) -> ScheduleRow:
    return ScheduleRow(
        elevation_m=Range(min=elev[0], max=elev[1]),
        slope_deg=Range(min=slope[0], max=slope[1]),
        aspect_deg=[AngleRange(min=a, max=b) for a, b in aspect],
        abs_rate_mm_yr=rate,
    )


def _default_schedule() -> list[ScheduleRow]:
    return [
        _row((3600, 4000), (1, 30), [(0, 315)], 50),
        _row((3600, 4100), (1, 35), [(0, 315)], 40),
        _row((3600, 4200), (1, 35), [(0, 315)], 30),
        _row((3600, 4300), (1, 35), [(0, 315)], 20),
        _row((3600, 4400), (1, 40), [(0, 112.5), (135, 360)], 10),
    ]


#: The five-row Qilian schedule (elevation m, slope °, aspect °, |rate| mm/yr).
DEFAULT_SCHEDULE: tuple[ScheduleRow, ...] = tuple(_default_schedule())


class MintpyOptions(StrictModel):
    """Settings written into the MintPy template for a HyP3 stack (defaults: the Qilian study)."""

    work_dir: Path | None = Field(
        None, description="MintPy working directory; default: <run_dir>/insar_sbas_mintpy"
    )
    max_temporal_baseline_days: int = Field(60, gt=0, description="network: max temporal baseline")
    max_perp_baseline_m: float = Field(
        150.0, gt=0, description="network: max perpendicular baseline"
    )
    connection_number: int = Field(5, gt=0, description="network: sequential connections")
    min_coherence: float = Field(0.5, ge=0, le=1, description="network: min average coherence")
    min_temporal_coherence: float = Field(
        0.7, ge=0, le=1, description="MintPy mintpy.networkInversion.minTempCoh"
    )
    residual_rms_cutoff: float = Field(2.5, gt=0, description="MintPy mintpy.residualRMS.cutoff")
    troposphere_method: Literal["no", "pyaps", "height_correlation", "gacos"] = Field(
        "no", description="tropospheric correction (the study: pyaps with ERA5; needs a CDS key)"
    )
    reference_yx: tuple[int, int] | None = Field(
        None, description="MintPy reference pixel (row, col); default: MintPy's choice"
    )
    deramp: Literal["no", "linear", "quadratic"] = Field("no", description="MintPy deramp")
    topographic_residual: bool = Field(False, description="MintPy DEM-error correction")


class Isce2Options(StrictModel):
    """Settings for ISCE2 ``stackSentinel.py`` (defaults: the Qilian study)."""

    work_dir: Path | None = Field(
        None, description="ISCE2 working directory; default: <run_dir>/insar_sbas_isce2"
    )
    orbit_dir: Path | None = Field(None, description="precise orbit files (-o)")
    aux_dir: Path | None = Field(None, description="Sentinel-1 aux calibration files (-a)")
    dem_file: Path | None = Field(None, description="DEM in ISCE2 format (-d)")
    bbox_snwe: tuple[float, float, float, float] | None = Field(
        None, description="south, north, west, east (degrees); default: region AOI"
    )
    azimuth_looks: int = Field(2, gt=0, description="-z azimuth looks")
    range_looks: int = Field(7, gt=0, description="-r range looks")
    connections: int = Field(5, gt=0, description="-c number of connections")
    filter_strength: float = Field(0.5, ge=0, le=1, description="-f Goldstein filter strength")
    unwrapper: Literal["snaphu", "icu"] = Field("snaphu", description="-u (snaphu: MCF)")
    swath_num: str = Field("1 2 3", description="-n swaths")


class InsarSbasConfig(DetectorConfig):
    """Config of the ``insar_sbas`` detector (freeze-thaw landslides from SBAS-InSAR rates)."""

    # -- inputs -------------------------------------------------------------------------------
    velocity_file: Path | None = Field(None, description="MintPy velocity.h5 / geo_velocity.h5")
    timeseries_file: Path | None = Field(
        None, description="MintPy timeseries*.h5, or LiCSBAS cum.h5/cum_filt.h5 (seasonal fit)"
    )
    coherence_file: Path | None = Field(
        None, description="temporalCoherence.h5 or a coherence GeoTIFF (0-1)"
    )
    lookup_file: Path | None = Field(
        None,
        description="lookup table to geocode radar-coordinate MintPy products through MintPy: "
        "inputs/geometryRadar.h5 (latitude/longitude) or ISCE2 lat.rdr (lon.rdr beside it)",
    )
    geocode_step_m: float = Field(
        30.0, gt=0, description="output pixel size when geocoding, metres (at mid latitude)"
    )
    geocode_step_deg: tuple[float, float] | None = Field(
        None,
        description="output (latitude, longitude) step when geocoding, degrees; overrides"
        " geocode_step_m",
    )
    geocode_interp: Literal["nearest", "linear"] = Field(
        "nearest", description="MintPy geocode.py resampling method"
    )
    dem_file: Path | None = Field(None, description="DEM GeoTIFF (m) for the terrain masks")
    geometry_file: Path | None = Field(
        None, description="MintPy geometryGeo.h5 (its 'height' is used when dem_file is unset)"
    )
    rate_file: Path | None = Field(None, description="LOS rate GeoTIFF, mm/yr (see rate_file_unit)")
    rate_file_unit: Literal["mm/yr", "cm/yr", "m/yr"] = Field(
        "mm/yr", description="unit of rate_file"
    )
    amplitude_file: Path | None = Field(
        None, description="seasonal amplitude GeoTIFF, peak-to-peak mm (A = 2·sqrt(c²+d²))"
    )
    unw_phase_file: Path | None = Field(None, description="one unwrapped interferogram (radians)")
    water_mask_file: Path | None = Field(
        None, description="water mask GeoTIFF (1 = land, 0 = water)"
    )
    interferogram_span_days: float | None = Field(
        None, gt=0, description="temporal baseline of unw_phase_file when its name has no dates"
    )
    wavelength_m: float = Field(
        0.055465763, gt=0, description="radar wavelength (Sentinel-1 C band)"
    )
    hyp3_dir: Path | None = Field(
        None, description="HyP3 stack folder: runs MintPy smallbaselineApp"
    )
    slc_dir: Path | None = Field(None, description="Sentinel-1 SLC folder: runs ISCE2 topsStack")
    mintpy: MintpyOptions = Field(default_factory=MintpyOptions, description="MintPy template")
    isce2: Isce2Options = Field(default_factory=Isce2Options, description="ISCE2 stackSentinel")

    # -- model and masks ----------------------------------------------------------------------
    reference_yx: tuple[int, int] | None = Field(
        None, description="re-reference rates to this pixel (row, col) of the InSAR grid"
    )
    min_temporal_coherence: float = Field(0.7, ge=0, le=1, description="temporal-coherence floor")
    min_valid_epochs: int = Field(10, ge=5, description="pixels with fewer valid epochs are masked")
    period_yr: float = Field(1.0, gt=0, description="seasonal period T, years")
    seasonal_amplitude_pp_mm: Range | None = Field(
        None, description="optional band of seasonal amplitude A (peak-to-peak, mm), e.g. 9-21"
    )
    min_pixels: int = Field(
        4, ge=1, description="minimum seed pixels (above the threshold) in a candidate"
    )
    prone_amplitude_pp_mm: float | None = Field(
        10.0,
        ge=0,
        description="candidates whose mean seasonal amplitude A reaches this (peak-to-peak, mm) "
        "are reviewed first (Wei et al.: A > 10 mm more prone); None: order by rate only",
    )

    # -- delineation --------------------------------------------------------------------------
    delineation: Literal["threshold", "grow"] = Field(
        "grow",
        description="grow (default): seeds (pixels above the threshold) compete and grow down "
        "to the noise floor against the large-scale background: one whole-landslide outline "
        "each, half the candidates to review; threshold (Wei et al.): each 8-connected group "
        "of pixels above the threshold is a candidate (cores, sometimes in pieces); "
        "docs/insar.md has both measured on realistic scenes",
    )
    grow_floor_mm_yr: float | None = Field(
        None, ge=0, description="growth floor |rate|, mm/yr; default: noise_sigma_factor × σ"
    )
    grow_relative_floor: float = Field(
        0.2,
        ge=0,
        lt=1,
        description="a candidate also stops growing at this fraction of its seeds' median |rate|",
    )
    grow_merge_ratio: float = Field(
        0.65,
        gt=0,
        le=1,
        description="two growing candidates join only where the measured pass between them is "
        "at least this fraction of the faster one's peak |rate| (otherwise: two landslides)",
    )
    grow_reach_factor: float = Field(
        2.5,
        ge=0,
        description="grow: a candidate reaches at most this many seed radii (+ 2 px) beyond its "
        "seeds (a landslide's edge lies a few seed radii out, a band of creep runs on); "
        "0: no limit",
    )
    grow_background_window_m: float | None = Field(
        1500.0,
        gt=0,
        description="the large-scale background rate (medians of blocks this wide, metres: "
        "residual atmosphere, ramps, creep, a moving reference point): every candidate's own "
        "rate (evidence peak_own_rate_mm_yr, the review order's key) is measured against it, "
        "with either delineation; grow also seeds (seed_rate) and grows against it. None: "
        "against zero",
    )
    seed_rate: Literal["measured_or_relative", "measured"] = Field(
        "measured_or_relative",
        description="grow: a seed passes the |rate| threshold with its measured rate or "
        "(measured_or_relative) with its rate against the large-scale background "
        "(grow_background_window_m): a landslide counts by its own motion even where "
        "atmosphere, a ramp or creep offsets its measured rate; measured = the rate alone "
        "(Wei et al.; what threshold always uses). docs/insar.md compares them",
    )
    noise_sigma_factor: float = Field(
        2.0, gt=0, description="floor = this × robust σ of the rate on stable, coherent terrain"
    )
    grow_within: Literal["relaxed", "current"] = Field(
        "relaxed",
        description="terrain limits of growth: relaxed = any of this and the later schedule "
        "rows; current = this row's masks",
    )
    group_distance_px: float = Field(
        2.0, ge=0, description="clusters with at most this many pixels between them are grouped"
    )
    facet_tolerance_deg: float = Field(
        45.0, gt=0, le=180, description="largest difference of mean aspects on one slope facet"
    )
    smooth_outline: bool = Field(True, description="remove one-pixel notches and spurs")

    # -- downslope projection -----------------------------------------------------------------
    downslope: bool = Field(
        False,
        description="project LOS rates onto the steepest-descent direction (DEM slope/aspect); "
        "abs_rate_mm_yr then means downslope (downhill, > 0) mm/yr",
    )
    min_projection_cos: float = Field(
        0.3,
        gt=0,
        le=1,
        description="mask pixels where |cos(downslope, LOS)| is below this (unstable projection)",
    )
    los_incidence_deg: float | None = Field(
        None, gt=0, lt=90, description="LOS incidence angle from vertical, when no geometry file"
    )
    los_azimuth_deg: float | None = Field(
        None,
        ge=-360,
        le=360,
        description="azimuth of the ground-to-satellite LOS, degrees from north anti-clockwise "
        "(MintPy azimuthAngle), when no geometry file",
    )
    lv_theta_file: Path | None = Field(
        None, description="HyP3 *_lv_theta.tif (look-vector elevation, radians) for downslope"
    )
    lv_phi_file: Path | None = Field(
        None, description="HyP3 *_lv_phi.tif (look-vector azimuth from east, radians)"
    )
    chunk_pixels: int = Field(250_000, ge=1000, description="pixels per least-squares chunk")

    # -- schedule -----------------------------------------------------------------------------
    schedule: list[ScheduleRow] = Field(
        default_factory=_default_schedule, description="relaxation schedule, one row per iteration"
    )
    derive_from_inventory: bool = Field(
        False, description="derive terrain ranges from known_inventory_file via the terrain plugin"
    )
    known_inventory_file: Path | None = Field(
        None, description="inventory for derived ranges; default: the run's training positives"
    )
    inventory_percentiles: tuple[float, float] = Field(
        (5.0, 95.0), description="percentiles of the inventory's terrain used as the first row"
    )
    rate_schedule_mm_yr: list[float] = Field(
        default_factory=lambda: [50.0, 40.0, 30.0, 20.0, 10.0],
        description="|rate| thresholds per iteration in derived mode, mm/yr",
    )
    schedule_index: int = Field(0, ge=0, description="current row (0-based); set by the engine")

    @model_validator(mode="after")
    def _check(self) -> InsarSbasConfig:
        given = [
            "/".join(fields)
            for fields in INPUT_SOURCES.values()
            if any(getattr(self, f) is not None for f in fields)
        ]
        if len(given) > 1:
            raise ValueError(f"give one input source, got {', '.join(given)}")
        if self.geocode_step_deg is not None and not all(v != 0 for v in self.geocode_step_deg):
            raise ValueError("geocode_step_deg must be two non-zero steps (latitude, longitude)")
        if not self.schedule and not self.derive_from_inventory:
            raise ValueError("schedule is empty")
        if self.derive_from_inventory and not self.rate_schedule_mm_yr:
            raise ValueError("rate_schedule_mm_yr is empty")
        if (self.lv_theta_file is None) != (self.lv_phi_file is None):
            raise ValueError("give lv_theta_file and lv_phi_file together")
        if (self.los_incidence_deg is None) != (self.los_azimuth_deg is None):
            raise ValueError("give los_incidence_deg and los_azimuth_deg together")
        if self.schedule_index >= self.n_rows:
            raise ValueError(f"schedule_index {self.schedule_index} is past the last row")
        return self

    @property
    def n_rows(self) -> int:
        """Number of iterations this config schedules."""
        return len(self.rate_schedule_mm_yr) if self.derive_from_inventory else len(self.schedule)

    def has_input(self) -> bool:
        """Whether any input source is set (:data:`INPUT_SOURCES`)."""
        return any(
            getattr(self, f) is not None for fields in INPUT_SOURCES.values() for f in fields
        )
