"""The review queue's order (issue 23): what predicts a confirmation first, one order for the CLI
and the page, and the order bench's figures."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd

from thawdetect.core.review.order import sort_queue

REPO = Path(__file__).resolve().parents[1]


def _cands() -> pd.DataFrame:
    ev = [
        {"insar_sbas": {"score": 1050.0, "amplitude_prone": 1, "max_abs_rate_mm_yr": 30.0}},
        {"insar_sbas": {"score": 80.0, "amplitude_prone": 0, "max_abs_rate_mm_yr": 90.0}},
        {"optical_dl": {"score": 0.95}},
        {"optical_dl": {"score": 0.40}},
        {"insar_sbas": {"score": 60.0, "amplitude_prone": 0}, "optical_dl": {"score": 0.5}},
        {"other": {"score": 3.0, "probability": 0.99}},
    ]
    return pd.DataFrame(
        {
            "candidate_id": [f"it01-000{i}" for i in range(1, 7)],
            "iteration": 1,
            "detectors": [
                "insar_sbas",
                "insar_sbas",
                "optical_dl",
                "optical_dl",
                "insar_sbas,optical_dl",
                "other",
            ],
            "n_detectors": [1, 1, 1, 1, 2, 1],
            "score": [1050.0, 80.0, 0.95, 0.40, 60.0, 3.0],
            "status": "pending",
            "evidence_json": [json.dumps(e) for e in ev],
        }
    )


def test_agreement_then_confidence_on_one_scale() -> None:
    order = sort_queue(_cands())["candidate_id"].tolist()
    # agreement first; then the confidence on one scale: InSAR's peak |rate| 90 mm/yr and
    # optical 0.95 are their detector's best (percentile 1.0), then a given probability 0.99,
    # then InSAR's 30 mm/yr (percentile 2/3 although its score 1050 is the largest), optical 0.40
    assert order == ["it01-0005", "it01-0002", "it01-0003", "it01-0006", "it01-0001",
                     "it01-0004"]  # fmt: skip


def test_insar_own_rate_ranks_before_the_measured_rate() -> None:
    """A landslide measured slow on an offset background (own rate 30, measured 16) comes before
    stable ground that the offset alone makes fast (own 4, measured 22)."""
    ev = [
        {"insar_sbas": {"peak_own_rate_mm_yr": -4.0, "core_rate_mm_yr": 22.0}},
        {"insar_sbas": {"peak_own_rate_mm_yr": -30.0, "core_rate_mm_yr": -16.0}},
        {"insar_sbas": {"core_rate_mm_yr": 12.0}},  # an older ledger: the core rate
    ]
    c = pd.DataFrame(
        {
            "candidate_id": ["it01-0001", "it01-0002", "it01-0003"],
            "detectors": "insar_sbas",
            "n_detectors": 1,
            "score": [22.0, 16.0, 12.0],
            "evidence_json": [json.dumps(e) for e in ev],
        }
    )
    assert sort_queue(c)["candidate_id"].tolist() == ["it01-0002", "it01-0003", "it01-0001"]


def test_prone_first_when_configured(monkeypatch) -> None:
    from thawdetect.core.review import order as mod

    monkeypatch.setattr(mod, "PRONE_FIELDS", ("amplitude_prone",))
    assert sort_queue(_cands())["candidate_id"].tolist()[:2] == ["it01-0005", "it01-0001"]


def test_order_is_stable_under_filters_and_empty() -> None:
    c = _cands()
    full = sort_queue(c)["candidate_id"].tolist()
    c.loc[c["candidate_id"] == "it01-0003", "status"] = "confirmed"
    again = sort_queue(c)
    assert again["candidate_id"].tolist() == full  # a decision never reorders the queue
    assert sort_queue(c.iloc[:0]).empty


def test_review_queue_uses_the_order(monkeypatch) -> None:
    from thawdetect.core.review import decisions

    class _Ledger:
        def read(self, name: str) -> pd.DataFrame:
            return _cands()

    monkeypatch.setattr(decisions, "open_ledger", lambda run_dir: _Ledger())
    pend = decisions.review_queue("run", status="pending")["candidate_id"].tolist()
    assert pend == sort_queue(_cands())["candidate_id"].tolist()


def test_review_queue_learns_from_the_ledger(monkeypatch) -> None:
    from thawdetect.core.review import decisions

    class _Ledger:
        def read(self, name: str) -> pd.DataFrame:
            return _history(slow_real=True)

    monkeypatch.setattr(decisions, "open_ledger", lambda run_dir: _Ledger())
    pend = decisions.review_queue("run", status="pending", iteration=2)
    c = _history(slow_real=True)
    learned = sort_queue(c, decided=c)
    assert pend["candidate_id"].tolist() == learned.loc[learned["status"] == "pending",
                                                         "candidate_id"].tolist()  # fmt: skip
    assert _first_half_share(pend) > 0.9


def test_bench_figures() -> None:
    spec = importlib.util.spec_from_file_location("bro", REPO / "bench/bench_review_order.py")
    assert spec and spec.loader
    bro = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bro)
    n, k90, k100, auc, pos, first, best = bro.figures(np.array([1, 1, 0, 1, 0, 0, 0, 0]))
    assert (n, k90, k100, pos, first, best) == (8, 4, 4, 3, 3, 3)
    assert abs(auc - (5 + 5 + 4) / 15) < 1e-9
    # the goal applies where 90 % of the confirmed fit in the first half: not to a queue of 4
    # real slumps (at most 2 of 4 there, whatever the order), nor to one without any
    queues = [bro.figures(np.array(q)) for q in ([1, 0, 0, 1, 0, 0, 0, 0], [1, 1, 1, 1], [0, 0])]
    t = bro.totals(queues)
    assert t["fit_first"] == 1.0 and t["fit_n"] == 8 / 14
    assert (t["rest_first"], t["rest_best"], t["rest_pos"]) == (2, 2, 4)
    late = bro.totals([bro.figures(np.array([0, 0, 0, 0, 1, 1, 0, 0]))])
    assert late["fit_first"] == 0.0 and bro._fit_first([queues[1]]) == 1.0
    # two runs as one region: one queue per iteration holding both runs' candidates
    a, b = _history(n=6, seed=1), _history(n=6, seed=2)
    for c in (a, b):
        c.loc[c["iteration"] == 2, "status"] = np.where(c.loc[c["iteration"] == 2, "real"],
                                                        "confirmed", "rejected")  # fmt: skip
    one = bro.as_region([a, b])
    assert one["candidate_id"].is_unique and len(one) == 24
    queues = bro.per_iteration(one, bro.ORDERS["confidence"])
    assert [q[0] for q in queues] == [12, 12]
    assert [q[4] for q in queues] == [
        int(pd.concat([a, b]).query(f"iteration == {k}")["real"].sum()) for k in (1, 2)
    ]


# -- learning from the run's earlier decisions ------------------------------------------------


def _history(n: int = 40, seed: int = 0, slow_real: bool = True) -> pd.DataFrame:
    """Two iterations of InSAR candidates: iteration 1 decided, iteration 2 pending. The reviewer
    confirms what moves *slowly* and rejects fast noise when ``slow_real`` (the opposite of the
    detectors' confidence, the |core rate|), else the fast ones."""
    rng = np.random.default_rng(seed)
    rate = rng.uniform(5, 60, 2 * n)
    area = rng.uniform(1e3, 1e5, 2 * n)
    real = (rate < 30) if slow_real else (rate >= 30)
    ev = [
        json.dumps({"insar_sbas": {"score": r, "core_rate_mm_yr": -r, "area_m2": a}})
        for r, a in zip(rate, area, strict=True)
    ]
    it = np.repeat([1, 2], n)
    return pd.DataFrame(
        {
            "candidate_id": [f"it{k:02d}-{i:04d}" for i, k in enumerate(it)],
            "iteration": it,
            "detectors": "insar_sbas",
            "n_detectors": 1,
            "score": rate,
            "status": np.where(it == 1, np.where(real, "confirmed", "rejected"), "pending"),
            "evidence_json": ev,
            "real": real,
        }
    )


def _first_half_share(ordered: pd.DataFrame) -> float:
    half = ordered.iloc[: len(ordered) // 2]
    return float(half["real"].sum() / ordered["real"].sum())


def test_learns_a_reviewer_who_confirms_what_the_prior_ranks_last() -> None:
    c = _history(slow_real=True)
    queue = c[c["iteration"] == 2]
    before = sort_queue(queue)  # the prior: fastest first, so the real (slow) ones come last
    after = sort_queue(queue, decided=c)
    assert _first_half_share(before) < 0.1
    assert _first_half_share(after) > 0.9


def test_learning_agrees_with_the_prior_when_the_reviewer_does() -> None:
    c = _history(slow_real=False)
    queue = c[c["iteration"] == 2]
    assert _first_half_share(sort_queue(queue, decided=c)) > 0.9


def test_too_few_decisions_or_one_class_keep_the_prior() -> None:
    from thawdetect.core.review.order import MIN_PER_CLASS

    c = _history(slow_real=True)
    prior = sort_queue(c[c["iteration"] == 2])["candidate_id"].tolist()
    one_class = c.copy()
    one_class.loc[one_class["iteration"] == 1, "status"] = "confirmed"
    few = c.copy()
    rejected = few.index[few["status"] == "rejected"][MIN_PER_CLASS - 1 :]
    few.loc[rejected, "status"] = "unsure"  # unsure is not learned from
    for decided in (one_class, few, c.iloc[:0], c[c["iteration"] == 2]):
        got = sort_queue(c[c["iteration"] == 2], decided=decided)["candidate_id"].tolist()
        assert got == prior


def test_learns_only_from_earlier_iterations() -> None:
    c = _history(slow_real=True)
    # iteration 1's own decisions never reorder iteration 1 (its decided rows are its own)
    first = c[c["iteration"] == 1]
    assert (
        sort_queue(first, decided=c)["candidate_id"].tolist()
        == sort_queue(first)["candidate_id"].tolist()
    )
    # the whole ledger: iteration 2 learned from 1, so the whole queue's order changes there
    whole = sort_queue(c, decided=c)
    assert _first_half_share(whole[whole["iteration"] == 2]) > 0.9


def test_learning_copes_with_missing_and_odd_evidence() -> None:
    c = _history(slow_real=True)
    ev = c["evidence_json"].tolist()
    ev[0] = "not json"
    ev[1] = json.dumps({"insar_sbas": {"core_rate_mm_yr": None, "area_m2": "n/a"}})
    ev[2] = json.dumps({"insar_sbas": {"core_rate_mm_yr": float("nan")}})
    ev[41] = None
    ev[42] = json.dumps({"optical_dl": {"probability": 0.7}})  # a detector never decided
    c["evidence_json"] = ev
    c.loc[42, "detectors"] = "optical_dl"
    got = sort_queue(c[c["iteration"] == 2], decided=c)
    assert sorted(got["candidate_id"]) == sorted(c.loc[c["iteration"] == 2, "candidate_id"])
    assert _first_half_share(got) > 0.8


def test_agreement_stays_first_when_learning() -> None:
    c = _history(slow_real=True)
    c.loc[c.index[-1], "n_detectors"] = 2  # a fast (rejected-looking) one that two proposed
    got = sort_queue(c[c["iteration"] == 2], decided=c)
    assert got["candidate_id"].iloc[0] == c["candidate_id"].iloc[-1]
