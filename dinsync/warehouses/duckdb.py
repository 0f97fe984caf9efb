"""DuckDB: the embedded default warehouse.

DuckDBWarehouse combines, with what stays here (connection, statements, writes, columns, close):
- `DuckDBErrors`: DuckDB's exceptions -> WarehouseErrors, with their hints (`duckdb_errors`).
- `DuckDBMemory`: the buffer pools and threads each phase is sized for, grown when a statement runs
  out of memory, shared by the connections of one instance (`duckdb_memory`).
- `DuckDBStream`: results streamed as Arrow batches sized by the rows' width (`duckdb_streams`).
- `DuckDBTypeForms`: the hash forms and send problems of DuckDB's types (`duckdb_type_forms`).
The database files (their name, refusal of one that is not DuckDB's, those held open) are in `duckdb_files`.
"""
from __future__ import annotations

import contextlib
import os
import re
import threading
from typing import TYPE_CHECKING, Any, Iterator

import duckdb

from ..errors import DinsyncError, LockBusyError
from .base import Capabilities, ErrorTranslation, Params, Warehouse, translated
from .duckdb_errors import _DAMAGED_FILE, DuckDBErrors, _damaged_hint, _lock_holder
from .duckdb_files import _OPEN_FILES, _OPEN_FILES_GUARD, _refuse_a_file_that_is_not_duckdb, duckdb_name
from .duckdb_memory import AUTO, DuckDBMemory, _InstanceSettings
from .duckdb_streams import DuckDBStream
from .duckdb_type_forms import DuckDBTypeForms
from .params import translate

if TYPE_CHECKING:
    import pyarrow as pa  # a run that sends nothing never imports it


SCRATCH_DATABASE = "dinsync_scratch"
COMMIT_SCRATCH_DATABASE = "dinsync_commits"  # see Capabilities.commit_scratch_database
DISABLED_COMPRESSION = "fsst,dict_fsst,bitpacking,alp,alprd,chimp,patas,zstd,roaring"


_LEADING_COMMENTS = re.compile(r"\s*(?:--[^\n]*(?:\n|$)\s*|/\*.*?\*/\s*)*", re.S)


def _is_delete(sql: str) -> bool:
    """Whether a statement is a DELETE (its first keyword after comments)."""
    return re.match(r"DELETE\b", sql[_LEADING_COMMENTS.match(sql).end():], re.I) is not None


