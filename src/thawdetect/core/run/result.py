"""What a run is, read back: :class:`RunResult`, the one object that :meth:`Engine.run
<thawdetect.core.run.engine.Engine.run>`, :func:`thawdetect.run` and :func:`thawdetect.open_run`
return (status, stop reason, and the ledger's layers, the inventory and the accuracy on demand).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import geopandas as gpd
    import pandas as pd

    from thawdetect.core.accuracy.metrics import AccuracyReport
    from thawdetect.core.accuracy.scoring import RunAccuracy
    from thawdetect.core.run.manifest import Manifest

__all__ = ["RunResult", "detector_thresholds"]


@dataclass
class RunResult:
    """A run directory and what it holds, read from its ledger and manifest.

    Attributes:
        run_dir: the run directory.
        status: ``finished``, ``awaiting review`` or ``running`` (interrupted).
        stop_reason: why the loop stopped (empty while running).
        pending: candidates awaiting review (manual reviewer).
        messages: the progress lines of this call (empty for :func:`open_run`).
    """

    run_dir: Path
    status: str
    stop_reason: str = ""
    pending: int = 0
    messages: list[str] = field(default_factory=list)
    #: the accuracy this call scored (None: read from ``accuracy.json`` when asked)
    _scores: RunAccuracy | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.status = str(self.status)  # the text, also when given a RunStatus

    @property
    def ledger_path(self) -> Path:
        """``ledger.gpkg``: candidates, decisions, inventory, training sets, iterations."""
        return self.run_dir / "ledger.gpkg"

    @property
    def manifest_path(self) -> Path:
        """``manifest.json``: effective config of every iteration, versions, input checksums."""
        return self.run_dir / "manifest.json"

    @property
    def manifest(self) -> Manifest:
        """The parsed manifest (``manifest["status"]``-style reading still works)."""
        from thawdetect.core.run.manifest import read_manifest

        return read_manifest(self.run_dir)

    @property
    def synthetic(self) -> bool:
        """True when the run's data are a bundled SYNTHETIC sample (not real observations)."""
        return self.manifest.synthetic

    def _layer(self, name: str) -> Any:
        from thawdetect.core.run.access import open_run_ledger

        return open_run_ledger(self.run_dir).read(name)

    @property
    def iterations(self) -> pd.DataFrame:
        """One row per finished iteration (training sets, candidates, confirmed, thresholds).

        Columns: ``iteration``, ``detectors``, ``training_positives``, ``training_negatives``,
        ``candidates_proposed``, ``candidates_reviewed``, ``newly_confirmed``, ``rejected``,
        ``inventory_size``, ``thresholds_json`` (as stored in the ledger) and, unpacked from it,
        one column ``<detector>__<setting>`` per threshold a detector reported (e.g.
        ``insar_sbas__abs_rate_mm_yr`` = ``">=50"``).
        """
        import pandas as pd

        raw = self._layer("iterations")
        table: pd.DataFrame = pd.DataFrame(raw.drop(columns="geometry", errors="ignore"))
        table = table.sort_values("iteration").reset_index(drop=True)
        if "thresholds_json" in table.columns:
            flat = [
                {
                    f"{det}__{key}": value
                    for det, settings in detector_thresholds(text).items()
                    for key, value in settings.items()
                }
                for text in table["thresholds_json"]
            ]
            extra = pd.DataFrame(flat, index=table.index)
            table = pd.concat([table, extra.drop(columns=table.columns, errors="ignore")], axis=1)
        return table

    @property
    def candidates(self) -> gpd.GeoDataFrame:
        """Every merged candidate with its status, probability and evidence (working CRS)."""
        return self._layer("candidates")

    @property
    def decisions(self) -> pd.DataFrame:
        """The decision history, oldest first (candidate, decision, probability, note, time)."""
        from thawdetect.core.review.decisions import history

        self._layer("decisions")  # a one-line InputError when this is not a run
        rows: pd.DataFrame = history(self.run_dir)
        return rows

    @property
    def inventory(self) -> gpd.GeoDataFrame:
        """The inventory in the published form, as ``thawdetect inventory export`` writes it.

        One row per landslide (known inventory + confirmed candidates): ``inventory_id``,
        ``centroid_lon``/``centroid_lat`` (degrees, WGS84), ``area_ha``, ``perimeter_m``,
        ``probability``, ``iteration``, ``detectors`` and every detector's evidence columns.
        Geometries are in the run's working CRS (the region's UTM zone); ``near_road`` and
        ``road_distance_m`` come from the run's roads (its config's ``roads``, else its region's;
        empty when it names none).
        """
        from thawdetect.core.inventory import inventory_frame, run_roads

        roads, near_m = run_roads(self.run_dir)
        return inventory_frame(self.run_dir, roads=roads, near_road_m=near_m)

    @property
    def accuracy(self) -> AccuracyReport | None:
        """Overall accuracy against the run's validation points (None when it has none)."""
        scores = self.accuracy_scores
        return None if scores is None else scores.overall

    @property
    def accuracy_scores(self) -> RunAccuracy | None:
        """Every figure of ``accuracy.json`` (overall, proposed, per iteration, per detector) and
        its table, typed (None when the run has no validation points)."""
        if self._scores is None:
            from thawdetect.core.accuracy.scoring import RunAccuracy

            self._scores = RunAccuracy.read(self.run_dir)
        return self._scores

    def decide(
        self,
        candidate_ids: str | Sequence[str],
        decision: str,
        *,
        probability: str | None = None,
        note: str = "",
        reviewer: str = "unknown",
    ) -> pd.DataFrame:
        """Record a review decision, as ``thawdetect review decide`` does (one transaction).

        With the manual reviewer a run stops ``awaiting review``; decide every pending candidate
        (``result.candidates.query("status == 'pending'")``), then call :func:`run` again with
        the same ``output_dir`` to go on.

        Args:
            candidate_ids: one candidate id or several.
            decision: ``confirmed``, ``rejected`` or ``unsure``.
            probability: ``high``, ``medium`` or ``low`` (usually with ``confirmed``), or None.
            note: free text.
            reviewer: the reviewer's name (kept in the decision history).

        Returns:
            The decision rows appended to the history.

        Raises:
            InputError: unknown ids, an illegal decision or probability (nothing is recorded).
        """
        from thawdetect.core.review.decisions import decide

        rows = decide(
            self.run_dir,
            candidate_ids,
            decision,
            probability=probability,
            note=note,
            reviewer=reviewer,
        )
        pending = self.candidates["status"] == "pending"
        self.pending = int(pending.sum())
        return rows

    def __repr__(self) -> str:
        return f"RunResult({str(self.run_dir)!r}, status={self.status!r})"


def detector_thresholds(text: Any) -> dict[str, dict[str, Any]]:
    """Each detector's ``summary()`` from an ``iterations`` row's ``thresholds_json`` cell ({}
    when unreadable): what ``RunResult.iterations`` unpacks and ``thawdetect status`` shows."""
    if not isinstance(text, str) or not text:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(d): v for d, v in data.items() if isinstance(v, dict)}
