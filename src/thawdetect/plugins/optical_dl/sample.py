"""The bundled SYNTHETIC QTEC sample scene (``--region qtec``), built deterministically.

No public PlanetScope imagery, DEM or InSAR product of the Qinghai-Tibet Engineering Corridor could
be bundled, so this scene is made up, and says so everywhere (README.txt, raster tags, a
``synthetic`` field in every layer). It sits near Beiluhe (≈92.93°E, 34.83°N, EPSG:32646):

* ``images/2016-08-01.tif`` … ``images/2020-08-01.tif``: 4-band (B, G, R, NIR) uint16
  PlanetScope-like surface reflectance ×10⁴, 3 m pixels, 1000 × 1000, nodata 0. Alpine meadow with
  retrogressive-thaw-slump-like scars (bare brownish floor, arcuate headwall with a shadow on its
  upslope rim, a mudflow tongue downslope; the headwall retreats upslope every year) among
  look-alikes (drained ponds: bare grey mud, round, no headwall, not growing; a gravel pad).
* ``dem.tif``: float32 elevation (m), 30 m, 4600-4800 m.
* ``insar_rate_mm_yr.tif``: float32 LOS rate (mm/yr, negative = away from the satellite), 30 m,
  NaN nodata: slumps and their headwall zones move (-20 to -60 mm/yr), look-alikes do not, two
  solifluction lobes move too (invisible in the optical images), a decorrelated corner is NaN.
* ``timeseries.h5`` and ``temporalCoherence.h5`` (MintPy layout, 30 m, 66 epochs 2016-2020):
  the LOS displacement behind that rate, with seasonal thaw settlement (10-16 mm peak-to-peak
  on the moving ground) and noise; the insar_sbas detector reads these in the ``qtec`` region,
  so its candidates carry a time series, a seasonal amplitude and a coherence.
* ``known_inventory.gpkg`` (the 2020 outlines of some slumps: initial positives),
  ``reference_inventory.gpkg`` (all slumps), ``validation_points.gpkg`` (slump centroids),
  ``roads.gpkg`` (a highway line through the scene).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DATES", "build_qtec_sample"]

DATES = ("2016-08-01", "2017-08-01", "2018-08-01", "2019-08-01", "2020-08-01")
CRS = "EPSG:32646"
RES_M = 3.0
SIZE_PX = 1000
DEM_RES_M = 30.0
ORIGIN = (492_000.0, 3_855_600.0)  # upper-left corner (x, y), multiples of 30 m
N_SLUMPS = 14
N_KNOWN = 5
SEED = 20220901
TAGS = {
    "SYNTHETIC": "true",
    "DESCRIPTION": "SYNTHETIC thawdetect sample scene (not real data), QTEC near Beiluhe",
}
README = """SYNTHETIC SAMPLE - NOT REAL DATA

