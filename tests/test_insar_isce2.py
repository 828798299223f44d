"""SLCs through ISCE2: the stackSentinel call, run files in order with resume markers and logs,
then MintPy with the ISCE2 loader; ISCE2 itself is absent here, so tests stop at each call."""

from __future__ import annotations

from typing import ClassVar

import pytest

from thawdetect.core.errors import InputError
from thawdetect.core.plugin_api.context import IterationContext
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
    """SLCs → ISCE2 → MintPy → the products the detector reads, for real (``-m isce2``, with
    ISCE2 installed through conda and ``THAWDETECT_TEST_SLC_DIR`` holding a Sentinel-1 stack
    and its orbits; hours of work): every product exists and is a MintPy file on one grid."""
    import os
    from pathlib import Path

    from thawdetect.plugins.insar_sbas.isce2 import run_isce2_stack
    from thawdetect.plugins.insar_sbas.mintpy_h5 import read_timeseries_info

    if find_isce2() is None:
        pytest.fail("-m isce2 needs ISCE2 (conda env create -f environment.yml)")
    slc = os.environ.get("THAWDETECT_TEST_SLC_DIR")
    if not slc or not Path(slc).is_dir():
        pytest.fail("-m isce2 needs THAWDETECT_TEST_SLC_DIR: a folder of Sentinel-1 SLC zips")
    cfg = InsarSbasConfig(slc_dir=Path(slc), isce2={"orbit_dir": Path(slc) / "orbits"})
    region = PluginHost().region("qilian")
    out = run_isce2_stack(cfg, run_dir=tmp_path, region=region)
    assert {"timeseries", "temporalCoherence", "geometry"} <= set(out)
    assert all(Path(out[k]).is_file() for k in ("timeseries", "temporalCoherence", "geometry"))
    dates, _, attrs, shape = read_timeseries_info(out["timeseries"])
    assert len(dates) >= 2 and shape[0] == len(dates) and attrs.get("UNIT") in ("m", "cm", "mm")


def _run_files(work, steps):
    rf = work / "run_files"
    rf.mkdir(parents=True, exist_ok=True)
    for name, body in steps.items():
        (rf / name).write_text(body)
    return rf


class TestRunFiles:
    STEPS: ClassVar[dict[str, str]] = {
        "run_01_unpack_topo_reference": "echo run_01 >> order.txt\n",
        "run_02_unpack_secondary_slc": "echo run_02 >> order.txt\necho two\n",
        "run_10_merge_burst_igram": "echo run_10 >> order.txt\n",
        "run_02_unpack_secondary_slc.job": "exit 9\n",  # cluster job file: never run
    }

    def test_numeric_order_logs_and_markers(self, tmp_path):
        from thawdetect.plugins.insar_sbas.isce2 import execute_run_files, list_run_files

        _run_files(tmp_path, self.STEPS)
        names = [p.name for p in list_run_files(tmp_path)]
        assert names == [
            "run_01_unpack_topo_reference",
            "run_02_unpack_secondary_slc",
            "run_10_merge_burst_igram",
        ]
        assert execute_run_files(tmp_path) == names
        assert (tmp_path / "order.txt").read_text().split() == ["run_01", "run_02", "run_10"]
        log = tmp_path / "thawdetect_logs" / "run_02_unpack_secondary_slc.log"
        assert log.read_text() == "two\n"
        assert sorted(p.name for p in (tmp_path / "thawdetect_steps").iterdir()) == [
            f"{n}.done" for n in names
        ]
        # a second call resumes a finished stack: nothing runs again
        assert execute_run_files(tmp_path) == []
        assert (tmp_path / "order.txt").read_text().split() == ["run_01", "run_02", "run_10"]

    def test_failed_step_is_one_line_and_resumes_there(self, tmp_path):
        from thawdetect.core.errors import PluginError
        from thawdetect.plugins.insar_sbas.isce2 import execute_run_files

        steps = dict(self.STEPS)
        steps["run_02_unpack_secondary_slc"] = "echo run_02 >> order.txt\necho boom >&2\nexit 3\n"
        rf = _run_files(tmp_path, steps)
        with pytest.raises(PluginError) as exc:
            execute_run_files(tmp_path)
        msg = str(exc.value)
        assert "\n" not in msg
        assert msg.startswith(str(rf / "run_02_unpack_secondary_slc"))
        assert "exit 3" in msg and "boom" in msg and "resume" in msg
        assert (tmp_path / "thawdetect_steps" / "run_01_unpack_topo_reference.done").exists()
        assert not (tmp_path / "thawdetect_steps" / "run_02_unpack_secondary_slc.done").exists()
        (rf / "run_02_unpack_secondary_slc").write_text("echo run_02 >> order.txt\n")
        assert execute_run_files(tmp_path) == [
            "run_02_unpack_secondary_slc",
            "run_10_merge_burst_igram",
        ]
        assert (tmp_path / "order.txt").read_text().split() == [
            "run_01",
            "run_02",
            "run_02",
            "run_10",
        ]

    def test_changed_step_reruns_it_and_every_later_one(self, tmp_path):
        from thawdetect.plugins.insar_sbas.isce2 import execute_run_files

        rf = _run_files(tmp_path, self.STEPS)
        execute_run_files(tmp_path)
        (rf / "run_02_unpack_secondary_slc").write_text("echo run_02b >> order.txt\n")
        assert execute_run_files(tmp_path) == [
            "run_02_unpack_secondary_slc",
            "run_10_merge_burst_igram",
        ]

    def test_no_run_files(self, tmp_path):
        from thawdetect.plugins.insar_sbas.isce2 import execute_run_files

        with pytest.raises(InputError, match="no run_NN_"):
            execute_run_files(tmp_path)


