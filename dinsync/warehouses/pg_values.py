"""Values read through psycopg as Arrow: the Arrow type of a result column by its type OID,
numerics (exact, NaN and infinities kept: `numeric_text`), arrays of any number of dimensions
(`one_dimension`, `any_dimensions`), and the loaders a connection reads values with, so that they
come out as the ADBC path reads them (text forms, char(n) unpadded, dates beyond the calendar,
'24:00:00'). Used by `PsycopgSessions.query` and `CursorStream`.
"""
from __future__ import annotations

import functools
from typing import Any

import pyarrow as pa

from .array_shapes import with_shapes
from .numeric_text import numeric_text, numeric_text_list


_OID_TYPES = {  # PostgreSQL type OID -> Arrow type, for rows read through psycopg
    16: pa.bool_(), 20: pa.int64(), 21: pa.int16(), 23: pa.int32(), 25: pa.string(), 700: pa.float32(),
    701: pa.float64(), 1042: pa.string(), 1043: pa.string(), 19: pa.string(), 1082: pa.date32(),
    1114: pa.timestamp("us"), 1184: pa.timestamp("us", tz="UTC"), 17: pa.binary(), 1083: pa.time64("us"),
    26: pa.int64(),
}


NUMERIC_OID = 1700
BPCHAR_OID = 1042  # char(n)
NUMERIC_ARRAY_OID = 1231


def arrow_type_of_column(column: Any) -> pa.DataType | None:
    """Arrow type of a psycopg result column read by `query` (None: let Arrow infer it from the
    values). A numeric: see `numeric_array`; streams read every numeric as text (`numeric_text`)."""
    oid = column.type_code
    if oid in _OID_TYPES:
        return _OID_TYPES[oid]
    if oid == NUMERIC_OID:
        p, s = column.precision, column.scale
        if p and p <= 38 and s is not None:
            return pa.decimal128(p, s)
        return pa.float64()  # unconstrained NUMERIC (sums, averages, counts of state queries)
    return None


def numeric_array(values: list, t: pa.DataType) -> pa.Array:
    """Numeric values of a `query` result (Decimals from psycopg) as `t`, else as the type Arrow
    infers from them (a Decimal never converts to float64: decimal128 / decimal256 of its digits),
    else, for a NaN or an infinity, which no Arrow decimal holds, as `numeric_text` (`dinsync plan`'s
    samples show 'NaN'; before, the whole plan failed with ArrowInvalid)."""
    for attempt in (t, None):
        try:
            array = pa.array(values, type=attempt)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
            continue
        if pa.types.is_decimal256(array.type):
            break  # (more than 38 digits: Polars reads no 256-bit decimal, `dinsync plan` panicked)
        return array
    return numeric_text(pa.array([None if v is None else str(v) for v in values], pa.string()),
                        free_scale=not pa.types.is_decimal(t))


def numeric_list_array(values: list) -> pa.Array:
    """`numeric[]` values of a `query` result (lists of Decimals, of one dimension) as the type
    Arrow infers from them, else, where that is a 256-bit decimal (more than 38 digits: Polars
    reads none, and `dinsync plan` panicked) or fails (a NaN), as `numeric_list_from_text`."""
    try:
        array = pa.array(values)
        if not pa.types.is_decimal256(getattr(array.type, "value_type", array.type)):
            return array
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
        pass
    return numeric_list_from_text([None if v is None else [None if x is None else str(x) for x in v] for v in values])


def numeric_list_from_text(values: list) -> pa.Array:
    """PostgreSQL `numeric[]` delivered by the cursor (lists of strings: numerics load as text)
    -> a list of `numeric_text`, as the ADBC path reads it (an array of more than one dimension
    arrives as its elements: `one_dimension`)."""
    try:
        lists = pa.array(values, pa.list_(pa.string()))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array(values)
    return numeric_text_list(lists)


def numeric_from_text(values: pa.Array | list, free_scale: bool = False) -> pa.Array:
    """PostgreSQL NUMERIC delivered as text (ADBC's arrays, the cursor's strings) -> `numeric_text`,
    whatever its precision: the exact digits, NaN and ±Infinity kept (see
    dinsync.warehouses.numeric_text); the type is the same in every batch of a stream.
    `free_scale`: the column declares no scale."""
    if isinstance(values, list):
        values = pa.array(values, pa.string())
    return numeric_text(values, free_scale=free_scale)


