"""Accuracy: Wei et al. TPR/FPR/FNR against points, IoU matching against polygons, run scoring."""

from __future__ import annotations

import json
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import Point, box
from tests.conftest import SHARED_DATA

from thawdetect.core.accuracy import (
    parse_labels,
    point_accuracy,
    point_accuracy_files,
    polygon_accuracy,
    polygon_accuracy_files,
    run_accuracy,
    wilson_interval,
)
from thawdetect.core.errors import CRSMismatchError, EmptyInventoryError, InputError
from thawdetect.core.run.ledger import Ledger

UTM = "EPSG:32647"  # Qilian Mountains


def _qilian_scene(n_hit: int = 14, n_miss: int = 1, n_neg: int = 0):
    """Detections (UTM 47N squares of 100 m) and validation points, as WGS84 lon/lat."""
    x0, y0 = 400_000.0, 4_180_000.0
    dets, pts, labels = [], [], []
    for i in range(n_hit):
        cx, cy = x0 + 1000 * i, y0
        dets.append(box(cx - 50, cy - 50, cx + 50, cy + 50))
        pts.append(Point(cx + 10, cy - 20))
        labels.append("landslide")
    for i in range(n_miss):
        pts.append(Point(x0 + 1000 * i, y0 + 5000))
        labels.append("landslide")
    for i in range(n_neg):  # a checked non-landslide inside detection i
        pts.append(Point(x0 + 1000 * i - 30, y0 + 30))
        labels.append("not_landslide")
    det = gpd.GeoDataFrame({"score": np.linspace(1, 0.5, len(dets))}, geometry=dets, crs=UTM)
    val = gpd.GeoDataFrame({"label": labels}, geometry=pts, crs=UTM).to_crs("EPSG:4326")
    return det, val


def _write_csv(val: gpd.GeoDataFrame, path: Path) -> Path:
    pd.DataFrame({"lon": val.geometry.x, "lat": val.geometry.y, "label": val["label"]}).to_csv(
        path, index=False
    )
    return path


class TestWilson:
    def test_known_values(self):
        lo, hi = wilson_interval(14, 15)
        assert lo == pytest.approx(0.7018, abs=1e-4)
        assert hi == pytest.approx(0.9881, abs=1e-4)
        lo, hi = wilson_interval(0, 15)
        assert lo == 0.0
        assert hi == pytest.approx(0.2039, abs=1e-4)

    def test_undefined(self):
        assert wilson_interval(0, 0) is None
        assert wilson_interval(3, 2) is None


