"""The run manifest (``manifest.json``): effective configs per iteration, versions, input checksums.

:class:`Manifest` is its typed form, read (:func:`read_manifest`) and written
(:func:`save_manifest`) here and nowhere else; every module reads a run's state from its fields,
not by string key. The file format is unchanged: a manifest written before the model existed
loads, and one saved again holds the same keys and values.

Helpers to resolve a region's placeholders (``{sample_dir}``), merge config layers, find the input
files a config names (and those missing) and checksum them, so that a re-run can tell whether its
inputs changed; :func:`new_manifest` builds a new run's manifest with every input checked.
"""

from __future__ import annotations

import copy
import glob
import hashlib
import json
import os
from collections.abc import Callable, Iterable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)

from thawdetect import __version__
from thawdetect.core.errors import InputError
from thawdetect.core.models import validate_section
from thawdetect.core.paths import local_exists
from thawdetect.core.run.ledger import now_iso, write_atomic

if TYPE_CHECKING:
    from thawdetect.core.config import RunConfig
    from thawdetect.core.plugin_api.host import PluginHost
    from thawdetect.core.regions import Region

MANIFEST = "manifest.json"


class RunStatus(StrEnum):
    """The run's status in the manifest (a ``str``: compares equal to its text)."""

    RUNNING = "running"
    AWAITING = "awaiting review"
    FINISHED = "finished"
    #: A session ended with an error; ``stop_reason`` holds its line. A re-run resumes.
    FAILED = "failed"


STATUS_FINISHED = RunStatus.FINISHED
STATUS_AWAITING = RunStatus.AWAITING
STATUS_RUNNING = RunStatus.RUNNING
STATUS_FAILED = RunStatus.FAILED
#: Fallback for configs that do not type their outputs: an untyped path field whose name contains
#: one of these is an output too. Type output paths ``OutputPath`` instead (``core.paths``).
OUTPUT_FIELD_HINTS = ("work_dir", "out_dir", "output", "cache")


