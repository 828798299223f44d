"""The bundled SYNTHETIC Qilian scene for ``thawdetect run --detector insar_sbas --region qilian``.

Deterministic (fixed seeds). Nothing here is a real observation: every file says so (README.txt,
GeoTIFF tags, HDF5 attributes, a ``synthetic`` field in every vector layer).

Scene: 300 × 300 px at 30 m in EPSG:32647 inside the Qilian box (≈100.3°E, 37.9°N), a DEM of ridges
and valleys (≈3500-4500 m, flat valley floors), 70 Sentinel-1-like epochs (12 days), planted
freeze-thaw landslides with trend + seasonal motion on moderate slopes whose elevation, slope,
aspect and rate put each in a chosen row of the five-row schedule, two strong-rate look-alikes
outside the masks (valley-floor subsidence below 3600 m, a flat terrace), one decorrelated
look-alike, stratified + turbulent atmospheric noise, and decorrelated pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from numpy.typing import NDArray
from rasterio.crs import CRS

from thawdetect.plugin_api import GridSpec
from thawdetect.plugins.insar_sbas.synthetic import horn_slope_aspect

__all__ = ["SAMPLE_GRID", "PlantedSlide", "build_qilian_sample", "horn_slope_aspect", "plan_slides"]

SIZE = 300
PIXEL_M = 30.0
SAMPLE_GRID = GridSpec(
    CRS.from_epsg(32647), Affine(PIXEL_M, 0.0, 610000.0, 0.0, -PIXEL_M, 4200000.0), SIZE, SIZE
)
N_EPOCHS = 70
RADIUS_PX = 4
NOTE = (
    "SYNTHETIC sample scene made by thawdetect (insar_sbas plugin) for demonstration and tests. "
    "Not real data: the terrain, the InSAR time series and the inventories are simulated."
)


@dataclass(frozen=True)
class PlantedSlide:
    """A planted landslide: which schedule row should first find it, and how it moves."""

    slide_id: str
    row: int  # 1-based schedule row that first finds it (0 = never: a look-alike)
    elevation_m: tuple[float, float]
    slope_deg: tuple[float, float]
    aspect_deg: tuple[float, float]
    rate_mm_yr: float
    amplitude_pp_mm: float
    kind: str = "FTL"


# (id, first row, elevation band of the whole footprint, slope band, aspect band, peak rate, A)
_SPECS: tuple[PlantedSlide, ...] = (
    PlantedSlide("S01", 1, (3650, 3950), (4, 27), (0, 100), -70, 14),
    PlantedSlide("S02", 1, (3650, 3950), (4, 27), (0, 100), -62, 18),
    PlantedSlide("S03", 1, (3650, 3950), (5, 27), (270, 310), -58, 11),
    PlantedSlide("S04", 2, (3650, 3950), (4, 27), (0, 100), -46, 16),
    PlantedSlide("S05", 2, (4005, 4095), (3, 25), (5, 250), -65, 12),
    PlantedSlide("S06", 3, (3650, 3950), (4, 27), (0, 100), -36, 20),
    PlantedSlide("S07", 3, (4105, 4195), (3, 25), (5, 250), -60, 13),
    PlantedSlide("S08", 4, (3650, 3950), (4, 27), (0, 100), -26, 10),
    PlantedSlide("S09", 4, (4205, 4295), (3, 25), (5, 250), -55, 15),
    PlantedSlide("S10", 5, (3650, 3950), (4, 27), (0, 100), -16, 19),
    PlantedSlide("S11", 5, (3650, 3950), (5, 27), (322, 355), -60, 17),
    PlantedSlide("S12", 5, (4305, 4395), (3, 25), (5, 250), -50, 9),
    PlantedSlide("S13", 5, (3650, 3950), (5, 27), (140, 250), -14, 21),
    # look-alikes (not landslides): never inside the masks or masked by coherence
    PlantedSlide("L01", 0, (3450, 3590), (0, 40), (0, 360), -85, 30, kind="valley subsidence"),
    PlantedSlide("L02", 0, (3790, 3810), (0, 0.5), (0, 360), -75, 25, kind="flat terrace"),
)


def make_dem() -> NDArray[np.float32]:
    """Ridges and valleys, 3450-4480 m, with flat valley floors (deterministic)."""
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64) * PIXEL_M
    z = (
        3960
        + 330 * np.sin(2 * np.pi * x / 6800 + 0.4) * np.cos(2 * np.pi * y / 7600 - 0.3)
        + 120 * np.sin(2 * np.pi * (x + 0.6 * y) / 2600)
        + 45 * np.cos(2 * np.pi * (0.8 * x - y) / 1500)
        + 0.03 * y
    )
    # the lowest ground becomes flat valley floors / terraces (slope 0 there)
    z = np.maximum(z, 3520.0)
    # a flat river terrace at 3800 m (slope 0: outside every slope mask)
    terrace = (y / PIXEL_M - 150) ** 2 + (x / PIXEL_M - 45) ** 2 <= 14**2
    z[terrace] = 3800.0
    return z.astype(np.float32)


def _disc(r: int) -> NDArray[np.bool_]:
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return (yy**2 + xx**2) <= r * r


def _in_band(values: NDArray, lo: float, hi: float) -> NDArray[np.bool_]:
    if lo <= hi:
        return (values >= lo) & (values <= hi)
    return (values >= lo) | (values <= hi)


def plan_slides(dem: NDArray[np.floating]) -> list[tuple[PlantedSlide, int, int]]:
    """Place every planted slide where its whole footprint meets its terrain bands.

    Footprint tests are whole-array minimum filters; the pick among admissible centres is
    deterministic (seeded) and keeps slides apart.
    """
    from scipy import ndimage

    slope, aspect = horn_slope_aspect(dem, PIXEL_M)
    fp = _disc(RADIUS_PX + 1)
    taken = np.zeros(dem.shape, dtype=bool)
    margin = 12
    border = np.zeros(dem.shape, dtype=bool)
    border[margin:-margin, margin:-margin] = True
    rng = np.random.default_rng(20240607)
    admissible = {}
    for spec in _SPECS:
        ok = (
            _in_band(dem, *spec.elevation_m)
            & _in_band(np.nan_to_num(slope, nan=-1), *spec.slope_deg)
            & _in_band(np.nan_to_num(aspect, nan=-1), *spec.aspect_deg)
        )
        if spec.slope_deg[1] < 1:  # flat: aspect is irrelevant
            ok = _in_band(dem, *spec.elevation_m) & (
                np.nan_to_num(slope, nan=9) <= spec.slope_deg[1]
            )
        admissible[spec.slide_id] = (
            ndimage.minimum_filter(ok.astype(np.uint8), footprint=fp, mode="constant") > 0
        ) & border
    placed = []
    # most constrained first, so every slide finds a place
    for spec in sorted(_SPECS, key=lambda sp: int(admissible[sp.slide_id].sum())):
        whole = admissible[spec.slide_id]
        free = ~ndimage.binary_dilation(taken, structure=np.ones((3, 3)), iterations=16)
        cand = np.argwhere(whole & free)
        if len(cand) == 0:
            raise RuntimeError(f"sample design: no place for {spec.slide_id}")
        r, c = cand[rng.integers(len(cand))]
        placed.append((spec, int(r), int(c)))
        yy, xx = np.ogrid[: dem.shape[0], : dem.shape[1]]
        taken |= (yy - r) ** 2 + (xx - c) ** 2 <= (RADIUS_PX + 2) ** 2
    order = {sp.slide_id: i for i, sp in enumerate(_SPECS)}
    return sorted(placed, key=lambda p: order[p[0].slide_id])


def _smooth_field(rng: np.random.Generator, n: int, coarse: int) -> NDArray[np.float64]:
    """``n`` smooth random fields (unit-ish variance): Gaussian-kernel interpolation of a coarse
    random grid, as two matrix products (separable)."""
    f = rng.normal(0, 1, (n, coarse, coarse))
    centres = (np.arange(coarse) + 0.5) * SIZE / coarse
    px = np.arange(SIZE) + 0.5
    w = np.exp(-0.5 * ((px[:, None] - centres[None, :]) / (SIZE / coarse * 0.6)) ** 2)
    w /= w.sum(axis=1, keepdims=True)
    out = np.einsum("iy,eyx,jx->eij", w, f, w, optimize=True)
    return out / out.std()


def build_qilian_sample(out_dir: Path) -> None:
    """Write the synthetic Qilian scene into ``out_dir`` (deterministic; ~10 MB)."""
    import geopandas as gpd
    from shapely.geometry import Point

    from thawdetect.plugins.insar_sbas.mintpy_h5 import write_mintpy_h5
    from thawdetect.plugins.insar_sbas.rasters import write_geotiff
    from thawdetect.plugins.insar_sbas.synthetic import (
        acquisition_dates,
        model_series_m,
        write_timeseries_h5,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    grid = SAMPLE_GRID
    dem = make_dem()
    placed = plan_slides(dem)
    rng = np.random.default_rng(7)
    dates = acquisition_dates(N_EPOCHS, start=__import__("datetime").date(2018, 1, 3))

    rate = rng.normal(0, 1.0, dem.shape)  # background: slow, a little spatial texture
    rate = 0.7 * _smooth_field(rng, 1, 10)[0] + 0.3 * rate
    amp = np.abs(2.0 + 0.5 * rng.normal(0, 1, dem.shape))
    phase = np.full(dem.shape, -0.6)  # peak uplift in late winter (frost heave)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    records = []
    for spec, r, c in placed:
        d2 = ((yy - r) ** 2 + (xx - c) ** 2) / RADIUS_PX**2
        inside = d2 <= 1.0
        rate[inside] = spec.rate_mm_yr * (1 - 0.3 * d2[inside])
        amp[inside] = spec.amplitude_pp_mm * (1 - 0.2 * d2[inside])
        ring = np.argwhere(inside)
        x0, y0 = grid.transform * (c + 0.5, r + 0.5)
        records.append((spec, r, c, x0, y0, ring))

    ts = model_series_m(dates, rate, amp, phase)
    # atmosphere: turbulent (smooth random, ~4 mm) + stratified (k·(z - mean), k ~ 6 mm/km)
    ts += 0.004 * _smooth_field(rng, N_EPOCHS, 6)
    k = rng.normal(0, 0.006 / 1000.0, N_EPOCHS)
    ts += k[:, None, None] * (dem - dem.mean())[None]
    ts += rng.normal(0, 0.002, ts.shape)  # 2 mm pixel noise
    # decorrelated pixels: 3 % scattered + the look-alike L03 patch
    coh = np.clip(0.93 + 0.03 * rng.normal(0, 1, dem.shape), 0, 1)
    bad = rng.random(dem.shape) < 0.03
    gaps = rng.random(ts.shape) < 0.6
    ts[:, bad] = np.where(gaps[:, bad], np.nan, ts[:, bad] + rng.normal(0, 0.03, ts[:, bad].shape))
    coh[bad] = rng.uniform(0.1, 0.5, int(bad.sum()))
    # L03: a strong apparent rate on a decorrelated patch inside the masks (e.g. a rock glacier
    # surface changing too fast to stay coherent): masked by the temporal-coherence floor
    l03 = _first_free(placed, dem)
    patch = ((yy - l03[0]) ** 2 + (xx - l03[1]) ** 2) <= RADIUS_PX**2
    t = (np.array([(d - dates[0]).days for d in dates]) / 365.25)[:, None]
    ts[:, patch] = -0.07 * t + rng.normal(0, 0.02, (N_EPOCHS, int(patch.sum())))
    coh[patch] = rng.uniform(0.2, 0.45, int(patch.sum()))
    ry, rx = 20, 20  # reference pixel: stable bedrock
    ts -= ts[0:1]
    ts -= np.nan_to_num(ts[:, ry : ry + 1, rx : rx + 1])
    coh[ry, rx] = 0.99

    tags = {"THAWDETECT_SYNTHETIC": NOTE}
    write_geotiff(
        out / "dem.tif",
        dem,
        grid,
        tags={**tags, "UNITS": "m"},
        description="elevation m (SYNTHETIC)",
    )
    write_timeseries_h5(out / "timeseries.h5", ts.astype(np.float32), dates, grid, ref_yx=(ry, rx))
    from thawdetect.plugins.insar_sbas.mintpy_h5 import mintpy_attrs_for_grid

    write_mintpy_h5(
        out / "temporalCoherence.h5",
        {"temporalCoherence": coh.astype(np.float32)},
        {
            "FILE_TYPE": "temporalCoherence",
            "UNIT": "1",
            "REF_Y": ry,
            "REF_X": rx,
            "PROCESSOR": "hyp3",
            "THAWDETECT_SYNTHETIC": NOTE,
            **mintpy_attrs_for_grid(grid),
        },
    )

    rows, geoms = [], []
    for spec, r, c, x0, y0, _ in records:
        rows.append(
            {
                "slide_id": spec.slide_id,
                "kind": spec.kind,
                "first_row": spec.row,
                "planted_rate_mm_yr": spec.rate_mm_yr,
                "planted_amplitude_pp_mm": spec.amplitude_pp_mm,
                "elevation_m": float(dem[r, c]),
                "synthetic": True,
            }
        )
        geoms.append(Point(x0, y0).buffer(RADIUS_PX * PIXEL_M + 15, quad_segs=8))
    allp = gpd.GeoDataFrame(rows, geometry=geoms, crs=grid.crs)
    slides = allp[allp["kind"] == "FTL"].reset_index(drop=True)
    slides.to_file(out / "reference_inventory.gpkg", layer="reference_inventory", driver="GPKG")
    slides[slides["slide_id"].isin(["S01", "S04", "S06"])].to_file(
        out / "known_inventory.gpkg", layer="known_inventory", driver="GPKG"
    )
    allp[allp["kind"] != "FTL"].to_file(out / "lookalikes.gpkg", layer="lookalikes", driver="GPKG")

    # validation points (independent of the known inventory): 13 in the 10 planted slides that
    # are not known (two points in the three largest-rate ones), 2 on checked non-landslides
    # (look-alikes L01, L03), labelled in ``label``
    known = {"S01", "S04", "S06"}
    vrows: list[dict[str, Any]] = []
    vgeoms: list[Any] = []
    for spec, _r, _c, x0, y0, _ in records:
        if spec.kind != "FTL" or spec.slide_id in known:
            continue
        offsets = [(0.0, 0.0)]
        if spec.slide_id in ("S02", "S05", "S11"):
            offsets.append((2.0 * PIXEL_M, -1.0 * PIXEL_M))
        for dx, dy in offsets:
            vrows.append(
                {
                    "point_id": f"V{len(vrows) + 1:02d}",
                    "label": "landslide",
                    "slide_id": spec.slide_id,
                    "synthetic": True,
                }
            )
            vgeoms.append(Point(x0 + dx, y0 + dy))
    l01 = next(rec for rec in records if rec[0].slide_id == "L01")
    x3, y3 = grid.transform * (l03[1] + 0.5, l03[0] + 0.5)
    for sid, (x, y) in (("L01", (l01[3], l01[4])), ("L03", (x3, y3))):
        vrows.append(
            {
                "point_id": f"V{len(vrows) + 1:02d}",
                "label": "not landslide",
                "slide_id": sid,
                "synthetic": True,
            }
        )
        vgeoms.append(Point(x, y))
    gpd.GeoDataFrame(vrows, geometry=vgeoms, crs=grid.crs).to_file(
        out / "validation_points.gpkg", layer="validation_points", driver="GPKG"
    )
    lines = [
        NOTE,
        "",
        "Files:",
        "  dem.tif                  elevation (m), EPSG:32647, 30 m",
        "  timeseries.h5            MintPy-layout LOS displacement time series (m), 70 epochs",
        "  temporalCoherence.h5     MintPy-layout temporal coherence",
        "  reference_inventory.gpkg all planted freeze-thaw landslides (reference reviewer)",
        "  known_inventory.gpkg     three of them, 'known before the run'",
        "  validation_points.gpkg   13 points in planted landslides not in the known inventory,",
        "                           2 on checked look-alikes (label = not landslide)",
        "  lookalikes.gpkg          strong-rate features that are NOT landslides",
        "",
        "Planted landslides (first schedule row that should find each):",
    ]
    lines += [
        f"  {s.slide_id} row {s.row} rate {s.rate_mm_yr} mm/yr A {s.amplitude_pp_mm} mm ({s.kind})"
        for s, *_ in records
    ]
    (out / "README.txt").write_text("\n".join(lines) + "\n")


def _first_free(placed: list[tuple[PlantedSlide, int, int]], dem: NDArray) -> tuple[int, int]:
    """A centre inside the row-1 masks away from every planted slide (for the L03 look-alike)."""
    from scipy import ndimage

    slope, aspect = horn_slope_aspect(dem, PIXEL_M)
    ok = (dem > 3700) & (dem < 3900) & (np.nan_to_num(slope) > 5) & (np.nan_to_num(slope) < 25)
    ok &= np.nan_to_num(aspect, nan=400) < 300
    taken = np.zeros(dem.shape, dtype=bool)
    for _, r, c in placed:
        taken[r, c] = True
    far = ~ndimage.binary_dilation(taken, iterations=25)
    far[:15, :] = far[-15:, :] = far[:, :15] = far[:, -15:] = False
    cand = np.argwhere(ok & far)
    r, c = cand[len(cand) // 2]
    return int(r), int(c)
