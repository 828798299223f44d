"""The realistic SBAS scene family (issue 20): each condition is what its spec asks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from thawdetect.plugins.insar_sbas.scenes import (
    RealisticScene,
    RealisticSpec,
    family_specs,
    make_realistic_scene,
    power_law_field,
)
from thawdetect.plugins.insar_sbas.synthetic import Scene

SMALL = {"size_px": 200, "n_epochs": 30}


@pytest.fixture(scope="module")
def scene() -> RealisticScene:
    return make_realistic_scene(seed=4, n_slides=12, cluster_size=(3, 6), **SMALL)


def _largest_share(mask: np.ndarray) -> float:
    from scipy import ndimage

    lab, n = ndimage.label(mask, structure=np.ones((3, 3)))
    return float(np.bincount(lab.ravel())[1:].max() / mask.sum()) if n else 0.0


def test_a_realistic_scene_is_a_scene_of_the_asked_shape(scene):
    assert isinstance(scene, Scene)
    assert scene.ts_m.shape == (30, 200, 200) and scene.ts_m.dtype == np.float32
    assert scene.coherence.shape == scene.dem_m.shape == scene.rate_mm_yr.shape == (200, 200)
    assert np.all(scene.ts_m[0][np.isfinite(scene.ts_m[0])] == 0)  # referenced to the first date
    assert np.all(scene.ts_m[:, 2, 2] == 0)  # and to the reference pixel
    assert np.isnan(scene.ts_m).any()  # gaps on low coherence


@pytest.mark.parametrize("cover", [0.10, 0.25, 0.40])
def test_low_coherence_is_one_connected_network_of_the_asked_cover(cover):
    s = make_realistic_scene(seed=1, lowcoh_cover=cover, layover_local_incidence_deg=0, **SMALL)
    low = s.components["lowcoh"]
    assert low.mean() == pytest.approx(cover, abs=0.01)
    assert _largest_share(low) > 0.7
    assert np.all((s.coherence[low] >= 0.1) & (s.coherence[low] <= 0.6))
    layover = s.components["layover"]
    assert (s.coherence[~low & ~layover] >= 0.7).mean() > 0.97  # bar decorrelated cores


def test_landslides_sit_in_the_masks_in_clusters_with_the_asked_gaps(scene):
    slides = scene.slides
    assert len(slides) == 12
    assert slides["synthetic"].all()
    assert {"slide_id", "area_ha", "peak_rate_mm_yr", "profile", "pair", "cluster"} <= set(slides)
    assert slides["area_ha"].between(0.4, 21).all()
    assert slides["peak_rate_mm_yr"].abs().between(10, 80).all()
    assert slides["cluster"].value_counts().max() >= 3
    px = scene.spec.pixel_m
    geoms = list(slides.geometry)
    for i, g in enumerate(geoms):
        d = np.array([g.distance(h) for j, h in enumerate(geoms) if j != i])
        assert d.min() >= 1.0 * px - 1e-6  # never closer than the smallest gap
        same = (slides["cluster"] == slides["cluster"].iloc[i]).to_numpy()
        same = np.delete(same, i)
        if same.any():  # a cluster member has a neighbour 30-300 m away
            assert d[same].min() <= 10.0 * px + 1e-6
    # placed as make_scene places them: inside the detector's default masks (Wei et al.)
    from thawdetect.plugins.insar_sbas.sample import horn_slope_aspect

    label = scene.components["slide_label"]
    assert set(np.unique(label)) == set(range(len(slides) + 1))
    foot = label > 0
    slope, _ = horn_slope_aspect(scene.dem_m, px)
    assert scene.components["admissible"][foot].mean() > 0.8
    assert scene.dem_m[foot].min() >= 3600 and scene.dem_m[foot].max() <= 4400
    assert np.nanmin(slope[foot]) >= 1 and np.nanmax(slope[foot]) <= 40


def test_dense_clusters_keep_their_gaps():
    s = make_realistic_scene(
        seed=2, n_slides=10, cluster_size=(4, 6), cluster_gap_px=(1.0, 3.0), **SMALL
    )
    px = s.spec.pixel_m
    geoms = list(s.slides.geometry)
    near = []
    for i, g in enumerate(geoms):
        same = [
            g.distance(h)
            for j, h in enumerate(geoms)
            if j != i and s.slides["cluster"].iloc[j] == s.slides["cluster"].iloc[i]
        ]
        if same:
            near.append(min(same))
    assert near and all(1.0 * px - 1e-6 <= d <= 3.0 * px + 1e-6 for d in near)


@pytest.mark.parametrize("level", [3.0, 15.0])
def test_turbulent_atmosphere_has_the_asked_std_and_a_power_law_spectrum(level):
    spec = RealisticSpec(atmo_turbulent_mm=level, atmo_epoch_spread=0.0, **SMALL)
    quiet = dataclasses.replace(spec, atmo_turbulent_mm=0.0)
    a, b = make_realistic_scene(spec), make_realistic_scene(quiet)
    coherent = (a.coherence >= 0.7) & np.isfinite(a.ts_m).all(axis=0)
    diff = (a.ts_m - b.ts_m)[:, coherent] * 1000.0
    # epoch e holds atmo_e - atmo_0 (referenced to the first date): std √2 × level
    std = diff[1:].std(axis=1)
    assert np.median(std) == pytest.approx(np.sqrt(2) * level, rel=0.25)
    f = power_law_field(np.random.default_rng(0), 256, 8 / 3)[0]
    p = np.abs(np.fft.rfft2(f)) ** 2
    k = np.hypot(*np.meshgrid(np.fft.rfftfreq(256), np.fft.fftfreq(256)))
    lo, hi = p[(k > 0.02) & (k < 0.03)].mean(), p[(k > 0.2) & (k < 0.3)].mean()
    assert np.log(lo / hi) / np.log(10) == pytest.approx(8 / 3, abs=0.5)


def test_unwrapping_errors_are_patches_of_half_wavelength_multiples():
    spec = RealisticSpec(unwrap_epoch_fraction=0.3, **SMALL)
    a = make_realistic_scene(spec)
    b = make_realistic_scene(dataclasses.replace(spec, unwrap_epoch_fraction=0.0))
    events = a.components["unwrap_events"]
    assert events and not b.components["unwrap_events"]
    diff = (a.ts_m - b.ts_m).astype(np.float64)
    ok = np.isfinite(diff)
    cycles = diff[ok] / (spec.wavelength_m / 2)
    assert np.abs(cycles - np.round(cycles)).max() < 0.02
    assert (np.abs(np.round(cycles)) >= 1).mean() > 0.001
    # the shifts are the recorded events: patches, epochs and cycles (the reference pixel and
    # the first epoch are never shifted)
    expected = np.zeros(diff.shape)
    masks = a.components["unwrap_masks"]
    for ev in events:
        e0, e1 = ev["first_epoch"], ev["last_epoch"] + 1
        expected[e0:e1].reshape(e1 - e0, -1)[:, masks[ev["patch"] - 1]] += ev["cycles"]
    assert np.array_equal(np.round(diff / (spec.wavelength_m / 2))[ok], expected[ok])


def test_look_alikes_and_ground_motion(scene):
    looks = scene.lookalikes
    assert set(looks["kind"]) <= {"thermokarst", "heave"} and looks["synthetic"].all()
    assert np.abs(scene.components["creep_mm_yr"]).max() > 1.0
    assert scene.components["seasonal_pp_mm"].max() > 10.0


def test_a_real_coherence_layer_can_be_the_pattern():
    from pathlib import Path

    from thawdetect.plugins.insar_sbas.scenes import CADIA_COHERENCE

    path = Path(__file__).resolve().parents[1] / CADIA_COHERENCE
    if not path.exists():
        pytest.skip("no ../shared/data")
    s = make_realistic_scene(coherence_source=str(path), layover_local_incidence_deg=0, **SMALL)
    low = s.components["lowcoh"]
    assert low.mean() > 0.8 and _largest_share(low) > 0.9


def test_family_spans_the_ranges_with_named_specs():
    specs = family_specs(20, size_px=200)
    assert len({s.name for s in specs}) == 20 and len({s.seed for s in specs}) == 20
    cover = np.array([s.lowcoh_cover for s in specs])
    atmo = np.array([s.atmo_turbulent_mm for s in specs])
    assert cover.min() < 0.13 and cover.max() > 0.37
    assert atmo.min() < 4 and atmo.max() > 15
    assert any(s.unwrap_epoch_fraction == 0 for s in specs)
    assert any(s.unwrap_epoch_fraction > 0 for s in specs)
    assert {s.cluster_gap_px for s in specs} == {(1.0, 3.0), (3.0, 10.0), (1.0, 10.0)}
    assert all("unw" in s.name for s in specs if s.unwrap_epoch_fraction > 0)


def test_written_scene_is_marked_synthetic_and_loads_as_products(scene, tmp_path):
    import h5py
    import pyogrio
    import rasterio

    from thawdetect.plugins.insar_sbas.config import InsarSbasConfig
    from thawdetect.plugins.insar_sbas.products import load_products
    from thawdetect.plugins.insar_sbas.synthetic import write_scene

    small = make_realistic_scene(seed=3, size_px=64, n_epochs=20, n_slides=2)
    paths = write_scene(small, tmp_path / "scene")
    for key in ("timeseries", "coherence", "geometry"):
        with h5py.File(paths[key]) as f:
            assert "SYNTHETIC" in f.attrs["THAWDETECT_SYNTHETIC"]
    with rasterio.open(paths["dem"]) as src:
        assert "SYNTHETIC" in src.tags()["THAWDETECT_SYNTHETIC"]
    for layer in ("slides", "lookalikes"):
        df = pyogrio.read_dataframe(paths["planted"], layer=layer)
        assert len(df) == 0 or df["synthetic"].all()
    cfg = InsarSbasConfig(
        timeseries_file=paths["timeseries"],
        coherence_file=paths["coherence"],
        dem_file=paths["dem"],
    )
    products = load_products(cfg, run_dir=tmp_path / "run", work_dir=tmp_path / "work")
    assert products.rate_mm_yr.shape == (64, 64)
    assert np.isfinite(products.rate_mm_yr).mean() > 0.5


def test_tiled_frame_is_a_mintpy_stack_written_chunk_by_chunk(tmp_path):
    """The frame-sized bench scene: the tile repeated mirror-wise (continuous across tile
    edges), MintPy's auto-chunked layout, every file on one grid, the fit readable."""
    import h5py

    from thawdetect.plugins.insar_sbas.scenes import write_tiled_frame
    from thawdetect.plugins.insar_sbas.seasonal_fit import fit_timeseries_file

    paths = write_tiled_frame(tmp_path / "f", 130, 170, tile_px=60, n_epochs=14, seed=2)
    with h5py.File(paths["timeseries"], "r") as f:
        ts = f["timeseries"]
        assert ts.shape == (14, 130, 170) and ts.chunks is not None
        e = ts[7]
    np.testing.assert_array_equal(e[:, 59], e[:, 60])  # mirrored at the tile edge
    np.testing.assert_array_equal(e[:60, :60], e[:60, 119:59:-1])
    np.testing.assert_array_equal(e[:60, :60], e[119:59:-1, :60])
    assert not np.isnan(e[2, 2]) and e[2, 2] == 0  # the reference pixel
    fit = fit_timeseries_file(paths["timeseries"], cache_dir=tmp_path / "c").fit
    assert fit.rate_mm_yr.shape == (130, 170) and np.isfinite(fit.rate_mm_yr).mean() > 0.5
