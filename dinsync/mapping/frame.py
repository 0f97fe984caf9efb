"""Map a batch of plan rows to validated JSON objects, column-wise in Polars.

Input columns: ``_key`` (matching key, normalised in SQL), ``_op`` ('added' | 'changed') and per
mapped field i: ``v{i}`` (value) and ``x{i}`` (bool: send this field for this row).

Output (`MappedBatch.frame`): ``_key`` (unchanged: the plan's identity, used to commit),
``_op``, ``_id`` (the identifier to send: email trimmed and lowercased, phone in E.164, string
key as is), ``_json`` (a JSON object of the flagged fields in mapping order, without the key:
destinations add it in their own shape) and ``_bytes`` (UTF-8 size of ``_json``).

Every problem becomes a row of `MappedBatch.rejections` (``_key``, ``field``, ``reason``) and
takes the row out of the frame. Values of fields that are not sent for a row are not checked.
Only phone parsing and ``json``-kind validation call Python, once per distinct value.

Kind coercions (strict: a value that does not convert is a rejection naming field and value):
  - ``string``: numbers, booleans, dates (ISO) as text; lists/structs as their JSON text.
  - ``integer``: integers; booleans as 0/1; integral floats/decimals; strings of digits
    (optional sign, surrounding spaces allowed) within 128-bit range.
  - ``number``: integers, floats, decimals; booleans as 0/1; numeric strings (a string already
    in JSON number syntax is sent digit for digit, an integral one with a fraction, ``100.0``:
    others through a float).
  Decimals read as text (``numeric_text``: PostgreSQL's numeric, whatever its precision) are
  coerced as decimals, from their exact digits; a NaN or an infinity among them is rejected.
  - ``boolean``: booleans; 0/1; strings true/false, t/f, yes/no, y/n, 1/0 (any case).
  - ``date``: dates; datetimes (tz-aware ones in UTC) truncated; strings ``YYYY-MM-DD``.
  - ``datetime``: datetimes; dates at midnight; ISO strings ``YYYY-MM-DD[(T| )HH:MM[:SS[.f]]]``
    with optional ``Z`` / ``±HH[:MM]`` (those are converted to UTC and written with ``Z``; an
    offset of 24 hours or more, or of 60 minutes or more, is no offset: the value is rejected).
  - ``email``: trimmed, lowercased, validated (see dinsync.mapping.normalize); blank → NULL.
  - ``phone``: E.164 via phonenumbers with `phone_region` as default region; blank → NULL.
  - ``json``: a string column is embedded as raw JSON after checking it parses; other types
    are encoded as for ``auto``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Collection, Mapping

import orjson
import polars as pl

from dinsync.mapping.json import (
    BEYOND_CALENDAR,
    NONFINITE,
    NONFINITE_TEXT,
    Encoded,
    beyond_calendar,
    JSON_OVERFLOW,
    json_value_problems,
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
    normalize_phones,
    phone_key_unreadable,
    preview,
)

FIELD_KINDS = ("auto", "string", "integer", "number", "boolean", "date", "datetime", "email", "phone", "json")
KEY_KINDS = ("email", "phone", "string")

FRAME_SCHEMA = {"_key": pl.String, "_op": pl.String, "_id": pl.String, "_json": pl.String, "_bytes": pl.Int64}
REJECTION_SCHEMA = {"_key": pl.String, "field": pl.String, "reason": pl.String}
# the column of the dimensions of the arrays of more than one dimension of column `name` (frame_from_arrow)
DIMS_COLUMN = "_dims_{name}"

_NULL = pl.lit(None, pl.String)
_JSON_NUMBER = r"^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$"
_TRUE = ["true", "t", "yes", "y", "1"]
_FALSE = ["false", "f", "no", "n", "0"]
_DATETIME_RE = (
    r"^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::[0-5]\d(?:\.\d{1,9})?)?))?"  # (a leap second :60 is
    # no datetime a platform takes: Polars moved it to the next minute)
    r"(Z|z|[+-]\d{2}(?::?\d{2})?)?$"
)


@dataclass(frozen=True)
class FieldMapping:
    index: int  # i of v{i} / x{i}
    field: str  # destination field name (JSON key)
    kind: str = "auto"


@dataclass(frozen=True)
class KeyMapping:
    field: str  # destination identifier name, e.g. "email" or "userId"
    kind: str  # "email" | "phone" | "string"
    max_length: int | None = None
    # `_key` is the plan's key, which the diff's SQL normalised (dinsync.diff.keys): an email key
    # is then sent as it is. Normalised again here, two plan keys could become one identifier
    # (Polars strips every whitespace character where the SQL trims spaces, and lowercases some
    # letters of newer Unicode versions the SQL leaves alone), and one user would take the values
    # of two rows. A plan key with a tab or a newline is rejected by the email check instead.
    planned: bool = False


@dataclass
class MappedBatch:
    frame: pl.DataFrame  # _key, _op, _id, _json, _bytes
    rejections: pl.DataFrame  # _key, field, reason


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


def _phone_note(region: str | None) -> str:
    return f" (default region {region})" if region else " (no default region: write it in international form, +...)"


def _as_phone(v: pl.Expr, e164: pl.Expr, label: str, region: str | None) -> Encoded:
    blank = v.cast(pl.String).str.strip_chars() == ""
    bad = v.is_not_null() & ~blank & e164.is_null()
    return Encoded(string_json(e164), [(bad, _why(v, f"{label}: invalid phone number ", _phone_note(region)))])


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


def frame_from_arrow(batch: Any) -> tuple[pl.DataFrame, dict[str, bool]]:
    """A plan batch (Arrow) as a Polars frame, and its `numeric_text` columns (decimal numbers as
    text: dinsync.warehouses.numeric_text), which the frame holds as strings, each with whether it
    declares no scale: pass them to `map_batch(numeric_text=...)`. A column of arrays with their
    shapes (dinsync.warehouses.array_shapes) is the lists of their elements, and the dimensions of
    those of more than one in a column of their own (DIMS_COLUMN), which `map_batch` nests them by."""
    from dinsync.warehouses.array_shapes import is_with_shapes, split
    from dinsync.warehouses.numeric_text import free_scale, is_numeric_text, is_numeric_text_list

    if any(is_with_shapes(f.type) for f in batch.schema):
        columns, names, shapes = [], [], []
        for f, c in zip(batch.schema, batch.columns):
            if is_with_shapes(f.type):
                c, dims = split(c)
                shapes.append((DIMS_COLUMN.format(name=f.name), dims))
            columns.append(c)
            names.append(f.name)
        batch = type(batch).from_arrays(columns + [d for _, d in shapes], names=names + [n for n, _ in shapes])
    numeric = {f.name: free_scale(f.type) for f in batch.schema if is_numeric_text(f.type)}
    numeric.update({f.name: False for f in batch.schema if is_numeric_text_list(f.type)})
    seconds = [f.name for f in batch.schema if _holds(f.type, _is_seconds)]
    midnights = [i for i, (f, c) in enumerate(zip(batch.schema, batch.columns))
                 if _holds(f.type, _is_time) and _end_of_day(c)]
    zoned = [i for i, f in enumerate(batch.schema) if _holds(f.type, _is_zoned)]
    if numeric or seconds or midnights or zoned:
        columns = [c.storage if is_numeric_text(c.type)
                   else _list_storage(c) if is_numeric_text_list(c.type)
                   else _rebuilt(c, _is_seconds, _seconds_to_ms) if _holds(c.type, _is_seconds) else c
                   for c in batch.columns]
        for i in midnights:
            columns[i] = _rebuilt(columns[i], _is_time, _time_texts)
        for i in zoned:
            columns[i] = columns[i].cast(utc_labelled(columns[i].type))
        batch = type(batch).from_arrays(columns, names=batch.schema.names)
    return pl.from_arrow(batch), numeric


def _is_zoned(t: Any) -> bool:
    import pyarrow as pa

    return pa.types.is_timestamp(t) and t.tz is not None and t.tz != "UTC"


def utc_labelled(t: Any) -> Any:
    """An Arrow type with each time zone of its timestamps (at any depth) replaced by UTC. A zoned
    timestamp holds instants (counted from 1970-01-01 UTC) and its zone is only a label: DuckDB's
    is the session's, ICU's name for TZ, which Polars and Python may not know (`IST`, `PST`, `JST`:
    every run of a TIMESTAMPTZ column failed under TZ=IST). A cast to it keeps every value."""
    import pyarrow as pa

    if pa.types.is_timestamp(t):
        return pa.timestamp(t.unit, "UTC") if t.tz is not None else t
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        inner = t.value_field.with_type(utc_labelled(t.value_type))
        return (pa.list_(inner) if pa.types.is_list(t) else pa.large_list(inner) if pa.types.is_large_list(t)
                else pa.list_(inner, t.list_size))
    if pa.types.is_struct(t):
        return pa.struct([t.field(i).with_type(utc_labelled(t.field(i).type)) for i in range(t.num_fields)])
    return t


def _list_storage(lists: Any) -> Any:
    """A list array of an extension type's values as a list of their storage (Polars reads no
    extension type inside a list)."""
    import pyarrow as pa

    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    if lists.offset:
        lists = pa.concat_arrays([lists])
    kind = pa.LargeListArray if pa.types.is_large_list(lists.type) else pa.ListArray
    return kind.from_arrays(lists.offsets, lists.values.storage, mask=lists.is_null())


_DAY = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}


def _is_time(t: Any) -> bool:
    import pyarrow as pa

    return pa.types.is_time(t)


def _is_seconds(t: Any) -> bool:
    import pyarrow as pa

    return pa.types.is_timestamp(t) and t.unit == "s"


def _holds(t: Any, leaf: Callable[[Any], bool]) -> bool:
    """Whether an Arrow type is, or holds in its lists and structs, a type `leaf` accepts."""
    import pyarrow as pa

    if leaf(t):
        return True
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _holds(t.value_type, leaf)
    if pa.types.is_struct(t):
        return any(_holds(t.field(i).type, leaf) for i in range(t.num_fields))
    return False


def _rebuilt(array: Any, leaf: Callable[[Any], bool], convert: Callable[[Any], Any]) -> Any:
    """`array` with `convert` applied to its values of a type `leaf` accepts, at any depth of its
    lists and structs (rebuilt around them); other values as they are."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = array.type
    if isinstance(array, pa.ChunkedArray):
        chunks = [_rebuilt(c, leaf, convert) for c in array.chunks]
        return pa.chunked_array(chunks, chunks[0].type if chunks else None)
    if leaf(t):
        return convert(array)
    if pa.types.is_fixed_size_list(t) or pa.types.is_large_list(t):
        return _rebuilt(array.cast(pa.list_(t.value_field)), leaf, convert)
    if pa.types.is_list(t):  # a slice's offsets index its child array from their first one
        start, end = array.offsets[0].as_py(), array.offsets[-1].as_py()
        offsets = pc.subtract(array.offsets, pa.scalar(start, array.offsets.type))
        values = _rebuilt(array.values.slice(start, end - start), leaf, convert)
        return pa.ListArray.from_arrays(offsets, values, pa.list_(t.value_field.with_type(values.type)),
                                        mask=array.is_null())
    if pa.types.is_struct(t):
        fields = [_rebuilt(f, leaf, convert) for f in array.flatten()]  # with the slice's offset applied
        return pa.StructArray.from_arrays(fields, fields=[t.field(i).with_type(f.type) for i, f in enumerate(fields)],
                                          mask=array.is_null())
    return array


