"""The kinds of a mapped field: each column's values as the JSON of its kind, with its problems.

One function per kind (`_as_string`, `_as_integer`, ... and `_COERCE`, the table of those that take a
value of any type), as Polars expressions that `map_batch` (frame.py) evaluates column-wise: the JSON
text of each value and, per problem, the rows it rejects and why (`Encoded`). The coercions of each
kind are listed in frame.py's docstring. Also the kinds of decimals read as text (`numeric_text`)
and of arrays of more than one dimension, nested by their shapes.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from dinsync.mapping.json import (
    BEYOND_CALENDAR,
    NONFINITE,
    NONFINITE_TEXT,
    Encoded,
    beyond_calendar,
    JSON_OVERFLOW,
    numeric_text_json,
    numeric_text_list_json,
    quote,
    string_json,
    value_json,
)
from dinsync.mapping.normalize import (
    email_is_valid,
    email_problem,
    normalize_email,
    preview,
)

if TYPE_CHECKING:
    from dinsync.mapping.frame import FieldMapping

_NULL = pl.lit(None, pl.String)
_JSON_NUMBER = r"^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$"
_TRUE = ["true", "t", "yes", "y", "1"]
_FALSE = ["false", "f", "no", "n", "0"]
_DATETIME_RE = (
    r"^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::[0-5]\d(?:\.\d{1,9})?)?))?"  # (a leap second :60 is
    # no datetime a platform takes: Polars moved it to the next minute)
    r"(Z|z|[+-]\d{2}(?::?\d{2})?)?$"
)


def _why(v: pl.Expr, text: str, after: str = "") -> pl.Expr:
    """A reason quoting the value: '<text> '<value>'<after>'."""
    return pl.concat_str([pl.lit(text), preview(v), pl.lit(after)])


def _cannot(v: pl.Expr, bad: pl.Expr, label: str, what: str) -> tuple[pl.Expr, pl.Expr]:
    return bad, _why(v, f"{label}: cannot convert ", f" to {what}")


def _wrong_type(v: pl.Expr, dtype: pl.DataType, label: str, kind: str) -> Encoded:
    return Encoded(_NULL, [(v.is_not_null(), pl.lit(f"{label}: cannot convert values of type {dtype} to {kind}"))])


def _is_text(dtype: pl.DataType) -> bool:
    return dtype == pl.String or isinstance(dtype, (pl.Categorical, pl.Enum))


# --- field kinds ----------------------------------------------------------------------------

def _as_string(v: pl.Expr, dtype: pl.DataType, label: str) -> Encoded:
    inner = value_json(v, dtype, label)
    if dtype.is_numeric() or dtype == pl.Boolean:
        return Encoded(quote(inner.text), inner.problems)  # digits and true/false need no escaping
    if isinstance(dtype, (pl.List, pl.Array, pl.Struct)):
        return Encoded(string_json(inner.text), inner.problems, size_of_text=True)  # the JSON as text
    return inner  # already a JSON string (text, temporal, binary) or null


def _as_integer(v: pl.Expr, dtype: pl.DataType, label: str) -> Encoded:
    if dtype.is_integer() or dtype == pl.Null:
        return value_json(v, dtype, label)
    if dtype == pl.Boolean:
        return Encoded(v.cast(pl.Int8).cast(pl.String))
    if dtype.is_float():
        # within 128 bits, as text of digits and decimals are (an Int64 cast refused 1e19)
        ok = (v.is_finite() & (v == v.floor()) & (v.abs() < 2.0**127)).fill_null(False)
        text = pl.when(ok).then(v.cast(pl.Int128, strict=False).cast(pl.String)).otherwise(_NULL)
        return Encoded(text, [_cannot(v, v.is_not_null() & ~ok, label, "an integer")])
    if isinstance(dtype, pl.Decimal):
        s = v.cast(pl.String)
        ok = s.str.contains(r"^-?\d+(?:\.0*)?$").fill_null(False)
        text = pl.when(ok).then(s.str.replace(r"\.0*$", "")).otherwise(_NULL)
        return Encoded(text, [_cannot(v, v.is_not_null() & ~ok, label, "an integer")])
    if _is_text(dtype):
        t = v.cast(pl.String).str.strip_chars()
        n = pl.when(t.str.contains(r"^[+-]?\d+$")).then(t.cast(pl.Int128, strict=False))
        return Encoded(n.cast(pl.String), [_cannot(v, v.is_not_null() & n.is_null(), label, "an integer")])
    return _wrong_type(v, dtype, label, "integer")


def _as_number(v: pl.Expr, dtype: pl.DataType, label: str) -> Encoded:
    if dtype.is_numeric() or dtype == pl.Null:
        return value_json(v, dtype, label)
    if dtype == pl.Boolean:
        return Encoded(v.cast(pl.Int8).cast(pl.String))
    if _is_text(dtype):
        # an integral text gets a fraction ("100" -> 100.0), as a float column's numbers have: the
        # column's other rows may hold "99.5", and Iterable types a field by the first number it sees
        t = v.cast(pl.String).str.strip_chars()
        f = t.cast(pl.Float64, strict=False)
        ok = f.is_finite().fill_null(False)
        text = (pl.when(~ok).then(_NULL)
                .when(t.str.contains(r"^-?(?:0|[1-9][0-9]*)$")).then(pl.concat_str([t, pl.lit(".0")]))
                .when(t.str.contains(_JSON_NUMBER)).then(t).otherwise(f.cast(pl.String)))
        return Encoded(text, [_cannot(v, v.is_not_null() & ~ok, label, "a number")])
    return _wrong_type(v, dtype, label, "number")


def _as_boolean(v: pl.Expr, dtype: pl.DataType, label: str) -> Encoded:
    if dtype in (pl.Boolean, pl.Null):
        return value_json(v, dtype, label)
    if dtype.is_numeric():  # (decimals too: a HUGEINT or DECIMAL(p, 0) of 0 / 1)
        b = pl.when(v == 1).then(pl.lit("true")).when(v == 0).then(pl.lit("false")).otherwise(_NULL)
    elif _is_text(dtype):
        t = v.cast(pl.String).str.strip_chars().str.to_lowercase()
        b = pl.when(t.is_in(_TRUE)).then(pl.lit("true")).when(t.is_in(_FALSE)).then(pl.lit("false")).otherwise(_NULL)
    else:
        return _wrong_type(v, dtype, label, "boolean")
    return Encoded(b, [_cannot(v, v.is_not_null() & b.is_null(), label, "a boolean")])


def _as_date(v: pl.Expr, dtype: pl.DataType, label: str) -> Encoded:
    if dtype in (pl.Date, pl.Null):
        return value_json(v, dtype, label)
    if isinstance(dtype, pl.Datetime):
        # an infinity (±INT64_MAX of its unit) is rejected before taking the date, which gave NULL
        # (sent as null: the platform's value cleared) or a day of 1677 / 2262 for nanoseconds
        beyond = beyond_calendar(v, dtype)
        safe = pl.when(beyond).then(None).otherwise(v)
        utc = safe.dt.convert_time_zone("UTC") if dtype.time_zone else safe
        enc = value_json(utc.dt.date(), pl.Date, label)
        return Encoded(enc.text, [*enc.problems, (beyond, pl.lit(BEYOND_CALENDAR.format(label=label)))])
    if _is_text(dtype):
        t = v.cast(pl.String).str.strip_chars()
        d = pl.when(t.str.contains(r"^\d{4}-\d{2}-\d{2}$")).then(t.str.to_date("%Y-%m-%d", strict=False))
        bad = v.is_not_null() & d.is_null()
        enc = value_json(d, pl.Date, label)  # its problems: year 0 parses, and is beyond the calendar
        return Encoded(enc.text, [_cannot(v, bad, label, "a date (YYYY-MM-DD)"), *enc.problems])
    return _wrong_type(v, dtype, label, "date")


def _as_datetime(v: pl.Expr, dtype: pl.DataType, label: str) -> Encoded:
    if isinstance(dtype, pl.Datetime) or dtype == pl.Null:
        return value_json(v, dtype, label)
    if dtype == pl.Date:
        # a date beyond the years 1 to 9999 (DuckDB's 'infinity') is rejected before the cast,
        # which panics ("out-of-range date") far out
        beyond = beyond_calendar(v, dtype)
        enc = value_json(pl.when(beyond).then(None).otherwise(v).cast(pl.Datetime("us")), pl.Datetime("us"), label)
        return Encoded(enc.text, [*enc.problems, (beyond, pl.lit(BEYOND_CALENDAR.format(label=label)))])
    if not _is_text(dtype):
        return _wrong_type(v, dtype, label, "datetime")
    parts = v.cast(pl.String).str.strip_chars().str.extract_groups(_DATETIME_RE)
    day, clock, zone = (parts.struct.field(n) for n in ("1", "2", "3"))
    clock = (
        pl.when(clock.is_null()).then(pl.lit("00:00:00"))
        .when(clock.str.len_bytes() == 5).then(pl.concat_str([clock, pl.lit(":00")]))
        .otherwise(clock)
    )
    naive = pl.concat_str([day, pl.lit("T"), clock]).str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", time_unit="us", strict=False)
    digits = zone.str.replace(":", "", literal=True)
    hours = digits.str.slice(1, 2).cast(pl.Int64, strict=False).fill_null(0)
    zone_minutes = digits.str.slice(3, 2).cast(pl.Int64, strict=False).fill_null(0)
    # an offset of 24 hours or more, or of 60 minutes or more, is no offset (ISO 8601, RFC 3339):
    # converted, `+99:99` sent an instant 4 days off; such a value is rejected as unreadable
    naive = pl.when((hours > 23) | (zone_minutes > 59)).then(None).otherwise(naive)
    minutes = hours * 60 + zone_minutes
    signed = pl.when(zone.str.starts_with("-")).then(-minutes).otherwise(minutes)
    utc = (naive - pl.duration(minutes=signed)).dt.replace_time_zone("UTC")
    local, instant = value_json(naive, pl.Datetime("us"), label), value_json(utc, pl.Datetime("us", "UTC"), label)
    text = pl.when(zone.is_null()).then(local.text).otherwise(instant.text)
    # year 0 parses, and an offset may move the instant to year 0 or 10000: beyond the calendar
    beyond = [(pl.when(zone.is_null()).then(a).otherwise(b), why)
              for (a, why), (b, _) in zip(local.problems, instant.problems)]
    return Encoded(text, [_cannot(v, v.is_not_null() & naive.is_null(), label, "a datetime (ISO 8601)"), *beyond])


def _as_email(v: pl.Expr, s: pl.Expr, dtype: pl.DataType, label: str) -> Encoded:
    """`s` is the normalised column (see _normalised_email), materialised once."""
    if dtype == pl.Null:
        return Encoded(v.cast(pl.String))
    if not _is_text(dtype):
        return _wrong_type(v, dtype, label, "email")
    bad = s.is_not_null() & ~email_is_valid(s)
    reason = pl.concat_str([_why(v, f"{label}: invalid email ", " ("), email_problem(s), pl.lit(")")])
    return Encoded(string_json(s), [(bad, reason)], s.str.len_bytes())


def _normalised_email(v: pl.Expr) -> pl.Expr:
    s = normalize_email(v)
    return pl.when(s == "").then(_NULL).otherwise(s)


def phone_note(text: str, region: str | None) -> str:
    """What follows "not a valid phone number": the default region it was read in; without one,
    the hint to write it in international form, unless it is written so, with its '+' (then it is
    no plausible number of its country, and the hint misled: a phone key's '00' is read as that
    '+', and its national numbers get theirs from the region)."""
    if region:
        return f" (default region {region})"
    return "" if text.strip().startswith("+") else " (no default region: write it in international form, +...)"


def _phone_note(v: pl.Expr, region: str | None) -> pl.Expr:
    """`phone_note` of each value of `v`."""
    international = v.cast(pl.String).str.strip_chars().str.starts_with("+")
    return pl.when(international).then(pl.lit(phone_note("+", region))).otherwise(pl.lit(phone_note("", region)))


def _as_phone(v: pl.Expr, e164: pl.Expr, label: str, region: str | None) -> Encoded:
    blank = v.cast(pl.String).str.strip_chars() == ""
    bad = v.is_not_null() & ~blank & e164.is_null()
    return Encoded(string_json(e164), [(bad, pl.concat_str([_why(v, f"{label}: invalid phone number "),
                                                            _phone_note(v, region)]))])


def _as_json(v: pl.Expr, dtype: pl.DataType, why: pl.Expr | None, label: str) -> Encoded:
    """`why`: the text's problem (json_value_problems), NULL when it parses."""
    if why is None:
        return value_json(v, dtype, label)
    s = v.cast(pl.String)
    overflow = v.is_not_null() & (why == JSON_OVERFLOW).fill_null(False)
    bad = v.is_not_null() & why.is_not_null()
    return Encoded(s.str.strip_chars(), [
        (overflow, _why(v, f"{label}: JSON ", " is valid but holds a number beyond what a 64-bit float holds "
                                               "(about ±1.8e308), which no platform stores")),
        (bad, _why(v, f"{label}: invalid JSON ")),
    ], s.str.len_bytes())


