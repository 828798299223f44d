"""Inventory export: the confirmed slope failures of a run, as GPKG, GeoJSON, CSV or ARTS.

Fields follow the QTEC inventory (Xia et al. 2022): an id, centroid lon/lat, area, perimeter, a
probability class (high/medium/low), the initiation period when known, and a near-road flag
(centroid within ``near_road_m``, default 500 m, of a road or railway), plus the evidence of every
detector (``<detector>__<column>``). Geometries are the reviewed outlines (a reviewer's corrected
outline, fragments merged in); ``outline`` says how each was made. ``arts=True`` adds the fields
of the ARTS standard (Arctic Retrogressive Thaw Slumps data set,
``Metadata_Format_Summary.csv``) in front.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from thawdetect import __version__
from thawdetect.core.atomic import atomic_path
from thawdetect.core.errors import InputError
from thawdetect.core.exporters import Exporter, choose_exporter

__all__ = [
    "ARTS_FIELDS",
    "ARTS_REQUIRED",
    "arts_frame",
    "export_inventory",
    "inventory_frame",
]

#: ARTS field standard, in its order (Metadata_Format_Summary.csv).
ARTS_FIELDS = (
    "CentroidLat", "CentroidLon", "RegionName", "CreatorLab", "BaseMapDate", "BaseMapSource",
    "BaseMapResolution", "TrainClass", "LabelType", "MergedRTS", "SplitRTS", "NewRTS",
    "StabilizedRTS", "UnknownRelationship", "ContributionDate", "UID", "BaseMapID", "Area", "Notes",
)  # fmt: skip
#: Fields whose concatenation is hashed into the UID (``Required == True``).
ARTS_REQUIRED = (
    "CentroidLat", "CentroidLon", "RegionName", "CreatorLab", "BaseMapDate", "BaseMapSource",
    "BaseMapResolution", "TrainClass", "LabelType",
)  # fmt: skip

BASE_COLUMNS = (
    "inventory_id", "candidate_id", "source", "iteration", "centroid_lon", "centroid_lat",
    "area_ha", "perimeter_m", "probability", "initiation_period", "near_road",
    "road_distance_m", "detectors", "n_detectors", "score", "outline", "merged_candidates",
)  # fmt: skip


def _ledger(run_dir: Path) -> Any:
    from thawdetect.core.run.access import open_run_ledger
    from thawdetect.core.run.checks import check_ledger

    ledger = open_run_ledger(run_dir)
    check_ledger(ledger)
    return ledger


def _initiation(frame: pd.DataFrame) -> pd.Series:
    """First non-empty ``initiation_period`` or ``<detector>__initiation_period`` per row."""
    cols = [
        c for c in frame.columns if c == "initiation_period" or c.endswith("__initiation_period")
    ]
    out = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    for c in cols:
        vals = frame[c].map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v))
                            or str(v).strip() == "" else str(v))  # fmt: skip
        out = out.where(out.notna(), vals)
    return out


def _evidence_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The flattened ``<detector>__<column>`` columns, rebuilt from evidence_json if absent."""
    flat = [c for c in frame.columns if "__" in c and not c.startswith("_")]
    if flat or "evidence_json" not in frame.columns:
        return frame[flat].copy()
    rows = []
    for text in frame["evidence_json"]:
        ev = json.loads(text) if isinstance(text, str) and text else {}
        rows.append({f"{d}__{k}": v for d, cols in ev.items() if isinstance(cols, dict)
                     for k, v in cols.items()})  # fmt: skip
    return pd.DataFrame(rows, index=frame.index)


def run_roads(run_dir: str | Path) -> tuple[str | None, float]:
    """The roads layer a run names (its config's ``roads``, else its region's) and its
    near-road distance (``near_road_m``, default 500 m); (None, 500.0) when it names none.

    Examples:
        >>> run_roads("/nonexistent-run")
        (None, 500.0)
    """
    from thawdetect.core.run.manifest import read_manifest

    try:
        manifest = read_manifest(run_dir, missing_ok=True)
    except (InputError, OSError, ValueError):
        return None, 500.0
    return manifest_roads(manifest)


def manifest_roads(manifest: Any) -> tuple[str | None, float]:
    """:func:`run_roads` from a manifest already read (a :class:`~.run.manifest.Manifest`)."""
    roads = next((p for p in manifest.files.roads or [] if p), None)
    near = (manifest.run_config or {}).get("near_road_m", 500.0)
    return roads, float(500.0 if near is None else near)