class TestPointAccuracy:
    def test_fifteen_points_paper_figures(self):
        det, val = _qilian_scene()
        rep = point_accuracy(det, val)
        d = rep.to_dict()
        assert (d["tp"], d["fp"], d["fn"], d["n"]) == (14, 0, 1, 15)
        assert round(100 * d["tpr"], 1) == 93.3
        assert d["fpr"] == 0.0
        assert round(100 * d["fnr"], 1) == 6.7
        assert d["tpr_ci95"] == pytest.approx([0.7018, 0.9881], abs=1e-4)
        assert d["fnr_ci95"] == pytest.approx([0.0119, 0.2982], abs=1e-4)
        assert d["fpr_ci95"][0] == 0.0
        assert d["f1_ci95"] is None
        assert d["precision"] == 1.0
        assert d["f1"] == pytest.approx(28 / 29)
        assert any("small" in w for w in d["warnings"])
        table = rep.format_table()
        assert "93.3 %" in table and "6.7 %" in table and "70.2-98.8 %" in table

    def test_tolerance_recovers_near_miss(self):
        det, val = _qilian_scene(n_hit=3, n_miss=0)
        utm = val.to_crs(UTM)
        shifted = utm.geometry.translate(xoff=80)  # 40 m outside the 50 m half-width
        val2 = gpd.GeoDataFrame({"label": utm["label"]}, geometry=shifted, crs=UTM)
        assert point_accuracy(det, val2).tp == 0
        assert point_accuracy(det, val2, tolerance_m=30).tp == 0
        assert point_accuracy(det, val2, tolerance_m=45).tp == 3

    def test_labels_give_false_positives(self):
        det, val = _qilian_scene(n_hit=10, n_miss=2, n_neg=3)
        rep = point_accuracy(det, val, label_column="label")
        assert (rep.tp, rep.fp, rep.fn, rep.n, rep.n_negatives) == (10, 3, 2, 12, 3)
        assert rep.to_dict()["fpr"] == pytest.approx(3 / 12)
        assert rep.to_dict()["precision"] == pytest.approx(10 / 13)
        # without the label column every point is a landslide
        rep_all = point_accuracy(det, val)
        assert (rep_all.tp, rep_all.fp, rep_all.fn) == (13, 0, 2)

    def test_empty_detections_all_misses(self):
        _, val = _qilian_scene()
        empty = gpd.GeoDataFrame({"score": []}, geometry=gpd.GeoSeries([], crs=UTM), crs=UTM)
        rep = point_accuracy(empty, val)
        assert (rep.tp, rep.fp, rep.fn, rep.n) == (0, 0, 15, 15)
        assert rep.to_dict()["fnr"] == 1.0

    def test_duplicate_points_counted_once(self):
        det, val = _qilian_scene(n_hit=4, n_miss=0)
        dup = pd.concat([val, val.iloc[[0, 1]]], ignore_index=True)
        rep = point_accuracy(det, gpd.GeoDataFrame(dup, crs=val.crs))
        assert rep.n == 4
        assert any("2 duplicate" in w for w in rep.warnings)

    def test_unknown_labels(self):
        det, val = _qilian_scene(n_hit=2)
        val.loc[0, "label"] = "maybe"
        with pytest.raises(InputError, match="unknown values 'maybe'"):
            point_accuracy(det, val, label_column="label")
        with pytest.raises(InputError, match="'nope' not found"):
            point_accuracy(det, val, label_column="nope")

    def test_parse_labels_numeric_and_words(self):
        s = pd.Series([1, 0.0, "Positive", "Negative", True, "checked-not-landslide"])
        assert parse_labels(s, source=None, column="c").tolist() == [
            True,
            False,
            True,
            False,
            True,
            False,
        ]


class TestPointFiles:
    def test_csv_validation_any_crs(self, tmp_path):
        det, val = _qilian_scene()
        det.to_file(tmp_path / "det.gpkg")
        # same detections stored in WGS84 GeoJSON; validation in web mercator GPKG and CSV
        det.to_crs(4326).to_file(tmp_path / "det.geojson")
        val.to_crs(3857).to_file(tmp_path / "val.gpkg")
        csv = _write_csv(val, tmp_path / "val.csv")
        for d in ("det.gpkg", "det.geojson"):
            for v in (csv, tmp_path / "val.gpkg"):
                rep = point_accuracy_files(tmp_path / d, v)
                assert (rep.tp, rep.fn) == (14, 1), (d, v)

    def test_bad_files(self, tmp_path):
        det, val = _qilian_scene()
        det.to_file(tmp_path / "det.gpkg")
        (tmp_path / "nogeom.csv").write_text("a,b\n1,2\n")
        with pytest.raises(InputError, match=r"nogeom\.csv: no longitude column"):
            point_accuracy_files(tmp_path / "det.gpkg", tmp_path / "nogeom.csv")
        (tmp_path / "nan.csv").write_text("lon,lat\nx,y\n")
        with pytest.raises(EmptyInventoryError, match=r"nan\.csv"):
            point_accuracy_files(tmp_path / "det.gpkg", tmp_path / "nan.csv")
        csv = _write_csv(val, tmp_path / "val.csv")
        df = pd.read_csv(csv)
        df.loc[3, "label"] = "perhaps"
        df.to_csv(tmp_path / "badlabel.csv", index=False)
        with pytest.raises(InputError, match=r"^.*badlabel\.csv: label column 'label'"):
            point_accuracy_files(
                tmp_path / "det.gpkg", tmp_path / "badlabel.csv", label_column="label"
            )

    def test_untransformable_crs(self, tmp_path):
        det, _ = _qilian_scene()
        det.to_file(tmp_path / "det.gpkg")
        # a Mars geographic CRS cannot be transformed to Earth UTM
        mars = "+proj=longlat +a=3396190 +b=3376200 +no_defs +type=crs"
        pts = gpd.GeoDataFrame(geometry=[Point(10, 10)], crs=mars)
        pts.to_file(tmp_path / "mars.gpkg")
        with pytest.raises(CRSMismatchError, match=r"mars\.gpkg"):
            point_accuracy_files(tmp_path / "det.gpkg", tmp_path / "mars.gpkg")

    def test_empty_detections_file(self, tmp_path):
        det, val = _qilian_scene()
        det.iloc[:0].to_file(tmp_path / "empty.gpkg")
        rep = point_accuracy_files(tmp_path / "empty.gpkg", _write_csv(val, tmp_path / "v.csv"))
        assert (rep.tp, rep.fn) == (0, 15)


