"""onnxruntime inference over large mosaics: sliding window, seamless stitching, polygonizing.

Tiles of ``tile_size_px`` overlap by ``overlap_px``; predictions are blended with linear ramps
across the overlaps (DeepLabv3+'s image-pooling branch makes each tile's output depend on the
whole tile, so cropping alone leaves small steps at tile edges; blending removes them). Rows of
tiles are processed within vertical bands and written as whole blocks of the tiled probability
GeoTIFF, so memory depends on the tile size and band width, not on the mosaic size. Mosaic edges
are padded by reflection. Polygonizing reads
the probability map block by block and joins polygons across block edges (union-find).

The module (~580 lines) keeps tiling, blending, the Dask block tasks and polygonizing together
because they share one tile geometry (offsets, ramps, block edges); splitting them would spread
that arithmetic over several files.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window

from thawdetect.plugin_api import InputError, MissingDependencyError, write_text_atomic
from thawdetect.plugins.optical_dl.images import (
    GDAL_CACHE_MB,
    Stretch,
    gdal_cache_bounded,
    read_rgb,
)

if TYPE_CHECKING:
    import geopandas as gpd
    from numpy.typing import NDArray

__all__ = [
    "GDAL_CACHE_MB",
    "cached_session",
    "check_model",
    "gdal_cache_bounded",
    "open_session",
    "plan_blocks",
    "polygonize_probability",
    "predict_array",
    "predict_mosaic",
]

INPUT_NAME = "image"
OUTPUT_NAME = "probability"


_F = TypeVar("_F", bound=Callable[..., Any])


def _bounded_gdal_cache(fn: _F) -> _F:
    """Run ``fn`` with GDAL's block cache at :data:`GDAL_CACHE_MB` (in whichever process or
    worker runs it)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with gdal_cache_bounded():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


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


def _ramp(tile: int, overlap: int) -> NDArray[np.float32]:
    """1-D blending weights: 0 over the outer quarter of each overlap, then a linear ramp.

    Tiles at the right and bottom edges of the mosaic use weight 1 on their outer side.

    Neighbouring tiles' weights sum to exactly 1 in their overlap (a partition of unity); the
    outer quarter (the pixels with the least context) gets no weight at all.

    Examples:
        >>> _ramp(12, 4).tolist()
        [0.0, 0.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.75, 0.25, 0.0]
    """
    w = np.ones(tile, np.float32)
    if overlap:
        margin = overlap // 4
        n = overlap - 2 * margin
        up = np.zeros(overlap, np.float32)
        up[margin : overlap - margin] = (np.arange(n, dtype=np.float32) + 0.5) / n
        up[overlap - margin :] = 1.0
        w[:overlap] = up
        w[tile - overlap :] = np.minimum(w[tile - overlap :], 1.0 - up)
    return w


_sessions: dict[tuple[str, int], Any] = {}
_sessions_lock = threading.Lock()


def cached_session(onnx_path: str | Path, threads: int = 0) -> Any:
    """An onnxruntime session for ``onnx_path``, opened once per process (Dask workers reuse it)."""
    key = (str(Path(onnx_path).resolve()), int(threads))
    with _sessions_lock:
        session = _sessions.get(key)
        if session is None:
            session = _sessions[key] = open_session(onnx_path, threads)
    return session


