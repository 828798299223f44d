"""Time-lapse GIFs of review panels: one palette per group of frames, frames cut from one
quantized stack (a fixed palette for value maps: a lookup instead of a colour search)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from thawdetect.core.review._panels import NODATA_RGB, OUTLINE_RGB
from thawdetect.core.review._styles import _lut, _Style


def group_palette(styles: Sequence[_Style], group: str) -> Any:
    """A fixed GIF palette for a group of value maps of one colour map, else None.

    The colour map (every other entry), 96 greys (hillshade, text), the outline red: what
    such a panel is drawn with.
    """
    from PIL import Image

    styles = [st for st in styles if (st.group or "chips") == group]
    pal = None
    if styles and all(st.kind == "value" for st in styles):
        luts = {st.colormap for st in styles}
        if len(luts) == 1:
            lut = _lut(next(iter(luts)))[::2]
            greys = np.repeat(np.linspace(0, 255, 96).round().astype(np.uint8)[:, None], 3, 1)
            extra = np.array([OUTLINE_RGB, NODATA_RGB], dtype=np.uint8)
            colours = np.concatenate([lut, greys, extra]).reshape(-1)
            pal = Image.new("P", (1, 1))
            pal.putpalette(colours.tolist() + [0] * (768 - colours.size))
    return pal


def write_gif(images: Sequence[Any], palette: Any, path: Path) -> Path:
    """One GIF of ``images`` (resized to the first one's size), quantized with ``palette`` or,
    when it is None, with one adaptive palette for the whole group."""
    from PIL import Image

    size = images[0].size
    seq = [im if im.size == size else im.resize(size) for im in images]
    # one palette for the whole group: quantize the frames stacked, then cut them apart
    stack = Image.new("RGB", (size[0], size[1] * len(seq)))
    for i, im in enumerate(seq):
        stack.paste(im, (0, i * size[1]))
    if palette is not None:  # value maps: a fixed palette, a lookup instead of a search
        pal = stack.quantize(palette=palette, dither=Image.Dither.NONE)
    else:
        pal = stack.quantize(colors=255, method=Image.Quantize.FASTOCTREE)
    frames_p = [pal.crop((0, i * size[1], size[0], (i + 1) * size[1])) for i in range(len(seq))]
    frames_p[0].save(
        path, save_all=True, append_images=frames_p[1:], duration=700, loop=0, optimize=False
    )
    return path
