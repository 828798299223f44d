"""Benchmark: insar_sbas outlines over the realistic scene family, ``grow`` vs ``threshold``.

Scenes: :func:`thawdetect.plugins.insar_sbas.scenes.family_specs` (SYNTHETIC, each one written
in MintPy layout): connected low-coherence networks over 10-40 % of the scene, power-law
turbulent and stratified atmosphere, orbital ramps, unwrapping errors, seasonal motion of wet
ground, widespread creep, layover/shadow, landslides clustered 1-10 px apart on the same slope
belts, thermokarst and seasonal-heave look-alikes (``--easy`` adds the old easy
``synthetic.make_scene`` scenes for comparison).

Part 1, the detector as the engine drives it: the five rows of the default schedule, each row's
candidates under the minimum mapping unit (0.05 ha) dropped, and a later candidate whose overlap
with an earlier one reaches ``duplicate_overlap`` (0.5) dropped as already seen. Per method:

* findable: planted landslides with at least ``min_pixels`` (4) pixels where the planted |rate|
  reaches the last row's threshold (10 mm/yr), the pixel is coherent and inside the last row's
  terrain masks (what the masks allow);
* found: findable landslides with a candidate belonging to them (≥ 20 % of the candidate
  inside the landslide); merged: candidates that cover ≥ 2 landslides (≥ 20 % of each inside
  the candidate); split: found landslides with more than one candidate belonging to them over
  the run; median IoU of the candidate that first found each landslide; false alarms:
  candidates belonging to no landslide.

Part 2 (``--runs``), a full ``thawdetect.run`` per scene with the default config and the
reference reviewer (the planted landslides): a third of the landslides as a *known point
inventory*, 15 validation points in findable landslides that are not known and 5 "not
landslide" points (look-alikes first, then stable ground), scored with the project's accuracy
(TPR = TP/N, FPR = FP/N); the inventory count against the landslides it holds (double counts).

Printed: one row per scene and method, the totals, the median and the *worst* scene, and a JSON
line. Usage:

    python bench/bench_insar_delineation.py [--n 20] [--size 400] [--runs] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

BELONG = 0.2
DUPLICATE_OVERLAP = 0.5
MMU_HA = 0.05
METHODS = ("threshold", "grow")


def run_method(
    paths: dict[str, Path], method: str, work: Path, **settings: object
) -> gpd.GeoDataFrame:
    """All candidates the five rows propose with ``method`` (and other detector ``settings``),
    after the engine's duplicate drop."""
    from thawdetect.core.plugin_api.context import IterationContext
    from thawdetect.core.plugin_api.host import PluginHost
    from thawdetect.core.run.merge import overlap_fraction
    from thawdetect.plugins.insar_sbas.config import InsarSbasConfig

    host = PluginHost()
    cfg = InsarSbasConfig(
        timeseries_file=paths["timeseries"],
        coherence_file=paths["coherence"],
        dem_file=paths["dem"],
        **{"delineation": method, **settings},
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


def findable(scene: Any, work: Path, margin_mm_yr: float = 0.0) -> np.ndarray:
    """Which planted landslides the last row's masks allow (see the module docstring); with
    ``margin_mm_yr``, their planted rate must pass the last threshold by that much."""
    import rasterio
    from rasterio.features import rasterize

    last = sorted(p for p in work.glob("*/") if (p / "terrain_mask.tif").exists())
    with rasterio.open(last[-1] / "terrain_mask.tif") as src:
        terrain = src.read(1) == 1
    coherent = np.nan_to_num(scene.coherence, nan=0.0) >= 0.7
    planted = np.nan_to_num(scene.rate_mm_yr)
    planted = planted - planted[2, 2]  # as the stack measures it: against its reference pixel
    ok = terrain & coherent & (np.abs(planted) >= 10.0 + margin_mm_yr)
    shapes = [(g, i + 1) for i, g in enumerate(scene.slides.geometry)]
    lab = rasterize(shapes, out_shape=ok.shape, transform=scene.grid.transform, dtype="int32")
    counts = np.bincount(lab[ok], minlength=len(scene.slides) + 1)[1:]
    return counts >= 4


def findable_measured(scene: Any, work: Path) -> np.ndarray:
    """Which planted landslides the last row's masks allow *as measured*: at least ``min_pixels``
    (4) pixels of the last row's ``seed_mask.tif`` (measured |rate| at the threshold, coherent, in
    the amplitude band and the terrain masks) inside the outline. A landslide whose measured rate
    the atmosphere, decorrelation or unwrapping pushed below the threshold has no seeds: no
    threshold detector can find it, whatever it delineates."""
    import rasterio
    from rasterio.features import rasterize

    last = sorted(p for p in work.glob("*/") if (p / "seed_mask.tif").exists())
    with rasterio.open(last[-1] / "seed_mask.tif") as src:
        ok = src.read(1) == 1
    shapes = [(g, i + 1) for i, g in enumerate(scene.slides.geometry)]
    lab = rasterize(shapes, out_shape=ok.shape, transform=scene.grid.transform, dtype="int32")
    counts = np.bincount(lab[ok], minlength=len(scene.slides) + 1)[1:]
    return counts >= 4


def noise_sigma(scene: Any, work: Path) -> float:
    """σ of the rate on stable coherent ground against the large-scale background, mm/yr (as the
    grow detector measures it), from the last row's rate map."""
    import rasterio

    from thawdetect.plugins.insar_sbas.delineation import local_background, noise_floor

    last = sorted(p for p in work.glob("*/") if (p / "rate_mm_yr.tif").exists())[-1]
    with rasterio.open(last / "rate_mm_yr.tif") as src:
        rate = src.read(1).astype(np.float64)
    coherent = np.nan_to_num(scene.coherence, nan=0.0) >= 0.7
    bg = local_background(rate, coherent, 50, 1111)
    stable = coherent & np.isfinite(rate) & (np.abs(rate) < 10.0)
    return float(noise_floor(rate - bg, stable)[1])


def score(
    cands: gpd.GeoDataFrame, slides: gpd.GeoDataFrame, can_find: np.ndarray
) -> dict[str, Any]:
    """found / merged / split / IoU / false alarms of one method on one scene."""
    cands = cands.reset_index(drop=True)
    slides = slides.reset_index(drop=True)
    empty = {"ious": [], "found": 0, "merged": 0, "split": 0, "belonging": 0}
    base = {"planted": len(slides), "findable": int(can_find.sum()), "candidates": len(cands)}
    if not len(cands):
        return {**base, **empty, "false_alarms": 0}
    inter = gpd.overlay(
        cands.assign(cand=cands.index)[["cand", "iteration", "geometry"]],
        slides.assign(slide=slides.index)[["slide", "geometry"]],
        how="intersection",
        keep_geom_type=True,
    )
    area = inter.geometry.area
    inter["frac"] = area / cands.geometry.area.loc[inter["cand"]].to_numpy()
    inter["cover"] = area / slides.geometry.area.loc[inter["slide"]].to_numpy()
    belongs = inter[inter["frac"] >= BELONG]
    covers = inter[inter["cover"] >= BELONG].groupby("cand")["slide"].nunique()
    ious, splits, found = [], 0, 0
    for s, grp in belongs.groupby("slide"):
        if not can_find[int(s)]:
            continue
        found += 1
        first = grp.sort_values(["iteration", "frac"], ascending=[True, False]).iloc[0]
        a, b = cands.geometry.iloc[int(first["cand"])], slides.geometry.iloc[int(s)]
        ious.append(a.intersection(b).area / a.union(b).area)
        splits += grp["cand"].nunique() > 1
    orphan = ~cands.index.isin(belongs["cand"]) & ~cands.index.isin(covers.index)
    return {
        **base,
        "found": found,
        "ious": ious,
        "split": int(splits),
        "merged": int((covers >= 2).sum()),
        "belonging": int(cands.index.isin(belongs["cand"]).sum()),
        "false_alarms": int(orphan.sum()),
    }


def run_inputs(
    scene: Any, paths: dict[str, Path], can_find: np.ndarray, clear: np.ndarray, out: Path
) -> dict:
    """Known point inventory, validation points and the reference file of a full run.

    Validation landslides (15 at most, not in the known inventory) are drawn among the *clear*
    ones (planted rate past the last threshold by the noise σ, what a field campaign would have
    confirmed) for ``validation_points.gpkg``, which the run scores, and among all findable ones
    for ``validation_strict.gpkg``, scored on the same run afterwards.
    """
    from shapely.geometry import Point

    rng = np.random.default_rng(12345)
    slides = scene.slides.reset_index(drop=True)
    crs = slides.crs
    idx = rng.permutation(len(slides))
    n_known = len(slides) // 3
    known = np.zeros(len(slides), bool)
    known[idx[:n_known]] = True
    pts = slides.geometry.representative_point()
    gpd.GeoDataFrame(
        {"known_id": [f"K{i:03d}" for i in np.flatnonzero(known)], "synthetic": True},
        geometry=pts[known].to_numpy(),
        crs=crs,
    ).to_file(out / "known_inventory.gpkg", layer="known_inventory", driver="GPKG")
    slides.to_file(out / "reference_inventory.gpkg", layer="reference", driver="GPKG")
    pools = {
        "validation_points.gpkg": np.flatnonzero(~known & clear),
        "validation_strict.gpkg": np.flatnonzero(~known & can_find),
    }
    negs = list(scene.lookalikes.geometry.representative_point())[:5]
    # stable ground: coherent pixels far from every landslide and look-alike
    busy = pd.concat([slides.geometry, scene.lookalikes.geometry]).buffer(300).union_all()
    tr = scene.grid.transform
    while len(negs) < 5:
        r, c = rng.integers(5, scene.dem_m.shape[0] - 5, 2)
        p = Point(*(tr * (c + 0.5, r + 0.5)))
        if scene.coherence[r, c] >= 0.7 and not busy.contains(p):
            negs.append(p)
    for name, pool in pools.items():
        pos = np.random.default_rng(7).permutation(pool)[:15]
        rows = [{"label": "landslide", "slide": int(i)} for i in pos]
        rows += [{"label": "not landslide", "slide": -1}] * len(negs)
        geoms = [pts.iloc[int(i)] for i in pos] + negs
        gpd.GeoDataFrame(rows, geometry=geoms, crs=crs).to_file(
            out / name, layer="validation", driver="GPKG"
        )
    return {"known": int(known.sum())}


def full_run(paths: dict[str, Path], out: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """A default ``thawdetect.run`` with the reference reviewer; accuracy and inventory counts."""
    import thawdetect

    cfg = {
        "region": {"name": "realistic-scene", "crs": "EPSG:32647", "synthetic": True},
        "known_inventory": str(out / "known_inventory.gpkg"),
        "validation": str(out / "validation_points.gpkg"),
        "evidence": False,
        "detectors": {
            "insar_sbas": {
                "timeseries_file": str(paths["timeseries"]),
                "coherence_file": str(paths["coherence"]),
                "dem_file": str(paths["dem"]),
                **settings,
            }
        },
    }
    t = time.perf_counter()
    res = thawdetect.run(
        cfg,
        reviewer=f"reference:{out / 'reference_inventory.gpkg'}",
        output_dir=out / "run",
        overwrite=True,
        progress=False,
    )
    rep = getattr(res.accuracy, "overall", res.accuracy)
    rates = rep.rates()
    from thawdetect.core.accuracy.scoring import score_run

    strict = score_run(out / "run", out / "validation_strict.gpkg")["overall"]
    inv = res.inventory
    slides = gpd.read_file(out / "reference_inventory.gpkg")
    hits = gpd.sjoin(inv[["geometry"]], slides[["geometry"]], predicate="intersects")
    per_slide = hits.groupby("index_right").size()
    return {
        "tpr": float(rates.get("tpr") or 0.0),
        "fpr": float(rates.get("fpr") or 0.0),
        "tp": rep.tp,
        "fp": rep.fp,
        "n": rep.n,
        "tpr_strict": float(strict.get("tpr") or 0.0),
        "tp_strict": int(strict["tp"]),
        "n_strict": int(strict["n"]),
        "inventory": len(inv),
        "double_counted": int((per_slide > 1).sum()),
        "iterations": len(res.iterations),
        "reviewed": int(res.iterations["candidates_reviewed"].sum()),
        "run_s": round(time.perf_counter() - t, 1),
    }


def one_scene(
    spec: Any,
    root: Path,
    runs: bool,
    easy: bool,
    settings: dict[str, Any] | None = None,
    keep: bool = False,
) -> dict[str, Any]:
    """Everything measured on one scene (run in a worker process)."""
    from thawdetect.plugins.insar_sbas.scenes import make_realistic_scene
    from thawdetect.plugins.insar_sbas.synthetic import make_scene, write_scene

    scene = make_scene(seed=spec.seed, size_px=spec.size_px) if easy else make_realistic_scene(spec)
    name = f"easy-s{spec.seed}" if easy else spec.name
    out = root / name
    paths = write_scene(scene, out)
    rec: dict[str, Any] = {"scene": name}
    can_find = None
    sigma: float | None = None
    for method in METHODS:
        t = time.perf_counter()
        # part 1 runs each method in its own column: --set's other keys tune grow
        extra = (
            {k: v for k, v in (settings or {}).items() if k != "delineation"}
            if method == "grow"
            else {}
        )
        cands = run_method(paths, method, out / method, **(extra or {}))
        cands[["iteration", "geometry"]].to_file(out / method / "candidates.gpkg", driver="GPKG")
        if can_find is None:
            can_find = findable(scene, out / method)
        res = score(cands, scene.slides, can_find)
        res["time_s"] = round(time.perf_counter() - t, 1)
        if sigma is None:
            sigma = noise_sigma(scene, out / method)
        res_margin = score(cands, scene.slides, findable(scene, out / method, sigma or 0.0))
        res["found_margin"], res["findable_margin"] = res_margin["found"], res_margin["findable"]
        res_meas = score(cands, scene.slides, findable_measured(scene, out / method))
        res["found_measured"], res["findable_measured"] = res_meas["found"], res_meas["findable"]
        rec[method] = res
    if runs:
        assert can_find is not None
        clear = findable(scene, out / "grow", sigma or 0.0)
        rec["inputs"] = run_inputs(scene, paths, can_find, clear, out)
        rec["run"] = full_run(paths, out, settings or {})
    if not keep:
        import shutil

        shutil.rmtree(out, ignore_errors=True)  # ~180 MB a 400 px scene, 2.5 GB at 1500 px
    return rec


def _worst(values: list[float]) -> int:
    """Index of the lowest value, NaN (nothing to score) left out; 0 when all are NaN."""
    arr = np.asarray(values, dtype=float)
    return int(np.nanargmin(arr)) if np.isfinite(arr).any() else 0


def _line(name: str, method: str, r: dict[str, Any]) -> str:
    med = float(np.median(r["ious"])) if r["ious"] else float("nan")
    return (
        f"| {name} | {method} | {r['found']}/{r['findable']} "
        f"({100 * r['found'] / max(r['findable'], 1):.0f} %) | {r['merged']}/{r['belonging']} | "
        f"{r['split']}/{max(r['found'], 1)} | {med:.2f} | {r['false_alarms']} | "
        f"{r['candidates']} | {r['time_s']} |"
    )


def main() -> None:
    """Run the benchmark and print the tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20, help="scenes of the family")
    ap.add_argument("--size", type=int, default=400, help="scene size, px (30 m)")
    ap.add_argument("--seed0", type=int, default=0, help="first seed of the family")
    ap.add_argument("--runs", action="store_true", help="also a full run per scene")
    ap.add_argument("--easy", action="store_true", help="the old easy scenes instead")
    ap.add_argument("--real-coherence", action="store_true", help="every 5th: Cadia coherence")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", type=int, nargs="*", default=None, help="scene indices to run")
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep each scene's files (large)")
    ap.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a grow setting (YAML)"
    )
    args = ap.parse_args()
    import yaml

    settings = {k: yaml.safe_load(v) for k, v in (x.split("=", 1) for x in args.set)}

    from thawdetect.plugins.insar_sbas.scenes import CADIA_COHERENCE, family_specs

    src = CADIA_COHERENCE if args.real_coherence else None
    specs = family_specs(args.n, args.size, args.seed0, coherence_source=src)
    if args.only is not None:
        specs = [specs[i] for i in args.only]
    root = args.dir or Path(tempfile.mkdtemp(prefix="bench_insar_delineation_"))
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futs = [
            pool.submit(one_scene, s, root, args.runs, args.easy, settings, args.keep)
            for s in specs
        ]
        recs = [f.result() for f in futs]
    wall = time.perf_counter() - t0

    print(f"{len(recs)} scenes, {args.size} x {args.size} px at 30 m, wall {wall:.0f} s")
    print(f"settings (--set): {settings or 'defaults'}")
    print(
        "| scene | method | found (of findable) | merged | split | median IoU | false alarms "
        "| candidates | time s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in recs:
        for m in METHODS:
            print(_line(r["scene"], m, r[m]))
    summary: dict[str, Any] = {}
    margins: list[str] = []
    measured: list[str] = []
    print()
    print(
        "| method | found | worst scene found | merged | split | median IoU | worst scene IoU "
        "| false alarms | worst scene false alarms |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for m in METHODS:
        rs = [r[m] for r in recs]
        tot = {
            k: sum(x[k] for x in rs)
            for k in (
                "found",
                "findable",
                "merged",
                "belonging",
                "split",
                "false_alarms",
                "candidates",
            )
        }
        ious = [i for x in rs for i in x["ious"]]
        # a scene with nothing findable (e.g. on a real, 92 % decorrelated coherence layer) has
        # no worst figure: it is left out of the worst-scene columns
        nan = float("nan")
        per_found = [x["found"] / x["findable"] if x["findable"] else nan for x in rs]
        per_iou = [float(np.median(x["ious"])) if x["ious"] else nan for x in rs]
        w = _worst(per_found)
        wi = _worst(per_iou)
        wf = int(np.argmax([x["false_alarms"] for x in rs]))
        fm = sum(x["found_margin"] for x in rs)
        nm = sum(x["findable_margin"] for x in rs)
        per_m = [
            x["found_margin"] / x["findable_margin"] if x["findable_margin"] else nan for x in rs
        ]
        wm = _worst(per_m)
        fme = sum(x["found_measured"] for x in rs)
        nme = sum(x["findable_measured"] for x in rs)
        per_me = [
            x["found_measured"] / x["findable_measured"] if x["findable_measured"] else nan
            for x in rs
        ]
        wme = _worst(per_me)
        measured.append(
            f"| {m} | {fme}/{nme} ({100 * fme / max(nme, 1):.1f} %) | "
            f"{100 * per_me[wme]:.1f} % ({recs[wme]['scene']}) |"
        )
        s = {
            "found_fraction_measured": round(fme / max(nme, 1), 4),
            "worst_found_fraction_measured": round(per_me[wme], 4),
            "worst_found_scene_measured": recs[wme]["scene"],
            "found_fraction_margin": round(fm / max(nm, 1), 4),
            "worst_found_fraction_margin": round(per_m[wm], 4),
            "worst_found_scene_margin": recs[wm]["scene"],
            "found_fraction": round(tot["found"] / max(tot["findable"], 1), 4),
            "worst_found_fraction": round(per_found[w], 4),
            "worst_found_scene": recs[w]["scene"],
            "median_scene_found_fraction": round(float(np.median(per_found)), 4),
            "merged_fraction": round(tot["merged"] / max(tot["belonging"], 1), 4),
            "split_fraction": round(tot["split"] / max(tot["found"], 1), 4),
            "median_iou": round(float(np.median(ious)) if ious else 0.0, 3),
            "worst_scene_median_iou": round(per_iou[wi], 3),
            "false_alarms": tot["false_alarms"],
            **tot,
        }
        summary[m] = s
        margins.append(
            f"| {m} | {fm}/{nm} ({100 * fm / max(nm, 1):.1f} %) | "
            f"{100 * per_m[wm]:.1f} % ({recs[wm]['scene']}) |"
        )
        print(
            f"| {m} | {tot['found']}/{tot['findable']} ({100 * s['found_fraction']:.1f} %) | "
            f"{100 * per_found[w]:.1f} % ({recs[w]['scene']}) | {tot['merged']}/"
            f"{tot['belonging']} ({100 * s['merged_fraction']:.1f} %) | {tot['split']}/"
            f"{tot['found']} ({100 * s['split_fraction']:.1f} %) | {s['median_iou']:.2f} | "
            f"{per_iou[wi]:.2f} ({recs[wi]['scene']}) | {tot['false_alarms']} | "
            f"{rs[wf]['false_alarms']} ({recs[wf]['scene']}) |"
        )
    print()
    print("findable with a margin (planted rate passes the last threshold by the noise σ):")
    print("| method | found | worst scene |")
    print("|---|---|---|")
    print("\n".join(margins))
    print()
    print("findable as measured (>= 4 pixels of the last row's seed mask inside the landslide):")
    print("| method | found | worst scene |")
    print("|---|---|---|")
    print("\n".join(measured))
    if args.runs:
        print()
        method = settings.get("delineation", "grow, the default")
        print(f"full runs (delineation {method}, reference reviewer):")
        print(
            "| scene | TPR | FPR | TP/N | FP | TPR, all findable | inventory | double counted "
            "| reviewed | iterations | s |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in recs:
            x = r["run"]
            print(
                f"| {r['scene']} | {100 * x['tpr']:.1f} % | {100 * x['fpr']:.1f} % | "
                f"{x['tp']}/{x['n']} | {x['fp']} | {100 * x['tpr_strict']:.1f} % "
                f"({x['tp_strict']}/{x['n_strict']}) | {x['inventory']} | {x['double_counted']} | "
                f"{x['reviewed']} | {x['iterations']} | {x['run_s']} |"
            )
        tprs = [r["run"]["tpr"] if r["run"]["n"] else float("nan") for r in recs]
        w = _worst(tprs)
        summary["runs"] = {
            "median_tpr": round(float(np.nanmedian(tprs)), 4),
            "worst_tpr": round(tprs[w], 4),
            "worst_tpr_scene": recs[w]["scene"],
            "total_fp": int(sum(r["run"]["fp"] for r in recs)),
            "pooled_tp_n": [
                int(sum(r["run"]["tp"] for r in recs)),
                int(sum(r["run"]["n"] for r in recs)),
            ],
            "reviewed": int(sum(r["run"].get("reviewed", 0) for r in recs)),
            "tpr_all_findable": round(
                sum(r["run"]["tp_strict"] for r in recs)
                / max(sum(r["run"]["n_strict"] for r in recs), 1),
                4,
            ),
            "double_counted": int(sum(r["run"]["double_counted"] for r in recs)),
        }
        print(json.dumps(summary["runs"]))
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}))


if __name__ == "__main__":
    main()
