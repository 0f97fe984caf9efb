"""`PsycopgSessions`: SQL through psycopg 3 for the warehouses that speak the PostgreSQL protocol,
one autocommit session per thread (a transaction belongs to the thread that opened it;
session-temporary tables stay visible to it): statements, small queries as Arrow, the columns of
a query or table, the state's bounded waits (`state_waits`), transactions, cancel and close.
"""
from __future__ import annotations

import contextlib
import functools
import select
import threading
import time
from typing import Any, Callable, ClassVar, Iterator

import pyarrow as pa

from . import errors as E
from .base import Params, rows_to_arrow, translated
from .outage import Outage
from .params import translate
from .pg_values import (
    _CALENDAR_OIDS,
    _OID_TYPES,
    NUMERIC_ARRAY_OID,
    NUMERIC_OID,
    _calendar_list_of,
    _is_array_oid,
    _load_value_forms,
    any_dimensions,
    arrow_type_of_column,
    calendar_array,
    numeric_array,
    numeric_list_array,
)


def _ended_while_idle(conn) -> bool:
    """Whether the server ended session `conn` while it sat idle, outside a transaction: a DBA's
    reaper of idle sessions (pg_terminate_backend), a failover, idle_session_timeout. The server
    then writes its FATAL message and closes the socket, which psycopg learns only from the next
    statement's failure ("consuming input failed", "server closed the connection"): the end-of-run
    write of a run that delivered every row failed it. An idle session of dinsync expects nothing
    from the server (no LISTEN), so a socket readable then is one the server has ended; checked
    before sending (a poll, no round trip), the statement never reached the server, and runs on a
    new session. In a transaction (INTRANS, INERROR) nothing is checked: what it wrote is lost, and
    the statement fails as before (a transaction is retried from its start, if at all, by its caller)."""
    from psycopg import pq

    if conn.info.transaction_status != pq.TransactionStatus.IDLE:
        return False
    try:
        fd = conn.fileno()
        if hasattr(select, "poll"):  # (select.select refuses a descriptor above 1023: a long `serve`)
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([fd], [], [], 0)[0])
    except (OSError, ValueError):  # the socket is gone already
        return True


