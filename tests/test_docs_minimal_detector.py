"""docs/plugins.md's minimal detector (5 concepts) runs as written, with the default schedule."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import box

from thawdetect.core.config import RunConfig
from thawdetect.core.plugin_api.host import PluginHost
from thawdetect.core.regions import Region
from thawdetect.core.run.engine import Engine

DOC = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
MARK = "# thawdetect_bright/plugin.py"
CRS = "EPSG:32647"


def _module(monkeypatch) -> types.ModuleType:
    blocks = re.findall(r"^```python\n(.*?)^```\n", DOC.read_text(), re.S | re.M)
    [code] = [b for b in blocks if b.startswith(MARK)]
    assert len(code.splitlines()) <= 40
    module = types.ModuleType("thawdetect_bright_plugin")
    monkeypatch.setitem(sys.modules, module.__name__, module)  # pydantic resolves names there
    exec(compile(code, str(DOC), "exec"), module.__dict__)
    return module


def test_minimal_detector_runs_its_schedule(tmp_path, monkeypatch):
    band = np.zeros((60, 60), "float32")
    band[5:15, 5:15] = 0.9  # found at threshold 0.8
    band[30:40, 30:40] = 0.6  # found at 0.5 (iteration 2)
    raster = tmp_path / "bright.tif"
    profile = dict(driver="GTiff", width=60, height=60, count=1, dtype="float32", crs=CRS,
                   transform=from_origin(500_000, 4_150_000, 10, 10))  # fmt: skip
    with rasterio.open(raster, "w", **profile) as dst:
        dst.write(band, 1)
    ref = tmp_path / "reference.gpkg"
    gpd.GeoDataFrame(geometry=[box(500_050, 4_149_850, 500_150, 4_149_950)], crs=CRS).to_file(ref)
    module = _module(monkeypatch)
    assert module.BrightDetector.relaxes_schedule  # a schedule_field: a fixed schedule
    host = PluginHost(plugins=[("bright", module)])
    config = RunConfig(
        region=Region(name="my_valley", crs=CRS),
        detectors={"bright": {"raster": str(raster)}},
        reviewer=f"reference:{ref}",
        evidence=False,
    )
    result = Engine(config, tmp_path / "run", host).run()
    assert result.status == "finished"
    assert result.stop_reason == "every detector finished its schedule"
    its = result.iterations.sort_values("iteration")
    assert its["candidates_proposed"].tolist() == [1, 2]
    assert its["newly_confirmed"].tolist() == [1, 0]
    assert result.manifest.configs(3) == {"bright": None}
