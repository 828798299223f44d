"""``thawdetect review`` and ``thawdetect inventory export`` through the real CLI group."""

from __future__ import annotations

import json

import geopandas as gpd
import pyogrio
from click.testing import CliRunner

from test_inventory import reviewed_run, roads_file
from test_review import make_run
from thawdetect.cli.main import cli


def _invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_list_decide_show_kappa(tmp_path):
    run = make_run(tmp_path / "run")
    res = _invoke("review", "list", run, "--json")
    assert res.exit_code == 0, res.output
    listed = json.loads(res.output)
    assert [r["candidate_id"] for r in listed][:2] == ["c4", "c1"]
    key = [(r["n_detectors"], r["review_priority"]) for r in listed]
    assert key == sorted(key, reverse=True)  # agreeing detectors first, then the priority
    res = _invoke(
        "review",
        "decide",
        run,
        "c4",
        "c1",
        "confirmed",
        "-p",
        "high",
        "-r",
        "ann",
        "-n",
        "fresh headwall",
    )
    assert res.exit_code == 0 and "2 candidate(s) confirmed by ann" in res.output
    _invoke("review", "decide", run, "c4", "confirmed", "-r", "bob")
    _invoke("review", "decide", run, "c1", "rejected", "-r", "bob")
    res = _invoke("review", "show", run, "c4")
    assert res.exit_code == 0
    assert "status: confirmed" in res.output
    assert "evidence insar_sbas: mean_rate_mm_yr=-64.0" in res.output
    assert "ann: confirmed (high) - fresh headwall" in res.output and "bob: confirmed" in res.output
    res = _invoke("review", "kappa", run, "ann", "bob", "--json")
    assert res.exit_code == 0
    assert json.loads(res.output)["n"] == 2
    res = _invoke("review", "list", run)
    assert "c4" not in res.output and "4 candidates" in res.output


def test_qgis_round_trip_cli(tmp_path):
    run = make_run(tmp_path / "run")
    out = tmp_path / "review.gpkg"
    assert _invoke("review", "export", run, out).exit_code == 0
    df = pyogrio.read_dataframe(out, layer="review")
    df.loc[df["candidate_id"] == "c0", ["decision", "probability"]] = ["confirmed", "low"]
    pyogrio.write_dataframe(df, out, layer="review")
    res = _invoke("review", "import", run, out, "-r", "eve")
    assert res.exit_code == 0 and "applied 1 decisions (1 confirmed)" in res.output
    df.loc[df["candidate_id"] == "c1", "decision"] = "definitely"
    pyogrio.write_dataframe(df, out, layer="review")
    res = _invoke("review", "import", run, out)
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == [
        f"Error: {out}: illegal decision values ['definitely']; use ['confirmed', 'rejected', "
        "'unsure', 'part_of']"
    ]


def test_review_errors_one_line(tmp_path):
    run = make_run(tmp_path / "run")
    for args, text in [
        (("review", "decide", run, "nope", "confirmed"), "unknown candidate ids: nope"),
        (("review", "show", run, "nope"), "unknown candidate id 'nope'"),
        (("review", "list", tmp_path), "not a run directory"),
        (("review", "kappa", run, "ann", "bob"), "reviewer 'ann' made no decision"),
    ]:
        res = _invoke(*args)
        assert res.exit_code == 1, args
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and text in lines[0], res.output


def test_inventory_export_cli(tmp_path):
    run = reviewed_run(tmp_path / "run", engine_inventory=True)
    roads = roads_file(tmp_path)
    res = _invoke("inventory", "export", run, tmp_path / "inv.gpkg", "--roads", roads)
    assert res.exit_code == 0, res.output
    assert "3 features written" in res.output
    gdf = gpd.read_file(tmp_path / "inv.gpkg")
    assert gdf["near_road"].tolist() == [True, True, False]
    res = _invoke(
        "inventory",
        "export",
        run,
        tmp_path / "arts.csv",
        "--arts",
        "--arts-field",
        "BaseMapDate=2020-07-05",
        "--near-road-m",
        "100",
        "--roads",
        roads,
    )
    assert res.exit_code == 0, res.output
    import pandas as pd

    df = pd.read_csv(tmp_path / "arts.csv")
    assert (df["BaseMapDate"] == "2020-07-05").all() and not df["near_road"].any()
    res = _invoke("inventory", "export", run, tmp_path / "x.gpkg", "--arts-field", "Notes=x")
    assert res.exit_code == 1 and "--arts-field needs --arts" in res.output
