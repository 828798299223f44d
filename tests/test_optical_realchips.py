"""optical_dl on real pixels: Sentinel-2 chip of the Peel Plateau with 12 experts' RTS outlines.

Data: ../shared/data/rts_labeling_intercomparison_nitze2024 (Nitze et al. 2024, PPP,
doi:10.1002/ppp.2249; MIT). The Peel S2 file has 7 bands without descriptions; the site README
lists S2 bands B2, B3, B4, B5, B6, B7, B8, B8A, B11, B12 (all 10 in the Bykovsky file). The Peel
band means (971, 824, 681, 1159, 2088, 2403, 2400) follow the first seven (visible, red-edge
rising, B7≈B8), as in Bykovsky, so RGB = bands (3, 2, 1) = B4, B3, B2.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.features import rasterize

pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")
pytest.importorskip("onnxruntime")

from tests.conftest import SHARED_DATA

from thawdetect.plugins.optical_dl.chips import make_chips, rasterize_labels
from thawdetect.plugins.optical_dl.config import OpticalDLConfig
from thawdetect.plugins.optical_dl.export import export_onnx
from thawdetect.plugins.optical_dl.images import check_scene, compute_stretch
from thawdetect.plugins.optical_dl.infer import (
    open_session,
    polygonize_probability,
    predict_array,
    predict_mosaic,
)
from thawdetect.plugins.optical_dl.train import predict_torch, train_model

DATA = SHARED_DATA
NITZE = DATA / "rts_labeling_intercomparison_nitze2024"
PEEL_S2 = NITZE / "01_Setup" / "Peel" / "data" / "S2_20210821T210019_20210821T210020_T08WMA.tif"


def expert_masks(grid) -> list[np.ndarray]:
    transform, shape, crs = grid
    masks = []
    for shp in sorted(NITZE.glob("02_UserResults/*/Peel_digitized.shp")):
        g = gpd.read_file(shp).to_crs(crs)
        masks.append(
            rasterize(
                ((geom, 1) for geom in g.geometry),
                out_shape=shape,
                transform=transform,
                fill=0,
                dtype="uint8",
            ).astype(bool)
        )
    return masks


def iou_f1(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    inter, union = (a & b).sum(), (a | b).sum()
    iou = inter / union if union else float("nan")
    return float(iou), float(2 * iou / (1 + iou))


def _pipeline(tmp_path, capsys, seed: int = 0) -> dict:
    cfg = OpticalDLConfig(band_count=7, rgb_bands=(3, 2, 1))
    check_scene(PEEL_S2, cfg)
    with rasterio.open(PEEL_S2) as src:
        grid = (src.transform, (src.height, src.width), src.crs)
    masks = expert_masks(grid)
    assert len(masks) == 12
    # experts: each one against the union of the others (the human ceiling)
    expert = np.array(
        [
            iou_f1(m, np.any([o for j, o in enumerate(masks) if j != i], axis=0))
            for i, m in enumerate(masks)
        ]
    )
    majority = np.sum(masks, axis=0) >= len(masks) / 2
    assert 0.2 < expert[:, 0].mean() < 0.95
    # training labels: polygons of the experts' majority vote
    from rasterio.features import shapes
    from shapely.geometry import shape

    polys = [
        shape(g)
        for g, v in shapes(majority.astype(np.uint8), mask=majority, transform=grid[0])
        if v == 1
    ]
    positives = gpd.GeoDataFrame(geometry=polys, crs=grid[2])
    # rasterizing the polygons back gives the same pixels
    from rasterio.windows import Window

    lab = rasterize_labels(positives, Window(0, 0, grid[1][1], grid[1][0]), grid[0])
    np.testing.assert_array_equal(lab.astype(bool), majority)
    stretch = compute_stretch(PEEL_S2, cfg)
    chips = make_chips(
        PEEL_S2,
        positives,
        positives.iloc[:0],
        rgb_bands=(3, 2, 1),
        stretch=stretch,
        chip_size_px=64,
        buffer_m=100,
        background_chips=6,
        block_size_m=800,
        validation_fraction=0.25,
        seed=seed,
    )
    assert len(chips) >= 4 and (chips.labels == 1).any()
    assert chips.images.dtype == np.uint8 and chips.images.std() > 10  # real, stretched pixels
    result = train_model(
        chips,
        encoder="resnet18",
        decoder_channels=32,
        epochs=4,
        batch_size=4,
        learning_rate=3e-3,
        out_path=tmp_path / "m.pt",
        seed=seed,
        max_seconds=None,  # budget in epochs: the same model on an idle or a busy machine
    )
    model = result.pop("model")
    onnx_path = export_onnx(model, tmp_path / "m.onnx")
    session = open_session(onnx_path)
    diff = np.abs(predict_array(session, chips.images) - predict_torch(model, chips.images)).max()
    assert diff <= 1e-4
    prob = predict_mosaic(
        session,
        PEEL_S2,
        tmp_path / "p.tif",
        rgb_bands=(3, 2, 1),
        stretch=stretch,
        tile_size_px=128,
        overlap_px=32,
    )
    cands = polygonize_probability(prob, 0.5, min_area_ha=0.05)
    assert cands.crs == grid[2]
    assert len(cands) > 0  # the experts mapped slumps on this chip; the model finds some
    assert set(cands.geom_type) <= {"Polygon", "MultiPolygon"}
    assert (cands.area_m2 >= 500).all()  # 0.05 ha minimum mapping unit
    with rasterio.open(prob) as src:
        pred = src.read(1) >= 0.5
    model_iou, model_f1 = iou_f1(pred, np.any(masks, axis=0))
    # held out: pixels no training chip covered
    unseen = np.ones(grid[1], bool)
    for w, val in zip(chips.windows, chips.validation, strict=True):
        if not val:
            unseen[
                int(w.row_off) : int(w.row_off + w.height),
                int(w.col_off) : int(w.col_off + w.width),
            ] = False
    union = np.any(masks, axis=0)
    held_model = iou_f1(pred & unseen, union & unseen)[0]
    held_expert = np.nanmean(
        [
            iou_f1(m & unseen, np.any([o for j, o in enumerate(masks) if j != i], axis=0) & unseen)[
                0
            ]
            for i, m in enumerate(masks)
        ]
    )
    model_iou_major, _ = iou_f1(pred, majority)
    with capsys.disabled():
        print(
            f"\n[optical real chip, Peel S2 10 m] experts vs union of others: IoU "
            f"{expert[:, 0].mean():.3f} (range {expert[:, 0].min():.3f}-{expert[:, 0].max():.3f}),"
            f" F1 {expert[:, 1].mean():.3f}; model ({result['steps']} steps from scratch, "
            f"in-sample) vs union of experts: IoU {model_iou:.3f}, F1 {model_f1:.3f}; "
            f"vs majority {model_iou_major:.3f}; {len(cands)} polygons; predicted "
            f"{pred.mean():.1%} of the chip, experts' union {np.any(masks, axis=0).mean():.1%}; "
            f"onnx-torch {diff:.1e}; on the {unseen.mean():.0%} of pixels no training chip "
            f"covered: "
            f"model IoU {held_model:.3f}, experts {held_expert:.3f}"
        )
    all_true_iou = iou_f1(unseen, union & unseen)[0]
    return {
        "held_model": held_model,
        "held_expert": float(held_expert),
        "model_iou": model_iou,
        "all_true_iou": all_true_iou,
    }


#: Held-out IoU gap (experts' mean agreement minus the model's) measured over seeds 0-4 with this
#: budget (4 epochs from scratch, resnet18, 64 px chips): 0.067, 0.045, 0.067, 0.393, 0.012
#: (median 0.067; seed 0: model 0.571 vs experts 0.638). A from-scratch model on one 10 m chip
#: is near the experts on most splits and far off on some; the default test holds seed 0 to the
#: experts within MARGIN, and the slow test holds the median over seeds within MEDIAN_MARGIN.
MARGIN = 0.2
MEDIAN_MARGIN = 0.15


def test_real_s2_chip_pipeline(tmp_path, capsys):
    r = _pipeline(tmp_path, capsys, seed=0)
    # the model on pixels no training chip covered, against the experts' own agreement there
    assert r["held_model"] >= r["held_expert"] - MARGIN, r
    # and far better than calling everything a slump (IoU = slump fraction of held-out pixels)
    assert r["held_model"] > 2 * r["all_true_iou"], r


@pytest.mark.slow
def test_real_s2_chip_pipeline_over_seeds(tmp_path, capsys):
    gaps = []
    for seed in range(5):
        (tmp_path / f"s{seed}").mkdir()
        r = _pipeline(tmp_path / f"s{seed}", capsys, seed=seed)
        gaps.append(r["held_expert"] - r["held_model"])
    with capsys.disabled():
        print(f"\n[optical real chip] held-out IoU gaps over seeds 0-4: {np.round(gaps, 3)}")
    assert float(np.median(gaps)) <= MEDIAN_MARGIN