class _Record(BaseModel):
    """A part of the manifest.

    Unknown keys are kept (``extra="allow"``, unlike a config: a manifest is a record that a
    newer thawdetect may have written, and resuming it here must not lose what it wrote), and an
    optional key that is ``None`` is not written, as the dict this replaced never held it.
    """

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    @model_serializer(mode="wrap")
    def _without_unset_optionals(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        for name, info in type(self).model_fields.items():
            if not info.is_required() and info.default is None and getattr(self, name) is None:
                data.pop(name, None)
        return data


class ManifestFiles(_Record):
    """The files a run reads besides its detectors' inputs (paths or URIs as text)."""

    reference: list[str] = Field(default_factory=list, description="reference inventories")
    known_inventory: list[str] = Field(default_factory=list, description="known inventories")
    validation: list[str] = Field(default_factory=list, description="validation points")
    #: None (not written) in manifests of runs from before runs knew their roads
    roads: list[str] | None = Field(None, description="roads and railways (lines)")


class PluginVersion(_Record):
    """Which distribution and version provided a plugin."""

    distribution: str = ""
    version: str = ""


class InputChecksum(_Record):
    """An input file as it was when the run started (or last changed)."""

    sha256: str = ""
    bytes: int | None = None
    mtime_ns: int | None = None


class InputUpdate(_Record):
    """Input files that changed between sessions of the run."""

    at: str = Field(description="when the change was noticed (ISO 8601, UTC)")
    changed: list[str] = Field(description="the changed files")
    continues_as_iteration: int | None = Field(
        None, description="the iteration a finished run went on with"
    )


class GuardRecord(_Record):
    """A candidate the merge guard flagged (``thawdetect status``; run.log has the line)."""

    iteration: int
    stage: str = "merge"
    detectors: str = Field(description="comma-separated names of the detectors that proposed it")
    candidate_id: str
    n_parts: int
    span_m: float
    area_ha: float
    region_share: float | None
    short: str
    message: str


class Manifest(_Record):
    """A run's ``manifest.json``: what the run is and where it stands.

    Old scripts that read the manifest as a dict (``manifest["status"]``,
    ``manifest.get("iterations")``) still work: item access answers the JSON value.
    """

    thawdetect_version: str = ""
    created: str = Field("", description="when the run was created (ISO 8601, UTC)")
    status: RunStatus = RunStatus.RUNNING
    region: dict[str, Any] = Field(default_factory=dict, description="the Region, as JSON")
    synthetic: bool = Field(False, description="the data are a bundled synthetic sample")
    working_crs: str | None = None
    run_config: dict[str, Any] = Field(default_factory=dict, description="the RunConfig, as JSON")
    files: ManifestFiles = Field(default_factory=ManifestFiles)
    plugins: dict[str, PluginVersion] = Field(default_factory=dict)
    input_checksums: dict[str, InputChecksum] = Field(default_factory=dict)
    #: iteration -> detector -> its effective config (``None``: the detector has finished)
    iterations: dict[int, dict[str, dict[str, Any] | None]] = Field(default_factory=dict)
    reviewer: str | None = None
    run_id: str | None = None
    warnings: list[GuardRecord] | None = None
    #: iteration -> the automatic reviewer's settings
    review: dict[int, dict[str, Any]] | None = None
    input_updates: list[InputUpdate] | None = None
    #: ``max_iterations`` counts from this iteration (a finished run continued)
    iteration_offset: int | None = None
    stop_reason: str | None = None

    # -- reading ---------------------------------------------------------------------------------

    def configs(self, iteration: int) -> dict[str, dict[str, Any] | None]:
        """Each detector's effective config of ``iteration`` (``{}`` when it has none)."""
        return self.iterations.get(iteration, {})

    def last_config(self, detector: str, iteration: int) -> dict[str, Any] | None:
        """``detector``'s effective config of the latest iteration ≤ ``iteration`` that has one."""
        for i in range(iteration, 0, -1):
            cfg = self.iterations.get(i, {}).get(detector)
            if cfg is not None:
                return cfg
        return None

    def region_model(self) -> Region:
        """The run's :class:`~thawdetect.core.regions.Region`.

        Raises:
            pydantic.ValidationError: the stored region does not validate (any more).
        """
        from thawdetect.core.regions import Region

        return Region.model_validate(self.region)

    @property
    def offset(self) -> int:
        """The iteration ``max_iterations`` counts from (0 unless a finished run continued)."""
        return self.iteration_offset or 0

    def guard_records(self, iteration: int) -> list[GuardRecord]:
        """The merge guard's records of ``iteration``."""
        return [w for w in self.warnings or [] if w.iteration == iteration]

    # -- changing --------------------------------------------------------------------------------

    def mark(self, status: RunStatus, stop_reason: str | None = None) -> None:
        """Set the status; ``stop_reason`` ``None`` removes the reason."""
        self.status = status
        self.stop_reason = stop_reason

    # -- the file --------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The JSON object ``manifest.json`` holds."""
        data: dict[str, Any] = self.model_dump(mode="json")
        return data

    # dict-style reading, for scripts written when the manifest was a dict
    def __getitem__(self, key: str) -> Any:
        return self.to_json()[key]

    def __contains__(self, key: object) -> bool:
        return key in self.to_json()

    def get(self, key: str, default: Any = None) -> Any:
        """The JSON value of ``key`` (dict-style reading, for old scripts)."""
        return self.to_json().get(key, default)


def read_manifest(run_dir: str | Path, *, missing_ok: bool = False, advice: str = "") -> Manifest:
    """The run's ``manifest.json`` (an empty :class:`Manifest` when none and ``missing_ok``).

    Args:
        run_dir: the run directory.
        missing_ok: a missing file is an empty manifest instead of an error.
        advice: appended to the corrupt-manifest line (e.g. "; restore it or use --overwrite").

    Raises:
        InputError: no manifest (unless ``missing_ok``), or one that is not a JSON object or
            does not validate (one line).
    """
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        if missing_ok:
            return Manifest()
        raise InputError(run_dir, "is not a thawdetect run directory (no manifest.json)")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(path, f"run manifest is corrupt (not JSON){advice}") from None
    if not isinstance(data, dict):
        raise InputError(path, f"run manifest is corrupt (not a JSON object){advice}")
    return parse_manifest(data, path, advice=advice)


def parse_manifest(data: dict[str, Any], path: Path | str, *, advice: str = "") -> Manifest:
    """Validate a manifest's JSON object; one line naming the first bad key when it fails.

    Raises:
        InputError: it does not validate.
    """
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        raise InputError(path, f"run manifest is corrupt ({where}: {err['msg']}){advice}") from None


def substitute(value: Any, mapping: dict[str, str]) -> Any:
    """Replace ``{sample_dir}``-style placeholders in every string of a nested structure."""
    if isinstance(value, str):
        for key, repl in mapping.items():
            value = value.replace("{" + key + "}", repl)
        return value
    if isinstance(value, dict):
        return {k: substitute(v, mapping) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, mapping) for v in value]
    return value


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def input_files(value: Any) -> list[Path]:
    """Existing files named (or globbed) by strings in a config structure."""
    found: list[Path] = []
    if isinstance(value, dict):
        for v in value.values():
            found += input_files(v)
    elif isinstance(value, list):
        for v in value:
            found += input_files(v)
    elif isinstance(value, str) and ("/" in value or "." in value) and len(value) < 4096:
        if any(ch in value for ch in "*?["):
            found += [Path(p) for p in sorted(glob.glob(value)) if Path(p).is_file()]
        else:
            p = Path(value)
            if p.is_file():
                found.append(p)
                if p.suffix.lower() == ".shp":
                    found += [q for q in sorted(p.parent.glob(p.stem + ".*")) if q != p]
    return found


