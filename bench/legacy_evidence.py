"""Review evidence: time-lapse chips and deformation plots for every candidate.

Reviewers of the QTEC inventory (Xia et al. 2022) judged each candidate on 2016-2020 time-lapse
chips covering its bounding box plus a 300 m buffer; the Qilian study (Wei et al.) showed each
candidate's InSAR time series with its fitted trend + seasonal model. This module makes both, for
any detector:

* Detectors hand over images through :meth:`thawdetect.Detector.image_frames` (a list of
  :class:`~thawdetect.ImageFrame`: label, raster path, bands, stretch), and series through the
  ``series_json`` column (:class:`~thawdetect.TimeSeries`).
  Third-party detectors use the same interface and get the same evidence.
* For each candidate and frame, a chip is cut with a windowed rasterio read in the raster's own
  CRS (the buffered bounding box is transformed into it), resampled to a common size so frames
  line up, stretched to 8 bits, and the candidate's outline is drawn on it (red).
* Per candidate: one PNG per frame, an animated GIF of all frames, and ``series.png`` when the
  candidate has a series.

Layout: ``OUT_DIR/<candidate_id>/frame_<nn>_<label>.png``, ``chips.gif``, ``series.png``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from thawdetect.core.errors import InputError
from thawdetect.core.plugin_api.detector import ImageFrame, TimeSeries

__all__ = ["CHIP_SIZE_PX", "build_evidence", "cut_chip", "plot_series"]

#: Long side of a chip in pixels (frames of every resolution are resampled to one grid).
CHIP_SIZE_PX = 256
OUTLINE_RGB = (255, 40, 40)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "x"


def _stretch(data: np.ndarray, valid: np.ndarray, value_range: tuple[float, float] | None) -> Any:
    """Scale each band to 0-255 (fixed range, or the chip's 2-98 % percentiles)."""
    out = np.zeros(data.shape, dtype=np.uint8)
    for b in range(data.shape[0]):
        band = data[b].astype("float64")
        ok = valid & np.isfinite(band)
        if not ok.any():
            continue
        if value_range is not None:
            lo, hi = value_range
        else:
            lo, hi = np.percentile(band[ok], [2, 98])
        if hi <= lo:
            hi = lo + 1.0
        scaled = np.clip((band - lo) / (hi - lo), 0, 1) * 255
        out[b] = np.where(ok, np.round(scaled), 0).astype(np.uint8)
    return out


def cut_chip(
    frame: ImageFrame,
    geometry: Any,
    crs: Any,
    *,
    buffer_m: float = 300.0,
    size_px: int = CHIP_SIZE_PX,
) -> np.ndarray | None:
    """Cut one RGB chip (bounding box + buffer) from a frame, with the outline drawn.

    Args:
        frame: the image.
        geometry: the candidate polygon, in ``crs``.
        crs: CRS of ``geometry`` (projected, metres).
        buffer_m: buffer around the bounding box in metres.
        size_px: long side of the chip in pixels.

    Returns:
        uint8 array (rows, cols, 3), or None when the frame does not cover the box.

    Raises:
        InputError: the raster cannot be opened or lacks a band.
    """
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.features import rasterize
    from rasterio.transform import from_bounds
    from rasterio.warp import transform_bounds, transform_geom
    from rasterio.windows import from_bounds as window_from_bounds

    minx, miny, maxx, maxy = geometry.bounds
    box_m = (minx - buffer_m, miny - buffer_m, maxx + buffer_m, maxy + buffer_m)
    try:
        src = rasterio.open(frame.path)
    except Exception as exc:
        raise InputError(frame.path, "cannot be opened as a raster for review chips") from exc
    with src:
        bad = [b for b in frame.bands if not 1 <= b <= src.count]
        if bad:
            raise InputError(frame.path, f"has {src.count} bands; frame asks for bands {bad}")
        if src.crs is None:
            raise InputError(frame.path, "raster has no CRS; cannot place review chips")
        bounds = transform_bounds(crs, src.crs, *box_m, densify_pts=21)
        left, bottom, right, top = src.bounds
        if bounds[0] >= right or bounds[2] <= left or bounds[1] >= top or bounds[3] <= bottom:
            return None
        aspect = (bounds[2] - bounds[0]) / max(bounds[3] - bounds[1], 1e-12)
        if aspect >= 1:
            w, h = size_px, max(1, round(size_px / aspect))
        else:
            w, h = max(1, round(size_px * aspect)), size_px
        window = window_from_bounds(*bounds, transform=src.transform)
        data = src.read(
            list(frame.bands),
            window=window,
            out_shape=(len(frame.bands), h, w),
            boundless=True,
            masked=True,
            resampling=Resampling.bilinear,
        )
        valid = ~np.ma.getmaskarray(data).any(axis=0)
        arr = np.ma.getdata(data)
        chip_transform = from_bounds(*bounds, w, h)
        outline = transform_geom(crs, src.crs, geometry.boundary.__geo_interface__)
    rgb = _stretch(arr, valid, frame.value_range)
    if rgb.shape[0] == 1:
        rgb = np.repeat(rgb, 3, axis=0)
    elif rgb.shape[0] == 2:
        rgb = np.concatenate([rgb, rgb[:1]], axis=0)
    rgb = np.moveaxis(rgb[:3], 0, -1).copy()
    width = max(1, math.ceil(max(h, w) / 128))
    line = rasterize([(outline, 1)], out_shape=(h, w), transform=chip_transform, all_touched=True)
    if width > 1:
        from scipy.ndimage import binary_dilation

        line = binary_dilation(line.astype(bool), iterations=width - 1)
    rgb[line.astype(bool)] = OUTLINE_RGB
    return rgb


def _label(img: Any, text: str) -> None:
    from PIL import ImageDraw

    draw = ImageDraw.Draw(img)
    x0, y0, x1, y1 = draw.textbbox((3, 3), text)
    draw.rectangle((x0 - 2, y0 - 2, x1 + 2, y1 + 2), fill=(0, 0, 0))
    draw.text((3, 3), text, fill=(255, 255, 255))


def _series_model(ts: TimeSeries, dates: Sequence[date]) -> np.ndarray | None:
    if not ts.fit:
        return None
    t0 = ts.fit_t0 or ts.dates[0]
    t = np.array([(d - t0).days / 365.25 for d in dates])
    f = ts.fit
    return (
        f.get("a_mm", 0.0)
        + f.get("b_mm_yr", 0.0) * t
        + f.get("c_mm", 0.0) * np.cos(2 * np.pi * t)
        + f.get("d_mm", 0.0) * np.sin(2 * np.pi * t)
    )


def plot_series(ts: TimeSeries, out_path: Path, *, title: str = "") -> Path:
    """PNG plot of a displacement series with its fitted trend + seasonal model.

    The model is y = a + b·t + c·cos(2πt) + d·sin(2πt), t in years since ``fit_t0`` (Wei et al.),
    drawn daily; the linear trend a + b·t is drawn dashed.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.2), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(ts.dates, ts.values_mm, "o", ms=3.5, color="#1f4e9c", label="observed")
    if ts.fit and ts.dates:
        n_days = (ts.dates[-1] - ts.dates[0]).days
        dense = [ts.dates[0] + timedelta(days=i) for i in range(n_days + 1)]
        model = _series_model(ts, dense)
        trend_fit = TimeSeries(
            dates=ts.dates,
            values_mm=ts.values_mm,
            fit_t0=ts.fit_t0,
            fit={"a_mm": ts.fit.get("a_mm", 0.0), "b_mm_yr": ts.fit.get("b_mm_yr", 0.0)},
        )
        trend = _series_model(trend_fit, dense)
        amp = math.hypot(ts.fit.get("c_mm", 0.0), ts.fit.get("d_mm", 0.0))
        ax.plot(
            dense,
            model,
            "-",
            color="#d62728",
            lw=1.5,
            label=f"trend + seasonal (amplitude {amp:.1f} mm)",
        )
        ax.plot(
            dense,
            trend,
            "--",
            color="#444444",
            lw=1.0,
            label=f"trend {ts.fit.get('b_mm_yr', 0.0):.1f} mm/yr",
        )
    ax.set_ylabel(ts.label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    if title:
        ax.set_title(title, fontsize=9)
    fig.autofmt_xdate()
    fig.tight_layout()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, format="png")
    return out_path


def build_evidence(
    candidates: gpd.GeoDataFrame,
    frames: Sequence[ImageFrame],
    out_dir: Path,
    *,
    buffer_m: float = 300.0,
) -> pd.DataFrame:
    """Make review chips, a time-lapse GIF and a series plot for every candidate.

    Args:
        candidates: candidates with ``candidate_id``, polygon geometry (projected CRS, metres) and
            optionally ``series_json``.
        frames: dated images, in display order (usually by date).
        out_dir: directory receiving one sub-directory per candidate.
        buffer_m: buffer around each candidate's bounding box in metres (Xia et al.: 300 m).

    Returns:
        One row per candidate: ``candidate_id``, ``n_frames`` (frames covering it),
        ``frame_paths`` (list of PNG paths), ``animation_path`` (GIF or None),
        ``series_plot_path`` (PNG or None).

    Raises:
        InputError: a frame raster cannot be read or lacks a band; candidates without a CRS.
    """
    from PIL import Image

    out_dir = Path(out_dir)
    if buffer_m < 0:
        raise InputError(out_dir, f"buffer_m must be ≥ 0, got {buffer_m}")
    if len(candidates) and candidates.crs is None:
        raise InputError(out_dir, "candidates have no CRS; cannot cut review chips")
    cands = candidates
    if len(cands) and not cands.crs.is_projected:
        cands = cands.to_crs(cands.estimate_utm_crs())
    rows = []
    for _, cand in cands.iterrows():
        cid = str(cand["candidate_id"])
        cdir = out_dir / _safe(cid)
        cdir.mkdir(parents=True, exist_ok=True)
        images = []
        paths: list[str] = []
        for i, frame in enumerate(frames):
            chip = cut_chip(frame, cand.geometry, cands.crs, buffer_m=buffer_m)
            if chip is None:
                continue
            img = Image.fromarray(chip, mode="RGB")
            _label(img, frame.label)
            path = cdir / f"frame_{i + 1:02d}_{_safe(frame.label)}.png"
            img.save(path)
            images.append(img)
            paths.append(str(path))
        gif = None
        if images:
            size = images[0].size
            seq = [im if im.size == size else im.resize(size) for im in images]
            gif = cdir / "chips.gif"
            seq[0].save(gif, save_all=True, append_images=seq[1:], duration=800, loop=0)
        plot = None
        text = cand.get("series_json") if "series_json" in cands.columns else None
        if isinstance(text, str) and text.strip():
            try:
                ts = TimeSeries.from_json(text)
            except (ValueError, KeyError, TypeError) as exc:
                raise InputError(
                    out_dir, f"candidate {cid}: series_json is not valid ({exc})"
                ) from exc
            plot = plot_series(ts, cdir / "series.png", title=f"candidate {cid}")
        rows.append(
            {
                "candidate_id": cid,
                "n_frames": len(paths),
                "frame_paths": paths,
                "animation_path": None if gif is None else str(gif),
                "series_plot_path": None if plot is None else str(plot),
            }
        )
    cols = ["candidate_id", "n_frames", "frame_paths", "animation_path", "series_plot_path"]
    return pd.DataFrame(rows, columns=cols)