class TestPolygonAccuracy:
    def test_iou_matching(self):
        ref = gpd.GeoDataFrame(
            geometry=[box(0, 0, 100, 100), box(500, 0, 600, 100), box(1000, 0, 1100, 100)], crs=UTM
        )
        det = gpd.GeoDataFrame(
            geometry=[
                box(10, 0, 110, 100),  # IoU 90/110 = 0.818 -> match
                box(550, 0, 650, 100),  # IoU 50/150 = 0.333 -> no match
                box(5000, 0, 5100, 100),  # nothing
            ],
            crs=UTM,
        )
        rep = polygon_accuracy(det, ref)
        assert (rep.tp, rep.fp, rep.fn) == (1, 2, 2)
        assert rep.mean_iou == pytest.approx(90 / 110)
        d = rep.to_dict()
        assert d["precision"] == pytest.approx(1 / 3)
        assert d["recall"] == pytest.approx(1 / 3)
        assert polygon_accuracy(det, ref, iou_threshold=0.3).tp == 2

    def test_one_to_one(self):
        ref = gpd.GeoDataFrame(geometry=[box(0, 0, 100, 100)], crs=UTM)
        det = gpd.GeoDataFrame(geometry=[box(0, 0, 100, 100), box(1, 0, 100, 100)], crs=UTM)
        rep = polygon_accuracy(det, ref)
        assert (rep.tp, rep.fp, rep.fn) == (1, 1, 0)
        assert rep.mean_iou == pytest.approx(1.0)


# -- run scoring ----------------------------------------------------------------------------------


