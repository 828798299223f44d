"""What the review server knows about one run, read from its ledger and kept in memory.

The candidates are read once (through :func:`thawdetect.core.review.decisions.review_queue`, so the
order is the engine's review order) and re-read only when the ledger file changes under the server
(another reviewer, the CLI, a resumed run). The server's own decisions update the cache in place
from the rows the core review functions return, so deciding does not re-read 10,000 polygons.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd

from thawdetect.core.errors import InputError
from thawdetect.core.review.order import PRIORITY
from thawdetect.core.run.ledger import Ledger

if TYPE_CHECKING:
    from thawdetect.core.run.manifest import Manifest

log = logging.getLogger(__name__)

#: Neighbours (other candidates, inventory features) shown within this distance (m).
NEIGHBOUR_RADIUS_M = 600.0
#: A "part of" target farther than this (m) from the candidate needs a confirmation.
PART_OF_CONFIRM_M = 300.0
#: Columns shown as the candidate's own attributes (the rest are detectors' evidence).
CORE_COLUMNS = (
    "candidate_id",
    "iteration",
    "detectors",
    "n_detectors",
    "score",
    "status",
    "probability",
    "area_ha",
    "perimeter_m",
)


def clean(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, NaN/inf to None, recursively."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NaT or (value is not None and not isinstance(value, str) and _isna(value)):
        return None
    return value


def _isna(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _mtime(path: Path) -> tuple[int, int]:
    st = path.stat()
    return (st.st_mtime_ns, st.st_size)


class RunState:
    """The run's candidates, decisions and inventory, cached while the ledger does not change.

    Args:
        run_dir: the run directory (``ledger.gpkg`` and ``manifest.json``).

    Raises:
        InputError: not a run directory, or an unreadable manifest.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.ledger = Ledger(self.run_dir)
        if not self.ledger.exists():
            raise InputError(self.run_dir, "not a run directory (no ledger.gpkg)")
        self.manifest = self._manifest()
        self.lock = threading.RLock()  # readers and the re-read never interleave
        self._stamp: tuple[int, int] | None = None
        self.cands: gpd.GeoDataFrame
        self.cands_wgs: gpd.GeoSeries
        self.pos: dict[str, int] = {}
        self.decisions: pd.DataFrame
        self.inventory: gpd.GeoDataFrame
        self.inventory_wgs: gpd.GeoSeries
        self.iterations: pd.DataFrame
        self.reload()

    def _manifest(self) -> Manifest:
        from thawdetect.core.run.manifest import read_manifest

        return read_manifest(self.run_dir, missing_ok=True)

    # -- cache ------------------------------------------------------------------------------------

    def reload(self) -> None:
        """Read everything from the ledger (queue order from the core review queue)."""
        from thawdetect.core.review.decisions import review_queue

        with self.lock:
            stamp = _mtime(self.ledger.path)
            cands = review_queue(self.run_dir, status=None)
            self.cands = cands
            self.cands_wgs = cands.geometry.to_crs(4326) if len(cands) else cands.geometry
            self.pos = {cid: i for i, cid in enumerate(cands["candidate_id"])}
            self.decisions = self.ledger.read("decisions")
            inv = self.ledger.read("inventory")
            self.inventory = inv
            self.inventory_wgs = inv.geometry.to_crs(4326) if len(inv) else inv.geometry
            self.iterations = self.ledger.read("iterations")
            self.manifest = self._manifest()
            self._stamp = stamp

    def fresh(self) -> None:
        """Re-read when the ledger changed on disk since the last read (someone else wrote)."""
        with self.lock:
            if _mtime(self.ledger.path) != self._stamp:
                self.reload()

    def stamp(self) -> tuple[int, int] | None:
        """The ledger state the cache holds."""
        return self._stamp

    def applied(self, rows: pd.DataFrame, before: tuple[int, int] | None) -> None:
        """Apply decision rows this server just recorded, without re-reading the ledger.

        Args:
            rows: what the core ``decide`` returned (candidate_id, decision, probability, ...).
            before: the ledger stamp taken before deciding; when someone else wrote in between,
                or the decision changed more than status (inventory merges), re-read instead.
        """
        with self.lock:
            if before != self._stamp or "part_of" in set(rows.get("decision", [])):
                self.reload()
                return
            for _, r in rows.iterrows():
                i = self.pos.get(str(r["candidate_id"]))
                if i is None:
                    continue
                self.cands.iat[i, self.cands.columns.get_loc("status")] = r["decision"]
                self.cands.iat[i, self.cands.columns.get_loc("probability")] = r.get("probability")
            extra = pd.DataFrame(rows).drop(columns=["geometry"], errors="ignore")
            self.decisions = pd.concat([self.decisions, extra], ignore_index=True)
            self._stamp = _mtime(self.ledger.path)

    # -- views ------------------------------------------------------------------------------------

    def candidate_row(self, candidate_id: str) -> pd.Series:
        """The cached row of a known candidate.

        Raises:
            KeyError: unknown id.
        """
        return self.cands.iloc[self.pos[candidate_id]]

    def queue(
        self,
        *,
        status: str | None = None,
        iteration: int | None = None,
        detector: str | None = None,
    ) -> list[dict[str, Any]]:
        """Candidates in review order, filtered (compact rows for the queue list)."""
        c = self.cands
        sel = np.ones(len(c), dtype=bool)
        if status:
            sel &= (c["status"] == status).to_numpy()
        if iteration is not None:
            sel &= (c["iteration"] == iteration).to_numpy()
        if detector:
            det = c["detectors"].fillna("").astype(str)
            sel &= det.str.split(",").map(lambda ds: detector in ds).to_numpy(dtype=bool)
        sub = c[sel]
        area = sub["area_ha"] if "area_ha" in sub else sub.geometry.area / 1e4
        out = pd.DataFrame(
            {
                "id": sub["candidate_id"].astype(str),
                "it": sub["iteration"].astype(int),
                "det": sub["detectors"].fillna("").astype(str),
                "n": sub["n_detectors"].astype(int),
                "score": sub["score"].astype(float).round(4),
                "pri": sub[PRIORITY].astype(float).round(3),
                "status": sub["status"].fillna("pending").astype(str),
                "prob": sub["probability"].astype(object).where(sub["probability"].notna(), None),
                "area_ha": area.astype(float).round(3),
            }
        )
        return clean(out.to_dict(orient="records"))  # type: ignore[no-any-return]

    def counts(self) -> dict[str, int]:
        """Number of candidates per status (every status present, plus pending)."""
        vc = self.cands["status"].fillna("pending").value_counts()
        out = {"pending": 0, "confirmed": 0, "rejected": 0, "unsure": 0}
        out.update({str(k): int(v) for k, v in vc.items()})
        out["total"] = len(self.cands)
        return out

    def points(self) -> dict[str, Any]:
        """Every candidate's representative point (WGS84) and status, for the overview map."""
        if len(self.cands) == 0:
            return {"id": [], "lon": [], "lat": [], "status": []}
        pts = self.cands_wgs.representative_point()
        return {
            "id": self.cands["candidate_id"].astype(str).tolist(),
            "lon": np.round(pts.x.to_numpy(), 6).tolist(),
            "lat": np.round(pts.y.to_numpy(), 6).tolist(),
            "status": self.cands["status"].fillna("pending").astype(str).tolist(),
            "it": self.cands["iteration"].astype(int).tolist(),
        }

    def neighbours(self, candidate_id: str) -> dict[str, Any]:
        """GeoJSON of other candidates and inventory features near one candidate (WGS84)."""
        i = self.pos[candidate_id]
        geom = self.cands.geometry.iloc[i]
        area = geom.buffer(NEIGHBOUR_RADIUS_M)
        feats: list[dict[str, Any]] = []
        if len(self.cands):
            for j in self.cands.sindex.query(area, predicate="intersects"):
                if int(j) == i:
                    continue
                r = self.cands.iloc[int(j)]
                feats.append(
                    {
                        "type": "Feature",
                        "geometry": self.cands_wgs.iloc[int(j)].__geo_interface__,
                        "properties": {
                            "kind": "candidate",
                            "id": str(r["candidate_id"]),
                            "status": str(r["status"]),
                        },
                    }
                )
        if len(self.inventory):
            for j in self.inventory.sindex.query(area, predicate="intersects"):
                r = self.inventory.iloc[int(j)]
                distance, multipart = join_check(geom, r.geometry)
                feats.append(
                    {
                        "type": "Feature",
                        "geometry": self.inventory_wgs.iloc[int(j)].__geo_interface__,
                        "properties": {
                            "kind": "inventory",
                            "id": str(r["inventory_id"]),
                            "source": str(r.get("source", "")),
                            "candidate_id": clean(r.get("candidate_id")),
                            "distance_m": round(distance, 1),
                            "multipart": multipart,
                        },
                    }
                )
        return {"type": "FeatureCollection", "features": clean(feats)}

    def part_of_check(self, candidate_id: str, target: str) -> tuple[float, bool] | None:
        """(distance m, would become multi-part) of a candidate and a "part of" target.

        The target is an inventory id (or a candidate id: that candidate's inventory feature
        when it has one, else its outline); None when the target is unknown (the core review
        functions then say so).
        """
        geom = self.cands.geometry.iloc[self.pos[candidate_id]]
        inv = self.inventory
        other = None
        if len(inv):
            hit = inv[inv["inventory_id"].astype(str) == target]
            if not len(hit) and "candidate_id" in inv.columns:
                hit = inv[inv["candidate_id"].astype(str) == target]
            if len(hit):
                other = hit.geometry.iloc[0]
        if other is None and target in self.pos:
            other = self.cands.geometry.iloc[self.pos[target]]
        if other is None:
            return None
        return join_check(geom, other)

    def history(self, candidate_id: str) -> list[dict[str, Any]]:
        """Decision history of one candidate, oldest first (no geometry)."""
        d = self.decisions
        d = d[d["candidate_id"] == candidate_id]
        cols = [
            c
            for c in ("timestamp", "reviewer", "decision", "probability", "note", "part_of")
            if c in d.columns
        ]
        rows = d[cols].astype(object).where(d[cols].notna(), None).to_dict(orient="records")
        if "geometry_wkt" in d.columns:
            for r, wkt in zip(rows, d["geometry_wkt"], strict=True):
                r["edited_outline"] = bool(isinstance(wkt, str) and wkt.strip())
        return clean(rows)  # type: ignore[no-any-return]

    def reviewed_outline(self, candidate_id: str) -> dict[str, Any] | None:
        """The latest reviewer-corrected outline in effect (WGS84 GeoJSON), if any."""
        d = self.decisions
        if "geometry_wkt" not in d.columns:
            return None
        d = d[d["candidate_id"] == candidate_id]
        if len(d) == 0:
            return None
        last = d.iloc[-1]
        wkt = last.get("geometry_wkt")
        if str(last.get("decision")) == "undo" or not isinstance(wkt, str) or not wkt.strip():
            return None
        from shapely import wkt as shp_wkt

        g = gpd.GeoSeries([shp_wkt.loads(wkt)], crs=self.cands.crs).to_crs(4326).iloc[0]
        return clean(g.__geo_interface__)  # type: ignore[no-any-return]


