"""docs/plugins.md: its Python examples use only the public API, compile, and really work.

The walk-through's plugin module is assembled from the doc's blocks (those starting with
``# thawdetect_change/plugin.py``), written to a temporary package and run through
``thawdetect.run``; its printed iterations table must be the one the doc shows. Each hook's
example is registered with a plugin host (pluggy checks hook and argument names) and called.
"""

from __future__ import annotations

import ast
import importlib
import re
import sys
import types
from pathlib import Path

import click
import geopandas as gpd
import numpy as np
import pytest
import rasterio
import rasterio.transform
from click.testing import CliRunner
from shapely.geometry import box

import thawdetect
from thawdetect.core.plugin_api import hookspecs

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "plugins.md"
EXAMPLE_PLUGIN_SRC = REPO / "examples" / "thawdetect-dndvi" / "src"
HOOKS = sorted(n for n in dir(hookspecs) if n.startswith("thawdetect_"))
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)
MODULE_MARK = "# thawdetect_change/plugin.py"


def _blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of every fenced block, in order."""
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(text)]


def _python_blocks() -> list[str]:
    return [code for lang, code in _blocks(DOC.read_text()) if lang == "python"]


def _thawdetect_imports(tree: ast.AST) -> list[tuple[str, list[str]]]:
    """(module, names) of every import of thawdetect or one of its submodules."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "thawdetect" or alias.name.startswith("thawdetect."):
                    found.append((alias.name, []))
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import"
            mod = node.module or ""
            if mod == "thawdetect" or mod.startswith("thawdetect."):
                found.append((mod, [a.name for a in node.names]))
    return found


def _check_public_only(code: str, where: str) -> int:
    """Assert ``code`` compiles and imports only ``thawdetect``'s public names; count imports."""
    compile(code, where, "exec")
    imports = _thawdetect_imports(ast.parse(code))
    for module, names in imports:
        assert module == "thawdetect", f"{where}: imports {module} (use the public 'thawdetect')"
        private = [n for n in names if n not in thawdetect.__all__]
        assert not private, f"{where}: {private} not in thawdetect.__all__"
    return len(imports)


def test_every_python_block_compiles_and_imports_only_the_public_api():
    blocks = _python_blocks()
    assert len(blocks) >= 3 + len(HOOKS)  # the walk-through's blocks + one per hook
    for i, code in enumerate(blocks):
        where = f"docs/plugins.md python block {i + 1}"
        n = _check_public_only(code, where)
        if "(continued)" not in code.splitlines()[0]:  # a self-contained block: it imports
            assert n >= 1, f"{where} uses thawdetect without importing it"
    # a block that slipped through, e.g. a Python block fenced as plain text, still counts
    for i, (lang, code) in enumerate(_blocks(DOC.read_text())):
        if lang != "python":
            assert not re.search(r"^\s*from thawdetect\.core", code, re.M), f"block {i + 1}"


def test_check_rejects_core_imports():
    # the checker itself can fail
    with pytest.raises(AssertionError, match=r"imports thawdetect\.core\.plugin_api"):
        _check_public_only("from thawdetect.core.plugin_api.host import PluginHost\n", "x")
    with pytest.raises(AssertionError, match=r"imports thawdetect\.core"):
        _check_public_only("import thawdetect.core.errors\n", "x")
    with pytest.raises(AssertionError, match=r"\['Engine'\] not in"):
        _check_public_only("from thawdetect import Engine\n", "x")
    with pytest.raises(SyntaxError):
        _check_public_only("def broken(:\n", "x")


def test_example_plugin_imports_only_the_public_api():
    files = sorted(EXAMPLE_PLUGIN_SRC.rglob("*.py"))
    assert files, f"no sources under {EXAMPLE_PLUGIN_SRC}"
    total = sum(_check_public_only(f.read_text(), str(f.relative_to(REPO))) for f in files)
    assert total >= 1  # it does use thawdetect, through the public API


def test_every_hook_heading_has_an_example_implementing_it():
    for name in HOOKS:
        code = _hook_example(name)
        tree = ast.parse(code)
        impls = [
            f
            for f in tree.body
            if isinstance(f, ast.FunctionDef)
            and f.name == name
            and any(ast.unparse(d) == "hookimpl" for d in f.decorator_list)
        ]
        assert impls, f"the example under {name} does not implement it with @hookimpl"


