"""JSON text of Polars values, request bodies, size-bounded slicing."""
from __future__ import annotations

import datetime as dt
import decimal

import orjson
import polars as pl
import pytest

from dinsync.mapping.json import (
    batches_by_size,
    json_values_valid,
    value_json,
)


def _json(series: pl.Series) -> tuple[list, list]:
    """JSON texts and problem flags of a series encoded with value_json."""
    enc = value_json(pl.col("v"), series.dtype, 'field "v"')
    frame = pl.DataFrame({"v": series})
    texts = frame.select(enc.text.alias("t")).to_series().to_list()
    bad = [False] * len(series)
    for flag, _ in enc.problems:
        flags = frame.select(flag.fill_null(False).alias("b")).to_series().to_list()
        bad = [a or b for a, b in zip(bad, flags)]
    return texts, bad


def _loads(texts: list) -> list:
    return [None if t is None else orjson.loads(t) for t in texts]


HOSTILE_STRINGS = [
    "",
    'say "hi"',
    "back\\slash \\n not a newline",
    "line1\nline2\r\nline3",
    "tab\tbell\x07nul\x00esc\x1bdel\x7f",
    "".join(chr(c) for c in range(32)),
    "\u2028\u2029 line separators",
    "emoji 😀👍🏽 flags 🇫🇷 zwj 👩‍👩‍👧",
    "non-BMP 𝄞 𠜎 \U0010ffff",
    "accents éàü ß Ωλ 中文 العربية",
    "</script><script>alert(1)</script>",
    "{\"json\": [1, 2]}",
    " leading and trailing spaces ",
    "\ufeffBOM",
]


def test_strings_round_trip_exactly():
    texts, bad = _json(pl.Series(HOSTILE_STRINGS + [None]))
    assert _loads(texts[:-1]) == HOSTILE_STRINGS
    assert texts[-1] in (None, "null")
    assert not any(bad)


def test_floats_round_trip_and_non_finite_is_flagged():
    values = [0.0, -0.0, 1.5, 0.1, 1 / 3, 1e20, 1e-7, 5e-324, 1.7976931348623157e308, -2.5e-300, 2.0**53 + 2]
    texts, bad = _json(pl.Series(values + [float("nan"), float("inf"), float("-inf"), None]))
    assert _loads(texts[: len(values)]) == values
    assert bad == [False] * len(values) + [True, True, True, False]


def test_float32_keeps_its_short_form():
    texts, _ = _json(pl.Series([0.1, 1.5], dtype=pl.Float32))
    assert texts == ["0.1", "1.5"]


@pytest.mark.parametrize(
    ("values", "dtype"),
    [
        ([2**63 - 1, -(2**63), 0, 2**53 + 1], pl.Int64),
        ([2**64 - 1, 0], pl.UInt64),
        ([2**100, -(2**120)], pl.Int128),
        ([-128, 127], pl.Int8),
    ],
)
def test_big_ints_stay_exact_ints(values, dtype):
    texts, _ = _json(pl.Series(values, dtype=dtype))
    assert texts == [str(v) for v in values]
    assert _loads(texts) == values


def test_decimals_are_json_numbers_with_every_digit():
    values = [decimal.Decimal("1.20"), decimal.Decimal("-0.05"), decimal.Decimal("12345678901234567890.12"), None]
    texts, _ = _json(pl.Series(values, dtype=pl.Decimal(38, 2)))
    assert texts[:3] == ["1.20", "-0.05", "12345678901234567890.12"]
    assert texts[3] is None
    assert [orjson.loads(t) for t in texts[:2]] == [1.2, -0.05]


def test_bools_dates_times():
    assert _json(pl.Series([True, False, None]))[0] == ["true", "false", None]
    dates = [dt.date(2024, 2, 29), dt.date(1, 1, 1), dt.date(9999, 12, 31)]
    assert _loads(_json(pl.Series(dates))[0]) == ["2024-02-29", "0001-01-01", "9999-12-31"]
    times = [dt.time(0, 0), dt.time(23, 59, 59, 123456)]
    assert _loads(_json(pl.Series(times))[0]) == ["00:00:00", "23:59:59.123456"]