def input_path_fields(model: Any, prefix: str = "") -> list[tuple[str, Path]]:
    """``(field.path, path)`` of every ``Path`` a validated config holds as an input.

    Path-typed fields are inputs, except outputs: fields typed
    :data:`~thawdetect.core.paths.OutputPath` (or marked ``json_schema_extra={"output": True}``)
    and, for configs that do not type them, fields whose names contain one of
    :data:`OUTPUT_FIELD_HINTS`.
    """
    from pydantic import BaseModel

    from thawdetect.core.paths import is_output_field

    found: list[tuple[str, Path]] = []
    if isinstance(model, BaseModel):
        for name, info in type(model).model_fields.items():
            if is_output_field(info) or any(h in name for h in OUTPUT_FIELD_HINTS):
                continue
            where = f"{prefix}.{name}" if prefix else name
            found += input_path_fields(getattr(model, name), where)
    elif isinstance(model, list | tuple):
        for i, item in enumerate(model):
            found += input_path_fields(item, f"{prefix}[{i}]")
    elif isinstance(model, Path):
        found.append((prefix, model))
    return found


def missing_input_files(model: Any, prefix: str = "") -> list[tuple[str, Path]]:
    """The local input paths of a validated config (:func:`input_path_fields`) that do not
    exist. Glob patterns and URIs are left to the detector."""
    return [
        (where, path)
        for where, path in input_path_fields(model, prefix)
        if not any(ch in str(path) for ch in "*?[") and not path.expanduser().exists()
    ]


def region_data(
    region: Region,
    host: PluginHost,
    detector: str,
    *,
    build: bool = True,
    echo: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], dict[str, str | None]]:
    """The region's config defaults and file settings for ``detector``, samples built.

    With ``build=False`` the ``{sample_dir}`` placeholder points at a directory that is not
    built (to validate a section before building anything).
    """
    data = region.detectors.get(detector)
    if data is None:
        return {}, {}
    mapping: dict[str, str] = {}
    if data.sample and not build:
        mapping["sample_dir"] = str(Path("sample-not-built") / data.sample)
    elif data.sample:
        from thawdetect.core.run.samples import ensure_sample

        if echo is not None:
            echo(f"sample '{data.sample}' (synthetic) for {detector}")
        mapping["sample_dir"] = str(ensure_sample(host, data.sample))
    cfg = substitute(data.config, mapping)
    files = {
        k: substitute(getattr(data, k), mapping)
        for k in ("reference", "known_inventory", "validation", "roads")
    }
    return cfg, files


