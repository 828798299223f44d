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
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from thawdetect.plugin_api import GridSpec, InputError, trim_memory, write_text_atomic
from thawdetect.plugins.insar_sbas.timefunc import N_PARAMS, SeasonalFit, design_matrix

__all__ = ["FileFit", "check_dates", "fit_timeseries_file", "read_timeseries_fit"]

log = logging.getLogger(__name__)

_UNIT_TO_MM = {"m": 1000.0, "cm": 10.0, "mm": 1.0}
_SLAB_PIXELS = 16384  # pixels a fit task holds at once (its epochs × 8 bytes each, a few times)
_IU = np.triu_indices(N_PARAMS)  # the 10 distinct entries of the symmetric N
_SAMPLE_ROWS = 8
_CACHE_VERSION = 2  # 2: sums as .npy row files (was one .npz)


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


def _windows(ts: Any, r0: int, r1: int) -> Iterator[tuple[int, int, int, int]]:
    """(row0, row1, col0, col1) windows of about ``_SLAB_PIXELS`` pixels covering rows
    ``r0:r1`` of the open ``timeseries`` dataset ``ts``, row band by row band.

    In a chunked file (MintPy writes ``chunks=True``: h5py's chunks of a few epochs × ~100 rows
    × ~250 columns) each window lies within one band of chunk rows and is a whole number of
    chunks wide, so every chunk is read once: a window of whole rows would read each chunk it
    cuts once per window (tens of times over at frame width). A contiguous file: whole rows.
    """
    _, _, width = ts.shape
    chunks = ts.chunks
    if not chunks:
        step = _slab_rows(width)
        for a in range(r0, r1, step):
            yield a, min(a + step, r1), 0, width
        return
    ch, cw = chunks[1], chunks[2]
    edges = sorted({r0, r1, *range((r0 // ch + 1) * ch, r1, ch)})
    for a, b in itertools.pairwise(edges):
        ncols = max(1, _SLAB_PIXELS // max((b - a) * cw, 1)) * cw
        for c in range(0, width, ncols):
            yield a, b, c, min(c + ncols, width)


def _block_sums(
    path: str, r0: int, r1: int, e0: int, e1: int, g: NDArray[np.float64]
) -> tuple[int, dict[str, NDArray[Any]]]:
    """``(r0, sums)``: the normal-equation sums of epochs ``e0:e1`` over rows ``r0:r1`` (opens
    the file by path), each ``(components, rows, width)``, computed window by window
    (:func:`_windows`) so that the float64 working copy stays small whatever the block."""
    import h5py

    out: dict[str, NDArray[Any]] = {}
    with h5py.File(path, "r") as f:
        ts = f["timeseries"]
        width = ts.shape[2]
        for a, b, c, d in _windows(ts, r0, r1):
            sums = _slab_sums(ts[e0:e1, a:b, c:d].reshape(e1 - e0, -1), g)
            for k, v in sums.items():
                if k not in out:
                    out[k] = np.empty((*v.shape[:-1], r1 - r0, width), dtype=v.dtype)
                out[k][..., a - r0 : b - r0, c:d] = v.reshape(*v.shape[:-1], b - a, d - c)
    return r0, out


def _slab_rows(width: int) -> int:
    """Rows per slab: at most ``_SLAB_PIXELS`` pixels (at least one row)."""
    return max(1, _SLAB_PIXELS // max(width, 1))


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
    """sha1 per epoch of a few evenly spaced rows (read once per process while the file's size
    and modification time stay the same). In a chunked file each sampled row is one chunk wide,
    the windows spread across the width, so the sample reads one chunk per row and epoch block
    instead of whole bands of chunks."""
    from thawdetect.plugins.insar_sbas.mintpy_h5 import open_h5

    st = path.stat()
    memo = (str(path.resolve()), st.st_size, st.st_mtime_ns, tuple(shape))
    if memo in _DIGESTS:
        return list(_DIGESTS[memo])
    n_ep, length, width = shape
    rows = sorted({int(v) for v in np.linspace(0, length - 1, min(length, _SAMPLE_ROWS))})
    with open_h5(path) as f:
        ts = f["timeseries"]
        cw = ts.chunks[2] if ts.chunks else width
        parts = []
        for i, r in enumerate(rows):
            c0 = 0 if cw >= width else (i * (width - cw) // max(len(rows) - 1, 1)) // cw * cw
            parts.append(np.asarray(ts[:, r, c0 : c0 + cw], dtype=np.float32))
        sample = np.ascontiguousarray(np.concatenate(parts, axis=1))
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
    import h5py

    from thawdetect.plugin_api import compute, track

    _, length, width = shape
    rows = max(1, chunk_pixels // max(width, 1))
    with h5py.File(path, "r") as f:
        chunks = f["timeseries"].chunks
    if chunks:  # whole bands of chunk rows: each chunk read by one task
        rows = max(chunks[1], rows // chunks[1] * chunks[1])
    block = dask.delayed(fn, pure=True)
    tasks = [block(str(path), r0, min(r0 + rows, length), *args) for r0 in range(0, length, rows)]
    batch = 2 * max(1, os.cpu_count() or 1)
    batches = range(0, len(tasks), batch)
    for i in track(batches, what, total=len(batches)):
        yield from compute(*tasks[i : i + batch])


def _solve_rows(
    sums: dict[str, NDArray[Any]],
    dates: list[date],
    g: NDArray[np.float64],
    **solve: Any,
) -> Iterator[tuple[int, SeasonalFit]]:
    """:func:`_solve` of a block's sums ``(components, rows, width)`` slab by slab of rows
    (``_SLAB_PIXELS``), so that its temporaries stay a slab's; (first row in the block, fit)."""
    rows, width = sums["q"].shape
    step = _slab_rows(width)
    for a in range(0, rows, step):
        yield a, _solve({k: v[..., a : a + step, :] for k, v in sums.items()}, dates, g=g, **solve)


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
    """The fit of rows ``r0:r1`` (one task: the block's sums, then the per-pixel solve slab by
    slab), as (first row, fit) per slab: the caller copies each into its output once."""
    _, sums = _block_sums(path, r0, r1, 0, shape[0], g)
    solve = {"period_yr": period_yr, "min_epochs": min_epochs, "scale_mm": scale_mm}
    return [(r0 + a, fit) for a, fit in _solve_rows(sums, dates, g, **solve)]


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
    blocks: Iterable[tuple[int, dict[str, NDArray[Any]]]],
    dates: list[date],
    out: dict[str, _RowsFile],
    *,
    period_yr: float,
    min_epochs: int,
    scale_mm: float,
    reference: tuple[dict[str, str], tuple[int, int, int]] | None = None,
) -> None:
    """:func:`_solve` of the grid's sums, given block by block of rows as ``(first row, sums)``,
    slab by slab within each block, each field written into ``out`` as it is solved: memory is
    a block's and a slab's temporaries, whatever the grid (``reference``: the file's attributes
    and shape, for :func:`_fix_reference`)."""
    g = design_matrix(dates, period_yr)
    solve = {"period_yr": period_yr, "min_epochs": min_epochs, "scale_mm": scale_mm}
    for r0, sums in blocks:
        for a, fit in _solve_rows(sums, dates, g, **solve):
            if reference is not None:
                _fix_reference(fit, *reference, row0=r0 + a)
            for name in SeasonalFit.ARRAY_FIELDS:
                out[name].write_rows(r0 + a, getattr(fit, name))


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


class _RowsFile:
    """A ``.npy`` array ``(*components, rows, width)`` written and read by blocks of rows with
    plain file I/O (``os.pwrite``/``os.preadv``): memory is a block's whatever the grid, where a
    memory map being written would keep every page it dirtied (a frame's sums are ~6 GB)."""

    def __init__(self, path: Path, shape: tuple[int, ...] | None = None, dtype: Any = None) -> None:
        self.path = path
        if shape is not None:  # a new file of that shape (sparse until written)
            made = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
            del made  # the header written, the data still holes
        head = np.load(path, mmap_mode="r", allow_pickle=False)
        self.shape, self.dtype, self.offset = head.shape, head.dtype, int(head.offset)
        del head
        if len(self.shape) < 2:
            raise ValueError(f"{path}: not a grid")

    def _spans(self, a: int, b: int) -> Iterator[tuple[int, int]]:
        """(component, byte offset of row ``a``) per component."""
        length, width = self.shape[-2:]
        for k in range(int(np.prod(self.shape[:-2], dtype=np.int64))):
            yield k, self.offset + (k * length + a) * width * self.dtype.itemsize

    def write_rows(self, a: int, block: NDArray[Any]) -> None:
        width = self.shape[-1]
        x = np.ascontiguousarray(block, dtype=self.dtype).reshape(-1, block.shape[-2] * width)
        fd = os.open(self.path, os.O_WRONLY)
        try:
            for k, off in self._spans(a, a + block.shape[-2]):
                view = memoryview(x[k]).cast("B")
                while view:
                    n = os.pwrite(fd, view, off)
                    view, off = view[n:], off + n
        finally:
            os.close(fd)

    def read_rows(self, a: int, b: int) -> NDArray[Any]:
        width = self.shape[-1]
        out = np.empty((*self.shape[:-2], b - a, width), dtype=self.dtype)
        flat = out.reshape(-1, (b - a) * width)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for k, off in self._spans(a, b):
                view = memoryview(flat[k]).cast("B")
                while view:
                    n = os.preadv(fd, [view], off)
                    if n == 0:
                        raise ValueError(f"{self.path}: shorter than its header says")
                    view, off = view[n:], off + n
        finally:
            os.close(fd)
        return out


#: The sums' files: components and dtype of each (q and n are one per pixel).
_SUMS: dict[str, tuple[tuple[int, ...], Any]] = {
    "N": ((len(_IU[0]),), np.float64),
    "r": ((N_PARAMS,), np.float64),
    "q": ((), np.float64),
    "n": ((), np.int32),
}


def _new_sums(folder: Path, length: int, width: int) -> dict[str, _RowsFile]:
    folder.mkdir(parents=True, exist_ok=True)
    return {
        k: _RowsFile(folder / f"{k}.npy", (*lead, length, width), dtype)
        for k, (lead, dtype) in _SUMS.items()
    }


def _load_cache(
    folder: Path, length: int, width: int
) -> tuple[dict[str, _RowsFile], list[str], list[str]] | None:
    """The cached sums (files, read by rows when needed), their dates and digests, or None."""
    if not (folder / "meta.json").exists():
        return None
    try:
        meta = json.loads((folder / "meta.json").read_text())
        files = {k: _RowsFile(folder / f"{k}.npy") for k in _SUMS}
        if any(f.shape[-2:] != (length, width) for f in files.values()):
            raise ValueError("grid changed")
        return files, [str(x) for x in meta["dates"]], [str(x) for x in meta["digests"]]
    except (OSError, ValueError, KeyError, TypeError):
        log.warning("%s: unreadable fit cache, recomputing", folder)
        return None


def _commit_sums(part: Path, folder: Path, dates: list[str], dig: list[str]) -> None:
    """Make the sums written in ``part`` the cache: its meta last (a folder without one is not
    a cache), then the folder swapped in."""
    write_text_atomic(part / "meta.json", json.dumps({"dates": dates, "digests": dig}))
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    os.replace(part, folder)
    shutil.rmtree(old, ignore_errors=True)


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
    """The solved fit kept in ``folder`` for exactly ``stamp``, memory-mapped read-only (the
    cache cannot be changed through it; its pages can be released between steps), or None."""
    try:
        if json.loads((folder / "stamp.json").read_text()) != stamp:
            return None
        arrays = {
            name: np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False)
            for name in SeasonalFit.ARRAY_FIELDS
        }
    except (OSError, ValueError):
        return None
    return SeasonalFit(**arrays, t0=dates[0], period_yr=stamp["period_yr"])


def _solved_parts(folder: Path, length: int, width: int) -> dict[str, _RowsFile]:
    """Files the solve writes into (``<name>.npy.part``), made the fit by :func:`_commit_solved`."""
    folder.mkdir(parents=True, exist_ok=True)
    return {
        name: _RowsFile(
            folder / f"{name}.npy.part",
            (length, width),
            np.int32 if name == "valid_epochs" else np.float64,
        )
        for name in SeasonalFit.ARRAY_FIELDS
    }


def _commit_solved(folder: Path, stamp: dict[str, Any]) -> None:
    """Keep the solved parts for ``stamp``: the stamp goes first (a half-replaced folder has
    none) and last; each array replaces its file atomically (a mapping of the old one stays
    valid)."""
    (folder / "stamp.json").unlink(missing_ok=True)
    for name in SeasonalFit.ARRAY_FIELDS:
        os.replace(folder / f"{name}.npy.part", folder / f"{name}.npy")
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
    scale_mm = _UNIT_TO_MM[unit]
    solve: dict[str, Any] = {"period_yr": period_yr, "min_epochs": min_epochs, "scale_mm": scale_mm}
    if cache_dir is None:
        # nothing to keep between calls: solve block by block, never holding the whole grid's
        # sums (memory is the output and a few blocks)
        fit = _fit_blocks(path, shape, g, dates, chunk_pixels, **solve)
        _fix_reference(fit, attrs, shape)
        note = f"seasonal fit of {shape[0]} epochs"
        return FileFit(fit, dates, grid, attrs, "computed", shape[0], note, "")
    base = Path(cache_dir) / f"fit_{_cache_key(path, period_yr, attrs)}"
    sums_dir, solved_dir = base.with_suffix(".sums"), base.with_suffix(".solved")
    digests = _epoch_digests(path, shape)
    blob = json.dumps([str(path.resolve()), names, digests, unit])
    checksum = hashlib.sha1(blob.encode()).hexdigest()[:16]
    stamp = _solved_stamp(names, digests, period_yr, min_epochs, unit)
    solved = _load_solved(solved_dir, stamp, dates)
    if solved is not None:  # the file unchanged since it was solved: nothing to read
        note = f"seasonal fit of {len(names)} epochs reused (file unchanged)"
        log.info("%s: %s", path, note)
        return FileFit(solved, dates, grid, attrs, "cached", 0, note, checksum)
    n_ep, length, width = shape
    old = _load_cache(sums_dir, length, width)
    status, start, note = "computed", 0, f"seasonal fit of {n_ep} epochs"
    if old is not None:
        _, old_dates, old_dig = old
        k = len(old_dates)
        same_start = names[:k] == old_dates and digests[:k] == old_dig
        if same_start and k == len(names):
            status, start = "cached", k
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
    if status != "computed":
        log.info("%s: %s", path, note)
    # the sums, block by block of rows: read from the cache (unchanged file), or the new epochs
    # read from the file (added to the cached ones when the file grew) and written as they come
    blocks: Iterable[tuple[int, dict[str, NDArray[Any]]]]
    part = sums_dir.with_name(f"{sums_dir.name}.part{os.getpid()}")
    if status == "cached":
        assert old is not None
        step = max(1, chunk_pixels // max(width, 1))
        blocks = (
            (a, {k: f.read_rows(a, min(a + step, length)) for k, f in old[0].items()})
            for a in range(0, length, step)
        )
    else:
        for stale in sums_dir.parent.glob(f"{sums_dir.name}.part*"):  # left by a killed run
            shutil.rmtree(stale, ignore_errors=True)
        new = _new_sums(part, length, width)
        what = f"seasonal fit ({n_ep - start} epochs)"
        read = _row_blocks(_block_sums, path, shape, chunk_pixels, what, start, n_ep, g[start:])

        def written() -> Iterator[tuple[int, dict[str, NDArray[Any]]]]:
            for r0, sums in read:
                if start:
                    assert old is not None
                    r1 = r0 + sums["q"].shape[0]
                    sums = {k: v + old[0][k].read_rows(r0, r1) for k, v in sums.items()}
                for k, v in sums.items():
                    new[k].write_rows(r0, v)
                yield r0, sums

        blocks = written()
    out = _solved_parts(solved_dir, length, width)
    _solve_in_slabs(blocks, dates, out, reference=(attrs, shape), **solve)
    if status != "cached":
        _commit_sums(part, sums_dir, names, digests)
    _commit_solved(solved_dir, stamp)
    trim_memory()  # the read's thread arenas hold ~2 GB at frame scale otherwise
    kept = _load_solved(solved_dir, stamp, dates)
    if kept is None:
        raise InputError(solved_dir, "the seasonal fit just written cannot be read back")
    return FileFit(kept, dates, grid, attrs, status, n_ep - start, note, checksum)


def _fix_reference(
    fit: SeasonalFit, attrs: dict[str, str], shape: tuple[int, int, int], row0: int = 0
) -> None:
    """The reference pixel is zero at every epoch by construction: a valid zero, not no-data
    (``fit`` holds the file's rows from ``row0`` on)."""
    try:
        ry, rx = int(attrs["REF_Y"]), int(attrs["REF_X"])
    except (KeyError, ValueError):
        return
    rows = fit.rate_mm_yr.shape[0]
    if 0 <= ry - row0 < rows and ry < shape[1] and 0 <= rx < shape[2]:
        for name in SeasonalFit.ARRAY_FIELDS:
            getattr(fit, name)[ry - row0, rx] = shape[0] if name == "valid_epochs" else 0.0


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
