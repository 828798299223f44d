"""The series plot of a candidate (displacement, fitted trend + seasonal model), drawn with
Pillow."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from thawdetect.core.plugin_api.detector import TimeSeries
from thawdetect.core.review._panels import _fit, _font, _stamp, _text_mask


def _series_model(ts: TimeSeries, dates: Sequence[date]) -> NDArray[Any] | None:
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


def _axis_label(label: str) -> list[str]:
    """An axis label as lines short enough for the plot's height (split at its comma)."""
    if len(label) > 28 and ", " in label:
        head, tail = label.split(", ", 1)
        return [head + ",", tail]
    return [label]


def series_legend(ts: TimeSeries) -> list[str]:
    """Legend entries of the series plot: observed, model (peak-to-peak A), trend.

    A = 2·sqrt(c² + d²), the peak-to-peak seasonal amplitude (MintPy's annualAmplitude is half).

    Examples:
        >>> from datetime import date
        >>> ts = TimeSeries([date(2020, 1, 1)], [0.0], {"b_mm_yr": -5.0, "c_mm": 3.0, "d_mm": 4.0})
        >>> series_legend(ts)[1]
        'trend + seasonal, A = 10.0 mm peak-to-peak'
    """
    out = ["observed"]
    if ts.fit:
        amp_pp = 2.0 * math.hypot(ts.fit.get("c_mm", 0.0), ts.fit.get("d_mm", 0.0))
        out.append(f"trend + seasonal, A = {amp_pp:.1f} mm peak-to-peak")
        out.append(f"trend {ts.fit.get('b_mm_yr', 0.0):.1f} mm/yr")
    return out


def _nice_step(span: float, n: int = 5) -> float:
    raw = span / max(n, 1)
    k = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    return next(m * k for m in (1, 2, 2.5, 5, 10) if m * k >= raw)


_BLUE, _RED, _GREY = (31, 78, 156), (214, 39, 40), (68, 68, 68)


