"""The warehouse interface every adapter implements, its capabilities, and shared mixins.

An adapter knows SQL execution, Arrow streaming and bulk writes for one engine; it knows
nothing of platforms. Capabilities are data so shared code (planner, state store) can branch
on them, never on a warehouse's name.

Conventions of the interface:
- SQL is the warehouse's own dialect (`capabilities.dialect`); bind parameters are written
  `:name` and passed as a mapping, each adapter translates them (see params.py).
- Every driver exception leaves an adapter as a `WarehouseError` (see errors.py) saying what
  failed and whether a retry can help; secrets never appear in its message.
- An adapter may be used from several threads (the engine streams the plan on one thread
  while it commits on another); a transaction belongs to the thread that opened it.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Mapping

from ..errors import DinsyncError
from .errors import HINTS, WarehouseError, WarehouseSqlError, scrub

if TYPE_CHECKING:
    import pyarrow as pa  # imported where Arrow data is made: a no-op run never needs it

Params = Mapping[str, Any] | None

LOCK_ARBITERS = ("primary_key", "table_lock", "insert_verify")


@dataclass(frozen=True)
class Capabilities:
    """What a warehouse can do. One field per line, each with a default, so additions merge."""

    dialect: str  # sqlglot dialect of the SQL it runs (and of the rendered diff SQL)
    hash_type: str = "BIGINT"  # type of the 64-bit hash columns of snapshots
    merge: bool = False  # MERGE is available (else commits are DELETE + INSERT)
    temp_tables: bool = True  # session-temporary tables can hold scratch data
    transactional_ddl: bool = True  # CREATE/ALTER inside a transaction roll back with it
    enforces_primary_key: bool = True  # inserting a duplicate PRIMARY KEY fails
    lock_arbiter: str = "primary_key"  # primary_key | table_lock | insert_verify (dinsync/state/locks.py)
    text_type: str = "VARCHAR"  # DDL type of text of any length
    # DDL type of the state tables' times, UTC without a zone (README, State tables): on Snowflake a
    # bare TIMESTAMP is whatever the account's TIMESTAMP_TYPE_MAPPING says (TIMESTAMP_LTZ on some)
    timestamp_type: str = "TIMESTAMP"
    # That type is an instant (Databricks): a time written without an offset is read in the session's
    # time zone (a SQL warehouse's TIMEZONE), so the UTC times written in SQL text carry `+00:00`
    timestamp_is_instant: bool = False
    identifier_quote: str = '"'  # quote character of identifiers (doubled inside)
    max_identifier_length: int | None = None  # in bytes (UTF-8); longer names are refused, not truncated
    unquoted_case: str = "preserve"  # how unquoted names are folded: lower | upper | preserve
    quoted_case_sensitive: bool = True  # False: even quoted names are case-insensitive (Redshift)
    paramstyle: str = "pyformat"  # the driver's placeholder style (params.STYLES)
    # A database (BigQuery: a dataset) for the scratch tables of a run (the plan and what it is
    # built from), shared by all the adapter's connections; DuckDB attaches in-memory ones, never
    # persisted (see scratch_per_sync). None: scratch tables live in the state schema.
    scratch_database: str | None = None
    # The scratch database is one per sync, `<scratch_database>_<sync>`, which the planner asks the
    # adapter for (`attach_scratch`). DuckDB keeps every table dropped in a database, in its pool or
    # its temporary files, as long as an older transaction on that database is open, and a sync's
    # plan stream is one until its last row is read, hours for a slow platform: in a shared scratch
    # database, the scratch tables of every plan of the other syncs of `serve --parallel` (10M-row
    # candidate tables each) piled up meanwhile.
    scratch_per_sync: bool = False
    # The schema of the scratch databases, named in the statements' table names (DuckDB: main,
    # `"dinsync_scratch_s"."main"."plan_s"`): DuckDB binds a two-part name by looking for such a
    # schema in the default database first, which opens a transaction there, and the plan's stream
    # would then hold back the cleanup of every write to the database file until its last row.
    # (Its functions are looked for there too: the stream binds in its scratch database,
    # `stream_scratch`.)
    scratch_schema: str | None = None
    # Where the scratch tables of a commit (`ack`, `acked`) live, created and dropped at every
    # commit while the plan streams; None: beside the plan. DuckDB keeps every catalog change of a
    # database as long as an older transaction on it is open, and the plan's stream is one until the
    # last row is read: views created and dropped in the plan's database cost ~8 KB of buffer pool
    # per commit (a first sync to a slow destination, a commit every few seconds, ran out of its
    # 33 MB pool after ~3,000 commits). A database of their own is cleaned as each commit ends.
    commit_scratch_database: str | None = None
    # A pseudo-column numbering a table's rows (DuckDB: rowid). The plan's stream then carries
    # what commits record for each row, and commits take it from the planner instead of joining
    # the plan on the key (dinsync/diff/commit.py). None: commits join the plan on the key.
    row_position: str | None = None
    # Arrow data in this process can be read by SQL as a view, without copying it into a table
    # (view_arrow / drop_arrow_view; DuckDB: a registered Arrow table).
    arrow_views: bool = False
    # The everyday plan keeps its one pass over the model, each row's raw key hash and fingerprint
    # (16 bytes a row), in a scratch table that the digest reads and, when it finds a difference,
    # the candidate join too, instead of reading and hashing the model a second time (sql/seg.sql).
    # Worth it where scratch tables are cheap to write (DuckDB: in memory, spilled beyond the pool):
    # at 10M rows a churn plan 4.3-4.4 -> 3.7 s, a no-op plan +0.15 s; at 1M rows a churn run -40 ms,
    # a no-op the same. False: the digest is a single pass that writes nothing.
    segment_hashes: bool = False
    # Rows of a storage block of a table (DuckDB: a row group, 122,880 rows). The commits of a first
    # sync, which only insert, then carry whole blocks: DuckDB writes a transaction's whole row
    # groups to the database file at once, the rest through its write-ahead log, written a second
    # time at the next checkpoint (see engine/commits.py). None: commits of any size.
    insert_block_rows: int | None = None
    # Rows one transaction deletes at most when many keys leave the segment (DuckDB: a delete holds
    # memory per row until it commits; 5M of 10M keys needed more than 192 MB): more are deleted
    # in parts of about this size, each its own transaction (a part that was not committed is
    # planned as removed again). None: in one transaction.
    delete_part_rows: int | None = None
    # How often at most a run records its counts so far in the run log, at a checkpoint (inside its
    # transaction where it has one): 0, at every checkpoint, where a statement costs milliseconds;
    # more where each is a job of its own (a BigQuery DML: seconds on the commit thread).
    progress_seconds: float = 10.0

    def __post_init__(self) -> None:
        if self.lock_arbiter not in LOCK_ARBITERS:
            raise ValueError(f"lock_arbiter must be one of {LOCK_ARBITERS}, got {self.lock_arbiter!r}")


class Warehouse:
    """The interface. Subclasses set `type_name`, `capabilities` and implement the methods."""

    type_name: ClassVar[str] = ""  # the `type` in dinsync.yml
    display_name: ClassVar[str] = ""  # for messages: "PostgreSQL"
    extra: ClassVar[str | None] = None  # pip extra that installs the driver
    capabilities: ClassVar[Capabilities]

    @property
    def dialect(self) -> str:
        return self.capabilities.dialect

    # --- SQL ---------------------------------------------------------------------------
    def execute(self, sql: str, params: Params = None) -> int | None:
        """Run one statement; returns the number of rows it changed when the driver says."""
        raise NotImplementedError

    def query(self, sql: str, params: Params = None) -> pa.Table:
        """Run a query whose result is small and return it whole."""
        raise NotImplementedError

    def sample_query(self, sql: str) -> pa.Table:
        """A few plan rows (`dinsync plan`'s samples), read as the plan's stream reads its rows
        (in the stream's session settings, where an adapter has such): by default `query`."""
        return self.query(sql)

    def rows(self, sql: str, params: Params = None) -> list[dict[str, Any]]:
        """Run a query whose result is small and return its rows as dicts (column -> value).
        An adapter may read them without Arrow (DuckDB does: a run that has nothing to send
        then never imports pyarrow)."""
        return self.query(sql, params).to_pylist()

    def scalar(self, sql: str, params: Params = None) -> Any:
        """The first column of the first row (None when there is no row)."""
        rows = self.rows(sql, params)
        return next(iter(rows[0].values())) if rows else None

    def stream(self, sql: str, batch_rows: int = 50_000, params: Params = None) -> Iterator[pa.RecordBatch]:
        """Run a query and yield its result as Arrow record batches of at most `batch_rows`
        rows, reading it from the warehouse as it goes (client memory stays bounded). Other
        statements may run on other threads meanwhile."""
        raise NotImplementedError

    def stream_scratch(self, sql: str, database: str, batch_rows: int = 50_000,
                       rest: Callable[[], tuple[str, pa.Table]] | None = None,
                       position: str | None = None) -> Iterator[pa.RecordBatch]:
        """`stream` of a query that reads the scratch database `database` only (a plan). DuckDB
        binds it there, so that the stream holds no transaction on any other database (see
        Capabilities.scratch_schema). `rest`: where the stream failed after some rows, the query of
        the rows not read yet and the table it names as STREAM_READ (an adapter that can read them
        with more memory may call it; the others ignore it). `position`: the query's column holding
        each row's position in the table it reads (Capabilities.row_position), ascending in the
        table's order, by which an adapter may read wide rows in ranges (DuckDB: RANGE_BYTES)."""
        return self.stream(sql, batch_rows)

    def write_arrow(self, schema: str, table: str, data: pa.Table, mode: str = "append") -> None:
        """Bulk-write an Arrow table into schema.table. mode: `append` (the table exists; columns
        are matched by name) or `replace` (create the table from the Arrow schema, or drop and
        re-create it). Never row by row."""
        raise NotImplementedError

    def view_arrow(self, schema: str, table: str, data: pa.Table) -> None:
        """With `Capabilities.arrow_views`: `data` readable as schema.table by this thread's
        statements, without a copy, until `drop_arrow_view`."""
        raise NotImplementedError

    def drop_arrow_view(self, schema: str, table: str) -> None:
        raise NotImplementedError

    def columns(self, sql: str) -> list[tuple[str, str]]:
        """(name, type) of the columns a SELECT returns, without running it in full."""
        raise NotImplementedError

    def column_problem(self, column: str, kind: str) -> str | None:
        """Why a mapped column of type `kind` (as `columns` reports it) cannot be diffed on this
        warehouse, with the fix (a hint), or None when it can."""
        return None

    def describing(self) -> contextlib.AbstractContextManager:
        """A block within which the warehouse may read a query's result columns once for several
        calls of `columns`, `exact_hash_columns`, `stable_hash_forms`, `shape_hash_forms` and
        `recorded_column_types` (a plan asks each in a row); nothing by default."""
        return contextlib.nullcontext()

    def exact_hash_columns(self, sql: str, columns: list[str]) -> set[str]:
        """Of the mapped `columns` of the model `sql`, those whose type's own hash may give two
        values of different text forms one hash (a case-insensitive collation): the diff's
        fingerprint hashes them as DINSYNC_EXACT. Only warehouses whose fingerprint hashes native
        values have any: PostgreSQL (case-insensitive collations, citext), DuckDB (nested types:
        its HASH gives `[]` and a NULL list one hash)."""
        return set()

    def stable_hash_forms(self, sql: str, columns: list[str]) -> dict[str, str]:
        """Of the mapped `columns` of the model `sql`, those whose text form depends on a session
        setting (DuckDB's TIMESTAMPTZ, written in the session's time zone), each with the SQL
        expression of `@X@` (the value) the diff hashes instead: one text wherever it runs."""
        return {}

    def recorded_column_types(self, sql: str, columns: list[str]) -> dict[str, str]:
        """Of the mapped `columns` of the model `sql`, the types (as `columns` names them) of those
        whose change of type the row fingerprint may not see: the engine records them per sync, and
        a change makes the next plan compare every row's values' text (SyncRecords.compare_if_retyped).
        None by default: a fingerprint of the values' text (Redshift, Snowflake, BigQuery,
        Databricks) or of their types too (DuckDB) changes with them."""
        return {}

    def declared_scales(self, sql: str, columns: list[str]) -> dict[str, int]:
        """Of the mapped `columns` of the model `sql`, the decimals read as `numeric_text` that
        declare a scale, with it, where the plan's column does not keep it (PostgreSQL's): the
        mapping then writes their values as they are, not each with a fraction (free scale)."""
        return {}

    def shape_hash_forms(self, sql: str, columns: list[str]) -> dict[str, str]:
        """Of the mapped `columns` of the model `sql`, those whose value's own hash (the diff's row
        fingerprint hashes native values: PostgreSQL) reads only a part of what is sent (an array's
        elements, not its dimensions), each with the SQL expression of `@X@` (the value) of the rest,
        NULL where there is none: the fingerprint of a row with one hashes it too."""
        return {}

    def send_problem(self, column: str, kind: str) -> str | None:
        """Why values of a mapped column of type `kind` (as `columns` reports it) would not reach a
        destination as they are (read by this warehouse's driver into another value), with the fix
        (a hint), or None when they would."""
        return None

    def table_columns(self, schema: str, table: str) -> list[str] | None:
        """Column names of an existing table, or None when it does not exist."""
        raise NotImplementedError

    def tables_columns(self, schema: str, tables: list[str]) -> dict[str, list[str]]:
        """{table: its column names} of those of `tables` that exist in `schema` (in the order of
        `tables`). Adapters whose catalog answers a list at once override it: the planner asks
        it about a sync's dozen table names every run, one query each was ~0.3 s apiece on a
        cloud warehouse."""
        found = {}
        for table in tables:
            columns = self.table_columns(schema, table)
            if columns is not None:
                found[table] = columns
        return found

    def _catalog_columns(self, schema: str, tables: list[str], fold: bool = False) -> dict[str, list[str]]:
        """`tables_columns` in one query of information_schema.columns; `fold`: names compared
        case-insensitively, columns given lower-cased (Snowflake's catalog holds them upper-cased)."""
        if not tables:
            return {}
        marks = ", ".join((f"UPPER(:t{i})" if fold else f":t{i}") for i in range(len(tables)))
        where = (f"UPPER(table_schema) = UPPER(:s) AND UPPER(table_name) IN ({marks})" if fold
                 else f"table_schema = :s AND table_name IN ({marks})")
        rows = self.rows(f"SELECT table_name, column_name FROM information_schema.columns WHERE {where} "
                         "ORDER BY table_name, ordinal_position",
                         {"s": schema, **{f"t{i}": t for i, t in enumerate(tables)}})
        by_name: dict[str, list[str]] = {}
        name = (lambda n: n.lower()) if fold else (lambda n: n)
        for row in rows:
            row = {k.lower(): v for k, v in row.items()}
            by_name.setdefault(name(row["table_name"]), []).append(name(row["column_name"]))
        return {t: by_name[name(t)] for t in tables if name(t) in by_name}

    def create_schema(self, create: Callable[[], object], schema: str) -> None:
        """Run `create` (a CREATE SCHEMA IF NOT EXISTS of `schema`) for a role that may be refused
        creating schemas although `schema` exists: PostgreSQL checks the database's CREATE
        privilege before whether the schema exists, so a role given a schema its DBA made was
        refused every run. On a permission error, the schema's existence decides."""
        from .errors import WarehousePermissionError

        try:
            create()
        except WarehousePermissionError:
            if not self.schema_exists(schema):
                raise

    def schema_exists(self, schema: str) -> bool:
        """Whether `schema` exists (information_schema; False when that cannot be read)."""
        try:
            found = self.rows("SELECT 1 AS found FROM information_schema.schemata WHERE schema_name = :s",
                              {"s": schema})
        except WarehouseError:
            return False
        return bool(found)

    @contextlib.contextmanager
    def state_waits(self, locks_only: bool = False) -> Iterator[None]:
        """Around a statement (or transaction) on the state tables (dinsync.state.store): a warehouse
        whose sessions can bound how long a statement waits for another transaction's lock bounds it
        there (PostgreSQL: pg_sessions.PsycopgSessions.state_waits), so that a lock held on a state table
        fails the command as a transient error instead of stalling `status` or `serve` for ever. The
        plan's own statements are not bounded: they may legitimately run long. `locks_only`: only
        the wait for a lock, not the statement's time (the planner's writes of the snapshot, whose
        size the run's changes decide)."""
        yield

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """A transaction on the calling thread's session; rolled back if the block raises."""
        self.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.execute("ROLLBACK")
            raise
        else:
            self.execute("COMMIT")

    def size_for(self, fields: int) -> None:
        """Before a plan of a sync with `fields` mapped fields: an adapter that bounds its memory
        may need more for a wide one."""

    def expect_deletes(self, table: str | None, rows: int | None, at_once: int = 0,
                       table_rows: int | None = None) -> None:
        """After a plan: this run's commits may delete up to `rows` rows of `table` (the snapshot,
        as its SQL names it; None: any of them), `at_once` of them in one transaction. An adapter
        whose deletes need memory by the rows or by the table's size may raise its limits.
        `table_rows`: how many rows the table holds, when the caller knows (then `table` may be
        None); else an adapter that needs it counts them."""

    def attach_scratch(self, name: str) -> None:
        """Make the scratch database `name` (`Capabilities.scratch_per_sync`) available to this
        adapter's sessions."""

    def detach_scratch(self, name: str) -> None:
        """A run is over: let go of the scratch database `name` and what it holds (its plan),
        where the database outlives the run otherwise. Never raises: it is clean-up."""

    @contextlib.contextmanager
    def streaming(self, replacing: bool = True) -> Iterator[None]:
        """Around the send phase of a run (plan built, rows streaming out, small commits coming
        back): an adapter may lower its memory use meanwhile. `replacing`: commits may replace
        snapshot rows (changed rows, a full refresh); False when they only insert (a first sync)."""
        yield

    @contextlib.contextmanager
    def beyond_inserts(self) -> Iterator[None]:
        """Around a commit that does more than insert into the snapshot (stashing the records of
        pending outcomes, applying those outcomes: deletes, updates, joins) while `streaming`
        with `replacing=False`: an adapter that lowered its memory for inserts gives such a commit
        the memory of a replacing one meanwhile."""
        yield

    @contextlib.contextmanager
    def room_for(self, key_bytes: int) -> Iterator[None]:
        """Around a commit's transaction of keys of `key_bytes` bytes (their text) while the plan
        streams: an adapter whose stream and commits share one bounded pool gives the commit room
        there meanwhile."""
        yield

    def interrupt(self) -> None:
        """From another thread: cancel the statements this adapter's sessions run now (a stop
        requested while a run plans: a slow model's query may take minutes). Each cancelled
        statement raises its warehouse error in the thread that ran it. An adapter that cannot
        keeps this no-op: its statements run to their end."""

    # statements interrupt_lock_waits cancelled (so far, on any thread): a stopped run's write that
    # then failed was cut short by the stop, not failing on its own (an out-of-memory commit is)
    lock_waits_cancelled: int = 0

    def interrupt_lock_waits(self) -> None:
        """From another thread: cancel those of this adapter's statements that wait for another
        transaction's lock (a stopped run's commits: each would wait for the lock_timeout, past an
        orchestrator's grace period; statements that run are left to end), counting them in
        `lock_waits_cancelled`. An adapter that cannot tell which statements wait keeps this no-op."""

    def close(self) -> None:
        pass

    def __enter__(self) -> "Warehouse":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- identifiers -------------------------------------------------------------------
    def check_identifier(self, name: str, what: str = "identifier") -> str:
        """`name` if this warehouse can hold it as is, else a WarehouseSqlError (never truncated)."""
        if not isinstance(name, str) or not name:
            raise WarehouseSqlError(f"{what} must be a non-empty string")
        if "\x00" in name:
            raise WarehouseSqlError(f"{what} {name!r} contains a NUL byte")
        limit = self.capabilities.max_identifier_length
        if limit is not None and len(name.encode("utf-8")) > limit:
            raise WarehouseSqlError(
                f"{what} {name!r} is longer than the {limit} bytes {self.display_name or self.type_name} allows",
                hint="use a shorter name (sync names become part of table names)",
            )
        return name

    def quote(self, name: str) -> str:
        """`name` as a quoted identifier of this warehouse."""
        q = self.capabilities.identifier_quote
        return q + self.check_identifier(name).replace(q, q + q) + q

    def table_name(self, schema: str, table: str) -> str:
        return f"{self.quote(schema)}.{self.quote(table)}"


def quote_ident(name: str) -> str:
    """Quote an identifier with double quotes (ANSI; DuckDB, PostgreSQL, Snowflake, Redshift)."""
    if "\x00" in name:
        raise ValueError("identifier contains a NUL byte")
    return '"' + name.replace('"', '""') + '"'


# ------------------------------------------------------------------------------- error mixin

_DOING = threading.local()  # what the calling thread's run is doing (`doing`)


@contextlib.contextmanager
def doing(what: str) -> Iterator[None]:
    """Within the block, a warehouse error of this thread names what the run was doing ("planning",
    "committing acknowledged rows"): the adapter's own action alone ("while running a statement")
    did not say whether a run whose connection was ended had committed what it sent. The innermost
    block's wins. An unexpected error (not a DinsyncError: a bug, in mapping say) leaving the block
    carries it too, as `what_failed(exc)`, for the run's error to name."""
    outer = getattr(_DOING, "what", None)
    _DOING.what = what
    try:
        yield
    except Exception as exc:
        if not isinstance(exc, DinsyncError) and what_failed(exc) is None:
            try:
                exc.dinsync_doing = what  # type: ignore[attr-defined]
            except AttributeError:  # (an exception type without attributes of its own)
                pass
        raise
    finally:
        _DOING.what = outer


def what_failed(exc: BaseException) -> str | None:
    """What the run was doing when unexpected error `exc` left a `doing` block (the innermost)."""
    return getattr(exc, "dinsync_doing", None)


class ErrorTranslation:
    """Turns driver exceptions into WarehouseErrors. An adapter implements `classify(exc)`
    (return a WarehouseError subclass, or None for a generic SQL error) and lists its secrets;
    methods decorated with `@translated("what")` then raise only WarehouseErrors."""

    display_name: ClassVar[str]
    driver_errors: ClassVar[tuple[type[BaseException], ...]] = ()  # exceptions to translate
    _secrets: list[str]

    def classify(self, exc: BaseException) -> type[WarehouseError] | None:
        return None

    def hint_for(self, exc: BaseException) -> str | None:
        """A hint more precise than the error class's, when the driver's message allows one."""
        return None

    def sqlstate_of(self, exc: BaseException) -> str | None:
        """The error's SQLSTATE (class 22: a data exception, which the model's rows raised)."""
        return getattr(exc, "sqlstate", None)

    def interrupted(self, exc: BaseException) -> bool:
        """Whether `exc` is the driver's form of the KeyboardInterrupt that Python's SIGINT handler
        raised during a statement (Ctrl-C), which `translating` raises again as a KeyboardInterrupt."""
        return False

    def translate(self, exc: BaseException, action: str) -> WarehouseError:
        cls = self.classify(exc) or WarehouseSqlError
        # masked before the spaces are squeezed: a secret holding two spaces or a tab matched no more
        text = " ".join(scrub(str(exc), getattr(self, "_secrets", [])).split()) or type(exc).__name__
        if len(text) > 600:
            text = text[:597] + "..."
        run = getattr(_DOING, "what", None)
        where = f"while {action}" + (f"; the run was {run}" if run else "")
        precise = self.hint_for(exc)
        error = cls(f"{self.display_name}: {text} ({where})", precise or HINTS.get(cls),
                    warehouse=self.display_name, sqlstate=self.sqlstate_of(exc))
        error.precise_hint = precise is not None  # said of this error, not of its class
        return error

    @contextlib.contextmanager
    def translating(self, action: str) -> Iterator[None]:
        try:
            yield
        except WarehouseError:
            raise
        except Exception as exc:
            if self.interrupted(exc):  # Ctrl-C: the user's, not the warehouse's, failure
                raise KeyboardInterrupt from None
            if isinstance(exc, self.driver_errors):
                raise self.translate(exc, action) from None
            raise


def translated(action: str) -> Callable:
    """Decorator for adapter methods (and generator methods): driver errors -> WarehouseError."""

    def wrap(fn: Callable) -> Callable:
        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def gen(self, *args, **kwargs):
                with self.translating(action):
                    yield from fn(self, *args, **kwargs)
            return gen

        @functools.wraps(fn)
        def call(self, *args, **kwargs):
            with self.translating(action):
                return fn(self, *args, **kwargs)
        return call

    return wrap


# ------------------------------------------------------------------------------- Arrow helpers


def rows_to_arrow(names: list[str], rows: list[tuple], types: list[Any] | None = None) -> pa.Table:
    """A table from driver rows (tuples), column by column; `types` (or None each) when known, or
    for a column a function of its values (a list) that returns its array."""
    import pyarrow as pa

    columns = list(zip(*rows)) if rows else [[] for _ in names]
    arrays = []
    for i, values in enumerate(columns):
        t = types[i] if types else None
        if callable(t):
            arrays.append(t(list(values)))
            continue
        try:
            arrays.append(pa.array(values, type=t))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            arrays.append(pa.array(values))  # the driver's values do not fit the guessed type
    return pa.Table.from_arrays(arrays, names=list(names))


def json_object_chunks(data: pa.Table, limit: int, values: Callable[[Any], list]) -> Iterator[bytes]:
    """The rows of `data` as JSON arrays of objects {"c0": value, ...} (UTF-8; NULLs left out:
    an absent key reads as NULL), each at most `limit` bytes unless one row alone is larger, for
    adapters that bind rows as one JSON text (Snowflake, BigQuery). `values` gives a column's
    values as JSON can hold them; Python values of 10,000 rows at a time."""
    import orjson

    names = [f"c{i}" for i in range(data.num_columns)]
    rows: list[bytes] = []
    size = 2
    for offset in range(0, data.num_rows, 10_000):
        columns = [values(c) for c in data.slice(offset, 10_000).columns]
        for row in zip(*columns):
            item = orjson.dumps({n: v for n, v in zip(names, row) if v is not None})
            if rows and size + len(item) + 1 > limit:
                yield b"[" + b",".join(rows) + b"]"
                rows, size = [], 2
            rows.append(item)
            size += len(item) + 1
    if rows:
        yield b"[" + b",".join(rows) + b"]"


# A stream's batch holds about BATCH_BYTES: rows wider than BATCH_BYTES / batch_rows (6.4 KB at the
# engine's 10,000 rows) come in fewer rows a batch. A batch of 10,000 rows of 100 KB of text was
# 1 GB, held in about three copies while it was mapped and sent.
BATCH_BYTES, PROBE_ROWS = 64 << 20, 100
# The name under which stream_scratch's `rest` gives the positions of the rows read already.
STREAM_READ = "_dinsync_stream_read"


def rows_within(batch_rows: int, row_bytes: float) -> int:
    """`batch_rows`, or fewer where rows of `row_bytes` would make a batch over BATCH_BYTES."""
    return max(1, min(batch_rows, int(BATCH_BYTES // max(1.0, row_bytes))))


def rebatch(batches: Iterator[pa.RecordBatch], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Batches of `batch_rows` rows (the last one shorter), whatever sizes come in; fewer rows
    where they are wide, so that a batch put together holds about BATCH_BYTES. (A batch that comes
    in larger is cut, never copied whole.)"""
    import pyarrow as pa

    pending: list[pa.RecordBatch] = []
    count = size = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        count += batch.num_rows
        size += batch.nbytes
        while count >= batch_rows or size >= BATCH_BYTES:
            take = min(batch_rows, count, rows_within(batch_rows, size / count))
            table = pa.Table.from_batches(pending)
            head, rest = table.slice(0, take), table.slice(take)
            yield head.combine_chunks().to_batches()[0]
            pending = rest.to_batches()
            count, size = rest.num_rows, rest.nbytes
    if count:
        yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]


def slice_batches(batches: Iterator[pa.RecordBatch], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Re-cut a stream of record batches so that none has more than `batch_rows` rows (empty
    batches are dropped)."""
    for batch in batches:
        for offset in range(0, batch.num_rows, max(1, batch_rows)):
            yield batch.slice(offset, batch_rows)

