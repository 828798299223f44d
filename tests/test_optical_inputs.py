"""optical_dl pre-processing and bad input: one-line errors naming the file."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import box

from thawdetect.core.errors import (
    CRSMismatchError,
    EmptyInventoryError,
    InputError,
    MissingBandError,
)
from thawdetect.core.plugin_api.context import IterationContext
from thawdetect.core.regions import Region
from thawdetect.plugins.optical_dl.config import OpticalDLConfig
from thawdetect.plugins.optical_dl.detector import OpticalDLDetector
from thawdetect.plugins.optical_dl.images import (
    Stretch,
    apply_stretch,
    build_mosaic,
    check_scene,
    compute_stretch,
    find_images,
    read_rgb,
)
from thawdetect.plugins.optical_dl.infer import open_session


def write_scene(
    path: Path,
    *,
    count: int = 4,
    dtype: str = "uint16",
    crs: str = "EPSG:32646",
    origin: tuple[float, float] = (492000.0, 3855600.0),
    size: int = 64,
    scale: int = 3000,
    seed: int = 0,
) -> Path:
    rng = np.random.default_rng(seed)
    data = rng.integers(1, scale, (count, size, size)).astype(dtype)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=count,
        dtype=dtype,
        crs=crs,
        transform=from_origin(*origin, 3.0, 3.0),
        nodata=0,
    ) as dst:
        dst.write(data)
    return path


def one_line(exc: pytest.ExceptionInfo, path: Path | str) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(str(path))
    return msg


class TestBadInput:
    def test_wrong_band_count(self, tmp_path):
        p = write_scene(tmp_path / "s.tif", count=3)
        with pytest.raises(MissingBandError) as exc:
            check_scene(p, OpticalDLConfig())
        assert "expected 4 bands" in one_line(exc, p)

    def test_8bit_where_16bit_expected(self, tmp_path):
        p = write_scene(tmp_path / "s.tif", dtype="uint8", scale=255)
        with pytest.raises(InputError) as exc:
            check_scene(p, OpticalDLConfig())
        assert "8-bit" in one_line(exc, p)
        check_scene(p, OpticalDLConfig(input_bit_depth=8))  # accepted when declared

    def test_8bit_values_in_16bit_file(self, tmp_path):
        p = write_scene(tmp_path / "s.tif", scale=255)
        with pytest.raises(InputError) as exc:
            check_scene(p, OpticalDLConfig())
        assert "0-255" in one_line(exc, p)

    def test_mixed_crs_mosaic(self, tmp_path):
        a = write_scene(tmp_path / "a.tif")
        b = write_scene(tmp_path / "b.tif", crs="EPSG:32645", origin=(1040000.0, 3860000.0))
        with pytest.raises(CRSMismatchError) as exc:
            build_mosaic([a, b], tmp_path / "m", "mosaic")
        assert "mixed_crs: reproject" in one_line(exc, b)
        out = build_mosaic([a, b], tmp_path / "m", "mosaic", mixed_crs="reproject")
        with rasterio.open(out) as src:
            assert src.crs.to_epsg() == 32646
            assert src.count == 4
            assert src.read_masks(1).any()

    def test_empty_label_set(self, tmp_path):
        write_scene(tmp_path / "2020-08-01.tif")
        cfg = OpticalDLConfig(
            images=[str(tmp_path / "*.tif")], chip_size_px=32, tile_size_px=64, overlap_px=16
        )
        region = Region(name="t", crs="EPSG:32646")
        empty = gpd.GeoDataFrame(geometry=[], crs="EPSG:32646")
        ctx = IterationContext(
            run_dir=tmp_path,
            work_dir=tmp_path / "w",
            iteration=1,
            region=region,
            crs=region.working_crs(),
            host=None,
            positives=empty,
            negatives=empty,
            inventory=empty,
        )
        with pytest.raises(EmptyInventoryError) as exc:
            OpticalDLDetector(cfg).propose(ctx)
        assert "empty label set" in one_line(exc, "training positives")

    def test_onnx_not_matching(self, tmp_path):
        onnx = pytest.importorskip("onnx")
        from onnx import TensorProto, helper

        # a valid ONNX model taking 4 channels (e.g. RGB+NIR) instead of RGB
        x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 4, "h", "w"])
        y = helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["n", 4, "h", "w"])
        graph = helper.make_graph(
            [helper.make_node("Sigmoid", ["image"], ["probability"])], "g", [x], [y]
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        path = tmp_path / "rgbn.onnx"
        onnx.save(model, path)
        with pytest.raises(InputError) as exc:
            open_session(path)
        assert "expected float32 (N, 3, H, W)" in one_line(exc, path)
        junk = tmp_path / "junk.onnx"
        junk.write_bytes(b"not a model")
        with pytest.raises(InputError) as exc:
            open_session(junk)
        assert "cannot be loaded" in one_line(exc, junk)

    def test_no_image_matches(self, tmp_path):
        pattern = str(tmp_path / "*.tif")
        with pytest.raises(InputError) as exc:
            find_images([pattern])
        assert "no image file matches" in one_line(exc, pattern)

    def test_config_rejects_bad_tiling(self):
        with pytest.raises(ValueError, match="multiple of 16"):
            OpticalDLConfig(tile_size_px=512, overlap_px=40)
        with pytest.raises(ValueError, match="extra"):
            OpticalDLConfig(tile_size=512)


class TestPreprocess:
    def test_dates_grouped(self, tmp_path):
        for name in ("2016-08-01.tif", "scene_20200801_a.tif", "scene_20200801_b.tif"):
            write_scene(tmp_path / name)
        groups = find_images([str(tmp_path / "*.tif")])
        assert list(groups) == ["2016-08-01", "2020-08-01"]
        assert len(groups["2020-08-01"]) == 2

    def test_mosaic_of_neighbouring_scenes(self, tmp_path):
        a = write_scene(tmp_path / "a.tif", seed=1)
        b = write_scene(tmp_path / "b.tif", origin=(492000.0 + 64 * 3, 3855600.0), seed=2)
        out = build_mosaic([a, b], tmp_path, "m")
        with rasterio.open(out) as m, rasterio.open(a) as sa, rasterio.open(b) as sb:
            assert (m.width, m.height) == (128, 64)
            np.testing.assert_array_equal(m.read()[:, :, :64], sa.read())
            np.testing.assert_array_equal(m.read()[:, :, 64:], sb.read())

    def test_stretch_percentile_and_fixed(self, tmp_path):
        p = write_scene(tmp_path / "s.tif", size=128)
        s = compute_stretch(p, OpticalDLConfig())
        with rasterio.open(p) as src:
            red = src.read(3)
        assert s.low_dn[0] == pytest.approx(np.percentile(red, 2), rel=0.02)
        assert s.high_dn[0] == pytest.approx(np.percentile(red, 98), rel=0.02)
        fixed = compute_stretch(p, OpticalDLConfig(stretch="fixed"))
        assert fixed.high_dn == (3000.0, 3000.0, 3000.0)
        assert Stretch.from_json(s.to_json()) == s

    def test_read_rgb_pads_and_marks_nodata(self, tmp_path):
        p = write_scene(tmp_path / "s.tif")
        s = Stretch("fixed", (0, 0, 0), (3000, 3000, 3000))
        from rasterio.windows import Window

        with rasterio.open(p) as src:
            rgb, valid = read_rgb(src, Window(-8, -8, 32, 32), (3, 2, 1), s)
            raw = src.read([3, 2, 1], window=Window(0, 0, 24, 24))
        assert rgb.shape == (3, 32, 32)
        assert not valid[:8].any() and valid[8:, 8:].all()
        np.testing.assert_array_equal(rgb[:, 8:, 8:], apply_stretch(raw, s))


def test_plugin_module_imports_no_heavy_package():
    import subprocess
    import sys

    code = (
        "import sys, thawdetect.plugins.optical_dl.plugin as p; "
        "print([m for m in ('torch', 'onnxruntime', 'segmentation_models_pytorch') "
        "if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_box_helper_geometry_in_working_crs():
    # candidates and labels are plain shapely polygons in metres
    assert box(0, 0, 3, 3).area == 9
