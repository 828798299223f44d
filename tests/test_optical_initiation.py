"""Initiation period from multi-date images: a real onnxruntime session on real GeoTIFFs.

The model here is a one-node ONNX graph (probability = red channel), so the dating logic is
tested exactly; the DeepLabv3+ itself is tested in test_optical_model.py.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import onnx
import rasterio
from onnx import TensorProto, helper
from rasterio.transform import from_origin
from shapely.geometry import box

from thawdetect.plugins.optical_dl.config import OpticalDLConfig
from thawdetect.plugins.optical_dl.infer import open_session
from thawdetect.plugins.optical_dl.initiation import initiation_periods, presence

CRS = "EPSG:32646"
ORIGIN = (470_000.0, 3_850_000.0)


def red_model(path: Path) -> Path:
    """ONNX graph: (N, 3, H, W) → its first channel (N, 1, H, W)."""
    inits = [
        helper.make_tensor(n, TensorProto.INT64, [1], [v])
        for n, v in (("starts", 0), ("ends", 1), ("axes", 1))
    ]
    node = helper.make_node("Slice", ["input", "starts", "ends", "axes"], ["prob"])
    graph = helper.make_graph(
        [node],
        "red",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 1, "H", "W"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, path)
    return path


def write_date(path: Path, patches: list[tuple[int, int, int]]) -> Path:
    """4-band uint16 image; each patch (row, col, half-size px) is bright red."""
    img = np.full((4, 128, 128), 1000, np.uint16)
    for r, c, h in patches:
        img[2, r - h : r + h, c - h : c + h] = 3000  # band 3 = red (B, G, R, NIR)
    profile = dict(
        driver="GTiff",
        width=128,
        height=128,
        count=4,
        dtype="uint16",
        crs=CRS,
        transform=from_origin(*ORIGIN, 3.0, 3.0),
        nodata=0,
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(img)
    return path


def test_initiation_dates_from_images(tmp_path):
    a = (30, 30, 8)  # present from the first date
    b = (90, 90, 8)  # appears on the third date
    dates = ["2016-08-01", "2017-08-01", "2018-08-01", "2019-08-01"]
    frames = [
        (d, write_date(tmp_path / f"{d}.tif", [a] + ([b] if i >= 2 else [])))
        for i, d in enumerate(dates)
    ]

    def outline(r, c, h):
        x0, y0 = ORIGIN[0] + (c - h) * 3.0, ORIGIN[1] - (r + h) * 3.0
        return box(x0, y0, x0 + 2 * h * 3.0, y0 + 2 * h * 3.0)

    cands = gpd.GeoDataFrame(geometry=[outline(*a), outline(*b)], crs=CRS)
    cfg = OpticalDLConfig(
        images=[str(tmp_path / "*.tif")], stretch="fixed", stretch_range_dn={"min": 0, "max": 3000}
    )
    session = open_session(red_model(tmp_path / "red.onnx"))
    present = presence(cands.to_crs("EPSG:4326"), frames, session, cfg)  # any CRS works
    assert present.tolist() == [[True] * 4, [False, False, True, True]]
    assert initiation_periods(present, dates) == ["before 2016-08-01", "2017-08-01/2018-08-01"]