def own_evidence(evidence: dict[str, Any], detectors: Any) -> dict[str, Any]:
    """The evidence of the detectors that proposed the candidate, without empty fields.

    A merged ledger carries every detector's columns for every candidate; a candidate only one
    detector proposed would otherwise list the others' fields as empty rows.
    """
    names = [d.strip() for d in str(detectors or "").split(",") if d.strip()]
    out: dict[str, Any] = {}
    for det, values in evidence.items():
        if names and det not in names:
            continue
        if isinstance(values, dict):
            values = {k: v for k, v in values.items() if clean(v) is not None and v != ""}
            if not values:
                continue
        out[det] = values
    return out


def join_check(geom: Any, target: Any) -> tuple[float, bool]:
    """Distance (m) between a fragment and the feature it would join, and whether the joined
    outline (target ∪ fragment, what "part of" stores) would be in several parts."""
    if geom is None or target is None or geom.is_empty or target.is_empty:
        return (float("inf"), True)
    distance = float(geom.distance(target))
    if target.geom_type == "Point" or geom.intersects(target):
        return (distance, False)  # a known point is replaced by the fragment's outline
    return (distance, True)


def series_view(series_json: Any) -> dict[str, Any] | None:
    """A candidate's time series with its fitted model evaluated for plotting.

    The model is y = a + b·t + c·cos(2πt) + d·sin(2πt), t in years since ``fit_t0`` (Wei et al.);
    ``amplitude_pp_mm`` is the peak-to-peak seasonal amplitude A = 2·sqrt(c² + d²).

    Returns:
        ``{"dates", "values_mm", "label", "fit": {..} | None, "model": {"dates", "fit_mm",
        "trend_mm"} | None, "rate_mm_yr", "amplitude_pp_mm"}``, or None without a series.
    """
    if not isinstance(series_json, str) or not series_json.strip():
        return None
    try:
        s = json.loads(series_json)
    except json.JSONDecodeError:
        return None
    out: dict[str, Any] = {
        "dates": s.get("dates", []),
        "values_mm": s.get("values_mm", []),
        "label": s.get("label", "displacement (mm)"),
        "fit": s.get("fit"),
        "model": None,
        "rate_mm_yr": None,
        "amplitude_pp_mm": None,
    }
    fit = s.get("fit") or {}
    if out["dates"] and all(k in fit for k in ("a_mm", "b_mm_yr", "c_mm", "d_mm")):
        t0 = date.fromisoformat(s.get("fit_t0") or out["dates"][0])
        d0 = date.fromisoformat(out["dates"][0]).toordinal()
        d1 = date.fromisoformat(out["dates"][-1]).toordinal()
        days = np.linspace(d0, d1, 200)
        t = (days - t0.toordinal()) / 365.25
        a, b, c, d = (float(fit[k]) for k in ("a_mm", "b_mm_yr", "c_mm", "d_mm"))
        model = a + b * t + c * np.cos(2 * np.pi * t) + d * np.sin(2 * np.pi * t)
        out["model"] = {
            "dates": [date.fromordinal(int(np.rint(v))).isoformat() for v in days],
            "fit_mm": np.round(model, 3).tolist(),
            "trend_mm": np.round(a + b * t, 3).tolist(),
        }
        out["rate_mm_yr"] = b
        out["amplitude_pp_mm"] = 2.0 * math.hypot(c, d)
    return clean(out)  # type: ignore[no-any-return]
