"""Benchmark: the engine's update stage (pure Python/pandas part) against commit f58208a.

The update stage turns iteration k's decided candidates into the new inventory, positives and
negatives: ``latest_decisions`` (the decision in effect per candidate), ``inventory_update``
(``build_inventory_change``: new features with their reviewed outlines, fragments merged into
earlier features; ``changed_features``: the earlier features that changed) and
``iteration_summary``. Issue 13 asks ≤ 0.2 s for it at N = 10,510 candidates per iteration.

Inputs are real: the engine benchmark's worker (``bench/bench_engine.py``: a synthetic detector
proposing N squares per iteration, the reference reviewer confirming every other one with the
reference outline as the reviewed outline) runs 3 iterations into a temporary run; iteration 3's
candidates, decisions and the layers as they stood before its update are read back from the
ledger. With ``--fragments F``, a fraction F of iteration 3's rejected candidates is turned into
"part of" decisions (half into a feature of iteration 1-2, half into a candidate confirmed in
iteration 3, every third with a drawn outline) so the per-fragment path is timed too.

The reference is ``bench/legacy_update.py``, a frozen copy of the f58208a code, run on the same
inputs in the same process; the result frames are checked to be identical. Printed: seconds
(best of ``--repeat``; wall and CPU) for the old and the new code, their ratio, and the new
code's split over its parts.

Usage::

    python bench/bench_update.py [--n 10510] [--repeat 5] [--fragments 0.01] [--keep DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "bench")]

import legacy_update  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from bench_engine import STAGES, WORKER  # noqa: E402

from thawdetect.core.review import outlines  # noqa: E402
from thawdetect.core.review.decisions import latest_decisions  # noqa: E402
from thawdetect.core.run import layers  # noqa: E402
from thawdetect.core.run.ledger import Ledger  # noqa: E402

FIELDS = tuple(f.name for f in dataclasses.fields(layers.InventoryUpdate))


def make_run(n: int, out: Path) -> Path:
    """Run the engine benchmark's worker (3 iterations of N candidates) into ``out``."""
    script = WORKER.format(
        src=str(REPO / "src"), bench=str(REPO / "bench"), n=n, iterations=3, out=str(out),
        stages=STAGES,
    )  # fmt: skip
    subprocess.run([sys.executable, "-c", textwrap.dedent(script)], check=True, capture_output=True)
    return out / "run"


def inputs(run: Path, k: int, fragments: float) -> dict[str, Any]:
    """Iteration ``k``'s candidates and decisions, and the layers before its update."""
    led = Ledger(run)
    mine = led.read("candidates", where={"iteration": k})
    dec = led.read("decisions", where={"iteration": k})
    sets = {}
    for name in ("positives", "negatives", "inventory"):
        layer = led.read(name)
        sets[name] = layer[layer["iteration"] < k].reset_index(drop=True)
    if fragments > 0:
        mine, dec = with_fragments(mine, dec, sets["inventory"], fragments)
    return {"k": k, "mine": mine, "decisions": dec, "sets": sets, "crs": led.crs}


