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


class TestFileFit:
    """The file fit: Dask row blocks on any scheduler, a cache, and epochs appended later."""

    @staticmethod
    def _series(n_epochs: int, seed: int = 3):
        rng = np.random.default_rng(seed)
        dates = acquisition_dates(n_epochs)
        rate, amp, phase = _planted(rng)
        ts = model_series_m(dates, rate, amp, phase) + rng.normal(0, 0.003, (n_epochs, 30, 40))
        ts[:, 5, 7] = np.nan  # no data
        ts[::4, 9, 9] = np.nan  # gaps
        ts -= ts[0:1]
        ts -= np.nan_to_num(ts[:, 0:1, 0:1])
        return ts.astype(np.float32), dates

    def test_same_result_on_every_scheduler_and_as_the_in_memory_fit(self, tmp_path):
        from thawdetect.core.compute import use_scheduler

        ts, dates = self._series(40)
        path = write_timeseries_h5(tmp_path / "ts.h5", ts, dates, GRID)
        fits = {}
        for spec in ("synchronous", "threads", "processes"):
            with use_scheduler(spec):
                fits[spec] = read_timeseries_fit(path, chunk_pixels=1000)[0]
        for spec in ("threads", "processes"):
            for name in ("rate_mm_yr", "seasonal_amplitude_pp_mm", "residual_rms_mm"):
                np.testing.assert_array_equal(
                    getattr(fits[spec], name), getattr(fits["synchronous"], name)
                )
        mem = fit_seasonal(ts[:, 1:, :], dates, min_epochs=10)  # row 0 holds the reference
        np.testing.assert_allclose(fits["threads"].rate_mm_yr[1:], mem.rate_mm_yr, atol=1e-6)
        np.testing.assert_allclose(
            fits["threads"].residual_rms_mm[1:], mem.residual_rms_mm, atol=1e-5
        )
        assert np.isnan(fits["threads"].rate_mm_yr[5, 7])

    def test_new_epochs_update_the_fit_instead_of_refitting(self, tmp_path):
        from thawdetect.plugins.insar_sbas.seasonal_fit import fit_timeseries_file

        ts, dates = self._series(50)
        cache = tmp_path / "cache"
        first = write_timeseries_h5(tmp_path / "a" / "ts.h5", ts[:40], dates[:40], GRID)
        a = fit_timeseries_file(first, cache_dir=cache, chunk_pixels=1000)
        assert a.status == "computed" and a.new_epochs == 40
        again = fit_timeseries_file(first, cache_dir=cache, chunk_pixels=1000)
        assert again.status == "cached" and again.new_epochs == 0
        np.testing.assert_array_equal(again.fit.rate_mm_yr, a.fit.rate_mm_yr)
        # MintPy wrote 10 more epochs into the same file: only those are read
        grown = write_timeseries_h5(tmp_path / "a" / "ts.h5", ts, dates, GRID)
        b = fit_timeseries_file(grown, cache_dir=cache, chunk_pixels=1000)
        assert b.status == "updated" and b.new_epochs == 10 and "10 new epochs" in b.note
        fresh = fit_timeseries_file(grown, cache_dir=None, chunk_pixels=1000)
        for name in ("rate_mm_yr", "seasonal_amplitude_pp_mm", "residual_rms_mm"):
            np.testing.assert_allclose(
                getattr(b.fit, name), getattr(fresh.fit, name), rtol=0, atol=1e-9
            )
        # a re-inversion changed earlier epochs: everything is refitted
        changed = ts.copy()
        changed[1:] += 0.001
        write_timeseries_h5(tmp_path / "a" / "ts.h5", changed, dates, GRID)
        c = fit_timeseries_file(grown, cache_dir=cache, chunk_pixels=1000)
        assert c.status == "recomputed" and c.new_epochs == 50

    @pytest.mark.parametrize(
        ("order", "problem"),
        [
            ([0, 2, 1, 3], "epochs go backwards: 2018-01-15 after 2018-01-27 (epoch 3)"),
            ([0, 1, 1, 3], "epochs overlap: 2018-01-15 appears twice (epoch 3)"),
        ],
    )
    def test_epochs_backwards_or_overlapping_are_one_line(self, tmp_path, order, problem):
        ts, dates = self._series(12)
        bad = [dates[i] for i in order] + dates[4:]
        path = write_timeseries_h5(tmp_path / "ts.h5", ts, bad, GRID)
        with pytest.raises(InputError) as exc:
            read_timeseries_fit(path)
        assert str(exc.value).startswith(f"{path}: {problem}") and "\n" not in str(exc.value)