def test_naive_datetimes_are_iso_without_offset():
    values = [dt.datetime(2024, 1, 2, 3, 4, 5), dt.datetime(2024, 1, 2, 3, 4, 5, 6), dt.datetime(1999, 12, 31, 23, 59, 59, 500000)]
    texts, _ = _json(pl.Series(values))
    assert _loads(texts) == ["2024-01-02T03:04:05", "2024-01-02T03:04:05.000006", "1999-12-31T23:59:59.500000"]
    assert _loads(texts) == [orjson.loads(orjson.dumps(v)) for v in values]


@pytest.mark.parametrize("unit", ["ms", "us", "ns"])
def test_datetime_units(unit):
    s = pl.Series([dt.datetime(2024, 1, 2, 3, 4, 5, 123000), dt.datetime(2024, 1, 2)]).cast(pl.Datetime(unit))
    assert _loads(_json(s)[0]) == ["2024-01-02T03:04:05.123000", "2024-01-02T00:00:00"]


def test_nanoseconds_are_truncated_to_microseconds():
    s = pl.Series(["2024-01-02T03:04:05.123456789"]).str.to_datetime(time_unit="ns")
    assert _loads(_json(s)[0]) == ["2024-01-02T03:04:05.123456"]


def test_tz_aware_datetimes_are_utc_with_z():
    s = pl.Series([dt.datetime(2024, 7, 1, 12, 0), dt.datetime(2024, 1, 1, 0, 30, 0, 250)]).dt.replace_time_zone("Europe/Paris")
    assert _loads(_json(s)[0]) == ["2024-07-01T10:00:00Z", "2023-12-31T23:30:00.000250Z"]
    utc = pl.Series([dt.datetime(2024, 7, 1, 12, 0)]).dt.replace_time_zone("UTC")
    assert _loads(_json(utc)[0]) == ["2024-07-01T12:00:00Z"]


def test_nested_values():
    s = pl.Series(
        [
            [{"a": 1, "s": 'q"\n😀', "when": dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc), "d": dt.date(2024, 5, 6)}],
            [],
            None,
            [None],
        ]
    )
    texts, bad = _json(s)
    assert _loads(texts) == [
        [{"a": 1, "s": 'q"\n😀', "when": "2024-01-01T00:00:00Z", "d": "2024-05-06"}],
        [],
        None,
        [None],
    ]
    assert not any(bad)


def test_nested_decimals_binary_categoricals_arrays():
    st = pl.Series([{"d": decimal.Decimal("2.25"), "b": b"\x00\xff", "c": "x"}]).cast(
        pl.Struct({"d": pl.Decimal(10, 2), "b": pl.Binary, "c": pl.Categorical})
    )
    assert _loads(_json(st)[0]) == [{"d": 2.25, "b": "AP8=", "c": "x"}]
    arr = pl.Series([[1, 2], [3, 4]], dtype=pl.Array(pl.Int64, 2))
    assert _loads(_json(arr)[0]) == [[1, 2], [3, 4]]
    deep = pl.Series([{"a": {"b": [[dt.datetime(2024, 1, 1, 1, 2, 3)]]}}])
    assert _loads(_json(deep)[0]) == [{"a": {"b": [["2024-01-01T01:02:03"]]}}]


def test_nested_non_finite_is_flagged():
    s = pl.Series([[1.0, float("nan")], [1.0], None, [[float("inf")]].__getitem__(0)])
    _, bad = _json(s)
    assert bad == [True, False, False, True]
    st = pl.Series([{"x": [float("-inf")]}, {"x": [2.0]}, {"x": None}])
    assert _json(st)[1] == [True, False, False]


def test_null_dtype_and_binary():
    assert _json(pl.Series([None, None]))[0] == [None, None]
    assert _loads(_json(pl.Series([b"hi", None]))[0]) == ["aGk=", None]


def test_json_values_valid():
    s = pl.Series(['{"a":1}', "[1,2]", "3", '"x"', "null", "{bad", "NaN", "", None, '{"a":1}', " [ ] "])
    assert json_values_valid(s).to_list() == [True, True, True, True, True, False, False, False, None, True, True]
    assert json_values_valid(pl.Series([None], dtype=pl.String)).to_list() == [None]


# --- bodies --------------------------------------------------------------------------------

# --- slicing -------------------------------------------------------------------------------

