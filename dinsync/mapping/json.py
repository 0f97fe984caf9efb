"""JSON text of Polars values, built column-wise, and request bodies built from row fragments.

`value_json` turns a column of any type into the JSON text of each value. It leans on
`struct.json_encode` (correct string escaping) and compensates for what it does not do the way
an API expects, in this Polars version:

  - NaN / ±inf become ``null`` there: we report them as errors instead (rows are rejected);
  - naive datetimes come out as ``"YYYY-MM-DD HH:MM:SS"``: we write ISO 8601 with a ``T``;
  - tz-aware datetimes keep their offset: we convert to UTC and write ``Z``;
  - decimals come out as JSON strings: we write them as JSON numbers (exact digits);
  - decimals read as text (`numeric_text_json`: PostgreSQL's numeric, of any precision) are
    written as the JSON numbers of their digits;
  - binary panics: we write base64 strings.

Datetime format (everywhere, also nested): ``YYYY-MM-DDTHH:MM:SS`` plus ``.ffffff`` when the
sub-second part is not zero (microseconds; nanoseconds are truncated), plus ``Z`` for tz-aware
values, which are converted to UTC first. Naive datetimes are written as they are, without
offset. This is what ``orjson.dumps(dt, option=OPT_UTC_Z)`` and ``datetime.isoformat`` write.
Decimals nested in lists or structs keep every digit too (json_encode writes them as strings: they
are marked with `_DECIMAL_MARK` before and unquoted after; a nested string holding the mark, two
Unicode noncharacters, rejects its row rather than risk being read as a number).
A date or datetime outside the years 1 to 9999 rejects its row, also nested in a list or a struct.
"""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import Callable

import orjson
import polars as pl

from dinsync.mapping.normalize import preview

_NULL = pl.lit(None, pl.String)
# Marks a decimal nested in a list or struct: json_encode writes it as the JSON string
# "<mark><digits>", which _unmark_decimals turns into the JSON number <digits> (U+FDD0 and U+FDD1
# are noncharacters, which json_encode writes as they are).
_DECIMAL_MARK = "\ufdd0\ufdd1"
_MARKED_DECIMAL = re.compile('"' + _DECIMAL_MARK + r'(-?[0-9]+(?:\.[0-9]+)?)"')
RESERVED_TEXT = "{label}: holds a text with the characters U+FDD0 U+FDD1, which cannot be sent"


@dataclass
class Encoded:
    """How one column goes to JSON.

    `text`: JSON text of each value (NULL or ``null`` for a NULL value). `problems`: pairs of
    (bad, reason): `bad` is a boolean expression evaluated on every row, `reason` a string
    expression evaluated only on the (few) bad rows, so that error messages cost nothing on the
    happy path. `size`: bytes checked against max_value_bytes (strings, raw JSON); with
    `size_of_text` the size of `text` itself is checked instead (nested values).
    """

    text: pl.Expr
    problems: list[tuple[pl.Expr, pl.Expr]] = field(default_factory=list)
    size: pl.Expr | None = None
    size_of_text: bool = False


def quote(expr: pl.Expr) -> pl.Expr:
    """Wrap text that needs no escaping (dates, numbers, base64) in double quotes."""
    return pl.concat_str([pl.lit('"'), expr, pl.lit('"')])


def string_json(expr: pl.Expr) -> pl.Expr:
    """JSON string literal of each value (escaped); ``null`` for NULL.

    json_encode of a one-field struct gives ``{"a":<literal>}``: drop the 5 leading and the
    last characters.
    """
    return pl.struct(expr.cast(pl.String).alias("a")).struct.json_encode().str.slice(5).str.head(-1)


def iso_datetime(expr: pl.Expr, dtype: pl.Datetime, quoted: bool = False) -> pl.Expr:
    """ISO 8601 text of datetimes (see module docstring), optionally as a JSON string."""
    suffix = ""
    if dtype.time_zone is not None:
        expr = expr.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        suffix = "Z"
    q = '"' if quoted else ""
    text = expr.dt.strftime(f"{q}%Y-%m-%dT%H:%M:%S%.6f{suffix}{q}")
    return text.str.replace(f".000000{suffix}{q}", f"{suffix}{q}", literal=True)  # one strftime pass


