"""onnxruntime inference over large mosaics: sliding window, seamless stitching, polygonizing.

Tiles of ``tile_size_px`` overlap by ``overlap_px``; each tile contributes only its centre
(``tile - overlap`` square, the halo of ``overlap/2`` pixels on each side is cropped), and that
centre is exactly one block of the tiled probability GeoTIFF. So every write is one whole block,
no pixel is predicted without at least ``overlap/2`` pixels of context (mosaic edges are padded
by reflection), and memory depends on the tile size, not on the mosaic size. Polygonizing reads
the probability map block by block and joins polygons across block edges (union-find).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
from rasterio.windows import Window

from thawdetect.core.errors import InputError, MissingDependencyError
from thawdetect.plugins.optical_dl.images import Stretch, read_rgb

if TYPE_CHECKING:
    import geopandas as gpd
    from numpy.typing import NDArray

__all__ = [
    "check_model",
    "open_session",
    "polygonize_probability",
    "predict_array",
    "predict_mosaic",
]

INPUT_NAME = "image"
OUTPUT_NAME = "probability"


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise MissingDependencyError("onnxruntime", "optical", "optical_dl inference") from None
    return onnxruntime


def open_session(onnx_path: str | Path, threads: int = 0) -> Any:
    """Open an onnxruntime CPU session and check that the model fits this pipeline.

    Args:
        onnx_path: the ONNX model file.
        threads: intra-op threads (0 = onnxruntime default, all cores).

    Raises:
        InputError: unreadable model, or inputs/outputs other than (N, 3, H, W) → (N, 1, H, W).
    """
    ort = _ort()
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        msg = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise InputError(onnx_path, f"cannot be loaded as an ONNX model ({msg})") from exc
    check_model(session, onnx_path)
    return session


def check_model(session: Any, onnx_path: str | Path, tile_size_px: int | None = None) -> None:
    """Check an ONNX model takes float (N, 3, H, W) and returns (N, 1, H, W).

    Raises:
        InputError: the model does not match (message says what it expects).
    """
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) < 1:
        raise InputError(
            onnx_path, f"expected 1 input and 1 output, model has {len(inputs)} and {len(outputs)}"
        )
    shape, otype = inputs[0].shape, inputs[0].type
    if otype != "tensor(float)" or len(shape) != 4 or shape[1] != 3:
        raise InputError(
            onnx_path,
            f"input '{inputs[0].name}' is {otype} {shape}; expected float32 (N, 3, H, W) RGB",
        )
    oshape = outputs[0].shape
    if len(oshape) != 4 or oshape[1] != 1:
        raise InputError(onnx_path, f"output is {oshape}; expected (N, 1, H, W) probability")
    fixed = [d for d in shape[2:] if isinstance(d, int)]
    if tile_size_px is not None and fixed and any(d != tile_size_px for d in fixed):
        raise InputError(
            onnx_path,
            f"model takes fixed {shape[2]}×{shape[3]} input, tile_size_px is {tile_size_px}",
        )


def predict_array(session: Any, rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
    """Probability for a batch of 8-bit RGB tiles, shape (N, 3, H, W) → (N, H, W)."""
    x = np.ascontiguousarray(rgb, dtype=np.float32) * np.float32(1 / 255)
    name = session.get_inputs()[0].name
    out = session.run(None, {name: x})[0]
    return out[:, 0].astype(np.float32, copy=False)


def _tiles(width: int, height: int, core: int) -> Iterator[tuple[int, int]]:
    for r in range(0, height, core):
        for c in range(0, width, core):
            yield r, c


def predict_mosaic(
    session: Any,
    mosaic: Path,
    out_path: Path,
    *,
    rgb_bands: tuple[int, int, int],
    stretch: Stretch,
    tile_size_px: int,
    overlap_px: int,
    batch_size: int = 2,
    tags: dict[str, str] | None = None,
) -> Path:
    """Predict a probability map over a whole mosaic, written block by block.

    Args:
        session: from :func:`open_session`.
        mosaic: the mosaic raster (scene or VRT).
        out_path: the probability GeoTIFF to write (float32, 0-1, NaN = nodata, tiled with
            blocks of ``tile_size_px - overlap_px``).
        rgb_bands: 1-based red, green, blue bands.
        stretch: the 16→8-bit stretch.
        tile_size_px: model input size (pixels).
        overlap_px: overlap between tiles (pixels, even).
        batch_size: tiles per onnxruntime call.
        tags: extra raster tags (provenance).

    Returns:
        ``out_path``.
    """
    check_model(session, out_path, tile_size_px)
    core = tile_size_px - overlap_px
    halo = overlap_px // 2
    tmp = out_path.with_name(out_path.stem + ".partial.tif")
    with rasterio.open(mosaic) as src:
        profile = {
            "driver": "GTiff",
            "dtype": "float32",
            "count": 1,
            "nodata": float("nan"),
            "width": src.width,
            "height": src.height,
            "crs": src.crs,
            "transform": src.transform,
            "tiled": True,
            "blockxsize": core,
            "blockysize": core,
            "compress": "deflate",
            "predictor": 3,
            "BIGTIFF": "IF_SAFER",
        }
        width, height = src.width, src.height
    positions = list(_tiles(width, height, core))
    batches = [positions[i : i + batch_size] for i in range(0, len(positions), batch_size)]

    reader = rasterio.open(mosaic)

    def read_batch(
        batch: list[tuple[int, int]],
    ) -> tuple[NDArray[np.uint8], list[NDArray[np.bool_]]]:
        rgbs, valids = [], []
        for r, c in batch:
            rgb, valid = read_rgb(
                reader, Window(c - halo, r - halo, tile_size_px, tile_size_px), rgb_bands, stretch
            )
            rgbs.append(rgb)
            valids.append(valid)
        return np.stack(rgbs), valids

    with (
        reader,
        rasterio.open(tmp, "w", **profile) as dst,
        ThreadPoolExecutor(1) as read_pool,
        ThreadPoolExecutor(1) as write_pool,
    ):

        def write_batch(
            batch: list[tuple[int, int]], prob: NDArray[np.float32], valids: list[NDArray[np.bool_]]
        ) -> None:
            for (r, c), p, v in zip(batch, prob, valids, strict=True):
                h, w = min(core, height - r), min(core, width - c)
                block = p[halo : halo + h, halo : halo + w].copy()
                block[~v[halo : halo + h, halo : halo + w]] = np.nan
                dst.write(block[None], window=Window(c, r, w, h))

        pending = read_pool.submit(read_batch, batches[0]) if batches else None
        writes = []
        for i, batch in enumerate(batches):
            rgb, valids = pending.result()  # type: ignore[union-attr]
            if i + 1 < len(batches):
                pending = read_pool.submit(read_batch, batches[i + 1])
            prob = predict_array(session, rgb)
            writes.append(write_pool.submit(write_batch, batch, prob, valids))
            if len(writes) > 2:
                writes.pop(0).result()
        for w in writes:
            w.result()
        dst.update_tags(**(tags or {}), STRETCH=stretch.to_json(), UNITS="probability 0-1")
    os.replace(tmp, out_path)
    return out_path


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, a: int) -> int:
        root = a
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while a != root:
            self.parent[a], a = root, self.parent.get(a, a)
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def polygonize_probability(
    prob_path: Path, threshold: float = 0.5, min_area_ha: float = 0.0
) -> gpd.GeoDataFrame:
    """Probability map → mask → polygons (4-connected) → minimum mapping unit filter.

    Works block by block; regions cut by block edges are joined (union-find on the labels of
    touching edge pixels), so the result equals polygonizing the whole mask at once.

    Args:
        prob_path: probability GeoTIFF (0-1, NaN nodata).
        threshold: probability at or above which a pixel is in the mask.
        min_area_ha: drop polygons smaller than this (ha; 0.05 ha ≈ 55 pixels at 3 m).

    Returns:
        Candidates in the raster's CRS with ``score`` (= mean probability),
        ``mean_probability``, ``max_probability``, ``area_m2`` and polygon geometry.
    """
    import geopandas as gpd
    import shapely
    from rasterio.features import shapes
    from scipy import ndimage
    from shapely.geometry import shape

    with rasterio.open(prob_path) as src:
        crs, transform = src.crs, src.transform
        pixel_m2 = abs(transform.a * transform.e)
        width = src.width
        uf = _UnionFind()
        sums: list[NDArray] = []
        counts: list[NDArray] = []
        maxs: list[NDArray] = []
        pieces: list[tuple[int, Any]] = []
        next_id = 1
        above = np.zeros(width, np.int64)  # global labels of the row above the current block row
        windows = sorted((w for _, w in src.block_windows(1)), key=lambda w: (w.row_off, w.col_off))
        left_col: NDArray | None = None
        new_above = above.copy()
        current_row = -1
        for win in windows:
            if win.row_off != current_row:
                above, new_above = new_above, new_above.copy()
                current_row, left_col = win.row_off, None
            prob = src.read(1, window=win)
            mask = np.nan_to_num(prob, nan=0.0) >= threshold
            labels, n = ndimage.label(mask)
            c0, c1 = int(win.col_off), int(win.col_off + win.width)
            if n == 0:
                new_above[c0:c1] = 0
                left_col = np.zeros(int(win.height), np.int64)
                continue
            glob_labels = np.where(labels > 0, labels.astype(np.int64) + next_id - 1, 0)
            idx = np.arange(1, n + 1)
            sums.append(ndimage.sum_labels(prob, labels, idx))
            counts.append(np.bincount(labels.ravel(), minlength=n + 1)[1:])
            maxs.append(ndimage.maximum(prob, labels, idx))
            btransform = src.window_transform(win)
            for geom, value in shapes(labels.astype(np.int32), mask=mask, transform=btransform):
                pieces.append((int(value) + next_id - 1, geom))
            for edge_a, edge_b in ((above[c0:c1], glob_labels[0]), (left_col, glob_labels[:, 0])):
                if edge_a is None:
                    continue
                both = (edge_a > 0) & (edge_b > 0)
                if both.any():
                    for a, b in np.unique(np.stack([edge_a[both], edge_b[both]], 1), axis=0):
                        uf.union(int(a), int(b))
            new_above[c0:c1] = glob_labels[-1]
            left_col = glob_labels[:, -1]
            next_id += n
    columns = ["score", "mean_probability", "max_probability", "area_m2"]
    if not pieces:
        return gpd.GeoDataFrame({c: [] for c in columns}, geometry=[], crs=crs)
    s, cnt, mx = np.concatenate(sums), np.concatenate(counts), np.concatenate(maxs)
    roots = np.array([uf.find(i) for i in range(1, next_id)])
    uniq, inverse = np.unique(roots, return_inverse=True)
    tot_sum = np.bincount(inverse, weights=s)
    tot_cnt = np.bincount(inverse, weights=cnt)
    tot_max = np.full(len(uniq), -np.inf)
    np.maximum.at(tot_max, inverse, mx)
    area = tot_cnt * pixel_m2
    keep = area >= min_area_ha * 1e4
    groups: dict[int, list[Any]] = {}
    for gid, geom in pieces:
        k = int(inverse[gid - 1])
        if keep[k]:
            groups.setdefault(k, []).append(shape(geom))
    order = sorted(groups)
    geoms = [g[0] if len(g) == 1 else shapely.union_all(g) for g in (groups[k] for k in order)]
    mean = tot_sum[order] / tot_cnt[order]
    return gpd.GeoDataFrame(
        {
            "score": mean.astype(float),
            "mean_probability": mean.astype(float),
            "max_probability": tot_max[order].astype(float),
            "area_m2": area[order].astype(float),
        },
        geometry=geoms,
        crs=crs,
    )


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically (temporary file + rename)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)
