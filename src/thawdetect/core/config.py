"""Run configuration (YAML) and the cache directory.

The run YAML holds run-level settings and one section per detector under ``detectors:``; each
detector validates its own section against its own pydantic model. Scientific parameters live only
there. Machine-level knobs are environment variables, not config: ``THAWDETECT_CACHE_DIR``
(:func:`cache_dir`), ``THAWDETECT_DISABLE_PLUGINS`` and ``THAWDETECT_PROGRESS``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator

from thawdetect.core.errors import ConfigError, InputError
from thawdetect.core.models import StrictModel, render_validation_error, to_commented_yaml
from thawdetect.core.paths import InputPath
from thawdetect.core.regions import Region

__all__ = ["ComputeConfig", "RunConfig", "cache_dir", "load_run_config"]


class ComputeConfig(StrictModel):
    """Where the heavy steps run (docs/scaling.md, ``thawdetect.core.compute``)."""

    scheduler: str = Field(
        "threads",
        description="synchronous, threads (this process), processes (local pool) or the "
        "tcp://HOST:PORT address of a running Dask distributed scheduler",
    )

    @field_validator("scheduler")
    @classmethod
    def _scheduler(cls, value: str) -> str:
        from thawdetect.core.compute import validate_scheduler

        return validate_scheduler(value)


class RunConfig(StrictModel):
    """Settings of one iterative run (the ``thawdetect run`` YAML)."""

    region: str | Region | None = Field(
        None, description="region preset name (thawdetect regions) or an inline region definition"
    )
    detectors: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="detector name -> its config section "
        "(thawdetect config template --detector NAME)",
    )
    reviewer: str | None = Field(
        None,
        description="manual (stop for thawdetect review), reference (the region's reference "
        "inventory) or reference:PATH; default: reference on a bundled sample, else manual",
    )
    max_iterations: int = Field(10, ge=1, le=1000, description="hard cap on iterations")
    min_mapping_unit_ha: float = Field(
        0.05,
        ge=0,
        description="candidates smaller than this are dropped (Xia et al. 2022: 0.05 ha)",
    )
    merge_buffer_m: float = Field(
        0.0, ge=0, description="candidates of different detectors closer than this merge"
    )
    duplicate_overlap: float = Field(
        0.5,
        gt=0,
        le=1,
        description="a candidate whose overlap with an already decided one (or the known "
        "inventory), as a fraction of the smaller area, reaches this is dropped as already seen "
        "(part by part: only the parts that are known are dropped, the others go to review); a "
        "confirmed outline overlapping an inventory feature this much joins it",
    )
    max_part_gap_m: float = Field(
        300.0,
        gt=0,
        description="a candidate whose parts lie farther apart than this (metres) is split "
        "into its parts, with a warning (a detector fused separate landslides)",
    )
    max_candidate_span_m: float = Field(
        3000.0,
        gt=0,
        description="a candidate whose extent (bounding-box diagonal, metres) exceeds this is "
        "split into its parts, or flagged when it has one part, with a warning",
    )
    max_candidate_area_ha: float = Field(
        100.0,
        gt=0,
        description="a candidate larger than this (far larger than a thaw slump) is split "
        "into its parts, or flagged when it has one part, with a warning",
    )
    max_region_share: float = Field(
        0.05,
        gt=0,
        le=1,
        description="a candidate covering more than this share of the region's AOI is split "
        "into its parts, or flagged when it has one part, with a warning",
    )
    stop_when_nothing_new: bool = Field(
        True,
        description="stop after an iteration that confirms nothing new (unless a detector "
        "with a relaxation schedule, like insar_sbas, has rows left)",
    )
    known_inventory: InputPath | None = Field(
        None,
        description="inventory known before the run (initial positives); default: the region's",
    )
    validation: InputPath | None = Field(
        None, description="validation points for the final accuracy report; default: the region's"
    )
    roads: InputPath | None = Field(
        None,
        description="roads and railways (lines) for each candidate's near-road flag in review "
        "and the inventory export; default: the region's",
    )
    near_road_m: float = Field(
        500.0,
        ge=0,
        description="a candidate whose centroid lies this close to a road is near the road "
        "(Xia et al. 2022: 500 m)",
    )
    validation_tolerance_m: float = Field(
        0.0, ge=0, description="a validation point this close to a detection matches it"
    )
    validation_label_column: str | None = Field(
        None,
        description="column of the validation file saying landslide / not landslide; default: "
        "'label' when the file has one, else every point is a landslide",
    )
    compute: ComputeConfig = Field(
        default_factory=ComputeConfig, description="where the heavy steps run (Dask)"
    )
    evidence: bool | Literal["lazy"] = Field(
        True,
        description="make review chips and time-series plots: true (in the evidence stage), "
        "lazy (each candidate's on first show: review show / the review page), false (none)",
    )
    evidence_buffer_m: float = Field(
        300.0, ge=0, description="chip extent: candidate bounding box plus this buffer (Xia et al.)"
    )


def load_run_config(path: str | Path | None) -> RunConfig:
    """Read and validate a run YAML (None gives the defaults).

    Raises:
        InputError: the file is missing or is not YAML.
        ConfigError: a key is unknown or a value is invalid (``FILE: field.path: problem``).
    """
    if path is None:
        return RunConfig()
    path = Path(path)
    data = load_yaml_file(path, what="config file") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: (root): expected a mapping of settings")
    detectors = data.get("detectors")
    if detectors is not None and not isinstance(detectors, dict):
        raise ConfigError(
            f"{path}: detectors: expected a mapping of detector name -> settings, got a "
            f"{type(detectors).__name__} (write '  insar_sbas: {{}}' under 'detectors:', "
            "not '  - insar_sbas')"
        )
    for name, section in (detectors or {}).items():
        if section is not None and not isinstance(section, dict):
            raise ConfigError(f"{path}: detectors.{name}: expected a mapping")
    if isinstance(data.get("detectors"), dict):
        data["detectors"] = {k: (v or {}) for k, v in data["detectors"].items()}
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(render_validation_error(exc, str(path))) from None


#: At most this many values (mappings, lists and scalars, aliases counted each time they are
#: used) in a YAML file: a "billion laughs" file of nested aliases is refused, not expanded.
MAX_YAML_VALUES = 100_000


def load_yaml_file(path: Path, *, what: str = "YAML file") -> Any:
    """Read a YAML file safely: one line for a directory, bytes that are not UTF-8 (with their
    offset), invalid YAML (with its line) and alias bombs (:data:`MAX_YAML_VALUES`).

    Raises:
        InputError: naming ``path``.
    """
    if not path.exists():
        raise InputError(path, f"{what} does not exist")
    if path.is_dir():
        raise InputError(path, f"is a directory, not a {what}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(path, f"cannot read the {what}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(
            path, f"is not UTF-8 text (byte {exc.start}, line {line}): save it as UTF-8"
        ) from None
    try:
        data = yaml.load(text, Loader=_BoundedLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or ""
        detail = f": {problem}" if "alias" in problem else ""
        raise InputError(path, f"is not valid YAML{where}{detail}") from None
    _count_values(data, path)
    return data


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses more than :data:`MAX_YAML_VALUES` alias uses."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases = getattr(self, "_aliases", 0) + 1
            if self._aliases > MAX_YAML_VALUES:
                raise yaml.composer.ComposerError(
                    None, None, "too many aliases (a YAML alias bomb?)", None
                )
        return super().compose_node(parent, index)


def _count_values(data: Any, path: Path) -> None:
    """Refuse data that expands (aliases used inside aliases) past :data:`MAX_YAML_VALUES`."""
    budget = MAX_YAML_VALUES
    stack = [data]
    while stack:
        item = stack.pop()
        budget -= 1
        if budget < 0:
            raise InputError(
                path,
                f"expands to more than {MAX_YAML_VALUES:,} values (nested YAML aliases?); "
                "write the values out instead",
            )
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def run_config_template(sections: dict[str, str] | None = None) -> str:
    """The run YAML template with descriptions as comments.

    Args:
        sections: detector name -> its already rendered (commented) YAML body, indented by 4.
    """
    text = to_commented_yaml(RunConfig(region="qilian"))
    lines = text.splitlines()
    keep = []
    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.startswith("detectors:") or (line.startswith("#") and nxt.startswith("detectors:")):
            continue
        keep.append(line)
    keep.append(
        "# detector name -> its config section (thawdetect config template --detector NAME)"
    )
    keep.append("detectors:" if sections else "detectors: {}")
    for name, body in (sections or {}).items():
        keep.append(f"  {name}:")
        keep.append(body)
    return "# thawdetect run configuration\n" + "\n".join(keep) + "\n"


def cache_dir() -> Path:
    """Where bundled samples are built: ``$THAWDETECT_CACHE_DIR``, else the platform's user cache.

    The platform's cache comes from :mod:`platformdirs`: ``~/.cache/thawdetect`` (or
    ``$XDG_CACHE_HOME/thawdetect``) on Linux, ``~/Library/Caches/thawdetect`` on macOS,
    ``%LOCALAPPDATA%\\thawdetect\\Cache`` on Windows.
    """
    env = os.environ.get("THAWDETECT_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("thawdetect", appauthor=False))
