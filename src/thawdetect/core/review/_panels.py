"""Drawing a review panel with numpy and Pillow: header, chip with outline and scale bar, colour
bar of a value map, hillshade of the DEM, and the cached text stamps the series plot shares."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from thawdetect.core.review._styles import _Style

#: Long side of a chip in pixels (frames of every resolution are resampled to one grid): 384 px
#: shows a 10-pixel slump of a 30 m InSAR grid as ~40 screen pixels with 300 m of ground around
#: it, and two chips still sit side by side in the review page's evidence column.
CHIP_SIZE_PX = 384
OUTLINE_RGB = (255, 40, 40)
#: Drawn under the outline, so it stays visible on a red (RdBu) or yellow (viridis) ramp.
HALO_RGB = (0, 0, 0)
#: Behind no-data cells when there is no DEM for a hillshade (light grey, never black).
NODATA_RGB = (214, 214, 214)
_HEADER_PX = 38
_FOOTER_PX = 30


def hillshade(z: NDArray[Any], res_x: float, res_y: float) -> NDArray[Any]:
    """Hillshade 0-1 of elevations ``z`` (sun from 315°, 45° high); NaN where z is NaN.

    Examples:
        >>> hs = hillshade(np.tile(np.arange(5.0), (5, 1)), 1.0, 1.0)
        >>> bool(np.allclose(hs, hs[0, 0]))
        True
    """
    dz_drow, dz_dcol = np.gradient(z.astype("float64"), abs(res_y), abs(res_x))
    dzdx, dzdn = dz_dcol, -dz_drow  # east, north (rows run south)
    norm = np.sqrt(dzdx**2 + dzdn**2 + 1.0)
    az, alt = np.deg2rad(315.0), np.deg2rad(45.0)
    sun = (np.sin(az) * np.cos(alt), np.cos(az) * np.cos(alt), np.sin(alt))
    shaded = (-dzdx * sun[0] - dzdn * sun[1] + sun[2]) / norm
    out: NDArray[Any] = np.clip(shaded, 0, 1)
    return out


_FONTS: dict[int, Any] = {}


def _font(size: int = 11) -> Any:
    """Pillow's built-in scalable font (loaded once per size and process)."""
    if size not in _FONTS:
        from PIL import ImageFont

        _FONTS[size] = ImageFont.load_default(size=size)
    return _FONTS[size]


_TEXT: dict[tuple[str, int], tuple[Any, float]] = {}


def _text_mask(text: str, size: int) -> tuple[Any, float]:
    """(mask, advance width) of a text at a font size, rendered once per process."""
    key = (text, size)
    if key not in _TEXT:
        from PIL import Image, ImageDraw

        font = _font(size)
        length = float(font.getlength(text))
        mask = Image.new("L", (max(1, math.ceil(length) + 2), size + 6), 0)
        ImageDraw.Draw(mask).text((0, 0), text, fill=255, font=font)
        if len(_TEXT) > 8192:
            _TEXT.clear()
        _TEXT[key] = (mask, length)
    return _TEXT[key]


def _stamp(img: Any, xy: tuple[float, float], text: str, size: int, fill: Any) -> None:
    """Paste a cached text rendering (tick labels, scale bars repeat on every chip and plot)."""
    mask, _ = _text_mask(text, size)
    x, y = round(xy[0]), round(xy[1])
    img.paste(fill, (x, y, x + mask.width, y + mask.height), mask)


def _fit(draw: Any, text: str, font: Any, width: float) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def _fmt(v: float) -> str:
    return f"{v:+g}" if v != 0 else "0"


def _scale_bar(draw: Any, w: int, h: int, m_per_px: float, font: Any, img: Any = None) -> None:
    """A 1-2-5 scale bar of about a quarter of the chip width, lower left."""
    if not np.isfinite(m_per_px) or m_per_px <= 0:
        return
    target = w / 4 * m_per_px
    k = 10 ** math.floor(math.log10(target))
    length_m = max(m for m in (k, 2 * k, 5 * k) if m <= target) if target >= k else k
    px = max(1, round(length_m / m_per_px))
    text = f"{length_m / 1000:g} km" if length_m >= 1000 else f"{length_m:g} m"
    x0, y0 = 6, h - 8
    tw = _text_mask(text, 11)[1]
    draw.rectangle((x0 - 3, y0 - 16, x0 + max(px, tw) + 3, y0 + 4), fill=(255, 255, 255))
    draw.rectangle((x0, y0 - 2, x0 + px, y0 + 1), fill=(0, 0, 0))
    if img is not None and isinstance(draw, _Offset):
        _stamp(img, (x0 + draw.ox, y0 - 15 + draw.oy), text, 11, (0, 0, 0))
    else:
        draw.text((x0, y0 - 15), text, fill=(0, 0, 0), font=font)