def _as_kind_numeric_text(v: pl.Expr, dtype: pl.DataType, kind: str, label: str,
                          free_scale: bool = False) -> Encoded:
    """A column of decimal numbers as text (`numeric_text`), as a decimal column is coerced:
    NaN / ±Infinity rejected (see numeric_text_json); `free_scale`: each number is written with a
    fraction (see dinsync.warehouses.numeric_text). A list of them (`dtype` a list of strings:
    `numeric[]`) is coerced as a list of decimals is: a JSON array, or its text for `string`."""
    if isinstance(dtype, pl.List):
        if kind in ("auto", "json"):
            return numeric_text_list_json(v, label)
        if kind == "string":
            inner = numeric_text_list_json(v, label)
            return Encoded(string_json(inner.text), inner.problems, size_of_text=True)
        return _wrong_type(v, dtype, label, kind)
    if kind in ("auto", "number", "json"):
        return numeric_text_json(v, label, free_scale)
    if kind == "string":
        # a string of the digits: only NaN / ±Infinity are rejected (as for floats); a number beyond
        # a float's range has a JSON string form, unlike a JSON number's
        s = v.cast(pl.String)
        bad = s.str.contains(NONFINITE_TEXT).fill_null(False)
        return Encoded(quote(pl.when(bad).then(_NULL).otherwise(s)), [(bad, pl.lit(NONFINITE.format(label=label)))])
    if kind == "integer":
        s = v.cast(pl.String)
        ok = s.str.contains(r"^-?\d+(?:\.0*)?$").fill_null(False)
        text = pl.when(ok).then(s.str.replace(r"\.0*$", "")).otherwise(_NULL)
        return Encoded(text, [_cannot(v, v.is_not_null() & ~ok, label, "an integer")])
    if kind == "boolean":  # 1 / 0 (1.0, 0.00 ...), as for the other numbers
        s = v.cast(pl.String).str.strip_chars()
        b = (pl.when(s.str.contains(r"^1(?:\.0*)?$")).then(pl.lit("true"))
             .when(s.str.contains(r"^-?0(?:\.0*)?$")).then(pl.lit("false")).otherwise(_NULL))
        return Encoded(b, [_cannot(v, v.is_not_null() & b.is_null(), label, "a boolean")])
    return _wrong_type(v, "numeric", label, kind)  # type: ignore[arg-type]