def road_fields(
    geoms: gpd.GeoDataFrame, roads: str | Path | gpd.GeoDataFrame, near_road_m: float
) -> pd.DataFrame:
    """``road_distance_m`` (centroid to the nearest road, metres) and ``near_road`` (within
    ``near_road_m``; NA without a road) of each feature of ``geoms`` (any CRS; measured in its
    UTM zone when geographic).

    Raises:
        InputError: the roads cannot be read (one line naming the file).
    """
    from thawdetect.core.vector import distance_to_nearest, read_vector

    metric = geoms
    if len(geoms) and geoms.crs is not None and not geoms.crs.is_projected:
        metric = geoms.to_crs(geoms.estimate_utm_crs())
    if isinstance(roads, gpd.GeoDataFrame):
        road_gdf = roads.to_crs(metric.crs) if len(roads) and metric.crs else roads
    else:
        road_gdf = read_vector(roads, crs=metric.crs, what="roads")
    dist = distance_to_nearest(gpd.GeoDataFrame(geometry=metric.geometry, crs=metric.crs),
                               road_gdf)  # fmt: skip
    near = pd.Series(dist <= near_road_m, index=geoms.index, dtype="boolean")
    return pd.DataFrame(
        {"road_distance_m": dist, "near_road": near.where(~np.isnan(dist), pd.NA)},
        index=geoms.index,
    )


def inventory_frame(
    run_dir: str | Path,
    *,
    roads: str | Path | gpd.GeoDataFrame | None = None,
    near_road_m: float = 500.0,
) -> gpd.GeoDataFrame:
    """The run's inventory with the QTEC fields, in the run's working CRS.

    Rows: the ledger's ``inventory`` layer (known inventory + confirmed candidates); when that is
    empty, the candidates whose status is confirmed.

    Args:
        run_dir: the run directory.
        roads: roads/railways (file or frame, lines in any CRS); None: ``near_road`` is empty.
        near_road_m: a centroid within this distance (metres) of a road is near the road.

    Returns:
        GeoDataFrame with :data:`BASE_COLUMNS`, then every detector's evidence columns.

    Raises:
        InputError: not a run directory, unreadable roads, negative distance.
    """
    run_dir = Path(run_dir)
    if near_road_m < 0:
        raise InputError(run_dir, f"near_road_m must be ≥ 0, got {near_road_m}")
    ledger = _ledger(run_dir)
    inv = ledger.read("inventory")
    if len(inv) == 0:
        cands = ledger.read("candidates")
        inv = cands[cands["status"] == "confirmed"].copy()
        inv.insert(0, "inventory_id", [f"rts-{i + 1:04d}" for i in range(len(inv))])
        inv["source"] = "confirmed"
    inv = inv.reset_index(drop=True)
    if inv.crs is None and ledger.crs is not None:
        inv = inv.set_crs(ledger.crs)
    metric = inv
    if len(inv) and inv.crs is not None and not inv.crs.is_projected:
        metric = inv.to_crs(inv.estimate_utm_crs())
    out = pd.DataFrame(index=inv.index)
    for col in ("inventory_id", "candidate_id", "source"):
        out[col] = inv[col].astype(object) if col in inv else None
    out["iteration"] = inv.get("iteration", pd.NA)
    if len(inv):
        cent = gpd.GeoSeries(metric.geometry.centroid, crs=metric.crs).to_crs(4326)
        out["centroid_lon"] = cent.x.round(6).to_numpy()
        out["centroid_lat"] = cent.y.round(6).to_numpy()
    else:
        out["centroid_lon"] = pd.Series(dtype=float)
        out["centroid_lat"] = pd.Series(dtype=float)
    out["area_ha"] = (metric.geometry.area / 1e4).to_numpy() if len(inv) else []
    out["perimeter_m"] = metric.geometry.length.to_numpy() if len(inv) else []
    prob = inv["probability"] if "probability" in inv else pd.Series(None, index=inv.index)
    out["probability"] = prob.astype(object).where(prob.notna(), None)
    out["initiation_period"] = _initiation(inv)
    out["near_road"] = pd.Series(pd.NA, index=inv.index, dtype="boolean")
    out["road_distance_m"] = np.nan
    if roads is not None:
        fields = road_fields(gpd.GeoDataFrame(geometry=metric.geometry, crs=metric.crs), roads,
                             near_road_m)  # fmt: skip
        out["road_distance_m"] = fields["road_distance_m"]
        out["near_road"] = fields["near_road"]
    for col in ("detectors", "n_detectors", "score"):
        out[col] = inv.get(col, None)
    # how the outline was made (reviewed / detector / known / point, "+union" when fragments
    # were merged in) and the fragment candidates merged into the feature
    out["outline"] = inv.get("outline", None)
    out["merged_candidates"] = inv.get("merged_candidates", "")
    ev = _evidence_columns(inv)
    out = pd.concat([out, ev], axis=1)
    return gpd.GeoDataFrame(out, geometry=inv.geometry.to_numpy(), crs=inv.crs)


