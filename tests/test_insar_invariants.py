"""insar_sbas run invariants (issue 25): computed once per run, reused by later iterations and
resumes, recomputed when an input changes, and never changing a result."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from tests.test_insar_fit import _rechunked

from thawdetect.core.plugin_api.context import IterationContext
from thawdetect.core.plugin_api.host import PluginHost
from thawdetect.plugins.insar_sbas.config import InsarSbasConfig
from thawdetect.plugins.insar_sbas.synthetic import make_scene, write_scene, write_timeseries_h5


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Path]]:
    s = make_scene(seed=4, size_px=96, n_epochs=30, n_slides=4, n_adjacent_pairs=0)
    return s, write_scene(s, tmp_path_factory.mktemp("scene"))


def _config(paths: dict[str, Path], **kw: Any) -> InsarSbasConfig:
    return InsarSbasConfig(
        timeseries_file=paths["timeseries"],
        coherence_file=paths["coherence"],
        dem_file=paths["dem"],
        **kw,
    )


def _iterate(run: Path, cfg: InsarSbasConfig, its: range, host: PluginHost) -> list[Any]:
    out = []
    for it in its:
        ctx = IterationContext.standalone(host.region("qilian"), run, host=host, iteration=it)
        c = _config_at(cfg, it)
        out.append(host.detector("insar_sbas")(c).propose(ctx))
    return out


def _config_at(cfg: InsarSbasConfig, it: int) -> InsarSbasConfig:
    return cfg.model_copy(update={"schedule_index": min(it - 1, cfg.n_rows - 1)})


class _Counter:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from thawdetect.plugins.insar_sbas import delineation, detector, seasonal_fit
        from thawdetect.plugins.terrain.toolkit import TerrainToolkit

        self.calls: dict[str, int] = {"layers": 0, "stack": 0, "solve": 0, "background": 0}
        for name, owner, attr in (
            ("layers", TerrainToolkit, "layers"),
            ("stack", detector, "_write_displacement_stack"),
            ("solve", seasonal_fit, "_solve_in_slabs"),
            ("background", delineation, "local_background"),
        ):
            monkeypatch.setattr(owner, attr, self._wrap(name, getattr(owner, attr)))

    def _wrap(self, name: str, fn: Any) -> Any:
        def counted(*a: Any, **k: Any) -> Any:
            self.calls[name] += 1
            return fn(*a, **k)

        return counted


def _frame(c: Any) -> str:
    return c.drop(columns="geometry").to_json() + "".join(g.wkb_hex for g in c.geometry)


@pytest.mark.parametrize("method", ["threshold", "grow"])
def test_later_iterations_reuse_the_invariants_and_give_the_same_candidates(
    scene: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    _, paths = scene
    host = PluginHost()
    cfg = _config(paths, delineation=method)
    # reference: every iteration in a run directory of its own (nothing to reuse)
    fresh = [_iterate(tmp_path / f"fresh{it}", cfg, range(it, it + 1), host)[0] for it in (1, 2, 3)]
    counter = _Counter(monkeypatch)
    reused = _iterate(tmp_path / "run", cfg, range(1, 4), host)
    assert [_frame(c) for c in reused] == [_frame(c) for c in fresh]
    assert sum(len(c) for c in reused) > 0
    # once per run: the terrain layers, the displacement stack, the fit's solve, and the
    # large-scale background (grow's seeds and growth, and every candidate's own rate)
    assert counter.calls == {"layers": 1, "stack": 1, "solve": 1, "background": 1}
    statuses = [
        json.loads((tmp_path / "run" / f"it{it}" / "thresholds.json").read_text())["seasonal_fit"]
        for it in (1, 2, 3)
    ]
    assert [s["status"] for s in statuses] == ["computed", "cached", "cached"]
    # every iteration still holds its files: the invariant ones are the same file
    for name in ("displacement_mm.tif", "rate_mm_yr.tif", "seasonal_amplitude_pp_mm.tif"):
        files = [tmp_path / "run" / f"it{it}" / name for it in (1, 2, 3)]
        assert all(os.path.samefile(files[0], f) for f in files[1:])
        for it, f in zip((1, 2, 3), files, strict=True):
            with (
                rasterio.open(f) as a,
                rasterio.open(tmp_path / f"fresh{it}" / f"it{it}" / name) as b,
            ):
                assert np.array_equal(a.read(), b.read(), equal_nan=True)
                assert a.descriptions == b.descriptions
                assert a.tags().get("STRETCH_MM") == b.tags().get("STRETCH_MM")


def test_a_resume_maps_the_kept_fit_and_layers(
    scene: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from thawdetect.plugins.insar_sbas import invariants, seasonal_fit

    _, paths = scene
    host = PluginHost()
    cfg = _config(paths)
    first = _iterate(tmp_path / "run", cfg, range(1, 3), host)
    # a new process: nothing memoised in memory
    monkeypatch.setattr(seasonal_fit, "_DIGESTS", {})
    monkeypatch.setattr(invariants, "_FILE_DIGESTS", {})
    counter = _Counter(monkeypatch)
    again = _iterate(tmp_path / "run", cfg, range(2, 3), host)
    assert _frame(again[0]) == _frame(first[1])
    assert counter.calls == {"layers": 0, "stack": 0, "solve": 0, "background": 0}
    res = seasonal_fit.fit_timeseries_file(
        paths["timeseries"], cache_dir=tmp_path / "run" / "insar_sbas_cache" / "fit"
    )
    assert res.status == "cached" and isinstance(res.fit.rate_mm_yr, np.memmap)
    # read-only: the cache cannot be changed through the returned arrays (and their pages can
    # be dropped from memory between steps without losing anything)
    with pytest.raises(ValueError, match="read-only"):
        res.fit.rate_mm_yr[:] = 0.0
    again = seasonal_fit.fit_timeseries_file(
        paths["timeseries"], cache_dir=tmp_path / "run" / "insar_sbas_cache" / "fit"
    )
    assert np.nanmax(np.abs(again.fit.rate_mm_yr)) > 0


def test_the_kept_fit_equals_a_fresh_one(scene: Any, tmp_path: Path) -> None:
    from thawdetect.plugins.insar_sbas.seasonal_fit import fit_timeseries_file
    from thawdetect.plugins.insar_sbas.timefunc import SeasonalFit

    _, paths = scene
    fresh = fit_timeseries_file(paths["timeseries"], cache_dir=tmp_path / "a")
    kept = fit_timeseries_file(paths["timeseries"], cache_dir=tmp_path / "a")
    uncached = fit_timeseries_file(paths["timeseries"], cache_dir=None)
    assert (fresh.status, kept.status) == ("computed", "cached")
    assert kept.checksum == fresh.checksum != ""
    for name in SeasonalFit.ARRAY_FIELDS:
        a, b = getattr(fresh.fit, name), getattr(kept.fit, name)
        assert np.array_equal(a, b, equal_nan=True), name
        np.testing.assert_allclose(getattr(uncached.fit, name), a, rtol=0, atol=1e-9)
    # other settings are another fit
    other = fit_timeseries_file(paths["timeseries"], cache_dir=tmp_path / "a", min_epochs=20)
    assert other.status == "cached"  # the sums are reused ...
    assert other.new_epochs == 0
    stamp = next((tmp_path / "a").glob("*.solved")) / "stamp.json"
    assert json.loads(stamp.read_text())["min_epochs"] == 20  # ... and solved again


def test_changed_inputs_are_recomputed(scene: Any, tmp_path: Path) -> None:
    s, paths = scene
    host = PluginHost()
    src = tmp_path / "inputs"
    src.mkdir()
    moved = {k: src / p.name for k, p in paths.items() if k != "planted"}
    for k, p in moved.items():
        p.write_bytes(paths[k].read_bytes())
    cfg = _config(moved, schedule=[{"abs_rate_mm_yr": 10}], delineation="grow")  # grow: layers
    run = tmp_path / "run"
    _iterate(run, cfg, range(1, 2), host)
    disp1 = run / "it1" / "displacement_mm.tif"
    # the stack loses its last epoch (a re-inversion)
    write_timeseries_h5(moved["timeseries"], s.ts_m[:29], s.dates[:29], s.grid, ref_yx=(2, 2))
    # a new DEM: the same grid, 100 m higher
    with rasterio.open(moved["dem"]) as ds:
        profile, dem = ds.profile, ds.read(1)
    with rasterio.open(moved["dem"], "w", **profile) as ds:
        ds.write(dem + 100.0, 1)
    _iterate(run, cfg, range(2, 3), host)
    rec = json.loads((run / "it2" / "thresholds.json").read_text())["seasonal_fit"]
    assert rec["status"] == "recomputed" and rec["epochs"] == 29
    with rasterio.open(disp1) as a, rasterio.open(run / "it2" / "displacement_mm.tif") as b:
        assert a.descriptions != b.descriptions  # the last date is another
    assert not os.path.samefile(disp1, run / "it2" / "displacement_mm.tif")
    assert len(list((run / "insar_sbas_cache" / "terrain").iterdir())) == 2


def test_time_lapse_written_by_bands_of_rows_is_the_whole_array_one(
    scene: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The review time-lapse (``displacement_mm.tif``) is written band of rows by band (memory
    a band's, not a frame's 2.3 GB): the same pixels and stretch as computing it whole."""
    import types

    import h5py

    from thawdetect.core.grid import GridSpec
    from thawdetect.plugins.insar_sbas import detector

    s, paths = scene
    ts_file = _rechunked(paths["timeseries"], tmp_path / "ts.h5", (4, 10, 16))  # < the grid
    with h5py.File(ts_file, "r") as f:
        ts = f["timeseries"][()]
    rate = np.where(np.arange(ts.shape[2]) % 7 == 0, np.nan, 1.0) * np.ones(ts.shape[1:])
    p = types.SimpleNamespace(
        dates=s.dates, timeseries_file=ts_file, timeseries_scale_mm=1000.0, rate_mm_yr=rate
    )
    grid = GridSpec.from_raster(paths["dem"])
    monkeypatch.setattr(detector, "_TIMELAPSE_BAND_PIXELS", 12 * ts.shape[2] * 25)
    assert detector._write_displacement_stack(tmp_path / "d.tif", p, grid, {"A": "1"})
    # the whole-array computation
    n = len(s.dates)
    idx = np.unique(np.round(np.linspace(0, n - 1, min(detector.TIMELAPSE_DATES, n))).astype(int))
    want = ts[idx].astype(np.float32) * np.float32(1000.0)
    want[:, (want == 0).all(axis=0)] = np.nan
    want -= want[0]
    want[:, ~np.isfinite(rate)] = np.nan
    last = np.abs(want[-1][np.isfinite(want[-1])])
    with rasterio.open(tmp_path / "d.tif") as src:
        np.testing.assert_array_equal(src.read(), want)
        lim = float(src.tags()["STRETCH_MM"])
        assert src.descriptions[-1] == s.dates[idx[-1]].isoformat()
    assert lim >= np.percentile(last, 99.9) and lim < 2.5 * np.percentile(last, 99.9)
