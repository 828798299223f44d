"""Review evidence on real Sentinel-2 / Landsat-8 chips of the Peel Plateau (Nitze et al. 2024)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from PIL import Image
from shapely.geometry import box

from thawdetect.core.errors import InputError
from thawdetect.core.plugin_api.detector import ImageFrame, TimeSeries
from thawdetect.core.review.evidence import CHIP_SIZE_PX, build_evidence, cut_chip

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PEEL = DATA / "rts_labeling_intercomparison_nitze2024" / "01_Setup" / "Peel" / "data"
LABELS = DATA / "rts_labeling_intercomparison_nitze2024" / "02_UserResults" / "#01"
S2 = PEEL / "S2_20210821T210019_20210821T210020_T08WMA.tif"
L8 = PEEL / "L8_LC08_139232_20210721.tif"

pytestmark = pytest.mark.skipif(not S2.exists(), reason="shared data not present")


def _series() -> TimeSeries:
    d0 = date(2017, 1, 1)
    dates = [d0 + timedelta(days=12 * i) for i in range(90)]
    t = np.array([(d - d0).days / 365.25 for d in dates])
    y = 2.0 - 55.0 * t + 8.0 * np.cos(2 * np.pi * t) + 3.0 * np.sin(2 * np.pi * t)
    return TimeSeries(
        dates=dates,
        values_mm=list(y + np.random.default_rng(0).normal(0, 1.5, len(t))),
        fit={"a_mm": 2.0, "b_mm_yr": -55.0, "c_mm": 8.0, "d_mm": 3.0},
        fit_t0=d0,
        label="LOS displacement (mm)",
    )


def _candidates() -> gpd.GeoDataFrame:
    labels = gpd.read_file(LABELS / "Peel_digitized.shp").iloc[:3]
    # stored in another projected CRS than the rasters: chips must still line up
    cands = labels.to_crs("EPSG:3413")
    cands["candidate_id"] = ["it01-0001", "it01-0002", "it01-0003"]
    cands["series_json"] = [_series().to_json(), None, ""]
    return cands


def _frames() -> list[ImageFrame]:
    return [
        ImageFrame("2021-07-21 L8", L8, bands=(4, 3, 2)),
        ImageFrame("2021-08-21 S2", S2, bands=(3, 2, 1)),
        ImageFrame("2021-08-21 S2 NIR", S2, bands=(4,), value_range=(0, 4000)),
    ]


class TestBuildEvidence:
    def test_chips_gif_and_plot_content(self, tmp_path):
        res = build_evidence(_candidates(), _frames(), tmp_path, buffer_m=300)
        assert res["candidate_id"].tolist() == ["it01-0001", "it01-0002", "it01-0003"]
        assert (res["n_frames"] == 3).all()
        for _, row in res.iterrows():
            sizes = set()
            for p in row["frame_paths"]:
                im = np.asarray(Image.open(p).convert("RGB"))
                sizes.add(im.shape)
                assert max(im.shape[:2]) == CHIP_SIZE_PX
                assert im.std() > 5  # real imagery, not a blank chip
                red = (im[..., 0] == 255) & (im[..., 1] == 40) & (im[..., 2] == 40)
                assert 20 < red.sum() < 0.5 * red.size  # the outline is drawn, inside the chip
                # the outline sits in the middle: the buffer keeps a margin of imagery around it
                rr, cc = np.nonzero(red)
                assert rr.min() > 5 and cc.min() > 5
                assert rr.max() < im.shape[0] - 5 and cc.max() < im.shape[1] - 5
            assert len(sizes) == 1  # frames of 10 m and 15 m pixels are on one grid
            gif = Image.open(row["animation_path"])
            assert gif.n_frames == 3
        plot = res.loc[0, "series_plot_path"]
        assert plot is not None and res.loc[1, "series_plot_path"] is None
        im = np.asarray(Image.open(plot).convert("RGB"))
        assert im.shape[:2] == (320, 640)
        # the red model curve is drawn
        assert ((im[..., 0] > 200) & (im[..., 1] < 80) & (im[..., 2] < 80)).sum() > 200

    def test_buffer_changes_footprint(self, tmp_path):
        cand = _candidates().iloc[0]
        frame = _frames()[1]
        small = cut_chip(frame, cand.geometry, "EPSG:3413", buffer_m=50)
        large = cut_chip(frame, cand.geometry, "EPSG:3413", buffer_m=600)

        def outline_share(im):
            return ((im[..., 0] == 255) & (im[..., 1] == 40)).mean()

        assert outline_share(small) > 2 * outline_share(large)

    def test_frame_not_covering(self, tmp_path):
        far = gpd.GeoDataFrame(
            {"candidate_id": ["far"]}, geometry=[box(0, 0, 100, 100)], crs="EPSG:32608"
        )
        res = build_evidence(far, _frames(), tmp_path)
        assert res.loc[0, "n_frames"] == 0 and res.loc[0, "animation_path"] is None

    def test_bad_frames(self, tmp_path):
        cands = _candidates().iloc[:1]
        with pytest.raises(InputError, match="frame asks for bands"):
            build_evidence(cands, [ImageFrame("x", S2, bands=(9,))], tmp_path)
        junk = tmp_path / "junk.tif"
        junk.write_text("no raster")
        with pytest.raises(InputError, match=r"junk\.tif: cannot be opened"):
            build_evidence(cands, [ImageFrame("x", junk)], tmp_path)
        bad = cands.copy()
        bad["series_json"] = ["{not json"]
        with pytest.raises(InputError, match="series_json is not valid"):
            build_evidence(bad, [], tmp_path)
