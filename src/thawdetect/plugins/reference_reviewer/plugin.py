"""The built-in automatic reviewer: decide candidates against a known reference inventory.

Registered through the ``thawdetect`` entry-point group as ``reference_reviewer``. Reviewer specs:

* ``reference``: the region's reference inventories (``context.reference_paths``, a list
  of paths the engine fills from the region).
* ``reference:PATH``: one inventory file (GPKG, SHP, GeoJSON, KML, CSV/XLSX with lon/lat).
* Options after ``?``, ``&``-separated: ``tolerance_m`` (metres, default 0), ``min_overlap``
  (fraction, default 0.1), ``outline`` (``reference``, the default, or ``detector``) and
  ``unmatched`` (``reject``, the default, or ``manual``), e.g.
  ``reference:truth.gpkg?tolerance_m=30&min_overlap=0.2``. They also apply to
  ``reference?outline=detector``. ``unmatched=manual`` decides only the candidates the reference
  matches and leaves the rest (rejected or unsure otherwise) to a person: with a partial
  inventory (a region's published RTS), what it does not hold may be a new slump.

Match rule (:func:`reference_decisions`):

* polygon reference: a candidate is confirmed when, for some reference polygon,
  ``area(candidate ∩ reference) ≥ min_overlap × min(area(candidate), area(reference))``; with
  ``tolerance_m > 0`` the reference polygons are buffered by the tolerance first.
* point reference: a candidate is confirmed when a point lies inside it or within ``tolerance_m``.

It decides the way a person does (Xia et al. and Wei et al. redraw inaccurate boundaries):

* a candidate matching several reference features is decided as the best (largest overlap)
  that is not yet mapped (in the run's inventory or by an earlier candidate of the batch): a
  person who sees a mapped landslide and a new one beside it in one candidate maps the new one;
  only when every feature it matches is mapped is it decided as its best match;
* the first candidate matching a reference feature is ``confirmed`` (probability ``high``, a note
  naming the feature) **with the reference outline** as its reviewed outline (``outline=detector``
  keeps the detector outline; point references always keep it); the choice is returned in
  ``attrs["review_settings"]`` and the engine records it in the manifest;
* further candidates matching the same reference feature in the same batch are ``part_of`` that
  first candidate (one inventory feature per reference feature);
* a candidate matching a reference feature already in the run's inventory is ``part_of`` that
  inventory feature (never a training negative);
* a candidate that touches a reference polygon without reaching ``min_overlap`` is ``unsure``
  (neither a positive nor a negative on a real slump);
* every other candidate is ``rejected`` (no probability).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from thawdetect.plugin_api import ConfigError, InputError, hookimpl

__all__ = ["parse_reference_spec", "reference_decisions", "thawdetect_review_candidates"]

_OPTIONS: dict[str, Any] = {
    "tolerance_m": float,
    "min_overlap": float,
    "outline": str,
    "unmatched": str,
}
OUTLINES = ("reference", "detector")
#: what becomes of a candidate no reference feature matches: ``reject`` it (``unsure`` when it
#: touches one), or leave it to a person (``manual``: with a partial inventory, what it does not
#: hold may be a new slump)
UNMATCHED = ("reject", "manual")


def parse_reference_spec(spec: str) -> tuple[str | None, dict[str, Any]] | None:
    """Split a reviewer spec into (path or None, options); None when it is not a reference spec.

    Examples:
        >>> parse_reference_spec("reference:truth.gpkg?tolerance_m=30")
        ('truth.gpkg', {'tolerance_m': 30.0})
        >>> parse_reference_spec("reference")
        (None, {})
        >>> parse_reference_spec("manual") is None
        True

    Raises:
        ConfigError: an unknown option or a value that is not a number.
    """
    if not isinstance(spec, str):
        return None
    head, _, query = spec.partition("?")
    if head == "reference":
        path = None
    elif head.startswith("reference:"):
        path = head[len("reference:") :]
        if not path:
            raise ConfigError(f"reviewer '{spec}': no path after 'reference:'")
    else:
        return None
    options: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in _OPTIONS:
            raise ConfigError(
                f"reviewer '{spec}': unknown option '{key}'; supported: {', '.join(_OPTIONS)}"
            )
        if key in ("outline", "unmatched"):
            allowed = OUTLINES if key == "outline" else UNMATCHED
            if value not in allowed:
                raise ConfigError(f"reviewer '{spec}': {key}={value!r}; use {' or '.join(allowed)}")
            options[key] = value
            continue
        try:
            options[key] = _OPTIONS[key](value)
        except ValueError:
            raise ConfigError(f"reviewer '{spec}': {key}={value!r} is not a number") from None
        if options[key] < 0:
            raise ConfigError(f"reviewer '{spec}': {key} must be ≥ 0")
    return path, options


_ID_COLUMNS = ("id", "Id", "ID", "inventory_id", "Slump_ID", "slide_id", "UID", "name")


def _ids(ref: gpd.GeoDataFrame) -> list[Any]:
    for col in _ID_COLUMNS:
        if col in ref.columns:
            return ref[col].tolist()
    return list(range(len(ref)))


def _id_labels(ref: gpd.GeoDataFrame, rows: np.ndarray) -> dict[int, str]:
    """``column=value`` naming the reference features ``rows`` (whole columns, not per row)."""
    out: list[str | None] = [None] * len(rows)
    for col in _ID_COLUMNS:
        if col in ref.columns:
            column = ref[col].iloc[rows]
            values, missing = column.tolist(), column.isna().to_numpy()
            for i, (v, na) in enumerate(zip(values, missing, strict=True)):
                if out[i] is None and not na:
                    out[i] = f"{col}={v}"
    return {r: f"feature {r}" if o is None else o for r, o in zip(rows.tolist(), out, strict=True)}


# shapely type ids of Polygon and MultiPolygon: the reference features matched by overlap area
_AREA_TYPES = (3, 6)
# The containment shortcut (see _covered) is only taken below this min_overlap: the covered
# polygon's area then passes the overlap test with a 0.1 % margin.
_SHORTCUT_MAX_OVERLAP = 0.999
# ... and only for polygons whose area is at least this × perimeter × the largest coordinate
# magnitude: a vertex moved by ~1e6 ulps of the coordinates (far more than an overlay's noding
# moves one) changes such an area by less than 0.1 %.
_SLIVER = 1e6 * float(np.finfo(np.float64).eps) / 1e-3


class _Reference:
    """Reference features in the working CRS and what every batch of candidates needs of them.

    Built once per (reference, working CRS, tolerance); the hook keeps it across iterations.
    """

    def __init__(self, frame: gpd.GeoDataFrame, tolerance_m: float) -> None:
        self.frame = frame
        self.tolerance_m = tolerance_m
        self.geom: np.ndarray = (
            frame.geometry.to_numpy() if len(frame) else np.empty(0, dtype=object)
        )
        self.is_area: np.ndarray = np.isin(shapely.get_type_id(self.geom), _AREA_TYPES)
        self.polys: np.ndarray = np.flatnonzero(self.is_area)
        self.pts: np.ndarray = np.flatnonzero(~self.is_area)
        self.plain: np.ndarray = self.geom[self.polys]
        # polygons as matched: grown by the tolerance
        self.grown: np.ndarray = (
            shapely.buffer(self.plain, tolerance_m) if tolerance_m > 0 else self.plain
        )
        self.grown_area: np.ndarray = shapely.area(self.grown)
        self.grown_tree = shapely.STRtree(self.grown)
        self.pts_tree = shapely.STRtree(self.geom[self.pts])
        self._plain_tree: shapely.STRtree | None = None
        self._valid = np.full(len(self.grown), -1, dtype=np.int8)  # -1: not known yet

    def plain_tree(self) -> shapely.STRtree:
        if self._plain_tree is None:
            self._plain_tree = (
                self.grown_tree if not self.tolerance_m > 0 else shapely.STRtree(self.plain)
            )
        return self._plain_tree

    def valid(self, index: np.ndarray) -> np.ndarray:
        """Whether the grown polygons ``index`` are valid (checked once each)."""
        todo = index[self._valid[index] < 0]
        if len(todo):
            self._valid[todo] = shapely.is_valid(self.grown[todo])
        return self._valid[index] == 1

    def point_pairs(self, geom: np.ndarray, wanted: np.ndarray | None = None) -> np.ndarray:
        """(query index, reference index) of points (and lines) in or within the tolerance."""
        pts = self.pts if wanted is None else wanted
        tree = self.pts_tree if wanted is None else shapely.STRtree(self.geom[pts])
        if self.tolerance_m > 0:
            qi, ti = tree.query(geom, predicate="dwithin", distance=self.tolerance_m)
        else:
            qi, ti = tree.query(geom, predicate="intersects")
        return np.vstack([qi, pts[ti]])


def _within_box(inner: np.ndarray, outer: np.ndarray) -> np.ndarray:
    return (
        (inner[:, 0] >= outer[:, 0])
        & (inner[:, 1] >= outer[:, 1])
        & (inner[:, 2] <= outer[:, 2])
        & (inner[:, 3] <= outer[:, 3])
    )


def _covered(q: np.ndarray, t_index: np.ndarray, ref: _Reference) -> np.ndarray:
    """Pairs ``q[i]``, ``ref.grown[t_index[i]]`` where one valid (multi)polygon covers the
    other and the covered one is no sliver.

    Their intersection is the covered polygon (up to the rounding of the overlay), so it
    reaches any ``min_overlap ≤ _SHORTCUT_MAX_OVERLAP`` of the smaller area: the pair matches
    without computing it. Bounding boxes rule most pairs out; ``covers`` runs with the tree
    side prepared (kept on the reference across batches).
    """
    t = ref.grown[t_index]
    qb, tb = shapely.bounds(q), shapely.bounds(t)
    q_in, t_in = _within_box(qb, tb), _within_box(tb, qb)
    cov_q = np.zeros(len(q), dtype=bool)
    if q_in.any():
        shapely.prepare(t[q_in])
        cov_q[q_in] = shapely.covers(t[q_in], q[q_in])
    cov_t = np.zeros(len(q), dtype=bool)
    rest = t_in & ~cov_q
    if rest.any():
        cov_t[rest] = shapely.covers(q[rest], t[rest])
    sure = np.flatnonzero(cov_q | cov_t)
    if len(sure) == 0:
        return cov_q
    inner = np.where(cov_q[sure], q[sure], t[sure])
    box = np.where(cov_q[sure, None], qb[sure], tb[sure])
    area, length = shapely.area(inner), shapely.length(inner)
    scale = np.abs(box).max(axis=1)
    ok = (
        np.isin(shapely.get_type_id(q[sure]), _AREA_TYPES)
        & ref.valid(t_index[sure])
        & shapely.is_valid(q[sure])
        & (area > 0)
        & (area > _SLIVER * length * scale)
    )
    out = np.zeros(len(q), dtype=bool)
    out[sure[ok]] = True
    return out


def _overlaps(
    q: np.ndarray, t_index: np.ndarray, ref: _Reference, min_overlap: float, may_skip: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Intersection area of each pair ``q[i]``, ``ref.grown[t_index[i]]`` and whether it matches.

    A pair matches when ``area(q ∩ t) ≥ min_overlap × min(area(q), area(t))`` and ``> 0``.
    Pairs in ``may_skip`` (where the exact area decides nothing beyond that test) that one
    polygon covers get the covered polygon's area instead of an intersection (:func:`_covered`).
    """
    t = ref.grown[t_index]
    smaller = np.minimum(shapely.area(q), ref.grown_area[t_index])
    sure = np.zeros(len(q), dtype=bool)
    if min_overlap <= _SHORTCUT_MAX_OVERLAP and may_skip.any():
        idx = np.flatnonzero(may_skip)
        sure[idx] = _covered(q[idx], t_index[idx], ref)
    inter = smaller.copy()
    rest = ~sure
    if rest.any():
        inter[rest] = shapely.area(shapely.intersection(q[rest], t[rest]))
    ok = sure | ((inter >= min_overlap * smaller) & (inter > 0))
    return inter, ok


