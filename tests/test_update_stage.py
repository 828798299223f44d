"""The vectorised update stage gives exactly the frames of the per-row code it replaced.

``bench/legacy_update.py`` is the update stage as of commit f58208a (``latest_decisions``,
``build_inventory_update``, ``inventory_update``, ``changed_features``, ``iteration_summary``;
the new code's ``build_inventory_change`` returns what ``build_inventory_update`` did, and the
features it touched).
Both run on generated inputs that cover the review model's cases: reviewed outlines on confirmed
and "part of" rows, fragments of earlier inventory features (by inventory_id and by the
candidate_id that made them, polygons and known points) and of candidates confirmed in the same
iteration, chains and cycles of "part of", targets that are not confirmed, undo rows (by
batch_id and by row), unsure and pending candidates, rows of the iteration already in the layers
(a re-run), None and invalid outlines, and empty inputs. Every result frame must be equal:
columns, dtypes, index, row order and geometries (WKB).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from thawdetect.core.review import outlines
from thawdetect.core.review.decisions import (
    _inventory_targets,
    effective_decisions,
    latest_decisions,
)
from thawdetect.core.run import layers

CRS = "EPSG:32646"
K = 3
FIELDS = tuple(f.name for f in dataclasses.fields(layers.InventoryUpdate))
DECISION_COLS = (
    "candidate_id",
    "decision",
    "probability",
    "note",
    "reviewer",
    "timestamp",
    "iteration",
    "geometry_wkt",
    "part_of",
    "batch_id",
    "undoes",
)


def _legacy() -> Any:
    path = Path(__file__).resolve().parents[1] / "bench" / "legacy_update.py"
    spec = importlib.util.spec_from_file_location("legacy_update", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("legacy_update", mod)
    spec.loader.exec_module(mod)
    return mod


LEGACY = _legacy()


def _assert_same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Equal frames: type, columns, dtypes, index (class too), values; geometries by WKB."""
    pd.testing.assert_frame_equal(
        a,
        b,
        check_exact=True,
        check_index_type=True,
        check_column_type=True,
        check_frame_type=True,
    )
    if isinstance(a, gpd.GeoDataFrame):
        assert a.geometry.name == b.geometry.name
        assert a.crs == b.crs
        wa = shapely.to_wkb(np.asarray(a.geometry.to_numpy(), dtype=object))
        wb = shapely.to_wkb(np.asarray(b.geometry.to_numpy(), dtype=object))
        assert list(wa) == list(wb)


def _square(x: float, y: float, side: float = 40.0) -> Any:
    return shapely.box(x, y, x + side, y + side)


def _inventory(rng: np.random.Generator, n: int, *, odd: bool) -> gpd.GeoDataFrame:
    """An earlier inventory: known polygons and points, confirmed features of iterations 1-2,
    and (re-run) features of iteration K; with ``odd``, also a None and an invalid outline."""
    rows = []
    for i in range(n):
        kind = rng.choice(["known_poly", "known_point", "confirmed", "confirmed", "again"])
        x, y = 1000.0 * i, 0.0
        if kind.startswith("known"):
            point = kind == "known_point"
            rows.append(
                {
                    "inventory_id": f"known-{i + 1:04d}",
                    "candidate_id": None,
                    "source": "known",
                    "iteration": 0,
                    "probability": "high",
                    "detectors": "",
                    "outline": "point" if point else "known",
                    "merged_candidates": "",
                    "n_detectors": np.nan,
                    "score": np.nan,
                    "evidence_json": None,
                    "geometry": shapely.Point(x + 20, y + 20) if point else _square(x, y, 60),
                }
            )
            continue
        it = K if kind == "again" else int(rng.integers(1, K))
        merged = rng.choice(["", "", None, f"it{it:02d}-9999", f" it{it:02d}-9998 ,x"])
        rows.append(
            {
                "inventory_id": f"rts-{it:02d}-{i + 1:04d}",
                "candidate_id": f"it{it:02d}-{i + 1:04d}",
                "source": "confirmed",
                "iteration": it,
                "probability": rng.choice([None, "high", "low"]),
                "detectors": "synthetic",
                "outline": rng.choice(["detector", "reviewed", "detector+union"]),
                "merged_candidates": merged,
                "n_detectors": float(rng.integers(1, 3)),
                "score": float(rng.random()) if rng.random() > 0.1 else -0.0,
                "evidence_json": rng.choice(['{"a": 1}', None]),
                "geometry": _square(x, y),
            }
        )
    if odd and rows:
        rows[0]["geometry"] = None  # no outline (equals(None, None) is False)
        rows[-1]["geometry"] = shapely.from_wkt(  # a hole outside its shell (invalid)
            "POLYGON ((0 0, 10 0, 10 10, 0 10, 0 0), (20 20, 21 20, 21 21, 20 20))"
        )
    return gpd.GeoDataFrame(pd.DataFrame(rows), geometry="geometry", crs=CRS)


