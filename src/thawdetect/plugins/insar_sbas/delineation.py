"""From rate and masks to landslide outlines: competing growth, grouping, holes, smoothing.

Two methods (``delineation`` in the config):

* ``threshold`` (Wei et al.): each 8-connected group of pixels that pass this iteration's
  |rate| threshold inside the masks is a candidate. Landslides whose rate falls off from core to
  edge come out as their cores, sometimes in pieces.
* ``grow`` (the default; docs/insar.md compares the two on realistic scenes): competing growth.
  Pixels that pass the threshold inside the masks are *seeds* (the detector chooses them: with
  its ``seed_rate: measured_or_relative``, by the measured rate or by the rate against the
  large-scale background, :func:`local_background`). The growth domain is every reliable
  pixel (coherent, inside the terrain masks' relaxed limits) with the seeds' sign of motion
  and |rate| at or above a *floor*; the floor defaults to
  ``noise_sigma_factor`` × the robust σ of the rate on stable, coherent terrain
  (:func:`noise_floor`). Unreliable pixels (decorrelated, no data) join the domain only in short
  gaps (the closing of moving ground, ``group_distance_px`` wide): growth never runs along a
  network of them, so low-coherence ground joining slopes end to end cannot fuse landslides.
  Seeds *compete*: markers are the seed groups and every other local maximum of the smoothed
  |rate| that stands a floor above its surroundings (a slower landslide without seeds yet, a
  patch of creep), and the watershed of −|rate| gives each marker its basin. Two basins join only
  where measured moving ground connects them: the pass between them reaches ``merge_ratio`` ×
  the lower peak. Basins without seeds are dropped, and each candidate stops at
  ``relative_floor`` × the median |rate| of its own seeds, so that a fast landslide does not leak
  into slow, spatially correlated background (atmosphere, creep). Then:

  1. clusters that only unreliable ground separates (at most ``group_distance_px`` pixels of it,
     same sign of motion, one slope facet: mean aspects within ``facet_tolerance_deg`` and no
     pixel between them facing more than 90° away) become one candidate, the gap included;
     measured ground between two clusters keeps them apart;
  2. unreliable pixels in a candidate's morphological closing (radius 2 px) join it, and holes
     that one candidate encloses are filled;
  3. the outline is smoothed on the pixel grid: one-pixel notches are filled and one-pixel spurs
     removed (never a seed), see :func:`_smooth`; the polygon is then simplified within 0.75
     pixel (:func:`.candidates.polygonize_labels`), so one-pixel stair-steps along diagonal
     edges become straight lines;
  4. a candidate whose parts lie more than ``group_distance_px`` apart becomes several.

Everything is whole-array NumPy/SciPy/scikit-image; loops run over candidates and basin pairs,
never over pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from thawdetect.plugin_api import release_pages

__all__ = ["Delineation", "delineate", "local_background", "noise_floor"]

_EIGHT = np.ones((3, 3), dtype=bool)
#: Memory-mapped grids of at least this size have their pages released between steps (a 1500²
#: grid's 18 MB are not: faulting them back in cost ~5 % of a later iteration, for memory that
#: does not matter); the detector uses the same floor.
RELEASE_MIN_BYTES = 64 * 2**20
_SPUR_N8 = 2  # a spur pixel touches at most this many of its 8 neighbours


@dataclass
class Delineation:
    """Candidate labels and what made them.

    Attributes:
        labels: 1..n, 0 = background.
        n: number of candidates.
        seeds: the seed mask (pixels that passed the threshold inside the masks).
        seed_pixels: seed pixels per candidate (index 0 = label 1).
        fragments: clusters grouped into each candidate.
        floor_mm_yr: the growth floor (NaN for ``threshold``).
        method: ``threshold`` or ``grow``.
    """

    labels: NDArray[np.int32]
    n: int
    seeds: NDArray[np.bool_]
    seed_pixels: NDArray[np.int64]
    fragments: NDArray[np.int64]
    floor_mm_yr: float
    method: str


def noise_floor(
    rate_mm_yr: NDArray[np.floating], stable: NDArray[np.bool_], factor: float = 2.0
) -> tuple[float, float]:
    """``(factor·σ, σ)`` of the rate on stable terrain; σ = 1.4826 × median absolute deviation.

    The MAD ignores the few moving pixels that ``stable`` still holds (the tapers of landslides
    below the threshold), so σ is the scene's noise, not its signal.

    Examples:
        >>> r = np.array([-1.0, 0.0, 1.0, 0.0, 40.0])
        >>> noise_floor(r, np.ones(5, bool))
        (2.9652, 1.4826)
    """
    v = np.asarray(rate_mm_yr, dtype=np.float64)[stable & np.isfinite(rate_mm_yr)]
    if v.size == 0:
        return float("nan"), float("nan")
    sigma = 1.4826 * float(np.median(np.abs(v - np.median(v))))
    return round(factor * sigma, 6), round(sigma, 6)


def local_background(
    rate_mm_yr: NDArray[np.floating],
    reliable: NDArray[np.bool_],
    window_px: int,
    min_island_px: int = 1000,
) -> NDArray[np.float64]:
    """Large-scale background of the rate: medians of ``window_px`` blocks, bilinear between.

    Long-wavelength signal that is not a landslide (residual atmosphere, orbital ramps, a
    reference point on moving ground, widespread creep) shifts whole slopes; landslides
    (0.5-20 ha, a few hundred metres) are a minority of each block, which the median ignores.
    Blocks with under 10 % reliable pixels take their nearest measured block's value. First,
    each island of reliable ground of at least ``min_island_px`` pixels that unreliable ground
    cuts off is levelled to the largest one by its median: unwrapping errors shift whole
    islands by 2π, with sharp edges that block medians would smear (smaller islands, which may
    be one landslide, keep their level).

    Examples:
        >>> r = np.full((64, 64), 5.0); r[10:14, 10:14] = 40.0
        >>> float(local_background(r, np.ones(r.shape, bool), 32)[12, 12])
        5.0
    """
    from scipy import ndimage

    rate = np.asarray(rate_mm_yr, dtype=np.float64)
    ok = reliable & np.isfinite(rate)
    # islands of reliable ground that decorrelated ground cuts off carry their own offset
    # (unwrapping errors: 2π jumps of whole islands); large islands are levelled first
    islands, k = ndimage.label(ok, structure=np.ones((3, 3), bool))
    offset = np.zeros(rate.shape)
    if k > 1:
        size = np.bincount(islands.ravel(), minlength=k + 1)
        big = np.flatnonzero(size >= min_island_px)
        big = big[big > 0]
        if big.size > 1:
            med = np.zeros(k + 1)
            med[big] = ndimage.median(rate, islands, big)
            main = big[np.argmax(size[big])]
            med[big] -= med[main]  # the largest island keeps its level
            offset = med[islands]
    del islands
    rate = rate - offset
    h, w = rate.shape
    win = max(int(window_px), 1)
    nby, nbx = -(-h // win), -(-w // win)
    pad = np.full((nby * win, nbx * win), np.nan)
    pad[:h, :w] = np.where(ok, rate, np.nan)
    blocks = pad.reshape(nby, win, nbx, win).transpose(0, 2, 1, 3).reshape(nby, nbx, -1)
    del pad, rate, ok  # grid-sized (``blocks`` is a copy of ``pad`` but in degenerate shapes)
    enough = np.isfinite(blocks).mean(axis=2) >= 0.1
    med = np.full((nby, nbx), np.nan)
    if enough.any():
        med[enough] = np.nanmedian(blocks[enough], axis=1)
    else:
        return offset
    del blocks
    if not enough.all():
        _, (iy, ix) = ndimage.distance_transform_edt(~enough, return_indices=True)
        med = med[iy, ix]
    # bilinear between block centres (edges held)
    yc = (np.arange(h) + 0.5) / win - 0.5
    xc = (np.arange(w) + 0.5) / win - 0.5
    yy = np.clip(yc, 0, nby - 1)[:, None] * np.ones((1, w))
    xx = np.clip(xc, 0, nbx - 1)[None, :] * np.ones((h, 1))
    return offset + ndimage.map_coordinates(med, [yy, xx], order=1, mode="nearest")


def _disc(r: float) -> NDArray[np.bool_]:
    k = int(np.ceil(r))
    yy, xx = np.mgrid[-k : k + 1, -k : k + 1]
    return (yy**2 + xx**2) <= r * r + 1e-9


def _window(sl: tuple[slice, slice], pad: int, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """Row and column bounds of a ``find_objects`` box grown by ``pad``, clipped to ``shape``."""
    return (
        max(sl[0].start - pad, 0),
        min(sl[0].stop + pad, shape[0]),
        max(sl[1].start - pad, 0),
        min(sl[1].stop + pad, shape[1]),
    )


def _find(parent: NDArray[np.int64], i: int) -> int:
    """Union-find root of ``i`` (with path halving)."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = int(parent[i])
    return i


