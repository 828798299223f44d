"""The plugin host and every hookspec (each has a test_hook_<name> and a documented signature)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import click
import geopandas as gpd
import numpy as np
import pandas as pd
import pluggy
import pytest
import rasterio
from click.testing import CliRunner
from tests.plugins import toy_detectors
from tests.test_core_engine import _config, scene  # noqa: F401  (fixture)

from thawdetect.core.errors import PluginError
from thawdetect.core.plugin_api import hookspecs
from thawdetect.core.plugin_api.hookspecs import hookimpl
from thawdetect.core.plugin_api.host import PluginHost
from thawdetect.core.plugin_api.services import TerrainService
from thawdetect.core.regions import Region, RegionDetectorData
from thawdetect.core.run.engine import Engine

REPO = Path(__file__).resolve().parents[1]
HOOKS = sorted(n for n in dir(hookspecs) if n.startswith("thawdetect_"))


def test_every_hookspec_is_tested_and_documented():
    source = Path(__file__).read_text()
    docs = (REPO / "docs" / "plugins.md").read_text()
    for name in HOOKS:
        assert f"def test_hook_{name}(" in source, f"no test for {name}"
        sig = inspect.signature(getattr(hookspecs, name))
        heading = f"### {name}({', '.join(sig.parameters)})"
        assert heading in docs, f"docs/plugins.md lacks the heading '{heading}'"


def test_builtin_plugins_load_through_entry_points():
    host = PluginHost()
    names = {i.name for i in host.plugin_infos()}
    assert {"terrain", "insar_sbas", "optical_dl", "reference_reviewer", "core"} <= names
    info = {i.name: i for i in host.plugin_infos()}
    assert info["insar_sbas"].distribution == "thawdetect"
    assert "insar_sbas" in host.detectors and "optical_dl" in host.detectors


def test_disable_plugins_env(monkeypatch):
    monkeypatch.setenv("THAWDETECT_DISABLE_PLUGINS", "optical_dl, terrain")
    host = PluginHost()
    names = {i.name for i in host.plugin_infos()}
    assert "optical_dl" not in names and "terrain" not in names
    assert "optical_dl" not in host.detectors


def test_plugin_failing_to_import_names_its_distribution(tmp_path, monkeypatch):
    dist = tmp_path / "broken_plugin-1.2.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.2\n")
    (dist / "entry_points.txt").write_text("[thawdetect]\nbroken = broken_plugin_mod\n")
    (tmp_path / "broken_plugin_mod.py").write_text("import does_not_exist_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError) as exc:
        PluginHost()
    msg = str(exc.value)
    assert "plugin 'broken' (distribution 'broken-plugin') failed to import" in msg
    assert "\n" not in msg
    monkeypatch.setenv("THAWDETECT_DISABLE_PLUGINS", "broken")
    PluginHost()  # blocked: loads fine


def test_unknown_hook_implementation_fails_check_pending():
    class Typo:
        @hookimpl
        def thawdetect_register_detector(self, register):  # missing "s"
            pass

    with pytest.raises(Exception, match="unknown hook"):
        PluginHost(plugins=[("typo", Typo())])


def test_two_plugins_same_detector_name_refused():
    class Again:
        @hookimpl
        def thawdetect_register_detectors(self, register):
            register(toy_detectors.ToyA.__class__("ToyA2", (toy_detectors.ToyA,), {}))

    with pytest.raises(PluginError, match="both register a detector named 'toy_a'"):
        PluginHost(plugins=[("toy", toy_detectors), ("again", Again())])


def test_hook_thawdetect_register_detectors():
    host = PluginHost(load_entry_points=False, plugins=[("toy", toy_detectors)])
    assert host.detector("toy_a") is toy_detectors.ToyA
    assert host.detector_plugin("toy_b") == "toy"
    with pytest.raises(Exception, match="installed detectors: toy_a, toy_b"):
        host.detector("missing")


def test_hook_thawdetect_register_regions():
    class Adds:
        @hookimpl
        def thawdetect_register_regions(self, register):
            register(Region(name="qilian", detectors={"x": RegionDetectorData(config={"k": 1})}))
            register(Region(name="mine", bbox_wgs84=(10, 60, 11, 61)))

    host = PluginHost(load_entry_points=False, plugins=[("adds", Adds())])
    assert host.region("qilian").bbox_wgs84 == (99.6, 37.4, 101.1, 38.4)  # core preset kept
    assert host.region("qilian").detectors["x"].config == {"k": 1}
    assert host.region("mine").working_crs().to_epsg() == 32632
    with pytest.raises(Exception, match="known regions: beiluhe, mine, qilian, qtec"):
        host.region("nowhere")


def test_hook_thawdetect_register_samples(tmp_path, monkeypatch):
    from thawdetect.core.run.samples import ensure_sample

    calls = []

    class Sample:
        @hookimpl
        def thawdetect_register_samples(self, register):
            def build(out: Path) -> None:
                calls.append(out)
                (out / "data.txt").write_text("synthetic")

            register("tiny", build)

    host = PluginHost(load_entry_points=False, plugins=[("s", Sample())])
    first = ensure_sample(host, "tiny", root=tmp_path)
    second = ensure_sample(host, "tiny", root=tmp_path)
    assert first == second and (first / "data.txt").read_text() == "synthetic"
    assert len(calls) == 1  # built once, on first use
    with pytest.raises(PluginError, match="known samples: tiny"):
        ensure_sample(host, "other", root=tmp_path)


def test_hook_thawdetect_register_services(tmp_path):
    class Provides:
        @hookimpl
        def thawdetect_register_services(self, register):
            register("echo", lambda x: x)

    host = PluginHost(load_entry_points=False, plugins=[("p", Provides())])
    assert host.service("echo")(3) == 3
    with pytest.raises(PluginError, match="no plugin provides the 'nothing' service"):
        host.service("nothing")
    # the built-in terrain plugin's service, used the way a consumer plugin uses it: a plane
    # rising 0.5 m per metre eastwards has slope atan(0.5) = 26.57 deg and faces west (270 deg)
    terrain = PluginHost().service("terrain")
    assert isinstance(terrain, TerrainService)
    x_m = np.arange(20) * 10.0 + 5.0
    dem = np.tile(1000.0 + 0.5 * x_m, (20, 1)).astype("float32")
    path = tmp_path / "plane.tif"
    profile = {"driver": "GTiff", "width": 20, "height": 20, "count": 1, "dtype": "float32"}
    transform = rasterio.transform.from_origin(500_000.0, 4_200_000.0, 10.0, 10.0)
    with rasterio.open(path, "w", crs="EPSG:32647", transform=transform, **profile) as dst:
        dst.write(dem, 1)
    layers = terrain.layers(path)
    inner = (slice(2, -2), slice(2, -2))
    np.testing.assert_allclose(layers.slope_deg[inner], np.degrees(np.arctan(0.5)), atol=0.01)
    np.testing.assert_allclose(layers.aspect_deg[inner], 270.0, atol=0.01)
    kept = terrain.mask(layers, slope_deg=(20, 30), aspect_deg=[(225, 315)])
    assert kept[inner].all()
    assert not terrain.mask(layers, slope_deg=(30, 40))[inner].any()


def test_hook_thawdetect_register_exporters(tmp_path):
    """A plugin's format is chosen by name and by suffix, written atomically by the core, and
    counted; clashes and unknown formats are one line."""
    from thawdetect.core.errors import InputError
    from thawdetect.core.exporters import Exporter, choose_exporter

    def write_wkt(frame, path, layer):
        text = "\n".join(f"{layer}\t{g.wkt}" for g in frame.to_crs(4326).geometry)
        Path(path).write_text(text + "\n")

    def count(path):
        return sum(1 for line in Path(path).read_text().splitlines() if line)

    class Provides:
        @hookimpl
        def thawdetect_register_exporters(self, register):
            register(Exporter("wkt", ("tsv",), write_wkt, "layer and WKT, tab-separated", count))

    host = PluginHost(load_entry_points=False, plugins=[("wkt_plugin", Provides())])
    assert {"gpkg", "geojson", "csv", "wkt"} <= set(host.exporters)
    assert host.exporters["wkt"].suffixes == (".tsv",)  # normalised
    out = tmp_path / "slumps.tsv"
    assert choose_exporter(out, None, host.exporters).name == "wkt"
    with pytest.raises(
        InputError, match=r"unknown inventory format 'shp'; use csv, geojson, gpkg, wkt"
    ):
        choose_exporter(tmp_path / "x.shp", "shp", host.exporters)
    # a reviewed run's inventory (three confirmed slumps) through it
    from tests.test_inventory import reviewed_run

    run = reviewed_run(tmp_path / "run", engine_inventory=True)
    from thawdetect.core.inventory import export_inventory

    export_inventory(run, out, exporters=host.exporters)
    lines = out.read_text().splitlines()
    assert len(lines) == 3 and all(line.startswith("slumps\tPOLYGON") for line in lines)
    assert host.exporters["wkt"].features_in(out) == 3
    assert not list(tmp_path.glob(".slumps*"))  # no temporary file left

    def failing(frame, path, layer):
        Path(path).write_text("half")
        raise RuntimeError("disk full")

    class Fails:
        @hookimpl
        def thawdetect_register_exporters(self, register):
            register(Exporter("bad", (".bad",), failing))

    bad = PluginHost(load_entry_points=False, plugins=[("f", Fails())])
    with pytest.raises(RuntimeError):
        export_inventory(run, tmp_path / "x.bad", exporters=bad.exporters)
    assert not list(tmp_path.glob("*x.bad*"))  # nothing half-written

    class Clash:
        @hookimpl
        def thawdetect_register_exporters(self, register):
            register(Exporter("gpkg2", (".gpkg",), write_wkt))

    with pytest.raises(PluginError, match=r"plugins 'core' and 'clash' both register \['.gpkg'\]"):
        PluginHost(load_entry_points=False, plugins=[("clash", Clash())])


def test_hook_thawdetect_register_commands():
    class Cmd:
        @hookimpl
        def thawdetect_register_commands(self, cli):
            @cli.command()
            def hello() -> None:
                click.echo("hello from a plugin")

    group = click.Group()
    host = PluginHost(load_entry_points=False, plugins=[("c", Cmd())])
    host.hook.thawdetect_register_commands(cli=group)
    result = CliRunner().invoke(group, ["hello"])
    assert result.output == "hello from a plugin\n"


def test_hook_thawdetect_review_candidates(scene, tmp_path):  # noqa: F811
    class Rejector:
        @hookimpl
        def thawdetect_review_candidates(self, candidates, reviewer, context):
            if reviewer != "reject-all":
                return None
            return pd.DataFrame(
                {"candidate_id": candidates["candidate_id"], "decision": "rejected", "note": "no"}
            )

    host = PluginHost(plugins=[("toy", toy_detectors), ("rej", Rejector())])
    cfg = _config(scene).model_copy(update={"reviewer": "reject-all"})
    result = Engine(cfg, tmp_path / "r", host).run()
    assert result.iterations["newly_confirmed"].tolist() == [0]
    assert result.stop_reason == "iteration 1 confirmed nothing new"
    cfg2 = _config(scene).model_copy(update={"reviewer": "nobody-knows"})
    with pytest.raises(Exception, match="reviewer 'nobody-knows' is not understood"):
        Engine(cfg2, tmp_path / "r2", host).run()


def test_hook_thawdetect_candidates_proposed(scene, tmp_path):  # noqa: F811
    seen = []

    class Watch:
        @hookimpl
        def thawdetect_candidates_proposed(self, detector, iteration, candidates, context):
            assert isinstance(candidates, gpd.GeoDataFrame)
            seen.append((detector, iteration, len(candidates)))

    host = PluginHost(plugins=[("toy", toy_detectors), ("w", Watch())])
    Engine(_config(scene, max_iterations=2), tmp_path / "r", host).run()
    assert [s[:2] for s in seen] == [("toy_a", 1), ("toy_a", 2)]
    assert all(n > 0 for *_, n in seen)


def test_hook_thawdetect_iteration_finished(scene, tmp_path):  # noqa: F811
    rows = []

    class Watch:
        @hookimpl
        def thawdetect_iteration_finished(self, iteration, summary, context):
            rows.append((iteration, summary["newly_confirmed"], summary["inventory_size"]))

    host = PluginHost(plugins=[("toy", toy_detectors), ("w", Watch())])
    Engine(_config(scene), tmp_path / "r", host).run()
    assert rows == [(1, 3, 3), (2, 1, 4), (3, 1, 5)]


def test_hookspecs_are_prefixed_and_documented():
    # what pluggy registers as hookspecs (not just the module's names) is exactly HOOKS: a
    # function named thawdetect_* without @hookspec, or a hookspec without the prefix, fails here
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    registered = sorted(
        name
        for name in dir(pm.hook)
        if not name.startswith("_") and getattr(pm.hook, name).spec is not None
    )
    assert registered == HOOKS
    assert len(HOOKS) >= 8  # none lost
    for name in HOOKS:
        fn = getattr(hookspecs, name)
        assert re.fullmatch(r"thawdetect_[a-z]+(_[a-z]+)+", name), name
        params = list(inspect.signature(fn).parameters)
        assert fn.__doc__ and "Args:" in fn.__doc__, name
        args = fn.__doc__.split("Args:", 1)[1]
        for param in params:  # every parameter is described under Args:
            assert re.search(rf"^\s+{param}:", args, re.M), f"{name}: Args: lacks {param}"


class TestHookRelay:
    """Registration hooks go through pluggy's relay: wrappers and tracing see them."""

    def test_hookwrapper_sees_the_call(self):
        seen = []

        class Wrapper:
            @hookimpl(wrapper=True)
            def thawdetect_register_detectors(self, register):
                seen.append("new-style before")
                result = yield
                seen.append("new-style after")
                return result

            @hookimpl(hookwrapper=True)
            def thawdetect_register_regions(self, register):
                seen.append("old-style")
                yield

        host = PluginHost(
            load_entry_points=False, plugins=[("toy", toy_detectors), ("wrap", Wrapper())]
        )
        assert seen == ["old-style", "new-style before", "new-style after"]
        assert host.detector_plugin("toy_a") == "toy"  # the wrapper registers nothing

    def test_hookcall_monitoring_traces_registration(self):
        host = PluginHost(load_entry_points=False)
        traced = []
        host.pm.add_hookcall_monitoring(
            lambda name, impls, kw: traced.append(name), lambda outcome, name, impls, kw: None
        )
        host.register(toy_detectors, "toy")  # registering collects again
        assert "thawdetect_register_detectors" in traced
        assert host.detector("toy_b") is toy_detectors.ToyB

    def test_registration_from_a_helper_names_its_plugin(self):
        def helper(register):
            register(type("Other", (toy_detectors.ToyA,), {"name": "other"}))

        class Helps:
            @hookimpl
            def thawdetect_register_detectors(self, register):
                helper(register)

        host = PluginHost(
            load_entry_points=False, plugins=[("toy", toy_detectors), ("helps", Helps())]
        )
        assert host.detector_plugin("other") == "helps"
        assert host.detector_plugin("toy_a") == "toy"

    def test_a_failing_registration_hook_names_its_plugin(self):
        class Fails:
            @hookimpl
            def thawdetect_register_regions(self, register):
                raise RuntimeError("boom")

        with pytest.raises(PluginError) as err:
            PluginHost(load_entry_points=False, plugins=[("fails", Fails())])
        assert str(err.value) == (
            "plugin 'fails' failed in thawdetect_register_regions: RuntimeError: boom"
        )

    def test_later_plugins_refine_earlier_regions(self):
        class First:
            @hookimpl
            def thawdetect_register_regions(self, register):
                register(Region(name="mine", detectors={"x": RegionDetectorData(config={"k": 1})}))

        class Second:
            @hookimpl
            def thawdetect_register_regions(self, register):
                register(Region(name="mine", detectors={"x": RegionDetectorData(config={"k": 2})}))

        host = PluginHost(
            load_entry_points=False, plugins=[("first", First()), ("second", Second())]
        )
        assert host.region("mine").detectors["x"].config == {"k": 2}