def _layer(rng: np.random.Generator, n: int, source: str) -> gpd.GeoDataFrame:
    its = rng.integers(0, K + 1, size=n)
    return gpd.GeoDataFrame(
        {
            "source": source,
            "iteration": its.astype("int64"),
            "candidate_id": [f"it{it:02d}-{i:04d}" for i, it in enumerate(its)],
        },
        geometry=[_square(50.0 * i, 9000.0) for i in range(n)],
        crs=CRS,
    )


def _candidates(rng: np.random.Generator, n: int) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "candidate_id": [f"it{K:02d}-{j + 1:04d}" for j in range(n)],
            "iteration": K,
            "detectors": "synthetic",
            "n_detectors": rng.integers(1, 3, size=n).astype("int64"),
            "score": rng.random(n),
            "status": "pending",
            "probability": None,
            "evidence_json": ["{}"] * n,
            "series_json": [None if j % 3 else '{"t": []}' for j in range(n)],
            "area_ha": 0.16,
            "perimeter_m": 160.0,
        },
        geometry=[_square(1000.0 * j + 10, 20.0) for j in range(n)],
        crs=CRS,
    )


def _decisions(
    rng: np.random.Generator, cands: gpd.GeoDataFrame, inventory: gpd.GeoDataFrame
) -> pd.DataFrame:
    """A decision history for ``cands``: batches of decisions, "part of" of every kind, edited
    outlines, undo rows; blank batch ids (each row its own batch) now and then."""
    ids = cands["candidate_id"].tolist()
    inv_ids = inventory["inventory_id"].tolist()
    inv_cids = [c for c in inventory["candidate_id"] if isinstance(c, str)]
    rows: list[dict[str, Any]] = []
    batches: list[tuple[str, list[str]]] = []

    def wkt_near(cid: str) -> str:
        g = cands.geometry[ids.index(cid)]
        return shapely.to_wkt(g.buffer(3.0, 2), rounding_precision=3, trim=True)

    def add(batch: str, cid: str, decision: str, **kw: Any) -> None:
        row = dict.fromkeys(DECISION_COLS, "")
        row.update(candidate_id=cid, decision=decision, iteration=K, batch_id=batch)
        row.update(probability=None, reviewer="r", timestamp="t")
        row.update(kw)
        rows.append(row)

    for b in range(max(1, len(ids) // 3)):
        batch = "" if rng.random() < 0.15 else rng.choice([f"b{b:03d}", f" b{b:03d} "])
        members = list(rng.choice(ids, size=int(rng.integers(1, 4)), replace=False)) if ids else []
        for cid in members:
            decision = rng.choice(
                ["confirmed", "confirmed", "rejected", "unsure", "part_of", "part_of"]
            )
            kw: dict[str, Any] = {}
            if decision == "part_of":
                pool = [
                    *([rng.choice(inv_ids)] if inv_ids else []),
                    *([rng.choice(inv_cids)] if inv_cids else []),
                    rng.choice(ids),
                    rng.choice(ids),
                    "nope",
                    cid,
                ]
                target = str(rng.choice(pool))
                kw["part_of"] = rng.choice([target, f" {target} "])
            if decision in ("confirmed", "part_of") and rng.random() < 0.35:
                kw["geometry_wkt"] = rng.choice([wkt_near(cid), f"  {wkt_near(cid)} "])
            if rng.random() < 0.1:
                kw["geometry_wkt"] = None
            add(batch, cid, decision, **kw)
        batches.append((batch, members))
        if batches and rng.random() < 0.2:  # undo an earlier batch
            undo_batch, undo_members = batches[int(rng.integers(len(batches)))]
            start = len(rows) - len(members)
            key = undo_batch.strip() or f"row-{start}"
            for cid in undo_members:
                add(f"u{b:03d}", cid, "undo", undoes=rng.choice([key, f" {key}"]))
    dec = pd.DataFrame(rows, columns=list(DECISION_COLS))
    dec["iteration"] = dec["iteration"].astype("int64")
    return dec


def _case(seed: int, n_cands: int = 40, n_inv: int = 25) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    inventory = _inventory(rng, n_inv, odd=seed % 2 == 0)
    cands = _candidates(rng, n_cands)
    dec = _decisions(rng, cands, inventory)
    latest = LEGACY.latest_decisions(dec)
    status = cands["candidate_id"].map(latest["decision"]).fillna("pending")
    if n_cands > 3:  # status without a decision row behind it
        status.iloc[-1] = "confirmed"
        status.iloc[-2] = "part_of"
    cands["status"] = status.to_numpy()
    sets = {
        "positives": _layer(rng, 30, "confirmed"),
        "negatives": _layer(rng, 20, "rejected"),
        "inventory": inventory,
    }
    return {"mine": cands, "decisions": dec, "sets": sets}


def _both(case: dict[str, Any]) -> tuple[Any, Any, list[str], list[str], dict, dict]:
    said_old: list[str] = []
    said_new: list[str] = []
    mine = case["mine"]
    latest_old = LEGACY.latest_decisions(case["decisions"])
    latest_new = latest_decisions(case["decisions"])
    _assert_same(latest_new, latest_old)
    copy = lambda: {n: f.copy() for n, f in case["sets"].items()}  # noqa: E731
    old = LEGACY.inventory_update(K, mine, latest_old, copy(), CRS, said_old.append)
    new = layers.inventory_update(K, mine, latest_new, copy(), CRS, said_new.append)
    row_old = LEGACY.iteration_summary(K, ["synthetic"], mine, old, 7, {"synthetic": {"x": 1}})
    row_new = layers.iteration_summary(K, ["synthetic"], mine, new, 7, {"synthetic": {"x": 1}})
    return old, new, said_old, said_new, row_old, row_new


@pytest.mark.parametrize("seed", range(12))
def test_inventory_update_same_as_per_row_code(seed: int) -> None:
    case = _case(seed)
    statuses = set(case["mine"]["status"])
    assert {"confirmed", "part_of"} <= statuses, statuses  # the cases are exercised
    old, new, said_old, said_new, row_old, row_new = _both(case)
    for field in FIELDS:
        if field != "grown":
            _assert_same(getattr(new, field), getattr(old, field))
    _assert_grown(case["sets"]["inventory"], old.grown, new.grown)
    assert said_new == said_old
    assert row_new == row_old
    # the inputs are left as they were
    pd.testing.assert_frame_equal(case["sets"]["inventory"], _case(seed)["sets"]["inventory"])


def _assert_grown(before: gpd.GeoDataFrame, old: gpd.GeoDataFrame, new: gpd.GeoDataFrame) -> int:
    """``new`` is ``old`` less the features the per-row code reported only because their outline
    is None or invalid (which may not equal itself): the update stage now compares just the
    features a fragment was merged into. Returns how many such features were left out."""
    keep = old["inventory_id"].isin(new["inventory_id"]).to_numpy()
    _assert_same(new, old[keep])
    prev = before.drop_duplicates("inventory_id", keep="last").set_index("inventory_id")
    for iid, merged in zip(
        old["inventory_id"][~keep], old["merged_candidates"][~keep], strict=True
    ):
        outline = prev.at[iid, "geometry"]
        assert outline is None or not shapely.is_valid(outline), iid
        assert str(merged) == str(prev.at[iid, "merged_candidates"]), iid  # nothing merged in
    return int((~keep).sum())


def test_cases_cover_the_review_model() -> None:
    """Across the seeds: fragments into earlier features (grown), into same-iteration features,
    kept as own features (target not confirmed), reviewed outlines, undo rows, and None/invalid
    outlines that no fragment touched (no longer rewritten)."""
    grown = merged_new = own = reviewed = undos = untouched_odd = 0
    for seed in range(12):
        case = _case(seed)
        old, new, said, _, _, _ = _both(case)
        grown += int(new.grown["merged_candidates"].str.contains("it03-").sum())
        untouched_odd += _assert_grown(case["sets"]["inventory"], old.grown, new.grown)
        merged_new += int((old.new_inventory["merged_candidates"] != "").sum())
        own += len(said)
        reviewed += int(old.new_inventory["outline"].str.startswith("reviewed").sum())
        undos += int((case["decisions"]["decision"] == "undo").sum())
    assert min(grown, merged_new, own, reviewed, undos, untouched_odd) > 0, (
        untouched_odd,
        grown,
        merged_new,
        own,
        reviewed,
        undos,
    )


def test_empty_inputs_same_as_per_row_code() -> None:
    case = _case(1)
    empty_dec = case["decisions"].iloc[:0]
    variants = [
        {**case, "mine": case["mine"].iloc[:0], "decisions": empty_dec},
        {**case, "sets": {n: f.iloc[:0] for n, f in case["sets"].items()}},
        {
            **case,
            "mine": case["mine"].assign(status="rejected"),
        },
    ]
    for variant in variants:
        old, new, said_old, said_new, row_old, row_new = _both(variant)
        for field in FIELDS:
            _assert_same(getattr(new, field), getattr(old, field))
        assert said_new == said_old and row_new == row_old
    _assert_same(effective_decisions(empty_dec), LEGACY.effective_decisions(empty_dec))
    _assert_same(latest_decisions(empty_dec), LEGACY.latest_decisions(empty_dec))


def test_build_inventory_update_without_outline_columns() -> None:
    """An inventory without outline/merged_candidates columns (they are added) or empty."""
    case = _case(3)
    latest = latest_decisions(case["decisions"])
    inv = case["sets"]["inventory"]
    inv = inv[inv["iteration"] != K].drop(columns=["outline", "merged_candidates"])
    for inventory in (inv, inv.iloc[:0]):
        said_old: list[str] = []
        said_new: list[str] = []
        got_old = LEGACY.build_inventory_update(
            K, case["mine"], latest, inventory, CRS, echo=said_old.append
        )
        got_new = outlines.build_inventory_change(
            K, case["mine"], latest, inventory, CRS, echo=said_new.append
        )
        assert len(got_new.touched) == 0  # no fragment of an earlier feature here
        for a, b in zip(got_new[:3], got_old, strict=True):
            _assert_same(a, b)
        assert said_new == said_old


@pytest.mark.parametrize("seed", range(4))
def test_decision_helpers_same_as_per_row_code(seed: int) -> None:
    case = _case(seed)
    dec = case["decisions"]
    shuffled = dec.set_axis(np.arange(len(dec))[::-1] * 7)  # any index, not only 0..n-1
    for d in (dec, shuffled, dec.drop(columns="batch_id")):
        _assert_same(effective_decisions(d), LEGACY.effective_decisions(d))
        _assert_same(latest_decisions(d), LEGACY.latest_decisions(d))
    inv = case["sets"]["inventory"]
    assert _inventory_targets(inv) == LEGACY._inventory_targets(inv)
    assert list(_inventory_targets(inv)) == list(LEGACY._inventory_targets(inv))


def test_changed_features_same_as_per_row_code() -> None:
    """Attribute and outline changes of every kind, and ones that are not changes."""
    rng = np.random.default_rng(7)
    before = _inventory(rng, 40, odd=True)
    before["when"] = pd.to_datetime("2024-01-01") + pd.to_timedelta(np.arange(40), unit="D")
    before["count"] = np.arange(40, dtype="int64")
    before["mixed"] = [1, "1", None, np.nan, 1.0, True, "a", b"x"] * 5
    before.loc[10, "score"] = -0.0
    dup = before.iloc[[3, 5]].assign(score=0.5)  # an inventory_id twice: the last counts
    before = gpd.GeoDataFrame(pd.concat([before, dup], ignore_index=True), crs=CRS)
    after = before.drop_duplicates("inventory_id", keep="first").copy()
    after.loc[1, "geometry"] = shapely.box(0, 0, 1, 1)  # moved
    after.loc[2, "geometry"] = shapely.box(2000, 0, 2040, 40).reverse()  # same shape, reversed
    after.loc[4, "merged_candidates"] = "it01-0001"
    after.loc[7, "evidence_json"] = None
    after.loc[8, "probability"] = "medium"
    after.loc[10, "score"] = 0.0  # equal numbers, different text ("-0.0")
    after.loc[11, "when"] = pd.Timestamp("2024-01-12")  # the same
    after["mixed"] = [1.0, 1, None, None, 1, 1, "a", b"x"] * 5  # 1.0/1, "1"/1, True/1 differ
    extra = after.iloc[[0]].assign(inventory_id="new-0001")  # not in before
    after = gpd.GeoDataFrame(pd.concat([after, extra]), crs=CRS)
    got = layers.changed_features(before, after)
    _assert_same(got, LEGACY.changed_features(before, after))
    assert 0 < len(got) < len(after) - 10, got["inventory_id"].tolist()
    late = after.copy()
    late.loc[9, "when"] = pd.Timestamp("2024-01-01 12:00")  # the text of every row changes
    recount = after.assign(count=after["count"].astype("float64"))  # "1.0" vs "1"
    for b, a in (
        (before, late),
        (before, recount),
        (before, recount.drop(columns="count")),
        (before.drop(columns="count"), after),
        (before, after.iloc[:0]),
        (before.iloc[:0], after),
        (before, after.assign(inventory_id="other")),
    ):
        _assert_same(layers.changed_features(b, a), LEGACY.changed_features(b, a))
    # the same objects everywhere (the engine's case): nothing changed but None/invalid outlines
    same = before.drop_duplicates("inventory_id", keep="last")
    got = layers.changed_features(before, same)
    _assert_same(got, LEGACY.changed_features(before, same))
    assert len(got) == 2  # the None outline and the invalid one
