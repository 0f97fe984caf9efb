"""Code shared by the warehouses that speak the PostgreSQL protocol (PostgreSQL, Redshift).

Mixins, combined by each adapter:
- `PgErrors`: SQLSTATE and libpq messages -> WarehouseErrors.
- `PsycopgSessions`: SQL through psycopg 3, one autocommit session per thread (a transaction
  belongs to the thread that opened it; session-temporary tables stay visible to it).
- `CsvCopyWrite`: bulk writes as `COPY ... FROM STDIN (FORMAT csv)`, the CSV made by Arrow.
- `MultiRowInsertWrite`: bulk writes as batched multi-row INSERTs (no COPY FROM STDIN).
- `AdbcStream`: reads as Arrow record batches through ADBC (binary COPY on the server).
- `CursorStream`: reads through a server-side cursor (DECLARE / FETCH), converted to Arrow.
"""
from __future__ import annotations

import contextlib
import functools
import io
import itertools
import json
import re
import threading
from typing import Any, ClassVar, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from . import errors as E
from .array_shapes import with_shapes
from .base import PROBE_ROWS, Params, quote_ident, rebatch, rows_to_arrow, rows_within, translated
from .column_types import POSTGRES_FAMILY
from .numeric_text import numeric_text, numeric_text_list
from .params import translate

# ------------------------------------------------------------------------------- errors

_SQLSTATE_CLASSES: dict[str, type[E.WarehouseError]] = {
    "28": E.WarehouseAuthError,  # invalid authorization specification
    "08": E.WarehouseUnavailable,  # connection exception
    "53": E.WarehouseUnavailable,  # insufficient resources
    "57": E.WarehouseUnavailable,  # operator intervention (statement timeout, shutdown)
    "58": E.WarehouseUnavailable,  # system error (I/O)
    "40": E.WarehouseConflict,  # transaction rollback (serialization failure, deadlock)
    "23": E.WarehouseConstraintViolation,  # integrity constraint violation
}
_SQLSTATES: dict[str, type[E.WarehouseError]] = {
    "42P01": E.WarehouseObjectMissing,  # undefined table
    "3F000": E.WarehouseObjectMissing,  # invalid schema name
    "3D000": E.WarehouseObjectMissing,  # invalid catalog (database) name
    "42703": E.WarehouseObjectMissing,  # undefined column
    "42501": E.WarehousePermissionError,  # insufficient privilege
    # lock_timeout: another transaction holds a lock the statement waited for (a dbt run swapping
    # the model's table in, an ALTER TABLE); class 55 is otherwise a statement to fix
    "55P03": E.WarehouseLockTimeout,
}
# Timeouts the server applies, and what to do about each (the class's hint, "could not be reached
# ... run again later" or "another transaction changed the same tables", says neither).
_TIMEOUT_HINTS = (
    ("canceling statement due to lock timeout",
     "another transaction holds a lock on a table the statement needed (a dbt run replacing the model's "
     "table, an ALTER TABLE, a long open transaction: see pg_locks); run again once it ends "
     "(lock_timeout, in warehouse.settings or the role's defaults, is how long to wait for it)"),
    ("canceling statement due to statement timeout",
     "the statement ran longer than statement_timeout (warehouse.settings in dinsync.yml, or the role's "
     "or database's default): raise it for dinsync, e.g. settings: {statement_timeout: 30min}, or make "
     "the model faster; as they are, the next runs will time out too"),
)
# libpq connection failures (and ADBC's errors mid-stream) carry no SQLSTATE: their text says what happened.
_CONNECT_MESSAGES: tuple[tuple[str, type[E.WarehouseError]], ...] = (
    # libpq cannot parse the connection settings (see conninfo_uri_parse / conninfo_parse): nothing
    # was reached; these were "could not be reached ... run again later" (exit 1)
    ("in connection info string", E.WarehouseSettingsError),  # missing "=" after ..., unterminated quote
    ("for connection option", E.WarehouseSettingsError),  # invalid integer value "x" for connection option "port"
    ("invalid connection option", E.WarehouseSettingsError),
    ("invalid uri query parameter", E.WarehouseSettingsError),
    ("invalid percent-encoded token", E.WarehouseSettingsError),
    ("unexpected spaces found in", E.WarehouseSettingsError),
    ("sslmode value", E.WarehouseSettingsError),  # invalid sslmode value: "x"
    # the server refuses a session setting (warehouse.settings, sent as -c options): FATAL at connect
    ("unrecognized configuration parameter", E.WarehouseSettingsError),
    ("invalid value for parameter", E.WarehouseSettingsError),
    ("password authentication failed", E.WarehouseAuthError),
    ("no password supplied", E.WarehouseAuthError),
    ("role \"", E.WarehouseAuthError),  # role "x" does not exist
    ("no pg_hba.conf entry", E.WarehouseAuthError),
    ("authentication failed", E.WarehouseAuthError),
    ("database \"", E.WarehouseObjectMissing),  # database "x" does not exist
    ("permission denied", E.WarehousePermissionError),
    ("connection refused", E.WarehouseUnavailable),
    ("timeout expired", E.WarehouseUnavailable),
    ("could not translate host name", E.WarehouseUnavailable),
    ("server closed the connection", E.WarehouseUnavailable),
    ("connection is closed", E.WarehouseUnavailable),
    ("the connection is lost", E.WarehouseUnavailable),
    ("could not receive data", E.WarehouseUnavailable),
    ("could not send data", E.WarehouseUnavailable),
    ("no route to host", E.WarehouseUnavailable),
    ("network is unreachable", E.WarehouseUnavailable),
    # operator intervention (SQLSTATE class 57), as ADBC's errors mid-stream say it, without a state
    ("terminating connection due to", E.WarehouseUnavailable),
    ("canceling statement due to", E.WarehouseUnavailable),
)