def _end_of_day(column: Any) -> bool:
    """Whether a TIME column holds '24:00:00' (the end of a day, in DuckDB and PostgreSQL), which
    Polars reads as null: sent so, it would clear the field in the platform. Also in lists and
    structs."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = column.type
    if isinstance(column, pa.ChunkedArray):
        return any(_end_of_day(c) for c in column.chunks)
    if pa.types.is_time(t):
        return column.null_count < len(column) and pc.max(_time_ints(column)).as_py() >= _DAY[t.unit]
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _end_of_day(column.flatten())
    if pa.types.is_struct(t):
        return any(_end_of_day(f) for f in column.flatten())
    return False


def _time_ints(column: Any) -> Any:
    import pyarrow as pa

    return column.cast(pa.int32() if column.type.bit_width == 32 else pa.int64())


def _time_texts(column: Any) -> Any:
    """TIMEs (one array) as the ISO 8601 text the mapping writes of times (`HH:MM:SS`, and `.ffffff`
    when not zero), per distinct value: only for columns holding '24:00:00', which are rare."""
    import pyarrow as pa

    times, over = {"s": (1_000_000, 1), "ms": (1_000, 1), "us": (1, 1), "ns": (1, 1_000)}[column.type.unit]
    texts: dict[int, str] = {}
    out = []
    for raw in _time_ints(column).to_pylist():
        if raw is None:
            out.append(None)
            continue
        if raw not in texts:
            us = raw * times // over  # microseconds: what the mapping writes of times
            seconds, micro = divmod(us, 1_000_000)
            text = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
            texts[raw] = text + (f".{micro:06d}" if micro else "")
        out.append(texts[raw])
    return pa.array(out, pa.string())


_MS_LIMIT = (2**63 - 1) // 1000  # seconds beyond it do not fit an int64 of milliseconds


def _seconds_to_ms(array: Any) -> Any:
    """Timestamps in seconds (one array) as milliseconds, which Polars reads them as, without
    wrapping around: DuckDB's TIMESTAMP_S '±infinity' (±INT64_MAX s) times 1,000 became
    1969-12-31T23:59:59 and 1970-01-01T00:00:01. Those beyond an int64 of milliseconds become
    ±INT64_MAX ms, far beyond the calendar: their rows are rejected (`beyond_calendar`)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ints = array.cast(pa.int64())
    far = pc.greater(pc.abs(ints), _MS_LIMIT)
    ms = pc.if_else(far, pc.multiply(pc.sign(ints), 2**63 - 1), pc.multiply(ints, 1000))
    return ms.cast(pa.timestamp("ms", array.type.tz))