# -- the walk-through, for real -------------------------------------------------------------------


@pytest.fixture
def change_plugin(tmp_path, monkeypatch):
    """The walk-through's ``thawdetect_change`` package, written from the doc's blocks."""
    parts = [code for code in _python_blocks() if code.startswith(MODULE_MARK)]
    assert len(parts) >= 3
    pkg = tmp_path / "pkgs" / "thawdetect_change"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""docs/plugins.md walk-through."""\n')
    (pkg / "plugin.py").write_text("\n\n".join(parts))
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    module = importlib.import_module("thawdetect_change.plugin")
    yield module
    for name in [m for m in sys.modules if m.startswith("thawdetect_change")]:
        del sys.modules[name]


def _doc_block_after(marker: str) -> tuple[str, str]:
    """The Python block starting with ``marker`` and the block right after it."""
    blocks = _blocks(DOC.read_text())
    for i, (lang, code) in enumerate(blocks):
        if lang == "python" and code.startswith(marker):
            return code, blocks[i + 1][1] if i + 1 < len(blocks) else ""
    raise AssertionError(f"docs/plugins.md has no Python block starting with {marker!r}")


def test_walkthrough_runs_and_prints_the_documented_table(
    change_plugin, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    code, shown = _doc_block_after("# run it")
    namespace: dict[str, object] = {}
    exec(compile(code, "docs/plugins.md: run it", "exec"), namespace)
    printed = capsys.readouterr().out
    assert printed.strip() == shown.strip()
    result = namespace["result"]
    assert result.status == "finished"
    assert result.stop_reason == "every detector finished its schedule"
    assert result.synthetic is True
    assert (tmp_path / "runs" / "change_demo" / "ledger.gpkg").is_file()
    # the look-alike was rejected once and became a training negative
    assert result.iterations["training_negatives"].tolist() == [0, 0, 1]


def test_walkthrough_unit_test_passes(change_plugin, tmp_path):
    code, _ = _doc_block_after("# test it")
    namespace: dict[str, object] = {}
    exec(compile(code, "docs/plugins.md: test it", "exec"), namespace)
    tests = [v for k, v in namespace.items() if k.startswith("test_") and callable(v)]
    assert len(tests) == 1
    tests[0](tmp_path)


def test_walkthrough_bad_config_is_one_line(change_plugin, tmp_path):
    host = thawdetect.PluginHost(plugins=[("change", change_plugin)])
    with pytest.raises(thawdetect.ThawdetectError) as exc:
        thawdetect.run(
            {"region": "change_demo", "detectors": {"change_threshold": {"treshold": 1}}},
            output_dir=tmp_path / "r",
            host=host,
            progress=False,
        )
    assert "treshold" in str(exc.value) and "\n" not in str(exc.value)
    missing = tmp_path / "nowhere.tif"
    detector = change_plugin.ChangeDetector(change_plugin.ChangeConfig(change=missing))
    ctx = thawdetect.IterationContext.standalone(
        thawdetect.Region(name="t", crs="EPSG:32647"), tmp_path / "r2", host=host
    )
    with pytest.raises(thawdetect.InputError, match=r"nowhere\.tif: change raster does not exist"):
        detector.propose(ctx)


# -- the hook reference examples, for real ---------------------------------------------------------


def _hook_example(name: str) -> str:
    """The Python block in the section whose heading starts with ``### name(``."""
    text = DOC.read_text()
    start = text.index(f"### {name}(")
    end = text.find("\n## ", start)
    nxt = text.find("\n### ", start + 1)
    end = min(e for e in (end, nxt, len(text)) if e != -1)
    blocks = [code for lang, code in _blocks(text[start:end] + "\n") if lang == "python"]
    assert len(blocks) == 1, f"{name}: expected one Python example, found {len(blocks)}"
    return blocks[0]


def _example_host(name: str) -> tuple[thawdetect.PluginHost, types.ModuleType]:
    module = types.ModuleType(f"docs_example_{name}")
    exec(compile(_hook_example(name), f"docs/plugins.md: {name}", "exec"), module.__dict__)
    host = thawdetect.PluginHost(load_entry_points=False, plugins=[("example", module)])
    return host, module


def _raster(path: Path, values: np.ndarray) -> Path:
    transform = rasterio.transform.from_origin(600_000.0, 4_200_000.0, 10.0, 10.0)
    h, w = values.shape
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=w,
        height=h,
        count=1,
        dtype="float32",
        crs="EPSG:32647",
        transform=transform,
    ) as dst:
        dst.write(values.astype("float32"), 1)
    return path


