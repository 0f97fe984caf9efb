"""A plan batch read from Arrow into Polars, for `map_batch`.

`frame_from_arrow` gives Polars what it reads right: decimals read as text (numeric_text) as
strings, arrays with their shapes as lists (their dimensions in a column of their own), timestamps
in seconds as milliseconds without wrapping around, TIME '24:00:00' as text, and zoned timestamps
labelled UTC (`utc_labelled`, also used for the samples of `dinsync plan`). pyarrow is imported in
the functions that use it.
"""
from __future__ import annotations

from typing import Any, Callable

import polars as pl

# the column of the dimensions of the arrays of more than one dimension of column `name` (frame_from_arrow)
DIMS_COLUMN = "_dims_{name}"


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
