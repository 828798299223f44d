"""Synthetic SBAS time series and scenes (for the bundled sample, tests and the benchmarks).

Everything written here is marked synthetic (HDF5 attribute ``THAWDETECT_SYNTHETIC``).
:func:`make_scene` builds whole scenes (landslides with smooth rate profiles, look-alikes,
MintPy-like noise) for the delineation benchmark, tests and the plugin's ``qtec`` sample; it stays
beside the series model and writer it uses, which puts this module a little over 400 lines.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from thawdetect.plugin_api import GridSpec, atomic_path
from thawdetect.plugins.insar_sbas.mintpy_h5 import mintpy_attrs_for_grid
from thawdetect.plugins.insar_sbas.timefunc import design_matrix

__all__ = [
    "Scene",
    "SceneSpec",
    "acquisition_dates",
    "horn_slope_aspect",
    "make_scene",
    "model_series_m",
    "write_scene",
    "write_timeseries_h5",
]

SYNTHETIC_NOTE = "SYNTHETIC data made by thawdetect for tests/samples; not a real observation"


def acquisition_dates(n: int, start: date = date(2018, 1, 3), step_days: int = 12) -> list[date]:
    """``n`` Sentinel-1-like acquisition dates every ``step_days`` days."""
    return [start + timedelta(days=step_days * i) for i in range(n)]


def model_series_m(
    dates: Sequence[date],
    rate_mm_yr: NDArray[np.floating],
    amplitude_pp_mm: NDArray[np.floating],
    phase_rad: NDArray[np.floating] | float = 0.0,
    period_yr: float = 1.0,
) -> NDArray[np.float64]:
    """Displacement in metres, shape ``(epochs, *rate.shape)``: b·t + (A/2)·sin(2πt/T + phase)."""
    G = design_matrix(dates, period_yr)
    t = G[:, 1]
    rate = np.asarray(rate_mm_yr, dtype=np.float64)
    half = np.asarray(amplitude_pp_mm, dtype=np.float64) / 2.0
    ph = np.broadcast_to(np.asarray(phase_rad, dtype=np.float64), rate.shape)
    w = 2 * np.pi / period_yr
    ts = rate[None] * t.reshape((-1,) + (1,) * rate.ndim)
    arg = w * t.reshape((-1,) + (1,) * rate.ndim) + ph[None]
    ts = ts + half[None] * np.sin(arg)
    ts = ts - ts[0:1]  # referenced to the first date, like MintPy
    return ts / 1000.0


def write_timeseries_h5(
    path: str | Path,
    ts_m: NDArray[np.floating] | Callable[[int, int], NDArray[np.floating]],
    dates: Sequence[date],
    grid: GridSpec,
    *,
    ref_yx: tuple[int, int] = (0, 0),
    wavelength_m: float = 0.055465763,
    chunk_rows: int | None = None,
) -> Path:
    """Write a MintPy-layout ``timeseries.h5`` (datasets ``timeseries`` m, ``date``, ``bperp``).

    Args:
        path: output file.
        ts_m: displacement in metres, ``(epochs, rows, cols)``; or a callable ``(e0, e1)`` giving
            epochs ``e0:e1`` (written block by block: a stack larger than memory).
        dates: acquisition dates.
        grid: the geocoded grid (written as MintPy X_FIRST/Y_FIRST/... attributes).
        ref_yx: reference pixel (row, col).
        wavelength_m: radar wavelength.
        chunk_rows: HDF5 chunk height (default: MintPy's layout, one chunk per epoch block).
    """
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(dates)
    attrs = {
        "FILE_TYPE": "timeseries",
        "UNIT": "m",
        "PROCESSOR": "hyp3",
        "PLATFORM": "Sen",
        "WAVELENGTH": str(wavelength_m),
        "REF_DATE": dates[0].strftime("%Y%m%d"),
        "START_DATE": dates[0].strftime("%Y%m%d"),
        "END_DATE": dates[-1].strftime("%Y%m%d"),
        "REF_Y": str(ref_yx[0]),
        "REF_X": str(ref_yx[1]),
        "CENTER_LINE_UTC": "0",
        "THAWDETECT_SYNTHETIC": SYNTHETIC_NOTE,
        **mintpy_attrs_for_grid(grid),
    }
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        chunks = (n, chunk_rows, grid.width) if chunk_rows else True
        if callable(ts_m):
            # epoch blocks as deep as the HDF5 chunks, so each chunk is written once
            ds = f.create_dataset(
                "timeseries", shape=(n, grid.height, grid.width), dtype=np.float32, chunks=chunks
            )
            depth = ds.chunks[0] if ds.chunks else n
            for e0 in range(0, n, depth):
                ds[e0 : min(e0 + depth, n)] = ts_m(e0, min(e0 + depth, n))
        else:
            f.create_dataset("timeseries", data=np.asarray(ts_m, dtype=np.float32), chunks=chunks)
        f.create_dataset("date", data=np.array([d.strftime("%Y%m%d").encode() for d in dates]))
        f.create_dataset("bperp", data=np.zeros(n, dtype=np.float32))
        for k, v in attrs.items():
            f.attrs[k] = v
    return path


# -- scene generator (delineation benchmark and tests) -----------------------------------------

#: LOS geometry of the generated scenes: Sentinel-1 ascending, MintPy convention.
SCENE_INCIDENCE_DEG = 39.0
SCENE_AZIMUTH_DEG = 100.0


@dataclass(frozen=True)
class SceneSpec:
    """What :func:`make_scene` plants (defaults: a Qilian-like 256 × 256 px, 30 m scene).

    Attributes:
        size_px: rows = columns.
        pixel_m: pixel size, metres (EPSG:32647).
        n_epochs: Sentinel-1 epochs, every 12 days.
        n_slides: landslides placed singly.
        n_adjacent_pairs: pairs of landslides side by side on one slope, 2-4 px apart.
        area_ha: range of planted areas (log-uniform), hectares.
        peak_rate_mm_yr: range of |LOS| peak rates, mm/yr.
        n_thermokarst: flat subsidence patches on valley floors (outside every slope mask).
        n_decorrelated: decorrelated patches with strong apparent rates (coherence < 0.5).
        core_decorrelation: share of a landslide's pixels that decorrelate, in blobs, for the
            fastest ones (scaled by |peak| / 80 mm/yr; none under 30 mm/yr): fast motion loses
            coherence, which breaks threshold clusters into fragments.
        epsg: the grid's UTM zone (EPSG code).
        origin_m: upper-left corner of the grid (easting, northing), metres.
        elevation_offset_m: added to the DEM at the end (placement uses the Qilian bands).
        seed: random seed.
    """

    size_px: int = 256
    pixel_m: float = 30.0
    n_epochs: int = 82
    n_slides: int = 18
    n_adjacent_pairs: int = 3
    area_ha: tuple[float, float] = (0.5, 20.0)
    peak_rate_mm_yr: tuple[float, float] = (14.0, 80.0)
    n_thermokarst: int = 3
    n_decorrelated: int = 3
    core_decorrelation: float = 0.25
    epsg: int = 32647
    origin_m: tuple[float, float] = (610000.0, 4200000.0)
    elevation_offset_m: float = 0.0
    seed: int = 0


@dataclass
class Scene:
    """A generated scene (everything in memory; :func:`write_scene` writes MintPy-layout files).

    Attributes:
        spec: what was asked.
        grid: the grid (EPSG:32647).
        dem_m: elevation, metres.
        dates: acquisition dates.
        ts_m: LOS displacement, metres, ``(epochs, rows, cols)`` (NaN: decorrelated epochs).
        coherence: temporal coherence 0-1.
        rate_mm_yr: the planted LOS rate (no noise), mm/yr.
        slides: planted landslides (``slide_id``, ``area_ha``, ``peak_rate_mm_yr``,
            ``profile``, ``pair``), outline polygons where the planted rate reaches 0.
        lookalikes: planted features that are not landslides (``kind``).
    """

    spec: SceneSpec
    grid: GridSpec
    dem_m: NDArray[np.float32]
    dates: list[date]
    ts_m: NDArray[np.float32]
    coherence: NDArray[np.float32]
    rate_mm_yr: NDArray[np.float32]
    slides: Any
    lookalikes: Any


def _smooth_noise(rng: np.random.Generator, n: int, size: int, coarse: int) -> NDArray[np.float64]:
    """``n`` smooth random fields with unit standard deviation (separable Gaussian kernels)."""
    f = rng.normal(0, 1, (n, coarse, coarse))
    centres = (np.arange(coarse) + 0.5) * size / coarse
    px = np.arange(size) + 0.5
    w = np.exp(-0.5 * ((px[:, None] - centres[None, :]) / (size / coarse * 0.6)) ** 2)
    w /= w.sum(axis=1, keepdims=True)
    out = np.einsum("iy,eyx,jx->eij", w, f, w, optimize=True)
    return out / out.std(axis=(1, 2), keepdims=True)


def _scene_dem(rng: np.random.Generator, size: int, pixel_m: float) -> NDArray[np.float32]:
    """Ridges and valleys (≈ 3500-4450 m) whose lowest 12 % are flat valley floors."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) * pixel_m
    p = rng.uniform(0, 2 * np.pi, 4)
    z = (
        3950
        + 340 * np.sin(2 * np.pi * x / 6400 + p[0]) * np.cos(2 * np.pi * y / 7000 + p[1])
        + 110 * np.sin(2 * np.pi * (x + 0.6 * y) / 2500 + p[2])
        + 40 * np.cos(2 * np.pi * (0.8 * x - y) / 1400 + p[3])
    )
    return np.maximum(z, np.percentile(z, 12)).astype(np.float32)


def _profile(rho: NDArray[np.float64], kind: str, plateau: float) -> NDArray[np.float64]:
    """Rate profile 1 at the core, 0 at the outline (ρ = 1): Gaussian or plateau + cosine taper."""
    if kind == "gaussian":
        out = np.exp(-0.5 * (rho / 0.45) ** 2)
    else:
        t = np.clip((rho - plateau) / (1 - plateau), 0, 1)
        out = 0.5 * (1 + np.cos(np.pi * t))
    return np.where(rho <= 1.0, out, 0.0)


def make_scene(spec: SceneSpec | None = None, **overrides: Any) -> Scene:
    """A SYNTHETIC Qilian-like scene with landslides of smooth rate profiles and look-alikes.

    Landslides are ellipses elongated downslope (axis ratio 1.2-2), 0.5-20 ha, on slopes of
    5-30° at 3650-3950 m whose aspect every row of the default schedule admits; their rate falls
    off smoothly from core to outline (Gaussian, or a plateau with a cosine taper) and its sign is
    that of downslope motion seen in ascending LOS (:data:`SCENE_AZIMUTH_DEG`). Some come in
    adjacent pairs 2-4 px apart on one slope. Look-alikes: flat thermokarst subsidence on valley
    floors (slope 0, outside every mask) and decorrelated patches with strong apparent rates.
    Noise is MintPy-like: a slow background field, turbulent (≈ 4 mm) and stratified atmosphere
    per epoch, 2 mm pixel noise, 3 % scattered decorrelated pixels with gaps.

    Args:
        spec: the scene; ``overrides`` replace its fields (``make_scene(seed=3)``).
    """
    import dataclasses

    import geopandas as gpd
    from affine import Affine
    from rasterio.crs import CRS
    from scipy import ndimage
    from shapely import affinity
    from shapely.geometry import Point

    from thawdetect.plugins.insar_sbas.downslope import downslope_unit_vector, los_unit_vector

    spec = dataclasses.replace(spec or SceneSpec(), **overrides)
    rng = np.random.default_rng(spec.seed)
    n, px = spec.size_px, spec.pixel_m
    x0, y0 = spec.origin_m
    grid = GridSpec(CRS.from_epsg(spec.epsg), Affine(px, 0.0, x0, 0.0, -px, y0), n, n)
    dem = _scene_dem(rng, n, px)
    slope, aspect = horn_slope_aspect(dem, px)
    s_ok = np.nan_to_num(slope, nan=-1)
    a_ok = np.nan_to_num(aspect, nan=-1)
    ok = (dem >= 3650) & (dem <= 3950) & (s_ok >= 5) & (s_ok <= 30)
    ok &= ((a_ok >= 5) & (a_ok <= 110)) | ((a_ok >= 140) & (a_ok <= 310))
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    ue, un, uu = los_unit_vector(SCENE_INCIDENCE_DEG, SCENE_AZIMUTH_DEG)
    rate = np.zeros((n, n))
    taken = np.zeros((n, n), dtype=bool)
    slide_lab = np.zeros((n, n), dtype=np.int32)
    rows: list[dict[str, Any]] = []
    geoms: list[Any] = []

    def plant(r: float, c: float, area_ha: float, pair: int) -> bool:
        asp = float(aspect[int(r), int(c)])
        ratio = rng.uniform(1.2, 2.0)
        area_px = area_ha * 1e4 / px**2
        b = np.sqrt(area_px / (np.pi * ratio))  # across slope, px
        a = ratio * b  # downslope, px
        h = int(np.ceil(a + 6))
        win = (slice(max(int(r) - h, 0), int(r) + h + 1), slice(max(int(c) - h, 0), int(c) + h + 1))
        th = np.deg2rad(asp)  # downslope direction in (east, north)
        de, dn = xx[win] + 0.5 - c, -(yy[win] + 0.5 - r)
        along = de * np.sin(th) + dn * np.cos(th)
        across = de * np.cos(th) - dn * np.sin(th)
        rho = np.sqrt((along / a) ** 2 + (across / b) ** 2)
        foot = rho <= 1.0
        halo = rho <= 1.0 + 4.0 / max(b, 1.0)
        if (taken[win] & halo).any() or not ok[win][foot].mean() > 0.8:
            return False
        kind = "gaussian" if rng.random() < 0.5 else "plateau"
        se, sn, su = downslope_unit_vector(float(slope[int(r), int(c)]), asp)
        sign = 1.0 if (se * ue + sn * un + su * uu) > 0 else -1.0
        peak = sign * np.exp(rng.uniform(*np.log(spec.peak_rate_mm_yr)))
        rate[win][foot] += peak * _profile(rho[foot], kind, rng.uniform(0.4, 0.7))
        taken[win][foot] = True
        slide_lab[win][foot] = len(rows) + 1
        x0, y0 = grid.transform * (c, r)
        ell = affinity.scale(Point(0, 0).buffer(1.0, quad_segs=32), b * px, a * px)
        ell = affinity.rotate(ell, -asp, origin=(0, 0))  # +y (north) turned to the aspect
        geoms.append(affinity.translate(ell, x0, y0))
        rows.append(
            {
                "slide_id": f"P{len(rows) + 1:02d}",
                "area_ha": float(ell.area / 1e4),
                "peak_rate_mm_yr": float(peak),
                "profile": kind,
                "pair": pair,
                "synthetic": True,
            }
        )
        return True

    lo, hi = np.log(spec.area_ha[0]), np.log(spec.area_ha[1])
    centres = np.argwhere(ndimage.binary_erosion(ok, iterations=2))
    placed = tries = 0
    while placed < spec.n_slides and tries < 4000 and len(centres):
        tries += 1
        r, c = centres[rng.integers(len(centres))]
        placed += plant(r + 0.5, c + 0.5, float(np.exp(rng.uniform(lo, hi))), 0)
    pairs = tries = 0
    while pairs < spec.n_adjacent_pairs and tries < 4000 and len(centres):
        tries += 1
        r, c = centres[rng.integers(len(centres))]
        area = float(np.exp(rng.uniform(np.log(2.0), hi)))
        b = np.sqrt(area * 1e4 / px**2 / (np.pi * 1.6))
        th = np.deg2rad(float(aspect[r, c]))
        gap = rng.uniform(2.0, 4.0)
        off = 2 * b + gap  # across-slope offset between centres, px
        r2, c2 = r + 0.5 + off * np.sin(th), c + 0.5 + off * np.cos(th)
        if not (0 <= r2 < n and 0 <= c2 < n) or not ok[int(r2), int(c2)]:
            continue
        before = taken.copy(), rate.copy(), len(rows)
        if plant(r + 0.5, c + 0.5, area, pairs + 1) and plant(r2, c2, area, pairs + 1):
            pairs += 1
        else:  # undo a half-planted pair
            taken[:], rate[:] = before[0], before[1]
            del rows[before[2] :], geoms[before[2] :]
    slides = gpd.GeoDataFrame(rows, geometry=geoms, crs=grid.crs)

    # look-alikes: thermokarst on flat floors, decorrelated patches on slopes
    looks, lgeoms = [], []
    flat = ndimage.distance_transform_edt(np.nan_to_num(slope, nan=9) < 0.5)
    for k in range(spec.n_thermokarst):
        cand = np.argwhere((flat > 8) & ~ndimage.binary_dilation(taken, iterations=10))
        if not len(cand):
            break
        r, c = cand[rng.integers(len(cand))]
        rad = min(float(flat[r, c]) - 3, rng.uniform(4, 7))
        d = np.hypot(yy - r, xx - c) / rad
        rate += np.where(d <= 1, -rng.uniform(20, 40) * (1 - d**2), 0.0)
        taken |= d <= 1.5
        x0, y0 = grid.transform * (c + 0.5, r + 0.5)
        looks.append({"kind": "thermokarst", "lookalike_id": f"T{k + 1}"})
        lgeoms.append(Point(x0, y0).buffer(rad * px))
    dec_mask = np.zeros((n, n), dtype=bool)
    for k in range(spec.n_decorrelated):
        cand = np.argwhere(ok & ~ndimage.binary_dilation(taken, iterations=8))
        if not len(cand):
            break
        r, c = cand[rng.integers(len(cand))]
        rad = rng.uniform(2.5, 4.5)
        patch = np.hypot(yy - r, xx - c) <= rad
        dec_mask |= patch
        taken |= patch
        x0, y0 = grid.transform * (c + 0.5, r + 0.5)
        looks.append({"kind": "decorrelated", "lookalike_id": f"D{k + 1}"})
        lgeoms.append(Point(x0, y0).buffer(rad * px))
    lookalikes = gpd.GeoDataFrame(looks, geometry=lgeoms, crs=grid.crs)

    dates = acquisition_dates(spec.n_epochs, start=date(2018, 1, 3))
    background = 0.6 * _smooth_noise(rng, 1, n, 8)[0] + 0.3 * rng.normal(0, 1, (n, n))
    amp = np.abs(2.0 + 0.5 * rng.normal(0, 1, (n, n))) + 12.0 * (np.abs(rate) > 0)
    ts = model_series_m(dates, rate + background, amp, -0.6)
    ts += 0.004 * _smooth_noise(rng, spec.n_epochs, n, 6)
    k_strat = rng.normal(0, 0.006 / 1000.0, spec.n_epochs)
    ts += k_strat[:, None, None] * (dem - dem.mean())[None]
    ts += rng.normal(0, 0.002, ts.shape)
    coh = np.clip(0.93 + 0.03 * rng.normal(0, 1, (n, n)), 0, 1)
    bad = (rng.random((n, n)) < 0.03) | dec_mask
    blobs = _smooth_noise(rng, 1, n, max(n // 5, 2))[0]
    for k, peak in enumerate(slides["peak_rate_mm_yr"] if len(slides) else [], start=1):
        frac = spec.core_decorrelation * min(1.0, abs(peak) / 80.0)
        if abs(peak) < 30 or frac <= 0:
            continue
        inside = slide_lab == k
        cut = np.quantile(blobs[inside], 1.0 - frac)
        bad |= inside & (blobs > cut)
    gaps = rng.random(ts.shape) < 0.5
    t_yr = (np.array([(d - dates[0]).days for d in dates]) / 365.25)[:, None]
    fake = -0.06 * t_yr * dec_mask[bad][None, :]  # strong apparent rate where decorrelated
    noisy = ts[:, bad] + fake + rng.normal(0, 0.03, (spec.n_epochs, int(bad.sum())))
    ts[:, bad] = np.where(gaps[:, bad], np.nan, noisy)
    coh[bad] = rng.uniform(0.1, 0.5, int(bad.sum()))
    ry, rx = 2, 2
    coh[ry, rx] = 0.99
    ts -= ts[0:1]
    ts -= np.nan_to_num(ts[:, ry : ry + 1, rx : rx + 1])
    return Scene(
        spec,
        grid,
        (dem + np.float32(spec.elevation_offset_m)).astype(np.float32),
        dates,
        ts.astype(np.float32),
        coh.astype(np.float32),
        rate.astype(np.float32),
        slides,
        lookalikes,
    )


def write_static_layers(
    out: Path,
    grid: GridSpec,
    dem_m: NDArray[np.floating],
    coherence: NDArray[np.floating],
    *,
    ref_yx: tuple[int, int],
    dem_tags: Mapping[str, str] | None = None,
) -> dict[str, Path]:
    """Write a SYNTHETIC scene's ``dem.tif``, ``temporalCoherence.h5`` and ``geometryGeo.h5``
    (height and constant LOS angles) on ``grid``, marked synthetic (the DEM's tags:
    ``dem_tags``, default the synthetic note).

    Returns:
        Paths by key: ``dem``, ``coherence``, ``geometry``.
    """
    from thawdetect.plugins.insar_sbas.mintpy_h5 import write_mintpy_h5
    from thawdetect.plugins.insar_sbas.rasters import write_geotiff

    common = {
        "REF_Y": ref_yx[0],
        "REF_X": ref_yx[1],
        "THAWDETECT_SYNTHETIC": SYNTHETIC_NOTE,
        **mintpy_attrs_for_grid(grid),
    }
    shape = dem_m.shape
    return {
        "dem": write_geotiff(
            out / "dem.tif",
            dem_m,
            grid,
            tags=dict(dem_tags or {"THAWDETECT_SYNTHETIC": SYNTHETIC_NOTE}),
        ),
        "coherence": write_mintpy_h5(
            out / "temporalCoherence.h5",
            {"temporalCoherence": coherence},
            {"FILE_TYPE": "temporalCoherence", "UNIT": "1", **common},
        ),
        "geometry": write_mintpy_h5(
            out / "geometryGeo.h5",
            {
                "height": dem_m,
                "incidenceAngle": np.full(shape, SCENE_INCIDENCE_DEG, np.float32),
                "azimuthAngle": np.full(shape, SCENE_AZIMUTH_DEG, np.float32),
            },
            {"FILE_TYPE": "geometry", **common},
        ),
    }


def write_scene(scene: Scene, out_dir: str | Path) -> dict[str, Path]:
    """Write ``timeseries.h5``, ``temporalCoherence.h5``, ``dem.tif``, ``planted.gpkg``
    (layers ``slides`` and ``lookalikes``) and ``geometryGeo.h5`` (constant LOS angles).

    Returns:
        Paths by key: ``timeseries``, ``coherence``, ``dem``, ``planted``, ``geometry``.
    """

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    grid = scene.grid
    paths = {
        "timeseries": write_timeseries_h5(
            out / "timeseries.h5", scene.ts_m, scene.dates, grid, ref_yx=(2, 2)
        ),
        **write_static_layers(out, grid, scene.dem_m, scene.coherence, ref_yx=(2, 2)),
        "planted": out / "planted.gpkg",
    }
    scene.slides.to_file(paths["planted"], layer="slides", driver="GPKG")
    scene.lookalikes.to_file(paths["planted"], layer="lookalikes", driver="GPKG")
    return paths


def horn_slope_aspect(dem: NDArray[np.floating], res_m: float) -> tuple[NDArray, NDArray]:
    """Slope (°) and aspect (° from north, clockwise, downslope) by Horn's method; edges NaN."""
    z = np.asarray(dem, dtype=np.float64)
    p = np.pad(z, 1, mode="edge")
    a, b, c = p[:-2, :-2], p[:-2, 1:-1], p[:-2, 2:]
    d, f = p[1:-1, :-2], p[1:-1, 2:]
    g, h, i = p[2:, :-2], p[2:, 1:-1], p[2:, 2:]
    dzdx = ((c + 2 * f + i) - (a + 2 * d + g)) / (8 * res_m)  # towards east
    dzdn = ((a + 2 * b + c) - (g + 2 * h + i)) / (8 * res_m)  # towards north
    slope = np.degrees(np.arctan(np.hypot(dzdx, dzdn)))
    aspect = np.degrees(np.arctan2(-dzdx, -dzdn)) % 360.0
    aspect[slope == 0] = 180.0
    for arr in (slope, aspect):
        arr[[0, -1], :] = np.nan
        arr[:, [0, -1]] = np.nan
    return slope, aspect
