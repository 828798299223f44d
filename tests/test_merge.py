"""Whole-table merge: identical to the per-group reference implementation it replaced."""

from __future__ import annotations

import json
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box

from thawdetect.core.plugin_api.detector import SCORE_COLUMN, SERIES_COLUMN
from thawdetect.core.run.merge import _components, merge_candidates

CRS = "EPSG:32646"


# The per-group implementation of thawdetect 0.1 (commit ba22463), kept verbatim as the reference.
def reference_merge(
    proposals: gpd.GeoDataFrame, crs: Any, *, buffer_m: float = 0.0
) -> gpd.GeoDataFrame:
    """Merge overlapping candidates of different detectors into one candidate each.

    Args:
        proposals: validated candidates of all detectors of one iteration, with ``detector``,
            ``score``, optional ``series_json``, evidence columns; working CRS (metres).
        crs: the working CRS.
        buffer_m: candidates closer than this (metres) count as overlapping.

    Returns:
        One row per merged candidate: geometry (union), ``detectors`` (sorted, comma-separated),
        ``n_detectors``, ``score`` (the highest within-detector rank percentile, 0-1, so scores of
        different detectors compare), ``evidence_json`` ({detector: {column: value}} of the
        best-scoring member of each detector), flattened ``<detector>__<column>`` columns, and
        ``series_json`` of the best member that has one.
    """
    if len(proposals) == 0:
        return gpd.GeoDataFrame(
            {"detectors": [], "n_detectors": [], SCORE_COLUMN: [], "evidence_json": []},
            geometry=gpd.GeoSeries([], crs=crs),
            crs=crs,
        )
    p = proposals.reset_index(drop=True).copy()
    p["_rank"] = p.groupby("detector")[SCORE_COLUMN].rank(pct=True, method="max").fillna(0.0)
    geoms = p.geometry.buffer(buffer_m / 2.0) if buffer_m > 0 else p.geometry
    ia, ib = gpd.GeoSeries(geoms, crs=crs).sindex.query(geoms, predicate="intersects")
    # Same-detector overlaps are joined when they share half the smaller outline (one slump
    # twice); touching outlines and slivers along a shared edge stay apart.
    keep = []
    for a, b in zip(ia.tolist(), ib.tolist(), strict=True):
        if a != b and p["detector"].iloc[a] == p["detector"].iloc[b]:
            ga, gb = geoms.iloc[a], geoms.iloc[b]
            keep.append(ga.intersection(gb).area >= 0.5 * min(ga.area, gb.area))
        else:
            keep.append(True)
    ia, ib = ia[np.asarray(keep, dtype=bool)], ib[np.asarray(keep, dtype=bool)]
    labels = _components(len(p), ia, ib)
    p["_group"] = labels
    evidence_cols = [
        c for c in p.columns if c not in ("geometry", "detector", "_rank", "_group", SERIES_COLUMN)
    ]
    rows = []
    for _, grp in p.groupby("_group", sort=False):
        ev: dict[str, dict[str, Any]] = {}
        flat: dict[str, Any] = {}
        series = None
        for det, dg in grp.groupby("detector"):
            best = dg.sort_values(SCORE_COLUMN, ascending=False).iloc[0]
            vals = {}
            for c in evidence_cols:
                v = best[c]
                if isinstance(v, np.generic):
                    v = v.item()
                if isinstance(v, float) and not np.isfinite(v):
                    v = None
                vals[c] = v
                flat[f"{det}__{c}"] = v
            vals["n_parts"] = len(dg)
            ev[str(det)] = vals
            if series is None and SERIES_COLUMN in dg:
                with_series = dg[dg[SERIES_COLUMN].notna()]
                if len(with_series):
                    series = with_series.sort_values(SCORE_COLUMN, ascending=False).iloc[0][
                        SERIES_COLUMN
                    ]
        dets = sorted(ev)
        rows.append(
            {
                "detectors": ",".join(dets),
                "n_detectors": len(dets),
                SCORE_COLUMN: float(grp["_rank"].max()),
                "evidence_json": json.dumps(ev, default=str),
                SERIES_COLUMN: series,
                **flat,
                "geometry": grp.geometry.union_all() if len(grp) > 1 else grp.geometry.iloc[0],
            }
        )
    out = gpd.GeoDataFrame(rows, geometry="geometry", crs=crs)
    out["geometry"] = out.geometry.make_valid()
    return out


