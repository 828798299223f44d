"""Seasonal fit of a MintPy ``timeseries*.h5``: row blocks through Dask, cached, updated in place.

The model is :mod:`.timefunc`'s y = a + b·t + c·cos(2πt/T) + d·sin(2πt/T). Here it is solved from
per-pixel normal equations accumulated over epochs,

    N = Σₑ wₑ gₑ gₑᵀ (4 × 4),  r = Σₑ wₑ gₑ yₑ,  q = Σₑ wₑ yₑ²,  n = Σₑ wₑ,

(wₑ = 1 where epoch e is finite), so that epochs appended to the file later only add their own
terms: the fit *updates* instead of starting again (MintPy stacks grow by an epoch every 12
days). m = N⁻¹ r, and the residual sum of squares is q - 2·mᵀr + mᵀNm.

Work is split into blocks of rows (``chunk_pixels`` pixels each); every block is a
``dask.delayed`` task that opens the file **by path** (so it runs the same on threads, processes
or a distributed cluster) and returns its sums. :func:`thawdetect.core.compute.compute` runs them,
in batches shown by :func:`thawdetect.core.progress.track`. The result does not depend on the
scheduler: every block is computed by the same code on the same bytes.

Cache (``cache_dir``): the sums, the dates and a digest per epoch of a few sample rows. On the
next call, the file's dates and digests are compared with the cache:

* same dates and digests: the cached sums are solved again (no read of the stack);
* the cached epochs unchanged and new epochs after them: only the new epochs are read and added;
* anything else (an earlier epoch re-inverted, the first date moved, epochs removed): the fit is
  recomputed from scratch.

The digests cover a few whole rows of every epoch, not every pixel: a change confined to the
rows that were not sampled would go unseen. A MintPy re-inversion changes every pixel, so it is
caught.

The solved fit is kept beside the sums (``fit_<key>.solved/``: one ``.npy`` per array and a
stamp with the dates, digests and settings it was solved for). An unchanged file is then not
solved again but memory-mapped: every later iteration and every resume of the run reads only the
pixels it uses. Within one process the digests of a file whose size and modification time have
not changed are not read again either.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from thawdetect.plugin_api import GridSpec, InputError, atomic_path, write_text_atomic
from thawdetect.plugins.insar_sbas.timefunc import N_PARAMS, SeasonalFit, design_matrix

__all__ = ["FileFit", "check_dates", "fit_timeseries_file", "read_timeseries_fit"]

log = logging.getLogger(__name__)

_UNIT_TO_MM = {"m": 1000.0, "cm": 10.0, "mm": 1.0}
_SLAB_PIXELS = 16384  # pixels a fit task holds at once (its epochs × 8 bytes each, a few times)
_IU = np.triu_indices(N_PARAMS)  # the 10 distinct entries of the symmetric N
_SAMPLE_ROWS = 8
_CACHE_VERSION = 1


@dataclass
class FileFit:
    """The seasonal fit of a file, with how it was obtained.

    Attributes:
        fit: the per-pixel fit (mm, mm/yr).
        dates: the file's acquisition dates.
        grid: the file's grid.
        attrs: the file's MintPy attributes.
        status: ``computed``, ``cached``, ``updated`` (new epochs added) or ``recomputed``
            (earlier epochs changed).
        new_epochs: epochs read in this call (all of them unless ``cached``/``updated``).
        note: one sentence for logs and ``thresholds.json``.
        checksum: a digest of the file's dates and per-epoch digests (empty without a cache):
            what caches of products derived from the file are keyed by.
    """

    fit: SeasonalFit
    dates: list[date]
    grid: GridSpec
    attrs: dict[str, str]
    status: str
    new_epochs: int
    note: str
    checksum: str = ""

    def record(self) -> dict[str, Any]:
        """JSON-able summary (for ``thresholds.json``)."""
        return {
            "status": self.status,
            "epochs": len(self.dates),
            "new_epochs": self.new_epochs,
            "first_date": self.dates[0].isoformat(),
            "last_date": self.dates[-1].isoformat(),
            "note": self.note,
        }


def check_dates(dates: list[date], path: str | Path) -> None:
    """Raise a one-line :class:`InputError` when epochs go backwards or repeat.

    Examples:
        >>> check_dates([date(2020, 1, 1), date(2020, 1, 13)], "ts.h5")
        >>> try:
        ...     check_dates([date(2020, 1, 13), date(2020, 1, 1)], "ts.h5")
        ... except InputError as e:
        ...     print(str(e)[:55])
        ts.h5: epochs go backwards: 2020-01-01 after 2020-01-13
    """
    for i, (a, b) in enumerate(itertools.pairwise(dates), start=2):
        if b == a:
            raise InputError(
                path,
                f"epochs overlap: {b.isoformat()} appears twice (epoch {i}); MintPy's date "
                "dataset must be strictly increasing",
            )
        if b < a:
            raise InputError(
                path,
                f"epochs go backwards: {b.isoformat()} after {a.isoformat()} (epoch {i}); "
                "MintPy's date dataset must be strictly increasing",
            )


def _block_sums(
    path: str, r0: int, r1: int, e0: int, e1: int, g: NDArray[np.float64]
) -> list[dict[str, NDArray[Any]]]:
    """Normal-equation sums of epochs ``e0:e1`` over rows ``r0:r1`` (opens the file by path),
    one per slab of at most ``_SLAB_PIXELS`` pixels (in row order) so that the float64 working
    copy stays small (and in cache) whatever the block size; the caller copies each slab into
    the grid's arrays once."""
    import h5py

    with h5py.File(path, "r") as f:
        return [sums for _, _, sums in _slabs(f["timeseries"], r0, r1, e0, e1, g)]


