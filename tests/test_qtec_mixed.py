"""The mixed QTEC run: optical_dl and insar_sbas in one loop on the synthetic qtec sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from test_review_web import TOKEN, LiveServer, browser_page  # noqa: F401 (a fixture)
from thawdetect.cli.main import cli
from thawdetect.core.run.ledger import Ledger


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp_path = tmp_path_factory.mktemp("qtec")
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        "region: qtec\nmax_iterations: 2\ndetectors:\n  optical_dl: {}\n  insar_sbas: {}\n"
    )
    run = tmp_path / "run"
    result = CliRunner().invoke(cli, ["run", "--config", str(cfg), "--output-dir", str(run)])
    assert result.exit_code == 0, result.output
    return run


def test_mixed_optical_insar_run_merges_evidence(mixed_run):
    run = mixed_run
    ledger = Ledger(run)
    it = ledger.read("iterations").sort_values("iteration")
    assert it["iteration"].tolist() == [1, 2]
    assert it["detectors"].tolist() == ["optical_dl,insar_sbas"] * 2
    props = ledger.read("proposals")
    assert set(props["detector"]) == {"optical_dl", "insar_sbas"}
    # iteration 2 fine-tunes from iteration 1's checkpoint, with the grown training sets
    thresholds = json.loads(it["thresholds_json"].iloc[1])
    assert thresholds["optical_dl"]["start"] == "fine-tune"
    assert it["training_positives"].iloc[1] > it["training_positives"].iloc[0]
    cands = ledger.read("candidates")
    both = cands[cands["n_detectors"] == 2]
    assert len(both) >= 1, cands[["candidate_id", "detectors"]]
    ev = json.loads(both["evidence_json"].iloc[0])
    assert set(ev) == {"optical_dl", "insar_sbas"}
    assert both["optical_dl__mean_probability"].notna().all()
    assert both["insar_sbas__max_abs_rate_mm_yr"].notna().all()
    # time-lapse review chips: one frame per image date plus the InSAR rate map
    cid = both["candidate_id"].iloc[0]
    frames = sorted(
        (run / "iterations" / f"{int(both['iteration'].iloc[0]):02d}" / "evidence" / cid).glob(
            "frame_*.png"
        )
    )
    assert len(frames) >= 5 + 1
    # validation points on the known inventory are not scored (they were given, not found)
    acc = json.loads((run / "accuracy.json").read_text())
    assert acc["excluded_in_known_inventory"] >= 1
    assert acc["overall"]["n"] + acc["excluded_in_known_inventory"] <= 14 + 1
    # each optical candidate is dated on the 2016-2020 images (Xia et al.'s initiation period)
    optical = cands[cands["detectors"].str.contains("optical_dl")]
    periods = optical["optical_dl__initiation_period"].dropna()
    assert len(periods) >= 1
    assert periods.str.match(
        r"^(before \d{4}-\d{2}-\d{2}|\d{4}-\d{2}-\d{2}/\d{4}-\d{2}-\d{2})$"
    ).all()
    _insar_series_and_roads(run, cands)


def _insar_series_and_roads(run, cands):
    """The qtec sample's InSAR part is a MintPy time series with coherence (not a rate map
    alone), and the sample's roads reach review and the inventory (issue 23, item 10)."""
    from thawdetect.api import open_run
    from thawdetect.core.inventory import run_roads
    from thawdetect.web.app import ReviewApp, ServerConfig

    insar = cands[cands["detectors"].str.contains("insar_sbas")]
    assert len(insar) and insar["series_json"].notna().all()
    series = json.loads(insar["series_json"].iloc[0])
    assert len(series["dates"]) == 66 and series["dates"][0].startswith("2016-06-01")
    assert insar["insar_sbas__mean_coherence"].between(0.7, 1.0).all()
    # the moving slumps settle each summer: a seasonal amplitude of 10-16 mm where they move
    assert (insar["insar_sbas__mean_seasonal_amplitude_pp_mm"] > 5).any()
    roads, near_m = run_roads(run)
    assert roads is not None and roads.endswith("roads.gpkg") and near_m == 500.0
    inv = open_run(run).inventory  # the Python API's inventory uses the run's roads
    assert inv["road_distance_m"].notna().all() and inv["near_road"].notna().all()
    assert (inv["near_road"] == (inv["road_distance_m"] <= 500.0)).all()
    app = ReviewApp(ServerConfig(run_dir=run, read_only=True))
    # the page's accuracy is the run's (one truth with the CLI, on this sample too)
    stored = json.loads((run / "accuracy.json").read_text())["overall"]
    assert {k: app.accuracy()["overall"][k] for k in ("tp", "fp", "fn", "n")} == {
        k: stored[k] for k in ("tp", "fp", "fn", "n")
    }
    terrain = app.terrain(str(insar["candidate_id"].iloc[0]))
    assert terrain["road_distance_m"] > 0 and terrain["near_road_m"] == 500.0
    assert terrain["near_road"] is (terrain["road_distance_m"] <= 500.0)
    # the CLI's inventory export takes the run's roads when --roads is not given
    out = run.parent / "inventory.gpkg"
    res = CliRunner().invoke(cli, ["inventory", "export", str(run), str(out)])
    assert res.exit_code == 0, res.output
    assert "near road: the run's roads" in res.output
    import geopandas as gpd

    exported = gpd.read_file(out)
    assert exported["near_road"].notna().all() and exported["road_distance_m"].notna().all()


def test_before_after_side_by_side_on_the_page(mixed_run, browser_page):  # noqa: F811
    """The review page's b lays the first and last optical dates of a candidate side by side at
    chip size (Xia et al. review 2016-2020 time-lapse chips); it follows j/k, Esc closes it."""
    page = browser_page
    with LiveServer(mixed_run, read_only=True) as server:
        page.goto(f"{server.base}/?token={TOKEN}")
        page.wait_for_selector("body[data-ready='1']", state="attached", timeout=30_000)
        page.select_option("#f-status", "all")  # the run is decided: show every candidate
        page.click("#queue li[data-id='it01-0001']")
        page.wait_for_selector("body[data-cand='it01-0001']", state="attached")
        page.wait_for_selector("#frame-ba")
        page.keyboard.press("b")
        page.wait_for_selector("body[data-ba='1']", state="attached")
        head = page.inner_text("#ba .ba-head")
        assert "it01-0001" in head and "2016-08-01 → 2020-08-01" in head
        caps = page.locator("#ba figcaption").all_inner_texts()
        assert caps[0].startswith("before") and "2016-08-01" in caps[0]
        assert caps[1].startswith("after") and "2020-08-01" in caps[1]
        page.wait_for_function(
            "[...document.querySelectorAll('#ba img')].every(i => i.complete && i.naturalWidth)"
        )
        sizes = page.eval_on_selector_all(
            "#ba img", "els => els.map(i => [i.naturalWidth, i.getBoundingClientRect().width])"
        )
        assert len(sizes) == 2 and all(n >= 384 and w >= 300 for n, w in sizes), sizes
        page.keyboard.press("j")  # the next candidate, still side by side
        nxt = page.get_attribute("#queue li.current", "data-id")
        page.wait_for_selector(f"body[data-cand='{nxt}']", state="attached")
        page.keyboard.press("Escape")
        page.wait_for_selector("#ba", state="hidden")
        assert not page.blocked and not page.js_errors
