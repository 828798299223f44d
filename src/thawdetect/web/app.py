"""The review server: a FastAPI app over one run directory.

Security model (a local tool that can write decisions):

* a random token is required on **every** request: ``X-Thawdetect-Token`` header (or
  ``Authorization: Bearer``), else the ``token`` query parameter, else the ``thawdetect_token``
  cookie that the first page load sets (HttpOnly, SameSite=Strict);
* POSTs need the token in the header (a cookie alone is not enough) and an ``Origin`` equal to
  the server's own; requests whose ``Host`` is not the served one are refused (DNS rebinding);
* no path the browser sends reaches the file system: rasters are an index into the run's known
  layers, evidence frames an index into a known candidate's frame list, static files a fixed
  table built at start-up;
* ``read_only=True`` refuses every write.

Decisions go through :mod:`thawdetect.core.review.decisions` (the CLI's code path) and are in the
ledger before the response is sent.

One module (~540 lines) on purpose: every route sits beside the security checks it relies on, so
a reader can audit the whole surface in one place; tiles live in ``layers.py``, the run's state
(queue, candidates, decisions) in ``state.py``.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route functions' annotations
# (``Request``, imported inside :func:`create_app`) at run time.
import inspect
import json
import logging
import mimetypes
import secrets
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from thawdetect.core.errors import InputError, ThawdetectError
from thawdetect.web.layers import Layer, TileRenderer, discover_layers
from thawdetect.web.state import (
    CORE_COLUMNS,
    PART_OF_CONFIRM_M,
    RunState,
    clean,
    own_evidence,
    series_view,
)

log = logging.getLogger(__name__)

TOKEN_HEADER = "x-thawdetect-token"
TOKEN_COOKIE = "thawdetect_token"
STATIC_PACKAGE = "thawdetect.web"


@dataclass
class ServerConfig:
    """How the app was started (the CLI fills it).

    Attributes:
        run_dir: the run directory.
        token: the access token (random when empty).
        reviewer: name recorded with every decision.
        read_only: refuse every write.
        allowed_hosts: ``Host`` header names accepted (without port).
        any_ip_host: also accept any IP address as ``Host`` (a server bound to 0.0.0.0 / ::
            answers on every address of the machine; a DNS-rebinding page sends a name, not an
            address, so the check against names still holds).
    """

    run_dir: Path
    token: str = ""
    reviewer: str = "unknown"
    read_only: bool = False
    allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
    messages: list[str] = field(default_factory=list)
    any_ip_host: bool = False


#: Largest request body accepted (a decision with a reviewed outline is a few kB).
MAX_BODY_BYTES = 2 * 1024 * 1024


def _is_ip(name: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _static_table() -> dict[str, Path]:
    """Every file under the package's ``static/`` folder, by its relative name."""
    root = resources.files(STATIC_PACKAGE) / "static"
    table: dict[str, Path] = {}
    base = Path(str(root))
    for p in base.rglob("*"):
        if p.is_file():
            table[p.relative_to(base).as_posix()] = p
    return table


def _frame_label(path: Path) -> str:
    if path.suffix == ".gif":
        return f"{path.stem.replace('_', ' ')} (animated)"
    stem = path.stem
    parts = stem.split("_", 2)
    text = parts[2] if len(parts) == 3 and parts[0] == "frame" else stem
    return text.replace("_", " ").replace("mm yr", "mm/yr")


