"""Manual review: queue order, decisions and history, kappa, QGIS round trip."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
from shapely.geometry import box

from thawdetect.core.errors import InputError
from thawdetect.core.review.agreement import cohen_kappa, reviewer_agreement
from thawdetect.core.review.decisions import decide, history, review_queue
from thawdetect.core.review.qgis import export_for_qgis, import_from_qgis
from thawdetect.core.run.ledger import Ledger

UTM = "EPSG:32647"


def make_run(run_dir: Path, n: int = 6) -> Path:
    """A small ledger: n pending candidates, some found by two detectors."""
    cands = gpd.GeoDataFrame(
        {
            "candidate_id": [f"c{i}" for i in range(n)],
            "iteration": [1] * n,
            "detectors": [
                "insar_sbas,optical_dl" if i in (1, 4) else "insar_sbas" for i in range(n)
            ],
            "n_detectors": [2 if i in (1, 4) else 1 for i in range(n)],
            "score": [0.5, 0.2, 0.9, 0.1, 0.6, 0.7][:n],
            "status": ["pending"] * n,
            "probability": [None] * n,
            "evidence_json": [
                json.dumps({"insar_sbas": {"mean_rate_mm_yr": -60.0 - i}}) for i in range(n)
            ],
            "series_json": [None] * n,
            "insar_sbas__mean_rate_mm_yr": [-60.0 - i for i in range(n)],
        },
        geometry=[box(1000 * i, 0, 1000 * i + 80, 80) for i in range(n)],
        crs=UTM,
    )
    with Ledger(run_dir, crs=UTM).transaction() as t:
        t.write("candidates", cands)
    return run_dir


class TestQueue:
    def test_order_agreement_then_score(self, tmp_path):
        run = make_run(tmp_path / "run")
        q = review_queue(run)
        assert q["candidate_id"].tolist() == ["c4", "c1", "c2", "c5", "c0", "c3"]

    def test_filters(self, tmp_path):
        run = make_run(tmp_path / "run")
        decide(run, "c2", "confirmed", probability="high", reviewer="ann")
        assert "c2" not in review_queue(run)["candidate_id"].tolist()
        assert review_queue(run, status="confirmed")["candidate_id"].tolist() == ["c2"]
        assert len(review_queue(run, status=None)) == 6
        with pytest.raises(InputError, match="unknown status"):
            review_queue(run, status="maybe")

    def test_not_a_run(self, tmp_path):
        with pytest.raises(InputError, match=r"no ledger\.gpkg"):
            review_queue(tmp_path)


class TestDecide:
    def test_history_is_kept(self, tmp_path):
        run = make_run(tmp_path / "run")
        decide(run, "c0", "unsure", note="cloud", reviewer="ann")
        decide(run, ["c0", "c1"], "confirmed", probability="Medium", reviewer="bob")
        h = history(run, "c0")
        assert h["decision"].tolist() == ["unsure", "confirmed"]
        assert h["reviewer"].tolist() == ["ann", "bob"]
        assert h["note"].tolist()[0] == "cloud"
        assert all(len(ts) >= 19 for ts in h["timestamp"])
        c = Ledger(run).read("candidates").set_index("candidate_id")
        assert c.loc["c0", "status"] == "confirmed" and c.loc["c0", "probability"] == "medium"
        assert c.loc["c1", "status"] == "confirmed"
        assert c.loc["c3", "status"] == "pending"

    @pytest.mark.parametrize(
        "args, kwargs, match",
        [
            (("nope", "confirmed"), {}, "unknown candidate ids: nope"),
            (("c0", "maybe"), {}, "illegal decision 'maybe'"),
            (("c0", "confirmed"), {"probability": "certain"}, "illegal probability 'certain'"),
        ],
    )
    def test_bad_decisions_apply_nothing(self, tmp_path, args, kwargs, match):
        run = make_run(tmp_path / "run")
        with pytest.raises(InputError, match=match):
            decide(run, *args, **kwargs)
        assert len(history(run)) == 0


class TestKappa:
    def test_textbook_value(self):
        # Cohen 1960 style table: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no -> kappa 0.4
        a = ["y"] * 25 + ["n"] * 25
        b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
        assert cohen_kappa(a, b) == pytest.approx(0.4)

    def test_two_reviewers(self, tmp_path):
        run = make_run(tmp_path / "run")
        for cid, d in zip(
            ["c0", "c1", "c2", "c3"],
            ["confirmed", "confirmed", "rejected", "rejected"],
            strict=True,
        ):
            decide(run, cid, d, reviewer="ann")
        for cid, d in zip(
            ["c0", "c1", "c2", "c3", "c4"],
            ["confirmed", "rejected", "rejected", "rejected", "unsure"],
            strict=True,
        ):
            decide(run, cid, d, reviewer="bob")
        ag = reviewer_agreement(run, "ann", "bob")
        assert ag["n"] == 4
        assert ag["observed_agreement"] == pytest.approx(0.75)
        assert ag["kappa"] == pytest.approx(0.5)
        assert ag["confusion"]["confirmed|rejected"] == 1
        with pytest.raises(InputError, match="reviewer 'eve' made no decision"):
            reviewer_agreement(run, "ann", "eve")


class TestQgisRoundTrip:
    def test_export_edit_import(self, tmp_path):
        run = make_run(tmp_path / "run")
        out = export_for_qgis(run, tmp_path / "review.gpkg")
        df = pyogrio.read_dataframe(out, layer="review")
        assert len(df) == 6
        assert {
            "decision",
            "probability",
            "note",
            "reviewer",
            "insar_sbas__mean_rate_mm_yr",
        } <= set(df.columns)
        assert (df["decision"] == "").all()
        assert df.crs == UTM
        # a reviewer fills three rows in QGIS
        df.loc[df["candidate_id"] == "c2", ["decision", "probability"]] = ["confirmed", "HIGH"]
        df.loc[df["candidate_id"] == "c3", ["decision", "note"]] = ["rejected", "road cut"]
        df.loc[df["candidate_id"] == "c5", ["decision", "reviewer"]] = ["unsure", "cam"]
        pyogrio.write_dataframe(df, tmp_path / "edited.gpkg", layer="review")
        rows = import_from_qgis(run, tmp_path / "edited.gpkg", reviewer="dan")
        assert sorted(rows["candidate_id"]) == ["c2", "c3", "c5"]
        c = Ledger(run).read("candidates").set_index("candidate_id")
        assert c.loc["c2", "status"] == "confirmed" and c.loc["c2", "probability"] == "high"
        assert c.loc["c3", "status"] == "rejected"
        h = history(run).set_index("candidate_id")
        assert h.loc["c3", "note"] == "road cut"
        assert h.loc["c2", "reviewer"] == "dan" and h.loc["c5", "reviewer"] == "cam"
        # the next export only holds the still-pending ones
        again = pyogrio.read_dataframe(
            export_for_qgis(run, tmp_path / "review.gpkg"), layer="review"
        )
        assert sorted(again["candidate_id"]) == ["c0", "c1", "c4"]

    @pytest.mark.parametrize(
        "edit, match",
        [
            ({"c2": ("confirmed", "high"), "zz9": ("rejected", "")}, "unknown candidate ids: zz9"),
            ({"c2": ("confirmed", "high"), "c3": ("perhaps", "")}, "illegal decision values"),
            ({"c2": ("confirmed", "very")}, "illegal probability values"),
        ],
    )
    def test_bad_import_applies_nothing(self, tmp_path, edit, match):
        run = make_run(tmp_path / "run")
        df = pyogrio.read_dataframe(export_for_qgis(run, tmp_path / "review.gpkg"), layer="review")
        for cid, (dec, prob) in edit.items():
            if cid not in set(df["candidate_id"]):
                extra = df.iloc[[0]].copy()
                extra["candidate_id"] = cid
                df = gpd.GeoDataFrame(pd.concat([df, extra], ignore_index=True), crs=df.crs)
            df.loc[df["candidate_id"] == cid, ["decision", "probability"]] = [dec, prob]
        edited = tmp_path / "edited.gpkg"
        pyogrio.write_dataframe(df, edited, layer="review")
        before = Ledger(run).path.read_bytes()
        with pytest.raises(InputError, match=match) as exc:
            import_from_qgis(run, edited)
        assert str(exc.value).startswith(str(edited))
        assert "\n" not in str(exc.value)
        assert Ledger(run).path.read_bytes() == before
        assert len(history(run)) == 0

    def test_duplicate_ids(self, tmp_path):
        run = make_run(tmp_path / "run")
        df = pyogrio.read_dataframe(export_for_qgis(run, tmp_path / "review.gpkg"), layer="review")
        df = gpd.GeoDataFrame(pd.concat([df, df.iloc[[0]]], ignore_index=True), crs=df.crs)
        df["decision"] = "confirmed"
        pyogrio.write_dataframe(df, tmp_path / "dup.gpkg", layer="review")
        with pytest.raises(InputError, match="duplicate candidate ids"):
            import_from_qgis(run, tmp_path / "dup.gpkg")

    def test_bad_files(self, tmp_path):
        run = make_run(tmp_path / "run")
        with pytest.raises(InputError, match="does not exist"):
            import_from_qgis(run, tmp_path / "missing.gpkg")
        (tmp_path / "junk.gpkg").write_text("not a geopackage")
        with pytest.raises(InputError, match=r"junk\.gpkg: cannot be read"):
            import_from_qgis(run, tmp_path / "junk.gpkg")
        gpd.GeoDataFrame({"x": [1]}, geometry=[box(0, 0, 1, 1)], crs=UTM).to_file(
            tmp_path / "other.gpkg"
        )
        with pytest.raises(InputError, match="missing field"):
            import_from_qgis(run, tmp_path / "other.gpkg")
        with pytest.raises(InputError, match="must be a GeoPackage"):
            export_for_qgis(run, tmp_path / "x.shp")