def _make_run(run_dir: Path, det: gpd.GeoDataFrame) -> None:
    n = len(det)
    cands = gpd.GeoDataFrame(
        {
            "candidate_id": [f"c{i:03d}" for i in range(n)],
            "iteration": [1 if i < n // 2 else 2 for i in range(n)],
            "detectors": ["insar_sbas" if i % 2 else "insar_sbas,optical_dl" for i in range(n)],
            "n_detectors": [1 if i % 2 else 2 for i in range(n)],
            "score": det["score"].to_numpy(),
            "status": ["confirmed"] * (n - 1) + ["rejected"],
            "probability": ["high"] * (n - 1) + [None],
            "evidence_json": ["{}"] * n,
            "series_json": [None] * n,
        },
        geometry=det.geometry.to_numpy(),
        crs=UTM,
    )
    with Ledger(run_dir, crs=UTM).transaction() as t:
        t.write("candidates", cands)


class TestRunAccuracy:
    def test_per_iteration_and_detector(self, tmp_path):
        det, val = _qilian_scene()
        _make_run(tmp_path / "run", det)
        csv = _write_csv(val, tmp_path / "val.csv")
        res = run_accuracy(tmp_path / "run", csv)
        # last candidate was rejected: its point becomes a miss in the reviewed result
        assert (res["overall"]["tp"], res["overall"]["fn"]) == (13, 2)
        assert (res["proposed"]["tp"], res["proposed"]["fn"]) == (14, 1)
        assert res["per_iteration"]["1"]["tp"] == 7
        assert res["per_iteration"]["2"]["tp"] == 13
        assert res["per_detector"]["optical_dl"]["tp"] == 7  # even ids 0..12
        assert res["per_detector"]["insar_sbas"]["tp"] == 13
        json.dumps(res)  # JSON-serialisable

    def test_not_a_run(self, tmp_path):
        _, val = _qilian_scene()
        with pytest.raises(InputError, match=r"no ledger\.gpkg"):
            run_accuracy(tmp_path, _write_csv(val, tmp_path / "v.csv"))


# -- real data ------------------------------------------------------------------------------------

DATA = SHARED_DATA
ARTS = DATA / "rts_inventories" / "arts_whrc"
NITZE = DATA / "rts_labeling_intercomparison_nitze2024" / "02_UserResults"


class TestRealInventories:
    def test_lewkowicz_points_vs_huang_banks_polygons(self):
        """Lewkowicz & Way 2019 Banks Island points (XLSX, WGS84) vs Huang et al. 2022 polygons
        (shapefile, UTM 10N). Only points inside the polygons' extent are validation points."""
        from thawdetect.core.vector import read_vector

        polys = read_vector(ARTS / "Huang2022_canadian_arctic" / "Banks_Island_slumps.shp")
        pts = read_vector(
            ARTS / "Lewkowicz2019_banks_island" / "41467_2019_9314_MOESM3_ESM.xlsx", crs=polys.crs
        )
        x0, y0, x1, y1 = polys.total_bounds
        pts = pts.cx[x0:x1, y0:y1]
        assert len(pts) > 100
        exact = point_accuracy(polys, pts)
        tol = point_accuracy(polys, pts, tolerance_m=100)
        # two independent inventories of one area: agreement is partial, never perfect
        assert 0.1 < exact.to_dict()["tpr"] < 0.9
        assert tol.tp >= exact.tp
        assert exact.n == exact.n_validation <= len(pts)
        # measured once (see docs/accuracy.md); guards against silent changes of the match rule
        assert (exact.tp, exact.n) == (157, 273)
        print(
            "\nLewkowicz vs Huang Banks:",
            exact.to_dict()["tp"],
            exact.n,
            exact.to_dict()["tpr"],
            "tol100:",
            tol.to_dict()["tpr"],
        )

    def test_nitze2024_expert_agreement(self):
        """Expert #01 against each other expert on Peel (IoU ≥ 0.5): a human ceiling."""
        from thawdetect.core.vector import read_vector

        me = read_vector(NITZE / "#01" / "Peel_digitized.shp")
        f1s, ious = [], []
        for other in sorted(NITZE.iterdir()):
            shp = other / "Peel_digitized.shp"
            if other.name == "#01" or not shp.exists():
                continue
            rep = polygon_accuracy(me, read_vector(shp))
            f1s.append(rep.to_dict()["f1"] or 0.0)
            if rep.mean_iou is not None:
                ious.append(rep.mean_iou)
        assert len(f1s) >= 10
        mean_f1 = float(np.mean(f1s))
        assert 0.2 < mean_f1 < 1.0
        assert len(ious) >= 10 and all(0.5 <= v <= 1.0 for v in ious)
        assert not math.isnan(mean_f1)
        # and against the union of all other experts' outlines (dissolved, split into parts)
        others = pd.concat(
            [
                read_vector(p / "Peel_digitized.shp", crs=me.crs)
                for p in sorted(NITZE.iterdir())
                if p.name != "#01" and (p / "Peel_digitized.shp").exists()
            ]
        )
        union = gpd.GeoDataFrame(geometry=[others.union_all()], crs=me.crs).explode(
            ignore_index=True
        )
        rep_u = polygon_accuracy(me, union)
        assert rep_u.tp >= 1
        print(f"vs union of others: F1 {rep_u.to_dict()['f1']:.3f}, IoU {rep_u.mean_iou}")
        print(
            f"\nNitze2024 Peel #01 vs others: mean F1 {mean_f1:.3f} "
            f"(range {min(f1s):.3f}-{max(f1s):.3f}), mean IoU {np.mean(ious):.3f}"
        )

    def test_polygon_files_shapefile(self):
        shp = NITZE / "#01" / "Peel_digitized.shp"
        rep = polygon_accuracy_files(shp, shp)
        assert rep.tp == rep.n_validation and rep.fp == 0 and rep.mean_iou == pytest.approx(1.0)
