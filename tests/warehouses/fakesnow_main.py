"""`python -m fakesnow` for the tests, with one fix to fakesnow 0.12's Arrow answers.

fakesnow sends TIMESTAMP columns as Snowflake's (epoch, fraction) structs but drops their null
mask, so a NULL timestamp reaches the connector as 1970-01-01 00:00:00 (fetchall and Arrow
alike). Real Snowflake sends NULL. The struct is rebuilt here with the column's nulls; nothing
else changes. Run: python -m tests.warehouses.fakesnow_main -s -p PORT --host 127.0.0.1
"""
from __future__ import annotations

import sys

import fakesnow.arrow
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

if __name__ == "__main__":
    sys.exit(fakesnow.cli.main(sys.argv[1:]))
