"""Reading a built plan: its sendable rows streamed as Arrow, samples, and counts.

`PlanReadMixin` is the reading side of `Planner` (see planner.py for the attributes used here):
`stream_sendable` (with a row position, keeping what the commits of the streamed rows need: see
commit.py's `StreamedRows`), the samples `dinsync plan` shows, the duplicated keys, the changed
fields and the parked keys. Sample values are read as Python values here, including those Python
cannot hold (`_pylist`).
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

from .render import OPS, SqlError


class PlanReadMixin:
    """The reading side of `Planner` (see planner.py for the attributes used here)."""

    def stream_sendable(self, batch_rows: int = 50_000) -> Iterator[Any]:
        """Added and changed rows: `_key, _op, v0.., x0..` as Arrow record batches of at most
        `batch_rows` rows. May run in another thread while commits run."""
        sql = self.render("stream_sendable")
        if not self.row_position:
            return self._stream(sql, batch_rows)
        return self._stream_tracked(sql, batch_rows)

    def _stream(self, sql: str, batch_rows: int, rest: Callable[[], tuple[str, Any]] | None = None) -> Iterator[Any]:
        """The plan's rows, bound in its scratch database where there is one (Warehouse.stream_scratch;
        with `rest`, each row's position is the column `_rn`)."""
        within = getattr(self.warehouse, "stream_scratch", None)
        if self.scratch_database and within is not None:
            return within(sql, self.scratch_database, batch_rows, **({"rest": rest, "position": "_rn"} if rest else {}))
        return self.warehouse.stream(sql, batch_rows)

    def _stream_tracked(self, sql: str, batch_rows: int) -> Iterator[Any]:
        """Keep the carried columns of each streamed batch (position, hashes: see StreamedRows)
        for the commits of its rows, and yield what the destination needs. The positions read are
        remembered (a byte a plan row), so that a stream that failed after some rows can go on with
        the others (stream_scratch's `rest`)."""
        import polars as pl
        import pyarrow as pa

        from ..warehouses.base import STREAM_READ

        sent = list(range(1, 3 + 2 * len(self.fields)))  # _key, _op, v0.., x0..
        read = pl.Series("read", [], dtype=pl.Boolean)  # (Polars, not NumPy: NumPy is not a dependency)

        def rest() -> tuple[str, Any]:
            positions = pa.table({"_rn": read.arg_true().cast(pl.Int64).to_arrow()})
            return f"SELECT * FROM (\n{sql}\n) AS _rest WHERE _rn NOT IN (SELECT _rn FROM {STREAM_READ})", positions

        batches = self._stream(sql, batch_rows, rest)
        try:
            for batch in batches:
                if batch.num_rows:
                    positions = pl.from_arrow(pa.record_batch([batch.column(0)], names=["_rn"])).to_series()
                    top = int(positions.max()) + 1
                    if top > len(read):
                        read = read.extend_constant(False, max(top, 2 * len(read)) - len(read))
                    read.scatter(positions, True)
                self._streamed.add(self.carried(batch))
                yield batch.select(sent)
        finally:
            batches.close()

    def carried(self, batch):
        """What the planner keeps of a batch of `stream_sendable` (with a row position) for the
        commits of its rows: `_rn, _key, _kh, _fp, _rkh, _prior, h0, ..`."""
        return batch.select([0, 1] + list(range(3 + 2 * len(self.fields), batch.num_columns)))

    def duplicates_sample(self, limit: int = 20) -> list[tuple[str, int]]:
        """The most duplicated keys, as (key, number of rows)."""
        table = self.warehouse.query(self.render("duplicates_sample", limit=limit))
        return [(r["_key"], int(r["_n"])) for r in table.to_pylist()]

    def sample_table(self, op: str, limit: int = 5) -> Any:
        """A few plan rows of one kind as the warehouse holds them: an Arrow table of `_key` and,
        per field i, `v{i}` and `x{i}` (`sample` reads it as Python values; `dinsync plan` maps it)."""
        if op not in OPS:
            raise SqlError(f"unknown plan operation {op!r}; expected one of {', '.join(OPS)}")
        return self.warehouse.sample_query(self.render("sample", op=op, limit=limit))

    def sample(self, op: str, limit: int = 5) -> list[dict]:
        """A few plan rows of one kind: {"key", "op", "fields": {field: value}, "changed_fields"},
        values as the warehouse holds them (what a run sends: dinsync.engine.preview)."""
        table = self.sample_table(op, limit)
        out = []
        for r in _pylist(table):
            if op in ("removed", "duplicate"):
                out.append({"key": r["_key"], "op": op, "fields": {}, "changed_fields": []})
                continue
            out.append({
                "key": r["_key"],
                "op": op,
                "fields": {f.field: r[f"v{f.i}"] for f in self.fields},
                "changed_fields": [f.field for f in self.fields if r[f"x{f.i}"]],
            })
        return out

    def field_change_counts(self) -> dict[str, int]:
        """Per destination field, how many changed rows of the plan send it (mapping order)."""
        row = self._row("field_change_counts")
        return {f.field: row.get(f"n{f.i}", 0) for f in self.fields}

    def parked_count(self, staying: bool = False, undelivered: bool = False) -> int:
        """Keys parked as rejected: not planned again until their values change. `staying` (after a
        plan): only those still in the segment; a parked key that left it leaves the snapshot.
        `undelivered` (staying too): only those never delivered."""
        with self._lock:
            if not self._state_ready:
                self.ensure_state()
            name = "parked_count_undelivered" if undelivered else "parked_count_staying" if staying else "parked_count"
            return self._scalar(name)


