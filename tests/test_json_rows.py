"""``json_objects`` gives exactly the text ``json.dumps`` gives, row by row, for every type."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from thawdetect.core.run._json import json_objects


def _default(value):
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


ENCODE = json.JSONEncoder(default=_default).encode

COLUMNS = {
    "text": ["a", 'quote " and \\ back', "ünïcode ✓", "", "line\nbreak", "\x00"],
    "int": [0, -1, 2**70, 5, 7, 1],
    "float": [0.1, -0.0, math.nan, math.inf, -math.inf, 1e300],
    "bool": [True, False, True, True, False, False],
    "mixed": [None, 1.5, "x", True, 3, None],
    "other": [
        np.float32(0.1),
        np.int64(3),
        [1, "a"],
        {"k": None},
        pd.Timestamp("2020-01-02"),
        (1,),
    ],
    "float_none": [1.0, None, 2.5, None, math.nan, 3.0],
}


@pytest.mark.parametrize("name", list(COLUMNS))
def test_each_type_as_json_dumps(name):
    keys = ["k", name]
    cols = [list(range(6)), COLUMNS[name]]
    expected = [ENCODE(dict(zip(keys, row, strict=True))) for row in zip(*cols, strict=True)]
    assert json_objects(keys, cols, ENCODE) == expected
    assert [json.loads(t)["k"] for t in expected] == list(range(6))


def test_all_columns_together_and_odd_keys():
    keys = list(COLUMNS)
    cols = list(COLUMNS.values())
    expected = [ENCODE(dict(zip(keys, row, strict=True))) for row in zip(*cols, strict=True)]
    assert json_objects(keys, cols, ENCODE) == expected
    # keys a dict would merge or convert (and a non-ASCII key): the dict's own text
    for odd in (["a", "a"], ['é"', 1], ['é"k', "x"]):
        rows = [[1, 2], [3, 4]]
        expected = [ENCODE(dict(zip(odd, row, strict=True))) for row in zip(*rows, strict=True)]
        assert json_objects(odd, rows, ENCODE) == expected
    assert json_objects([], [], ENCODE) == []
