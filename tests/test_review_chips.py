"""Evidence chips (issue 23): 384 px, human headers without file names or a repeated date, and an
outline with a dark halo that stays visible on a red or yellow colour ramp."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from affine import Affine
from PIL import Image
from shapely.geometry import box

from thawdetect.core.plugin_api.detector import ImageFrame
from thawdetect.core.review._styles import _styles
from thawdetect.core.review.evidence import _HEADER_PX, CHIP_SIZE_PX, build_evidence

CRS = "EPSG:32647"


def _tif(path: Path, data: np.ndarray) -> Path:
    with rasterio.open(
        path, "w", driver="GTiff", dtype="float32", count=data.shape[0], width=data.shape[2],
        height=data.shape[1], crs=CRS, transform=Affine(30, 0, 500_000, 0, -30, 4_200_000),
        nodata=float("nan"),
    ) as dst:  # fmt: skip
        dst.write(data.astype("float32"))
    return path


def _scene(tmp: Path) -> tuple[gpd.GeoDataFrame, list[ImageFrame]]:
    rng = np.random.default_rng(0)
    rate = rng.normal(0, 3, (1, 120, 120))
    rate[0, 55:65, 55:65] = -70  # the slump, deep red on RdBu
    rgb = rng.uniform(500, 3000, (3, 120, 120))
    rate_p, rgb_p = _tif(tmp / "rate_mm_yr.tif", rate), _tif(tmp / "S2_20190701_T47.tif", rgb)
    frames = [
        ImageFrame("LOS rate mm/yr", rate_p, bands=(1,), value_range=(-80, 80), units="mm/yr",
                   date="2018-01-03 to 2020-07-20", group="maps", colormap="RdBu"),
        ImageFrame("cumulative LOS displacement", rate_p, bands=(1,), value_range=(-80, 80),
                   units="mm", date="2018-01-03 (since 2018-01-03)", source="SBAS-InSAR, toy"),
        ImageFrame("2019-07-01", rgb_p, bands=(3, 2, 1)),
    ]  # fmt: skip
    x0, y0 = 500_000 + 55 * 30, 4_200_000 - 65 * 30
    cands = gpd.GeoDataFrame(
        {"candidate_id": ["it01-0001"]}, geometry=[box(x0, y0, x0 + 300, y0 + 300)], crs=CRS
    )
    return cands, frames


def test_headers_say_what_in_words_date_once_no_file_name(tmp_path: Path) -> None:
    _, frames = _scene(tmp_path)
    st = _styles(frames)
    assert [s.title for s in st] == [
        "LOS rate (mm/yr)",
        "cumulative LOS displacement (mm)",
        "optical image (bands 3,2,1)",
    ]
    assert [s.date for s in st] == ["2018-01-03 to 2020-07-20", "2018-01-03", "2019-07-01"]
    # no file name anywhere in what the header writes
    for s in st:
        assert ".tif" not in s.title + s.date + s.source
    assert st[1].source == "SBAS-InSAR, toy" and st[0].source == "" and st[2].source == ""


def test_chips_are_384_px_with_a_haloed_outline(tmp_path: Path) -> None:
    cands, frames = _scene(tmp_path)
    res = build_evidence(cands, frames, tmp_path / "ev", buffer_m=300)
    paths: list[str] = list(res["frame_paths"].iloc[0])
    assert len(paths) == 3 and not any("S2_2019" in Path(p).name for p in paths)
    assert CHIP_SIZE_PX >= 384
    for p in paths:
        im = np.asarray(Image.open(p).convert("RGB")).astype(int)
        chip = im[_HEADER_PX : _HEADER_PX + CHIP_SIZE_PX]
        assert im.shape[1] == CHIP_SIZE_PX and chip.shape[0] == CHIP_SIZE_PX
        red = (chip[..., 0] == 255) & (chip[..., 1] == 40) & (chip[..., 2] == 40)
        black = (chip == 0).all(axis=-1)
        assert red.sum() > 100
        # every outline pixel has the halo beside it (across the red line, on either side)
        rr, cc = np.nonzero(red)
        near = black[np.clip(rr + 2, 0, CHIP_SIZE_PX - 1), cc] | black[np.clip(rr - 2, 0, None), cc]
        near |= (
            black[rr, np.clip(cc + 2, 0, CHIP_SIZE_PX - 1)] | black[rr, np.clip(cc - 2, 0, None)]
        )
        assert near.mean() > 0.9