class PsycopgSessions:
    """SQL through psycopg 3: one autocommit connection per thread, created on first use.
    The adapter implements `_connect_psycopg()` (a new connection, any settings applied)."""

    _conn_lock: threading.Lock
    _local: threading.local
    _conns: list[tuple[threading.Thread, Any]]
    capabilities: Any
    # whether the server may hold arrays of types of its database (enums, composites), which the
    # catalog tells (pg_type.typcategory: PostgreSQL 8.4+): CursorStream reads them as lists
    database_arrays: ClassVar[bool] = True
    # lock_timeout, statement_timeout... of statements on the state tables (see state_waits)
    state_wait_settings: dict[str, str] = {}
    # which of the given backend PIDs run a statement waiting for another transaction's lock (see
    # interrupt_lock_waits); None: the server cannot tell (Redshift's pg_stat_activity has no wait events)
    lock_waits_sql: ClassVar[str | None] = ("SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s) "
                                            "AND wait_event_type = 'Lock'")

    # after a connection failed to reach the server (connect_timeout expired, refused), how long
    # the warehouse's next ones fail at once with its error instead of waiting again (see _reach)
    unreachable_seconds: ClassVar[float] = 30

    def _init_sessions(self) -> None:
        self._conn_lock = threading.Lock()
        self._local = threading.local()
        self._conns = []
        self._unreachable = Outage()  # its cause: the E.WarehouseUnavailable the connection failed with

    def _reach(self, connect: Callable[[], Any]) -> Any:
        """connect() (a new session, the stream's connection), unless one of this warehouse's failed
        to reach the server lately: then its error again, at once. connect_timeout bounds one
        connection, and a run opens several (a thread's session, the plan's stream, a session opened
        again after the server ended one): once the host stopped answering, each waited it anew, and
        a failed run's last writes (the run log's end, the sync's state, the lock's release) each
        waited it again. A failure that is not the server's absence (a password refused) is not kept."""
        first = self._unreachable.cause
        if isinstance(first, E.WarehouseUnavailable) and self._unreachable.ongoing(self.unreachable_seconds):
            ago = time.monotonic() - (self._unreachable.since or time.monotonic())
            raise E.WarehouseUnavailable(f"{first} (an earlier connection failed so {ago:.0f} s ago: not tried "
                                         f"again)", first.hint, warehouse=first.warehouse, sqlstate=first.sqlstate)
        try:
            conn = connect()
        except Exception as exc:
            error = self.translate(exc, "connecting") if isinstance(exc, self.driver_errors) else exc
            if isinstance(error, E.WarehouseUnavailable):
                self._unreachable.gave_up(error)
            raise
        self._unreachable.reached()
        return conn

    def _connect_psycopg(self):  # pragma: no cover - implemented by adapters
        raise NotImplementedError

    @property
    def conn(self):
        """The calling thread's connection (opened on first use, and again when the server ended it
        while idle: `_ended_while_idle`; connections of threads that ended are closed)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed and _ended_while_idle(conn):
            with contextlib.suppress(Exception):
                conn.close()
        if conn is None or conn.closed:
            with self.translating("connecting"):
                conn = self._reach(self._connect_psycopg)
            # small query results as streams deliver them (jsonb, uuid: text; `dinsync plan`'s samples
            # of a date 'infinity', say)
            _load_value_forms(conn)
            self._local.conn = conn
            with self._conn_lock:
                alive = []
                for thread, other in self._conns:
                    if thread.is_alive() and not other.closed:
                        alive.append((thread, other))
                    else:
                        other.close()
                alive.append((threading.current_thread(), conn))
                self._conns = alive
        return conn

    def interrupt(self) -> None:
        """A cancel request for each session (an idle one ignores it)."""
        with self._conn_lock:
            conns = [conn for _, conn in self._conns]
        for conn in conns:
            if not conn.closed:
                try:
                    (getattr(conn, "cancel_safe", None) or conn.cancel)()
                except Exception:  # the statement ends on its own
                    pass

    def interrupt_lock_waits(self) -> None:
        """A cancel request for each session whose statement waits for a lock (`lock_waits_sql`,
        run on the calling thread's own session)."""
        if self.lock_waits_sql is None:
            return
        with self._conn_lock:
            conns = {conn.info.backend_pid: conn for _, conn in self._conns if not conn.closed}
        try:
            with self.conn.cursor() as cur:
                waiting = [pid for (pid,) in cur.execute(self.lock_waits_sql, (list(conns),)).fetchall()]
        except Exception:  # (the server gone: the statements end on their own)
            return
        for pid in waiting:
            conn = conns.get(pid)
            if conn is not None and not conn.closed:
                try:
                    (getattr(conn, "cancel_safe", None) or conn.cancel)()
                except Exception:
                    continue
                self.lock_waits_cancelled += 1

    def _sql(self, sql: str, params: Params) -> tuple[str, Any]:
        return translate(sql, params, "pyformat") if params is not None else (sql, None)

    @translated("running a statement")
    def execute(self, sql: str, params: Params = None) -> int | None:
        sql, values = self._sql(sql, params)
        with self.conn.cursor() as cur:
            cur.execute(sql, values)
            return cur.rowcount if cur.rowcount >= 0 else None

    @translated("running a query")
    def query(self, sql: str, params: Params = None) -> pa.Table:
        sql, values = self._sql(sql, params)
        with self.conn.cursor() as cur:
            cur.execute(sql, values)
            if cur.description is None:
                return pa.table({})
            names = [c.name for c in cur.description]
            types = [arrow_type_of_column(c) for c in cur.description]
            types = [functools.partial(numeric_array, t=t) if c.type_code == NUMERIC_OID else
                     functools.partial(calendar_array, t=_OID_TYPES[c.type_code])
                     if c.type_code in _CALENDAR_OIDS else
                     functools.partial(any_dimensions, convert=numeric_list_array)
                     if c.type_code == NUMERIC_ARRAY_OID else
                     functools.partial(any_dimensions, convert=_calendar_list_of(c.type_code, t))
                     if _is_array_oid(cur, c.type_code) else t
                     for c, t in zip(cur.description, types)]
            return rows_to_arrow(names, cur.fetchall(), types)

    def sample_query(self, sql: str) -> pa.Table:
        """A few plan rows read by the plan's stream (its settings: a UTC TimeZone, bytea in hex;
        numerics as text): read in the session's zone, `dinsync plan` showed a range's or a
        composite's timestamptz as `+09` where the sync sends `+00`, a timestamptz of year 1 (BC in
        the text of a zone west of UTC) as out of range where the sync sends it, and an
        unconstrained numeric's integral value as `1` where `1.0` is sent."""
        batches = list(self.stream(sql, batch_rows=1000))
        return pa.Table.from_batches(batches) if batches else self.query(sql)

    @translated("reading the columns of a query")
    def columns(self, sql: str) -> list[tuple[str, str]]:
        types = self.conn.adapters.types
        return [(name, info.name if (info := types.get(oid)) else str(oid)) for name, oid in self._described(sql)]

    @translated("reading the columns of a query")
    def column_oids(self, sql: str) -> dict[str, int]:
        """The type OID of each column of query `sql` (run with LIMIT 0)."""
        return dict(self._described(sql))

    @translated("reading the columns of a query")
    def declared_scales(self, sql: str, columns: list[str]) -> dict[str, int]:
        """Of the mapped `columns` of the model `sql`, the numerics that declare a scale
        (`numeric(20,0)`, a domain over one), with it: the plan table's column (a CASE of the model's)
        has lost it, and read from there a `numeric(p, 0)`'s integers were sent with a fraction
        (`42.0`, as an unconstrained numeric's are: numeric_text's free scale)."""
        return {name: scale for name, oid, scale in self._description(sql)
                if name in columns and oid == NUMERIC_OID and scale is not None}

    @contextlib.contextmanager
    def describing(self) -> Iterator[None]:
        """Within it, a query's result columns are read once (`columns`, `column_oids`): a plan asks
        for them three times in a row (Warehouse.exact_hash_columns, stable_hash_forms,
        shape_hash_forms), each a `LIMIT 0` run of the model, which a view over many joins makes
        the server plan each time. Outside, always read again: a column's type changes without the
        model's SQL changing."""
        self._descriptions: dict[str, list[tuple[str, int, int | None]]] | None = {}
        try:
            yield
        finally:
            self._descriptions = None

    def _described(self, sql: str) -> list[tuple[str, int]]:
        """(name, type OID) of each column of query `sql`, read with LIMIT 0 (see describing)."""
        return [(name, oid) for name, oid, _ in self._description(sql)]

    def _description(self, sql: str) -> list[tuple[str, int, int | None]]:
        """(name, type OID, declared scale of a numeric or None) of each column of query `sql`."""
        memo = getattr(self, "_descriptions", None)
        if memo is not None and sql in memo:
            return memo[sql]
        with self.conn.cursor() as cur:
            cur.execute(f"SELECT * FROM (\n{sql}\n) AS _q LIMIT 0")
            described = [(c.name, c.type_code, c.scale if c.type_code == NUMERIC_OID else None)
                         for c in cur.description]
        if memo is not None:
            memo[sql] = described
        return described

    @translated("reading the columns of a table")
    def tables_columns(self, schema: str, tables: list[str]) -> dict[str, list[str]]:
        return self._catalog_columns(schema, tables)

    def table_columns(self, schema: str, table: str) -> list[str] | None:
        return self.tables_columns(schema, [table]).get(table)

    @contextlib.contextmanager
    def state_waits(self, locks_only: bool = False) -> Iterator[None]:
        """`state_wait_settings` (lock_timeout, statement_timeout; `locks_only`: lock_timeout alone)
        for what runs in the block, as transaction-local settings (a pooler in transaction mode hands
        a session's SET to its next client): in a transaction of its own where none is open, else in
        the one open until the block ends, then as they were. Nested blocks keep the outer one's."""
        settings = self.state_wait_settings
        if locks_only:
            settings = {k: v for k, v in settings.items() if k == "lock_timeout"}
        if not settings or getattr(self._local, "state_waits", False):
            yield
            return
        from psycopg import pq

        conn = self.conn
        own = conn.info.transaction_status == pq.TransactionStatus.IDLE
        with self.transaction() if own else contextlib.nullcontext():
            before = self._set_local_settings(settings)
            self._local.state_waits = True
            try:
                yield
            finally:
                self._local.state_waits = False
                if not own and not conn.closed and conn.info.transaction_status == pq.TransactionStatus.INTRANS:
                    self._set_local_settings(before)

    @translated("bounding the waits of the state's statements")
    def _set_local_settings(self, settings: dict[str, str]) -> dict[str, str]:
        """SET LOCAL each of `settings` in one statement; returns their values before."""
        names = list(settings)
        sql = "SELECT " + ", ".join(f"current_setting(%s), set_config(%s, %s, true)" for _ in names)
        with self.conn.cursor() as cur:
            row = cur.execute(sql, [x for n in names for x in (n, n, settings[n])]).fetchone()
        return dict(zip(names, row[0::2]))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        conn = self.conn
        with self.translating("committing a transaction"):
            with conn.transaction():
                yield

    def close(self) -> None:
        with self._conn_lock:
            conns, self._conns = self._conns, []
        for _, conn in conns:
            with contextlib.suppress(Exception):
                conn.close()
        self._local = threading.local()
