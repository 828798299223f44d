"""A HyP3 interferogram stack (``hyp3_dir``), processed by the real MintPy ``smallbaselineApp.py``.

thawdetect writes the MintPy template from its own config (:class:`MintpyOptions`; defaults are
the Qilian study's network and inversion settings) and runs MintPy in a subprocess in a cached
work folder; the resulting ``timeseries.h5`` and ``temporalCoherence.h5`` feed the detector.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from thawdetect.plugin_api import InputError, MissingDependencyError, PluginError
from thawdetect.plugins.insar_sbas.config import InsarSbasConfig

__all__ = [
    "find_hyp3_files",
    "processing_lines",
    "run_mintpy",
    "run_smallbaseline",
    "smallbaseline_commands",
    "write_mintpy_template",
]

_PATTERNS = {
    "unwFile": "*unw_phase*.tif",
    "corFile": "*corr*.tif",
    "demFile": "*dem*.tif",
    "incAngleFile": "*lv_theta*.tif",
    "azAngleFile": "*lv_phi*.tif",
    "waterMaskFile": "*water_mask*.tif",
}


def find_hyp3_files(hyp3_dir: Path) -> dict[str, str]:
    """Glob patterns MintPy should load, checked to match files (flat or one folder per pair).

    Raises:
        InputError: the folder is missing or holds no ``*unw_phase*.tif``/``*corr*.tif``/DEM.
    """
    hyp3_dir = Path(hyp3_dir)
    if not hyp3_dir.is_dir():
        raise InputError(hyp3_dir, "HyP3 stack folder not found")
    out: dict[str, str] = {}
    for key, pat in _PATTERNS.items():
        for layout in (f"*/{pat}", pat):
            if list(hyp3_dir.glob(layout)):
                out[key] = str(hyp3_dir.resolve() / layout)
                break
    missing = [k for k in ("unwFile", "corFile", "demFile") if k not in out]
    if missing:
        names = ", ".join(_PATTERNS[k] for k in missing)
        raise InputError(hyp3_dir, f"not a HyP3 stack: no {names} (flat or one folder per pair)")
    n_unw = len(list(hyp3_dir.glob(out["unwFile"].replace(str(hyp3_dir.resolve()) + "/", ""))))
    if n_unw < 3:
        raise InputError(hyp3_dir, f"only {n_unw} interferograms; SBAS needs at least 3")
    return out


def processing_lines(config: InsarSbasConfig) -> list[str]:
    """The ``mintpy.*`` network, inversion and correction settings (the Qilian study's)."""
    opts = config.mintpy
    ref = "auto" if opts.reference_yx is None else f"{opts.reference_yx[0]},{opts.reference_yx[1]}"
    lines = [
        f"mintpy.network.tempBaseMax = {opts.max_temporal_baseline_days}",
        f"mintpy.network.perpBaseMax = {opts.max_perp_baseline_m:g}",
        f"mintpy.network.connNumMax = {opts.connection_number}",
        "mintpy.network.coherenceBased = yes",
        f"mintpy.network.minCoherence = {opts.min_coherence:g}",
        f"mintpy.networkInversion.minTempCoh = {opts.min_temporal_coherence:g}",
        f"mintpy.reference.yx = {ref}",
        f"mintpy.troposphericDelay.method = {opts.troposphere_method}",
        f"mintpy.deramp = {opts.deramp}",
        f"mintpy.topographicResidual = {'yes' if opts.topographic_residual else 'no'}",
        f"mintpy.residualRMS.cutoff = {opts.residual_rms_cutoff:g}",
        f"mintpy.timeFunc.periodic = {config.period_yr:g}",
        "mintpy.compute.cluster = no",
        "mintpy.plot = no",
        "mintpy.save.kmz = no",
        "mintpy.save.hdfEos5 = no",
    ]
    if opts.troposphere_method == "pyaps":
        lines.append("mintpy.troposphericDelay.weatherModel = ERA5")
    return lines


def write_mintpy_template(config: InsarSbasConfig, hyp3_dir: Path, path: Path) -> Path:
    """Write a ``smallbaselineApp.py`` template (``mintpy.*`` keys) for a HyP3 stack."""
    files = find_hyp3_files(hyp3_dir)
    lines = [
        "## MintPy template written by thawdetect (insar_sbas) from its config",
        "mintpy.load.processor = hyp3",
        *(f"mintpy.load.{k} = {v}" for k, v in files.items()),
        *processing_lines(config),
    ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def _final_timeseries(work: Path) -> Path | None:
    names = sorted(work.glob("timeseries*.h5"), key=lambda p: len(p.name), reverse=True)
    names = [p for p in names if "Residual" not in p.name and "ERA5" not in p.stem[-5:]]
    return names[0] if names else None


def run_smallbaseline(config: InsarSbasConfig, *, run_dir: Path) -> dict[str, Path]:
    """Run MintPy ``smallbaselineApp.py`` on ``config.hyp3_dir`` (cached by template content).

    Returns:
        Paths of ``timeseries`` (the most corrected one), ``temporalCoherence``, ``velocity`` and,
        when present, ``geometry`` (``inputs/geometryGeo.h5``).

    Raises:
        MissingDependencyError: MintPy or GDAL's Python bindings are not installed.
        PluginError: MintPy failed (the last lines of its log are in ``mintpy.log``).
    """
    import importlib.util

    if importlib.util.find_spec("mintpy") is None:
        raise MissingDependencyError("mintpy", "insar", "processing a HyP3 stack")
    if importlib.util.find_spec("osgeo") is None:
        raise MissingDependencyError(
            "osgeo (GDAL Python bindings)",
            "insar",
            "MintPy's HyP3 reader; "
            "apt-get install libgdal-dev gdal-bin && "
            "pip install --no-build-isolation gdal==$(gdal-config --version)",
        )
    assert config.hyp3_dir is not None
    work = Path(config.mintpy.work_dir or Path(run_dir) / "insar_sbas_mintpy")
    work.mkdir(parents=True, exist_ok=True)
    template = write_mintpy_template(config, Path(config.hyp3_dir), work / "thawdetect_mintpy.txt")
    out = run_mintpy(template, work, source=Path(config.hyp3_dir))
    geom = work / "inputs" / "geometryGeo.h5"
    if geom.exists():
        out["geometry"] = geom
    return out


def smallbaseline_commands(template: Path, work: Path) -> list[list[str]]:
    """The ``smallbaselineApp`` calls: every step but ``quick_overview``, in two runs.

    quick_overview is diagnostics only, and its histogram plot crashes when no triplet has an
    unwrapping error; the steps before and after it are run.
    """
    base = [
        sys.executable,
        "-m",
        "mintpy.cli.smallbaselineApp",
        str(template),
        "--work-dir",
        str(work),
    ]
    return [[*base, "--end", "reference_point"], [*base, "--start", "invert_network"]]


def run_mintpy(template: Path, work: Path, *, source: Path) -> dict[str, Path]:
    """Run ``smallbaselineApp`` with ``template`` in ``work`` unless the same template already ran.

    Returns:
        ``timeseries`` (the most corrected one), ``temporalCoherence`` and ``velocity`` paths.

    Raises:
        PluginError: MintPy failed (one line naming ``source``; the log is ``work/mintpy.log``).
    """
    digest = hashlib.sha1(template.read_bytes()).hexdigest()
    stamp = work / ".thawdetect_done"
    ts = _final_timeseries(work)
    if not (stamp.exists() and stamp.read_text() == digest and ts is not None):
        log = work / "mintpy.log"
        with log.open("w") as fh:
            for cmd in smallbaseline_commands(template, work):
                proc = subprocess.run(
                    cmd, cwd=work, stdout=fh, stderr=subprocess.STDOUT, check=False
                )
                if proc.returncode != 0:
                    break
        if proc.returncode != 0:
            tail = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()][-1:]
            raise PluginError(
                f"{source}: MintPy smallbaselineApp failed (exit {proc.returncode}): "
                f"{tail[0] if tail else 'no output'}; full log: {log}"
            )
        stamp.write_text(digest)
        ts = _final_timeseries(work)
    if ts is None:
        raise PluginError(f"{work}: MintPy finished without a timeseries*.h5")
    return {
        "timeseries": ts,
        "temporalCoherence": work / "temporalCoherence.h5",
        "velocity": work / "velocity.h5",
    }
