"""Checks a run makes before it writes anything, and on every resume.

A stored manifest that is not JSON, a different configuration, a corrupt ledger, a reviewer no
plugin understands and input files that changed since the run started are each named in one line
(:class:`~thawdetect.core.errors.InputError` / :class:`~thawdetect.core.errors.ConfigError`).
Functions take explicit arguments so that ``status``, ``accuracy --run`` and ``inventory export``
can use them without an :class:`~thawdetect.core.run.engine.Engine`.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from thawdetect.core.errors import ConfigError, InputError, PluginError, ThawdetectError
from thawdetect.core.plugin_api.context import IterationContext
from thawdetect.core.plugin_api.host import PluginHost
from thawdetect.core.regions import Region
from thawdetect.core.run.ledger import Ledger, now_iso
from thawdetect.core.run.manifest import (
    MANIFEST,
    InputChecksum,
    InputUpdate,
    Manifest,
    RunStatus,
    continue_as_new_iteration,
    file_digest,
    read_manifest,
)

#: Run settings that may change between sessions of one run.
RESUMABLE_KEYS = ("reviewer", "max_iterations", "compute")


def resolve_region(region: Region | str | None, host: PluginHost) -> Region:
    """The run's region: a preset by name, a preset overridden by the config, or the config's."""
    if region is None:
        raise ConfigError("no region given: use --region NAME or 'region:' in the config")
    if isinstance(region, str):
        return host.region(region)
    if region.name in host.regions:
        return host.regions[region.name].merged_with(region)
    return region


def default_reviewer(
    region: Region, detectors: Iterable[str], reference: list[str], echo: Callable[[str], None]
) -> str:
    """``reference`` when every detector runs on a bundled sample and one has a reference."""
    data = [region.detectors.get(d) for d in detectors]
    on_samples = all(d is not None and d.sample for d in data)
    if on_samples and reference:
        echo("reviewer: the bundled sample's reference inventory (--reviewer to change)")
        return "reference"
    return "manual"


def read_stored_manifest(run_dir: Path) -> Manifest:
    """The stored manifest of a run to resume, or one line saying why it cannot be used."""
    manifest = read_manifest(run_dir, advice="; restore it or use --overwrite")
    if "iterations" not in manifest.model_fields_set:
        raise InputError(run_dir / MANIFEST, "run manifest is corrupt (no 'iterations' mapping)")
    return manifest


def check_same_config(manifest: Manifest, new_config: dict[str, Any], run_dir: Path) -> None:
    """Refuse a different configuration, naming every key that differs.

    ``new_config`` is the new run config dumped to JSON; :data:`RESUMABLE_KEYS` may differ.
    """
    stored = dict(manifest.run_config)
    new = dict(new_config)
    for key in RESUMABLE_KEYS:  # may change between sessions
        stored.pop(key, None)
        new.pop(key, None)
    diff = config_differences(stored, new)
    if diff:
        shown = "; ".join(diff[:8]) + (f"; and {len(diff) - 8} more" if len(diff) > 8 else "")
        raise ConfigError(
            f"{run_dir}: holds a run with a different configuration ({shown}); use "
            "--overwrite to start again or another --output-dir"
        )


def check_ledger(ledger: Ledger) -> None:
    """Raise a one-line InputError when the run's ledger is damaged.

    The one check every command makes (:func:`thawdetect.core.run.integrity.check_ledger_file`:
    SQLite's quick check, the GeoPackage tables and the tables the run's stages wrote); used
    before a run resumes and before ``status``, ``accuracy --run`` and ``inventory export``.
    """
    from thawdetect.core.run.integrity import check_ledger_file

    check_ledger_file(ledger.path)


def check_validation_files(
    paths: Iterable[str], crs: Any, label_column: str | None, region: Region
) -> None:
    """Read the run's validation file(s) now, so that a bad one fails before the run starts.

    Each must be a readable vector file (not a directory) of points (or polygons); its label
    column (``label_column``; default ``label`` when present) must exist and hold known labels;
    and at least one point must lie in the region's AOI, when the region has one.

    Raises:
        InputError: one line naming the file.
    """
    from thawdetect.core.accuracy.matching import check_validation_geometry, parse_labels
    from thawdetect.core.paths import local_exists
    from thawdetect.core.vector import read_vector

    for path in paths:
        if local_exists(path) is None:
            continue  # a URI: read at the end of the run (GDAL tells)
        val = read_vector(path, crs=crs, what="validation points")
        check_validation_geometry(val, path)
        column = label_column
        if column is None or column == "auto":
            column = "label" if "label" in val.columns else None
        elif column not in val.columns:
            raise InputError(
                path,
                f"label column '{column}' not found (validation_label_column); columns: "
                f"{[c for c in val.columns if c != val.geometry.name]}",
            )
        if column is not None:
            parse_labels(val[column], source=path, column=column)
        aoi = region.aoi
        if aoi is not None and len(val):
            inside = val.to_crs(4326).intersects(aoi)
            if not inside.any():
                w, s, e, n = val.to_crs(4326).total_bounds
                raise InputError(
                    path,
                    f"no validation point lies in region '{region.name}' (points span "
                    f"{w:.3f}, {s:.3f} to {e:.3f}, {n:.3f} degrees): wrong file or CRS?",
                )


def check_reviewer(
    reviewer: str,
    host: PluginHost,
    *,
    run_dir: Path,
    region: Region,
    crs: Any,
    reference_paths: list[Path],
    synthetic: bool,
) -> None:
    """Ask the plugins whether they understand the reviewer, with no candidates.

    A reference reviewer reads its reference file here, so a missing or unreadable file
    fails before iteration 1 instead of after it.
    """
    if reviewer == "manual":
        return
    empty = gpd.GeoDataFrame(
        {"candidate_id": pd.Series(dtype=object)},
        geometry=gpd.GeoSeries([], crs=crs),
        crs=crs,
    )
    with tempfile.TemporaryDirectory(prefix="thawdetect-reviewer-") as tmp:
        ctx = IterationContext(
            run_dir=run_dir,
            work_dir=Path(tmp),
            iteration=0,
            region=region,
            crs=crs,
            host=host,
            positives=empty.iloc[:0],
            negatives=empty.iloc[:0],
            inventory=empty.iloc[:0],
            reference_paths=reference_paths,
            synthetic=synthetic,
        )
        try:
            answer = host.hook.thawdetect_review_candidates(
                candidates=empty, reviewer=reviewer, context=ctx
            )
        except ThawdetectError:
            raise
        except Exception as exc:
            raise PluginError(f"reviewer '{reviewer}': {type(exc).__name__}: {exc}") from exc
    if answer is None:
        raise ConfigError(
            f"reviewer '{reviewer}' is not understood by any plugin "
            "(use manual, reference or reference:PATH)"
        )


def changed_inputs(recorded: dict[str, InputChecksum], echo: Callable[[str], None]) -> list[str]:
    """Names of recorded input files whose checksum changed; ``recorded`` is updated in place.

    Files whose size and modification time are unchanged are not read again; one whose time
    changed but whose checksum did not gets its new time recorded. Each changed file is named
    in one ``echo`` line.

    Raises:
        InputError: a recorded input file no longer exists.
    """
    changed: list[str] = []
    for name, info in recorded.items():
        p = Path(name)
        if not p.is_file():
            raise InputError(p, "input file of this run is missing (it was checksummed when "
                             "the run started); restore it or use --overwrite")  # fmt: skip
        stat = p.stat()
        if info.bytes == stat.st_size and info.mtime_ns == stat.st_mtime_ns:
            continue  # unchanged on disk: no need to read it again
        digest = file_digest(p)
        if digest == info.sha256:
            info.mtime_ns = stat.st_mtime_ns
            continue
        changed.append(name)
        size = "?" if info.bytes is None else info.bytes
        was = f"{size} bytes, sha256 {info.sha256[:12]}"
        echo(f"input changed: {name} (was {was}; now {stat.st_size} bytes, sha256 {digest[:12]})")
        recorded[name] = InputChecksum(sha256=digest, bytes=stat.st_size, mtime_ns=stat.st_mtime_ns)
    return changed


def apply_changed_inputs(
    manifest: Manifest,
    last_finished_iteration: Callable[[], int],
    detectors: Iterable[str],
    echo: Callable[[str], None],
) -> bool:
    """Name inputs whose checksum changed; continue a finished run as a new iteration.

    Updates ``manifest`` (checksums, ``input_updates``, a new iteration for a finished run);
    returns whether it changed, so that the caller saves it.
    """
    changed = changed_inputs(manifest.input_checksums, echo)
    if not changed:
        return False
    entry = InputUpdate(at=now_iso(), changed=changed)
    if manifest.status == RunStatus.FINISHED:
        nxt = continue_as_new_iteration(manifest, last_finished_iteration(), detectors)
        entry.continues_as_iteration = nxt
        echo(
            f"inputs changed since the run finished: continuing as iteration {nxt} with "
            "each detector's last effective config (decided candidates are not reviewed again)"
        )
    else:
        echo("inputs changed: the unfinished iteration goes on with the new files")
    manifest.input_updates = [*(manifest.input_updates or []), entry]
    return True


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
