"""The ``thawdetect`` command line.

This is the one place where a :class:`~thawdetect.core.errors.ThawdetectError` becomes a one-line
message and exit status 1 (``--traceback`` shows the full one). Heavy imports stay inside commands.

It is longer than the other modules (~500 lines) because it holds the root group, its error
handling and the ``run`` command with its tables, which share that handling; the review,
accuracy, inventory and serve commands live in their own modules.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from thawdetect import __version__
from thawdetect.core.errors import PluginError, ThawdetectError

# Core command modules (each exposes one click object); plugins add theirs by hook.
CORE_COMMANDS = (
    ("thawdetect.cli.review_cmd", "review"),
    ("thawdetect.cli.accuracy_cmd", "accuracy"),
    ("thawdetect.cli.inventory_cmd", "inventory"),
)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


def _os_line(exc: OSError) -> str:
    """``FILE: reason`` for an error of the file system (no Python exception name)."""
    reason = exc.strerror or _one_line(exc)
    where = exc.filename if exc.filename is not None else None
    return _one_line(Exception(f"{where}: {reason}" if where is not None else reason))


def _usage_line(exc: click.UsageError) -> click.ClickException:
    """A usage error as one line and exit status 1 (click prints usage text and exits 2)."""
    where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
    err = click.ClickException(_one_line(click.ClickException(exc.format_message())) + where)
    err.exit_code = 1  # type: ignore[misc]  # click reads it from the instance
    return err


def _passes_through(exc: click.UsageError) -> bool:
    """``thawdetect`` / ``thawdetect review`` with no arguments print their help, as click does."""
    return type(exc).__name__ == "NoArgsIsHelpError"


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Console log handler writing to whatever ``sys.stderr`` is at the time (CliRunner swaps it).

    It skips progress lines the engine already printed on the console (``thawdetect_echo``)
    and, below ``-v``, other libraries' Python warnings (``py.warnings``: geopandas, shapely,
    pyogrio): they go to ``run.log`` during a run, and the user's terminal shows thawdetect's
    own lines only.
    """

    def __init__(self) -> None:
        super().__init__()
        self.addFilter(lambda record: not getattr(record, "thawdetect_echo", False))
        self.addFilter(lambda r: r.name != "py.warnings" or self.level <= logging.INFO)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(verbose: int) -> None:
    """Console logging: warnings and errors; ``-v`` thawdetect's INFO, ``-vv`` its DEBUG.

    Only thawdetect's own loggers get more verbose: rasterio, h5py, matplotlib & co. stay at
    WARNING however many ``-v`` are given. The handler is installed once.
    """
    level = (logging.WARNING, logging.INFO)[verbose] if verbose < 2 else logging.DEBUG
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, _StderrHandler)), None)
    if handler is None:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    handler.setLevel(level)
    if root.level == logging.NOTSET or root.level < logging.WARNING:
        root.setLevel(logging.WARNING)
    logging.getLogger("thawdetect").setLevel(level)


class ThawdetectGroup(click.Group):
    """Click group that turns thawdetect errors into one line and exit code 1.

    Core command modules and plugin commands are attached on first lookup, so the group works the
    same from the console script and from ``click.testing.CliRunner``.
    """

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        _attach_commands(self)
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        _attach_commands(self)
        return super().list_commands(ctx)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            if _passes_through(exc):
                raise
            raise _usage_line(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        captured = _warnings_to_logging()
        try:
            return super().invoke(ctx)
        except ThawdetectError as exc:
            if ctx.params.get("traceback") or (ctx.obj or {}).get("traceback"):
                raise
            raise click.ClickException(_one_line(exc)) from None
        except OSError as exc:
            # the file system refused (read-only, full, permissions): one line naming the file
            if ctx.params.get("traceback") or (ctx.obj or {}).get("traceback"):
                raise
            raise click.ClickException(_os_line(exc)) from None
        except click.UsageError as exc:
            if _passes_through(exc):
                raise
            raise _usage_line(exc) from None
        finally:
            captured()


def _warnings_to_logging() -> Callable[[], None]:
    """Route Python warnings through logging for one command; returns what undoes it.

    The console handler drops them below ``-v``; a run's ``run.log`` keeps them. Undone, the
    ``py.warnings`` logger is left as it was (logging gives it a NullHandler on first use, which
    ``run_log`` would take for someone else capturing warnings).
    """
    if getattr(warnings.showwarning, "__module__", "") == "logging":
        return lambda: None
    py_warnings = logging.getLogger("py.warnings")
    handlers = list(py_warnings.handlers)
    logging.captureWarnings(True)

    def undo() -> None:
        logging.captureWarnings(False)
        py_warnings.handlers[:] = handlers

    return undo


def _console() -> Any:
    """A rich console; wide when output is not a terminal (logs, CI) so tables do not wrap."""
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=200)
    return console


