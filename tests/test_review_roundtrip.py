"""The review model end to end on a real run: QGIS round trip with an edited outline and a
"part of" decision, undo, idempotent re-import, point known inventories, TP inside a reviewed
outline at tolerance 0, reviewer kept on resume."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
import shapely
from shapely.geometry import Point, box
from tests.test_core_engine import CRS, ORIGIN, RES, _config, _host, scene  # noqa: F401

from thawdetect.core.accuracy import run_accuracy
from thawdetect.core.errors import InputError
from thawdetect.core.review.decisions import (
    decide,
    history,
    review_queue,
    undo_last_decision,
)
from thawdetect.core.review.qgis import export_for_qgis, import_from_qgis
from thawdetect.core.run.engine import Engine
from thawdetect.core.run.ledger import Ledger


def _xy(row: float, col: float) -> tuple[float, float]:
    return ORIGIN[0] + (col + 0.5) * RES, ORIGIN[1] - (row + 0.5) * RES


def _manual_run(data: dict[str, Path], run: Path, **kw) -> tuple[Engine, list[str]]:
    cfg = _config(data, **kw).model_copy(update={"reviewer": "manual"})
    result = Engine(cfg, run, _host()).run()
    assert result.status == "awaiting review"
    ids = review_queue(run)["candidate_id"].tolist()
    return cfg, ids


def _by_blob(run: Path) -> dict[str, str]:
    """candidate id of the blob at (20,20), (20,70) and (90,90)."""
    cands = Ledger(run).read("candidates")
    out = {}
    for name, (r, c) in {"b1": (20, 20), "b2": (20, 70), "b6": (90, 90)}.items():
        hit = cands[cands.geometry.contains(Point(*_xy(r, c)))]
        out[name] = hit["candidate_id"].item()
    return out


def test_qgis_round_trip_edited_outline_and_part_of(scene, tmp_path):  # noqa: F811
    run = tmp_path / "run"
    cfg, _ = _manual_run(scene, run)
    ids = _by_blob(run)
    detector_b1 = Ledger(run).read("candidates").set_index("candidate_id").geometry[ids["b1"]]
    edit = export_for_qgis(run, tmp_path / "review.gpkg")
    assert "inventory" not in {n for n, _ in pyogrio.list_layers(edit)}  # nothing mapped yet
    # what a reviewer does in QGIS: redraw b1 larger (a toe the detector missed), say b2 is
    # part of b1 (a fragment), reject b6
    df = gpd.read_file(edit, layer="review")
    # the page's order travels with the layer: QGIS sorts its attribute table by review_rank
    from thawdetect.core.review.decisions import review_queue

    assert df["review_rank"].tolist() == list(range(1, len(df) + 1))
    assert df["candidate_id"].tolist() == review_queue(run)["candidate_id"].tolist()
    assert df["review_priority"].between(0, 1).all()
    x, y = _xy(20, 20)
    redrawn = box(x - 60, y - 60, x + 90, y + 60)
    df.loc[df["candidate_id"] == ids["b1"], "geometry"] = redrawn
    df.loc[df["candidate_id"] == ids["b1"], ["decision", "probability"]] = ["confirmed", "high"]
    df.loc[df["candidate_id"] == ids["b2"], ["decision", "part_of"]] = ["part_of", ids["b1"]]
    df.loc[df["candidate_id"] == ids["b6"], "decision"] = "rejected"
    pyogrio.write_dataframe(df, edit, layer="review")
    applied = import_from_qgis(run, edit, reviewer="ann")
    assert sorted(applied["decision"]) == ["confirmed", "part_of", "rejected"]
    stored = shapely.from_wkt(
        applied.loc[applied["candidate_id"] == ids["b1"], "geometry_wkt"].item()
    )
    assert stored.equals(redrawn)
    # the same file again (or after a kill between commit and exit): nothing new
    assert len(import_from_qgis(run, edit, reviewer="ann")) == 0
    assert len(history(run)) == 3
    # resume without --reviewer: stays manual (iteration 2 waits), inventory is reviewed
    resumed = Engine(cfg.model_copy(update={"reviewer": None}), run, _host()).run()
    assert resumed.status == "awaiting review"
    ledger = Ledger(run)
    inv = ledger.read("inventory")
    assert len(inv) == 1
    feat = inv.iloc[0]
    assert feat["candidate_id"] == ids["b1"] and feat["merged_candidates"] == ids["b2"]
    b2 = ledger.read("candidates").set_index("candidate_id").geometry[ids["b2"]]
    assert feat.geometry.equals(shapely.union(redrawn, b2))
    assert feat["outline"] == "reviewed+union"
    # the candidate keeps the detector outline; the fragment is no negative
    cands = ledger.read("candidates").set_index("candidate_id")
    assert cands.geometry[ids["b1"]].equals(detector_b1)
    neg = ledger.read("negatives")
    assert neg["candidate_id"].tolist() == [ids["b6"]]
    pos = ledger.read("positives")
    assert ids["b2"] in set(pos.loc[pos["source"] == "part_of", "candidate_id"])
    # a validation point in the redrawn toe (outside the detector outline) is a TP at 0 m
    toe = Point(x + 80, y)
    assert not detector_b1.buffer(1).contains(toe)
    val = tmp_path / "val.gpkg"
    gpd.GeoDataFrame({"label": [1]}, geometry=[toe], crs=CRS).to_file(val)
    acc = run_accuracy(run, val, tolerance_m=0)
    assert acc["overall"]["tp"] == 1 and acc["overall"]["fn"] == 0


def test_bad_outlines_and_targets_apply_nothing(scene, tmp_path):  # noqa: F811
    run = tmp_path / "run"
    _manual_run(scene, run)
    ids = _by_blob(run)
    x, y = _xy(20, 20)
    bowtie = shapely.Polygon([(x, y), (x + 50, y + 50), (x + 50, y), (x, y + 50)])
    cases = [
        (bowtie, "is invalid"),
        (shapely.Polygon(), "is empty"),
        (Point(x, y), "is a Point, not a polygon"),
        (box(x + 5000, y, x + 5100, y + 100), "lies 4,9"),
    ]
    for geom, msg in cases:
        with pytest.raises(InputError, match=f"candidate {ids['b1']}: reviewed outline {msg}"):
            decide(run, ids["b1"], "confirmed", geometry=geom)
    with pytest.raises(InputError, match=f"candidate {ids['b2']}: 'part of' target 'rts-9'"):
        decide(run, ids["b2"], "part_of", part_of="rts-9")
    with pytest.raises(InputError, match="needs a target"):
        decide(run, ids["b2"], "part_of")
    # a GeoPackage row with a far outline: the whole import is refused
    edit = export_for_qgis(run, tmp_path / "review.gpkg")
    df = gpd.read_file(edit, layer="review")
    df.loc[df["candidate_id"] == ids["b6"], "decision"] = "rejected"
    df.loc[df["candidate_id"] == ids["b1"], "decision"] = "confirmed"
    df.loc[df["candidate_id"] == ids["b1"], "geometry"] = box(0, 0, 10, 10)
    pyogrio.write_dataframe(df, edit, layer="review")
    with pytest.raises(InputError, match=f"candidate {ids['b1']}: reviewed outline lies"):
        import_from_qgis(run, edit)
    assert len(history(run)) == 0


def test_outline_file_without_prj_in_another_crs(scene, tmp_path):  # noqa: F811
    from click.testing import CliRunner

    from thawdetect.cli.main import cli

    run = tmp_path / "run"
    _manual_run(scene, run)
    ids = _by_blob(run)
    x, y = _xy(20, 20)
    outline = gpd.GeoDataFrame(geometry=[box(x - 60, y - 60, x + 60, y + 60)], crs=CRS)
    outline.to_crs(4326).to_file(tmp_path / "ll.shp")
    (tmp_path / "ll.prj").unlink()  # degrees without a .prj
    res = CliRunner().invoke(
        cli, ["review", "decide", str(run), ids["b1"], "confirmed", "-g", str(tmp_path / "ll.shp")]
    )
    assert res.exit_code == 1
    line = res.output.strip().splitlines()[-1]
    assert f"ll.shp: candidate {ids['b1']}: reviewed outline lies" in line
    assert "no CRS" in line
    outline.to_file(tmp_path / "ok.gpkg")
    res = CliRunner().invoke(
        cli, ["review", "decide", str(run), ids["b1"], "confirmed", "-g", str(tmp_path / "ok.gpkg")]
    )
    assert res.exit_code == 0, res.output
    assert "with the reviewed outline" in res.output
    stored = shapely.from_wkt(history(run)["geometry_wkt"].iloc[-1])
    assert stored.equals(outline.geometry.iloc[0])


def test_undo_returns_previous_state(scene, tmp_path):  # noqa: F811
    run = tmp_path / "run"
    _manual_run(scene, run)
    ids = _by_blob(run)
    decide(run, ids["b1"], "unsure", reviewer="ann")
    decide(run, ids["b1"], "confirmed", probability="high", reviewer="ann")
    decide(run, ids["b2"], "rejected", reviewer="bob")
    undo = undo_last_decision(run, reviewer="ann")
    assert undo["candidate_id"].tolist() == [ids["b1"]]
    q = review_queue(run, status=None).set_index("candidate_id")
    assert q.loc[ids["b1"], "status"] == "unsure" and q.loc[ids["b2"], "status"] == "rejected"
    undo_last_decision(run, reviewer="ann")
    assert review_queue(run, status=None).set_index("candidate_id").loc[ids["b1"], "status"] == (
        "pending"
    )
    assert undo_last_decision(run, reviewer="ann") is None
    h = history(run)
    assert (h["decision"] == "undo").sum() == 2 and len(h) == 5


def test_point_known_inventory(scene, tmp_path):  # noqa: F811
    known = tmp_path / "known.gpkg"
    # one known point inside blob (20,70): that candidate is already known
    gpd.GeoDataFrame(geometry=[Point(*_xy(20, 70))], crs=CRS).to_file(known)
    lines: list[str] = []
    cfg = _config(scene).model_copy(update={"known_inventory": known})
    result = Engine(cfg, tmp_path / "run", _host(), echo=lines.append).run()
    assert result.status == "finished"
    said = "\n".join(lines)
    assert "1 features read (0 polygons, 1 points)" in said
    assert "1 features used (0 polygons, 1 points)" in said
    ledger = Ledger(tmp_path / "run")
    cands = ledger.read("candidates")
    assert not cands.geometry.contains(Point(*_xy(20, 70))).any()  # dropped as already known
    inv = ledger.read("inventory")
    assert (inv["source"] == "known").sum() == 1 and inv.geom_type.iloc[0] == "Point"
    pos = ledger.read("positives")
    assert (pos.geom_type == "Point").sum() == 1


def test_line_known_inventory_is_one_line_error(scene, tmp_path):  # noqa: F811
    known = tmp_path / "roads.gpkg"
    gpd.GeoDataFrame(geometry=[shapely.LineString([_xy(0, 0), _xy(10, 10)])], crs=CRS).to_file(
        known
    )
    cfg = _config(scene).model_copy(update={"known_inventory": known})
    with pytest.raises(InputError, match=r"roads\.gpkg: known inventory holds 1 LineString"):
        Engine(cfg, tmp_path / "run", _host()).run()


def test_reference_reviewer_outline_and_tp_at_zero_tolerance(scene, tmp_path):  # noqa: F811
    # a reference inventory drawn 30 m wider than the rate anomaly, as a person would map it
    truth = gpd.read_file(scene["ref"])
    wide = truth.copy()
    wide["geometry"] = truth.buffer(30)
    ref = tmp_path / "wide.gpkg"
    wide.to_file(ref)
    x, y = _xy(20, 20)
    val = tmp_path / "val.gpkg"
    gpd.GeoDataFrame({"label": [1]}, geometry=[Point(x + 70, y)], crs=CRS).to_file(val)
    scores = {}
    for outline in ("reference", "detector"):
        cfg = _config(scene).model_copy(
            update={"reviewer": f"reference:{ref}?outline={outline}", "max_iterations": 1}
        )
        run = tmp_path / outline
        Engine(cfg, run, _host()).run()
        manifest = json.loads((run / "manifest.json").read_text())
        assert manifest["review"]["1"]["outline"] == outline
        inv = Ledger(run).read("inventory")
        assert set(inv["outline"]) == {"reviewed" if outline == "reference" else "detector"}
        scores[outline] = run_accuracy(run, val, tolerance_m=0)["overall"]["tp"]
    assert scores == {"reference": 1, "detector": 0}
    negs = Ledger(tmp_path / "reference").read("negatives")
    assert not negs.intersects(wide.union_all()).any()


def test_kappa_undefined(tmp_path):
    from tests.test_review import make_run

    from thawdetect.core.review.agreement import reviewer_agreement

    run = make_run(tmp_path / "run")
    decide(run, "c0", "confirmed", reviewer="ann")
    decide(run, "c0", "confirmed", reviewer="bob")
    ag = reviewer_agreement(run, "ann", "bob")
    assert ag["n"] == 1 and ag["kappa"] is None and "at least 2" in ag["kappa_undefined_reason"]
    decide(run, "c1", "confirmed", reviewer="ann")
    decide(run, "c1", "confirmed", reviewer="bob")
    ag = reviewer_agreement(run, "ann", "bob")
    assert (
        ag["n"] == 2 and ag["kappa"] is None and "only 'confirmed'" in ag["kappa_undefined_reason"]
    )
    decide(run, "c2", "rejected", reviewer="ann")
    decide(run, "c2", "rejected", reviewer="bob")
    assert reviewer_agreement(run, "ann", "bob")["kappa"] == pytest.approx(1.0)
    pd.testing.assert_frame_equal(history(run), history(run))


def test_lazy_evidence_is_drawn_on_first_show(scene, tmp_path):  # noqa: F811
    from click.testing import CliRunner

    from thawdetect.cli.main import cli

    run = tmp_path / "run"
    _manual_run(scene, run, evidence="lazy")
    ev = run / "iterations" / "01" / "evidence"
    assert (ev / "spec.json").exists()
    assert not [p for p in ev.iterdir() if p.is_dir()]  # nothing drawn yet
    cid = _by_blob(run)["b1"]
    res = CliRunner().invoke(cli, ["review", "show", str(run), cid])
    assert res.exit_code == 0, res.output
    assert "evidence files:" in res.output and "series.png" in res.output
    assert (ev / cid / "series.png").exists()
