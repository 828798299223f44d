"""Hook implementations of the ``optical_dl`` plugin (entry point ``optical_dl``).

Imports nothing heavy: torch and onnxruntime are imported inside the detector's methods.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from thawdetect.plugin_api import Region, RegionDetectorData, hookimpl
from thawdetect.plugins.optical_dl.detector import OpticalDLDetector

__all__ = ["build_qtec_sample"]


def build_qtec_sample(out_dir: Path) -> None:
    """Write the synthetic QTEC sample scene (see :mod:`thawdetect.plugins.optical_dl.sample`)."""
    from thawdetect.plugins.optical_dl.sample import build_qtec_sample as build

    build(Path(out_dir))


#: Settings of the bundled sample: tiny model and training budget so a whole run takes minutes.
#: The budget is in epochs, not seconds, so the run is reproducible on a busy machine.
QTEC_SAMPLE_CONFIG: dict[str, Any] = {
    "images": ["{sample_dir}/images/*.tif"],
    "band_count": 4,
    "rgb_bands": [3, 2, 1],
    "chip_size_px": 64,
    "buffer_m": 60.0,
    "background_chips": 24,
    "block_size_m": 600.0,
    "encoder": "resnet18",
    "decoder_channels": 64,
    "epochs": 10,
    "fine_tune_epochs": 3,
    "max_negatives": 30,
    "batch_size": 8,
    "learning_rate": 0.003,
    "tile_size_px": 512,
    "overlap_px": 64,
}


@hookimpl
def thawdetect_register_detectors(register: Callable[[type], None]) -> None:
    """Register :class:`OpticalDLDetector`."""
    register(OpticalDLDetector)


@hookimpl
def thawdetect_register_samples(register: Callable[[str, Callable[[Any], Any]], None]) -> None:
    """Register the synthetic ``qtec`` sample scene."""
    register("qtec", build_qtec_sample)


@hookimpl
def thawdetect_register_regions(register: Callable[[Region], None]) -> None:
    """Say where ``optical_dl`` finds its data in the ``qtec`` preset (the synthetic sample)."""
    register(
        Region(
            name="qtec",
            synthetic=True,
            detectors={
                "optical_dl": RegionDetectorData(
                    sample="qtec",
                    config=QTEC_SAMPLE_CONFIG,
                    reference="{sample_dir}/reference_inventory.gpkg",
                    known_inventory="{sample_dir}/known_inventory.gpkg",
                    validation="{sample_dir}/validation_points.gpkg",
                    roads="{sample_dir}/roads.gpkg",
                )
            },
        )
    )
