"""Benchmark of the optical_dl model path (DeepLabv3+ resnet18, random weights: speed only).

1. Model throughput on 512 × 512 tiles: torch eager, onnxruntime fp32, onnxruntime static INT8,
   in megapixels per second (ratios against torch eager, measured in the same run).
2. End to end on a synthetic 4-band uint16 mosaic written to disk (read, stretch, infer, blend,
   write, polygonize) in a subprocess per mosaic size, with its peak memory, as a ratio against the
   onnxruntime fp32 tile throughput of part 1.

Usage: python bench/bench_optical.py [--size 8192] [--small 2048] [--threads 2] [--reps 4]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TILE = 512


def make_mosaic(path: Path, size: int) -> None:
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window
    from scipy import ndimage

    rng = np.random.default_rng(0)
    base = ndimage.gaussian_filter(rng.normal(0, 1, (4, 1024, 1024)), (0, 8, 8))
    base = 1500 + 600 * base / base.std()
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=4,
        dtype="uint16",
        crs="EPSG:32646",
        nodata=0,
        tiled=True,
        blockxsize=512,
        blockysize=512,
        transform=from_origin(400000, 3900000, 3, 3),
    ) as dst:
        for r in range(0, size, 1024):
            for c in range(0, size, 1024):
                h, w = min(1024, size - r), min(1024, size - c)
                block = base[:, :h, :w] + rng.normal(0, 30, (4, h, w))
                dst.write(np.clip(block, 1, 65535).astype(np.uint16), window=Window(c, r, w, h))


def end_to_end(mosaic: str, onnx_path: str, threads: int) -> dict:
    from thawdetect.plugins.optical_dl.config import OpticalDLConfig
    from thawdetect.plugins.optical_dl.images import compute_stretch
    from thawdetect.plugins.optical_dl.infer import (
        open_session,
        polygonize_probability,
        predict_mosaic,
    )

    cfg = OpticalDLConfig()
    session = open_session(onnx_path, threads)
    # reference measured in the same process right before: model throughput on tiles
    from thawdetect.plugins.optical_dl.infer import predict_array

    rates = {}
    for tile in (TILE, cfg.tile_size_px):
        x = np.random.default_rng(0).integers(0, 256, (1, 3, tile, tile)).astype(np.uint8)
        predict_array(session, x)
        t = time.perf_counter()
        for _ in range(2):
            predict_array(session, x)
        rates[tile] = 2 * tile * tile / 1e6 / (time.perf_counter() - t)
    t0 = time.perf_counter()
    stretch = compute_stretch(Path(mosaic), cfg)
    out = Path(mosaic).with_name(Path(mosaic).stem + "_prob.tif")
    predict_mosaic(
        session,
        Path(mosaic),
        out,
        rgb_bands=(3, 2, 1),
        stretch=stretch,
        tile_size_px=cfg.tile_size_px,
        overlap_px=cfg.overlap_px,
        batch_size=cfg.inference_batch_size,
    )
    t1 = time.perf_counter()
    polys = polygonize_probability(out, 0.5, 0.05)
    t2 = time.perf_counter()
    import rasterio

    with rasterio.open(mosaic) as src:
        mp = src.width * src.height / 1e6
    return {
        "mp": mp,
        "tile_rate": rates[TILE],
        "cfg_tile": cfg.tile_size_px,
        "cfg_rate": rates[cfg.tile_size_px],
        "infer_s": t1 - t0,
        "polygonize_s": t2 - t1,
        "total_s": t2 - t0,
        "polygons": len(polys),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=8192)
    ap.add_argument("--small", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--e2e-child", nargs=2)
    args = ap.parse_args()
    if args.e2e_child:
        print(json.dumps(end_to_end(*args.e2e_child, args.threads)))
        return
    import torch

    from thawdetect.plugins.optical_dl.export import export_onnx, quantize_int8
    from thawdetect.plugins.optical_dl.infer import open_session, predict_array
    from thawdetect.plugins.optical_dl.train import build_model

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench_optical_"))
    torch.manual_seed(0)
    model = build_model("resnet18").eval()
    fp32 = export_onnx(model, tmp / "fp32.onnx")
    rng = np.random.default_rng(0)
    from scipy import ndimage

    calib = np.clip(
        ndimage.gaussian_filter(rng.normal(128, 60, (8, 3, TILE, TILE)), (0, 0, 4, 4)), 0, 255
    ).astype(np.uint8)
    int8 = quantize_int8(fp32, tmp / "int8.onnx", calib)
    x = calib[:1]
    mp = TILE * TILE / 1e6

    def rate(fn) -> float:
        fn()
        t = time.perf_counter()
        for _ in range(args.reps):
            fn()
        return args.reps * mp / (time.perf_counter() - t)

    xt = torch.from_numpy(x.astype(np.float32) / 255)
    with torch.no_grad():
        eager = rate(lambda: model(xt))
    s32 = open_session(fp32, args.threads)
    s8 = open_session(int8, args.threads)
    r32 = rate(lambda: predict_array(s32, x))
    r8 = rate(lambda: predict_array(s8, x))
    p32, p8 = predict_array(s32, calib), predict_array(s8, calib)
    agree = ((p32 >= 0.5) == (p8 >= 0.5)).mean()
    print(f"threads={args.threads} tile={TILE}x{TILE} resnet18 DeepLabv3+ (random weights)")
    print(f"torch eager      {eager:6.2f} MP/s  (1.00x)")
    print(f"onnxruntime fp32 {r32:6.2f} MP/s  ({r32 / eager:.2f}x eager)")
    print(
        f"onnxruntime int8 {r8:6.2f} MP/s  ({r8 / eager:.2f}x eager; mask agreement with fp32 "
        f"{agree:.3f}, mean |dp| {np.abs(p8 - p32).mean():.4f})"
    )
    for size in (args.small, args.size):
        mosaic = tmp / f"mosaic_{size}.tif"
        t = time.perf_counter()
        make_mosaic(mosaic, size)
        made = time.perf_counter() - t
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--threads",
                str(args.threads),
                "--e2e-child",
                str(mosaic),
                str(fp32),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        res = json.loads(out.stdout.strip().splitlines()[-1])
        e2e = res["mp"] / res["total_s"]
        print(
            f"end to end {size}x{size} ({res['mp']:.0f} MP, made in {made:.0f} s, tiles "
            f"{res['cfg_tile']} px): {res['total_s']:.1f} s = {e2e:.2f} MP/s = "
            f"{e2e / res['tile_rate']:.2f}x the model's own rate on {TILE} px tiles, "
            f"{e2e / res['cfg_rate']:.2f}x on {res['cfg_tile']} px tiles (measured just before "
            f"in the same process: {res['tile_rate']:.2f}, {res['cfg_rate']:.2f} MP/s); "
            f"infer+write {res['infer_s']:.1f} s, polygonize {res['polygonize_s']:.1f} s; "
            f"peak RSS {res['peak_rss_mb']:.0f} MB; {res['polygons']} polygons"
        )
        os.remove(mosaic)


if __name__ == "__main__":
    main()
