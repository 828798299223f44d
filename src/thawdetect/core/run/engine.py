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

This module is longer than the project's ~400 lines because it holds the whole loop: the
constructor's order of checks (nothing is written before all pass), the stop rules and each
stage's ledger transaction, read top to bottom in one place. What a stage computes lives next to
it: ``checks.py`` (checks before writing and on resume), ``manifest.py`` (a new run's manifest),
``layers.py`` (the rows each stage writes), ``plugin_calls.py`` (calls into plugins, the
reviewer, evidence) and ``runlog.py`` (``run.log``).
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import geopandas as gpd
import pandas as pd

from thawdetect import __version__
from thawdetect.core.compute import trim_memory
from thawdetect.core.config import RunConfig
from thawdetect.core.errors import ConfigError, PluginError, ThawdetectError
from thawdetect.core.plugin_api.candidates import unusable_geometries, validate_candidates
from thawdetect.core.plugin_api.context import IterationContext
from thawdetect.core.plugin_api.detector import DeferredFrame, Detector, ReviewOutcome
from thawdetect.core.plugin_api.host import PluginHost
from thawdetect.core.run import checks, layers, rundir
from thawdetect.core.run import plugin_calls as calls
from thawdetect.core.run.checks import RESUMABLE_KEYS, check_ledger, config_differences
from thawdetect.core.run.guard import GuardLimits, screen_parts
from thawdetect.core.run.input_checks import check_detector_inputs
from thawdetect.core.run.layers import KNOWN_TYPES
from thawdetect.core.run.ledger import Ledger
from thawdetect.core.run.manifest import (
    MANIFEST,
    OUTPUT_FIELD_HINTS,
    STATUS_AWAITING,
    STATUS_FAILED,
    STATUS_FINISHED,
    STATUS_RUNNING,
    GuardRecord,
    Manifest,
    RunStatus,
    missing_input_files,
    new_manifest,
    save_manifest,
)
from thawdetect.core.run.merge import merge_candidates
from thawdetect.core.run.result import RunResult
from thawdetect.core.run.runlog import RUN_LOG, run_log
from thawdetect.core.run.sets import DecidedOutlines, TrainingSets

if TYPE_CHECKING:
    from thawdetect.core.accuracy.scoring import RunAccuracy

# the names moved out of this module stay importable from here (cli, api, accuracy, tests)
__all__ = [
    "KNOWN_TYPES",
    "OUTPUT_FIELD_HINTS",
    "RESUMABLE_KEYS",
    "RUN_LOG",
    "STATUS_AWAITING",
    "STATUS_FAILED",
    "STATUS_FINISHED",
    "STATUS_RUNNING",
    "Engine",
    "RunResult",
    "check_ledger",
    "config_differences",
    "missing_input_files",
    "safe_name",
]

log = logging.getLogger(__name__)
_T = TypeVar("_T")


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

    #: the region's AOI area in m² (0: no AOI), worked out on first use by the merge stage
    _region_area_m2: float | None = None

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
        # the run lock is taken before the stored run is read; a check that fails lets it go
        self._lock = rundir.RunLock(Path(run_dir), exclusive=True, command="thawdetect run")
        try:
            self._open(config, run_dir, host, echo=echo, overwrite=overwrite, source=source)
        except BaseException:
            self._lock.release()
            raise

    def _open(
        self,
        config: RunConfig,
        run_dir: str | Path,
        host: PluginHost,
        *,
        echo: Callable[[str], None] | None,
        overwrite: bool,
        source: str,
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
        # a folder of someone's files is never written into or deleted (rundir.py)
        state = rundir.check_output_dir(self.run_dir, overwrite=overwrite)
        if not self.config.detectors:
            raise ConfigError("no detector selected: use --detector NAME or a 'detectors:' section")
        for name in self.config.detectors:
            host.detector(name)  # unknown names fail early, listing the installed ones
        self.region = checks.resolve_region(self.config.region, host)
        self.crs = self.region.working_crs()
        if state != "new":
            self._lock.acquire(wait_s=5.0)  # a second run (or a reviewer writing) is refused
        stored = checks.read_stored_manifest(self.run_dir) if state == "resume" else None
        self.manifest: Manifest
        if stored is not None:
            checks.check_same_config(stored, self.config.model_dump(mode="json"), self.run_dir)
            self.ledger = Ledger(self.run_dir, crs=self.crs)
            check_ledger(self.ledger)
            self.manifest = stored
            self.manifest.run_config = self.config.model_dump(mode="json")
        else:
            self.manifest = new_manifest(
                self.config, self.region, self.crs, host, source=source, echo=self.echo
            )
            # every input opened and each detector's own check, before the run directory exists
            check_detector_inputs(self.manifest.iterations[1], host, source=source, warn=self.warn)
            # read now, not after the last iteration: a bad file must not fail a finished run
            checks.check_validation_files(
                self.manifest.files.validation,
                self.crs,
                self.config.validation_label_column,
                self.region,
            )
        # a resumed run keeps the reviewer it was started with unless --reviewer is given
        previous_reviewer = self.manifest.reviewer
        self.reviewer = (
            self.config.reviewer
            or previous_reviewer
            or checks.default_reviewer(
                self.region, self.config.detectors, self.manifest.files.reference, self.echo
            )
        )
        checks.check_reviewer(
            self.reviewer,
            host,
            run_dir=self.run_dir,
            region=self.region,
            crs=self.crs,
            reference_paths=[Path(p) for p in self.manifest.files.reference],
            synthetic=self.manifest.synthetic,
        )
        self.manifest.reviewer = self.reviewer
        if stored is None:
            if state == "new":
                rundir.make_dir(self.run_dir)
                self._lock.acquire(wait_s=5.0)
            run_id = rundir.new_run_id()
            kept = rundir.create_run_dir(
                self.run_dir,
                run_id,
                replace=state != "new",
                detectors=tuple(host.detectors),
            )
            if kept:
                self.echo(f"kept {len(kept)} entries the old run did not write: {', '.join(kept)}")
            self.manifest.run_id = run_id
            save_manifest(self.run_dir, self.manifest)
            self.ledger = Ledger(self.run_dir, crs=self.crs)
        else:
            if rundir.ensure_marker(self.run_dir, self.manifest):
                self._save_manifest()
            if previous_reviewer != self.reviewer:
                self._save_manifest()
            if checks.apply_changed_inputs(
                self.manifest, self._last_finished_iteration, self.config.detectors, self.echo
            ):
                self._save_manifest()
        # what the run keeps in memory of its ledger (kept current by the stages)
        self._sets = TrainingSets(self.ledger)
        self._decided = DecidedOutlines(self.ledger)
        self._rejected = DecidedOutlines(self.ledger)
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

    def warn(self, msg: str) -> None:
        """A warning line: to the console (``warning: ...``), the log and ``run.log`` (WARNING)."""
        if self._echo_to is not None:
            self._echo_to(f"  warning: {msg}")
        log.warning(msg, extra={"thawdetect_echo": True})

    # -- set-up ----------------------------------------------------------------------------------

    def _last_finished_iteration(self) -> int:
        its = self.ledger.read("iterations")
        return int(its["iteration"].max()) if len(its) else 0

    def _save_manifest(self) -> None:
        save_manifest(self.run_dir, self.manifest)

    # -- the loop --------------------------------------------------------------------------------

    def _detectors_for(self, iteration: int) -> dict[str, Detector]:
        configs = self.manifest.configs(iteration)
        where = f"{self.run_dir / MANIFEST}: iterations.{iteration}"
        return calls.detectors_for(self.host, configs, where, iteration)

    def _training_sets(self) -> dict[str, gpd.GeoDataFrame]:
        """The ledger's positives, negatives and inventory as they stand (each caller gets its
        own copy; read once, then kept current by :meth:`_update`)."""
        return self._sets.get()

    def _context(
        self,
        name: str | None,
        iteration: int,
        sets: Mapping[str, gpd.GeoDataFrame | DeferredFrame] | None = None,
    ) -> IterationContext:
        """Context for detector ``name`` (None: the iteration itself, for reviewers/observers).

        ``sets``: the frames to hand over (the update stage's, already made); by default the sets
        as they stand, each made on the context's first look at it (:class:`DeferredFrame`): most
        reviewers and hooks never look, and the sets grow with the run.
        """
        return calls.iteration_context(
            self.run_dir,
            name,
            iteration,
            region=self.region,
            crs=self.crs,
            host=self.host,
            sets=sets if sets is not None else self._sets.deferred(),
            manifest=self.manifest,
        )

    def _initialise(self) -> None:
        if self.ledger.stage_done(0, "init"):
            return
        known = layers.read_known_inventory(
            self.manifest.files.known_inventory, self.crs, self.echo
        )
        inv, pos = layers.initial_layers(known)
        with self.ledger.transaction() as t:
            t.write("inventory", inv)
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
        self._lock.acquire(wait_s=5.0)  # held from __init__; again when run() is called twice
        try:
            with self._run_log(), use_scheduler(self.config.compute.scheduler):
                if self._lock.took_over:
                    self.echo(f"note: took over the run lock left by {self._lock.took_over}, "
                              "which is no longer running")  # fmt: skip
                    self._lock.took_over = None
                try:
                    return self._run()
                except Exception as exc:
                    # to run.log only: the CLI prints the one "Error:" line on the console; a
                    # plugin's traceback (or a bug's) is kept there, under that line
                    trace = not isinstance(exc, ThawdetectError) or isinstance(exc, PluginError)
                    log.error("%s", exc, exc_info=trace, extra={"thawdetect_echo": True})
                    self._mark_failed(exc)
                    raise
        finally:
            self._lock.release()

    def _mark_failed(self, exc: BaseException) -> None:
        """``thawdetect status`` says the session failed, and why (not "running")."""
        line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        self.manifest.mark(
            RunStatus.FAILED,
            line if isinstance(exc, ThawdetectError) else f"{type(exc).__name__}: {line}",
        )
        with contextlib.suppress(OSError):  # the run's own error is the one to report
            self._save_manifest()

    @contextlib.contextmanager
    def _run_log(self) -> Iterator[None]:
        """Attach ``run.log`` (INFO: thawdetect's lines and timings; every warning) for a run."""
        header = (
            f"thawdetect {__version__}: session started ({self.source}; reviewer "
            f"{self.reviewer}; status {self.manifest.status})"
        )
        with run_log(self.run_dir, log, header, self._pre_run) as handler:
            self._log_handler = handler
            try:
                yield
            finally:
                self._log_handler = None

    def _run(self) -> RunResult:
        if self.manifest.status == RunStatus.FAILED:  # resumed after a failed session
            self.manifest.mark(RunStatus.RUNNING)
            self._save_manifest()
        with self._timed(0, "init"):
            self._initialise()
        iteration = 1
        reason = ""
        # after inputs changed, a finished run goes on for up to max_iterations more iterations
        limit = self.config.max_iterations + self.manifest.offset
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
                self.manifest.status = RunStatus.AWAITING
                self._save_manifest()
                stop = f"iteration {iteration}: {pending} candidates await review"
                log.info("stopped: %s", stop)
                return RunResult(self.run_dir, STATUS_AWAITING, stop_reason=stop, pending=pending)
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
        self.manifest.mark(RunStatus.FINISHED, reason)
        self._save_manifest()
        log.info("stopped: %s", reason)
        with self._timed(0, "accuracy"):
            scores = self._accuracy()
        return RunResult(self.run_dir, STATUS_FINISHED, stop_reason=reason, _scores=scores)

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
        with calls.gc_paused():  # plugin calls run with the collector on (plugin_calls)
            return self._stages(k, detectors)

    def _stages(self, k: int, detectors: dict[str, Detector]) -> str:
        self.echo(f"iteration {k}: detectors {', '.join(detectors)}")
        for name, det in detectors.items():
            with self._timed(k, f"propose:{name}"):
                self._propose(k, name, det)
        if not self.ledger.stage_done(k, "merge"):
            with self._timed(k, "merge"):
                self._merge(k)
        if self.config.evidence and not self.ledger.stage_done(k, "evidence"):
            with self._timed(k, "evidence"), calls.gc_running():  # figures hold cycles
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
        return calls.call_detector(self.host, name, method, k, fn, arg)

    def _propose(self, k: int, name: str, det: Detector) -> None:
        stage = f"propose:{name}"
        if self.ledger.stage_done(k, stage):
            return
        ctx = self._context(name, k)
        self.echo(f"  {name}: proposing candidates")
        started = time.perf_counter()
        raw = self._call_detector(name, "propose", k, det.propose, ctx)
        trim_memory()  # what the detector freed goes back to the system before the next step
        # nothing of a broken answer reaches the ledger: refused in one line, or repaired
        plugin = self.host.detector_plugin(name)
        cands = validate_candidates(
            raw, name, self.crs, region=self.region, plugin=plugin, warn=self.warn
        )
        store = self._call_detector(
            name, "propose (its candidates' columns)", k,
            lambda c: layers.proposal_rows(c, name, k, self.crs), cands,
        )  # fmt: skip
        with calls.gc_running():
            self.host.hook.thawdetect_candidates_proposed(
                detector=name, iteration=k, candidates=cands.copy(), context=ctx
            )
        with self.ledger.transaction() as t:
            # only this stage's rows change (replaced, so a re-run never appends twice)
            t.delete("proposals", {"iteration": k, "detector": name})
            t.append("proposals", store)
            t.mark_stage(k, stage)
        self.echo(f"  {name}: {len(store)} candidates ({time.perf_counter() - started:.1f} s)")

    def _merge(self, k: int) -> None:
        props = self.ledger.read("proposals", where={"iteration": k}).reset_index(drop=True)
        self._check_proposals(k, props)
        flat = layers.expand_proposals(props, self.crs)
        merged = merge_candidates(flat, self.crs, buffer_m=self.config.merge_buffer_m)
        # A confirmed candidate is known as what the reviewer confirmed: its inventory feature
        # (the reviewed outline). The rest of a detector outline that ran into a neighbour is
        # not a known feature, and a new landslide there goes to review (issue 20). Ground
        # called part of a mapped feature, or left unsure, is known as the detector drew it.
        decided = self._decided.get(["part_of", "unsure"])
        inventory = self._sets.geometry("inventory")
        seen = gpd.GeoDataFrame(
            geometry=pd.concat([decided, inventory], ignore_index=True), crs=self.crs
        )
        # rejected ground drops only the same ground again, not a smaller outline inside it
        rejected = gpd.GeoDataFrame(geometry=self._rejected.get(["rejected"]), crs=self.crs)
        screened = screen_parts(
            merged,
            seen,
            k,
            duplicate_overlap=self.config.duplicate_overlap,
            min_mapping_unit_ha=self.config.min_mapping_unit_ha,
            limits=self._guard_limits(),
            rejected=rejected,
        )
        cands = screened.candidates
        # the guard's warnings: run.log, the console, and the manifest (``thawdetect status``)
        records = [w for w in self.manifest.warnings or [] if w.iteration != k]
        records += [GuardRecord.model_validate(w.to_dict(k)) for w in screened.warnings]
        if records or self.manifest.warnings is not None:
            self.manifest.warnings = records
            self._save_manifest()
        with self.ledger.transaction() as t:
            t.delete("candidates", {"iteration": k})
            t.append("candidates", cands)
            t.mark_stage(k, "merge")
        for w in screened.warnings:
            self.warn(w.message)
        split = (
            f" ({screened.n_split} split into parts: {screened.n_known_parts} known parts "
            "dropped, the other parts to review)"
            if screened.n_split
            else ""
        )
        self.echo(
            f"  merged {len(props)} proposals into {len(merged)} candidates; "
            f"{screened.n_seen} already seen{split}, {screened.n_small} below "
            f"{self.config.min_mapping_unit_ha} ha; {len(cands)} to review"
        )

    def _check_proposals(self, k: int, props: gpd.GeoDataFrame) -> None:
        """Stored proposals the merge cannot use (a ledger written before the candidates were
        validated: a wrong CRS stored as infinite coordinates) are removed with their stage
        marks, so that the next run proposes them again once the detector is fixed.

        Raises:
            PluginError: naming the detectors whose proposals were removed.
        """
        bad = unusable_geometries(props.geometry)
        if not bad.any():
            return
        names = sorted(set(props.loc[bad, "detector"]))
        with self.ledger.transaction() as t:
            for name in names:
                t.delete("proposals", {"iteration": k, "detector": name})
                t.delete("stages", {"iteration": k, "stage": f"propose:{name}"})
        raise PluginError(
            f"iteration {k}: {int(bad.sum())} stored proposals of detector(s) "
            f"{', '.join(names)} have unusable geometries (not polygons or not finite: a wrong "
            "CRS?); they were removed and are proposed again when the run is resumed"
        )

    def _guard_limits(self) -> GuardLimits:
        """What a plausible candidate looks like (the config's limits, the region's area)."""
        if self._region_area_m2 is None:
            aoi = self.region.aoi
            self._region_area_m2 = (
                float(gpd.GeoSeries([aoi], crs="EPSG:4326").to_crs(self.crs).area.iloc[0])
                if aoi is not None
                else 0.0
            )
        c = self.config
        return GuardLimits(
            max_part_gap_m=c.max_part_gap_m,
            max_span_m=c.max_candidate_span_m,
            max_area_ha=c.max_candidate_area_ha,
            max_region_share=c.max_region_share,
            region_area_m2=self._region_area_m2 or None,
        )

    def _evidence(self, k: int, detectors: dict[str, Detector]) -> None:
        cands = self.ledger.read("candidates", where={"iteration": k})

        def frames_and_dem() -> tuple[list[Any], Any]:
            frames, dem = [], None
            for name, det in detectors.items():
                ctx = self._context(name, k)
                frames += self._call_detector(name, "image_frames", k, det.image_frames, ctx)
                dem = dem or getattr(det.config, "dem_file", None)  # hillshade behind value maps
            return frames, dem

        calls.write_evidence(
            cands,
            frames_and_dem,
            self.run_dir / "iterations" / f"{k:02d}" / "evidence",
            mode=self.config.evidence,
            buffer_m=self.config.evidence_buffer_m,
            crs=self.crs,
            echo=self.echo,
        )
        with self.ledger.transaction() as t:
            t.mark_stage(k, "evidence")

    def _review(self, k: int) -> bool:
        pending = self.ledger.read("candidates", where={"iteration": k, "status": "pending"})
        if len(pending) and self.reviewer != "manual":
            ctx = self._context(None, k)
            decisions, settings = calls.review_candidates(self.host, self.reviewer, pending, ctx, k)
            if settings:
                review = dict(self.manifest.review or {})
                review[k] = {"reviewer": self.reviewer, **settings}
                self.manifest.review = review
                self._save_manifest()
            decided = set(decisions["candidate_id"].astype(str)) if len(decisions) else set()
            left = int((~pending["candidate_id"].astype(str).isin(decided)).sum())
            with self.ledger.transaction() as t:
                if len(decisions):
                    t.record_decisions(decisions)
                if not left:
                    t.mark_stage(k, "review")
            if not left:
                return True
            # the reviewer decided what it could and left the rest to a person
            self.echo(
                f"  reviewer {self.reviewer} left {left} of {len(pending)} candidates to a "
                f"person: thawdetect review serve {self.run_dir}, then run again"
            )
            return False
        if len(pending):
            return False
        with self.ledger.transaction() as t:
            t.mark_stage(k, "review")
        return True

    def _update(self, k: int, detectors: dict[str, Detector]) -> None:
        from thawdetect.core.review.decisions import latest_decisions

        mine = self.ledger.read("candidates", where={"iteration": k})
        confirmed = mine[mine["status"] == "confirmed"]
        rejected = mine[mine["status"] == "rejected"]
        # this iteration's decisions only (undo rows carry their candidate's iteration too)
        latest = latest_decisions(self.ledger.read("decisions", where={"iteration": k}))
        sets = self._training_sets()
        upd = layers.inventory_update(
            k,
            mine,
            latest,
            sets,
            self.crs,
            self.echo,
            same_landslide_overlap=self.config.duplicate_overlap,  # one feature per landslide
        )
        positives, negatives, inventory = upd.positives, upd.negatives, upd.inventory
        ctx = self._context(None, k, sets)
        next_cfgs: dict[str, Any] = {}
        thresholds: dict[str, Any] = {}
        guard = self.manifest.guard_records(k)
        for name, det in detectors.items():
            thresholds[name] = det.summary()
            mine_guard = [w.short for w in guard if name in w.detectors.split(",")]
            if mine_guard:  # shown by ``thawdetect status`` beside the detector's thresholds
                thresholds[name] = {**thresholds[name], "guard": "; ".join(mine_guard)}
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
        self.manifest.iterations[k + 1] = next_cfgs
        self._save_manifest()
        n_proposed = self.ledger.count("proposals", {"iteration": k})
        row = layers.iteration_summary(k, list(detectors), mine, upd, n_proposed, thresholds)
        with self.ledger.transaction() as t:
            # Idempotent on re-run: this iteration's rows are replaced, earlier features that
            # fragments were merged into are updated in place (the same union again on a re-run).
            for layer, rows in (
                ("positives", upd.new_positives),
                ("negatives", upd.new_negatives),
                ("inventory", upd.new_inventory),
                ("iterations", pd.DataFrame([row])),
            ):
                t.delete(layer, {"iteration": k})
                t.append(layer, rows)
            if len(upd.grown):
                t.update("inventory", "inventory_id", upd.grown)
            t.mark_stage(k, "update")
        self._sets.updated(k, upd.grown["inventory_id"].tolist() if len(upd.grown) else [])
        with calls.gc_running():
            self.host.hook.thawdetect_iteration_finished(iteration=k, summary=row, context=ctx)
        self.echo(
            f"  iteration {k}: {len(confirmed)} confirmed, {len(upd.fragments)} part of a mapped "
            f"feature, {len(rejected)} rejected, inventory {len(inventory)}"
        )

    def _accuracy(self) -> RunAccuracy | None:
        """Score the run against the region's (or the config's) validation points.

        The same function as ``thawdetect accuracy --run RUN_DIR`` (one code path, one answer).
        """
        if not self.manifest.files.validation:
            return None
        from thawdetect.core.accuracy import RunAccuracy, score_run

        scores = RunAccuracy(score_run(self.run_dir))
        if scores.excluded_in_known_inventory:
            self.echo(
                f"{scores.excluded_in_known_inventory} validation points lie in the known "
                "inventory and are not scored"
            )
        scores.write(self.run_dir)
        return scores


def safe_name(text: str) -> str:
    """A file-system-safe version of ``text`` (for default run directory names).

    Examples:
        >>> safe_name("qtec/optical_dl+insar_sbas")
        'qtec_optical_dl+insar_sbas'
    """
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text)