class ReviewApp:
    """State behind the routes (one per served run)."""

    def __init__(self, config: ServerConfig, host: Any = None) -> None:
        self.config = config
        if not config.token:
            config.token = secrets.token_urlsafe(24)
        self.state = RunState(config.run_dir)
        if host is None:
            from thawdetect.core.plugin_api.host import PluginHost

            host = PluginHost()
        self.layers: list[Layer] = discover_layers(
            config.run_dir, self.state.manifest, host, config.messages
        )
        self.tiles = TileRenderer(self.layers)
        self._host = host
        self._manifest_stamp = _file_stamp(config.run_dir / "manifest.json")
        self.static = _static_table()
        self._terrain: dict[str, dict[str, Any]] = {}
        self._roads: tuple[str, Any] | None = None  # (path, frame in the run's CRS)
        self._frames: dict[str, list[Path]] = {}
        self._accuracy: tuple[Any, dict[str, Any] | None] = (None, None)
        self._write_lock = threading.Lock()
        self.decision_seconds: list[float] = []

    # -- following the run ------------------------------------------------------------------------

    def follow(self) -> None:
        """Pick up what changed on disk since the last request, without a restart.

        The ledger (another reviewer's decisions, a resumed run's new candidates) is re-read
        when it changed; a changed ``manifest.json`` (a resumed run's new iteration) adds that
        iteration's layers. Layers already served keep their index, so tiles the browser cached
        stay right; a layer that could not be read yet is tried again at the next change.
        """
        with self.state.lock:
            self.state.fresh()
            stamp = _file_stamp(self.config.run_dir / "manifest.json")
            if stamp == self._manifest_stamp:
                return
            self._manifest_stamp = stamp
            self.state.manifest = self.state._manifest()
            messages: list[str] = []
            found = discover_layers(self.config.run_dir, self.state.manifest, self._host, messages)
            known = {_layer_key(la) for la in self.layers}
            for la in found:
                if _layer_key(la) not in known:
                    la.index = len(self.layers)
                    self.layers.append(la)  # the tile renderer holds this same list
                    known.add(_layer_key(la))
            for m in messages:
                if m not in self.config.messages:
                    self.config.messages.append(m)
            self._frames.clear()  # evidence drawn since (lazy evidence of new candidates)

    def version(self) -> dict[str, Any]:
        """What the page polls to notice a resumed run or another reviewer: cheap, no geometry."""
        self.follow()
        st = self.state
        its = sorted({int(v) for v in st.cands["iteration"]}) if len(st.cands) else []
        return {
            "stamp": f"{st.stamp()}|{self._manifest_stamp}|{len(self.layers)}",
            "counts": st.counts(),
            "iteration_numbers": its,
            "status": st.manifest.status,
            "layers": len(self.layers),
        }

    # -- data views -------------------------------------------------------------------------------

    def frames(self, candidate_id: str) -> list[Path]:
        """The evidence images of a known candidate: frame PNGs, then the time-lapse GIFs.

        Evidence the run left to be drawn lazily is drawn now (not in read-only mode).
        """
        from thawdetect.core.review import evidence

        if candidate_id not in self._frames:
            paths: list[Path] = []
            ensure = getattr(evidence, "ensure_evidence", None)
            listing = getattr(evidence, "evidence_paths", None)
            try:
                if ensure is not None and not self.config.read_only:
                    paths = list(ensure(self.config.run_dir, candidate_id))
                elif listing is not None:
                    paths = list(listing(self.config.run_dir, candidate_id))
                else:
                    k = int(self.state.candidate_row(candidate_id)["iteration"])
                    d = self.config.run_dir / "iterations" / f"{k:02d}" / "evidence"
                    paths = sorted((d / candidate_id).glob("frame_*.png"))
            except (ThawdetectError, OSError, ValueError) as exc:
                log.warning("evidence of %s: %s", candidate_id, exc)
            root = self.config.run_dir.resolve()
            keep = [
                Path(p)
                for p in paths
                if root in Path(p).resolve().parents
                and (Path(p).name.startswith("frame_") or Path(p).suffix == ".gif")
            ]
            keep.sort(key=lambda p: (p.suffix == ".gif", p.name))
            self._frames[candidate_id] = keep
        return self._frames[candidate_id]

    def terrain(self, candidate_id: str) -> dict[str, Any]:
        """Elevation, slope, aspect, relief and headwall check of one candidate from the DEM."""
        if candidate_id in self._terrain:
            return self._terrain[candidate_id]
        dem = next((la for la in self.layers if la.kind == "hillshade"), None)
        out: dict[str, Any] = {}
        if dem is not None:
            try:
                from thawdetect.plugins.terrain.attributes import candidate_attributes

                row = self.state.cands.iloc[[self.state.pos[candidate_id]]][["geometry"]]
                attrs = candidate_attributes(row, dem.path).iloc[0]
                for col in (
                    "mean_elevation_m",
                    "mean_slope_deg",
                    "aspect_deg",
                    "relief_m",
                    "headwall_upslope",
                ):
                    out[col] = clean(attrs[col])
            except (ThawdetectError, ImportError, OSError, ValueError, Warning) as exc:
                out["error"] = " ".join(str(exc).split())[:200]
        row = self.state.candidate_row(candidate_id)
        for col in row.index:
            name = str(col)
            if "near_road" in name or "road_distance" in name or "headwall" in name:
                out[name] = clean(row[col])
        roads = self._road_fields(candidate_id)
        if "error" in roads and "error" in out:
            roads["error"] = f"{out['error']}; roads: {roads['error']}"
        out.update(roads)
        self._terrain[candidate_id] = out
        return out

    def _road_fields(self, candidate_id: str) -> dict[str, Any]:
        """Distance from the candidate's centroid to the run's roads (its config's ``roads``,
        else its region's) and the near-road flag (``near_road_m``, Xia et al.: 500 m); {} when
        the run names no roads."""
        import pandas as pd

        from thawdetect.core.inventory import manifest_roads, road_fields

        path, near_m = manifest_roads(self.state.manifest)  # not read again per candidate
        if path is None:
            return {}
        try:
            if self._roads is None or self._roads[0] != path:
                from thawdetect.core.vector import read_vector

                self._roads = (path, read_vector(path, crs=self.state.cands.crs, what="roads"))
            row = self.state.cands.iloc[[self.state.pos[candidate_id]]][["geometry"]]
            f = road_fields(row, self._roads[1], near_m).iloc[0]
        except (ThawdetectError, OSError, ValueError) as exc:
            return {"error": " ".join(str(exc).split())[:200]}
        near = f["near_road"]
        return {
            "road_distance_m": clean(f["road_distance_m"]),
            "near_road": None if near is pd.NA else bool(near),
            "near_road_m": near_m,
        }

    def candidate(self, candidate_id: str) -> dict[str, Any]:
        """Everything the evidence panel shows for one candidate."""
        st = self.state
        row = st.candidate_row(candidate_id)
        geom_wgs = st.cands_wgs.iloc[st.pos[candidate_id]]
        attrs = {c: clean(row[c]) for c in CORE_COLUMNS if c in row.index}
        c = geom_wgs.representative_point()
        attrs["lon"], attrs["lat"] = round(c.x, 6), round(c.y, 6)
        evidence: dict[str, Any] = {}
        if isinstance(row.get("evidence_json"), str) and row["evidence_json"]:
            try:
                evidence = json.loads(row["evidence_json"])
            except json.JSONDecodeError:
                evidence = {}
        evidence = own_evidence(evidence, row.get("detectors"))
        k = int(row["iteration"])
        layers = [la.index for la in self.layers if la.iteration in (0, k)]
        paths = self.frames(candidate_id)
        frames = [{"index": i, "label": _frame_label(p)} for i, p in enumerate(paths)]
        return clean(
            {
                "attributes": attrs,
                "geometry": geom_wgs.__geo_interface__,
                "bounds": list(geom_wgs.bounds),
                "reviewed_outline": st.reviewed_outline(candidate_id),
                "evidence": evidence,
                "series": series_view(row.get("series_json")),
                "terrain": self.terrain(candidate_id),
                "frames": frames,
                "layers": layers,
                "layer_defs": [self.layers[i].public() for i in layers],
                "neighbours": st.neighbours(candidate_id),
                "history": st.history(candidate_id),
            }
        )

    def accuracy(self) -> dict[str, Any] | None:
        """Accuracy so far against the run's validation points (cached per ledger state).

        The figures are :func:`~thawdetect.core.accuracy.scoring.score_run`'s, the function
        ``thawdetect run`` and ``thawdetect accuracy --run`` call, with the run's own tolerance
        and label column: points labelled "not landslide" are never misses, so N is the CLI's.
        """
        paths = [p for p in self.state.manifest.files.validation if p]
        paths = [p for p in paths if Path(p).is_file()]
        if not paths:
            return None
        stamp = self.state.stamp()
        if self._accuracy[0] == stamp:
            return self._accuracy[1]
        if not (self.state.cands["status"] == "confirmed").any():
            out: dict[str, Any] | None = {"empty": "nothing confirmed yet"}
            self._accuracy = (stamp, out)
            return out
        try:
            from thawdetect.core.accuracy.scoring import score_run

            res = score_run(self.config.run_dir)
            out = clean(
                {
                    "validation": [Path(p).name for p in paths],
                    "overall": res["overall"],
                    "proposed": res["proposed"],
                    "per_iteration": res["per_iteration"],
                    "tolerance_m": res.get("tolerance_m"),
                    "label_column": res.get("label_column"),
                    "excluded_in_known_inventory": res.get("excluded_in_known_inventory"),
                }
            )
        except ThawdetectError as exc:
            out = {"error": " ".join(str(exc).split())}
        except Exception as exc:  # scoring must never take the review page down
            log.warning("accuracy of %s failed: %r", self.config.run_dir, exc)
            out = {"error": f"accuracy unavailable ({exc.__class__.__name__}: {exc})"}
        self._accuracy = (stamp, out)
        return out

    def overview(self) -> dict[str, Any]:
        """Run summary: manifest, counts, iterations table, accuracy, layers."""
        st = self.state
        m = st.manifest
        region = m.region
        its = st.iterations.drop(columns=["thresholds_json"], errors="ignore")
        c = st.cands
        per_it = []
        for k, g in c.groupby("iteration"):
            vc = g["status"].fillna("pending").value_counts()
            conf, rej = int(vc.get("confirmed", 0)), int(vc.get("rejected", 0))
            per_it.append(
                {
                    "iteration": int(k),
                    "candidates": len(g),
                    "pending": int(vc.get("pending", 0)),
                    "confirmed": conf,
                    "rejected": rej,
                    "unsure": int(vc.get("unsure", 0)),
                    "part_of": int(vc.get("part_of", 0)),
                    "confirmed_fraction": conf / (conf + rej) if conf + rej else None,
                }
            )
        dets = sorted(
            {d for ds in c["detectors"].fillna("").astype(str) for d in ds.split(",") if d}
        )
        return clean(
            {
                "run_dir": str(self.config.run_dir),
                "name": self.config.run_dir.name,
                "region": region.get("title") or region.get("name"),
                "status": m.status,
                "stop_reason": m.stop_reason,
                "synthetic": m.synthetic,
                "working_crs": m.working_crs,
                "reviewer": self.config.reviewer,
                "read_only": self.config.read_only,
                "counts": st.counts(),
                "iterations": its.astype(object).where(its.notna(), None).to_dict(orient="records"),
                "per_iteration": per_it,
                "detectors": dets,
                "iteration_numbers": sorted({int(v) for v in c["iteration"]}),
                "accuracy": self.accuracy(),
                "layers": [la.public() for la in self.layers],
                "messages": list(self.config.messages),
                "can_undo": _supports("undo_last_decision"),
                "can_part_of": _supports_kw("decide", "part_of"),
                "can_edit_outline": _supports_kw("decide", "geometry"),
            }
        )

    # -- writes -----------------------------------------------------------------------------------

    def decide(self, body: dict[str, Any]) -> dict[str, Any]:
        """Record one decision through the core review functions (one ledger transaction)."""
        from thawdetect.core.review import decisions as core

        ids = body.get("candidate_ids") or [body.get("candidate_id")]
        ids = [str(i) for i in ids if i]
        if not ids:
            raise InputError(self.config.run_dir, "no candidate id given")
        unknown = [i for i in ids if i not in self.state.pos]
        if unknown:
            raise InputError(self.config.run_dir, f"unknown candidate ids: {', '.join(unknown)}")
        decision = str(body.get("decision", "")).strip().lower()
        kwargs: dict[str, Any] = {
            "probability": body.get("probability") or None,
            "note": str(body.get("note") or ""),
            "reviewer": self.config.reviewer,
        }
        if body.get("geometry"):
            if not _supports_kw("decide", "geometry"):
                raise InputError(self.config.run_dir, "this version cannot store edited outlines")
            kwargs["geometry"] = self._working_geometry(body["geometry"])
        if body.get("part_of"):
            if not _supports_kw("decide", "part_of"):
                raise InputError(self.config.run_dir, "this version has no 'part of' decisions")
            kwargs["part_of"] = str(body["part_of"])
            if not body.get("confirm_join"):
                self._check_join(ids, kwargs["part_of"])
        started = time.perf_counter()
        with self._write_lock, self.state.lock:
            self.state.fresh()
            before = self.state.stamp()
            rows = core.decide(self.config.run_dir, ids, decision, **kwargs)
            self.state.applied(rows, before)
        self.decision_seconds.append(time.perf_counter() - started)
        return {
            "decided": ids,
            "decision": decision,
            "counts": self.state.counts(),
            "statuses": {i: str(self.state.candidate_row(i)["status"]) for i in ids},
            "server_ms": round(1000 * self.decision_seconds[-1], 1),
        }

    def _check_join(self, ids: list[str], target: str) -> None:
        """Refuse a "part of" whose target is far or that would make a multi-part feature,
        unless the reviewer confirmed it (``confirm_join``): a click on the wrong feature
        must not silently turn a known landslide into two distant parts."""
        for cid in ids:
            check = self.state.part_of_check(cid, target)
            if check is None:
                continue
            distance, multipart = check
            far = distance > PART_OF_CONFIRM_M
            if far or multipart:
                why = [f"{distance:.0f} m away"] if far else []
                if multipart:
                    why.append(f"{target} would become a multi-part feature")
                raise NeedsConfirmation(
                    self.config.run_dir,
                    f"{cid} is not next to {target}: {' and '.join(why)}; confirm to record it",
                    details={"distance_m": round(distance, 1), "multipart": multipart},
                )

    def pixel(self, iteration: int, lon: float, lat: float) -> dict[str, Any]:
        """Values of the layers under one map point, and its series from dated stacks."""
        from thawdetect.web.pixel import pixel_report

        return pixel_report(self.layers, iteration, lon, lat)

    def undo(self) -> dict[str, Any]:
        """Undo this reviewer's latest decision still in effect."""
        from thawdetect.core.review import decisions as core

        fn = getattr(core, "undo_last_decision", None)
        if fn is None:
            raise InputError(self.config.run_dir, "this version cannot undo decisions")
        with self._write_lock, self.state.lock:
            rows = fn(self.config.run_dir, reviewer=self.config.reviewer)
            self.state.reload()
        ids = [] if rows is None else [str(i) for i in rows["candidate_id"]]
        statuses = {
            i: str(self.state.candidate_row(i)["status"] or "pending")
            for i in ids
            if i in self.state.pos
        }
        return {"undone": ids, "counts": self.state.counts(), "statuses": statuses}

    def _working_geometry(self, geojson: Any) -> Any:
        """A GeoJSON geometry (WGS84, from the map editor) in the run's working CRS."""
        import geopandas as gpd
        from shapely.geometry import shape

        try:
            g = shape(geojson)
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            raise InputError(self.config.run_dir, f"edited outline is not GeoJSON ({exc})") from exc
        return gpd.GeoSeries([g], crs=4326).to_crs(self.state.cands.crs).iloc[0]


