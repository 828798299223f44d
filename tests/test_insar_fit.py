"""Seasonal fit: recovers planted parameters, handles NaN, and agrees with MintPy."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS

from thawdetect.core.errors import InputError
from thawdetect.core.grid import GridSpec
from thawdetect.plugins.insar_sbas.seasonal_fit import read_timeseries_fit
from thawdetect.plugins.insar_sbas.synthetic import (
    acquisition_dates,
    model_series_m,
    write_timeseries_h5,
)
from thawdetect.plugins.insar_sbas.timefunc import fit_seasonal

GRID = GridSpec(CRS.from_epsg(32647), Affine(30, 0, 500000, 0, -30, 4200000), 40, 30)


def _planted(rng: np.random.Generator, shape=(30, 40)):
    rate = rng.uniform(-80, 80, shape)
    amp = rng.uniform(0, 30, shape)
    phase = rng.uniform(-np.pi, np.pi, shape)
    return rate, amp, phase


def test_fit_recovers_planted_parameters_in_mm():
    rng = np.random.default_rng(0)
    dates = acquisition_dates(70)
    rate, amp, phase = _planted(rng)
    ts = model_series_m(dates, rate, amp, phase)
    fit = fit_seasonal(ts, dates, unit="m", chunk_pixels=1000)
    np.testing.assert_allclose(fit.rate_mm_yr, rate, atol=1e-6)
    np.testing.assert_allclose(fit.seasonal_amplitude_pp_mm, amp, atol=1e-6)
    assert np.nanmax(fit.residual_rms_mm) < 1e-6
    # phase is MintPy's atan2(c, d): the seasonal term is (A/2)·sin(ωt + phase)
    big = amp > 1
    dphi = np.angle(np.exp(1j * (fit.phase_rad[big] - phase[big])))
    assert np.abs(dphi).max() < 1e-6


def test_fit_nan_epochs_and_too_few_epochs_masked():
    rng = np.random.default_rng(1)
    dates = acquisition_dates(40)
    rate, amp, phase = _planted(rng, (5, 6))
    ts = model_series_m(dates, rate, amp, phase)
    ts[::3, 0, 0] = np.nan  # a third of the epochs missing: still fitted exactly
    ts[5:, 1, 1] = np.nan  # only 5 epochs left: masked
    ts[:, 2, 2] = np.nan  # decorrelated everywhere: masked
    fit = fit_seasonal(ts, dates, min_epochs=10)
    assert fit.rate_mm_yr[0, 0] == pytest.approx(rate[0, 0], abs=1e-6)
    assert fit.seasonal_amplitude_pp_mm[0, 0] == pytest.approx(amp[0, 0], abs=1e-6)
    assert fit.valid_epochs[0, 0] == 40 - 14
    assert np.isnan(fit.rate_mm_yr[1, 1]) and np.isnan(fit.rate_mm_yr[2, 2])
    assert np.isfinite(fit.rate_mm_yr).sum() == 28


def test_fewer_epochs_than_parameters_is_one_line_error():
    dates = acquisition_dates(4)
    with pytest.raises(InputError, match=r"^ts\.h5: time series has 4 epochs, fewer than"):
        fit_seasonal(np.zeros((4, 2, 2)), dates, source="ts.h5")


def test_dates_must_match_epochs():
    with pytest.raises(InputError, match="3 dates for 6 epochs"):
        fit_seasonal(np.zeros((6, 2)), acquisition_dates(3))


def test_agrees_with_mintpy_timeseries2velocity(tmp_path):
    """Same file through MintPy `timeseries2velocity --periodic 1.0`.

    Rate equal and A = 2·annualAmplitude, both within 1e-6 m.
    """
    pytest.importorskip("mintpy")
    import h5py
    from mintpy.cli import timeseries2velocity

    rng = np.random.default_rng(2)
    dates = acquisition_dates(60, start=date(2019, 3, 7))
    rate, amp, phase = _planted(rng)
    ts = model_series_m(dates, rate, amp, phase)
    ts += rng.normal(0, 0.004, ts.shape)  # 4 mm noise so the fit is not trivially exact
    ts -= ts[0:1]
    ts -= ts[:, 0:1, 0:1]  # reference pixel (0, 0)
    ts_file = write_timeseries_h5(tmp_path / "timeseries.h5", ts, dates, GRID)
    out = tmp_path / "velocity.h5"
    timeseries2velocity.main([str(ts_file), "--periodic", "1.0", "-o", str(out)])
    with h5py.File(out) as f:
        v_m = f["velocity"][()]
        half_amp_m = f["annualAmplitude"][()]
        assert f.attrs["UNIT"] in ("m/year", b"m/year")

    fit, got_dates, grid, _ = read_timeseries_fit(ts_file, min_epochs=10, chunk_pixels=1000)
    assert got_dates == dates and grid.shape == GRID.shape
    np.testing.assert_allclose(fit.rate_mm_yr / 1000.0, v_m, atol=1e-6)
    np.testing.assert_allclose(fit.seasonal_amplitude_pp_mm / 1000.0, 2 * half_amp_m, atol=1e-6)
    # and both recover the planted rate to within the noise
    assert np.abs(fit.rate_mm_yr - (rate - rate[0, 0]))[1:, 1:].max() < 5
