"""The detector interface every plugin implements, and the candidate schema it returns.

A detector proposes candidates each iteration, then receives the reviewed outcome and returns its
next configuration (retrain with new positives/negatives, relax thresholds) or ``None`` when its
schedule is done. Both published methods (Xia et al. 2022; Wei et al., Qilian) are this loop.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import geopandas as gpd
import numpy as np

from thawdetect.core.models import StrictModel

# the candidate schema lives in candidates.py; its names stay importable from here
from thawdetect.core.plugin_api.candidates import ENGINE_COLUMNS as ENGINE_COLUMNS
from thawdetect.core.plugin_api.candidates import SCORE_COLUMN as SCORE_COLUMN
from thawdetect.core.plugin_api.candidates import SERIES_COLUMN as SERIES_COLUMN
from thawdetect.core.plugin_api.candidates import empty_candidates as empty_candidates
from thawdetect.core.plugin_api.candidates import validate_candidates as validate_candidates

if TYPE_CHECKING:
    from thawdetect.core.plugin_api.context import IterationContext


class DetectorConfig(StrictModel):
    """Base for a detector's config section (``detectors.<name>`` in the run YAML)."""


@dataclass
class TimeSeries:
    """A candidate's deformation time series and its fitted model, for review plots.

    Attributes:
        dates: acquisition dates.
        values_mm: displacement in mm (LOS or vertical, as ``label`` says), same length as dates.
        fit: fitted parameters of y = a + b·t + c·cos(2πt) + d·sin(2πt), t in years since
            ``fit_t0``; keys ``a_mm, b_mm_yr, c_mm, d_mm`` (Wei et al.). Optional.
        label: axis label, e.g. ``"LOS displacement (mm)"``.
    """

    dates: list[date]
    values_mm: list[float]
    fit: dict[str, float] | None = None
    fit_t0: date | None = None
    label: str = "displacement (mm)"

    def to_json(self) -> str:
        """Serialize for the ``series_json`` column."""
        return json.dumps(
            {
                "dates": [d.isoformat() for d in self.dates],
                "values_mm": [None if not np.isfinite(v) else float(v) for v in self.values_mm],
                "fit": self.fit,
                "fit_t0": self.fit_t0.isoformat() if self.fit_t0 else None,
                "label": self.label,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> TimeSeries:
        """Parse what :meth:`to_json` wrote."""
        d = json.loads(text)
        return cls(
            dates=[date.fromisoformat(s) for s in d["dates"]],
            values_mm=[np.nan if v is None else float(v) for v in d["values_mm"]],
            fit=d.get("fit"),
            fit_t0=date.fromisoformat(d["fit_t0"]) if d.get("fit_t0") else None,
            label=d.get("label", "displacement (mm)"),
        )


@dataclass(frozen=True)
class ImageFrame:
    """One dated image a reviewer should see around each candidate (review chips).

    Attributes:
        label: what the frame shows, usually the acquisition date (``"2018-07-14"``).
        path: a raster readable by rasterio (any CRS; chips are cut in the raster's own CRS).
        bands: 1-based band indexes to show as RGB (or one band for a value map).
        value_range: fixed display stretch (min, max); None = 2-98 % percentiles per chip for
            RGB, one stretch for the whole raster for a value map with ``units``.
        units: units of a one-band value map (``"mm/yr"``): it gets a colour map and a colour
            bar; empty = grey image.
        date: the date (or ``"start – end"`` range) the frame shows; default: a date at the
            start of ``label``.
        source: the data source written on the frame (sensor, product); default: the file name.
        group: frames of one group form one time-lapse GIF (``"<group>.gif"``); default: one
            group for all frames (``chips.gif``).
        colormap: matplotlib colour-map name for a value map (default: ``RdBu`` for a stretch
            symmetric about 0, else ``viridis``).
    """

    label: str
    path: Path
    bands: tuple[int, ...] = (1, 2, 3)
    value_range: tuple[float, float] | None = None
    units: str = ""
    date: str = ""
    source: str = ""
    group: str = ""
    colormap: str | None = None


class DeferredFrame:
    """A frame made on first use: the engine hands contexts their training sets this way, so a
    detector or reviewer that never looks at them does not pay for copying them (the sets grow
    with the run: tens of thousands of features after a few QTEC iterations).

    ``load`` must return the same frame whenever it is called (the engine's loaders join a
    snapshot of the sets taken when the context was made). A pickled one is the frame itself.
    """

    __slots__ = ("load",)

    def __init__(self, load: Callable[[], gpd.GeoDataFrame]) -> None:
        self.load = load

    def __reduce__(self) -> tuple[Any, ...]:
        return (_same, (self.load(),))


def _same(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return frame


@dataclass
class ReviewOutcome:
    """What the reviewed iteration gives back to a detector for its ``next_config``.

    Attributes:
        iteration: the iteration just reviewed.
        candidates: this iteration's merged candidates with ``status`` (confirmed/rejected/unsure)
            and ``detectors`` (comma-separated names that proposed it), working CRS.
        newly_confirmed: candidates confirmed in this iteration.
        rejected: candidates rejected in this iteration.
        positives_after: all training positives after this iteration's review (known inventory,
            every confirmed candidate so far); ``context.positives`` is the set before it.
        negatives_after: all training negatives after this iteration's review.
        context: this detector's context of the iteration just reviewed (its ``work_dir``
            holds what its ``propose`` wrote, e.g. the checkpoint to fine-tune from).
    """

    iteration: int
    candidates: gpd.GeoDataFrame
    newly_confirmed: gpd.GeoDataFrame
    rejected: gpd.GeoDataFrame
    positives_after: gpd.GeoDataFrame
    negatives_after: gpd.GeoDataFrame
    context: IterationContext


class Detector(ABC):
    """Base class of detector plugins.

    Subclasses set ``name`` and ``config_model`` and implement :meth:`propose`. The default
    :meth:`next_config` runs the detector once or, with ``schedule_field`` set, once per row of
    that config list (:meth:`schedule_row`); a learning detector overrides it.
    A detector is constructed fresh for every iteration from that iteration's effective config
    (the engine stores it in the run manifest), so it must keep no state across iterations other
    than files in its ``work_dir``.

    Class attributes:
        name: snake_case, identical for entry point, ``--detector`` and YAML key.
        config_model: the pydantic model of its config section.
        description: one line for ``thawdetect plugins``.
        optional_dependencies: import names it needs at run time (reported by ``plugins``).
        relaxes_schedule: True for detectors that walk a fixed relaxation schedule (Wei et al.):
            the loop goes on after an iteration that confirmed nothing new while such a detector
            has rows left. False (learning detectors, Xia et al.): nothing new ends the run.
            Default: True when ``schedule_field`` is set, else False.
        schedule_field: name of a list field of the config holding one setting per iteration
            (e.g. ``"thresholds"``): iteration k uses row k (:meth:`schedule_row`) and the
            default :meth:`next_config` stops after the last row. None: no schedule.

    Attributes:
        config: this iteration's config.
        iteration: the iteration it was made for (1-based; set by the engine).
    """

    name: ClassVar[str]
    config_model: ClassVar[type[DetectorConfig]]
    description: ClassVar[str] = ""
    optional_dependencies: ClassVar[tuple[str, ...]] = ()
    relaxes_schedule: ClassVar[bool] = False
    schedule_field: ClassVar[str | None] = None
    iteration: int = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        explicit = any("relaxes_schedule" in vars(k) for k in cls.__mro__ if k is not Detector)
        if cls.schedule_field is not None and not explicit:
            cls.relaxes_schedule = True  # a fixed schedule goes on after nothing new

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config

    def _schedule(self) -> list[Any]:
        if self.schedule_field is None:
            raise TypeError(f"{type(self).__name__} sets no schedule_field")
        return list(getattr(self.config, self.schedule_field))

    def schedule_row(self, iteration: int | None = None) -> Any:
        """This iteration's row of the ``schedule_field`` list (the last one after it ends).

        Args:
            iteration: 1-based; default :attr:`iteration`.
        """
        rows = self._schedule()
        k = self.iteration if iteration is None else iteration
        return rows[max(min(k, len(rows)), 1) - 1]

    @abstractmethod
    def propose(self, context: IterationContext) -> gpd.GeoDataFrame:
        """Propose candidates for this iteration.

        Returns:
            A GeoDataFrame with a CRS, Polygon/MultiPolygon geometries, a float ``score`` column
            and any evidence columns (names with units: ``mean_rate_mm_yr``). Optional
            ``series_json`` (see :class:`TimeSeries`). An empty frame is a valid answer.
        """

    def next_config(self, outcome: ReviewOutcome) -> DetectorConfig | None:
        """The config of the next iteration, or None when this detector's schedule is done.

        Default: the same config while ``schedule_field`` has rows after ``outcome.iteration``;
        None after one iteration without a ``schedule_field``.
        """
        if self.schedule_field is not None and outcome.iteration < len(self._schedule()):
            return self.config
        return None

    @classmethod
    def check_inputs(cls, config: Any) -> list[str]:
        """Check this config's inputs before the run directory exists; return warning lines.

        Called once per new run, after every input file the config names was found, opened
        and seen to hold a finite value. Raise :class:`~thawdetect.core.errors.InputError` for
        an input the detector cannot use (nothing is written); return lines for what it can
        use but looks wrong (a schedule that tightens instead of relaxing). Default: none.
        """
        return []

    def summary(self) -> dict[str, Any]:
        """Thresholds or settings of this iteration for the iterations table (short values)."""
        return {}

    def image_frames(self, context: IterationContext) -> list[ImageFrame]:
        """Dated images reviewers should see (time-lapse chips). Default: none."""
        return []