def _host(ctx: click.Context) -> Any:
    obj = ctx.find_root().obj
    if obj.get("host") is None:
        from thawdetect.core.plugin_api.host import PluginHost

        obj["host"] = PluginHost()
    return obj["host"]


@click.group(cls=ThawdetectGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="thawdetect")
@click.option("--traceback", is_flag=True, help="Show the full traceback of an error.")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.pass_context
def cli(ctx: click.Context, traceback: bool, verbose: int) -> None:
    """Find permafrost slope failures (thaw slumps, freeze-thaw landslides) iteratively.

    \b
    Examples:
      thawdetect run --detector insar_sbas --region qilian
      thawdetect run --detector optical_dl --detector insar_sbas --region qtec
      thawdetect plugins
      thawdetect config template --detector insar_sbas > run.yaml
    """
    ctx.ensure_object(dict)
    ctx.obj["traceback"] = traceback
    configure_logging(verbose)


# -- run ------------------------------------------------------------------------------------------


@cli.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="Run YAML.")
@click.option("--region", help="Region preset (see 'thawdetect regions').")
@click.option(
    "--detector", "detectors", multiple=True, help="Detector to run (repeat to mix detectors)."
)
@click.option(
    "--reviewer", help="manual, reference (the region's reference inventory) or reference:PATH."
)
@click.option("--max-iterations", type=int, help="Hard cap on iterations (≥ 1).")
@click.option("--validation", help="Validation points file (a path or a GDAL/fsspec URI).")
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path),
    help="Run directory (default ./thawdetect-runs/REGION_DETECTORS).",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace the run in the output directory: only the files a run wrote are deleted, "
    "only in a thawdetect run directory, never through a link, and only after the new "
    "configuration checked out.",
)
@click.option(
    "--scheduler",
    help="Where heavy steps run: synchronous, threads (default), processes, or tcp://HOST:PORT "
    "of a running Dask scheduler (config: compute.scheduler).",
)
@click.pass_context
def run(
    ctx: click.Context,
    config_path: Path | None,
    region: str | None,
    detectors: tuple[str, ...],
    reviewer: str | None,
    max_iterations: int | None,
    validation: str | None,
    output_dir: Path | None,
    overwrite: bool,
    scheduler: str | None,
) -> None:
    """Run (or resume) the iterative detection loop.

    Each iteration: detectors propose candidates, overlapping candidates merge, a reviewer
    confirms or rejects them, confirmed ones feed the next iteration. With the manual reviewer
    the run stops "awaiting review"; decide with 'thawdetect review', then run the same command
    again to resume.

    \b
    Examples:
      thawdetect run --detector insar_sbas --region qilian
      thawdetect run --config run.yaml --reviewer reference:truth.gpkg
      thawdetect run --detector optical_dl --detector insar_sbas --region qtec
      thawdetect run --detector insar_sbas --region qilian --scheduler tcp://10.0.0.5:8786
    """
    from thawdetect.api import build_run_config, default_run_dir
    from thawdetect.core.errors import ConfigError, InputError
    from thawdetect.core.run.engine import Engine

    console = _console()
    host = _host(ctx)
    if output_dir is not None and output_dir.exists() and not output_dir.is_dir():
        raise InputError(output_dir, "is a file; --output-dir must be a directory")
    try:  # the API's builder: one way to build a run (thawdetect.run calls it too)
        cfg, _ = build_run_config(
            config_path,
            region=region,
            detectors=detectors,
            reviewer=reviewer,
            max_iterations=max_iterations,
            validation=validation,
            scheduler=scheduler,
            overrides_source="command line",
        )
    except ConfigError as exc:
        msg = str(exc)
        if msg.startswith("command line: "):
            raise ConfigError(msg.replace("max_iterations:", "--max-iterations:")) from None
        raise
    if output_dir is None:
        output_dir = default_run_dir(cfg)
    source = str(config_path) if config_path else "command line"
    engine = Engine(
        cfg, output_dir, host, echo=_plain_echo(console), overwrite=overwrite, source=source
    )
    if engine.manifest.synthetic:
        console.print(
            "[yellow]note: this region's data is a SYNTHETIC sample bundled with thawdetect[/]"
        )
    with console.status("thawdetect run: working...", spinner="dots"):
        result = engine.run()
    if len(result.iterations):
        console.print(iterations_table(result.iterations))
    if result.status != "finished":
        console.print(
            f"[bold]{result.stop_reason}[/]: decide them with "
            f"'thawdetect review list {output_dir}' / 'thawdetect review decide', "
            "then run this command again."
        )
        return
    console.print(f"stopped: {result.stop_reason}")
    scores = result.accuracy_scores
    if scores is not None:
        console.print(scores.overall.format_table(title="accuracy (overall)"))
        console.print(scores.table)
    console.print(f"run directory: {output_dir} (ledger.gpkg opens in QGIS)")


