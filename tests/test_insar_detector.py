"""insar_sbas detector on the bundled synthetic Qilian sample, with the real terrain service."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio

from thawdetect.core.errors import ConfigError, InputError
from thawdetect.core.models import Range
from thawdetect.core.plugin_api.context import IterationContext
from thawdetect.core.plugin_api.detector import TimeSeries, validate_candidates
from thawdetect.core.plugin_api.host import PluginHost
from thawdetect.plugins.insar_sbas.config import InsarSbasConfig
from thawdetect.plugins.insar_sbas.sample import horn_slope_aspect, make_dem, plan_slides

EVIDENCE = [
    "pixel_count",
    "area_m2",
    "perimeter_m",
    "mean_abs_rate_mm_yr",
    "max_abs_rate_mm_yr",
    "mean_seasonal_amplitude_pp_mm",
    "mean_coherence",
]


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost()


@pytest.fixture(scope="module")
def sample(host, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("qilian")
    host.samples["qilian"](out)
    return out


def region_config(host: PluginHost, sample: Path, **extra) -> InsarSbasConfig:
    data = host.region("qilian").detectors["insar_sbas"].config
    data = {
        k: v.replace("{sample_dir}", str(sample)) if isinstance(v, str) else v
        for k, v in data.items()
    }
    return InsarSbasConfig.model_validate({**data, **extra})


def context(
    host: PluginHost, tmp: Path, iteration: int = 1, region: str = "qilian"
) -> IterationContext:
    ctx = IterationContext.standalone(host.region(region), tmp, host=host, iteration=iteration)
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    return ctx


def found(cands: gpd.GeoDataFrame, polys: gpd.GeoDataFrame) -> set[str]:
    if len(cands) == 0:
        return set()
    hit = gpd.sjoin(polys, cands[["geometry"]], predicate="intersects")
    return set(hit["slide_id"])


def test_plugin_registration(host):
    det = host.detector("insar_sbas")
    assert det.config_model is InsarSbasConfig
    assert det.optional_dependencies == ("h5py", "xdem")  # .h5 products; terrain via xdem
    reg = host.region("qilian")
    assert reg.synthetic and reg.crs == "EPSG:32647"
    assert "insar_sbas" in host.region("qtec").detectors
    assert "qilian" in host.samples


def test_sample_is_marked_synthetic_and_in_qilian(sample):
    import h5py

    assert "SYNTHETIC" in (sample / "README.txt").read_text()
    with rasterio.open(sample / "dem.tif") as src:
        assert "SYNTHETIC" in src.tags()["THAWDETECT_SYNTHETIC"]
        assert src.crs.to_epsg() == 32647
        dem = src.read(1)
        from rasterio.warp import transform_bounds

        w, s, e, n = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    assert 99.6 <= w < e <= 101.1 and 37.4 <= s < n <= 38.4
    assert np.nanmin(dem) >= 3500 and np.nanmax(dem) <= 4700
    with h5py.File(sample / "timeseries.h5") as f:
        assert (
            f.attrs["FILE_TYPE"] == "timeseries" and "SYNTHETIC" in f.attrs["THAWDETECT_SYNTHETIC"]
        )
        assert f["timeseries"].shape == (70, 300, 300)
    for name in ("reference_inventory", "known_inventory", "validation_points"):
        gdf = gpd.read_file(sample / f"{name}.gpkg")
        assert gdf["synthetic"].all() and len(gdf)
    assert len(gpd.read_file(sample / "validation_points.gpkg")) == 15


def test_sample_plan_is_deterministic():
    dem = make_dem()
    a, b = plan_slides(dem), plan_slides(dem)
    assert [(s.slide_id, r, c) for s, r, c in a] == [(s.slide_id, r, c) for s, r, c in b]
    _slope, _aspect = horn_slope_aspect(dem, 30.0)
    for spec, r, c in a:  # every centre honours its design bands
        assert spec.elevation_m[0] <= dem[r, c] <= spec.elevation_m[1]


def test_each_schedule_row_finds_new_planted_slides(host, sample, tmp_path):
    ref = gpd.read_file(sample / "reference_inventory.gpkg")
    looks = gpd.read_file(sample / "lookalikes.gpkg")
    cfg = region_config(host, sample)
    seen: set[str] = set()
    summaries = []
    for it in range(1, 6):
        det = host.detector("insar_sbas")(cfg)
        ctx = context(host, tmp_path, it)
        cands = validate_candidates(det.propose(ctx), "insar_sbas", ctx.crs)
        summaries.append(det.summary())
        hits = found(cands, ref)
        new = hits - seen
        expected = set(ref.loc[ref["first_row"] == it, "slide_id"])
        assert new == expected, f"row {it}: found {sorted(new)}, planted {sorted(expected)}"
        seen |= hits
        assert not found(cands, looks), f"row {it} proposed a look-alike"
        for col in EVIDENCE:
            assert col in cands.columns and cands[col].notna().all()
        # review order: |rate|, amplitude-prone candidates (A >= 10 mm, Wei et al.) first
        prone = cands["mean_seasonal_amplitude_pp_mm"] >= 10.0
        assert (cands["amplitude_prone"] == prone.astype(int)).all()
        assert (cands["score"] == cands["max_abs_rate_mm_yr"] + 1000.0 * prone).all()
        # grown outlines hold their seeds and reach beyond them
        assert (cands["seed_pixel_count"] >= cfg.min_pixels).all()
        assert (cands["pixel_count"] >= cands["seed_pixel_count"]).all()
        assert (cands["grown_area_m2"] >= cands["seed_area_m2"]).all()
        assert (cands["max_abs_rate_mm_yr"] >= det.config.schedule[it - 1].abs_rate_mm_yr).all()
        np.testing.assert_allclose(cands["area_m2"], cands.geometry.area)
        series = TimeSeries.from_json(cands["series_json"].iloc[0])
        assert len(series.dates) == 70 and series.fit is not None
        assert abs(series.fit["b_mm_yr"] - cands["mean_rate_mm_yr"].iloc[0]) < 5
        for name in ("rate_mm_yr.tif", "terrain_mask.tif", "rate_mask.tif", "candidate_labels.tif"):
            assert (ctx.work_dir / name).exists()
        assert json.loads((ctx.work_dir / "thresholds.json").read_text())["candidates"] == len(
            cands
        )
        nxt = det.next_config(None)  # type: ignore[arg-type]
        if it < 5:
            assert nxt is not None and nxt.schedule_index == it
            cfg = nxt
        else:
            assert nxt is None
    assert seen == set(ref["slide_id"])
    assert summaries[0] == {
        "elevation_m": "3600-4000",
        "slope_deg": "1-30",
        "aspect_deg": "0-315",
        "abs_rate_mm_yr": ">=50",
    }
    assert summaries[4]["aspect_deg"] == "0-112.5,135-360"


def test_planted_rate_and_amplitude_recovered(host, sample, tmp_path):
    ref = gpd.read_file(sample / "reference_inventory.gpkg")
    cfg = region_config(host, sample, schedule_index=4)
    cands = host.detector("insar_sbas")(cfg).propose(context(host, tmp_path))
    j = gpd.sjoin(cands, ref, predicate="intersects")
    big = j.sort_values("pixel_count", ascending=False).drop_duplicates("slide_id")
    # peak planted rate vs max |rate| (noise: a few mm/yr), amplitude band near the planted A
    assert np.allclose(big["max_abs_rate_mm_yr"], big["planted_rate_mm_yr"].abs(), atol=6)
    assert (abs(big["mean_seasonal_amplitude_pp_mm"] - big["planted_amplitude_pp_mm"]) < 5).all()


def test_empty_iteration_is_valid(host, sample, tmp_path):
    rows = [{"abs_rate_mm_yr": 500.0}]
    cfg = region_config(host, sample, schedule=rows)
    det = host.detector("insar_sbas")(cfg)
    cands = det.propose(context(host, tmp_path))
    assert len(cands) == 0 and cands.crs is not None
    assert set(EVIDENCE) <= set(cands.columns)
    validate_candidates(cands, "insar_sbas")
    assert det.next_config(None) is None  # type: ignore[arg-type]
    assert det.summary()["elevation_m"] == "any"


def test_amplitude_band_filters(host, sample, tmp_path):
    ref = gpd.read_file(sample / "reference_inventory.gpkg")
    cfg = region_config(
        host, sample, schedule_index=4, seasonal_amplitude_pp_mm=Range(min=9, max=13)
    )
    cands = host.detector("insar_sbas")(cfg).propose(context(host, tmp_path))
    hits = found(cands, ref)
    amp = ref.set_index("slide_id")["planted_amplitude_pp_mm"]
    # planted A tapers to 0.8·A at a slide's edge: only slides with 0.8·A <= 13 (+ noise) pass
    assert hits and all(0.8 * amp[s] <= 14 for s in hits)
    assert not {"S06", "S13"} & hits  # A = 20 and 21 mm


def test_derived_ranges_from_known_inventory(host, sample, tmp_path):
    cfg = region_config(
        host,
        sample,
        derive_from_inventory=True,
        known_inventory_file=str(sample / "known_inventory.gpkg"),
        rate_schedule_mm_yr=[40.0, 10.0],
    )
    det = host.detector("insar_sbas")(cfg)
    cands = det.propose(context(host, tmp_path))
    s = det.summary()
    assert s["abs_rate_mm_yr"] == ">=40" and s["elevation_m"] != "any"
    assert len(cands) >= 1
    nxt = det.next_config(None)  # type: ignore[arg-type]
    assert nxt.schedule_index == 1 and det.__class__(nxt).next_config(None) is None  # type: ignore[arg-type]


def test_reference_point_in_masked_area(host, sample, tmp_path):
    import h5py

    with h5py.File(sample / "temporalCoherence.h5") as f:
        coh = f["temporalCoherence"][()]
    y, x = np.argwhere(coh < 0.5)[0]
    cfg = region_config(host, sample, reference_yx=(int(y), int(x)))
    with pytest.raises(InputError, match=r"timeseries\.h5: reference point .* is in a masked area"):
        host.detector("insar_sbas")(cfg).propose(context(host, tmp_path))


def test_no_input_and_terrain_without_dem_are_one_line(host, sample, tmp_path):
    with pytest.raises(ConfigError, match="no input"):
        host.detector("insar_sbas")(InsarSbasConfig()).propose(context(host, tmp_path))
    cfg = region_config(host, sample, dem_file=None)
    with pytest.raises(ConfigError, match="no DEM"):
        host.detector("insar_sbas")(cfg).propose(context(host, tmp_path))


def test_config_rejects_two_sources_and_typos(sample):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="one input source"):
        InsarSbasConfig(rate_file=sample / "x.tif", timeseries_file=sample / "timeseries.h5")
    with pytest.raises(ValidationError, match="Extra inputs"):
        InsarSbasConfig.model_validate({"rate_mmyr": 3})
    with pytest.raises(ValidationError, match="past the last row"):
        InsarSbasConfig(schedule_index=5)


def test_amplitude_band_per_schedule_row_overrides_the_detector_band(host, sample, tmp_path):
    ref = gpd.read_file(sample / "reference_inventory.gpkg")
    last = InsarSbasConfig().schedule[4].model_dump()
    rows = [{**last, "seasonal_amplitude_pp_mm": {"min": 9, "max": 13}}]
    cfg = region_config(host, sample, schedule=rows, seasonal_amplitude_pp_mm=Range(min=0, max=100))
    ctx = context(host, tmp_path)
    cands = host.detector("insar_sbas")(cfg).propose(ctx)
    hits = found(cands, ref)
    amp = ref.set_index("slide_id")["planted_amplitude_pp_mm"]
    assert hits and all(0.8 * amp[s] <= 14 for s in hits)
    assert not {"S06", "S13"} & hits  # A = 20 and 21 mm
    band = json.loads((ctx.work_dir / "thresholds.json").read_text())["seasonal_amplitude_pp_mm"]
    assert band == {"min": 9.0, "max": 13.0}


def test_threshold_delineation_is_the_old_method(host, sample, tmp_path):
    cfg = region_config(host, sample, schedule_index=4)
    assert cfg.delineation == "grow"  # the default (docs/insar.md: measured against threshold)
    old = host.detector("insar_sbas")(cfg.model_copy(update={"delineation": "threshold"}))
    new = host.detector("insar_sbas")(cfg)
    a = old.propose(context(host, tmp_path / "old"))
    b = new.propose(context(host, tmp_path / "new"))
    # the old candidates are exactly the seeds: grown ones cover them and more
    assert (a["pixel_count"] == a["seed_pixel_count"]).all()
    assert b["pixel_count"].sum() > a["pixel_count"].sum()
    with rasterio.open(tmp_path / "old" / "it1" / "candidate_labels.tif") as src:
        old_px = src.read(1) > 0
    with rasterio.open(tmp_path / "new" / "it1" / "candidate_labels.tif") as src:
        new_px = src.read(1) > 0
    assert (new_px[old_px]).all() and new_px.sum() > old_px.sum()
