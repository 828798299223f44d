"""Training data: label chips around known polygons, background chips, spatial-block split.

Each positive or negative polygon's bounding box, grown by ``buffer_m`` (300 m by default), is
covered by chips of ``chip_size_px``; labels are 1 inside positives, 0 elsewhere (negatives are
look-alikes the model must learn to call background) and 255 (ignored) on nodata. Random
background chips add ordinary terrain. Chips are split into training and validation by spatial
blocks of ``block_size_m``, and training chips that overlap a validation chip are dropped, so no
pixel is seen by both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import rasterio
from rasterio.features import rasterize
from rasterio.windows import Window

from thawdetect.plugin_api import EmptyInventoryError
from thawdetect.plugins.optical_dl.images import Stretch, read_rgb, windows_overlap

if TYPE_CHECKING:
    import geopandas as gpd
    from numpy.typing import NDArray

__all__ = ["IGNORE", "ChipSet", "make_chips", "rasterize_labels"]

#: Label value of pixels the loss ignores (nodata).
IGNORE = 255


@dataclass
class ChipSet:
    """Chips ready for training.

    Attributes:
        images: (N, 3, S, S) uint8 RGB.
        labels: (N, S, S) uint8: 1 RTS, 0 background, 255 ignore.
        validation: (N,) bool, True for held-out chips.
        windows: the chips' windows in the mosaic.
        kind: (N,) "positive", "negative" or "background" (what the chip was cut around).
    """

    images: NDArray[np.uint8]
    labels: NDArray[np.uint8]
    validation: NDArray[np.bool_]
    windows: list[Window]
    kind: NDArray[np.str_]

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, validation: bool) -> ChipSet:
        """The training (False) or validation (True) part."""
        sel = self.validation == validation
        return ChipSet(
            self.images[sel],
            self.labels[sel],
            self.validation[sel],
            [w for w, s in zip(self.windows, sel, strict=True) if s],
            self.kind[sel],
        )


def rasterize_labels(
    positives: gpd.GeoDataFrame, window: Window, transform: rasterio.Affine
) -> NDArray[np.uint8]:
    """Burn positive polygons (1) into a chip window (0 elsewhere)."""
    from rasterio.windows import bounds as window_bounds
    from rasterio.windows import transform as window_transform

    shape = (int(window.height), int(window.width))
    if len(positives) == 0:
        return np.zeros(shape, np.uint8)
    left, bottom, right, top = window_bounds(window, transform)
    hits = positives.sindex.query(_box(left, bottom, right, top))
    geoms = list(positives.geometry.iloc[hits])
    if not geoms:
        return np.zeros(shape, np.uint8)
    return rasterize(
        ((g, 1) for g in geoms),
        out_shape=shape,
        transform=window_transform(window, transform),
        fill=0,
        dtype="uint8",
    )


def _box(left: float, bottom: float, right: float, top: float):
    from shapely.geometry import box

    return box(left, bottom, right, top)


def _windows_around(
    gdf: gpd.GeoDataFrame,
    transform: rasterio.Affine,
    width: int,
    height: int,
    chip: int,
    buffer_m: float,
) -> list[tuple[int, int]]:
    res = abs(transform.a)
    buf = buffer_m / res
    out: set[tuple[int, int]] = set()
    inv = ~transform
    for left, bottom, right, top in gdf.geometry.bounds.to_numpy():
        c0, r0 = inv * (left, top)
        c1, r1 = inv * (right, bottom)
        c0, r0, c1, r1 = c0 - buf, r0 - buf, c1 + buf, r1 + buf
        if c1 < 0 or r1 < 0 or c0 > width or r0 > height:
            continue
        ncol = max(1, int(np.ceil((c1 - c0) / chip)))
        nrow = max(1, int(np.ceil((r1 - r0) / chip)))
        cc = (c0 + c1) / 2 - ncol * chip / 2
        rc = (r0 + r1) / 2 - nrow * chip / 2
        for i in range(nrow):
            for j in range(ncol):
                r = int(np.clip(round(rc + i * chip), 0, max(0, height - chip)))
                c = int(np.clip(round(cc + j * chip), 0, max(0, width - chip)))
                out.add((r, c))
    return sorted(out)


def make_chips(
    mosaic: Path,
    positives: gpd.GeoDataFrame,
    negatives: gpd.GeoDataFrame,
    *,
    rgb_bands: tuple[int, int, int],
    stretch: Stretch,
    chip_size_px: int,
    buffer_m: float,
    background_chips: int,
    block_size_m: float,
    validation_fraction: float,
    seed: int,
) -> ChipSet:
    """Cut labelled chips from a mosaic (polygons are reprojected to its CRS).

    Raises:
        EmptyInventoryError: no positive polygon overlaps the mosaic (nothing to learn from).
    """
    rng = np.random.default_rng(seed)
    with rasterio.open(mosaic) as src:
        transform, width, height, crs = src.transform, src.width, src.height, src.crs
        pos = positives.to_crs(crs) if len(positives) else positives
        neg = negatives.to_crs(crs) if len(negatives) else negatives
        pos_win = _windows_around(pos, transform, width, height, chip_size_px, buffer_m)
        if not pos_win:
            raise EmptyInventoryError(
                mosaic,
                f"no training positive overlaps the mosaic ({len(positives)} positives given)",
            )
        neg_win = _windows_around(neg, transform, width, height, chip_size_px, buffer_m)
        neg_win = [w for w in neg_win if w not in set(pos_win)]
        bg = [
            (
                int(rng.integers(0, max(1, height - chip_size_px))),
                int(rng.integers(0, max(1, width - chip_size_px))),
            )
            for _ in range(background_chips)
        ]
        kinds = ["positive"] * len(pos_win) + ["negative"] * len(neg_win) + ["background"] * len(bg)
        images, labels, windows, kept_kind = [], [], [], []
        for (r, c), kind in zip(pos_win + neg_win + bg, kinds, strict=True):
            win = Window(c, r, chip_size_px, chip_size_px)
            rgb, valid = read_rgb(src, win, rgb_bands, stretch)
            if valid.mean() < 0.5:
                continue
            lab = rasterize_labels(pos, win, transform)
            lab[~valid] = IGNORE
            images.append(rgb)
            labels.append(lab)
            windows.append(win)
            kept_kind.append(kind)
    if not images:
        raise EmptyInventoryError(mosaic, "every training chip is mostly nodata")
    # spatial blocks by chip centre; validation blocks drawn at random
    res = abs(transform.a)
    centres = np.array([(w.col_off + w.width / 2, w.row_off + w.height / 2) for w in windows]) * res
    block = np.floor(centres / block_size_m).astype(np.int64)
    keys = block[:, 0] * 1_000_003 + block[:, 1]
    uniq = np.unique(keys)
    n_val = round(len(uniq) * validation_fraction)
    n_val = min(n_val, len(uniq) - 1)
    val_blocks = (
        rng.choice(uniq, size=n_val, replace=False) if n_val > 0 else np.array([], np.int64)
    )
    validation = np.isin(keys, val_blocks)
    keep = np.ones(len(windows), bool)
    for i in np.flatnonzero(~validation):
        for j in np.flatnonzero(validation):
            if windows_overlap(windows[i], windows[j]):
                keep[i] = False
                break
    if not keep[~validation].any():
        keep[:] = True
        validation[:] = False
    sel = np.flatnonzero(keep)
    return ChipSet(
        np.stack(images)[sel],
        np.stack(labels)[sel],
        validation[sel],
        [windows[i] for i in sel],
        np.array(kept_kind)[sel],
    )
