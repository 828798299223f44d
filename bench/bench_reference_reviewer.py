"""Benchmark: the built-in reference reviewer at QTEC scale, this tree against a reference commit.

The engine's iteration 3 at N = 10,510 (``bench/bench_engine.py``): the synthetic detector's
squares 21,020 … 31,529 are reviewed against ``reference_squares`` (every other square of three
iterations, 15,765 features in a GeoPackage) with the inventory of iterations 1-2 (10,510
confirmed squares) as ``already_mapped``. A second case does the same on irregular polygons
(buffered random points, 6 … 64 vertices, overlapping, touching, nested, multi-part and point
references) so that nothing is tuned to the squares; a third adds ``tolerance_m=15``.

The reference code is ``src/thawdetect/plugins/reference_reviewer/plugin.py`` of a git commit
(default ``f58208a``, before issue 13's reviewer work), loaded as a module from a temporary file
and run in the same process on the same inputs. Both outputs are compared (every column,
byte for byte) before any time is printed.

Printed: seconds (median of ``--repeat``) for the whole hook (``thawdetect_review_candidates``,
reading the reference file; this tree's second and later calls reuse the parsed file, its first
call is printed on its own) and for
``reference_decisions`` alone, then the ratios reference/this tree; and the hook once more with
the containment shortcut off (every overlap area from an intersection, as before).

Goal (issue 13): the hook ≤ 0.3 s at N = 10,510 on 2 cores with identical decisions.

Usage::

    python bench/bench_reference_reviewer.py [--n 10510] [--repeat 3] [--reference f58208a]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "bench")]

import synthetic_detector as sd  # noqa: E402

from thawdetect.plugins.reference_reviewer import plugin as this_tree  # noqa: E402

PLUGIN = "src/thawdetect/plugins/reference_reviewer/plugin.py"


def load_reference(commit: str, tmp: Path) -> ModuleType:
    """The reviewer module of ``commit``, imported from a temporary file."""
    text = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{commit}:{PLUGIN}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = tmp / f"reference_reviewer_{commit}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(f"reference_reviewer_{commit}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def squares_case(n: int, tmp: Path) -> dict[str, Any]:
    """Iteration 3 of the engine bench: candidates, reference file, inventory so far."""
    ref_path = sd.reference_squares(tmp / "reference_squares.gpkg", n, 3)
    first = 2 * n
    cands = gpd.GeoDataFrame(
        {"candidate_id": [f"c03-{i:06d}" for i in range(n)]},
        geometry=sd.squares(first, n),
        crs=sd.CRS,
    )
    keep = np.arange(0, first, 2)
    inventory = gpd.GeoDataFrame(
        {"inventory_id": [f"rts-{i:06d}" for i in range(len(keep))]},
        geometry=sd.squares(0, first)[keep],
        crs=sd.CRS,
    )
    return {"candidates": cands, "ref_path": ref_path, "inventory": inventory}


def _blobs(rng: np.random.Generator, xy: np.ndarray) -> np.ndarray:
    """Irregular polygons around ``xy``: buffered 8 … 60 m, 2 … 16 segments a quadrant."""
    n = len(xy)
    radius = rng.uniform(8.0, 60.0, n)
    quad = rng.integers(2, 17, n)
    out = np.empty(n, dtype=object)
    for q in np.unique(quad):  # one vectorised buffer per segment count
        sel = quad == q
        out[sel] = shapely.buffer(shapely.points(xy[sel]), radius[sel], quad_segs=int(q))
    # stretched east-west by 0.5 … 1.8 so that outlines are not all round
    skew = rng.uniform(0.5, 1.8, n)
    cx = xy[:, 0]
    coords, index = shapely.get_coordinates(out, return_index=True)
    coords[:, 0] = cx[index] + (coords[:, 0] - cx[index]) * skew[index]
    return shapely.set_coordinates(out.copy(), coords)


def irregular_case(n: int, tmp: Path, seed: int = 13) -> dict[str, Any]:
    """Irregular candidates and references: overlapping, nested, multi-part, points."""
    rng = np.random.default_rng(seed)
    span = float(np.sqrt(n) * 160.0)

    def centres(k: int) -> np.ndarray:
        return rng.uniform(0, span, size=(k, 2)) + np.array(sd.ORIGIN)

    cgeom = _blobs(rng, centres(n))
    rxy = centres(int(n * 1.5))
    rgeom = _blobs(rng, rxy)
    # a tenth of the references are two-part features (parts 60 … 150 m apart), a twentieth
    # are points
    k = len(rgeom) // 10
    angle = rng.uniform(0, 2 * np.pi, k)
    dist = rng.uniform(60, 150, k)
    second = _blobs(rng, rxy[:k] + np.c_[np.cos(angle), np.sin(angle)] * dist[:, None])
    rgeom[:k] = shapely.multipolygons([[a, b] for a, b in zip(rgeom[:k], second, strict=True)])
    rgeom[k : k + len(rgeom) // 20] = shapely.centroid(rgeom[k : k + len(rgeom) // 20])
    rgeom = shapely.make_valid(rgeom)
    ref = gpd.GeoDataFrame({"id": [f"r{i}" for i in range(len(rgeom))]}, geometry=rgeom, crs=sd.CRS)
    ref_path = tmp / "reference_irregular.gpkg"
    ref.to_file(ref_path, engine="pyogrio")
    cands = gpd.GeoDataFrame(
        {"candidate_id": [f"c{i}" for i in range(n)]}, geometry=cgeom, crs=sd.CRS
    )
    inventory = gpd.GeoDataFrame(
        {"inventory_id": [f"inv{i}" for i in range(n // 2)]},
        geometry=_blobs(rng, centres(n // 2)),
        crs=sd.CRS,
    )
    return {"candidates": cands, "ref_path": ref_path, "inventory": inventory}


def _hook(module: ModuleType, case: dict[str, Any], spec: str) -> pd.DataFrame:
    ctx = SimpleNamespace(reference_paths=[], inventory=case["inventory"])
    out = module.thawdetect_review_candidates(
        candidates=case["candidates"], reviewer=f"reference:{case['ref_path']}{spec}", context=ctx
    )
    assert isinstance(out, pd.DataFrame)
    return out


def _median_s(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run_case(
    name: str, case: dict[str, Any], spec: str, old: ModuleType, repeat: int
) -> dict[str, float]:
    this_tree._CACHE.clear()
    a = _hook(old, case, spec)
    t0 = time.perf_counter()
    b = _hook(this_tree, case, spec)  # the first call of a run reads the reference file
    first_s = time.perf_counter() - t0
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert a.attrs == b.attrs
    counts = a["decision"].value_counts().to_dict()
    ref = gpd.read_file(case["ref_path"], engine="pyogrio")
    opts = this_tree.parse_reference_spec(f"reference{spec}")
    assert opts is not None
    kw = {"already_mapped": case["inventory"], **opts[1]}

    def decide(module: ModuleType) -> pd.DataFrame:
        return module.reference_decisions(case["candidates"], ref, **kw)

    pd.testing.assert_frame_equal(decide(old), decide(this_tree), check_exact=True)
    figures = {
        "hook_old_s": _median_s(lambda: _hook(old, case, spec), repeat),
        "hook_new_s": _median_s(lambda: _hook(this_tree, case, spec), repeat),
        "decide_old_s": _median_s(lambda: decide(old), repeat),
        "decide_new_s": _median_s(lambda: decide(this_tree), repeat),
        "hook_new_first_s": first_s,
    }
    # this tree without the containment shortcut (every overlap area by intersection)
    shortcut = this_tree._SHORTCUT_MAX_OVERLAP
    this_tree._SHORTCUT_MAX_OVERLAP = -1.0
    try:
        pd.testing.assert_frame_equal(a, _hook(this_tree, case, spec), check_exact=True)
        figures["hook_exact_s"] = _median_s(lambda: _hook(this_tree, case, spec), repeat)
    finally:
        this_tree._SHORTCUT_MAX_OVERLAP = shortcut
    print(
        f"{name}{spec or ''}: {len(case['candidates'])} candidates, {len(ref)} reference features, "
        f"{len(case['inventory'])} in the inventory; decisions {counts}; identical: yes"
    )
    print(
        f"  hook      {figures['hook_old_s']:.3f} s -> {figures['hook_new_s']:.3f} s "
        f"({figures['hook_old_s'] / figures['hook_new_s']:.1f}x)"
    )
    print(
        f"  hook, first call (reads the file): {first_s:.3f} s "
        f"({figures['hook_old_s'] / first_s:.1f}x)"
    )
    print(
        f"  decisions {figures['decide_old_s']:.3f} s -> {figures['decide_new_s']:.3f} s "
        f"({figures['decide_old_s'] / figures['decide_new_s']:.1f}x)"
    )
    print(
        f"  hook without the containment shortcut {figures['hook_exact_s']:.3f} s "
        f"({figures['hook_old_s'] / figures['hook_exact_s']:.1f}x)"
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10510, help="candidates per iteration")
    parser.add_argument("--repeat", type=int, default=3, help="timed calls per figure (median)")
    parser.add_argument("--reference", default="f58208a", help="git commit of the old reviewer")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        old = load_reference(args.reference, tmp)
        print(f"reference reviewer: {args.reference}; this tree: {REPO}")
        squares = squares_case(args.n, tmp)
        run_case("squares", squares, "", old, args.repeat)
        irregular = irregular_case(args.n, tmp)
        run_case("irregular", irregular, "", old, args.repeat)
        run_case("irregular", irregular, "?tolerance_m=15", old, args.repeat)


if __name__ == "__main__":
    main()
