"""The ``optical_dl`` detector: DeepLabv3+ retrained each iteration (Xia et al. 2022 method).

Iteration 1 trains from scratch (or from a user checkpoint / local encoder weights) on the known
inventory; each later iteration fine-tunes the previous iteration's checkpoint with the grown
positives (confirmed RTS) and negatives (rejected look-alikes). The model is exported to ONNX
and run with onnxruntime over the mosaic; the probability map is polygonized and filtered by the
minimum mapping unit. Files in ``work_dir`` make a killed stage resumable:
``model.pt``/``model.onnx``/``model.json`` (written last), ``probability.tif``.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, ClassVar

import geopandas as gpd
import numpy as np

from thawdetect.plugin_api import (
    Detector,
    EmptyInventoryError,
    ImageFrame,
    InputError,
    IterationContext,
    ReviewOutcome,
)
from thawdetect.plugins.optical_dl.config import OpticalDLConfig
from thawdetect.plugins.optical_dl.images import (
    Stretch,
    build_mosaic,
    check_scene,
    compute_stretch,
    find_images,
)
from thawdetect.plugins.optical_dl.infer import (
    open_session,
    polygonize_probability,
    predict_array,
    predict_mosaic,
    write_json,
)

__all__ = ["OpticalDLDetector"]

log = logging.getLogger(__name__)

#: the INT8 variants tried in turn: (weights, model file, onnxruntime's reduce_range, IoU key in
#: model.json)
INT8_WEIGHTS = (
    ("8-bit", "model_int8.onnx", False, "int8_iou"),
    ("7-bit", "model_int8_7bit.onnx", True, "int8_7bit_iou"),
)
#: the most IoU an INT8 model may lose on the held-out chips against fp32
INT8_IOU_LOSS = 0.01


def int8_within(fp32_iou: float, int8_iou: float, loss: float = INT8_IOU_LOSS) -> bool:
    """Whether an INT8 model's held-out IoU is within ``loss`` of the fp32 model's.

    Examples:
        >>> int8_within(0.80, 0.795), int8_within(0.80, 0.78), int8_within(float("nan"), 0.8)
        (True, False, False)
    """
    return math.isfinite(fp32_iou) and math.isfinite(int8_iou) and int8_iou >= fp32_iou - loss


class OpticalDLDetector(Detector):
    """DeepLabv3+ on 8-bit RGB mosaics, fine-tuned each iteration with reviewed candidates."""

    name: ClassVar[str] = "optical_dl"
    config_model: ClassVar[type[OpticalDLConfig]] = OpticalDLConfig
    description: ClassVar[str] = (
        "DeepLabv3+ segmentation of optical mosaics, retrained on reviewed candidates"
    )
    optional_dependencies: ClassVar[tuple[str, ...]] = (
        "onnxruntime",
        "torch",
        "segmentation_models_pytorch",
    )

    config: OpticalDLConfig

    def __init__(self, config: OpticalDLConfig) -> None:
        super().__init__(config)
        self._metrics: dict[str, Any] = {}

    # -- inputs ----------------------------------------------------------------------------------

    def _groups(self) -> dict[str, list[Path]]:
        if not self.config.images:
            raise InputError(None, "optical_dl: no images configured (detectors.optical_dl.images)")
        return find_images(self.config.images)

    def _mosaic(self, work_dir: Path, crs: Any) -> tuple[str, Path]:
        groups = self._groups()
        date = self.config.mosaic_date or next(reversed(groups))
        if date not in groups:
            raise InputError(
                None,
                f"optical_dl: mosaic_date {date} matches no image; "
                f"dates found: {', '.join(groups)}",
            )
        scenes = groups[date]
        for scene in scenes:
            check_scene(scene, self.config)
        target = crs if self.config.mixed_crs == "reproject" else None
        mosaic = build_mosaic(scenes, work_dir, f"mosaic_{date}", self.config.mixed_crs, target)
        return date, mosaic

    # -- model -----------------------------------------------------------------------------------

    def _train(self, context: IterationContext, mosaic: Path, stretch: Stretch) -> Path:
        """Train or fine-tune, export ONNX (and INT8); reuse a finished model in work_dir."""
        from thawdetect.plugins.optical_dl.chips import make_chips
        from thawdetect.plugins.optical_dl.export import export_onnx, quantize_int8
        from thawdetect.plugins.optical_dl.train import iou, train_model

        cfg, wd = self.config, context.work_dir
        done = wd / "model.json"
        if done.exists():
            self._metrics = json.loads(done.read_text())
            return wd / self._metrics["onnx"]
        positives = context.positives
        if positives is None or len(positives) == 0:
            data = context.region.detectors.get(self.name)
            where = data.known_inventory if data and data.known_inventory else "training positives"
            raise EmptyInventoryError(where, "empty label set: no training positive to learn from")
        negatives = context.negatives if context.negatives is not None else positives.iloc[:0]
        if cfg.max_negatives is not None and len(negatives) > cfg.max_negatives:
            negatives = negatives.sample(
                cfg.max_negatives, random_state=cfg.seed + context.iteration
            )
        chips = make_chips(
            mosaic,
            positives,
            negatives,
            rgb_bands=cfg.rgb_bands,
            stretch=stretch,
            chip_size_px=cfg.chip_size_px,
            buffer_m=cfg.buffer_m,
            background_chips=cfg.background_chips,
            block_size_m=cfg.block_size_m,
            validation_fraction=cfg.validation_fraction,
            seed=cfg.seed + context.iteration,
        )
        init = cfg.init_checkpoint
        if init is None and cfg.fine_tune_previous:
            previous = context.previous_dir / "model.pt" if context.previous_dir else None
            if previous is None or not previous.exists():
                raise InputError(
                    previous or context.work_dir,
                    "fine_tune_previous is set but the previous iteration left no model.pt",
                )
            init = str(previous)
        start = "fine-tune" if init else ("checkpoint" if cfg.checkpoint_path else "scratch")
        init = init or cfg.checkpoint_path
        epochs = cfg.fine_tune_epochs if init else cfg.epochs
        result = train_model(
            chips,
            encoder=cfg.encoder,
            decoder_channels=cfg.decoder_channels,
            epochs=epochs,
            batch_size=cfg.batch_size,
            learning_rate=cfg.learning_rate,
            out_path=wd / "model.pt",
            init_checkpoint=init,
            encoder_weights_path=cfg.encoder_weights_path,
            augment=cfg.augment,
            seed=cfg.seed + context.iteration,
            max_seconds=cfg.max_train_seconds,
        )
        model = result.pop("model")
        onnx_path = export_onnx(model, wd / "model.onnx")
        metrics: dict[str, Any] = {
            **result,
            "start": start,
            "init_checkpoint": init,
            "encoder": cfg.encoder,
            "positives": len(positives),
            "negatives": len(negatives),
            "onnx": onnx_path.name,
            "int8": False,
        }
        val = chips.subset(True)
        if cfg.quantize_int8 and len(val):
            calib = chips.subset(False).images[:16]
            fp32_iou = iou(
                predict_array(open_session(onnx_path, cfg.threads), val.images), val.labels
            )
            metrics.update(fp32_iou=fp32_iou)
            # 8-bit weights first; where they lose accuracy (onnxruntime's u8s8 kernels saturate
            # on CPUs without VNNI, e.g. mobilenet_v2 on AVX2), 7-bit weights, then fp32
            for weights, name, reduce_range, key in INT8_WEIGHTS:
                int8 = quantize_int8(onnx_path, wd / name, calib, reduce_range=reduce_range)
                int8_iou = iou(
                    predict_array(open_session(int8, cfg.threads), val.images), val.labels
                )
                metrics[key] = int8_iou
                if int8_within(fp32_iou, int8_iou):
                    metrics.update(int8=True, int8_weights=weights, onnx=int8.name)
                    break
                log.info("INT8 (%s weights) IoU %.3f vs fp32 %.3f", weights, int8_iou, fp32_iou)
            else:
                log.info("keeping fp32: no INT8 model within %.2f IoU of it", INT8_IOU_LOSS)
        write_json(
            done,
            {
                k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in metrics.items()
            },
        )
        self._metrics = metrics
        return wd / metrics["onnx"]

    # -- Detector API ----------------------------------------------------------------------------

    def propose(self, context: IterationContext) -> gpd.GeoDataFrame:
        """Train/fine-tune, export, predict the mosaic, polygonize; see the module docstring."""
        cfg, wd = self.config, context.work_dir
        wd.mkdir(parents=True, exist_ok=True)
        date, mosaic = self._mosaic(wd, context.crs)
        stretch_file = wd / "stretch.json"
        if stretch_file.exists():
            stretch = Stretch.from_json(stretch_file.read_text())
        else:
            stretch = compute_stretch(mosaic, cfg)
            stretch_file.write_text(stretch.to_json())
        if cfg.onnx_model_path:
            onnx_path = Path(cfg.onnx_model_path)
            self._metrics = {"start": "onnx", "onnx": str(onnx_path)}
        else:
            onnx_path = self._train(context, mosaic, stretch)
        prob = wd / "probability.tif"
        if not prob.exists():
            session = open_session(onnx_path, cfg.threads)
            predict_mosaic(
                session,
                mosaic,
                prob,
                rgb_bands=cfg.rgb_bands,
                stretch=stretch,
                tile_size_px=cfg.tile_size_px,
                overlap_px=cfg.overlap_px,
                batch_size=cfg.inference_batch_size,
                tags={
                    "MOSAIC_DATE": date,
                    "MODEL": onnx_path.name,
                    "ITERATION": str(context.iteration),
                },
            )
        cands = polygonize_probability(prob, cfg.probability_threshold, cfg.min_area_ha)
        self._metrics["candidates"] = len(cands)
        if cfg.estimate_initiation and len(cands):
            cands["initiation_period"] = self._initiation(cands, onnx_path, date, context)
        return cands

    def _initiation(
        self, cands: gpd.GeoDataFrame, onnx_path: Path, mosaic_date: str, context: IterationContext
    ) -> list[str | None]:
        """Date each candidate's appearance on the images up to the mosaic's date."""
        from thawdetect.plugins.optical_dl.initiation import initiation_periods, presence

        frames = [
            (f.label, Path(f.path)) for f in self.image_frames(context) if f.label <= mosaic_date
        ]
        if len(frames) < 2:
            return [None] * len(cands)
        present = presence(cands, frames, open_session(onnx_path, self.config.threads), self.config)
        present[:, -1] |= True  # proposed on the mosaic date by construction
        return initiation_periods(present, [d for d, _ in frames])

    def next_config(self, outcome: ReviewOutcome) -> OpticalDLConfig | None:
        """Fine-tune next time from this iteration's checkpoint; None if nothing new confirmed.

        The engine's grown positives and negatives come through the next context; the negatives
        sampling (``max_negatives``) is drawn with a seed advanced per iteration.
        """
        if len(outcome.newly_confirmed) == 0 or self.config.onnx_model_path:
            return None
        return self.config.model_copy(update={"fine_tune_previous": True, "init_checkpoint": None})

    def image_frames(self, context: IterationContext) -> list[ImageFrame]:
        """One frame per acquisition date (scenes of a date mosaicked), for time-lapse chips."""
        frames = []
        vr = None
        if self.config.stretch == "fixed" and self.config.input_bit_depth == 16:
            vr = (self.config.stretch_range_dn.min, self.config.stretch_range_dn.max)
        for date, scenes in self._groups().items():
            path = scenes[0]
            if len(scenes) > 1:
                target = context.crs if self.config.mixed_crs == "reproject" else None
                path = build_mosaic(
                    scenes, context.work_dir, f"frame_{date}", self.config.mixed_crs, target
                )
            frames.append(
                ImageFrame(label=date, path=path, bands=self.config.rgb_bands, value_range=vr)
            )
        return frames

    def summary(self) -> dict[str, Any]:
        """Encoder, epochs, start (scratch/fine-tune), validation IoU, INT8 use."""
        m = self._metrics
        cfg = self.config
        out: dict[str, Any] = {
            "encoder": cfg.encoder,
            "epochs": cfg.fine_tune_epochs if cfg.fine_tune_previous else cfg.epochs,
        }
        for key in ("start", "epochs", "train_chips", "val_iou", "int8"):
            if key in m:
                v = m[key]
                out[key] = round(v, 3) if isinstance(v, float) and np.isfinite(v) else v
        return out
