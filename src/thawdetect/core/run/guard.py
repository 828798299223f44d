"""Screening merged candidates part by part: only ground that *is* known is dropped unreviewed.

The merge stage hands every merged candidate to :func:`screen_parts`. A candidate is split into
its parts (``shapely.get_parts``) and each part is tested on its own:

* a part that contains a known point, or overlaps an inventory feature or a confirmed (part of,
  unsure) candidate by ``duplicate_overlap`` (of the smaller area), or is the same ground as a
  rejected candidate (``duplicate_overlap`` of the larger area), is **known** and dropped;
* a candidate whose parts are all known is dropped whole (already seen), as before;
* a candidate with known and unknown parts is split: each unknown part goes to review as its own
  candidate, with the candidate's evidence and attributes and an id that says where it came from
  (``it03-0007-p05``: part 5 of what would have been ``it03-0007``);
* a part no single landslide looks like (below) is never known, whatever it covers;
* a candidate no sane landslide looks like (parts farther apart than ``max_part_gap_m``, an
  extent over ``max_candidate_span_m``, an area over ``max_candidate_area_ha`` or over
  ``max_region_share`` of the region) is split the same way, or flagged when it has one part;
  either way one warning line names the detector(s) and the figures.

So a detector that fuses 74 landslides into one MultiPolygon around a known point cannot hide the
other 73 from the reviewer. Everything is whole-array shapely 2 (``get_parts``, STRtree queries,
vectorised areas and bounds): the cost is that of the parts, not of pairs of candidates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely

from thawdetect.core.plugin_api.detector import SCORE_COLUMN
from thawdetect.core.run.merge import _components, overlap_fraction

__all__ = ["GuardLimits", "GuardWarning", "Screening", "screen_parts"]


@dataclass(frozen=True)
class GuardLimits:
    """What a plausible single candidate looks like (``RunConfig``'s guard settings)."""

    #: parts farther apart than this (metres) are separate landslides
    max_part_gap_m: float = 300.0
    #: a larger extent (bounding-box diagonal, metres) is not one landslide
    max_span_m: float = 3000.0
    #: a larger area (hectares) is not one landslide
    max_area_ha: float = 100.0
    #: a larger share of the region's area is not one landslide
    max_region_share: float = 0.05
    #: the region's area in m² (None: no AOI, the share is not tested)
    region_area_m2: float | None = None


@dataclass(frozen=True)
class GuardWarning:
    """One implausible candidate: who proposed it, its figures and what was done with it."""

    detectors: str
    candidate_id: str
    n_parts: int
    span_m: float
    area_ha: float
    region_share: float | None
    reasons: tuple[str, ...]
    outcome: str

    @property
    def message(self) -> str:
        """The one-line warning (run.log, console, manifest)."""
        share = (
            "" if self.region_share is None else f", {100 * self.region_share:.1f} % of the region"
        )
        parts = "1 part" if self.n_parts == 1 else f"{self.n_parts} parts"
        return (
            f"{self.detectors}: candidate {self.candidate_id} has {parts} spanning "
            f"{self.span_m / 1000:.1f} km, {self.area_ha:.1f} ha{share} "
            f"({'; '.join(self.reasons)}); {self.outcome}"
        )

    @property
    def short(self) -> str:
        """The figures in a few words (the iterations table's ``guard`` column)."""
        verb = self.outcome.split(" (")[0].replace("kept whole for review", "flagged")
        return (
            f"{self.candidate_id}: {self.n_parts} parts, {self.span_m / 1000:.1f} km, "
            f"{self.area_ha:.0f} ha; {verb}"
        )

    def to_dict(self, iteration: int) -> dict[str, Any]:
        """The manifest's record of it."""
        return {
            "iteration": iteration,
            "stage": "merge",
            "detectors": self.detectors,
            "candidate_id": self.candidate_id,
            "n_parts": self.n_parts,
            "span_m": round(self.span_m, 1),
            "area_ha": round(self.area_ha, 3),
            "region_share": None if self.region_share is None else round(self.region_share, 5),
            "short": self.short,
            "message": self.message,
        }


@dataclass
class Screening:
    """What :func:`screen_parts` makes of an iteration's merged candidates."""

    #: the candidates to review, numbered and pending
    candidates: gpd.GeoDataFrame
    #: merged candidates dropped whole: every part already known
    n_seen: int = 0
    #: parts dropped as known from candidates whose other parts go to review
    n_known_parts: int = 0
    #: candidates (whole or parts) below the minimum mapping unit
    n_small: int = 0
    #: merged candidates split into parts
    n_split: int = 0
    #: implausible candidates (each also a warning line)
    warnings: list[GuardWarning] = field(default_factory=list)


def screen_parts(
    merged: gpd.GeoDataFrame,
    seen: gpd.GeoDataFrame,
    k: int,
    *,
    duplicate_overlap: float,
    min_mapping_unit_ha: float,
    limits: GuardLimits | None = None,
    rejected: gpd.GeoDataFrame | None = None,
) -> Screening:
    """The candidates of iteration ``k`` to review, screened part by part (module docstring).

    Args:
        merged: merged candidates (:func:`merge_candidates`), working CRS in metres.
        seen: decided candidates' outlines and the inventory (polygons and points).
        k: the iteration (candidate ids ``itKK-NNNN``, split parts ``itKK-NNNN-pPP``).
        duplicate_overlap: a part overlapping ``seen`` by this fraction of the smaller area is
            known.
        min_mapping_unit_ha: rows (whole candidates or parts) smaller than this are dropped.
        limits: what a plausible candidate looks like (default :class:`GuardLimits`).
        rejected: rejected candidates' outlines: a part is known when it is the same ground
            (``duplicate_overlap`` of the larger area); one inside a larger rejected outline
            goes to review (default: none; pass them in ``seen`` for the smaller-area rule).

    Returns:
        The screening; its candidates are sorted by score (parts of one candidate together, in
        part order), numbered, pending, with ``area_ha``/``perimeter_m``, and ``split_from``
        (the candidate's id) on split parts when there are any.
    """
    limits = limits or GuardLimits()
    merged = merged.reset_index(drop=True)
    n = len(merged)
    crs = merged.crs
    geoms = np.asarray(merged.geometry.to_numpy(), dtype=object)
    parts, owner = shapely.get_parts(geoms, return_index=True)
    areal = shapely.area(parts) > 0  # lines/points left by make_valid cover no ground
    parts, owner = parts[areal], owner[areal]
    n_parts = np.bincount(owner, minlength=n)
    # each part's number within its candidate (1-based, in the candidate's part order)
    first = np.r_[0, np.cumsum(n_parts)[:-1]] if n else np.zeros(0, dtype=np.int64)
    part_no = np.arange(len(parts)) - first[owner] + 1
    # a part no single landslide looks like is never "known" (a blanket over a known point
    # hides the ground around it): it goes to review, flagged
    known = _known_parts(parts, seen, duplicate_overlap, rejected) & ~_implausible(parts, limits)
    n_known = np.bincount(owner, weights=known, minlength=n).astype(np.int64)
    all_known = (n_known == n_parts) & (n_parts > 0)
    area_m2 = shapely.area(geoms) if n else np.zeros(0)
    bounds = shapely.bounds(geoms) if n else np.zeros((0, 4))
    span = np.hypot(bounds[:, 2] - bounds[:, 0], bounds[:, 3] - bounds[:, 1])
    span = np.nan_to_num(span)
    far = _far_apart(parts, owner, n_parts, limits.max_part_gap_m)
    share = (
        area_m2 / limits.region_area_m2
        if limits.region_area_m2 and limits.region_area_m2 > 0
        else None
    )
    too_big = area_m2 / 1e4 > limits.max_area_ha
    too_long = span > limits.max_span_m
    too_much = share > limits.max_region_share if share is not None else np.zeros(n, bool)
    implausible = far | too_big | too_long | too_much
    split = ~all_known & (n_parts > 1) & ((n_known > 0) | implausible)
    whole = ~all_known & ~split
    # the rows: whole candidates, then the unknown parts of split ones, in candidate order
    take_part = split[owner] & ~known
    src = np.concatenate([np.flatnonzero(whole), owner[take_part]])
    pno = np.concatenate([np.zeros(int(whole.sum()), dtype=np.int64), part_no[take_part]])
    rgeom = np.concatenate([geoms[whole], parts[take_part]])
    order = np.lexsort((pno, src))
    src, pno, rgeom = src[order], pno[order], rgeom[order]
    row_area = shapely.area(rgeom) / 1e4 if len(rgeom) else np.zeros(0)
    small = row_area < min_mapping_unit_ha
    small_rows = np.bincount(src[small], minlength=n)
    src, pno, rgeom = src[~small], pno[~small], rgeom[~small]
    name = merged.geometry.name
    out = merged.iloc[src].reset_index(drop=True)  # every column, in the merge's order
    out[name] = gpd.GeoSeries(rgeom, crs=crs)
    # by score, then agreement; stable, so the parts of one candidate stay together in order
    out = out.sort_values([SCORE_COLUMN, "n_detectors"], ascending=False, kind="stable")
    at = out.index.to_numpy()
    src_sorted, pno_sorted = src[at], pno[at]
    out = out.reset_index(drop=True)
    _, uniques = pd.factorize(src_sorted)  # candidates numbered in review order
    base_of = {int(c): f"it{k:02d}-{i + 1:04d}" for i, c in enumerate(uniques)}
    base = [base_of[c] for c in src_sorted.tolist()]
    ids = [b if p == 0 else f"{b}-p{p:02d}" for b, p in zip(base, pno_sorted.tolist(), strict=True)]
    out.insert(0, "candidate_id", ids)
    out.insert(1, "iteration", k)
    out["status"] = "pending"
    out["probability"] = None
    out["area_ha"] = out.geometry.area / 1e4
    out["perimeter_m"] = out.geometry.length
    if (pno_sorted > 0).any():
        split_from = np.full(len(base), None, dtype=object)
        split_from[pno_sorted > 0] = np.asarray(base, dtype=object)[pno_sorted > 0]
        out["split_from"] = split_from
    kept = np.bincount(src, minlength=n)
    # the implausible ones, in candidate order, with what happened to each
    warnings = []
    detectors = merged["detectors"].astype(str).to_numpy() if n else np.zeros(0, dtype=object)
    for i in np.flatnonzero(implausible).tolist():
        reasons = []
        if far[i]:
            reasons.append(f"parts more than {limits.max_part_gap_m:g} m apart")
        if too_long[i]:
            reasons.append(f"extent over {limits.max_span_m:g} m")
        if too_big[i]:
            reasons.append(f"area over {limits.max_area_ha:g} ha")
        if too_much[i]:
            reasons.append(f"over {100 * limits.max_region_share:g} % of the region")
        cid = base_of.get(i, "(dropped)")
        warnings.append(
            GuardWarning(
                detectors=str(detectors[i]),
                candidate_id=cid,
                n_parts=int(n_parts[i]),
                span_m=float(span[i]),
                area_ha=float(area_m2[i] / 1e4),
                region_share=None if share is None else float(share[i]),
                reasons=tuple(reasons),
                outcome=_outcome(
                    split=bool(split[i]),
                    all_known=bool(all_known[i]),
                    n_parts=int(n_parts[i]),
                    n_known=int(n_known[i]),
                    n_small=int(small_rows[i]),
                    n_kept=int(kept[i]),
                ),
            )
        )
    return Screening(
        candidates=out,
        n_seen=int(all_known.sum()),
        n_known_parts=int(n_known[split].sum()),
        n_small=int(small.sum()),
        n_split=int(split.sum()),
        warnings=warnings,
    )


def _outcome(
    *, split: bool, all_known: bool, n_parts: int, n_known: int, n_small: int, n_kept: int
) -> str:
    if all_known:
        return "every part already known; dropped"
    if not split:
        return (
            "kept whole for review (one part: cannot be split)"
            if n_kept
            else "below the minimum mapping unit"
        )
    said = [f"split into {n_kept} candidate{'s' if n_kept != 1 else ''}"]
    if n_known:
        said.append(f"{n_known} part{'s' if n_known != 1 else ''} already known")
    if n_small:
        said.append(f"{n_small} below the minimum mapping unit")
    return said[0] + (f" ({', '.join(said[1:])})" if len(said) > 1 else "")


def _implausible(geoms: npt.NDArray[Any], limits: GuardLimits) -> npt.NDArray[np.bool_]:
    """Whether each geometry is larger or longer than one landslide (area, extent, share)."""
    if len(geoms) == 0:
        return np.zeros(0, dtype=bool)
    area = shapely.area(geoms)
    b = shapely.bounds(geoms)
    out = (area / 1e4 > limits.max_area_ha) | (
        np.hypot(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) > limits.max_span_m
    )
    if limits.region_area_m2:
        out |= area / limits.region_area_m2 > limits.max_region_share
    return np.asarray(out, dtype=bool)


def _mostly_new(
    parts: npt.NDArray[Any], polys: gpd.GeoDataFrame, duplicate_overlap: float
) -> npt.NDArray[np.bool_]:
    """Parts of which more than ``1 - duplicate_overlap`` lies outside every outline of
    ``polys``: new ground, even where a known outline lies inside (a delineation that joined a
    new landslide to its mapped neighbour goes to review whole; the reviewer may call it part of
    that neighbour, or confirm the new one)."""
    out = np.zeros(len(parts), dtype=bool)
    if len(parts) == 0 or len(polys) == 0:
        return out
    ip, iq = polys.sindex.query(parts, predicate="intersects")
    known_geoms = polys.geometry.to_numpy()
    for i in np.unique(ip).tolist():
        part = parts[i]
        rest = shapely.area(shapely.difference(part, shapely.union_all(known_geoms[iq[ip == i]])))
        out[i] = rest > (1.0 - duplicate_overlap) * shapely.area(part)
    return out


def _known_parts(
    parts: npt.NDArray[Any],
    seen: gpd.GeoDataFrame,
    duplicate_overlap: float,
    rejected: gpd.GeoDataFrame | None = None,
) -> npt.NDArray[np.bool_]:
    """Whether each part contains a known point or overlaps ``seen`` by ``duplicate_overlap``
    (of the smaller area) without being mostly new ground, or is the same ground as a
    ``rejected`` outline (overlap of the *larger* area: a smaller, more specific outline inside
    rejected ground is new)."""
    known = np.zeros(len(parts), dtype=bool)
    if len(parts) == 0:
        return known
    if rejected is not None and len(rejected):
        frame = gpd.GeoDataFrame(geometry=gpd.GeoSeries(parts, crs=rejected.crs), crs=rejected.crs)
        known |= overlap_fraction(frame, rejected, of="larger") >= duplicate_overlap
    if len(seen) == 0:
        return known
    frame = gpd.GeoDataFrame(geometry=gpd.GeoSeries(parts, crs=seen.crs), crs=seen.crs)
    overlapping = overlap_fraction(frame, seen) >= duplicate_overlap
    if overlapping.any():
        polys = seen[seen.geom_type.isin(["Polygon", "MultiPolygon"])]
        overlapping[overlapping] &= ~_mostly_new(parts[overlapping], polys, duplicate_overlap)
    known |= overlapping
    points = seen[seen.geom_type == "Point"]
    if len(points):
        hit, _ = points.sindex.query(parts, predicate="contains")
        known[hit] = True
    return known


def _far_apart(
    parts: npt.NDArray[Any], owner: npt.NDArray[Any], n_parts: npt.NDArray[Any], gap_m: float
) -> npt.NDArray[np.bool_]:
    """Whether a candidate's parts fall into more than one group of parts within ``gap_m``."""
    far = np.zeros(len(n_parts), dtype=bool)
    multi = n_parts[owner] > 1
    if not multi.any():
        return far
    sub, sub_owner = parts[multi], owner[multi]
    a, b = shapely.STRtree(sub).query(sub, predicate="dwithin", distance=gap_m)
    same = sub_owner[a] == sub_owner[b]
    labels = _components(len(sub), a[same], b[same])
    # distinct (candidate, group) pairs; more than one group per candidate: far apart
    pairs = np.unique(np.stack([sub_owner, labels]), axis=1)
    groups = np.bincount(pairs[0], minlength=len(n_parts))
    far[groups > 1] = True
    return far