class DuckDBWarehouse(DuckDBErrors, ErrorTranslation, DuckDBMemory, DuckDBStream, DuckDBTypeForms, Warehouse):
    type_name = "duckdb"
    display_name = "DuckDB"
    capabilities = Capabilities(
        dialect="duckdb",
        hash_type="UBIGINT",
        merge=True,
        temp_tables=True,
        transactional_ddl=True,
        enforces_primary_key=True,
        lock_arbiter="primary_key",
        paramstyle="dollar",
        scratch_database=SCRATCH_DATABASE,
        commit_scratch_database=COMMIT_SCRATCH_DATABASE,
        scratch_per_sync=True,
        scratch_schema="main",
        row_position="rowid",
        insert_block_rows=122_880,
        delete_part_rows=500_000,
        arrow_views=True,
        segment_hashes=True,
        progress_seconds=0.0,
    )
    driver_errors = (duckdb.Error,)

    def __init__(self, path: str = ":memory:", threads: int | None = None, read_only: bool = False,
                 memory_limit: str | None = AUTO, streaming_memory_limit: str | None = AUTO):
        """`memory_limit` bounds DuckDB's buffer pool while a plan is built (it spills to disk
        beyond it): without it a 1M-row plan keeps ~700 MB resident. `streaming_memory_limit`
        applies while a run sends (see `streaming`). Each is raised to what the sync needs (see
        size_for, expect_deletes); AUTO (the default) is that need alone, None no limit at all.
        (The defaults were 192 MB and 160 MB until 2026-12-02. Sized by need, at 10 fields 144 MB
        and 112 MB: a 10M-row first plan peaked at 312-313 instead of 385-406 MB, in 13.1-13.9
        instead of 12.7-13.3 s; a 1M-row churn run at 331-334 instead of 376-394 MB, in 2.60-2.65
        instead of 2.65-3.55 s.)"""
        self.path = path
        self._secrets: list[str] = []
        self._scale = 1  # the pools' multiplier after statements ran out of memory (GROW_RAM_SHARE)
        self._phase: tuple[str | None, int] = (memory_limit, 1)  # the pool and threads asked last
        self._only_inserting = False  # in `streaming(replacing=False)`: the inserting pool
        self._room = 0  # bytes above the pool for a commit while wide rows stream (room_for)
        self._wide_stream = False  # a stream of rows wider than rows_within keeps whole is open
        self._reading = threading.Lock()  # held while a stream reads a batch, and by room_for
        self._held = False  # this connection's stream holds checkpoints back (_hold_checkpoints)
        self._configured_limits = (memory_limit, streaming_memory_limit)
        self._file = None if path == ":memory:" else os.path.realpath(path)
        try:
            with _OPEN_FILES_GUARD:
                if not _OPEN_FILES[self._file]:  # (see _OPEN_FILES)
                    _refuse_a_file_that_is_not_duckdb(path)
                self._con = duckdb.connect(duckdb_name(path), read_only=read_only)
                if self._file is not None:
                    _OPEN_FILES[self._file] += 1
        except duckdb.IOException as exc:
            text = str(exc)
            if "lock" in text.lower():
                raise LockBusyError(
                    f"the DuckDB file {path} is in use by another process{_lock_holder(text)}",
                    hint="DuckDB lets one process open a database file at a time: another dinsync run (or a "
                         "tool such as dbt) holds it; wait for it to finish (status, runs and rejections too)",
                ) from None
            hint = (_damaged_hint(path) if _DAMAGED_FILE.search(text) else
                    "warehouse.path in dinsync.yml names it: the file and its folder must be readable and writable")
            raise DinsyncError(f"cannot open DuckDB file {path}: {text}", hint=hint) from None
        # One connection object per thread: a DuckDB connection must not run two statements at
        # once, and the engine streams the plan while it commits acknowledged rows. (Before
        # size_for: it checkpoints the log a killed run left.)
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._settings = _InstanceSettings.of(path, self._con)
        self.grown_to: str | None = None  # the pool after statements ran out of memory, if they did
        self.threads = int(threads) if threads else self._settings.default_threads
        # Until a sync is sized: the pools of one without mapped fields, the snapshot's own columns
        # (key checks and plans of many threads need more: see PLAN_THREADS).
        self.size_for(0)
        # Plans and snapshots need no row order; without it DuckDB streams and spills more freely.
        self._con.execute("SET preserve_insertion_order = false")
        # What this process writes are snapshots of 64-bit hashes (incompressible) and keys: trying
        # the costlier compression methods on them nearly doubles the CPU time of a commit
        # (measured: 0.84 vs 0.47 CPU-s per 1M snapshot rows) for ~15% less disk. Constant, RLE
        # and dictionary encodings stay. Only data written by this process is affected.
        self._disable_compression(DISABLED_COMPRESSION.split(","))
        # The commits' scratch tables (Capabilities.commit_scratch_database); a sync's plan and
        # scratch tables get a database of their own (attach_scratch).
        self._con.execute(f"ATTACH IF NOT EXISTS ':memory:' AS {self.quote(COMMIT_SCRATCH_DATABASE)}")

    def attach_scratch(self, name: str) -> None:
        """The plan and the scratch tables of a sync: an in-memory database shared by every cursor
        of this connection, spilled to temporary files beyond memory_limit and never written to
        the database file (writing a 10M-row plan there costs ~3x more, and it is dropped anyway).
        One per sync: see Capabilities.scratch_per_sync."""
        self._con.execute(f"ATTACH IF NOT EXISTS ':memory:' AS {self.quote(name)}")

    def detach_scratch(self, name: str) -> None:
        """An attached database belongs to the DuckDB instance, which outlives this connection
        while another one of the process is open (`serve --parallel`: runs overlap): every sync's
        last plan stayed in the pool and its temporary files until the instance closed."""
        with contextlib.suppress(duckdb.Error):  # (a cursor still reading it: it goes with the instance)
            self.con.execute(f"DETACH DATABASE IF EXISTS {self.quote(name)}")

    def _disable_compression(self, methods: list[str]) -> None:
        """Disable the compression methods this DuckDB version knows among `methods`."""
        known: list[str] = []
        for method in methods:
            try:
                self._con.execute(f"SET disabled_compression_methods = '{','.join(known + [method])}'")
                known.append(method)
            except duckdb.Error:  # an older DuckDB: no such method, or no such setting
                continue
        if known:
            self._con.execute(f"SET disabled_compression_methods = '{','.join(known)}'")

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._con.cursor()
            self._local.cursor = cur
            self._cursors.append(cur)
        return cur

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self._local.in_transaction = True
        try:
            with super().transaction():
                yield
        finally:
            self._local.in_transaction = False

    @translated("running a statement")
    def execute(self, sql: str, params: Params = None) -> int | None:
        sql, values = translate(sql, params, self.capabilities.paramstyle)
        cur = self.con
        # Not a DELETE: DuckDB (2.0.1) refuses, for the rest of the process, the rows of a DELETE
        # that ran out of memory ("Conflict on tuple deletion"), so running it again would turn an
        # error whose hint says what to raise into one that says to run again.
        self._retrying(lambda: cur.execute(sql, values), again=not _is_delete(sql))
        if cur.description is None:
            return None
        rows = cur.fetchall()  # always read to the end: a pending result blocks the connection
        if cur.description[0][0] == "Count" and len(rows) == 1:
            return int(rows[0][0])
        return None

    @translated("running a query")
    def query(self, sql: str, params: Params = None) -> pa.Table:
        sql, values = translate(sql, params, self.capabilities.paramstyle)
        return self._retrying(lambda: self.con.sql(sql, params=values).to_arrow_table())

    @translated("running a query")
    def rows(self, sql: str, params: Params = None) -> list[dict[str, Any]]:
        """Like `query`, run again with more memory when it ran out (outside a transaction): `dinsync
        check` grouping 150 keys of 1 MB ran out of a pool the plan of the same model grows."""
        sql, values = translate(sql, params, self.capabilities.paramstyle)
        cur = self.con
        self._retrying(lambda: cur.execute(sql, values))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    @translated("writing rows")
    def write_arrow(self, schema: str, table: str, data: pa.Table, mode: str = "append") -> None:
        con = self.con
        name = f"__dinsync_arrow_{id(data)}"
        con.register(name, data)
        try:
            target = self.table_name(schema, table)
            if mode == "replace":
                con.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM {self.quote(name)}")
            elif mode == "append":
                con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM {self.quote(name)}")
            else:
                raise ValueError(f"write mode must be append or replace, got {mode!r}")
        finally:
            con.unregister(name)

    @translated("reading rows in place")
    def view_arrow(self, schema: str, table: str, data: pa.Table) -> None:
        """Make `data` readable as `schema.table` by the statements of this thread, without a copy:
        a view over the Arrow table registered on this thread's cursor (until drop_arrow_view)."""
        con = self.con
        con.register(f"__dinsync_view_{table}", data)
        con.execute(f"CREATE OR REPLACE VIEW {self.table_name(schema, table)} AS "
                    f"SELECT * FROM {self.quote(f'__dinsync_view_{table}')}")

    @translated("dropping a view")
    def drop_arrow_view(self, schema: str, table: str) -> None:
        con = self.con
        con.execute(f"DROP VIEW IF EXISTS {self.table_name(schema, table)}")
        con.unregister(f"__dinsync_view_{table}")

    @translated("reading the columns of a query")
    def columns(self, sql: str) -> list[tuple[str, str]]:
        # A single SELECT is bound as it is and never run (its relation is lazy): read as a
        # subquery, DuckDB would rename a second `id` to `id_1`, and the model's duplicated names
        # must be seen as the model returns them. Anything else (`WITH ... INSERT`, which con.sql
        # would run at once) is read as a subquery, which fails without running it. On lines of
        # their own, as on the other warehouses: an error's LINE n is the model's line n - 1, and a
        # model whose last line ends in a `--` comment does not comment out the closing parenthesis.
        text = f"\n{sql}\n"
        statements = self.con.extract_statements(text)
        select = len(statements) == 1 and statements[0].type == duckdb.StatementType.SELECT
        if not select:
            text = f"SELECT * FROM ({text}) AS _q LIMIT 0"
        try:
            rel = self.con.sql(text)
        except duckdb.Error as exc:
            if not select or "LINE " in str(exc):
                raise
            # A relation's binder error says no `LINE n` ("Referenced column "firstname" not found"),
            # so the model's first line was named, not the one to fix: the statement prepared (not
            # run: it failed to bind) says where. Its own error if it says something else.
            try:
                self.con.execute(f"SELECT * FROM ({text}) AS _q LIMIT 0")
            except duckdb.Error as placed:
                if "LINE " in str(placed) and str(placed).split("\n")[0] == str(exc).split("\n")[0]:
                    raise placed from None
            raise
        return [(n, str(t)) for n, t in zip(rel.columns, rel.types)]

    @translated("reading the columns of a table")
    def tables_columns(self, schema: str, tables: list[str]) -> dict[str, list[str]]:
        return self._catalog_columns(schema, tables)

    def table_columns(self, schema: str, table: str) -> list[str] | None:
        return self.tables_columns(schema, [table]).get(table)

    def interrupt(self) -> None:
        for cur in list(self._cursors):
            with contextlib.suppress(duckdb.Error):
                cur.interrupt()

    def close(self) -> None:
        """Close every cursor, then the connection: the database file is checkpointed and
        released here, not whenever the last thread-local cursor happens to be collected."""
        for cur in self._cursors:
            with contextlib.suppress(duckdb.Error):
                cur.close()
        self._cursors.clear()
        with contextlib.suppress(duckdb.Error):  # (a stream left open: its checkpoints come back)
            self._hold_checkpoints(False)
        self._settings.leave(id(self))
        self._con.close()
        with _OPEN_FILES_GUARD:
            if self._file is not None and _OPEN_FILES[self._file] > 0:
                _OPEN_FILES[self._file] -= 1
            self._file = None  # (closed twice: counted once)
