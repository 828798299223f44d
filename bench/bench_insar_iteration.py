"""Benchmark: what an insar_sbas iteration costs after the first, against the landed code.

Only the thresholds change between the schedule's rows; the seasonal fit, the terrain layers,
the resampled inputs and the row-independent rasters are the run's invariants
(:mod:`thawdetect.plugins.insar_sbas.invariants`). This runs the five default rows on one
SYNTHETIC scene (``scenes.make_realistic_scene``, written in MintPy layout: ``timeseries.h5``,
``temporalCoherence.h5``, ``dem.tif``), each row as the engine calls it (a new detector and
context per iteration, in one run directory), then a **resume**: a fresh process on the same run
directory repeating the last row (what ``thawdetect run`` does after an interruption or when an
input changed).

The same runs are made with the **landed code** (``--reference``, default: the commit before the
invariants cache; ``git archive`` of its ``src`` into a temporary folder) in a child process
each, one after the other, so both see the same machine. Per iteration: wall time of ``propose``
and the peak resident memory during it (``VmHWM`` reset before each iteration through
``/proc/self/clear_refs``); then whether both codes gave identical candidates (every column,
geometries by WKB) and identical rasters in every iteration's folder.

At frame scale (``--frame 6000x8000 --epochs 150``: a Sentinel-1 frame at 30 m) the scene is
:func:`~thawdetect.plugins.insar_sbas.scenes.write_tiled_frame`'s: a ``--tile``-pixel realistic
scene repeated mirror-wise, its 29 GB stack written chunk by chunk (never in memory). The landed
code then runs only ``--landed-rows`` rows (its later iterations cost minutes each there) and no
resume; the figures compare the rows both ran.

Usage::

    python bench/bench_insar_iteration.py [--size 1500] [--epochs 82] [--scene DIR]
        [--reference REF] [--rows 5] [--frame ROWSxCOLS --tile 1000 --landed-rows 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from landed import commit_before, landed_src  # noqa: E402

#: the default reference: the commit before the invariants cache (``git log`` arguments for
#: :func:`landed.commit_before`)
LANDED_BEFORE = ("--diff-filter=A", "--", "src/thawdetect/plugins/insar_sbas/invariants.py")

CHILD = r"""
import hashlib, json, os, sys, time
from pathlib import Path

def hwm_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return float("nan")

def reset_hwm():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass

t_import = time.perf_counter()
from thawdetect import IterationContext, PluginHost  # public: the same in every landed version
from thawdetect.plugins.insar_sbas.config import InsarSbasConfig
import thawdetect
t_import = time.perf_counter() - t_import

scene, run, first, last = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
host = PluginHost()
cfg = InsarSbasConfig(
    timeseries_file=scene / "timeseries.h5",
    coherence_file=scene / "temporalCoherence.h5",
    dem_file=scene / "dem.tif",
    schedule_index=first - 1,
    **json.loads(sys.argv[5]),
)
print(json.dumps({"code": str(Path(thawdetect.__file__).parent), "import_s": t_import}), flush=True)
for it in range(first, last + 1):
    ctx = IterationContext.standalone(host.region("qilian"), run, host=host, iteration=it)
    det = host.detector("insar_sbas")(cfg)
    reset_hwm()
    t = time.perf_counter()
    cands = det.propose(ctx)
    dt = time.perf_counter() - t
    h = hashlib.sha1(cands.drop(columns="geometry").to_json().encode())
    for g in cands.geometry:
        h.update(g.wkb)
    print(json.dumps({"iteration": it, "s": dt, "peak_mb": hwm_mb(), "n": len(cands),
                      "digest": h.hexdigest()}), flush=True)
    nxt = det.next_config(None)
    if nxt is None:
        break
    cfg = nxt
