"""Benchmark: insar_sbas outlines, old (``delineation: threshold``) vs new (``grow``), same scenes.

For each seed, :func:`thawdetect.plugins.insar_sbas.synthetic.make_scene` writes a SYNTHETIC
Qilian-like scene (landslides of smooth rate profiles, 0.5-20 ha, adjacent pairs, thermokarst on
flat floors, decorrelated patches, MintPy-like noise). The real detector then runs the five rows of
the default schedule with each method, as the engine would: after each row every candidate is
decided (the reference reviewer decides all), and a later candidate whose overlap with an earlier
one reaches the engine's ``duplicate_overlap`` (0.5 of the smaller area) is dropped as already
seen; candidates under the minimum mapping unit (0.05 ha) are dropped too.

Figures, per method, over all seeds (a candidate *belongs* to a planted landslide when at least
20 % of the candidate lies inside it):

* found: planted landslides with a candidate belonging to them;
* median IoU: IoU of the candidate that first found a landslide with its planted outline;
* split: found landslides with more than one candidate belonging to them over the run
  (the fragments a reviewer sees again);
* false alarms: candidates belonging to no planted landslide (of which on a look-alike);
* grouped: candidates made of more than one cluster (``grow`` only).

Ratios new/old are printed beside the figures.

Usage:
    python bench/bench_insar_delineation.py [--seeds 0 1 2 3 4] [--size 256] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

BELONG = 0.2
DUPLICATE_OVERLAP = 0.5
MMU_HA = 0.05


def run_method(
    paths: dict[str, Path], method: str, work: Path, **settings: object
) -> gpd.GeoDataFrame:
    """All candidates the five rows propose with ``method`` (and other detector ``settings``),
    after the engine's duplicate drop."""
    from thawdetect.core.plugin_api.detector import IterationContext
    from thawdetect.core.plugin_api.host import PluginHost
    from thawdetect.core.run.merge import overlap_fraction
    from thawdetect.plugins.insar_sbas.config import InsarSbasConfig

    host = PluginHost()
    cfg = InsarSbasConfig(
        timeseries_file=paths["timeseries"],
        coherence_file=paths["coherence"],
        dem_file=paths["dem"],
        delineation=method,
        **settings,
    )
    kept: list[gpd.GeoDataFrame] = []
    for it in range(1, cfg.n_rows + 1):
        ctx = IterationContext.standalone(host.region("qilian"), work, host=host, iteration=it)
        ctx.work_dir.mkdir(parents=True, exist_ok=True)
        det = host.detector("insar_sbas")(cfg)
        cands = det.propose(ctx)
        cands = cands[cands.geometry.area / 1e4 >= MMU_HA]
        if kept and len(cands):
            seen = pd.concat(kept, ignore_index=True)
            cands = cands[overlap_fraction(cands, seen) < DUPLICATE_OVERLAP]
        cands = cands.assign(iteration=it)
        kept.append(cands)
        nxt = det.next_config(None)  # type: ignore[arg-type]
        if nxt is None:
            break
        cfg = nxt
    return gpd.GeoDataFrame(pd.concat(kept, ignore_index=True), crs=kept[0].crs)