def _read_as(cur: Any, oid: int, list_of: bool = False) -> pa.DataType | None:
    """The Arrow type of the values psycopg reads of type `oid` (a list of them: `list_of`) where
    every batch must have it: text for a type it reads as text (uuid, jsonb, inet: _TEXT_LOADED; a
    type it does not know), else None (Arrow infers it from the values). Inferred, a column whose
    rows of the first fetch were all NULL was `null` there and text later, and the stream failed
    (ArrowInvalid: Schema at index 1 was different)."""
    from psycopg import pq

    t = _OID_TYPES.get(oid)
    if t is None:
        loader = cur.adapters.get_loader(oid, pq.Format.TEXT)
        t = pa.string() if loader is None or loader.__name__ == "TextLoader" else None
    return pa.list_(t) if t is not None and list_of else t


def _is_array_oid(cur: Any, oid: int) -> bool:
    info = cur.adapters.types.get(oid)
    return info is not None and info.array_oid == oid


def _flattened(value: Any) -> tuple[list, list[int]]:
    """The elements of a (rectangular) nested list in order, and the length of each dimension."""
    dims = []
    level = value
    while isinstance(level, list) and level and isinstance(level[0], list):
        dims.append(len(level))
        level = level[0]
    dims.append(len(level))
    for _ in dims[1:]:
        value = [e for inner in value for e in inner]
    return value, dims


def one_dimension(values: list, convert: Any) -> pa.Array:
    """An array column of the cursor (psycopg's lists, nested for more than one dimension) as
    `convert` (an Arrow type, None, or a function of the values) makes it of the lists of their
    elements, with the dimensions of each array of more than one (array_shapes), as the ADBC path
    reads it: a column mixing 1-D and 2-D arrays failed the whole run (ArrowInvalid: cannot mix
    list and non-list)."""
    dims: list = [None] * len(values)
    if any(isinstance(v, list) and v and isinstance(v[0], list) for v in values):
        values = list(values)
        for k, v in enumerate(values):
            if isinstance(v, list) and v and isinstance(v[0], list):
                values[k], dims[k] = _flattened(v)
    if callable(convert):
        array = convert(values)
    else:
        try:
            array = pa.array(values, type=convert)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            array = pa.array(values)
    return with_shapes(array, pa.array(dims, pa.list_(pa.int32())))


# Arrays of dates, timestamps and times (their OIDs) -> the OID of their elements (_CALENDAR_OIDS)
_CALENDAR_ARRAY_OIDS = {1182: 1082, 1115: 1114, 1185: 1184, 1183: 1083}


def _calendar_list_of(oid: int, convert: Any) -> Any:
    """`convert`, or for an array of dates or timestamps `calendar_list` of its element type."""
    elem = _CALENDAR_ARRAY_OIDS.get(oid)
    return convert if elem is None else functools.partial(calendar_list, t=_OID_TYPES[elem])


def calendar_list(values: list, t: pa.DataType) -> pa.Array:
    """Lists of dates / timestamps of a cursor (of one dimension) as lists of `t`, those psycopg
    could not load ('infinity' in an array failed the whole run: ArrowTypeError) at a day beyond the
    calendar, as `calendar_array` reads them alone (the mapping rejects their rows)."""
    offsets, flat = [0], []
    for v in values:
        flat.extend(v or ())
        offsets.append(len(flat))
    mask = pa.array([v is None for v in values], pa.bool_())
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), calendar_array(flat, t), mask=mask)


def any_dimensions(values: list, convert: Any) -> pa.Array:
    """An array column of `query` as it is, or, where it holds arrays of more than one dimension
    (nested lists, which one Arrow list type holds along with others only at one depth: `dinsync
    plan --samples` failed with ArrowInvalid: cannot mix list and non-list), as `one_dimension`
    reads it (its `to_pylist` nests them again)."""
    if any(isinstance(v, list) and v and isinstance(v[0], list) for v in values):
        return one_dimension(values, convert)
    if callable(convert):
        return convert(values)
    try:
        return pa.array(values, type=convert)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array(values)


# Types psycopg loads as Python objects that Arrow cannot hold (UUID, IPv4Interface, dict, time
# with tzinfo, Range, ...): read as their text form instead, as the ADBC path does.
_TEXT_LOADED = ("uuid", "inet", "cidr", "json", "jsonb", "timetz", "interval", "money", "int4range", "int8range",
                "numrange", "daterange", "tsrange", "tstzrange",
                # (PostgreSQL 14+: a Multirange made `dinsync plan` fail, "ArrowInvalid: Could not convert")
                "int4multirange", "int8multirange", "nummultirange", "datemultirange", "tsmultirange",
                "tstzmultirange")


def _load_as_text(conn: Any, also: tuple[str, ...] = ()) -> None:
    from psycopg.types.string import TextLoader

    for name in _TEXT_LOADED + also:
        if conn.adapters.types.get(name) is not None:
            conn.adapters.register_loader(name, TextLoader)