_COERCE = {
    "auto": value_json,
    "string": _as_string,
    "integer": _as_integer,
    "number": _as_number,
    "boolean": _as_boolean,
    "date": _as_date,
    "datetime": _as_datetime,
}


# --- key ------------------------------------------------------------------------------------

def _key_ident(key: KeyMapping) -> pl.Expr:
    """The identifier to send (materialised as `_id` before it is checked)."""
    raw = pl.col("_key").cast(pl.String)
    if key.kind == "email":
        return raw if key.planned else normalize_email(raw)
    if key.kind == "phone":
        return pl.col("_key_e164")
    return raw


_PHONE_KEY_UNREADABLE = ("is not read as a phone key: it holds characters other than ASCII digits, a leading '+' "
                         "and the separators (spaces, - . ( ) / and dashes), and its ASCII digits alone could be "
                         "another number")


def _key_checks(key: KeyMapping, region: str | None) -> tuple[pl.Expr, pl.Expr]:
    """Whether the key is bad, and why (evaluated on bad rows only)."""
    raw, ident = pl.col("_key"), pl.col("_id")
    if key.kind == "email":
        checks = [(~email_is_valid(ident), pl.concat_str([pl.lit("is not a valid email: "), email_problem(ident)]))]
    elif key.kind == "phone":
        # a key holding more than digits and separators arrives as written (dinsync.diff.keys):
        # phonenumbers would read +1201200000\uff18 or +1 800 FLOWERS, but under a key of its own,
        # not the one its number has
        checks = [(phone_key_unreadable(raw), pl.lit(_PHONE_KEY_UNREADABLE)),
                  (ident.is_null(), pl.lit("is not a valid phone number" + _phone_note(region)))]
    else:
        checks = [(raw == "", pl.lit("is empty")), (raw.str.strip_chars() == "", pl.lit("is blank"))]
    if key.max_length is not None:
        checks.append((ident.str.len_chars() > key.max_length, pl.lit(f"is longer than {key.max_length} characters")))
    label = f'key "{key.field}"'
    bad = raw.is_null() | pl.any_horizontal([c for c, _ in checks]).fill_null(True)
    reason = pl.when(raw.is_null()).then(pl.lit(f"{label}: value is null"))
    for cond, phrase in checks:
        reason = reason.when(cond).then(pl.concat_str([_why(raw, f"{label}: ", " "), phrase]))
    return bad, reason.otherwise(_NULL)


