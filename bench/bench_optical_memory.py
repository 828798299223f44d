"""Benchmark: optical_dl inference memory at three mosaic sizes, against the landed code.

Each size runs the detector's inference path (percentile stretch, ``predict_mosaic`` with the
default 1088-px tiles and 8192-px blocks, ``polygonize_probability``) in a fresh process, with
the current code and with the landed code before the GDAL block-cache bound (``--reference``,
default: the commit before ``GDAL_CACHE_MB`` was added; ``git archive`` of its ``src``), one after
the other on the same files. Printed: wall time and peak resident memory (``ru_maxrss``), and
whether both wrote the same probability map (bitwise).

Sizes: a 2048² and an 8192² 4-band uint16 GeoTIFF (``bench_optical.make_mosaic``) and a VRT of
tiles (``--vrt`` columns × rows of 8192 × 4096 px windows of the 8192² file, default 2 × 1: a
16384 × 4096 mosaic that takes the multi-block path; ``--vrt 2x4`` is 16384², ~4× the time).

The model is any ONNX DeepLabv3+ (``--onnx``; default: the resnet18 model exported with random
weights by ``bench_optical``'s ``train_blobs(..., steps=0)``); weights do not change memory.

Usage::

    python bench/bench_optical_memory.py [--onnx MODEL.onnx] [--sizes 2048,8192] [--vrt 2x1]
        [--reference REF] [--skip-landed-above MP]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from landed import commit_before, landed_src  # noqa: E402

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import thawdetect
from thawdetect.plugins.optical_dl.config import OpticalDLConfig
from thawdetect.plugins.optical_dl.images import compute_stretch
from thawdetect.plugins.optical_dl.infer import polygonize_probability, predict_mosaic

mosaic, model, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
cfg = OpticalDLConfig()
t = time.perf_counter()
stretch = compute_stretch(mosaic, cfg)
predict_mosaic(model, mosaic, out, rgb_bands=(3, 2, 1), stretch=stretch,
               tile_size_px=cfg.tile_size_px, overlap_px=cfg.overlap_px,
               batch_size=cfg.inference_batch_size)
polys = polygonize_probability(out, cfg.probability_threshold, cfg.min_area_ha)
print(json.dumps({"code": thawdetect.__file__, "s": time.perf_counter() - t,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "polygons": len(polys)}))
"""


#: the default reference: the commit before GDAL_CACHE_MB was added
#: (``git log`` arguments for :func:`landed.commit_before`)
LANDED_BEFORE = ("-S", "GDAL_CACHE_MB", "--", "src/thawdetect/plugins/optical_dl/infer.py")


def write_vrt(path: Path, source: Path, cols: int, rows: int) -> Path:
    """A VRT of ``cols`` × ``rows`` tiles, each an 8192 × 4096 window of ``source``
    (alternately its top and bottom half), placed side by side."""
    import rasterio

    with rasterio.open(source) as src:
        t, crs, count = src.transform, src.crs, src.count
    tw, th = 8192, 4096
    width, height = cols * tw, rows * th
    bands = []
    for b in range(1, count + 1):
        items = []
        for r in range(rows):
            for c in range(cols):
                y0 = ((r + c) % 2) * th
                items.append(
                    f'<SimpleSource><SourceFilename relativeToVRT="0">{source}</SourceFilename>'
                    f"<SourceBand>{b}</SourceBand>"
                    f'<SrcRect xOff="0" yOff="{y0}" xSize="{tw}" ySize="{th}"/>'
                    f'<DstRect xOff="{c * tw}" yOff="{r * th}" xSize="{tw}" ySize="{th}"/>'
                    "</SimpleSource>"
                )
        bands.append(
            f'<VRTRasterBand dataType="UInt16" band="{b}">{"".join(items)}</VRTRasterBand>'
        )
    gt = ", ".join(repr(float(v)) for v in (t.c, t.a, t.b, t.f, t.d, t.e))
    path.write_text(
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">'
        f"<SRS>{crs.to_wkt()}</SRS><GeoTransform>{gt}</GeoTransform>{''.join(bands)}"
        "</VRTDataset>"
    )
    return path


def default_model(tmp: Path) -> Path:
    from bench_optical import train_blobs

    from thawdetect.plugins.optical_dl.export import export_onnx

    return export_onnx(train_blobs("resnet18", 0), tmp / "resnet18.onnx")


def same_map(a: Path, b: Path) -> bool:
    import numpy as np
    import rasterio

    with rasterio.open(a) as x, rasterio.open(b) as y:
        return bool(np.array_equal(x.read(), y.read(), equal_nan=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--onnx", type=Path)
    ap.add_argument("--sizes", default="2048,8192")
    ap.add_argument("--vrt", default="2x1", help="VRT tiles COLSxROWS of 8192x4096 ('' = none)")
    ap.add_argument("--reference")
    ap.add_argument("--skip-landed-above", type=float, default=1e9, help="MP; landed runs above")
    args = ap.parse_args()
    from bench_optical import make_mosaic

    with tempfile.TemporaryDirectory(prefix="bench_optical_memory_") as tmp_s:
        tmp = Path(tmp_s)
        model = args.onnx or default_model(tmp)
        (tmp / "landed").mkdir()
        old_src, sha = landed_src(args.reference or commit_before(*LANDED_BEFORE), tmp / "landed")
        codes = {f"landed {sha}": old_src, "new": ROOT / "src"}
        mosaics = []
        for size in (int(s) for s in args.sizes.split(",") if s):
            make_mosaic(tmp / f"mosaic_{size}.tif", size)
            mosaics.append(tmp / f"mosaic_{size}.tif")
        if args.vrt:
            cols, rows = (int(v) for v in args.vrt.lower().split("x"))
            if not (tmp / "mosaic_8192.tif").exists():
                make_mosaic(tmp / "mosaic_8192.tif", 8192)
            mosaics.append(
                write_vrt(tmp / f"tiles_{cols}x{rows}.vrt", tmp / "mosaic_8192.tif", cols, rows)
            )
        import rasterio

        print(f"optical_dl inference (1088-px tiles, 8192-px blocks), {model.name}; "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
        print(f"{'mosaic':<28}{'code':<16}{'time s':>8}{'MP/s':>7}{'peak MB':>9}")
        rows_out = []
        for m in mosaics:
            with rasterio.open(m) as src:
                mp = src.width * src.height / 1e6
                label = f"{m.name} {src.width}x{src.height}"
            outs = {}
            for name, src_dir in codes.items():
                if name != "new" and mp > args.skip_landed_above:
                    continue
                out = tmp / f"{m.stem}_{name.split()[0]}.tif"
                res = subprocess.run(
                    [sys.executable, "-c", CHILD, str(m), str(model), str(out)],
                    env={**os.environ, "PYTHONPATH": str(src_dir)},
                    capture_output=True, text=True,
                )  # fmt: skip
                if res.returncode:
                    sys.exit(res.stderr[-3000:])
                r = json.loads(res.stdout.strip().splitlines()[-1])
                assert r["code"].startswith(str(src_dir)), r["code"]
                outs[name] = out
                rows_out.append({"mosaic": label, "code": name, **r})
                print(f"{label:<28}{name:<16}{r['s']:>8.1f}{mp / r['s']:>7.2f}"
                      f"{r['peak_mb']:>9.0f}")  # fmt: skip
            if len(outs) == 2:
                a, b = outs.values()
                print(f"{'':<28}same probability map: {same_map(a, b)}")
            for p in outs.values():
                p.unlink(missing_ok=True)
        print(json.dumps(rows_out))


if __name__ == "__main__":
    main()
