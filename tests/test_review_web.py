"""Review in the browser: a real run, a real server, a real Chromium, the real ledger.

The run is made here by the engine with a small InSAR-like detector (``web_toy``): it thresholds a
LOS-rate GeoTIFF, hands over a rate and a seasonal-amplitude frame and a DEM, and attaches a time
series with its fit, so the page has every kind of layer and evidence to show. A known inventory
polygon lies beside one slump (the "part of" target) and validation points sit on the slumps.

The browser is Debian's ``chromium`` driven by Playwright (``scripts/setup.sh`` installs both);
every request that does not go to 127.0.0.1 is blocked and recorded.
"""

from __future__ import annotations

import functools
import inspect
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import rasterio.features
from pydantic import Field
from rasterio.transform import from_origin
from shapely.geometry import Point
from tests.plugins.rate_regions import rate_regions

from thawdetect.core.config import RunConfig
from thawdetect.core.plugin_api.context import IterationContext
from thawdetect.core.plugin_api.detector import (
    Detector,
    DetectorConfig,
    ImageFrame,
    ReviewOutcome,
)
from thawdetect.core.plugin_api.hookspecs import hookimpl
from thawdetect.core.plugin_api.host import PluginHost
from thawdetect.core.regions import Region
from thawdetect.core.run.engine import Engine
from thawdetect.core.run.ledger import Ledger

fastapi = pytest.importorskip("fastapi", reason="needs the web extra: thawdetect[web]")
uvicorn = pytest.importorskip("uvicorn")

REPO = Path(__file__).resolve().parents[1]
CRS = "EPSG:32647"
RES_M = 30.0
ORIGIN = (610_000.0, 4_196_000.0)
N_PX = 90
TOKEN = "test-token-0123456789"
# (row, col, radius px, rate mm/yr): five slumps, strongest first (the queue order).
SLUMPS = [(20, 20, 4, -75.0), (20, 62, 4, -68.0), (50, 40, 3, -60.0), (70, 18, 3, -52.0),
          (68, 66, 3, -45.0)]  # fmt: skip
#: Two weak slumps (row, col, radius px, rate mm/yr) only iteration 2's 20 mm/yr threshold finds.
WEAK = [(40, 76, 3, -24.0), (84, 44, 3, -24.0)]
#: Points checked on the ground and labelled "not landslide" (row, col): never misses.
NOT_LANDSLIDE = [(10, 45), (30, 84)]
#: Dates of the toy's cumulative-displacement stack (one band each, as insar_sbas writes it).
DISP_DATES = [date(2018, 1, 3) + timedelta(days=91 * i) for i in range(12)]
#: The known inventory feature: a 60 m disc 240 m east of the last slump (not overlapping it).
KNOWN_XY = (ORIGIN[0] + (66 + 0.5) * RES_M + 240.0, ORIGIN[1] - (68 + 0.5) * RES_M)


