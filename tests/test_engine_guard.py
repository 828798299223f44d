"""The core catches a detector gone wrong (issue 20, item 4): real rasters, ledger and review.

A deliberately bad detector (``tests/plugins/bad_detectors.py``) fuses every target of a scene
into one MultiPolygon around a known point. The engine must drop only the part that *is* the
known landslide, send every other target to review as its own candidate, and say so in one
warning line: in ``run.log``, the manifest and ``thawdetect status``.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from click.testing import CliRunner
from shapely.geometry import Point
from tests.plugins import bad_detectors
from tests.test_core_engine import CRS, ORIGIN, RES, _write

from thawdetect.cli.main import cli
from thawdetect.core.config import RunConfig
from thawdetect.core.plugin_api.host import PluginHost
from thawdetect.core.regions import Region
from thawdetect.core.run.engine import Engine
from thawdetect.core.run.guard import GuardLimits, screen_parts
from thawdetect.core.run.ledger import Ledger

N_PX = 200  # a 2 km x 2 km scene


def _scene(tmp_path: Path, spacing_px: int, n_rows: int = 3, n_cols: int = 4) -> dict:
    """Disks of radius 4 px on a grid; the truth outlines; one known point in the first."""
    yy, xx = np.mgrid[0:N_PX, 0:N_PX]
    arr = np.random.default_rng(1).uniform(0, 0.2, (N_PX, N_PX))
    truth, centres = [], []
    for i in range(n_rows):
        for j in range(n_cols):
            r, c = 20 + i * spacing_px, 20 + j * spacing_px
            arr[(yy - r) ** 2 + (xx - c) ** 2 <= 16] = 0.9
            x, y = ORIGIN[0] + (c + 0.5) * RES, ORIGIN[1] - (r + 0.5) * RES
            centres.append(Point(x, y))
            truth.append(Point(x, y).buffer(45.0))
    raster = _write(tmp_path / "scene.tif", arr)
    ref = tmp_path / "truth.gpkg"
    gpd.GeoDataFrame({"name": [f"t{i}" for i in range(len(truth))]}, geometry=truth,
                     crs=CRS).to_file(ref)  # fmt: skip
    known = tmp_path / "known.gpkg"
    gpd.GeoDataFrame({"name": ["k0"]}, geometry=[centres[0]], crs=CRS).to_file(known)
    return {"raster": raster, "ref": ref, "known": known, "truth": truth}


def _run(scene: dict, tmp_path: Path, detector: str = "bad_fused", **kw) -> Path:
    cfg = RunConfig(
        region=Region(name="guard", crs=CRS),
        detectors={detector: {"raster": str(scene["raster"])}},
        reviewer=f"reference:{scene['ref']}",
        known_inventory=str(scene["known"]),
        evidence=False,
        **kw,
    )
    lines: list[str] = []
    run = tmp_path / "run"
    result = Engine(cfg, run, PluginHost(plugins=[("bad", bad_detectors)]), echo=lines.append).run()
    assert result.status == "finished"
    (tmp_path / "console.txt").write_text("\n".join(lines))
    return run


def _status(run: Path) -> str:
    result = CliRunner().invoke(cli, ["status", str(run)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_fused_multipolygon_every_unknown_target_reaches_review(tmp_path: Path) -> None:
    scene = _scene(tmp_path, spacing_px=45)  # 450 m apart: separate landslides
    run = _run(scene, tmp_path)
    ledger = Ledger(run)
    proposals = ledger.read("proposals")
    assert len(proposals) == 1 and len(shapely.get_parts(proposals.geometry.iloc[0])) == 12
    cands = ledger.read("candidates")
    # the known target's part dropped, the other 11 reviewed, each its own candidate
    assert len(cands) == 11
    assert all(c.startswith("it01-0001-p") for c in cands["candidate_id"])
    assert set(cands["split_from"]) == {"it01-0001"}
    assert (cands["bad_fused__n_regions"] == 12).all()  # the detector's evidence kept
    assert set(cands["status"]) == {"confirmed"}
    truth = gpd.GeoSeries(scene["truth"], crs=CRS)
    hits = cands.sindex.query(truth, predicate="intersects")
    per_target = np.bincount(hits[0], minlength=len(truth))
    assert per_target.tolist() == [0] + [1] * 11
    # one feature per landslide: the known point and 11 confirmed outlines
    inv = ledger.read("inventory")
    assert len(inv) == 12
    assert ledger.read("iterations")["inventory_size"].tolist() == [12]
    # the warning: one line naming the detector and the figures, in run.log and the manifest
    log = (run / "run.log").read_text()
    warned = [ln for ln in log.splitlines() if " WARNING " in ln and "bad_fused:" in ln]
    assert len(warned) == 1, log
    assert "candidate it01-0001 has 12 parts spanning 1.7 km" in warned[0]
    assert "parts more than 300 m apart" in warned[0]
    assert warned[0].endswith("split into 11 candidates (1 part already known)")
    assert "warning: bad_fused: candidate it01-0001" in (tmp_path / "console.txt").read_text()
    manifest = json.loads((run / "manifest.json").read_text())
    [record] = manifest["warnings"]
    assert record["iteration"] == 1 and record["detectors"] == "bad_fused"
    assert record["n_parts"] == 12 and warned[0].endswith(record["message"])
    # thawdetect status shows it beside the detector's figures
    out = _status(run)
    assert "guard" in out
    assert "it01-0001: 12 parts, 1.7 km, 6 ha; split into 11 candidates" in " ".join(out.split())


def test_close_parts_around_a_known_point_split_without_warning(tmp_path: Path) -> None:
    """Parts within max_part_gap_m of each other and a plausible size: one landslide in the
    detector's view, not a fault; still only the known part is dropped unreviewed."""
    scene = _scene(tmp_path, spacing_px=12, n_rows=2, n_cols=3)  # 120 m apart
    run = _run(scene, tmp_path)
    ledger = Ledger(run)
    cands = ledger.read("candidates")
    assert len(cands) == 5 and set(cands["split_from"]) == {"it01-0001"}
    assert set(cands["status"]) == {"confirmed"}
    log = (run / "run.log").read_text()
    assert " WARNING " not in log
    assert "1 split into parts: 1 known parts dropped" in log
    assert "guard" not in _status(run)
    assert len(ledger.read("inventory")) == 6