"""


def run_child(
    src: Path, scene: Path, run: Path, first: int, last: int, settings: dict[str, Any]
) -> list[dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": str(src), "PYTHONWARNINGS": "ignore"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(scene), str(run), str(first), str(last),
         json.dumps(settings)],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode:
        sys.exit(f"child failed ({src}):\n{out.stderr[-3000:]}")
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    head = rows.pop(0)
    if not head["code"].startswith(str(src)):
        sys.exit(f"child imported thawdetect from {head['code']}, not {src}")
    return rows


def same_rasters(a: Path, b: Path, iterations: int = 99) -> list[str]:
    """Files of the iteration folders under ``a`` and ``b`` (the first ``iterations``) whose
    pixels, band descriptions or tags (other than the iteration number) differ, or that one side
    lacks."""
    import numpy as np
    import rasterio

    def mine(p: Path) -> bool:
        return p.parent.name[2:].isdigit() and int(p.parent.name[2:]) <= iterations

    diffs = []
    for fa in sorted(p for p in a.glob("it*/*.tif") if mine(p)):
        fb = b / fa.relative_to(a)
        if not fb.exists():
            diffs.append(f"{fa.relative_to(a)}: missing")
            continue
        with rasterio.open(fa) as x, rasterio.open(fb) as y:
            same = np.array_equal(x.read(), y.read(), equal_nan=True)
            same &= x.descriptions == y.descriptions
            tx, ty = x.tags(), y.tags()
            tx.pop("THAWDETECT_ITERATION", None)
            ty.pop("THAWDETECT_ITERATION", None)
            same &= tx == ty
        if not same:
            diffs.append(str(fa.relative_to(a)))
    diffs += [f"{p.relative_to(b)}: only in new" for p in b.glob("it*/*.tif")
              if mine(p) and not (a / p.relative_to(b)).exists()]  # fmt: skip
    return diffs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1500, help="scene rows = columns (px)")
    ap.add_argument("--epochs", type=int, default=82)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scene", type=Path, help="a scene written before (else one is made)")
    ap.add_argument("--reference", help="git ref of the landed code (default: see above)")
    ap.add_argument("--rows", type=int, default=5, help="schedule rows to run (1-5)")
    ap.add_argument("--delineation", help="grow or threshold (default: the detector's)")
    ap.add_argument("--frame", help="ROWSxCOLS: a tiled frame-sized scene (see above)")
    ap.add_argument("--tile", type=int, default=1000, help="tile of --frame (px)")
    ap.add_argument("--landed-rows", type=int, help="rows the landed code runs (default: --rows)")
    ap.add_argument(
        "--dir",
        type=Path,
        help="make the (temporary) work folder here: a disk with room for a frame",
    )
    args = ap.parse_args()
    settings = {"delineation": args.delineation} if args.delineation else {}

    with tempfile.TemporaryDirectory(prefix="bench_insar_iteration_", dir=args.dir) as tmp_s:
        tmp = Path(tmp_s)
        scene = args.scene
        if scene is None and args.frame:
            from thawdetect.plugins.insar_sbas.scenes import write_tiled_frame

            t = time.perf_counter()
            nr, nc = (int(v) for v in args.frame.lower().split("x"))
            scene = tmp / "scene"
            write_tiled_frame(scene, nr, nc, tile_px=args.tile, n_epochs=args.epochs,
                              seed=args.seed)  # fmt: skip
            print(f"frame {nr} × {nc} × {args.epochs} epochs (tile {args.tile}) written in "
                  f"{time.perf_counter() - t:.0f} s", flush=True)  # fmt: skip
        elif scene is None:
            from thawdetect.plugins.insar_sbas.scenes import make_realistic_scene
            from thawdetect.plugins.insar_sbas.synthetic import write_scene

            t = time.perf_counter()
            s = make_realistic_scene(size_px=args.size, n_epochs=args.epochs, seed=args.seed)
            scene = tmp / "scene"
            write_scene(s, scene)
            del s
            print(f"scene {args.size}² × {args.epochs} epochs written in "
                  f"{time.perf_counter() - t:.0f} s")  # fmt: skip
        import h5py

        with h5py.File(scene / "timeseries.h5", "r") as f:
            shape = f["timeseries"].shape
        mpx = shape[1] * shape[2] / 1e6
        (tmp / "landed").mkdir()
        old_src, sha = landed_src(args.reference or commit_before(*LANDED_BEFORE), tmp / "landed")
        codes = {f"landed ({sha})": old_src, "new": ROOT / "src"}
        if args.landed_rows == 0:
            codes = {"new": ROOT / "src"}
        results: dict[str, dict[str, Any]] = {}
        landed_rows = args.landed_rows or args.rows
        for name, src in codes.items():
            run = tmp / name.split()[0]
            n_rows = landed_rows if src is old_src else args.rows
            t = time.perf_counter()
            rows = run_child(src, scene, run, 1, n_rows, settings)
            resume = (
                run_child(src, scene, run, n_rows, n_rows, settings)[0]
                if n_rows == args.rows
                else None
            )
            results[name] = {"rows": rows, "resume": resume, "run": run,
                             "total_s": time.perf_counter() - t}  # fmt: skip
            print(f"{name}: {n_rows} rows in {time.perf_counter() - t:.0f} s", flush=True)

        print(f"\ninsar_sbas iterations, {shape[1]} × {shape[2]} px ({mpx:.2f} MP) × {shape[0]} "
              f"epochs, {args.rows} rows, {settings or 'default settings'}; "
              f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
        print(f"{'code':<18}{'iteration':>10}{'candidates':>12}{'time s':>9}{'peak MB':>9}")
        for name, r in results.items():
            res = r["resume"]
            resumed = [{**res, "iteration": f"{res['iteration']}R"}] if res else []
            for row in [*r["rows"], *resumed]:
                print(f"{name:<18}{row['iteration']!s:>10}{row['n']:>12}{row['s']:>9.2f}"
                      f"{row['peak_mb']:>9.0f}")  # fmt: skip
        new = results["new"]
        print(f"new code: {len(new['rows'])} iterations in {sum(x['s'] for x in new['rows']):.0f} s"
              f" of propose ({new['total_s']:.0f} s with process start), peak "
              f"{max(x['peak_mb'] for x in new['rows']):.0f} MB")  # fmt: skip
        if len(results) < 2:
            print(json.dumps({"shape": list(shape), "new_rows": new["rows"]}))
            return
        (old_name, old) = next((k, v) for k, v in results.items() if k != "new")
        k = min(len(old["rows"]), len(new["rows"]))  # the rows both ran

        def later(r: dict[str, Any]) -> float:
            xs = [x["s"] for x in r["rows"][1:k]]
            return sum(xs) / max(len(xs), 1)

        both_resumed = old["resume"] is not None and new["resume"] is not None
        summary = {
            "shape": list(shape),
            "reference": old_name,
            "rows_compared": k,
            "first_s": [old["rows"][0]["s"], new["rows"][0]["s"]],
            "later_mean_s": [later(old), later(new)],
            "new_later_mean_all_s": sum(x["s"] for x in new["rows"][1:])
            / max(len(new["rows"]) - 1, 1),
            "resume_s": [old["resume"]["s"], new["resume"]["s"]] if both_resumed else None,
            "peak_mb": [
                max(x["peak_mb"] for x in old["rows"]),
                max(x["peak_mb"] for x in new["rows"]),
            ],
            "later_peak_mb": [
                max((x["peak_mb"] for x in old["rows"][1:]), default=0),
                max((x["peak_mb"] for x in new["rows"][1:]), default=0),
            ],
            "same_candidates": [x["digest"] for x in old["rows"][:k]]
            == [x["digest"] for x in new["rows"][:k]]
            and (not both_resumed or old["resume"]["digest"] == new["resume"]["digest"]),
            "raster_differences": same_rasters(old["run"], new["run"], k),
        }
        lo, ln = summary["later_mean_s"]
        print(f"\nlater iterations (rows 2-{k}): {ln:.2f} s against {lo:.2f} s landed: "
              f"{lo / max(ln, 1e-9):.1f}x ({ln / mpx * 2.25:.2f} s per 2.25 MP; "
              "goal <= 1)")  # fmt: skip
        if both_resumed:
            ro, rn = summary["resume_s"]
            print(f"resume (fresh process, last row again): {rn:.2f} s against {ro:.2f} s: "
                  f"{ro / rn:.1f}x")  # fmt: skip
        fo, fn = summary["first_s"]
        print(f"first iteration: {fn:.2f} s against {fo:.2f} s ({fn / fo:.2f}x)")
        po, pn = summary["peak_mb"]
        print(
            f"peak memory: {pn:.0f} MB against {po:.0f} MB; later iterations "
            f"{summary['later_peak_mb'][1]:.0f} against {summary['later_peak_mb'][0]:.0f} MB"
        )
        print(f"identical candidates (rows 1-{k}): {summary['same_candidates']}; rasters that "
              f"differ: {summary['raster_differences'] or 'none'}")  # fmt: skip
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
