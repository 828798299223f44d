"""Each detector's inputs checked before the run directory exists (issue 21).

Existence is checked when the manifest is made (:func:`~thawdetect.core.run.manifest.new_manifest`);
here every input file a detector's config names is opened: readable at all, in the format its
suffix says (GeoTIFF, HDF5, vector) and holding at least one finite value (a NaN-only raster or
time series ended a run with 0 candidates and no word). Then the detector's own
:meth:`~thawdetect.core.plugin_api.detector.Detector.check_inputs` hook runs (an InputError
refuses, the strings it returns are warnings: a schedule that tightens instead of relaxing).
Everything fails in one line naming the file and the config field, before anything is written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from thawdetect.core.errors import InputError

__all__ = ["check_detector_inputs", "check_input_file", "input_paths"]

RASTERS = (".tif", ".tiff", ".vrt", ".img", ".nc")
HDF5 = (".h5", ".he5", ".hdf5")
VECTORS = (".gpkg", ".shp", ".geojson", ".json", ".fgb", ".kml")
#: rows read at a time while looking for a finite value (stops at the first one)
_BLOCK_ROWS = 256


def input_paths(model: Any, prefix: str = "") -> list[tuple[str, Path]]:
    """``(field.path, path)`` of every existing local input file of a validated config."""
    from thawdetect.core.run.manifest import input_path_fields

    return [
        (where, path.expanduser())
        for where, path in input_path_fields(model, prefix)
        if path.expanduser().is_file()
    ]


def _any_finite(blocks: Iterator[NDArray[Any]]) -> bool:
    return any(np.isfinite(block).any() for block in blocks)


def _raster_blocks(path: Path) -> Iterator[NDArray[Any]]:
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(path) as src:
        for row in range(0, src.height, _BLOCK_ROWS):
            window = Window(0, row, src.width, min(_BLOCK_ROWS, src.height - row))
            yield src.read(window=window).astype("float64")  # NaN only: nodata may be data


def _hdf5_finite(path: Path) -> bool:
    """Whether a float dataset of 2+ dimensions holds a finite value (a stack: its last slice).

    A file without such a dataset (masks, integers only) passes.
    """
    import h5py

    with h5py.File(path, "r") as f:
        datasets: list[Any] = []
        f.visititems(
            lambda _n, obj: (
                datasets.append(obj)
                if isinstance(obj, h5py.Dataset) and obj.ndim >= 2 and obj.dtype.kind == "f"
                else None
            )
        )
        if not datasets:
            return True

        def rows(ds: Any) -> Iterator[NDArray[Any]]:
            index = (ds.shape[0] - 1,) if ds.ndim >= 3 else ()
            for row in range(0, ds.shape[-2], _BLOCK_ROWS):
                yield np.asarray(ds[(*index, slice(row, row + _BLOCK_ROWS))], dtype="float64")

        return _any_finite(block for ds in datasets for block in rows(ds))


def check_input_file(path: Path, where: str) -> None:
    """Refuse an input file that cannot be read, is not what its suffix says, or is all NaN.

    Raises:
        InputError: ``"<path>: ... (<where>)"``.
    """
    if not os.access(path, os.R_OK):
        raise InputError(path, f"cannot be read (permission denied) ({where})")
    suffix = path.suffix.lower()
    try:
        if suffix in RASTERS:
            finite = _any_finite(_raster_blocks(path))
        elif suffix in HDF5:
            try:
                import h5py
            except ImportError:  # the detector says so itself (optional_dependencies)
                return
            if not h5py.is_hdf5(path):
                raise InputError(path, f"is not an HDF5 file ({where})")
            finite = _hdf5_finite(path)
        elif suffix in VECTORS:
            import pyogrio

            pyogrio.read_info(path)
            return
        else:
            with open(path, "rb") as fh:
                fh.read(1)
            return
    except InputError:
        raise
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        kind = {**dict.fromkeys(RASTERS, "a raster"), **dict.fromkeys(VECTORS, "a vector file")}
        raise InputError(
            path, f"cannot be read as {kind.get(suffix, 'HDF5')} ({msg}) ({where})"
        ) from exc
    if not finite:
        raise InputError(path, f"holds no finite value: every pixel is NaN ({where})")


def check_detector_inputs(
    detector_configs: dict[str, Any],
    host: Any,
    *,
    source: str,
    warn: Callable[[str], None],
) -> None:
    """Open every input of every detector, then call each detector's ``check_inputs`` hook.

    Args:
        detector_configs: detector name -> its validated config, dumped (the manifest's first
            iteration).
        host: the plugin host.
        source: where the config came from (for messages).
        warn: receives each warning line.

    Raises:
        InputError: an input that cannot be used (nothing has been written).
    """
    for name, dumped in detector_configs.items():
        cls = host.detector(name)
        config = cls.config_model.model_validate(dumped or {})
        for field_path, path in input_paths(config):
            check_input_file(path, f"{source}: detectors.{name}.{field_path}")
        for message in cls.check_inputs(config):
            warn(f"{name}: {message}")
