"""A family of SYNTHETIC SBAS scenes with the conditions of real stacks (issue 20).

:func:`synthetic.make_scene <thawdetect.plugins.insar_sbas.synthetic.make_scene>` makes the easy
case: 3 % scattered decorrelated pixels and white-ish noise. Real C-band stacks over mountain
permafrost have low-coherence ground joined end to end (snow, vegetation, wet ground,
layover/shadow), turbulent and stratified atmosphere, orbital ramps, unwrapping errors, seasonal
motion of wet ground and widespread slow creep, and landslides that come in clusters on the same
slopes. :func:`make_realistic_scene` plants those conditions, each one a field of
:class:`RealisticSpec` with its range and source; :func:`family_specs` spans the ranges.

Every condition draws from its own random stream (:class:`numpy.random.SeedSequence` children),
so switching one off (``unwrap_epoch_fraction=0``) leaves every other one identical: scenes can
be compared condition by condition.

Everything here is SYNTHETIC: the slides and look-alikes carry ``synthetic = True`` and
:func:`~thawdetect.plugins.insar_sbas.synthetic.write_scene` marks every file it writes.

References:
    * Hanssen, R. F. (2001). *Radar Interferometry: Data Interpretation and Error Analysis*,
      ch. 4: tropospheric turbulence, power-law spectra P(k) ∝ k^-β with β ≈ 5/3-8/3
      (8/3 for 3-D Kolmogorov turbulence seen in 2-D, the ~0.5-50 km range); 2-20 mm per
      interferogram.
    * Doin, M.-P. et al. (2009). Corrections of stratified tropospheric delays in SAR
      interferometry, J. Appl. Geophys. 69: delay linear in elevation, a few to ~20 mm/km,
      with a seasonal cycle.
    * Fattahi, H. & Amelung, F. (2014). InSAR uncertainty due to orbital errors,
      Geophys. J. Int. 199: residual ramps of a few mm per 100 km with precise orbits.
    * Chen, C. W. & Zebker, H. A. (2001). SNAPHU; Yunjun, Z. et al. (2019), MintPy,
      Comput. Geosci. 133: unwrapping errors are integer 2π jumps (λ/2 in range) of regions
      that decorrelated ground isolates.
    * Ansari, H. et al. (2021). Study of systematic bias in measuring surface deformation with
      SAR interferometry, IEEE TGRS 59: apparent mm/yr rates on low-coherence ground.
    * Matsuoka, N. (2001). Solifluction rates, processes and landforms: a global review,
      Earth-Sci. Rev. 55: surface velocities of mm to tens of cm per year.
    * Liu, L. et al. (2010). InSAR measurements of surface deformation over permafrost on the
      North Slope of Alaska, JGR 115; Daout, S. et al. (2017), Large-scale InSAR monitoring of
      permafrost freeze-thaw cycles on the Tibetan Plateau, GRL 44: seasonal amplitudes of a few
      mm to several cm, largest on wet flat ground.
    * Wei, X. et al. (the method this detector follows): freeze-thaw landslides of 0.5-20 ha,
      LOS rates ~10-80 mm/yr, at 3600-4400 m on 1-40° slopes of the Qilian Mountains.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
from numpy.typing import NDArray

from thawdetect.plugins.insar_sbas.synthetic import (
    SCENE_AZIMUTH_DEG,
    SCENE_INCIDENCE_DEG,
    Scene,
    _profile,
    _scene_dem,
    _smooth_noise,
    acquisition_dates,
)

__all__ = [
    "CADIA_COHERENCE",
    "RealisticScene",
    "RealisticSpec",
    "family_specs",
    "make_realistic_scene",
    "mirror_index",
    "power_law_field",
    "write_tiled_frame",
]

#: A real Sentinel-1 temporal-coherence layer (92 % below 0.7, one connected network), relative
#: to the repository root; usable as ``coherence_source``.
CADIA_COHERENCE = "../shared/data/insar/mintpy_s1_cadia_geo/geo_temporalCoherence.h5"

#: Reference pixel of the written scenes (``write_scene`` writes REF_Y = REF_X = 2).
REF_YX = (2, 2)

_STREAMS = (
    "dem",
    "coherence",
    "slides",
    "lookalikes",
    "ground",
    "atmosphere",
    "stratified",
    "orbit",
    "unwrap",
    "noise",
    "gaps",
)


@dataclass(frozen=True)
class RealisticSpec:
    """What :func:`make_realistic_scene` plants. Ranges are those :func:`family_specs` spans.

    Geometry (as :class:`~thawdetect.plugins.insar_sbas.synthetic.SceneSpec`):

    Attributes:
        name: a short label (``family_specs`` sets one per scene).
        size_px: rows = columns (200 for tests, 400 in the family, 1500 for a Qilian-size scene).
        pixel_m: pixel size, metres (EPSG:32647).
        n_epochs: Sentinel-1 epochs every 12 days (82 ≈ 2.7 years).
        seed: random seed.
        epsg: the grid's UTM zone (EPSG code).
        origin_m: upper-left corner (easting, northing), metres.
        elevation_offset_m: added to the DEM at the end (placement uses the Qilian bands).
        wavelength_m: radar wavelength (Sentinel-1 C band 0.0555 m); unwrapping errors are
            multiples of wavelength/2 in LOS.
        relief: scales the DEM about 3950 m (0.8-1.3): steeper slopes, more layover.
        dem_roughness_m: std of a small-scale fractal roughness added above the valley floors
            (0-15 m); valley floors stay flat.

    Atmosphere and processing errors:

    Attributes:
        atmo_turbulent_mm: median per-epoch std of the turbulent delay, mm (2-20; Hanssen 2001).
        atmo_beta: spectral exponent β of the turbulent field, P(k) ∝ k^-β (5/3-3; 8/3 for
            Kolmogorov turbulence, Hanssen 2001).
        atmo_epoch_spread: log-normal spread of the per-epoch std (0-0.5; 0: every epoch has
            exactly ``atmo_turbulent_mm``).
        stratified_mm_per_km: std of the per-epoch delay-elevation coefficient, mm per km of
            elevation (0-20; Doin et al. 2009).
        stratified_seasonal_mm_per_km: amplitude of its seasonal part, mm/km (0-10).
        orbital_ramp_mm: std of the planar ramp across the scene in each direction, per epoch,
            mm (0-10; Fattahi & Amelung 2014).
        unwrap_epoch_fraction: share of epochs with unwrapping errors (0-0.3).
        unwrap_patches: range of patches shifted in such an epoch.
        unwrap_persistent: share of errors that persist to the last epoch (an error in an
            interferogram of the SBAS network shifts every later epoch); the others hit one
            epoch.
        unwrap_max_share: largest patch, as a share of the scene.
        pixel_noise_mm: pixel noise on coherent ground, mm (1-3).

    Ground motion that is not a landslide:

    Attributes:
        seasonal_background_pp_mm: seasonal peak-to-peak everywhere, mm (0-3).
        seasonal_wet_pp_mm: extra seasonal peak-to-peak on wet flat ground (valley floors,
            gentle slopes), mm (2-15; Liu et al. 2010, Daout et al. 2017).
        creep_mm_yr: mean downslope rate of solifluction on a 15° slope, mm/yr (2-15;
            Matsuoka 2001), ∝ sin(slope) up to 1.2×, log-normal (σ 0.3) and smooth over ~2 km,
            seen in LOS through the slope geometry (so up to ~2.5× this in LOS at places).

    Coherence:

    Attributes:
        lowcoh_cover: share of the scene on low-coherence ground (0.10-0.40), as one connected
            network (a band around the zero level of a smooth random field, widened into
            kilometre patches by a second field) with coherence 0.1-0.6 there.
        lowcoh_patch_km: correlation length of the network's fields, km (0.5-3).
        lowcoh_noise_mm: per-epoch noise at coherence 0.1, mm (10-30); it falls to
            ``pixel_noise_mm`` at coherence 0.6.
        lowcoh_gap_fraction: share of epochs missing (NaN) at coherence 0.1 (0-0.5); none at 0.6.
        lowcoh_bias_mm_yr: std of a smooth apparent rate on low-coherence ground, mm/yr
            (0-10; Ansari et al. 2021).
        layover_local_incidence_deg: pixels whose local incidence angle is below this (slopes
            facing the satellite) are layover/strong foreshortening: coherence 0.05-0.3
            (0 turns it off; 5-15).
        shadow_local_incidence_deg: pixels whose local incidence angle is above this are
            shadow (70-90).
        coherence_source: a real ``temporalCoherence`` HDF5 file (e.g. :data:`CADIA_COHERENCE`)
            resampled to the scene; it replaces the generated network (low: below
            ``coherence_threshold``).
        coherence_threshold: what counts as low coherence in ``coherence_source`` (0.7, the
            detector's temporal-coherence floor).

    Landslides (placed where ``make_scene`` places them: 3650-3950 m, 5-30°, aspect 5-110° or
    140-310°, inside every default mask of the detector):

    Attributes:
        n_slides: landslides to plant; ``None``: ``slides_per_km2`` × area.
        slides_per_km2: density (0.05-0.25; 120 on a 1500 px, 30 m scene is 0.06).
        cluster_size: range of landslides per cluster (one slope belt).
        cluster_gap_px: range of the gap between a landslide and its nearest cluster neighbour,
            px (1-10: 30-300 m at 30 m).
        area_ha: range of areas (log-uniform), ha (0.5-20).
        peak_rate_mm_yr: range of |LOS| peak rates (log-uniform per cluster), mm/yr (10-80).
        slide_seasonal_pp_mm: range of the seasonal peak-to-peak of landslides, mm.
        core_decorrelation: share of a fast landslide's pixels that decorrelate, in blobs
            (as in ``make_scene``; scaled by |peak| / 80 mm/yr, none under 30 mm/yr).

    Look-alikes:

    Attributes:
        thermokarst_per_km2: flat subsidence patches on valley floors per km² (-10 to -40 mm/yr).
        heave_per_km2: seasonal heave patches per km² (large seasonal amplitude, no trend).
        heave_pp_mm: range of the heave patches' seasonal peak-to-peak, mm (15-40).
    """

    name: str = "realistic"
    size_px: int = 400
    pixel_m: float = 30.0
    n_epochs: int = 82
    seed: int = 0
    epsg: int = 32647
    origin_m: tuple[float, float] = (610000.0, 4200000.0)
    elevation_offset_m: float = 0.0
    wavelength_m: float = 0.0555
    relief: float = 1.0
    dem_roughness_m: float = 6.0
    # atmosphere and processing errors
    atmo_turbulent_mm: float = 8.0
    atmo_beta: float = 8.0 / 3.0
    atmo_epoch_spread: float = 0.3
    stratified_mm_per_km: float = 6.0
    stratified_seasonal_mm_per_km: float = 4.0
    orbital_ramp_mm: float = 3.0
    unwrap_epoch_fraction: float = 0.1
    unwrap_patches: tuple[int, int] = (1, 3)
    unwrap_persistent: float = 0.3
    unwrap_max_share: float = 0.15
    pixel_noise_mm: float = 2.0
    # ground motion that is not a landslide
    seasonal_background_pp_mm: float = 2.0
    seasonal_wet_pp_mm: float = 8.0
    creep_mm_yr: float = 6.0
    # coherence
    lowcoh_cover: float = 0.25
    lowcoh_patch_km: float = 1.5
    lowcoh_noise_mm: float = 20.0
    lowcoh_gap_fraction: float = 0.25
    lowcoh_bias_mm_yr: float = 4.0
    layover_local_incidence_deg: float = 10.0
    shadow_local_incidence_deg: float = 80.0
    coherence_source: str | None = None
    coherence_threshold: float = 0.7
    # landslides
    n_slides: int | None = None
    slides_per_km2: float = 0.06
    cluster_size: tuple[int, int] = (2, 8)
    cluster_gap_px: tuple[float, float] = (1.0, 10.0)
    area_ha: tuple[float, float] = (0.5, 20.0)
    peak_rate_mm_yr: tuple[float, float] = (10.0, 80.0)
    slide_seasonal_pp_mm: tuple[float, float] = (4.0, 16.0)
    core_decorrelation: float = 0.25
    # look-alikes
    thermokarst_per_km2: float = 0.02
    heave_per_km2: float = 0.02
    heave_pp_mm: tuple[float, float] = (15.0, 40.0)

    @property
    def area_km2(self) -> float:
        """The scene's area, km²."""
        return (self.size_px * self.pixel_m / 1000.0) ** 2

    def slides_wanted(self) -> int:
        """``n_slides``, or the density times the area."""
        if self.n_slides is not None:
            return int(self.n_slides)
        return max(1, round(self.slides_per_km2 * self.area_km2))


@dataclass
class RealisticScene(Scene):
    """A :class:`~thawdetect.plugins.insar_sbas.synthetic.Scene` with the planted conditions.

    ``components`` holds 2-D truth layers and tables: ``lowcoh`` (bool, the generated or real
    low-coherence ground), ``layover`` (bool, layover/shadow), ``creep_mm_yr`` (LOS),
    ``bias_mm_yr`` (apparent rate on low coherence, in the series but not in ``rate_mm_yr``),
    ``seasonal_pp_mm``, ``unwrap_patches`` (int32 labels, the last patch where they overlap),
    ``unwrap_masks`` (each patch's flat pixel indices), ``unwrap_events`` (list of dicts:
    ``patch`` (1-based), ``first_epoch``, ``last_epoch``, ``cycles``; the shift is
    cycles × λ/2), ``atmo_std_mm`` (per-epoch std of the turbulent field), ``slide_label``
    (int32: row k of ``slides`` is label k + 1), ``admissible`` (where landslides may be placed).
    ``rate_mm_yr`` is the planted ground motion: landslides, look-alikes and creep.
    """

    components: dict[str, Any] = field(default_factory=dict)


# -- random fields ------------------------------------------------------------------------------


def _spectral_amplitude(
    m: int, beta: float, outer_px: float | None, inner_px: float
) -> NDArray[np.float32]:
    """|F| of a von Kármán power-law field on an ``m × m`` rfft grid: P ∝ (k² + k0²)^(-β/2)."""
    ky = np.fft.fftfreq(m)[:, None]
    kx = np.fft.rfftfreq(m)[None, :]
    k2 = ky**2 + kx**2
    k0 = 1.0 / outer_px if outer_px else 1.0 / m
    amp = (k2 + k0**2) ** (-beta / 4.0)
    if inner_px > 0:
        amp *= np.exp(-2.0 * (np.pi * inner_px) ** 2 * k2)  # Gaussian smoothing, σ = inner_px
    amp[0, 0] = 0.0
    return amp.astype(np.float32)


def _field_from(rng: np.random.Generator, amp: NDArray[np.float32], size: int) -> NDArray:
    """One zero-mean, unit-std field of ``size × size`` px from a spectral amplitude."""
    from scipy import fft

    shape = amp.shape
    spec = rng.standard_normal(shape, dtype=np.float32) + 1j * rng.standard_normal(
        shape, dtype=np.float32
    )
    spec *= amp
    m = shape[0]
    f = fft.irfft2(spec.astype(np.complex64), s=(m, m))[:size, :size]
    f -= f.mean()
    f /= f.std()
    return f.astype(np.float32, copy=False)


def power_law_field(
    rng: np.random.Generator,
    size: int,
    beta: float,
    *,
    outer_px: float | None = None,
    inner_px: float = 0.0,
    n: int = 1,
) -> NDArray[np.float32]:
    """``n`` fractal fields (``(n, size, size)``, zero mean, unit std) with P(k) ∝ k^-β.

    FFT synthesis (Hanssen 2001, §4.7) on a grid 25 % larger than the scene, cropped, so the
    fields do not wrap around. ``outer_px`` flattens the spectrum below 1/outer (von Kármán),
    ``inner_px`` smooths above 1/inner.

    Examples:
        >>> f = power_law_field(np.random.default_rng(0), 64, 8 / 3)
        >>> f.shape, round(float(f.std()), 3)
        ((1, 64, 64), 1.0)
    """
    from scipy import fft

    m = fft.next_fast_len(int(np.ceil(size * 1.25)))
    amp = _spectral_amplitude(m, beta, outer_px, inner_px)
    return np.stack([_field_from(rng, amp, size) for _ in range(n)])


# -- terrain ------------------------------------------------------------------------------------


def _dem(spec: RealisticSpec, rng: np.random.Generator) -> NDArray[np.float64]:
    """``_scene_dem`` with ``relief`` and a fractal roughness above the (flat) valley floors."""
    n = spec.size_px
    z = _scene_dem(rng, n, spec.pixel_m).astype(np.float64)
    floor = float(z.min())
    above = z > floor
    z = 3950.0 + spec.relief * (z - 3950.0)
    floor = 3950.0 + spec.relief * (floor - 3950.0)
    if spec.dem_roughness_m > 0:
        rough = power_law_field(rng, n, 3.5, outer_px=600.0 / spec.pixel_m, inner_px=1.0)[0]
        z = np.where(above, np.maximum(z + spec.dem_roughness_m * rough, floor), floor)
    return z


def _local_incidence_deg(slope: NDArray, aspect: NDArray) -> NDArray[np.float64]:
    """Angle between the surface normal and the LOS (ground to satellite), degrees."""
    from thawdetect.plugins.insar_sbas.downslope import los_unit_vector

    ue, un, uu = los_unit_vector(SCENE_INCIDENCE_DEG, SCENE_AZIMUTH_DEG)
    b = np.deg2rad(np.nan_to_num(slope, nan=0.0))
    a = np.deg2rad(np.nan_to_num(aspect, nan=0.0))
    cos = np.sin(b) * np.sin(a) * ue + np.sin(b) * np.cos(a) * un + np.cos(b) * uu
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _los_of_downslope(slope: NDArray, aspect: NDArray) -> NDArray[np.float64]:
    """s · u: the LOS component of a unit downslope motion (NaN slope: 0)."""
    from thawdetect.plugins.insar_sbas.downslope import downslope_unit_vector, los_unit_vector

    ue, un, uu = los_unit_vector(SCENE_INCIDENCE_DEG, SCENE_AZIMUTH_DEG)
    se, sn, su = downslope_unit_vector(np.nan_to_num(slope), np.nan_to_num(aspect))
    return se * ue + sn * un + su * uu


# -- coherence ----------------------------------------------------------------------------------


def _read_coherence(path: str, size: int) -> NDArray[np.float64]:
    """A real temporal-coherence layer resampled (bilinear) to ``size × size``."""
    import h5py
    from scipy import ndimage

    with h5py.File(path, "r") as f:
        name = "temporalCoherence" if "temporalCoherence" in f else next(iter(f))
        coh = np.asarray(f[name], dtype=np.float64)
    # keep the largest centred box without no-data (a geocoded swath is a rotated rectangle)
    valid = np.isfinite(coh) & (coh > 0)
    r0, c0 = 0, 0
    r1, c1 = coh.shape
    while r1 - r0 > 8 and c1 - c0 > 8 and not valid[r0:r1, c0:c1].all():
        r0, c0, r1, c1 = r0 + 1, c0 + 1, r1 - 1, c1 - 1
    coh = np.nan_to_num(coh[r0:r1, c0:c1], nan=0.0)
    coh = ndimage.zoom(coh, (size / coh.shape[0], size / coh.shape[1]), order=1)
    return np.clip(coh[:size, :size], 0.0, 1.0)


def _network_score(rng: np.random.Generator, n: int, scale_px: float) -> NDArray[np.float64]:
    """A score whose lowest quantiles form one connected network (issue 20's "connected
    low-coherence areas"): distance to the edges of a warped Voronoi tessellation (cells about
    2 × ``scale_px`` across; its edges are connected end to end), divided by a smooth width
    field that widens the network into kilometre patches. Thresholding a plain random field
    instead gives separate blobs below the percolation threshold (~50 % cover).
    """
    from scipy import ndimage
    from scipy.spatial import cKDTree

    spacing = 2.0 * scale_px
    pad = n + 2 * spacing
    k = max(round((pad / spacing) ** 2 * 1.3), 4)
    seeds = rng.uniform(-spacing, n + spacing, (k, 2))
    wy, wx, h = power_law_field(
        rng, n, 4.0, outer_px=scale_px, inner_px=max(scale_px / 8, 1.5), n=3
    )
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    warp = 0.25 * spacing
    pts = np.stack([(yy + warp * wy).ravel(), (xx + warp * wx).ravel()], axis=1)
    _, cell = cKDTree(seeds).query(pts)
    cell = cell.reshape(n, n)
    edge = np.zeros((n, n), dtype=bool)
    edge[:, :-1] |= cell[:, :-1] != cell[:, 1:]
    edge[:-1, :] |= cell[:-1, :] != cell[1:, :]
    return ndimage.distance_transform_edt(~edge) / np.exp(0.8 * h)


def _coherence(
    spec: RealisticSpec, rng: np.random.Generator, slope: NDArray, aspect: NDArray
) -> tuple[NDArray[np.float64], NDArray[np.bool_], NDArray[np.bool_]]:
    """Coherence, low-coherence mask (network or real layer) and layover/shadow mask."""
    n = spec.size_px
    ry, rx = REF_YX
    protect = np.zeros((n, n), dtype=bool)
    protect[: ry + 3, : rx + 3] = True  # the reference pixel stays reliable
    base = 0.9 + 0.03 * _smooth_noise(rng, 1, n, max(n // 20, 2))[0]
    coh = np.clip(base + 0.02 * rng.standard_normal((n, n)), 0.72, 0.99)
    if spec.coherence_source is not None:
        real = _read_coherence(spec.coherence_source, n)
        low = (real < spec.coherence_threshold) & ~protect
        coh = np.where(low, np.clip(real, 0.05, None), np.maximum(real, 0.72))
    else:
        s = _network_score(rng, n, spec.lowcoh_patch_km * 1000.0 / spec.pixel_m)
        s[protect] = np.inf
        cut = float(np.quantile(s[~protect], spec.lowcoh_cover * n * n / (~protect).sum()))
        low = s <= cut
        depth = np.clip(1.0 - s / max(cut, 1e-9), 0.0, 1.0)
        jitter = 0.05 * rng.standard_normal((n, n))
        coh = np.where(low, np.clip(0.6 - 0.5 * depth + jitter, 0.1, 0.6), coh)
    layover: NDArray[np.bool_] = np.zeros((n, n), dtype=bool)
    if spec.layover_local_incidence_deg > 0 or spec.shadow_local_incidence_deg < 90:
        li = _local_incidence_deg(slope, aspect)
        layover = (li < spec.layover_local_incidence_deg) | (li > spec.shadow_local_incidence_deg)
        layover &= ~protect
        coh = np.where(layover, rng.uniform(0.05, 0.3, (n, n)), coh)
    coh[REF_YX] = 0.99
    return coh, low, layover


# -- landslides ---------------------------------------------------------------------------------


class _Planter:
    """Places elliptical landslides (as ``make_scene``) and records their footprints."""

    def __init__(self, spec: RealisticSpec, grid: Any, slope: NDArray, aspect: NDArray) -> None:
        n = spec.size_px
        self.spec, self.grid, self.slope, self.aspect = spec, grid, slope, aspect
        self.sign_field = _los_of_downslope(slope, aspect)
        self.yy, self.xx = np.mgrid[0:n, 0:n].astype(np.float64)
        self.rate = np.zeros((n, n))
        self.seasonal = np.zeros((n, n))
        self.taken = np.zeros((n, n), dtype=bool)
        self.label = np.zeros((n, n), dtype=np.int32)
        self.rows: list[dict[str, Any]] = []
        self.geoms: list[Any] = []
        self.meta: list[tuple[float, float, float, float, float]] = []  # r, c, a, b, aspect

    def shape(self, r: float, c: float, area_ha: float, ratio: float) -> tuple[Any, ...]:
        """Window, ρ (1 at the outline) and semi-axes of an ellipse elongated downslope."""
        px = self.spec.pixel_m
        asp = float(self.aspect[int(r), int(c)])
        area_px = area_ha * 1e4 / px**2
        b = np.sqrt(area_px / (np.pi * ratio))  # across slope, px
        a = ratio * b  # downslope, px
        h = int(np.ceil(a + 12))
        win = (slice(max(int(r) - h, 0), int(r) + h + 1), slice(max(int(c) - h, 0), int(c) + h + 1))
        th = np.deg2rad(asp)
        de, dn = self.xx[win] + 0.5 - c, -(self.yy[win] + 0.5 - r)
        along = de * np.sin(th) + dn * np.cos(th)
        across = de * np.cos(th) - dn * np.sin(th)
        dist_ratio = np.sqrt((along / a) ** 2 + (across / b) ** 2)
        return win, dist_ratio, a, b, asp

    def plant(
        self,
        r: float,
        c: float,
        area_ha: float,
        ratio: float,
        peak_abs: float,
        cluster: int,
        ok: NDArray[np.bool_],
        gap_px: tuple[float, float] | None,
        rng: np.random.Generator,
    ) -> bool:
        """Plant one landslide if its footprint is admissible, free and, in a cluster, within
        ``gap_px`` of a member of its cluster (and no nearer than ``gap_px[0]`` to any)."""
        import shapely
        from shapely import affinity
        from shapely.geometry import Point

        n, px = self.spec.size_px, self.spec.pixel_m
        if not (3 <= r < n - 3 and 3 <= c < n - 3):
            return False
        win, rho, a, b, asp = self.shape(r, c, area_ha, ratio)
        foot = rho <= 1.0
        lo_gap = gap_px[0] if gap_px else 1.0
        if not foot.any() or (self.taken[win] & (rho <= 1.0 + (lo_gap + 1.0) / b)).any():
            return False
        if not ok[win][foot].mean() > 0.8:
            return False
        x0, y0 = self.grid.transform * (c, r)
        ell = affinity.scale(Point(0, 0).buffer(1.0, quad_segs=32), b * px, a * px)
        ell = affinity.translate(affinity.rotate(ell, -asp, origin=(0, 0)), x0, y0)
        if self.geoms:
            d = shapely.distance(ell, np.asarray(self.geoms, dtype=object))
            if d.min() < lo_gap * px:
                return False
            if gap_px is not None:
                same = np.array([row["cluster"] == cluster for row in self.rows])
                if not same.any() or not (d[same].min() <= gap_px[1] * px):
                    return False
        kind = "gaussian" if rng.random() < 0.5 else "plateau"
        sign = 1.0 if self.sign_field[int(r), int(c)] > 0 else -1.0
        peak = sign * peak_abs
        prof = _profile(rho[foot], kind, rng.uniform(0.4, 0.7))
        self.rate[win][foot] += peak * prof
        self.seasonal[win][foot] = rng.uniform(*self.spec.slide_seasonal_pp_mm)
        self.taken[win][foot] = True
        self.label[win][foot] = len(self.rows) + 1
        self.geoms.append(ell)
        self.meta.append((r, c, a, b, asp))
        self.rows.append(
            {
                "slide_id": f"P{len(self.rows) + 1:03d}",
                "area_ha": float(ell.area / 1e4),
                "peak_rate_mm_yr": float(peak),
                "profile": kind,
                "pair": 0,
                "synthetic": True,
                "cluster": cluster,
            }
        )
        return True


def _support(a: float, b: float, phi: float) -> float:
    """Extent of an ellipse (semi-axes a along, b across) in a direction φ from its long axis."""
    return float(np.sqrt((a * np.cos(phi)) ** 2 + (b * np.sin(phi)) ** 2))


def _plant_slides(
    spec: RealisticSpec, planter: _Planter, ok: NDArray[np.bool_], rng: np.random.Generator
) -> None:
    """Clusters of landslides along slope belts: each new member beside (mostly across slope)
    or above/below a member already placed, the gap drawn from ``cluster_gap_px``."""
    from scipy import ndimage

    want = spec.slides_wanted()
    centres = np.argwhere(ndimage.binary_erosion(ok, iterations=2))
    if not len(centres):
        return
    la, ha = np.log(spec.area_ha[0]), np.log(spec.area_ha[1])
    lr, hr = np.log(spec.peak_rate_mm_yr[0]), np.log(spec.peak_rate_mm_yr[1])
    cluster = tries = 0
    while len(planter.rows) < want and tries < 60 * want + 500:
        tries += 1
        k = int(rng.integers(spec.cluster_size[0], spec.cluster_size[1] + 1))
        k = min(k, want - len(planter.rows))
        base = np.exp(rng.uniform(lr, hr))

        def draw(base: float = base) -> tuple[float, float, float]:
            area = float(np.exp(rng.uniform(la, ha)))
            peak = float(np.clip(base * np.exp(rng.normal(0, 0.25)), *spec.peak_rate_mm_yr))
            return area, float(rng.uniform(1.2, 2.0)), peak

        r, c = centres[rng.integers(len(centres))]
        area, ratio, peak = draw()
        if not planter.plant(r + 0.5, c + 0.5, area, ratio, peak, cluster + 1, ok, None, rng):
            continue
        cluster += 1
        members = [len(planter.rows) - 1]
        attempts = 0
        while len(members) < k and attempts < 40 * k:
            attempts += 1
            parent = members[int(rng.integers(len(members)))]
            win_r, win_c, pa, pb, pasp = planter.meta[parent]
            area, ratio, peak = draw()
            b = np.sqrt(area * 1e4 / spec.pixel_m**2 / (np.pi * ratio))
            a = ratio * b
            # direction from the parent's long (downslope) axis: across slope mostly
            phi = rng.choice([np.pi / 2, -np.pi / 2, 0.0, np.pi], p=[0.4, 0.4, 0.1, 0.1])
            phi += rng.normal(0, 0.15)
            gap = rng.uniform(*spec.cluster_gap_px)
            off = _support(pa, pb, phi) + gap + _support(a, b, phi)
            th = np.deg2rad(pasp) + phi  # compass direction of the offset
            r2, c2 = win_r - off * np.cos(th), win_c + off * np.sin(th)
            if planter.plant(r2, c2, area, ratio, peak, cluster, ok, spec.cluster_gap_px, rng):
                members.append(len(planter.rows) - 1)
                if len(planter.rows) >= want:
                    break


# -- the scene ----------------------------------------------------------------------------------


def make_realistic_scene(spec: RealisticSpec | None = None, **overrides: Any) -> RealisticScene:
    """A SYNTHETIC Qilian-like SBAS scene with the conditions of real stacks.

    Returns a :class:`RealisticScene` (a :class:`~thawdetect.plugins.insar_sbas.synthetic.Scene`:
    ``write_scene`` writes it in MintPy layout). ``slides`` has ``make_scene``'s columns plus
    ``cluster``, ``lowcoh_share`` (share of the footprint on low-coherence or layover ground)
    and ``core_decorrelated``; ``lookalikes`` has ``kind`` (``thermokarst``, ``heave``),
    ``lookalike_id`` and ``synthetic``. The series is referenced to the first date and to
    pixel :data:`REF_YX` (so rates fitted from it are offset by ``-rate_mm_yr[REF_YX]``, the creep
    there); float32 throughout. A 1500 px, 82-epoch scene takes ~20 s and 1.5 GB peak (the cube
    is 0.74 GB) on one core.

    Args:
        spec: the scene; ``overrides`` replace its fields (``make_realistic_scene(seed=3)``).
    """
    import geopandas as gpd
    from affine import Affine
    from rasterio.crs import CRS
    from scipy import ndimage
    from shapely.geometry import Point

    from thawdetect.plugin_api import GridSpec
    from thawdetect.plugins.insar_sbas.sample import horn_slope_aspect
    from thawdetect.plugins.insar_sbas.timefunc import design_matrix

    spec = dataclasses.replace(spec or RealisticSpec(), **overrides)
    rngs = dict(
        zip(
            _STREAMS,
            (np.random.default_rng(s) for s in np.random.SeedSequence(spec.seed).spawn(11)),
            strict=True,
        )
    )
    n, px, ne = spec.size_px, spec.pixel_m, spec.n_epochs
    x0, y0 = spec.origin_m
    grid = GridSpec(CRS.from_epsg(spec.epsg), Affine(px, 0.0, x0, 0.0, -px, y0), n, n)
    dem = _dem(spec, rngs["dem"])
    slope, aspect = horn_slope_aspect(dem, px)
    s_ok = np.nan_to_num(slope, nan=-1)
    a_ok = np.nan_to_num(aspect, nan=-1)
    ok = (dem >= 3650) & (dem <= 3950) & (s_ok >= 5) & (s_ok <= 30)
    ok &= ((a_ok >= 5) & (a_ok <= 110)) | ((a_ok >= 140) & (a_ok <= 310))
    coh, low, layover = _coherence(spec, rngs["coherence"], slope, aspect)

    # landslides
    rng = rngs["slides"]
    planter = _Planter(spec, grid, slope, aspect)
    _plant_slides(spec, planter, ok, rng)
    blobs = _smooth_noise(rng, 1, n, max(n // 5, 2))[0]
    cored = []
    for k, row in enumerate(planter.rows, start=1):
        peak = abs(row["peak_rate_mm_yr"])
        frac = spec.core_decorrelation * min(1.0, peak / 80.0)
        inside = planter.label == k
        if peak >= 30 and frac > 0 and inside.sum() >= 4:
            cut = np.quantile(blobs[inside], 1.0 - frac)
            core = inside & (blobs > cut)
            coh[core] = rng.uniform(0.1, 0.5, int(core.sum()))
            cored.append(True)
        else:
            cored.append(False)
    unreliable = low | layover
    for k, row in enumerate(planter.rows, start=1):
        inside = planter.label == k
        row["lowcoh_share"] = float(unreliable[inside].mean()) if inside.any() else 0.0
        row["core_decorrelated"] = cored[k - 1]
    slides = gpd.GeoDataFrame(planter.rows, geometry=planter.geoms, crs=grid.crs)
    if not len(slides):
        slides = gpd.GeoDataFrame(
            {"slide_id": [], "area_ha": [], "peak_rate_mm_yr": [], "profile": [], "pair": []},
            geometry=[],
            crs=grid.crs,
        )

    # look-alikes: thermokarst on flat valley floors, seasonal heave anywhere free
    rng = rngs["lookalikes"]
    rate = planter.rate
    seasonal = planter.seasonal.copy()
    taken = planter.taken.copy()
    yy, xx = planter.yy, planter.xx
    looks: list[dict[str, Any]] = []
    lgeoms: list[Any] = []
    flat = ndimage.distance_transform_edt(np.nan_to_num(slope, nan=9) < 0.5)
    for k in range(round(spec.thermokarst_per_km2 * spec.area_km2)):
        cand = np.argwhere((flat > 8) & ~ndimage.binary_dilation(taken, iterations=10))
        if not len(cand):
            break
        r, c = cand[rng.integers(len(cand))]
        rad = min(float(flat[r, c]) - 3, rng.uniform(4, 7))
        sl = (slice(max(r - 12, 0), r + 13), slice(max(c - 12, 0), c + 13))
        d = np.hypot(yy[sl] - r, xx[sl] - c) / rad
        rate[sl] += np.where(d <= 1, -rng.uniform(10, 40) * (1 - d**2), 0.0)
        seasonal[sl] = np.where(d <= 1, np.maximum(seasonal[sl], 10.0), seasonal[sl])
        taken[sl] |= d <= 1.5
        xc, yc = grid.transform * (c + 0.5, r + 0.5)
        looks.append({"kind": "thermokarst", "lookalike_id": f"T{k + 1}", "synthetic": True})
        lgeoms.append(Point(xc, yc).buffer(rad * px))
    for k in range(round(spec.heave_per_km2 * spec.area_km2)):
        cand = np.argwhere(~ndimage.binary_dilation(taken, iterations=10))
        cand = cand[(cand.min(axis=1) > 10) & (cand.max(axis=1) < n - 10)]
        if not len(cand):
            break
        r, c = cand[rng.integers(len(cand))]
        rad = rng.uniform(3, 8)
        sl = (slice(max(r - 10, 0), r + 11), slice(max(c - 10, 0), c + 11))
        d = np.hypot(yy[sl] - r, xx[sl] - c) / rad
        pp = rng.uniform(*spec.heave_pp_mm)
        seasonal[sl] = np.where(
            d <= 1, np.maximum(seasonal[sl], pp * np.sqrt(np.clip(1 - d**2, 0, 1))), seasonal[sl]
        )
        taken[sl] |= d <= 1.5
        xc, yc = grid.transform * (c + 0.5, r + 0.5)
        looks.append({"kind": "heave", "lookalike_id": f"H{k + 1}", "synthetic": True})
        lgeoms.append(Point(xc, yc).buffer(rad * px))
    lookalikes = gpd.GeoDataFrame(
        looks or {"kind": [], "lookalike_id": [], "synthetic": []},
        geometry=lgeoms,
        crs=grid.crs,
    )

    # ground motion that is not a landslide: creep on slopes, seasonal motion of wet ground
    rng = rngs["ground"]
    km = 1000.0 / px
    smooth = power_law_field(rng, n, 4.0, outer_px=2 * km, inner_px=2.0, n=3)
    sl_deg = np.nan_to_num(slope, nan=0.0)
    creep_down = spec.creep_mm_yr * np.exp(0.3 * smooth[0] - 0.045)  # mean 1
    creep_down *= np.clip(np.sin(np.deg2rad(sl_deg)) / np.sin(np.deg2rad(15.0)), 0, 1.2)
    creep_los = creep_down * _los_of_downslope(slope, aspect)
    wet = np.clip(0.7 + 0.4 * smooth[1], 0, None) * np.exp(-sl_deg / 4.0)
    seasonal += spec.seasonal_background_pp_mm * np.clip(1 + 0.3 * smooth[2], 0, None)
    seasonal += spec.seasonal_wet_pp_mm * wet
    bias: NDArray[np.float64] = np.zeros((n, n))
    if spec.lowcoh_bias_mm_yr > 0:
        bias_field = power_law_field(rng, n, 4.0, outer_px=km, inner_px=2.0)[0]
        bias = np.where(coh < 0.7, spec.lowcoh_bias_mm_yr * bias_field, 0.0)
    truth_rate = rate + creep_los
    phase = -0.6 + 0.15 * smooth[2]

    # the series, epoch by epoch (float32; no (epochs, rows, cols) temporaries)
    dates = acquisition_dates(ne, start=date(2018, 1, 3))
    t = design_matrix(dates, 1.0)[:, 1]
    f32 = np.float32
    motion_rate = (truth_rate + bias).astype(f32) / f32(1000.0)
    half = (seasonal / 2.0).astype(f32) / f32(1000.0)
    ph = phase.astype(f32)
    dz = ((dem - dem.mean()) / 1000.0).astype(f32)  # km
    yn, xn = (np.arange(n, dtype=f32) / n - f32(0.5)), (np.arange(n, dtype=f32) / n - f32(0.5))
    rng = rngs["atmosphere"]
    m = int(np.ceil(n * 1.25))
    from scipy import fft

    m = fft.next_fast_len(m)
    amp = _spectral_amplitude(m, spec.atmo_beta, None, 0.0)
    atmo_std = spec.atmo_turbulent_mm * np.exp(spec.atmo_epoch_spread * rng.standard_normal(ne))
    rs = rngs["stratified"]
    season = np.cos(2 * np.pi * (t - 0.55))  # wettest/warmest in mid-July
    k_strat = rs.normal(0, spec.stratified_mm_per_km, ne) + (
        spec.stratified_seasonal_mm_per_km * season
    )
    ramps = rngs["orbit"].normal(0, spec.orbital_ramp_mm, (ne, 2))
    events, patch_masks, patch_label = _unwrap_events(spec, rngs["unwrap"], coh < 0.7)
    shift = np.zeros((ne, len(patch_masks)))
    for ev in events:
        shift[ev["first_epoch"] : ev["last_epoch"] + 1, ev["patch"] - 1] += ev["cycles"]
    half_lambda = f32(spec.wavelength_m / 2.0)
    # noise and gaps by coherence: pixel noise at 0.6 and above, full at 0.1
    badness = np.clip((0.6 - coh) / 0.5, 0, 1)
    lo_idx = np.flatnonzero(coh < 0.7)
    lo_sigma = (
        (
            spec.pixel_noise_mm
            + (spec.lowcoh_noise_mm - spec.pixel_noise_mm) * badness.ravel()[lo_idx]
        )
        / 1000.0
    ).astype(f32)
    lo_gap = (spec.lowcoh_gap_fraction * badness.ravel()[lo_idx]).astype(f32)
    lay_idx = np.flatnonzero(layover.ravel())
    rn, rg = rngs["noise"], rngs["gaps"]
    ts = np.empty((ne, n, n), dtype=f32)
    ry, rx = REF_YX
    first = np.zeros((n, n), dtype=f32)
    for e in range(ne):
        te = f32(t[e])
        d = motion_rate * te
        d += half * np.sin(f32(2 * np.pi) * te + ph)
        d += _field_from(rng, amp, n) * f32(atmo_std[e] / 1000.0)
        d += dz * f32(k_strat[e] / 1000.0)
        d += (ramps[e, 0] * xn[None, :] + ramps[e, 1] * yn[:, None]).astype(f32) / f32(1000.0)
        for j, idx in enumerate(patch_masks):
            if shift[e, j]:
                d.ravel()[idx] += f32(shift[e, j]) * half_lambda
        d += rn.standard_normal((n, n), dtype=f32) * f32(spec.pixel_noise_mm / 1000.0)
        flat_d = d.ravel()
        flat_d[lo_idx] += rn.standard_normal(lo_idx.size, dtype=f32) * lo_sigma
        if e == 0:
            first = d.copy()
        d -= first
        d -= d[ry, rx]
        if e > 0:
            flat_d[lo_idx[rg.random(lo_idx.size, dtype=f32) < lo_gap]] = np.nan
            flat_d[lay_idx[rg.random(lay_idx.size, dtype=f32) < 0.5]] = np.nan
        ts[e] = d
    components = {
        "lowcoh": low,
        "layover": layover,
        "creep_mm_yr": creep_los.astype(f32),
        "bias_mm_yr": bias.astype(f32),
        "seasonal_pp_mm": seasonal.astype(f32),
        "unwrap_patches": patch_label,
        "unwrap_masks": patch_masks,
        "slide_label": planter.label,
        "unwrap_events": events,
        "atmo_std_mm": atmo_std,
        "admissible": ok,
    }
    return RealisticScene(
        spec,  # type: ignore[arg-type]  # a RealisticSpec has every SceneSpec field it reads
        grid,
        (dem + spec.elevation_offset_m).astype(f32),
        dates,
        ts,
        coh.astype(f32),
        truth_rate.astype(f32),
        slides,
        lookalikes,
        components,
    )


def _unwrap_events(
    spec: RealisticSpec, rng: np.random.Generator, unreliable: NDArray[np.bool_]
) -> tuple[list[dict[str, int]], list[NDArray[np.intp]], NDArray[np.int32]]:
    """Unwrapping errors: islands of coherent ground cut off by the low-coherence network (or,
    where there are none of a usable size, smooth blobs), shifted by ±1 (sometimes ±2) cycles."""
    from scipy import ndimage

    n, ne = spec.size_px, spec.n_epochs
    label = np.zeros((n, n), dtype=np.int32)
    if spec.unwrap_epoch_fraction <= 0 or ne < 2:
        return [], [], label
    islands, count = ndimage.label(~unreliable)
    sizes = np.bincount(islands.ravel(), minlength=count + 1)
    ref_island = islands[REF_YX]
    usable = [
        i
        for i in range(1, count + 1)
        if i != ref_island and 30 <= sizes[i] <= spec.unwrap_max_share * n * n
    ]
    epochs = np.flatnonzero(rng.random(ne) < spec.unwrap_epoch_fraction)
    epochs = epochs[epochs > 0]
    events: list[dict[str, int]] = []
    masks: list[NDArray[np.intp]] = []
    yy, xx = np.ogrid[0:n, 0:n]
    for e in epochs:
        for _ in range(int(rng.integers(spec.unwrap_patches[0], spec.unwrap_patches[1] + 1))):
            if usable and rng.random() < 0.7:
                mask = islands == usable[int(rng.integers(len(usable)))]
            else:  # a blob: a smooth field above its quantile inside a disc
                rad = rng.uniform(0.03, 0.12) * n
                r, c = rng.uniform(rad, n - rad, 2)
                disc = (yy - r) ** 2 + (xx - c) ** 2 <= rad**2
                g = _smooth_noise(rng, 1, n, max(n // 25, 2))[0]
                mask = disc & (g > np.quantile(g[disc], 0.4))
                mask[: REF_YX[0] + 3, : REF_YX[1] + 3] = False
            if not mask.any():
                continue
            masks.append(np.flatnonzero(mask))
            label[mask] = len(masks)
            cycles = int(rng.choice([-1, 1]) * (2 if rng.random() < 0.1 else 1))
            last = ne - 1 if rng.random() < spec.unwrap_persistent else int(e)
            events.append(
                {"patch": len(masks), "first_epoch": int(e), "last_epoch": last, "cycles": cycles}
            )
    return events, masks, label


# -- the family ---------------------------------------------------------------------------------


def family_specs(
    n: int = 20, size_px: int = 400, seed0: int = 0, *, coherence_source: str | None = None
) -> list[RealisticSpec]:
    """``n`` scenes spanning the ranges of :class:`RealisticSpec` (a Latin-hypercube sweep).

    Each condition's range is cut into ``n`` strata, each stratum used once, in an independent
    random order per condition: low/high network cover, weak/strong atmosphere,
    dense/sparse clusters, with/without unwrapping errors (a third of the scenes without)... Every
    spec gets a short ``name`` (``r07-coh31-atm14-dense-unw``). With ``coherence_source``, every
    fifth scene uses that real layer instead of a generated network.
    """
    rng = np.random.default_rng(seed0 + 2020)
    dims = 11
    u = (np.argsort(rng.random((dims, n)), axis=1) + rng.random((dims, n))) / n

    def lin(v: float, lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(v)

    def log(v: float, lo: float, hi: float) -> float:
        return float(np.exp(lin(v, np.log(lo), np.log(hi))))

    specs = []
    for i in range(n):
        cover = lin(u[0, i], 0.10, 0.40)
        atmo = log(u[1, i], 3.0, 20.0)
        unw = 0.0 if u[4, i] < 1 / 3 else lin((u[4, i] - 1 / 3) * 1.5, 0.05, 0.25)
        gaps = ((1.0, 3.0), (3.0, 10.0), (1.0, 10.0))[int(u[8, i] * 3)]
        density = log(u[7, i], 0.05, 0.25)
        tag = {(1.0, 3.0): "dense", (3.0, 10.0): "sparse", (1.0, 10.0): "mixed"}[gaps]
        real = coherence_source is not None and i % 5 == 4
        name = f"r{i:02d}-{'real' if real else f'coh{cover * 100:02.0f}'}-atm{atmo:.0f}-{tag}"
        specs.append(
            RealisticSpec(
                name=name + ("-unw" if unw > 0 else ""),
                size_px=size_px,
                seed=seed0 + i,
                lowcoh_cover=cover,
                atmo_turbulent_mm=atmo,
                stratified_mm_per_km=lin(u[2, i], 0.0, 15.0),
                orbital_ramp_mm=lin(u[3, i], 0.0, 8.0),
                unwrap_epoch_fraction=unw,
                seasonal_wet_pp_mm=lin(u[5, i], 2.0, 15.0),
                creep_mm_yr=log(u[6, i], 2.0, 15.0),
                slides_per_km2=density,
                cluster_gap_px=gaps,
                lowcoh_patch_km=lin(u[9, i], 0.5, 3.0),
                layover_local_incidence_deg=lin(u[10, i], 5.0, 15.0),
                coherence_source=coherence_source if real else None,
            )
        )
    return specs


def mirror_index(n: int, tile: int) -> NDArray[np.intp]:
    """For each of ``n`` output indices, its index in a ``tile``-long axis repeated mirror-wise
    (0 1 2 | 2 1 0 | 0 1 2 ...), so the tiled field is continuous across tile edges.

    Examples:
        >>> mirror_index(7, 3).tolist()
        [0, 1, 2, 2, 1, 0, 0]
    """
    k, r = np.divmod(np.arange(n), tile)
    return np.where(k % 2 == 0, r, tile - 1 - r)


def write_tiled_frame(
    out_dir: Any,
    rows: int,
    cols: int,
    *,
    tile_px: int = 1000,
    n_epochs: int = 150,
    seed: int = 0,
    **overrides: Any,
) -> dict[str, Any]:
    """Write a SYNTHETIC frame-sized scene in MintPy layout without holding its stack in memory.

    A :func:`make_realistic_scene` of ``tile_px`` pixels is repeated mirror-wise
    (:func:`mirror_index`) over ``rows`` × ``cols`` pixels (a Sentinel-1 frame at 30 m is about
    6000 × 8000), and ``timeseries.h5`` is written one HDF5 chunk of epochs at a time in
    MintPy's own layout (``chunks=True``, as ``mintpy.utils.writefile`` writes it). Memory is
    the tile's stack plus one chunk-deep block of epochs of the frame. The landslides repeat with
    the tiles, so this frame is for measuring cost; it has no ``planted.gpkg``.

    Returns:
        Paths by key: ``timeseries``, ``coherence``, ``dem``, ``geometry``.
    """
    from pathlib import Path

    from thawdetect.plugin_api import GridSpec
    from thawdetect.plugins.insar_sbas.synthetic import write_static_layers, write_timeseries_h5

    tile = make_realistic_scene(size_px=tile_px, n_epochs=n_epochs, seed=seed, **overrides)
    ri, ci = mirror_index(rows, tile_px), mirror_index(cols, tile_px)
    grid = GridSpec(tile.grid.crs, tile.grid.transform, cols, rows)  # the tile's origin and step

    def frame(a: NDArray[Any]) -> NDArray[Any]:
        return np.ascontiguousarray(a[..., ri, :][..., ci])

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {
        "timeseries": write_timeseries_h5(
            out / "timeseries.h5",
            lambda e0, e1: frame(tile.ts_m[e0:e1]),
            tile.dates,
            grid,
            ref_yx=REF_YX,
        ),
        **write_static_layers(out, grid, frame(tile.dem_m), frame(tile.coherence), ref_yx=REF_YX),
    }
