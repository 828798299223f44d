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

import contextlib
import json
import logging
import os
import re
import shutil
import sqlite3
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
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
from thawdetect.core.paths import local_exists
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
RUN_LOG = "run.log"
#: Run settings that may change between sessions of one run.
RESUMABLE_KEYS = ("reviewer", "max_iterations", "compute")
#: Config fields whose names contain one of these are outputs, not inputs that must exist.
OUTPUT_FIELD_HINTS = ("work_dir", "out_dir", "output", "cache")
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

    Everything is checked before anything is written: the config sections, every input file they
    name, the reviewer (asked with an empty candidate set) and, on a resume, the stored
    configuration and the ledger. Only then is the run directory created (or, with ``overwrite``,
    an existing *run* deleted: a directory without ``manifest.json`` is never deleted).

    On a resume, inputs whose checksum changed since the run started are named one line each; a
    finished run then continues as a new iteration with each detector's last effective config
    (see ``docs/engine.md``).

    Args:
        config: the run configuration (region and detector selection resolved).
        run_dir: the run directory (created; holds ``ledger.gpkg`` and ``manifest.json``).
        host: the plugin host.
        echo: where progress lines go (the CLI passes rich's console.print).
        overwrite: delete an existing run in ``run_dir`` first (after every check passed).
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
        self._echo_to = echo
        self._buffering = True  # progress lines wait until every check has passed
        self._deferred: list[str] = []
        self._pre_run: list[str] = []  # lines said before run() opened run.log
        self._log_handler: logging.Handler | None = None
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise InputError(self.run_dir, "is a file; --output-dir must be a directory")
        if not self.config.detectors:
            raise ConfigError("no detector selected: use --detector NAME or a 'detectors:' section")
        for name in self.config.detectors:
            host.detector(name)  # unknown names fail early, listing the installed ones
        self.region = self._resolve_region()
        self.crs = self.region.working_crs()
        path = self.run_dir / MANIFEST
        is_run = path.exists()
        if overwrite and not is_run and self.run_dir.exists() and any(self.run_dir.iterdir()):
            raise InputError(
                self.run_dir,
                "is not a thawdetect run (no manifest.json); --overwrite only deletes run "
                "directories: choose another --output-dir",
            )
        stored = None if overwrite or not is_run else self._read_manifest(path)
        if stored is not None:
            self._check_same_config(stored)
            self.ledger = Ledger(self.run_dir, crs=self.crs)
            self._check_ledger()
            self.manifest = stored
            self.manifest["run_config"] = self.config.model_dump(mode="json")
        else:
            self.manifest = self._new_manifest()
        # a resumed run keeps the reviewer it was started with unless --reviewer is given
        previous_reviewer = self.manifest.get("reviewer")
        self.reviewer = self.config.reviewer or previous_reviewer or self._default_reviewer()
        self._check_reviewer()
        self.manifest["reviewer"] = self.reviewer
        if stored is None:
            if overwrite and is_run:
                shutil.rmtree(self.run_dir)
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(path, json.dumps(self.manifest, indent=2))
            self.ledger = Ledger(self.run_dir, crs=self.crs)
        else:
            if previous_reviewer != self.reviewer:
                self._save_manifest()
            self._check_inputs_changed()
        self._buffering = False
        for msg in self._deferred:
            self.echo(msg)
        self._deferred.clear()

    def echo(self, msg: str) -> None:
        """A progress line: to the caller's echo (the console), the log and ``run.log``.

        Log records of these lines carry ``thawdetect_echo=True`` so that a console log handler
        can skip what the console already printed.
        """
        if self._buffering:
            self._deferred.append(msg)
            return
        if self._echo_to is not None:
            self._echo_to(msg)
        if self._log_handler is None:
            self._pre_run.append(msg)
        log.info(msg, extra={"thawdetect_echo": True})

    def _default_reviewer(self) -> str:
        """``reference`` when every detector runs on a bundled sample and one has a reference."""
        data = [self.region.detectors.get(d) for d in self.config.detectors]
        on_samples = all(d is not None and d.sample for d in data)
        if on_samples and self.manifest["files"]["reference"]:
            self.echo("reviewer: the bundled sample's reference inventory (--reviewer to change)")
            return "reference"
        return "manual"

    # -- checks before anything is written --------------------------------------------------------

    def _read_manifest(self, path: Path) -> dict[str, Any]:
        try:
            manifest = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(
                path, "run manifest is corrupt (not JSON); restore it or use --overwrite"
            ) from exc
        if not isinstance(manifest, dict) or not isinstance(manifest.get("iterations"), dict):
            raise InputError(path, "run manifest is corrupt (no 'iterations' mapping)")
        return manifest

    def _check_same_config(self, manifest: dict[str, Any]) -> None:
        """Refuse a different configuration, naming every key that differs."""
        stored = dict(manifest.get("run_config", {}))
        new = self.config.model_dump(mode="json")
        for key in RESUMABLE_KEYS:  # may change between sessions
            stored.pop(key, None)
            new.pop(key, None)
        diff = config_differences(stored, new)
        if diff:
            shown = "; ".join(diff[:8]) + (f"; and {len(diff) - 8} more" if len(diff) > 8 else "")
            raise ConfigError(
                f"{self.run_dir}: holds a run with a different configuration ({shown}); use "
                "--overwrite to start again or another --output-dir"
            )

    def _check_ledger(self) -> None:
        check_ledger(self.ledger)

    def _check_reviewer(self) -> None:
        """Ask the plugins whether they understand the reviewer, with no candidates.

        A reference reviewer reads its reference file here, so a missing or unreadable file
        fails before iteration 1 instead of after it.
        """
        if self.reviewer == "manual":
            return
        empty = gpd.GeoDataFrame(
            {"candidate_id": pd.Series(dtype=object)},
            geometry=gpd.GeoSeries([], crs=self.crs),
            crs=self.crs,
        )
        with tempfile.TemporaryDirectory(prefix="thawdetect-reviewer-") as tmp:
            ctx = IterationContext(
                run_dir=self.run_dir,
                work_dir=Path(tmp),
                iteration=0,
                region=self.region,
                crs=self.crs,
                host=self.host,
                positives=empty.iloc[:0],
                negatives=empty.iloc[:0],
                inventory=empty.iloc[:0],
                reference_paths=[Path(p) for p in self.manifest["files"]["reference"]],
                synthetic=bool(self.manifest.get("synthetic", False)),
            )
            try:
                answer = self.host.hook.thawdetect_review_candidates(
                    candidates=empty, reviewer=self.reviewer, context=ctx
                )
            except ThawdetectError:
                raise
            except Exception as exc:
                raise PluginError(
                    f"reviewer '{self.reviewer}': {type(exc).__name__}: {exc}"
                ) from exc
        if answer is None:
            raise ConfigError(
                f"reviewer '{self.reviewer}' is not understood by any plugin "
                "(use manual, reference or reference:PATH)"
            )

    def _check_inputs_changed(self) -> None:
        """Name inputs whose checksum changed; continue a finished run as a new iteration."""
        recorded = self.manifest.get("input_checksums") or {}
        changed: list[str] = []
        for name, info in recorded.items():
            p = Path(name)
            if not p.is_file():
                raise InputError(p, "input file of this run is missing (it was checksummed when "
                                 "the run started); restore it or use --overwrite")  # fmt: skip
            stat = p.stat()
            if info.get("bytes") == stat.st_size and info.get("mtime_ns") == stat.st_mtime_ns:
                continue  # unchanged on disk: no need to read it again
            digest = file_digest(p)
            if digest == info.get("sha256"):
                info["mtime_ns"] = stat.st_mtime_ns
                continue
            changed.append(name)
            was = f"{info.get('bytes', '?')} bytes, sha256 {str(info.get('sha256', ''))[:12]}"
            self.echo(
                f"input changed: {name} (was {was}; now {stat.st_size} bytes, sha256 {digest[:12]})"
            )
            recorded[name] = {"sha256": digest, "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        if not changed:
            return
        history = self.manifest.setdefault("input_updates", [])
        entry: dict[str, Any] = {"at": now_iso(), "changed": changed}
        if self.manifest.get("status") == STATUS_FINISHED:
            last = self._last_finished_iteration()
            nxt = last + 1
            configs = {}
            for name in self.config.detectors:
                effective = None
                for i in range(last, 0, -1):
                    effective = self.manifest["iterations"].get(str(i), {}).get(name)
                    if effective is not None:
                        break
                configs[name] = effective
            self.manifest["iterations"][str(nxt)] = configs
            self.manifest["iteration_offset"] = last
            self.manifest["status"] = STATUS_RUNNING
            self.manifest.pop("stop_reason", None)
            entry["continues_as_iteration"] = nxt
            self.echo(
                f"inputs changed since the run finished: continuing as iteration {nxt} with "
                "each detector's last effective config (decided candidates are not reviewed again)"
            )
        else:
            self.echo("inputs changed: the unfinished iteration goes on with the new files")
        history.append(entry)
        self._save_manifest()

    def _last_finished_iteration(self) -> int:
        its = self.ledger.read("iterations")
        return int(its["iteration"].max()) if len(its) else 0

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

    def _new_manifest(self) -> dict[str, Any]:
        """The manifest of a new run; every section and input file checked, nothing written."""
        user_cfg = self.config.model_dump(mode="json")
        detector_configs: dict[str, Any] = {}
        files: dict[str, list[str]] = {"reference": [], "known_inventory": [], "validation": []}
        region_cfgs: dict[str, Any] = {}
        for name in self.config.detectors:  # check every section before building any sample
            defaults, _ = self._region_data(name, build=False)
            merged = deep_merge(defaults, self.config.detectors[name] or {})
            cls = self.host.detector(name)
            validate_section(cls.config_model, merged, f"{self.source}: detectors.{name}")
        for key in ("known_inventory", "validation"):
            value = getattr(self.config, key)
            if value is not None and local_exists(value) is False:
                raise InputError(value, f"{key.replace('_', ' ')} file does not exist")
        for name in self.config.detectors:
            cls = self.host.detector(name)
            defaults, region_files = self._region_data(name)
            merged = deep_merge(defaults, self.config.detectors[name] or {})
            where = f"{self.source}: detectors.{name}"
            cfg = validate_section(cls.config_model, merged, where)
            for field_path, missing in missing_input_files(cfg):
                raise InputError(missing, f"file does not exist ({where}.{field_path})")
            detector_configs[name] = cfg.model_dump(mode="json")
            region_cfgs[name] = merged
            for key, value in region_files.items():
                if value and value not in files[key]:
                    files[key].append(value)
        if self.config.known_inventory:
            files["known_inventory"] = [os.fspath(self.config.known_inventory)]
        if self.config.validation:
            files["validation"] = [os.fspath(self.config.validation)]
        for key, paths in files.items():
            for name in paths:
                if local_exists(name) is False:
                    raise InputError(name, f"{key.replace('_', ' ')} file of region "
                                     f"'{self.region.name}' does not exist")  # fmt: skip
        inputs = {}
        for p in input_files(region_cfgs) + input_files(files):
            key = str(p)
            if key not in inputs:
                stat = p.stat()
                inputs[key] = {
                    "sha256": file_digest(p),
                    "bytes": stat.st_size,
                    "mtime_ns": stat.st_mtime_ns,
                }
        return {
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

    # (finished init/update stages, sets): positives, negatives and inventory change only there
    _sets_cache: tuple[int, dict[str, gpd.GeoDataFrame]] | None = None

    def _training_sets(self) -> dict[str, gpd.GeoDataFrame]:
        """The ledger's positives, negatives and inventory as they stand.

        Read once per change (they change only in the init and update stages), not once per
        stage; each caller gets its own copy.
        """
        version = self.ledger.count("stages", {"stage": ["init", "update"]})
        if self._sets_cache is None or self._sets_cache[0] != version:
            sets = {k: self.ledger.read(k) for k in ("positives", "negatives", "inventory")}
            self._sets_cache = (version, sets)
        return {k: v.copy() for k, v in self._sets_cache[1].items()}

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

        Everything said, every stage's duration and every warning also go to ``RUN_DIR/run.log``
        (appended, one session after another).

        Raises:
            PluginError: a detector raised (the ledger keeps every finished stage).
            ThawdetectError: bad input or configuration.
        """
        from thawdetect.core.compute import use_scheduler

        # heavy steps run on Dask: in this process, a local pool or a cluster (one code path)
        with self._run_log(), use_scheduler(self.config.compute.scheduler):
            try:
                return self._run()
            except ThawdetectError as exc:
                log.error("%s", exc)
                raise

    @contextlib.contextmanager
    def _run_log(self) -> Iterator[None]:
        """Attach ``run.log`` (INFO: thawdetect's lines and timings; every warning) for a run."""
        handler = logging.FileHandler(self.run_dir / RUN_LOG, encoding="utf-8")
        handler.setLevel(logging.INFO)
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"
            )
        )
        handler.addFilter(_run_log_filter)
        root = logging.getLogger()
        own = logging.getLogger("thawdetect")
        old_level = own.level
        if own.getEffectiveLevel() > logging.INFO:
            own.setLevel(logging.INFO)
        root.addHandler(handler)
        self._log_handler = handler
        capturing = logging.getLogger("py.warnings").handlers or _warnings_captured()
        if not capturing:
            logging.captureWarnings(True)
        try:
            handler.emit(
                log.makeRecord(
                    log.name, logging.INFO, __file__, 0,
                    f"thawdetect {__version__}: session started ({self.source}; reviewer "
                    f"{self.reviewer}; status {self.manifest.get('status')})", (), None,
                )
            )  # fmt: skip
            for msg in self._pre_run:
                handler.emit(log.makeRecord(log.name, logging.INFO, __file__, 0, msg, (), None))
            self._pre_run.clear()
            yield
        finally:
            if not capturing:
                logging.captureWarnings(False)
            root.removeHandler(handler)
            own.setLevel(old_level)
            handler.close()
            self._log_handler = None

    def _run(self) -> RunResult:
        with self._timed(0, "init"):
            self._initialise()
        iteration = 1
        reason = ""
        # after inputs changed, a finished run goes on for up to max_iterations more iterations
        limit = self.config.max_iterations + int(self.manifest.get("iteration_offset", 0))
        while True:
            if iteration > limit:
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
                stop = f"iteration {iteration}: {pending} candidates await review"
                log.info("stopped: %s", stop)
                return RunResult(
                    STATUS_AWAITING,
                    self.run_dir,
                    self.ledger.read("iterations"),
                    stop_reason=stop,
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
        log.info("stopped: %s", reason)
        result = RunResult(STATUS_FINISHED, self.run_dir, self.ledger.read("iterations"), reason)
        with self._timed(0, "accuracy"):
            result.accuracy = self._accuracy()
        return result

    @contextlib.contextmanager
    def _timed(self, k: int, stage: str) -> Iterator[None]:
        """Log how long a stage took (``run.log``)."""
        started = time.perf_counter()
        yield
        log.info("iteration %d, stage %s: %.2f s", k, stage, time.perf_counter() - started)

    def _iteration_row(self, iteration: int) -> pd.Series | None:
        it = self.ledger.read("iterations")
        sel = it[it["iteration"] == iteration]
        return None if sel.empty else sel.iloc[-1]

    def _pending(self, iteration: int) -> int:
        return self.ledger.count("candidates", {"iteration": iteration, "status": "pending"})

    def _iteration(self, k: int, detectors: dict[str, Detector]) -> str:
        self.echo(f"iteration {k}: detectors {', '.join(detectors)}")
        for name, det in detectors.items():
            with self._timed(k, f"propose:{name}"):
                self._propose(k, name, det)
        if not self.ledger.stage_done(k, "merge"):
            with self._timed(k, "merge"):
                self._merge(k)
        if self.config.evidence and not self.ledger.stage_done(k, "evidence"):
            with self._timed(k, "evidence"):
                self._evidence(k, detectors)
        if not self.ledger.stage_done(k, "review"):
            with self._timed(k, "review"):
                reviewed = self._review(k)
            if not reviewed:
                return STATUS_AWAITING
        if not self.ledger.stage_done(k, "update"):
            with self._timed(k, "update"):
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
                    json.dumps(dict(zip(evidence_cols, values, strict=True)), default=_json_default)
                    for values in zip(*(rows[c].astype(object) for c in evidence_cols), strict=True)
                ]
                if evidence_cols
                else ["{}"] * len(rows),
            },
            geometry=rows.geometry,
            crs=self.crs,
        )
        with self.ledger.transaction() as t:
            # only this stage's rows change (replaced, so a re-run never appends twice)
            t.delete("proposals", {"iteration": k, "detector": name})
            t.append("proposals", store)
            t.mark_stage(k, stage)
        self.echo(f"  {name}: {len(store)} candidates ({time.perf_counter() - started:.1f} s)")

    def _merge(self, k: int) -> None:
        props = self.ledger.read("proposals", where={"iteration": k}).reset_index(drop=True)
        expanded = [
            {"detector": det, SCORE_COLUMN: score, **(json.loads(ev) if ev else {})}
            for det, score, ev in zip(
                props["detector"], props[SCORE_COLUMN], props["evidence_json"], strict=True
            )
        ]
        flat = gpd.GeoDataFrame(
            pd.DataFrame(expanded, index=props.index),
            geometry=props.geometry,
            crs=self.crs,
        )
        merged = merge_candidates(flat, self.crs, buffer_m=self.config.merge_buffer_m)
        n_merged = len(merged)
        decided = self.ledger.read(
            "candidates",
            columns=[],
            where={"status": ["confirmed", "rejected", "part_of", "unsure"]},
        )
        seen = pd.concat(
            [decided[["geometry"]], self.ledger.read("inventory", columns=[])[["geometry"]]],
            ignore_index=True,
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
            t.delete("candidates", {"iteration": k})
            t.append("candidates", merged)
            t.mark_stage(k, "merge")
        self.echo(
            f"  merged {len(props)} proposals into {n_merged} candidates; "
            f"{int(dup.sum())} already seen, {int(small.sum())} below "
            f"{self.config.min_mapping_unit_ha} ha; {len(merged)} to review"
        )

    def _evidence(self, k: int, detectors: dict[str, Detector]) -> None:
        cands = self.ledger.read("candidates", where={"iteration": k})
        # a broken install fails the stage loudly; it is not marked done without evidence
        try:
            from thawdetect.core.review.evidence import build_evidence, write_spec
        except ImportError as exc:
            raise PluginError(
                f"review evidence cannot be made: {type(exc).__name__}: {exc}; reinstall "
                "thawdetect, or set 'evidence: false' to run without evidence"
            ) from exc
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
            self.echo(f"  review evidence in {out} ({dt:.1f} s for {len(cands)} candidates)")
        with self.ledger.transaction() as t:
            t.mark_stage(k, "evidence")

    def _review(self, k: int) -> bool:
        pending = self.ledger.read("candidates", where={"iteration": k, "status": "pending"})
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

        mine = self.ledger.read("candidates", where={"iteration": k})
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
            "candidates_proposed": self.ledger.count("proposals", {"iteration": k}),
            "candidates_reviewed": len(mine),
            "newly_confirmed": len(confirmed),
            "rejected": len(rejected),
            "inventory_size": len(inventory),
            "thresholds_json": json.dumps(thresholds, default=str),
        }
        grown = _changed_features(sets["inventory"], inventory[inventory["iteration"] != k])
        with self.ledger.transaction() as t:
            # Idempotent on re-run: this iteration's rows are replaced, earlier features that
            # fragments were merged into are updated in place (the same union again on a re-run).
            for layer, rows in (
                ("positives", _concat(new_pos, frag_pos, self.crs)),
                ("negatives", new_neg),
                ("inventory", new_inv),
                ("iterations", pd.DataFrame([row])),
            ):
                t.delete(layer, {"iteration": k})
                t.append(layer, rows)
            if len(grown):
                t.update("inventory", "inventory_id", grown)
            t.mark_stage(k, "update")
        self.host.hook.thawdetect_iteration_finished(iteration=k, summary=row, context=ctx)
        self.echo(
            f"  iteration {k}: {len(confirmed)} confirmed, {len(fragments)} part of a mapped "
            f"feature, {len(rejected)} rejected, inventory {len(inventory)}"
        )

    def _accuracy(self) -> dict[str, Any] | None:
        """Score the run against the region's (or the config's) validation points.

        The same function as ``thawdetect accuracy --run RUN_DIR`` (one code path, one answer).
        """
        if not self.manifest["files"]["validation"]:
            return None
        from thawdetect.core.accuracy import AccuracyReport, format_run_table, score_run

        result = score_run(self.run_dir)
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


