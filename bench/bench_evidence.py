"""Benchmark: review evidence per candidate, the old code path against the new, in one run.

Synthesizes an InSAR scene (SIZE × SIZE cells of 30 m, EPSG:32647): a LOS-rate GeoTIFF, a
seasonal-amplitude GeoTIFF, a 12-band cumulative-displacement GeoTIFF and a DEM, with N
candidates (pixel-cluster outlines scattered over the scene, each with an 80-date displacement
series and its fit), then times:

* ``before``: the previous evidence code (``bench/legacy_evidence.py``, a copy of
  ``thawdetect.core.review.evidence`` before the rewrite: a windowed read per chip, a matplotlib
  figure per series plot), with the frames the InSAR detector gave it then (rate, amplitude),
  on the first ``--before`` candidates;
* ``after (same frames)``: :func:`thawdetect.core.review.evidence.build_evidence` with the same
  two frames (plus colour bars, hillshade, scale bars);
* ``after (full)``: the same with the frames the detector gives now (rate, amplitude and the
  12-date cumulative-displacement time-lapse, two GIFs).

Prints milliseconds per candidate (wall clock, ``--workers`` processes for the new code) and
the ratios against ``before``. The goal of issue 11 is ≤ 50 ms per candidate on 2 cores.

Usage::

    python bench/bench_evidence.py [--size 2000] [--n 400] [--before 40] [--workers 2]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from affine import Affine
from shapely.geometry import box

sys.path.insert(0, str(Path(__file__).resolve().parent))

from thawdetect.core.plugin_api.detector import ImageFrame, TimeSeries
from thawdetect.core.review.evidence import build_evidence

CRS = "EPSG:32647"
RES = 30.0
ORIGIN = (500_000.0, 4_200_000.0)


def _write(path: Path, data: np.ndarray, descriptions: list[str] | None = None) -> Path:
    data = np.atleast_3d(data) if data.ndim == 2 else data
    if data.ndim == 3 and data.shape[0] > 64:  # (rows, cols, 1) from atleast_3d
        data = np.moveaxis(data, -1, 0)
    profile = {
        "driver": "GTiff",
        "dtype": "float32",
        "count": data.shape[0],
        "width": data.shape[2],
        "height": data.shape[1],
        "crs": CRS,
        "transform": Affine(RES, 0, ORIGIN[0], 0, -RES, ORIGIN[1]),
        "nodata": float("nan"),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data.astype("float32"))
        for i, d in enumerate(descriptions or [], start=1):
            dst.set_band_description(i, d)
    return path


def scene(tmp: Path, size: int, n: int) -> tuple[gpd.GeoDataFrame, dict[str, Path]]:
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:size, 0:size].astype("float32")
    dem = 3800 + 300 * np.sin(xx / 150) * np.cos(yy / 210) + 2 * rng.standard_normal((size, size))
    rate = rng.normal(0, 4, (size, size)).astype("float32")
    amp = np.abs(rng.normal(6, 2, (size, size))).astype("float32")
    rate[rng.random((size, size)) < 0.03] = np.nan  # decorrelated cells
    rows = rng.integers(20, size - 20, n)
    cols = rng.integers(20, size - 20, n)
    geoms = []
    for r, c in zip(rows, cols, strict=True):
        rad = int(rng.integers(2, 6))
        disk = (yy[r - rad : r + rad + 1, c - rad : c + rad + 1] - r) ** 2 + (
            xx[r - rad : r + rad + 1, c - rad : c + rad + 1] - c
        ) ** 2 <= rad**2
        rate[r - rad : r + rad + 1, c - rad : c + rad + 1][disk] = -60
        amp[r - rad : r + rad + 1, c - rad : c + rad + 1][disk] = 15
        x0, y0 = ORIGIN[0] + (c - rad) * RES, ORIGIN[1] - (r + rad + 1) * RES
        geoms.append(box(x0, y0, x0 + (2 * rad + 1) * RES, y0 + (2 * rad + 1) * RES))
    d0 = date(2018, 1, 3)
    dates = [d0 + timedelta(days=12 * i) for i in range(80)]
    pick = np.linspace(0, 79, 12).round().astype(int)
    years = np.array([(dates[i] - d0).days / 365.25 for i in pick], dtype="float32")
    disp = rate[None] * years[:, None, None]
    t = np.array([(d - d0).days / 365.25 for d in dates])
    series = []
    for _ in range(n):
        y = -60 * t + 7 * np.cos(2 * np.pi * t) + rng.normal(0, 2, t.size)
        series.append(
            TimeSeries(
                dates,
                list(y),
                {"a_mm": 0.0, "b_mm_yr": -60.0, "c_mm": 7.0, "d_mm": 0.0},
                d0,
                "LOS displacement (mm), + towards the satellite",
            ).to_json()
        )
    cands = gpd.GeoDataFrame(
        {"candidate_id": [f"it01-{i + 1:05d}" for i in range(n)], "series_json": series},
        geometry=geoms,
        crs=CRS,
    )
    paths = {
        "rate": _write(tmp / "rate_mm_yr.tif", rate[None]),
        "amp": _write(tmp / "seasonal_amplitude_pp_mm.tif", amp[None]),
        "disp": _write(tmp / "displacement_mm.tif", disp, [dates[i].isoformat() for i in pick]),
        "dem": _write(tmp / "dem.tif", dem[None]),
    }
    return cands, paths


def frames(paths: dict[str, Path], full: bool) -> list[ImageFrame]:
    old = [
        ImageFrame("LOS rate mm/yr", paths["rate"], bands=(1,), value_range=(-100, 100)),
        ImageFrame("seasonal amplitude pp mm", paths["amp"], bands=(1,)),
    ]
    if not full:
        return [
            ImageFrame(
                f.label,
                f.path,
                f.bands,
                f.value_range,
                units=u,
                group="maps",
                date="2018-01-03 to 2020-07-20",
                source="bench scene",
            )
            for f, u in zip(old, ("mm/yr", "mm"), strict=True)
        ]
    out = frames(paths, False)
    with rasterio.open(paths["disp"]) as src:
        dates = list(src.descriptions)
    for i, d in enumerate(dates, start=1):
        out.append(
            ImageFrame(
                "cumulative LOS displacement",
                paths["disp"],
                bands=(i,),
                value_range=(-150, 150),
                units="mm",
                date=f"{d} (since {dates[0]})",
                group="timelapse",
            )
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2000, help="scene size in cells")
    ap.add_argument("--n", type=int, default=400, help="candidates for the new code")
    ap.add_argument("--before", type=int, default=40, help="candidates for the old code")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (new code)")
    args = ap.parse_args()
    import legacy_evidence

    tmp = Path(tempfile.mkdtemp(prefix="bench_evidence_"))
    try:
        cands, paths = scene(tmp, args.size, args.n)
        print(
            f"scene {args.size} x {args.size} cells of {RES:g} m, {args.n} candidates; "
            f"{args.workers} worker(s)"
        )
        results = {}
        sub = cands.iloc[: args.before]
        old_frames = [
            ImageFrame(f.label, f.path, f.bands, f.value_range) for f in frames(paths, False)
        ]
        t0 = time.perf_counter()
        legacy_evidence.build_evidence(sub, old_frames, tmp / "before", buffer_m=300)
        results["before (old code, 2 frames)"] = (time.perf_counter() - t0) / len(sub)
        for name, full in (("after (same 2 frames)", False), ("after (full: 2 + 12 frames)", True)):
            out = tmp / name.split()[1].strip("(")
            t0 = time.perf_counter()
            build_evidence(
                cands,
                frames(paths, full),
                out,
                buffer_m=300,
                dem=paths["dem"],
                workers=args.workers,
            )
            results[name] = (time.perf_counter() - t0) / len(cands)
        ref = results["before (old code, 2 frames)"]
        print(f"{'code path':<30} {'ms/candidate':>13} {'vs before':>10}")
        for name, sec in results.items():
            print(f"{name:<30} {1000 * sec:>13.1f} {ref / sec:>9.1f}x")
        goal = results["after (full: 2 + 12 frames)"] * 1000
        print(f"goal ≤ 50 ms/candidate: {'met' if goal <= 50 else 'NOT met'} ({goal:.1f} ms)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
