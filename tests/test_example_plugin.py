"""The example third-party plugin, installed with pip and run through the CLI."""

from __future__ import annotations

import json

import geopandas as gpd
from click.testing import CliRunner

from thawdetect.core.run.ledger import Ledger


def _cli():
    # imported after the plugin is installed so the entry point is seen
    from thawdetect.cli.main import cli

    return cli


def test_example_plugin_listed(example_plugin_installed):
    result = CliRunner().invoke(_cli(), ["plugins", "--json"])
    data = {p["name"]: p for p in json.loads(result.output)}
    assert data["dndvi"]["distribution"] == "thawdetect-dndvi"
    assert data["dndvi"]["detectors"] == ["dndvi"]


def test_example_plugin_runs_alone(example_plugin_installed, tmp_path):
    run = tmp_path / "run"
    result = CliRunner().invoke(
        _cli(),
        [
            "run",
            "--detector",
            "dndvi",
            "--region",
            "dndvi_demo",
            "--reviewer",
            "reference",
            "--output-dir",
            str(run),
        ],
    )
    assert result.exit_code == 0, result.output
    it = Ledger(run).read("iterations")
    assert it["iteration"].tolist() == [1, 2, 3]
    assert it["newly_confirmed"].iloc[0] >= 2
    assert (it["newly_confirmed"] > 0).all()
    assert "every detector finished its schedule" in result.output
    # review evidence was made for every candidate: NDVI frames as chips + GIF
    cands = Ledger(run).read("candidates")
    assert len(list((run / "iterations").glob("*/evidence/**/*.gif"))) == len(cands)


def test_example_plugin_mixed_with_builtin_insar(example_plugin_installed, tmp_path):
    """ΔNDVI + insar_sbas in one run on the (synthetic) qilian sample: merged evidence."""
    import numpy as np
    import rasterio
    from rasterio.features import rasterize

    from thawdetect.core.plugin_api.host import PluginHost
    from thawdetect.core.run.samples import ensure_sample

    sample = ensure_sample(PluginHost(), "qilian")
    with rasterio.open(sample / "dem.tif") as dem:
        profile = dem.profile | {"dtype": "float32", "count": 1, "nodata": None}
        shape, transform = dem.shape, dem.transform
    ref = gpd.read_file(sample / "reference_inventory.gpkg").to_crs(profile["crs"])
    rng = np.random.default_rng(3)
    before = 0.5 + rng.normal(0, 0.02, shape)
    # vegetation stripped from the first four planted landslides only
    lost = rasterize(ref.geometry.iloc[:4], out_shape=shape, transform=transform) > 0
    after = before + rng.normal(0, 0.02, shape) - 0.4 * lost
    paths = {}
    for name, arr in (("before", before), ("after", after)):
        paths[name] = tmp_path / f"ndvi_{name}.tif"
        with rasterio.open(paths[name], "w", **profile) as dst:
            dst.write(arr.astype("float32"), 1)
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        "region: qilian\nreviewer: reference\nmax_iterations: 2\n"
        "detectors:\n  insar_sbas: {}\n"
        f"  dndvi:\n    ndvi_before: {paths['before']}\n    ndvi_after: {paths['after']}\n"
        "    min_pixels: 2\n"
    )
    run = tmp_path / "run"
    result = CliRunner().invoke(_cli(), ["run", "--config", str(cfg), "--output-dir", str(run)])
    assert result.exit_code == 0, result.output
    cands = Ledger(run).read("candidates")
    both = cands[cands["n_detectors"] == 2]
    assert len(both) >= 1
    ev = json.loads(both["evidence_json"].iloc[0])
    assert set(ev) == {"dndvi", "insar_sbas"}
    assert both["dndvi__mean_dndvi"].notna().all()
    assert set(cands["detectors"]) >= {"dndvi,insar_sbas"}


def test_config_defines_its_own_region(example_plugin_installed, tmp_path):
    """A region defined inline in the YAML (name, AOI, CRS) with the detector's data paths."""
    from thawdetect.core.plugin_api.host import PluginHost
    from thawdetect.core.run.samples import ensure_sample

    sample = ensure_sample(PluginHost(), "dndvi_demo")
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        "region:\n  name: my_valley\n  bbox_wgs84: [100.0, 37.3, 100.1, 37.5]\n"
        "reviewer: reference:" + str(sample / "reference.gpkg") + "\nmax_iterations: 1\n"
        "detectors:\n  dndvi:\n"
        f"    ndvi_before: {sample / 'ndvi_before.tif'}\n"
        f"    ndvi_after: {sample / 'ndvi_after.tif'}\n"
    )
    run = tmp_path / "run"
    result = CliRunner().invoke(_cli(), ["run", "--config", str(cfg), "--output-dir", str(run)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["region"]["name"] == "my_valley"
    assert manifest["working_crs"] == "EPSG:32647"  # UTM zone of the AOI centre
    assert Ledger(run).read("iterations")["newly_confirmed"].tolist() == [2]