def _plain_echo(console: Any) -> Any:
    """Engine lines on the console as plain text (a path with [brackets] is not markup)."""

    def echo(msg: str) -> None:
        console.print(msg, markup=False)

    return echo


def iterations_table(iterations: Any) -> Any:
    """The iterations layer as rich tables that fit a 100-column terminal.

    One table of counts per iteration (the published tables' columns), then one table of
    thresholds per detector (its ``summary()`` keys), so a run mixing detectors does not make
    one table wider than the terminal. Returns a renderable (``console.print`` it).
    """
    from rich.console import Group
    from rich.table import Table

    from thawdetect.core.run.result import detector_thresholds

    rows = [r for _, r in iterations.sort_values("iteration").iterrows()]
    summaries = [detector_thresholds(r["thresholds_json"]) for r in rows]
    per_detector: dict[str, list[str]] = {}
    for s in summaries:
        for det, values in s.items():
            keys = per_detector.setdefault(det, [])
            keys += [k for k in values if k not in keys]
    table = Table(title="iterations")
    table.add_column("it", justify="right")
    counts = [
        ("positives", "training_positives"),
        ("negatives", "training_negatives"),
        ("proposed", "candidates_proposed"),
        ("reviewed", "candidates_reviewed"),
        ("new", "newly_confirmed"),
        ("rejected", "rejected"),
        ("inventory", "inventory_size"),
    ]
    for title, _ in counts:
        table.add_column(title, justify="right")
    for row in rows:
        table.add_row(str(row["iteration"]), *[str(row[key]) for _, key in counts])
    tables: list[Any] = [table]
    for det, keys in per_detector.items():
        # many thresholds: split into tables of at most 6 columns beside "it"
        for start in range(0, max(len(keys), 1), 6):
            part = keys[start : start + 6]
            t = Table(title=f"{det} thresholds" + (" (cont.)" if start else ""))
            t.add_column("it", justify="right")
            for k in part:
                t.add_column(k, overflow="fold")
            for row, s in zip(rows, summaries, strict=True):
                own = s.get(det)
                if own is None:
                    continue
                t.add_row(str(row["iteration"]), *[str(own.get(k, "")) for k in part])
            tables.append(t)
    return Group(*tables)


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
def status(run_dir: Path) -> None:
    """Show a run's status and iterations table."""
    from thawdetect.core.run.access import open_run_ledger
    from thawdetect.core.run.manifest import RunStatus, read_manifest

    info = read_manifest(run_dir)
    ledger = open_run_ledger(run_dir)  # a damaged ledger: one line, exit status 1
    iterations = ledger.read("iterations")
    console = _console()
    console.print(f"status: {info.status}  {info.stop_reason or ''}")
    console.print(iterations_table(iterations))
    if info.status == RunStatus.AWAITING:
        from thawdetect.cli.review_cmd import RESUME_HINT

        cands = ledger.read("candidates", columns=["status"], geometry=False)
        pending = int((cands["status"].fillna("pending") == "pending").sum())
        console.print(
            f"{pending} candidate(s) await review: thawdetect review serve {run_dir}"
            if pending
            else RESUME_HINT,
            markup=False,
        )