def classify_pg(exc: BaseException) -> type[E.WarehouseError] | None:
    state = getattr(exc, "sqlstate", None) or _adbc_sqlstate(exc)
    if state:
        if state in _SQLSTATES:
            return _SQLSTATES[state]
        if state[:2] in _SQLSTATE_CLASSES:
            return _SQLSTATE_CLASSES[state[:2]]
        return None
    text = str(exc).lower()
    for needle, cls in _CONNECT_MESSAGES:
        if needle in text:
            return cls
    if type(exc).__name__ in ("OperationalError", "InterfaceError"):
        return E.WarehouseUnavailable
    return None


def _adbc_sqlstate(exc: BaseException) -> str | None:
    state = getattr(exc, "sqlstate", None)
    if state:
        return state
    text = str(exc)
    marker = "SQLSTATE: "
    if marker in text:
        return text.split(marker, 1)[1][:5]
    return None


# Types without an extended hash function (checked on PostgreSQL 15): the diff's row fingerprint,
# HASH_RECORD_EXTENDED(ROW(...)), fails on them (and on arrays of them) -> the cast that fixes it.
NO_EXTENDED_HASH = {
    "json": "{c}::jsonb", "jsonpath": "{c}::text", "money": "{c}::numeric", "xml": "{c}::text",
    "bit": "{c}::text", "varbit": "{c}::text", "bit varying": "{c}::text", "tsvector": "{c}::text",
    "tsquery": "{c}::text", "txid_snapshot": "{c}::text", "point": "{c}::text", "line": "{c}::text",
    "lseg": "{c}::text", "box": "{c}::text", "path": "{c}::text", "polygon": "{c}::text", "circle": "{c}::text",
}


def extended_hash_problem(column: str, kind: str) -> str | None:
    """A mapped column of a type PostgreSQL cannot hash (NO_EXTENDED_HASH), with its fix: named at
    `validate` and before a sync plans, instead of the plan failing with PostgreSQL's message."""
    base = kind.strip().lower().removesuffix("[]").lstrip("_")
    fix = NO_EXTENDED_HASH.get(base)
    if fix is None:
        return None
    name = column if column.isidentifier() and column.islower() else quote_ident(column)
    return (f"PostgreSQL has no extended hash function for {base}, which the diff needs to compare values: "
            f"convert it in the model's SQL, e.g. {fix.format(c=name)} AS {name}")


def record_problem(column: str, kind: str) -> str | None:
    """A mapped column of an anonymous record (`ROW(a, b)`, `(a, b)`, a subquery's row; an array of
    them, which `columns` names by its element type too): a pseudo-type no table column can hold, so
    the plan's first statement failed on every run ("column "v0" has pseudo-type record", exit 1,
    naming none of the model's columns). Named at `validate` and before a sync plans, with the cast.
    (A match column is read as its text, `(1,x)`, and works as it is.)"""
    if kind.strip().lower().removesuffix("[]").lstrip("_") != "record":
        return None
    name = column if column.isidentifier() and column.islower() else quote_ident(column)
    return ("an anonymous record (ROW(...), a subquery's row) cannot be held in the plan's table: convert it "
            f"in the model's SQL, e.g. to_jsonb({name}) AS {name} (an object, with `type: json`) or "
            f"{name}::text AS {name} (its text form), or map its fields, ({name}).f1")


# Types whose own (extended) hash gives two values one hash only when their text forms are equal
# (arrays of them too: `columns` names an array by its element type). A mapped column of any other
# type (text and varchar, whose collation may be case-insensitive; citext; composites, enums,
# domains) is hashed in the row fingerprint as its text under the "C" collation (DINSYNC_EXACT):
# with HASH_RECORD_EXTENDED, `Bob` -> `BOB` in a citext column, or in a text column of an ICU
# collation with deterministic = false, left the fingerprint as it was, and was never sent.
NATIVE_HASH_EXACT = frozenset({
    "int2", "int4", "int8", "oid", "bool", "float4", "float8", "numeric", "date", "time", "timestamp",
    "timestamptz", "uuid", "jsonb",
})