def iso_time(expr: pl.Expr, quoted: bool = False) -> pl.Expr:
    q = '"' if quoted else ""
    return expr.dt.strftime(f"{q}%H:%M:%S%.6f{q}").str.replace(f".000000{q}", q, literal=True)


def any_nested(expr: pl.Expr, dtype: pl.DataType,
               leaf: Callable[[pl.Expr, pl.DataType], pl.Expr | None]) -> pl.Expr | None:
    """Boolean: the value is, or holds at any depth of its lists and structs, one that `leaf` flags
    (`leaf(expr, dtype)`: a boolean expression, or None for a type it does not look at). None when
    the type holds nothing `leaf` looks at."""
    found = leaf(expr, dtype)
    if found is not None:
        return found
    if isinstance(dtype, pl.Array):
        return any_nested(expr.cast(pl.List(dtype.inner)), pl.List(dtype.inner), leaf)
    if isinstance(dtype, pl.List):
        inner = any_nested(pl.element(), dtype.inner, leaf)
        return None if inner is None else expr.list.eval(inner).list.any().fill_null(False)
    if isinstance(dtype, pl.Struct):
        parts = [any_nested(expr.struct.field(f.name), f.dtype, leaf) for f in dtype.fields]
        parts = [p for p in parts if p is not None]
        return pl.any_horizontal(parts).fill_null(False) if parts else None
    return None


