"""Inventory export of a reviewed run: QTEC fields, near-road flag, GPKG/GeoJSON/CSV and ARTS."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
from shapely.geometry import LineString, box
from tests.conftest import SHARED_DATA

from thawdetect.core.errors import InputError
from thawdetect.core.inventory import ARTS_FIELDS, export_inventory, inventory_frame
from thawdetect.core.review.decisions import decide
from thawdetect.core.run.ledger import Ledger

UTM = "EPSG:32646"  # QTEC, Beiluhe
DATA = SHARED_DATA
ARTS_META = DATA / "rts_inventories" / "arts_whrc" / "Metadata_Format_Summary.csv"
X0, Y0 = 470_000.0, 3_882_000.0


def reviewed_run(run_dir: Path, *, engine_inventory: bool) -> Path:
    """Four candidates, three confirmed with probabilities by a reviewer, one rejected."""
    n = 4
    ev = [{"insar_sbas": {"mean_rate_mm_yr": -50.0 - i}} for i in range(n)]
    ev[0]["optical_dl"] = {"probability_mean": 0.91, "initiation_period": "2016-2017"}
    cands = gpd.GeoDataFrame(
        {
            "candidate_id": [f"it01-{i + 1:04d}" for i in range(n)],
            "iteration": [1, 1, 2, 2],
            "detectors": ["insar_sbas,optical_dl", "insar_sbas", "insar_sbas", "insar_sbas"],
            "n_detectors": [2, 1, 1, 1],
            "score": [0.9, 0.8, 0.7, 0.6],
            "status": ["pending"] * n,
            "probability": [None] * n,
            "evidence_json": [json.dumps(e) for e in ev],
            "series_json": [None] * n,
            "insar_sbas__mean_rate_mm_yr": [-50.0 - i for i in range(n)],
            "optical_dl__probability_mean": [0.91, None, None, None],
            "optical_dl__initiation_period": ["2016-2017", None, None, None],
        },
        # 100 m x 200 m = 2 ha, perimeter 600 m; spaced 2 km apart along x
        geometry=[box(X0 + 2000 * i, Y0, X0 + 2000 * i + 100, Y0 + 200) for i in range(n)],
        crs=UTM,
    )
    with Ledger(run_dir, crs=UTM).transaction() as t:
        t.write("candidates", cands)
    decide(run_dir, ["it01-0001"], "confirmed", probability="high", reviewer="ann")
    decide(run_dir, ["it01-0002"], "confirmed", probability="medium", reviewer="ann")
    decide(run_dir, ["it01-0003"], "confirmed", probability="low", reviewer="ann")
    decide(run_dir, ["it01-0004"], "rejected", reviewer="ann")
    if engine_inventory:  # what the engine's update stage writes
        c = Ledger(run_dir).read("candidates")
        conf = c[c["status"] == "confirmed"]
        inv = conf.drop(columns=["status", "iteration"]).copy()
        inv.insert(0, "inventory_id", [f"rts-01-{i + 1:04d}" for i in range(len(inv))])
        inv["source"] = "confirmed"
        inv["iteration"] = conf["iteration"].to_numpy()
        with Ledger(run_dir).transaction() as t:
            t.write("inventory", inv)
    return run_dir


def roads_file(tmp_path: Path) -> Path:
    # a road 300 m north of the first slump's centroid line, ending before the third one
    line = LineString([(X0 - 500, Y0 + 400), (X0 + 2500, Y0 + 400)])
    path = tmp_path / "roads.geojson"
    gpd.GeoDataFrame({"name": ["G109"]}, geometry=[line], crs=UTM).to_crs(4326).to_file(path)
    return path


@pytest.mark.parametrize("engine_inventory", [True, False])
def test_inventory_frame_fields(tmp_path, engine_inventory):
    run = reviewed_run(tmp_path / "run", engine_inventory=engine_inventory)
    inv = inventory_frame(run, roads=roads_file(tmp_path))
    assert len(inv) == 3
    assert inv["probability"].tolist() == ["high", "medium", "low"]
    np.testing.assert_allclose(inv["area_ha"], 2.0)
    np.testing.assert_allclose(inv["perimeter_m"], 600.0)
    # centroid of the first slump, transformed independently
    c = gpd.GeoSeries([box(X0, Y0, X0 + 100, Y0 + 200).centroid], crs=UTM).to_crs(4326)
    assert inv.loc[0, "centroid_lon"] == pytest.approx(c.x[0], abs=1e-6)
    assert inv.loc[0, "centroid_lat"] == pytest.approx(c.y[0], abs=1e-6)
    assert 92 < inv.loc[0, "centroid_lon"] < 93 and 35 < inv.loc[0, "centroid_lat"] < 35.2
    np.testing.assert_allclose(inv.loc[:1, "road_distance_m"], 300.0, atol=0.5)
    assert inv["near_road"].tolist() == [True, True, False]
    assert inv.loc[0, "initiation_period"] == "2016-2017"
    assert inv.loc[1, "initiation_period"] is None
    assert inv["insar_sbas__mean_rate_mm_yr"].tolist() == [-50.0, -51.0, -52.0]
    assert inv.loc[0, "optical_dl__probability_mean"] == pytest.approx(0.91)
    # a stricter threshold flips the flag
    strict = inventory_frame(run, roads=roads_file(tmp_path), near_road_m=250)
    assert not strict["near_road"].any()


def test_no_roads_leaves_flag_empty(tmp_path):
    run = reviewed_run(tmp_path / "run", engine_inventory=True)
    inv = inventory_frame(run)
    assert inv["near_road"].isna().all() and inv["road_distance_m"].isna().all()


class TestExport:
    def test_gpkg_geojson_csv(self, tmp_path):
        run = reviewed_run(tmp_path / "run", engine_inventory=True)
        roads = roads_file(tmp_path)
        g = export_inventory(run, tmp_path / "out" / "inv.gpkg", roads=roads)
        gdf = gpd.read_file(g, layer="inventory")
        assert gdf.crs == UTM and len(gdf) == 3
        for col in (
            "inventory_id",
            "centroid_lon",
            "centroid_lat",
            "area_ha",
            "perimeter_m",
            "probability",
            "initiation_period",
            "near_road",
            "road_distance_m",
            "insar_sbas__mean_rate_mm_yr",
            "optical_dl__probability_mean",
        ):
            assert col in gdf.columns, col
        assert gdf["near_road"].astype(bool).tolist() == [True, True, False]
        j = export_inventory(run, tmp_path / "inv.geojson", roads=roads)
        gj = json.loads(j.read_text())
        assert len(gj["features"]) == 3
        lon, lat = gj["features"][0]["geometry"]["coordinates"][0][0][:2]
        assert 92 < lon < 93 and 35 < lat < 35.2  # WGS84
        assert gj["features"][0]["properties"]["probability"] == "high"
        c = export_inventory(run, tmp_path / "inv.csv", roads=roads)
        df = pd.read_csv(c)
        assert len(df) == 3 and df["geometry_wkt"].str.startswith("POLYGON").all()
        assert df["area_ha"].round(6).tolist() == [2.0, 2.0, 2.0]

    def test_arts_export_holds_every_field(self, tmp_path):
        run = reviewed_run(tmp_path / "run", engine_inventory=True)
        out = export_inventory(
            run,
            tmp_path / "arts.gpkg",
            roads=roads_file(tmp_path),
            arts=True,
            arts_fields={
                "BaseMapDate": "2020-07-05",
                "BaseMapResolution": 10,
                "RegionName": "Beiluhe, Qinghai-Tibet Plateau",
            },
        )
        gdf = gpd.read_file(out)
        standard = pd.read_csv(ARTS_META)["FieldName"].tolist()
        assert list(gdf.columns[: len(standard)]) == standard == list(ARTS_FIELDS)
        assert (gdf["TrainClass"] == "Positive").all() and (gdf["LabelType"] == "Polygon").all()
        assert (gdf["RegionName"] == "Beiluhe, Qinghai-Tibet Plateau").all()
        assert gdf["UID"].str.len().eq(36).all() and gdf["UID"].is_unique
        np.testing.assert_allclose(gdf["Area"], 20_000.0)
        assert gdf["CentroidLat"].map(lambda v: round(v, 5) == v).all()
        # the thawdetect fields ride along
        assert {
            "probability",
            "near_road",
            "initiation_period",
            "area_ha",
            "insar_sbas__mean_rate_mm_yr",
        } <= set(gdf.columns)

    def test_empty_inventory(self, tmp_path):
        run = tmp_path / "run"
        with Ledger(run, crs=UTM).transaction() as t:
            t.write(
                "candidates",
                gpd.GeoDataFrame(
                    {"candidate_id": [], "status": [], "iteration": []},
                    geometry=gpd.GeoSeries([], crs=UTM),
                    crs=UTM,
                ),
            )
        out = export_inventory(run, tmp_path / "empty.gpkg")
        assert len(pyogrio.read_dataframe(out)) == 0

    def test_bad_inputs(self, tmp_path):
        run = reviewed_run(tmp_path / "run", engine_inventory=True)
        with pytest.raises(InputError, match=r"unknown inventory format '\.shp'"):
            export_inventory(run, tmp_path / "x.shp")
        with pytest.raises(InputError, match="no ledger"):
            export_inventory(tmp_path, tmp_path / "x.gpkg")
        with pytest.raises(InputError, match=r"nothere\.gpkg: roads file does not exist"):
            export_inventory(run, tmp_path / "x.gpkg", roads=tmp_path / "nothere.gpkg")
        with pytest.raises(InputError, match="not ARTS fields"):
            export_inventory(run, tmp_path / "x.gpkg", arts=True, arts_fields={"Colour": "red"})
        assert not (tmp_path / "x.gpkg").exists()
        assert not list(tmp_path.glob(".x*"))  # no temp file left behind
