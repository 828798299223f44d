"""Elevation, slope and aspect masks on whole arrays.

Aspect intervals follow :class:`~thawdetect.core.models.AngleRange`: degrees from north,
clockwise, both ends in [0, 360], ``min > max`` wraps through north, ends inclusive. 0° and 360°
are the same direction, so an interval ending at 360 also holds aspect 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import ValidationError

from thawdetect.plugin_api import AngleRange, ConfigError, Range, render_validation_error
from thawdetect.plugins.terrain.config import MaskRanges

__all__ = ["aspect_mask", "coerce_ranges", "range_mask", "terrain_mask"]


def range_mask(values: NDArray[np.floating], rng: Range) -> NDArray[np.bool_]:
    """Cells with ``rng.min <= value <= rng.max``; NaN is False.

    Examples:
        >>> range_mask(np.array([0.5, 1.0, 30.0, np.nan]), Range(min=1, max=30)).tolist()
        [False, True, True, False]
    """
    v = np.asarray(values)
    with np.errstate(invalid="ignore"):
        return (v >= rng.min) & (v <= rng.max)


def aspect_mask(
    aspect_deg: NDArray[np.floating], intervals: Sequence[AngleRange]
) -> NDArray[np.bool_]:
    """Cells whose aspect lies in the union of ``intervals``; NaN is False.

    Args:
        aspect_deg: aspect in degrees, 0 = north, clockwise.
        intervals: compass intervals; one with min > max wraps through north.

    Examples:
        >>> a = np.array([0.0, 44.0, 46.0, 300.0, 315.0, np.nan])
        >>> aspect_mask(a, [AngleRange(min=315, max=45)]).tolist()
        [True, True, False, False, True, False]
    """
    a = np.asarray(aspect_deg, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        # wrap into [0, 360) only where needed: a float modulo of every cell of a frame-sized
        # layer costs more than all the comparisons (values already in range are unchanged)
        off = (a < 0.0) | (a >= 360.0)
        if off.any():
            a = a.copy()
            a[off] = np.where(a[off] >= 360.0, a[off] - 360.0, a[off]) % 360.0
        del off
        out = np.zeros(a.shape, dtype=bool)
        for iv in intervals:
            if iv.wraps:
                out |= (a >= iv.min) | (a <= iv.max)
            else:
                out |= (a >= iv.min) & (a <= iv.max)
                if iv.max == 360.0:
                    out |= a == 0.0
    return out


def terrain_mask(
    elevation_m: NDArray[np.floating],
    slope_deg: NDArray[np.floating],
    aspect_deg: NDArray[np.floating],
    ranges: MaskRanges,
) -> NDArray[np.bool_]:
    """Cells inside every given range; cells with NaN in any layer are False.

    Args:
        elevation_m: elevation, metres.
        slope_deg: slope, degrees.
        aspect_deg: aspect, degrees from north clockwise.
        ranges: the ranges; a missing one does not constrain its layer.
    """
    out = np.isfinite(elevation_m) & np.isfinite(slope_deg) & np.isfinite(aspect_deg)
    if ranges.elevation_m is not None:
        out &= range_mask(elevation_m, ranges.elevation_m)
    if ranges.slope_deg is not None:
        out &= range_mask(slope_deg, ranges.slope_deg)
    if ranges.aspect_deg is not None:
        out &= aspect_mask(aspect_deg, ranges.aspect_deg)
    return out


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, Range | AngleRange):
        return value.model_dump() if value is not None else None
    if isinstance(value, Mapping):
        return dict(value)
    if (
        isinstance(value, tuple | list)
        and len(value) == 2
        and all(isinstance(v, int | float) for v in value)
    ):
        return {"min": value[0], "max": value[1]}
    return value


def coerce_ranges(
    *,
    elevation_m: Any = None,
    slope_deg: Any = None,
    aspect_deg: Any = None,
    source: str = "terrain mask",
) -> MaskRanges:
    """Build :class:`MaskRanges` from models, mappings or ``(min, max)`` pairs; one-line errors.

    ``aspect_deg`` is one interval or a sequence of them.

    Args:
        elevation_m: elevation range, metres.
        slope_deg: slope range, degrees.
        aspect_deg: aspect interval(s), degrees from north clockwise, each end in [0, 360].
        source: prefix of error messages (a file or config section).

    Raises:
        ConfigError: ``"SOURCE: aspect_deg.0.max: Input should be less than or equal to 360"``
            and the like (min above max, ends outside 0-360, wrong type).

    Examples:
        >>> coerce_ranges(aspect_deg=(315, 45)).aspect_deg[0].wraps
        True
    """
    if aspect_deg is not None:
        single = isinstance(aspect_deg, AngleRange | Mapping) or (
            isinstance(aspect_deg, tuple | list)
            and len(aspect_deg) == 2
            and all(isinstance(v, int | float) for v in aspect_deg)
        )
        aspect_deg = [aspect_deg] if single else list(aspect_deg)
        aspect_deg = [_plain(a) for a in aspect_deg]
    data = {
        "elevation_m": _plain(elevation_m),
        "slope_deg": _plain(slope_deg),
        "aspect_deg": aspect_deg,
    }
    try:
        return MaskRanges.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(render_validation_error(exc, source)) from None
