"""The plugin host: one pluggy PluginManager per host object (there is no global one).

Built-in plugins load through the ``thawdetect`` entry-point group, exactly like third-party ones.
``THAWDETECT_DISABLE_PLUGINS=a,b`` blocks plugins by entry-point name.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import CodeType, FrameType, ModuleType, TracebackType
from typing import Any

import pluggy

from thawdetect.core.errors import InputError, PluginError, ThawdetectError
from thawdetect.core.exporters import BUILTIN_EXPORTERS, Exporter
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
    """Registers the built-in region presets (AOI and CRS only) and export formats."""

    @hookspecs.hookimpl
    def thawdetect_register_regions(self, register: Callable[[Region], None]) -> None:
        for region in BUILTIN_REGIONS:
            register(region)

    @hookspecs.hookimpl
    def thawdetect_register_exporters(self, register: Callable[[Exporter], None]) -> None:
        for exporter in BUILTIN_EXPORTERS:
            register(exporter)


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
        self.exporters: dict[str, Exporter] = {}
        self._exporter_plugin: dict[str, str] = {}
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
        """Ask every plugin's registration hooks, through pluggy's hook relay.

        Each hook is called as ``pm.hook.<name>(register=...)``, as pluggy means hooks to be
        called, so hook wrappers and ``pm.add_hookcall_monitoring`` tracing see the calls, and
        ``@hookimpl(specname=...)`` implementations are called while unmarked methods that
        merely share a hook's name are not. Conflicts and failures still name the plugin.
        """
        self.detectors.clear()
        self._detector_plugin.clear()
        self.regions.clear()
        self.samples.clear()
        self.services.clear()
        self.exporters.clear()
        self._exporter_plugin.clear()

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

        def add_exporter(plugin: str, exporter: Exporter) -> None:
            if not isinstance(exporter, Exporter):
                raise PluginError(f"plugin '{plugin}' registered {exporter!r}, not an Exporter")
            name = exporter.name.lower()
            if not name or not exporter.suffixes or not callable(exporter.write):
                raise PluginError(
                    f"plugin '{plugin}': exporter {exporter.name!r} needs a name, suffixes "
                    "and a write function"
                )
            suffixes = tuple(s.lower() if s.startswith(".") else f".{s.lower()}"
                             for s in exporter.suffixes)  # fmt: skip
            for other_name, other in self.exporters.items():
                clash = set(suffixes) & set(other.suffixes)
                if other_name == name or clash:
                    what = f"the format '{name}'" if other_name == name else f"{sorted(clash)}"
                    raise PluginError(
                        f"plugins '{self._exporter_plugin[other_name]}' and '{plugin}' both "
                        f"register {what}"
                    )
            self.exporters[name] = Exporter(
                name, suffixes, exporter.write, exporter.description, exporter.count
            )
            self._exporter_plugin[name] = plugin

        self._call_impls("thawdetect_register_regions", add_region)
        self._call_impls("thawdetect_register_detectors", add_detector)
        self._call_impls("thawdetect_register_samples", add_sample)
        self._call_impls("thawdetect_register_services", add_service)
        self._call_impls("thawdetect_register_exporters", add_exporter)

    def _call_impls(self, hook: str, register: Callable[..., None]) -> None:
        """Call registration hook ``hook`` through the relay; apply what it registered.

        ``register(plugin_name, *args)`` receives each registration, in plugin registration
        order (pluggy calls implementations last-registered first; a region preset registered
        by a later plugin must still refine an earlier one). Which plugin made a registration,
        or raised, is the hook implementation whose frame is on the stack at that moment.
        """
        caller = getattr(self.pm.hook, hook)
        impls = [i for i in caller.get_hookimpls() if not (i.hookwrapper or i.wrapper)]
        order = {impl.plugin_name: n for n, impl in enumerate(impls)}
        codes: dict[CodeType, str] = {}
        for impl in impls:
            codes.setdefault(_code_of(impl.function), impl.plugin_name)
        made: list[tuple[str, tuple[Any, ...]]] = []

        def collect(*args: Any) -> None:
            made.append((_plugin_on_stack(sys._getframe(1), codes), args))

        try:
            caller(register=collect)
        except ThawdetectError:
            raise
        except Exception as exc:
            name = _plugin_in_traceback(exc.__traceback__, codes)
            raise PluginError(
                f"plugin '{name}' failed in {hook}: {type(exc).__name__}: {exc}"
            ) from exc
        for name, args in sorted(made, key=lambda m: order.get(m[0], len(order))):
            register(name, *args)

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


def _code_of(function: Callable[..., Any]) -> CodeType:
    """The code object of a function or bound method (what its frames run)."""
    code: CodeType = getattr(function, "__func__", function).__code__
    return code


def _plugin_on_stack(frame: FrameType | None, codes: dict[CodeType, str]) -> str:
    """The plugin whose hook implementation is running in ``frame`` or one of its callers."""
    while frame is not None:
        if frame.f_code in codes:
            return codes[frame.f_code]
        frame = frame.f_back
    return "?"


def _plugin_in_traceback(tb: TracebackType | None, codes: dict[CodeType, str]) -> str:
    """The plugin whose hook implementation a traceback passes through (innermost)."""
    name = "?"
    while tb is not None:
        name = codes.get(tb.tb_frame.f_code, name)
        tb = tb.tb_next
    return name


def _own_version() -> str:
    from thawdetect import __version__

    return __version__
