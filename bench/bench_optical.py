"""Benchmark of the optical_dl model path (DeepLabv3+; models trained briefly on synthetic blobs).

1. Model throughput on 512 × 512 tiles: torch eager, onnxruntime fp32, and static INT8 variants
   (QDQ / QOperator, per-channel / per-tensor weights, float head or Resize nodes, 7-bit weights)
   of the default model (resnet18, 256 decoder channels), then the lighter options (mobilenet_v2
   encoder; mobilenet_v2 with 128 decoder channels), in megapixels per second, as ratios against
   torch eager of the same model and of the default model, measured in the same run. Each model
   is first trained for ``--train-steps`` steps on synthetic bright blobs so that its masks mean
   something; each INT8 variant's quality is the Jaccard distance 1 - IoU between its mask and
   the fp32 mask on held-out tiles, which bounds its IoU loss against any reference (the Jaccard
   distance is a metric), and every mask's IoU with the true blobs says whether a lighter model
   gave up accuracy to be fast.
2. End to end on a synthetic 4-band uint16 mosaic written to disk (read, stretch, infer, blend,
   write, polygonize) in a subprocess per mosaic size, with its peak memory, as a ratio against
   the onnxruntime fp32 tile throughput measured just before in that subprocess; and against the
   same job model-only: the tiles the pipeline fed the model (counted), at that rate. The first
   ratio includes the compute the tile overlap adds; the second isolates what the rest of the
   pipeline costs.

Usage: python bench/bench_optical.py [--size 8192] [--small 2048] [--threads 2] [--reps 4]
       [--train-steps 60] [--no-variants] [--encoders resnet18,mobilenet_v2:128]
       [--no-e2e | --e2e-onnx MODEL.onnx]
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


def blobs(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Textured RGB tiles with brighter, slightly reddish elliptical blobs, and the blob masks."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    img = ndimage.gaussian_filter(rng.normal(110, 40, (n, 3, size, size)), (0, 0, 3, 3))
    yy, xx = np.mgrid[0:size, 0:size]
    masks = np.zeros((n, size, size), bool)
    for i in range(n):
        for _ in range(rng.integers(3, 7)):
            cy, cx = rng.uniform(0, size, 2)
            ry, rx = rng.uniform(size / 30, size / 8, 2)
            masks[i] |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    img = img + masks[:, None] * np.array([60.0, 35.0, 25.0])[None, :, None, None]
    return np.clip(img, 0, 255).astype(np.uint8), masks


def train_blobs(encoder: str, steps: int, decoder_channels: int = 256):
    """A DeepLabv3+ trained for ``steps`` Adam steps on 128 px blob tiles (seeded)."""
    import torch

    from thawdetect.plugins.optical_dl.train import build_model

    torch.manual_seed(0)
    model = build_model(encoder, decoder_channels=decoder_channels)
    images, masks = blobs(32, 128, seed=2)
    xs = torch.from_numpy(images.astype(np.float32) / 255)
    ys = torch.from_numpy(masks[:, None].astype(np.float32))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for step in range(steps):
        idx = torch.from_numpy(np.random.default_rng(step).choice(len(xs), 8, replace=False))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(xs[idx]), ys[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def end_to_end(mosaic: str, onnx_path: str, threads: int) -> dict:
    from thawdetect.plugins.optical_dl.config import OpticalDLConfig
    from thawdetect.plugins.optical_dl.images import compute_stretch
    from thawdetect.plugins.optical_dl.infer import (
        open_session,
        polygonize_probability,
        predict_mosaic,
    )

    cfg = OpticalDLConfig()
    session = open_session(onnx_path, threads)  # the same session (cached) runs the mosaic
    # reference measured in the same process right before: model throughput on tiles
    from thawdetect.plugins.optical_dl.infer import predict_array

    rates = {}
    for tile in (TILE, cfg.tile_size_px):
        x = np.random.default_rng(0).integers(0, 256, (1, 3, tile, tile)).astype(np.uint8)
        predict_array(session, x)
        t = time.perf_counter()
        for _ in range(3):
            predict_array(session, x)
        rates[tile] = 3 * tile * tile / 1e6 / (time.perf_counter() - t)
    # count what the pipeline feeds the model (tiles, pixels, seconds inside the model): the
    # model-only time of this very job is its tile pixels at the rate measured just above
    from thawdetect.plugins.optical_dl import infer as infer_mod

    fed = {"tiles": 0, "px": 0, "model_s": 0.0}
    plain = infer_mod.predict_array

    def counting(session: object, rgb: np.ndarray) -> np.ndarray:
        t = time.perf_counter()
        out = plain(session, rgb)
        fed["model_s"] += time.perf_counter() - t
        fed["tiles"] += rgb.shape[0]
        fed["px"] += rgb.shape[0] * rgb.shape[2] * rgb.shape[3]
        return out

    infer_mod.predict_array = counting  # type: ignore[assignment]
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
        "tiles": fed["tiles"],
        "model_only_s": fed["px"] / 1e6 / rates[cfg.tile_size_px],
        "model_in_pipeline_s": fed["model_s"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=8192)
    ap.add_argument("--small", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--train-steps", type=int, default=60)
    ap.add_argument("--no-variants", action="store_true", help="default INT8 and resnet18 only")
    ap.add_argument("--e2e-child", nargs=2)
    ap.add_argument(
        "--encoders",
        default=None,
        help="comma-separated ENCODER[:DECODER_CHANNELS] (default: resnet18, mobilenet_v2, "
        "mobilenet_v2:128); the first is the reference whose eager rate every line is also "
        "compared with",
    )
    ap.add_argument("--no-e2e", action="store_true", help="model throughput only")
    ap.add_argument(
        "--e2e-onnx",
        default=None,
        help="end to end only, with this ONNX model (e.g. a run's model_int8_7bit.onnx)",
    )
    args = ap.parse_args()
    if args.e2e_child:
        print(json.dumps(end_to_end(*args.e2e_child, args.threads)))
        return
    import torch

    from thawdetect.plugins.optical_dl.export import export_onnx, quantize_int8
    from thawdetect.plugins.optical_dl.infer import open_session, predict_array

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench_optical_"))
    calib, _ = blobs(8, TILE, seed=0)
    held_out, truth = blobs(4, TILE, seed=1)
    x = held_out[:1]
    mp = TILE * TILE / 1e6

    def rate(fn) -> float:
        fn()
        t = time.perf_counter()
        for _ in range(args.reps):
            fn()
        return args.reps * mp / (time.perf_counter() - t)

    def jaccard(a: np.ndarray, b: np.ndarray) -> float:
        union = (a | b).sum()
        return float(1 - (a & b).sum() / union) if union else 0.0

    def iou(a: np.ndarray) -> float:
        return 1 - jaccard(a, truth)

    print(
        f"threads={args.threads} tile={TILE}x{TILE} DeepLabv3+; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared machine: ratios only)"
    )
    variants: list[tuple[str, dict]] = [("QDQ, per-channel weights (default)", {})]
    if not args.no_variants:
        variants += [
            ("QDQ, per-tensor weights", {"per_channel": False}),
            ("QOperator, per-channel weights", {"quant_format": "QOperator"}),
            ("QDQ, per-channel, last 2 Conv (head) in fp32", {"exclude_last_convs": 2}),
            ("QDQ, per-channel, Resize in fp32", {"exclude_op_types": ("Resize",)}),
            ("QDQ, per-channel, percentile calibration", {"calibrate_method": "Percentile"}),
            ("QDQ, per-channel, 7-bit weights (reduce_range)", {"reduce_range": True}),
        ]
    fp32 = Path(args.e2e_onnx) if args.e2e_onnx else None
    models = (
        args.encoders.split(",")
        if args.encoders
        else ["resnet18", *(() if args.no_variants else ("mobilenet_v2", "mobilenet_v2:128"))]
    )
    first_eager = None
    for spec in () if args.e2e_onnx else models:
        encoder, _, channels = spec.partition(":")
        decoder_channels = int(channels or 256)
        label = f"{encoder}/{decoder_channels}"  # encoder / decoder channels
        t = time.perf_counter()
        model = train_blobs(encoder, args.train_steps, decoder_channels)
        trained_s = time.perf_counter() - t
        path = export_onnx(model, tmp / f"{encoder}_{decoder_channels}_fp32.onnx")
        fp32 = fp32 or path
        xt = torch.from_numpy(x.astype(np.float32) / 255)
        with torch.no_grad():
            eager = rate(lambda m=model, t=xt: m(t))
        first_eager = first_eager or (eager, label)
        s32 = open_session(path, args.threads)
        r32 = rate(lambda s=s32: predict_array(s, x))
        ref = predict_array(s32, held_out) >= 0.5
        print(
            f"{label} = {encoder}, {decoder_channels} decoder channels (trained "
            f"{args.train_steps} steps on synthetic blobs in {trained_s:.0f} s; "
            f"fp32 mask covers {ref.mean():.1%} of held-out pixels, IoU with the true blobs "
            f"{iou(ref):.3f})"
        )

        def versus(
            r: float, eager: float = eager, first: tuple = first_eager, label: str = label
        ) -> str:
            own = f"{r / eager:.2f}x its eager"
            if first[1] == label:
                return own
            return f"{own}, {r / first[0]:.2f}x {first[1]} eager"

        print(f"  torch eager      {eager:6.2f} MP/s  ({versus(eager)})")
        print(f"  onnxruntime fp32 {r32:6.2f} MP/s  ({versus(r32)})")
        light = [v for v in variants if v[0] == variants[0][0] or "reduce_range" in v[0]]
        for name, options in variants if spec == models[0] else light:
            q = tmp / f"{encoder}_{decoder_channels}_int8_{len(name)}.onnx"
            try:
                quantize_int8(path, q, calib, **options)
            except Exception as exc:  # report and go on with the other variants
                print(f"  int8 {name}: failed ({type(exc).__name__}: {str(exc)[:80]})")
                continue
            s8 = open_session(q, args.threads)
            r8 = rate(lambda s=s8: predict_array(s, x))
            p8 = predict_array(s8, held_out) >= 0.5
            print(
                f"  int8 {name}: {r8:6.2f} MP/s ({versus(r8)}, {r8 / r32:.2f}x fp32); "
                f"mask Jaccard distance to fp32 {jaccard(p8, ref):.4f} (bound on IoU loss), "
                f"IoU with the true blobs {iou(p8):.3f}"
            )
    for size in () if args.no_e2e else (args.small, args.size):
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
        print(
            f"  the same job model-only: {res['tiles']} tiles of {res['cfg_tile']} px at the rate "
            f"above = {res['model_only_s']:.1f} s; end to end = "
            f"{res['model_only_s'] / res['total_s']:.2f}x model-only (goal >= 0.85x); the model "
            f"ran {res['model_in_pipeline_s']:.1f} s inside the pipeline "
            f"({res['model_in_pipeline_s'] / res['total_s']:.0%} of the wall time)"
        )
        os.remove(mosaic)


if __name__ == "__main__":
    main()
