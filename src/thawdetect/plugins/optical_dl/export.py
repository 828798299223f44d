"""ONNX export (opset 17, dynamic batch/height/width) and optional static INT8 quantization."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from thawdetect.plugin_api import MissingDependencyError, atomic_path
from thawdetect.plugins.optical_dl.infer import INPUT_NAME, OUTPUT_NAME

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["export_onnx", "quantize_int8"]


def export_onnx(model: Any, path: Path, sample_size_px: int = 64) -> Path:
    """Export a logits model as ONNX: ``image`` (N, 3, H, W) 0-1 → ``probability`` (N, 1, H, W).

    The sigmoid is part of the graph; H and W are dynamic (multiples of 32 at run time).
    """
    from thawdetect.plugins.optical_dl.train import _torch

    torch = _torch()

    class _Probability(torch.nn.Module):  # type: ignore[name-defined,misc]
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: Any) -> Any:
            return torch.sigmoid(self.inner(x))

    wrapped = _Probability(model).eval()
    dummy = torch.zeros(1, 3, sample_size_px, sample_size_px)
    with atomic_path(path, suffix=".onnx") as tmp, torch.no_grad():
        torch.onnx.export(
            wrapped,
            (dummy,),
            str(tmp),
            opset_version=17,
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={
                INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                OUTPUT_NAME: {0: "batch", 2: "height", 3: "width"},
            },
        )
    return path


def quantize_int8(
    fp32_path: Path,
    int8_path: Path,
    calibration: NDArray[np.uint8],
    *,
    quant_format: Literal["QDQ", "QOperator"] = "QDQ",
    per_channel: bool = True,
    exclude_op_types: Sequence[str] = (),
    exclude_last_convs: int = 0,
    calibrate_method: Literal["MinMax", "Percentile", "Entropy"] = "MinMax",
    reduce_range: bool = False,
) -> Path:
    """Static INT8 quantization calibrated on tiles of the region (QDQ, per-channel by default).

    Args:
        fp32_path: the float model.
        int8_path: where to write the quantized model.
        calibration: (N, 3, H, W) uint8 RGB tiles of the region.
        quant_format: ``QDQ`` (QuantizeLinear/DequantizeLinear pairs that onnxruntime fuses) or
            ``QOperator`` (QLinearConv etc. written directly).
        per_channel: one weight scale per output channel (usually needed to keep the IoU).
        exclude_op_types: operator types left in float (e.g. ``("Resize",)``).
        exclude_last_convs: leave the last N Conv nodes (the segmentation head) in float.
        calibrate_method: activation range estimation.
        reduce_range: 7-bit weights. onnxruntime's u8s8 kernels on x86 CPUs without VNNI
            (AVX2, plain AVX-512) add pairs of products in 16 bits, which can saturate with full
            8-bit weights; 7-bit weights cannot (onnxruntime's quantization guide).
    """
    try:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        raise MissingDependencyError("onnxruntime", "optical", "INT8 quantization") from None

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(calibration)

        def get_next(self) -> dict[str, NDArray[np.float32]] | None:
            item = next(self.items, None)
            if item is None:
                return None
            return {INPUT_NAME: item[None].astype(np.float32) / 255}

    with tempfile.TemporaryDirectory(dir=int8_path.parent) as tmpdir:
        pre = Path(tmpdir) / "pre.onnx"
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        excluded: list[str] = []
        if exclude_last_convs:
            import onnx

            convs = [n.name for n in onnx.load(str(pre)).graph.node if n.op_type == "Conv"]
            excluded = convs[-exclude_last_convs:]
        op_types = None
        if exclude_op_types:
            from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

            registry = QDQRegistry if quant_format == "QDQ" else QLinearOpsRegistry
            op_types = [t for t in registry if t not in set(exclude_op_types)]
        with atomic_path(int8_path, suffix=".onnx") as tmp:
            quantize_static(
                str(pre),
                str(tmp),
                _Reader(),
                quant_format=QuantFormat.QDQ if quant_format == "QDQ" else QuantFormat.QOperator,
                per_channel=per_channel,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=op_types,
                nodes_to_exclude=excluded or None,
                calibrate_method=getattr(CalibrationMethod, calibrate_method),
                reduce_range=reduce_range,
            )
    return int8_path