def _changed_features(before: gpd.GeoDataFrame, after: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Rows of ``after`` whose outline or attributes differ from ``before`` (same inventory_id)."""
    if len(after) == 0 or "inventory_id" not in after.columns:
        return after.iloc[:0]
    prev = before.set_index("inventory_id")
    cols = [c for c in after.columns if c in prev.columns and c != "geometry"]
    changed = []
    for i, (iid, geom) in enumerate(zip(after["inventory_id"], after.geometry, strict=True)):
        if iid not in prev.index:
            continue
        old = prev.loc[iid]
        same_geom = (
            old["geometry"] is not None and geom is not None and geom.equals(old["geometry"])
        )
        same_attrs = all(str(after[c].iloc[i]) == str(old[c]) for c in cols if c != "inventory_id")
        if not (same_geom and same_attrs):
            changed.append(i)
    return after.iloc[changed]


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


def check_ledger(ledger: Ledger) -> None:
    """Raise a one-line InputError when the run's ledger fails SQLite's integrity check.

    Used before a run resumes and before ``status``, ``accuracy --run`` and ``inventory export``
    read it, so a damaged GeoPackage is named instead of failing deep inside a read.
    """
    if not ledger.path.exists():
        return
    detail = "SQLite integrity check failed"
    try:
        sound = ledger.integrity_check()
    except sqlite3.DatabaseError as exc:
        sound, detail = False, str(exc)
    if not sound:
        raise InputError(
            ledger.path,
            f"run ledger is corrupt ({detail}); restore it from a backup or use --overwrite",
        )


def _warnings_captured() -> bool:
    return bool(getattr(warnings.showwarning, "__module__", "") == "logging")


def _run_log_filter(record: logging.LogRecord) -> bool:
    """``run.log`` keeps thawdetect's INFO lines and every other library's warnings."""
    return record.name.startswith("thawdetect") or record.levelno >= logging.WARNING


def config_differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """``key: old -> new`` for every (dotted) key whose value differs between two configs.

    Examples:
        >>> config_differences({"a": 1, "d": {"x": [1, 2]}}, {"a": 1, "d": {"x": [1, 3]}, "b": 2})
        ['b: (unset) -> 2', 'd.x: [1, 2] -> [1, 3]']
    """
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            name = f"{prefix}.{key}" if prefix else str(key)
            if key not in old:
                out.append(f"{name}: (unset) -> {_short(new[key])}")
            elif key not in new:
                out.append(f"{name}: {_short(old[key])} -> (unset)")
            else:
                out += config_differences(old[key], new[key], name)
        return out
    if old == new:
        return []
    return [f"{prefix or '(root)'}: {_short(old)} -> {_short(new)}"]


def _short(value: Any, width: int = 40) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def missing_input_files(model: Any, prefix: str = "") -> list[tuple[str, Path]]:
    """``(field.path, path)`` of every local ``Path`` in a validated config that does not exist.

    Path-typed fields are inputs, except those whose names contain one of
    :data:`OUTPUT_FIELD_HINTS` (``work_dir``, ``output`` ...) or that are marked
    ``json_schema_extra={"output": True}``. Glob patterns and URIs are left to the detector.
    """
    from pydantic import BaseModel

    found: list[tuple[str, Path]] = []
    if isinstance(model, BaseModel):
        for name, info in type(model).model_fields.items():
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            if extra.get("output") or any(h in name for h in OUTPUT_FIELD_HINTS):
                continue
            where = f"{prefix}.{name}" if prefix else name
            found += missing_input_files(getattr(model, name), where)
    elif isinstance(model, list | tuple):
        for i, item in enumerate(model):
            found += missing_input_files(item, f"{prefix}[{i}]")
    elif isinstance(model, Path):
        text = str(model)
        if not any(ch in text for ch in "*?[") and not model.expanduser().exists():
            found.append((prefix, model))
    return found
