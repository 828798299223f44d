"""Terrain plugin hooks: the ``"terrain"`` service and the ``thawdetect terrain`` commands.

Imports nothing heavy: xdem, geopandas and matplotlib load when a service method or a command runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from thawdetect.plugin_api import hookimpl

if TYPE_CHECKING:
    import click


@hookimpl
def thawdetect_register_services(register: Callable[[str, Any], None]) -> None:
    """Offer :class:`~thawdetect.plugins.terrain.toolkit.TerrainToolkit` as ``"terrain"``."""
    from thawdetect.plugins.terrain.toolkit import TerrainToolkit

    register("terrain", TerrainToolkit())


@hookimpl
def thawdetect_register_commands(cli: click.Group) -> None:
    """Add the ``terrain`` command group (``stats``, ``derive``)."""
    from thawdetect.plugins.terrain.cli import terrain

    cli.add_command(terrain)
