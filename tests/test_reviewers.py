"""The reference reviewer: match rules, spec parsing, and the pluggy hook."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import geopandas as gpd
import pandas as pd
import pluggy
import pytest
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
        assert d["decision"].tolist() == ["confirmed", "rejected", "confirmed", "rejected"]
        assert d["probability"].tolist() == ["high", None, "high", None]
        assert d.loc[0, "note"] == "reference match: id=7"
        d2 = reference_decisions(_candidates(), ref, min_overlap=0.03)
        assert d2.loc[1, "decision"] == "confirmed"
        d3 = reference_decisions(_candidates(), ref, min_overlap=0.3)
        assert d3["decision"].tolist() == ["rejected", "rejected", "confirmed", "rejected"]

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
        assert list(d.columns) == ["candidate_id", "decision", "probability", "note"]
        assert len(d) == 0


class TestSpec:
    def test_parse(self):
        assert parse_reference_spec("reference:/x/y.gpkg?tolerance_m=30&min_overlap=0.2") == (
            "/x/y.gpkg",
            {"tolerance_m": 30.0, "min_overlap": 0.2},
        )
        assert parse_reference_spec("reference?tolerance_m=5") == (None, {"tolerance_m": 5.0})
        assert parse_reference_spec("manual") is None
        assert parse_reference_spec("referee") is None

    @pytest.mark.parametrize(
        "spec, match",
        [
            ("reference:a.gpkg?bogus=1", "unknown option 'bogus'"),
            ("reference:a.gpkg?tolerance_m=far", "is not a number"),
            ("reference:a.gpkg?min_overlap=-1", "must be ≥ 0"),
            ("reference:", "no path"),
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


def test_candidate_matching_only_already_mapped_slumps_is_rejected():
    from shapely.geometry import box

    from thawdetect.plugins.reference_reviewer.plugin import reference_decisions

    crs = "EPSG:32646"
    ref = gpd.GeoDataFrame(
        {"id": ["s1", "s2"]}, geometry=[box(0, 0, 10, 10), box(50, 0, 60, 10)], crs=crs
    )
    mapped = gpd.GeoDataFrame(geometry=[box(0, 0, 10, 10)], crs=crs)  # s1 is in the inventory
    cands = gpd.GeoDataFrame(
        {"candidate_id": ["dup", "new"]},
        geometry=[box(-20, -20, 5, 5), box(52, 2, 58, 8)],  # dup overlaps s1 by 25 %
        crs=crs,
    )
    plain = reference_decisions(cands, ref)
    assert plain["decision"].tolist() == ["confirmed", "confirmed"]
    out = reference_decisions(cands, ref, already_mapped=mapped)
    assert out["decision"].tolist() == ["rejected", "confirmed"]
    assert out["note"].iloc[0] == "matches only slumps already in the inventory"