def _pylist(table: Any) -> list[dict]:
    """Rows of an Arrow table as dicts; a value Python cannot hold (DuckDB's date 'infinity', a
    year before 1 or after 9999) becomes a text saying so instead of failing the whole sample. A
    timestamp labelled with a zone Python does not know (DuckDB's session zone under TZ=IST) is
    shown in UTC."""
    columns = {}
    for name, column in zip(table.column_names, table.columns):
        try:
            columns[name] = column.to_pylist()
        except (KeyError, OverflowError, ValueError):  # (KeyError: pytz's / zoneinfo's unknown zone)
            from ..mapping.arrow_frames import utc_labelled

            column = column.cast(utc_labelled(column.type))
            try:
                columns[name] = column.to_pylist()
            except (OverflowError, ValueError):
                columns[name] = [_py_value(v) for v in column]
        columns[name] = _end_of_day(column, columns[name])
    return [dict(zip(columns, values)) for values in zip(*columns.values())]


def _end_of_day(column: Any, values: list) -> list:
    """TIME '24:00:00' (the end of a day), which pyarrow reads as time(0, 0), as the text the sync
    sends for it (top-level and in lists)."""
    import pyarrow as pa

    t, listed = column.type, False
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        t, listed = t.value_type, True
    if not pa.types.is_time(t):
        return values
    day = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}[t.unit]
    ints = pa.chunked_array(column.chunks if isinstance(column, pa.ChunkedArray) else [column], column.type)
    ints = ints.cast(pa.list_(pa.int64()) if listed else pa.int64()) if t.bit_width == 64 else \
        ints.cast(pa.list_(pa.int32()) if listed else pa.int32())

    def one(raw: Any, value: Any) -> Any:
        return "24:00:00" if raw is not None and raw >= day else value

    if listed:
        return [None if r is None else [one(x, v) for x, v in zip(r, vs)] for r, vs in zip(ints.to_pylist(), values)]
    return [one(r, v) for r, v in zip(ints.to_pylist(), values)]


def _py_value(scalar: Any) -> Any:
    try:
        return scalar.as_py()
    except (OverflowError, ValueError):
        import pyarrow as pa

        # a list or struct holding such a value: each item on its own (one view of the whole fails)
        if pa.types.is_list(scalar.type) or pa.types.is_large_list(scalar.type) \
                or pa.types.is_fixed_size_list(scalar.type):
            return None if not scalar.is_valid else [_py_value(v) for v in scalar.values]
        if pa.types.is_struct(scalar.type):
            return None if not scalar.is_valid else {name: _py_value(v) for name, v in scalar.items()}
        if pa.types.is_timestamp(scalar.type) and scalar.type.unit == "ns":
            # a nanosecond fraction (TIMESTAMP_NS): Python's datetime holds microseconds only
            return str(scalar.cast(pa.string()))
        unit = "days" if pa.types.is_date32(scalar.type) else getattr(scalar.type, "unit", "units")
        raw = pa.array([scalar], scalar.type).view(pa.int32() if unit == "days" else pa.int64())[0].as_py()
        return f"{scalar.type} out of range ({raw} {unit} from 1970-01-01)"
