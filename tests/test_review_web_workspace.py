"""Review page as a reviewer's tool (issue 23): one accuracy with the CLI, a server that follows a
resumed run, "part of" by keyboard, layers to compare, a pixel's own series, no focus trap.

The run, the server and the browser are those of ``test_review_web`` (Debian's chromium through
Playwright, every request outside 127.0.0.1 blocked).
"""

from __future__ import annotations

import json
import shutil
import time
from typing import Any

import httpx
import pytest

import test_review_web as web
from test_review_web import (
    DISP_DATES,
    TOKEN,
    LiveServer,
    current_id,
    latest,
    open_page,
    save_screenshot,
    wait_status,
    wait_tiles,
    web_config,
    web_host,
)
from thawdetect.core.run.engine import Engine
from thawdetect.core.run.ledger import Ledger

# the fixtures of test_review_web: the toy run (made once here), a fresh copy per test, Chromium
web_run_template = web.web_run_template
web_run = web.web_run
browser_page = web.browser_page
HDR = {"X-Thawdetect-Token": TOKEN}


def _post(s: LiveServer, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{s.base}{path}", json=body, headers={**HDR, "Origin": s.base})


def _get(s: LiveServer, path: str) -> Any:
    r = httpx.get(f"{s.base}{path}", headers=HDR, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def _center(page: Any, selector: str) -> tuple[float, float]:
    box = page.locator(selector).first.bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


class TestOneTruth:
    def test_page_accuracy_is_the_cli_accuracy(self, web_run):
        """Points labelled "not landslide" are never misses: the page's N is the CLI's."""
        from click.testing import CliRunner

        from thawdetect.cli.main import cli
        from thawdetect.core.accuracy.scoring import score_run

        with LiveServer(web_run) as s:
            for cid in ("it01-0001", "it01-0002"):
                body = {"candidate_id": cid, "decision": "confirmed", "probability": "high"}
                assert _post(s, "/api/decide", body).status_code == 200
            page = _get(s, "/api/run")["accuracy"]
        cli_json = CliRunner().invoke(cli, ["accuracy", "--run", str(web_run), "--json", "-"])
        assert cli_json.exit_code == 0, cli_json.output
        cli_figures = json.loads(cli_json.output)
        assert page["overall"] == cli_figures["overall"] == score_run(web_run)["overall"]
        assert page["per_iteration"] == cli_figures["per_iteration"]
        overall = page["overall"]
        assert (overall["tp"], overall["fn"], overall["n"]) == (2, 3, 5)  # not 7: 2 are negatives
        assert page["label_column"] == "label"


class TestFollowsTheRun:
    def test_resumed_run_shows_up_in_a_running_server(
        self, web_run, web_run_template, browser_page, tmp_path
    ):
        page = browser_page
        with LiveServer(web_run) as s:
            for i in range(1, 6):
                body = {"candidate_id": f"it01-{i:04d}", "probability": "high",
                        "decision": "confirmed" if i < 4 else "rejected"}  # fmt: skip
                assert _post(s, "/api/decide", body).status_code == 200
            open_page(page, s)
            # the dead end says what to do next
            page.wait_for_selector("#done-banner:not([hidden])")
            assert "thawdetect run" in page.inner_text("#done-banner")
            n_layers = len(_get(s, "/api/run")["layers"])

            # resume the run while the server and the page are up
            result = Engine(web_config(web_run_template.parent), web_run, web_host()).run()
            assert result.status == "awaiting review" and result.pending >= 1
            q = _get(s, "/api/queue?status=pending")
            new = [r["id"] for r in q["rows"]]
            assert new and all(i.startswith("it02-") for i in new)
            run = _get(s, "/api/run")
            assert len(run["layers"]) > n_layers
            assert 2 in run["iteration_numbers"]
            c = _get(s, f"/api/candidate/{new[0]}")
            its = {d["iteration"] for d in c["layer_defs"]}
            assert 2 in its and "LOS rate mm/yr" in {d["label"] for d in c["layer_defs"]}
            # the page notices by itself (it polls), and offers iteration 2's layers
            page.wait_for_selector(f"#queue li[data-id='{new[0]}']", timeout=20_000)
            page.click(f"#queue li[data-id='{new[0]}']")
            page.wait_for_selector(f"body[data-cand='{new[0]}']", state="attached")
            assert "LOS rate mm/yr" in page.inner_text("#layer-list")
            assert "it 2" in page.inner_text("#layer-list")
            assert page.is_hidden("#done-banner")
            assert not page.blocked and not page.js_errors


class TestPartOf:
    def test_far_or_multi_part_join_needs_a_confirmation(self, web_run):
        with LiveServer(web_run) as s:
            body = {"candidate_id": "it01-0001", "decision": "part_of", "part_of": "known-0001"}
            r = _post(s, "/api/decide", body)
            assert r.status_code == 409
            assert r.json()["confirm"]["distance_m"] > 300
            assert "m away" in r.json()["error"] and "multi-part" in r.json()["error"]
            assert Ledger(web_run).read("decisions").empty
            r = _post(s, "/api/decide", {**body, "confirm_join": True})
            assert r.status_code == 200 and r.json()["statuses"] == {"it01-0001": "part_of"}

    def test_part_of_by_keyboard_and_by_a_click_inside(self, web_run, browser_page):
        page = browser_page
        with LiveServer(web_run) as server:
            open_page(page, server)
            while current_id(page) != "it01-0005":
                page.keyboard.press("j")
                page.wait_for_timeout(100)
            # a click in the middle of the inventory polygon selects it
            page.wait_for_selector("path[stroke='#ff5fd2']")
            page.mouse.click(*_center(page, "path[stroke='#ff5fd2']"))
            page.wait_for_selector("#part-target b")
            assert page.inner_text("#part-target b") == "known-0001"
            page.keyboard.press("Escape")
            page.wait_for_selector("#part-target b", state="detached")
            # keyboard only: p picks the nearest feature, Tab cycles, p records, p confirms
            page.keyboard.press("p")
            page.wait_for_selector("#part-target b")
            assert page.inner_text("#part-target b") == "known-0001"
            assert " m away" in page.inner_text("#part-target")
            page.keyboard.press("Tab")  # one feature in reach: stays on it, focus stays put
            assert page.inner_text("#part-target b") == "known-0001"
            focused = page.evaluate("() => document.activeElement.tagName")
            assert focused not in ("INPUT", "BUTTON", "SELECT")  # Tab did not move the focus
            page.keyboard.press("p")
            page.wait_for_selector("#part-target .confirm-join")
            assert "multi-part" in page.inner_text("#part-target")
            assert "it01-0005" not in set(latest(web_run).index)  # nothing recorded yet
            page.keyboard.press("p")
            wait_status(page, "it01-0005", "part_of")
            toast = page.inner_text("#toast")
            assert "part of known-0001" in toast and "part of of" not in toast
            assert not page.blocked and not page.js_errors
        assert latest(web_run).loc["it01-0005", "part_of"] == "known-0001"


class TestLayersAndPixels:
    def test_overlay_opacity_swipe_cursor_and_pixel_series(self, web_run, browser_page, tmp_path):
        page = browser_page
        with LiveServer(web_run) as server:
            open_page(page, server)
            assert current_id(page) == "it01-0001"
            # base: the amplitude; over it: the LOS rate at 40 % opacity, swiped to half the map
            page.check("#layer-list input[type=radio] >> nth=1")
            page.select_option("#overlay-layer", label="LOS rate mm/yr · it 1")
            page.wait_for_selector("body[data-overlay]:not([data-overlay=''])", state="attached")
            page.fill("#layer-opacity", "40")
            page.dispatch_event("#layer-opacity", "input")
            opacity = page.eval_on_selector(
                ".leaflet-compare-pane .leaflet-layer", "e => e.style.opacity"
            )
            assert float(opacity) == pytest.approx(0.4)
            page.fill("#swipe", "50")
            page.dispatch_event("#swipe", "input")
            assert page.is_visible("#swipe-line")
            clip = page.eval_on_selector(".leaflet-compare-pane", "e => e.style.clip")
            assert clip.startswith("rect(")
            assert "LOS rate mm/yr" in page.inner_text("#colorbar")  # the bar of the overlay
            # cursor coordinates
            x, y = _center(page, "#map")
            page.mouse.move(x - 30, y - 30)
            assert "° N" in page.inner_text("#cursor") and "° E" in page.inner_text("#cursor")
            # click a pixel of the candidate: its values and its own series with the fit
            cx, cy = _center(page, "path[stroke='#ffd23f']")
            page.mouse.click(cx, cy)
            page.wait_for_selector("body[data-pixel='1']", state="attached", timeout=15_000)
            text = page.inner_text("#pixel")
            assert "LOS rate mm/yr" in text and "elevation (DEM)" in text
            assert page.locator("#pixel svg path.fit").count() == 1
            assert "12 dates" in text
            wait_tiles(page)
            shot = save_screenshot(page, tmp_path, "review-compare.png")
            shutil.copyfile(shot, "/tmp/review_page.png")
            assert not page.blocked and not page.js_errors

    def test_pixel_series_fits_the_stack(self, web_run):
        """The stack is rate·t + 4·(cos 2πt − 1): the fit gives back the pixel's rate and A = 8."""
        from test_review_web import ORIGIN, RES_M, SLUMPS

        r, c = SLUMPS[0][:2]
        x, y = ORIGIN[0] + (c + 0.5) * RES_M, ORIGIN[1] - (r + 0.5) * RES_M
        import pyproj

        lon, lat = pyproj.Transformer.from_crs(32647, 4326, always_xy=True).transform(x, y)
        with LiveServer(web_run) as s:
            rep = _get(s, f"/api/pixel?lon={lon}&lat={lat}&iteration=1")
        rate = next(v["value"] for v in rep["values"] if v["label"] == "LOS rate mm/yr")
        (series,) = rep["series"]
        assert series["dates"] == [d.isoformat() for d in DISP_DATES]
        assert series["rate_mm_yr"] == pytest.approx(rate, abs=0.01)
        assert series["amplitude_pp_mm"] == pytest.approx(8.0, abs=0.01)


class TestKeys:
    def test_no_focus_trap_undo_keeps_the_view_and_y_asks_for_a_class(self, web_run, browser_page):
        page = browser_page
        with LiveServer(web_run) as server:
            open_page(page, server)
            assert current_id(page) == "it01-0001"
            # a click on a layer radio button, then the keys still work
            page.click("#layer-list input[type=radio] >> nth=1")
            page.keyboard.press("j")
            page.wait_for_selector("body[data-cand='it01-0002']", state="attached")
            page.click("#show-neighbours")
            page.keyboard.press("k")
            page.wait_for_selector("body[data-cand='it01-0001']", state="attached")
            # y without 1/2/3 asks for the class; 2 answers and confirms
            page.keyboard.press("y")
            page.wait_for_selector("#prob-prompt:not([hidden])")
            time.sleep(0.3)
            assert "it01-0001" not in set(latest(web_run).index)
            page.keyboard.press("2")
            wait_status(page, "it01-0001", "confirmed")
            assert current_id(page) == "it01-0002"
            page.keyboard.press("n")
            wait_status(page, "it01-0002", "rejected")
            # z undoes it01-0002; the pending view keeps it01-0001 (decided) in sight
            page.keyboard.press("z")
            wait_status(page, "it01-0002", "pending")
            assert page.locator("#queue li[data-id='it01-0001'] .dot.st-confirmed").count() == 1
            assert current_id(page) == "it01-0002"
            assert page.input_value("#f-status") == "pending"
            assert not page.blocked and not page.js_errors
        dec = latest(web_run)
        assert (dec.loc["it01-0001", "decision"], dec.loc["it01-0001", "probability"]) == (
            "confirmed",
            "medium",
        )
        assert dec.loc["it01-0002", "decision"] == "undo"


def test_evidence_of_the_proposing_detectors_only():
    from thawdetect.web.state import own_evidence as _own_evidence

    ev = {
        "insar_sbas": {"mean_rate_mm_yr": -42.0, "coherence": None},
        "optical_dl": {"probability": None, "area_ha": float("nan")},
        "terrain": {"slope_deg": 12.0},
    }
    assert _own_evidence(ev, "insar_sbas") == {"insar_sbas": {"mean_rate_mm_yr": -42.0}}
    assert _own_evidence(ev, "insar_sbas,optical_dl") == {"insar_sbas": {"mean_rate_mm_yr": -42.0}}
    assert set(_own_evidence(ev, "")) == {"insar_sbas", "terrain"}  # unknown: every non-empty


class TestDeadEnds:
    def test_status_export_and_inventory_say_what_to_do_next(self, web_run, tmp_path):
        from click.testing import CliRunner

        from thawdetect.cli.main import cli
        from thawdetect.core.review.decisions import decide

        runner = CliRunner()
        res = runner.invoke(cli, ["status", str(web_run)])
        assert res.exit_code == 0, res.output
        assert f"5 candidate(s) await review: thawdetect review serve {web_run}" in res.output
        res = runner.invoke(cli, ["inventory", "export", str(web_run), str(tmp_path / "a.gpkg")])
        assert res.exit_code == 0, res.output
        assert "warning: 5 candidate(s) of iteration 1 still await review" in res.output

        ids = [f"it01-{i:04d}" for i in range(1, 6)]
        decide(web_run, ids, "rejected", reviewer="ann")
        res = runner.invoke(cli, ["status", str(web_run)])
        assert "run the same 'thawdetect run' command again to resume" in res.output
        out = tmp_path / "review.gpkg"
        res = runner.invoke(cli, ["review", "export", str(web_run), str(out)])
        assert res.exit_code == 0, res.output
        assert "nothing to export: no pending candidates" in res.output
        assert "fill 'decision'" not in res.output and not out.exists()
        res = runner.invoke(cli, ["review", "list", str(web_run)])
        assert "no pending candidates; every candidate is decided" in res.output
        res = runner.invoke(cli, ["inventory", "export", str(web_run), str(tmp_path / "b.gpkg")])
        assert res.exit_code == 0, res.output
        assert "warning: 5 decision(s) of iteration 1 are not in the inventory yet" in res.output
        assert "--status" in runner.invoke(cli, ["review", "list", "--help"]).output
        assert "part_of" in runner.invoke(cli, ["review", "list", "--help"]).output

    def test_review_show_names_the_target_and_the_edited_outline(self, web_run):
        from click.testing import CliRunner

        from thawdetect.cli.main import cli
        from thawdetect.core.review.decisions import decide

        decide(web_run, ["it01-0005"], "part_of", part_of="known-0001", reviewer="ann")
        res = CliRunner().invoke(cli, ["review", "show", str(web_run), "it01-0005"])
        assert res.exit_code == 0, res.output
        assert "ann: part of known-0001" in res.output