def chromium_path() -> str:
    path = os.environ.get("THAWDETECT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail("Debian's chromium is missing: run scripts/setup.sh (apt-get install chromium)")
    return path


# -- a small InSAR-like detector --------------------------------------------------------------


class WebToyConfig(DetectorConfig):
    rate_file: Path
    amplitude_file: Path
    dem_file: Path
    displacement_file: Path
    abs_rate_mm_yr: float = Field(30.0, gt=0)


class WebToy(Detector):
    name = "web_toy"
    description = "threshold a LOS-rate GeoTIFF (review page tests)"
    config_model = WebToyConfig
    config: WebToyConfig

    def propose(self, context: IterationContext) -> gpd.GeoDataFrame:
        return rate_regions(self.config.rate_file, self.config.abs_rate_mm_yr)

    def next_config(self, outcome: ReviewOutcome) -> WebToyConfig | None:
        """Iteration 2 relaxes the threshold to 20 mm/yr (finds the two weak slumps)."""
        if self.config.abs_rate_mm_yr <= 20:
            return None
        return self.config.model_copy(update={"abs_rate_mm_yr": 20.0})

    def image_frames(self, context: IterationContext) -> list[ImageFrame]:
        frames = [
            ImageFrame("LOS rate mm/yr", self.config.rate_file, bands=(1,), value_range=(-80, 80)),
            ImageFrame("seasonal amplitude pp mm", self.config.amplitude_file, bands=(1,)),
        ]
        for i, d in enumerate(DISP_DATES, start=1):
            frames.append(
                ImageFrame("cumulative LOS displacement", self.config.displacement_file,
                           bands=(i,), value_range=(-150, 150), units="mm",
                           date=f"{d.isoformat()} (since {DISP_DATES[0].isoformat()})",
                           group="timelapse", colormap="RdBu")
            )  # fmt: skip
        return frames


@hookimpl
def thawdetect_register_detectors(register: Any) -> None:
    register(WebToy)


@functools.cache
def web_host() -> PluginHost:
    """A plugin host that knows ``web_toy`` (this module)."""
    return PluginHost(plugins=[("web_toy", sys.modules[__name__])])


def _tif(path: Path, arr: np.ndarray) -> Path:
    stack = arr if arr.ndim == 3 else arr[None]
    profile = dict(driver="GTiff", width=stack.shape[2], height=stack.shape[1],
                   count=stack.shape[0], dtype="float32", crs=CRS,
                   transform=from_origin(*ORIGIN, RES_M, RES_M), nodata=float("nan"), tiled=True,
                   blockxsize=64, blockysize=64)  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(stack.astype("float32"))
    return path


def _xy(row: float, col: float) -> tuple[float, float]:
    return (ORIGIN[0] + (col + 0.5) * RES_M, ORIGIN[1] - (row + 0.5) * RES_M)


def web_config(root: Path) -> RunConfig:
    """The toy run's configuration (its input files are in ``root``)."""
    return RunConfig(
        region=Region(name="webtoy", crs=CRS),
        detectors={
            "web_toy": {
                "rate_file": str(root / "rate_mm_yr.tif"),
                "amplitude_file": str(root / "amplitude_pp_mm.tif"),
                "dem_file": str(root / "dem.tif"),
                "displacement_file": str(root / "displacement_mm.tif"),
            }
        },
        reviewer="manual",
        known_inventory=root / "known.gpkg",
        validation=root / "validation.gpkg",
        max_iterations=2,
    )


def make_web_run(root: Path) -> Path:
    """The engine's run on the toy scene, stopped awaiting review of iteration 1."""
    root.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:N_PX, 0:N_PX].astype(float)
    rng = np.random.default_rng(0)
    rate = rng.normal(0, 4.0, (N_PX, N_PX))
    amp = rng.uniform(2.0, 6.0, (N_PX, N_PX))
    points = []
    for r, c, rad, v in SLUMPS:
        disk = (yy - r) ** 2 + (xx - c) ** 2 <= rad**2
        rate[disk] = v + rng.normal(0, 2.0, int(disk.sum()))
        amp[disk] = 12.0
        points.append(Point(_xy(r, c)))
    for r, c, rad, v in WEAK:
        disk = (yy - r) ** 2 + (xx - c) ** 2 <= rad**2
        rate[disk] = v + rng.normal(0, 0.5, int(disk.sum()))
    rate[:4, :6] = np.nan  # a decorrelated corner: transparent on the map
    t = np.array([(d - DISP_DATES[0]).days / 365.25 for d in DISP_DATES])
    disp = rate[None] * t[:, None, None] + 4.0 * (np.cos(2 * np.pi * t)[:, None, None] - 1.0)
    dem = 3800 + 3.0 * yy + 150 * np.sin(xx / 12.0) * np.cos(yy / 15.0)
    known = root / "known.gpkg"
    gpd.GeoDataFrame({"name": ["K1"]}, geometry=[Point(KNOWN_XY).buffer(60.0)], crs=CRS).to_file(
        known
    )
    validation = root / "validation.gpkg"
    labels = ["landslide"] * len(points) + ["not landslide"] * len(NOT_LANDSLIDE)
    points += [Point(_xy(r, c)) for r, c in NOT_LANDSLIDE]
    gpd.GeoDataFrame({"id": range(len(points)), "label": labels}, geometry=points, crs=CRS).to_file(
        validation
    )
    _tif(root / "rate_mm_yr.tif", rate)
    _tif(root / "amplitude_pp_mm.tif", amp)
    _tif(root / "dem.tif", dem)
    _tif(root / "displacement_mm.tif", disp)
    cfg = web_config(root)
    run = root / "run"
    result = Engine(cfg, run, web_host()).run()
    assert result.status == "awaiting review" and result.pending == len(SLUMPS)
    return run


