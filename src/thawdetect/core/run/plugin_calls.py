"""How the engine calls plugins: detectors of an iteration, their context, the reviewer, evidence.

Every call into plugin code that is not a :class:`~thawdetect.core.errors.ThawdetectError`
becomes one :class:`~thawdetect.core.errors.PluginError` line naming the detector, its plugin, the
method and the iteration. Functions take explicit arguments; the engine owns the ledger.
"""

from __future__ import annotations

import contextlib
import gc
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import geopandas as gpd
import pandas as pd

from thawdetect.core.errors import ConfigError, PluginError, ThawdetectError
from thawdetect.core.models import validate_section
from thawdetect.core.plugin_api.context import IterationContext
from thawdetect.core.plugin_api.detector import DeferredFrame, Detector, DetectorConfig
from thawdetect.core.plugin_api.host import PluginHost
from thawdetect.core.regions import Region
from thawdetect.core.run.manifest import Manifest

_T = TypeVar("_T")


@contextlib.contextmanager
def _collector(enabled: bool) -> Iterator[None]:
    """Python's cyclic garbage collector on or off inside the block, as it was after it."""
    was = gc.isenabled()
    if enabled:
        gc.enable()
    else:
        gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
        else:
            gc.disable()


def gc_paused() -> contextlib.AbstractContextManager[None]:
    """Hold Python's cyclic garbage collector during the engine's own table work.

    The engine's stages allocate many short-lived containers while large object arrays (the
    ledger's layers, geometries) stay alive; every generation-2 collection walks all of them.
    Paused, that cost (~0.7 s per iteration at 10,510 candidates, peak memory unchanged) goes;
    reference counting still frees everything that is not a cycle. Plugin code runs with the
    collector on (:func:`gc_running`).
    """
    return _collector(False)


def gc_running() -> contextlib.AbstractContextManager[None]:
    """The collector on (as normal) inside a :func:`gc_paused` block: for plugin code."""
    return _collector(True)


def detectors_for(
    host: PluginHost, configs: dict[str, Any], where: str, iteration: int = 1
) -> dict[str, Detector]:
    """The active detectors of ``iteration`` from its effective configs (None: done).

    ``where`` names the configs' place (``manifest.json: iterations.N``) in a ConfigError.
    """
    out = {}
    for name, cfg in configs.items():
        if cfg is None:
            continue
        cls = host.detector(name)
        model: DetectorConfig = validate_section(cls.config_model, cfg, f"{where}.{name}")
        out[name] = cls(model)
        out[name].iteration = iteration
    return out


def iteration_context(
    run_dir: Path,
    name: str | None,
    iteration: int,
    *,
    region: Region,
    crs: Any,
    host: PluginHost,
    sets: Mapping[str, gpd.GeoDataFrame | DeferredFrame],
    manifest: Manifest,
) -> IterationContext:
    """Context for detector ``name`` (None: the iteration itself, for reviewers/observers).

    Its work directory ``iterations/NN/<name>`` is created; ``previous_dir`` is the one of the
    iteration before when it exists. ``sets`` holds the positives, negatives and inventory
    (frames, or :class:`DeferredFrame` made on first use).
    """
    work = run_dir / "iterations" / f"{iteration:02d}" / (name or "")
    work.mkdir(parents=True, exist_ok=True)
    prev = run_dir / "iterations" / f"{iteration - 1:02d}" / (name or "")
    return IterationContext(
        run_dir=run_dir,
        work_dir=work,
        iteration=iteration,
        region=region,
        crs=crs,
        host=host,
        positives=sets["positives"],
        negatives=sets["negatives"],
        inventory=sets["inventory"],
        previous_dir=prev if prev.exists() else None,
        reference_paths=[Path(p) for p in manifest.files.reference],
        synthetic=manifest.synthetic,
    )


def call_detector(
    host: PluginHost, name: str, method: str, k: int, fn: Callable[[Any], _T], arg: Any
) -> _T:
    """Call a detector method; anything but a ThawdetectError becomes one PluginError line."""
    try:
        with gc_running():
            return fn(arg)
    except ThawdetectError:
        raise
    except Exception as exc:
        plugin = host.detector_plugin(name)
        raise PluginError(
            f"detector '{name}' (plugin '{plugin}') failed in {method} at iteration {k}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def review_candidates(
    host: PluginHost, reviewer: str, pending: gpd.GeoDataFrame, ctx: IterationContext, k: int
) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    """``(decisions, review_settings)`` of an automatic reviewer on iteration ``k``'s candidates.

    A reviewer may decide only some of them: candidates without a row, or whose ``decision`` is
    empty or ``pending``, are left to a person (no row is returned for them). The decisions
    carry the reviewer, the iteration and a new ``auto-NN-xxxxxxxx`` batch id;
    the settings are what the reviewer reported (``attrs["review_settings"]``), if anything.

    Raises:
        ConfigError: no plugin understands ``reviewer``.
    """
    with gc_running():
        decisions = host.hook.thawdetect_review_candidates(
            candidates=pending.copy(), reviewer=reviewer, context=ctx
        )
    if decisions is None:
        raise ConfigError(
            f"reviewer '{reviewer}' is not understood by any plugin "
            "(use manual, reference or reference:PATH)"
        )
    settings = dict(getattr(decisions, "attrs", {}) or {}).get("review_settings")
    decisions = pd.DataFrame(decisions).copy()
    # a candidate without a row, or with an empty or "pending" decision, is left to a person
    if "decision" in decisions:
        left = decisions["decision"].isna() | decisions["decision"].astype(str).str.strip().isin(
            ["", "pending", "None", "nan"]
        )
        decisions = decisions[~left].reset_index(drop=True)
    decisions["reviewer"] = reviewer
    decisions["iteration"] = k
    decisions["batch_id"] = f"auto-{k:02d}-{uuid.uuid4().hex[:8]}"
    return decisions, settings


def write_evidence(
    cands: gpd.GeoDataFrame,
    frames_and_dem: Callable[[], tuple[list[Any], Any]],
    out: Path,
    *,
    mode: Any,
    buffer_m: float,
    crs: Any,
    echo: Callable[[str], None],
) -> None:
    """Write the evidence spec to ``out`` and, unless ``mode`` is ``lazy``, every candidate's.

    ``frames_and_dem`` asks the detectors for their image frames (and a DEM for hillshades); it
    is called only once the evidence module imported.

    Raises:
        PluginError: the evidence module cannot be imported (a broken install fails the stage
            loudly; it is not marked done without evidence).
    """
    try:
        from thawdetect.core.review.evidence import build_evidence, write_spec
    except ImportError as exc:
        raise PluginError(
            f"review evidence cannot be made: {type(exc).__name__}: {exc}; reinstall "
            "thawdetect, or set 'evidence: false' to run without evidence"
        ) from exc
    frames, dem = frames_and_dem()
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    write_spec(out, frames, buffer_m=buffer_m, dem=dem, crs=crs)
    if len(cands) and mode == "lazy":
        echo(f"  review evidence: drawn when each candidate is first shown ({out})")
    elif len(cands):
        build_evidence(cands, frames, out, buffer_m=buffer_m, dem=dem)
        dt = time.perf_counter() - started
        echo(f"  review evidence in {out} ({dt:.1f} s for {len(cands)} candidates)")