def _first_per(key: np.ndarray, value: np.ndarray, *order: np.ndarray) -> tuple[Any, Any]:
    """For each distinct ``key``, the ``value`` first in lexicographic ``(key, *order)`` order."""
    idx = np.lexsort((*reversed(order), key))
    key, value = key[idx], value[idx]
    first = np.ones(len(key), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    return key[first], value[first]


def _match(
    cgeom: np.ndarray, ref: _Reference, min_overlap: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every reference feature each candidate matches, best first, and whether a candidate
    without a match shares area with a reference polygon.

    Returns ``(match, touch, pair_c, pair_r)``: ``match`` the best match of each candidate (-1:
    none); ``pair_c``/``pair_r`` every matching (candidate, reference) pair, sorted by candidate
    and then best first. Best = largest intersection area, then the lowest index (points: the
    lowest index; a polygon match beats a point match).
    """
    n = len(cgeom)
    match = np.full(n, -1, dtype=np.int64)
    ci, ri = ref.grown_tree.query(cgeom, predicate="intersects")
    inter = np.zeros(0)
    keys_c, keys_r, keys_kind, keys_area = [], [], [], []
    if len(ci):
        # the area order only matters between several reference polygons of one candidate
        single = np.bincount(ci, minlength=n)[ci] == 1
        inter, ok = _overlaps(cgeom[ci], ri, ref, min_overlap, single)
        keys_c.append(ci[ok])
        keys_r.append(ref.polys[ri[ok]])
        keys_kind.append(np.zeros(int(ok.sum()), dtype=np.int8))
        keys_area.append(inter[ok])
    if len(ref.pts):
        pc, pr = ref.point_pairs(cgeom)
        keys_c.append(pc)
        keys_r.append(pr)
        keys_kind.append(np.ones(len(pc), dtype=np.int8))
        keys_area.append(np.zeros(len(pc)))
    if keys_c:
        pair_c, pair_r = np.concatenate(keys_c), np.concatenate(keys_r)
        kind, area = np.concatenate(keys_kind), np.concatenate(keys_area)
        order = np.lexsort((pair_r, -area, kind, pair_c))
        pair_c, pair_r = pair_c[order], pair_r[order]
    else:
        pair_c = pair_r = np.zeros(0, dtype=np.int64)
    if len(pair_c):
        first = np.r_[True, pair_c[1:] != pair_c[:-1]]
        match[pair_c[first]] = pair_r[first]
    touch = np.zeros(n, dtype=bool)
    unmatched = match < 0
    if not unmatched.any() or len(ref.polys) == 0:
        return match, touch, pair_c, pair_r
    if not ref.tolerance_m > 0:
        # the same pairs as above, all with an exact area (a covered pair always matches)
        touch[ci[(inter > 0) & unmatched[ci]]] = True
        return match, touch, pair_c, pair_r
    u = np.flatnonzero(unmatched)
    ui, ti = ref.plain_tree().query(cgeom[u], predicate="intersects")
    if len(ui):
        inter_u = shapely.area(shapely.intersection(cgeom[u][ui], ref.plain[ti]))
        touch[u[ui[inter_u > 0]]] = True
    return match, touch, pair_c, pair_r


def _choose(n: int, pair_c: np.ndarray, pair_r: np.ndarray, owner: dict[int, str]) -> np.ndarray:
    """The reference feature each candidate is decided as (-1: none), in review order.

    A reviewer who sees a candidate showing a landslide already mapped and a new one beside it
    maps the new one: a candidate is decided as its best match that neither the inventory nor
    an earlier candidate of the batch holds yet, else as its best match (then ``part_of``).
    """
    match = np.full(n, -1, dtype=np.int64)
    if len(pair_c) == 0:
        return match
    starts = np.flatnonzero(np.r_[True, pair_c[1:] != pair_c[:-1]])
    ends = np.r_[starts[1:], len(pair_c)]
    taken = set(owner)
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        options = pair_r[a:b].tolist()
        pick = next((r for r in options if r not in taken), options[0])
        match[int(pair_c[a])] = pick
        taken.add(pick)
    return match


def _owners(
    mgeom: np.ndarray, names: list[str], ref: _Reference, wanted: np.ndarray, min_overlap: float
) -> dict[int, str]:
    """Reference features among ``wanted`` that an inventory feature matches → the first one."""
    m_parts, r_parts = [], []
    pts = wanted[~ref.is_area[wanted]]
    if len(pts):
        mi, ri = ref.point_pairs(mgeom, pts)
        m_parts.append(mi)
        r_parts.append(ri)
    polys = wanted[ref.is_area[wanted]]
    if len(polys):
        pos = np.searchsorted(ref.polys, polys)
        sub = ref.grown[pos]
        mi, si = shapely.STRtree(sub).query(mgeom, predicate="intersects")
        if len(mi):
            # which inventory feature owns a reference feature depends on the test only
            _, ok = _overlaps(mgeom[mi], pos[si], ref, min_overlap, np.ones(len(mi), dtype=bool))
            m_parts.append(mi[ok])
            r_parts.append(polys[si[ok]])
    if not m_parts:
        return {}
    m, r = np.concatenate(m_parts), np.concatenate(r_parts)
    if len(m) == 0:
        return {}
    r, m = _first_per(r, m, m)
    return {int(a): names[int(b)] for a, b in zip(r, m, strict=True)}


def reference_decisions(
    candidates: gpd.GeoDataFrame,
    reference_gdf: gpd.GeoDataFrame,
    *,
    tolerance_m: float = 0.0,
    min_overlap: float = 0.1,
    already_mapped: gpd.GeoDataFrame | None = None,
    outline: str = "reference",
    unmatched: str = "reject",
) -> pd.DataFrame:
    """Decide each candidate against a reference inventory (rules in the module docstring).

    Args:
        candidates: candidates with ``candidate_id`` and polygon geometry (any CRS), in the
            order a reviewer would see them (the first of several matching one feature wins).
        reference_gdf: reference polygons and/or points (any CRS).
        tolerance_m: distance tolerance in metres.
        min_overlap: fraction of the smaller polygon's area the intersection must reach.
        already_mapped: the run's inventory so far (``inventory_id``, geometry). A candidate
            matching a reference feature this inventory already holds becomes ``part_of`` it.
        outline: ``reference`` (confirm with the matched reference outline) or ``detector``.
        unmatched: ``reject`` (candidates without a match are rejected, or unsure when they
            touch a reference polygon) or ``manual`` (they get no row: left to a person).

    Returns:
        DataFrame ``candidate_id, decision, probability, note, geometry_wkt, part_of`` in the
        candidates' order (``geometry_wkt`` in the candidates' CRS, "" = detector outline);
        ``attrs["review_settings"]`` records the outline choice and the options.

    Raises:
        InputError: a frame without CRS.
        ConfigError: an unknown ``outline``.
    """
    return _decide(
        candidates,
        reference_gdf,
        tolerance_m=tolerance_m,
        min_overlap=min_overlap,
        already_mapped=already_mapped,
        outline=outline,
        unmatched=unmatched,
        prepared=None,
    )


def _decide(
    candidates: gpd.GeoDataFrame,
    reference_gdf: gpd.GeoDataFrame,
    *,
    tolerance_m: float,
    min_overlap: float,
    already_mapped: gpd.GeoDataFrame | None,
    outline: str,
    prepared: dict[tuple[str, float], _Reference] | None,
    unmatched: str = "reject",
) -> pd.DataFrame:
    """:func:`reference_decisions`; ``prepared`` keeps the reference per (CRS, tolerance)."""
    if outline not in OUTLINES:
        raise ConfigError(f"reference reviewer: outline={outline!r}; use {' or '.join(OUTLINES)}")
    cols = ["candidate_id", "decision", "probability", "note", "geometry_wkt", "part_of"]
    if unmatched not in UNMATCHED:
        raise ConfigError(
            f"reference reviewer: unmatched={unmatched!r}; use {' or '.join(UNMATCHED)}"
        )
    settings = {"outline": outline, "tolerance_m": tolerance_m, "min_overlap": min_overlap}
    if unmatched != "reject":
        settings["unmatched"] = unmatched
    if len(candidates) == 0:
        out = pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
        out.attrs["review_settings"] = settings
        return out
    if candidates.crs is None or (len(reference_gdf) and reference_gdf.crs is None):
        raise InputError(None, "candidates and reference inventory need a CRS")
    crs = candidates.crs if candidates.crs.is_projected else candidates.estimate_utm_crs()
    key = (crs.to_wkt(), float(tolerance_m))
    ref = prepared.get(key) if prepared is not None else None
    if ref is None:
        frame = reference_gdf[reference_gdf.geometry.notna() & ~reference_gdf.geometry.is_empty]
        frame = frame.to_crs(crs).reset_index(drop=True) if len(frame) else frame
        ref = _Reference(frame, tolerance_m)
        if prepared is not None:
            prepared[key] = ref
    cgeom = candidates.geometry.to_crs(crs).to_numpy()
    match, touch, pair_c, pair_r = _match(cgeom, ref, min_overlap)
    every = np.unique(pair_r)  # every reference feature some candidate matches, ascending
    # reference features the inventory already holds → that inventory feature's id
    owner: dict[int, str] = {}
    if already_mapped is not None and len(already_mapped) and len(every):
        names = (
            already_mapped["inventory_id"].astype(str).tolist()
            if "inventory_id" in already_mapped.columns
            else [f"inventory feature {i}" for i in range(len(already_mapped))]
        )
        mgeom = already_mapped.geometry.to_crs(crs).to_numpy()
        owner = _owners(mgeom, names, ref, every, min_overlap)
    n = len(cgeom)
    match = _choose(n, pair_c, pair_r, owner)
    matched = np.flatnonzero(match >= 0)
    wanted = np.unique(match[matched])  # the reference features decided, ascending
    decision = np.where(touch, "unsure", "rejected").astype(object)
    note = np.where(
        touch, "touches a reference feature below min_overlap", "no reference match"
    ).astype(object)
    prob = np.full(n, None, dtype=object)
    wkt = np.full(n, "", dtype=object)
    part = np.full(n, "", dtype=object)
    if len(matched):
        cids = candidates["candidate_id"].astype(str).to_numpy()
        labels = _id_labels(ref.frame, wanted)
        m_of = match[matched]
        # the first candidate matching each reference feature (in the candidates' order)
        _, first_pos = np.unique(m_of, return_index=True)
        first = dict(zip(wanted.tolist(), matched[first_pos].tolist(), strict=True))
        for i, m in zip(matched.tolist(), m_of.tolist(), strict=True):
            name = labels[m]
            if m in owner:
                decision[i] = "part_of"
                note[i] = f"reference match: {name}, already in the inventory as {owner[m]}"
                part[i] = owner[m]
            elif first[m] != i:
                decision[i] = "part_of"
                note[i] = f"reference match: {name}, same feature as {cids[first[m]]}"
                part[i] = cids[first[m]]
            else:
                decision[i] = "confirmed"
                prob[i] = "high"
                note[i] = f"reference match: {name}"
        if outline == "reference":
            # reference outlines in the candidates' CRS, once per matched polygon
            poly = wanted[ref.is_area[wanted]]
            if len(poly):
                outlines = gpd.GeoSeries(ref.geom[poly], crs=crs).to_crs(candidates.crs)
                text = shapely.to_wkt(outlines.to_numpy(), rounding_precision=3, trim=True)
                at = np.full(len(ref.geom), -1, dtype=np.int64)
                at[poly] = np.arange(len(poly))
                has = at[m_of] >= 0
                wkt[matched[has]] = text[at[m_of[has]]]
    out = pd.DataFrame(
        {
            "candidate_id": candidates["candidate_id"].to_numpy(),
            "decision": decision.tolist(),
            "probability": prob.tolist(),
            "note": note.tolist(),
            "geometry_wkt": wkt.tolist(),
            "part_of": part.tolist(),
        }
    )
    if unmatched == "manual":
        out = out[out["decision"].isin(["confirmed", "part_of"])].reset_index(drop=True)
    out.attrs["review_settings"] = settings
    return out


def _read_references(paths: list[Path], crs: Any) -> gpd.GeoDataFrame:
    from thawdetect.plugin_api import read_vector

    frames = [read_vector(p, crs=crs, what="reference inventory") for p in paths]
    frames = [
        gpd.GeoDataFrame({"id": _ids(f)}, geometry=f.geometry.to_numpy(), crs=f.crs) for f in frames
    ]
    if len(frames) == 1:
        return frames[0]
    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=crs)


# Reference files read by the hook, kept across iterations (the engine reviews every iteration
# against the same file): key → (the frame, its prepared forms per working CRS and tolerance).
_CACHE: dict[tuple[Any, ...], tuple[gpd.GeoDataFrame, dict[tuple[str, float], _Reference]]] = {}
_CACHE_SIZE = 4


def _file_key(paths: list[Path], crs: Any) -> tuple[Any, ...] | None:
    """What identifies a read: each file's path, inode, size, mtime, and the CRS (None: a path
    that cannot be stat'ed, such as a URL, is read every time)."""
    parts = []
    for p in paths:
        try:
            st = p.stat()
            parts.append((str(p.resolve()), st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            return None
    return (tuple(parts), None if crs is None else crs.to_wkt())


def _read_references_cached(
    paths: list[Path], crs: Any
) -> tuple[gpd.GeoDataFrame, dict[tuple[str, float], _Reference] | None]:
    key = _file_key(paths, crs)
    if key is not None and key in _CACHE:
        _CACHE[key] = _CACHE.pop(key)  # most recently used last
        return _CACHE[key]
    ref = _read_references(paths, crs)
    if key is None:
        return ref, None
    _CACHE[key] = (ref, {})
    while len(_CACHE) > _CACHE_SIZE:
        del _CACHE[next(iter(_CACHE))]
    return _CACHE[key]


@hookimpl
def thawdetect_review_candidates(
    candidates: gpd.GeoDataFrame, reviewer: str, context: Any
) -> pd.DataFrame | None:
    """Decide candidates for ``reference`` and ``reference:PATH[?options]`` specs (else None).

    The reference files are read once per (file, modification, CRS) and kept for the next
    iterations.

    Raises:
        ConfigError: ``reference`` without reference paths in the region, or a bad option.
        InputError: an unreadable reference file.
    """
    parsed = parse_reference_spec(reviewer)
    if parsed is None:
        return None
    path, options = parsed
    if path is None:
        paths = [Path(p) for p in getattr(context, "reference_paths", None) or []]
        if not paths:
            raise ConfigError(
                "reviewer 'reference': the region names no reference inventory; "
                "use --reviewer reference:PATH"
            )
    else:
        paths = [Path(path).expanduser()]
    ref, prepared = _read_references_cached(paths, candidates.crs)
    inventory = getattr(context, "inventory", None)
    return _decide(
        candidates,
        ref,
        tolerance_m=options.get("tolerance_m", 0.0),
        min_overlap=options.get("min_overlap", 0.1),
        already_mapped=inventory,
        outline=options.get("outline", "reference"),
        unmatched=options.get("unmatched", "reject"),
        prepared=prepared,
    )
