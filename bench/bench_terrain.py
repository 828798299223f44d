"""Benchmark: windowed slope + aspect + mask (thawdetect) against xdem on the whole array.

Synthesizes a float32 DEM of SIZE × SIZE cells (default 10,000 × 10,000, 20 m, EPSG:32633,
smooth hills plus noise and a nodata lake) into a temporary tiled GeoTIFF, then runs, each in a
fresh subprocess so that peak memory (ru_maxrss of that process) is its own:

* ``windowed``: :func:`thawdetect.plugins.terrain.derivatives.derive` with a mask, block by block,
  writing slope, aspect and mask as tiled deflate GeoTIFFs;
* ``whole``: the whole DEM read into memory and ``xdem.terrain.get_terrain_attribute(
  ["slope", "aspect"])`` called once on it, then the same mask with numpy (nothing written);
* ``whole + write``: the same, then slope, aspect and mask written with the windowed run's
  GeoTIFF settings (the like-for-like reference: both produce the same files).

Prints megapixels per second, the speed ratio windowed/whole and the peak memory of each.

Usage::

    python bench/bench_terrain.py [--size 10000] [--block-size 1024] [--surface-fit Horn]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window

RANGES = {"elevation_m": (200.0, 800.0), "slope_deg": (1.0, 30.0), "aspect_deg": [(315.0, 45.0)]}


def synthesize(path: Path, size: int, res_m: float = 20.0) -> None:
    """Write the DEM strip by strip (the parent never holds it whole)."""
    profile = {
        "driver": "GTiff",
        "dtype": "float32",
        "count": 1,
        "width": size,
        "height": size,
        "crs": "EPSG:32633",
        "transform": Affine(res_m, 0, 400000, 0, -res_m, 8700000),
        "nodata": -9999.0,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "predictor": 3,
        "BIGTIFF": "YES",
    }
    rng = np.random.default_rng(42)
    cols = np.arange(size, dtype=np.float64)
    with rasterio.open(path, "w", **profile) as dst:
        for r0 in range(0, size, 512):
            rows = np.arange(r0, min(r0 + 512, size), dtype=np.float64)[:, None]
            z = (
                500
                + 250 * np.sin(rows / 700.0) * np.cos(cols / 900.0)
                + 60 * np.sin(rows / 97.0 + cols / 131.0)
                + rng.normal(0, 0.3, (rows.size, size))
            ).astype(np.float32)
            lake = (rows - size * 0.3) ** 2 + (cols - size * 0.6) ** 2 < (size * 0.05) ** 2
            z[lake] = -9999.0
            dst.write(z, 1, window=Window(0, r0, size, rows.size))


WINDOWED = """
import json, resource, sys, time
from thawdetect.plugins.terrain.derivatives import derive
from thawdetect.plugins.terrain.masks import coerce_ranges
dem, out, fit, block = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ranges = json.loads(sys.argv[5])
import xdem  # import cost outside the timing, as in the other process
t = time.perf_counter()
derive(dem, out, surface_fit=fit, block_size_px=block, mask=coerce_ranges(**ranges))
dt = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": dt, "peak_rss_mb": peak}))
"""

WHOLE = """
import json, resource, sys, time
import numpy as np, rasterio, xdem
from thawdetect.plugins.terrain.masks import coerce_ranges, terrain_mask
dem, fit, ranges = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
out = sys.argv[4] if len(sys.argv) > 4 else None
t = time.perf_counter()
with rasterio.open(dem) as src:
    z = src.read(1, masked=True).filled(np.nan).astype(np.float32)
    res = src.res[0]
t_read = time.perf_counter() - t
slope, aspect = xdem.terrain.get_terrain_attribute(
    z, ["slope", "aspect"], resolution=res, surface_fit=fit
)
m = terrain_mask(z, slope, aspect, coerce_ranges(**ranges))
if out:
    import pathlib
    pathlib.Path(out).mkdir(exist_ok=True)
    with rasterio.open(dem) as src:
        prof = src.profile | dict(tiled=True, blockxsize=256, blockysize=256, compress="deflate",
                                  zlevel=1, num_threads="ALL_CPUS", BIGTIFF="IF_SAFER")
    for name, arr, dtype in (("slope", slope, "float32"), ("aspect", aspect, "float32"),
                             ("mask", m, "uint8")):
        p = prof | dict(dtype=dtype, nodata=None if dtype == "uint8" else float("nan"))
        with rasterio.open(f"{out}/{name}.tif", "w", **p) as dst:
            dst.write(np.asarray(arr, dtype=dtype), 1)
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "read_seconds": t_read, "mask_fraction": float(m.mean()),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(code: str, *args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"benchmark subprocess failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=10_000, help="DEM edge in cells")
    ap.add_argument("--block-size", type=int, default=1024, help="windowed block edge, px")
    ap.add_argument("--surface-fit", default="Horn")
    args = ap.parse_args()
    mp = args.size * args.size / 1e6
    with tempfile.TemporaryDirectory(prefix="bench_terrain_") as tmp:
        dem = Path(tmp) / "dem.tif"
        t = time.perf_counter()
        synthesize(dem, args.size)
        print(
            f"DEM {args.size} x {args.size} ({mp:.0f} MP) written in "
            f"{time.perf_counter() - t:.1f} s ({dem.stat().st_size / 1e6:.0f} MB on disk)"
        )
        ranges = json.dumps(RANGES)
        win = run(
            WINDOWED,
            str(dem),
            str(Path(tmp) / "out"),
            args.surface_fit,
            str(args.block_size),
            ranges,
        )
        whole = run(WHOLE, str(dem), args.surface_fit, ranges)
        whole_w = run(WHOLE, str(dem), args.surface_fit, ranges, str(Path(tmp) / "whole"))
    print(f"surface fit {args.surface_fit}, block {args.block_size} px, mask {RANGES}")
    print(f"{'':28}{'MP/s':>8}{'seconds':>10}{'peak RSS (MB)':>16}")
    print(
        f"{'windowed derive (+ write)':28}{mp / win['seconds']:8.2f}{win['seconds']:10.1f}"
        f"{win['peak_rss_mb']:16.0f}"
    )
    print(
        f"{'xdem whole array (no write)':28}{mp / whole['seconds']:8.2f}{whole['seconds']:10.1f}"
        f"{whole['peak_rss_mb']:16.0f}"
    )
    print(
        f"{'xdem whole array + write':28}{mp / whole_w['seconds']:8.2f}"
        f"{whole_w['seconds']:10.1f}{whole_w['peak_rss_mb']:16.0f}"
    )
    print(f"speed ratio windowed / whole (no write): {whole['seconds'] / win['seconds']:.2f}")
    print(f"speed ratio windowed / whole + write: {whole_w['seconds'] / win['seconds']:.2f}")
    print(f"memory ratio windowed / whole: {win['peak_rss_mb'] / whole_w['peak_rss_mb']:.3f}")
    print(
        f"(whole-array read took {whole['read_seconds']:.1f} s; mask keeps "
        f"{whole['mask_fraction']:.1%} of the DEM)"
    )


if __name__ == "__main__":
    main()
