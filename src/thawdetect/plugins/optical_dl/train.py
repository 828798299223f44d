"""DeepLabv3+ (segmentation-models-pytorch) training and fine-tuning; needs the ``train`` extra.

torch is imported inside functions only. Encoder weights are never downloaded
(``encoder_weights=None``, ``HF_HUB_OFFLINE=1``); a local weights file may be given.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from thawdetect.plugin_api import InputError, MissingDependencyError, atomic_path, track
from thawdetect.plugins.optical_dl.chips import IGNORE, ChipSet

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["build_model", "iou", "load_checkpoint", "train_model"]


def _torch() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import segmentation_models_pytorch  # noqa: F401
        import torch
    except ImportError as exc:
        name = getattr(exc, "name", None) or "torch"
        raise MissingDependencyError(name, "train", "training the optical_dl model") from None
    return torch


def build_model(
    encoder: str = "resnet18",
    decoder_channels: int = 256,
    encoder_weights_path: str | Path | None = None,
) -> Any:
    """A DeepLabv3+ with one output channel (logits), random init or local encoder weights.

    Raises:
        InputError: the weights file cannot be loaded into this encoder.
    """
    torch = _torch()
    import segmentation_models_pytorch as smp

    model = smp.DeepLabV3Plus(
        encoder_name=encoder,
        encoder_weights=None,
        in_channels=3,
        classes=1,
        decoder_channels=decoder_channels,
    )
    if encoder_weights_path:
        try:
            state = torch.load(encoder_weights_path, map_location="cpu", weights_only=True)
            state = {k: v for k, v in state.items() if not k.startswith("fc.")}
            missing, _ = model.encoder.load_state_dict(state, strict=False)
        except Exception as exc:
            raise InputError(
                encoder_weights_path,
                f"cannot be loaded as {encoder} weights: {str(exc).splitlines()[0][:120]}",
            ) from exc
        if missing:
            raise InputError(
                encoder_weights_path,
                f"not {encoder} weights: {len(missing)} encoder tensors missing",
            )
    return model


def load_checkpoint(path: str | Path, encoder: str, decoder_channels: int) -> Any:
    """Rebuild a model from a checkpoint written by :func:`train_model`.

    Raises:
        InputError: unreadable or made for another encoder/decoder.
    """
    torch = _torch()
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(
            path, f"cannot be read as a model checkpoint ({type(exc).__name__})"
        ) from exc
    if ckpt.get("encoder") != encoder or ckpt.get("decoder_channels") != decoder_channels:
        raise InputError(
            path,
            f"checkpoint is for encoder {ckpt.get('encoder')} / decoder "
            f"{ckpt.get('decoder_channels')}, config asks {encoder} / {decoder_channels}",
        )
    model = build_model(encoder, decoder_channels)
    model.load_state_dict(ckpt["state_dict"])
    return model


def iou(prob: NDArray, labels: NDArray, threshold: float = 0.5) -> float:
    """Intersection over union of ``prob >= threshold`` against labels==1 (255 ignored).

    Examples:
        >>> iou(np.array([0.9, 0.9, 0.1, 0.2]), np.array([1, 0, 1, 255]))
        0.3333333333333333
    """
    valid = labels != IGNORE
    pred = (prob >= threshold) & valid
    truth = (labels == 1) & valid
    union = np.logical_or(pred, truth).sum()
    return float(np.logical_and(pred, truth).sum() / union) if union else float("nan")


def _augment(torch: Any, x: Any, y: Any, gen: Any) -> tuple[Any, Any]:
    k = int(torch.randint(0, 4, (1,), generator=gen))
    x, y = torch.rot90(x, k, (2, 3)), torch.rot90(y, k, (1, 2))
    if bool(torch.randint(0, 2, (1,), generator=gen)):
        x, y = torch.flip(x, (3,)), torch.flip(y, (2,))
    return x, y


def predict_torch(
    model: Any, images: NDArray[np.uint8], batch_size: int = 4
) -> NDArray[np.float32]:
    """Eager-mode probability for (N, 3, H, W) uint8 chips → (N, H, W)."""
    torch = _torch()
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            x = torch.from_numpy(images[i : i + batch_size].astype(np.float32) / 255)
            out.append(torch.sigmoid(model(x))[:, 0].numpy())
    return np.concatenate(out) if out else np.zeros((0, *images.shape[2:]), np.float32)


def recalibrate_batchnorm(model: Any, images: NDArray[np.uint8], batch_size: int = 8) -> None:
    """Recompute batch-norm running statistics for the final weights (population averages).

    With the few hundred steps of an iteration's fine-tuning, the exponential running averages
    lag far behind the weights and the model scores badly in eval mode (ONNX export uses eval
    mode). One pass over the training chips with cumulative averaging fixes that.
    """
    torch = _torch()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    n_batches = max(1, -(-len(images) // batch_size))
    with torch.no_grad():
        for part in np.array_split(images, n_batches):
            if len(part) > 1:  # batch norm after global pooling needs two samples
                model(torch.from_numpy(part.astype(np.float32) / 255))
    for m, mom in zip(bns, saved, strict=True):
        m.momentum = mom
    model.eval()


def train_model(
    chips: ChipSet,
    *,
    encoder: str,
    decoder_channels: int,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    out_path: Path,
    init_checkpoint: str | Path | None = None,
    encoder_weights_path: str | Path | None = None,
    augment: bool = True,
    seed: int = 0,
    max_seconds: float | None = None,
) -> dict[str, Any]:
    """Train (or fine-tune) DeepLabv3+ on chips with BCE + Dice loss; save a checkpoint.

    Args:
        chips: training and validation chips.
        encoder: smp encoder name.
        decoder_channels: DeepLabv3+ decoder width.
        epochs: passes over the training chips.
        batch_size: chips per step.
        learning_rate: Adam learning rate.
        out_path: checkpoint file to write (``model.pt``).
        init_checkpoint: fine-tune from this checkpoint (previous iteration or user's).
        encoder_weights_path: local encoder weights when starting from scratch.
        augment: random 90° rotations and flips.
        seed: random seed.
        max_seconds: wall-clock budget; training stops after the step that exceeds it.

    Returns:
        Metrics: epochs, steps, final training loss, validation IoU (NaN without validation chips),
        seconds.
    """
    torch = _torch()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    if init_checkpoint:
        model = load_checkpoint(init_checkpoint, encoder, decoder_channels)
    else:
        model = build_model(encoder, decoder_channels, encoder_weights_path)
    train = chips.subset(False)
    val = chips.subset(True)
    x_all = torch.from_numpy(train.images)
    y_all = torch.from_numpy(train.labels.astype(np.int64))
    opt = torch.optim.Adam(model.parameters(), lr=learning_rate)
    start = time.perf_counter()
    steps, last_loss, done_epochs = 0, float("nan"), 0
    stop = False
    for _epoch in track(range(epochs), "optical_dl: training epochs", total=epochs):
        model.train()
        order = torch.randperm(len(train), generator=gen)
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            if len(idx) < 2:  # batch norm needs more than one sample
                continue
            x = x_all[idx].float() / 255
            y = y_all[idx]
            if augment:
                x, y = _augment(torch, x, y, gen)
            logits = model(x)[:, 0]
            valid = (y != IGNORE).float()
            target = (y == 1).float()
            bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, weight=valid)
            p = torch.sigmoid(logits) * valid
            dice = 1 - (2 * (p * target).sum() + 1) / (p.sum() + target.sum() + 1)
            loss = bce + dice
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            last_loss = float(loss.detach())
            if max_seconds is not None and time.perf_counter() - start > max_seconds:
                stop = True
                break
        done_epochs += 1
        if stop:
            break
    if steps and len(train) > 1:
        recalibrate_batchnorm(model, train.images)
    val_iou = float("nan")
    if len(val):
        val_iou = iou(predict_torch(model, val.images), val.labels)
    with atomic_path(out_path, suffix=".pt") as tmp:
        torch.save(
            {
                "state_dict": model.state_dict(),
                "encoder": encoder,
                "decoder_channels": decoder_channels,
            },
            tmp,
        )
    return {
        "epochs": done_epochs,
        "steps": steps,
        "loss": last_loss,
        "val_iou": val_iou,
        "train_chips": len(train),
        "val_chips": len(val),
        "seconds": round(time.perf_counter() - start, 1),
        "model": model,
    }