@dataclass(frozen=True)
class _Plan:
    """Geometry of a blended tiling: tile size, overlap, step, raster and block grid sizes."""

    size: int
    ov: int
    height: int
    width: int

    @property
    def step(self) -> int:
        return self.size - self.ov

    @property
    def nbr(self) -> int:
        return -(-self.height // self.step)

    @property
    def nbc(self) -> int:
        return -(-self.width // self.step)


def plan_blocks(
    height: int, width: int, step: int, band_width_px: int, band_height_px: int | None
) -> list[tuple[int, int, int, int]]:
    """Blocks ``(b0, b1, r0, r1)`` of output blocks (columns, rows; ``step`` units), one task each.

    Examples:
        >>> plan_blocks(100, 100, 40, 80, None)
        [(0, 2, 0, 3), (2, 3, 0, 3)]
        >>> plan_blocks(100, 50, 40, 80, 40)
        [(0, 2, 0, 1), (0, 2, 1, 2), (0, 2, 2, 3)]
    """
    nbr, nbc = -(-height // step), -(-width // step)
    per_c = max(1, band_width_px // step)
    per_r = nbr if band_height_px is None else max(1, band_height_px // step)
    return [
        (b0, min(b0 + per_c, nbc), r0, min(r0 + per_r, nbr))
        for b0 in range(0, nbc, per_c)
        for r0 in range(0, nbr, per_r)
    ]


@_bounded_gdal_cache
def _predict_block(
    model_path: str,
    mosaic: str,
    part_path: str,
    block: tuple[int, int, int, int],
    plan: _Plan,
    *,
    rgb_bands: tuple[int, int, int],
    stretch: Stretch,
    batch_size: int,
    threads: int,
    profile: dict[str, Any],
    progress: str | None = None,
) -> tuple[str, tuple[int, int, int, int]]:
    """One Dask task: the blended probability of output blocks ``block`` into ``part_path``.

    Opens the mosaic and the model by path (any worker can run it); processes tile rows ``r0``
    to ``r1`` (the next tile row feeds the last block row's overlap) over tile columns ``b0`` to
    ``b1``, in exactly the order of a whole-mosaic pass, so the pixels are bitwise those of a
    single-task run. Returns ``part_path`` and ``block``.
    """
    from thawdetect.plugin_api import task_threads, track

    b0, b1, r0, r1 = block
    size, ov, step = plan.size, plan.ov, plan.step
    height, width, nbr, nbc = plan.height, plan.width, plan.nbr, plan.nbc
    session = cached_session(model_path, task_threads(threads))
    ramp = _ramp(size, ov)
    ramp_last = ramp.copy()  # the last tile row/column has nothing to blend with beyond the edge
    ramp_last[size - ov :] = 1.0
    cols = list(range(b0, min(b1 + 1, nbc)))
    rows = list(range(r0, min(r1 + 1, nbr)))
    band_w = (b1 - b0) * step
    row_off, col_off = r0 * step, b0 * step
    out_h, out_w = min(r1 * step, height) - row_off, min(b1 * step, width) - col_off

    reader = rasterio.open(mosaic)

    def read_row(k: int) -> tuple[NDArray[np.uint8], NDArray[np.bool_]]:
        rgbs, valids = [], []
        for col in cols:
            win = Window(col * step - ov, k * step - ov, size, size)
            rgb, valid = read_rgb(reader, win, rgb_bands, stretch)
            rgbs.append(rgb)
            valids.append(valid)
        return np.stack(rgbs), np.stack(valids)

    part_profile = {
        **profile,
        "width": out_w,
        "height": out_h,
        "transform": profile["transform"] * Affine.translation(col_off, row_off),
    }
    with (
        reader,
        rasterio.open(part_path, "w", **part_profile) as dst,
        ThreadPoolExecutor(1) as read_pool,
        ThreadPoolExecutor(1) as write_pool,
    ):

        def write_strip(row0: int, prob: NDArray[np.float32]) -> None:
            h = min(step, height - row0)
            w = min(prob.shape[1], out_w)
            dst.write(prob[None, :h, :w], window=Window(0, row0 - row_off, w, h))

        writes: list[Any] = []
        # buffer rows [(k-1)S, (k+1)S), columns [b0 S, b1 S)
        acc = np.zeros((2 * step, band_w), np.float32)
        wsum = np.zeros_like(acc)
        valid_acc = np.zeros(acc.shape, bool)
        pending = read_pool.submit(read_row, rows[0])
        steps = rows if progress is None else track(rows, progress, total=len(rows))
        for i, k in enumerate(steps):
            rgb, valids = pending.result()
            if i + 1 < len(rows):
                pending = read_pool.submit(read_row, rows[i + 1])
            prob = np.concatenate(
                [
                    predict_array(session, rgb[j : j + batch_size])
                    for j in range(0, len(rgb), batch_size)
                ]
            )
            r0_buf = step - ov  # tile's first row in the buffer
            row_w = ramp_last if k == nbr - 1 else ramp
            for col, p, v in zip(cols, prob, valids, strict=True):
                weight = row_w[:, None] * (ramp_last if col == nbc - 1 else ramp)[None, :]
                c0 = col * step - ov - b0 * step
                lo, hi = max(0, c0), min(band_w, c0 + size)
                sl = (slice(r0_buf, r0_buf + size), slice(lo, hi))
                tl = slice(lo - c0, hi - c0)
                acc[sl] += p[:, tl] * weight[:, tl]
                wsum[sl] += weight[:, tl]
                valid_acc[sl] |= v[:, tl]
            finished = [k - 1] if k > r0 else []
            if k == nbr - 1 and k < r1:
                finished.append(k)
            for row in finished:
                part = slice(0, step) if row == k - 1 else slice(step, 2 * step)
                with np.errstate(invalid="ignore", divide="ignore"):
                    out = acc[part] / wsum[part]
                out[~valid_acc[part]] = np.nan
                writes.append(write_pool.submit(write_strip, row * step, out))
            # shift the buffer up by one block row
            acc[:step], acc[step:] = acc[step:], 0
            wsum[:step], wsum[step:] = wsum[step:], 0
            valid_acc[:step], valid_acc[step:] = valid_acc[step:], False
            if len(writes) > 4:
                writes.pop(0).result()
        for w in writes:
            w.result()
    return part_path, block


@_bounded_gdal_cache
def predict_mosaic(
    model: str | Path | Any,
    mosaic: Path,
    out_path: Path,
    *,
    rgb_bands: tuple[int, int, int],
    stretch: Stretch,
    tile_size_px: int,
    overlap_px: int,
    batch_size: int = 2,
    band_width_px: int = 8192,
    band_height_px: int | None = None,
    threads: int = 0,
    tags: dict[str, str] | None = None,
) -> Path:
    """Predict a probability map over a whole mosaic, blended across tile overlaps, block-wise.

    Tile (k, l) covers rows ``[kS - O, (k+1)S)`` and columns ``[lS - O, (l+1)S)`` with
    ``S = tile - overlap`` and ``O = overlap``; predictions are blended with linear ramps over the
    overlaps (weights sum to 1), so tile edges leave no seam. Output blocks are ``S × S``.

    The mosaic is cut into blocks of tiles (``band_width_px`` wide, ``band_height_px`` high),
    each one Dask task (``dask.delayed``) run by :func:`thawdetect.core.compute.compute` on the
    scheduler in force (``--scheduler`` / ``compute.scheduler``). A task opens the mosaic and the
    ONNX model by path, streams one row of tiles at a time (memory depends on the tile size and
    band width, not on the mosaic size) and writes its own uncompressed part file; the parts are
    copied into the compressed output here (a single block is written straight into it). Each
    block also computes the one tile row/column after it that feeds its last overlap, so the
    pixels equal those of a one-block run exactly, whatever the partition or scheduler.

    With the local ``threads``/``synchronous`` schedulers blocks run one after another (each
    already uses every core inside onnxruntime) and ``band_height_px`` None means the whole
    height; with ``processes`` or a cluster, None means ``band_width_px``, so blocks spread
    over the workers, each using its worker's threads.

    Args:
        model: the ONNX model path (or a session from :func:`open_session`, whose model path
            is used by workers and which local tasks reuse).
        mosaic: the mosaic raster (scene or VRT).
        out_path: the probability GeoTIFF to write (float32, 0-1, NaN = nodata, tiled).
        rgb_bands: 1-based red, green, blue bands.
        stretch: the 16→8-bit stretch.
        tile_size_px: model input size (pixels).
        overlap_px: overlap between tiles (pixels, at most half the tile).
        batch_size: tiles per onnxruntime call.
        band_width_px: width of the blocks (pixels).
        band_height_px: height of the blocks (pixels; None: see above).
        threads: onnxruntime intra-op threads per task (0 = all cores; on a cluster worker,
            the worker's thread count).
        tags: extra raster tags (provenance).

    Returns:
        ``out_path``.
    """
    import shutil
    import tempfile

    import dask

    from thawdetect.plugin_api import compute, current_scheduler

    if isinstance(model, (str, Path)):
        model_path = Path(model)
        session = cached_session(model_path, threads)
    else:  # an open session: workers reopen its file; local tasks reuse it
        session = model
        model_path = Path(getattr(session, "_model_path", ""))
        with _sessions_lock:
            _sessions.setdefault((str(model_path.resolve()), int(threads)), session)
    check_model(session, model_path, tile_size_px)
    size, ov = tile_size_px, overlap_px
    step = size - ov
    if ov > step:
        raise ValueError(f"overlap_px {ov} must not exceed half of tile_size_px {size}")
    with rasterio.open(mosaic) as src:
        profile: dict[str, Any] = {
            "driver": "GTiff",
            "dtype": "float32",
            "count": 1,
            "nodata": float("nan"),
            "width": src.width,
            "height": src.height,
            "crs": src.crs,
            "transform": src.transform,
            "tiled": True,
            "blockxsize": step,
            "blockysize": step,
            "BIGTIFF": "IF_SAFER",
        }
        width, height = src.width, src.height
    final_profile = {**profile, "compress": "deflate", "predictor": 3, "num_threads": "ALL_CPUS"}
    plan = _Plan(size, ov, height, width)
    spec = current_scheduler()
    local = spec in ("threads", "synchronous")
    if band_height_px is None and not local:
        band_height_px = band_width_px
    blocks = plan_blocks(height, width, step, band_width_px, band_height_px)
    task_default = 1 if spec == "processes" else threads
    tmp = out_path.with_name(out_path.stem + ".partial.tif")
    parts_dir = Path(tempfile.mkdtemp(prefix=".infer-", dir=out_path.parent))
    single = len(blocks) == 1
    try:
        tasks = [
            dask.delayed(_predict_block, pure=False)(
                str(model_path),
                str(mosaic),
                str(tmp) if single else str(parts_dir / f"block_{i:05d}.tif"),
                block,
                plan,
                rgb_bands=rgb_bands,
                stretch=stretch,
                batch_size=batch_size,
                threads=task_default,
                profile=final_profile if single else profile,
                progress="inference tile rows" if single and local else None,
            )
            for i, block in enumerate(blocks)
        ]
        done = compute(
            *tasks,
            scheduler="synchronous" if local else None,
            description=None if single and local else "inference blocks",
        )
        if not single:
            with rasterio.open(tmp, "w", **final_profile) as dst:
                for part_path, (b0, _, r0, _) in done:
                    with rasterio.open(part_path) as part:
                        for r in range(0, part.height, step):
                            h = min(step, part.height - r)
                            data = part.read(1, window=Window(0, r, part.width, h))
                            dst.write(
                                data, 1, window=Window(b0 * step, r0 * step + r, part.width, h)
                            )
                    os.remove(part_path)
        with rasterio.open(tmp, "r+") as dst:
            dst.update_tags(**(tags or {}), STRETCH=stretch.to_json(), UNITS="probability 0-1")
        from thawdetect.plugin_api import to_cog

        to_cog(tmp, out_path)  # tiled, with overviews (the review page's tile server reads them)
    finally:
        tmp.unlink(missing_ok=True)
        shutil.rmtree(parts_dir, ignore_errors=True)
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


def _run_labels(edge: NDArray[Any], offset: int) -> NDArray[np.int64]:
    """Run-wide labels of a block's edge row or column (0 = background stays 0)."""
    return np.where(edge > 0, edge.astype(np.int64) + offset, 0)


def _polygon(geom: dict[str, Any]) -> Any:
    """A GeoJSON-like polygon from ``rasterio.features.shapes`` as a shapely Polygon: the same
    coordinates as ``shapely.geometry.shape``, without its per-vertex Python loop."""
    import shapely

    shell, *holes = (np.asarray(ring, dtype=np.float64) for ring in geom["coordinates"])
    return shapely.polygons(shell, holes=[shapely.linearrings(h) for h in holes] or None)


@_bounded_gdal_cache
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
            offset = next_id - 1  # this block's labels + offset = run-wide labels
            # per-region sum, count and maximum over the masked pixels only (ndimage.maximum
            # sorts the whole block: most of this function's time on a busy map)
            lab, val = labels[mask], prob[mask].astype(np.float64)
            sums.append(np.bincount(lab, weights=val, minlength=n + 1)[1:])
            counts.append(np.bincount(lab, minlength=n + 1)[1:])
            block_max = np.full(n + 1, -np.inf)
            np.maximum.at(block_max, lab, val)
            maxs.append(block_max[1:])
            btransform = src.window_transform(win)
            for geom, value in shapes(
                labels.astype(np.int32, copy=False), mask=mask, transform=btransform
            ):
                pieces.append((int(value) + offset, geom))
            for edge_a, edge_b in (
                (above[c0:c1], _run_labels(labels[0], offset)),
                (left_col, _run_labels(labels[:, 0], offset)),
            ):
                if edge_a is None:
                    continue
                both = (edge_a > 0) & (edge_b > 0)
                if both.any():
                    for a, b in np.unique(np.stack([edge_a[both], edge_b[both]], 1), axis=0):
                        uf.union(int(a), int(b))
            new_above[c0:c1] = _run_labels(labels[-1], offset)
            left_col = _run_labels(labels[:, -1], offset)
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
            groups.setdefault(k, []).append(_polygon(geom))
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
    write_text_atomic(path, json.dumps(data, indent=2))
