"""The default insar_sbas run on a realistic scene: a connected low-coherence network, landslides
clustered 1-3 px apart, power-law atmosphere and creep (a SYNTHETIC scene of
:mod:`thawdetect.plugins.insar_sbas.scenes`), a known point inventory and the reference reviewer.

Each landslide must stay its own candidate (the old ``grow`` fused every landslide that touched
the low-coherence network into one), be found, and be counted once in the inventory: with the
default delineation (``grow``) and with ``threshold``.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from scipy import ndimage

import thawdetect
from thawdetect.plugins.insar_sbas.scenes import make_realistic_scene
from thawdetect.plugins.insar_sbas.synthetic import write_scene


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory) -> tuple[Path, dict[str, Path], object]:
    scene = make_realistic_scene(
        size_px=220,
        n_epochs=40,
        seed=0,
        lowcoh_cover=0.3,
        atmo_turbulent_mm=5.0,
        unwrap_epoch_fraction=0.0,
        slides_per_km2=0.35,
        cluster_gap_px=(1.0, 3.0),
        cluster_size=(3, 6),
        creep_mm_yr=4.0,
    )
    out = tmp_path_factory.mktemp("realistic")
    paths = write_scene(scene, out)
    slides = scene.slides.reset_index(drop=True)
    pts = slides.geometry.representative_point()
    known = np.arange(len(slides)) % 3 == 0
    gpd.GeoDataFrame(
        {"kid": np.flatnonzero(known)}, geometry=pts[known].to_numpy(), crs=slides.crs
    ).to_file(out / "known.gpkg", driver="GPKG")
    slides.to_file(out / "reference.gpkg", driver="GPKG")
    return out, paths, scene


def test_scene_has_the_hard_conditions(scene_dir):
    _, _, scene = scene_dir
    low = scene.components["lowcoh"]
    lab, _n = ndimage.label(low, structure=np.ones((3, 3), bool))
    sizes = np.bincount(lab.ravel())[1:]
    assert 0.2 <= low.mean() <= 0.4 and sizes.max() >= 0.8 * sizes.sum()  # one network
    slides = scene.slides
    assert len(slides) >= 6
    gaps = [
        a.distance(b)
        for i, a in enumerate(slides.geometry)
        for b in slides.geometry[i + 1 :]
        if a.distance(b) > 0
    ]
    assert min(gaps) <= 3 * 30.0  # clustered: neighbours within 3 px
    touching = slides[slides["lowcoh_share"] > 0]
    assert len(touching) >= 2  # landslides on the low-coherence network


@pytest.mark.parametrize("delineation", [None, "threshold"])  # None: the default (grow)
def test_run_keeps_each_landslide_its_own_candidate(scene_dir, delineation):
    out, paths, scene = scene_dir
    extra = {} if delineation is None else {"delineation": delineation}
    res = thawdetect.run(
        {
            "region": {"name": "realistic-scene", "crs": "EPSG:32647", "synthetic": True},
            "known_inventory": str(out / "known.gpkg"),
            "evidence": False,
            "detectors": {
                "insar_sbas": {
                    "timeseries_file": str(paths["timeseries"]),
                    "coherence_file": str(paths["coherence"]),
                    "dem_file": str(paths["dem"]),
                    **extra,
                }
            },
        },
        reviewer=f"reference:{out / 'reference.gpkg'}",
        output_dir=out / f"run-{delineation or 'default'}",
        progress=False,
    )
    from thawdetect.core.run.ledger import Ledger

    cands = Ledger(out / f"run-{delineation or 'default'}").read("candidates")
    slides = scene.slides.reset_index(drop=True)
    # no candidate covers two landslides (>= 20 % of each)
    inter = gpd.overlay(
        cands[["candidate_id", "geometry"]],
        slides.assign(slide=slides.index)[["slide", "geometry"]],
        how="intersection",
        keep_geom_type=True,
    )
    inter["cover"] = inter.area / slides.area.loc[inter["slide"]].to_numpy()
    covered = inter[inter["cover"] >= 0.2].groupby("candidate_id")["slide"].nunique()
    assert (covered <= 1).all(), covered[covered > 1]
    # every landslide the masks allow is in the inventory, once
    inv = res.inventory
    hits = gpd.sjoin(slides[["geometry"]], inv[["geometry"]], predicate="intersects")
    per_slide = hits.groupby(level=0).size()
    # findable with margin: >= 4 coherent pixels moving at >= 15 mm/yr (planted)
    from rasterio.features import rasterize

    lab = rasterize(
        [(g, i + 1) for i, g in enumerate(slides.geometry)],
        out_shape=scene.coherence.shape,
        transform=scene.grid.transform,
        dtype="int32",
    )
    ok = (scene.coherence >= 0.7) & (np.abs(scene.rate_mm_yr) >= 15)
    strong = np.flatnonzero(np.bincount(lab[ok], minlength=len(slides) + 1)[1:] >= 4)
    assert len(strong) >= 5
    assert set(strong) <= set(per_slide.index), sorted(set(strong) - set(per_slide.index))
    assert (per_slide <= 1).all(), per_slide[per_slide > 1]