def test_a_single_blanket_over_a_known_point_is_flagged_not_dropped(tmp_path: Path) -> None:
    scene = _scene(tmp_path, spacing_px=45)
    run = _run(scene, tmp_path, detector="bad_blanket")
    cands = Ledger(run).read("candidates")
    assert cands["candidate_id"].tolist() == ["it01-0001"]  # reviewed, not "already seen"
    assert cands["status"].iloc[0] != "pending"
    log = (run / "run.log").read_text()
    [line] = [ln for ln in log.splitlines() if " WARNING " in ln]
    assert "bad_blanket: candidate it01-0001 has 1 part spanning 2.5 km, 324.0 ha" in line
    assert "area over 100 ha" in line
    assert line.endswith("kept whole for review (one part: cannot be split)")


def test_region_share_and_limits_from_the_config(tmp_path: Path) -> None:
    """A region with an AOI: the share of the region is a figure; limits come from the YAML."""
    scene = _scene(tmp_path, spacing_px=45)
    square = shapely.box(ORIGIN[0], ORIGIN[1] - 2000, ORIGIN[0] + 2000, ORIGIN[1])
    west, south, east, north = gpd.GeoSeries([square], crs=CRS).to_crs(4326).total_bounds
    cfg = RunConfig(
        region=Region(name="guard", crs=CRS, bbox_wgs84=(west, south, east, north)),
        detectors={"bad_fused": {"raster": str(scene["raster"])}},
        reviewer=f"reference:{scene['ref']}",
        known_inventory=str(scene["known"]),
        evidence=False,
        max_part_gap_m=1000.0,  # 450 m apart is now one landslide's parts...
        max_region_share=0.001,  # ...but 6 ha is more than 0.1 % of a 4 km² region
    )
    run = tmp_path / "run"
    Engine(cfg, run, PluginHost(plugins=[("bad", bad_detectors)])).run()
    [record] = json.loads((run / "manifest.json").read_text())["warnings"]
    assert "% of the region" in record["message"]
    assert "over 0.1 % of the region" in record["message"]
    assert "parts more than" not in record["message"]