def nonfinite(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr | None:
    """Boolean: the value is, or contains, a NaN or an infinity. None when the type can't hold one."""
    return any_nested(expr, dtype, lambda e, t: (e.is_nan() | e.is_infinite()).fill_null(False) if t.is_float()
                      else None)


def _needs_prep(dtype: pl.DataType) -> bool:
    if dtype == pl.Date or isinstance(dtype, (pl.Datetime, pl.Decimal, pl.Binary, pl.Time, pl.Categorical, pl.Enum,
                                              pl.Array)):
        return True
    if isinstance(dtype, pl.List):
        return _needs_prep(dtype.inner)
    if isinstance(dtype, pl.Struct):
        return any(_needs_prep(f.dtype) for f in dtype.fields)
    return False


def _prep_nested(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Rewrite values nested in lists/structs into types json_encode writes the way we want."""
    if not _needs_prep(dtype):
        return expr
    if dtype == pl.Date or isinstance(dtype, pl.Datetime):
        # a value beyond the calendar rejects its row (`beyond_calendar_nested`): it is not
        # formatted, which panics for ±infinity
        safe = pl.when(beyond_calendar(expr, dtype)).then(None).otherwise(expr)
        return safe if dtype == pl.Date else iso_datetime(safe, dtype)
    if isinstance(dtype, pl.Time):
        return iso_time(expr)
    if isinstance(dtype, pl.Decimal):
        return pl.concat_str([pl.lit(_DECIMAL_MARK), expr.cast(pl.String)])  # unquoted by _unmark_decimals
    if isinstance(dtype, pl.Binary):
        return expr.bin.encode("base64")
    if isinstance(dtype, (pl.Categorical, pl.Enum)):
        return expr.cast(pl.String)
    if isinstance(dtype, pl.Array):
        return _prep_nested(expr.cast(pl.List(dtype.inner)), pl.List(dtype.inner))
    if isinstance(dtype, pl.List):
        return expr.list.eval(_prep_nested(pl.element(), dtype.inner))
    assert isinstance(dtype, pl.Struct)
    rebuilt = pl.struct([_prep_nested(expr.struct.field(f.name), f.dtype).alias(f.name) for f in dtype.fields])
    return pl.when(expr.is_null()).then(None).otherwise(rebuilt)


# Days from 1970-01-01 to 0001-01-01 and to 10000-01-01: the years a date is written with in
# ISO 8601 without an agreed expansion ("YYYY"). Beyond them Polars writes "+13690-07-15" or
# "-0001-01-01", which no platform reads as a date (and far beyond, it cannot format at all).
_FIRST_DAY, _END_DAY = -719_162, 2_932_897
BEYOND_CALENDAR = "{label}: date out of range (years 1 to 9999; an infinity?), which cannot be sent"
NONFINITE = "{label}: NaN/infinite is not valid JSON"  # why a NaN or infinite number is not sent
_UNIT_PER_DAY = {"ms": 86_400_000, "us": 86_400_000_000}
# ns: every int64 lies in 1677-2262; DuckDB's TIMESTAMP_NS '±infinity' are its extremes
_NS_INFINITIES = [2**63 - 1, -(2**63 - 1), -(2**63)]


def _holds_decimal(dtype: pl.DataType) -> bool:
    if isinstance(dtype, pl.Decimal):
        return True
    if isinstance(dtype, (pl.List, pl.Array)):
        return _holds_decimal(dtype.inner)
    if isinstance(dtype, pl.Struct):
        return any(_holds_decimal(f.dtype) for f in dtype.fields)
    return False


def _unmark_decimals(text: pl.Expr) -> pl.Expr:
    return text.str.replace_all(_MARKED_DECIMAL.pattern, "${1}")


def _holds_mark(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr | None:
    """Boolean: a text nested in the value holds _DECIMAL_MARK (None when it holds no text)."""
    return any_nested(expr, dtype, lambda e, t: e.cast(pl.String).str.contains(_DECIMAL_MARK, literal=True)
                      .fill_null(False) if _is_text_type(t) else None)


def _is_text_type(dtype: pl.DataType) -> bool:
    return dtype == pl.String or isinstance(dtype, (pl.Categorical, pl.Enum))


def beyond_calendar(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Boolean: the date/datetime lies outside the years 1 to 9999 (or is an infinity)."""
    if dtype == pl.Date:
        per_day = 1
    elif dtype.time_unit in _UNIT_PER_DAY:
        per_day = _UNIT_PER_DAY[dtype.time_unit]
    else:
        return expr.to_physical().cast(pl.Int64).is_in(_NS_INFINITIES).fill_null(False)
    physical = expr.to_physical().cast(pl.Int64)
    return ((physical >= _END_DAY * per_day) | (physical < _FIRST_DAY * per_day)).fill_null(False)


def beyond_calendar_nested(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr | None:
    """Boolean: a list or struct holds a date/datetime outside the years 1 to 9999 (at any depth).
    None when the type holds no date."""
    return any_nested(expr, dtype, lambda e, t: beyond_calendar(e, t) if t == pl.Date or isinstance(t, pl.Datetime)
                      else None)


def value_json(expr: pl.Expr, dtype: pl.DataType, label: str) -> Encoded:
    """JSON text of the values of a column of type `dtype`; `label` names it in error messages."""
    if dtype == pl.Null:
        return Encoded(expr.cast(pl.String))
    if dtype == pl.String or isinstance(dtype, (pl.Categorical, pl.Enum)):
        return Encoded(string_json(expr), size=expr.cast(pl.String).str.len_bytes())
    if dtype.is_integer() or dtype == pl.Boolean or isinstance(dtype, pl.Decimal):
        return Encoded(expr.cast(pl.String))
    if dtype.is_float():
        bad = nonfinite(expr, dtype)
        return Encoded(expr.cast(pl.String), [(bad, pl.lit(NONFINITE.format(label=label)))])
    if dtype == pl.Date or isinstance(dtype, pl.Datetime):
        # PostgreSQL's and DuckDB's ±infinity arrive as extreme integers, beyond the calendar Polars
        # formats (formatting them panics): such a row is rejected, the others are sent.
        bad = beyond_calendar(expr, dtype)
        safe = pl.when(bad).then(None).otherwise(expr)
        text = safe.dt.strftime('"%Y-%m-%d"') if dtype == pl.Date else iso_datetime(safe, dtype, quoted=True)
        why = BEYOND_CALENDAR.format(label=label)
        return Encoded(text, [(bad, pl.lit(why))])
    if dtype == pl.Time:
        return Encoded(iso_time(expr, quoted=True))
    if isinstance(dtype, pl.Duration):
        return Encoded(pl.struct(expr.alias("a")).struct.json_encode().str.slice(5).str.head(-1))
    if dtype == pl.Binary:
        return Encoded(quote(expr.bin.encode("base64")), size=expr.bin.size())
    if isinstance(dtype, (pl.List, pl.Array, pl.Struct)):
        text = pl.struct(_prep_nested(expr, dtype).alias("a")).struct.json_encode().str.slice(5).str.head(-1)
        problems = []
        if _holds_decimal(dtype):
            text = _unmark_decimals(text)
            marked = _holds_mark(expr, dtype)
            if marked is not None:
                problems.append((marked, pl.lit(RESERVED_TEXT.format(label=label))))
                text = pl.when(marked).then(_NULL).otherwise(text)
        text = pl.when(expr.is_null()).then(_NULL).otherwise(text)
        bad = nonfinite(expr, dtype)
        if bad is not None:
            problems.append((bad, pl.lit(NONFINITE.format(label=label))))
        beyond = beyond_calendar_nested(expr, dtype)
        if beyond is not None:
            problems.append((beyond, pl.lit(BEYOND_CALENDAR.format(label=label))))
        return Encoded(text, problems, size_of_text=True)
    return Encoded(_NULL, [(expr.is_not_null(), pl.lit(f"{label}: values of type {dtype} cannot be sent as JSON"))])


_JSON_NUMBER = r"^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$"
NONFINITE_TEXT = r"(?i)^[+-]?(?:nan|inf)"  # the text of a NaN or infinite number


def numeric_text_json(expr: pl.Expr, label: str, free_scale: bool = False) -> Encoded:
    """JSON of decimal numbers written as text (a `numeric_text` column, e.g. PostgreSQL's numeric:
    see dinsync.warehouses.numeric_text): the digits themselves, as a JSON number (exact, whatever
    their count). NaN and ±Infinity are rejected as for floats; so is a number beyond a 64-bit
    float's range (|x| > 1.8e308), which JSON parsers read as an infinity or refuse, failing the
    whole request on some platforms. `free_scale` (the column declares no scale): an integral
    number is written with a fraction (`5.0`), as every other number of the column has one or may."""
    s = expr.cast(pl.String)
    if free_scale:
        s = pl.when(s.str.contains(r"^-?[0-9]+$")).then(pl.concat_str([s, pl.lit(".0")])).otherwise(s)
    number = s.str.contains(_JSON_NUMBER).fill_null(False)
    ok = number & s.cast(pl.Float64, strict=False).is_finite().fill_null(False)
    reason = (
        pl.when(s.str.contains(NONFINITE_TEXT)).then(pl.lit(NONFINITE.format(label=label)))
        .when(number).then(pl.concat_str([pl.lit(f"{label}: "), preview(s), pl.lit(
            " is beyond the range of a 64-bit float (1.8e308), which platforms read numbers as")]))
        .otherwise(pl.concat_str([pl.lit(f"{label}: cannot convert "), preview(s), pl.lit(" to a number")]))
    )
    return Encoded(pl.when(ok).then(s).otherwise(_NULL), [(s.is_not_null() & ~ok, reason)])


def numeric_text_list_json(expr: pl.Expr, label: str) -> Encoded:
    """JSON of lists of decimal numbers written as text (PostgreSQL's `numeric[]`: see
    dinsync.warehouses.numeric_text.numeric_text_list): an array of the digits as JSON numbers,
    exact; a list holding a NaN, an infinity or a number beyond a 64-bit float's range is rejected
    for its row, as such a number alone is (numeric_text_json)."""
    element = pl.element()
    number = element.str.contains(_JSON_NUMBER) & element.cast(pl.Float64, strict=False).is_finite()
    bad = expr.list.eval(element.is_not_null() & ~number.fill_null(False)).list.any().fill_null(False)
    nonfinite = expr.list.eval(element.str.contains(NONFINITE_TEXT).fill_null(False)).list.any().fill_null(False)
    text = pl.concat_str([pl.lit("["), expr.list.eval(element.fill_null("null")).list.join(","), pl.lit("]")])
    reason = (pl.when(nonfinite).then(pl.lit(NONFINITE.format(label=label)))
              .otherwise(pl.lit(f"{label}: an element is not a number within a 64-bit float's range (1.8e308)")))
    return Encoded(pl.when(expr.is_null() | bad).then(_NULL).otherwise(text), [(bad, reason)], size_of_text=True)


# what a `json` value that does not parse is, by orjson's message (JSON_OVERFLOW: valid JSON holding a
# number beyond a 64-bit float, `1e400`, which no platform stores; JSON_INVALID: any other error)
JSON_INVALID = "invalid"
JSON_OVERFLOW = "overflow"
_OVERFLOW_MESSAGE = "number is infinity when parsed as double"


def json_value_problems(series: pl.Series) -> pl.Series:
    """Per string, NULL when it parses as JSON (or is NULL), else JSON_INVALID or JSON_OVERFLOW.
    Parsed once per distinct value."""
    s = series.cast(pl.String)
    distinct = s.drop_nulls().unique()
    if distinct.len() == 0:
        return pl.Series(series.name, [None] * s.len(), dtype=pl.String)
    problems: list[str | None] = []
    for text in distinct.to_list():
        try:
            orjson.loads(text)
            problems.append(None)
        except orjson.JSONDecodeError as exc:
            problems.append(JSON_OVERFLOW if _OVERFLOW_MESSAGE in str(exc) else JSON_INVALID)
    return s.replace_strict(distinct, pl.Series(problems, dtype=pl.String), default=None, return_dtype=pl.String)


def json_values_valid(series: pl.Series) -> pl.Series:
    """Whether each string parses as JSON (NULL stays NULL). Parsed once per distinct value."""
    problems = json_value_problems(series)
    return pl.select(pl.when(series.cast(pl.String).is_not_null()).then(problems.is_null())).to_series().alias(
        series.name)


# --- request slicing ----------------------------------------------------------------------

def batches_by_size(
    frame: pl.DataFrame | pl.Series,
    max_rows: int,
    max_bytes: int | None,
    overhead_per_row: int = 0,
) -> list[tuple[int, int]]:
    """(offset, length) slices of consecutive rows, each with at most `max_rows` rows and at most
    `max_bytes` of `_bytes` + `overhead_per_row` per row.

    `max_bytes` is what the rows may take: the caller subtracts its fixed envelope (prefix,
    suffix) first. A row that alone exceeds `max_bytes` gets a slice of its own (it should have
    been rejected by `max_row_bytes` already). Greedy: one binary search per slice over the
    cumulative sums, no per-row Python.
    """
    if max_rows < 1:
        raise ValueError("max_rows must be at least 1")
    sizes = frame if isinstance(frame, pl.Series) else frame.get_column("_bytes")
    n = sizes.len()
    if n == 0:
        return []
    if max_bytes is None:
        return [(start, min(max_rows, n - start)) for start in range(0, n, max_rows)]
    cumulative = (sizes.cast(pl.Int64).fill_null(0) + overhead_per_row).cum_sum().to_list()
    slices = []
    start = 0
    while start < n:
        base = cumulative[start - 1] if start else 0
        end = bisect.bisect_right(cumulative, base + max_bytes, lo=start, hi=min(n, start + max_rows))
        end = max(end, start + 1)
        slices.append((start, end - start))
        start = end
    return slices