Made by thawdetect.plugins.optical_dl.sample.build_qtec_sample (deterministic, seed {seed}).
A made-up scene near Beiluhe in the Qinghai-Tibet Engineering Corridor (EPSG:32646)
for `thawdetect run --region qtec`.
images/*.tif imitate 4-band 16-bit PlanetScope (B, G, R, NIR; SR x 1e4; 3 m) with
retrogressive-thaw-slump-like scars that grow upslope from 2016 to 2020, among look-alikes
(drained ponds, a gravel pad).
dem.tif (m, 30 m) and insar_rate_mm_yr.tif (LOS mm/yr, 30 m, NaN nodata) are synthetic too,
as are timeseries.h5 and temporalCoherence.h5 (MintPy layout: the LOS time series behind the rate).
known_inventory.gpkg: {known} of the {n} slumps (initial training positives).
reference_inventory.gpkg: all {n} slumps (truth for the reference reviewer).
validation_points.gpkg: their centroids. roads.gpkg: a road line.
No result obtained on this scene says anything about real permafrost.
"""


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale_px: int) -> np.ndarray:
    from scipy import ndimage

    small = rng.standard_normal((shape[0] // scale_px + 2, shape[1] // scale_px + 2))
    big = ndimage.zoom(small, scale_px, order=3)[: shape[0], : shape[1]]
    return (big - big.mean()) / (big.std() + 1e-9)


def _dem(rng: np.random.Generator) -> np.ndarray:
    n = int(SIZE_PX * RES_M / DEM_RES_M)
    yy, xx = np.mgrid[0:n, 0:n] / n
    # a broad east-west ridge in the south: most of the scene is a gentle north-facing slope
    dem = 4650 + 110 * np.cos(np.pi * (yy - 0.72) * 1.15) + 20 * xx
    dem += 8 * _smooth_noise(rng, (n, n), 20)
    return dem.astype(np.float32)


def _slump_mask(
    xx: np.ndarray,
    yy: np.ndarray,
    centre: tuple[float, float],
    up: np.ndarray,
    width_m: float,
    head_m: float,
    tongue_m: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Scar mask and headwall-shadow mask in map coordinates (m)."""
    dx, dy = xx - centre[0], yy - centre[1]
    u = dx * up[0] + dy * up[1]  # upslope
    v = -dx * up[1] + dy * up[0]  # across slope
    half = width_m / 2
    s = np.clip(1 - (v / half) ** 2, 0, None)
    head = head_m * np.sqrt(s)
    bowl = (u >= 0) & (u <= head) & (np.abs(v) <= half)
    tongue = (u < 0) & (u >= -tongue_m) & (np.abs(v) <= half * (1 + u / (2 * tongue_m)))
    scar = bowl | tongue
    shadow = bowl & (u >= head - 7.0) & (head > 0)
    return scar, shadow


#: The InSAR stack's epochs: Sentinel-1 every 24 days over the images' years.
INSAR_START, INSAR_STEP_DAYS, INSAR_EPOCHS = "2016-06-01", 24, 66


def _write_insar_stack(
    out_dir: Path,
    rate: np.ndarray,
    moving: np.ndarray,
    transform: Any,
    rng: np.random.Generator,
) -> None:
    """``timeseries.h5`` and ``temporalCoherence.h5`` (MintPy layout, 30 m) behind ``rate``:
    y = rate·t + a seasonal term (thaw settlement each summer: 10-16 mm peak-to-peak on the
    moving ground, 2-4 mm elsewhere) + 3 mm of noise per epoch, referenced to the first date and
    a stable pixel as MintPy's are; coherence 0.75-0.95, 0.2 in the decorrelated north-east
    corner (noise there)."""
    from datetime import date, timedelta

    import h5py

    n = rate.shape[0]
    start = date.fromisoformat(INSAR_START)
    dates = [start + timedelta(days=INSAR_STEP_DAYS * k) for k in range(INSAR_EPOCHS)]
    t = np.array([(d - start).days / 365.25 for d in dates])
    amp = np.where(moving, rng.uniform(10, 16, rate.shape), rng.uniform(2, 4, rate.shape))
    phase = 2 * np.pi * (t[:, None, None] - 0.55)  # settlement peaks in late summer
    ts = rate[None] * t[:, None, None] - amp[None] * (np.cos(phase) + 1) / 2
    ts = ts + rng.normal(0, 3.0, ts.shape)
    corner = np.zeros(rate.shape, bool)
    corner[:12, -12:] = True
    ts[:, corner] = rng.normal(0, 40.0, (len(t), int(corner.sum())))
    ref_y, ref_x = n - 3, 2  # the reference pixel: stable ground in the south-west
    ts = ts - ts[:1] - (ts[:, ref_y, ref_x] - ts[0, ref_y, ref_x])[:, None, None]
    coherence = np.clip(rng.normal(0.86, 0.05, rate.shape), 0.75, 0.95)
    coherence[corner] = 0.2
    # MintPy's geocoded layout (its readfile/writefile attributes), written with h5py
    geo = {
        "LENGTH": str(n),
        "WIDTH": str(n),
        "X_FIRST": repr(float(transform.c)),
        "Y_FIRST": repr(float(transform.f)),
        "X_STEP": repr(float(transform.a)),
        "Y_STEP": repr(float(transform.e)),
        "X_UNIT": "meters",
        "Y_UNIT": "meters",
        "EPSG": CRS.split(":")[1],
        "UTM_ZONE": "46N",
        "REF_Y": str(ref_y),
        "REF_X": str(ref_x),
        "THAWDETECT_SYNTHETIC": TAGS["DESCRIPTION"],
    }
    with h5py.File(out_dir / "timeseries.h5", "w") as f:
        f.create_dataset("timeseries", data=(ts / 1000.0).astype(np.float32), chunks=True)
        f.create_dataset("date", data=np.array([d.strftime("%Y%m%d").encode() for d in dates]))
        f.create_dataset("bperp", data=np.zeros(len(dates), np.float32))
        attrs = {
            "FILE_TYPE": "timeseries",
            "UNIT": "m",
            "PROCESSOR": "hyp3",
            "PLATFORM": "Sen",
            "WAVELENGTH": "0.055465763",
            "REF_DATE": dates[0].strftime("%Y%m%d"),
            "START_DATE": dates[0].strftime("%Y%m%d"),
            "END_DATE": dates[-1].strftime("%Y%m%d"),
            "CENTER_LINE_UTC": "0",
            **geo,
        }
        for k, v in attrs.items():
            f.attrs[k] = v
    with h5py.File(out_dir / "temporalCoherence.h5", "w") as f:
        f.create_dataset("temporalCoherence", data=coherence.astype(np.float32))
        for k, v in {"FILE_TYPE": "temporalCoherence", "UNIT": "1", **geo}.items():
            f.attrs[k] = v


def build_qtec_sample(out_dir: Path) -> None:
    """Write the synthetic QTEC sample scene into ``out_dir`` (deterministic).

    Args:
        out_dir: directory to fill (created if needed).
    """
    import geopandas as gpd
    import rasterio
    import shapely
    from rasterio.features import shapes
    from rasterio.transform import from_origin
    from scipy import ndimage
    from shapely.geometry import LineString, shape

    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    transform = from_origin(ORIGIN[0], ORIGIN[1], RES_M, RES_M)
    dem_transform = from_origin(ORIGIN[0], ORIGIN[1], DEM_RES_M, DEM_RES_M)
    dem = _dem(rng)
    zoom = int(DEM_RES_M / RES_M)
    dem_fine = ndimage.zoom(dem, zoom, order=1)[:SIZE_PX, :SIZE_PX]
    gy, gx = np.gradient(dem_fine, RES_M)  # rows go south: north gradient = -gy
    up_x, up_y = gx, -gy
    slope_deg = np.degrees(np.arctan(np.hypot(gx, gy)))
    # aspect of the downslope direction, degrees from north clockwise
    aspect_deg = np.degrees(np.arctan2(-up_x, -up_y)) % 360
    # illumination from the north-west-ish sun (azimuth 135° in map coords, elevation 55°)
    sun = np.array([-0.5, 0.5])
    shade = 1 + 2.5 * (up_x * sun[0] + up_y * sun[1]) * -1 / 10
    shade = np.clip(shade, 0.85, 1.15)
    cols = ORIGIN[0] + (np.arange(SIZE_PX) + 0.5) * RES_M
    rows = ORIGIN[1] - (np.arange(SIZE_PX) + 0.5) * RES_M
    xx, yy = np.meshgrid(cols, rows)

    # -- features -------------------------------------------------------------------------------
    def pick(
        n: int, min_dist_px: int, ok: np.ndarray, taken: list[tuple[int, int]]
    ) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        while len(out) < n:
            r, c = (int(v) for v in rng.integers(90, SIZE_PX - 90, 2))
            if ok[r, c] and all(np.hypot(r - a, c - b) > min_dist_px for a, b in out + taken):
                out.append((r, c))
        return out

    # RTS of the QTEC sit mostly on gentle north-facing slopes (Xia et al. 2022); ponds on flats
    north = (aspect_deg <= 60) | (aspect_deg >= 300)
    slump_px = pick(N_SLUMPS, 110, north & (slope_deg >= 3) & (slope_deg <= 10), [])
    pond_px = pick(5, 110, slope_deg < 3, slump_px)
    slumps: list[dict[str, Any]] = []
    for r, c in slump_px:
        up = np.array([up_x[r, c], up_y[r, c]])
        up = up / (np.linalg.norm(up) + 1e-9)
        slumps.append(
            {
                "centre": (float(xx[r, c]), float(yy[r, c])),
                "up": up,
                "width_m": float(rng.uniform(45, 95)),
                "head0_m": float(rng.uniform(15, 30)),
                "retreat_m_yr": float(rng.uniform(4, 9)),
                "tongue_m": float(rng.uniform(25, 60)),
                "rate_mm_yr": float(rng.uniform(-60, -25)),
                "rc": (r, c),
            }
        )
    ponds: list[dict[str, Any]] = [
        {
            "rc": rc,
            "a_m": float(rng.uniform(25, 45)),
            "b_m": float(rng.uniform(18, 35)),
            "angle": float(rng.uniform(0, np.pi)),
            "drained_year": int(rng.integers(2016, 2020)),
        }
        for rc in pond_px
    ]
    road = LineString(
        [
            (ORIGIN[0], ORIGIN[1] - 2300),
            (ORIGIN[0] + 1400, ORIGIN[1] - 1900),
            (ORIGIN[0] + 3000, ORIGIN[1] - 2050),
        ]
    )
    road_dist = shapely.distance(road, shapely.points(xx, yy))
    pad = (np.abs(xx - (ORIGIN[0] + 2400)) < 35) & (np.abs(yy - (ORIGIN[1] - 2150)) < 25)

    # -- static background --------------------------------------------------------------------
    veg = 0.5 + 0.5 * np.tanh(1.2 * _smooth_noise(rng, (SIZE_PX, SIZE_PX), 60))  # meadow cover
    texture = _smooth_noise(rng, (SIZE_PX, SIZE_PX), 6)
    meadow = np.array([520, 760, 700, 2600], np.float32)
    steppe = np.array([640, 840, 880, 2100], np.float32)  # sparse alpine steppe
    base = veg[None] * meadow[:, None, None] + (1 - veg[None]) * steppe[:, None, None]
    base = base * (1 + 0.05 * texture[None])
    soil = np.array([950, 1150, 1500, 1650], np.float32)  # bare brownish scar floor
    mud = np.array([1050, 1150, 1200, 1350], np.float32)  # grey pond mud
    water = np.array([450, 500, 380, 250], np.float32)
    asphalt = np.array([1100, 1150, 1200, 1350], np.float32)
    gravel = np.array([1500, 1600, 1650, 1800], np.float32)

    profile = {
        "driver": "GTiff",
        "dtype": "uint16",
        "count": 4,
        "width": SIZE_PX,
        "height": SIZE_PX,
        "crs": CRS,
        "transform": transform,
        "nodata": 0,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
    }
    final_scar = np.zeros((SIZE_PX, SIZE_PX), bool)
    for k, date in enumerate(DATES):
        year = 2016 + k
        img = base.copy()
        img[:, road_dist < 5] = asphalt[:, None]
        img[:, pad] = gravel[:, None]
        for p in ponds:
            r, c = p["rc"]
            dx, dy = xx - xx[r, c], yy - yy[r, c]
            ca, sa = np.cos(p["angle"]), np.sin(p["angle"])
            e = ((dx * ca + dy * sa) / p["a_m"]) ** 2 + ((-dx * sa + dy * ca) / p["b_m"]) ** 2
            inside = e <= 1
            img[:, inside] = (water if year < p["drained_year"] else mud)[:, None]
        scars = np.zeros((SIZE_PX, SIZE_PX), bool)
        for s in slumps:
            head = s["head0_m"] + s["retreat_m_yr"] * k
            scar, shadow = _slump_mask(
                xx, yy, s["centre"], s["up"], s["width_m"] * (1 + 0.04 * k), head, s["tongue_m"]
            )
            floor = scar & ~shadow
            mottled = 1 + 0.08 * texture[floor]
            img[:, floor] = soil[:, None] * mottled[None]
            img[:, shadow] = soil[:, None] * 0.35
            scars |= scar
        final_scar = scars
        img = img * shade[None] * float(rng.uniform(0.93, 1.07))
        img = img + rng.normal(0, 25, img.shape)
        img = np.clip(np.rint(img), 1, 65535).astype(np.uint16)
        with rasterio.open(out_dir / "images" / f"{date}.tif", "w", **profile) as dst:
            dst.write(img)
            dst.update_tags(
                **TAGS,
                ACQUISITION_DATE=date,
                BANDS="blue,green,red,nir",
                UNITS="surface reflectance x 10000",
            )

    # -- inventories ----------------------------------------------------------------------------
    labels, _ = ndimage.label(final_scar)
    geoms, ids = [], []
    for i, s in enumerate(slumps):
        r, c = s["rc"]
        lab = (
            labels[r, c]
            or np.bincount(labels[max(0, r - 10) : r + 10, max(0, c - 10) : c + 10].ravel())[
                1:
            ].argmax()
            + 1
        )
        polys = [
            shape(g)
            for g, v in shapes(
                (labels == lab).astype(np.uint8), mask=labels == lab, transform=transform
            )
            if v == 1
        ]
        geoms.append(max(polys, key=lambda g: g.area))
        ids.append(i + 1)
    ref = gpd.GeoDataFrame(
        {"rts_id": ids, "area_m2": [g.area for g in geoms], "year": 2020, "synthetic": True},
        geometry=geoms,
        crs=CRS,
    )
    ref.to_file(out_dir / "reference_inventory.gpkg", layer="reference_inventory", engine="pyogrio")
    known = ref.iloc[:N_KNOWN]
    known.to_file(out_dir / "known_inventory.gpkg", layer="known_inventory", engine="pyogrio")
    pts = gpd.GeoDataFrame(
        {"rts_id": ids, "label": "rts", "synthetic": True},
        geometry=[g.representative_point() for g in geoms],
        crs=CRS,
    )
    pts.to_file(out_dir / "validation_points.gpkg", layer="validation_points", engine="pyogrio")
    gpd.GeoDataFrame(
        {"name": ["synthetic highway"], "synthetic": [True]}, geometry=[road], crs=CRS
    ).to_file(out_dir / "roads.gpkg", layer="roads", engine="pyogrio")

    # -- DEM and InSAR rate (30 m) --------------------------------------------------------------
    n = dem.shape[0]
    dprof = {
        "driver": "GTiff",
        "dtype": "float32",
        "count": 1,
        "width": n,
        "height": n,
        "crs": CRS,
        "transform": dem_transform,
        "tiled": True,
        "blockxsize": 64,
        "blockysize": 64,
        "nodata": float("nan"),
    }
    with rasterio.open(out_dir / "dem.tif", "w", **dprof) as dst:
        dst.write(dem[None])
        dst.update_tags(**TAGS, UNITS="m")
    cx = ORIGIN[0] + (np.arange(n) + 0.5) * DEM_RES_M
    cy = ORIGIN[1] - (np.arange(n) + 0.5) * DEM_RES_M
    gx30, gy30 = np.meshgrid(cx, cy)
    rate = 3.0 * rng.standard_normal((n, n)) + 2.0 * _smooth_noise(rng, (n, n), 30)
    for s in slumps:
        head = s["head0_m"] + s["retreat_m_yr"] * 4 + 40  # active zone above the headwall
        scar, _ = _slump_mask(
            gx30, gy30, s["centre"], s["up"], s["width_m"] * 1.2 + 30, head, s["tongue_m"] + 20
        )
        centre_px = (
            int((ORIGIN[1] - s["centre"][1]) // DEM_RES_M),
            int((s["centre"][0] - ORIGIN[0]) // DEM_RES_M),
        )
        scar[centre_px] = True
        rate[scar] += s["rate_mm_yr"]
    for _ in range(2):  # solifluction lobes: moving, not visible optically
        r0, c0 = (int(v) for v in rng.integers(15, n - 15, 2))
        lobe = np.hypot(*(np.mgrid[0:n, 0:n] - np.array([r0, c0])[:, None, None])) < 4
        rate[lobe] -= 25.0
    # the time series behind the rate (MintPy layout): what the review shows and fits
    moving = rate < -15.0
    _write_insar_stack(out_dir, rate, moving, dem_transform, rng)
    rate[:12, -12:] = np.nan  # decorrelated corner
    with rasterio.open(out_dir / "insar_rate_mm_yr.tif", "w", **dprof) as dst:
        dst.write(rate.astype(np.float32)[None])
        dst.update_tags(**TAGS, UNITS="mm/yr", QUANTITY="LOS velocity, negative = away from sensor")
    (out_dir / "README.txt").write_text(README.format(seed=SEED, known=N_KNOWN, n=N_SLUMPS))
