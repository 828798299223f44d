"""The reference reviewer: match rules, spec parsing, and the pluggy hook."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import geopandas as gpd
import pandas as pd
import pluggy
import pytest
import shapely
from shapely.geometry import Point, box

from thawdetect.core.errors import ConfigError, InputError
from thawdetect.core.plugin_api import hookspecs
from thawdetect.plugins.reference_reviewer import plugin as reviewers
from thawdetect.plugins.reference_reviewer.plugin import parse_reference_spec, reference_decisions

UTM = "EPSG:32647"


def _candidates() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"candidate_id": ["a", "b", "c", "d"], "score": [1.0, 0.9, 0.8, 0.7]},
        geometry=[
            box(0, 0, 100, 100),
            box(1000, 0, 1100, 100),
            box(2000, 0, 2100, 100),
            box(3000, 0, 3100, 100),
        ],
        crs=UTM,
    )


class TestReferenceDecisions:
    def test_polygon_overlap_rule(self):
        ref = gpd.GeoDataFrame(
            {"id": [7, 8, 9]},
            geometry=[
                box(50, 50, 150, 150),  # 2500 m² of a 10000 m² candidate: 25 % ≥ 10 %
                box(1095, 0, 1200, 100),  # 5 % of the smaller: below 10 %
                box(2010, 10, 2020, 20),  # tiny polygon fully inside: 100 % of the smaller
            ],
            crs=UTM,
        )
        d = reference_decisions(_candidates(), ref)
        # b touches reference 8 below min_overlap: unsure, never a negative on a real slump
        assert d["decision"].tolist() == ["confirmed", "unsure", "confirmed", "rejected"]
        assert d["probability"].tolist() == ["high", None, "high", None]
        assert d.loc[0, "note"] == "reference match: id=7"
        d2 = reference_decisions(_candidates(), ref, min_overlap=0.03)
        assert d2.loc[1, "decision"] == "confirmed"
        d3 = reference_decisions(_candidates(), ref, min_overlap=0.3)
        assert d3["decision"].tolist() == ["unsure", "unsure", "confirmed", "rejected"]

    def test_points_inside_or_within_tolerance(self):
        ref = gpd.GeoDataFrame(
            geometry=[Point(50, 50), Point(1150, 50), Point(3000, 200)], crs=UTM
        ).to_crs(4326)  # any CRS
        d = reference_decisions(_candidates(), ref)
        assert d["decision"].tolist() == ["confirmed", "rejected", "rejected", "rejected"]
        d = reference_decisions(_candidates(), ref, tolerance_m=60)
        assert d["decision"].tolist() == ["confirmed", "confirmed", "rejected", "rejected"]
        d = reference_decisions(_candidates(), ref, tolerance_m=101)
        assert d["decision"].tolist() == ["confirmed", "confirmed", "rejected", "confirmed"]

    def test_empty(self):
        empty_ref = gpd.GeoDataFrame(geometry=gpd.GeoSeries([], crs=UTM), crs=UTM)
        d = reference_decisions(_candidates(), empty_ref)
        assert (d["decision"] == "rejected").all()
        d = reference_decisions(_candidates().iloc[:0], empty_ref)
        assert list(d.columns) == [
            "candidate_id",
            "decision",
            "probability",
            "note",
            "geometry_wkt",
            "part_of",
        ]
        assert len(d) == 0

    def test_confirms_with_the_reference_outline_by_default(self):
        ref = gpd.GeoDataFrame({"id": [7]}, geometry=[box(-20, -20, 140, 130)], crs=UTM)
        d = reference_decisions(_candidates(), ref)
        assert d.attrs["review_settings"]["outline"] == "reference"
        outline = shapely.from_wkt(d.loc[0, "geometry_wkt"])
        assert outline.equals(box(-20, -20, 140, 130))
        kept = reference_decisions(_candidates(), ref, outline="detector")
        assert kept.loc[0, "decision"] == "confirmed" and kept.loc[0, "geometry_wkt"] == ""
        assert kept.attrs["review_settings"]["outline"] == "detector"
        with pytest.raises(ConfigError, match="outline"):
            reference_decisions(_candidates(), ref, outline="mine")

    def test_candidates_of_one_feature_become_one(self):
        ref = gpd.GeoDataFrame({"id": ["S1"]}, geometry=[box(0, 0, 300, 100)], crs=UTM)
        cands = gpd.GeoDataFrame(
            {"candidate_id": ["x", "y", "z"]},
            geometry=[box(0, 0, 90, 90), box(200, 0, 290, 90), box(5000, 0, 5100, 100)],
            crs=UTM,
        )
        d = reference_decisions(cands, ref)
        assert d["decision"].tolist() == ["confirmed", "part_of", "rejected"]
        assert d["part_of"].tolist() == ["", "x", ""]
        # the fragment carries the reference outline too: X's outline stays the reference one
        assert shapely.from_wkt(d.loc[1, "geometry_wkt"]).equals(box(0, 0, 300, 100))


class TestSpec:
    def test_parse(self):
        assert parse_reference_spec("reference:/x/y.gpkg?tolerance_m=30&min_overlap=0.2") == (
            "/x/y.gpkg",
            {"tolerance_m": 30.0, "min_overlap": 0.2},
        )
        assert parse_reference_spec("reference?tolerance_m=5") == (None, {"tolerance_m": 5.0})
        assert parse_reference_spec("reference?outline=detector") == (
            None,
            {"outline": "detector"},
        )
        assert parse_reference_spec("manual") is None
        assert parse_reference_spec("referee") is None

    @pytest.mark.parametrize(
        "spec, match",
        [
            ("reference:a.gpkg?bogus=1", "unknown option 'bogus'"),
            ("reference:a.gpkg?tolerance_m=far", "is not a number"),
            ("reference:a.gpkg?min_overlap=-1", "must be ≥ 0"),
            ("reference:", "no path"),
            ("reference?outline=mine", "outline='mine'"),
        ],
    )
    def test_bad_spec(self, spec, match):
        with pytest.raises(ConfigError, match=match):
            parse_reference_spec(spec)


def _host() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(reviewers, name="reference_reviewer")
    pm.check_pending()
    return pm


class TestHook:
    def test_reference_path_spec(self, tmp_path: Path):
        ref = gpd.GeoDataFrame({"id": [1]}, geometry=[box(0, 0, 60, 60)], crs=UTM).to_crs(3857)
        ref.to_file(tmp_path / "truth.geojson")
        ctx = SimpleNamespace(reference_paths=[])
        out = _host().hook.thawdetect_review_candidates(
            candidates=_candidates(),
            reviewer=f"reference:{tmp_path / 'truth.geojson'}",
            context=ctx,
        )
        assert isinstance(out, pd.DataFrame)
        assert out["decision"].tolist() == ["confirmed", "rejected", "rejected", "rejected"]

    def test_region_reference_paths(self, tmp_path: Path):
        gpd.GeoDataFrame(geometry=[Point(2050, 50)], crs=UTM).to_file(tmp_path / "a.gpkg")
        pd.DataFrame({"lon": [99.5], "lat": [37.5]}).to_csv(tmp_path / "b.csv", index=False)
        ctx = SimpleNamespace(reference_paths=[tmp_path / "a.gpkg", tmp_path / "b.csv"])
        out = _host().hook.thawdetect_review_candidates(
            candidates=_candidates(), reviewer="reference", context=ctx
        )
        assert out["decision"].tolist() == ["rejected", "rejected", "confirmed", "rejected"]

    def test_other_specs_pass(self):
        ctx = SimpleNamespace(reference_paths=[])
        out = _host().hook.thawdetect_review_candidates(
            candidates=_candidates(), reviewer="manual", context=ctx
        )
        assert out is None

    def test_reference_without_paths(self):
        with pytest.raises(ConfigError, match="no reference inventory"):
            _host().hook.thawdetect_review_candidates(
                candidates=_candidates(),
                reviewer="reference",
                context=SimpleNamespace(reference_paths=[]),
            )

    def test_missing_file(self, tmp_path):
        with pytest.raises(
            InputError, match=r"nope\.gpkg: reference inventory file does not exist"
        ):
            _host().hook.thawdetect_review_candidates(
                candidates=_candidates(),
                reviewer=f"reference:{tmp_path / 'nope.gpkg'}",
                context=SimpleNamespace(reference_paths=[]),
            )


def test_candidate_matching_an_already_mapped_slump_is_part_of_it():
    from shapely.geometry import box

    from thawdetect.plugins.reference_reviewer.plugin import reference_decisions

    crs = "EPSG:32646"
    ref = gpd.GeoDataFrame(
        {"id": ["s1", "s2"]}, geometry=[box(0, 0, 10, 10), box(50, 0, 60, 10)], crs=crs
    )
    mapped = gpd.GeoDataFrame(  # s1 is in the inventory
        {"inventory_id": ["rts-01-0001"]}, geometry=[box(0, 0, 10, 10)], crs=crs
    )
    cands = gpd.GeoDataFrame(
        {"candidate_id": ["dup", "new"]},
        geometry=[box(-20, -20, 5, 5), box(52, 2, 58, 8)],  # dup overlaps s1 by 25 %
        crs=crs,
    )
    plain = reference_decisions(cands, ref)
    assert plain["decision"].tolist() == ["confirmed", "confirmed"]
    out = reference_decisions(cands, ref, already_mapped=mapped)
    assert out["decision"].tolist() == ["part_of", "confirmed"]
    assert out["part_of"].tolist() == ["rts-01-0001", ""]
    assert "already in the inventory as rts-01-0001" in out["note"].iloc[0]


def test_candidate_over_a_mapped_and_a_new_slump_maps_the_new_one():
    """A detector outline that ran from a mapped slump into a new neighbour is decided as the
    new one (what a person would map), whatever the overlap order; only a candidate whose every
    match is mapped is part of the best one. Two candidates over the same two new slumps map
    one each, in review order."""
    crs = "EPSG:32646"
    ref = gpd.GeoDataFrame(
        {"id": ["big", "small"]}, geometry=[box(0, 0, 40, 40), box(45, 0, 55, 10)], crs=crs
    )
    both = box(0, 0, 56, 40)  # all of "big" (1600 m²), all of "small" (100 m²)
    cands = gpd.GeoDataFrame({"candidate_id": ["c1"]}, geometry=[both], crs=crs)
    assert reference_decisions(cands, ref)["note"].tolist() == ["reference match: id=big"]
    mapped = gpd.GeoDataFrame(
        {"inventory_id": ["rts-01-0001"]}, geometry=[box(0, 0, 40, 40)], crs=crs
    )
    out = reference_decisions(cands, ref, already_mapped=mapped)
    assert out["decision"].tolist() == ["confirmed"]
    assert out["note"].tolist() == ["reference match: id=small"]
    assert shapely.from_wkt(out["geometry_wkt"].iloc[0]).equals(box(45, 0, 55, 10))
    # both mapped: part of the best match, as before
    mapped2 = pd.concat(
        [
            mapped,
            gpd.GeoDataFrame(
                {"inventory_id": ["rts-01-0002"]}, geometry=[box(45, 0, 55, 10)], crs=crs
            ),
        ]
    )
    out = reference_decisions(cands, ref, already_mapped=mapped2)
    assert out["decision"].tolist() == ["part_of"]
    assert out["part_of"].tolist() == ["rts-01-0001"]
    # two candidates over the same two new slumps: the first maps "big", the second "small"
    two = gpd.GeoDataFrame({"candidate_id": ["a", "b"]}, geometry=[both, both], crs=crs)
    out = reference_decisions(two, ref)
    assert out["decision"].tolist() == ["confirmed", "confirmed"]
    assert out["note"].tolist() == ["reference match: id=big", "reference match: id=small"]
    # a third one has nothing new left: part of the first
    three = gpd.GeoDataFrame({"candidate_id": ["a", "b", "c"]}, geometry=[both] * 3, crs=crs)
    out = reference_decisions(three, ref)
    assert out["decision"].tolist() == ["confirmed", "confirmed", "part_of"]
    assert out["part_of"].tolist() == ["", "", "a"]


def test_unmatched_manual_leaves_what_the_reference_does_not_hold():
    """``unmatched=manual``: a partial inventory confirms what it holds (and "part of"), and
    leaves every other candidate, rejected or unsure otherwise, to a person (no row)."""
    crs = "EPSG:32646"
    ref = gpd.GeoDataFrame(
        {"id": ["s1", "s2"]}, geometry=[box(0, 0, 10, 10), box(50, 0, 60, 10)], crs=crs
    )
    cands = gpd.GeoDataFrame(
        {"candidate_id": ["hit", "same", "touch", "far"]},
        geometry=[box(1, 1, 9, 9), box(2, 2, 8, 8), box(59.5, 0, 100, 40), box(200, 0, 210, 10)],
        crs=crs,
    )
    plain = reference_decisions(cands, ref)
    assert plain["decision"].tolist() == ["confirmed", "part_of", "unsure", "rejected"]
    out = reference_decisions(cands, ref, unmatched="manual")
    assert out["candidate_id"].tolist() == ["hit", "same"]
    assert out["decision"].tolist() == ["confirmed", "part_of"]
    assert out.attrs["review_settings"]["unmatched"] == "manual"
    assert parse_reference_spec("reference:t.gpkg?unmatched=manual") == (
        "t.gpkg",
        {"unmatched": "manual"},
    )
    with pytest.raises(ConfigError, match=r"unmatched='later'; use reject or manual"):
        parse_reference_spec("reference:t.gpkg?unmatched=later")
