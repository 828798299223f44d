"""insar_sbas input sources (issue 22): one ordered registry, and a new kind of input is one entry.

The built-in sources are each exercised on real files in their own tests (test_insar_hyp3_mintpy,
test_insar_isce2, test_insar_licsbas*, test_insar_geocode, test_insar_detector); here: that the
registry covers every configurable source, and that an added source is used by the detector's
loader with no other change.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS

from thawdetect.core.errors import ConfigError
from thawdetect.core.grid import GridSpec
from thawdetect.plugins.insar_sbas import products
from thawdetect.plugins.insar_sbas.config import INPUT_SOURCES, InsarSbasConfig


def test_every_configurable_source_has_a_loader_in_order():
    names = [s.name for s in products.SOURCES]
    assert set(INPUT_SOURCES) <= set(names)
    # preparing stages come before the readers: a SLC or HyP3 stack becomes a MintPy series,
    # which may be LiCSBAS's layout, before MintPy reads it
    assert names.index("isce2") < names.index("licsbas") < names.index("mintpy")
    assert names.index("hyp3") < names.index("licsbas")
    readers = [s.name for s in products.SOURCES if s.read is not None]
    assert readers == ["mintpy", "geotiff", "unwrapped"]
    with pytest.raises(ConfigError, match=r"no input; set velocity_file, timeseries_file, "
                       r"rate_file, unw_phase_file, hyp3_dir or slc_dir"):  # fmt: skip
        products.load_products(InsarSbasConfig(), run_dir=Path("."), work_dir=Path("."))
    with pytest.raises(ValueError, match="give one input source, got velocity_file/timeseries_"):
        InsarSbasConfig(timeseries_file="a.h5", rate_file="b.tif")


def test_an_added_source_is_read_with_no_other_change(tmp_path, monkeypatch):
    """An ASCII grid of rates (ESRI .asc header) as a new source, ahead of the GeoTIFF reader."""
    asc = tmp_path / "rate.asc"
    rate = np.arange(12, dtype=np.float32).reshape(3, 4)
    header = "ncols 4\nnrows 3\nxllcorner 500000\nyllcorner 4000000\ncellsize 30\n"
    asc.write_text(header + "\n".join(" ".join(f"{v:g}" for v in row) for row in rate) + "\n")

    def read_asc(cfg, run_dir):
        lines = Path(cfg.rate_file).read_text().splitlines()
        head = dict(line.split() for line in lines[:5])
        data = np.loadtxt(lines[5:], dtype=np.float32)
        size = float(head["cellsize"])
        top = float(head["yllcorner"]) + size * data.shape[0]
        grid = GridSpec(
            CRS.from_epsg(32647), Affine(size, 0, float(head["xllcorner"]), 0, -size, top),
            data.shape[1], data.shape[0],
        )  # fmt: skip
        return products.InsarProducts(grid=grid, rate_mm_yr=data, source=Path(cfg.rate_file))

    added = products.Source(
        "ascii_grid", read=read_asc, selects=lambda cfg: str(cfg.rate_file).endswith(".asc")
    )
    at = [s.name for s in products.SOURCES].index("geotiff")
    monkeypatch.setattr(
        products, "SOURCES", [*products.SOURCES[:at], added, *products.SOURCES[at:]]
    )
    got = products.load_products(
        InsarSbasConfig(rate_file=asc), run_dir=tmp_path, work_dir=tmp_path
    )
    np.testing.assert_array_equal(got.rate_mm_yr, rate)
    assert got.grid.shape == (3, 4) and got.source == asc
