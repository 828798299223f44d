"""optical_dl model path: ONNX vs torch, seamless stitching, polygonizing, INT8, a tiny loop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")
pytest.importorskip("onnxruntime")

from thawdetect.plugins.optical_dl.export import export_onnx, quantize_int8  # noqa: E402
from thawdetect.plugins.optical_dl.images import Stretch  # noqa: E402
from thawdetect.plugins.optical_dl.infer import (  # noqa: E402
    open_session,
    polygonize_probability,
    predict_array,
    predict_mosaic,
)
from thawdetect.plugins.optical_dl.train import build_model, predict_torch  # noqa: E402

IDENTITY = Stretch("identity", (0.0, 0.0, 0.0), (255.0, 255.0, 255.0))


def write_rgb(path: Path, rgb: np.ndarray) -> Path:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=rgb.shape[2],
        height=rgb.shape[1],
        count=3,
        dtype="uint8",
        crs="EPSG:32646",
        transform=from_origin(492000, 3855600, 3, 3),
    ) as dst:
        dst.write(rgb)
    return path


@pytest.fixture(scope="module")
def deeplab(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("resnet18", decoder_channels=16).eval()
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "m.onnx")
    return model, path


def test_onnx_matches_torch_fp32(deeplab):
    model, path = deeplab
    rng = np.random.default_rng(0)
    session = open_session(path, threads=2)
    for shape in ((2, 3, 64, 64), (1, 3, 96, 160)):  # dynamic batch, height and width
        x = rng.integers(0, 256, shape).astype(np.uint8)
        diff = np.abs(predict_array(session, x) - predict_torch(model, x)).max()
        assert diff <= 1e-4, diff


class _Local(torch.nn.Module):
    """A 7-pixel receptive-field CNN: its tiled output must equal whole-image output exactly."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(8, 8, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(8, 1, 3, padding=1),
        )

    def forward(self, x):
        return self.net(x)


def test_stitching_is_seamless(tmp_path):
    """Tiles of 64 with 16 overlap, stitched, equal one whole-image pass away from the border."""
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (3, 200, 230)).astype(np.uint8)
    mosaic = write_rgb(tmp_path / "m.tif", rgb)
    onnx_path = export_onnx(_Local().eval(), tmp_path / "local.onnx")
    session = open_session(onnx_path, threads=2)
    out = predict_mosaic(
        session,
        mosaic,
        tmp_path / "p.tif",
        rgb_bands=(1, 2, 3),
        stretch=IDENTITY,
        tile_size_px=64,
        overlap_px=16,
        batch_size=3,
    )
    whole = predict_array(session, rgb[None])[0]
    with rasterio.open(out) as src:
        tiled = src.read(1)
        assert src.block_shapes == [(256, 256)]  # a COG, whatever the inference blocks
        assert src.crs.to_epsg() == 32646
    inner = (slice(4, -4), slice(4, -4))  # receptive field radius 3
    np.testing.assert_allclose(tiled[inner], whole[inner], atol=1e-6)
    assert not np.isnan(tiled).any()


@pytest.mark.parametrize("shape", [(96, 144), (47, 50), (200, 30)])
def test_stitching_covers_every_pixel(tmp_path, shape):
    """Mosaic sizes that are exact multiples of the block, or smaller than a tile."""
    rgb = np.random.default_rng(0).integers(0, 256, (3, *shape)).astype(np.uint8)
    mosaic = write_rgb(tmp_path / "m.tif", rgb)
    session = open_session(export_onnx(_Local().eval(), tmp_path / "local.onnx"))
    out = predict_mosaic(
        session,
        mosaic,
        tmp_path / "p.tif",
        rgb_bands=(1, 2, 3),
        stretch=IDENTITY,
        tile_size_px=64,
        overlap_px=16,
        band_width_px=96,
    )
    with rasterio.open(out) as src:
        tiled = src.read(1)
    whole = predict_array(session, rgb[None])[0] if min(shape) >= 32 else None
    assert not np.isnan(tiled).any()
    if whole is not None:
        np.testing.assert_allclose(tiled[4:-4, 4:-4], whole[4:-4, 4:-4], atol=1e-6)


def test_deeplab_tiles_have_no_seams(deeplab, tmp_path):
    """Real DeepLabv3+: jumps across tile edges are no larger than jumps elsewhere."""
    _, path = deeplab
    rng = np.random.default_rng(4)
    from scipy import ndimage

    smooth = ndimage.gaussian_filter(rng.normal(128, 40, (3, 256, 256)), (0, 6, 6))
    rgb = np.clip(smooth, 0, 255).astype(np.uint8)
    mosaic = write_rgb(tmp_path / "m.tif", rgb)
    session = open_session(path, threads=2)
    out = predict_mosaic(
        session,
        mosaic,
        tmp_path / "p.tif",
        rgb_bands=(1, 2, 3),
        stretch=IDENTITY,
        tile_size_px=128,
        overlap_px=32,
    )
    with rasterio.open(out) as src:
        prob = src.read(1)
    jumps = np.abs(np.diff(prob, axis=1))
    edges = [c - 1 for c in range(96, 256, 96)]
    at_edges = jumps[:, edges].mean()
    elsewhere = np.delete(jumps, edges, axis=1).mean()
    assert at_edges < 3 * elsewhere, (at_edges, elsewhere)
    whole = predict_array(session, rgb[None])[0]
    # global pooling in ASPP makes tiles differ slightly from one pass; stays small
    assert np.abs(prob[32:-32, 32:-32] - whole[32:-32, 32:-32]).mean() < 0.05


