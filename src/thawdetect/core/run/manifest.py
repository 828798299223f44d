"""The run manifest (``manifest.json``): effective configs per iteration, versions, input checksums.

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
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
#: The run's status in the manifest.
STATUS_FINISHED = "finished"
STATUS_AWAITING = "awaiting review"
STATUS_RUNNING = "running"
#: A session ended with an error; ``stop_reason`` holds its line. A re-run resumes.
STATUS_FAILED = "failed"
#: Fallback for configs that do not type their outputs: an untyped path field whose name contains
#: one of these is an output too. Type output paths ``OutputPath`` instead (``core.paths``).
OUTPUT_FIELD_HINTS = ("work_dir", "out_dir", "output", "cache")


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


def missing_input_files(model: Any, prefix: str = "") -> list[tuple[str, Path]]:
    """``(field.path, path)`` of every local ``Path`` in a validated config that does not exist.

    Path-typed fields are inputs, except outputs: fields typed
    :data:`~thawdetect.core.paths.OutputPath` (or marked ``json_schema_extra={"output": True}``)
    and, for configs that do not type them, fields whose names contain one of
    :data:`OUTPUT_FIELD_HINTS`. Glob patterns and URIs are left to the detector.
    """
    from pydantic import BaseModel

    from thawdetect.core.paths import is_output_field

    found: list[tuple[str, Path]] = []
    if isinstance(model, BaseModel):
        for name, info in type(model).model_fields.items():
            if is_output_field(info) or any(h in name for h in OUTPUT_FIELD_HINTS):
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
        for k in ("reference", "known_inventory", "validation")
    }
    return cfg, files


def new_manifest(
    config: RunConfig,
    region: Region,
    crs: Any,
    host: PluginHost,
    *,
    source: str,
    echo: Callable[[str], None],
) -> dict[str, Any]:
    """The manifest of a new run; every section and input file checked, nothing written.

    Every detector section is validated before any bundled sample is built; then the samples are
    built, every input file the configs name must exist, and each is checksummed.

    Raises:
        ConfigError: a detector section does not validate.
        InputError: an input file does not exist (one line naming it and the config field).
    """
    user_cfg = config.model_dump(mode="json")
    detector_configs: dict[str, Any] = {}
    files: dict[str, list[str]] = {"reference": [], "known_inventory": [], "validation": []}
    region_cfgs: dict[str, Any] = {}
    for name in config.detectors:  # check every section before building any sample
        defaults, _ = region_data(region, host, name, build=False)
        merged = deep_merge(defaults, config.detectors[name] or {})
        cls = host.detector(name)
        validate_section(cls.config_model, merged, f"{source}: detectors.{name}")
    for key in ("known_inventory", "validation"):
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
    if config.known_inventory:
        files["known_inventory"] = [os.fspath(config.known_inventory)]
    if config.validation:
        files["validation"] = [os.fspath(config.validation)]
    for key, paths in files.items():
        for name in paths:
            if local_exists(name) is False:
                raise InputError(name, f"{key.replace('_', ' ')} file of region "
                                 f"'{region.name}' does not exist")  # fmt: skip
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
        "region": region.model_dump(mode="json"),
        "synthetic": region.synthetic or any(d.sample for d in region.detectors.values()),
        "working_crs": crs.to_string(),
        "run_config": user_cfg,
        "files": files,
        "plugins": {
            info.name: {"distribution": info.distribution, "version": info.version}
            for info in host.plugin_infos()
        },
        "input_checksums": inputs,
        "iterations": {"1": detector_configs},
    }


def save_manifest(run_dir: Path, manifest: dict[str, Any]) -> None:
    """Write ``run_dir/manifest.json`` atomically."""
    write_atomic(run_dir / MANIFEST, json.dumps(manifest, indent=2))


def continue_as_new_iteration(manifest: dict[str, Any], last: int, detectors: Iterable[str]) -> int:
    """Reopen a finished run after its inputs changed; returns the new iteration's number.

    The new iteration ``last + 1`` runs each detector with its last effective config, and
    ``max_iterations`` counts from it (``iteration_offset``).
    """
    nxt = last + 1
    configs = {}
    for name in detectors:
        effective = None
        for i in range(last, 0, -1):
            effective = manifest["iterations"].get(str(i), {}).get(name)
            if effective is not None:
                break
        configs[name] = effective
    manifest["iterations"][str(nxt)] = configs
    manifest["iteration_offset"] = last
    manifest["status"] = STATUS_RUNNING
    manifest.pop("stop_reason", None)
    return nxt
