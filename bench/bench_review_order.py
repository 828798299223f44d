"""Benchmark (issue 23): how early the review queue shows the slumps that get confirmed.

For each decided run given (its ledger's final decisions are the truth: ``confirmed`` and
``part_of`` are real slumps, everything else is not), every iteration's queue is put in three
orders: ``before`` issue 23 (agreement, then score); ``confidence``, the detectors' confidence
(:func:`thawdetect.core.review.order.sort_queue` without the run's decisions); and ``learned``,
``sort_queue`` learning from the run's earlier decisions. Iteration k's queue is ordered on the
ledger as it stood then (iterations ≤ k) with only the decisions of iterations < k known,
exactly what the running system had. Printed per scene family (runs grouped by the detectors
that proposed their candidates, or by ``--family-from`` on the run's directory name), pooled
over the families, and for the family furthest below the goal:

* ``k90`` / ``k100``: how many candidates a reviewer sees before 90 % / 100 % of the confirmed
  ones, as a share of the queue (summed over the family's runs);
* ``AUC``: the ranking AUC (the chance that a confirmed candidate comes before a rejected one).

* ``1st half %``: the share of the confirmed candidates in the first half of each queue, and
  ``ideal %`` the most any order gives (a queue that is mostly real slumps cannot hold 90 % of
  them in its first half).

With ``--as-region`` the same figures again with each family's runs taken as one region (the
runs' iteration-k candidates in one queue, as a run over all of their ground would show them, and
the learned order fitting on all of their earlier decisions): the per-run queues of small scenes
are short, and a short queue of mostly real slumps caps what its first half can hold.

Goal (issue 23): ≥ 90 % of the confirmed slumps within the first half of the queue on every scene
family. A queue that is mostly real slumps cannot hold 90 % of them in its first half whatever
the order (the strict early iterations: 33 of 33 real, say), so the goal is checked on the queues
where 90 % fits (``fits``: their share of the candidates, and the confirmed in their first half);
the other queues (``rest``) print how many confirmed their first half holds of the most any order
could put there.

Usage::

    python bench/bench_review_order.py RUN_DIR [RUN_DIR ...] [--family-from REGEX] [--as-region]
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from thawdetect.core.review.order import sort_queue  # noqa: E402

REAL = {"confirmed", "part_of"}


def load(run: Path) -> pd.DataFrame:
    """The run's candidates with their final status (plain SQLite: no geometry needed)."""
    with sqlite3.connect(run / "ledger.gpkg") as con:
        return pd.read_sql(
            "select candidate_id, iteration, detectors, n_detectors, score, status, evidence_json"
            " from candidates",
            con,
        )


def old_order(c: pd.DataFrame) -> pd.DataFrame:
    return c.sort_values(
        ["n_detectors", "score", "candidate_id"], ascending=[False, False, True], kind="stable"
    ).reset_index(drop=True)


def figures(real: np.ndarray) -> tuple[int, int, int, float, int, int, int]:
    """(queue length, k90, k100, AUC, confirmed, confirmed in the first half, the most the first
    half can hold) of a queue's 0/1 truth in review order."""
    n, pos = len(real), int(real.sum())
    half = int(np.ceil(n / 2))
    first, best = int(real[:half].sum()), min(pos, half)
    if pos == 0:
        return n, 0, 0, float("nan"), 0, 0, 0
    hits = np.cumsum(real)
    k90 = int(np.searchsorted(hits, int(np.ceil(0.9 * pos))) + 1)
    k100 = int(np.searchsorted(hits, pos) + 1)
    neg = n - pos
    # AUC: for each real candidate, the share of the non-real ones after it
    after = neg - np.cumsum(~real.astype(bool))[real.astype(bool)]
    auc = float(after.sum() / (pos * neg)) if neg else 1.0
    return n, k90, k100, auc, pos, first, best


def per_iteration(c: pd.DataFrame, order) -> list[tuple[int, int, int, float, int, int, int]]:  # type: ignore[no-untyped-def]
    """One queue per iteration (what a reviewer sees at a time), figures of each.

    Iteration k's queue is ordered as the running system would order it: ``order(ledger, decided)``
    on the ledger as it stood then (iterations ≤ k), with iteration k still pending and only the
    decisions of iterations < k known.
    """
    out = []
    truth = c.set_index("candidate_id")["status"]
    for k in sorted(c["iteration"].unique()):
        then = c[c["iteration"] <= k].copy()
        then.loc[then["iteration"] == k, "status"] = "pending"
        q = order(then, then[then["iteration"] < k])
        q = q[q["iteration"] == k]
        out.append(figures(truth.loc[q["candidate_id"]].isin(REAL).to_numpy()))
    return out


