"""The engine's training sets, kept current after each update, equal a full read of the ledger.

A detector proposes, at iteration 2, fragments of slumps already mapped at iteration 1 (the
reference reviewer calls them ``part_of`` those features, which grow in place) next to new ones,
so the patched inventory has both appended and replaced rows.
"""

from __future__ import annotations

import gc
import pickle
from types import SimpleNamespace
from typing import Any

import geopandas as gpd
import pandas as pd
from pydantic import Field
from shapely.geometry import box

from thawdetect.core.config import RunConfig
from thawdetect.core.plugin_api.context import IterationContext
from thawdetect.core.plugin_api.detector import (
    DeferredFrame,
    Detector,
    DetectorConfig,
    ReviewOutcome,
)
from thawdetect.core.plugin_api.hookspecs import hookimpl
from thawdetect.core.plugin_api.host import PluginHost
from thawdetect.core.regions import Region
from thawdetect.core.run.engine import Engine
from thawdetect.core.run.sets import LAYERS

CRS = "EPSG:32646"
GC_IN_PLUGIN: list[bool] = []
X0, Y0 = 400_000.0, 3_800_000.0


def _slump(i: int) -> Any:  # reference slump i: 40 m x 80 m
    return box(X0 + 100 * i, Y0, X0 + 100 * i + 40, Y0 + 80)


class FragmentsConfig(DetectorConfig):
    step: int = Field(1, ge=1)


class Fragments(Detector):
    """Iteration 1: the lower halves of slumps 0-5; iteration 2: outlines reaching beyond their
    tops (overlapping the mapped slumps by 25 %), slumps 6-7 whole and a false alarm."""

    name = "fragments"
    config_model = FragmentsConfig
    config: FragmentsConfig
    relaxes_schedule = True

    def propose(self, context: IterationContext) -> gpd.GeoDataFrame:
        GC_IN_PLUGIN.append(gc.isenabled())
        if self.config.step == 1:
            geoms = [box(X0 + 100 * i, Y0, X0 + 100 * i + 40, Y0 + 40) for i in range(6)]
        else:
            geoms = [box(X0 + 100 * i, Y0 + 60, X0 + 100 * i + 40, Y0 + 140) for i in range(6)]
            geoms += [_slump(6), _slump(7), box(X0 + 2000, Y0, X0 + 2040, Y0 + 40)]
        return gpd.GeoDataFrame(
            {
                "score": [0.9 - 0.01 * i for i in range(len(geoms))],
                "flag": [i % 2 for i in range(len(geoms))],
            },
            geometry=geoms,
            crs=CRS,
        )

    def next_config(self, outcome: ReviewOutcome) -> FragmentsConfig | None:
        if self.config.step >= 2:
            return None
        return self.config.model_copy(update={"step": self.config.step + 1})


@hookimpl
def _register(register: Any) -> None:
    register(Fragments)


PLUGIN = SimpleNamespace(thawdetect_register_detectors=_register)


class CheckingEngine(Engine):
    """Compares the kept training sets with a fresh read after each update."""

    checked: list[tuple[int, bool, int]]

    def _update(self, k: int, detectors: dict[str, Any]) -> None:
        before = self._training_sets()  # the sets as they stood before this update are cached
        early = self._sets.deferred()  # made now, looked at after the update
        super()._update(k, detectors)
        patched = self._sets._version is not None  # kept current without a whole read
        kept = self._training_sets()
        ctx = self._context(None, k)  # what contexts carry: made on first look
        assert all(isinstance(ctx.__dict__[f"_{n}_value"], DeferredFrame) for n in LAYERS)
        for layer in LAYERS:
            full = self.ledger.read(layer)
            pd.testing.assert_frame_equal(pd.DataFrame(kept[layer]), pd.DataFrame(full))
            assert kept[layer].crs == full.crs
            pd.testing.assert_frame_equal(pd.DataFrame(getattr(ctx, layer)), pd.DataFrame(full))
            assert getattr(ctx, layer) is getattr(ctx, layer)  # made once, then kept
            # a deferred set is the sets as they stood when it was made, a new copy each time
            a, b = early[layer].load(), early[layer].load()
            pd.testing.assert_frame_equal(pd.DataFrame(a), pd.DataFrame(before[layer]))
            assert a is not b
            pickled = pickle.loads(pickle.dumps(early[layer]))  # a pickled one is the frame
            pd.testing.assert_frame_equal(pd.DataFrame(pickled), pd.DataFrame(a))
        grown = int((kept["inventory"]["merged_candidates"].fillna("") != "").sum())
        self.checked.append((k, patched, grown))


