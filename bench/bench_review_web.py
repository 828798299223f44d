"""Benchmark: deciding candidates through the review server on a 10,000-candidate ledger.

Builds a run ledger by hand (default 10,000 candidates: pixel-staircase polygons, each detector's
evidence and a 70-epoch InSAR series, i.e. the size of one Xia et al. iteration), starts the
review server (``thawdetect.web.create_app`` under uvicorn, as ``thawdetect review serve`` does),
and decides 100 candidates through ``POST /api/decide`` as the page does on a key press.

Printed, all measured in this run:

* server time per decision (the handler: ledger freshness check, the core ``decide``, cache
  update), and the HTTP round trip seen by the client;
* reference 1: the core ``thawdetect.core.review.decisions.decide`` called directly (the floor:
  the server's own overhead is the difference);
* reference 2: the CLI, ``thawdetect review decide RUN_DIR ID rejected`` (a new process per
  decision, as a shell loop or the QGIS-less workflow does it);
* the ratios, and the goal (< 100 ms of server time per decision).

Usage:
    python bench/bench_review_web.py [--candidates 10000] [--decisions 100] [--cli 5] [--dir D]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import geopandas as gpd
import numpy as np
from shapely.geometry import box

GOAL_MS = 100.0
CRS = "EPSG:32647"


def build_ledger(run: Path, n: int, seed: int = 0) -> Path:
    """A run directory with ``n`` pending candidates written through the ledger's transaction."""
    from thawdetect.core.plugin_api.detector import TimeSeries
    from thawdetect.core.regions import Region
    from thawdetect.core.run.ledger import Ledger

    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    geoms = []
    for i in range(n):
        x0 = 600_000.0 + (i % side) * 300.0
        y0 = 4_100_000.0 + (i // side) * 300.0
        w, h = rng.integers(3, 8, 2) * 30.0
        # a staircase outline, as rasterio.features.shapes returns (more vertices than a box)
        geoms.append(box(x0, y0, x0 + w, y0 + h).union(box(x0 + 30, y0 - 30, x0 + w - 30, y0)))
    start = date(2018, 1, 3)
    dates = [start + timedelta(days=12 * k) for k in range(70)]
    t = np.arange(70) * 12 / 365.25
    rates = rng.uniform(-80, -10, n)
    series = [
        TimeSeries(dates, list(np.round(r * t + 4 * np.cos(2 * np.pi * t), 2)),
                   fit={"a_mm": 0.0, "b_mm_yr": float(r), "c_mm": 4.0, "d_mm": 0.0},
                   fit_t0=start, label="LOS displacement (mm)").to_json()
        for r in rates
    ]  # fmt: skip
    evidence = [
        json.dumps({"insar_sbas": {"mean_rate_mm_yr": float(r), "pixel_count": 20}}) for r in rates
    ]
    gdf = gpd.GeoDataFrame(
        {
            "candidate_id": [f"it01-{i + 1:05d}" for i in range(n)],
            "iteration": 1,
            "detectors": "insar_sbas",
            "n_detectors": 1,
            "score": np.abs(rates) / 80.0,
            "status": "pending",
            "probability": None,
            "evidence_json": evidence,
            "series_json": series,
            "insar_sbas__mean_rate_mm_yr": rates,
            "area_ha": [g.area / 1e4 for g in geoms],
            "perimeter_m": [g.length for g in geoms],
        },
        geometry=geoms,
        crs=CRS,
    )
    ledger = Ledger(run, crs=CRS)
    with ledger.transaction() as txn:
        txn.write("candidates", gdf)
    manifest = {
        "region": Region(name="bench", crs=CRS).model_dump(mode="json"),
        "status": "awaiting review",
        "working_crs": CRS,
        "files": {"reference": [], "known_inventory": [], "validation": []},
        "iterations": {},
    }
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_server(run: Path, ids: list[str]) -> dict[str, list[float]]:
    import httpx
    import uvicorn

    from thawdetect.web.app import ServerConfig, create_app

    token = "bench"
    started = time.perf_counter()
    app = create_app(ServerConfig(run_dir=run, token=token, reviewer="bench"))
    startup_s = time.perf_counter() - started
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    hdr = {"X-Thawdetect-Token": token, "Origin": base}
    server_ms, wall_ms = [], []
    try:
        with httpx.Client(headers=hdr, timeout=120) as client:
            client.get(f"{base}/api/queue")  # the page's first load
            for k, cid in enumerate(ids):
                body = {"candidate_id": cid, "decision": ("confirmed", "rejected")[k % 2],
                        "probability": "high" if k % 2 == 0 else None, "note": "bench"}  # fmt: skip
                t0 = time.perf_counter()
                r = client.post(f"{base}/api/decide", json=body)
                wall_ms.append(1000 * (time.perf_counter() - t0))
                r.raise_for_status()
                server_ms.append(float(r.json()["server_ms"]))
    finally:
        server.should_exit = True
        thread.join(10)
    return {"server_ms": server_ms, "wall_ms": wall_ms, "startup_s": [startup_s]}


def bench_core(run: Path, ids: list[str]) -> list[float]:
    from thawdetect.core.review.decisions import decide

    out = []
    for cid in ids:
        t0 = time.perf_counter()
        decide(run, [cid], "rejected", reviewer="bench-core")
        out.append(1000 * (time.perf_counter() - t0))
    return out


def bench_cli(run: Path, ids: list[str]) -> list[float]:
    exe = shutil.which("thawdetect", path=str(Path(sys.executable).parent)) or "thawdetect"
    out = []
    for cid in ids:
        t0 = time.perf_counter()
        subprocess.run([exe, "review", "decide", str(run), cid, "rejected", "-r", "bench-cli"],
                       check=True, capture_output=True, env=os.environ)  # fmt: skip
        out.append(1000 * (time.perf_counter() - t0))
    return out


def _summary(name: str, ms: list[float]) -> str:
    return (
        f"{name:<44} median {statistics.median(ms):8.1f} ms   mean {statistics.fmean(ms):8.1f} ms"
        f"   p90 {np.percentile(ms, 90):8.1f} ms   (n={len(ms)})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", type=int, default=10_000)
    ap.add_argument("--decisions", type=int, default=100)
    ap.add_argument("--cli", type=int, default=5, help="decisions through the CLI (reference)")
    ap.add_argument("--core", type=int, default=10, help="direct core decide calls (reference)")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/bench_review_web"))
    a = ap.parse_args()
    shutil.rmtree(a.dir, ignore_errors=True)
    template = a.dir / "template"
    t0 = time.perf_counter()
    build_ledger(template, a.candidates)
    size_mb = (template / "ledger.gpkg").stat().st_size / 1e6
    print(f"ledger: {a.candidates} candidates, {size_mb:.1f} MB ({time.perf_counter() - t0:.1f} s)")

    runs = {}
    for name in ("server", "core", "cli"):
        runs[name] = a.dir / name
        shutil.copytree(template, runs[name])
    ids = [f"it01-{i + 1:05d}" for i in range(a.candidates)]
    srv = bench_server(runs["server"], ids[: a.decisions])
    core = bench_core(runs["core"], ids[: a.core])
    cli = bench_cli(runs["cli"], ids[: a.cli]) if a.cli else []

    print(f"server start-up (ledger read, layers): {srv['startup_s'][0]:.1f} s")
    print(_summary("server time per decision (POST /api/decide)", srv["server_ms"]))
    print(_summary("HTTP round trip per decision (client)", srv["wall_ms"]))
    print(_summary("reference: core decide() in-process", core))
    if cli:
        print(_summary("reference: CLI 'review decide' (new process)", cli))
    s = statistics.median(srv["server_ms"])
    c = statistics.median(core)
    print(f"server / core decide: {s / c:.2f}x  (server overhead {s - c:+.1f} ms per decision)")
    if cli:
        print(f"CLI / server: {statistics.median(cli) / s:.1f}x faster through the server")
    verdict = "met" if s < GOAL_MS else "NOT met"
    print(f"goal < {GOAL_MS:.0f} ms server time per decision: {verdict} ({s:.1f} ms median)")


if __name__ == "__main__":
    main()
