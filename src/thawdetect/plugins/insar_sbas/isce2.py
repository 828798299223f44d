"""Input (d): Sentinel-1 SLCs through ISCE2 topsStack (``stackSentinel.py``).

thawdetect writes the ``stackSentinel.py`` command (and a ``stackSentinel.cfg`` record of it) from
:class:`Isce2Options` (defaults: the Qilian study: 2 × 7 looks, 5 connections, Goldstein filter,
snaphu minimum-cost-flow unwrapping) and runs it when ISCE2 is installed. ISCE2 is not on PyPI:
without it the run stops with one line saying how to get it (conda ``environment.yml``).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

from thawdetect.core.errors import InputError, PluginError, ThawdetectError
from thawdetect.plugins.insar_sbas.config import InsarSbasConfig

__all__ = ["Isce2MissingError", "find_isce2", "run_stack_sentinel", "stack_sentinel_command"]

INSTALL_HINT = (
    "ISCE2 is needed for Sentinel-1 SLC processing (slc_dir) but is not installed; it is not on "
    "PyPI: conda env create -f environment.yml (conda-forge isce2), or give MintPy products / a "
    "HyP3 stack instead"
)


class Isce2MissingError(ThawdetectError):
    """ISCE2's ``stackSentinel.py`` cannot be found."""


def find_isce2() -> str | None:
    """Path of ``stackSentinel.py`` (PATH, or ``$ISCE_HOME/../contrib/stack/topsStack``)."""
    exe = shutil.which("stackSentinel.py")
    if exe:
        return exe
    try:
        import isce  # type: ignore[import-not-found]
    except ImportError:
        return None
    cand = Path(isce.__file__).parent / "contrib" / "stack" / "topsStack" / "stackSentinel.py"
    return str(cand) if cand.exists() else None


def stack_sentinel_command(
    config: InsarSbasConfig, *, work_dir: Path, region: Any = None, exe: str = "stackSentinel.py"
) -> list[str]:
    """The ``stackSentinel.py`` argument list for ``config`` (interferogram workflow).

    Raises:
        InputError: the SLC folder is missing or has no Sentinel-1 ``S1*_IW_SLC*`` files.
    """
    opts = config.isce2
    slc = Path(config.slc_dir)  # type: ignore[arg-type]
    if not slc.is_dir():
        raise InputError(slc, "SLC folder not found")
    if not any(slc.glob("S1*_IW_SLC*")):
        raise InputError(slc, "no Sentinel-1 SLC (S1*_IW_SLC*.zip or .SAFE) in the folder")
    bbox = opts.bbox_snwe
    if bbox is None and region is not None and getattr(region, "bbox_wgs84", None):
        w, s, e, n = region.bbox_wgs84
        bbox = (s, n, w, e)
    cmd = [
        exe,
        "-s",
        str(slc.resolve()),
        "-w",
        str(Path(work_dir).resolve()),
        "-W",
        "interferogram",
        "-C",
        "geometry",
        "-c",
        str(opts.connections),
        "-z",
        str(opts.azimuth_looks),
        "-r",
        str(opts.range_looks),
        "-f",
        f"{opts.filter_strength:g}",
        "-u",
        opts.unwrapper,
        "-n",
        opts.swath_num,
    ]
    if opts.orbit_dir:
        cmd += ["-o", str(opts.orbit_dir)]
    if opts.aux_dir:
        cmd += ["-a", str(opts.aux_dir)]
    if opts.dem_file:
        cmd += ["-d", str(opts.dem_file)]
    if bbox is not None:
        cmd += ["-b", " ".join(f"{v:g}" for v in bbox)]
    return cmd


def run_stack_sentinel(config: InsarSbasConfig, *, run_dir: Path, region: Any = None) -> Path:
    """Write the stackSentinel configuration and run it (only the run-file generation).

    Returns:
        The ISCE2 work folder (``run_files/`` then hold the processing steps).

    Raises:
        InputError: bad SLC folder; Isce2MissingError: ISCE2 absent (one line, how to get it);
        PluginError: stackSentinel.py failed.
    """
    work = Path(config.isce2.work_dir or Path(run_dir) / "insar_sbas_isce2")
    work.mkdir(parents=True, exist_ok=True)
    exe = find_isce2()
    cmd = stack_sentinel_command(
        config, work_dir=work, region=region, exe=exe or "stackSentinel.py"
    )
    (work / "stackSentinel.cfg").write_text(
        "# written by thawdetect (insar_sbas); run in this folder\n" + shlex.join(cmd) + "\n"
    )
    if exe is None:
        raise Isce2MissingError(f"{config.slc_dir}: {INSTALL_HINT}")
    proc = subprocess.run(
        cmd, cwd=work, capture_output=True, text=True, check=False
    )  # pragma: no cover
    if proc.returncode != 0:  # pragma: no cover - needs ISCE2
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise PluginError(f"{config.slc_dir}: stackSentinel.py failed: {last[0]}")
    raise PluginError(  # pragma: no cover - needs ISCE2
        f"{work}: ISCE2 run files written; run {work}/run_files/run_* in order, then set "
        "hyp3_dir/velocity_file to the MintPy products (ISCE2 steps take hours)"
    )
