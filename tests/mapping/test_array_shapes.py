"""Arrays with their shapes (dinsync.warehouses.array_shapes, PostgreSQL's arrays of more than one
dimension): each row sent nested by its own dimensions, in every kind a list is sent as, with the
checks of a list of one dimension (a NaN, a date beyond the calendar reject the row)."""
from __future__ import annotations

import datetime as dt

import orjson
import pyarrow as pa
import pytest

from dinsync.mapping.frame import FieldMapping, KeyMapping, frame_from_arrow, map_batch
from dinsync.warehouses.array_shapes import json_elements, nested_json, with_shapes
from dinsync.warehouses.numeric_text import numeric_text_list

DIMS = pa.list_(pa.int32())


def mapped(column: pa.Array, kind: str = "auto"):
    n = len(column)
    batch = pa.record_batch({"_key": [f"u{i}@x.co" for i in range(n)], "_op": ["added"] * n, "v0": column,
                             "x0": [True] * n})
    frame, numeric = frame_from_arrow(batch)
    out = map_batch(frame, KeyMapping("email", "email"), [FieldMapping(0, "f", kind)], numeric_text=numeric)
    sent = {k: orjson.loads(j).get("f") for k, j in zip(out.frame["_key"], out.frame["_json"])}
    return sent, dict(zip(out.rejections["_key"], out.rejections["reason"]))


@pytest.mark.parametrize("kind", ["auto", "json"])
def test_each_row_is_nested_by_its_own_dimensions(kind):
    column = with_shapes(pa.array([[1, 2, 3, 4], [1, 2], None, [], [1, None, None, 4], [1, 2, 3, 4]]),
                         pa.array([[2, 2], None, None, None, [2, 2], [2, 1, 2]], DIMS))
    sent, rejected = mapped(column, kind)
    assert rejected == {}
    assert list(sent.values()) == [[[1, 2], [3, 4]], [1, 2], None, [], [[1, None], [None, 4]], [[[1, 2]], [[3, 4]]]]


def test_texts_holding_json_punctuation_and_the_string_kind():
    texts = ['a,]', 'b"\\', "c\n😀", None]
    column = with_shapes(pa.array([texts, ["x"]]), pa.array([[2, 2], None], DIMS))
    sent, _ = mapped(column)
    assert sent["u0@x.co"] == [['a,]', 'b"\\'], ["c\n😀", None]] and sent["u1@x.co"] == ["x"]
    sent, _ = mapped(column, "string")
    assert orjson.loads(sent["u0@x.co"]) == [['a,]', 'b"\\'], ["c\n😀", None]] and sent["u1@x.co"] == '["x"]'


def test_numbers_as_text_are_nested_and_a_nan_rejects_its_row():
    digits = pa.array([["1.5", "2", "3", "4"], ["1", "NaN"], ["12345678901234567890.5"]])
    column = with_shapes(numeric_text_list(digits), pa.array([[2, 2], [2, 1], None], DIMS))
    sent, rejected = mapped(column)
    assert sent == {"u0@x.co": [[1.5, 2], [3, 4]], "u2@x.co": [12345678901234567890.5]}
    assert rejected == {"u1@x.co": 'field "f": NaN/infinite is not valid JSON'}


def test_dates_are_nested_and_one_beyond_the_calendar_rejects_its_row():
    day = dt.date(2024, 1, 2)
    days = pa.array([[day, day], [day, None]], pa.list_(pa.date32()))
    beyond = pa.array([2_932_897], pa.int32()).cast(pa.date32())  # 10000-01-01
    days = pa.concat_arrays([days, pa.ListArray.from_arrays(pa.array([0, 2], pa.int32()),
                                                            pa.concat_arrays([beyond, beyond]))])
    sent, rejected = mapped(with_shapes(days, pa.array([[2, 1], None, [1, 2]], DIMS)))
    assert sent == {"u0@x.co": [["2024-01-02"], ["2024-01-02"]], "u1@x.co": ["2024-01-02", None]}
    assert list(rejected) == ["u2@x.co"] and "date out of range" in rejected["u2@x.co"]


def test_json_elements_and_nesting():
    assert json_elements('[1,"a,]\\"b",null,{"x":[1,2]},"",[3]]') == ['1', '"a,]\\"b"', 'null', '{"x":[1,2]}', '""',
                                                                     '[3]']
    assert json_elements("[]") == []
    assert nested_json(["1", "2", "3", "4", "5", "6"], [3, 1, 2]) == "[[[1,2]],[[3,4]],[[5,6]]]"