def test_mintpy_template_for_isce_reads_in_mintpy(tmp_path):
    pytest.importorskip("mintpy")
    from mintpy.utils import readfile

    from thawdetect.plugins.insar_sbas.hyp3 import processing_lines
    from thawdetect.plugins.insar_sbas.isce2 import write_isce_mintpy_template

    cfg = InsarSbasConfig(slc_dir=_slc_dir(tmp_path))
    path = write_isce_mintpy_template(cfg, tmp_path / "isce", tmp_path / "t.txt")
    tmpl = readfile.read_template(str(path))
    assert tmpl["mintpy.load.processor"] == "isce"
    w = (tmp_path / "isce").resolve()
    assert tmpl["mintpy.load.unwFile"] == f"{w}/merged/interferograms/*/filt_fine.unw"
    assert tmpl["mintpy.load.lookupYFile"] == f"{w}/merged/geom_reference/lat.rdr"
    assert tmpl["mintpy.load.metaFile"] == f"{w}/reference/IW*.xml"
    assert tmpl["mintpy.load.baselineDir"] == f"{w}/baselines"
    assert tmpl["mintpy.network.tempBaseMax"] == "60" and tmpl["mintpy.geocode"] == "no"
    for line in processing_lines(cfg):  # same network/inversion settings as the HyP3 path
        key, value = (s.strip() for s in line.split("="))
        assert tmpl[key] == value


def test_one_run_goes_run_files_then_mintpy_isce_loader(tmp_path):
    """A resumed ISCE2 stack: run files execute in order, then MintPy is called with the ISCE2
    template. MintPy's isce reader needs ISCE2 itself, so here it fails: one line naming the SLC
    folder and MintPy's log, with every ISCE2 step's marker kept."""
    pytest.importorskip("mintpy")
    import hashlib
    import shlex

    from thawdetect.core.errors import PluginError

    slc = _slc_dir(tmp_path)
    cfg = InsarSbasConfig(slc_dir=slc)
    run = tmp_path / "run"
    work = run / "insar_sbas_isce2"
    _run_files(work, {"run_01_a": "echo a >> order.txt\n", "run_02_b": "echo b >> order.txt\n"})
    # the marker stackSentinel.py leaves behind in an earlier session with ISCE2
    cmd = stack_sentinel_command(cfg, work_dir=work, exe=find_isce2() or "stackSentinel.py")
    text = "# written by thawdetect (insar_sbas); run in this folder\n" + shlex.join(cmd) + "\n"
    (work / "thawdetect_steps").mkdir()
    (work / "thawdetect_steps" / "stackSentinel.done").write_text(
        hashlib.sha1(text.encode()).hexdigest()
    )
    from thawdetect.plugins.insar_sbas.isce2 import run_isce2_stack

    with pytest.raises(PluginError) as exc:
        run_isce2_stack(cfg, run_dir=run, region=None)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(f"{slc}: MintPy smallbaselineApp failed")
    assert (work / "order.txt").read_text().split() == ["a", "b"]
    template = run / "insar_sbas_mintpy" / "thawdetect_mintpy_isce.txt"
    assert "mintpy.load.processor = isce" in template.read_text()
    assert (run / "insar_sbas_mintpy" / "mintpy.log").exists()
    assert (work / "thawdetect_steps" / "run_02_b.done").exists()
