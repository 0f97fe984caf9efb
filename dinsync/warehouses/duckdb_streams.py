"""DuckDB's query results streamed as Arrow record batches, sized by the rows' width."""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Callable, Iterator

import duckdb

from .base import PROBE_ROWS, STREAM_READ, Params, quote_ident, rebatch, rows_within, translated
from .duckdb_errors import _reader_error
from .params import translate

if TYPE_CHECKING:
    import pyarrow as pa  # a run that sends nothing never imports it


# What a streamed query result may hold ahead of its reader (DuckDB's default: 10 MiB, plus what
# each thread is still converting to Arrow). The reader maps and sends slower than DuckDB reads the
# plan, so the buffer stays full: heaptrack saw ~37 MB of Arrow batches waiting at the heap's peak
# of a 3M-row first sync. 1 MB: 1M-row first sync 472-481 MB peak RSS instead of 485-506 at the
# same speed (three interleaved pairs); no change at 10M rows, where the peak is elsewhere.
STREAMING_BUFFER = "1MB"
# A query whose rows are wide and that names a row position (stream_scratch's `position`: the
# plan's) is read in ranges of positions of about RANGE_BYTES each, joined into batches (`rebatch`).
# DuckDB scans a table 2,048 rows at a time and pins every value of them: one chunk of rows of
# 200 KB held 400 MB of the pool, of rows of 1 MB all of a 2,000-row plan (2 GB), and the stream
# grew the pool until it fitted (a first sync of 20,000 rows of 200 KB to Iterable: 2.2 GB of
# RSS). A range pins its own rows only; a few MB leave room in a send phase's pool (32 MB at two
# fields) for the result's copy and a commit.
RANGE_BYTES = 4 << 20


def _bit_width(kind) -> int:
    """Bits of a fixed-width Arrow type's value; 0 for any other (pyarrow raises there)."""
    try:
        return int(kind.bit_width)
    except (ValueError, AttributeError):
        return 0