def write_probability(path: Path, prob: np.ndarray, transform: Any) -> Path:
    """A float32 probability GeoTIFF (NaN nodata) in 32 × 32 blocks."""
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=prob.shape[1],
        height=prob.shape[0],
        count=1,
        dtype="float32",
        crs="EPSG:32646",
        transform=transform,
        nodata=np.nan,
        tiled=True,
        blockxsize=32,
        blockysize=32,
    ) as dst:
        dst.write(prob[None])
    return path


def test_polygonize_blockwise_equals_whole(tmp_path):
    rng = np.random.default_rng(5)
    from rasterio.features import shapes
    from scipy import ndimage

    prob = ndimage.gaussian_filter(rng.random((150, 170)), 3).astype(np.float32)
    prob = (prob - prob.min()) / (prob.max() - prob.min())
    prob[:5, :5] = np.nan
    transform = from_origin(0, 1000, 3, 3)
    path = write_probability(tmp_path / "p.tif", prob, transform)
    got = polygonize_probability(path, threshold=0.6, min_area_ha=0.01)
    mask = np.nan_to_num(prob) >= 0.6
    labels, n = ndimage.label(mask)
    counts = np.bincount(labels.ravel())[1:]
    big = counts * 9 >= 100
    assert len(got) == big.sum()
    assert sorted(got.area_m2) == sorted(counts[big] * 9.0)
    assert np.allclose(sorted(got.geometry.area), sorted(counts[big] * 9.0))
    means = ndimage.mean(prob, labels, np.arange(1, n + 1))[big]
    assert np.allclose(sorted(got["mean_probability"]), sorted(means), atol=1e-5)
    assert (got["max_probability"] >= got["mean_probability"]).all()
    assert set(got.geom_type) <= {"Polygon"}
    whole = [g for g, v in shapes(labels.astype(np.int32), mask=mask, transform=transform)]
    assert len(whole) == n


def test_polygonize_keeps_holes(tmp_path):
    """A ring-shaped slump (a hole of background inside, another of nodata) keeps its holes,
    with the coordinates ``rasterio.features.shapes`` gives (as ``shapely.geometry.shape``)."""
    from rasterio.features import shapes
    from shapely.geometry import shape

    from thawdetect.plugins.optical_dl.infer import _polygon

    prob = np.zeros((64, 64), np.float32)
    prob[8:56, 8:56] = 0.9
    prob[20:30, 20:30] = 0.1  # background hole
    prob[36:44, 36:48] = np.nan  # nodata hole
    transform = from_origin(500000, 3900000, 3, 3)
    path = write_probability(tmp_path / "ring.tif", prob, transform)  # the ring spans 4 blocks
    got = polygonize_probability(path, threshold=0.5, min_area_ha=0.05)
    assert len(got) == 1
    poly = got.geometry.iloc[0]
    assert len(poly.interiors) == 2
    mask = prob >= 0.5
    ((expected, _),) = shapes(mask.astype(np.int32), mask=mask, transform=transform)
    assert poly.equals(shape(expected))  # joined across the file's blocks
    assert _polygon(expected).wkb == shape(expected).wkb  # the conversion itself: same bytes
    assert got["area_m2"].iloc[0] == mask.sum() * 9.0
    assert got["max_probability"].iloc[0] == pytest.approx(0.9)


def test_int8_quantization_runs_and_agrees(deeplab, tmp_path):
    _, path = deeplab
    rng = np.random.default_rng(6)
    calib = rng.integers(0, 256, (4, 3, 64, 64)).astype(np.uint8)
    int8 = quantize_int8(path, tmp_path / "int8.onnx", calib)
    p32 = predict_array(open_session(path), calib)
    p8 = predict_array(open_session(int8), calib)
    assert p8.shape == p32.shape
    assert np.abs(p8 - p32).mean() < 0.1


def test_lighter_model_exports_and_quantizes(tmp_path):
    """The lighter option (mobilenet_v2 encoder, 128 decoder channels): same input/output contract
    as the default model, and its 7-bit INT8 (what AVX2 CPUs get) follows its fp32 output."""
    torch.manual_seed(0)
    model = build_model("mobilenet_v2", decoder_channels=128).eval()
    path = export_onnx(model, tmp_path / "light.onnx")
    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, (2, 3, 64, 96)).astype(np.uint8)
    p32 = predict_array(open_session(path), x)
    assert p32.shape == (2, 64, 96)
    assert np.allclose(p32, predict_torch(model, x), atol=1e-4)
    int8 = quantize_int8(path, tmp_path / "light_int8.onnx", x, reduce_range=True)
    p8 = predict_array(open_session(int8), x)
    assert np.abs(p8 - p32).mean() < 0.1