def test_kept_training_sets_equal_a_full_read(tmp_path):
    ref = tmp_path / "reference.gpkg"
    gpd.GeoDataFrame(
        {"id": [f"s{i}" for i in range(8)]}, geometry=[_slump(i) for i in range(8)], crs=CRS
    ).to_file(ref, engine="pyogrio")
    cfg = RunConfig(
        region=Region(name="sets", crs=CRS),
        detectors={"fragments": {}},
        reviewer=f"reference:{ref}",
        evidence=False,
        max_iterations=3,
    )
    engine = CheckingEngine(cfg, tmp_path / "run", PluginHost(plugins=[("fragments", PLUGIN)]))
    engine.checked = []
    GC_IN_PLUGIN.clear()
    result = engine.run()
    # the engine holds the cyclic collector during its own work only: plugins run with it on,
    # and it is on again after the run
    assert GC_IN_PLUGIN == [True, True] and gc.isenabled()
    its = result.iterations.sort_values("iteration")
    assert its["newly_confirmed"].tolist() == [6, 2]
    # iteration 2 patched the sets: 6 features grew in place, 2 were appended
    assert [(k, patched) for k, patched, _ in engine.checked] == [(1, False), (2, True)]
    assert engine.checked[-1][2] == 6
    inv = engine.ledger.read("inventory")
    assert len(inv) == 8
    assert (inv["merged_candidates"].iloc[:6] != "").all()


def _full_decided(ledger, statuses):
    """What the merge screens against, read whole (the definition)."""
    cands = ledger.read("candidates", where={"status": list(statuses)})
    return list(cands.geometry)


def test_decided_outlines_follow_decisions_undo_and_hand_edits(tmp_path):
    """The decided outlines are taken in from new decision rows only; decisions, an undo and a
    status changed without a decision (a ledger edited by hand) all give what a full read gives,
    and only the hand edit needs reading every decided candidate again."""
    from thawdetect.core.review.decisions import decide, undo_last_decision
    from thawdetect.core.run.sets import DecidedOutlines

    cfg = RunConfig(
        region=Region(name="sets", crs=CRS),
        detectors={"fragments": {}},
        reviewer="manual",  # stops with the candidates of iteration 1 pending
        evidence=False,
        max_iterations=1,
    )
    run = tmp_path / "run"
    engine = Engine(cfg, run, PluginHost(plugins=[("fragments", PLUGIN)]))
    engine.run()
    ledger = engine.ledger
    statuses = ["confirmed", "rejected", "part_of", "unsure"]
    kept = DecidedOutlines(ledger)

    def same() -> int:
        got = list(kept.get(statuses))
        want = _full_decided(ledger, statuses)
        assert len(got) == len(want) and all(a.equals(b) for a, b in zip(got, want, strict=True))
        return len(got)

    ids = ledger.read("candidates")["candidate_id"].tolist()
    assert len(ids) == 6 and same() == 0
    decide(run, ids[0], "rejected", reviewer="t")
    assert same() == 1
    decide(run, ids[1:3], "confirmed", reviewer="t")
    assert same() == 3
    undo_last_decision(run, reviewer="t")  # back to pending: taken out again
    assert same() == 1
    decide(run, ids[0], "unsure", reviewer="t")  # decided stays decided
    assert same() == 1
    assert kept.full_reads == 0
    # a status changed by hand (no decision row): seen by the check, read whole again
    edit = pd.DataFrame({"candidate_id": [ids[4]], "status": ["confirmed"]})
    with ledger.transaction() as t:
        t.update("candidates", "candidate_id", edit)
    assert same() == 2 and kept.full_reads == 1
    decide(run, ids[5], "rejected", reviewer="t")
    assert same() == 3 and kept.full_reads == 1


def test_a_run_that_confirms_nothing_still_scores(tmp_path):
    """Every candidate rejected: the accuracy stage scores an empty detection set per detector
    (it lost its geometry there and the run failed at its last stage)."""
    from shapely.geometry import Point

    ref = tmp_path / "reference.gpkg"  # nothing the detector proposes matches it
    gpd.GeoDataFrame(
        {"id": ["far"]}, geometry=[box(X0 + 9000, Y0, X0 + 9040, Y0 + 80)], crs=CRS
    ).to_file(ref, engine="pyogrio")
    val = tmp_path / "validation.gpkg"
    gpd.GeoDataFrame(
        {"label": ["landslide", "not landslide"]},
        geometry=[Point(X0 + 20, Y0 + 20), Point(X0 + 5000, Y0 + 20)],
        crs=CRS,
    ).to_file(val, engine="pyogrio")
    cfg = RunConfig(
        region=Region(name="sets", crs=CRS),
        detectors={"fragments": {}},
        reviewer=f"reference:{ref}",
        evidence=False,
        max_iterations=2,
        validation=str(val),
    )
    engine = Engine(cfg, tmp_path / "run", PluginHost(plugins=[("fragments", PLUGIN)]))
    result = engine.run()
    assert result.status == "finished"
    overall = result.accuracy
    assert (overall.tp, overall.fn) == (0, 1)