def exact_hash_columns(kinds: list[tuple[str, str]], columns: list[str]) -> set[str]:
    """Of `columns`, those whose type (in `kinds`: `columns()`'s answer) is not NATIVE_HASH_EXACT."""
    found = dict(kinds)
    return {c for c in columns if found.get(c) not in NATIVE_HASH_EXACT}


# Built-in types (by OID, the same on every server of the protocol) whose text form depends on a
# session setting, each with the SQL of the text ({x}: the value) a session of PostgreSQL's
# defaults writes: the diff hashes that text instead (Warehouse.stable_hash_forms), so that a run
# under another setting (a role's or database's default, PGTZ, `settings:`) finds the values it
# hashed unchanged, and the hashes stored under the defaults stay as they were. A timestamptz is
# written in the session's TimeZone (UTC's form: `2024-01-01 10:00:00+00`, `... BC` after it); a
# bytea as bytea_output says (`hex`'s form: `\x0102`; `escape` writes `\001\002`).
SESSION_TEXT_FORMS = {
    1184: "CASE WHEN ISFINITE({x}) THEN REPLACE(CAST({x} AT TIME ZONE 'UTC' AS TEXT) || '+00', ' BC+00', '+00 BC') "
          "ELSE CAST({x} AS TEXT) END",
    17: "CHR(92) || 'x' || ENCODE({x}, 'hex')",
}

# The types of a query's result columns, with what each holds: (oid, typtype, typcategory,
# typelem, typbasetype, rngsubtype (of a multirange: its range type), [[attname, atttypid], ...]
# of a composite). (pg_range.rngmultitypid, PostgreSQL 14+, is read through to_jsonb: older
# servers have no such column.)
_TYPE_INFO = """SELECT t.oid::int8, t.typtype::text, t.typcategory::text, t.typelem::int8, t.typbasetype::int8,
  COALESCE((SELECT r.rngsubtype::int8 FROM pg_catalog.pg_range r WHERE r.rngtypid = t.oid),
           (SELECT r.rngtypid::int8 FROM pg_catalog.pg_range r
            WHERE t.typtype = 'm' AND to_jsonb(r) ->> 'rngmultitypid' = t.oid::text)),
  (SELECT json_agg(json_build_array(a.attname, a.atttypid::int8) ORDER BY a.attnum)::text
   FROM pg_catalog.pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped)
FROM pg_catalog.pg_type t WHERE t.oid = ANY(%(oids)s)"""


def session_text_form(x: str, oid: int, types: dict[int, tuple], forms: dict[int, str], depth: int = 0) -> str | None:
    """SQL of value `x` of type `oid` with each value of a type of `forms` in it written as its
    form (a domain as its base type; an array's, a composite's elements and fields alike), as the
    text of the whole; None when the type holds none. `types`: _TYPE_INFO's rows by oid."""
    if oid in forms:
        return forms[oid].format(x=x)
    info = types.get(oid)
    if info is None or depth > 8:
        return None
    _, typtype, category, elem, base, sub, attrs = info
    if typtype == "d":
        return session_text_form(x, base, types, forms, depth + 1)
    if typtype == "r" and _base_type(sub, types) in forms:  # tstzrange: `["2024-01-01 10:00:00+00",infinity)`
        lower, upper = (session_text_form(f"{end}({x})", sub, types, forms, depth + 1) for end in ("LOWER", "UPPER"))
        # a bound is quoted when its text holds a space (as a finite timestamptz's); none: unbounded
        bound = "COALESCE(CASE WHEN POSITION(' ' IN {b}) > 0 THEN '\"' || {b} || '\"' ELSE {b} END, '')"
        return (f"CASE WHEN {x} IS NULL THEN NULL WHEN ISEMPTY({x}) THEN 'empty' ELSE "
                f"CASE WHEN LOWER_INC({x}) THEN '[' ELSE '(' END || {bound.format(b=lower)} || ',' || "
                f"{bound.format(b=upper)} || CASE WHEN UPPER_INC({x}) THEN ']' ELSE ')' END END")
    if typtype == "m" and sub:  # tstzmultirange: `{["2024-01-01 10:00:00+00",...),[...)}`, its ranges in order
        r, o = f"_dinsync_r{depth}", f"_dinsync_o{depth}"
        inner = session_text_form(r, sub, types, forms, depth + 1)
        if inner is None:
            return None
        ranges = f"SELECT STRING_AGG({inner}, ',' ORDER BY {o}) FROM UNNEST({x}) WITH ORDINALITY AS _dinsync_m{depth}({r}, {o})"
        return f"CASE WHEN {x} IS NULL THEN NULL ELSE '{{' || COALESCE(({ranges}), '') || '}}' END"
    if category == "A" and elem:
        e = f"_dinsync_e{depth}"
        inner = session_text_form(e, elem, types, forms, depth + 1)
        if inner is None:
            return None
        # (UNNEST in the select list: in FROM, a NULL composite element would be read as `(,)`)
        items = f"CAST(ARRAY(SELECT {inner} FROM (SELECT UNNEST({x}) AS {e}) AS _dinsync_u{depth}) AS TEXT)"
        # the text of a one-dimensional array from 1 (`{a,b}`); other shapes are told by their
        # bounds, with the elements in order (`[0:1]={a,b}`, `[1:2][1:1]={a,b}`)
        return (f"CASE WHEN {x} IS NULL THEN NULL WHEN COALESCE(ARRAY_NDIMS({x}), 1) = 1 "
                f"AND COALESCE(ARRAY_LOWER({x}, 1), 1) = 1 THEN {items} ELSE ARRAY_DIMS({x}) || '=' || {items} END")
    if typtype == "c" and attrs:
        fields = [(quote_ident(name), session_text_form(f"({x}).{quote_ident(name)}", t, types, forms, depth + 1))
                  for name, t in json.loads(attrs)]
        if all(form is None for _, form in fields):
            return None
        row = ", ".join(form or f"({x}).{name}" for name, form in fields)
        # (x IS NULL holds for `(,)` too, whose text is not NULL)
        return f"CASE WHEN CAST({x} AS TEXT) IS NULL THEN NULL ELSE CAST(ROW({row}) AS TEXT) END"
    return None