def test_detector_updates_its_fit_when_the_stack_grows(tmp_path):
    """What the engine relies on: the same run directory, a new iteration, a grown file."""
    import json

    from thawdetect.core.plugin_api.context import IterationContext
    from thawdetect.core.plugin_api.host import PluginHost
    from thawdetect.plugins.insar_sbas.config import InsarSbasConfig
    from thawdetect.plugins.insar_sbas.synthetic import make_scene, write_scene

    scene = make_scene(seed=2, size_px=64, n_epochs=36, n_slides=3, n_adjacent_pairs=0)
    paths = write_scene(scene, tmp_path / "scene")
    write_timeseries_h5(
        paths["timeseries"], scene.ts_m[:30], scene.dates[:30], scene.grid, ref_yx=(2, 2)
    )
    host = PluginHost()
    cfg = InsarSbasConfig(
        timeseries_file=paths["timeseries"],
        coherence_file=paths["coherence"],
        schedule=[{"abs_rate_mm_yr": 10}],
    )
    status = []
    for it, n in ((1, 30), (2, 30), (3, 36)):
        if n == 36:
            write_timeseries_h5(
                paths["timeseries"], scene.ts_m, scene.dates, scene.grid, ref_yx=(2, 2)
            )
        ctx = IterationContext.standalone(
            host.region("qilian"), tmp_path / "run", host=host, iteration=it
        )
        ctx.work_dir.mkdir(parents=True, exist_ok=True)
        host.detector("insar_sbas")(cfg).propose(ctx)
        status.append(json.loads((ctx.work_dir / "thresholds.json").read_text())["seasonal_fit"])
    assert [s["status"] for s in status] == ["computed", "cached", "updated"]
    assert status[2]["epochs"] == 36 and status[2]["new_epochs"] == 6


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_slab_sums_match_the_per_value_definition(dtype):
    """The fast path (Σ y² finite and positive: every epoch there) and the per-value path give
    the sums of the definition: an epoch counts where finite, never in an all-zero pixel."""
    from thawdetect.plugins.insar_sbas.seasonal_fit import _IU, _slab_sums
    from thawdetect.plugins.insar_sbas.timefunc import design_matrix

    rng = np.random.default_rng(5)
    dates = acquisition_dates(24)
    g = design_matrix(dates, 1.0)
    raw = rng.normal(0, 0.02, (24, 60)).astype(dtype)
    raw[:, 1] = 0.0  # MintPy no-data
    raw[3, 2] = np.nan  # one gap
    raw[::2, 3] = np.nan  # many gaps
    raw[5, 4] = np.inf  # not finite
    raw[:, 5] = np.nan  # nothing
    raw[7, 6] = 0.0  # a valid zero
    raw[:, 7] = 0.0
    raw[4, 7] = np.nan  # zeros and a gap: the zeros are data
    if dtype == np.float64:
        raw[:, 8] = 1e-200  # every epoch there, but Σ y² underflows to 0
    got = _slab_sums(raw, g)

    valid = np.isfinite(raw) & raw.any(axis=0)
    y = np.where(valid, raw, 0.0).astype(np.float64)
    w = valid.astype(np.float64)
    nfull = np.einsum("ep,ei,ej->ijp", w, g, g)[_IU[0], _IU[1]]
    np.testing.assert_array_equal(got["n"], valid.sum(axis=0))
    np.testing.assert_allclose(got["N"], nfull, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got["r"], g.T @ y, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(got["q"], (y * y).sum(axis=0), rtol=1e-12, atol=1e-300)
    assert got["n"][1] == 0 and got["n"][5] == 0 and got["n"][7] == 23 and got["n"][6] == 24
    if dtype == np.float64:
        assert got["n"][8] == 24


def _rechunked(src, dst, chunks):
    """A copy of the MintPy file ``src`` with ``timeseries`` stored in ``chunks`` (None:
    contiguous)."""
    import h5py

    with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
        for k, v in f.attrs.items():
            g.attrs[k] = v
        for name in f:
            data = f[name][()]
            g.create_dataset(name, data=data, chunks=chunks if name == "timeseries" else None)
    return dst


def test_chunk_windows_cover_the_grid_once_each_within_one_band_of_chunks(tmp_path):
    """MintPy writes ``chunks=True``: the fit reads window by window, each inside one band of
    chunk rows and whole chunks wide, together covering every pixel exactly once."""
    import h5py

    from thawdetect.plugins.insar_sbas.seasonal_fit import _windows

    ts, dates = TestFileFit._series(20)
    path = write_timeseries_h5(tmp_path / "ts.h5", ts, dates, GRID)
    for chunks in [(3, 7, 9), (20, 1, 40), (1, 30, 5), None]:
        f2 = _rechunked(path, tmp_path / f"c{chunks}.h5".replace(" ", ""), chunks)
        with h5py.File(f2, "r") as f:
            ds = f["timeseries"]
            for r0, r1 in [(0, 30), (4, 19)]:
                seen = np.zeros((30, 40), int)
                for a, b, c, d in _windows(ds, r0, r1):
                    seen[a:b, c:d] += 1
                    if chunks:
                        assert a // chunks[1] == (b - 1) // chunks[1]  # one band of chunk rows
                        assert c % chunks[2] == 0
                assert (seen[r0:r1] == 1).all() and seen.sum() == (r1 - r0) * 40


@pytest.mark.parametrize("cache", [False, True])
def test_fit_is_the_same_whatever_the_files_chunks(tmp_path, cache):
    """Chunked (odd chunks), MintPy's auto chunks and contiguous storage give the same fit, with
    the cache's row files and without, and an update of a chunked file too."""
    from thawdetect.plugins.insar_sbas.seasonal_fit import fit_timeseries_file

    ts, dates = TestFileFit._series(44)
    base = write_timeseries_h5(tmp_path / "base.h5", ts, dates, GRID)
    ref = fit_timeseries_file(base, chunk_pixels=1000).fit
    for chunks in [(3, 7, 9), (5, 13, 40), None]:
        f2 = _rechunked(base, tmp_path / f"c{chunks}.h5".replace(" ", ""), chunks)
        got = fit_timeseries_file(
            f2, chunk_pixels=100, cache_dir=tmp_path / "cache" if cache else None
        ).fit
        for name in ("rate_mm_yr", "seasonal_amplitude_pp_mm", "residual_rms_mm", "valid_epochs"):
            np.testing.assert_allclose(getattr(got, name), getattr(ref, name), rtol=0, atol=1e-9)
    if cache:  # 40 epochs cached, then 4 appended to a chunked file: updated, same fit
        first = write_timeseries_h5(tmp_path / "g" / "raw.h5", ts[:40], dates[:40], GRID)
        path = _rechunked(first, tmp_path / "g" / "ts.h5", (3, 7, 9))
        assert fit_timeseries_file(path, cache_dir=tmp_path / "c2", chunk_pixels=100).status == (
            "computed"
        )
        _rechunked(base, path, (3, 7, 9))
        upd = fit_timeseries_file(path, cache_dir=tmp_path / "c2", chunk_pixels=100)
        assert upd.status == "updated" and upd.new_epochs == 4
        np.testing.assert_allclose(upd.fit.rate_mm_yr, ref.rate_mm_yr, rtol=0, atol=1e-9)
        assert not list((tmp_path / "c2").glob("*.part*"))  # nothing half-written left


def test_label_means_equal_each_labels_own_window_on_any_chunking(tmp_path):
    """The candidates' mean series, read chunk tile by chunk tile in one pass, equal each
    label's own windowed read (NaN-aware, all-zero pixels left out), whatever the file's
    chunks; a label with no valid pixel gives NaN, one absent from the grid too."""
    from scipy import ndimage

    from thawdetect.plugins.insar_sbas.mintpy_h5 import read_label_means, read_timeseries_mean

    ts, dates = TestFileFit._series(20)
    ts[:, 20, 30] = 0.0  # MintPy's "no data": 0 at every epoch
    ts[:, 21, 31] = np.nan
    labels = np.zeros((30, 40), dtype=np.int32)
    labels[2:6, 3:12] = 1  # across chunk tiles
    labels[5, 7] = 2  # a one-pixel label: the no-data pixel only
    labels[8:11, 8:11] = 3  # holds the gaps at (9, 9)
    labels[20:22, 30:32] = 4  # the all-zero and the NaN pixel, and two valid ones
    labels[21, 31] = labels[20, 30] = 5  # nothing valid
    labels[25:30, 0:40:3] = 7  # scattered parts; label 6 is absent
    path = write_timeseries_h5(tmp_path / "ts.h5", ts, dates, GRID)
    for chunks in [(3, 7, 9), (20, 1, 40), (1, 30, 5), None]:
        f2 = _rechunked(path, tmp_path / f"c{chunks}.h5".replace(" ", ""), chunks)
        got = read_label_means(f2, labels, 8)
        assert got.shape == (8, 20)
        for lab, sl in enumerate(ndimage.find_objects(labels, max_label=8), start=1):
            if sl is None:
                assert np.isnan(got[lab - 1]).all()
                continue
            want = read_timeseries_mean(f2, sl[0], sl[1], labels[sl] == lab)
            np.testing.assert_allclose(got[lab - 1], want, rtol=1e-12, equal_nan=True)
        assert np.isnan(got[1]).all() and np.isnan(got[4]).all()
        assert np.isfinite(got[3]).all()
    with pytest.raises(ValueError, match="labels"):
        read_label_means(path, labels[:-1], 8)
