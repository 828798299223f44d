"""thawdetect: iterative detection of permafrost slope failures from optical and InSAR data.

The public API: everything a plugin author or a notebook user needs is importable from here.

* Running: :func:`run`, :func:`open_run`, :class:`RunResult`, :class:`AccuracyReport` (what
  ``RunResult.accuracy`` holds).
* Writing a detector plugin: :data:`hookimpl`, :class:`Detector`, :class:`DetectorConfig`,
  :class:`IterationContext`, :class:`ReviewOutcome`, the candidate schema (:data:`SCORE_COLUMN`,
  :data:`SERIES_COLUMN`, :func:`validate_candidates`, :func:`empty_candidates`),
  :class:`TimeSeries`, :class:`ImageFrame`, :class:`Region`, :class:`RegionDetectorData`, the
  config path types :data:`InputPath` (a file the run checks exists) and :data:`OutputPath` (a
  file or folder the detector writes), and
  :class:`PluginHost` (to test a plugin without installing it: ``PluginHost(plugins=[...])``).
* Adding an inventory export format: :class:`Exporter` (hook ``thawdetect_register_exporters``).
* Errors: :class:`ThawdetectError` and its one-line subclasses.

Heavy dependencies (geopandas, rasterio) load on first use of a name, so ``import thawdetect``
and ``thawdetect --help`` stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from thawdetect._lazy import lazy_attributes

__version__ = "0.1.0"

from thawdetect.core.plugin_api.hookspecs import hookimpl

if TYPE_CHECKING:
    from thawdetect.api import RunResult, open_run, run
    from thawdetect.core.accuracy.metrics import AccuracyReport
    from thawdetect.core.errors import (
        ConfigError,
        CRSMismatchError,
        GridMismatchError,
        InputError,
        MissingBandError,
        MissingDependencyError,
        PluginError,
        ThawdetectError,
    )
    from thawdetect.core.exporters import Exporter
    from thawdetect.core.paths import InputPath, OutputPath
    from thawdetect.core.plugin_api.context import IterationContext
    from thawdetect.core.plugin_api.detector import (
        SCORE_COLUMN,
        SERIES_COLUMN,
        Detector,
        DetectorConfig,
        ImageFrame,
        ReviewOutcome,
        TimeSeries,
        empty_candidates,
        validate_candidates,
    )
    from thawdetect.core.plugin_api.host import PluginHost
    from thawdetect.core.regions import Region, RegionDetectorData

_LAZY = {
    "run": "thawdetect.api",
    "open_run": "thawdetect.api",
    "RunResult": "thawdetect.api",
    "AccuracyReport": "thawdetect.core.accuracy.metrics",
    "Exporter": "thawdetect.core.exporters",
    "SCORE_COLUMN": "thawdetect.core.plugin_api.detector",
    "SERIES_COLUMN": "thawdetect.core.plugin_api.detector",
    "Detector": "thawdetect.core.plugin_api.detector",
    "DetectorConfig": "thawdetect.core.plugin_api.detector",
    "ImageFrame": "thawdetect.core.plugin_api.detector",
    "IterationContext": "thawdetect.core.plugin_api.context",
    "ReviewOutcome": "thawdetect.core.plugin_api.detector",
    "TimeSeries": "thawdetect.core.plugin_api.detector",
    "empty_candidates": "thawdetect.core.plugin_api.detector",
    "validate_candidates": "thawdetect.core.plugin_api.detector",
    "PluginHost": "thawdetect.core.plugin_api.host",
    "InputPath": "thawdetect.core.paths",
    "OutputPath": "thawdetect.core.paths",
    "Region": "thawdetect.core.regions",
    "RegionDetectorData": "thawdetect.core.regions",
    "ThawdetectError": "thawdetect.core.errors",
    "ConfigError": "thawdetect.core.errors",
    "InputError": "thawdetect.core.errors",
    "CRSMismatchError": "thawdetect.core.errors",
    "GridMismatchError": "thawdetect.core.errors",
    "MissingBandError": "thawdetect.core.errors",
    "MissingDependencyError": "thawdetect.core.errors",
    "PluginError": "thawdetect.core.errors",
}

__all__ = [
    "SCORE_COLUMN",
    "SERIES_COLUMN",
    "AccuracyReport",
    "CRSMismatchError",
    "ConfigError",
    "Detector",
    "DetectorConfig",
    "Exporter",
    "GridMismatchError",
    "ImageFrame",
    "InputError",
    "InputPath",
    "IterationContext",
    "MissingBandError",
    "MissingDependencyError",
    "OutputPath",
    "PluginError",
    "PluginHost",
    "Region",
    "RegionDetectorData",
    "ReviewOutcome",
    "RunResult",
    "ThawdetectError",
    "TimeSeries",
    "__version__",
    "empty_candidates",
    "hookimpl",
    "open_run",
    "run",
    "validate_candidates",
]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
