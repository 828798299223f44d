"""optical_dl inference as Dask tasks: any partition into blocks gives the same pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")
pytest.importorskip("onnxruntime")

from thawdetect.core.compute import use_scheduler  # noqa: E402
from thawdetect.plugins.optical_dl.export import export_onnx  # noqa: E402
from thawdetect.plugins.optical_dl.images import Stretch  # noqa: E402
from thawdetect.plugins.optical_dl.infer import plan_blocks, predict_mosaic  # noqa: E402
from thawdetect.plugins.optical_dl.train import build_model  # noqa: E402

IDENTITY = Stretch("identity", (0.0, 0.0, 0.0), (255.0, 255.0, 255.0))


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A DeepLabv3+ (image pooling: each tile's output depends on the whole tile) and a mosaic."""
    tmp = tmp_path_factory.mktemp("blocks")
    torch.manual_seed(0)
    onnx_path = export_onnx(build_model("resnet18", decoder_channels=16).eval(), tmp / "m.onnx")
    from scipy import ndimage

    rng = np.random.default_rng(7)
    rgb = np.clip(ndimage.gaussian_filter(rng.normal(128, 50, (3, 170, 205)), (0, 3, 3)), 0, 255)
    rgb = rgb.astype(np.uint8)
    rgb[:, :20, :30] = 0  # nodata corner
    mosaic = tmp / "m.tif"
    with rasterio.open(
        mosaic,
        "w",
        driver="GTiff",
        width=rgb.shape[2],
        height=rgb.shape[1],
        count=3,
        dtype="uint8",
        nodata=0,
        crs="EPSG:32646",
        transform=from_origin(492000, 3855600, 3, 3),
    ) as dst:
        dst.write(rgb)
    return onnx_path, mosaic


def _predict(onnx_path: Path, mosaic: Path, out: Path, **kw) -> np.ndarray:
    predict_mosaic(
        onnx_path,
        mosaic,
        out,
        rgb_bands=(1, 2, 3),
        stretch=IDENTITY,
        tile_size_px=64,
        overlap_px=16,
        threads=1,
        **kw,
    )
    with rasterio.open(out) as src:
        # a Cloud-Optimised GeoTIFF (256 px tiles) whatever the inference blocks were
        assert src.block_shapes == [(256, 256)] and src.crs.to_epsg() == 32646
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert src.transform == from_origin(492000, 3855600, 3, 3)
        assert src.tags()["UNITS"] == "probability 0-1"
        return src.read(1)


def test_blocks_cover_the_grid():
    blocks = plan_blocks(170, 205, 48, 96, 96)
    assert blocks == [
        (0, 2, 0, 2),
        (0, 2, 2, 4),
        (2, 4, 0, 2),
        (2, 4, 2, 4),
        (4, 5, 0, 2),
        (4, 5, 2, 4),
    ]
    cells = {(r, c) for b0, b1, r0, r1 in blocks for r in range(r0, r1) for c in range(b0, b1)}
    assert len(cells) == sum((b1 - b0) * (r1 - r0) for b0, b1, r0, r1 in blocks) == 4 * 5


def test_any_partition_gives_identical_pixels(scene, tmp_path):
    onnx_path, mosaic = scene
    whole = _predict(onnx_path, mosaic, tmp_path / "whole.tif")
    assert np.isnan(whole[:8, :8]).all() and np.isfinite(whole[30:, 40:]).all()
    with use_scheduler("threads"):
        for width_px, height_px in ((96, 96), (48, None), (1000, 48)):
            out = tmp_path / f"p_{width_px}_{height_px}.tif"
            parts = _predict(
                onnx_path, mosaic, out, band_width_px=width_px, band_height_px=height_px
            )
            assert np.array_equal(parts, whole, equal_nan=True), (width_px, height_px)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(  # no part file left behind
        ["whole.tif", "p_96_96.tif", "p_48_None.tif", "p_1000_48.tif"]
    )


class _Small(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(8, 8, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(8, 1, 3, padding=1),
        )

    def forward(self, x):
        return self.net(x)


@pytest.mark.parametrize(
    ("options", "int8_op", "float_convs"),
    [
        ({"quant_format": "QOperator", "exclude_last_convs": 1}, "QLinearConv", 1),
        # QDQ: Conv nodes stay, fed by QuantizeLinear/DequantizeLinear pairs
        ({"per_channel": False, "calibrate_method": "Percentile"}, "DequantizeLinear", 3),
    ],
)
def test_int8_options(tmp_path, options, int8_op, float_convs):
    import onnx

    from thawdetect.plugins.optical_dl.export import quantize_int8
    from thawdetect.plugins.optical_dl.infer import open_session, predict_array

    fp32 = export_onnx(_Small().eval(), tmp_path / "m.onnx")
    rng = np.random.default_rng(0)
    calib = rng.integers(0, 256, (4, 3, 32, 32)).astype(np.uint8)
    int8 = quantize_int8(fp32, tmp_path / "q.onnx", calib, **options)
    ops = [n.op_type for n in onnx.load(str(int8)).graph.node]
    assert int8_op in ops and ops.count("Conv") == float_convs
    x = rng.integers(0, 256, (2, 3, 32, 32)).astype(np.uint8)
    ref = predict_array(open_session(fp32), x)
    got = predict_array(open_session(int8), x)
    assert np.abs(got - ref).max() < 0.05


@pytest.mark.parametrize("reduce_range", [False, True])
def test_int8_reduce_range_writes_7_bit_weights(tmp_path, reduce_range):
    """``reduce_range``: every int8 weight within ±64 (no u8s8 saturation on CPUs without VNNI);
    without it the full 8-bit range is used."""
    import onnx
    from onnx import numpy_helper

    from thawdetect.plugins.optical_dl.export import quantize_int8
    from thawdetect.plugins.optical_dl.infer import open_session, predict_array

    torch.manual_seed(0)
    fp32 = export_onnx(_Small().eval(), tmp_path / "m.onnx")
    rng = np.random.default_rng(0)
    calib = rng.integers(0, 256, (4, 3, 32, 32)).astype(np.uint8)
    int8 = quantize_int8(fp32, tmp_path / "q.onnx", calib, reduce_range=reduce_range)
    weights = [
        numpy_helper.to_array(t)
        for t in onnx.load(str(int8)).graph.initializer
        if t.data_type == onnx.TensorProto.INT8 and t.dims and len(t.dims) == 4
    ]
    assert weights
    lo, hi = min(int(w.min()) for w in weights), max(int(w.max()) for w in weights)
    # 7 bits of magnitude: a pair of products u8 × s8 stays below 2¹⁵ (2 × 255 × 64 = 32,640)
    if reduce_range:
        assert max(-lo, hi) <= 64
    else:
        assert max(-lo, hi) > 64
    x = rng.integers(0, 256, (2, 3, 32, 32)).astype(np.uint8)
    ref = predict_array(open_session(fp32), x)
    assert np.abs(predict_array(open_session(int8), x) - ref).max() < 0.05
