"""How each review frame is drawn: its kind (value map or image), fixed stretch, colour map,
header text and file label, computed once per frame and shared by every candidate."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from thawdetect.core.errors import InputError
from thawdetect.core.plugin_api.detector import ImageFrame
from thawdetect.core.review._reading import _filled

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_SINCE_ITSELF = re.compile(r"^(\S+) \(since \1\)$")


def _date_once(text: str) -> str:
    """A frame's date as the header writes it: "2018-01-03 (since 2018-01-03)" (the first frame
    of a time-lapse) is "2018-01-03".

    Examples:
        >>> _date_once("2018-01-03 (since 2018-01-03)"), _date_once("2018-03-28 (since 2018-01-03)")
        ('2018-01-03', '2018-03-28 (since 2018-01-03)')
    """
    m = _SINCE_ITSELF.match(text.strip())
    return m.group(1) if m else text


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "x"


@dataclass
class _Style:
    """How one frame is drawn (computed once per frame, shared by every candidate)."""

    index: int
    label: str
    path: str
    bands: tuple[int, ...]
    kind: str  # "value" (colour map + bar) or "rgb" (or grey)
    units: str
    date: str
    source: str
    group: str
    vrange: tuple[float, float] | None
    symmetric: bool
    colormap: str
    fixed: bool = True
    title: str = ""
    file_label: str = ""
    last_in_group: bool = False
    lut: Any = field(default=None, repr=False)
    cache: dict[Any, Any] = field(default_factory=dict, repr=False)


def _title(label: str, units: str, bands: tuple[int, ...], value: bool, date: str) -> str:
    """The header's first line in words a reviewer reads: what the frame shows and its units in
    brackets ("LOS rate (mm/yr)"), or an image's bands ("optical image (bands 3,2,1)"); never a
    file name, and never the date again (the second line holds it).

    Examples:
        >>> _title("LOS rate", "mm/yr", (1,), True, "")
        'LOS rate (mm/yr)'
        >>> _title("LOS rate mm/yr", "mm/yr", (1,), True, "")
        'LOS rate (mm/yr)'
        >>> _title("2019-07-01", "", (3, 2, 1), False, "2019-07-01")
        'optical image (bands 3,2,1)'
        >>> _title("2021-08-21 S2 NIR", "", (4,), False, "2021-08-21")
        'S2 NIR (band 4)'
    """
    name = label.strip()
    if date and name.startswith(date.split()[0]):
        name = name[len(date.split()[0]) :].strip(" ·,-_")
    if value:
        name = name or "value"
        if units and units not in name:
            return f"{name} ({units})"
        if units and name.endswith(units) and not name.endswith(f"({units})"):
            return f"{name[: -len(units)].rstrip(' ,·')} ({units})"
        return name
    which = ",".join(str(b) for b in bands)
    kind = "bands" if len(bands) > 1 else "band"
    return f"{name or ('optical image' if len(bands) >= 3 else 'image')} ({kind} {which})"


def _raster_stretch(path: Path, band: int) -> tuple[float, float, bool]:
    """(lo, hi, symmetric) for a value map: ±p99.5 of |v| when values take both signs, else
    p2-p99.5 (0 at the bottom for positive values): slope failures are a small share of a scene,
    so a p98 stretch would saturate every one of them.

    Read once per raster from a decimated view (≤ 1024 px on the long side).
    """
    import rasterio

    with rasterio.open(path) as src:
        scale = max(src.width, src.height) / 1024
        f = max(scale, 1.0)
        shape = (max(1, round(src.height / f)), max(1, round(src.width / f)))
        a = _filled(src.read(band, out_shape=shape, masked=True)).astype("float64")
    v = a[np.isfinite(a)]
    if v.size == 0:
        return 0.0, 1.0, False
    lo, hi = np.percentile(v, [2, 99.5])
    if lo < 0 < hi:
        lim = float(np.percentile(np.abs(v), 99.5)) or 1.0
        return -_nice(lim), _nice(lim), True
    if lo >= 0:
        return 0.0, _nice(float(hi) or 1.0), False
    return float(lo), float(hi) if hi > lo else float(lo) + 1.0, False


def _nice(x: float) -> float:
    """Round up to 1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 × 10^k (stretches people can read)."""
    if x <= 0 or not np.isfinite(x):
        return 1.0
    k = 10 ** math.floor(math.log10(x))
    for m in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if x <= m * k * 1.0000001:
            return float(m * k)
    return float(10 * k)


def _styles(frames: Sequence[ImageFrame]) -> list[_Style]:
    import rasterio

    out = []
    stretch: dict[tuple[str, int], tuple[float, float, bool]] = {}
    for i, f in enumerate(frames):
        path = Path(f.path)
        try:
            with rasterio.open(path) as src:
                count, crs = src.count, src.crs
        except Exception as exc:
            raise InputError(path, "cannot be opened as a raster for review chips") from exc
        bad = [b for b in f.bands if not 1 <= b <= count]
        if bad:
            raise InputError(path, f"has {count} bands; frame asks for bands {list(bad)}")
        if crs is None:
            raise InputError(path, "raster has no CRS; cannot place review chips")
        value = len(f.bands) == 1 and bool(f.units)
        vr = tuple(float(v) for v in f.value_range) if f.value_range is not None else None
        symmetric, fixed = False, True
        if value and vr is None:
            key = (str(path), f.bands[0])
            if key not in stretch:
                stretch[key] = _raster_stretch(path, f.bands[0])
            lo, hi, symmetric = stretch[key]
            vr = (lo, hi)
        elif vr is not None:
            symmetric = math.isclose(vr[0], -vr[1])
        else:
            fixed = False
        date_text = _date_once(f.date or (m.group(0) if (m := _DATE.match(f.label)) else ""))
        cmap = f.colormap or ("RdBu" if symmetric else "viridis")
        out.append(
            _Style(
                index=i,
                label=f.label,
                path=str(path),
                bands=tuple(int(b) for b in f.bands),
                kind="value" if value else "rgb",
                units=f.units,
                date=date_text,
                source=f.source,  # the header never shows a file name
                group=f.group,
                vrange=vr,  # type: ignore[arg-type]
                symmetric=symmetric,
                colormap=cmap,
                fixed=fixed,
                title=_title(f.label, f.units, tuple(f.bands), value, date_text),
            )
        )
    labels = [st.label for st in out]
    for st in out:
        st.file_label = _safe(st.label)
        if labels.count(st.label) > 1 and st.date:
            st.file_label += "_" + _safe(st.date.split()[0])
    return out


_LUTS: dict[str, NDArray[Any]] = {}


def _lut(name: str) -> NDArray[Any]:
    """A (256, 3) uint8 colour table from a matplotlib colour map (no figure involved; the
    default maps come from a stored copy, without importing matplotlib)."""
    from thawdetect.core.review._builtin_luts import BUILTIN_LUTS

    if name not in _LUTS and name in BUILTIN_LUTS:
        table = np.frombuffer(bytes.fromhex(BUILTIN_LUTS[name]), dtype=np.uint8)
        _LUTS[name] = table.reshape(256, 3)
    if name not in _LUTS:
        import matplotlib

        cmap = matplotlib.colormaps[name]
        _LUTS[name] = (cmap(np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)
    return _LUTS[name].copy()