def with_fragments(
    mine: pd.DataFrame, dec: pd.DataFrame, inventory: pd.DataFrame, share: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Turn a share of the rejected candidates into "part of" decisions (see the module doc)."""
    rng = np.random.default_rng(13)
    rejected = np.flatnonzero((mine["status"] == "rejected").to_numpy())
    picked = rng.choice(rejected, size=max(1, int(share * len(rejected))), replace=False)
    confirmed = mine.loc[mine["status"] == "confirmed", "candidate_id"].to_numpy()
    mine, dec = mine.copy(), dec.copy()
    for j, row in enumerate(sorted(picked)):
        cid = mine.at[row, "candidate_id"]
        if j % 2:
            target = str(inventory["inventory_id"].iloc[rng.integers(len(inventory))])
        else:
            target = str(confirmed[rng.integers(len(confirmed))])
        mine.at[row, "status"] = "part_of"
        at = dec.index[dec["candidate_id"] == cid][-1]
        dec.at[at, "decision"] = "part_of"
        dec.at[at, "part_of"] = target
        if j % 3 == 0:
            dec.at[at, "geometry_wkt"] = mine.geometry.iloc[row].buffer(5.0).wkt
    return mine, dec


class _New:
    """This tree's functions under the legacy module's names."""

    latest_decisions = staticmethod(latest_decisions)
    inventory_update = staticmethod(layers.inventory_update)
    iteration_summary = staticmethod(layers.iteration_summary)


def update(mod: Any, data: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The update stage with module ``mod`` (the legacy copy or this tree)."""
    k, mine = data["k"], data["mine"]
    latest = mod.latest_decisions(data["decisions"])
    sets = {name: frame.copy() for name, frame in data["sets"].items()}
    upd = mod.inventory_update(k, mine, latest, sets, data["crs"], lambda _msg: None)
    row = mod.iteration_summary(k, ["synthetic"], mine, upd, len(mine), {})
    return upd, row


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """Best wall and CPU seconds of ``repeat`` calls."""
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return min(wall), min(cpu)


def parts(data: dict[str, Any], repeat: int) -> dict[str, float]:
    """Best CPU seconds of the new code's parts."""
    k, mine, crs = data["k"], data["mine"], data["crs"]
    latest = latest_decisions(data["decisions"])
    before = data["sets"]["inventory"]
    _, after, _, _ = outlines.build_inventory_change(k, mine, latest, before, crs)
    return {
        "latest_decisions": best(lambda: latest_decisions(data["decisions"]), repeat)[1],
        "build_inventory_change": best(
            lambda: outlines.build_inventory_change(k, mine, latest, before, crs), repeat
        )[1],
        "changed_features": best(lambda: layers.changed_features(before, after), repeat)[1],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10510, help="candidates per iteration")
    ap.add_argument("--repeat", type=int, default=5, help="best of this many calls")
    ap.add_argument("--fragments", type=float, default=0.0, help="share of rejected -> part of")
    ap.add_argument("--keep", type=Path, default=None, help="keep (or reuse) the run here")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_update_")) if args.keep is None else args.keep
    run = tmp / "run"
    if not (run / "ledger.gpkg").exists():
        print(f"engine run: 3 iterations of N={args.n} into {tmp} ...", flush=True)
        make_run(args.n, tmp)
    data = inputs(run, 3, args.fragments)
    n_frag = int((data["mine"]["status"] == "part_of").sum())
    print(
        f"update stage of iteration 3: {len(data['mine'])} candidates "
        f"({int((data['mine']['status'] == 'confirmed').sum())} confirmed, {n_frag} part of), "
        f"inventory {len(data['sets']['inventory'])} before"
    )
    old, old_row = update(legacy_update, data)
    new, new_row = update(_New, data)
    for field in FIELDS:
        pd.testing.assert_frame_equal(getattr(new, field), getattr(old, field))
    assert new_row == old_row, (new_row, old_row)
    print(f"  same result frames ({', '.join(FIELDS)}) and summary row: yes")
    t_old = best(lambda: update(legacy_update, data), args.repeat)
    t_new = best(lambda: update(_New, data), args.repeat)
    print(
        f"  f58208a (legacy) : {t_old[0]:.3f} s wall, {t_old[1]:.3f} s CPU (best of {args.repeat})"
    )
    print(f"  this tree        : {t_new[0]:.3f} s wall, {t_new[1]:.3f} s CPU")
    print(f"  ratio old / new  : {t_old[0] / t_new[0]:.1f}x wall, {t_old[1] / t_new[1]:.1f}x CPU")
    print(f"  goal ≤ 0.2 s     : {'met' if t_new[1] <= 0.2 else 'not met'} (CPU)")
    split = parts(data, args.repeat)
    print("  this tree, CPU s per part: " + ", ".join(f"{k} {v:.3f}" for k, v in split.items()))
    if args.keep is None:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
