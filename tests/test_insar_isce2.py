"""Input (d): the ISCE2 stackSentinel call is built from the config; ISCE2 itself is absent here."""

from __future__ import annotations

import pytest

from thawdetect.core.errors import InputError
from thawdetect.core.plugin_api.detector import IterationContext
from thawdetect.core.plugin_api.host import PluginHost
from thawdetect.plugins.insar_sbas.config import InsarSbasConfig
from thawdetect.plugins.insar_sbas.isce2 import (
    Isce2MissingError,
    find_isce2,
    stack_sentinel_command,
)


def _slc_dir(tmp_path):
    slc = tmp_path / "slc"
    slc.mkdir()
    for d in ("20190105", "20190117"):
        (slc / f"S1A_IW_SLC__1SDV_{d}T232424_{d}T232451_025000_02C000_ABCD.zip").write_bytes(b"")
    return slc


def test_command_carries_the_study_settings(tmp_path):
    cfg = InsarSbasConfig(slc_dir=_slc_dir(tmp_path), isce2={"orbit_dir": tmp_path / "orb"})
    region = PluginHost(load_entry_points=False).region("qilian")
    cmd = stack_sentinel_command(cfg, work_dir=tmp_path / "w", region=region)
    args = dict(zip(cmd[1::2], cmd[2::2], strict=False))
    assert args["-z"] == "2" and args["-r"] == "7"  # 2 x 7 looks (~30 m)
    assert args["-c"] == "5" and args["-u"] == "snaphu" and args["-W"] == "interferogram"
    assert args["-b"] == "37.4 38.4 99.6 101.1"  # S N W E of the Qilian box
    assert args["-o"] == str(tmp_path / "orb")


def test_missing_isce2_stops_with_one_line(tmp_path):
    if find_isce2() is not None:
        pytest.skip("ISCE2 is installed here")
    host = PluginHost()
    region = host.region("qilian")
    ctx = IterationContext.standalone(region, tmp_path, host=host)
    cfg = InsarSbasConfig(slc_dir=_slc_dir(tmp_path))
    with pytest.raises(Isce2MissingError) as exc:
        host.detector("insar_sbas")(cfg).propose(ctx)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(str(tmp_path / "slc"))
    assert "environment.yml" in msg
    written = (tmp_path / "insar_sbas_isce2" / "stackSentinel.cfg").read_text()
    assert "stackSentinel.py -s" in written and "-z 2 -r 7" in written


def test_slc_folder_without_slcs(tmp_path):
    cfg = InsarSbasConfig(slc_dir=tmp_path)
    with pytest.raises(InputError, match="no Sentinel-1 SLC"):
        stack_sentinel_command(cfg, work_dir=tmp_path / "w")


@pytest.mark.isce2
def test_stack_sentinel_runs(tmp_path):  # pragma: no cover - needs ISCE2 and real SLCs
    assert find_isce2() is not None