# The dimensions of an array of more than one ({x}: the array), else NULL: what the row fingerprint
# hashes with the array, whose own hash (hash_array_extended) reads its elements only
# (Warehouse.shape_hash_forms). NULL for the others, so that their fingerprints stay as they were.
ARRAY_SHAPE = "CASE WHEN ARRAY_NDIMS(@X@) > 1 THEN ARRAY_DIMS(@X@) END"


def _base_type(oid: int, types: dict[int, tuple]) -> int:
    """The type a domain `oid` is of (through domains of domains), else `oid`."""
    while oid in types and types[oid][1] == "d":
        oid = types[oid][4]
    return oid


def type_tree(execute: Any, oids: set[int]) -> dict[int, tuple]:
    """_TYPE_INFO's rows of the types `oids` and of every type they hold (`execute(sql, params)`
    gives rows)."""
    found: dict[int, tuple] = {}
    todo = set(oids)
    while todo:
        rows = execute(_TYPE_INFO, {"oids": sorted(todo)})
        found.update({r[0]: tuple(r) for r in rows})
        held = set()
        for _, _, _, elem, base, sub, attrs in rows:
            held |= {t for t in (elem, base, sub) if t}
            held |= {t for _, t in json.loads(attrs or "[]")}
        todo = held - set(found) - set(SESSION_TEXT_FORMS)
        if len(found) > 1000:
            break
    return found


class PgErrors:
    def classify(self, exc: BaseException) -> type[E.WarehouseError] | None:
        return classify_pg(exc)

    def hint_for(self, exc: BaseException) -> str | None:
        text = str(exc)
        for needle, hint in _TIMEOUT_HINTS:
            if needle in text:
                return hint
        if "unrecognized configuration parameter" in text or "invalid value for parameter" in text:
            return ("fix the setting's name or value under warehouse.settings in dinsync.yml: "
                    "the server refuses every session with it")
        if "could not identify an extended hash function for type" in text:  # the diff's row fingerprint
            kind = text.split("for type", 1)[1].split()[0]
            return (f"the diff hashes each mapped column with its type's hash function, and {kind} has none: "
                    f"cast that column in the model SQL (e.g. col::jsonb or col::text)")
        return None


# ------------------------------------------------------------------------------- types


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


# ------------------------------------------------------------------------------- sessions


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

    def _init_sessions(self) -> None:
        self._conn_lock = threading.Lock()
        self._local = threading.local()
        self._conns = []

    def _connect_psycopg(self):  # pragma: no cover - implemented by adapters
        raise NotImplementedError

    @property
    def conn(self):
        """The calling thread's connection (opened on first use; connections of threads that
        ended are closed)."""
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            with self.translating("connecting"):
                conn = self._connect_psycopg()
            # small query results as streams deliver them (jsonb, uuid: text; `dinsync plan`'s samples
            # of a date 'infinity', say)
            _load_value_forms(conn)
            self._local.conn = conn
            with self._conn_lock:
                alive = []
                for thread, other in self._conns:
                    if thread.is_alive():
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
    def state_waits(self) -> Iterator[None]:
        """`state_wait_settings` (lock_timeout, statement_timeout) for what runs in the block, as
        transaction-local settings (a pooler in transaction mode hands a session's SET to its next
        client): in a transaction of its own where none is open, else in the one open until the
        block ends, then as they were. Nested blocks keep the outer one's."""
        settings = self.state_wait_settings
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