def test_example_register_detectors(change_plugin):
    host, _ = _example_host("thawdetect_register_detectors")
    assert host.detector("change_threshold") is change_plugin.ChangeDetector


def test_example_register_regions():
    host, _ = _example_host("thawdetect_register_regions")
    assert host.region("yamal_box").working_crs().to_epsg() == 32642
    qilian = host.region("qilian")
    assert qilian.bbox_wgs84 == (99.6, 37.4, 101.1, 38.4)  # the built-in AOI is kept
    assert "change_threshold" in qilian.detectors


def test_example_register_samples(tmp_path):
    host, _ = _example_host("thawdetect_register_samples")
    host.samples["flat_dem"](tmp_path)
    # the DEM is what its docstring says: slope atan(0.1) = 5.71 deg, facing west (270 deg)
    layers = thawdetect.PluginHost().service("terrain").layers(tmp_path / "dem.tif")
    inner = (slice(2, -2), slice(2, -2))
    np.testing.assert_allclose(layers.slope_deg[inner], np.degrees(np.arctan(0.1)), atol=0.01)
    np.testing.assert_allclose(layers.aspect_deg[inner], 270.0, atol=0.01)
    assert np.nanmin(layers.elevation_m) >= 4000.0


def test_example_register_services():
    host, _ = _example_host("thawdetect_register_services")
    assert host.service("thawing_degree_days").tdd_degc_d([-5.0, 0.0, 2.5, 3.0]) == 5.5


def test_example_register_commands(tmp_path):
    host, _ = _example_host("thawdetect_register_commands")
    group = click.Group()
    host.hook.thawdetect_register_commands(cli=group)
    path = _raster(tmp_path / "c.tif", np.linspace(0.1, 0.9, 16).reshape(4, 4))
    result = CliRunner().invoke(group, ["change-stats", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output == f"{path}: min 0.100, max 0.900\n"


def test_example_review_candidates():
    host, _ = _example_host("thawdetect_review_candidates")
    cands = gpd.GeoDataFrame(
        {"candidate_id": ["it01-0001", "it01-0002"], "score": [0.9, 0.2]},
        geometry=[box(0, 0, 10, 10), box(20, 0, 30, 10)],
        crs="EPSG:32647",
    )
    before = cands.copy()
    out = host.hook.thawdetect_review_candidates(
        candidates=cands, reviewer="score>=0.5", context=None
    )
    assert out["decision"].tolist() == ["confirmed", "rejected"]
    assert out["probability"].tolist() == ["medium", ""]
    assert cands.equals(before)  # not modified
    assert (
        host.hook.thawdetect_review_candidates(candidates=cands, reviewer="reference", context=None)
        is None
    )
    with pytest.raises(thawdetect.ConfigError, match="score>=abc"):
        host.hook.thawdetect_review_candidates(
            candidates=cands, reviewer="score>=abc", context=None
        )


def test_example_candidates_proposed(capsys):
    host, _ = _example_host("thawdetect_candidates_proposed")
    cands = gpd.GeoDataFrame(
        {"score": [1.0, 0.5]},
        geometry=[box(0, 0, 100, 100), box(200, 0, 250, 100)],
        crs="EPSG:32647",
    )
    host.hook.thawdetect_candidates_proposed(
        detector="change_threshold", iteration=2, candidates=cands, context=None
    )
    assert capsys.readouterr().out == "iteration 2: change_threshold proposed 2 (1.50 ha)\n"


def test_example_iteration_finished(tmp_path):
    host, _ = _example_host("thawdetect_iteration_finished")
    ctx = thawdetect.IterationContext.standalone(
        thawdetect.Region(name="t", crs="EPSG:32647"), tmp_path, host=host
    )
    summary = {"iteration": 3, "newly_confirmed": 2, "inventory_size": 7}
    for _ in range(2):  # a resumed iteration calls it again: still one file
        host.hook.thawdetect_iteration_finished(iteration=3, summary=summary, context=ctx)
    files = sorted((tmp_path / "dashboard").iterdir())
    assert [f.name for f in files] == ["iteration_03.json"]
    import json

    assert json.loads(files[0].read_text()) == {**summary, "synthetic": False}
