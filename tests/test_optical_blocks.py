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
        assert src.block_shapes == [(48, 48)] and src.crs.to_epsg() == 32646
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