def _proposals(seed: int, n: int = 60, detectors=("insar_sbas", "optical_dl", "terrain")):
    """Overlapping squares of several detectors: chains, NaN scores, mixed evidence."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 20, n) * 30.0
    y = rng.integers(0, 12, n) * 30.0
    side = rng.choice([20.0, 40.0, 65.0], n, p=[0.5, 0.4, 0.1])
    det = rng.choice(list(detectors), n)
    # distinct scores, some NaN: the reference's pick among tied scores depended on numpy's
    # (unstable, CPU-dependent) quicksort, so ties are tested against hand-built expectations
    score = np.where(rng.random(n) < 0.15, np.nan, rng.permutation(n) / n)
    frame = pd.DataFrame({"detector": det, SCORE_COLUMN: score})
    frame["rate_mm_yr"] = np.where(det == "insar_sbas", rng.normal(-40, 10, n), np.nan)
    frame["initiation"] = [
        f"20{10 + i % 9}" if d == "optical_dl" and i % 3 else None for i, d in enumerate(det)
    ]
    frame["n_px"] = rng.integers(1, 500, n)
    frame["steep"] = rng.random(n) > 0.5
    frame[SERIES_COLUMN] = [
        json.dumps({"v": i}) if d != "terrain" and i % 4 else None for i, d in enumerate(det)
    ]
    geoms = [box(a, b, a + s, b + s) for a, b, s in zip(x, y, side, strict=True)]
    return gpd.GeoDataFrame(frame, geometry=geoms, crs=CRS)


def _assert_same(new: gpd.GeoDataFrame, old: gpd.GeoDataFrame) -> None:
    assert list(new.columns) == list(old.columns)
    pd.testing.assert_frame_equal(
        pd.DataFrame(new.drop(columns="geometry")), pd.DataFrame(old.drop(columns="geometry"))
    )
    assert new.geometry.geom_equals_exact(old.geometry, tolerance=0).all()
    assert new.crs == old.crs


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("buffer_m", [0.0, 15.0])
def test_same_output_as_reference(seed, buffer_m):
    props = _proposals(seed)
    new = merge_candidates(props, CRS, buffer_m=buffer_m)
    old = reference_merge(props, CRS, buffer_m=buffer_m)
    assert (new["n_detectors"] > 1).any()  # the sets really overlap across detectors
    parts = new["evidence_json"].map(lambda s: max(v["n_parts"] for v in json.loads(s).values()))
    assert (parts > 1).any()
    _assert_same(new, old)


def test_same_output_without_series_or_evidence():
    props = _proposals(3)[["detector", SCORE_COLUMN, "geometry"]]
    _assert_same(merge_candidates(props, CRS), reference_merge(props, CRS))


def test_tie_breaking_is_input_order():
    # two members of one detector with equal scores: the first one in the input carries the
    # evidence, whichever order the rows come in
    props = gpd.GeoDataFrame(
        {
            "detector": ["a", "a", "b"],
            SCORE_COLUMN: [0.5, 0.5, 0.2],
            "tag": ["first", "second", "b"],
        },
        geometry=[box(0, 0, 10, 10), box(5, 0, 15, 10), box(8, 0, 20, 10)],
        crs=CRS,
    )
    merged = merge_candidates(props, CRS)
    assert len(merged) == 1
    assert merged["a__tag"].item() == "first"
    ev = json.loads(merged["evidence_json"].item())
    assert ev["a"]["n_parts"] == 2 and ev["b"]["n_parts"] == 1
    swapped = props.iloc[[1, 0, 2]]
    assert merge_candidates(swapped, CRS)["a__tag"].item() == "second"


def test_nan_scores_lose_to_real_ones():
    props = gpd.GeoDataFrame(
        {"detector": ["a", "a"], SCORE_COLUMN: [np.nan, 0.1], "tag": ["nan", "real"]},
        geometry=[box(0, 0, 10, 10), box(5, 0, 15, 10)],
        crs=CRS,
    )
    assert merge_candidates(props, CRS)["a__tag"].item() == "real"


def test_empty():
    empty = gpd.GeoDataFrame(
        {"detector": [], SCORE_COLUMN: []}, geometry=gpd.GeoSeries([], crs=CRS), crs=CRS
    )
    out = merge_candidates(empty, CRS)
    assert len(out) == 0 and out.crs == CRS


def test_components_chain():
    labels = _components(4, np.array([0, 1]), np.array([1, 2]))
    assert labels[0] == labels[1] == labels[2] != labels[3]


def test_large_tied_groups_pick_the_first_member():
    # 40 overlapping members of one detector, all scored 0.5: the first input row wins
    props = gpd.GeoDataFrame(
        {"detector": ["a"] * 40, SCORE_COLUMN: [0.5] * 40, "tag": [f"m{i}" for i in range(40)]},
        geometry=[box(i, 0, i + 10, 10) for i in range(40)],
        crs=CRS,
    )
    assert merge_candidates(props, CRS)["a__tag"].item() == "m0"
    assert merge_candidates(props.iloc[::-1], CRS)["a__tag"].item() == "m39"


@pytest.mark.parametrize("seed", range(4))
def test_same_output_with_list_time_and_text_evidence(seed):
    """Evidence values that are lists, timestamps or non-ASCII text come out as the reference
    gives them (the frame is built by columns, the JSON by members)."""
    props = _proposals(seed, n=120)
    props["dates"] = [["2019-07-01", "2020-07-01"] if i % 3 else None for i in range(len(props))]
    props["seen"] = pd.Timestamp("2020-08-01")
    props["name"] = ["Kunlun Shan é" if i % 2 else 'a "quoted" one' for i in range(len(props))]
    for buffer_m in (0.0, 15.0):
        _assert_same(
            merge_candidates(props, CRS, buffer_m=buffer_m),
            reference_merge(props, CRS, buffer_m=buffer_m),
        )


def test_one_detectors_outlines_that_only_touch_stay_apart():
    # neighbouring landslides delineated edge to edge on one pixel grid are two candidates, also
    # when smoothing makes their outlines share a sliver; outlines of one detector that share
    # half the smaller one, or of two detectors that touch, are one
    props = gpd.GeoDataFrame(
        {"detector": ["a", "a", "a", "b"], SCORE_COLUMN: [0.9, 0.8, 0.7, 0.5]},
        geometry=[box(0, 0, 10, 10), box(10, 0, 20, 10), box(30, 0, 40, 10), box(40, 0, 50, 10)],
        crs=CRS,
    )
    assert len(merge_candidates(props, CRS)) == 3  # (0) (1) (2 + b)
    props.loc[1, "geometry"] = box(9, 0, 20, 10)  # a sliver, 10 % of the smaller
    assert len(merge_candidates(props, CRS)) == 3
    props.loc[1, "geometry"] = box(4, 0, 20, 10)  # 60 % of the first: one slump twice
    assert len(merge_candidates(props, CRS)) == 2
