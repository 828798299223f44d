"""What an ``insar_sbas`` run computes once and every later iteration (and resume) reuses.

Only the thresholds change from one schedule row to the next. The seasonal fit, the terrain
layers on the InSAR grid, inputs resampled onto it and the rasters that do not depend on the row
(LOS rate, seasonal amplitude, the cumulative-displacement time-lapse) are kept under
``<run>/insar_sbas_cache/`` and keyed by checksums of what they are made from, as the seasonal
fit's cache is (:mod:`.seasonal_fit`): a changed input gets a new key, so nothing stale is ever
reused, and an unchanged one is not read or computed again.

* Arrays are kept as ``.npy`` files and memory-mapped read-only (the cache cannot be changed
  through them; a caller that needs to change one copies it), so a later iteration reads only
  the pages it touches, and :func:`~thawdetect.core.compute.release_pages` can drop those pages
  from its resident memory between steps.
* Rasters are written once as COGs and hard-linked into each iteration's folder (copied where
  the file system cannot link), so every iteration still holds its complete set of files.

Checksums: a file's is the sha1 of its bytes, read once per process while its size and
modification time stay the same; an array's is the sha1 of its bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from thawdetect.plugin_api import GridSpec, atomic_path, write_text_atomic

__all__ = [
    "array_digest",
    "cache_dir",
    "cached_arrays",
    "cached_file",
    "file_digest",
    "grid_digest",
    "link_into",
    "terrain_layers",
]

#: Bumped when what a cache holds changes meaning (old entries are then never matched).
_VERSION = 1
_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def cache_dir(run_dir: str | Path, what: str) -> Path:
    """``<run>/insar_sbas_cache/<what>`` (not created)."""
    return Path(run_dir) / "insar_sbas_cache" / what


def file_digest(path: str | Path) -> str:
    """sha1 of a file's bytes (16 hex digits), read once per process while its size and
    modification time stay the same."""
    path = Path(path)
    st = path.stat()
    memo = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if memo not in _FILE_DIGESTS:
        h = hashlib.sha1()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
        if len(_FILE_DIGESTS) > 256:
            _FILE_DIGESTS.clear()
        _FILE_DIGESTS[memo] = h.hexdigest()[:16]
    return _FILE_DIGESTS[memo]


def array_digest(a: NDArray[Any] | None) -> str:
    """sha1 of an array's dtype, shape and bytes (16 hex digits); ``"none"`` for None."""
    if a is None:
        return "none"
    h = hashlib.sha1(f"{a.dtype.str}{a.shape}".encode())
    h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()[:16]


def grid_digest(grid: GridSpec) -> str:
    """A digest of a grid's CRS, transform and shape."""
    crs = grid.crs.to_wkt() if grid.crs is not None else ""
    return _key([crs, list(grid.transform)[:6], list(grid.shape)])


def _key(parts: Any) -> str:
    blob = json.dumps([_VERSION, parts], default=str, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def cached_arrays(
    folder: Path, key_parts: Any, compute: Callable[[], dict[str, NDArray[Any]]]
) -> tuple[dict[str, NDArray[Any]], bool]:
    """The arrays ``compute()`` returns, kept in ``folder/<key>/`` as ``.npy`` files.

    Returns:
        ``(arrays, reused)``: read-only memory maps of the kept arrays when they exist
        for this key (``reused`` True), else those just computed (and kept).
    """
    where = folder / _key(key_parts)
    names = where / "names.json"
    try:
        kept = json.loads(names.read_text())
        out = {n: np.load(where / f"{n}.npy", mmap_mode="r", allow_pickle=False) for n in kept}
        return out, True
    except (OSError, ValueError):
        pass
    arrays = compute()
    where.mkdir(parents=True, exist_ok=True)
    names.unlink(missing_ok=True)
    for n, a in arrays.items():
        with atomic_path(where / f"{n}.npy", suffix=".npy") as tmp:
            np.save(tmp, np.ascontiguousarray(a), allow_pickle=False)
    write_text_atomic(names, json.dumps(list(arrays)))
    return arrays, False


def cached_file(folder: Path, key_parts: Any, name: str, write: Callable[[Path], Any]) -> Path:
    """``folder/<key>/<name>``, made by ``write(path)`` the first time it is asked for (the
    writer must make the file atomically: the name appears only once it is complete)."""
    path = folder / _key(key_parts) / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path)
    return path


def link_into(src: Path, dst: Path) -> Path:
    """Make ``dst`` the file ``src`` (a hard link; a copy where the file system cannot link),
    replacing what was there atomically."""
    if dst.exists() and os.path.samefile(src, dst):
        return dst
    with atomic_path(dst) as tmp:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
    return dst


def terrain_layers(terrain: Any, dem: Path, grid: GridSpec, run_dir: str | Path) -> Any:
    """``terrain.layers(dem, grid)``, computed once per DEM (by checksum), grid and service.

    The layers are kept in ``<run>/insar_sbas_cache/terrain/`` (elevation, slope, aspect and
    the service's metadata) and memory-mapped on later calls.
    """
    from thawdetect.plugin_api import TerrainLayers

    service = f"{type(terrain).__module__}.{type(terrain).__qualname__}"
    key = ["terrain", file_digest(dem), grid_digest(grid), service]
    meta: dict[str, Any] = {}

    def compute() -> dict[str, NDArray[Any]]:
        layers = terrain.layers(dem, grid)
        meta.update(layers.metadata)
        blob = np.frombuffer(json.dumps(layers.metadata, default=str).encode(), dtype=np.uint8)
        return {
            "elevation_m": layers.elevation_m,
            "slope_deg": layers.slope_deg,
            "aspect_deg": layers.aspect_deg,
            "metadata": blob,
        }

    arrays, reused = cached_arrays(cache_dir(run_dir, "terrain"), key, compute)
    if reused:
        meta = json.loads(bytes(np.asarray(arrays["metadata"])).decode())
    return TerrainLayers(
        arrays["elevation_m"], arrays["slope_deg"], arrays["aspect_deg"], grid, meta
    )
