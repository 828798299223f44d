"""Configuration of the ``optical_dl`` detector (``detectors.optical_dl`` in the run YAML)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from thawdetect.plugin_api import DetectorConfig, Range

__all__ = ["ENCODERS", "OpticalDLConfig"]

#: Encoders tested for ONNX export (opset 17, dynamic H/W) with DeepLabV3+.
ENCODERS = ("resnet18", "resnet34", "mobilenet_v2", "efficientnet-b0")


class OpticalDLConfig(DetectorConfig):
    """DeepLabv3+ on 8-bit natural-colour mosaics (Xia et al. 2022, QTEC inventory method).

    Images are grouped by acquisition date (``YYYY-MM-DD`` or ``YYYYMMDD`` in the file name);
    the scenes of ``mosaic_date`` (default: the latest date) are mosaicked and searched, the
    other dates give the reviewers' time-lapse frames.
    """

    # -- inputs ----------------------------------------------------------------------------------
    images: list[str] = Field(
        default_factory=list,
        description="image files or glob patterns (multi-date scenes; date taken from file name)",
    )
    mosaic_date: str | None = Field(
        None, description="acquisition date (YYYY-MM-DD) whose scenes are searched; None = latest"
    )
    band_count: int | None = Field(
        4, ge=1, description="bands every image must have (4 = PlanetScope B,G,R,NIR); None = any"
    )
    rgb_bands: tuple[int, int, int] = Field(
        (3, 2, 1), description="1-based band indexes of red, green, blue (PlanetScope/S2: 3,2,1)"
    )
    input_bit_depth: Literal[8, 16] = Field(
        16, description="16 = 16-bit reflectance stretched to 8 bits; 8 = already 8-bit RGB"
    )
    mixed_crs: Literal["error", "reproject"] = Field(
        "error", description="scenes in different CRSs: stop with an error, or reproject (VRT)"
    )
    # -- 16-bit -> 8-bit stretch -----------------------------------------------------------------
    stretch: Literal["percentile", "fixed"] = Field(
        "percentile", description="linear stretch: per-band percentiles of the mosaic, or fixed DN"
    )
    stretch_percentiles: Range = Field(
        Range(min=2.0, max=98.0), description="percentiles mapped to 0 and 255 (percent)"
    )
    stretch_range_dn: Range = Field(
        Range(min=0.0, max=3000.0), description="fixed stretch: DN mapped to 0 and 255"
    )
    # -- training data ---------------------------------------------------------------------------
    chip_size_px: int = Field(256, ge=32, description="training chip size (pixels, multiple of 32)")
    buffer_m: float = Field(
        300.0, ge=0, description="buffer around each polygon's bounding box (m)"
    )
    background_chips: int = Field(
        16, ge=0, description="random chips without known labels added per iteration"
    )
    max_negatives: int | None = Field(
        None, ge=0, description="use at most this many negatives (random sample); None = all"
    )
    block_size_m: float = Field(
        1000.0, gt=0, description="spatial block size for the train/validation split (m)"
    )
    validation_fraction: float = Field(
        0.2, ge=0, lt=1, description="fraction of spatial blocks held out for validation"
    )
    augment: bool = Field(True, description="random flips and 90° rotations during training")
    seed: int = Field(0, description="random seed (chips, split, augmentation, init)")
    # -- model and training ----------------------------------------------------------------------
    encoder: Literal["resnet18", "resnet34", "mobilenet_v2", "efficientnet-b0"] = Field(
        "resnet18", description="DeepLabv3+ encoder"
    )
    decoder_channels: int = Field(256, ge=8, description="DeepLabv3+ decoder channels")
    encoder_weights_path: str | None = Field(
        None, description="local encoder weights (torch state dict); never downloaded"
    )
    checkpoint_path: str | None = Field(
        None, description="user checkpoint (model.pt of a previous run) to start iteration 1 from"
    )
    init_checkpoint: str | None = Field(
        None, description="checkpoint to fine-tune at this iteration (overrides the previous one)"
    )
    fine_tune_previous: bool = Field(
        False, description="set by next_config: fine-tune the previous iteration's model.pt"
    )
    epochs: int = Field(20, ge=0, description="training epochs at iteration 1")
    fine_tune_epochs: int = Field(10, ge=0, description="epochs when fine-tuning a checkpoint")
    batch_size: int = Field(8, ge=1, description="training batch size (chips)")
    learning_rate: float = Field(1e-3, gt=0, description="Adam learning rate")
    max_train_seconds: float | None = Field(
        None, gt=0, description="stop training after this many seconds (None = no limit)"
    )
    onnx_model_path: str | None = Field(
        None, description="a ready ONNX model: skip training (inference needs onnxruntime only)"
    )
    # -- inference -------------------------------------------------------------------------------
    tile_size_px: int = Field(
        1088, ge=64, description="inference tile size (pixels, multiple of 32)"
    )
    overlap_px: int = Field(
        64,
        ge=0,
        description="overlap between neighbouring tiles (pixels; half is cropped per side)",
    )
    inference_batch_size: int = Field(1, ge=1, description="tiles per onnxruntime call")
    threads: int = Field(0, ge=0, description="onnxruntime intra-op threads (0 = all cores)")
    quantize_int8: bool = Field(
        False, description="static INT8 quantization, used only if held-out IoU drops ≤ 0.01"
    )
    probability_threshold: float = Field(0.5, gt=0, lt=1, description="probability → mask")
    min_area_ha: float = Field(0.05, ge=0, description="minimum mapping unit (ha)")
    estimate_initiation: bool = Field(
        True,
        description="run the model on every image date around each candidate to date its "
        "initiation period (Xia et al. 2022 inventory field)",
    )
    initiation_min_fraction: float = Field(
        0.3,
        gt=0,
        le=1,
        description="a slump is present on a date when this fraction of its outline is predicted",
    )
    review_buffer_m: float = Field(
        300.0, ge=0, description="review chip buffer around candidates (m)"
    )

    @model_validator(mode="after")
    def _check(self) -> OpticalDLConfig:
        if self.tile_size_px % 32:
            raise ValueError(f"tile_size_px {self.tile_size_px} must be a multiple of 32")
        if self.chip_size_px % 32:
            raise ValueError(f"chip_size_px {self.chip_size_px} must be a multiple of 32")
        core = self.tile_size_px - self.overlap_px
        if self.overlap_px > core or core % 16:
            raise ValueError(
                f"overlap_px {self.overlap_px} must be at most half of tile_size_px and "
                f"tile_size_px - overlap_px ({core}) a multiple of 16 (the output block size)"
            )
        if self.band_count is not None and max(self.rgb_bands) > self.band_count:
            raise ValueError(f"rgb_bands {self.rgb_bands} exceed band_count {self.band_count}")
        if min(self.rgb_bands) < 1:
            raise ValueError("rgb_bands are 1-based")
        return self
