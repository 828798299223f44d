"""The public plugin API: the built-in plugins import nothing of thawdetect but it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import thawdetect
import thawdetect.plugin_api as plugin_api

PLUGINS = Path(thawdetect.__file__).parent / "plugins"


def internal_imports(source: str, package: str) -> list[str]:
    """``line: module.name`` of each thawdetect import a plugin in ``package`` may not make.

    Allowed: ``thawdetect.plugin_api``, the public names of ``thawdetect`` and the plugin's own
    package (``thawdetect.plugins.<package>``); relative imports stay inside the package.
    """
    bad: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("thawdetect") and not _allowed(alias.name, package):
                    bad.append(f"{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            module = node.module
            if module == "thawdetect":
                bad += [
                    f"{node.lineno}: thawdetect.{a.name}"
                    for a in node.names
                    if a.name not in thawdetect.__all__
                ]
            elif module.startswith("thawdetect") and not _allowed(module, package):
                bad += [f"{node.lineno}: {module}.{a.name}" for a in node.names]
    return sorted(bad, key=lambda line: int(line.split(":")[0]))


def _allowed(module: str, package: str) -> bool:
    own = f"thawdetect.plugins.{package}"
    return module == "thawdetect.plugin_api" or module == own or module.startswith(own + ".")


def test_checker_flags_internal_names():
    source = (
        "from thawdetect.plugin_api import GridSpec, hookimpl\n"
        "from thawdetect import Detector\n"
        "from thawdetect.plugins.terrain.masks import x\n"
        "from thawdetect.core.grid import GridSpec\n"
        "def f():\n"
        "    from thawdetect.core.compute import compute\n"
        "    import thawdetect.core.errors\n"
        "from thawdetect.plugins.insar_sbas import config\n"
        "from thawdetect import _LAZY\n"
    )
    assert internal_imports(source, "terrain") == [
        "4: thawdetect.core.grid.GridSpec",
        "6: thawdetect.core.compute.compute",
        "7: import thawdetect.core.errors",
        "8: thawdetect.plugins.insar_sbas.config",
        "9: thawdetect._LAZY",
    ]


@pytest.mark.parametrize(
    "path", sorted(PLUGINS.rglob("*.py")), ids=lambda p: str(p.relative_to(PLUGINS))
)
def test_builtin_plugins_import_only_the_public_api(path):
    package = path.relative_to(PLUGINS).parts[0]
    bad = internal_imports(path.read_text(), package)
    assert not bad, f"{path.relative_to(PLUGINS)} imports internal names: {bad}"


def test_every_name_resolves():
    for name in plugin_api.__all__:
        assert getattr(plugin_api, name) is not None, name
    assert set(dir(plugin_api)) >= set(plugin_api.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = plugin_api.nope


def test_the_top_level_names_are_the_same_objects():
    for name in set(thawdetect.__all__) & set(plugin_api.__all__):
        assert getattr(thawdetect, name) is getattr(plugin_api, name), name


def test_importing_hookimpl_stays_light():
    code = (
        "import sys\n"
        "from thawdetect.plugin_api import hookimpl\n"
        "heavy = [m for m in ('geopandas', 'rasterio', 'pandas') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_terrain_service_is_the_hosts():
    from thawdetect.plugin_api import PluginHost, TerrainService, terrain_service

    host = PluginHost(load_entry_points=True)
    service = terrain_service(host)
    assert service is host.service("terrain")
    assert isinstance(service, TerrainService)
