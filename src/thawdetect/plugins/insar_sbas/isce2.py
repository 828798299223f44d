"""Sentinel-1 SLCs (``slc_dir``) through ISCE2 topsStack and MintPy to detection, in one run.

1. ``stackSentinel.py`` writes the processing steps into ``run_files/`` (the command is built from
   :class:`Isce2Options`; defaults: the Qilian study's 2 × 7 looks, 5 connections, Goldstein
   filter, snaphu minimum-cost-flow unwrapping) and is recorded in ``stackSentinel.cfg``;
2. every ``run_files/run_NN_*`` is executed in numeric order with ``bash``, each with its own log
   (``thawdetect_logs/run_NN_*.log``) and, once it succeeds, a marker
   (``thawdetect_steps/run_NN_*.done`` holding the digest of the run file). A killed or failed
   run resumes at the first step without a matching marker; a step whose run file changed runs
   again, and so does every step after it;
3. MintPy ``smallbaselineApp`` runs with the ISCE2 loader (``mintpy.load.processor = isce``) on
   ``merged/interferograms`` and ``merged/geom_reference`` (template
   ``insar_sbas_mintpy/thawdetect_mintpy_isce.txt``; the same network and inversion settings as
   for HyP3 stacks);
4. the detector reads MintPy's radar-coordinate ``timeseries*.h5`` and geocodes it through
   ``inputs/geometryRadar.h5`` (:mod:`.geocode`).

ISCE2 is not on PyPI: without it the run stops with one line saying how to get it
(``conda env create -f environment.yml``). A failing step stops with one line naming the run file
and its log; nothing done before it is lost.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

from thawdetect.plugin_api import InputError, PluginError, ThawdetectError, write_text_atomic
from thawdetect.plugins.insar_sbas.config import InsarSbasConfig

__all__ = [
    "Isce2MissingError",
    "execute_run_files",
    "find_isce2",
    "list_run_files",
    "run_isce2_stack",
    "run_stack_sentinel",
    "stack_sentinel_command",
    "write_isce_mintpy_template",
]

INSTALL_HINT = (
    "ISCE2 is needed for Sentinel-1 SLC processing (slc_dir) but is not installed; it is not on "
    "PyPI: conda env create -f environment.yml (conda-forge isce2), or give MintPy products / a "
    "HyP3 stack instead"
)
_RUN_FILE = re.compile(r"^run_(\d+)_")


class Isce2MissingError(ThawdetectError):
    """ISCE2's ``stackSentinel.py`` cannot be found."""


def find_isce2() -> str | None:
    """Path of ``stackSentinel.py``: PATH, conda-forge's ``share/isce2/topsStack``, or the
    ``contrib/stack/topsStack`` of the ``isce`` package."""
    exe = shutil.which("stackSentinel.py")
    if exe:
        return exe
    try:
        import isce  # type: ignore[import-not-found]
    except ImportError:
        return None
    import sys

    for cand in (
        Path(sys.prefix) / "share" / "isce2" / "topsStack" / "stackSentinel.py",
        Path(isce.__file__).parent / "contrib" / "stack" / "topsStack" / "stackSentinel.py",
    ):
        if cand.exists():
            return str(cand)
    return None


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


