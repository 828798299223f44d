"""A synthetic detector for engine benchmarks: N square 0.16 ha candidates per iteration.

Iteration k proposes ``n_per_iteration`` squares of 40 m × 40 m (0.16 ha) on a 100 m grid, at
grid cells no earlier iteration used (so nothing is dropped as "already seen"), with a
deterministic score and two evidence columns. It walks a schedule of ``iterations`` steps
(``relaxes_schedule``), so the run goes on while it confirms something or not.
:func:`reference_squares` writes the matching reference inventory (every other square), so the
built-in reference reviewer confirms half of each iteration and rejects the other half.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pydantic import Field

from thawdetect.core.plugin_api.context import IterationContext
from thawdetect.core.plugin_api.detector import Detector, DetectorConfig, ReviewOutcome
from thawdetect.core.plugin_api.hookspecs import hookimpl

CRS = "EPSG:32646"
SIDE_M = 40.0  # 40 m × 40 m = 0.16 ha
PITCH_M = 100.0
COLUMNS = 1000  # grid cells per row
ORIGIN = (400_000.0, 3_800_000.0)


class SyntheticConfig(DetectorConfig):
    n_per_iteration: int = Field(1000, ge=1, description="candidates proposed per iteration")
    iterations: int = Field(3, ge=1, description="schedule length")
    index: int = Field(0, ge=0, description="position in the schedule")


def squares(first: int, n: int) -> np.ndarray:
    """Polygons of grid cells ``first`` … ``first + n - 1`` (vectorised)."""
    idx = np.arange(first, first + n)
    x0 = ORIGIN[0] + (idx % COLUMNS) * PITCH_M
    y0 = ORIGIN[1] + (idx // COLUMNS) * PITCH_M
    return shapely.box(x0, y0, x0 + SIDE_M, y0 + SIDE_M)


def reference_squares(path: Path, n_per_iteration: int, iterations: int) -> Path:
    """The reference inventory: every other square of every iteration."""
    total = n_per_iteration * iterations
    keep = np.arange(0, total, 2)
    gpd.GeoDataFrame(
        {"id": [f"ref-{i}" for i in keep]}, geometry=squares(0, total)[keep], crs=CRS
    ).to_file(path, engine="pyogrio")
    return path


class SyntheticSquares(Detector):
    name = "synthetic"
    description = "N synthetic 0.16 ha squares per iteration (benchmarks)"
    config_model = SyntheticConfig
    config: SyntheticConfig
    relaxes_schedule = True

    def propose(self, context: IterationContext) -> gpd.GeoDataFrame:
        n = self.config.n_per_iteration
        first = (context.iteration - 1) * n
        idx = np.arange(first, first + n)
        score = ((idx * 2654435761) % 1000) / 1000.0  # deterministic, spread, few ties
        return gpd.GeoDataFrame(
            {
                "score": score,
                "mean_value": score * 0.5 + 0.25,
                "cluster": [f"k{i % 97}" for i in idx],
            },
            geometry=squares(first, n),
            crs=CRS,
        )

    def next_config(self, outcome: ReviewOutcome) -> SyntheticConfig | None:
        if self.config.index + 1 >= self.config.iterations:
            return None
        return self.config.model_copy(update={"index": self.config.index + 1})

    def summary(self) -> dict[str, Any]:
        return {"step": self.config.index}


@hookimpl
def thawdetect_register_detectors(register: Any) -> None:
    register(SyntheticSquares)