@pytest.mark.parametrize("n_parts", [1, 5])
def test_screen_parts_plain_candidates_unchanged(n_parts: int) -> None:
    """Plausible candidates without known parts keep their outline and numbering."""
    parts = [shapely.box(100 * i, 0, 100 * i + 40, 40) for i in range(n_parts)]
    merged = gpd.GeoDataFrame(
        {"detectors": ["d", "d"], "n_detectors": [1, 1], "score": [0.2, 0.9],
         "evidence_json": ["{}", "{}"], "series_json": [None, None]},
        geometry=[shapely.MultiPolygon(parts) if n_parts > 1 else parts[0],
                  shapely.box(0, 500, 50, 550)],
        crs=CRS,
    )  # fmt: skip
    seen = gpd.GeoDataFrame(geometry=gpd.GeoSeries([], crs=CRS), crs=CRS)
    got = screen_parts(merged, seen, 2, duplicate_overlap=0.5, min_mapping_unit_ha=0.05,
                       limits=GuardLimits())  # fmt: skip
    assert got.candidates["candidate_id"].tolist() == ["it02-0001", "it02-0002"]
    assert got.candidates.geometry.iloc[1].equals(merged.geometry.iloc[0])
    assert "split_from" not in got.candidates.columns
    assert (got.n_seen, got.n_split, got.warnings) == (0, 0, [])


def test_a_smaller_outline_inside_rejected_ground_goes_to_review():
    """Rejected ground drops only the same ground again; a more specific outline inside it (a
    landslide inside a rejected patch of creep) is new, while a known landslide stays known."""
    from shapely.geometry import box

    from thawdetect.core.run.guard import screen_parts
    from thawdetect.core.run.merge import merge_candidates

    crs = "EPSG:32647"
    proposals = gpd.GeoDataFrame(
        {"detector": ["a", "b", "a"], "score": [0.9, 0.8, 0.7]},
        geometry=[box(100, 100, 160, 160), box(0, 0, 1000, 1000), box(2000, 0, 2100, 100)],
        crs=crs,
    )
    import pandas as pd

    parts = [
        merge_candidates(proposals.iloc[[0, 2]], crs),
        merge_candidates(proposals.iloc[[1]], crs),
    ]
    merged = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=crs)
    rejected = gpd.GeoDataFrame(geometry=[box(0, 0, 1000, 1000)], crs=crs)
    seen = gpd.GeoDataFrame(geometry=[box(2000, 0, 2060, 100)], crs=crs)  # a confirmed one
    out = screen_parts(
        merged, seen, 3, duplicate_overlap=0.5, min_mapping_unit_ha=0.05, rejected=rejected
    ).candidates
    areas = sorted(round(a) for a in out.geometry.area)
    assert areas == [3600]  # the small one inside rejected ground; the same ground and the
    # candidate overlapping a confirmed one by more than half of the smaller are dropped


