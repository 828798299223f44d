"""Bundled sample scenes: built once, on first use, into the cache directory.

Builders are registered by plugins (``thawdetect_register_samples``) and must be deterministic.
The build happens in a temporary directory that is renamed into place, so an interrupted build
never leaves a half-made sample. The cache key includes a digest of the builder's module source, so
a changed builder (a new release, or a developer's edit) builds a fresh sample instead of reusing a
stale one.
"""

from __future__ import annotations

import hashlib
import inspect
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import filelock

from thawdetect import __version__
from thawdetect.core.config import cache_dir
from thawdetect.core.errors import PluginError, ThawdetectError
from thawdetect.core.plugin_api.host import PluginHost


def ensure_sample(host: PluginHost, name: str, root: Path | None = None) -> Path:
    """Directory of sample ``name``, building it if needed.

    Args:
        host: the plugin host that knows the sample builders.
        name: sample name (e.g. ``"qilian"``).
        root: cache root (default :func:`thawdetect.core.config.cache_dir`).

    Raises:
        PluginError: no plugin provides the sample, or its builder failed.
    """
    if name not in host.samples:
        known = ", ".join(sorted(host.samples)) or "none"
        raise PluginError(f"no plugin provides the sample '{name}' (known samples: {known})")
    root = (root or cache_dir()) / "samples"
    target = root / f"{name}-{__version__}-{_builder_digest(host.samples[name])}"
    if (target / ".complete").exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(root / f".{name}.lock"):  # portable (no fcntl on Windows)
        if (target / ".complete").exists():
            return target
        tmp = root / f".{target.name}.building"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            host.samples[name](tmp)
        except ThawdetectError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        except Exception as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise PluginError(
                f"building sample '{name}' failed: {type(exc).__name__}: {exc}"
            ) from exc
        (tmp / ".complete").write_text(__version__)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    return target


def _builder_digest(build: Callable[[Any], Any]) -> str:
    """Short digest of the sources the builder comes from (cache invalidation).

    Every ``.py`` file beside the module that defines ``build`` counts (a sample builder often
    calls helpers of its own package).
    """
    h = hashlib.sha256()
    module = sys.modules.get(getattr(build, "__module__", ""), None)
    try:
        path = Path(inspect.getfile(module)) if module is not None else None
    except TypeError:
        path = None
    if path is None or not path.exists():
        h.update(repr(getattr(build, "__qualname__", build)).encode())
    else:
        for f in sorted(path.parent.glob("*.py")):
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:10]
