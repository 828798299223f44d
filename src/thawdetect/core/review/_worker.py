"""One worker process's evidence drawing: open rasters, chips of every frame, GIFs and the series
plot of each candidate it is given (see :func:`thawdetect.core.review.evidence.build_evidence`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from thawdetect.core.errors import InputError
from thawdetect.core.plugin_api.detector import TimeSeries
from thawdetect.core.review._animation import group_palette, write_gif
from thawdetect.core.review._panels import (
    CHIP_SIZE_PX,
    NODATA_RGB,
    _panel,
    _resize_index,
    _stretch_rgb,
    hillshade,
)
from thawdetect.core.review._reading import _Raster
from thawdetect.core.review._series import _SeriesFigure
from thawdetect.core.review._styles import _lut, _safe, _Style

#: A value-map time-lapse with more frames gets a GIF and one PNG (its last frame), not a PNG
#: each (optical frames always get their PNG: each date is evidence on its own).
MAX_PNG_PER_GROUP = 4


@dataclass
class _Job:
    out_dir: str
    styles: list[_Style]
    dem: str | None
    buffer_m: float
    crs: str
    size_px: int = CHIP_SIZE_PX
    series_title: str = ""
    group_sizes: dict[str, int] = field(default_factory=dict)
    animated: dict[str, bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        dates: dict[str, set[str]] = {}
        for st in self.styles:
            g = st.group or "chips"
            self.group_sizes[g] = self.group_sizes.get(g, 0) + 1
            dates.setdefault(g, set()).add(st.date)
        # a GIF only where the frames are a time-lapse (several dates, or undated frames)
        for g, n in self.group_sizes.items():
            self.animated[g] = n >= 2 and (len(dates[g]) >= 2 or dates[g] == {""})
        last: dict[str, _Style] = {}
        for st in self.styles:
            last[st.group or "chips"] = st
        for st in last.values():
            st.last_in_group = True


class _Worker:
    """Everything one process keeps between candidates: open rasters, LUTs, one series figure."""

    def __init__(self, job: _Job, boxes: list[tuple[float, float, float, float]]) -> None:
        from pyproj import CRS

        self.job = job
        self.crs = CRS.from_user_input(job.crs)
        self.same_cache: dict[str, bool] = {}
        self.rasters: dict[str, _Raster] = {}
        self.transformers: dict[str, Any] = {}
        # one reader per file with every band any frame shows: a pixel-interleaved multi-band
        # file is decoded once, not once per band
        bands: dict[str, list[int]] = {}
        for st in job.styles:
            if st.kind == "value" and st.lut is None:
                st.lut = _lut(st.colormap)
            bands.setdefault(st.path, [])
            bands[st.path] += [b for b in st.bands if b not in bands[st.path]]
        for path, bs in bands.items():
            self.rasters[path] = _Raster(path, sorted(bs))
        self.dem = _Raster(job.dem, (1,)) if job.dem else None
        for r in [*self.rasters.values(), *([self.dem] if self.dem else [])]:
            wins = [r.window(self._to(r, b)) for b in boxes]
            r.share(wins)
        self.figure: Any = None
        self.shade_cache: dict[Any, Any] = {}
        self.outline_cache: dict[Any, Any] = {}
        self.palettes: dict[str, Any] = {}

    def _transformer(self, crs: Any) -> Any:
        from pyproj import Transformer

        key = crs.to_wkt()
        if key not in self.transformers:
            self.transformers[key] = Transformer.from_crs(self.crs, crs, always_xy=True)
        return self.transformers[key]

    def _same(self, crs: Any) -> bool:
        """Whether ``crs`` is the working CRS (compared once per CRS: it is not cheap)."""
        key = crs.to_wkt() if not isinstance(crs, str) else crs
        if key not in self.same_cache:
            from pyproj import CRS

            self.same_cache[key] = CRS.from_user_input(key) == self.crs
        return self.same_cache[key]

    def _to(
        self, r: _Raster, box: tuple[float, float, float, float]
    ) -> tuple[float, float, float, float]:
        if self._same(r.crs_key):
            return box
        a, b, c, d = self._transformer(r.crs).transform_bounds(*box, densify_pts=21)
        return float(a), float(b), float(c), float(d)

    def close(self) -> None:
        for r in self.rasters.values():
            r.close()
        if self.dem:
            self.dem.close()

    def _hillshade(self, r: _Raster, bounds: tuple[float, ...], shape: tuple[int, int]) -> Any:
        """Hillshade (0-1) of the DEM over ``bounds`` on a ``shape`` grid (nearest), or None."""
        if self.dem is None:
            return None
        key = (r.crs_key, bounds, shape)
        if key in self.shade_cache:
            return self.shade_cache[key]
        same = r.crs_key == self.dem.crs_key
        dbounds = bounds if same else self._dem_bounds(r.crs, bounds)
        left, bottom, right, top = dbounds
        win = self.dem.window((left, bottom, right, top))
        z = self.dem.read(win)[0]
        hs = None
        if np.isfinite(z).any():
            z = np.where(np.isfinite(z), z, np.nanmean(z))
            if min(z.shape) > 1:
                hs = hillshade(z, self.dem.t.a, self.dem.t.e)
            else:
                hs = np.full(z.shape, 0.7)
            hs = hs[_resize_index(hs.shape[0], shape[0])][:, _resize_index(hs.shape[1], shape[1])]
        self.shade_cache = {key: hs} if len(self.shade_cache) > 8 else self.shade_cache
        self.shade_cache[key] = hs
        return hs

    def _dem_bounds(self, crs: Any, bounds: tuple[float, ...]) -> tuple[float, ...]:
        from rasterio.warp import transform_bounds

        assert self.dem is not None
        return tuple(transform_bounds(crs, self.dem.crs, *bounds, densify_pts=21))

    def chip(
        self, st: _Style, geometry: Any, box: tuple[float, float, float, float], m_per_px: float
    ) -> Any:
        from PIL import Image

        r = self.rasters[st.path]
        bounds = self._to(r, box)
        if not r.covers(bounds):
            return None
        win = r.window(bounds)
        data = r.read(win, st.bands)
        wb = r.window_bounds(win)
        h0, w0 = data.shape[1:]
        size = self.job.size_px
        # the chip grid is the box itself (not the raster's pixels): frames of every resolution
        # line up; the window image is resampled onto it (Pillow's resize with a source box)
        bw, bh = bounds[2] - bounds[0], bounds[3] - bounds[1]
        if bw >= bh:
            w, h = size, max(1, round(size * bh / bw))
        else:
            w, h = max(1, round(size * bw / bh)), size
        src_box = (
            (bounds[0] - wb[0]) / (wb[2] - wb[0]) * w0,
            (wb[3] - bounds[3]) / (wb[3] - wb[1]) * h0,
            (bounds[2] - wb[0]) / (wb[2] - wb[0]) * w0,
            (wb[3] - bounds[1]) / (wb[3] - wb[1]) * h0,
        )
        if st.kind == "value":
            assert st.vrange is not None and st.lut is not None
            lo, hi = st.vrange
            v = data[0]
            valid = np.isfinite(v)
            idx = np.clip((np.nan_to_num(v, nan=lo) - lo) * (255.0 / (hi - lo or 1.0)), 0, 255)
            rgb = st.lut[(idx + 0.5).astype(np.uint8)]
            hs = self._hillshade(r, wb, (h0, w0))
            # valid cells keep the colour bar's colours exactly; no-data cells show the relief
            if hs is None:
                rgb[~valid] = NODATA_RGB
            else:
                grey = (60 + 170 * hs).round().astype(np.uint8)
                rgb[~valid] = np.repeat(grey[~valid][:, None], 3, axis=1)
            resample = Image.Resampling.NEAREST
        else:
            rgb8 = _stretch_rgb(data, st.vrange if st.fixed else None)
            if rgb8.shape[0] == 1:
                rgb8 = np.repeat(rgb8, 3, axis=0)
            elif rgb8.shape[0] == 2:
                rgb8 = np.concatenate([rgb8, rgb8[:1]], axis=0)
            rgb = np.moveaxis(rgb8[:3], 0, -1)
            rgb[~np.isfinite(data).all(axis=0)] = NODATA_RGB
            big = max(h0, w0) > size
            resample = Image.Resampling.BILINEAR if big else Image.Resampling.NEAREST
        chip = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB")
        chip = chip.resize((w, h), resample, box=src_box)
        rings = self._outline_px(geometry, r, bounds, w, h)
        mpp = bw / w if r.crs.is_projected else m_per_px
        title = st.label if not st.units or st.units in st.label else f"{st.label} ({st.units})"
        if st.kind == "rgb":  # say what an image frame shows: its bands
            bands = ",".join(str(b) for b in st.bands)
            title = f"{st.label} · {'bands' if len(st.bands) > 1 else 'band'} {bands}"
        return _panel(chip, st, mpp, rings, title)

    def _outline_px(
        self, geometry: Any, r: _Raster, wb: tuple[float, ...], w: int, h: int
    ) -> list[NDArray[Any]]:
        import shapely

        geom = geometry
        if not self._same(r.crs_key):
            key = (id(geometry), r.crs_key)
            if key not in self.outline_cache:
                t = self._transformer(r.crs)
                self.outline_cache = {
                    key: shapely.transform(geometry, lambda xy: np.column_stack(t.transform(*xy.T)))
                }
            geom = self.outline_cache[key]
        left, bottom, right, top = wb
        rings = []
        polys = getattr(geom, "geoms", [geom])
        for p in polys:
            for ring in [p.exterior, *p.interiors]:
                xy = np.asarray(ring.coords)[:, :2]
                px = (xy[:, 0] - left) / (right - left) * w
                py = (top - xy[:, 1]) / (top - bottom) * h
                rings.append(np.column_stack([px, py]))
        return rings

    def _palette(self, group: str) -> Any:
        """The group's fixed GIF palette (see :func:`group_palette`), made once per worker."""
        if group not in self.palettes:
            self.palettes[group] = group_palette(self.job.styles, group)
        return self.palettes[group]

    def series(self, ts: TimeSeries, out_path: Path, title: str) -> Path:
        if self.figure is None:
            self.figure = _SeriesFigure()
        path: Path = self.figure.draw(ts, out_path, title)
        return path

    def candidate(self, cid: str, geometry: Any, series_json: Any) -> dict[str, Any]:
        job = self.job
        cdir = Path(job.out_dir) / _safe(cid)
        cdir.mkdir(parents=True, exist_ok=True)
        minx, miny, maxx, maxy = geometry.bounds
        b = job.buffer_m
        box = (minx - b, miny - b, maxx + b, maxy + b)
        m_per_px = max(box[2] - box[0], box[3] - box[1]) / job.size_px
        paths: list[str] = []
        groups: dict[str, list[Any]] = {}
        for st in job.styles:
            img = self.chip(st, geometry, box, m_per_px)
            if img is None:
                continue
            g = st.group or "chips"
            groups.setdefault(g, []).append(img)
            # a long time-lapse lives in its GIF; its last frame (the state now) is a PNG too
            short = job.group_sizes[g] <= MAX_PNG_PER_GROUP
            if short or st.kind == "rgb" or st.last_in_group:
                path = cdir / f"frame_{st.index + 1:02d}_{st.file_label}.png"
                img.save(path, compress_level=1)
                paths.append(str(path))
        gifs: dict[str, str] = {}
        for name, images in groups.items():
            if not job.animated[name]:
                continue
            gif = write_gif(images, self._palette(name), cdir / f"{_safe(name)}.gif")
            gifs[name] = str(gif)
        plot = None
        if isinstance(series_json, str) and series_json.strip():
            try:
                ts = TimeSeries.from_json(series_json)
            except (ValueError, KeyError, TypeError) as exc:
                raise InputError(
                    job.out_dir, f"candidate {cid}: series_json is not valid ({exc})"
                ) from exc
            title = f"candidate {cid}" + (f" · {job.series_title}" if job.series_title else "")
            plot = str(self.series(ts, cdir / "series.png", title))
        main = max(gifs, key=lambda g: len(groups[g])) if gifs else None
        return {
            "candidate_id": cid,
            "n_frames": sum(len(v) for v in groups.values()),
            "frame_paths": paths,
            "animation_path": gifs[main] if main else None,
            "animation_paths": gifs,
            "series_plot_path": plot,
        }