def _digest(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def run_stack_sentinel(config: InsarSbasConfig, *, run_dir: Path, region: Any = None) -> Path:
    """Write ``stackSentinel.cfg`` and run ``stackSentinel.py`` once (it writes ``run_files/``).

    The call is skipped when ``run_files/`` already came from the same command.

    Returns:
        The ISCE2 work folder.

    Raises:
        InputError: bad SLC folder; Isce2MissingError: ISCE2 absent (one line, how to get it);
        PluginError: stackSentinel.py failed (one line; ``stackSentinel.log`` holds its output).
    """
    work = Path(config.isce2.work_dir or Path(run_dir) / "insar_sbas_isce2")
    work.mkdir(parents=True, exist_ok=True)
    exe = find_isce2()
    cmd = stack_sentinel_command(
        config, work_dir=work, region=region, exe=exe or "stackSentinel.py"
    )
    record = work / "stackSentinel.cfg"
    text = "# written by thawdetect (insar_sbas); run in this folder\n" + shlex.join(cmd) + "\n"
    marker = work / "thawdetect_steps" / "stackSentinel.done"
    done = marker.exists() and marker.read_text() == hashlib.sha1(text.encode()).hexdigest()
    record.write_text(text)
    if done and list_run_files(work):
        return work
    if exe is None:
        raise Isce2MissingError(f"{config.slc_dir}: {INSTALL_HINT}")
    log = work / "stackSentinel.log"
    with log.open("w") as fh:
        proc = subprocess.run(cmd, cwd=work, stdout=fh, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        raise PluginError(
            f"{config.slc_dir}: stackSentinel.py failed (exit {proc.returncode}): "
            f"{_last_line(log)}; full log: {log}"
        )
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(hashlib.sha1(text.encode()).hexdigest())
    return work


def list_run_files(work: Path) -> list[Path]:
    """``run_files/run_NN_*`` in numeric order (``run_2`` before ``run_10``), no ``.job`` files."""
    folder = Path(work) / "run_files"
    if not folder.is_dir():
        return []
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and _RUN_FILE.match(p.name) and p.suffix not in (".job", ".log")
    ]
    return sorted(files, key=lambda p: (int(_RUN_FILE.match(p.name).group(1)), p.name))  # type: ignore[union-attr]


def _last_line(log: Path) -> str:
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def execute_run_files(work: Path, *, shell: str = "bash") -> list[str]:
    """Run every ``run_files/run_NN_*`` in order, resuming after the steps already done.

    Each step gets a log (``thawdetect_logs/<step>.log``) and, when it exits 0, a marker
    (``thawdetect_steps/<step>.done``, the run file's digest). A step whose marker matches is
    skipped; once one step runs, every later step runs too (its inputs changed).

    Returns:
        The names of the steps that ran in this call.

    Raises:
        InputError: no run files in ``work``.
        PluginError: a step failed: one line naming its run file, exit code, last log line and
            log path; the markers of the steps before it stay.
    """
    from thawdetect.plugin_api import track

    work = Path(work)
    steps = list_run_files(work)
    if not steps:
        raise InputError(work / "run_files", "no run_NN_* files (stackSentinel.py did not run?)")
    markers = work / "thawdetect_steps"
    logs = work / "thawdetect_logs"
    markers.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    ran: list[str] = []
    for step in track(steps, "ISCE2 run files", total=len(steps)):
        marker = markers / f"{step.name}.done"
        digest = _digest(step)
        if not ran and marker.exists() and marker.read_text() == digest:
            continue
        marker.unlink(missing_ok=True)
        log = logs / f"{step.name}.log"
        with log.open("w") as fh:
            proc = subprocess.run(
                [shell, str(step)], cwd=work, stdout=fh, stderr=subprocess.STDOUT, check=False
            )
        if proc.returncode != 0:
            raise PluginError(
                f"{step}: ISCE2 step failed (exit {proc.returncode}): {_last_line(log)}; "
                f"log: {log}; run again to resume at this step"
            )
        write_text_atomic(marker, digest)
        ran.append(step.name)
    return ran


def write_isce_mintpy_template(config: InsarSbasConfig, isce_work: Path, path: Path) -> Path:
    """A ``smallbaselineApp`` template that loads a topsStack work folder (ISCE2 loader).

    The MintPy network/inversion settings are those of the HyP3 path
    (:func:`thawdetect.plugins.insar_sbas.hyp3.processing_lines`). MintPy's own geocode step is
    off: the detector geocodes the radar products through ``inputs/geometryRadar.h5``.
    """
    from thawdetect.plugins.insar_sbas.hyp3 import processing_lines

    w = Path(isce_work).resolve()
    geom = w / "merged" / "geom_reference"
    ifg = w / "merged" / "interferograms" / "*"
    lines = [
        "## MintPy template written by thawdetect (insar_sbas) for an ISCE2 topsStack folder",
        "mintpy.load.processor = isce",
        f"mintpy.load.metaFile = {w / 'reference' / 'IW*.xml'}",
        f"mintpy.load.baselineDir = {w / 'baselines'}",
        f"mintpy.load.unwFile = {ifg / 'filt_fine.unw'}",
        f"mintpy.load.corFile = {ifg / 'filt_fine.cor'}",
        f"mintpy.load.connCompFile = {ifg / 'filt_fine.unw.conncomp'}",
        f"mintpy.load.demFile = {geom / 'hgt.rdr'}",
        f"mintpy.load.lookupYFile = {geom / 'lat.rdr'}",
        f"mintpy.load.lookupXFile = {geom / 'lon.rdr'}",
        f"mintpy.load.incAngleFile = {geom / 'los.rdr'}",
        f"mintpy.load.azAngleFile = {geom / 'los.rdr'}",
        f"mintpy.load.shadowMaskFile = {geom / 'shadowMask.rdr'}",
        f"mintpy.load.waterMaskFile = {geom / 'waterMask.rdr'}",
        *processing_lines(config),
        "mintpy.geocode = no",
    ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def run_isce2_stack(
    config: InsarSbasConfig, *, run_dir: Path, region: Any = None
) -> dict[str, Path]:
    """SLCs → ISCE2 run files → MintPy (ISCE2 loader): the products the detector reads.

    Returns:
        ``timeseries``, ``temporalCoherence`` (radar coordinates) and ``geometry``
        (``inputs/geometryRadar.h5``, also the lookup table).

    Raises:
        Isce2MissingError, InputError, PluginError: see :func:`run_stack_sentinel`,
            :func:`execute_run_files` and :func:`thawdetect.plugins.insar_sbas.hyp3.run_mintpy`.
    """
    from thawdetect.plugins.insar_sbas.hyp3 import run_mintpy

    work = run_stack_sentinel(config, run_dir=run_dir, region=region)
    execute_run_files(work)
    mintpy_work = Path(config.mintpy.work_dir or Path(run_dir) / "insar_sbas_mintpy")
    mintpy_work.mkdir(parents=True, exist_ok=True)
    template = write_isce_mintpy_template(config, work, mintpy_work / "thawdetect_mintpy_isce.txt")
    out = run_mintpy(template, mintpy_work, source=Path(config.slc_dir))  # type: ignore[arg-type]
    out["geometry"] = mintpy_work / "inputs" / "geometryRadar.h5"
    return out
