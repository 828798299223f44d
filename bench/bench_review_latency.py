"""Benchmark: the review page's keypress-to-shown latency, in a real browser (issue 25).

Goal (issue 25): from a decision key to the next candidate fully shown, p90 <= 100 ms (warm), and
<= 300 ms until its map tiles are drawn.

What runs: the engine makes a run with a small InSAR-like detector defined here (``latency_toy``:
a LOS-rate GeoTIFF thresholded into ``--candidates`` slumps, a seasonal-amplitude frame, a DEM
for the hillshade and terrain, a 60-epoch series per candidate; evidence drawn by the engine, or
lazily with ``--evidence lazy``), stopped awaiting review. The review server
(``thawdetect.web.create_app`` under uvicorn, as ``thawdetect review serve`` does) serves a copy
of it; Debian's chromium (headless, through Playwright) opens the page and the bench presses the
decision keys: ``n`` (reject), and ``1`` then ``y`` (confirm, probability high), in turn. Each key
press is timed **in the page** (the browser's clock): a capturing ``keydown`` listener on
``window`` takes the key event's time stamp, then a MutationObserver, ``load`` / ``error``
listeners and a requestAnimationFrame loop check

* **shown**: ``body[data-cand]`` and the header name a new candidate, its first evidence frame
  (``#frame-img``) is its own and loaded (``complete && naturalWidth > 0``), and its outline is
  drawn on the map (the yellow SVG path, with a size);
* **tiles**: every tile image of the map (hillshade and data layer) of the new view is
  ``complete`` (loaded, or answered 204 where the layer has no data).

Between key presses the bench waits until the page's requests are over (the prefetch of the next
candidates included) and at least ``--dwell`` ms: a reviewer looks at a candidate for longer.

Reference, same run: the page has no switch to turn its prefetch off (``PREFETCH_AHEAD`` is a
constant inside the page's closure), so the bench blocks the prefetch in the browser's network
stack (CDP ``Network.setBlockedURLs``: the candidates after the next one are blocked while the
next one is not): every candidate is then shown cold, its first view happening after the key press
(server caches cold, its evidence frame not in the browser's cache), on its own copy of the run,
its own server and a fresh browser context. Per mode: p50, p90, max and n for shown and tiles,
the ratio, where the time goes (from the Resource Timing entries: the decision POST, the
candidate's GET, its frame), and the goal. A JSON line closes the output; a screenshot of the page
after the last warm decision is written to the output folder.

Usage:
    python bench/bench_review_latency.py [--candidates 300] [--decisions 40] [--warmup 5]
        [--evidence eager|lazy] [--dwell 300] [--dir D] [--keep]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio
import rasterio.features
from pydantic import Field
from rasterio.transform import from_origin

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.plugins: the shared toy
from tests.plugins.rate_regions import rate_regions

from thawdetect import (
    Detector,
    DetectorConfig,
    ImageFrame,
    IterationContext,
    ReviewOutcome,
    hookimpl,
)

GOAL_SHOWN_MS = 100.0
GOAL_TILES_MS = 300.0
CRS = "EPSG:32647"
RES_M = 30.0
ORIGIN = (610_000.0, 4_196_000.0)
PITCH_PX = 16  # slumps on a grid, this many pixels apart
TOKEN = "bench-latency-token"
VIEWPORT = {"width": 1600, "height": 950}
YELLOW = "#ffd23f"  # the page's candidate outline

# -- a small InSAR-like detector (as tests/test_review_web.py's web_toy, one iteration) -----------


class LatencyToyConfig(DetectorConfig):
    rate_file: Path
    amplitude_file: Path
    dem_file: Path
    abs_rate_mm_yr: float = Field(30.0, gt=0)


class LatencyToy(Detector):
    name = "latency_toy"
    description = "threshold a LOS-rate GeoTIFF (review latency bench)"
    config_model = LatencyToyConfig
    config: LatencyToyConfig

    def propose(self, context: IterationContext) -> gpd.GeoDataFrame:
        return rate_regions(self.config.rate_file, self.config.abs_rate_mm_yr)

    def next_config(self, outcome: ReviewOutcome) -> LatencyToyConfig | None:
        return None

    def image_frames(self, context: IterationContext) -> list[ImageFrame]:
        return [
            ImageFrame("LOS rate mm/yr", self.config.rate_file, bands=(1,), value_range=(-80, 80),
                       units="mm/yr"),
            ImageFrame("seasonal amplitude pp mm", self.config.amplitude_file, bands=(1,),
                       units="mm"),
        ]  # fmt: skip


@hookimpl
def thawdetect_register_detectors(register: Any) -> None:
    register(LatencyToy)


@functools.cache
def bench_host() -> Any:
    from thawdetect.core.plugin_api.host import PluginHost

    return PluginHost(plugins=[("latency_toy", sys.modules[__name__])])


def _tif(path: Path, arr: np.ndarray) -> Path:
    profile = dict(driver="GTiff", width=arr.shape[1], height=arr.shape[0], count=1,
                   dtype="float32", crs=CRS, transform=from_origin(*ORIGIN, RES_M, RES_M),
                   nodata=float("nan"), tiled=True, blockxsize=256, blockysize=256)  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr.astype("float32")[None])
    return path


def make_run(root: Path, n: int, evidence: str, seed: int = 0) -> Path:
    """The engine's run with ``n`` candidates, stopped awaiting review of iteration 1."""
    from thawdetect.core.config import RunConfig
    from thawdetect.core.regions import Region
    from thawdetect.core.run.engine import Engine

    root.mkdir(parents=True, exist_ok=True)
    side = int(np.ceil(np.sqrt(n)))
    size = side * PITCH_PX + PITCH_PX
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    rng = np.random.default_rng(seed)
    rate = rng.normal(0, 4.0, (size, size))
    amp = rng.uniform(2.0, 6.0, (size, size))
    for i in range(n):
        r = PITCH_PX + (i // side) * PITCH_PX + rng.integers(-2, 3)
        c = PITCH_PX + (i % side) * PITCH_PX + rng.integers(-2, 3)
        rad = rng.uniform(2.5, 4.5)
        disk = (yy - r) ** 2 + ((xx - c) * rng.uniform(0.7, 1.3)) ** 2 <= rad**2
        rate[disk] = rng.uniform(-80, -35) + rng.normal(0, 2.0, int(disk.sum()))
        amp[disk] = 12.0
    dem = 3800 + 3.0 * yy + 150 * np.sin(xx / 12.0) * np.cos(yy / 15.0)
    files = {"rate_file": _tif(root / "rate_mm_yr.tif", rate),
             "amplitude_file": _tif(root / "amplitude_pp_mm.tif", amp),
             "dem_file": _tif(root / "dem.tif", dem)}  # fmt: skip
    cfg = RunConfig(
        region=Region(name="latency", crs=CRS),
        detectors={"latency_toy": {k: str(v) for k, v in files.items()}},
        reviewer="manual",
        max_iterations=1,
        evidence="lazy" if evidence == "lazy" else True,
    )
    run = root / "run"
    result = Engine(cfg, run, bench_host()).run()
    if result.status != "awaiting review":
        raise RuntimeError(f"the bench run stopped as '{result.status}', not awaiting review")
    return run


# -- the server and the browser ---------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(run: str, port: int, result: str) -> None:
    """The server process: the app on ``run``; its decisions' server times to ``result``."""
    import uvicorn

    from thawdetect.web.app import ServerConfig, create_app

    app = create_app(ServerConfig(run_dir=Path(run), token=TOKEN, reviewer="bench"), bench_host())
    # uvicorn re-raises the SIGTERM it stopped on once done: let that one return, so the figures
    # are written
    signal.signal(signal.SIGTERM, lambda *_: None)
    uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")).run()
    Path(result).write_text(json.dumps(app.state.review.decision_seconds))


class LiveServer:
    """The review app under uvicorn in its own process, as ``thawdetect review serve`` runs it
    (not a thread of this process: the browser driver's Python shares no GIL with it)."""

    def __init__(self, run: Path) -> None:
        import multiprocessing as mp

        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.result = run.parent / f"{run.name}_server_decide_s.json"
        self.proc = mp.get_context("spawn").Process(
            target=_serve, args=(str(run), self.port, str(self.result)), daemon=True
        )

    def __enter__(self) -> LiveServer:
        import httpx

        self.proc.start()
        deadline = time.time() + 120
        while True:
            try:
                httpx.get(f"{self.base}/api/version", headers={"X-Thawdetect-Token": TOKEN},
                          timeout=5).raise_for_status()  # fmt: skip
                return self
            except httpx.HTTPError:
                if time.time() > deadline or not self.proc.is_alive():
                    raise RuntimeError("review server did not start") from None
                time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()  # SIGTERM: uvicorn shuts down, the process writes its figures
        self.proc.join(30)

    def decision_ms(self) -> list[float]:
        try:
            return [1000 * s for s in json.loads(self.result.read_text())]
        except (OSError, ValueError):
            return []

    def queue_ids(self) -> list[str]:
        import httpx

        r = httpx.get(f"{self.base}/api/queue?status=pending",
                      headers={"X-Thawdetect-Token": TOKEN}, timeout=60)  # fmt: skip
        r.raise_for_status()
        return [row["id"] for row in r.json()["rows"]]


def chromium_path() -> str:
    path = os.environ.get("THAWDETECT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        sys.exit("Debian's chromium is missing: run scripts/setup.sh (apt-get install chromium)")
    return path


#: Installed before each key press (page.evaluate; the page's CSP forbids eval, not this): times
#: the next keydown to "shown" and to "tiles", in the page's clock. The result is a promise kept
#: in ``window.__latency`` (read by the next evaluate).
ARM_JS = """
(args) => {
  performance.clearResourceTimings();
  performance.setResourceTimingBufferSize(5000);
  const st = { t0: null, input_delay_ms: null, shown_ms: null, tiles_ms: null, id: null,
               frame: false, n_tiles: 0, tile_errors: 0, why: null };
  let done = false;
  window.__latency = new Promise((resolve) => {
    const onKey = (ev) => {
      if (st.t0 !== null || ev.key !== args.key) return;
      const now = performance.now();
      const ts = ev.timeStamp > 0 && ev.timeStamp <= now ? ev.timeStamp : now;
      st.t0 = ts; st.input_delay_ms = now - ts;
    };
    window.addEventListener("keydown", onKey, true);
    const shownNow = () => {
      const id = document.body.dataset.cand;
      if (!id || id === args.old) return false;
      const head = document.querySelector("#cand-head .cid");
      if (!head || head.textContent !== id) return false;
      const img = document.getElementById("frame-img");
      if (img) {
        const own = "/api/candidate/" + encodeURIComponent(id) + "/frame/";
        if (!img.src.includes(own) || !img.complete || !img.naturalWidth) return false;
        st.frame = true;
      }
      const path = document.querySelector('#map path[stroke="' + args.yellow + '"]');
      if (!path || !path.getAttribute("d") || path.getAttribute("d") === "M0 0") return false;
      const r = path.getBoundingClientRect();
      if (r.width <= 0 && r.height <= 0) return false;
      st.id = id;
      return true;
    };
    const tilesNow = () => {
      const imgs = document.querySelectorAll("#map img.leaflet-tile");
      if (!imgs.length) return false;
      let errors = 0;
      for (const im of imgs) { if (!im.complete) return false; if (!im.naturalWidth) errors += 1; }
      st.n_tiles = imgs.length; st.tile_errors = errors;
      return true;
    };
    const mo = new MutationObserver(() => check());
    const finish = (why) => {
      if (done) return;
      done = true; st.why = why;
      mo.disconnect();
      window.removeEventListener("keydown", onKey, true);
      document.removeEventListener("load", check, true);
      document.removeEventListener("error", check, true);
      clearTimeout(timer);
      const t0 = st.t0 === null ? 0 : st.t0;
      st.entries = performance.getEntriesByType("resource")
        .filter((e) => e.startTime >= t0 - 1)
        .map((e) => ({ path: new URL(e.name).pathname, start: e.startTime - t0,
                       end: e.responseEnd - t0, size: e.transferSize }));
      resolve(st);
    };
    function check() {
      if (done || st.t0 === null) return;
      const now = performance.now();
      if (st.shown_ms === null && shownNow()) st.shown_ms = now - st.t0;
      if (st.shown_ms !== null && st.tiles_ms === null && tilesNow()) st.tiles_ms = now - st.t0;
      if (st.shown_ms !== null && st.tiles_ms !== null) finish("ok");
    }
    mo.observe(document.body, { subtree: true, childList: true, attributes: true,
                                attributeFilter: ["data-cand", "src", "class", "d"] });
    document.addEventListener("load", check, true);
    document.addEventListener("error", check, true);
    const loop = () => { check(); if (!done) requestAnimationFrame(loop); };
    requestAnimationFrame(loop);
    const timer = setTimeout(() => finish("timeout"), args.timeout_ms);
  });
  return true;
}
"""


def _blocked(ids: list[str]) -> list[str]:
    return [p for cid in ids for p in (f"*/api/candidate/{cid}", f"*/api/candidate/{cid}/*")]


def measure(
    run: Path,
    mode: str,
    decisions: int,
    dwell_ms: float,
    browser: Any,
    shot: Path | None = None,
    timeout_ms: float = 30_000,
) -> dict[str, Any]:
    """Press ``decisions`` decision keys on a page serving ``run``; the page's own timings.

    ``mode``: ``warm`` (the page as it is) or ``cold`` (its prefetch blocked in the browser).
    """
    with LiveServer(run) as server:
        ids = server.queue_ids()
        if len(ids) < decisions + 4:
            raise SystemExit(f"{len(ids)} candidates: too few for {decisions} decisions")
        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        inflight = {"n": 0, "last": time.perf_counter()}
        blocked_seen: list[str] = []

        def _start(_: Any) -> None:
            inflight["n"] += 1
            inflight["last"] = time.perf_counter()

        def _end(req: Any) -> None:
            inflight["n"] = max(0, inflight["n"] - 1)
            inflight["last"] = time.perf_counter()

        page.on("request", _start)
        page.on("requestfinished", _end)
        page.on("requestfailed", _end)
        cdp = context.new_cdp_session(page)
        cdp.on(
            "Network.loadingFailed",
            lambda ev: blocked_seen.append(ev) if ev.get("blockedReason") else None,
        )
        cdp.send("Network.enable")  # both modes, so that both pay for it
        if mode == "cold":  # the candidates the first view would prefetch
            cdp.send("Network.setBlockedURLs", {"urls": _blocked(ids[1:5])})

        def idle(min_ms: float) -> None:
            t_start = time.perf_counter()
            deadline = t_start + 30
            while time.perf_counter() < deadline:
                quiet = 1000 * (time.perf_counter() - inflight["last"])
                waited = 1000 * (time.perf_counter() - t_start)
                if inflight["n"] == 0 and quiet >= 200 and waited >= min_ms:
                    return
                page.wait_for_timeout(25)

        page.goto(f"{server.base}/?token={TOKEN}")
        page.wait_for_selector("body[data-ready='1']", state="attached", timeout=60_000)
        page.wait_for_selector(f"body[data-cand='{ids[0]}']", state="attached", timeout=60_000)
        idle(1000)
        rows: list[dict[str, Any]] = []
        for k in range(decisions):
            if mode == "cold":  # the next one may load; the ones after it (prefetch) may not
                cdp.send("Network.setBlockedURLs", {"urls": _blocked(ids[k + 2 : k + 6])})
            confirm = k % 2 == 1
            if confirm:
                page.keyboard.press("1")  # probability high, then y records it
            key = "y" if confirm else "n"
            page.evaluate(ARM_JS, {"old": ids[k], "key": key, "yellow": YELLOW,
                                   "timeout_ms": timeout_ms})  # fmt: skip
            page.keyboard.press(key)
            r = page.evaluate("() => window.__latency")
            r["expected"] = ids[k + 1]
            r["key"] = key
            rows.append(r)
            if r["why"] != "ok" or r["id"] != ids[k + 1]:
                print(f"  {mode} #{k}: {r['why']}, shown {r['id']} (expected {ids[k + 1]})")
            idle(dwell_ms)
        if shot is not None:
            page.screenshot(path=str(shot))
        context.close()
    return {
        "rows": rows,
        "errors": errors,
        "blocked": blocked_seen,
        "server_decide_ms": server.decision_ms(),
    }


# -- report -----------------------------------------------------------------------------------


def _pct(ms: list[float], q: float) -> float:
    return float(np.percentile(ms, q)) if ms else float("nan")


def _stats(ms: list[float]) -> dict[str, float]:
    return {"p50": _pct(ms, 50), "p90": _pct(ms, 90), "max": max(ms, default=float("nan")),
            "n": len(ms)}  # fmt: skip


def _line(name: str, s: dict[str, float]) -> str:
    return (f"{name:<34} p50 {s['p50']:7.1f} ms   p90 {s['p90']:7.1f} ms   "
            f"max {s['max']:7.1f} ms   (n={s['n']})")  # fmt: skip


def _breakdown(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Medians (ms after the key) of where the time goes, from the Resource Timing entries."""
    parts: dict[str, list[float]] = {"decide POST done": [], "candidate GET start": [],
                                     "candidate GET done": [], "page work after it": [],
                                     "frame done (when fetched)": [], "first tile asked": [],
                                     "last tile done": []}  # fmt: skip
    frames_fetched = 0
    for r in rows:
        cid = r["id"]
        es = r["entries"]
        dec = [e for e in es if e["path"] == "/api/decide"]
        cand = [e for e in es if e["path"] == f"/api/candidate/{cid}"]
        frame = [e for e in es if e["path"].startswith(f"/api/candidate/{cid}/frame/")]
        tiles = [e for e in es if e["path"].startswith("/tiles/")]
        if dec:
            parts["decide POST done"].append(dec[0]["end"])
        if cand:
            parts["candidate GET start"].append(cand[0]["start"])
            parts["candidate GET done"].append(cand[0]["end"])
            parts["page work after it"].append(r["shown_ms"] - cand[0]["end"])
        if frame:
            frames_fetched += 1
            parts["frame done (when fetched)"].append(frame[0]["end"])
        if tiles:
            parts["first tile asked"].append(min(e["start"] for e in tiles))
            parts["last tile done"].append(max(e["end"] for e in tiles))
    out = {k: statistics.median(v) for k, v in parts.items() if v}
    out["frames fetched after the key"] = frames_fetched
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", type=int, default=300)
    ap.add_argument("--decisions", type=int, default=40, help="key presses per mode")
    ap.add_argument("--warmup", type=int, default=5, help="first key presses not counted")
    ap.add_argument("--evidence", choices=("eager", "lazy"), default="eager",
                    help="drawn by the engine (a run's default) or on first show")  # fmt: skip
    ap.add_argument("--dwell", type=float, default=300.0,
                    help="ms at least between a candidate shown and the next key (after the "
                         "page's requests are over)")  # fmt: skip
    ap.add_argument("--dir", type=Path, default=None, help="output folder (kept)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary output folder")
    a = ap.parse_args()
    if a.decisions <= a.warmup:
        ap.error("--decisions must be larger than --warmup")
    from playwright.sync_api import sync_playwright

    out = a.dir if a.dir is not None else Path(tempfile.mkdtemp(prefix="bench_review_latency_"))
    if a.dir is not None:
        shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        template = make_run(out / "scene", a.candidates, a.evidence)
        print(f"run: {a.candidates} candidates, evidence {a.evidence} "
              f"({time.perf_counter() - t0:.1f} s to make)")  # fmt: skip
        shot = out / "review_page.png"
        res: dict[str, dict[str, Any]] = {}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), headless=True)
            for mode in ("warm", "cold"):
                run = out / f"run_{mode}"
                shutil.copytree(template, run)
                t1 = time.perf_counter()
                res[mode] = measure(run, mode, a.decisions, a.dwell, browser,
                                    shot if mode == "warm" else None)  # fmt: skip
                print(f"{mode}: {a.decisions} key presses in {time.perf_counter() - t1:.1f} s")
            browser.close()
        report(res, a, shot)
    finally:
        if a.dir is None and not a.keep:
            shutil.rmtree(out, ignore_errors=True)
            print(f"(output folder {out} deleted: --keep or --dir keeps it)")


def report(res: dict[str, dict[str, Any]], a: argparse.Namespace, shot: Path) -> None:
    summary: dict[str, Any] = {"candidates": a.candidates, "evidence": a.evidence,
                               "decisions": a.decisions, "warmup": a.warmup}  # fmt: skip
    print()
    print(f"keypress -> shown, measured in the page (first {a.warmup} key presses not counted)")
    for mode, r in res.items():
        rows = [x for x in r["rows"][a.warmup :] if x["why"] == "ok"]
        failed = len(r["rows"][a.warmup :]) - len(rows)
        label = "warm (page as it is)" if mode == "warm" else "reference: prefetch blocked"
        shown = _stats([x["shown_ms"] for x in rows])
        tiles = _stats([x["tiles_ms"] for x in rows])
        print(f"{label}:")
        print(_line("  next candidate shown", shown))
        print(_line("  its map tiles drawn", tiles))
        srv = _stats(r["server_decide_ms"][a.warmup :])
        print(_line("  server time of the decision", srv))
        bd = _breakdown(rows)
        print("  where the time goes (medians, ms after the key): " + ", ".join(
            f"{k} {v}/{len(rows)}" if k.startswith("frames fetched") else f"{k} {v:.1f}"
            for k, v in bd.items()))  # fmt: skip
        delay = statistics.median([x["input_delay_ms"] for x in rows]) if rows else float("nan")
        n_tiles = statistics.median([x["n_tiles"] for x in rows]) if rows else 0
        print(f"  key event to page handler {delay:.1f} ms (median, included); "
              f"{n_tiles:.0f} tile images in view; "
              f"{sum(x['frame'] for x in rows)}/{len(rows)} with an evidence frame"
              + (f"; {failed} key presses timed out or showed another candidate" if failed else "")
              + (f"; {len(r['blocked'])} prefetch requests blocked" if mode == "cold" else "")
              + (f"; page errors: {r['errors']}" if r["errors"] else ""))  # fmt: skip
        summary[mode] = {"shown_ms": shown, "tiles_ms": tiles, "server_decide_ms": srv,
                         "breakdown_ms": bd, "failed": failed,
                         "blocked_prefetch": len(r["blocked"])}  # fmt: skip
    w, c = summary["warm"], summary["cold"]
    print(f"reference / warm: shown p50 {c['shown_ms']['p50'] / w['shown_ms']['p50']:.2f}x, "
          f"p90 {c['shown_ms']['p90'] / w['shown_ms']['p90']:.2f}x; "
          f"tiles p50 {c['tiles_ms']['p50'] / w['tiles_ms']['p50']:.2f}x, "
          f"p90 {c['tiles_ms']['p90'] / w['tiles_ms']['p90']:.2f}x")  # fmt: skip
    ok_shown = w["shown_ms"]["p90"] <= GOAL_SHOWN_MS
    ok_tiles = w["tiles_ms"]["p90"] <= GOAL_TILES_MS
    print(f"goal p90 <= {GOAL_SHOWN_MS:.0f} ms to shown (warm): "
          f"{'met' if ok_shown else 'NOT met'} ({w['shown_ms']['p90']:.1f} ms)")  # fmt: skip
    print(f"goal p90 <= {GOAL_TILES_MS:.0f} ms to its tiles (warm): "
          f"{'met' if ok_tiles else 'NOT met'} ({w['tiles_ms']['p90']:.1f} ms)")  # fmt: skip
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f} (1 min) on {os.cpu_count()} CPUs: the page, "
          "the server and the browser share them")  # fmt: skip
    summary["loadavg_1min"] = load[0]
    print(f"screenshot of the page after the last warm decision: {shot}")
    summary["goal_shown_met"] = ok_shown
    summary["goal_tiles_met"] = ok_tiles
    summary["screenshot"] = str(shot)
    print(json.dumps(summary, default=float))


if __name__ == "__main__":
    main()