# ------------------------------------------------------------------------------- writes


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
    def _prepare_table(self, schema: str, table: str, data: pa.Table, mode: str) -> str:
        if mode not in ("append", "replace"):
            raise ValueError(f"write mode must be append or replace, got {mode!r}")
        target = self.table_name(schema, table)
        if mode == "replace":
            text = self.capabilities.text_type
            cols = ", ".join(f"{self.quote(f.name)} {POSTGRES_FAMILY.of(f.type, text)}" for f in data.schema)
            self.execute(f"DROP TABLE IF EXISTS {target}")
            self.execute(f"CREATE TABLE {target} ({cols})")
        return target


class CsvCopyWrite(_TableWrites):
    """`COPY schema.table (columns) FROM STDIN (FORMAT csv)`, fed with CSV that Arrow writes
    (vectorised; NULL unquoted-empty, '' quoted) in slices of `copy_rows` rows."""

    copy_rows = 200_000

    @translated("writing rows")
    def write_arrow(self, schema: str, table: str, data: pa.Table, mode: str = "append") -> None:
        data = _plain(data)
        with self.transaction():
            target = self._prepare_table(schema, table, data, mode)
            if data.num_rows == 0:
                return
            cols = ", ".join(self.quote(n) for n in data.column_names)
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

    @translated("writing rows")
    def write_arrow(self, schema: str, table: str, data: pa.Table, mode: str = "append") -> None:
        data = _plain(data)
        with self.transaction():
            target = self._prepare_table(schema, table, data, mode)
            if data.num_rows == 0:
                return
            ncols = data.num_columns
            per = max(1, min(self.insert_rows, self.max_params // max(1, ncols)))
            cols = ", ".join(self.quote(n) for n in data.column_names)
            row = "(" + ", ".join(["%s"] * ncols) + ")"
            with self.conn.cursor() as cur:
                for offset in range(0, data.num_rows, per):
                    chunk = data.slice(offset, per)
                    values = list(itertools.chain.from_iterable(zip(*(c.to_pylist() for c in chunk.columns))))
                    sql = f"INSERT INTO {target} ({cols}) VALUES " + ", ".join([row] * chunk.num_rows)
                    cur.execute(sql, values)


# ------------------------------------------------------------------------------- streams


def _set_local(execute: Any, settings: dict[str, str]) -> None:
    """The stream's settings (`stream_settings`) for its transaction only: LOCAL, so that a
    pooler in transaction mode does not hand them to its next client."""
    for name, value in settings.items():
        execute(f"SET LOCAL {name} = {value}")


class AdbcStream:
    """Arrow record batches through ADBC (`COPY (query) TO STDOUT (FORMAT binary)` on the
    server), on a connection of its own, re-cut to `batch_rows` rows (fewer when they are wide:
    `rebatch`). NUMERIC arrives as text and stays text (`numeric_text`: exact digits, NaN and
    infinities kept); JSON and other opaque types become strings."""

    stream_hint_bytes = 4 << 20
    stream_settings: ClassVar[dict[str, str]] = {}  # SET LOCAL in the stream's transaction (postgres.STREAM_SETTINGS)

    def _adbc_connect(self):  # implemented by adapters
        raise NotImplementedError

    @translated("streaming a query")
    def stream(self, sql: str, batch_rows: int = 50_000, params: Params = None) -> Iterator[pa.RecordBatch]:
        con = self._adbc_connect()
        try:
            cur = con.cursor()
            try:
                _set_local(cur.execute, self.stream_settings)
                cur.adbc_statement.set_options(
                    **{"adbc.postgresql.batch_size_hint_bytes": str(self.stream_hint_bytes)})
                values = None
                if params is not None:
                    sql, values = translate(sql, params, "numeric_dollar")
                schema = cur.adbc_execute_schema(sql, values)
                domains = _domain_arrays(cur, schema)
                sql = _with_text_casts(sql, schema, _opaque_arrays(cur, schema),
                                       {i for i, base in domains.items() if base == NUMERIC_OID},
                                       {i for i, base in domains.items() if base == BPCHAR_OID})
                if values is not None:
                    cur.execute(sql, values)
                else:
                    cur.execute(sql)
                reader = cur.fetch_record_batch()
                convert = _adbc_converter(reader.schema)
                try:
                    yield from rebatch((convert(b) for b in reader), batch_rows)
                except OSError as exc:  # the server's error mid-stream, through Arrow's C stream
                    if not str(exc).startswith("[libpq]"):
                        raise
                    raise self.translate(exc, "streaming a query") from None
            finally:
                cur.close()
        finally:
            con.close()


def _pg_type(field: pa.Field) -> str:
    return (field.metadata or {}).get(b"POSTGRESQL:type", b"").decode()


def _binary_extension(t: pa.DataType) -> bool:
    """ADBC hands over a type it has no Arrow type for (inet, cidr, macaddr, timetz, xml, bit,
    geometric and range types, ...) as an opaque extension holding PostgreSQL's binary wire
    format, and uuid as its 16 raw bytes: neither is the value's text form."""
    return isinstance(t, pa.BaseExtensionType) and (
        pa.types.is_binary(t.storage_type) or pa.types.is_fixed_size_binary(t.storage_type))


# the array of text of an array's elements, each in its output form (of any number of dimensions)
_ELEMENTS_AS_TEXT = "CAST(CAST({c} AS TEXT) AS TEXT[])"


def _text_cast(field: pa.Field) -> str | None:
    """The expression ({c}: the column) that makes a result column readable as its value (None:
    read it as it is)."""
    if _binary_extension(field.type):
        # inet's output form ('10.0.0.1', '::1'); its cast to text adds the netmask ('/32', '/128')
        return "ABBREV({c})" if _pg_type(field) == "inet" else "CAST({c} AS TEXT)"
    if (pa.types.is_list(field.type) or pa.types.is_large_list(field.type)) and _binary_extension(
            field.type.value_type):
        # the array's own text holds each element's output form, read back as text[]: a cast of
        # the array to text[] casts each element, and inet's cast adds the netmask (['10.0.0.1/32']
        # where a single inet, and the cursor path, give '10.0.0.1')
        return _ELEMENTS_AS_TEXT
    if _pg_type(field) == "money":  # ADBC: an int64 of cents (lc_monetary's minor unit)
        return "CAST({c} AS NUMERIC)"
    # an oid is unsigned 32-bit, which ADBC reads as int32 (3000000000 as -1294967296)
    if _pg_type(field) == "oid":
        return "CAST({c} AS BIGINT)"
    if _is_array(field) and _pg_type(field) == "_oid":
        return "CAST({c} AS BIGINT[])"
    # char(n)'s text form, without the blanks that pad it to n ('ab'::char(5)::text = 'ab': see _load_unpadded)
    if _pg_type(field) == "bpchar":
        return "CAST({c} AS TEXT)"
    if _is_array(field) and _pg_type(field) == "_bpchar":
        return "CAST({c} AS TEXT[])"
    # A composite (`create type comp as (a int, b text)`): ADBC's struct reader misfills it (rows
    # marked invalid, children shifted: (2,b) read as {"a": null, "b": null}, NULL as {"a": 0,
    # "b": ""}, {(1,x),NULL,(2,y)} as [{"a":1,"b":"x"},null,null]): read as its text form,
    # `(2,b)`, as other types ADBC cannot read are. Its fields as fields: `(col).a` in the model;
    # as an object: `to_jsonb(col)` with `type: json`.
    if pa.types.is_struct(field.type):
        return "CAST({c} AS TEXT)"
    if (pa.types.is_list(field.type) or pa.types.is_large_list(field.type)) and pa.types.is_struct(
            field.type.value_type):
        return "CAST({c} AS TEXT[])"
    return None


def _is_array(field: pa.Field) -> bool:
    return pa.types.is_list(field.type) or pa.types.is_large_list(field.type)


_DIMS = "_dinsync_dims_{i}"  # the wrapped query's column of the dimensions of array column i
# The length of each dimension of an array of more than one (else NULL), in order
_DIMS_SQL = ("CASE WHEN ARRAY_NDIMS({c}) > 1 THEN ARRAY(SELECT ARRAY_LENGTH({c}, _dinsync_d) "
             "FROM GENERATE_SERIES(1, ARRAY_NDIMS({c})) AS _dinsync_d ORDER BY _dinsync_d) END")


_UNNAMED = re.compile(r"unnamed<oid:(\d+)>")


def _opaque_arrays(cur: Any, schema: pa.Schema) -> set[int]:
    """The columns that ADBC hands over as one opaque value although they are arrays (of ranges:
    `unnamed<oid:3905>`), which the catalog tells (one query, only where there are such columns)."""
    unnamed = {i: int(m.group(1)) for i, f in enumerate(schema)
               if _binary_extension(f.type) and (m := _UNNAMED.fullmatch(_pg_type(f)))}
    if not unnamed:
        return set()
    oids = ",".join(str(o) for o in sorted(set(unnamed.values())))
    cur.execute(f"SELECT oid::int8 FROM pg_catalog.pg_type WHERE oid IN ({oids}) AND typcategory = 'A'")
    arrays = {row[0] for row in cur.fetchall()}
    return {i for i, oid in unnamed.items() if oid in arrays}


# Element types of arrays that are no domain (the common ones: no catalog query for them)
_BUILT_IN_ELEMENTS = frozenset("numeric text varchar bpchar name int2 int4 int8 float4 float8 bool date timestamp "
                               "timestamptz uuid json jsonb bytea".split())


def _domain_arrays(cur: Any, schema: pa.Schema) -> dict[int, int]:
    """The array columns whose elements are of a domain, with the domain's base type (its OID). ADBC
    names such elements by the domain and reads them as strings: over numeric `["1.50","nan"]`,
    where a numeric[]'s are numbers and a NaN is refused; over char(n) with their blank padding. The
    catalog tells (one query, only where an array holds values of a type of another name)."""
    named = {i: _pg_type(f.type.value_field) for i, f in enumerate(schema)
             if _is_array(f) and not _binary_extension(f.type.value_type)
             and (isinstance(f.type.value_type, pa.BaseExtensionType) or pa.types.is_string(f.type.value_type))}
    named = {i: n for i, n in named.items() if n and n not in _BUILT_IN_ELEMENTS}
    if not named:
        return {}
    names = ", ".join("'" + n.replace("'", "''") + "'" for n in sorted(set(named.values())))
    # the base type of each type of those names (a domain's, through domains over domains); a name of
    # several types (in several schemas) only where each is such a domain: the cast must not fail
    cur.execute(f"""WITH RECURSIVE b(name, typtype, base) AS (
  SELECT typname::text, typtype::text, typbasetype FROM pg_catalog.pg_type WHERE typname IN ({names})
  UNION ALL
  SELECT b.name, t.typtype::text, t.typbasetype FROM b JOIN pg_catalog.pg_type t ON t.oid = b.base
  WHERE b.typtype = 'd' AND t.typtype = 'd')
SELECT name, MIN(base)::int8 FROM b
WHERE NOT (typtype = 'd' AND base IN (SELECT oid FROM pg_catalog.pg_type WHERE typtype = 'd'))
GROUP BY name HAVING BOOL_AND(typtype = 'd') AND COUNT(DISTINCT base) = 1""")
    bases = {row[0]: row[1] for row in cur.fetchall()}
    return {i: bases[n] for i, n in named.items() if n in bases}


def _with_text_casts(sql: str, schema: pa.Schema, opaque_arrays: set[int] = frozenset(),
                     numeric_arrays: set[int] = frozenset(), char_arrays: set[int] = frozenset()) -> str:
    """`sql`, wrapped so that the columns ADBC would deliver as binary wire format (see
    `_binary_extension`), money as cents, or composites misread (see `_text_cast`) come out as their
    text form, an array it would deliver as one opaque value (`opaque_arrays`: of ranges) as the
    list of its elements' text, an array of a numeric domain (`numeric_arrays`) as a numeric[], of a
    char(n) domain (`char_arrays`) as a text[] (without the blank padding: `_load_unpadded`); each
    array column's dimensions (of an array of more than one, which ADBC reads as the list of its
    elements) in a column after the others (`_adbc_converter`: array_shapes)."""
    casts = [_ELEMENTS_AS_TEXT if i in opaque_arrays else "CAST({c} AS NUMERIC[])" if i in numeric_arrays
             else "CAST({c} AS TEXT[])" if i in char_arrays else _text_cast(f) for i, f in enumerate(schema)]
    arrays = [i for i, f in enumerate(schema) if _is_array(f) or i in opaque_arrays]
    if not any(casts) and not arrays:
        return sql
    cols = []
    for field, cast in zip(schema, casts):
        col = "_dinsync_q." + quote_ident(field.name)
        cols.append(cast.format(c=col) + " AS " + quote_ident(field.name) if cast else col)
    cols += [_DIMS_SQL.format(c="_dinsync_q." + quote_ident(schema[i].name)) + " AS " + _DIMS.format(i=i)
             for i in arrays]
    return f"SELECT {', '.join(cols)} FROM (\n{sql.rstrip().rstrip(';')}\n) AS _dinsync_q"


def _adbc_converter(schema: pa.Schema):
    """Each batch's columns as the mapping reads them; each array column with its rows' dimensions
    (see `_with_text_casts`: array_shapes), the columns of dimensions dropped."""
    prefix = _DIMS.format(i="")
    dims = {int(f.name[len(prefix):]): k for k, f in enumerate(schema) if f.name.startswith(prefix)}
    if dims:
        keep = len(schema) - len(dims)
        inner = _adbc_converter(pa.schema(list(schema)[:keep]))

        def with_dimensions(batch: pa.RecordBatch) -> pa.RecordBatch:
            head = pa.RecordBatch.from_arrays(batch.columns[:keep], schema=pa.schema(list(batch.schema)[:keep]))
            columns = [with_shapes(c, batch.column(dims[i])) if i in dims else c
                       for i, c in enumerate(inner(head).columns)]
            return pa.RecordBatch.from_arrays(columns, names=batch.schema.names[:keep])

        return with_dimensions
    plan = []
    for field in schema:
        meta = {k.decode(): v.decode() for k, v in (field.metadata or {}).items()}
        if meta.get("POSTGRESQL:type") == "_numeric" and (
                pa.types.is_list(field.type) or pa.types.is_large_list(field.type)):
            plan.append(numeric_text_list)  # elements as numbers, not strings (numeric_text_list)
        elif isinstance(field.type, pa.BaseExtensionType):
            if meta.get("POSTGRESQL:type") == "numeric":
                typmod = int(meta.get("POSTGRESQL:typmod", "-1"))
                plan.append(lambda a, free=typmod < 4: numeric_from_text(a.storage, free))
            else:
                plan.append(lambda a: a.storage)
        else:
            plan.append(None)
    if not any(plan):
        return lambda batch: batch

    def convert(batch: pa.RecordBatch) -> pa.RecordBatch:
        arrays = [fn(col) if fn else col for fn, col in zip(plan, batch.columns)]
        return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)

    return convert


class CursorStream:
    """Rows through a server-side cursor (`DECLARE ... CURSOR` / `FETCH FORWARD n`) in a
    transaction on a connection of its own, converted to Arrow `batch_rows` at a time (fewer when
    they are wide: `_fetched`). NUMERIC is read as its text (`numeric_text`), as the ADBC path
    reads it."""

    stream_settings: ClassVar[dict[str, str]] = {}  # SET LOCAL in the stream's transaction (postgres.STREAM_SETTINGS)

    @translated("streaming a query")
    def stream(self, sql: str, batch_rows: int = 50_000, params: Params = None) -> Iterator[pa.RecordBatch]:
        conn = self._connect_psycopg()
        try:
            _load_value_forms(conn, ("numeric",))  # numerics as PostgreSQL writes them (numeric_text)
            sql, values = self._sql(sql, params)
            with conn.transaction(), conn.cursor(name="dinsync_stream") as cur:
                _set_local(conn.execute, self.stream_settings)
                cur.execute(sql, values)
                if self.database_arrays:
                    _load_arrays_of_the_database(conn, cur)
                yield from rebatch(_fetched(cur, batch_rows), batch_rows)
        finally:
            conn.close()


def _load_arrays_of_the_database(conn: Any, cur: Any) -> None:
    """Loaders on cursor `cur` (executed, not fetched yet) of the arrays among its columns that
    psycopg knows no type of (of an enum, a composite made in the database), which it read as their
    text, one string ('{sad,ok}') where ADBC reads a list: their elements are read as their text
    (a composite's `(1,x)`, as ADBC's path reads it too)."""
    from psycopg.types import TypeInfo

    unknown = sorted({c.type_code for c in cur.description or () if cur.adapters.types.get(c.type_code) is None})
    if not unknown:
        return
    oids = ", ".join(str(int(o)) for o in unknown)
    # (and the base type of elements of a domain over char(n): read without their blank padding)
    rows = conn.execute("SELECT t.oid::int8, t.typelem::int8, t.typname::text, e.typbasetype::int8 "
                        "FROM pg_catalog.pg_type t JOIN pg_catalog.pg_type e ON e.oid = t.typelem "
                        f"WHERE t.oid IN ({oids}) AND t.typcategory = 'A' AND t.typelem <> 0").fetchall()
    for oid, elem, name, base in rows:
        TypeInfo(name.lstrip("_"), elem, oid).register(cur)
        if base == BPCHAR_OID:
            _load_unpadded(cur, elem)


def _fetched(cur: Any, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The cursor's rows as Arrow, fetched PROBE_ROWS first, then as many as make about
    BATCH_BYTES at the width of the rows fetched last (`rows_within`): 10,000 rows of 100 KB
    of text were 1 GB of Python objects at once."""
    names = types = None
    size = min(batch_rows, PROBE_ROWS)
    while True:
        rows = cur.fetchmany(size)
        if names is None:
            names = [c.name for c in cur.description]
            types = [functools.partial(numeric_from_text, free_scale=c.scale is None)
                     if c.type_code == NUMERIC_OID else numeric_list_from_text
                     if c.type_code == NUMERIC_ARRAY_OID else
                     functools.partial(calendar_array, t=_OID_TYPES[c.type_code])
                     if c.type_code in _CALENDAR_OIDS else arrow_type_of_column(c)
                     for c in cur.description]
            types = [functools.partial(one_dimension, convert=_calendar_list_of(c.type_code, t)
                                       or _read_as(cur, cur.adapters.types.get(c.type_code).oid, list_of=True))
                     if _is_array_oid(cur, c.type_code) else t if t is not None else _read_as(cur, c.type_code)
                     for c, t in zip(cur.description, types)]
        if not rows:
            return
        table = rows_to_arrow(names, rows, types)
        size = rows_within(batch_rows, table.nbytes / table.num_rows)
        yield from table.to_batches()


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
