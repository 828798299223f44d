"""insar_sbas runs the ``qtec`` region without the optical plugin (no hidden coupling)."""

from __future__ import annotations

import geopandas as gpd
import rasterio

from thawdetect.core.plugin_api.context import IterationContext
from thawdetect.core.plugin_api.detector import validate_candidates
from thawdetect.core.plugin_api.host import PluginHost
from thawdetect.core.run.samples import ensure_sample
from thawdetect.plugins.insar_sbas.config import InsarSbasConfig


def test_qtec_sample_comes_from_insar_when_optical_is_disabled(tmp_path, monkeypatch):
    monkeypatch.setenv("THAWDETECT_DISABLE_PLUGINS", "optical_dl")
    host = PluginHost()
    assert "optical_dl" not in host.detectors
    builder = host.samples["qtec"]
    assert builder.__module__ == "thawdetect.plugins.insar_sbas.plugin"
    sample = ensure_sample(host, "qtec", root=tmp_path / "cache")
    with rasterio.open(sample / "insar_rate_mm_yr.tif") as src:
        assert src.crs.to_epsg() == 32646 and "SYNTHETIC" in src.tags()["THAWDETECT_SYNTHETIC"]
    for name in ("known_inventory", "reference_inventory", "validation_points"):
        assert len(gpd.read_file(sample / f"{name}.gpkg"))
    data = host.region("qtec").detectors["insar_sbas"]
    cfg = InsarSbasConfig.model_validate(
        {
            k: v.replace("{sample_dir}", str(sample)) if isinstance(v, str) else v
            for k, v in data.config.items()
        }
    )
    ctx = IterationContext.standalone(host.region("qtec"), tmp_path / "run", host=host)
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    cands = validate_candidates(host.detector("insar_sbas")(cfg).propose(ctx), "insar_sbas")
    ref = gpd.read_file(sample / "reference_inventory.gpkg")
    assert len(cands) and cands.intersects(ref.union_all()).all()
    # the region reads the sample's MintPy time series and coherence, not a rate map alone
    assert cfg.timeseries_file == sample / "timeseries.h5" and cfg.rate_file is None
    assert cands["mean_coherence"].notna().all()
    assert cands["mean_seasonal_amplitude_pp_mm"].notna().all()


def test_mixed_runs_keep_the_optical_qtec_sample():
    host = PluginHost()
    assert "optical_dl" in host.detectors  # installed with thawdetect
    assert host.samples["qtec"].__module__.startswith("thawdetect.plugins.optical_dl")