def _load_value_forms(conn: Any, also: tuple[str, ...] = ()) -> None:
    """How a session or a stream's connection loads values: as the ADBC path reads them (text forms,
    `also` as text too, days beyond the calendar, char(n) unpadded)."""
    _load_as_text(conn, also)
    _load_beyond_calendar(conn)
    _load_unpadded(conn)


def _load_unpadded(conn: Any, oid: int | str = "bpchar") -> None:
    """`char(n)` (bpchar) values, and their arrays' elements, without the blanks that pad them to n,
    as PostgreSQL's text form of them is (`'ab'::char(5)::text = 'ab'`) and DuckDB's CHAR (a VARCHAR)
    holds them: `ab   ` was sent to the platform. `oid`: a domain over char(n) (its arrays' elements)."""
    if isinstance(oid, int) or conn.adapters.types.get(oid) is not None:
        conn.adapters.register_loader(oid, _unpadded_loader())


@functools.cache
def _unpadded_loader() -> type:
    from psycopg.types.string import TextLoader

    class Unpadded(TextLoader):
        def load(self, data: Any) -> Any:
            return super().load(bytes(data).rstrip(b" "))

    return Unpadded


# Dates and timestamps psycopg cannot load (beyond the years 1 to 9999: ±infinity, 4713 BC,
# Redshift's 294276 AD): read as a day just outside that range, which the mapping rejects for its
# row (BEYOND_CALENDAR), as the ADBC path's extreme values are; psycopg's DataError failed the run.
_CALENDAR_OIDS = (1082, 1114, 1184, 1083)
_LATE, _EARLY, _END_OF_DAY = object(), object(), object()
_LATE_DAY, _EARLY_DAY = 2_932_897, -719_163  # 10000-01-01 and 0000-12-31, days from 1970-01-01


def _load_beyond_calendar(conn: Any) -> None:
    for name, loader in _beyond_calendar_loaders():
        conn.adapters.register_loader(name, loader)


@functools.cache
def _beyond_calendar_loaders() -> tuple[tuple[str, type], ...]:
    """The loaders, defined once: psycopg keeps every loader class it is given (its
    `AdaptersMap._optimised`), and classes defined by each connection grew a long-lived process
    (`serve`, the Python API) by four classes a connection."""
    from psycopg import DataError
    from psycopg.types.datetime import DateLoader, TimeLoader, TimestampLoader, TimestamptzLoader

    loaders: list[tuple[str, type]] = []
    for name, base in (("date", DateLoader), ("timestamp", TimestampLoader), ("timestamptz", TimestamptzLoader)):
        class Loader(base):
            def load(self, data: Any) -> Any:
                try:
                    return super().load(data)
                except DataError as e:
                    return _EARLY if "too small" in str(e) or b"BC" in bytes(data) or bytes(data).startswith(b"-") else _LATE

        loaders.append((name, Loader))

    class EndOfDay(TimeLoader):
        # a time of '24:00:00' (PostgreSQL's and Redshift's end of a day), which no datetime.time
        # holds: psycopg refused it and `dinsync plan`, and every run on Redshift, failed
        def load(self, data: Any) -> Any:
            try:
                return super().load(data)
            except DataError:
                if bytes(data).startswith(b"24:"):
                    return _END_OF_DAY
                raise

    loaders.append(("time", EndOfDay))
    return tuple(loaders)


def calendar_array(values: list, t: pa.DataType) -> pa.Array:
    """Dates / timestamps of a cursor as `t`, those psycopg could not load at a day beyond the calendar;
    times as `t`, '24:00:00' at the end of the day (as ADBC reads it: the mapping sends "24:00:00")."""
    if pa.types.is_time(t):
        if not any(v is _END_OF_DAY for v in values):
            return pa.array(values, type=t)
        micros = [None if v is None else 86_400_000_000 if v is _END_OF_DAY else
                  ((v.hour * 60 + v.minute) * 60 + v.second) * 1_000_000 + v.microsecond for v in values]
        return pa.array(micros, pa.int64()).view(t)
    if not any(v is _LATE or v is _EARLY for v in values):
        return pa.array(values, type=t)
    import datetime as dt

    per_day = 1 if pa.types.is_date(t) else 86_400_000_000
    epoch = dt.date(1970, 1, 1) if per_day == 1 else dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc if t.tz else None)

    def physical(v: Any) -> int | None:
        if v is None:
            return None
        if v is _LATE or v is _EARLY:
            return (_LATE_DAY if v is _LATE else _EARLY_DAY) * per_day
        delta = v - epoch
        return delta.days if per_day == 1 else (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds

    ints = pa.array([physical(v) for v in values], pa.int32() if per_day == 1 else pa.int64())
    return ints.view(t) if per_day != 1 else ints.cast(t)
