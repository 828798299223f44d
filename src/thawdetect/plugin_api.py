"""The plugin API: everything a thawdetect plugin imports, and the only module it needs.

The built-in plugins (``thawdetect.plugins.*``) import nothing else of thawdetect; a test keeps it
so. ``thawdetect`` itself re-exports the part a detector author meets first (``hookimpl``,
``Detector``, ``DetectorConfig``, ``IterationContext``, ``Region``, ...); this module adds the
toolkit the built-ins use:

* the hook marker :data:`hookimpl` and :class:`PluginHost` (to test a plugin without installing it);
* the detector contract: :class:`Detector`, :class:`DetectorConfig`, :class:`IterationContext`,
  :class:`ReviewOutcome`, :class:`TimeSeries`, :class:`ImageFrame` and the candidate schema
  (:data:`SCORE_COLUMN`, :data:`SERIES_COLUMN`, :func:`empty_candidates`,
  :func:`validate_candidates`);
* :class:`Region`, :class:`RegionDetectorData`;
* config building blocks: :data:`InputPath`, :data:`OutputPath`, :class:`StrictModel`,
  :class:`Range`, :class:`AngleRange`, :func:`render_validation_error`;
* services: :class:`TerrainService` (what :func:`terrain_service` returns: the terrain plugin's
  service through the host), :class:`TerrainLayers`, :class:`TerrainRanges`;
* rasters, vectors and heavy work: :class:`GridSpec`, :func:`read_vector`,
  :func:`distance_to_nearest`, :func:`to_cog`, :func:`compute`, :func:`current_scheduler`,
  :func:`task_threads`, :func:`trim_memory`, :func:`release_pages`, :func:`track` (progress bars);
* a run's QGIS project: :func:`write_project`, :func:`style_ledger`;
* files that appear whole or not at all: :func:`atomic_path`, :func:`write_text_atomic`,
  :func:`write_bytes_atomic`;
* inventory export formats: :class:`Exporter` (``thawdetect_register_exporters``);
* one-line errors: :class:`ThawdetectError` and its subclasses.

Names load on first use (geopandas, rasterio and pydantic models are not imported by
``from thawdetect.plugin_api import hookimpl``), so a plugin's ``plugin.py`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from thawdetect._lazy import lazy_attributes
from thawdetect.core.plugin_api.hookspecs import hookimpl

if TYPE_CHECKING:
    from thawdetect.core.atomic import (
        atomic_path,
        write_bytes_atomic,
        write_text_atomic,
    )
    from thawdetect.core.cog import (
        to_cog,
    )
    from thawdetect.core.compute import (
        compute,
        current_scheduler,
        release_pages,
        task_threads,
        trim_memory,
    )
    from thawdetect.core.errors import (
        ConfigError,
        CRSMismatchError,
        EmptyInventoryError,
        GridMismatchError,
        InputError,
        MissingBandError,
        MissingDependencyError,
        PluginError,
        ThawdetectError,
    )
    from thawdetect.core.exporters import Exporter
    from thawdetect.core.grid import (
        GridSpec,
    )
    from thawdetect.core.models import (
        AngleRange,
        Range,
        StrictModel,
        render_validation_error,
    )
    from thawdetect.core.paths import (
        InputPath,
        OutputPath,
    )
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
    from thawdetect.core.plugin_api.host import (
        PluginHost,
    )
    from thawdetect.core.plugin_api.services import (
        TerrainLayers,
        TerrainRanges,
        TerrainService,
        terrain_service,
    )
    from thawdetect.core.progress import (
        track,
    )
    from thawdetect.core.qgis_project import (
        style_ledger,
        write_project,
    )
    from thawdetect.core.regions import (
        Region,
        RegionDetectorData,
    )
    from thawdetect.core.vector import (
        distance_to_nearest,
        read_vector,
    )

_LAZY = {
    # registering: the hook marker and the host that loads plugins
    "PluginHost": "thawdetect.core.plugin_api.host",
    # the detector contract
    "Detector": "thawdetect.core.plugin_api.detector",
    "DetectorConfig": "thawdetect.core.plugin_api.detector",
    "IterationContext": "thawdetect.core.plugin_api.context",
    "ReviewOutcome": "thawdetect.core.plugin_api.detector",
    "TimeSeries": "thawdetect.core.plugin_api.detector",
    "ImageFrame": "thawdetect.core.plugin_api.detector",
    "SCORE_COLUMN": "thawdetect.core.plugin_api.detector",
    "SERIES_COLUMN": "thawdetect.core.plugin_api.detector",
    "empty_candidates": "thawdetect.core.plugin_api.detector",
    "validate_candidates": "thawdetect.core.plugin_api.detector",
    # regions
    "Region": "thawdetect.core.regions",
    "RegionDetectorData": "thawdetect.core.regions",
    # config building blocks
    "InputPath": "thawdetect.core.paths",
    "OutputPath": "thawdetect.core.paths",
    "StrictModel": "thawdetect.core.models",
    "Range": "thawdetect.core.models",
    "AngleRange": "thawdetect.core.models",
    "render_validation_error": "thawdetect.core.models",
    # services plugins offer each other (``host.service(name)``)
    "TerrainService": "thawdetect.core.plugin_api.services",
    "TerrainLayers": "thawdetect.core.plugin_api.services",
    "TerrainRanges": "thawdetect.core.plugin_api.services",
    "terrain_service": "thawdetect.core.plugin_api.services",
    # rasters, vectors and heavy work
    "GridSpec": "thawdetect.core.grid",
    "read_vector": "thawdetect.core.vector",
    "distance_to_nearest": "thawdetect.core.vector",
    "to_cog": "thawdetect.core.cog",
    "compute": "thawdetect.core.compute",
    "current_scheduler": "thawdetect.core.compute",
    "task_threads": "thawdetect.core.compute",
    "trim_memory": "thawdetect.core.compute",
    "release_pages": "thawdetect.core.compute",
    "track": "thawdetect.core.progress",
    # atomic writes
    "atomic_path": "thawdetect.core.atomic",
    "write_bytes_atomic": "thawdetect.core.atomic",
    "write_text_atomic": "thawdetect.core.atomic",
    # export formats
    "Exporter": "thawdetect.core.exporters",
    # a run's QGIS project
    "style_ledger": "thawdetect.core.qgis_project",
    "write_project": "thawdetect.core.qgis_project",
    # one-line errors
    "ThawdetectError": "thawdetect.core.errors",
    "InputError": "thawdetect.core.errors",
    "CRSMismatchError": "thawdetect.core.errors",
    "GridMismatchError": "thawdetect.core.errors",
    "MissingBandError": "thawdetect.core.errors",
    "EmptyInventoryError": "thawdetect.core.errors",
    "ConfigError": "thawdetect.core.errors",
    "PluginError": "thawdetect.core.errors",
    "MissingDependencyError": "thawdetect.core.errors",
}

__all__ = [
    "SCORE_COLUMN",
    "SERIES_COLUMN",
    "AngleRange",
    "CRSMismatchError",
    "ConfigError",
    "Detector",
    "DetectorConfig",
    "EmptyInventoryError",
    "Exporter",
    "GridMismatchError",
    "GridSpec",
    "ImageFrame",
    "InputError",
    "InputPath",
    "IterationContext",
    "MissingBandError",
    "MissingDependencyError",
    "OutputPath",
    "PluginError",
    "PluginHost",
    "Range",
    "Region",
    "RegionDetectorData",
    "ReviewOutcome",
    "StrictModel",
    "TerrainLayers",
    "TerrainRanges",
    "TerrainService",
    "ThawdetectError",
    "TimeSeries",
    "atomic_path",
    "compute",
    "current_scheduler",
    "distance_to_nearest",
    "empty_candidates",
    "hookimpl",
    "read_vector",
    "release_pages",
    "render_validation_error",
    "style_ledger",
    "task_threads",
    "terrain_service",
    "to_cog",
    "track",
    "trim_memory",
    "validate_candidates",
    "write_bytes_atomic",
    "write_project",
    "write_text_atomic",
]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