def _sizes(values: list[int]) -> pl.DataFrame:
    return pl.DataFrame({"_bytes": values}, schema={"_bytes": pl.Int64})


def _check_slices(sizes, slices, max_rows, max_bytes, overhead):
    assert sum(n for _, n in slices) == len(sizes)
    offset = 0
    for start, n in slices:
        assert start == offset and n >= 1
        offset += n
        assert n <= max_rows
        total = sum(sizes[start : start + n]) + overhead * n
        assert total <= max_bytes or n == 1


def test_batches_by_size_rows_only():
    assert batches_by_size(_sizes([1] * 10), 4, None) == [(0, 4), (4, 4), (8, 2)]
    assert batches_by_size(_sizes([1] * 8), 4, 10**9) == [(0, 4), (4, 4)]


def test_batches_by_size_bytes():
    sizes = [10, 10, 10, 10, 10]
    assert batches_by_size(_sizes(sizes), 100, 33, overhead_per_row=1) == [(0, 3), (3, 2)]
    assert batches_by_size(_sizes(sizes), 100, 32, overhead_per_row=1) == [(0, 2), (2, 2), (4, 1)]
    assert batches_by_size(_sizes(sizes), 2, 1000) == [(0, 2), (2, 2), (4, 1)]


def test_batches_by_size_oversized_row_goes_alone():
    sizes = [5, 100, 5, 5, 200]
    slices = batches_by_size(_sizes(sizes), 10, 20)
    assert slices == [(0, 1), (1, 1), (2, 2), (4, 1)]


def test_batches_by_size_empty_and_series():
    assert batches_by_size(_sizes([]), 10, 100) == []
    assert batches_by_size(pl.Series([3, 3, 3]), 10, 6) == [(0, 2), (2, 1)]
    with pytest.raises(ValueError):
        batches_by_size(_sizes([1]), 0, 100)


def test_batches_by_size_random_properties():
    import random

    rng = random.Random(3)
    for _ in range(200):
        sizes = [rng.choice([1, 2, 50, 300, 1000, 5000]) for _ in range(rng.randint(1, 300))]
        max_rows, max_bytes, overhead = rng.randint(1, 50), rng.randint(100, 20000), rng.randint(0, 5)
        slices = batches_by_size(_sizes(sizes), max_rows, max_bytes, overhead)
        _check_slices(sizes, slices, max_rows, max_bytes, overhead)
        # greedy: each slice could not take the next row
        for start, n in slices[:-1]:
            nxt = start + n
            fits = sum(sizes[start : nxt + 1]) + overhead * (n + 1) <= max_bytes and n + 1 <= max_rows
            assert not fits


def test_nested_decimals_keep_every_digit():
    """A DECIMAL inside a list or struct was written through a 64-bit float: DECIMAL(38,0)
    9007199254740993 arrived as 9007199254740992.0, 1234567890123456789.1234567891 as
    1.2345678901234568e+18 (silently another number). They are written digit for digit, as
    top-level decimals are; a string that merely looks like a number stays a string."""
    lst = pl.Series([[decimal.Decimal("1234567890123456789.1234567891"), decimal.Decimal("-0.1000000000"), None],
                     None, []], dtype=pl.List(pl.Decimal(38, 10)))
    texts, bad = _json(lst)
    assert texts == ["[1234567890123456789.1234567891,-0.1000000000,null]", None, "[]"]
    assert not any(bad)
    st = pl.Series([{"a": decimal.Decimal("9007199254740993"), "b": "9007199254740993", "c": [decimal.Decimal("1.50")]},
                    {"a": None, "b": None, "c": None}]).cast(
        pl.Struct({"a": pl.Decimal(38, 0), "b": pl.String, "c": pl.List(pl.Decimal(10, 2))}))
    texts, bad = _json(st)
    assert texts[0] == '{"a":9007199254740993,"b":"9007199254740993","c":[1.50]}'
    assert orjson.loads(texts[1]) == {"a": None, "b": None, "c": None}
    assert not any(bad)
    marked = pl.Series([{"a": decimal.Decimal("1"), "b": "\ufdd0\ufdd12"}]).cast(
        pl.Struct({"a": pl.Decimal(38, 0), "b": pl.String}))
    texts, bad = _json(marked)
    assert texts == [None] and bad == [True]  # rejected: never a string read as a number