class _SeriesFigure:
    """The series plot drawn with Pillow (a few ms; no matplotlib figure per candidate).

    640 × 320 px: observed displacement (dots), the fitted trend + seasonal model (red), the
    linear trend (dashed), year-month ticks, a legend with A = 2·sqrt(c² + d²), the y label with
    its units, and a title with the candidate, the source and the date span.
    """

    W, H = 640, 320
    L, R, T, B = 78, 12, 26, 44

    def draw(self, ts: TimeSeries, out_path: Path, title: str) -> Path:
        from PIL import Image, ImageDraw

        img = Image.new("RGB", (self.W, self.H), (255, 255, 255))
        d = ImageDraw.Draw(img)
        font = _font(12)
        x0, y0, x1, y1 = self.L, self.T, self.W - self.R, self.H - self.B
        t = np.array([dd.toordinal() for dd in ts.dates], dtype=float)
        y = np.asarray(ts.values_mm, dtype=float)
        dense_t = model = trend = None
        if ts.fit and len(t):
            dense = [ts.dates[0] + timedelta(days=i) for i in range(0, int(t[-1] - t[0]) + 1, 3)]
            dense_t = np.array([dd.toordinal() for dd in dense], dtype=float)
            model = _series_model(ts, dense)
            trend_fit = TimeSeries(
                ts.dates,
                ts.values_mm,
                fit_t0=ts.fit_t0,
                fit={"a_mm": ts.fit.get("a_mm", 0.0), "b_mm_yr": ts.fit.get("b_mm_yr", 0.0)},
            )
            trend = _series_model(trend_fit, dense)
        vals = [v for v in (y, model, trend) if v is not None and np.isfinite(v).any()]
        allv = np.concatenate([v[np.isfinite(v)] for v in vals]) if vals else np.array([0.0])
        lo, hi = float(allv.min()), float(allv.max())
        if hi - lo < 1e-6:
            lo, hi = lo - 1, hi + 1
        pad = 0.06 * (hi - lo)
        lo, hi = lo - pad, hi + pad
        tlo, thi = (t.min(), t.max()) if len(t) else (0.0, 1.0)
        if thi - tlo < 1:
            thi = tlo + 1
        tpad = 0.02 * (thi - tlo)
        tlo, thi = tlo - tpad, thi + tpad

        def px(tt: NDArray[Any], vv: NDArray[Any]) -> list[tuple[float, float]]:
            xs = x0 + (tt - tlo) / (thi - tlo) * (x1 - x0)
            ys = y1 - (vv - lo) / (hi - lo) * (y1 - y0)
            ok = np.isfinite(ys)
            return list(zip(xs[ok].tolist(), ys[ok].tolist(), strict=True))

        # grid and y ticks
        step = _nice_step(hi - lo)
        for v in np.arange(math.ceil(lo / step) * step, hi, step).tolist():
            yy = y1 - (v - lo) / (hi - lo) * (y1 - y0)
            d.line((x0, yy, x1, yy), fill=(225, 225, 225))
            text = f"{v:g}"
            _stamp(img, (x0 - 5 - _text_mask(text, 10)[1], yy - 6), text, 10, (0, 0, 0))
        # x ticks: every 3, 6 or 12 months
        d_lo, d_hi = date.fromordinal(int(tlo) + 1), date.fromordinal(int(thi))
        months = (d_hi.year - d_lo.year) * 12 + d_hi.month - d_lo.month
        every = 3 if months <= 30 else 6 if months <= 72 else 12
        m = (d_lo.year * 12 + d_lo.month - 1 + every - 1) // every * every
        while True:
            dd = date(m // 12, m % 12 + 1, 1)
            if dd > d_hi:
                break
            xx = x0 + (dd.toordinal() - tlo) / (thi - tlo) * (x1 - x0)
            d.line((xx, y0, xx, y1), fill=(235, 235, 235))
            d.line((xx, y1, xx, y1 + 4), fill=(0, 0, 0))
            text = dd.strftime("%Y-%m")
            _stamp(img, (xx - _text_mask(text, 10)[1] / 2, y1 + 6), text, 10, (0, 0, 0))
            m += every
        d.rectangle((x0, y0, x1, y1), outline=(0, 0, 0))
        # data
        if model is not None and dense_t is not None and trend is not None:
            pts = px(dense_t, trend)
            for i in range(0, len(pts) - 1, 6):  # dashed trend
                d.line(pts[i : i + 4], fill=_GREY, width=1)
            d.line(px(dense_t, model), fill=_RED, width=2, joint="curve")
        for xx, yy_ in px(t, y):
            d.ellipse((xx - 2.5, yy_ - 2.5, xx + 2.5, yy_ + 2.5), fill=_BLUE)
        # legend, top right
        labels = series_legend(ts)
        lw = max(_text_mask(s, 10)[1] for s in labels) + 34
        lx, ly = x1 - lw - 6, y0 + 6
        d.rectangle(
            (lx, ly, lx + lw, ly + 14 * len(labels) + 4),
            fill=(255, 255, 255),
            outline=(180, 180, 180),
        )
        for i, text in enumerate(labels):
            yy = float(ly + 9 + 14 * i)
            if i == 0:
                d.ellipse((lx + 11, yy - 2.5, lx + 16, yy + 2.5), fill=_BLUE)
            elif i == 1:
                d.line((lx + 4, yy, lx + 24, yy), fill=_RED, width=2)
            else:
                d.line((lx + 4, yy, lx + 10, yy), fill=_GREY)
                d.line((lx + 15, yy, lx + 22, yy), fill=_GREY)
            _stamp(img, (lx + 30, yy - 6), text, 10, (0, 0, 0))
        # y label (rotated) and title
        lines = _axis_label(ts.label)
        lab = Image.new("RGB", (y1 - y0, 15 * len(lines)), (255, 255, 255))
        ld = ImageDraw.Draw(lab)
        for i, text in enumerate(lines):
            text = _fit(ld, text, font, lab.width)
            ld.text(
                ((lab.width - ld.textlength(text, font=font)) / 2, 15 * i),
                text,
                fill=(0, 0, 0),
                font=font,
            )
        img.paste(lab.rotate(90, expand=True), (4, y0))
        if ts.dates:
            span = f"{ts.dates[0].isoformat()} to {ts.dates[-1].isoformat()}, {len(ts.dates)} dates"
            title = f"{title} · {span}" if title else span
        title = _fit(d, title, font, self.W - 10)
        d.text(((self.W - d.textlength(title, font=font)) / 2, 6), title, fill=(0, 0, 0), font=font)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        img.save(out_path, compress_level=1)
        return out_path


def plot_series(ts: TimeSeries, out_path: Path, *, title: str = "") -> Path:
    """PNG plot of a displacement series with its fitted trend + seasonal model.

    The model is y = a + b·t + c·cos(2πt) + d·sin(2πt), t in years since ``fit_t0`` (Wei et al.);
    the legend gives the peak-to-peak seasonal amplitude A = 2·sqrt(c² + d²) and the trend; the
    linear trend a + b·t is drawn dashed.
    """
    return _SeriesFigure().draw(ts, Path(out_path), title)