def test_new_ground_joined_to_a_mapped_neighbour_goes_to_review():
    """A delineation that joins a new landslide to its already confirmed neighbour goes to
    review whole (the reviewer may call it part of the neighbour or confirm the new one);
    a candidate that is mostly known ground stays known."""
    import pandas as pd
    from shapely.geometry import box

    from thawdetect.core.run.guard import screen_parts
    from thawdetect.core.run.merge import merge_candidates

    crs = "EPSG:32647"
    known = box(0, 0, 100, 100)  # confirmed earlier (1 ha)
    props = gpd.GeoDataFrame(
        {"detector": ["a", "a"], "score": [0.9, 0.8]},
        geometry=[box(0, 0, 300, 100), box(1000, 0, 1120, 100)],  # 2 ha new + known; 1.2 ha
        crs=crs,
    )
    merged = gpd.GeoDataFrame(
        pd.concat([merge_candidates(props.iloc[[i]], crs) for i in (0, 1)], ignore_index=True),
        crs=crs,
    )
    seen = gpd.GeoDataFrame(geometry=[known, box(1000, 0, 1100, 100)], crs=crs)
    out = screen_parts(merged, seen, 2, duplicate_overlap=0.5, min_mapping_unit_ha=0.05).candidates
    assert len(out) == 1  # the second is mostly known ground (1 of 1.2 ha): known
    assert out.geometry.iloc[0].area == pytest.approx(30000.0)  # whole, known part included


def test_ground_past_a_reviewed_outline_is_not_known(tmp_path: Path) -> None:
    """An outline that runs from one landslide into its neighbour: the reviewer maps one (with
    its own outline); the next iteration's same outline is mostly ground no one mapped, so it
    goes to review again and the neighbour is mapped too. Nothing is counted twice."""
    scene = _scene(tmp_path, spacing_px=12, n_rows=1, n_cols=4)  # 120 m apart, edge gap 30 m
    run = _run(scene, tmp_path, detector="bad_reach")
    ledger = Ledger(run)
    cands = ledger.read("candidates").sort_values("candidate_id")
    assert cands["candidate_id"].tolist() == ["it01-0001", "it02-0001"]
    assert cands["status"].tolist() == ["confirmed", "confirmed"]
    notes = ledger.read("decisions").sort_values("candidate_id")["note"].tolist()
    assert notes == ["reference match: id=t1", "reference match: id=t2"]
    inv = ledger.read("inventory")
    assert len(inv) == 3  # the known point (t0), t1 and t2: one feature each
    truth = gpd.GeoSeries(scene["truth"], crs=CRS)
    polys = inv[inv.geom_type != "Point"]
    assert sorted(truth.index[truth.intersects(g.representative_point())][0]
                  for g in polys.geometry) == [1, 2]  # fmt: skip


def test_a_reviewer_may_leave_candidates_to_a_person(tmp_path: Path) -> None:
    """Reference first, a person for the rest: a partial reference confirms what it holds, the
    run stops awaiting review with the others pending; once a person decided them the run goes
    on and every confirmed one is in the inventory."""
    from thawdetect.core.review.decisions import decide

    scene = _scene(tmp_path, spacing_px=45, n_rows=1, n_cols=4)
    partial = tmp_path / "partial.gpkg"  # the published inventory holds t1 and t2 only
    gpd.read_file(scene["ref"]).iloc[[1, 2]].to_file(partial)
    cfg = RunConfig(
        region=Region(name="guard", crs=CRS),
        detectors={"toy_a": {"raster": str(scene["raster"]), "schedule": [0.5]}},
        reviewer=f"reference:{partial}?unmatched=manual",
        evidence=False,
    )
    from tests.plugins import toy_detectors

    run = tmp_path / "run"
    lines: list[str] = []

    def engine() -> Engine:
        return Engine(cfg, run, PluginHost(plugins=[("toy", toy_detectors)]), echo=lines.append)

    first = engine().run()
    assert first.status == "awaiting review"
    cands = Ledger(run).read("candidates").sort_values("candidate_id")
    assert sorted(cands["status"]) == ["confirmed", "confirmed", "pending", "pending"]
    assert any("left 2 of 4 candidates to a person" in ln for ln in lines)
    # a second run before the person decided: still waiting, nothing decided twice
    assert engine().run().status == "awaiting review"
    assert len(Ledger(run).read("decisions")) == 2
    pending = cands.loc[cands["status"] == "pending", "candidate_id"].tolist()
    decide(run, pending[0], "confirmed", probability="medium", reviewer="ann")
    decide(run, pending[1], "rejected", reviewer="ann")
    done = engine().run()
    assert done.status == "finished"
    inv = Ledger(run).read("inventory")
    assert len(inv) == 3
