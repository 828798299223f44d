"""The context a detector (and hooks) get at one iteration: :class:`IterationContext`.

Apart from :mod:`.detector` (the contract's types, which need no host) so that the plugin host,
which loads detectors, and the context, which carries a host, import in one direction only:
``context`` → ``host`` → ``detector``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd

from thawdetect.core.plugin_api.detector import DeferredFrame
from thawdetect.core.plugin_api.host import PluginHost
from thawdetect.core.regions import Region

__all__ = ["IterationContext"]


class _FrameField:
    """A dataclass field that holds a GeoDataFrame, or a :class:`DeferredFrame` made into one on
    first access (then kept). Required (no default), like a plain field."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._slot = f"_{name}_value"

    def __get__(self, obj: Any, objtype: type | None = None) -> gpd.GeoDataFrame:
        if obj is None:
            raise AttributeError(self._slot)  # dataclasses: no default, the field is required
        value = obj.__dict__[self._slot]
        if isinstance(value, DeferredFrame):
            value = obj.__dict__[self._slot] = value.load()
        return value

    def __set__(self, obj: Any, value: gpd.GeoDataFrame | DeferredFrame) -> None:
        obj.__dict__[self._slot] = value


@dataclass
class IterationContext:
    """What a detector (and hooks) get to see of the run at iteration ``iteration``.

    Attributes:
        run_dir: the run's directory (ledger, manifest, per-iteration outputs).
        work_dir: this detector's directory for this iteration (created by the engine).
        iteration: 1-based iteration number.
        region: the region being processed.
        crs: the run's working CRS (the region's UTM zone); candidate geometries are stored in it.
        host: the plugin host, for ``host.service(name)``.
        positives: training positives so far (known inventory + confirmed), working CRS.
        negatives: training negatives so far (rejected candidates), working CRS.
        inventory: confirmed inventory so far, working CRS.
        previous_dir: this detector's work_dir of the previous iteration (None at iteration 1).
        reference_paths: the region's reference inventories (for reference reviewers).
        synthetic: True when the run's data are a bundled synthetic sample.
    """

    run_dir: Path
    work_dir: Path
    iteration: int
    region: Region
    crs: Any
    host: PluginHost
    positives: _FrameField = _FrameField()
    negatives: _FrameField = _FrameField()
    inventory: _FrameField = _FrameField()
    previous_dir: Path | None = None
    reference_paths: list[Path] = field(default_factory=list)
    synthetic: bool = False

    @classmethod
    def standalone(
        cls,
        region: Region,
        run_dir: Path,
        *,
        host: PluginHost | None = None,
        iteration: int = 1,
        work_dir: Path | None = None,
        positives: gpd.GeoDataFrame | None = None,
        negatives: gpd.GeoDataFrame | None = None,
        inventory: gpd.GeoDataFrame | None = None,
        previous_dir: Path | None = None,
    ) -> IterationContext:
        """A context for running one detector outside the engine (notebooks, plugin tests).

        Args:
            region: the region (its working CRS becomes the context's CRS).
            run_dir: where the detector may write; ``work_dir`` defaults to
                ``run_dir/it<iteration>`` (created).
            host: plugin host for services (default: a new one with every installed plugin).
            iteration: 1-based iteration number.
            work_dir: the detector's directory for this iteration (created).
            positives: training positives (default: none).
            negatives: training negatives (default: none).
            inventory: inventory so far (default: ``positives``).
            previous_dir: the previous iteration's ``work_dir``.
        """
        if host is None:
            host = PluginHost()
        crs = region.working_crs()
        empty = gpd.GeoDataFrame(geometry=gpd.GeoSeries([], crs=crs), crs=crs)
        positives = empty if positives is None else positives
        work = Path(work_dir) if work_dir else Path(run_dir) / f"it{iteration}"
        work.mkdir(parents=True, exist_ok=True)  # as the engine does: propose may write there
        return cls(
            run_dir=Path(run_dir),
            work_dir=work,
            iteration=iteration,
            region=region,
            crs=crs,
            host=host,
            positives=positives,
            negatives=empty if negatives is None else negatives,
            inventory=positives if inventory is None else inventory,
            previous_dir=previous_dir,
        )
