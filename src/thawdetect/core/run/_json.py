"""JSON objects for many rows at once: the text ``json.dumps`` gives, built by columns.

The engine stores each proposal's and each candidate's evidence as a JSON object (one per row,
10,000s per iteration at QTEC size). Calling the encoder once per row costs a dict and an encoder
call per row; here each column is turned into text once, by value type, for the types whose JSON
text is fixed by the standard library's own encoder (``str``, ``int``, ``float``, ``bool``,
``None``), and the rows are joined from those texts. Anything else goes through ``encode``
itself. ``tests/test_json_rows.py`` compares the result with ``json.dumps`` on every type.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from json.encoder import encode_basestring_ascii
from typing import Any

__all__ = ["json_objects"]


def _float_text(v: float) -> str:
    # json's encoder: float.__repr__, and NaN/Infinity/-Infinity (allow_nan=True)
    if math.isfinite(v):
        return float.__repr__(v)
    if v != v:
        return "NaN"
    return "Infinity" if v > 0 else "-Infinity"


_TEXT: dict[type, Callable[[Any], str]] = {
    str: encode_basestring_ascii,
    int: int.__repr__,
    float: _float_text,
    bool: lambda v: "true" if v else "false",
    type(None): lambda v: "null",
}


def _texts(values: Sequence[Any], encode: Callable[[Any], str]) -> list[str]:
    """``encode(v)`` for every value (by type where the text is fixed)."""
    if set(map(type, values)) <= _TEXT.keys():
        return [_TEXT[type(v)](v) for v in values]
    return [encode(v) for v in values]


def json_objects(
    keys: Sequence[Any], columns: Sequence[Sequence[Any]], encode: Callable[[Any], str]
) -> list[str]:
    """``encode(dict(zip(keys, row)))`` for every row of ``columns`` (one sequence per key).

    ``encode`` is a ``json.JSONEncoder(...).encode`` with the default separators and
    ``ensure_ascii``; it also encodes values of other types, and whole rows when the keys are
    not distinct strings (a dict would merge or convert them).
    """
    n = len(columns[0]) if columns else 0
    if not keys:
        return ["{}"] * n
    if not all(type(k) is str for k in keys) or len(set(keys)) != len(keys):
        return [encode(dict(zip(keys, row, strict=True))) for row in zip(*columns, strict=True)]
    parts = [
        [head + text for text in _texts(col, encode)]
        for head, col in zip(
            [encode_basestring_ascii(k) + ": " for k in keys], columns, strict=True
        )
    ]
    return ["{" + ", ".join(row) + "}" for row in zip(*parts, strict=True)]
