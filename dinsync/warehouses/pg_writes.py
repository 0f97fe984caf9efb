"""Bulk writes of an Arrow table into a PostgreSQL-protocol warehouse (a table replaced or appended
to): `CsvCopyWrite` as `COPY ... FROM STDIN (FORMAT csv)` of the CSV Arrow writes, and
`MultiRowInsertWrite` as batched multi-row INSERTs, for a server without COPY FROM STDIN.
"""
from __future__ import annotations

import io
import itertools

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from .base import translated
from .column_types import POSTGRES_FAMILY


def _plain(data: pa.Table) -> pa.Table:
    """Dictionary columns decoded; NUL characters removed from text (PostgreSQL text cannot
    hold them)."""
    columns = []
    for col in data.columns:
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            col = pc.replace_substring(col, "\x00", "")
        columns.append(col)
    return pa.Table.from_arrays(columns, names=data.column_names)


class _TableWrites:
    """What both ways of writing share: NULs removed, the table created (`replace`) or appended
    to, in one transaction; `_write_rows` sends the rows."""

    @translated("writing rows")
    def write_arrow(self, schema: str, table: str, data: pa.Table, mode: str = "append") -> None:
        if mode not in ("append", "replace"):
            raise ValueError(f"write mode must be append or replace, got {mode!r}")
        data = _plain(data)
        with self.transaction():
            target = self.table_name(schema, table)
            if mode == "replace":
                text = self.capabilities.text_type
                cols = ", ".join(f"{self.quote(f.name)} {POSTGRES_FAMILY.of(f.type, text)}" for f in data.schema)
                self.execute(f"DROP TABLE IF EXISTS {target}")
                self.execute(f"CREATE TABLE {target} ({cols})")
            if data.num_rows:
                self._write_rows(target, ", ".join(self.quote(n) for n in data.column_names), data)

    def _write_rows(self, target: str, cols: str, data: pa.Table) -> None:
        raise NotImplementedError


class CsvCopyWrite(_TableWrites):
    """`COPY schema.table (columns) FROM STDIN (FORMAT csv)`, fed with CSV that Arrow writes
    (vectorised; NULL unquoted-empty, '' quoted) in slices of `copy_rows` rows."""

    copy_rows = 200_000

    def _write_rows(self, target: str, cols: str, data: pa.Table) -> None:
        options = pacsv.WriteOptions(include_header=False)
        with self.conn.cursor() as cur, cur.copy(f"COPY {target} ({cols}) FROM STDIN (FORMAT csv)") as copy:
            for offset in range(0, data.num_rows, self.copy_rows):
                buf = io.BytesIO()
                pacsv.write_csv(data.slice(offset, self.copy_rows), buf, options)
                copy.write(buf.getbuffer())


class MultiRowInsertWrite(_TableWrites):
    """`INSERT INTO t (cols) VALUES (...), (...), ...` with bound parameters, up to
    `insert_rows` rows (and `max_params` parameters) per statement."""

    insert_rows = 1000
    max_params = 32_000

    def _write_rows(self, target: str, cols: str, data: pa.Table) -> None:
        ncols = data.num_columns
        per = max(1, min(self.insert_rows, self.max_params // max(1, ncols)))
        row = "(" + ", ".join(["%s"] * ncols) + ")"
        with self.conn.cursor() as cur:
            for offset in range(0, data.num_rows, per):
                chunk = data.slice(offset, per)
                values = list(itertools.chain.from_iterable(zip(*(c.to_pylist() for c in chunk.columns))))
                sql = f"INSERT INTO {target} ({cols}) VALUES " + ", ".join([row] * chunk.num_rows)
                cur.execute(sql, values)
