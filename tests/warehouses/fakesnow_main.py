"""`python -m fakesnow` for the tests, with two fixes to fakesnow 0.12's Arrow answers.

fakesnow sends TIMESTAMP columns as Snowflake's (epoch, fraction) structs but drops their null
mask, so a NULL timestamp reaches the connector as 1970-01-01 00:00:00 (fetchall and Arrow
alike). Real Snowflake sends NULL. The struct is rebuilt here with the column's nulls; nothing
else changes.

fakesnow sends a NUMBER(p, s) column as DuckDB's decimal128. Real Snowflake sends the unscaled
integers in the narrowest integer type that holds them (int64 at most; decimal128 beyond), with
the scale in the field's metadata, and the connector converts such a column of scale > 0 to
float64 unless asked for decimals (arrow_number_to_decimal): here too, a column whose unscaled
values fit in 64 bits is sent as int64. Run: python -m tests.warehouses.fakesnow_main -s -p PORT --host 127.0.0.1
"""
from __future__ import annotations

import sys

import fakesnow.arrow
import importlib

import fakesnow
import fakesnow.cli
import pyarrow as pa

_original = fakesnow.arrow.timestamp_to_sf_struct


def timestamp_to_sf_struct(ts):
    if isinstance(ts, pa.ChunkedArray):
        ts = ts.combine_chunks()
    if not ts.null_count:
        return _original(ts)
    filled = ts.fill_null(pa.scalar(0, ts.type))
    struct = _original(filled)
    return pa.StructArray.from_arrays(struct.flatten(), fields=list(struct.type), mask=ts.is_null())


fakesnow.arrow.timestamp_to_sf_struct = timestamp_to_sf_struct

_to_sf = fakesnow.arrow.to_sf


def _unscaled(value, scale: int) -> int | None:
    if value is None:
        return None
    sign, digits, exponent = value.as_tuple()
    n = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
    shift = exponent + scale
    return n * 10**shift if shift >= 0 else n // 10**-shift


def to_sf(table: pa.Table, rowtype):
    columns = []
    for col in table.columns:
        if pa.types.is_decimal(col.type):
            ints = [_unscaled(v, col.type.scale) for v in col.to_pylist()]
            if all(i is None or -(2**63) <= i < 2**63 for i in ints):
                col = pa.chunked_array([pa.array(ints, pa.int64())])
        columns.append(col)
    return _to_sf(pa.Table.from_arrays(columns, names=table.column_names), rowtype)


# The module fakesnow.server imported it by name. Importing that module shadows the package's
# server() (which reads `fakesnow.server.app` after its own import): the function is put back, with the app.
_server = fakesnow.server
_module = importlib.import_module("fakesnow.server")
fakesnow.arrow.to_sf = _module.to_sf = to_sf
fakesnow.server = _server
_server.app = _module.app

if __name__ == "__main__":
    sys.exit(fakesnow.cli.main(sys.argv[1:]))