def _widest(cur, sql: str, values, schema: "pa.Schema") -> int | None:
    """An upper bound of the bytes of one row of `sql` as Arrow, from DuckDB's statistics (a
    table's columns carry their longest string: a few ms, no scan); None where a column's width is
    not bounded by them (nested values, strings computed by the query)."""
    import pyarrow as pa

    widths, strings = 0, []
    for column in schema:
        kind = column.type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind) \
                or pa.types.is_large_binary(kind) or pa.types.is_string_view(kind):
            strings.append(column.name)
            widths += 16  # its offset (a view: its header)
        elif not pa.types.is_nested(kind) and _bit_width(kind):
            widths += -(-_bit_width(kind) // 8) + 1
        else:
            return None
    if not strings:
        return widths
    stats = ", ".join(f"stats({quote_ident(name)})" for name in strings)
    try:
        rows = cur.execute(f"SELECT {stats} FROM (\n{sql}\n) AS _widest LIMIT 1", values).fetchall()
    except duckdb.Error:  # (a DuckDB without stats() as a struct)
        return None
    if not rows:
        return None
    for column in rows[0]:
        longest = column.get("max_string_length") if isinstance(column, dict) else None
        if not isinstance(longest, int):
            return None
        widths += longest
    return widths


class DuckDBStream:
    """DuckDBWarehouse's streams (`stream`, `stream_scratch`), each on a cursor of its own."""

    def stream_scratch(self, sql: str, database: str, batch_rows: int = 50_000,
                       rest: Callable[[], tuple[str, pa.Table]] | None = None,
                       position: str | None = None) -> Iterator[pa.RecordBatch]:
        return self.stream(sql, batch_rows, within=database, rest=rest, position=position)

    @translated("streaming a query")
    def stream(self, sql: str, batch_rows: int = 50_000, params: Params = None,
               within: str | None = None, rest: Callable[[], tuple[str, pa.Table]] | None = None,
               position: str | None = None) -> Iterator[pa.RecordBatch]:
        """`within`: the database the query is bound in (its functions are looked for there
        first, not in the database file: see stream_scratch). `rest`, `position`: see
        stream_scratch (wide rows are read in ranges of `position`: RANGE_BYTES)."""
        sql, values = translate(sql, params, self.capabilities.paramstyle)
        emitted = grown = False
        read = None  # the positions of the rows read before the stream ran out of memory
        while True:
            cur = self._con.cursor()  # its own cursor: other statements may run while we stream
            try:
                with contextlib.suppress(duckdb.Error):  # (a DuckDB without the setting)
                    cur.execute(f"SET streaming_buffer_size = '{STREAMING_BUFFER}'")
                if within is not None:
                    cur.execute(f"USE {self.quote(within)}")
                if read is not None:
                    cur.register(STREAM_READ, read)
                try:
                    try:
                        rows, chunk = self._batch_rows_within(cur, sql, values, batch_rows)
                    except duckdb.OutOfMemoryException:
                        if position is None or emitted:
                            raise
                        rows = chunk = 0  # (the probe's chunk of rows alone was over the pool: wide)
                    wide = self._wide_stream = grown or chunk < batch_rows
                    if wide:
                        self._hold_checkpoints(True)
                    if wide and position is not None and not emitted:
                        batches = rebatch(self._ranges(cur, sql, values, position, batch_rows), batch_rows)
                    else:
                        with self._reading:
                            reader = iter(cur.sql(sql, params=values).to_arrow_reader(chunk))
                        batches = self._read(reader) if chunk == rows else rebatch(self._read(reader), batch_rows)
                    for batch in batches:
                        if batch.num_rows:
                            emitted = True
                            if not wide and rows_within(batch_rows, batch.nbytes / batch.num_rows) < batch_rows:
                                wide = self._wide_stream = True  # wide rows after narrow ones
                                self._hold_checkpoints(True)
                            yield batch
                    return
                except OSError as exc:
                    error = _reader_error(exc)
                except duckdb.OutOfMemoryException as exc:
                    error = exc
                # Out of memory before the first batch (e.g. a few rows of megabytes each, whose
                # strings a chunk pins at once): nothing was read, so the stream starts again with
                # a larger pool. Later, rows already read would be read twice: the stream goes on
                # with the rows not read yet where the caller can say which (`rest`: the plan's,
                # by their positions; a run after one killed -9 failed so every time, the rows of
                # 1 MB it had left wider than the pool its first rows needed), else the error stands.
                if emitted and rest is None or not isinstance(error, duckdb.OutOfMemoryException) \
                        or not self._grow():
                    raise error
                if emitted:
                    sql, read = rest()
                    sql, values = translate(sql, params, self.capabilities.paramstyle)
                grown = True  # (rows that need a larger pool to be read are wide)
            finally:
                self._wide_stream = False
                self._hold_checkpoints(False)
                if read is not None:
                    with contextlib.suppress(duckdb.Error):
                        cur.unregister(STREAM_READ)
                cur.close()

    def _read(self, reader) -> Iterator[pa.RecordBatch]:
        """A stream's batches, each read while no commit has room (see room_for)."""
        while True:
            with self._reading:
                batch = next(reader, None)
            if batch is None:
                return
            yield batch

    def _ranges(self, cur, sql: str, values, position: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """The rows of `sql` read in ranges of its column `position` (a row position of the table it
        reads, which DuckDB filters in the table's scan), in the order of the positions, each range
        about RANGE_BYTES at the width of the rows read last (the first: of the first row), at most
        `batch_rows` positions. A range that runs out of memory is read again halved, a single row
        with a larger pool: none of its rows was handed out. (Sized by the widest row, narrow rows
        around a few of 1 MB were read 4 at a time: 5,000 queries for 20,000 rows.)"""
        pos = quote_ident(position)
        lo, hi = cur.execute(f"SELECT MIN({pos}), MAX({pos}) FROM (\n{sql}\n) AS _bounds", values).fetchall()[0]
        if lo is None:
            return
        one = cur.sql(f"SELECT * FROM (\n{sql}\n) AS _first WHERE {pos} = {int(lo)}", params=values).to_arrow_table()
        step = max(1, min(batch_rows, RANGE_BYTES // max(1, one.nbytes)))
        start = int(lo)
        while start <= hi:
            ranged = f"SELECT * FROM (\n{sql}\n) AS _range WHERE {pos} >= {start} AND {pos} < {start + step}"
            try:
                with self._reading:
                    table = cur.sql(ranged, params=values).to_arrow_table()
            except duckdb.OutOfMemoryException:
                if step > 1:
                    step //= 2
                elif not self._grow():
                    raise
                continue
            start += step
            if table.num_rows:
                step = max(1, min(batch_rows, int(RANGE_BYTES * step // max(1, table.nbytes))))
            yield from table.to_batches()

    @staticmethod
    def _batch_rows_within(cur, sql: str, values, batch_rows: int) -> tuple[int, int]:
        """(rows a batch, rows DuckDB converts to Arrow at once): `batch_rows`, or fewer where the
        query's rows are wide: its first PROBE_ROWS rows say how wide (a few ms), and a batch holds
        about BATCH_BYTES. A batch of 10,000 rows of 100 KB of text was 1 GB, held in about three
        copies while it was sent (a first sync of 30,000 such rows peaked at 3.8 GB of RSS; 1.3 GB in
        batches of 64 MB). Where DuckDB's statistics say that a later row may be far wider (`_widest`:
        1 MB values after narrow ones), DuckDB converts as many rows at once as the widest fits in
        BATCH_BYTES, and those are joined into batches of about BATCH_BYTES (`rebatch`, a copy: only
        then, never on the usual narrow plan)."""
        probe = cur.sql(f"SELECT * FROM (\n{sql}\n) AS _probe LIMIT {PROBE_ROWS}", params=values).to_arrow_table()
        if probe.num_rows == 0:
            return batch_rows, batch_rows
        rows = rows_within(batch_rows, probe.nbytes / probe.num_rows)
        widest = _widest(cur, sql, values, probe.schema)
        chunk = rows if widest is None else min(rows, rows_within(batch_rows, widest))
        return rows, chunk
