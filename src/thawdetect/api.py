"""The Python API for notebooks and scripts: :func:`run` and :func:`open_run`.

The command line (``thawdetect run``) and this module drive the same :class:`~thawdetect.core.run.
engine.Engine`; a run started from one resumes from the other::

    import thawdetect

    result = thawdetect.run(region="qilian", detectors=["insar_sbas"], output_dir="runs/qilian")
    result.iterations          # DataFrame: one row per iteration (the published table)
    result.inventory           # GeoDataFrame: id, lon/lat, area, probability, near-road ...
    result.accuracy            # AccuracyReport (TPR/FPR/FNR with 95 % intervals) or None

    same = thawdetect.open_run("runs/qilian")   # read a run back later

Progress lines go to ``echo`` (default: ``print`` when ``progress=True``). See ``docs/api.md``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thawdetect.core.errors import InputError
from thawdetect.core.run.result import RunResult

if TYPE_CHECKING:
    from thawdetect.core.config import RunConfig
    from thawdetect.core.plugin_api.host import PluginHost

__all__ = ["RunResult", "build_run_config", "default_run_dir", "open_run", "run"]


def build_run_config(
    config: RunConfig | Mapping[str, Any] | str | Path | None = None,
    *,
    region: str | None = None,
    detectors: Sequence[str] | None = None,
    reviewer: str | None = None,
    max_iterations: int | None = None,
    validation: str | Path | None = None,
    scheduler: str | None = None,
    overrides_source: str | None = None,
) -> tuple[RunConfig, str]:
    """A validated :class:`RunConfig` from a config (object, dict or YAML path) plus overrides.

    The one way to build a run's config: :func:`run` and ``thawdetect run`` both call it.

    Args:
        config: a :class:`RunConfig`, a dict of the run YAML's keys, a YAML path, or None (the
            defaults).
        region: region preset (overrides the config's).
        detectors: detector names (overrides the config's selection; their sections kept).
        reviewer: reviewer spec.
        max_iterations: hard cap on iterations (0 is a value, and an error).
        validation: validation points file.
        scheduler: where the heavy steps run (``compute.scheduler``).
        overrides_source: how an invalid override is named in its message (default: the
            config's source; the CLI says "command line").

    Returns:
        (config, source) where source names the YAML file or "arguments", for messages.

    Raises:
        ConfigError: an invalid config (the message names the file and field).
    """
    from pydantic import ValidationError

    from thawdetect.core.config import RunConfig, load_run_config
    from thawdetect.core.errors import ConfigError
    from thawdetect.core.models import render_validation_error

    source = "arguments"
    if config is None or isinstance(config, (str, Path)):
        source = str(config) if config is not None else source
        cfg = load_run_config(Path(config) if config is not None else None)
    elif isinstance(config, RunConfig):
        cfg = config
    else:
        data = dict(config)
        if isinstance(data.get("detectors"), Mapping):  # `insar_sbas:` with no settings
            data["detectors"] = {k: (v or {}) for k, v in data["detectors"].items()}
        try:
            cfg = RunConfig.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(render_validation_error(exc, source)) from None
    if isinstance(detectors, str):
        detectors = [detectors]
    updates: dict[str, Any] = {}
    if region:
        updates["region"] = region
    if detectors:
        updates["detectors"] = {d: cfg.detectors.get(d, {}) for d in detectors}
    if reviewer:
        updates["reviewer"] = reviewer
    if max_iterations is not None:
        updates["max_iterations"] = max_iterations
    if validation:
        updates["validation"] = validation
    if scheduler:
        from thawdetect.core.compute import validate_scheduler

        updates["compute"] = {
            **cfg.compute.model_dump(),
            "scheduler": validate_scheduler(scheduler),
        }
    if updates:
        try:
            cfg = RunConfig.model_validate({**cfg.model_dump(), **updates})
        except ValidationError as exc:
            raise ConfigError(render_validation_error(exc, overrides_source or source)) from None
    return cfg, source


def default_run_dir(cfg: RunConfig) -> Path:
    """``./thawdetect-runs/REGION_DETECTORS``: where a run goes without ``output_dir``."""
    from thawdetect.core.run.engine import safe_name

    name = cfg.region if isinstance(cfg.region, str) else getattr(cfg.region, "name", "")
    return Path("thawdetect-runs") / safe_name(f"{name}_{'+'.join(cfg.detectors)}")


def run(
    config: RunConfig | Mapping[str, Any] | str | Path | None = None,
    *,
    region: str | None = None,
    detectors: Sequence[str] | None = None,
    reviewer: str | None = None,
    max_iterations: int | None = None,
    validation: str | Path | None = None,
    scheduler: str | None = None,
    output_dir: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] | None = None,
    host: PluginHost | None = None,
) -> RunResult:
    """Run (or resume) an iterative detection run, as ``thawdetect run`` does.

    Args:
        config: a :class:`RunConfig`, a dict of the run YAML's keys, or a YAML path.
        region: region preset (overrides the config's).
        detectors: detector names (overrides the config's selection; sections kept).
        reviewer: ``manual``, ``reference`` or ``reference:PATH[?options]``.
        max_iterations: hard cap on iterations.
        validation: validation points file scored at the end.
        scheduler: where the heavy steps run: ``threads``, ``processes``, ``synchronous`` or a
            Dask scheduler's ``tcp://HOST:PORT`` (overrides ``compute.scheduler``).
        output_dir: the run directory (default ``./thawdetect-runs/REGION_DETECTORS``).
        overwrite: delete an existing *run* in ``output_dir`` first.
        progress: print progress lines and show progress bars of the long steps (bars only when
            stderr is a terminal or ``THAWDETECT_PROGRESS=1``); False: silent.
        echo: where progress lines go (instead of ``print``).
        host: a plugin host (default: every installed plugin).

    Returns:
        The :class:`RunResult` (status ``finished`` or ``awaiting review``).

    Raises:
        ThawdetectError: bad input or configuration (one-line message), or a detector failure.
    """
    from thawdetect.core.plugin_api.host import PluginHost
    from thawdetect.core.run.engine import Engine

    cfg, source = build_run_config(
        config,
        region=region,
        detectors=detectors,
        reviewer=reviewer,
        max_iterations=max_iterations,
        validation=validation,
        scheduler=scheduler,
    )
    run_dir = Path(output_dir) if output_dir is not None else default_run_dir(cfg)
    messages: list[str] = []

    def _echo(msg: str) -> None:
        messages.append(str(msg))
        if echo is not None:
            echo(msg)
        elif progress:
            print(msg)

    engine = Engine(
        cfg, run_dir, host or PluginHost(), echo=_echo, overwrite=overwrite, source=source
    )
    if engine.manifest.synthetic:
        _echo("note: this region's data is a SYNTHETIC sample bundled with thawdetect")
    with _bars(progress):
        result = engine.run()
    if result.status != "finished":
        _echo(
            f"{result.stop_reason}: decide them with 'thawdetect review list {run_dir}' / "
            f"'thawdetect review decide', then call thawdetect.run again with this output_dir"
        )
    else:
        _echo(f"stopped: {result.stop_reason}")
        if result.accuracy is not None:
            _echo(result.accuracy.format_table(title="accuracy (overall)"))
    result.messages = messages
    return result


@contextmanager
def _bars(progress: bool) -> Iterator[None]:
    """Turn the long steps' progress bars off while the run lasts when ``progress`` is False."""
    if progress:
        yield
        return
    old = os.environ.get("THAWDETECT_PROGRESS")
    os.environ["THAWDETECT_PROGRESS"] = "0"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("THAWDETECT_PROGRESS", None)
        else:
            os.environ["THAWDETECT_PROGRESS"] = old


def open_run(path: str | Path) -> RunResult:
    """Open an existing run directory (finished, awaiting review, or interrupted).

    Raises:
        InputError: ``path`` is not a thawdetect run directory.
    """
    from thawdetect.core.run.manifest import RunStatus, read_manifest

    run_dir = Path(path)
    if not run_dir.exists():
        raise InputError(run_dir, "run directory does not exist")
    manifest = read_manifest(run_dir)
    pending = 0
    status = str(manifest.status)
    if status == RunStatus.AWAITING:
        cands = RunResult(run_dir, status)._layer("candidates")
        pending = int((cands["status"] == "pending").sum())
    return RunResult(
        run_dir=run_dir,
        status=status,
        stop_reason=manifest.stop_reason or "",
        pending=pending,
    )
