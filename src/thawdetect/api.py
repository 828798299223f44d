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

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thawdetect.core.errors import InputError

if TYPE_CHECKING:
    import geopandas as gpd
    import pandas as pd

    from thawdetect.core.accuracy import AccuracyReport
    from thawdetect.core.config import RunConfig
    from thawdetect.core.plugin_api.host import PluginHost

__all__ = ["RunResult", "build_run_config", "default_run_dir", "open_run", "run"]


@dataclass
class RunResult:
    """A run directory and what it holds, read from its ledger and manifest.

    Attributes:
        run_dir: the run directory.
        status: ``finished``, ``awaiting review`` or ``running`` (interrupted).
        stop_reason: why the loop stopped (empty while running).
        pending: candidates awaiting review (manual reviewer).
        messages: the progress lines of this call (empty for :func:`open_run`).
    """

    run_dir: Path
    status: str
    stop_reason: str = ""
    pending: int = 0
    messages: list[str] = field(default_factory=list)
    _accuracy: Any = field(default=None, repr=False)

    @property
    def ledger_path(self) -> Path:
        """``ledger.gpkg``: candidates, decisions, inventory, training sets, iterations."""
        return self.run_dir / "ledger.gpkg"

    @property
    def manifest_path(self) -> Path:
        """``manifest.json``: effective config of every iteration, versions, input checksums."""
        return self.run_dir / "manifest.json"

    @property
    def manifest(self) -> dict[str, Any]:
        """The parsed manifest."""
        from thawdetect.core.run.access import read_manifest

        return read_manifest(self.run_dir)

    @property
    def synthetic(self) -> bool:
        """True when the run's data are a bundled SYNTHETIC sample (not real observations)."""
        return bool(self.manifest.get("synthetic", False))

    def _layer(self, name: str) -> Any:
        from thawdetect.core.run.access import open_run_ledger

        return open_run_ledger(self.run_dir).read(name)

    @property
    def iterations(self) -> pd.DataFrame:
        """One row per finished iteration (training sets, candidates, confirmed, thresholds).

        Columns: ``iteration``, ``detectors``, ``training_positives``, ``training_negatives``,
        ``candidates_proposed``, ``candidates_reviewed``, ``newly_confirmed``, ``rejected``,
        ``inventory_size``, ``thresholds_json`` (as stored in the ledger) and, unpacked from it,
        one column ``<detector>__<setting>`` per threshold a detector reported (e.g.
        ``insar_sbas__abs_rate_mm_yr`` = ``">=50"``).
        """
        import pandas as pd

        raw = self._layer("iterations")
        table: pd.DataFrame = pd.DataFrame(raw.drop(columns="geometry", errors="ignore"))
        table = table.sort_values("iteration").reset_index(drop=True)
        if "thresholds_json" in table.columns:
            flat = [
                {
                    f"{det}__{key}": value
                    for det, settings in _thresholds(text).items()
                    for key, value in settings.items()
                }
                for text in table["thresholds_json"]
            ]
            extra = pd.DataFrame(flat, index=table.index)
            table = pd.concat([table, extra.drop(columns=table.columns, errors="ignore")], axis=1)
        return table

    @property
    def candidates(self) -> gpd.GeoDataFrame:
        """Every merged candidate with its status, probability and evidence (working CRS)."""
        return self._layer("candidates")

    @property
    def decisions(self) -> pd.DataFrame:
        """The decision history, oldest first (candidate, decision, probability, note, time)."""
        from thawdetect.core.review.decisions import history

        self._layer("decisions")  # a one-line InputError when this is not a run
        rows: pd.DataFrame = history(self.run_dir)
        return rows

    @property
    def inventory(self) -> gpd.GeoDataFrame:
        """The inventory in the published form, as ``thawdetect inventory export`` writes it.

        One row per landslide (known inventory + confirmed candidates): ``inventory_id``,
        ``centroid_lon``/``centroid_lat`` (degrees, WGS84), ``area_ha``, ``perimeter_m``,
        ``probability``, ``iteration``, ``detectors`` and every detector's evidence columns.
        Geometries are in the run's working CRS (the region's UTM zone); ``near_road`` is empty
        (give roads to :func:`thawdetect.core.inventory.inventory_frame` or the CLI for it).
        """
        from thawdetect.core.inventory import inventory_frame

        return inventory_frame(self.run_dir)

    @property
    def accuracy(self) -> AccuracyReport | None:
        """Overall accuracy against the run's validation points (None when it has none)."""
        if self._accuracy is None:
            path = self.run_dir / "accuracy.json"
            if not path.exists():
                return None
            from thawdetect.core.accuracy import AccuracyReport

            try:
                overall = json.loads(path.read_text())["overall"]
                self._accuracy = AccuracyReport.from_dict(overall)
            except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
                problem = f"accuracy report is corrupt ({type(exc).__name__})"
                raise InputError(path, problem) from None
        return self._accuracy  # type: ignore[no-any-return]

    def decide(
        self,
        candidate_ids: str | Sequence[str],
        decision: str,
        *,
        probability: str | None = None,
        note: str = "",
        reviewer: str = "unknown",
    ) -> pd.DataFrame:
        """Record a review decision, as ``thawdetect review decide`` does (one transaction).

        With the manual reviewer a run stops ``awaiting review``; decide every pending candidate
        (``result.candidates.query("status == 'pending'")``), then call :func:`run` again with
        the same ``output_dir`` to go on.

        Args:
            candidate_ids: one candidate id or several.
            decision: ``confirmed``, ``rejected`` or ``unsure``.
            probability: ``high``, ``medium`` or ``low`` (usually with ``confirmed``), or None.
            note: free text.
            reviewer: the reviewer's name (kept in the decision history).

        Returns:
            The decision rows appended to the history.

        Raises:
            InputError: unknown ids, an illegal decision or probability (nothing is recorded).
        """
        from thawdetect.core.review.decisions import decide

        rows = decide(
            self.run_dir,
            candidate_ids,
            decision,
            probability=probability,
            note=note,
            reviewer=reviewer,
        )
        pending = self.candidates["status"] == "pending"
        self.pending = int(pending.sum())
        return rows

    def __repr__(self) -> str:
        return f"RunResult({str(self.run_dir)!r}, status={self.status!r})"