# --- the batch ------------------------------------------------------------------------------

def _check(frame: pl.DataFrame, key: KeyMapping, fields: list[FieldMapping]) -> None:
    if key.kind not in KEY_KINDS:
        raise ValueError(f"unknown key kind {key.kind!r} (expected one of {', '.join(KEY_KINDS)})")
    missing = [c for c in ("_key", "_op") if c not in frame.columns]
    seen: set[str] = set()
    for f in fields:
        if f.kind not in FIELD_KINDS:
            raise ValueError(f"field {f.field!r}: unknown kind {f.kind!r} (expected one of {', '.join(FIELD_KINDS)})")
        if f.field in seen:
            raise ValueError(f"field {f.field!r} is mapped twice")
        seen.add(f.field)
        missing += [c for c in (f"v{f.index}", f"x{f.index}") if c not in frame.columns]
    if missing:
        raise ValueError(f"plan batch lacks columns: {', '.join(missing)}")


def _largest_field(fields: list[FieldMapping]) -> tuple[pl.Expr | None, pl.Expr | None]:
    """The field of a row that takes the most bytes among those it sends, and ` (largest field
    "f": N bytes)`, for a row over the size cap (evaluated on such rows only): which of its values
    to shorten, where the reason gave the row's size alone and named no field (a 1 MB text among
    ten columns). (None, None) without fields."""
    if not fields:
        return None, None
    sizes = [pl.when(pl.col(f"x{f.index}").cast(pl.Boolean).fill_null(False))
             .then(pl.col(f"_text_{n}").str.len_bytes().fill_null(4)).otherwise(0) for n, f in enumerate(fields)]
    top = pl.max_horizontal(sizes)
    name = pl.when(sizes[0] == top).then(pl.lit(fields[0].field))
    for f, size in zip(fields[1:], sizes[1:]):
        name = name.when(size == top).then(pl.lit(f.field))
    name = name.otherwise(_NULL)
    return name, pl.concat_str([pl.lit(' (largest field "'), name, pl.lit('": '), top.cast(pl.String),
                                pl.lit(" bytes)")])


