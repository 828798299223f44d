"""GeoPackage internals of the run ledger: geometry blobs, SQLite connections, layer tables.

Private to :mod:`thawdetect.core.run.ledger`, which keeps the public API (``Ledger``,
``LedgerTransaction``) and the run's layer schemas. Here: the GeoPackage geometry binary
(little-endian header with the envelope, ISO WKB), connections carrying the ``ST_*`` functions
the R-tree triggers call, the ``gpkg_contents`` / ``gpkg_geometry_columns`` /
``gpkg_spatial_ref_sys`` / ``gpkg_extensions`` bookkeeping of creating and dropping a layer, the
GeoPackage 1.4 R-tree and feature-count triggers as GDAL writes them, and the SQL helpers
(quoting, ``where`` filters, column types, value binding and reading back).

Writing rows: geometry blobs with the extent they add, suspending the per-row R-tree and
feature-count triggers for a bulk insert and writing their rows directly, and stamping
``gpkg_contents`` (``last_change``, extent) on commit.

About 600 lines, most of it SQL text and GeoPackage rules; the parts are small and share the
layer description (:class:`_LayerInfo`) and the quoting helper, so they stay together.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from pyproj import CRS

from thawdetect.core.errors import InputError

#: ``where`` filters: column → value (``=``), list/tuple/set of values (``IN``) or None (IS NULL).
Where = Mapping[str, Any]

_BUSY_TIMEOUT_S = 60.0
_GPKG_APPLICATION_ID = 0x47504B47  # "GPKG"
_ENVELOPE_BYTES = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}
_HEADER = struct.Struct("<2sBBi")  # magic, version, flags, srs_id: no envelope (empty geometry)
_INTEGER_TYPES = ("INTEGER", "INT", "MEDIUMINT", "SMALLINT", "TINYINT")
_REAL_TYPES = ("REAL", "FLOAT", "DOUBLE")
_IN_CHUNK = 500  # values per IN (...) list


def _q(name: str) -> str:
    """An SQL identifier, quoted."""
    return '"' + str(name).replace('"', '""') + '"'


# -- GeoPackage geometry binary -------------------------------------------------------------------


def _blob_wkb(blob: bytes) -> bytes:
    return bytes(blob[8 + _ENVELOPE_BYTES[(blob[3] >> 1) & 7] :])


def _blob_envelope(blob: bytes | None) -> tuple[float, float, float, float] | None:
    """(minx, maxx, miny, maxy) of a GeoPackage geometry blob; None when null or empty."""
    if blob is None or blob[3] & 0x10:
        return None
    env = (blob[3] >> 1) & 7
    if env:
        minx, maxx, miny, maxy = struct.unpack_from("<4d" if blob[3] & 1 else ">4d", blob, 8)
        return minx, maxx, miny, maxy
    geom = shapely.from_wkb(_blob_wkb(blob))
    if geom is None or geom.is_empty:
        return None
    x0, y0, x1, y1 = geom.bounds
    return x0, x1, y0, y1


_HEADER_DTYPE = np.dtype(
    [("magic", "S2"), ("version", "u1"), ("flags", "u1"), ("srs_id", "<i4"), ("envelope", "<f8", 4)]
)  # _HEADER + the xy envelope, little-endian: every non-empty geometry the ledger writes


def _encode_geometries(
    geoms: npt.NDArray[Any], srs_id: int
) -> tuple[list[bytes | None], npt.NDArray[Any]]:
    """GeoPackage blobs (envelope in the header) and each one's (minx, miny, maxx, maxy).

    The headers are packed for all rows at once (a numpy record array); an empty geometry gets
    the 8-byte header with the "empty" flag and no envelope."""
    wkb = shapely.to_wkb(geoms, byte_order=1, flavor="iso")
    bounds = shapely.bounds(geoms)
    empty = np.isnan(bounds[:, 0])
    header = np.zeros(len(geoms), dtype=_HEADER_DTYPE)
    header["magic"] = b"GP"
    header["flags"] = np.where(empty, 0x11, 0x03)
    header["srs_id"] = srs_id
    header["envelope"] = bounds[:, [0, 2, 1, 3]]  # minx, maxx, miny, maxy
    packed = header.tobytes()
    size = _HEADER_DTYPE.itemsize
    out: list[bytes | None] = [
        None if w is None else packed[i * size : i * size + (_HEADER.size if e else size)] + w
        for i, (w, e) in enumerate(zip(wkb.tolist(), empty.tolist(), strict=True))
    ]
    return out, bounds


def _decode_geometries(blobs: Sequence[bytes | None]) -> npt.NDArray[Any]:
    wkb = [None if b is None else _blob_wkb(b) for b in blobs]
    geoms: npt.NDArray[Any] = shapely.from_wkb(np.array(wkb, dtype=object))
    return geoms


def _st_is_empty(blob: bytes | None) -> int | None:
    if blob is None:
        return None
    return 1 if _blob_envelope(blob) is None else 0


def _st_bound(i: int) -> Any:
    def f(blob: bytes | None) -> float | None:
        env = _blob_envelope(blob)
        return None if env is None else env[i]

    return f


# -- connections --------------------------------------------------------------------------------


def _connect(path: Path) -> sqlite3.Connection:
    """A connection with the ``ST_*`` functions the GeoPackage R-tree triggers call."""
    con = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
    con.create_function("ST_IsEmpty", 1, _st_is_empty, deterministic=True)
    for i, name in enumerate(("ST_MinX", "ST_MaxX", "ST_MinY", "ST_MaxY")):
        con.create_function(name, 1, _st_bound(i), deterministic=True)
    con.execute("PRAGMA synchronous=FULL")
    con.execute("PRAGMA cache_size=-65536")  # 64 MiB: big inserts do not spill mid-transaction
    return con


def _open(path: Path) -> sqlite3.Connection:
    """:func:`_connect`, with one clear line for a file SQLite cannot use."""
    try:
        return _connect(path)
    except sqlite3.OperationalError as exc:
        raise InputError(path, f"run ledger cannot be opened ({exc})") from exc
    except sqlite3.DatabaseError as exc:
        raise InputError(path, f"run ledger is corrupt ({exc})") from exc


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[sqlite3.Connection]:
    """A short read connection (rolls back a killed writer's hot journal on first use)."""
    con = _open(path)
    try:
        _check_gpkg(con, path)
        yield con
    except sqlite3.DatabaseError as exc:
        raise InputError(path, f"run ledger is corrupt ({exc})") from exc
    finally:
        con.close()


def _check_gpkg(con: sqlite3.Connection, path: Path) -> None:
    try:
        app, has = con.execute(
            "SELECT (SELECT application_id FROM pragma_application_id), "
            "(SELECT count(*) FROM sqlite_master WHERE name = 'gpkg_contents')"
        ).fetchone()
    except sqlite3.DatabaseError as exc:
        raise InputError(path, "run ledger is corrupt (not a readable GeoPackage)") from exc
    if app != _GPKG_APPLICATION_ID or not has:
        raise InputError(path, "run ledger is corrupt (not a GeoPackage)")


# -- layer schema ---------------------------------------------------------------------------------


@dataclass
class _LayerInfo:
    name: str
    fid: str
    columns: dict[str, str]  # attribute column → declared type (upper case), table order
    geometry: str | None
    geometry_type: str | None
    srs_id: int | None


def _layer_info(con: sqlite3.Connection, layer: str) -> _LayerInfo | None:
    row = con.execute(
        "SELECT data_type FROM gpkg_contents WHERE table_name = ?", (layer,)
    ).fetchone()
    if row is None:
        return None
    geom = con.execute(
        "SELECT column_name, geometry_type_name, srs_id FROM gpkg_geometry_columns "
        "WHERE table_name = ?",
        (layer,),
    ).fetchone()
    fid = "fid"
    columns: dict[str, str] = {}
    for _, name, typ, _, _, pk in con.execute(f"PRAGMA table_info({_q(layer)})").fetchall():
        if pk:
            fid = name
        elif geom is None or name != geom[0]:
            columns[name] = (typ or "TEXT").upper()
    if geom is None:
        return _LayerInfo(layer, fid, columns, None, None, None)
    return _LayerInfo(layer, fid, columns, geom[0], geom[1], geom[2])


def _layer_names(con: sqlite3.Connection) -> set[str]:
    return {str(r[0]) for r in con.execute("SELECT table_name FROM gpkg_contents")}


def _crs_of(con: sqlite3.Connection, srs_id: int | None) -> CRS | None:
    if srs_id is None:
        return None
    row = con.execute(
        "SELECT organization, organization_coordsys_id, definition FROM gpkg_spatial_ref_sys "
        "WHERE srs_id = ?",
        (srs_id,),
    ).fetchone()
    if row is None:
        return None
    org, code, definition = row
    if str(org).upper() == "EPSG":
        return CRS.from_epsg(int(code))
    if not definition or str(definition).strip().lower() == "undefined":
        return None
    return CRS.from_wkt(definition)


def _srs_id(con: sqlite3.Connection, crs: Any) -> int:
    """The ``gpkg_spatial_ref_sys`` id of ``crs`` (added when missing); -1 for no CRS."""
    if crs is None:
        return -1
    crs = CRS.from_user_input(crs)
    epsg = crs.to_epsg()
    if epsg is not None:
        row = con.execute(
            "SELECT srs_id FROM gpkg_spatial_ref_sys "
            "WHERE upper(organization) = 'EPSG' AND organization_coordsys_id = ?",
            (epsg,),
        ).fetchone()
        if row is not None:
            return int(row[0])
    wkt = crs.to_wkt("WKT1_GDAL")
    row = con.execute(
        "SELECT srs_id FROM gpkg_spatial_ref_sys WHERE definition = ?", (wkt,)
    ).fetchone()
    if row is not None:
        return int(row[0])
    taken = con.execute(
        "SELECT count(*) FROM gpkg_spatial_ref_sys WHERE srs_id = ?", (epsg,)
    ).fetchone()[0]
    if epsg is not None and not taken:
        srs_id, org, code = int(epsg), "EPSG", int(epsg)
    else:
        top = con.execute("SELECT max(srs_id) FROM gpkg_spatial_ref_sys").fetchone()[0] or 0
        srs_id = max(int(top), 100000) + 1
        org, code = "NONE", srs_id
    con.execute(
        "INSERT INTO gpkg_spatial_ref_sys (srs_name, srs_id, organization, "
        "organization_coordsys_id, definition, description) VALUES (?, ?, ?, ?, ?, '')",
        (crs.name or "Unknown", srs_id, org, code, wkt),
    )
    return srs_id


def _sql_type(series: pd.Series) -> str:
    """GeoPackage column type of a pandas column (what pyogrio would create)."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "BOOLEAN"
    if pd.api.types.is_integer_dtype(dtype):
        return "INTEGER"
    if pd.api.types.is_float_dtype(dtype):
        return "REAL"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "DATETIME"
    return "TEXT"


_RTREE_TRIGGERS = (
    # The GeoPackage 1.4 R-tree triggers, as GDAL writes them (spatial index extension, F.3).
    'CREATE TRIGGER "{r}_insert" AFTER INSERT ON "{t}" WHEN (new."{g}" NOT NULL AND NOT '
    'ST_IsEmpty(NEW."{g}")) BEGIN INSERT OR REPLACE INTO "{r}" VALUES (NEW."{f}",'
    'ST_MinX(NEW."{g}"), ST_MaxX(NEW."{g}"),ST_MinY(NEW."{g}"), ST_MaxY(NEW."{g}")); END',
    'CREATE TRIGGER "{r}_update6" AFTER UPDATE OF "{g}" ON "{t}" WHEN OLD."{f}" = NEW."{f}" AND '
    '(NEW."{g}" NOTNULL AND NOT ST_IsEmpty(NEW."{g}")) AND (OLD."{g}" NOTNULL AND NOT '
    'ST_IsEmpty(OLD."{g}")) BEGIN UPDATE "{r}" SET minx = ST_MinX(NEW."{g}"), maxx = '
    'ST_MaxX(NEW."{g}"),miny = ST_MinY(NEW."{g}"), maxy = ST_MaxY(NEW."{g}") WHERE id = '
    'NEW."{f}";END',
    'CREATE TRIGGER "{r}_update7" AFTER UPDATE OF "{g}" ON "{t}" WHEN OLD."{f}" = NEW."{f}" AND '
    '(NEW."{g}" NOTNULL AND NOT ST_IsEmpty(NEW."{g}")) AND (OLD."{g}" ISNULL OR '
    'ST_IsEmpty(OLD."{g}")) BEGIN INSERT INTO "{r}" VALUES (NEW."{f}",ST_MinX(NEW."{g}"), '
    'ST_MaxX(NEW."{g}"),ST_MinY(NEW."{g}"), ST_MaxY(NEW."{g}")); END',
    'CREATE TRIGGER "{r}_update2" AFTER UPDATE OF "{g}" ON "{t}" WHEN OLD."{f}" = NEW."{f}" AND '
    '(NEW."{g}" ISNULL OR ST_IsEmpty(NEW."{g}")) BEGIN DELETE FROM "{r}" WHERE id = OLD."{f}"; '
    "END",
    'CREATE TRIGGER "{r}_update5" AFTER UPDATE ON "{t}" WHEN OLD."{f}" != NEW."{f}" AND '
    '(NEW."{g}" NOTNULL AND NOT ST_IsEmpty(NEW."{g}")) BEGIN DELETE FROM "{r}" WHERE id = '
    'OLD."{f}"; INSERT OR REPLACE INTO "{r}" VALUES (NEW."{f}",ST_MinX(NEW."{g}"), '
    'ST_MaxX(NEW."{g}"),ST_MinY(NEW."{g}"), ST_MaxY(NEW."{g}")); END',
    'CREATE TRIGGER "{r}_update4" AFTER UPDATE ON "{t}" WHEN OLD."{f}" != NEW."{f}" AND '
    '(NEW."{g}" ISNULL OR ST_IsEmpty(NEW."{g}")) BEGIN DELETE FROM "{r}" WHERE id IN '
    '(OLD."{f}", NEW."{f}"); END',
    'CREATE TRIGGER "{r}_delete" AFTER DELETE ON "{t}" WHEN old."{g}" NOT NULL BEGIN DELETE '
    'FROM "{r}" WHERE id = OLD."{f}"; END',
)
_COUNT_TRIGGERS = (
    'CREATE TRIGGER "trigger_insert_feature_count_{t}" AFTER INSERT ON "{t}" BEGIN UPDATE '
    "gpkg_ogr_contents SET feature_count = feature_count + 1 WHERE lower(table_name) = "
    "lower('{t}'); END",
    'CREATE TRIGGER "trigger_delete_feature_count_{t}" AFTER DELETE ON "{t}" BEGIN UPDATE '
    "gpkg_ogr_contents SET feature_count = feature_count - 1 WHERE lower(table_name) = "
    "lower('{t}'); END",
)


def _has_table(con: sqlite3.Connection, name: str) -> bool:
    row = con.execute("SELECT count(*) FROM sqlite_master WHERE name = ?", (name,)).fetchone()
    return bool(row[0])


def _create_layer(
    con: sqlite3.Connection,
    layer: str,
    columns: Mapping[str, str],
    spatial: bool,
    crs: Any,
    *,
    spatial_index: bool = True,
) -> _LayerInfo:
    """A new feature table (GEOMETRY column ``geom``, with ``spatial_index`` the R-tree and its
    triggers) or attributes table."""
    if '"' in layer or "'" in layer:
        raise ValueError(f"layer name {layer!r} must not contain quotes")
    cols = ['"fid" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL']
    if spatial:
        cols.append('"geom" GEOMETRY')
    cols += [f"{_q(c)} {t}" for c, t in columns.items()]
    con.execute(f"CREATE TABLE {_q(layer)} ( {', '.join(cols)})")
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    srs_id = _srs_id(con, crs) if spatial else 0
    con.execute(
        "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, "
        "last_change, srs_id) VALUES (?, ?, ?, '', ?, ?)",
        (layer, "features" if spatial else "attributes", layer, stamp, srs_id),
    )
    if spatial:
        con.execute(
            "INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', 'GEOMETRY', ?, 0, 0)",
            (layer, srs_id),
        )
    if spatial and spatial_index:
        rtree = f"rtree_{layer}_geom"
        con.execute(f"CREATE VIRTUAL TABLE {_q(rtree)} USING rtree(id, minx, maxx, miny, maxy)")
        for sql in _RTREE_TRIGGERS:
            con.execute(sql.format(r=rtree, t=layer, g="geom", f="fid"))
        if not _has_table(con, "gpkg_extensions"):
            con.execute(
                "CREATE TABLE gpkg_extensions (table_name TEXT,column_name TEXT,extension_name "
                "TEXT NOT NULL,definition TEXT NOT NULL,scope TEXT NOT NULL,CONSTRAINT ge_tce "
                "UNIQUE (table_name, column_name, extension_name))"
            )
        con.execute(
            "INSERT INTO gpkg_extensions VALUES (?, 'geom', 'gpkg_rtree_index', "
            "'http://www.geopackage.org/spec120/#extension_rtree', 'write-only')",
            (layer,),
        )
    if _has_table(con, "gpkg_ogr_contents"):
        con.execute("INSERT INTO gpkg_ogr_contents VALUES (?, 0)", (layer,))
        for sql in _COUNT_TRIGGERS:
            con.execute(sql.format(t=layer))
    for col in ("iteration", "candidate_id"):
        if col in columns:
            _ensure_index(con, layer, col)
    info = _layer_info(con, layer)
    assert info is not None
    return info


def _drop_layer(con: sqlite3.Connection, layer: str) -> None:
    info = _layer_info(con, layer)
    if info is None:
        return
    con.execute(f"DROP TABLE {_q(layer)}")
    if info.geometry is not None:
        con.execute(f"DROP TABLE IF EXISTS {_q(f'rtree_{layer}_{info.geometry}')}")
        con.execute("DELETE FROM gpkg_geometry_columns WHERE table_name = ?", (layer,))
    for table in ("gpkg_extensions", "gpkg_ogr_contents", "sqlite_sequence"):
        if _has_table(con, table):
            key = "name" if table == "sqlite_sequence" else "table_name"
            con.execute(f"DELETE FROM {table} WHERE {key} = ?", (layer,))
    con.execute("DELETE FROM gpkg_contents WHERE table_name = ?", (layer,))


def _ensure_index(con: sqlite3.Connection, layer: str, column: str) -> None:
    con.execute(
        f"CREATE INDEX IF NOT EXISTS {_q(f'idx_{layer}_{column}')} ON {_q(layer)}({_q(column)})"
    )


def _widen(con: sqlite3.Connection, layer: str, column: str, new_type: str) -> None:
    """Change a column's type (INTEGER → REAL, numbers → TEXT) keeping its values."""
    tmp = f"{column}__widened"
    con.execute(f"ALTER TABLE {_q(layer)} ADD COLUMN {_q(tmp)} {new_type}")
    con.execute(f"UPDATE {_q(layer)} SET {_q(tmp)} = CAST({_q(column)} AS {new_type})")
    con.execute(f"DROP INDEX IF EXISTS {_q(f'idx_{layer}_{column}')}")
    con.execute(f"ALTER TABLE {_q(layer)} DROP COLUMN {_q(column)}")
    con.execute(f"ALTER TABLE {_q(layer)} RENAME COLUMN {_q(tmp)} TO {_q(column)}")


def _needs_widening(stored: str, values: pd.Series) -> str | None:
    incoming = _sql_type(values)
    if stored in _INTEGER_TYPES:
        if incoming == "REAL":
            finite = values.dropna().to_numpy(dtype=float)
            return "REAL" if len(finite) and not np.all(np.mod(finite, 1) == 0) else None
        if incoming == "TEXT" and values.notna().any():
            return "TEXT"
    if stored in _REAL_TYPES and incoming == "TEXT" and values.notna().any():
        return "TEXT"
    return None


def _sql_values(values: pd.Series, stored: str) -> list[Any]:
    """Python values to bind for one column (NULL for NaN/None/NaT)."""
    arr = values.to_numpy()
    if stored in _REAL_TYPES or stored in _INTEGER_TYPES or stored == "BOOLEAN":
        if arr.dtype.kind in "iub":
            return arr.astype(np.int64).tolist()
        if arr.dtype.kind == "f":
            out = arr.astype(object)
            out[np.isnan(arr)] = None
            return out.tolist()
    if stored in ("DATETIME", "DATE") and arr.dtype.kind == "M":
        ts = pd.Series(values)
        return [None if pd.isna(v) else v.isoformat() for v in ts]
    if arr.dtype == object and pd.api.types.infer_dtype(arr, skipna=True) in ("string", "empty"):
        out = arr.copy()
        out[pd.isna(arr)] = None
        return out.tolist()
    result: list[Any] = []
    for v in arr.tolist():
        if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
            result.append(None)
        elif stored == "TEXT" and not isinstance(v, str):
            result.append(v.isoformat() if hasattr(v, "isoformat") else str(v))
        else:
            result.append(v)
    return result


def _where_sql(info: _LayerInfo, where: Where | None) -> tuple[str, list[Any]]:
    if not where:
        return "", []
    parts, params = [], []
    for col, value in where.items():
        if col not in info.columns:
            if value is None:
                continue  # a missing column is all NULL
            return " WHERE 0", []
        if value is None:
            parts.append(f"{_q(col)} IS NULL")
        elif isinstance(value, (list, tuple, set, frozenset, np.ndarray, pd.Series, pd.Index)):
            vals = [v.item() if isinstance(v, np.generic) else v for v in value]
            if not vals:
                return " WHERE 0", []
            parts.append(f"{_q(col)} IN ({', '.join('?' * len(vals))})")
            params += vals
        else:
            parts.append(f"{_q(col)} = ?")
            params.append(value.item() if isinstance(value, np.generic) else value)
    return (" WHERE " + " AND ".join(parts) if parts else ""), params


def _column_from_sql(values: Sequence[Any], stored: str) -> Any:
    """A pandas-ready array of one column, with pyogrio's dtypes (ints/bools with NULL: float)."""
    if stored in _INTEGER_TYPES or stored == "BOOLEAN":
        if any(v is None for v in values):
            return np.array([np.nan if v is None else float(v) for v in values], dtype=float)
        return np.array(values, dtype=bool if stored == "BOOLEAN" else np.int64)
    if stored in _REAL_TYPES:
        return np.array([np.nan if v is None else v for v in values], dtype=float)
    if stored in ("DATETIME", "DATE"):
        return pd.to_datetime(pd.Series(values, dtype=object), format="ISO8601").to_numpy()
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def _count(con: sqlite3.Connection, layer: str, where: Where | None) -> int:
    info = _layer_info(con, layer)
    if info is None:
        return 0
    clause, params = _where_sql(info, where)
    return int(con.execute(f"SELECT count(*) FROM {_q(layer)}{clause}", params).fetchone()[0])


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for i in range(0, len(values), _IN_CHUNK):
        yield values[i : i + _IN_CHUNK]


# -- writing rows: geometry column, R-tree, gpkg_contents -----------------------------------------


def _geometry_blobs(
    con: sqlite3.Connection,
    info: _LayerInfo,
    rows: gpd.GeoDataFrame,
    extents: dict[str, npt.NDArray[Any]],
) -> tuple[list[bytes | None], npt.NDArray[Any]]:
    """Blobs of the rows' geometries and their bounds (NaN rows: null or empty).

    Reprojects to the layer's CRS, widens the declared geometry type to GEOMETRY when the rows
    bring another type, and grows ``extents[layer]`` (minx, miny, maxx, maxy) to cover them.
    """
    geoms = rows.geometry
    target = _crs_of(con, info.srs_id)
    if geoms.crs is not None and target is not None and geoms.crs != target:
        geoms = geoms.to_crs(target)
    blobs, bounds = _encode_geometries(geoms.to_numpy(), int(info.srs_id or 0))
    stored = (info.geometry_type or "GEOMETRY").upper()
    if stored != "GEOMETRY" and {t.upper() for t in geoms.geom_type.dropna()} - {stored}:
        con.execute(
            "UPDATE gpkg_geometry_columns SET geometry_type_name = 'GEOMETRY' WHERE table_name = ?",
            (info.name,),
        )
    finite = bounds[~np.isnan(bounds[:, 0])] if len(bounds) else bounds
    if len(finite):
        new = np.array(
            [finite[:, 0].min(), finite[:, 1].min(), finite[:, 2].max(), finite[:, 3].max()]
        )
        old = extents.get(info.name)
        if old is not None:
            new = np.r_[np.minimum(old[:2], new[:2]), np.maximum(old[2:], new[2:])]
        extents[info.name] = new
    return blobs, bounds


def _suspend_insert_triggers(con: sqlite3.Connection, info: _LayerInfo) -> dict[str, str]:
    """Drop the per-row insert triggers (R-tree, feature count); returns name → SQL."""
    names = [f"trigger_insert_feature_count_{info.name}"]
    if info.geometry is not None:
        names.append(f"rtree_{info.name}_{info.geometry}_insert")
    return _suspend(con, f"AND name IN ({', '.join('?' * len(names))})", (info.name, *names))


def _suspend_update_triggers(con: sqlite3.Connection, info: _LayerInfo) -> dict[str, str]:
    """Drop the R-tree triggers that fire on any update (they act only when a fid changes,
    which ``LedgerTransaction.update`` never does, but test each row with a call back into
    Python)."""
    return _suspend(
        con, "AND name LIKE 'rtree%' AND upper(sql) LIKE '%AFTER UPDATE ON%'", (info.name,)
    )


def _suspend(con: sqlite3.Connection, condition: str, params: tuple[Any, ...]) -> dict[str, str]:
    rows = con.execute(
        f"SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ? {condition}",
        params,
    ).fetchall()
    for name, _ in rows:
        con.execute(f"DROP TRIGGER {_q(name)}")
    return {str(name): str(sql) for name, sql in rows}


def _bulk_index(
    con: sqlite3.Connection,
    layer: str,
    info: _LayerInfo,
    fids: Sequence[int],
    bounds: npt.NDArray[Any] | None,
    triggers: Mapping[str, str],
) -> None:
    """After a bulk insert with ``triggers`` suspended: write what they would have (the R-tree
    rows of ``fids``/``bounds``, the feature count), then restore them."""
    rtree = f"rtree_{layer}_{info.geometry}"
    if bounds is not None and f"{rtree}_insert" in triggers:
        ok = ~np.isnan(bounds[:, 0])
        box = np.column_stack([np.asarray(fids)[ok], bounds[ok][:, [0, 2, 1, 3]]])
        con.executemany(
            f"INSERT OR REPLACE INTO {_q(rtree)} VALUES (?, ?, ?, ?, ?)",
            ((int(r[0]), r[1], r[2], r[3], r[4]) for r in box.tolist()),
        )
    if f"trigger_insert_feature_count_{layer}" in triggers:
        con.execute(
            "UPDATE gpkg_ogr_contents SET feature_count = feature_count + ? "
            "WHERE lower(table_name) = lower(?)",
            (len(fids), layer),
        )
    for trigger in triggers.values():
        con.execute(trigger)


def _stamp_contents(
    con: sqlite3.Connection, touched: Iterable[str], extents: Mapping[str, npt.NDArray[Any]]
) -> None:
    """Stamp ``last_change`` of the ``touched`` layers and grow their ``gpkg_contents`` extent."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    for layer in sorted(touched):
        con.execute("UPDATE gpkg_contents SET last_change = ? WHERE table_name = ?", (stamp, layer))
    for layer, (x0, y0, x1, y1) in extents.items():
        con.execute(
            "UPDATE gpkg_contents SET "
            "min_x = CASE WHEN min_x IS NULL OR min_x > ? THEN ? ELSE min_x END, "
            "min_y = CASE WHEN min_y IS NULL OR min_y > ? THEN ? ELSE min_y END, "
            "max_x = CASE WHEN max_x IS NULL OR max_x < ? THEN ? ELSE max_x END, "
            "max_y = CASE WHEN max_y IS NULL OR max_y < ? THEN ? ELSE max_y END "
            "WHERE table_name = ?",
            (x0, x0, y0, y0, x1, x1, y1, y1, layer),
        )
