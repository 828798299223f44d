"""The plugin host: one pluggy PluginManager per host object (there is no global one).

Built-in plugins load through the ``thawdetect`` entry-point group, exactly like third-party ones.
``THAWDETECT_DISABLE_PLUGINS=a,b`` blocks plugins by entry-point name.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

import pluggy

from thawdetect.core.errors import InputError, PluginError, ThawdetectError
from thawdetect.core.plugin_api import hookspecs
from thawdetect.core.plugin_api.detector import Detector
from thawdetect.core.regions import BUILTIN_REGIONS, Region

ENTRY_POINT_GROUP = "thawdetect"
DISABLE_ENV = "THAWDETECT_DISABLE_PLUGINS"


@dataclass
class PluginInfo:
    """What ``thawdetect plugins`` shows for one plugin."""

    name: str
    distribution: str
    version: str
    detectors: list[str] = field(default_factory=list)
    dependencies: dict[str, bool] = field(default_factory=dict)

    @property
    def dependencies_ok(self) -> bool:
        """Whether every optional dependency of its detectors imports."""
        return all(self.dependencies.values())


def _dependency_available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


class _CorePlugin:
    """Registers the built-in region presets (AOI and CRS only)."""

    @hookspecs.hookimpl
    def thawdetect_register_regions(self, register: Callable[[Region], None]) -> None:
        for region in BUILTIN_REGIONS:
            register(region)


class PluginHost:
    """Loads plugins and holds what they register.

    Args:
        load_entry_points: load plugins from the ``thawdetect`` entry-point group.
        disabled: entry-point names to block; default from ``THAWDETECT_DISABLE_PLUGINS``.
        plugins: extra plugin objects to register (tests, embedding applications).
    """

    def __init__(
        self,
        *,
        load_entry_points: bool = True,
        disabled: Iterable[str] | None = None,
        plugins: Iterable[tuple[str, object]] = (),
    ) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        if disabled is None:
            disabled = [s.strip() for s in os.environ.get(DISABLE_ENV, "").split(",") if s.strip()]
        self.disabled = set(disabled)
        self._dist: dict[str, tuple[str, str]] = {}
        self.pm.register(_CorePlugin(), name="core")
        self._dist["core"] = ("thawdetect", _own_version())
        if load_entry_points:
            self._load_entry_points()
        for name, obj in plugins:
            self.register(obj, name)
        self.pm.check_pending()
        self.detectors: dict[str, type[Detector]] = {}
        self._detector_plugin: dict[str, str] = {}
        self.regions: dict[str, Region] = {}
        self.samples: dict[str, Callable[[Any], Any]] = {}
        self.services: dict[str, Any] = {}
        self._collect()

    # -- loading ---------------------------------------------------------------------------------

    def _load_entry_points(self) -> None:
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if ep.name in self.disabled:
                self.pm.set_blocked(ep.name)
                continue
            if self.pm.get_plugin(ep.name) is not None or self.pm.is_blocked(ep.name):
                continue
            dist = ep.dist.name if ep.dist else "unknown"
            version = ep.dist.version if ep.dist else "?"
            plugin = self._import(ep, dist)
            self.pm.register(plugin, name=ep.name)
            self._dist[ep.name] = (dist, version)

    @staticmethod
    def _import(ep: EntryPoint, dist: str) -> ModuleType:
        try:
            module: ModuleType = ep.load()
            return module
        except Exception as exc:
            raise PluginError(
                f"plugin '{ep.name}' (distribution '{dist}') failed to import: "
                f"{type(exc).__name__}: {exc}; uninstall it or set {DISABLE_ENV}={ep.name}"
            ) from exc

    def register(self, plugin: object, name: str) -> None:
        """Register a plugin object (module or instance with ``@hookimpl`` methods)."""
        if name in self.disabled:
            return
        self.pm.register(plugin, name=name)
        self._dist.setdefault(name, ("(registered in-process)", ""))
        if hasattr(self, "detectors"):
            self._collect()

    def _collect(self) -> None:
        """Ask every plugin's registration hooks, through pluggy's hook implementations.

        Going through ``pm.hook.<name>.get_hookimpls()`` (not ``getattr`` on plugin objects)
        means ``@hookimpl(specname=...)`` implementations are called and unmarked methods that
        merely share a hook's name are not; each call still knows its plugin, so conflicts and
        failures name it.
        """
        self.detectors.clear()
        self._detector_plugin.clear()
        self.regions.clear()
        self.samples.clear()
        self.services.clear()

        def add_detector(plugin: str, cls: type[Detector]) -> None:
            if not (isinstance(cls, type) and issubclass(cls, Detector)):
                raise PluginError(f"plugin '{plugin}' registered {cls!r}, not a Detector subclass")
            if cls.name in self.detectors and self.detectors[cls.name] is not cls:
                other = self._detector_plugin[cls.name]
                raise PluginError(
                    f"plugins '{other}' and '{plugin}' both register a detector named '{cls.name}'"
                )
            self.detectors[cls.name] = cls
            self._detector_plugin[cls.name] = plugin

        def add_region(plugin: str, region: Region) -> None:
            if region.name in self.regions:
                self.regions[region.name] = self.regions[region.name].merged_with(region)
            else:
                self.regions[region.name] = region

        def add_sample(plugin: str, sample: str, build: Callable[[Any], Any]) -> None:
            self.samples[sample] = build

        def add_service(plugin: str, service: str, obj: Any) -> None:
            self.services[service] = obj

        self._call_impls("thawdetect_register_regions", add_region)
        self._call_impls("thawdetect_register_detectors", add_detector)
        self._call_impls("thawdetect_register_samples", add_sample)
        self._call_impls("thawdetect_register_services", add_service)

    def _call_impls(self, hook: str, register: Callable[..., None]) -> None:
        """Call each implementation of registration hook ``hook`` in registration order.

        ``register(plugin_name, *args)`` receives what the implementation registers.
        """
        caller = getattr(self.pm.hook, hook)
        for impl in caller.get_hookimpls():  # registration order (pluggy calls them reversed)
            name = impl.plugin_name

            def bound(*args: Any, _name: str = name) -> None:
                register(_name, *args)

            kwargs = {"register": bound}
            try:
                impl.function(*[kwargs[a] for a in impl.argnames])
            except ThawdetectError:
                raise
            except Exception as exc:
                raise PluginError(
                    f"plugin '{name}' failed in {hook}: {type(exc).__name__}: {exc}"
                ) from exc

    # -- lookup ----------------------------------------------------------------------------------

    @property
    def hook(self) -> Any:
        """The pluggy hook relay (``host.hook.thawdetect_review_candidates(...)``)."""
        return self.pm.hook

    def detector(self, name: str) -> type[Detector]:
        """The detector class called ``name``.

        Raises:
            InputError: unknown name (the message lists the installed detectors).
        """
        try:
            return self.detectors[name]
        except KeyError:
            known = ", ".join(sorted(self.detectors)) or "none"
            raise InputError(
                None, f"unknown detector '{name}'; installed detectors: {known}"
            ) from None

    def region(self, name: str) -> Region:
        """The region preset called ``name`` (raises InputError listing the known ones)."""
        try:
            return self.regions[name]
        except KeyError:
            known = ", ".join(sorted(self.regions)) or "none"
            raise InputError(None, f"unknown region '{name}'; known regions: {known}") from None

    def service(self, name: str) -> Any:
        """A service another plugin registered (e.g. ``"terrain"``).

        Raises:
            PluginError: no plugin provides it.
        """
        try:
            return self.services[name]
        except KeyError:
            raise PluginError(
                f"no plugin provides the '{name}' service (is it installed and not disabled?)"
            ) from None

    def plugin_infos(self) -> list[PluginInfo]:
        """One :class:`PluginInfo` per registered plugin, sorted by name."""
        infos = []
        for name, plugin in sorted(self.pm.list_name_plugin(), key=lambda p: p[0] or ""):
            if plugin is None:  # blocked
                continue
            dist, version = self._dist.get(name, ("?", "?"))
            dets = sorted(d for d, p in self._detector_plugin.items() if p == name)
            deps: dict[str, bool] = {}
            for d in dets:
                for mod in self.detectors[d].optional_dependencies:
                    deps[mod] = _dependency_available(mod)
            infos.append(PluginInfo(name, dist, version, dets, deps))
        return infos

    def plugin_version(self, name: str) -> str:
        """The installed version of the distribution that provides plugin ``name``."""
        return self._dist.get(name, ("?", "?"))[1]

    def detector_plugin(self, detector: str) -> str:
        """Name of the plugin that registered ``detector``."""
        return self._detector_plugin[detector]


def _own_version() -> str:
    from thawdetect import __version__

    return __version__