def arts_frame(
    inventory: gpd.GeoDataFrame, *, run_dir: Path | None = None, **fields: Any
) -> gpd.GeoDataFrame:
    """Add the ARTS standard fields (in front) to an :func:`inventory_frame` result.

    Defaults: RegionName from the run manifest's region title/name; CreatorLab
    ``"thawdetect <version>"``; BaseMapSource the detectors; TrainClass ``Positive``; LabelType
    ``Polygon``; ContributionDate today (UTC); Area in m²; Notes the thawdetect id and probability.
    Override any with keyword arguments named like the ARTS fields (``BaseMapDate="2020-07-05"``).
    UID is uuid5 (DNS namespace) of the concatenated required fields, as the ARTS guide asks.

    Raises:
        InputError: a keyword that is not an ARTS field.
    """
    bad = sorted(set(fields) - set(ARTS_FIELDS))
    if bad:
        raise InputError(run_dir, f"not ARTS fields: {bad}; ARTS fields: {list(ARTS_FIELDS)}")
    from thawdetect.core.run.manifest import read_manifest

    # a ledger without a manifest has no region name; a corrupt one is an error, as in the
    # engine (an export must not quietly lose the region name)
    region = read_manifest(run_dir, missing_ok=True).region if run_dir else {}
    region_name = region.get("title") or region.get("name") or ""
    n = len(inventory)
    arts = pd.DataFrame(index=inventory.index)
    arts["CentroidLat"] = inventory["centroid_lat"].round(5)
    arts["CentroidLon"] = inventory["centroid_lon"].round(5)
    defaults: dict[str, Any] = {
        "RegionName": region_name,
        "CreatorLab": f"thawdetect {__version__}",
        "BaseMapDate": "",
        "BaseMapSource": inventory["detectors"].fillna("").astype(str).to_numpy()
        if "detectors" in inventory else "",
        "BaseMapResolution": None,
        "TrainClass": "Positive",
        "LabelType": "Polygon",
    }  # fmt: skip
    for key in ARTS_FIELDS[2:]:
        value = fields.get(key, defaults.get(key))
        arts[key] = value if not isinstance(value, list | tuple) else list(value)
    arts["ContributionDate"] = fields.get("ContributionDate", datetime.now(UTC).date().isoformat())
    arts["Area"] = fields.get("Area", (inventory["area_ha"] * 1e4).round(1).to_numpy())
    if "Notes" not in fields:
        arts["Notes"] = [
            f"thawdetect {i}; probability {p or 'n/a'}"
            for i, p in zip(inventory["inventory_id"], inventory["probability"], strict=True)
        ]
    for key in ("MergedRTS", "SplitRTS", "NewRTS", "StabilizedRTS", "UnknownRelationship",
                "BaseMapID"):  # fmt: skip
        if key not in fields:
            arts[key] = None
    arts["UID"] = [
        str(uuid.uuid5(uuid.NAMESPACE_DNS, "".join("" if pd.isna(v) else str(v) for v in row)))
        for row in arts[list(ARTS_REQUIRED)].itertuples(index=False)
    ] if n else []  # fmt: skip
    arts = arts[list(ARTS_FIELDS)]
    rest = inventory.drop(columns=[inventory.geometry.name])
    return gpd.GeoDataFrame(
        pd.concat([arts, rest], axis=1), geometry=inventory.geometry.to_numpy(), crs=inventory.crs
    )


def export_inventory(
    run_dir: str | Path,
    out_path: str | Path,
    *,
    fmt: str | None = None,
    roads: str | Path | gpd.GeoDataFrame | None = None,
    near_road_m: float = 500.0,
    arts: bool = False,
    arts_fields: dict[str, Any] | None = None,
    exporters: Mapping[str, Exporter] | None = None,
) -> Path:
    """Write the run's inventory (atomically: temporary file, then ``os.replace``).

    Args:
        run_dir: the run directory.
        out_path: output file; the format follows the suffix (.gpkg, .geojson/.json, .csv, or
            a plugin's) unless ``fmt`` is given. GeoJSON is written in WGS84 (RFC 7946); CSV
            holds the attributes and a WGS84 ``geometry_wkt`` column; GPKG keeps the working
            CRS (layer ``inventory``).
        fmt: a registered format name (:mod:`thawdetect.core.exporters`): ``gpkg``,
            ``geojson``, ``csv`` or one a plugin registered.
        roads: roads/railways for the near-road flag.
        near_road_m: near-road threshold in metres (QTEC: 500 m).
        arts: add the ARTS standard fields (see :func:`arts_frame`).
        arts_fields: values of ARTS fields (e.g. ``{"BaseMapDate": "2020-07-05"}``).
        exporters: the formats to choose from (default: what the installed plugins and the
            core register, :attr:`PluginHost.exporters`).

    Returns:
        ``out_path``.

    Raises:
        InputError: unknown format, not a run directory, unreadable roads.
    """
    run_dir = Path(run_dir)
    out_path = Path(out_path)
    if exporters is None:
        from thawdetect.core.plugin_api.host import PluginHost

        exporters = PluginHost().exporters
    exporter = choose_exporter(out_path, fmt, exporters)
    if out_path.is_dir():
        raise InputError(out_path, "is a directory; give an output file name")
    frame = inventory_frame(run_dir, roads=roads, near_road_m=near_road_m)
    if arts:
        frame = arts_frame(frame, run_dir=run_dir, **(arts_fields or {}))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # the layer is named after the output (``inventory`` in a GeoPackage, the file's stem
    # elsewhere), never after the temporary file
    layer = "inventory" if exporter.name == "gpkg" else out_path.stem
    with atomic_path(out_path) as tmp:
        exporter.write(frame, tmp, layer)
    return out_path