def score(cands: gpd.GeoDataFrame, slides: gpd.GeoDataFrame, looks: gpd.GeoDataFrame) -> dict:
    """found / IoU / split / false alarms of one method on one scene."""
    cands = cands.reset_index(drop=True)
    inter = gpd.overlay(
        cands.assign(cand=cands.index)[["cand", "iteration", "geometry"]],
        slides.assign(slide=slides.index)[["slide", "geometry"]],
        how="intersection",
        keep_geom_type=True,
    )
    inter["frac"] = inter.geometry.area / cands.geometry.area.loc[inter["cand"]].to_numpy()
    belongs = inter[inter["frac"] >= BELONG]
    ious, splits = [], 0
    for s, grp in belongs.groupby("slide"):
        first = grp.sort_values(["iteration", "frac"], ascending=[True, False]).iloc[0]
        a, b = cands.geometry.iloc[int(first["cand"])], slides.geometry.iloc[int(s)]
        ious.append(a.intersection(b).area / a.union(b).area)
        splits += grp["cand"].nunique() > 1
    orphan = cands[~cands.index.isin(belongs["cand"])]
    on_look = 0
    if len(orphan) and len(looks):
        on_look = int(orphan.intersects(looks.union_all()).sum())
    return {
        "planted": len(slides),
        "found": int(belongs["slide"].nunique()),
        "ious": ious,
        "split": int(splits),
        "false_alarms": len(orphan),
        "false_on_lookalikes": on_look,
        "candidates": len(cands),
        "grouped": int((cands["fragments"] > 1).sum()) if "fragments" in cands else 0,
    }


def main() -> None:
    """Run the benchmark and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()

    from thawdetect.plugins.insar_sbas.synthetic import make_scene, write_scene

    root = args.dir or Path(tempfile.mkdtemp(prefix="bench_insar_delineation_"))
    totals: dict[str, dict] = {}
    times: dict[str, float] = {"threshold": 0.0, "grow": 0.0}
    for seed in args.seeds:
        scene = make_scene(seed=seed, size_px=args.size)
        paths = write_scene(scene, root / f"seed{seed}")
        slides = gpd.read_file(paths["planted"], layer="slides")
        looks = gpd.read_file(paths["planted"], layer="lookalikes")
        for method in ("threshold", "grow"):
            t = time.perf_counter()
            cands = run_method(paths, method, root / f"seed{seed}" / method)
            times[method] += time.perf_counter() - t
            res = score(cands, slides, looks)
            tot = totals.setdefault(method, {"ious": []})
            for k, v in res.items():
                if k == "ious":
                    tot["ious"] += v
                else:
                    tot[k] = tot.get(k, 0) + v
            print(
                f"seed {seed} {method:9s}: found {res['found']}/{res['planted']}, median IoU "
                f"{np.median(res['ious']) if res['ious'] else float('nan'):.2f}, split "
                f"{res['split']}, false alarms {res['false_alarms']} "
                f"({res['false_on_lookalikes']} on look-alikes)",
                flush=True,
            )
    print()
    print(f"{len(args.seeds)} scenes (seeds {args.seeds}), {args.size} x {args.size} px at 30 m")
    print(
        "| method | found | median IoU | split | false alarms (on look-alikes) | grouped "
        "| candidates | time s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    summary = {}
    for method in ("threshold", "grow"):
        t = totals[method]
        found_frac = t["found"] / t["planted"]
        split_frac = t["split"] / max(t["found"], 1)
        med = float(np.median(t["ious"]))
        summary[method] = {
            "found_fraction": round(found_frac, 3),
            "median_iou": round(med, 3),
            "split_fraction": round(split_frac, 3),
            "false_alarms": t["false_alarms"],
            "false_on_lookalikes": t["false_on_lookalikes"],
            "planted": t["planted"],
            "grouped": t["grouped"],
            "candidates": t["candidates"],
            "time_s": round(times[method], 1),
        }
        print(
            f"| {method} | {t['found']}/{t['planted']} ({100 * found_frac:.0f} %) | {med:.2f} | "
            f"{t['split']}/{t['found']} ({100 * split_frac:.1f} %) | {t['false_alarms']} "
            f"({t['false_on_lookalikes']}) | {t['grouped']} | {t['candidates']} | "
            f"{times[method]:.0f} |"
        )
    new, old = summary["grow"], summary["threshold"]
    print(
        f"ratios grow/threshold: found {new['found_fraction'] / old['found_fraction']:.2f}, "
        f"median IoU {new['median_iou'] / old['median_iou']:.2f}, time "
        f"{new['time_s'] / old['time_s']:.2f}"
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
