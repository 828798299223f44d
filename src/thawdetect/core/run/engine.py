"""The iteration engine: propose → merge → filter → review → next config, until nothing new.

One loop for every detector (Xia et al. 2022 optical DL; Wei et al. SBAS-InSAR thresholds).
Iteration k:

1. each active detector proposes candidates (stage ``propose:<name>``);
2. candidates of different detectors that overlap merge into one that carries every detector's
   evidence; candidates overlapping the inventory or earlier rejections are dropped; the minimum
   mapping unit filter applies (stage ``merge``);
3. review evidence is made (stage ``evidence``);
4. a reviewer decides: automatically (``reference``), or the run stops "awaiting review" until
   ``thawdetect review`` has decided every candidate (stage ``review``);
5. confirmed candidates join the inventory and the positives, rejected ones the negatives; each
   detector returns its next config or says it is done (stage ``update``).

It stops after an iteration that confirms nothing new (unless a detector that walks a relaxation
schedule, ``relaxes_schedule = True``, has rows left), when every detector is done, or at
``max_iterations``. Every stage commits its data and its "finished" mark in one ledger
transaction, so a killed run re-run resumes at the first unfinished stage.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import geopandas as gpd
import numpy as np
import pandas as pd

from thawdetect import __version__
from thawdetect.core.config import RunConfig
from thawdetect.core.errors import ConfigError, InputError, PluginError, ThawdetectError
from thawdetect.core.models import validate_section
from thawdetect.core.plugin_api.detector import (
    SCORE_COLUMN,
    Detector,
    DetectorConfig,
    IterationContext,
    ReviewOutcome,
    validate_candidates,
)
from thawdetect.core.plugin_api.host import PluginHost
from thawdetect.core.regions import Region
from thawdetect.core.run.ledger import Ledger, now_iso, write_atomic
from thawdetect.core.run.manifest import MANIFEST, deep_merge, file_digest, input_files, substitute
from thawdetect.core.run.merge import merge_candidates, overlap_fraction
from thawdetect.core.run.samples import ensure_sample
from thawdetect.core.vector import read_vector

log = logging.getLogger(__name__)
_T = TypeVar("_T")

STATUS_FINISHED = "finished"
STATUS_AWAITING = "awaiting review"
STATUS_RUNNING = "running"
#: Geometry types a known inventory may hold (outlines or locations).
KNOWN_TYPES = ("Polygon", "MultiPolygon", "Point", "MultiPoint")


@dataclass
class RunResult:
    """What :meth:`Engine.run` returns."""

    status: str
    run_dir: Path
    iterations: pd.DataFrame
    stop_reason: str = ""
    pending: int = 0
    accuracy: dict[str, Any] | None = None
    messages: list[str] = field(default_factory=list)


class Engine:
    """Runs (or resumes) one iterative detection run in ``run_dir``.

    Args:
        config: the run configuration (region and detector selection resolved).
        run_dir: the run directory (created; holds ``ledger.gpkg`` and ``manifest.json``).
        host: the plugin host.
        echo: where progress lines go (the CLI passes rich's console.print).
        overwrite: delete an existing run in ``run_dir`` first.
        source: where the config came from (a YAML path), for error messages.
    """

    def __init__(
        self,
        config: RunConfig,
        run_dir: str | Path,
        host: PluginHost,
        *,
        echo: Callable[[str], None] | None = None,
        overwrite: bool = False,
        source: str = "config",
    ) -> None:
        self.config = config
        self.source = source
        self.run_dir = Path(run_dir)
        self.host = host
        self.echo = echo or (lambda msg: log.info(msg))
        if overwrite and self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        if not self.config.detectors:
            raise ConfigError("no detector selected: use --detector NAME or a 'detectors:' section")
        for name in self.config.detectors:
            host.detector(name)  # unknown names fail early, listing the installed ones
        self.region = self._resolve_region()
        self.crs = self.region.working_crs()
        self.ledger = Ledger(self.run_dir, crs=self.crs)
        self.manifest = self._load_or_create_manifest()
        # a resumed run keeps the reviewer it was started with unless --reviewer is given
        self.reviewer = (
            self.config.reviewer or self.manifest.get("reviewer") or self._default_reviewer()
        )
        if self.manifest.get("reviewer") != self.reviewer:
            self.manifest["reviewer"] = self.reviewer
            self._save_manifest()

    def _default_reviewer(self) -> str:
        """``reference`` when every detector runs on a bundled sample and one has a reference."""
        data = [self.region.detectors.get(d) for d in self.config.detectors]
        on_samples = all(d is not None and d.sample for d in data)
        if on_samples and self.manifest["files"]["reference"]:
            self.echo("reviewer: the bundled sample's reference inventory (--reviewer to change)")
            return "reference"
        return "manual"

    # -- set-up ----------------------------------------------------------------------------------

    def _resolve_region(self) -> Region:
        region = self.config.region
        if region is None:
            raise ConfigError("no region given: use --region NAME or 'region:' in the config")
        if isinstance(region, str):
            return self.host.region(region)
        if region.name in self.host.regions:
            return self.host.regions[region.name].merged_with(region)
        return region

    def _region_data(
        self, detector: str, *, build: bool = True
    ) -> tuple[dict[str, Any], dict[str, str | None]]:
        """The region's config defaults and file settings for ``detector``, samples built."""
        data = self.region.detectors.get(detector)
        if data is None:
            return {}, {}
        mapping: dict[str, str] = {}
        if data.sample and not build:
            mapping["sample_dir"] = str(Path("sample-not-built") / data.sample)
        elif data.sample:
            self.echo(f"sample '{data.sample}' (synthetic) for {detector}")
            mapping["sample_dir"] = str(ensure_sample(self.host, data.sample))
        cfg = substitute(data.config, mapping)
        files = {
            k: substitute(getattr(data, k), mapping)
            for k in ("reference", "known_inventory", "validation")
        }
        return cfg, files

    def _load_or_create_manifest(self) -> dict[str, Any]:
        path = self.run_dir / MANIFEST
        user_cfg = self.config.model_dump(mode="json")
        if path.exists():
            try:
                manifest = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise InputError(path, "run manifest is corrupt (not JSON)") from exc
            stored = dict(manifest.get("run_config", {}))
            new = dict(user_cfg)
            for key in ("reviewer", "max_iterations"):  # may change between sessions
                stored.pop(key, None)
                new.pop(key, None)
            if stored != new:
                raise ConfigError(
                    f"{self.run_dir}: holds a run with a different configuration; use "
                    "--overwrite to start again or another --output-dir"
                )
            manifest["run_config"] = user_cfg
            return manifest
        detector_configs: dict[str, Any] = {}
        files: dict[str, list[str]] = {"reference": [], "known_inventory": [], "validation": []}
        region_cfgs: dict[str, Any] = {}
        for name in self.config.detectors:  # check every section before building any sample
            defaults, _ = self._region_data(name, build=False)
            merged = deep_merge(defaults, self.config.detectors[name] or {})
            cls = self.host.detector(name)
            validate_section(cls.config_model, merged, f"{self.source}: detectors.{name}")
        for name in self.config.detectors:
            cls = self.host.detector(name)
            defaults, region_files = self._region_data(name)
            merged = deep_merge(defaults, self.config.detectors[name] or {})
            cfg = validate_section(cls.config_model, merged, f"{self.source}: detectors.{name}")
            detector_configs[name] = cfg.model_dump(mode="json")
            region_cfgs[name] = merged
            for key, value in region_files.items():
                if value and value not in files[key]:
                    files[key].append(value)
        if self.config.known_inventory:
            files["known_inventory"] = [str(self.config.known_inventory)]
        if self.config.validation:
            files["validation"] = [str(self.config.validation)]
        inputs = {}
        for p in input_files(region_cfgs) + input_files(files):
            key = str(p)
            if key not in inputs:
                inputs[key] = {"sha256": file_digest(p), "bytes": p.stat().st_size}
        manifest = {
            "thawdetect_version": __version__,
            "created": now_iso(),
            "status": STATUS_RUNNING,
            "region": self.region.model_dump(mode="json"),
            "synthetic": self.region.synthetic
            or any(d.sample for d in self.region.detectors.values()),
            "working_crs": self.crs.to_string(),
            "run_config": user_cfg,
            "files": files,
            "plugins": {
                info.name: {"distribution": info.distribution, "version": info.version}
                for info in self.host.plugin_infos()
            },
            "input_checksums": inputs,
            "iterations": {"1": detector_configs},
        }
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(manifest, indent=2))
        return manifest

    def _save_manifest(self) -> None:
        write_atomic(self.run_dir / MANIFEST, json.dumps(self.manifest, indent=2))

    def _known_inventory(self) -> gpd.GeoDataFrame:
        """The known inventory: polygons and points (field inventories are often points).

        Raises:
            InputError: a file holding lines or other geometry types (one line naming it).
        """
        parts = []
        for p in self.manifest["files"]["known_inventory"]:
            gdf = read_vector(p, crs=self.crs, what="known inventory")
            gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
            types = gdf.geom_type
            other = sorted(set(types) - set(KNOWN_TYPES))
            if other:
                n = int((~types.isin(KNOWN_TYPES)).sum())
                raise InputError(
                    p,
                    f"known inventory holds {n} {'/'.join(other)} feature(s); use polygons "
                    "(outlines) or points (locations)",
                )
            gdf = gdf[["geometry"]].explode(index_parts=False).reset_index(drop=True)
            n_pts = int(gdf.geom_type.eq("Point").sum())
            self.echo(
                f"known inventory {p}: {len(gdf)} features read "
                f"({len(gdf) - n_pts} polygons, {n_pts} points)"
            )
            parts.append(gdf)
        if not parts:
            return gpd.GeoDataFrame(geometry=gpd.GeoSeries([], crs=self.crs), crs=self.crs)
        return gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=self.crs)

    # -- the loop --------------------------------------------------------------------------------

    def _detectors_for(self, iteration: int) -> dict[str, Detector]:
        configs = self.manifest["iterations"].get(str(iteration), {})
        out = {}
        for name, cfg in configs.items():
            if cfg is None:
                continue
            cls = self.host.detector(name)
            model: DetectorConfig = validate_section(
                cls.config_model, cfg, f"{self.run_dir / MANIFEST}: iterations.{iteration}.{name}"
            )
            out[name] = cls(model)
        return out

    def _training_sets(self) -> dict[str, gpd.GeoDataFrame]:
        """The ledger's positives, negatives and inventory as they stand (one read each)."""
        return {k: self.ledger.read(k) for k in ("positives", "negatives", "inventory")}

    def _context(
        self,
        name: str | None,
        iteration: int,
        sets: dict[str, gpd.GeoDataFrame] | None = None,
    ) -> IterationContext:
        """Context for detector ``name`` (None: the iteration itself, for reviewers/observers).

        ``sets`` (from :meth:`_training_sets`) saves re-reading the ledger when several contexts
        of one stage are built.
        """
        sets = sets if sets is not None else self._training_sets()
        work = self.run_dir / "iterations" / f"{iteration:02d}" / (name or "")
        work.mkdir(parents=True, exist_ok=True)
        prev = self.run_dir / "iterations" / f"{iteration - 1:02d}" / (name or "")
        return IterationContext(
            run_dir=self.run_dir,
            work_dir=work,
            iteration=iteration,
            region=self.region,
            crs=self.crs,
            host=self.host,
            positives=sets["positives"],
            negatives=sets["negatives"],
            inventory=sets["inventory"],
            previous_dir=prev if prev.exists() else None,
            reference_paths=[Path(p) for p in self.manifest["files"]["reference"]],
            synthetic=bool(self.manifest.get("synthetic", False)),
        )

    def _initialise(self) -> None:
        if self.ledger.stage_done(0, "init"):
            return
        known = self._known_inventory()
        with self.ledger.transaction() as t:
            inv = known.copy()
            inv["inventory_id"] = [f"known-{i + 1:04d}" for i in range(len(inv))]
            inv["candidate_id"] = None
            inv["source"] = "known"
            inv["iteration"] = 0
            inv["probability"] = "high"
            inv["detectors"] = ""
            inv["outline"] = np.where(known.geom_type == "Point", "point", "known")
            inv["merged_candidates"] = ""
            t.write("inventory", inv)
            pos = known.copy()
            pos["source"] = "known"
            pos["iteration"] = 0
            t.write("positives", pos)
            t.write("negatives", self.ledger.read("negatives"))
            t.mark_stage(0, "init")
        if len(known):
            n_pts = int(known.geom_type.eq("Point").sum())
            self.echo(
                f"known inventory: {len(known)} features used ({len(known) - n_pts} polygons, "
                f"{n_pts} points): training positives and terrain statistics, inventory, "
                "already-known candidates dropped"
            )

    def run(self) -> RunResult:
        """Run or resume until a stop rule or a manual review pause.

        Raises:
            PluginError: a detector raised (the ledger keeps every finished stage).
            ThawdetectError: bad input or configuration.
        """
        self._initialise()
        iteration = 1
        reason = ""
        while True:
            if iteration > self.config.max_iterations:
                reason = f"reached max_iterations ({self.config.max_iterations})"
                break
            detectors = self._detectors_for(iteration)
            if not detectors:
                reason = "every detector finished its schedule"
                break
            status = self._iteration(iteration, detectors)
            if status == STATUS_AWAITING:
                pending = self._pending(iteration)
                self.manifest["status"] = STATUS_AWAITING
                self._save_manifest()
                return RunResult(
                    STATUS_AWAITING,
                    self.run_dir,
                    self.ledger.read("iterations"),
                    stop_reason=f"iteration {iteration}: {pending} candidates await review",
                    pending=pending,
                )
            row = self._iteration_row(iteration)
            nothing_new = row is not None and row["newly_confirmed"] == 0
            if self.config.stop_when_nothing_new and nothing_new:
                scheduled = [
                    d.name
                    for d in self._detectors_for(iteration + 1).values()
                    if d.relaxes_schedule
                ]
                if not scheduled:
                    done = not self._detectors_for(iteration + 1)
                    reason = (
                        "every detector finished its schedule"
                        if done
                        else f"iteration {iteration} confirmed nothing new"
                    )
                    break
                self.echo(f"  nothing new; {', '.join(scheduled)} relaxes its schedule further")
            iteration += 1
        self.manifest["status"] = STATUS_FINISHED
        self.manifest["stop_reason"] = reason
        self._save_manifest()
        result = RunResult(STATUS_FINISHED, self.run_dir, self.ledger.read("iterations"), reason)
        result.accuracy = self._accuracy()
        return result

    def _iteration_row(self, iteration: int) -> pd.Series | None:
        it = self.ledger.read("iterations")
        sel = it[it["iteration"] == iteration]
        return None if sel.empty else sel.iloc[-1]

    def _pending(self, iteration: int) -> int:
        c = self.ledger.read("candidates")
        return int(((c["iteration"] == iteration) & (c["status"] == "pending")).sum())

    def _iteration(self, k: int, detectors: dict[str, Detector]) -> str:
        self.echo(f"iteration {k}: detectors {', '.join(detectors)}")
        for name, det in detectors.items():
            self._propose(k, name, det)
        if not self.ledger.stage_done(k, "merge"):
            self._merge(k)
        if self.config.evidence and not self.ledger.stage_done(k, "evidence"):
            self._evidence(k, detectors)
        if not self.ledger.stage_done(k, "review") and not self._review(k):
            return STATUS_AWAITING
        if not self.ledger.stage_done(k, "update"):
            self._update(k, detectors)
        return STATUS_FINISHED

    def _call_detector(
        self, name: str, method: str, k: int, fn: Callable[[Any], _T], arg: Any
    ) -> _T:
        """Call a detector method; anything but a ThawdetectError becomes one PluginError line."""
        try:
            return fn(arg)
        except ThawdetectError:
            raise
        except Exception as exc:
            plugin = self.host.detector_plugin(name)
            raise PluginError(
                f"detector '{name}' (plugin '{plugin}') failed in {method} at iteration {k}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def _propose(self, k: int, name: str, det: Detector) -> None:
        stage = f"propose:{name}"
        if self.ledger.stage_done(k, stage):
            return
        ctx = self._context(name, k)
        self.echo(f"  {name}: proposing candidates")
        started = time.perf_counter()
        raw = self._call_detector(name, "propose", k, det.propose, ctx)
        cands = validate_candidates(raw, name, self.crs)
        self.host.hook.thawdetect_candidates_proposed(
            detector=name, iteration=k, candidates=cands.copy(), context=ctx
        )
        rows = cands.copy()
        rows.insert(0, "detector", name)
        rows.insert(1, "iteration", k)
        evidence_cols = [
            c for c in rows.columns if c not in ("detector", "iteration", SCORE_COLUMN, "geometry")
        ]
        store = gpd.GeoDataFrame(
            {
                "detector": rows["detector"],
                "iteration": rows["iteration"],
                SCORE_COLUMN: rows[SCORE_COLUMN],
                "evidence_json": [
                    json.dumps({c: r[c] for c in evidence_cols}, default=_json_default)
                    for _, r in rows.iterrows()
                ],
            },
            geometry=rows.geometry,
            crs=self.crs,
        )
        with self.ledger.transaction() as t:
            old = t.read("proposals")
            keep = old[~((old["iteration"] == k) & (old["detector"] == name))]
            combined = pd.concat([keep, store], ignore_index=True) if len(keep) else store
            t.write("proposals", gpd.GeoDataFrame(combined, geometry="geometry", crs=self.crs))
            t.mark_stage(k, stage)
        self.echo(f"  {name}: {len(store)} candidates ({time.perf_counter() - started:.1f} s)")

    def _merge(self, k: int) -> None:
        props = self.ledger.read("proposals")
        props = props[props["iteration"] == k].reset_index(drop=True)
        expanded = []
        for _, r in props.iterrows():
            ev = json.loads(r["evidence_json"]) if r["evidence_json"] else {}
            expanded.append({"detector": r["detector"], SCORE_COLUMN: r[SCORE_COLUMN], **ev})
        flat = gpd.GeoDataFrame(
            pd.DataFrame(expanded, index=props.index),
            geometry=props.geometry,
            crs=self.crs,
        )
        merged = merge_candidates(flat, self.crs, buffer_m=self.config.merge_buffer_m)
        n_merged = len(merged)
        cands = self.ledger.read("candidates")
        decided = cands[cands["status"].isin(["confirmed", "rejected", "part_of", "unsure"])]
        seen = pd.concat(
            [decided[["geometry"]], self.ledger.read("inventory")[["geometry"]]], ignore_index=True
        )
        seen = gpd.GeoDataFrame(seen, geometry="geometry", crs=self.crs)
        dup = overlap_fraction(merged, seen) >= self.config.duplicate_overlap
        points = seen[seen.geom_type == "Point"]
        if len(points) and len(merged):  # a candidate containing a known point is known
            hit, _ = points.sindex.query(merged.geometry, predicate="contains")
            dup = dup | pd.Series(np.isin(np.arange(len(merged)), hit), index=merged.index)
        merged = merged[~dup]
        area_ha = merged.geometry.area / 1e4
        small = area_ha < self.config.min_mapping_unit_ha
        merged = merged[~small].copy()
        merged = merged.sort_values(
            [SCORE_COLUMN, "n_detectors"], ascending=False, kind="stable"
        ).reset_index(drop=True)
        merged.insert(0, "candidate_id", [f"it{k:02d}-{i + 1:04d}" for i in range(len(merged))])
        merged.insert(1, "iteration", k)
        merged["status"] = "pending"
        merged["probability"] = None
        merged["area_ha"] = merged.geometry.area / 1e4
        merged["perimeter_m"] = merged.geometry.length
        with self.ledger.transaction() as t:
            old = t.read("candidates")
            old = old[old["iteration"] != k]
            combined = pd.concat([old, merged], ignore_index=True) if len(old) else merged
            t.write("candidates", gpd.GeoDataFrame(combined, geometry="geometry", crs=self.crs))
            t.mark_stage(k, "merge")
        self.echo(
            f"  merged {len(props)} proposals into {n_merged} candidates; "
            f"{int(dup.sum())} already seen, {int(small.sum())} below "
            f"{self.config.min_mapping_unit_ha} ha; {len(merged)} to review"
        )

    def _evidence(self, k: int, detectors: dict[str, Detector]) -> None:
        from thawdetect.core.review.evidence import build_evidence, write_spec

        cands = self.ledger.read("candidates")
        cands = cands[cands["iteration"] == k]
        frames = []
        sets = self._training_sets()
        dem = None
        for name, det in detectors.items():
            ctx = self._context(name, k, sets)
            frames += self._call_detector(name, "image_frames", k, det.image_frames, ctx)
            dem = dem or getattr(det.config, "dem_file", None)  # hillshade behind value maps
        started = time.perf_counter()
        out = self.run_dir / "iterations" / f"{k:02d}" / "evidence"
        out.mkdir(parents=True, exist_ok=True)
        write_spec(out, frames, buffer_m=self.config.evidence_buffer_m, dem=dem, crs=self.crs)
        if len(cands) and self.config.evidence == "lazy":
            self.echo(f"  review evidence: drawn when each candidate is first shown ({out})")
        elif len(cands):
            build_evidence(cands, frames, out, buffer_m=self.config.evidence_buffer_m, dem=dem)
            dt = time.perf_counter() - started
            self.echo(
                f"  review evidence in {out} ({dt:.1f} s, "
                f"{1000 * dt / len(cands):.0f} ms per candidate)"
            )
        with self.ledger.transaction() as t:
            t.mark_stage(k, "evidence")

    def _review(self, k: int) -> bool:
        cands = self.ledger.read("candidates")
        mine = cands[cands["iteration"] == k]
        pending = mine[mine["status"] == "pending"]
        reviewer = self.reviewer
        if len(pending) and reviewer != "manual":
            ctx = self._context(None, k)
            decisions = self.host.hook.thawdetect_review_candidates(
                candidates=pending.copy(), reviewer=reviewer, context=ctx
            )
            if decisions is None:
                raise ConfigError(
                    f"reviewer '{reviewer}' is not understood by any plugin "
                    "(use manual, reference or reference:PATH)"
                )
            settings = dict(getattr(decisions, "attrs", {}) or {}).get("review_settings")
            decisions = pd.DataFrame(decisions).copy()
            decisions["reviewer"] = reviewer
            decisions["iteration"] = k
            decisions["batch_id"] = f"auto-{k:02d}-{uuid.uuid4().hex[:8]}"
            if settings:
                self.manifest.setdefault("review", {})[str(k)] = {"reviewer": reviewer, **settings}
                self._save_manifest()
            with self.ledger.transaction() as t:
                t.record_decisions(decisions)
                t.mark_stage(k, "review")
            return True
        if len(pending):
            return False
        with self.ledger.transaction() as t:
            t.mark_stage(k, "review")
        return True

    def _update(self, k: int, detectors: dict[str, Detector]) -> None:
        from thawdetect.core.review.decisions import latest_decisions
        from thawdetect.core.review.outlines import build_inventory_update

        cands = self.ledger.read("candidates")
        mine = cands[cands["iteration"] == k].copy()
        confirmed = mine[mine["status"] == "confirmed"]
        rejected = mine[mine["status"] == "rejected"]
        latest = latest_decisions(self.ledger.read("decisions"))
        sets = self._training_sets()
        positives, negatives, inventory = sets["positives"], sets["negatives"], sets["inventory"]
        # Idempotent on re-run: rows of this iteration are replaced, not appended twice (and a
        # union into an earlier feature is the same union again).
        positives = positives[positives["iteration"] != k]
        negatives = negatives[negatives["iteration"] != k]
        inventory = inventory[inventory["iteration"] != k].copy()
        new_inv, inventory, fragments = build_inventory_update(
            k, mine, latest, inventory, self.crs, echo=self.echo
        )
        new_pos = gpd.GeoDataFrame(
            {"source": "confirmed", "iteration": k, "candidate_id": new_inv["candidate_id"]},
            geometry=new_inv.geometry.to_numpy(),
            crs=self.crs,
        )
        frag_pos = gpd.GeoDataFrame(
            {"source": "part_of", "iteration": k, "candidate_id": fragments["candidate_id"]},
            geometry=fragments.geometry.to_numpy(),
            crs=self.crs,
        )
        new_neg = gpd.GeoDataFrame(
            {"source": "rejected", "iteration": k, "candidate_id": rejected["candidate_id"]},
            geometry=rejected.geometry,
            crs=self.crs,
        )
        positives = _concat(_concat(positives, new_pos, self.crs), frag_pos, self.crs)
        negatives = _concat(negatives, new_neg, self.crs)
        inventory = _concat(inventory, new_inv, self.crs)
        ctx = self._context(None, k, sets)
        next_cfgs: dict[str, Any] = {}
        thresholds: dict[str, Any] = {}
        for name, det in detectors.items():
            thresholds[name] = det.summary()
            outcome = ReviewOutcome(
                iteration=k,
                candidates=mine,
                newly_confirmed=confirmed,
                rejected=rejected,
                positives_after=positives,
                negatives_after=negatives,
                context=self._context(name, k, sets),  # the detector's own work_dir of iteration k
            )
            nxt = self._call_detector(name, "next_config", k, det.next_config, outcome)
            next_cfgs[name] = None if nxt is None else nxt.model_dump(mode="json")
        self.manifest["iterations"][str(k + 1)] = next_cfgs
        self._save_manifest()
        row = {
            "iteration": k,
            "detectors": ",".join(detectors),
            "training_positives": len(positives[positives["iteration"] < k]),
            "training_negatives": len(negatives[negatives["iteration"] < k]),
            "candidates_proposed": int((self.ledger.read("proposals")["iteration"] == k).sum()),
            "candidates_reviewed": len(mine),
            "newly_confirmed": len(confirmed),
            "rejected": len(rejected),
            "inventory_size": len(inventory),
            "thresholds_json": json.dumps(thresholds, default=str),
        }
        with self.ledger.transaction() as t:
            t.write("positives", positives)
            t.write("negatives", negatives)
            t.write("inventory", inventory)
            its = t.read("iterations")
            its = its[its["iteration"] != k]
            t.write("iterations", pd.concat([its, pd.DataFrame([row])], ignore_index=True))
            t.mark_stage(k, "update")
        self.host.hook.thawdetect_iteration_finished(iteration=k, summary=row, context=ctx)
        self.echo(
            f"  iteration {k}: {len(confirmed)} confirmed, {len(fragments)} part of a mapped "
            f"feature, {len(rejected)} rejected, inventory {len(inventory)}"
        )

    def _accuracy(self) -> dict[str, Any] | None:
        """Score the run against the region's (or the config's) validation points."""
        paths = self.manifest["files"]["validation"]
        if not paths:
            return None
        from thawdetect.core.accuracy import AccuracyReport, format_run_table, run_accuracy

        result = run_accuracy(
            self.run_dir,
            paths,
            tolerance_m=self.config.validation_tolerance_m,
            label_column=self.config.validation_label_column or "auto",
        )
        if result["excluded_in_known_inventory"]:
            self.echo(
                f"{result['excluded_in_known_inventory']} validation points lie in the known "
                "inventory and are not scored"
            )
        write_atomic(self.run_dir / "accuracy.json", json.dumps(result, indent=2, default=str))
        return {
            "report": AccuracyReport.from_dict(result["overall"]),
            "table": format_run_table(result),
            "dict": result,
        }


def _concat(a: gpd.GeoDataFrame, b: gpd.GeoDataFrame, crs: Any) -> gpd.GeoDataFrame:
    if len(b) == 0:
        return gpd.GeoDataFrame(a, geometry="geometry", crs=crs)
    if len(a) == 0:
        return gpd.GeoDataFrame(b, geometry="geometry", crs=crs)
    return gpd.GeoDataFrame(pd.concat([a, b], ignore_index=True), geometry="geometry", crs=crs)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (pd.Timestamp,)):
        return value.isoformat()
    return str(value)


def safe_name(text: str) -> str:
    """A file-system-safe version of ``text`` (for default run directory names).

    Examples:
        >>> safe_name("qtec/optical_dl+insar_sbas")
        'qtec_optical_dl+insar_sbas'
    """
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text)
