"""Block windows with a halo for 3×3/5×5 kernels on large rasters (dolphin ``iter_blocks``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from rasterio.windows import Window

__all__ = ["BlockIndices", "iter_blocks"]


@dataclass(frozen=True)
class BlockIndices:
    """One processing block.

    Attributes:
        out: the window this block writes (no halo), in raster pixels.
        read: the window to read: ``out`` grown by the halo and clipped to the raster.
        pad: (top, bottom, left, right) NaN padding that restores the halo outside the raster, so
            border cells see the same neighbourhood as in a whole-array computation.
        halo_px: halo width in pixels.
    """

    out: Window
    read: Window
    pad: tuple[int, int, int, int]
    halo_px: int

    @property
    def inner(self) -> tuple[slice, slice]:
        """Slices that crop the padded block back to ``out``."""
        h = self.halo_px
        return (
            slice(h, h + int(self.out.height)),
            slice(h, h + int(self.out.width)),
        )


def iter_blocks(height: int, width: int, block_px: int, halo_px: int) -> Iterator[BlockIndices]:
    """Row-major blocks of ``block_px`` × ``block_px`` cells covering a raster, with a halo.

    Args:
        height: raster rows.
        width: raster columns.
        block_px: block edge length in pixels (the last row/column of blocks may be smaller).
        halo_px: neighbours needed on each side (1 for a 3×3 kernel, 2 for 5×5).

    Examples:
        >>> [b.out.width for b in iter_blocks(5, 5, 3, 1)]
        [3, 2, 3, 2]
        >>> next(iter_blocks(5, 5, 3, 1)).pad
        (1, 0, 1, 0)
    """
    for r0 in range(0, height, block_px):
        r1 = min(r0 + block_px, height)
        for c0 in range(0, width, block_px):
            c1 = min(c0 + block_px, width)
            rr0, rr1 = max(r0 - halo_px, 0), min(r1 + halo_px, height)
            cc0, cc1 = max(c0 - halo_px, 0), min(c1 + halo_px, width)
            pad = (
                halo_px - (r0 - rr0),
                halo_px - (rr1 - r1),
                halo_px - (c0 - cc0),
                halo_px - (cc1 - c1),
            )
            yield BlockIndices(
                out=Window(c0, r0, c1 - c0, r1 - r0),
                read=Window(cc0, rr0, cc1 - cc0, rr1 - rr0),
                pad=pad,
                halo_px=halo_px,
            )