# -- plugins, regions, config ---------------------------------------------------------------------


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def plugins(ctx: click.Context, as_json: bool) -> None:
    """List installed plugins, their detectors and whether their dependencies import."""
    host = _host(ctx)
    infos = host.plugin_infos()
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "name": i.name,
                        "distribution": i.distribution,
                        "version": i.version,
                        "detectors": i.detectors,
                        "dependencies": i.dependencies,
                        "dependencies_ok": i.dependencies_ok,
                    }
                    for i in infos
                ],
                indent=2,
            )
        )
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="thawdetect plugins")
    for col in ("plugin", "distribution", "version", "detectors", "dependencies"):
        table.add_column(col)
    for i in infos:
        deps = ", ".join(f"{m} {'ok' if ok else 'MISSING'}" for m, ok in i.dependencies.items())
        table.add_row(i.name, i.distribution, i.version, ", ".join(i.detectors), deps or "-")
    Console().print(table)


@cli.command()
@click.pass_context
def regions(ctx: click.Context) -> None:
    """List region presets: AOI, working CRS and the detectors that have data there."""
    from rich.console import Console
    from rich.table import Table

    host = _host(ctx)
    table = Table(title="regions")
    for col in ("name", "title", "bbox (W S E N)", "crs", "detectors with data"):
        table.add_column(col)
    for name, r in sorted(host.regions.items()):
        bbox = " ".join(f"{v:g}" for v in r.bbox_wgs84) if r.bbox_wgs84 else "-"
        dets = ", ".join(
            f"{d}{' (synthetic sample)' if v.sample else ''}"
            for d, v in sorted(r.detectors.items())
        )
        table.add_row(name, r.title, bbox, r.working_crs().to_string(), dets or "-")
    Console().print(table)


@cli.group()
def config() -> None:
    """Configuration helpers."""


@config.command("template")
@click.option("--detector", "detectors", multiple=True, help="Include this detector's section.")
@click.pass_context
def config_template(ctx: click.Context, detectors: tuple[str, ...]) -> None:
    """Print a commented default run YAML (every field with its description).

    \b
    Example:
      thawdetect config template --detector insar_sbas > run.yaml
    """
    from thawdetect.core.config import run_config_template
    from thawdetect.core.models import to_commented_yaml

    host = _host(ctx)
    if not detectors:
        detectors = tuple(sorted(host.detectors))
    sections = {}
    for name in detectors:
        cls = host.detector(name)
        body = to_commented_yaml(cls.config_model(), indent=4)
        if cls.description:
            body = f"    # {cls.description}\n{body}"
        sections[name] = body
    click.echo(run_config_template(sections), nl=False)


# -- entry point ----------------------------------------------------------------------------------


def _attach_commands(group: click.Group, host: Any | None = None) -> None:
    """Attach core command modules and plugin commands to the group (once)."""
    if getattr(group, "_thawdetect_built", False):
        return
    group._thawdetect_built = True  # type: ignore[attr-defined]
    for module, attr in CORE_COMMANDS:
        try:
            cmd = getattr(importlib.import_module(module), attr)
        except Exception as exc:  # a core command that does not import is a broken install
            group._thawdetect_built = False  # type: ignore[attr-defined]
            raise PluginError(
                f"command module {module} failed to import: {type(exc).__name__}: {exc}; "
                "reinstall thawdetect"
            ) from exc
        group.add_command(cmd)
    if host is None:
        from thawdetect.core.plugin_api.host import PluginHost

        host = PluginHost()
    host.hook.thawdetect_register_commands(cli=group)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    from thawdetect.core.plugin_api.host import PluginHost

    traceback = "--traceback" in (argv if argv is not None else sys.argv[1:])
    try:
        host = PluginHost()
        _attach_commands(cli, host)
    except ThawdetectError as exc:
        if traceback:
            raise
        click.echo(f"Error: {_one_line(exc)}", err=True)
        sys.exit(1)
    cli.main(args=argv, prog_name="thawdetect", obj={"host": host})