def _closing(mask: NDArray[np.bool_], radius_px: float) -> NDArray[np.bool_]:
    """Binary closing with a disc, padded so that the image edge does not erode."""
    from scipy import ndimage

    pad = int(np.ceil(radius_px)) + 1
    disc = _disc(radius_px)
    return ndimage.binary_closing(np.pad(mask, pad), structure=disc)[pad:-pad, pad:-pad]


def _relabel(labels: NDArray[np.integer], keep: NDArray[np.bool_]) -> tuple[NDArray[np.int32], int]:
    """Keep labels where ``keep[label]`` (index 0 ignored), renumbered 1..n in order."""
    keep = keep.copy()
    keep[0] = False
    lut = np.zeros(keep.size, dtype=np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return lut[labels], int(keep.sum())


def _threshold(seeds: NDArray[np.bool_], min_pixels: int) -> tuple[NDArray[np.int32], int]:
    from scipy import ndimage

    labels, n = ndimage.label(seeds, structure=_EIGHT)
    counts = np.bincount(labels.ravel(), minlength=n + 1)
    return _relabel(labels, counts >= min_pixels)


def _smooth3(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """NaN-aware 3 × 3 mean; a NaN pixel takes the mean of its measured neighbours (NaN if none)."""
    from scipy import ndimage

    ok = np.isfinite(values)
    filled = np.where(ok, values, 0.0)
    num = ndimage.uniform_filter(filled, 3, mode="constant")
    del filled  # each grid-sized temporary freed once used (a frame's box is 48 Mpx)
    weight = ok.astype(np.float64)
    del ok
    den = ndimage.uniform_filter(weight, 3, mode="constant")
    del weight
    with np.errstate(invalid="ignore", divide="ignore"):
        np.divide(num, den, out=num)
    num[den < 1e-9] = np.nan
    return num


def _second_highest(
    labels: NDArray[np.int32], values: NDArray[np.float64], k: int
) -> NDArray[np.float64]:
    """Per label 1..k, the second-highest value (the highest of a one-pixel label): a basin's
    peak without smoothing away a small landslide, and without trusting one noisy pixel."""
    flat = labels.ravel()
    sel = flat > 0
    lab: NDArray[np.int32] = flat[sel]
    val: NDArray[np.float64] = values.ravel()[sel]
    order = np.lexsort((val, lab))
    lab, val = lab[order], val[order]
    out = np.full(k + 1, -np.inf)
    last = np.flatnonzero(np.r_[lab[1:] != lab[:-1], True])  # each label's highest
    out[lab[last]] = val[last]
    second = last - 1
    ok = (second >= 0) & (lab[np.maximum(second, 0)] == lab[last])
    out[lab[last[ok]]] = val[second[ok]]
    return out


def _h_maxima(height: NDArray[np.float64], h: float, level: float) -> NDArray[np.bool_]:
    """``skimage.morphology.h_maxima(height, h) > 0``, the same pixels, for a ``height`` that is
    ``level`` everywhere except on a few scattered patches above it (the growth domain).

    scikit-image reconstructs the whole array (a sort of every pixel: 0.4-0.8 s on the 2 Mpx box
    of a 1500² scene whose domain is 2-10 thousand pixels). Every pixel is ≥ ``level`` and the
    array is connected, so each pixel's reconstruction is at least ``G = min(level, max(marker))``
    (a path at level ``level`` reaches it from the highest marker), and a path between two
    patches of ``height > level`` crosses a pixel at ``level``, so it brings no more than ``G``.
    Hence: pixels at ``level`` reconstruct to ``G``; each patch to ``max(G, its own
    reconstruction)``, computed on its bounding box. The marker is scikit-image's
    (``height - h - resolution``), so the result is the same bit for bit
    (``tests/test_insar_delineation.py`` compares them).
    """
    from scipy import ndimage
    from skimage.morphology import reconstruction

    out = np.zeros(height.shape, dtype=bool)
    if h > np.ptp(height):  # as scikit-image: no h-maximum at all
        return out
    marker = height - h - 2 * np.finfo(height.dtype).resolution * np.abs(height)
    g = min(level, float(marker.max()))
    above = height > level
    out[~above] = (height[~above] - g) >= h
    lab, _ = ndimage.label(above, structure=_EIGHT)
    for k, sl in enumerate(ndimage.find_objects(lab), start=1):
        if sl is None:
            continue
        mine = lab[sl] == k
        seed = np.where(mine, marker[sl], g)
        mask = np.where(mine, height[sl], level)
        rec = np.maximum(reconstruction(seed, mask, method="dilation"), g)
        out[sl] |= mine & ((height[sl] - rec) >= h)
    return out


def _beyond_reach(
    ws: NDArray[np.int32], seeds: NDArray[np.bool_], allow: NDArray[np.float64]
) -> NDArray[np.bool_]:
    """Pixels of each basin ``b`` farther than ``allow[b]`` from every seed:
    ``distance_transform_edt(~seeds) > allow[ws]`` on basin pixels, the same pixels.

    The distance transform runs per basin on its bounding box grown by ``allow[b]``: a seed
    within ``allow[b]`` of a basin pixel lies inside it, so a distance up to ``allow[b]`` is the
    whole array's, and a larger one stays larger (the box of a 1500² scene is 2 Mpx; its basins
    a few thousand pixels).
    """
    from scipy import ndimage

    out = np.zeros(ws.shape, dtype=bool)
    h, w = ws.shape
    for b, sl in enumerate(ndimage.find_objects(ws), start=1):
        if sl is None:
            continue
        r = int(np.ceil(allow[b])) + 1
        crop = (
            slice(max(sl[0].start - r, 0), min(sl[0].stop + r, h)),
            slice(max(sl[1].start - r, 0), min(sl[1].stop + r, w)),
        )
        mine = ws[crop] == b
        if not seeds[crop].any():
            out[crop] |= mine
            continue
        out[crop] |= mine & (ndimage.distance_transform_edt(~seeds[crop]) > allow[b])
    return out


def _saddles(
    ws: NDArray[np.int32], height: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """Pairs ``(a, b)`` of 8-adjacent regions (a < b) and their saddle heights.

    The saddle is the highest pass between them: the largest ``min(height[p], height[q])`` over
    8-neighbour pixel pairs ``p`` in ``a``, ``q`` in ``b``.
    """
    a_all, b_all, s_all = [], [], []
    h, w = ws.shape
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        p = (slice(0, h - dy), slice(max(-dx, 0), w - max(dx, 0)))
        q = (slice(dy, h), slice(max(dx, 0), w - max(-dx, 0)))
        la, lb = ws[p], ws[q]
        sel = (la > 0) & (lb > 0) & (la != lb)
        if not sel.any():
            continue
        x, y = la[sel].astype(np.int64), lb[sel].astype(np.int64)
        a_all.append(np.minimum(x, y))
        b_all.append(np.maximum(x, y))
        s_all.append(np.minimum(height[p][sel], height[q][sel]))
    if not a_all:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    a, b, s = np.concatenate(a_all), np.concatenate(b_all), np.concatenate(s_all)
    key = a * (int(ws.max()) + 1) + b
    uniq, inv = np.unique(key, return_inverse=True)
    sad = np.full(uniq.size, -np.inf)
    np.maximum.at(sad, inv, s)
    first = np.zeros(uniq.size, dtype=np.int64)
    first[inv] = np.arange(inv.size)
    return a[first], b[first], sad


def _compete(
    rate: NDArray[np.float64],
    seeds: NDArray[np.bool_],
    grow_ok: NDArray[np.bool_],
    floor: float,
    relative_floor: float,
    merge_ratio: float,
    unknown: NDArray[np.bool_] | None = None,
    gap_px: float = 2.0,
    background: NDArray[np.float64] | None = None,
    reach_factor: float = 2.5,
) -> tuple[NDArray[np.int32], int, NDArray[np.int8]]:
    """Competing growth from seeds, per sign of motion (see the module docstring, ``grow``).

    |rate| is measured against ``background`` (the residual). Markers are the seed groups and
    every other local maximum of the (3 × 3 smoothed) residual that stands at least half a
    ``floor`` above its surroundings (h-maxima): a slower landslide without seeds yet, or a patch
    of creep, claims its own basin instead of being swallowed. The watershed of −residual inside
    the growth domain (reliable pixels at or above ``floor``, plus unreliable ones only in gaps
    of ``gap_px``) gives each marker its basin; two basins merge, highest pass first, where the
    pass between them reaches ``merge_ratio`` × the faster one's peak (its second-highest
    measured pixel), i.e. measured moving ground connects them. Basins without seeds are
    dropped; each candidate then stops at ``relative_floor`` × the median residual of its seeds
    and at ``reach_factor`` seed radii (+ 2 px) beyond them, and keeps only the pieces that
    hold seeds.
    """
    out = np.zeros(rate.shape, dtype=np.int32)
    signs: list[int] = []
    n = 0
    resid = rate if background is None else rate - background
    # a kept (memory-mapped) background is not read again here
    release_pages(background, min_bytes=RELEASE_MIN_BYTES)
    for s in (-1, 1):
        # one sign at a time in its own frame: its grid-sized temporaries are freed before the
        # other sign allocates its own (they were alive together: +2.5 GB at frame scale)
        kc = _compete_sign(
            s, rate, resid, seeds, grow_ok, floor, relative_floor, merge_ratio, unknown,
            gap_px, reach_factor, out, n,
        )  # fmt: skip
        signs += [s] * kc
        n += kc
    return out, n, np.array([0, *signs], dtype=np.int8)


def _compete_sign(
    s: int,
    rate: NDArray[np.float64],
    resid: NDArray[np.float64],
    seeds: NDArray[np.bool_],
    grow_ok: NDArray[np.bool_],
    floor: float,
    relative_floor: float,
    merge_ratio: float,
    unknown: NDArray[np.bool_] | None,
    gap_px: float,
    reach_factor: float,
    out: NDArray[np.int32],
    n: int,
) -> int:
    """:func:`_compete` for the motion of sign ``s``: its candidates written into ``out``
    numbered from ``n + 1``; returns how many."""
    from scipy import ndimage
    from skimage.measure import label as same_value_label
    from skimage.segmentation import watershed

    moving = s * resid
    finite = np.isfinite(moving)
    # a seed moves with this sign and stands out of the background by the floor
    seed_s = seeds & finite & (s * rate > 0) & (moving >= floor)
    if not seed_s.any():
        return 0
    reliable = (grow_ok & finite & (moving >= floor)) | seed_s
    # short gaps of unreliable ground (a few pixels, in the closing of moving ground) are
    # crossed; a network of it is not: growth never runs along unreliable pixels
    bridge = np.zeros_like(reliable)
    if unknown is not None and gap_px > 0:
        bridge = unknown & ~reliable & _closing(reliable, gap_px / 2.0)
    domain = reliable | bridge
    # only the domain's components that hold a seed matter; work in their bounding box
    dlab, _ = ndimage.label(domain, structure=_EIGHT)
    live = np.zeros(int(dlab.max()) + 1, dtype=bool)
    live[np.unique(dlab[seed_s])] = True
    live[0] = False
    domain = live[dlab]
    del dlab, reliable  # grid-sized: freed as soon as they are used (a frame is 48 Mpx)
    rows = np.flatnonzero(domain.any(axis=1))
    cols = np.flatnonzero(domain.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    dom, seed_b, mov = domain[box], seed_s[box], moving[box]
    measured = np.where((grow_ok[box] & finite[box]) | seed_b, mov, np.nan)
    del finite
    height = np.where(dom, np.nan_to_num(_smooth3(measured), nan=floor), floor)
    height = np.maximum(height, floor)
    height[seed_b] = np.maximum(height[seed_b], np.nan_to_num(mov[seed_b], nan=floor))
    peaks = _h_maxima(height, floor / 2.0, floor) if floor > 0 else np.zeros_like(dom)
    markers, k = ndimage.label(seed_b | (peaks & dom), structure=_EIGHT)
    ws = watershed(-height, markers, mask=dom, connectivity=2).astype(np.int32)
    has_seed = np.bincount(markers[seed_b], minlength=k + 1) > 0
    del markers, peaks
    peak = _second_highest(ws, np.where(dom, np.nan_to_num(measured, nan=floor), floor), k)
    del measured
    peak = np.maximum(peak, floor)
    a, b, sad = _saddles(ws, height)
    del height
    # merge where the pass is high: union-find over candidate pairs, highest pass first
    cand = sad >= merge_ratio * np.maximum(peak[a], peak[b])
    parent = np.arange(k + 1)

    for j in np.flatnonzero(cand)[np.argsort(-sad[cand], kind="stable")]:
        ra, rb = _find(parent, int(a[j])), _find(parent, int(b[j]))
        # one landslide only where the pass is high for the faster basin too: a landslide
        # on moving background (creep, atmosphere) stands out of it and stays apart
        if ra == rb or sad[j] < merge_ratio * max(peak[ra], peak[rb]):
            continue
        parent[rb] = ra
        peak[ra] = max(peak[ra], peak[rb])
        has_seed[ra] |= has_seed[rb]
    roots = np.array([_find(parent, i) for i in range(k + 1)])
    roots[~has_seed[roots]] = 0
    ws = roots[ws].astype(np.int32)
    if relative_floor > 0:
        # over the seed pixels only (ndimage sorts every pixel it is given)
        core = ndimage.median(mov[seed_b], ws[seed_b], np.arange(1, k + 1))
        own = np.maximum(floor, relative_floor * np.nan_to_num(np.asarray(core), nan=0.0))
        floor_map = np.concatenate([[np.inf], own])[ws]
        ws[~((np.nan_to_num(mov, nan=-np.inf) >= floor_map) | seed_b)] = 0
    if reach_factor > 0:
        # a basin reaches at most reach_factor × its seeds' radius (+ 2 px) beyond them: a
        # landslide's outline lies a few seed radii out, a band of creep runs on for km
        n_seed = np.bincount(ws[seed_b], minlength=k + 1).astype(np.float64)
        allow = 2.0 + reach_factor * np.sqrt(n_seed / np.pi)
        allow[0] = -1.0
        ws[_beyond_reach(ws, seed_b, allow)] = 0
    comp = same_value_label(ws, background=0, connectivity=2).astype(np.int32)
    kc = int(comp.max())
    comp, kc = _relabel(comp, np.bincount(comp[seed_b], minlength=kc + 1) > 0)
    comp[bridge[box]] = 0  # unreliable pixels rejoin only in a candidate's closing, later
    sub = out[box]
    sub[comp > 0] = comp[comp > 0] + n
    return kc


def _circular_mean_deg(values: NDArray[np.floating]) -> float:
    v = np.deg2rad(values[np.isfinite(values)])
    if v.size == 0:
        return float("nan")
    return float(np.rad2deg(np.arctan2(np.sin(v).mean(), np.cos(v).mean())) % 360.0)


def _angle_diff(a: NDArray[np.floating] | float, b: float) -> NDArray[np.float64]:
    return np.abs((np.asarray(a, dtype=np.float64) - b + 180.0) % 360.0 - 180.0)


def _group(
    labels: NDArray[np.int32],
    n: int,
    signs: NDArray[np.int8],
    aspect_deg: NDArray[np.floating] | None,
    distance_px: float,
    facet_tolerance_deg: float,
    unknown: NDArray[np.bool_] | None,
    height: NDArray[np.float64] | None = None,
    merge_ratio: float = 0.0,
) -> tuple[NDArray[np.int32], int, NDArray[np.int64]]:
    """Merge clusters that only unreliable ground separates (union-find).

    Two clusters join when they have the same sign of motion, at most ``distance_px`` pixels
    lie between them, at least half of the pixels between them have no reliable rate
    (``unknown``: fast motion decorrelates, so a gap of that kind is a hole in one landslide),
    with ``height`` (|rate|) the fastest pixel beside the gap on each side reaches
    ``merge_ratio`` × the faster cluster's peak, and, with ``aspect_deg``, they lie on one
    slope facet (mean aspects within
    ``facet_tolerance_deg``, nothing between them facing more than 90° away). Clusters with
    measured ground between them stay apart: the watershed already decided that measured
    ground between them does not move like them.
    """
    from scipy import ndimage

    if unknown is None or n < 2 or distance_px <= 0:
        return labels, n, np.ones(n, dtype=np.int64)
    parent = np.arange(n + 1)

    reach = _disc(distance_px + 1.0)
    pad = int(np.ceil(distance_px)) + 2
    boxes = ndimage.find_objects(labels, max_label=n)
    peaks = (
        _second_highest(labels, np.nan_to_num(height, nan=0.0), n)
        if height is not None
        else np.zeros(n + 1)
    )
    aspects = np.full(n + 1, np.nan)
    if aspect_deg is not None:
        for i, sl in enumerate(boxes, start=1):
            if sl is not None:
                aspects[i] = _circular_mean_deg(aspect_deg[sl][labels[sl] == i])
    h, w = labels.shape
    for i, sl in enumerate(boxes, start=1):
        if sl is None:
            continue
        r0, r1, c0, c1 = _window(sl, pad, (h, w))
        win = labels[r0:r1, c0:c1]
        near_i = ndimage.binary_dilation(win == i, structure=reach)
        for j in np.unique(win[near_i]):
            j = int(j)
            if j <= i or signs[j] != signs[i]:
                continue
            near_j = ndimage.binary_dilation(win == j, structure=reach)
            between = near_i & near_j & (win == 0)
            if not between.any() or unknown[r0:r1, c0:c1][between].mean() < 0.5:
                continue  # measured ground between them, or they touch: two candidates
            if height is not None and merge_ratio > 0:
                # across the gap, both sides must move like the faster one: a decorrelated
                # hole in one landslide has fast ground on both sides, a line of decorrelated
                # ground between two landslides has their slow edges
                edge = ndimage.binary_dilation(between, structure=_EIGHT)
                hw = height[r0:r1, c0:c1]
                side_i = hw[edge & (win == i)]
                side_j = hw[edge & (win == j)]
                if not side_i.size or not side_j.size:
                    continue
                crossing = min(float(side_i.max()), float(side_j.max()))
                if crossing < merge_ratio * max(peaks[i], peaks[j]):
                    continue
            if aspect_deg is not None:
                ai, aj = aspects[i], aspects[j]
                if np.isfinite(ai) and np.isfinite(aj):
                    if _angle_diff(aj, ai) > facet_tolerance_deg:
                        continue
                    mean = _circular_mean_deg(np.array([ai, aj]))
                    a_between = aspect_deg[r0:r1, c0:c1][between]
                    if np.any(_angle_diff(a_between[np.isfinite(a_between)], mean) > 90.0):
                        continue  # a ridge or valley lies between them
            parent[_find(parent, j)] = _find(parent, i)
    roots = np.array([_find(parent, i) for i in range(n + 1)])
    uniq, inverse = np.unique(roots[1:], return_inverse=True)
    lut = np.zeros(n + 1, dtype=np.int32)
    lut[1:] = inverse + 1
    fragments = np.bincount(inverse, minlength=uniq.size).astype(np.int64)
    merged = lut[labels]
    m = int(uniq.size)
    # close the gaps inside each grouped candidate (only over unreliable background pixels)
    boxes = ndimage.find_objects(merged, max_label=m)
    for g in np.flatnonzero(fragments > 1) + 1:
        sl = boxes[g - 1]
        if sl is None:
            continue
        r0, r1, c0, c1 = _window(sl, pad, (h, w))
        win = merged[r0:r1, c0:c1]
        closed = _closing(win == g, (distance_px + 1.0) / 2.0)
        win[closed & (win == 0) & unknown[r0:r1, c0:c1]] = g
    return merged, m, fragments


def _bridge_unknown(
    labels: NDArray[np.int32], n: int, unknown: NDArray[np.bool_], radius_px: float = 2.0
) -> None:
    """Pixels without a reliable rate (decorrelated, no data) in a candidate's closing join it.

    Fast motion decorrelates: such pixels are notches and holes in a landslide, not its edge.
    """
    from scipy import ndimage

    pad = int(np.ceil(radius_px)) + 1
    h, w = labels.shape
    for i, sl in enumerate(ndimage.find_objects(labels, max_label=n), start=1):
        if sl is None:
            continue
        r0, r1, c0, c1 = _window(sl, pad, (h, w))
        win = labels[r0:r1, c0:c1]
        closed = _closing(win == i, radius_px)
        win[closed & (win == 0) & unknown[r0:r1, c0:c1]] = i


def _fill_holes(labels: NDArray[np.int32], n: int) -> None:
    """Holes that one candidate encloses on its own join it (never ground between two)."""
    from scipy import ndimage

    for i, sl in enumerate(ndimage.find_objects(labels, max_label=n), start=1):
        if sl is None:
            continue
        win = labels[sl]
        mine = win == i
        holes = ndimage.binary_fill_holes(mine) & ~mine & (win == 0)
        win[holes] = i


def _split_far_parts(
    labels: NDArray[np.int32], n: int, distance_px: float
) -> tuple[NDArray[np.int32], int]:
    """A candidate whose 8-connected parts lie more than ``distance_px`` apart becomes several."""
    from scipy import ndimage

    reach = _disc(max(distance_px, 0.0) / 2.0 + 0.5)
    pad = int(np.ceil(distance_px)) + 2
    h, w = labels.shape
    nxt = n
    for i, sl in enumerate(ndimage.find_objects(labels, max_label=n), start=1):
        if sl is None:
            continue
        r0, r1, c0, c1 = _window(sl, pad, (h, w))
        win = labels[r0:r1, c0:c1]
        mine = win == i
        if ndimage.label(mine, structure=_EIGHT)[1] < 2:
            continue
        groups, k = ndimage.label(ndimage.binary_dilation(mine, structure=reach), _EIGHT)
        for g in range(2, k + 1):
            nxt += 1
            win[mine & (groups == g)] = nxt
    return labels, nxt


def _smooth(labels: NDArray[np.int32], n: int, seeds: NDArray[np.bool_]) -> None:
    """One pass per candidate on the pixel grid: one-pixel notches in, one-pixel spurs out.

    A notch is an outside pixel with ≥ 6 of its 8 neighbours inside, or 5 with two opposite
    4-neighbours inside (a gap in a straight edge); a spur is an inside pixel with ≤ 2 of its 8
    neighbours and ≤ 1 of its 4 neighbours inside (hanging off a corner or the tip of a thin
    arm). Seeds never leave. Diagonal edges, whose outside pixels have 5 neighbours inside but no
    opposite pair, and one-pixel bumps on a straight edge (3 neighbours; on the synthetic scenes
    these are more often real edge pixels than noise: median IoU 0.61 when they are removed,
    0.63 when kept) are left as they are.
    """
    from scipy import ndimage

    k8 = np.ones((3, 3), dtype=np.int32)
    k8[1, 1] = 0
    h, w = labels.shape
    for i, sl in enumerate(ndimage.find_objects(labels, max_label=n), start=1):
        if sl is None:
            continue
        r0, r1, c0, c1 = _window(sl, 1, (h, w))
        win = labels[r0:r1, c0:c1]
        mine = win == i
        p = np.pad(mine, 1)
        left, right, up, down = p[1:-1, :-2], p[1:-1, 2:], p[:-2, 1:-1], p[2:, 1:-1]
        n8 = ndimage.convolve(mine.astype(np.int32), k8, mode="constant")
        n4 = left.astype(np.int32) + right + up + down
        opposite = (left & right) | (up & down)
        add = (~mine) & (win == 0) & ((n8 >= 6) | ((n8 == 5) & opposite))
        drop = mine & (n8 <= _SPUR_N8) & (n4 <= 1) & ~seeds[r0:r1, c0:c1]
        win[add] = i
        win[drop] = 0


def delineate(
    rate_mm_yr: NDArray[np.floating],
    seeds: NDArray[np.bool_],
    *,
    method: Literal["threshold", "grow"] = "grow",
    grow_ok: NDArray[np.bool_] | None = None,
    floor_mm_yr: float = float("nan"),
    relative_floor: float = 0.2,
    merge_ratio: float = 0.65,
    reach_factor: float = 2.5,
    min_pixels: int = 4,
    aspect_deg: NDArray[np.floating] | None = None,
    group_distance_px: float = 2.0,
    facet_tolerance_deg: float = 45.0,
    smooth: bool = True,
    unknown: NDArray[np.bool_] | None = None,
    background_mm_yr: NDArray[np.floating] | None = None,
) -> Delineation:
    """Candidate labels from this iteration's seeds (see the module docstring).

    Args:
        rate_mm_yr: LOS (or downslope) rate, mm/yr, NaN = no data.
        seeds: pixels passing this iteration's |rate| threshold inside every mask.
        method: ``threshold`` (8-connected seed groups) or ``grow`` (competing growth).
        grow_ok: where growth may go (coherent, inside the relaxed terrain masks); default:
            everywhere the rate is finite.
        floor_mm_yr: lowest |rate| a grown pixel may have, mm/yr (``grow``).
        relative_floor: a candidate also stops at this fraction of its seeds' median |rate|.
        merge_ratio: two basins of the competing growth join when the pass between them is at
            least this fraction of the faster one's peak |rate| (``grow``).
        reach_factor: a candidate reaches at most this many seed radii (+ 2 px) beyond its
            seeds (``grow``; 0: no limit).
        min_pixels: candidates with fewer seed pixels are dropped.
        aspect_deg: aspect (degrees from north, clockwise) for the one-facet test; None: clusters
            are grouped on distance and sign alone.
        group_distance_px: clusters with at most this many pixels between them may be grouped.
        facet_tolerance_deg: largest difference of mean aspects on one facet, degrees.
        smooth: smooth outlines on the pixel grid.
        unknown: pixels without a reliable rate (decorrelated, no data): growth never passes
            through them; a candidate keeps those in its closing (radius 2 px), and clusters
            that only such pixels separate (at most ``group_distance_px``) are grouped;
            default: none.
        background_mm_yr: large-scale background rate (:func:`local_background`); ``grow``
            measures growth, floors and seeds' standing out against it. None: zero.
    """
    rate = np.asarray(rate_mm_yr, dtype=np.float64)
    seeds = np.asarray(seeds, dtype=bool) & np.isfinite(rate)
    if method == "threshold":
        labels, n = _threshold(seeds, min_pixels)
        counts = np.bincount(labels.ravel(), minlength=n + 1)[1:].astype(np.int64)
        return Delineation(labels, n, seeds, counts, np.ones(n, np.int64), float("nan"), method)
    if not np.isfinite(floor_mm_yr):
        raise ValueError("delineation 'grow' needs a finite floor_mm_yr")
    if grow_ok is None:
        grow_ok = np.isfinite(rate)
    unknown_mask = None if unknown is None else np.asarray(unknown, dtype=bool)
    labels, n, signs = _compete(
        rate,
        seeds,
        np.asarray(grow_ok, dtype=bool),
        floor_mm_yr,
        relative_floor,
        merge_ratio,
        unknown_mask,
        group_distance_px,
        None if background_mm_yr is None else np.asarray(background_mm_yr, dtype=np.float64),
        reach_factor,
    )
    fragments: np.ndarray = np.ones(n, dtype=np.int64)
    if n > 1 and group_distance_px > 0:
        resid = rate if background_mm_yr is None else rate - np.asarray(background_mm_yr)
        labels, n, fragments = _group(
            labels,
            n,
            signs,
            aspect_deg,
            group_distance_px,
            facet_tolerance_deg,
            unknown_mask,
            np.abs(resid),
            merge_ratio,
        )
    if unknown_mask is not None and n:
        _bridge_unknown(labels, n, unknown_mask)
    _fill_holes(labels, n)
    if smooth and n:
        _smooth(labels, n, seeds)
    labels, n_split = _split_far_parts(labels, n, group_distance_px)
    fragments = np.concatenate([fragments, np.ones(n_split - n, dtype=np.int64)])
    n = n_split
    seed_px = np.bincount(labels[seeds], minlength=n + 1)
    keep = seed_px >= min_pixels
    labels, m = _relabel(labels, keep)
    return Delineation(
        labels,
        m,
        seeds,
        seed_px[1:][keep[1:]].astype(np.int64),
        fragments[keep[1:]],
        float(floor_mm_yr),
        method,
    )
