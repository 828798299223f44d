"""Shared windowed reads for review evidence: one open raster per file and worker, one read of
the window covering all of a worker's candidates when it is small enough and its chips need most
of its blocks (else per chip: GDAL's block cache then decodes each block the chips touch once,
and blocks between scattered candidates are never read)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: A raster whose window over all of a worker's candidates is smaller is read once ...
SHARED_READ_BYTES = 256 * 2**20
#: ... when the chips touch at least this share of the window's blocks. Scattered candidates
#: read per chip (10 over a 2000² scene decoded all 14 bands of it: 0.9 s of 1.4 s; at 40,
#: 37 ms per candidate per chip against 48 ms shared); dense ones (400) share one read.
SHARED_READ_MIN_BLOCKS = 0.8


def _filled(data: Any) -> NDArray[Any]:
    """A masked read as float32 with NaN where masked."""
    out = np.asarray(data.data, dtype="float32").copy()
    mask = np.ma.getmaskarray(data)  # type: ignore[no-untyped-call]
    out[mask] = np.nan
    return out


def _blocks_touched(
    windows: Sequence[tuple[int, int, int, int]],
    block: tuple[int, int],
    union: tuple[int, int, int, int],
) -> float:
    """The share of the blocks (``block`` = rows, cols) under ``union`` that ``windows`` touch.

    Examples:
        >>> _blocks_touched([(0, 10, 0, 10), (500, 510, 500, 510)], (256, 256), (0, 510, 0, 510))
        0.5
        >>> _blocks_touched([(0, 600, 0, 600)], (256, 256), (0, 600, 0, 600))
        1.0
    """
    bh, bw = max(block[0], 1), max(block[1], 1)
    r0, r1, c0, c1 = union
    rows = range(r0 // bh, (r1 - 1) // bh + 1)
    cols = range(c0 // bw, (c1 - 1) // bw + 1)
    touched: set[tuple[int, int]] = set()
    for a0, a1, b0, b1 in windows:
        a0, a1, b0, b1 = max(a0, r0), min(a1, r1), max(b0, c0), min(b1, c1)
        if a1 <= a0 or b1 <= b0:
            continue
        for by in range(a0 // bh, (a1 - 1) // bh + 1):
            touched.update((by, bx) for bx in range(b0 // bw, (b1 - 1) // bw + 1))
    return len(touched) / max(len(rows) * len(cols), 1)


class _Raster:
    """One open raster; optionally one shared read of the window over many chips."""

    def __init__(self, path: str, bands: Sequence[int]) -> None:
        import rasterio

        self.path = path
        self.bands = list(bands)
        self.ds = rasterio.open(path)
        self.crs = self.ds.crs
        self.crs_key = self.crs.to_wkt() if self.crs is not None else ""
        t = self.ds.transform
        self.t = t
        self.block: NDArray[Any] | None = None
        self.block_off = (0, 0)
        # the last window read: every frame of a multi-band file (a 12-date time-lapse) asks
        # for the same window of one candidate in turn
        self.last: tuple[tuple[int, int, int, int], NDArray[Any]] | None = None

    def window(self, bounds: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
        """Pixel window (row0, row1, col0, col1) covering ``bounds`` (north-up rasters)."""
        t = self.t
        left, bottom, right, top = bounds
        c0 = math.floor((left - t.c) / t.a + 1e-9)
        c1 = math.ceil((right - t.c) / t.a - 1e-9)
        r0 = math.floor((top - t.f) / t.e + 1e-9)
        r1 = math.ceil((bottom - t.f) / t.e - 1e-9)
        return r0, max(r1, r0 + 1), c0, max(c1, c0 + 1)

    def window_bounds(self, win: tuple[int, int, int, int]) -> tuple[float, float, float, float]:
        r0, r1, c0, c1 = win
        t = self.t
        return (t.c + c0 * t.a, t.f + r1 * t.e, t.c + c1 * t.a, t.f + r0 * t.e)

    def share(self, windows: list[tuple[int, int, int, int]]) -> None:
        """Read the union of ``windows`` (clipped to the raster) once, when small enough."""
        if not windows:
            return
        r0 = max(0, min(w[0] for w in windows))
        r1 = min(self.ds.height, max(w[1] for w in windows))
        c0 = max(0, min(w[2] for w in windows))
        c1 = min(self.ds.width, max(w[3] for w in windows))
        if r1 <= r0 or c1 <= c0:
            return
        if (r1 - r0) * (c1 - c0) * len(self.bands) * 4 > SHARED_READ_BYTES:
            return
        if _blocks_touched(windows, self.ds.block_shapes[0], (r0, r1, c0, c1)) < (
            SHARED_READ_MIN_BLOCKS
        ):
            return
        from rasterio.windows import Window

        data = self.ds.read(self.bands, window=Window(c0, r0, c1 - c0, r1 - r0), masked=True)
        self.block = _filled(data)
        self.block_off = (r0, c0)

    def read(
        self, win: tuple[int, int, int, int], bands: Sequence[int] | None = None
    ) -> NDArray[Any]:
        """(bands, rows, cols) float32 with NaN outside the raster or where masked."""
        if self.last is not None and self.last[0] == win:
            out = self.last[1]
        else:
            out = self._read(win)
            self.last = (win, out)
        if bands is None or list(bands) == self.bands:
            return out.copy()  # the caller's own (the kept one may be asked for again)
        return out[[self.bands.index(b) for b in bands]]

    def _read(self, win: tuple[int, int, int, int]) -> NDArray[Any]:
        r0, r1, c0, c1 = win
        out = np.full((len(self.bands), r1 - r0, c1 - c0), np.nan, dtype="float32")
        if self.block is not None:
            src, (br, bc) = self.block, self.block_off
        else:
            rr0, rr1 = max(r0, 0), min(r1, self.ds.height)
            cc0, cc1 = max(c0, 0), min(c1, self.ds.width)
            if rr1 <= rr0 or cc1 <= cc0:
                return out
            from rasterio.windows import Window

            data = self.ds.read(
                self.bands, window=Window(cc0, rr0, cc1 - cc0, rr1 - rr0), masked=True
            )
            src, (br, bc) = _filled(data), (rr0, cc0)
        sr0, sr1 = max(r0, br), min(r1, br + src.shape[1])
        sc0, sc1 = max(c0, bc), min(c1, bc + src.shape[2])
        if sr1 > sr0 and sc1 > sc0:
            out[:, sr0 - r0 : sr1 - r0, sc0 - c0 : sc1 - c0] = src[
                :, sr0 - br : sr1 - br, sc0 - bc : sc1 - bc
            ]
        return out

    def covers(self, bounds: tuple[float, float, float, float]) -> bool:
        left, bottom, right, top = self.ds.bounds
        return not (
            bounds[0] >= right or bounds[2] <= left or bounds[1] >= top or bounds[3] <= bottom
        )

    def close(self) -> None:
        self.ds.close()