def _slab_rows(width: int) -> int:
    """Rows per slab: at most ``_SLAB_PIXELS`` pixels (at least one row)."""
    return max(1, _SLAB_PIXELS // max(width, 1))


def _slabs(
    ts: Any, r0: int, r1: int, e0: int, e1: int, g: NDArray[np.float64]
) -> Iterator[tuple[int, int, dict[str, NDArray[Any]]]]:
    """(first row, end row, sums of epochs ``e0:e1``) for each slab of rows ``r0:r1`` of the
    open ``timeseries`` dataset ``ts``."""
    step = _slab_rows(ts.shape[2])
    for a in range(r0, r1, step):
        b = min(a + step, r1)
        yield a, b, _slab_sums(ts[e0:e1, a:b, :].reshape(e1 - e0, -1), g)


def _slab_sums(raw: NDArray[Any], g: NDArray[np.float64]) -> dict[str, NDArray[Any]]:
    """Normal-equation sums of ``raw`` (epochs × pixels) with design matrix ``g``.

    An epoch counts where it is finite, and not at all in a pixel that is zero at every epoch
    (MintPy's no-data). Most pixels have every epoch: for them Σ y² is finite and positive, so one
    pass (the float64 copy, then Σ y²) finds them; the per-value tests run only on the others.
    """
    n_ep = raw.shape[0]
    y0 = raw.astype(np.float64)
    q = np.einsum("ij,ij->j", y0, y0)
    complete = np.isfinite(q) & (q > 0.0)  # NaN/inf somewhere, or all zero (or underflow)
    n = np.full(raw.shape[1], n_ep, dtype=np.int32)
    gg = (g[:, :, None] * g[:, None, :])[:, _IU[0], _IU[1]]  # (epochs, 10)
    # Pixels with every epoch (most of them) share N = Σ g gᵀ: one fill, no per-pixel product
    n_sum = np.empty((len(_IU[0]), raw.shape[1]))
    n_sum[:, complete] = gg.sum(axis=0)[:, None]
    if not complete.all():
        gaps = np.flatnonzero(~complete)
        sub = raw[:, gaps]
        valid = np.isfinite(sub)
        valid[:, ~sub.any(axis=0)] = False  # MintPy no-data: zero at every epoch read
        # a pixel with every epoch valid that got here (tiny values whose squares underflow)
        # is complete all the same: the same sums as the fast path
        ysub = np.where(valid, y0[:, gaps], 0.0)  # float64, as the fast path
        y0[:, gaps] = ysub
        q[gaps] = np.einsum("ij,ij->j", ysub, ysub)
        n[gaps] = valid.sum(axis=0)
        full = valid.all(axis=0)
        n_sum[:, gaps[full]] = gg.sum(axis=0)[:, None]
        part = gaps[~full]
        n_sum[:, part] = gg.T @ valid[:, ~full].astype(np.float64)
    return {"N": n_sum, "r": g.T @ y0, "q": q, "n": n}


#: Digests already read in this process, by (path, size, mtime_ns, shape).
_DIGESTS: dict[tuple[str, int, int, tuple[int, ...]], list[str]] = {}


def _epoch_digests(path: Path, shape: tuple[int, int, int]) -> list[str]:
    """sha1 of a few evenly spaced whole rows, per epoch (read once per process while the file's
    size and modification time stay the same)."""
    from thawdetect.plugins.insar_sbas.mintpy_h5 import open_h5

    st = path.stat()
    memo = (str(path.resolve()), st.st_size, st.st_mtime_ns, tuple(shape))
    if memo in _DIGESTS:
        return list(_DIGESTS[memo])
    n_ep, length, _ = shape
    rows = sorted({int(v) for v in np.linspace(0, length - 1, min(length, _SAMPLE_ROWS))})
    with open_h5(path) as f:
        sample = np.ascontiguousarray(f["timeseries"][:, rows, :], dtype=np.float32)
    out = [hashlib.sha1(sample[e].tobytes()).hexdigest()[:16] for e in range(n_ep)]
    if len(_DIGESTS) > 16:
        _DIGESTS.clear()
    _DIGESTS[memo] = out
    return list(out)


def _row_blocks(
    fn: Callable[..., Any],
    path: Path,
    shape: tuple[int, int, int],
    chunk_pixels: int,
    what: str,
    *args: Any,
) -> Iterator[Any]:
    """``fn(path, r0, r1, *args)`` over the grid, one Dask task per block of rows of about
    ``chunk_pixels`` pixels, computed in batches of 2 × cores (a progress bar over the batches);
    the results in row order."""
    import dask

    from thawdetect.plugin_api import compute, track

    _, length, width = shape
    rows = max(1, chunk_pixels // max(width, 1))
    block = dask.delayed(fn, pure=True)
    tasks = [block(str(path), r0, min(r0 + rows, length), *args) for r0 in range(0, length, rows)]
    batch = 2 * max(1, os.cpu_count() or 1)
    batches = range(0, len(tasks), batch)
    for i in track(batches, what, total=len(batches)):
        yield from compute(*tasks[i : i + batch])


def _sums(
    path: Path,
    shape: tuple[int, int, int],
    g: NDArray[np.float64],
    e0: int,
    chunk_pixels: int,
) -> dict[str, NDArray[Any]]:
    """Sums of epochs ``e0:`` over the whole grid, one Dask task per block of rows, each block
    copied into the output arrays as it arrives (never a second copy of the grid's sums)."""
    n_ep, length, width = shape
    what = f"seasonal fit ({n_ep - e0} epochs)"
    out: dict[str, NDArray[Any]] = {}
    done = 0  # pixels written (the blocks come in row order)
    blocks = _row_blocks(_block_sums, path, shape, chunk_pixels, what, e0, n_ep, g[e0:])
    for part in (slab for slabs in blocks for slab in slabs):
        for k, v in part.items():
            if k not in out:
                out[k] = np.empty((*v.shape[:-1], length * width), dtype=v.dtype)
            out[k][..., done : done + v.shape[-1]] = v
        done += part["q"].shape[-1]
    return {k: v.reshape((*v.shape[:-1], length, width)) for k, v in out.items()}


def _block_fit(
    path: str,
    r0: int,
    r1: int,
    shape: tuple[int, int, int],
    g: NDArray[np.float64],
    dates: list[date],
    period_yr: float,
    min_epochs: int,
    scale_mm: float,
) -> list[tuple[int, SeasonalFit]]:
    """The fit of rows ``r0:r1`` (one task: sums, then the per-pixel solve, in slabs of at most
    ``_SLAB_PIXELS`` so that a task's working memory stays small whatever the task size), as
    (first row, fit) per slab: the caller copies each into its output once."""
    import h5py

    n_ep, _, width = shape
    parts: list[tuple[int, SeasonalFit]] = []
    with h5py.File(path, "r") as f:
        for a, b, sums in _slabs(f["timeseries"], r0, r1, 0, n_ep, g):
            sums = {k: v.reshape((*v.shape[:-1], b - a, width)) for k, v in sums.items()}
            fit = _solve(
                sums, dates, period_yr=period_yr, min_epochs=min_epochs, scale_mm=scale_mm, g=g
            )
            parts.append((a, fit))
    return parts


def _fit_blocks(
    path: Path,
    shape: tuple[int, int, int],
    g: NDArray[np.float64],
    dates: list[date],
    chunk_pixels: int,
    *,
    period_yr: float,
    min_epochs: int,
    scale_mm: float,
) -> SeasonalFit:
    """The whole grid's fit, one Dask task per block of rows, written into the output arrays."""
    n_ep, length, width = shape
    args = (shape, g, dates, period_yr, min_epochs, scale_mm)
    what = f"seasonal fit ({n_ep} epochs)"
    blocks = _row_blocks(_block_fit, path, shape, chunk_pixels, what, *args)
    return _assembled((length, width), (p for parts in blocks for p in parts), dates, period_yr)


def _assembled(
    shape: tuple[int, int],
    parts: Iterable[tuple[int, SeasonalFit]],
    dates: list[date],
    period_yr: float,
) -> SeasonalFit:
    """The grid's fit from (first row, fit of those rows) parts, each copied in once."""
    out: dict[str, NDArray[Any]] = {
        name: np.empty(shape, dtype=np.int32 if name == "valid_epochs" else np.float64)
        for name in SeasonalFit.ARRAY_FIELDS
    }
    for r0, part in parts:
        for name in SeasonalFit.ARRAY_FIELDS:
            block_rows = getattr(part, name)
            out[name][r0 : r0 + block_rows.shape[0]] = block_rows
    return SeasonalFit(**out, t0=dates[0], period_yr=period_yr)


def _solve_in_slabs(
    sums: dict[str, NDArray[Any]],
    dates: list[date],
    *,
    period_yr: float,
    min_epochs: int,
    scale_mm: float,
) -> SeasonalFit:
    """:func:`_solve` of the whole grid's sums, slab by slab of rows (``_SLAB_PIXELS``), so
    that its temporaries stay the size of a slab instead of several times the grid."""
    length, width = sums["q"].shape
    step = _slab_rows(width)
    g = design_matrix(dates, period_yr)
    parts = (
        (
            a,
            _solve(
                {k: v[..., a : a + step, :] for k, v in sums.items()},
                dates,
                period_yr=period_yr,
                min_epochs=min_epochs,
                scale_mm=scale_mm,
                g=g,
            ),
        )
        for a in range(0, length, step)
    )
    return _assembled((length, width), parts, dates, period_yr)


def _solve(
    sums: dict[str, NDArray[Any]],
    dates: list[date],
    *,
    period_yr: float,
    min_epochs: int,
    scale_mm: float,
    max_condition: float = 1e8,
    g: NDArray[np.float64] | None = None,
) -> SeasonalFit:
    """Per-pixel least squares from the sums (whole-array; one inverse for complete pixels).

    ``g``: the design matrix of ``dates`` when the caller has it already.

    Parameters are kept component-major (4 × pixels): every step is then a small matrix product
    or an elementwise pass over contiguous rows.
    """
    n_ep = len(dates)
    shape = sums["q"].shape
    n = sums["n"].reshape(-1)
    r = sums["r"].reshape(N_PARAMS, -1)
    q = sums["q"].reshape(-1)
    n_flat = sums["N"].reshape(len(_IU[0]), -1)
    full = n == n_ep
    if g is None:
        g = design_matrix(dates, period_yr)
    gtg = g.T @ g
    m = np.linalg.inv(gtg) @ r  # right for complete pixels; the others are set below
    gaps = np.flatnonzero(~full)
    part = (~full) & (n >= min(max(min_epochs, N_PARAMS + 1), n_ep))
    # per-pixel normal matrices only where an epoch is missing (complete pixels share gᵀg)
    nmat = np.zeros((len(gaps), N_PARAMS, N_PARAMS))
    nmat[:, _IU[0], _IU[1]] = n_flat[:, gaps].T
    nmat[:, _IU[1], _IU[0]] = nmat[:, _IU[0], _IU[1]]
    m[:, gaps] = np.nan
    if part.any():
        sub = nmat[part[gaps]]
        cond = np.linalg.cond(sub)
        ok = np.isfinite(cond) & (cond < max_condition)
        sol = np.full((int(part.sum()), N_PARAMS), np.nan)
        if ok.any():
            sol[ok] = np.linalg.solve(sub[ok], r[:, part].T[ok][..., None])[..., 0]
        m[:, part] = sol.T
    m0 = m
    if len(gaps):
        m0 = m.copy()
        m0[:, gaps] = np.nan_to_num(m[:, gaps])
    mr = np.einsum("kp,kp->p", m0, r)
    mnm = np.einsum("kp,kp->p", gtg @ m0, m0)
    if len(gaps):
        mg = m0[:, gaps].T
        mnm[gaps] = np.einsum("pk,pkl,pl->p", mg, nmat, mg)
    with np.errstate(invalid="ignore", divide="ignore"):
        rms = np.sqrt(np.maximum(q - 2 * mr + mnm, 0.0) / np.maximum(n, 1))
    rms[~np.isfinite(m[0])] = np.nan
    m *= scale_mm
    c, d = m[2], m[3]
    return SeasonalFit(
        offset_mm=m[0].reshape(shape),
        rate_mm_yr=m[1].reshape(shape),
        cos_mm=c.reshape(shape),
        sin_mm=d.reshape(shape),
        seasonal_amplitude_pp_mm=(2.0 * np.hypot(c, d)).reshape(shape),
        phase_rad=np.arctan2(c, d).reshape(shape),
        residual_rms_mm=(rms * scale_mm).reshape(shape),
        valid_epochs=n.reshape(shape).astype(np.int32),
        t0=dates[0],
        period_yr=period_yr,
    )


def _cache_key(path: Path, period_yr: float, attrs: dict[str, str]) -> str:
    grid_attrs = {k: attrs.get(k) for k in ("X_FIRST", "Y_FIRST", "X_STEP", "Y_STEP", "UNIT")}
    blob = json.dumps([str(path.resolve()), period_yr, grid_attrs, _CACHE_VERSION])
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def _load_cache(path: Path) -> tuple[dict[str, NDArray[Any]], list[str], list[str]] | None:
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            sums = {k: z[k] for k in ("N", "r", "q", "n")}
            return sums, [str(s) for s in z["dates"]], [str(s) for s in z["digests"]]
    except (OSError, ValueError, KeyError):
        log.warning("%s: unreadable fit cache, recomputing", path)
        return None


def _save_cache(
    path: Path, sums: dict[str, NDArray[Any]], dates: list[str], dig: list[str]
) -> None:
    arrays: dict[str, Any] = {**sums, "dates": np.array(dates), "digests": np.array(dig)}
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


def _solved_stamp(
    names: list[str], digests: list[str], period_yr: float, min_epochs: int, unit: str
) -> dict[str, Any]:
    return {
        "version": _CACHE_VERSION,
        "dates": names,
        "digests": digests,
        "period_yr": period_yr,
        "min_epochs": min_epochs,
        "unit": unit,
    }


def _load_solved(folder: Path, stamp: dict[str, Any], dates: list[date]) -> SeasonalFit | None:
    """The solved fit kept in ``folder`` for exactly ``stamp``, memory-mapped (copy on write:
    a caller changing an array changes its own copy, never the cache), or None."""
    try:
        if json.loads((folder / "stamp.json").read_text()) != stamp:
            return None
        arrays = {
            name: np.load(folder / f"{name}.npy", mmap_mode="c", allow_pickle=False)
            for name in SeasonalFit.ARRAY_FIELDS
        }
    except (OSError, ValueError):
        return None
    return SeasonalFit(**arrays, t0=dates[0], period_yr=stamp["period_yr"])


def _save_solved(folder: Path, stamp: dict[str, Any], fit: SeasonalFit) -> None:
    """Keep ``fit`` for ``stamp``: the stamp goes first (a half-written folder has none) and
    last; each array replaces its file atomically (a mapping of the old one stays valid)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stamp.json").unlink(missing_ok=True)
    for name in SeasonalFit.ARRAY_FIELDS:
        with atomic_path(folder / f"{name}.npy", suffix=".npy") as tmp:
            np.save(tmp, np.ascontiguousarray(getattr(fit, name)), allow_pickle=False)
    write_text_atomic(folder / "stamp.json", json.dumps(stamp))


def fit_timeseries_file(
    path: str | Path,
    *,
    period_yr: float = 1.0,
    min_epochs: int = 10,
    chunk_pixels: int = 250_000,
    cache_dir: str | Path | None = None,
) -> FileFit:
    """Fit the seasonal model to every pixel of a MintPy ``timeseries*.h5``.

    Args:
        path: the time-series file (``timeseries`` in ``UNIT``, ``date``).
        period_yr: seasonal period T, years.
        min_epochs: pixels with fewer finite epochs are NaN.
        chunk_pixels: pixels per Dask task (a block of whole rows).
        cache_dir: where the sums are kept between calls (None: no cache).

    Returns:
        The fit with its status (see the module docstring).

    Raises:
        InputError: not a MintPy time series, fewer epochs than parameters, epochs that go
            backwards or repeat, an unknown unit.
    """
    from thawdetect.plugins.insar_sbas.mintpy_h5 import read_timeseries_info

    path = Path(path)
    dates, grid, attrs, shape = read_timeseries_info(path)
    check_dates(dates, path)
    if shape[0] < N_PARAMS + 1:
        raise InputError(
            path,
            f"time series has {shape[0]} epochs, fewer than the {N_PARAMS + 1} needed to fit "
            f"{N_PARAMS} parameters (offset, rate, cos, sin) with a residual",
        )
    unit = attrs.get("UNIT", "m")
    if unit not in _UNIT_TO_MM:
        raise InputError(path, f"unknown displacement unit '{unit}' (expected m, cm or mm)")
    g = design_matrix(dates, period_yr)
    names = [d.strftime("%Y%m%d") for d in dates]
    cache = None
    digests: list[str] = []
    checksum = ""
    stamp: dict[str, Any] = {}
    if cache_dir is not None:
        cache = Path(cache_dir) / f"fit_{_cache_key(path, period_yr, attrs)}.npz"
        digests = _epoch_digests(path, shape)
        blob = json.dumps([str(path.resolve()), names, digests, unit])
        checksum = hashlib.sha1(blob.encode()).hexdigest()[:16]
        stamp = _solved_stamp(names, digests, period_yr, min_epochs, unit)
        solved = _load_solved(cache.with_suffix(".solved"), stamp, dates)
        if solved is not None:  # the file unchanged since it was solved: nothing to read
            note = f"seasonal fit of {len(names)} epochs reused (file unchanged)"
            log.info("%s: %s", path, note)
            return FileFit(solved, dates, grid, attrs, "cached", 0, note, checksum)
    old = _load_cache(cache) if cache is not None else None
    status, start, note = "computed", 0, f"seasonal fit of {shape[0]} epochs"
    sums: dict[str, NDArray[Any]] | None = None
    if old is not None:
        old_sums, old_dates, old_dig = old
        k = len(old_dates)
        same_start = names[:k] == old_dates and digests[:k] == old_dig
        if same_start and k == len(names):
            status, start, sums = "cached", k, old_sums
            note = f"seasonal fit of {k} epochs reused (file unchanged)"
        elif same_start and k < len(names):
            status, start = "updated", k
            note = (
                f"{len(names) - k} new epochs ({dates[k].isoformat()} to "
                f"{dates[-1].isoformat()}): fit updated, {k} earlier epochs not re-read"
            )
        else:
            status = "recomputed"
            note = (
                f"earlier epochs changed or removed ({k} cached, {len(names)} now): "
                "fit recomputed from all epochs"
            )
    scale_mm = _UNIT_TO_MM[unit]
    if cache is None:
        # nothing to keep between calls: solve block by block, never holding the whole grid's
        # sums (memory is the output and a few blocks)
        fit = _fit_blocks(
            path,
            shape,
            g,
            dates,
            chunk_pixels,
            period_yr=period_yr,
            min_epochs=min_epochs,
            scale_mm=scale_mm,
        )
    else:
        if sums is None:
            new = _sums(path, shape, g, start, chunk_pixels)
            if start:
                assert old is not None
                new = {key: old[0][key] + new[key] for key in new}
            sums = new
            _save_cache(cache, sums, names, digests)
        if status != "computed":
            log.info("%s: %s", path, note)
        fit = _solve_in_slabs(
            sums, dates, period_yr=period_yr, min_epochs=min_epochs, scale_mm=scale_mm
        )
    _fix_reference(fit, attrs, shape)
    if cache is not None:
        _save_solved(cache.with_suffix(".solved"), stamp, fit)
    return FileFit(fit, dates, grid, attrs, status, shape[0] - start, note, checksum)


def _fix_reference(fit: SeasonalFit, attrs: dict[str, str], shape: tuple[int, int, int]) -> None:
    """The reference pixel is zero at every epoch by construction: a valid zero, not no-data."""
    try:
        ry, rx = int(attrs["REF_Y"]), int(attrs["REF_X"])
    except (KeyError, ValueError):
        return
    if 0 <= ry < shape[1] and 0 <= rx < shape[2]:
        for name in SeasonalFit.ARRAY_FIELDS:
            getattr(fit, name)[ry, rx] = shape[0] if name == "valid_epochs" else 0.0


def read_timeseries_fit(
    path: str | Path,
    *,
    period_yr: float = 1.0,
    min_epochs: int = 10,
    chunk_pixels: int = 250_000,
    cache_dir: str | Path | None = None,
) -> tuple[SeasonalFit, list[date], GridSpec, dict[str, str]]:
    """``(fit, dates, grid, attributes)`` of :func:`fit_timeseries_file`."""
    res = fit_timeseries_file(
        path,
        period_yr=period_yr,
        min_epochs=min_epochs,
        chunk_pixels=chunk_pixels,
        cache_dir=cache_dir,
    )
    return res.fit, res.dates, res.grid, res.attrs
