"""Entry-point module of the ``insar_sbas`` plugin: registers the detector, sample and regions.

Imports stay light (no h5py/mintpy here): heavy packages load inside the detector's methods.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from thawdetect.plugin_api import Region, RegionDetectorData, hookimpl
from thawdetect.plugins.insar_sbas.detector import InsarSbasDetector

__all__ = [
    "InsarSbasDetector",
    "build_qilian_sample",
    "build_qtec_insar_sample",
    "thawdetect_register_detectors",
    "thawdetect_register_regions",
    "thawdetect_register_samples",
]


def build_qilian_sample(out_dir: Path) -> None:
    """Write the deterministic SYNTHETIC Qilian scene (see :mod:`.sample`) into ``out_dir``."""
    from thawdetect.plugins.insar_sbas.sample import build_qilian_sample as _build

    _build(Path(out_dir))


@hookimpl
def thawdetect_register_detectors(register: Callable[[type], None]) -> None:
    """Register :class:`InsarSbasDetector`."""
    register(InsarSbasDetector)


def build_qtec_insar_sample(out_dir: Path) -> None:
    """Write insar_sbas's own SYNTHETIC ``qtec`` sample (see :mod:`.qtec_sample`)."""
    from thawdetect.plugins.insar_sbas.qtec_sample import build_qtec_insar_sample as _build

    _build(Path(out_dir))


@hookimpl
def thawdetect_register_samples(register: Callable[[str, Callable[[Any], Any]], None]) -> None:
    """Register the synthetic ``qilian`` sample and a ``qtec`` sample of our own.

    The optical plugin registers after this one (entry-point order) and replaces ``qtec`` with
    its richer sample (images and InSAR over the same slumps) when it is present; without it,
    ``--region qtec --detector insar_sbas`` runs on this one.
    """
    register("qilian", build_qilian_sample)
    register("qtec", build_qtec_insar_sample)


QILIAN = Region(
    name="qilian",
    synthetic=True,
    detectors={
        "insar_sbas": RegionDetectorData(
            sample="qilian",
            config={
                "timeseries_file": "{sample_dir}/timeseries.h5",
                "coherence_file": "{sample_dir}/temporalCoherence.h5",
                "dem_file": "{sample_dir}/dem.tif",
            },
            reference="{sample_dir}/reference_inventory.gpkg",
            known_inventory="{sample_dir}/known_inventory.gpkg",
            validation="{sample_dir}/validation_points.gpkg",
        )
    },
)

#: QTEC: the MintPy time series, temporal coherence and a DEM of the ``qtec`` sample (the optical
#: plugin's mixed sample when it is installed, else our own), so candidates carry a series, a
#: seasonal amplitude and a coherence for review; the Qilian elevation rows do not fit
#: 4500-5000 m, so terrain ranges come from the known inventory.
QTEC = Region(
    name="qtec",
    synthetic=True,
    detectors={
        "insar_sbas": RegionDetectorData(
            sample="qtec",
            config={
                "timeseries_file": "{sample_dir}/timeseries.h5",
                "coherence_file": "{sample_dir}/temporalCoherence.h5",
                "dem_file": "{sample_dir}/dem.tif",
                "derive_from_inventory": True,
                "known_inventory_file": "{sample_dir}/known_inventory.gpkg",
                "rate_schedule_mm_yr": [30.0, 20.0, 10.0],
            },
            reference="{sample_dir}/reference_inventory.gpkg",
            known_inventory="{sample_dir}/known_inventory.gpkg",
            validation="{sample_dir}/validation_points.gpkg",
        )
    },
)


@hookimpl
def thawdetect_register_regions(register: Callable[[Region], None]) -> None:
    """Add where insar_sbas finds its data in the ``qilian`` and ``qtec`` presets."""
    register(QILIAN)
    register(QTEC)
