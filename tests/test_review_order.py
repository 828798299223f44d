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


def test_bench_figures() -> None:
    spec = importlib.util.spec_from_file_location("bro", REPO / "bench/bench_review_order.py")
    assert spec and spec.loader
    bro = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bro)
    n, k90, k100, auc, pos, first, best = bro.figures(np.array([1, 1, 0, 1, 0, 0, 0, 0]))
    assert (n, k90, k100, pos, first, best) == (8, 4, 4, 3, 3, 3)
    assert abs(auc - (5 + 5 + 4) / 15) < 1e-9
