"""Benchmark: thawdetect's seasonal fit vs MintPy's timeseries2velocity on the same file.

Writes a synthetic MintPy ``timeseries.h5`` (default 2000 × 2000 px × 80 epochs, ~1.3 GB),
then, each in its own subprocess (so peak RSS is per tool):

* MintPy: ``timeseries2velocity.py timeseries.h5 --periodic 1.0`` (writes velocity.h5);
* thawdetect: ``read_timeseries_fit`` (chunked, NaN-aware) and writing rate/amplitude to HDF5.

Prints wall times, the ratio MintPy / thawdetect, peak memory of each, and the maximum absolute
differences of rate and of A = 2 × annualAmplitude (metres). The modules each tool imports on
first use (MintPy's ``mintpy.timeseries2velocity``; thawdetect's Dask and h5py) are imported
before its clock starts and timed apart; the ratio with those imports counted is printed too.

Usage:
    python bench/bench_insar_fit.py [--size 2000] [--epochs 80] [--dir /tmp/bench_insar]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

RUN_MINTPY = textwrap.dedent(
    """
    import json, resource, sys, time
    from mintpy.cli import timeseries2velocity
    t = time.perf_counter()
    import mintpy.timeseries2velocity  # what main() imports first: timed apart
    imports = time.perf_counter() - t
    t = time.perf_counter()
    timeseries2velocity.main([sys.argv[1], "--periodic", "1.0", "-o", sys.argv[2]])
    wall = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall_s": wall, "imports_s": imports, "peak_rss_mb": rss}))
    """
)

RUN_OURS = textwrap.dedent(
    """
    import json, resource, sys, time
    import numpy as np
    from thawdetect.plugins.insar_sbas.mintpy_h5 import write_mintpy_h5
    from thawdetect.plugins.insar_sbas.seasonal_fit import read_timeseries_fit
    t = time.perf_counter()
    import dask.base, dask.threaded, h5py  # what the fit imports on first use: timed apart
    import thawdetect.core.compute, thawdetect.core.progress
    imports = time.perf_counter() - t
    t = time.perf_counter()
    fit, dates, grid, attrs = read_timeseries_fit(sys.argv[1], min_epochs=10, chunk_pixels=250_000)
    write_mintpy_h5(sys.argv[2], {
        "rate_mm_yr": fit.rate_mm_yr.astype(np.float32),
        "seasonal_amplitude_pp_mm": fit.seasonal_amplitude_pp_mm.astype(np.float32),
    }, {"FILE_TYPE": "thawdetect_seasonal_fit"})
    wall = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall_s": wall, "imports_s": imports, "peak_rss_mb": rss}))
    """
)


# the detector's path: the fit with its cache of sums (kept for new epochs), cold
RUN_OURS_CACHED = RUN_OURS.replace(
    "fit, dates, grid, attrs = read_timeseries_fit(sys.argv[1], min_epochs=10, "
    "chunk_pixels=250_000)",
    "import shutil, tempfile\n"
    "from thawdetect.plugins.insar_sbas.seasonal_fit import fit_timeseries_file\n"
    "cache = tempfile.mkdtemp()\n"
    "fit = fit_timeseries_file(sys.argv[1], min_epochs=10, chunk_pixels=250_000, "
    "cache_dir=cache).fit\n"
    "shutil.rmtree(cache)",
)
assert RUN_OURS_CACHED != RUN_OURS


def make_file(path: Path, size: int, epochs: int) -> None:
    import h5py
    from affine import Affine
    from rasterio.crs import CRS

    from thawdetect.core.grid import GridSpec
    from thawdetect.plugins.insar_sbas.synthetic import acquisition_dates, write_timeseries_h5

    grid = GridSpec(CRS.from_epsg(32647), Affine(30, 0, 600000, 0, -30, 4200000), size, size)
    dates = acquisition_dates(epochs)
    # write a small placeholder through the real writer (attributes, date), then fill in blocks
    write_timeseries_h5(path, np.zeros((epochs, 1, 1), np.float32), dates, grid)
    with h5py.File(path, "a") as f:
        attrs = dict(f.attrs)
        del f["timeseries"]
        ds = f.create_dataset(
            "timeseries", (epochs, size, size), np.float32, chunks=(epochs, 16, size)
        )
        for k, v in attrs.items():
            f.attrs[k] = v
        f.attrs["LENGTH"] = str(size)
        f.attrs["WIDTH"] = str(size)
        rng = np.random.default_rng(0)
        from thawdetect.plugins.insar_sbas.timefunc import design_matrix

        G = design_matrix(dates)
        rows = 100
        for r0 in range(0, size, rows):
            n = min(rows, size - r0) * size
            m = np.stack(
                [
                    np.zeros(n),
                    rng.uniform(-0.08, 0.08, n),
                    rng.uniform(-0.01, 0.01, n),
                    rng.uniform(-0.01, 0.01, n),
                ]
            )
            block = (G @ m + rng.normal(0, 0.003, (epochs, n))).astype(np.float32)
            block -= block[0:1]
            ds[:, r0 : r0 + rows, :] = block.reshape(epochs, -1, size)
        ds[:, 0, 0] = 0.0  # the reference pixel
    return None


def run(script: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=80)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/bench_insar"))
    a = ap.parse_args()
    a.dir.mkdir(parents=True, exist_ok=True)
    ts = a.dir / f"timeseries_{a.size}x{a.size}x{a.epochs}.h5"
    if not ts.exists():
        t = time.perf_counter()
        make_file(ts, a.size, a.epochs)
        print(f"wrote {ts} ({ts.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - t:.0f} s")
    # warm the page cache equally for both
    subprocess.run(["cat", str(ts)], stdout=subprocess.DEVNULL, check=False)
    mp = run(RUN_MINTPY, str(ts), str(a.dir / "velocity_mintpy.h5"))
    us = run(RUN_OURS, str(ts), str(a.dir / "fit_thawdetect.h5"))
    cached = run(RUN_OURS_CACHED, str(ts), str(a.dir / "fit_thawdetect_cached.h5"))

    import h5py

    with h5py.File(a.dir / "velocity_mintpy.h5") as f:
        v = f["velocity"][()].astype(np.float64)
        amp = 2 * f["annualAmplitude"][()].astype(np.float64)
    with h5py.File(a.dir / "fit_thawdetect.h5") as f:
        r = f["rate_mm_yr"][()].astype(np.float64) / 1000
        A = f["seasonal_amplitude_pp_mm"][()].astype(np.float64) / 1000
    ok = np.isfinite(r)
    print(f"pixels x epochs: {a.size} x {a.size} x {a.epochs}")
    print(
        "MintPy timeseries2velocity --periodic 1.0: "
        f"{mp['wall_s']:.1f} s, peak RSS {mp['peak_rss_mb']:.0f} MB"
    )
    print(
        "thawdetect fit_seasonal (chunked):        "
        f"{us['wall_s']:.1f} s, peak RSS {us['peak_rss_mb']:.0f} MB"
    )
    with_imports = (mp["wall_s"] + mp["imports_s"]) / (us["wall_s"] + us["imports_s"])
    print(
        f"speed ratio MintPy / thawdetect: {mp['wall_s'] / us['wall_s']:.2f}x at "
        f"{us['peak_rss_mb'] / mp['peak_rss_mb']:.2f}x its memory (goal >= 6x at <= 0.25x); "
        f"{with_imports:.2f}x counting the imports each does on first use "
        f"(MintPy {mp['imports_s']:.1f} s, thawdetect {us['imports_s']:.1f} s)"
    )
    print(
        "thawdetect with its fit cache (cold; the detector's path, keeps every pixel's sums "
        f"for new epochs): {cached['wall_s']:.1f} s, peak RSS {cached['peak_rss_mb']:.0f} MB "
        f"({mp['wall_s'] / cached['wall_s']:.2f}x, "
        f"{cached['peak_rss_mb'] / mp['peak_rss_mb']:.2f}x)"
    )
    print(f"max |rate difference|: {np.abs(r - v)[ok].max():.2e} m/yr")
    print(f"max |A - 2*annualAmplitude|: {np.abs(A - amp)[ok].max():.2e} m")


if __name__ == "__main__":
    main()