def build_run_config(
    config: RunConfig | Mapping[str, Any] | str | Path | None = None,
    *,
    region: str | None = None,
    detectors: Sequence[str] | None = None,
    reviewer: str | None = None,
    max_iterations: int | None = None,
    validation: str | Path | None = None,
) -> tuple[RunConfig, str]:
    """A validated :class:`RunConfig` from a config (object, dict or YAML path) plus overrides.

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
    if updates:
        try:
            cfg = RunConfig.model_validate({**cfg.model_dump(), **updates})
        except ValidationError as exc:
            raise ConfigError(render_validation_error(exc, source)) from None
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
    if engine.manifest.get("synthetic"):
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
        if result.accuracy:
            _echo(result.accuracy["report"].format_table(title="accuracy (overall)"))
    out = RunResult(
        run_dir=run_dir,
        status=result.status,
        stop_reason=result.stop_reason,
        pending=result.pending,
        messages=messages,
    )
    if result.accuracy:
        out._accuracy = result.accuracy["report"]
    return out


def _thresholds(text: Any) -> dict[str, dict[str, Any]]:
    """Each detector's ``summary()`` from a ``thresholds_json`` cell ({} when unreadable)."""
    if not isinstance(text, str) or not text:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(d): v for d, v in data.items() if isinstance(v, dict)}


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
    from thawdetect.core.run.access import read_manifest

    run_dir = Path(path)
    if not run_dir.exists():
        raise InputError(run_dir, "run directory does not exist")
    manifest = read_manifest(run_dir)
    pending = 0
    status = str(manifest.get("status", "running"))
    if status == "awaiting review":
        cands = RunResult(run_dir, status)._layer("candidates")
        pending = int((cands["status"] == "pending").sum())
    return RunResult(
        run_dir=run_dir,
        status=status,
        stop_reason=str(manifest.get("stop_reason", "")),
        pending=pending,
    )