def map_batch(
    frame: pl.DataFrame,
    key: KeyMapping,
    fields: list[FieldMapping],
    *,
    phone_region: str | None = None,
    max_value_bytes: int | None = None,
    max_row_bytes: int | None = None,
    keep_field_text: bool = False,
    numeric_text: Collection[str] | Mapping[str, bool] = (),
) -> MappedBatch:
    """Validate and encode one batch of plan rows (see module docstring).

    `numeric_text`: the string columns that hold decimal numbers as text (see `frame_from_arrow`),
    coerced as decimals are (their digits sent exactly; NaN / ±Infinity rejected); as a mapping,
    with whether each declares no scale (then each number is written with a fraction).

    With `keep_field_text`, the output also has per mapped field n (position in `fields`) a
    column `_t{n}`: the JSON text of the value when the field is sent for the row (``null`` for a
    NULL value), NULL when it is not sent; destinations with their own payload shape build from it.
    """
    _check(frame, key, fields)
    schema = frame.schema
    # The stages below are one lazy query, collected once into `work`: each stage's columns are
    # materialised before the next stage reads them (expressions are not deduplicated), without a
    # query per stage (~0.5 ms each, per batch).
    lazy = frame.lazy().with_columns(pl.col("_key").cast(pl.String), pl.col("_op").cast(pl.String))
    # Stage 1: intermediate columns. Phones and JSON validity call Python once per distinct value.
    extra: list[pl.Series | pl.Expr] = []
    if key.kind == "phone":
        extra.append(normalize_phones(frame.get_column("_key").cast(pl.String), phone_region).alias("_key_e164"))
    for f in fields:
        col = frame.get_column(f"v{f.index}")
        if col.name in numeric_text:
            continue
        if f.kind == "phone" and (_is_text(col.dtype) or col.dtype.is_integer()):
            extra.append(normalize_phones(col, phone_region).alias(f"_e164_{f.index}"))
        elif f.kind == "json" and _is_text(col.dtype):
            extra.append(json_value_problems(col).alias(f"_jsonwhy_{f.index}"))
        elif f.kind == "email" and _is_text(col.dtype):
            extra.append(_normalised_email(pl.col(f"v{f.index}")).alias(f"_email_{f.index}"))
    if extra:
        lazy = lazy.with_columns(extra)
    added = {e.name if isinstance(e, pl.Series) else e.meta.output_name() for e in extra}
    lazy = lazy.with_columns(_key_ident(key).cast(pl.String).alias("_id"))

    # Stage 2: the JSON text of every field.
    encoded: list[Encoded] = []
    for f in fields:
        label = f'field "{f.field}"'
        v, dtype = pl.col(f"v{f.index}"), schema[f"v{f.index}"]
        if f"v{f.index}" in numeric_text:
            free = bool(numeric_text.get(f"v{f.index}")) if isinstance(numeric_text, Mapping) else False
            enc = _as_kind_numeric_text(v, dtype, f.kind, label, free)
        elif f.kind == "phone":
            if f"_e164_{f.index}" in added:
                enc = _as_phone(v, pl.col(f"_e164_{f.index}"), label, phone_region)
            else:
                enc = Encoded(v.cast(pl.String)) if dtype == pl.Null else _wrong_type(v, dtype, label, "phone")
        elif f.kind == "json":
            why = pl.col(f"_jsonwhy_{f.index}") if f"_jsonwhy_{f.index}" in added else None
            enc = _as_json(v, dtype, why, label)
        elif f.kind == "email":
            enc = _as_email(v, pl.col(f"_email_{f.index}"), dtype, label)
        else:
            enc = _COERCE[f.kind](v, dtype, label)
        dims = DIMS_COLUMN.format(name=f"v{f.index}")
        if dims in schema:  # arrays of more than one dimension among the lists (frame_from_arrow)
            enc = _with_dimensions(enc, v, dtype, f, label, f"v{f.index}" in numeric_text, pl.col(dims))
        encoded.append(enc)
    lazy = lazy.with_columns([enc.text.cast(pl.String).alias(f"_text_{n}") for n, enc in enumerate(encoded)])

    # Stage 3: problems, fragments, the row object.
    key_bad, key_reason = _key_checks(key, phone_region)
    checks = {"_bad_key": (key.field, key_bad, key_reason)}  # column -> (field, bad, reason)
    fragments = []
    field_text: list[pl.Expr] = []
    for n, (f, enc) in enumerate(zip(fields, encoded)):
        label = f'field "{f.field}"'
        text = pl.col(f"_text_{n}")
        problems = list(enc.problems)
        size = text.str.len_bytes() if enc.size_of_text else enc.size
        if max_value_bytes is not None and size is not None:
            size_reason = pl.concat_str([pl.lit(f"{label}: value is "), size.cast(pl.String),
                                         pl.lit(f" bytes, over the limit of {max_value_bytes} bytes")])
            problems.append((size > max_value_bytes, size_reason))
        sent = pl.col(f"x{f.index}").cast(pl.Boolean).fill_null(False)
        # `,"field":` then the value; NULL (dropped by concat_str) when the field is not sent.
        fragments.append(pl.when(sent).then(pl.lit("," + orjson.dumps(f.field).decode() + ":")))
        fragments.append(pl.when(sent).then(text.fill_null("null")))
        if keep_field_text:
            field_text.append(pl.when(sent).then(text.fill_null("null")).alias(f"_t{n}"))
        if problems:
            bad = sent & pl.any_horizontal([b for b, _ in problems]).fill_null(False)
            reason = pl.when(problems[0][0]).then(problems[0][1])
            for b, r in problems[1:]:
                reason = reason.when(b).then(r)
            checks[f"_bad_{n}"] = (f.field, bad, reason.otherwise(_NULL))

    # One concatenation per row; the comma before the first sent field is then dropped.
    obj = pl.concat_str([pl.lit("{"), *fragments, pl.lit("}")], ignore_nulls=True).str.replace("{,", "{", literal=True)
    lazy = lazy.with_columns(
        obj.alias("_json"),
        *field_text,
        *[bad.alias(name) for name, (_, bad, _) in checks.items()],
    ).with_columns(pl.col("_json").str.len_bytes().cast(pl.Int64).alias("_bytes"))
    if max_row_bytes is not None:
        row_reason = pl.concat_str([pl.lit("row is "), pl.col("_bytes").cast(pl.String),
                                    pl.lit(f" bytes of JSON, over the limit of {max_row_bytes} bytes")])
        largest, largest_reason = _largest_field(fields)
        checks["_bad_row"] = (largest, pl.col("_bytes") > max_row_bytes,
                              row_reason if largest_reason is None else pl.concat_str([row_reason, largest_reason]))
        lazy = lazy.with_columns((pl.col("_bytes") > max_row_bytes).alias("_bad_row"))
    work = lazy.collect()

    any_bad = pl.any_horizontal([pl.col(name) for name in checks])
    out_columns = list(FRAME_SCHEMA) + [f"_t{n}" for n in range(len(fields)) if keep_field_text]
    valid = work.lazy().filter(~any_bad).select(out_columns).collect()
    bad_rows = work.filter(any_bad)  # usually few: reasons are only computed here
    if bad_rows.height == 0:  # the common batch: no query per check (~0.5 ms each, per batch)
        return MappedBatch(valid, pl.DataFrame(schema=REJECTION_SCHEMA))
    rejections = pl.concat([  # one query for all checks
        bad_rows.lazy().filter(pl.col(name)).select(
            "_key", (field_name if isinstance(field_name, pl.Expr) else pl.lit(field_name, pl.String)).alias("field"),
            reason.cast(pl.String).alias("reason"))
        for name, (field_name, _, reason) in checks.items()
    ]).collect()
    return MappedBatch(valid, rejections)
