"""One feature per landslide in the inventory (issue 20, item 5): the real engine and ledger.

A known point inside a confirmed outline becomes that outline (it keeps its known id and source);
a known polygon that a confirmed outline overlaps takes it in as "part of". The inventory, the
iterations table, ``inventory export`` and the run's accuracy all count each landslide once.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin
from shapely.geometry import Point
from tests.plugins import toy_detectors

from thawdetect.core.accuracy import score_run
from thawdetect.core.config import RunConfig
from thawdetect.core.inventory import export_inventory
from thawdetect.core.plugin_api.host import PluginHost
from thawdetect.core.regions import Region
from thawdetect.core.run.engine import Engine
from thawdetect.core.run.ledger import Ledger

CRS = "EPSG:32646"
RES = 10.0
ORIGIN = (400_000.0, 3_850_000.0)
BLOBS = [(20, 20), (20, 70), (70, 20), (70, 70)]  # row, col; disks of 5 px (50 m)


def _centre(r: int, c: int) -> Point:
    return Point(ORIGIN[0] + (c + 0.5) * RES, ORIGIN[1] - (r + 0.5) * RES)


@pytest.fixture
def scene(tmp_path: Path) -> dict:
    n = 100
    yy, xx = np.mgrid[0:n, 0:n]
    arr = np.random.default_rng(0).uniform(0, 0.2, (n, n))
    for r, c in BLOBS:
        arr[(yy - r) ** 2 + (xx - c) ** 2 <= 25] = 0.9
    raster = tmp_path / "a.tif"
    profile = dict(driver="GTiff", width=n, height=n, count=1, dtype="float32", crs=CRS,
                   transform=from_origin(*ORIGIN, RES, RES))  # fmt: skip
    with rasterio.open(raster, "w", **profile) as dst:
        dst.write(arr.astype("float32"), 1)
    c0, c1, c3 = (_centre(*BLOBS[i]) for i in (0, 1, 3))
    known = tmp_path / "known.geojson"
    gpd.GeoDataFrame(
        {"name": ["point near B0", "polygon beside B1", "point in B3"]},
        geometry=[
            Point(c0.x + 70, c0.y),  # outside the detected disk, inside a 90 m outline
            shapely.box(c1.x + 55, c1.y - 60, c1.x + 150, c1.y + 60),  # beside the disk
            c3,  # inside the detected disk: that candidate is known, never reviewed
        ],
        crs=CRS,
    ).to_file(known, driver="GeoJSON")
    validation = tmp_path / "validation.gpkg"
    gpd.GeoDataFrame(
        {"label": [1, 1, 1]}, geometry=[_centre(*BLOBS[i]) for i in range(3)], crs=CRS
    ).to_file(validation)
    return {"raster": raster, "known": known, "validation": validation}


def _config(scene: dict, reviewer: str) -> RunConfig:
    return RunConfig(
        region=Region(name="toy", crs=CRS),
        detectors={"toy_a": {"raster": str(scene["raster"]), "schedule": [0.8]}},
        reviewer=reviewer,
        known_inventory=str(scene["known"]),
        validation=str(scene["validation"]),
        evidence=False,
    )


def _host() -> PluginHost:
    return PluginHost(plugins=[("toy", toy_detectors)])


def _at(cands: gpd.GeoDataFrame, i: int) -> str:
    """The id of the candidate over blob ``i``."""
    hit = cands[cands.geometry.contains(_centre(*BLOBS[i]))]
    assert len(hit) == 1
    return str(hit["candidate_id"].iloc[0])


def test_manual_review_known_point_and_polygon_become_one_feature_each(
    scene: dict, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    first = Engine(_config(scene, "manual"), run, _host()).run()
    assert first.status == "awaiting review" and first.pending == 3  # B3 is known already
    ledger = Ledger(run)
    cands = ledger.read("candidates")
    b0, b1, b2 = (_at(cands, i) for i in range(3))
    c0, c1 = _centre(*BLOBS[0]), _centre(*BLOBS[1])
    around_b0 = c0.buffer(90.0)  # the reviewer's outline holds the known point
    over_k2 = shapely.box(c1.x - 50, c1.y - 60, c1.x + 120, c1.y + 60)  # overlaps the polygon
    with ledger.transaction() as t:
        t.record_decisions(
            pd.DataFrame(
                {
                    "candidate_id": [b0, b1, b2],
                    "decision": ["confirmed"] * 3,
                    "reviewer": "ana",
                    "geometry_wkt": [around_b0.wkt, over_k2.wkt, ""],
                }
            )
        )
    result = Engine(_config(scene, "manual"), run, _host()).run()
    assert result.status == "finished"
    inv = Ledger(run).read("inventory").set_index("inventory_id")
    # four landslides, four features: B0 and B1 joined their known features, B2 is new
    assert sorted(inv.index) == ["known-0001", "known-0002", "known-0003", "rts-01-0001"]
    assert result.iterations["inventory_size"].tolist() == [4]
    point = inv.loc["known-0001"]
    assert point["source"] == "known" and point["outline"] == "reviewed"
    assert point["candidate_id"] == b0 and point["detectors"] == "toy_a"
    assert point.geometry.equals_exact(around_b0, 1e-6)
    polygon = inv.loc["known-0002"]
    assert polygon["source"] == "known" and polygon["outline"] == "reviewed"
    assert b1 in polygon["merged_candidates"].split(",")
    assert polygon.geometry.equals_exact(over_k2, 1e-6)
    assert inv.loc["known-0003", "outline"] == "point"  # B3: never reviewed, still a point
    assert inv.loc["rts-01-0001", "candidate_id"] == b2
    # the confirmed outlines stay training positives
    pos = Ledger(run).read("positives")
    assert sorted(pos.loc[pos["source"] == "confirmed", "candidate_id"]) == sorted([b0, b1, b2])
    # the export counts each landslide once
    out = export_inventory(run, tmp_path / "inventory.gpkg")
    exported = gpd.read_file(out)
    assert len(exported) == 4
    assert exported.set_index("inventory_id").loc["known-0001", "outline"] == "reviewed"
    # accuracy: the joined features are the run's detections, dated by their candidates
    acc = json.loads((run / "accuracy.json").read_text())
    assert acc["excluded_in_known_inventory"] == 0  # validation points lie in no given feature
    assert (acc["overall"]["tp"], acc["overall"]["fn"], acc["overall"]["n_detections"]) == (3, 0, 3)
    assert acc["per_iteration"]["1"]["tp"] == 3
    assert acc["per_detector"]["toy_a"]["tp"] == 3
    assert score_run(run)["overall"] == acc["overall"]


def test_reference_review_does_not_count_a_known_point_twice(scene: dict, tmp_path: Path) -> None:
    """The issue's case: the reference reviewer confirms a detection with the landslide's own
    (larger) outline, which holds the known point the detector's outline missed."""
    reference = tmp_path / "reference.gpkg"
    gpd.GeoDataFrame(
        {"name": [f"s{i}" for i in range(len(BLOBS))]},
        geometry=[_centre(*b).buffer(90.0) for b in BLOBS],
        crs=CRS,
    ).to_file(reference)
    run = tmp_path / "run"
    result = Engine(_config(scene, f"reference:{reference}"), run, _host()).run()
    assert result.status == "finished"
    inv = Ledger(run).read("inventory")
    # B0 joins the known point; B1's reference outline is owned by the known polygon ("part
    # of", the reviewer's own rule); B2 new; B3 known: four features for four landslides
    assert len(inv) == 4, inv[["inventory_id", "candidate_id", "outline", "merged_candidates"]]
    k1 = inv.set_index("inventory_id").loc["known-0001"]
    assert k1.geometry.geom_type == "Polygon" and k1["outline"] == "reviewed"
    assert result.iterations["inventory_size"].tolist() == [4]
    assert result.accuracy is not None
    assert result.accuracy_scores.scores["overall"]["tp"] == 3
