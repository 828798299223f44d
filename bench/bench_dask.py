"""Benchmark: Dask ``distributed`` scaling, 1 vs 2 worker processes (1 thread each).

Two heavy steps, each run as Dask tasks that read their inputs by path (nothing large goes
through the scheduler), on a ``LocalCluster`` of 1 and then 2 worker processes:

1. Seasonal fit: a synthetic MintPy ``timeseries.h5`` (``--fit-size`` px square × ``--epochs``),
   one task per block of rows, each reading its rows with h5py and calling
   ``thawdetect.plugins.insar_sbas.timefunc.fit_seasonal`` (``dask.delayed``).
2. Optical inference: ``predict_mosaic`` of a synthetic 4-band uint16 mosaic (``--mosaic-size``
   px square) with a random-weight DeepLabv3+ resnet18 ONNX model, blocks of ``--block`` px.

Each configuration is warmed up first (worker imports, ONNX session), then timed; results are
compared with the local (threads) run. Prints seconds, throughput per worker and the 2-vs-1 ratio
(goal ≥ 1.8×), all measured in the same run. On a shared machine the ratio is bounded by the
cores actually free: the script prints the load average next to the figures.

Usage:
    python bench/bench_dask.py [--fit-size 768] [--epochs 60] [--mosaic-size 896] [--block 448]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def fit_rows(path: str, r0: int, r1: int) -> tuple[int, np.ndarray, np.ndarray]:
    """One task: the seasonal fit of rows ``r0:r1`` of a MintPy time series, read by path."""
    import h5py

    from thawdetect.plugins.insar_sbas.timefunc import fit_seasonal

    with h5py.File(path, "r") as f:
        block = f["timeseries"][:, r0:r1, :]
        dates = [d.decode() if isinstance(d, bytes) else str(d) for d in f["date"][()]]
    fit = fit_seasonal(block, dates, unit="m", min_epochs=10)
    return (
        r0,
        fit.rate_mm_yr.astype(np.float32),
        fit.seasonal_amplitude_pp_mm.astype(np.float32),
    )


def fit_graph(path: Path, size: int, rows: int) -> list:
    import dask

    return [
        dask.delayed(fit_rows, pure=False)(str(path), r0, min(r0 + rows, size))
        for r0 in range(0, size, rows)
    ]


def run_fit(path: Path, size: int, rows: int) -> tuple[float, np.ndarray]:
    from thawdetect.core.compute import compute

    t = time.perf_counter()
    done = sorted(compute(*fit_graph(path, size, rows)), key=lambda d: d[0])
    wall = time.perf_counter() - t
    return wall, np.concatenate([d[1] for d in done])


def run_infer(onnx: Path, mosaic: Path, out: Path, block: int) -> tuple[float, np.ndarray]:
    import rasterio

    from thawdetect.plugins.optical_dl.config import OpticalDLConfig
    from thawdetect.plugins.optical_dl.images import compute_stretch
    from thawdetect.plugins.optical_dl.infer import predict_mosaic

    cfg = OpticalDLConfig(tile_size_px=512, overlap_px=64)
    stretch = compute_stretch(mosaic, cfg)
    t = time.perf_counter()
    predict_mosaic(
        onnx,
        mosaic,
        out,
        rgb_bands=(3, 2, 1),
        stretch=stretch,
        tile_size_px=cfg.tile_size_px,
        overlap_px=cfg.overlap_px,
        batch_size=1,
        band_width_px=block,
        band_height_px=block,
        threads=1,
    )
    wall = time.perf_counter() - t
    with rasterio.open(out) as src:
        return wall, src.read(1)


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fit-size", type=int, default=768)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--fit-rows", type=int, default=96, help="rows per fit task")
    ap.add_argument("--mosaic-size", type=int, default=896)
    ap.add_argument("--block", type=int, default=448, help="inference block edge (px)")
    ap.add_argument("--dir", type=Path, default=None)
    a = ap.parse_args()
    from distributed import LocalCluster

    from thawdetect.core.compute import use_scheduler

    tmp = a.dir or Path(tempfile.mkdtemp(prefix="bench_dask_"))
    tmp.mkdir(parents=True, exist_ok=True)
    ts = tmp / f"timeseries_{a.fit_size}x{a.epochs}.h5"
    if not ts.exists():
        _load("bench_insar_fit").make_file(ts, a.fit_size, a.epochs)
    mosaic = tmp / f"mosaic_{a.mosaic_size}.tif"
    if not mosaic.exists():
        _load("bench_optical").make_mosaic(mosaic, a.mosaic_size)
    warm = tmp / "mosaic_warm.tif"
    if not warm.exists():
        _load("bench_optical").make_mosaic(warm, 448)
    onnx = tmp / "fp32.onnx"
    if not onnx.exists():
        import torch

        from thawdetect.plugins.optical_dl.export import export_onnx
        from thawdetect.plugins.optical_dl.train import build_model

        torch.manual_seed(0)
        export_onnx(build_model("resnet18").eval(), onnx)

    with use_scheduler("threads"):
        ref_fit_s, ref_rate = run_fit(ts, a.fit_size, a.fit_rows)
        ref_inf_s, ref_prob = run_infer(onnx, mosaic, tmp / "prob_local.tif", a.block)
    fit_mpx = a.fit_size**2 / 1e6
    inf_mp = a.mosaic_size**2 / 1e6
    load = os.getloadavg()
    print(
        f"cores {os.cpu_count()}, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
        "(1/5/15 min) before the cluster runs"
    )
    print(
        f"seasonal fit {a.fit_size}x{a.fit_size} px x {a.epochs} epochs, "
        f"{-(-a.fit_size // a.fit_rows)} tasks; inference {a.mosaic_size}x{a.mosaic_size} px, "
        f"tiles 512/64, blocks {a.block} px"
    )
    print(f"local threads scheduler: fit {ref_fit_s:.1f} s, inference {ref_inf_s:.1f} s")
    results: dict[int, tuple[float, float]] = {}
    for n in (1, 2):
        with LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster:
            addr = cluster.scheduler_address
            with use_scheduler(addr):
                # warm up: imports on the workers, ONNX sessions, file cache
                run_fit(ts, min(a.fit_size, a.fit_rows * n), a.fit_rows)
                run_infer(onnx, warm, tmp / "prob_warm.tif", a.block)
                fit_s, rate = run_fit(ts, a.fit_size, a.fit_rows)
                inf_s, prob = run_infer(onnx, mosaic, tmp / f"prob_{n}.tif", a.block)
        # BLAS summation order depends on its thread count (workers run 1 BLAS thread): report
        fit_same = np.array_equal(rate, ref_rate, equal_nan=True)
        fit_dmax = float(np.nanmax(np.abs(rate - ref_rate)))
        same = np.array_equal(prob, ref_prob, equal_nan=True)
        dmax = float(np.nanmax(np.abs(prob - ref_prob)))
        results[n] = (fit_s, inf_s)
        print(
            f"{n} worker process{'es' if n > 1 else ''} x 1 thread: fit {fit_s:.1f} s "
            f"({fit_mpx * a.epochs / fit_s:.2f} Mpx-epochs/s), inference {inf_s:.1f} s "
            f"({inf_mp / inf_s:.3f} MP/s); rate identical to local: {fit_same} (max |diff| "
            f"{fit_dmax:.1e} mm/yr); probability identical "
            f"to local: {same} (max |diff| {dmax:.1e})"
        )
    (f1, i1), (f2, i2) = results[1], results[2]
    load = os.getloadavg()
    print(f"ratio 2 vs 1 workers: fit {f1 / f2:.2f}x, inference {i1 / i2:.2f}x (goal >= 1.8x)")
    print(f"load average after: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")


if __name__ == "__main__":
    main()