class NeedsConfirmation(InputError):
    """A write the reviewer must confirm (HTTP 409 with ``confirm`` details)."""

    def __init__(self, path: Any, problem: str, details: dict[str, Any]) -> None:
        super().__init__(path, problem)
        self.details = details


def _file_stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _layer_key(layer: Layer) -> tuple[Any, ...]:
    return (str(layer.path), layer.bands, layer.iteration, layer.detector, layer.label)


def _supports(name: str) -> bool:
    from thawdetect.core.review import decisions as core

    return callable(getattr(core, name, None))


def _supports_kw(name: str, kw: str) -> bool:
    from thawdetect.core.review import decisions as core

    fn = getattr(core, name, None)
    return fn is not None and kw in inspect.signature(fn).parameters


# -- the ASGI app ---------------------------------------------------------------------------------


def create_app(config: ServerConfig, host: Any = None) -> Any:
    """The FastAPI application serving one run.

    Args:
        config: server settings (token filled in when empty).
        host: plugin host used to find the detectors' layers (default: every installed plugin).

    Raises:
        InputError: ``config.run_dir`` is not a run directory.
        MissingDependencyError: the ``web`` extra is not installed.
    """
    try:
        from fastapi import Body, FastAPI, Request
        from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from thawdetect.core.errors import MissingDependencyError

        raise MissingDependencyError("fastapi", "web", "the review server") from exc

    rapp = ReviewApp(config, host)
    app = FastAPI(title="thawdetect review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.review = rapp

    def _token_of(request: Request) -> tuple[str, str]:
        h = request.headers.get(TOKEN_HEADER, "")
        if not h:
            auth = request.headers.get("authorization", "")
            if auth.lower().startswith("bearer "):
                h = auth[7:].strip()
        if h:
            return h, "header"
        q = request.query_params.get("token", "")
        if q:
            return q, "query"
        return request.cookies.get(TOKEN_COOKIE, ""), "cookie"

    def _ok(given: str) -> bool:
        return bool(given) and secrets.compare_digest(given.encode(), config.token.encode())

    @app.middleware("http")
    async def security(request: Request, call_next: Any) -> Any:
        host_name = (request.headers.get("host") or "").rsplit(":", 1)[0].strip("[]")
        if host_name not in config.allowed_hosts and not (config.any_ip_host and _is_ip(host_name)):
            return JSONResponse({"error": f"host '{host_name}' not served"}, status_code=403)
        given, where = _token_of(request)
        if not _ok(given):
            return JSONResponse(
                {"error": "missing or wrong token: open the URL 'thawdetect review serve' printed"},
                status_code=401,
            )
        if request.method not in ("GET", "HEAD"):
            length = request.headers.get("content-length", "")
            if not length.isdigit():
                return JSONResponse({"error": "a write needs a Content-Length"}, status_code=411)
            if int(length) > MAX_BODY_BYTES:
                return JSONResponse(
                    {"error": f"request body over {MAX_BODY_BYTES // 1024 // 1024} MB"},
                    status_code=413,
                )
            if where != "header":
                return JSONResponse({"error": "writes need the token header"}, status_code=403)
            origin = request.headers.get("origin", "")
            own = f"{request.url.scheme}://{request.headers.get('host', '')}"
            if origin != own:
                return JSONResponse({"error": f"bad origin '{origin}'"}, status_code=403)
            if config.read_only:
                return JSONResponse({"error": "read-only review server"}, status_code=403)
        response = await call_next(request)
        if where == "query":
            response.set_cookie(
                TOKEN_COOKIE, config.token, httponly=True, samesite="strict", path="/"
            )
        response.headers["Cache-Control"] = response.headers.get("Cache-Control", "no-store")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
            "connect-src 'self'; frame-ancestors 'none'"
        )
        return response

    def _err(exc: Exception, status: int = 400) -> Any:
        return JSONResponse({"error": " ".join(str(exc).split())}, status_code=status)

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> Any:
        if "token" in request.query_params:  # keep the token out of the address bar
            return RedirectResponse("/", status_code=303)
        html = rapp.static["index.html"].read_text(encoding="utf-8")
        html = html.replace("{{TOKEN}}", config.token)
        return HTMLResponse(html)

    @app.get("/static/{name:path}")
    def static(name: str) -> Any:
        p = rapp.static.get(name)
        if p is None:
            return Response(status_code=404)
        mime = mimetypes.guess_type(p.name)[0] or "application/octet-stream"
        return Response(
            p.read_bytes(), media_type=mime, headers={"Cache-Control": "private, max-age=3600"}
        )

    @app.get("/api/run")
    def run_info() -> Any:
        with rapp.state.lock:
            rapp.follow()
            return rapp.overview()

    @app.get("/api/queue")
    def queue(
        status: str | None = None, iteration: int | None = None, detector: str | None = None
    ) -> Any:
        with rapp.state.lock:
            rapp.follow()
            return {
                "rows": rapp.state.queue(
                    status=None if status in (None, "", "all") else status,
                    iteration=iteration,
                    detector=detector or None,
                ),
                "counts": rapp.state.counts(),
            }

    @app.get("/api/points")
    def points() -> Any:
        with rapp.state.lock:
            rapp.follow()
            return rapp.state.points()

    @app.get("/api/version")
    def version() -> Any:
        with rapp.state.lock:
            return rapp.version()

    @app.get("/api/candidate/{candidate_id}")
    def candidate(candidate_id: str) -> Any:
        with rapp.state.lock:
            rapp.follow()
            if candidate_id not in rapp.state.pos:
                return _err(KeyError(f"unknown candidate '{candidate_id}'"), 404)
            return rapp.candidate(candidate_id)

    @app.get("/api/candidate/{candidate_id}/frame/{index}")
    def frame(candidate_id: str, index: int) -> Any:
        with rapp.state.lock:
            if candidate_id not in rapp.state.pos:
                return Response(status_code=404)
            frames = rapp.frames(candidate_id)
        if not 0 <= index < len(frames):
            return Response(status_code=404)
        return Response(
            frames[index].read_bytes(),
            media_type="image/gif" if frames[index].suffix == ".gif" else "image/png",
            headers={"Cache-Control": "private, max-age=600"},
        )

    @app.get("/tiles/{index}/{z}/{x}/{y}.png")
    def tile(index: int, z: int, x: int, y: int) -> Any:
        if not 0 <= index < len(rapp.layers) or not 0 <= z <= 24:
            return Response(status_code=404)
        if not (0 <= x < 2**z and 0 <= y < 2**z):
            return Response(status_code=404)
        png = rapp.tiles.tile(index, z, x, y)
        if png is None:
            return Response(status_code=204)
        cache = {"Cache-Control": "private, max-age=3600"}
        return Response(png, media_type="image/png", headers=cache)

    @app.get("/api/pixel")
    def pixel(lon: float, lat: float, iteration: int = 0) -> Any:
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            return _err(ValueError("lon/lat out of range"))
        return rapp.pixel(iteration, lon, lat)

    @app.post("/api/decide")
    def decide(body: dict[str, Any] = Body(...)) -> Any:
        try:
            return rapp.decide(body)
        except NeedsConfirmation as exc:
            return JSONResponse(
                {"error": " ".join(exc.problem.split()), "confirm": exc.details}, status_code=409
            )
        except ThawdetectError as exc:
            return _err(exc)

    @app.post("/api/undo")
    def undo() -> Any:
        try:
            return rapp.undo()
        except ThawdetectError as exc:
            return _err(exc)

    return app
