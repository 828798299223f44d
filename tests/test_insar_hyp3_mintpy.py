"""Input (c): a HyP3 stack the test makes, through the REAL MintPy smallbaselineApp."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS

from thawdetect.core.errors import InputError
from thawdetect.core.grid import GridSpec
from thawdetect.core.plugin_api.context import IterationContext
from thawdetect.core.plugin_api.host import PluginHost
from thawdetect.plugins.insar_sbas.config import InsarSbasConfig
from thawdetect.plugins.insar_sbas.hyp3 import write_mintpy_template
from thawdetect.plugins.insar_sbas.synthetic import acquisition_dates, model_series_m
from thawdetect.plugins.insar_sbas.synthetic_hyp3 import write_hyp3_stack

GRID = GridSpec(CRS.from_epsg(32647), Affine(30, 0, 610000, 0, -30, 4200000), 36, 36)
RATE, AMP = -40.0, 16.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    pytest.importorskip("mintpy")
    pytest.importorskip("osgeo")
    out = tmp_path_factory.mktemp("hyp3")
    dates = acquisition_dates(24, start=date(2019, 1, 5), step_days=36)
    yy, xx = np.mgrid[0:36, 0:36]
    slide = (yy - 22) ** 2 + (xx - 22) ** 2 <= 36
    rate = np.where(slide, RATE, 0.0)
    amp = np.where(slide, AMP, 0.0)
    disp = model_series_m(dates, rate, amp, phase_rad=-0.6)
    write_hyp3_stack(out, dates, disp, GRID, connections=2)
    return out, slide


def test_template_from_config(stack, tmp_path):
    hyp3_dir, _ = stack
    cfg = InsarSbasConfig(hyp3_dir=hyp3_dir)
    text = write_mintpy_template(cfg, hyp3_dir, tmp_path / "t.txt").read_text()
    for line in (
        "mintpy.load.processor = hyp3",
        "mintpy.network.tempBaseMax = 60",
        "mintpy.network.perpBaseMax = 150",
        "mintpy.network.connNumMax = 5",
        "mintpy.network.minCoherence = 0.5",
        "mintpy.residualRMS.cutoff = 2.5",
        "mintpy.timeFunc.periodic = 1",
    ):
        assert line in text
    assert f"mintpy.load.unwFile = {hyp3_dir.resolve()}/*/*unw_phase*.tif" in text


def test_not_a_hyp3_stack(tmp_path):
    (tmp_path / "x.tif").write_bytes(b"")
    with pytest.raises(InputError, match=r"not a HyP3 stack: no .*unw_phase"):
        write_mintpy_template(InsarSbasConfig(hyp3_dir=tmp_path), tmp_path, tmp_path / "t.txt")


def test_smallbaselineapp_recovers_planted_rate_and_amplitude(stack, tmp_path):
    import h5py

    hyp3_dir, slide = stack
    host = PluginHost()
    region = host.region("qilian")
    cfg = InsarSbasConfig(
        hyp3_dir=hyp3_dir,
        mintpy={"max_temporal_baseline_days": 80, "reference_yx": (4, 4)},
        schedule=[{"abs_rate_mm_yr": 20}],
        min_pixels=4,
    )
    ctx = IterationContext.standalone(region, tmp_path, host=host)
    cands = host.detector("insar_sbas")(cfg).propose(ctx)
    work = tmp_path / "insar_sbas_mintpy"
    assert (work / "timeseries.h5").exists() and (work / "thawdetect_mintpy.txt").exists()
    assert len(cands) == 1
    c = cands.iloc[0]
    assert c["mean_rate_mm_yr"] == pytest.approx(RATE, abs=3)
    assert c["mean_seasonal_amplitude_pp_mm"] == pytest.approx(AMP, abs=2)
    assert c["pixel_count"] == pytest.approx(slide.sum(), abs=4)
    # MintPy's own velocity step (periodic 1.0) agrees with our fit of its time series
    with h5py.File(work / "velocity.h5") as f:
        v_mm = f["velocity"][()] * 1000
        half_amp_mm = f["annualAmplitude"][()] * 1000
    rate = tmp_path / "it1" / "rate_mm_yr.tif"
    import rasterio

    with rasterio.open(rate) as src:
        ours = src.read(1)
    ok = np.isfinite(ours) & (v_mm != 0)
    np.testing.assert_allclose(ours[ok], v_mm[ok], atol=1e-3)
    assert np.median(2 * half_amp_mm[slide]) == pytest.approx(AMP, abs=2)
