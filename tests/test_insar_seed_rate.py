"""grow's seeds by the landslide's own rate: a regional offset (a reference point on creep, a
residual ramp, long-wavelength atmosphere) must not hide a landslide whose own motion passes the
threshold (``seed_rate: measured_or_relative``, the default), nor make stable ground a seed.

The scene (SYNTHETIC, :func:`~thawdetect.plugins.insar_sbas.synthetic.make_scene`): ten
landslides of ±30 mm/yr peak LOS rate and look-alikes, with +14 mm/yr added everywhere. Measured,
the landslides moving away from the satellite peak at about -16 mm/yr, under the 20 mm/yr
threshold; against the background they move at -30.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest

from thawdetect.core.plugin_api.context import IterationContext
from thawdetect.core.plugin_api.detector import validate_candidates
from thawdetect.core.plugin_api.host import PluginHost
from thawdetect.plugins.insar_sbas.config import InsarSbasConfig
from thawdetect.plugins.insar_sbas.synthetic import make_scene, write_scene
from thawdetect.plugins.insar_sbas.timefunc import design_matrix

OFFSET_MM_YR = 14.0
ROW = {
    "abs_rate_mm_yr": 20.0,
    "elevation_m": {"min": 3600, "max": 4000},
    "slope_deg": {"min": 1, "max": 30},
    "aspect_deg": [{"min": 0, "max": 315}],
}


@pytest.fixture(scope="module")
def offset_scene(tmp_path_factory):
    scene = make_scene(
        size_px=160,
        n_epochs=40,
        n_slides=8,
        n_adjacent_pairs=1,
        area_ha=(6.0, 12.0),
        peak_rate_mm_yr=(30.0, 31.0),
        seed=1,
    )
    t = design_matrix(scene.dates, 1.0)[:, 1]
    scene.ts_m += (OFFSET_MM_YR * (t - t[0]) / 1000.0).astype(np.float32)[:, None, None]
    out = tmp_path_factory.mktemp("offset")
    return scene, write_scene(scene, out), out


def _propose(offset_scene, tmp: Path, **extra) -> tuple[gpd.GeoDataFrame, dict]:
    _, paths, _ = offset_scene
    host = PluginHost()
    cfg = InsarSbasConfig(
        timeseries_file=paths["timeseries"],
        coherence_file=paths["coherence"],
        dem_file=paths["dem"],
        schedule=[ROW],
        **extra,
    )
    ctx = IterationContext.standalone(host.region("qilian"), tmp, host=host)
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    cands = validate_candidates(host.detector("insar_sbas")(cfg).propose(ctx), "insar_sbas")
    return cands, json.loads((ctx.work_dir / "thresholds.json").read_text())


def _found(cands: gpd.GeoDataFrame, polys: gpd.GeoDataFrame) -> set[int]:
    if len(cands) == 0:
        return set()
    return set(gpd.sjoin(polys[["geometry"]], cands[["geometry"]], predicate="intersects").index)


def test_a_landslide_counts_by_its_own_rate_on_an_offset_background(offset_scene, tmp_path):
    scene, _, _ = offset_scene
    slides = scene.slides.reset_index(drop=True)
    away = set(np.flatnonzero(slides["peak_rate_mm_yr"] < 0))
    toward = set(range(len(slides))) - away
    assert len(away) >= 3 and len(toward) >= 3

    measured, rec_m = _propose(offset_scene, tmp_path / "measured", seed_rate="measured")
    default, rec_d = _propose(offset_scene, tmp_path / "default")
    assert rec_m["growth"]["seed_rate"] == "measured"
    assert rec_d["growth"]["seed_rate"] == "measured_or_relative"
    # the background holds the offset (scene's own slow field: a few mm/yr)
    lo, hi = rec_d["growth"]["background_mm_yr"]
    assert OFFSET_MM_YR - 8 <= lo <= hi <= OFFSET_MM_YR + 8

    # measured: the offset hides the landslides moving away; those toward are found
    assert toward <= _found(measured, slides)
    assert not away & _found(measured, slides)
    # own rate: every landslide, each its own candidate, and still no look-alike
    hits = gpd.sjoin(slides[["geometry"]], default[["geometry"]], predicate="intersects")
    assert set(hits.index) == set(range(len(slides)))
    assert not _found(default, scene.lookalikes.reset_index(drop=True))
    assert not _found(measured, scene.lookalikes.reset_index(drop=True))
    per_cand = hits.groupby("index_right").size()
    assert (per_cand == 1).all(), per_cand[per_cand > 1]
    # stable ground offset by 14 mm/yr is no seed: every candidate is on a landslide
    assert len(default) == len(slides)
    # the evidence says what each landslide does itself: its own rate (about ±30), where the
    # measured core rate of those moving away is about -16
    own = default["peak_own_rate_mm_yr"]
    assert (own.abs() >= 24).all() and (own.abs() <= 40).all()
    assert (np.sign(own) == np.sign(default["core_rate_mm_yr"])).all()
    away_c = default.loc[sorted(set(hits.loc[sorted(away), "index_right"]))]
    assert (away_c["peak_own_rate_mm_yr"].abs() > away_c["core_rate_mm_yr"].abs() + 8).all()


def test_threshold_delineation_keeps_the_measured_rate(offset_scene, tmp_path):
    """threshold is Wei et al.'s method as published: seeds by the measured rate only."""
    scene, _, _ = offset_scene
    slides = scene.slides.reset_index(drop=True)
    away = set(np.flatnonzero(slides["peak_rate_mm_yr"] < 0))
    cands, rec = _propose(offset_scene, tmp_path, delineation="threshold")
    assert not away & _found(cands, slides)
    assert "seed_rate" not in rec.get("growth", {})
    # ... while its evidence, like grow's, gives each landslide's own rate against the
    # background (about +30: the review order's key), where the measured rate is about +44
    assert len(cands) and (cands["core_rate_mm_yr"] > 0).all()
    own = cands["peak_own_rate_mm_yr"]
    assert ((own >= 22) & (own <= 40)).all(), own.tolist()
    assert (own < cands["max_abs_rate_mm_yr"] - 6).all()
