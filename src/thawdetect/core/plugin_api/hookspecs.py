"""Plugin hook specifications (pluggy), prefixed ``thawdetect_``.

Every plugin, built-in or third-party, is a module registered through the ``thawdetect`` entry-point
group and implements some of these hooks with :data:`hookimpl`. See ``docs/plugins.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click
    import geopandas as gpd

    from thawdetect.core.exporters import Exporter
    from thawdetect.core.plugin_api.context import IterationContext
    from thawdetect.core.plugin_api.detector import Detector
    from thawdetect.core.regions import Region

PROJECT_NAME = "thawdetect"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# -- registration hooks ---------------------------------------------------------------------------


@hookspec
def thawdetect_register_detectors(register: Callable[[type[Detector]], None]) -> None:
    """Register detector classes.

    Called once when the plugin host loads. Call ``register(DetectorClass)`` for each
    :class:`~thawdetect.Detector` subclass the plugin provides; its ``name`` becomes the
    ``--detector`` value and the YAML key of its config section.

    Args:
        register: callback taking a Detector subclass.
    """


@hookspec
def thawdetect_register_regions(register: Callable[[Region], None]) -> None:
    """Register region presets, or add a detector's data to an existing preset.

    Registering a :class:`~thawdetect.core.regions.Region` whose name already exists merges its
    ``detectors`` entries into the existing one (so a plugin can say where its detector finds data
    for the built-in ``qilian`` region without redefining the AOI).

    Args:
        register: callback taking a Region.
    """


@hookspec
def thawdetect_register_samples(register: Callable[[str, Callable[[Any], Any]], None]) -> None:
    """Register builders of bundled (synthetic) sample scenes.

    ``register(name, build)``; ``build(out_dir: Path) -> None`` writes the scene into ``out_dir``.
    It must be deterministic. The engine calls it once, on first use, into a cache directory, and
    regions refer to the result as ``{sample_dir}`` in their detector settings.

    Args:
        register: callback taking the sample name and its builder.
    """


@hookspec
def thawdetect_register_services(register: Callable[[str, Any], None]) -> None:
    """Register services other plugins can use without importing this plugin.

    ``register(name, obj)``; consumers call ``host.service(name)``. The terrain plugin registers
    ``"terrain"`` (see :class:`thawdetect.core.plugin_api.services.TerrainService`).

    Args:
        register: callback taking a service name and the object that provides it.
    """


@hookspec
def thawdetect_register_exporters(register: Callable[[Exporter], None]) -> None:
    """Register inventory export formats (``thawdetect inventory export --format NAME``).

    ``register(Exporter(name, suffixes, write, description))``; ``write(frame, path, layer)``
    writes the run's inventory (working CRS) to ``path``, a temporary file the core renames onto
    the output when ``write`` returns. The core registers ``gpkg``, ``geojson`` and ``csv`` the
    same way (:mod:`thawdetect.core.exporters`).

    Args:
        register: callback taking an :class:`~thawdetect.core.exporters.Exporter`.
    """


@hookspec
def thawdetect_register_commands(cli: click.Group) -> None:
    """Add click commands or groups to the ``thawdetect`` command line.

    Called while the CLI is built. Add with ``cli.add_command(...)`` or the ``@cli.command()``
    decorator. Keep imports inside the commands lazy so ``thawdetect --help`` stays fast.

    Args:
        cli: the top-level click group.
    """


# -- review ---------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def thawdetect_review_candidates(
    candidates: gpd.GeoDataFrame, reviewer: str, context: IterationContext
) -> gpd.GeoDataFrame | None:
    """Decide candidates automatically (``firstresult``: the first non-None answer wins).

    Called after candidates are merged and filtered, when the run's reviewer is not ``manual``.
    Return ``None`` if ``reviewer`` is not a spec this plugin understands (the built-in one handles
    ``reference`` and ``reference:PATH``). Otherwise return a DataFrame with one row per candidate
    it decides and columns ``candidate_id``, ``decision`` (confirmed/rejected/unsure/part_of),
    ``probability`` (high/medium/low or empty), ``note`` (optional: ``geometry_wkt``,
    ``part_of``). Candidates it leaves out (or gives an empty or ``pending`` decision) are left
    to a person: the run stops "awaiting review" until they are decided (e.g. a reference
    inventory confirms what it holds, a person the rest). Must not modify ``candidates``.

    Args:
        candidates: merged candidates of this iteration (working CRS), with ``candidate_id``.
        reviewer: the reviewer spec from the run config, e.g. ``"reference:truth.gpkg"``.
        context: the iteration context (run directory, region, iteration number).
    """


# -- observers ------------------------------------------------------------------------------------


@hookspec
def thawdetect_candidates_proposed(
    detector: str, iteration: int, candidates: gpd.GeoDataFrame, context: IterationContext
) -> None:
    """Observe the candidates one detector proposed (before merging). Must not modify them.

    Args:
        detector: the detector's name.
        iteration: 1-based iteration number.
        candidates: the validated candidates of this detector.
        context: the iteration context.
    """


@hookspec
def thawdetect_iteration_finished(
    iteration: int, summary: dict[str, Any], context: IterationContext
) -> None:
    """Observe the end of an iteration (after review and the detectors' ``next_config``).

    Args:
        iteration: 1-based iteration number.
        summary: the iterations-table row (training positives/negatives, candidates proposed,
            newly confirmed, inventory size, per-detector thresholds).
        context: the iteration context.
    """