#: The orders compared: before issue 23; the detectors' confidence (sort_queue without the
#: run's decisions); and sort_queue learning from the earlier iterations' decisions.
ORDERS = {
    "before": lambda c, decided: old_order(c),
    "confidence": lambda c, decided: sort_queue(c),
    "learned": lambda c, decided: sort_queue(c, decided=decided),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--family-from", default=None, help="regex on the run's path: group(1)")
    ap.add_argument(
        "--as-region",
        action="store_true",
        help="also: each family's runs as one region (one queue per iteration over all of them)",
    )
    args = ap.parse_args()
    runs: dict[str, list[pd.DataFrame]] = {}
    names: dict[str, list[str]] = {}
    for run in args.runs:
        c = load(run)
        c = c[c["status"] != "pending"]
        if c.empty or not c["status"].isin(REAL).any():
            continue
        if args.family_from and (m := re.search(args.family_from, str(run))):
            fam = m.group(1)
        else:
            fam = "+".join(sorted({d for t in c["detectors"] for d in str(t).split(",")}))
        runs.setdefault(fam, []).append(c)
        names.setdefault(fam, []).append(run.parent.name if run.name == "run" else run.name)
    # each run's own queues
    each = {f: {name: [per_iteration(c, o) for c in cs] for name, o in ORDERS.items()}
            for f, cs in runs.items()}  # fmt: skip
    fams = {
        f: {name: [r for q in qs for r in q] for name, qs in o.items()} for f, o in each.items()
    }
    report("each run's queues", fams)
    # the worst run (scene) of each family: the lowest confirmed share where 90 % fits
    print("worst run of each family (learned order), where 90 % fits:")
    for f, o in sorted(each.items()):
        share, i = min((_fit_first(q), i) for i, q in enumerate(o["learned"]))
        fit = [r for r in o["learned"][i] if r[4] and r[6] >= 0.9 * r[4]]
        if not fit:
            print(f"  {f}: no queue where 90 % fits")
            continue
        first, pos = sum(r[5] for r in fit), sum(r[4] for r in fit)
        print(f"  {f}: {names[f][i]} {100 * share:.1f} % ({first} of {pos} confirmed in the "
              f"first half of {len(fit)} of its {len(o['learned'][i])} queues)")  # fmt: skip
    if args.as_region:
        # a family's runs as one region: what a run over all of their ground would show a
        # reviewer (one queue per iteration; the order learns from all of their decisions)
        regions = {
            f: {name: per_iteration(as_region(cs), o) for name, o in ORDERS.items()}
            for f, cs in runs.items()
        }
        report("each family as one region", regions)


def as_region(runs: list[pd.DataFrame]) -> pd.DataFrame:
    """Several runs' candidates as one run's: ids prefixed by the run's index, so iteration k's
    queue holds every run's iteration-k candidates (a region whose parts are these runs)."""
    return pd.concat(
        [c.assign(candidate_id=f"{i:03d}/" + c["candidate_id"].astype(str))
         for i, c in enumerate(runs)],
        ignore_index=True,
    )  # fmt: skip


def report(
    title: str, fams: dict[str, dict[str, list[tuple[int, int, int, float, int, int, int]]]]
) -> None:
    print(f"\n## {title}")
    print(f"{'family':<24}{'order':<11}{'queues':>7}{'cands':>6}{'real':>5}{'k90 %':>7}"
          f"{'k100 %':>7}{'AUC':>7}{'1st half %':>11}{'ideal %':>8}{'| fits: cands %':>16}"
          f"{'1st half %':>11}{'| rest: 1st/ideal':>18}")  # fmt: skip
    for fam, orders in sorted(fams.items()):
        for name, rows in orders.items():
            print(row(fam, name, rows))
    if len(fams) > 1:
        for name in ORDERS:
            print(row("pooled", name, [r for orders in fams.values() for r in orders[name]]))
    for name in ORDERS:
        # the family furthest below the goal where it fits
        fam, _ = min(((f, _fit_first(o[name])) for f, o in fams.items()), key=lambda t: t[1])
        print(row(f"worst: {fam}", name, fams[fam][name]))
    met = all(_fit_first(o["learned"]) >= 0.9 for o in fams.values())
    verdict = "met" if met else "NOT met"
    print(f"goal ({title}): ≥ 90 % of confirmed slumps in the first half of every queue where "
          f"90 % fits, on every family (learned order): {verdict}")  # fmt: skip


def totals(rows: list[tuple[int, int, int, float, int, int, int]]) -> dict[str, float]:
    """A family's figures over its queues (shares of the summed queue lengths / confirmed).

    ``fit_*``: over the queues where 90 % of the confirmed fit in the first half (a perfect
    order puts them there; the goal applies), ``rest_*``: the others, mostly real slumps, whose
    first half holds at most ``rest_best`` of their ``rest_pos`` (whatever the order)."""
    a = np.array(rows, dtype=float)
    n, pos = a[:, 0].sum(), a[:, 4].sum()
    some = a[:, 4] > 0  # a queue without a real slump: nothing to put first
    fits = some & (a[:, 6] >= 0.9 * a[:, 4])
    rest = some & ~fits
    return {
        "queues": len(a),
        "n": n,
        "pos": pos,
        "k90": a[:, 1].sum() / n,
        "k100": a[:, 2].sum() / n,
        "auc": float(np.nanmean(a[:, 3])),
        "first": a[:, 5].sum() / pos,
        "best": a[:, 6].sum() / pos,
        "fit_n": a[fits, 0].sum() / n,
        "fit_first": a[fits, 5].sum() / a[fits, 4].sum() if a[fits, 4].sum() else float("nan"),
        "rest_first": a[rest, 5].sum(),
        "rest_best": a[rest, 6].sum(),
        "rest_pos": a[rest, 4].sum(),
    }


def _fit_first(rows: list[tuple[int, int, int, float, int, int, int]]) -> float:
    """The confirmed share in the first half of the queues where 90 % fits (1.0 where none does:
    the goal does not apply)."""
    v = totals(rows)["fit_first"]
    return 1.0 if np.isnan(v) else v


def row(fam: str, name: str, rows: list[tuple[int, int, int, float, int, int, int]]) -> str:
    t = totals(rows)
    rest = f"{int(t['rest_first'])}/{int(t['rest_best'])}"
    return (
        f"{fam:<24}{name:<11}{int(t['queues']):>7}{int(t['n']):>6}{int(t['pos']):>5}"
        f"{100 * t['k90']:>7.1f}{100 * t['k100']:>7.1f}{t['auc']:>7.3f}"
        f"{100 * t['first']:>11.1f}{100 * t['best']:>8.1f}{100 * t['fit_n']:>16.1f}"
        f"{100 * t['fit_first']:>11.1f}{rest:>18}"
    )


if __name__ == "__main__":
    main()
