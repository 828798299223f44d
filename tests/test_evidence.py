"""Review evidence on real Sentinel-2 / Landsat-8 chips of the Peel Plateau (Nitze et al. 2024)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from PIL import Image
from shapely.geometry import box
from tests.conftest import SHARED_DATA

from thawdetect.core.errors import InputError
from thawdetect.core.plugin_api.detector import ImageFrame, TimeSeries
from thawdetect.core.review.evidence import (
    _HEADER_PX as HEADER_PX,
)
from thawdetect.core.review.evidence import (
    CHIP_SIZE_PX,
    _axis_label,
    _SeriesFigure,
    build_evidence,
    cut_chip,
    ensure_evidence,
    hillshade,
    series_legend,
    write_spec,
)

DATA = SHARED_DATA
PEEL = DATA / "rts_labeling_intercomparison_nitze2024" / "01_Setup" / "Peel" / "data"
LABELS = DATA / "rts_labeling_intercomparison_nitze2024" / "02_UserResults" / "#01"
S2 = PEEL / "S2_20210821T210019_20210821T210020_T08WMA.tif"
L8 = PEEL / "L8_LC08_139232_20210721.tif"

needs_shared = pytest.mark.usefixtures("shared_data")  # real data; missing data fails the session


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


@needs_shared
class TestBuildEvidence:
    def test_chips_gif_and_plot_content(self, tmp_path):
        res = build_evidence(_candidates(), _frames(), tmp_path, buffer_m=300)
        assert res["candidate_id"].tolist() == ["it01-0001", "it01-0002", "it01-0003"]
        assert (res["n_frames"] == 3).all()
        for _, row in res.iterrows():
            sizes = set()
            for p in row["frame_paths"]:
                im = np.asarray(Image.open(p).convert("RGB"))[HEADER_PX:]  # below the header
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
        # the legend names the peak-to-peak amplitude A = 2·sqrt(8² + 3²) = 17.1 mm
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


# -- generated scene: runs everywhere ---------------------------------------------------------

UTM = "EPSG:32647"


def _tif(path: Path, data: np.ndarray, res: float = 30.0, crs: str = UTM) -> Path:
    import rasterio
    from affine import Affine

    data = data[None] if data.ndim == 2 else data
    profile = {
        "driver": "GTiff",
        "dtype": "float32",
        "count": data.shape[0],
        "width": data.shape[2],
        "height": data.shape[1],
        "crs": crs,
        "transform": Affine(res, 0, 500_000, 0, -res, 4_200_000),
        "nodata": float("nan"),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data.astype("float32"))
    return path


@pytest.fixture
def insar_scene(tmp_path):
    n = 120
    yy, xx = np.mgrid[0:n, 0:n].astype("float32")
    rate = np.random.default_rng(0).normal(0, 3, (n, n)).astype("float32")
    disk = (yy - 60) ** 2 + (xx - 60) ** 2 <= 16
    rate[disk] = -80.0
    rate[:, :52] = np.nan  # decorrelated strip west of the slump
    dem = 4000 + 8.0 * xx + 20 * np.sin(yy / 6)  # relief for the hillshade
    disp = np.stack([rate * t for t in (0.0, 0.5, 1.0, 1.5)])
    paths = {
        "rate": _tif(tmp_path / "rate.tif", rate),
        "disp": _tif(tmp_path / "disp.tif", disp),
        "dem": _tif(tmp_path / "dem.tif", dem),
    }
    x0, y0 = 500_000 + 56 * 30, 4_200_000 - 65 * 30
    cands = gpd.GeoDataFrame(
        {"candidate_id": ["it01-0001"], "series_json": [_series().to_json()]},
        geometry=[box(x0, y0, x0 + 9 * 30, y0 + 9 * 30)],
        crs=UTM,
    )
    frames = [ImageFrame("LOS rate", paths["rate"], bands=(1,), value_range=(-100.0, 100.0),
                         units="mm/yr", date="2018-01-03 to 2020-04-10", source="test",
                         group="maps")]  # fmt: skip
    for i, d in enumerate(["2018-01-03", "2018-07-01", "2019-01-01", "2019-07-01"], start=1):
        frames.append(ImageFrame("cumulative LOS displacement", paths["disp"], bands=(i,),
                                 value_range=(-150.0, 150.0), units="mm", date=d,
                                 source="test", group="timelapse"))  # fmt: skip
    return cands, frames, paths


class TestDecisionReady:
    def test_value_panel(self, insar_scene, tmp_path):
        cands, frames, paths = insar_scene
        res = build_evidence(cands, frames, tmp_path / "ev", dem=paths["dem"])
        row = res.iloc[0]
        assert row["n_frames"] == 5
        assert set(row["animation_paths"]) == {"timelapse"}  # one map is no time-lapse
        assert row["animation_path"].endswith("timelapse.gif")
        assert Image.open(row["animation_path"]).n_frames == 4
        names = [Path(p).name for p in row["frame_paths"]]
        assert names[1] == "frame_02_cumulative_LOS_displacement_2018-01-03.png"
        im = np.asarray(Image.open(row["frame_paths"][0]).convert("RGB")).astype(int)
        chip = im[HEADER_PX : HEADER_PX + CHIP_SIZE_PX]
        # the west strip is NaN: hillshade shows through (grey, varying, never black)
        west = chip[:150, :20]
        assert west.min() > 40 and np.ptp(west.mean(axis=2)) >= 3
        assert (np.abs(west[..., 0] - west[..., 2]) < 3).all()  # grey
        # the slump (-80 mm/yr on a ±100 stretch) is red, the outline is drawn
        mid = chip[CHIP_SIZE_PX // 2 - 3 : CHIP_SIZE_PX // 2 + 3, CHIP_SIZE_PX // 2]
        assert (mid[:, 0] > mid[:, 2] + 60).all()
        red = (chip[..., 0] == 255) & (chip[..., 1] == 40) & (chip[..., 2] == 40)
        assert red.sum() > 50
        # colour bar under the chip: the RdBu ends (red left, blue right)
        bar = im[HEADER_PX + CHIP_SIZE_PX + 4 + 3, :]
        assert bar[10, 0] > bar[10, 2] + 50 and bar[-11, 2] > bar[-11, 0] + 50
        # scale bar: a black bar at the chip's lower left
        assert (chip[-12:, 5:40] < 30).all(axis=2).any()

    def test_without_dem_nodata_is_light_grey(self, insar_scene, tmp_path):
        cands, frames, _ = insar_scene
        chip = cut_chip(frames[0], cands.geometry.iloc[0], UTM, buffer_m=300)
        west = chip[HEADER_PX : HEADER_PX + 150, :20]
        assert (west == (214, 214, 214)).all()

    def test_stretch_is_fixed_across_candidates(self, insar_scene, tmp_path):
        cands, _, paths = insar_scene
        frame = ImageFrame("amp", paths["rate"], bands=(1,), units="mm")  # no value_range given
        a = cut_chip(frame, cands.geometry.iloc[0], UTM)
        b = cut_chip(frame, cands.geometry.iloc[0].buffer(300), UTM)
        # one raster-wide stretch: the colour bars are identical whatever the chip
        footer_a, footer_b = a[-30:], b[-30:]
        np.testing.assert_array_equal(footer_a, footer_b)

    def test_series_legend_is_peak_to_peak(self, tmp_path):
        ts = _series()  # c = 8, d = 3: A = 2·sqrt(73) = 17.1 mm (MintPy's amplitude: 8.5)
        assert series_legend(ts)[1] == "trend + seasonal, A = 17.1 mm peak-to-peak"
        path = _SeriesFigure().draw(ts, tmp_path / "s.png", "candidate c1")
        im = np.asarray(Image.open(path).convert("RGB")).astype(int)
        assert im.shape[:2] == (320, 640)
        red = (im[..., 0] > 200) & (im[..., 1] < 80) & (im[..., 2] < 80)
        blue = (im[..., 2] > 130) & (im[..., 0] < 60)
        assert red.sum() > 300 and blue.sum() > 300  # model curve and observations drawn
        # the y label is split so it fits the plot's height
        assert _axis_label("LOS displacement (mm), + towards the satellite") == [
            "LOS displacement (mm),",
            "+ towards the satellite",
        ]

    def test_parallel_equals_serial(self, insar_scene, tmp_path):
        cands, frames, paths = insar_scene
        many = gpd.GeoDataFrame(
            {"candidate_id": [f"c{i:02d}" for i in range(16)], "series_json": None},
            geometry=[cands.geometry.iloc[0].buffer(30 * i) for i in range(16)],
            crs=UTM,
        )
        one = build_evidence(many, frames[:2], tmp_path / "one", dem=paths["dem"], workers=1)
        two = build_evidence(many, frames[:2], tmp_path / "two", dem=paths["dem"], workers=2)
        assert one["candidate_id"].tolist() == two["candidate_id"].tolist()
        for a, b in zip(one["frame_paths"], two["frame_paths"], strict=True):
            for pa, pb in zip(a, b, strict=True):
                np.testing.assert_array_equal(
                    np.asarray(Image.open(pa)), np.asarray(Image.open(pb))
                )

    def test_lazy_draws_on_first_show(self, insar_scene, tmp_path):
        from thawdetect.core.run.ledger import Ledger

        cands, frames, paths = insar_scene
        run = tmp_path / "run"
        c = cands.assign(iteration=1, status="pending")
        with Ledger(run, crs=UTM).transaction() as t:
            t.write("candidates", c)
        out = run / "iterations" / "01" / "evidence"
        write_spec(out, frames, buffer_m=300, dem=paths["dem"], crs=UTM)
        assert not (out / "it01-0001").exists()
        files = ensure_evidence(run, "it01-0001")
        assert {p.name for p in files} >= {"timelapse.gif", "series.png"}
        assert ensure_evidence(run, "it01-0001") == files  # second show: nothing redrawn

    def test_hillshade_lit_from_northwest(self):
        _, xx = np.mgrid[0:20, 0:20].astype(float)
        east_up = hillshade(5.0 * xx, 1.0, 1.0)  # rises to the east: faces west, toward the sun
        west_up = hillshade(-5.0 * xx, 1.0, 1.0)
        assert east_up.mean() > west_up.mean()
        north_up = hillshade(-5.0 * np.mgrid[0:20, 0:20][0].astype(float), 1.0, 1.0)
        south_up = hillshade(5.0 * np.mgrid[0:20, 0:20][0].astype(float), 1.0, 1.0)
        # rows run south: -5·row rises to the north, so that slope faces south, away from the sun
        assert south_up.mean() > north_up.mean()


# -- no fixed cost per batch (issue 25) -------------------------------------------------------


def test_default_colour_tables_are_matplotlibs():
    import matplotlib

    from thawdetect.core.review._builtin_luts import BUILTIN_LUTS
    from thawdetect.core.review._styles import _lut

    for name in BUILTIN_LUTS:
        ref = (matplotlib.colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255).round()
        assert np.array_equal(_lut(name), ref.astype(np.uint8)), name


def _scattered_scene(tmp: Path, n: int) -> tuple[gpd.GeoDataFrame, list[ImageFrame]]:
    import rasterio
    from affine import Affine

    size = 1024
    rng = np.random.default_rng(3)
    rate = rng.normal(0, 4, (size, size)).astype("float32")
    rate[rng.random((size, size)) < 0.03] = np.nan
    path = tmp / "rate.tif"
    profile = dict(driver="GTiff", dtype="float32", count=1, width=size, height=size,
                   crs="EPSG:32647", transform=Affine(30, 0, 500_000, 0, -30, 4_200_000),
                   nodata=float("nan"), tiled=True, blockxsize=256, blockysize=256,
                   compress="deflate")  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(rate, 1)
    rows, cols = rng.integers(20, size - 20, n), rng.integers(20, size - 20, n)
    geoms = [
        box(500_000 + c * 30, 4_200_000 - (r + 5) * 30, 500_000 + (c + 5) * 30, 4_200_000 - r * 30)
        for r, c in zip(rows, cols, strict=True)
    ]
    cands = gpd.GeoDataFrame(
        {"candidate_id": [f"it01-{i:04d}" for i in range(n)], "series_json": [None] * n},
        geometry=geoms,
        crs="EPSG:32647",
    )
    frames = [ImageFrame("LOS rate", path, bands=(1,), value_range=(-20, 20), units="mm/yr")]
    return cands, frames


@pytest.mark.parametrize("n", [3, 40])
def test_chips_are_the_same_read_once_or_per_chip(tmp_path, monkeypatch, n):
    """Scattered candidates are read per chip, dense ones in one shared read: same pixels."""
    from thawdetect.core.review import _reading

    cands, frames = _scattered_scene(tmp_path, n)
    out = {}
    for name, share in (("shared", 0.0), ("per_chip", 2.0)):
        monkeypatch.setattr(_reading, "SHARED_READ_MIN_BLOCKS", share)
        res = build_evidence(cands, frames, tmp_path / name, buffer_m=300, workers=1)
        out[name] = [np.asarray(Image.open(p)) for ps in res["frame_paths"] for p in ps]
    assert len(out["shared"]) == n
    for a, b in zip(out["shared"], out["per_chip"], strict=True):
        assert np.array_equal(a, b)


def test_blocks_touched_decides_the_shared_read():
    from thawdetect.core.review._reading import _blocks_touched

    # two small windows in opposite corners of a 4 × 4-block union: 2 of 16 blocks
    wins = [(0, 10, 0, 10), (1000, 1010, 1000, 1010)]
    assert _blocks_touched(wins, (256, 256), (0, 1010, 0, 1010)) == 2 / 16
    # a strip layout (one row per block): every row of the union read anyway
    assert _blocks_touched([(0, 600, 0, 10)], (1, 2000), (0, 600, 0, 2000)) == 1.0


def test_drawing_evidence_does_not_import_matplotlib(tmp_path):
    """matplotlib took 0.1-0.5 s to import in every worker, for two colour tables."""
    import subprocess
    import sys

    cands, _ = _scattered_scene(tmp_path, 2)
    cands.to_file(tmp_path / "c.gpkg")
    code = (
        "import sys, geopandas as gpd\n"
        "from thawdetect.core.plugin_api.detector import ImageFrame\n"
        "from thawdetect.core.review.evidence import build_evidence\n"
        f"c = gpd.read_file({str(tmp_path / 'c.gpkg')!r})\n"
        f"f = [ImageFrame('LOS rate', {str(tmp_path / 'rate.tif')!r}, bands=(1,), units='mm/yr'),\n"
        f"     ImageFrame('A', {str(tmp_path / 'rate.tif')!r}, bands=(1,), units='mm',\n"
        "                colormap='viridis')]\n"
        f"build_evidence(c, f, {str(tmp_path / 'out')!r}, workers=1)\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