# ~60 s: the optical loop on the qtec sample twice over (train, fine-tune with INT8 and the
# held-out IoU guard). The default suite keeps one optical loop, tests/test_qtec_mixed.py (train,
# propose, merge with InSAR, fine-tune at iteration 2); this one runs with -m slow.
@pytest.mark.slow
def test_sample_loop_two_iterations(tmp_path):
    """The synthetic qtec sample: train, propose, fine-tune from the checkpoint (tiny budget)."""
    from thawdetect.core.plugin_api.context import IterationContext
    from thawdetect.core.plugin_api.detector import ReviewOutcome
    from thawdetect.core.plugin_api.host import PluginHost
    from thawdetect.plugins.optical_dl import plugin
    from thawdetect.plugins.optical_dl.config import OpticalDLConfig

    sample = tmp_path / "qtec"
    plugin.build_qtec_sample(sample)
    readme = (sample / "README.txt").read_text()
    assert readme.startswith("SYNTHETIC")
    with rasterio.open(sample / "images" / "2020-08-01.tif") as src:
        assert src.tags()["SYNTHETIC"] == "true" and src.count == 4 and src.dtypes[0] == "uint16"
    host = PluginHost(load_entry_points=False, plugins=[("optical_dl", plugin)])
    region = host.regions["qtec"]
    assert region.synthetic
    data = region.detectors["optical_dl"]
    raw = dict(
        data.config,
        images=[str(sample / "images" / "*.tif")],
        epochs=3,
        fine_tune_epochs=1,
        max_train_seconds=15,
    )
    cfg = OpticalDLConfig.model_validate(raw)
    known = gpd.read_file(sample / "known_inventory.gpkg")
    ref = gpd.read_file(sample / "reference_inventory.gpkg")
    assert len(known) < len(ref) and known.crs.to_epsg() == 32646
    empty = known.iloc[:0]
    ctx = IterationContext.standalone(region, tmp_path, host=host, positives=known)
    det = OpticalDLDetector = host.detector("optical_dl")(cfg)
    cands = det.propose(ctx)
    assert {"score", "mean_probability", "max_probability", "area_m2"} <= set(cands.columns)
    assert (cands.area_m2 >= 500).all()
    assert (ctx.work_dir / "model.onnx").exists() and (ctx.work_dir / "probability.tif").exists()
    frames = det.image_frames(ctx)
    assert [f.label for f in frames] == [
        "2016-08-01",
        "2017-08-01",
        "2018-08-01",
        "2019-08-01",
        "2020-08-01",
    ]
    assert det.summary()["start"] == "scratch"
    # re-running a killed stage reuses the finished model
    mtime = (ctx.work_dir / "model.onnx").stat().st_mtime
    OpticalDLDetector.__class__(cfg).propose(ctx)
    assert (ctx.work_dir / "model.onnx").stat().st_mtime == mtime
    outcome = ReviewOutcome(1, cands, ref.iloc[5:7], cands.iloc[:0], ref.iloc[:7], empty, ctx)
    nxt = det.next_config(outcome)
    assert nxt.fine_tune_previous
    assert (
        det.next_config(ReviewOutcome(1, cands, ref.iloc[:0], cands.iloc[:0], known, empty, ctx))
        is None
    )
    ctx2 = IterationContext.standalone(
        region,
        tmp_path,
        host=host,
        iteration=2,
        positives=ref.iloc[:7],
        previous_dir=ctx.work_dir,
    )
    det2 = type(det)(nxt.model_copy(update={"quantize_int8": True}))
    det2.propose(ctx2)
    assert det2.summary()["start"] == "fine-tune"
    import json

    metrics = json.loads((ctx2.work_dir / "model.json").read_text())
    # INT8 is kept only within 0.01 IoU of fp32 on held-out chips (the sample always has some):
    # 8-bit weights first, 7-bit weights only when those lose more, else fp32
    assert metrics.get("val_chips"), metrics
    assert (ctx2.work_dir / "model_int8.onnx").exists()
    fp32 = metrics["fp32_iou"]

    def ok(v):
        return fp32 is not None and v is not None and v >= fp32 - 0.01

    eight = ok(metrics["int8_iou"])
    assert ("int8_7bit_iou" in metrics) == (not eight)
    assert (ctx2.work_dir / "model_int8_7bit.onnx").exists() == (not eight)
    seven = not eight and ok(metrics["int8_7bit_iou"])
    assert metrics["int8"] == (eight or seven)
    expected = "model_int8.onnx" if eight else "model_int8_7bit.onnx" if seven else "model.onnx"
    assert metrics["onnx"] == expected
    assert metrics.get("int8_weights") == ("8-bit" if eight else "7-bit" if seven else None)