# -- a live server ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """uvicorn serving ``create_app`` in a thread (the same app the CLI serves)."""

    def __init__(self, run: Path, **kw: Any) -> None:
        from thawdetect.web.app import ServerConfig, create_app

        self.config = ServerConfig(run_dir=run, token=TOKEN, reviewer="tester", **kw)
        self.app = create_app(self.config, host=web_host())
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("review server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def web_run_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_web_run(tmp_path_factory.mktemp("webrun"))


@pytest.fixture
def web_run(web_run_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the awaiting-review run for each test (decisions change it)."""
    run = tmp_path / "run"
    shutil.copytree(web_run_template, run)
    return run


def review_api_ready() -> bool:
    """Whether the core review model has corrected outlines, "part of" and undo (issue 11)."""
    from thawdetect.core.review import decisions

    params = inspect.signature(decisions.decide).parameters
    return "geometry" in params and "part_of" in params and hasattr(decisions, "undo_last_decision")


# -- the browser ------------------------------------------------------------------------------


@pytest.fixture
def browser_page(tmp_path: Path):
    """A headless Chromium page whose requests may go to 127.0.0.1 only (others are recorded)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    blocked: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True)
        context = browser.new_context(viewport={"width": 1600, "height": 950})

        def gate(route: Any) -> None:
            url = route.request.url
            if url.startswith(("http://127.0.0.1:", "data:", "blob:")):
                route.continue_()
            else:
                blocked.append(url)
                route.abort()

        context.route("**/*", gate)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.blocked = blocked  # type: ignore[attr-defined]
        page.js_errors = errors  # type: ignore[attr-defined]
        yield page
        context.close()
        browser.close()


def open_page(page: Any, server: LiveServer) -> None:
    page.goto(f"{server.base}/?token={TOKEN}")
    page.wait_for_selector("body[data-ready='1']", state="attached", timeout=30_000)
    page.wait_for_selector("#queue li.current", timeout=30_000)


def current_id(page: Any) -> str:
    """The highlighted candidate, once its evidence has loaded."""
    cid = str(page.get_attribute("#queue li.current", "data-id"))
    page.wait_for_selector(f"body[data-cand='{cid}']", state="attached", timeout=15_000)
    return cid


def wait_status(page: Any, cid: str, status: str) -> None:
    page.wait_for_selector(f"#queue li[data-id='{cid}'] .dot.st-{status}", timeout=15_000)


def wait_tiles(page: Any, timeout_s: float = 30.0) -> None:
    """Wait until every map tile is drawn (polled from here: the page's CSP forbids eval)."""
    pending = ".leaflet-tile-container img:not(.leaflet-tile-loaded)"
    js = f"() => document.querySelectorAll('{pending}').length"
    deadline = time.time() + timeout_s
    while page.evaluate(js) and time.time() < deadline:
        page.wait_for_timeout(200)


def save_screenshot(page: Any, tmp_path: Path, name: str) -> Path:
    """Screenshot into the test's tmp dir (path printed), and to $THAWDETECT_SCREENSHOT if set."""
    out = tmp_path / name
    page.screenshot(path=str(out))
    print(f"review page screenshot: {out}")
    extra = os.environ.get("THAWDETECT_SCREENSHOT")
    if extra:
        shutil.copyfile(out, extra)
        print(f"review page screenshot: {extra}")
    return out


def latest(run: Path) -> Any:
    from thawdetect.core.review.decisions import history

    return history(run).drop_duplicates("candidate_id", keep="last").set_index("candidate_id")


class TestBrowser:
    def test_the_next_candidates_are_fetched_ahead(self, web_run, browser_page):
        """While one candidate is shown, the next two pending ones are asked for (their evidence
        drawn, their first frame cached), not more; deciding still shows fresh data."""
        page = browser_page
        seen: list[str] = []
        page.on("request", lambda r: seen.append(r.url.split("?")[0]))
        with LiveServer(web_run) as server:
            open_page(page, server)
            assert current_id(page) == "it01-0001"
            ahead = [f"{server.base}/api/candidate/it01-000{k}/frame/0" for k in (2, 3)]
            deadline = time.time() + 15
            while not set(ahead) <= set(seen) and time.time() < deadline:
                page.wait_for_timeout(100)
            assert set(ahead) <= set(seen)
            assert not any("it01-0004" in u or "it01-0005" in u for u in seen)
            page.keyboard.press("n")
            wait_status(page, "it01-0001", "rejected")
            assert current_id(page) == "it01-0002"
            # shown from data fetched again (its neighbours include the candidate just decided)
            assert seen.count(f"{server.base}/api/candidate/it01-0002") == 2
            assert not page.blocked and not page.js_errors

    @pytest.mark.slow  # the default suite's browser test is the next one
    def test_keyboard_decisions_are_in_the_ledger_and_survive_a_reload(
        self, web_run, browser_page, tmp_path
    ):
        page = browser_page
        with LiveServer(web_run) as server:
            open_page(page, server)
            ids = page.eval_on_selector_all("#queue li", "els => els.map(e => e.dataset.id)")
            assert ids == [f"it01-{i:04d}" for i in range(1, 6)]  # engine order: score
            counts = page.inner_text("#counts").split()
            assert counts == ["pending", "5", "confirmed", "0", "rejected", "0", "unsure", "0"]
            # evidence is beside the map: frames, series with fit, terrain from the DEM, layers
            page.wait_for_selector("#frame-img")
            assert "A = 8.0 mm" in page.inner_text("#series")
            assert "elevation" in page.inner_text("#terrain")
            assert "LOS rate mm/yr" in page.inner_text("#layer-list")
            assert "-80" in page.inner_text("#colorbar") and "mm/yr" in page.inner_text("#colorbar")
            page.wait_for_selector(".leaflet-tile-loaded", timeout=15_000)
            assert page.locator(".leaflet-control-scale-line").count() == 1

            assert current_id(page) == "it01-0001"
            page.keyboard.press("2")  # medium
            page.keyboard.press("Enter")
            page.keyboard.type("scarp and flow")
            page.keyboard.press("Enter")
            page.keyboard.press("y")
            wait_status(page, "it01-0001", "confirmed")
            assert current_id(page) == "it01-0002"
            page.keyboard.press("n")
            wait_status(page, "it01-0002", "rejected")
            assert current_id(page) == "it01-0003"
            page.keyboard.press("j")  # skip it01-0003
            page.wait_for_selector("body[data-cand='it01-0004']", state="attached")
            page.keyboard.press("u")
            wait_status(page, "it01-0004", "unsure")
            assert current_id(page) == "it01-0005"
            page.keyboard.press("k")
            page.wait_for_selector("body[data-cand='it01-0004']", state="attached")

            page.reload()
            page.wait_for_selector("body[data-ready='1']", state="attached")
            page.select_option("#f-status", "all")
            for cid, st in (("it01-0001", "confirmed"), ("it01-0002", "rejected"),
                            ("it01-0003", "pending"), ("it01-0004", "unsure")):  # fmt: skip
                wait_status(page, cid, st)
            assert "3 / 5 decided" in page.inner_text("#progress-text")
            assert not page.blocked and not page.js_errors
        dec = latest(web_run)
        assert dec.loc["it01-0001", "decision"] == "confirmed"
        assert dec.loc["it01-0001", "probability"] == "medium"
        assert dec.loc["it01-0001", "note"] == "scarp and flow"
        assert dec.loc["it01-0002", "decision"] == "rejected"
        assert dec.loc["it01-0004", "decision"] == "unsure"
        assert set(dec["reviewer"]) == {"tester"}
        assert "it01-0003" not in dec.index
        cands = Ledger(web_run).read("candidates").set_index("candidate_id")
        assert cands.loc["it01-0001", "status"] == "confirmed"
        assert cands.loc["it01-0003", "status"] == "pending"

    def test_edited_outline_reject_and_part_of_by_keyboard(self, web_run, browser_page, tmp_path):
        if not review_api_ready():
            pytest.skip("needs the review model of issue 11 (decide geometry/part_of, undo)")
        from shapely import wkt

        page = browser_page
        before = Ledger(web_run).read("candidates").set_index("candidate_id").geometry
        with LiveServer(web_run) as server:
            open_page(page, server)
            # 1. confirm it01-0001 with an edited outline: drag its northernmost vertex 40 px north
            assert current_id(page) == "it01-0001"
            page.keyboard.press("e")
            page.wait_for_selector("#edit-banner:not([hidden])")
            page.wait_for_selector(".marker-icon:not(.marker-icon-middle)")
            page.wait_for_timeout(300)  # the map zooms to the outline first
            boxes = page.eval_on_selector_all(
                ".marker-icon:not(.marker-icon-middle)",
                "els => els.map(e => { const r = e.getBoundingClientRect();"
                " return [r.x + r.width / 2, r.y + r.height / 2]; })",
            )
            x, y = min(boxes, key=lambda b: b[1])
            page.mouse.move(x, y)
            page.mouse.down()
            page.mouse.move(x, y - 20, steps=4)
            page.mouse.move(x, y - 40, steps=4)
            page.mouse.up()
            page.keyboard.press("e")
            page.keyboard.press("1")
            page.keyboard.press("y")
            wait_status(page, "it01-0001", "confirmed")
            # 2. reject it01-0002
            assert current_id(page) == "it01-0002"
            page.keyboard.press("n")
            wait_status(page, "it01-0002", "rejected")
            # 3. it01-0005 is part of the known inventory feature beside it
            while current_id(page) != "it01-0005":
                page.keyboard.press("j")
                page.wait_for_timeout(150)
            page.wait_for_selector("path[stroke='#ff5fd2']")
            page.locator("path[stroke='#ff5fd2']").first.click()
            page.wait_for_selector("#part-target b")
            assert page.inner_text("#part-target b") == "known-0001"
            page.keyboard.press("p")  # known-0001 would become multi-part: one more p records
            page.wait_for_selector("#part-target .confirm-join")
            assert "multi-part" in page.inner_text("#part-target")
            page.keyboard.press("p")
            wait_status(page, "it01-0005", "part_of")

            page.reload()
            page.wait_for_selector("body[data-ready='1']", state="attached")
            page.select_option("#f-status", "all")
            wait_status(page, "it01-0001", "confirmed")
            wait_status(page, "it01-0002", "rejected")
            wait_status(page, "it01-0005", "part_of")
            page.click("#queue li[data-id='it01-0001']")
            page.wait_for_selector("#history .hist-row")
            assert "edited outline" in page.inner_text("#history")
            wait_tiles(page)
            save_screenshot(page, tmp_path, "review-page.png")
            assert not page.blocked and not page.js_errors
        dec = latest(web_run)
        a = dec.loc["it01-0001"]
        assert (a["decision"], a["probability"], a["reviewer"]) == ("confirmed", "high", "tester")
        edited = wkt.loads(a["geometry_wkt"])
        assert edited.is_valid and not edited.equals(before["it01-0001"])
        added = edited.difference(before["it01-0001"]).area
        assert 0.005 < added / before["it01-0001"].area < 0.5  # one vertex pulled out
        assert dec.loc["it01-0002", "decision"] == "rejected"
        assert dec.loc["it01-0005", "decision"] == "part_of"
        assert dec.loc["it01-0005", "part_of"] == "known-0001"
        assert str(dec.loc["it01-0001", "timestamp"]).startswith(str(date.today().year))


# -- security and HTTP --------------------------------------------------------------------------


class TestSecurity:
    def test_token_origin_host_and_paths(self, web_run):
        import httpx

        with LiveServer(web_run) as s:
            b = s.base
            hdr = {"X-Thawdetect-Token": TOKEN}
            assert httpx.get(f"{b}/").status_code == 401
            assert httpx.get(f"{b}/api/run").status_code == 401
            assert httpx.get(f"{b}/static/app.js").status_code == 401
            assert httpx.get(f"{b}/tiles/0/12/0/0.png").status_code == 401
            assert (
                httpx.get(f"{b}/api/run", headers={"X-Thawdetect-Token": "wrong"}).status_code
                == 401
            )
            assert httpx.get(f"{b}/api/run", headers=hdr).status_code == 200
            assert httpx.get(
                f"{b}/api/run", headers={"Authorization": f"Bearer {TOKEN}"}
            ).is_success
            # query, then cookie: the first page load sets the cookie, drops the token from the URL
            r = httpx.get(f"{b}/?token={TOKEN}")
            assert r.status_code == 303 and r.headers["location"] == "/"
            cookie = r.cookies["thawdetect_token"]
            assert "httponly" in r.headers["set-cookie"].lower()
            assert "samesite=strict" in r.headers["set-cookie"].lower()
            page = httpx.get(f"{b}/", cookies={"thawdetect_token": cookie})
            assert page.status_code == 200 and "thawdetect review" in page.text
            assert "default-src 'self'" in page.headers["content-security-policy"]
            # DNS rebinding: another Host name is refused even with the token
            assert (
                httpx.get(f"{b}/api/run", headers={**hdr, "Host": "evil.example"}).status_code
                == 403
            )

            body = {"candidate_id": "it01-0001", "decision": "rejected"}
            own = {"Origin": b}
            post = f"{b}/api/decide"
            assert httpx.post(post, json=body, headers=own).status_code == 401
            r = httpx.post(post, json=body, headers=own, cookies={"thawdetect_token": cookie})
            assert r.status_code == 403  # a cookie alone never writes (CSRF)
            assert httpx.post(post, json=body, headers=hdr).status_code == 403  # no Origin
            evil = {**hdr, "Origin": "http://evil.example"}
            assert httpx.post(post, json=body, headers=evil).status_code == 403
            assert Ledger(web_run).read("decisions").empty  # nothing got through

            # no path reaches the file system: indexes and known ids only
            assert httpx.get(f"{b}/static/../app.py", headers=hdr).status_code == 404
            assert httpx.get(f"{b}/static/%2e%2e/app.py", headers=hdr).status_code == 404
            assert httpx.get(f"{b}/tiles/99/12/0/0.png", headers=hdr).status_code == 404
            assert httpx.get(f"{b}/tiles/x/12/0/0.png", headers=hdr).status_code == 422
            assert httpx.get(f"{b}/api/candidate/..%2fledger.gpkg", headers=hdr).status_code == 404
            assert (
                httpx.get(f"{b}/api/candidate/it01-0001/frame/99", headers=hdr).status_code == 404
            )
            frame = httpx.get(f"{b}/api/candidate/it01-0001/frame/0", headers=hdr)
            assert frame.status_code == 200 and frame.content[:8] == b"\x89PNG\r\n\x1a\n"

            r = httpx.post(post, json=body, headers={**hdr, **own})
            assert r.status_code == 200 and r.json()["statuses"] == {"it01-0001": "rejected"}
            r = httpx.post(post, json={"candidate_id": "nope", "decision": "rejected"},
                           headers={**hdr, **own})  # fmt: skip
            assert r.status_code == 400 and "unknown candidate ids: nope" in r.json()["error"]
            r = httpx.post(post, json={"candidate_id": "it01-0002", "decision": "maybe"},
                           headers={**hdr, **own})  # fmt: skip
            assert r.status_code == 400 and "illegal decision" in r.json()["error"]
        dec = Ledger(web_run).read("decisions")
        assert dec["candidate_id"].tolist() == ["it01-0001"]
        assert dec["reviewer"].tolist() == ["tester"]

    def test_read_only_refuses_every_write(self, web_run):
        import httpx

        before = (web_run / "ledger.gpkg").read_bytes()
        with LiveServer(web_run, read_only=True) as s:
            hdr = {"X-Thawdetect-Token": TOKEN, "Origin": s.base}
            body = {"candidate_id": "it01-0001", "decision": "confirmed"}
            r = httpx.post(f"{s.base}/api/decide", json=body, headers=hdr)
            assert r.status_code == 403 and "read-only" in r.json()["error"]
            assert httpx.post(f"{s.base}/api/undo", json={}, headers=hdr).status_code == 403
            run = httpx.get(f"{s.base}/api/run", headers=hdr).json()
            assert run["read_only"] is True
        assert (web_run / "ledger.gpkg").read_bytes() == before


class TestServerViews:
    def test_layers_tiles_queue_and_overview(self, web_run):
        import httpx

        with LiveServer(web_run) as s:
            hdr = {"X-Thawdetect-Token": TOKEN}
            run = httpx.get(f"{s.base}/api/run", headers=hdr).json()
            kinds = {la["label"]: la["kind"] for la in run["layers"]}
            assert kinds == {
                "LOS rate mm/yr": "diverging",
                "seasonal amplitude pp mm": "sequential",
                **{
                    f"cumulative LOS displacement, {d} (since 2018-01-03)": "diverging"
                    for d in DISP_DATES
                },
                "DEM hillshade": "hillshade",
            }
            rate = next(la for la in run["layers"] if la["kind"] == "diverging")
            assert rate["value_range"] == [-80.0, 80.0] and rate["units"] == "mm/yr"
            assert len(rate["colorbar"]) == 11 and "path" not in rate
            assert run["accuracy"] == {"empty": "nothing confirmed yet"}
            # a tile over the scene: a real PNG from rio-tiler; asked again, it comes from the cache
            import morecantile

            w, south, e, n = rate["bounds_wgs84"]
            t = morecantile.tms.get("WebMercatorQuad").tile((w + e) / 2, (south + n) / 2, 14)
            url = f"{s.base}/tiles/{rate['index']}/{t.z}/{t.x}/{t.y}.png"
            tile = httpx.get(url, headers=hdr)
            assert tile.status_code == 200 and tile.content[:4] == b"\x89PNG"
            assert httpx.get(url, headers=hdr).content == tile.content
            assert s.app.state.review.tiles.hits >= 1
            shade = next(la for la in run["layers"] if la["kind"] == "hillshade")
            url = f"{s.base}/tiles/{shade['index']}/{t.z}/{t.x}/{t.y}.png"
            assert httpx.get(url, headers=hdr).status_code == 200
            far = f"{s.base}/tiles/{rate['index']}/14/0/0.png"
            assert httpx.get(far, headers=hdr).status_code == 204

            q = httpx.get(f"{s.base}/api/queue?status=pending&iteration=1&detector=web_toy",
                          headers=hdr).json()  # fmt: skip
            assert [r["id"] for r in q["rows"]] == [f"it01-{i:04d}" for i in range(1, 6)]
            pri = [r["pri"] for r in q["rows"]]  # the key the queue is in order of
            assert pri == sorted(pri, reverse=True) and 0 <= min(pri) <= max(pri) <= 1
            assert q["counts"]["pending"] == 5 and q["counts"]["total"] == 5
            none = httpx.get(f"{s.base}/api/queue?detector=other", headers=hdr).json()
            assert none["rows"] == []

            c = httpx.get(f"{s.base}/api/candidate/it01-0005", headers=hdr).json()
            assert c["series"]["amplitude_pp_mm"] == pytest.approx(8.0)  # A = 2·sqrt(c² + d²)
            assert c["series"]["rate_mm_yr"] == pytest.approx(
                c["evidence"]["web_toy"]["mean_rate_mm_yr"]
            )
            assert 3800 < c["terrain"]["mean_elevation_m"] < 4200
            assert 0 <= c["terrain"]["aspect_deg"] < 360
            inv = [f for f in c["neighbours"]["features"] if f["properties"]["kind"] == "inventory"]
            assert [f["properties"]["id"] for f in inv] == ["known-0001"]
            assert [f["label"] for f in c["frames"]][:2] == [
                "LOS rate mm/yr",
                "seasonal amplitude pp mm",
            ]

            # a decision by someone else (the CLI) shows up without restarting the server
            from click.testing import CliRunner

            from thawdetect.cli.main import cli

            res = CliRunner().invoke(
                cli, ["review", "decide", str(web_run), "it01-0003", "confirmed", "-r", "cli"]
            )
            assert res.exit_code == 0, res.output
            q = httpx.get(f"{s.base}/api/queue?status=confirmed", headers=hdr).json()
            assert [r["id"] for r in q["rows"]] == ["it01-0003"]
            run = httpx.get(f"{s.base}/api/run", headers=hdr).json()
            assert run["accuracy"]["overall"]["tp"] == 1
            assert run["per_iteration"][0]["confirmed"] == 1

            # undo takes back this reviewer's latest decision only
            own = {**hdr, "Origin": s.base}
            httpx.post(f"{s.base}/api/decide", json={"candidate_id": "it01-0001",
                       "decision": "unsure"}, headers=own)  # fmt: skip
            r = httpx.post(f"{s.base}/api/undo", json={}, headers=own).json()
            assert r["undone"] == ["it01-0001"]
            q = httpx.get(f"{s.base}/api/queue?status=all", headers=hdr).json()
            status = {row["id"]: row["status"] for row in q["rows"]}
            assert status["it01-0001"] == "pending" and status["it01-0003"] == "confirmed"


class TestCommand:
    def test_serve_prints_url_binds_loopback_and_needs_the_token(self, web_run):
        import httpx

        port = _free_port()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
        main = "import sys; from thawdetect.cli.main import main; main(sys.argv[1:])"
        cmd = [sys.executable, "-c", main, "review", "serve", str(web_run),
               "--port", str(port), "--reviewer", "ann", "--token", TOKEN]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=env)  # fmt: skip
        try:
            lines = []
            deadline = time.time() + 60
            while time.time() < deadline:
                line = proc.stdout.readline()
                lines.append(line)
                if line.startswith("open ") or proc.poll() is not None:
                    break
            assert lines[-1].strip() == f"open http://127.0.0.1:{port}/?token={TOKEN}", lines
            # web_toy is not installed for the CLI: its layers are missing, the page still works
            assert any("detector 'web_toy'" in x for x in lines), lines
            base = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    r = httpx.get(f"{base}/api/run")
                    break
                except httpx.ConnectError:
                    time.sleep(0.1)
            assert r.status_code == 401
            r = httpx.get(f"{base}/api/run", headers={"X-Thawdetect-Token": TOKEN})
            assert r.json()["reviewer"] == "ann"
            assert [la["kind"] for la in r.json()["layers"]] == ["hillshade"]
        finally:
            proc.terminate()
            proc.wait(10)
            proc.stdout.close()

    def test_other_host_warns(self, web_run):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
        main = "import sys; from thawdetect.cli.main import main; main(sys.argv[1:])"
        cmd = [sys.executable, "-c", main, "review", "serve", str(web_run), "--host", "127.0.0.2",
               "--port", str(_free_port()), "--read-only"]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                env=env)  # fmt: skip
        try:
            first = proc.stderr.readline()
        finally:
            proc.terminate()
            proc.wait(10)
            proc.stderr.close()
        assert first.startswith("warning: binding 127.0.0.2: anyone who can reach this address")

    def test_bad_run_dir_is_one_line(self, tmp_path):
        from click.testing import CliRunner

        from thawdetect.cli.main import cli

        res = CliRunner().invoke(cli, ["review", "serve", str(tmp_path), "--port", "1"])
        assert res.exit_code == 1
        assert res.output.strip().splitlines()[-1] == (
            f"Error: {tmp_path}: not a run directory (no ledger.gpkg)"
        )
        res = CliRunner().invoke(cli, ["review", "serve", "--help"])
        assert "--read-only" in res.output and "--host" in res.output
