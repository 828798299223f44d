"""The run manifest (``manifest.json``): effective configs per iteration, versions, input checksums.

Helpers to resolve a region's placeholders (``{sample_dir}``), merge config layers and checksum
every input file a config names, so that a re-run can tell whether its inputs changed.
"""

from __future__ import annotations

import copy
import glob
import hashlib
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"


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