def _with_dimensions(enc: Encoded, v: pl.Expr, dtype: pl.DataType, f: FieldMapping, label: str, numeric: bool,
                     dims: pl.Expr) -> Encoded:
    """`enc` of a column of lists, with the lists of the rows that have dimensions (of an array of
    more than one: dinsync.warehouses.array_shapes) nested by them ([1,2,3,4] of [2, 2] as
    [[1,2],[3,4]]), each element written as in a list of one dimension."""
    if f.kind not in ("auto", "json", "string") or not isinstance(dtype, pl.List):
        return enc  # (a list is no integer, number, ...: rejected as it is)
    if f.kind == "string":  # the JSON of the list, nested, as a JSON string
        inner = numeric_text_list_json(v, label) if numeric else value_json(v, dtype, label)
        nested = _nested(inner.text, dims)
        return Encoded(string_json(nested), inner.problems, size_of_text=True)
    return Encoded(_nested(enc.text, dims), enc.problems, enc.size, enc.size_of_text)


def _nested(text: pl.Expr, dims: pl.Expr) -> pl.Expr:
    """The JSON arrays `text` of the rows with `dims` nested by them; the others as they are. Python
    only for the rows with dimensions (rare)."""
    from dinsync.warehouses.array_shapes import json_elements, nested_json

    def nest(pair: pl.Series) -> pl.Series:
        texts, shapes = pair.struct.field("t"), pair.struct.field("d")
        rows = shapes.is_not_null() & texts.is_not_null() & (texts != "null")
        if not rows.any():
            return texts
        index = rows.arg_true()
        nested = [nested_json(json_elements(t), d) for t, d in zip(texts.gather(index).to_list(),
                                                                   shapes.gather(index).to_list())]
        return texts.scatter(index, pl.Series(nested, dtype=pl.String))

    return pl.struct(text.cast(pl.String).alias("t"), dims.alias("d")).map_batches(nest, return_dtype=pl.String)


_COERCE = {
    "auto": value_json,
    "string": _as_string,
    "integer": _as_integer,
    "number": _as_number,
    "boolean": _as_boolean,
    "date": _as_date,
    "datetime": _as_datetime,
}