#: Files a run config may name itself (else its region's): ``ManifestFiles`` keys.
RUN_CONFIG_FILES = ("known_inventory", "validation", "roads")


def new_manifest(
    config: RunConfig,
    region: Region,
    crs: Any,
    host: PluginHost,
    *,
    source: str,
    echo: Callable[[str], None],
) -> Manifest:
    """The manifest of a new run; every section and input file checked, nothing written.

    Every detector section is validated before any bundled sample is built; then the samples are
    built, every input file the configs name must exist, and each is checksummed.

    Raises:
        ConfigError: a detector section does not validate.
        InputError: an input file does not exist (one line naming it and the config field).
    """
    user_cfg = config.model_dump(mode="json")
    detector_configs: dict[str, Any] = {}
    files: dict[str, list[str]] = {
        "reference": [],
        "known_inventory": [],
        "validation": [],
        "roads": [],
    }
    region_cfgs: dict[str, Any] = {}
    for name in config.detectors:  # check every section before building any sample
        defaults, _ = region_data(region, host, name, build=False)
        merged = deep_merge(defaults, config.detectors[name] or {})
        cls = host.detector(name)
        validate_section(cls.config_model, merged, f"{source}: detectors.{name}")
    for key in RUN_CONFIG_FILES:
        value = getattr(config, key)
        if value is not None and local_exists(value) is False:
            raise InputError(value, f"{key.replace('_', ' ')} file does not exist")
    for name in config.detectors:
        cls = host.detector(name)
        defaults, region_files = region_data(region, host, name, echo=echo)
        merged = deep_merge(defaults, config.detectors[name] or {})
        where = f"{source}: detectors.{name}"
        cfg = validate_section(cls.config_model, merged, where)
        for field_path, missing in missing_input_files(cfg):
            raise InputError(missing, f"file does not exist ({where}.{field_path})")
        detector_configs[name] = cfg.model_dump(mode="json")
        region_cfgs[name] = merged
        for key, value in region_files.items():
            if value and value not in files[key]:
                files[key].append(value)
    for key in RUN_CONFIG_FILES:  # the run config's own file replaces the region's
        if value := getattr(config, key):
            files[key] = [os.fspath(value)]
    for key, paths in files.items():
        for name in paths:
            if local_exists(name) is False:
                raise InputError(name, f"{key.replace('_', ' ')} file of region "
                                 f"'{region.name}' does not exist")  # fmt: skip
    inputs: dict[str, InputChecksum] = {}
    for p in input_files(region_cfgs) + input_files(files):
        key = str(p)
        if key not in inputs:
            stat = p.stat()
            inputs[key] = InputChecksum(
                sha256=file_digest(p), bytes=stat.st_size, mtime_ns=stat.st_mtime_ns
            )
    return Manifest(
        thawdetect_version=__version__,
        created=now_iso(),
        status=RunStatus.RUNNING,
        region=region.model_dump(mode="json"),
        synthetic=region.synthetic or any(d.sample for d in region.detectors.values()),
        working_crs=crs.to_string(),
        run_config=user_cfg,
        files=ManifestFiles(**files),
        plugins={
            info.name: PluginVersion(distribution=info.distribution, version=info.version)
            for info in host.plugin_infos()
        },
        input_checksums=inputs,
        iterations={1: detector_configs},
    )


def save_manifest(run_dir: Path, manifest: Manifest) -> None:
    """Write ``run_dir/manifest.json`` atomically."""
    write_atomic(run_dir / MANIFEST, json.dumps(manifest.to_json(), indent=2))


def continue_as_new_iteration(manifest: Manifest, last: int, detectors: Iterable[str]) -> int:
    """Reopen a finished run after its inputs changed; returns the new iteration's number.

    The new iteration ``last + 1`` runs each detector with its last effective config, and
    ``max_iterations`` counts from it (``iteration_offset``).
    """
    nxt = last + 1
    manifest.iterations[nxt] = {name: manifest.last_config(name, last) for name in detectors}
    manifest.iteration_offset = last
    manifest.mark(RunStatus.RUNNING)
    return nxt