def _footer(st: _Style, width: int) -> Any:
    """The colour bar strip of a value map: drawn once per style and width, then pasted."""
    from PIL import Image, ImageDraw

    key = ("footer", width)
    if key in st.cache:
        return st.cache[key]
    assert st.vrange is not None and st.lut is not None
    img = Image.new("RGB", (width, _FOOTER_PX), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = _font(11)
    x0, y0, bw = 8, 4, width - 16
    xs = np.linspace(0, 255, max(bw, 2)).round().astype(int)
    strip = np.ascontiguousarray(np.repeat(st.lut[xs][None], 8, axis=0))
    img.paste(Image.fromarray(strip, "RGB"), (x0, y0))
    draw.rectangle((x0, y0, x0 + bw - 1, y0 + 7), outline=(0, 0, 0))
    lo, hi = st.vrange
    draw.text((x0, y0 + 9), _fmt(lo), fill=(0, 0, 0), font=font)
    right = _fmt(hi)
    draw.text(
        (x0 + bw - draw.textlength(right, font=font), y0 + 9), right, fill=(0, 0, 0), font=font
    )
    kind = f"fixed ±{hi:g}" if st.symmetric else f"fixed {lo:g} to {hi:g}"
    if st.symmetric:
        draw.line((x0 + bw // 2, y0 - 2, x0 + bw // 2, y0 + 9), fill=(0, 0, 0))
    mid = f"{st.units}  ({kind})"
    mw = draw.textlength(mid, font=font)
    draw.text((x0 + (bw - mw) / 2, y0 + 9), mid, fill=(0, 0, 0), font=font)
    st.cache[key] = img
    return img


def _header(st: _Style, title: str, width: int) -> Any:
    """Two lines, drawn once per style and width: what the frame shows in words with its units
    ("LOS rate (mm/yr)", ``_styles._title``), then its date(s) once and its source, if the frame
    names one (never a file name)."""
    from PIL import Image, ImageDraw

    title = st.title or title
    key = ("header", title, width)
    if key not in st.cache:
        img = Image.new("RGB", (width, _HEADER_PX), (255, 255, 255))
        draw = ImageDraw.Draw(img)
        big, font = _font(14), _font(11)
        draw.text((5, 2), _fit(draw, title, big, width - 10), fill=(0, 0, 0), font=big)
        second = " · ".join(t for t in (st.date, st.source) if t)
        draw.text((5, 21), _fit(draw, second, font, width - 10), fill=(70, 70, 70), font=font)
        st.cache[key] = img
    return st.cache[key]


def _panel(
    chip: Any, st: _Style, m_per_px: float, outline_px: list[NDArray[Any]], title: str
) -> Any:
    """Header + chip (outline, scale bar) + footer (colour bar) as one RGB image."""
    from PIL import Image, ImageDraw

    w, h = chip.size
    footer = _FOOTER_PX if st.kind == "value" else 0
    width = max(w, CHIP_SIZE_PX)
    img = Image.new("RGB", (width, _HEADER_PX + h + footer), (255, 255, 255))
    ox, oy = (width - w) // 2, _HEADER_PX
    img.paste(chip, (ox, oy))
    draw = ImageDraw.Draw(img)
    font = _font(11)
    img.paste(_header(st, title, width), (0, 0))
    for ring in outline_px:
        pts = [(float(x) + ox, float(y) + oy) for x, y in ring]
        if len(pts) >= 2:
            draw.line(pts, fill=HALO_RGB, width=4, joint="curve")
    for ring in outline_px:
        pts = [(float(x) + ox, float(y) + oy) for x, y in ring]
        if len(pts) >= 2:
            draw.line(pts, fill=OUTLINE_RGB, width=2, joint="curve")
    _scale_bar(_Offset(draw, ox, oy), w, h, m_per_px, font, img)
    if footer:
        img.paste(_footer(st, width), (0, _HEADER_PX + h))
    return img


class _Offset:
    """An ImageDraw that adds an offset (draw in chip coordinates on the panel)."""

    def __init__(self, draw: Any, ox: int, oy: int) -> None:
        self.d, self.ox, self.oy = draw, ox, oy

    def rectangle(self, xy: tuple[float, ...], **kw: Any) -> None:
        x0, y0, x1, y1 = xy
        self.d.rectangle((x0 + self.ox, y0 + self.oy, x1 + self.ox, y1 + self.oy), **kw)

    def text(self, xy: tuple[float, float], text: str, **kw: Any) -> None:
        self.d.text((xy[0] + self.ox, xy[1] + self.oy), text, **kw)

    def textlength(self, text: str, **kw: Any) -> float:
        return float(self.d.textlength(text, **kw))


def _resize_index(n_in: int, n_out: int) -> NDArray[Any]:
    return np.minimum((np.arange(n_out) + 0.5) * n_in / n_out, n_in - 1).astype(np.intp)


def _stretch_rgb(data: NDArray[Any], vrange: tuple[float, float] | None) -> NDArray[Any]:
    out = np.zeros(data.shape, dtype=np.uint8)
    for b in range(data.shape[0]):
        band = data[b]
        ok = np.isfinite(band)
        if not ok.any():
            continue
        lo, hi = vrange if vrange is not None else np.percentile(band[ok], [2, 98])
        if hi <= lo:
            hi = lo + 1.0
        scaled = np.clip((np.nan_to_num(band, nan=lo) - lo) / (hi - lo), 0, 1) * 255
        out[b] = scaled.round().astype(np.uint8)
    return out
