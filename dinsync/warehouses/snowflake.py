"""Snowflake: SQL through snowflake-connector-python 4.x, reads as Arrow batches, writes as
JSON bound to one parameter and unpacked by FLATTEN (no row-by-row INSERT, no stage).

Config (dinsync.yml):
    warehouse:
      type: snowflake
      account: myorg-myaccount
      user: DINSYNC
      password: ${env:SNOWFLAKE_PASSWORD}           # or a key pair:
      # private_key: ${env:SNOWFLAKE_PRIVATE_KEY}   #   PEM text (or private_key_file: path)
      # private_key_passphrase: ${env:SNOWFLAKE_KEY_PASSPHRASE}
      database: ANALYTICS
      schema: MARTS                  # where the model SQL finds unqualified names
      warehouse: TRANSFORMING
      role: DINSYNC
      # retry_seconds: 120           # how long a request failing 5xx / cut is retried
      # host / port / protocol: another endpoint (tests: fakesnow on loopback)
Driver: pip install 'dinsync[snowflake]'.

How it maps onto Snowflake:
- Identifier case. dinsync quotes the names it creates ("snap_x"."_key") and writes others
  unquoted (`SELECT status FROM ...`); Snowflake folds unquoted names to upper case and keeps
  quoted ones as written, so both only meet if quoted names are case-insensitive too. Every
  session therefore sets `QUOTED_IDENTIFIERS_IGNORE_CASE = TRUE` (all names resolve
  case-insensitively, as on Redshift), and column names come back lower-cased. Consequence: a
  model column is named in the sync config in lower case, and two model columns whose names
  differ only by case cannot both be used (alias one of them).
- Sessions: one connection per thread, AUTOCOMMIT on. No transaction is held open between two
  requests: `transaction()` runs the writes of its block when the block ends, each a statement
  of its own, so that a run killed (`kill -9`) leaves nothing open on the server for the next run
  to wait on (see transaction()). DDL is not transactional on Snowflake (`transactional_ddl=False`).
- Retries: a request answered 5xx or cut is retried for `retry_seconds` (see _BoundedBackoff),
  not without end, once per outage: after one gave up, failing ones are tried once (see outage.py),
  and while its requests got no answer at all none is sent (see _unanswered);
  `network_timeout` is not set unless configured (it cancels long statements).
- PRIMARY KEY is not enforced: the sync lock is arbitrated by insert-then-verify (locks.py).
- Reads: the result's chunks (`get_result_batches()`, one downloaded ahead), re-cut to the
  requested batch size; a chunk whose pre-signed URL expired (6 hours) is downloaded again from
  links asked anew for the same result; other statements run on other sessions meanwhile.
  NUMBER(p, s) with s > 0 is read as decimal128 (`arrow_number_to_decimal`: by default the
  connector reads it as float64, and its 16th digit and beyond are lost).
- Writes (acknowledged keys, rejections): the rows as JSON text bound to one parameter,
  unpacked by `INSERT ... SELECT ... FROM TABLE(FLATTEN(INPUT => PARSE_JSON(...)))`, up to 512 KB
  of JSON per statement, each committed on its own. Not the stage + COPY INTO path of `write_pandas`:
  it PUTs files to an internal stage, which the test server (fakesnow) cannot serve, so it
  could not be tested here; and not multi-row INSERT ... VALUES, 45x slower through fakesnow
  (its SQL translation parses every literal) and limited by Snowflake's 1 MB statement text.
"""
from __future__ import annotations

import contextlib
import itertools
import math
import re
import sys
import threading
import time
from typing import Any, Iterator

import pyarrow as pa

from . import errors as E
from .base import Capabilities, ErrorTranslation, Params, Warehouse, json_object_chunks, slice_batches, translated
from .outage import Outage
from .params import translate
from .column_types import SNOWFLAKE

# Session parameters of every dinsync session (the `session_parameters` config adds to them).
SESSION_PARAMETERS = {
    "QUOTED_IDENTIFIERS_IGNORE_CASE": True,  # see the module docstring
    "TIMEZONE": "UTC",  # dinsync writes naive UTC timestamps
    "CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False,
    # The text of a DATE or BINARY field is what the diff hashes, and a timestamp key's text is the
    # key: pinned at Snowflake's documented defaults, so that an account's or user's own output
    # formats (say DATE_OUTPUT_FORMAT = 'DD/MM/YYYY', set or changed between two runs) neither make
    # every row look changed nor change the keys. The values sent are read as Arrow, not as text.
    "DATE_OUTPUT_FORMAT": "YYYY-MM-DD",
    "TIME_OUTPUT_FORMAT": "HH24:MI:SS",
    "TIMESTAMP_OUTPUT_FORMAT": "YYYY-MM-DD HH24:MI:SS.FF3 TZHTZM",
    "TIMESTAMP_NTZ_OUTPUT_FORMAT": "YYYY-MM-DD HH24:MI:SS.FF3",
    # (unset by default, i.e. TIMESTAMP_OUTPUT_FORMAT's: spelled out, as an empty value may not pass)
    "TIMESTAMP_LTZ_OUTPUT_FORMAT": "YYYY-MM-DD HH24:MI:SS.FF3 TZHTZM",
    "TIMESTAMP_TZ_OUTPUT_FORMAT": "YYYY-MM-DD HH24:MI:SS.FF3 TZHTZM",
    "BINARY_OUTPUT_FORMAT": "HEX",
}
# Set after the `session_parameters` config: each statement commits on its own (see transaction());
# with AUTOCOMMIT off, a DML statement opens a transaction that only a COMMIT, never sent, would end.
FORCED_SESSION_PARAMETERS = {"AUTOCOMMIT": True}

# Creating a schema or database also makes it the session's current one (USE) on Snowflake.
_CREATES_CONTEXT = re.compile(r"\s*CREATE\s+(OR\s+REPLACE\s+)?(TRANSIENT\s+)?(SCHEMA|DATABASE)\b", re.I)

_DDL = re.compile(r"\s*(CREATE|ALTER|DROP|TRUNCATE)\b", re.I)

# Snowflake error numbers (errno) -> what failed.
_ERRNOS: dict[int, type[E.WarehouseError]] = {
    # the login refused for what the settings say (exit 3: running again as is cannot help)
    390100: E.WarehouseLoginRefused,  # incorrect username or password
    390102: E.WarehouseLoginRefused,  # user disabled
    390144: E.WarehouseLoginRefused,  # JWT token invalid (key pair)
    390189: E.WarehouseLoginRefused,  # the connect string's role does not exist or not authorized
    390201: E.WarehouseDatabaseMissing,  # the connect string's database does not exist or not authorized
    # ... or for a while (exit 1)
    390101: E.WarehouseAuthError,  # user temporarily locked
    390114: E.WarehouseAuthError,  # authentication token expired
    2003: E.WarehouseObjectMissing,  # object does not exist or not authorized
    2043: E.WarehouseObjectMissing,  # object does not exist, or operation cannot be performed
    904: E.WarehouseObjectMissing,  # invalid identifier (a column)
    3001: E.WarehousePermissionError,  # insufficient privileges
    3003: E.WarehousePermissionError,
    604: E.WarehouseUnavailable,  # statement cancelled
    630: E.WarehouseUnavailable,  # statement reached its timeout
    606: E.WarehouseUnavailable,  # no active warehouse selected / warehouse suspended
    625: E.WarehouseConflict,  # deadlock / lock wait timeout
    250001: E.WarehouseUnavailable,  # could not connect
    250003: E.WarehouseUnavailable,  # failed to get a response
    251005: E.WarehouseLoginRefused,  # user is empty
    251006: E.WarehouseLoginRefused,  # password is empty
}
_SQLSTATE_CLASSES = {"08": E.WarehouseUnavailable, "28": E.WarehouseAuthError, "40": E.WarehouseConflict,
                     "57": E.WarehouseUnavailable, "23": E.WarehouseConstraintViolation}
_SQLSTATES = {"42S02": E.WarehouseObjectMissing, "02000": E.WarehouseObjectMissing, "42501": E.WarehousePermissionError,
              "08004": E.WarehouseAuthError, "42S22": E.WarehouseObjectMissing}
_MESSAGES = (
    ("does not exist", E.WarehouseObjectMissing),
    ("not found", E.WarehouseObjectMissing),
    ("insufficient privileges", E.WarehousePermissionError),
    ("incorrect username or password", E.WarehouseLoginRefused),
    ("jwt token is invalid", E.WarehouseLoginRefused),
    ("connection refused", E.WarehouseUnavailable),
    ("max retries exceeded", E.WarehouseUnavailable),
    ("timed out", E.WarehouseUnavailable),
)


def classify_snowflake(exc: BaseException) -> type[E.WarehouseError] | None:
    if isinstance(exc, ChunkUnavailable):
        return E.WarehouseUnavailable
    errno = getattr(exc, "errno", None)
    if isinstance(errno, int) and errno in _ERRNOS:
        return _ERRNOS[errno]
    state = getattr(exc, "sqlstate", None)
    if state:
        if state in _SQLSTATES:
            return _SQLSTATES[state]
        if state[:2] in _SQLSTATE_CLASSES:
            return _SQLSTATE_CLASSES[state[:2]]
    text = str(exc).lower()
    for needle, cls in _MESSAGES:
        if needle in text:
            return cls
    # (the connector raises its retried HTTP failure once network_timeout ends the retries: a 5xx
    # or 429 answer is transient, never the SQL's fault)
    if type(exc).__name__ in ("OperationalError", "InterfaceError", "ServiceUnavailableError",
                              "RequestTimeoutError", "GatewayTimeoutError", "BadGatewayError",
                              "InternalServerError", "OtherHTTPRetryableError", "TooManyRequests"):
        return E.WarehouseUnavailable
    if isinstance(exc, OSError):
        return E.WarehouseUnavailable
    return None


class _BoundedBackoff:
    """A connection's backoff policy: the connector's own (exponential, full jitter, at most 16 s),
    giving up once a request has been retried for `seconds`. Without network_timeout the connector
    retries a request answered 5xx, or reset, without end (fakesnow answers 500 to a statement it
    cannot run: the run never ended), and network_timeout would also cancel any statement running
    longer than it (its "timebomb"). The connector calls the policy anew for each request and
    advances it after each failed attempt, so this bounds the retries of one request only: a long
    statement is polled (a request each time) and never cancelled. Giving up raises
    OperationalError (transient, the run's error), naming the last failure. While the warehouse's
    `outage` is ongoing (a request of any session gave up), a request gives up at its first
    failure; a request that gets through (the generator closed before giving up) ends the outage."""

    def __init__(self, seconds: float, sf: Any, outage: Outage | None = None):
        self.seconds, self._sf, self.outage = seconds, sf, outage or Outage()

    def __call__(self) -> Iterator[int]:
        from snowflake.connector.backoff_policies import exponential_backoff
        from snowflake.connector.errorcode import ER_FAILED_TO_REQUEST

        seconds, started, sleeps, retries = self.seconds, time.monotonic(), exponential_backoff()(), 0
        try:
            yield next(sleeps)
            while True:
                retries += 1  # advanced after a failed attempt and its sleep: before the next attempt
                left, again = seconds - (time.monotonic() - started), self.outage.ongoing(seconds)
                if left <= 0 or again:
                    last = sys.exc_info()[1]  # the connector's RetryRequest (its cause: the failure)
                    cause = last.args[0] if last is not None and last.args else last
                    self.outage.gave_up(cause)
                    spent = (f"was not retried (an earlier request had kept failing for {seconds:g} s)"
                             if again and retries == 1 else f"kept failing for {seconds:g} s ({retries} attempts)")
                    gave_up = self._sf.errors.OperationalError(
                        msg=f"a request {spent}, the last time with: {_no_query(cause) if cause else '?'}",
                        errno=ER_FAILED_TO_REQUEST)
                    gave_up.dinsync_retries_exhausted = True
                    raise gave_up
                yield max(1, min(next(sleeps), math.ceil(left)))
        except GeneratorExit:  # the request got through (or failed in a way not retried): reachable
            self.outage.reached()
            raise


class ChunkUnavailable(Exception):
    """A chunk of a streamed result that could not be downloaded, even from links asked anew:
    transient (the next run runs the query again)."""


def _no_query(exc: BaseException) -> str:
    """An error's text without the query strings of the URLs in it (a chunk's pre-signed URL
    carries the signature that grants reading the result)."""
    return re.sub(r"\?[\w.-]+=[^\s'\"]*", "?...", str(exc)) or type(exc).__name__


def _result_tables(cur: Any, conn: Any) -> Iterator[pa.Table]:
    """The result's chunks as Arrow tables, in order, the next one downloaded while the current one
    is read. A stream is read at the platform's pace (hours for a large first sync), and
    Snowflake's pre-signed chunk URLs are valid for 6 hours (the connector's `ResultBatch`): a
    chunk whose download fails is downloaded again, once, from the links Snowflake gives anew for
    the same result (GET /queries/<id>/result: the same chunks); before, the run failed there with
    "HTTP 403: Forbidden", and each next run got as far again."""
    from concurrent.futures import ThreadPoolExecutor

    from snowflake.connector.constants import IterUnit
    from snowflake.connector.result_batch import ArrowResultBatch

    qid, batches = cur.sfqid, cur.get_result_batches() or []
    if batches and not isinstance(batches[0], ArrowResultBatch):
        yield from cur.fetch_arrow_batches()  # (which says it reads Arrow results only)
        return

    def download(batch: Any) -> list[pa.Table]:  # as fetch_arrow_batches reads a chunk: none when it is empty
        return list(batch.create_iter(connection=conn, iter_unit=IterUnit.TABLE_UNIT, structure="arrow"))

    renewed_at = -1
    with ThreadPoolExecutor(1, thread_name_prefix="dinsync-sf-chunk") as pool:
        ahead: dict[int, Any] = {}
        i = 0
        while i < len(batches):
            for j in (i, i + 1):
                if j < len(batches) and j not in ahead:
                    ahead[j] = pool.submit(download, batches[j])
            try:
                tables = ahead.pop(i).result()
            except Exception as exc:
                failed = f"chunk {i + 1} of {len(batches)} of the result could not be downloaded"
                if renewed_at == i:
                    raise ChunkUnavailable(f"{failed}, also from links asked anew: {_no_query(exc)}") from None
                for future in ahead.values():  # (downloads from the old links)
                    future.cancel()
                ahead.clear()
                again = None
                try:
                    again = conn.cursor()
                    again.query_result(qid)
                    renewed = again.get_result_batches() or []  # (they download without the cursor)
                except Exception as renewing:
                    raise ChunkUnavailable(f"{failed} ({_no_query(exc)}), nor its links asked anew: "
                                           f"{_no_query(renewing)}") from None
                finally:
                    if again is not None:
                        with contextlib.suppress(Exception):
                            again.close()
                if [b.rowcount for b in renewed] != [b.rowcount for b in batches]:  # going on could skip or repeat rows
                    raise ChunkUnavailable(f"{failed} ({_no_query(exc)}), and the links asked anew are not "
                                           "those of the same chunks") from None
                batches, renewed_at = renewed, i
                continue
            yield from tables
            i += 1


def _plain(data: pa.Table) -> pa.Table:
    """Dictionary columns decoded. (Not PostgreSQL's rule, which removes NUL characters from text:
    a Snowflake VARCHAR holds them, and a key written without its NUL was not the key planned, so
    its row was sent again on every run.)"""
    if not any(pa.types.is_dictionary(t) for t in data.schema.types):
        return data
    columns = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in data.columns]
    return pa.Table.from_arrays(columns, names=data.column_names)


def _lower_names(table):
    """A table or batch with its column names lower-cased (see the module docstring)."""
    names = [n.lower() for n in table.schema.names]
    return table.rename_columns(names) if names != table.schema.names else table


def _plain_types(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Integral decimals (Snowflake's NUMBER(p, 0), p <= 18) as int64, as every other warehouse
    gives integers; nanosecond timestamps as microseconds (Python's precision); others as they are."""
    arrays, changed = [], False
    for col in batch.columns:
        if pa.types.is_decimal(col.type) and col.type.scale == 0 and col.type.precision <= 18:
            col = col.cast(pa.int64())
            changed = True
        elif pa.types.is_timestamp(col.type) and col.type.unit == "ns":
            col = col.cast(pa.timestamp("us", col.type.tz), safe=False)
            changed = True
        arrays.append(col)
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names) if changed else batch


class SnowflakeWarehouse(ErrorTranslation, Warehouse):
    type_name = "snowflake"
    display_name = "Snowflake"
    extra = "snowflake"
    capabilities = Capabilities(
        dialect="snowflake",
        hash_type="BIGINT",
        merge=True,
        temp_tables=True,
        transactional_ddl=False,
        enforces_primary_key=False,
        lock_arbiter="insert_verify",
        text_type="VARCHAR",
        timestamp_type="TIMESTAMP_NTZ",
        max_identifier_length=255,
        unquoted_case="upper",
        quoted_case_sensitive=False,  # QUOTED_IDENTIFIERS_IGNORE_CASE (see the docstring)
        paramstyle="pyformat",
    )
    json_bytes = 512 * 1024  # rows per INSERT: at most this much JSON

    def __init__(self, account: str, user: str, password: str | None = None, database: str | None = None,
                 schema: str | None = None, warehouse: str | None = None, role: str | None = None,
                 private_key: str | None = None, private_key_file: str | None = None,
                 private_key_passphrase: str | None = None, authenticator: str | None = None,
                 host: str | None = None, port: int | None = None, protocol: str | None = None,
                 login_timeout: int | None = 60, network_timeout: int | None = None, retry_seconds: float = 120,
                 session_parameters: dict[str, Any] | None = None):
        from . import require_driver

        self._sf = require_driver("snowflake.connector", "snowflake", package="snowflake-connector-python")
        _keep_sigint_handler()
        self.driver_errors = (self._sf.errors.Error, ChunkUnavailable)
        self._secrets = [s for s in (password, private_key, private_key_passphrase) if s]
        self._retry_seconds, self._login_seconds = float(retry_seconds), float(login_timeout or 0)
        self._outage = Outage()  # see _BoundedBackoff: one budget per outage, not per request
        options: dict[str, Any] = dict(
            account=account, user=user, password=password, database=database, schema=schema, warehouse=warehouse,
            role=role, authenticator=authenticator, host=host, port=port, protocol=protocol,
            login_timeout=login_timeout, network_timeout=network_timeout, application="dinsync",
            session_parameters={**SESSION_PARAMETERS, **(session_parameters or {}), **FORCED_SESSION_PARAMETERS},
            # NUMBER(p, s > 0) as decimal128(38, s): Snowflake sends it as unscaled integers, and the
            # connector's default divides them into float64 (12345678.0123456789 sent as 12345678.012345679)
            arrow_number_to_decimal=True,
        )
        if private_key or private_key_file:
            options["private_key"] = _load_private_key(private_key, private_key_file, private_key_passphrase)
            options["authenticator"] = authenticator or "SNOWFLAKE_JWT"
            options.pop("password")
        self._options = {k: v for k, v in options.items() if v is not None}
        self._lock = threading.Lock()
        self._local = threading.local()
        self._conns: list[tuple[threading.Thread, Any]] = []
        self.conn  # connect now: wrong credentials or account fail here, with a clear error

    # --- sessions ------------------------------------------------------------------------
    def classify(self, exc: BaseException) -> type[E.WarehouseError] | None:
        return classify_snowflake(exc)

    def hint_for(self, exc: BaseException) -> str | None:
        if getattr(exc, "dinsync_retries_exhausted", False):
            return ("Snowflake kept answering with a server error (HTTP 5xx) or dropping the connection; the "
                    "next run tries again (the warehouse's retry_seconds sets how long a request is retried)")
        return None

    def _connect(self):
        # the login's retries are bounded by login_timeout (the connector's), which the policy must
        # not cut short; the session's requests then by retry_seconds
        policy = _BoundedBackoff(max(self._retry_seconds, self._login_seconds), self._sf, self._outage)
        with self.translating("connecting"):
            conn = self._sf.connect(**self._options, backoff_policy=policy)
        policy.seconds = self._retry_seconds
        return conn

    def _unanswered(self) -> None:
        """While an outage whose requests got no answer at all lasts (retry_seconds), raise instead
        of sending a statement: each would wait the connector's socket timeout (60 s) for nothing,
        a failed run's every last write (checkpoint, run log end, sync state, lock release)."""
        from snowflake.connector.vendored.requests.exceptions import Timeout

        outage = self._outage
        if outage.unanswered(self._retry_seconds, Timeout):
            from snowflake.connector.errorcode import ER_FAILED_TO_REQUEST

            unsent = self._sf.errors.OperationalError(
                msg=f"a request was not sent (earlier requests got no answer for {self._retry_seconds:g} s, the "
                    f"last time with: {_no_query(outage.cause)})", errno=ER_FAILED_TO_REQUEST)
            unsent.dinsync_retries_exhausted = True
            raise unsent

    @property
    def conn(self):
        """The calling thread's connection (opened on first use; those of ended threads closed);
        none while its requests would go unanswered (see _unanswered)."""
        self._unanswered()
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.is_closed():
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                alive = []
                for thread, other in self._conns:
                    if thread.is_alive():
                        alive.append((thread, other))
                    else:
                        with contextlib.suppress(Exception):
                            other.close()
                self._conns = alive + [(threading.current_thread(), conn)]
        return conn

    def _sql(self, sql: str, params: Params) -> tuple[str, Any]:
        return translate(sql, params, "pyformat") if params is not None else (sql, None)

    # --- SQL -----------------------------------------------------------------------------
    @translated("running a statement")
    def execute(self, sql: str, params: Params = None) -> int | None:
        writes = getattr(self._local, "writes", None)
        if writes is not None:
            if not _DDL.match(sql):  # inside transaction(): run when the block ends
                writes.append((sql, params))
                return None
            self._flush()  # DDL commits what came before it on Snowflake: in that order here too
        return self._run(sql, params)

    def _run(self, sql: str, params: Params) -> int | None:
        sql, values = self._sql(sql, params)
        with self.conn.cursor() as cur:
            restore = _CREATES_CONTEXT.match(sql) and self._context(cur)
            cur.execute(sql, values)
            count = cur.rowcount
            if restore:  # CREATE SCHEMA / DATABASE made the new one current: the model SQL reads the old
                cur.execute(restore)
            return count if isinstance(count, int) and count >= 0 else None

    def _flush(self) -> None:
        """Run the writes a transaction() block has collected so far, each on its own, in order."""
        writes = getattr(self._local, "writes", None)
        while writes:
            self._run(*writes.pop(0))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """The writes of the block, run when it ends, each a statement of its own (AUTOCOMMIT): no
        session holds a transaction between two requests. A client killed (`kill -9`) between the
        requests of BEGIN ... COMMIT left that transaction open on the server, holding the rows it
        wrote: Snowflake aborts it once it has blocked another for 5 idle minutes, fakesnow never,
        and the next run's DELETE of the same keys waited on it. A block that raises writes nothing;
        a kill or a failure between two of its writes leaves the first applied, which dinsync's
        writes allow (a snapshot row deleted and not inserted again: the key is sent again). Reads
        inside the block run at once, after the writes collected before them; DDL too (it commits
        what came before it on Snowflake)."""
        if getattr(self._local, "writes", None) is not None:
            yield  # nested: part of the outer block
            return
        self._local.writes = []
        try:
            yield
            with self.translating("running a statement"):
                self._flush()
        finally:
            self._local.writes = None

    @translated("writing rows")
    def write_arrow(self, schema: str, table: str, data: pa.Table, mode: str = "append") -> None:
        """Rows as one JSON text per statement, bound as a single value and unpacked by
        `INSERT ... SELECT ... FROM TABLE(FLATTEN(INPUT => PARSE_JSON(...)))`: a statement carries
        up to `json_bytes` of rows (Snowflake's statement text is limited to 1 MB), several
        statements each commit on their own (see transaction(): a write interrupted midway leaves a
        part of the rows, which a scratch table or the rejection log allows). `replace` re-creates the
        table first (CREATE OR REPLACE). Measured through fakesnow: 40,000 keys in 0.55 s, where
        multi-row INSERT ... VALUES of 1,000 rows each took 25 s."""
        self._flush()
        data = _plain(data)
        if mode not in ("append", "replace"):
            raise ValueError(f"write mode must be append or replace, got {mode!r}")
        target = self.table_name(schema, table)
        types = [SNOWFLAKE.of(f.type, self.capabilities.text_type) for f in data.schema]
        if mode == "replace":
            cols = ", ".join(f"{self.quote(f.name)} {t}" for f, t in zip(data.schema, types))
            self.execute(f"CREATE OR REPLACE TABLE {target} ({cols})")
        if data.num_rows == 0:
            return
        texts = (t.decode() for t in json_object_chunks(data, self.json_bytes, _jsonable))
        first, second = next(texts), next(texts, None)
        cols = ", ".join(self.quote(n) for n in data.column_names)
        # each row an object of its non-NULL values ("c0", "c1", ...): an absent key reads as SQL NULL
        values = ", ".join(f"CAST(f.value['c{i}'] AS {t})" for i, t in enumerate(types))
        sql = f"INSERT INTO {target} ({cols}) SELECT {values} FROM TABLE(FLATTEN(INPUT => PARSE_JSON(%s))) AS f"
        with self.conn.cursor() as cur:
            for text in itertools.chain([first], [second] if second is not None else [], texts):
                cur.execute(sql, [text])

    def _context(self, cur) -> str | None:
        """`USE` statement that brings back the session's current database and schema."""
        database, schema = self._options.get("database"), self._options.get("schema")
        if database and schema:  # the configured ones (the model SQL's), without asking
            return f"USE SCHEMA {self.quote(database)}.{self.quote(schema)}"
        cur.execute("SELECT CURRENT_DATABASE(), CURRENT_SCHEMA()")
        database, schema = cur.fetchone()
        if database and schema:
            return f"USE SCHEMA {self.quote(database)}.{self.quote(schema)}"
        return f"USE DATABASE {self.quote(database)}" if database else None

    @translated("running a query")
    def query(self, sql: str, params: Params = None) -> pa.Table:
        self._flush()  # (a read inside transaction() sees the block's writes before it)
        sql, values = self._sql(sql, params)
        with self.conn.cursor() as cur:
            cur.execute(sql, values)
            if not cur.description:
                return pa.table({})
            batches = [_plain_types(b) for t in cur.fetch_arrow_batches() for b in t.to_batches()]
            if batches:
                return _lower_names(pa.Table.from_batches(batches))
            return _empty(cur.description)

    @translated("streaming a query")
    def stream(self, sql: str, batch_rows: int = 50_000, params: Params = None) -> Iterator[pa.RecordBatch]:
        sql, values = self._sql(sql, params)
        conn = self._connect()  # a session of its own: the caller runs statements meanwhile
        try:
            with conn.cursor() as cur:
                cur.execute(sql, values)
                batches = (_plain_types(_lower_names(b)) for t in _result_tables(cur, conn) for b in t.to_batches())
                yield from slice_batches(batches, batch_rows)
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    @translated("reading the columns of a query")
    def columns(self, sql: str) -> list[tuple[str, str]]:
        self._flush()
        with self.conn.cursor() as cur:
            meta = cur.describe(f"SELECT * FROM (\n{sql}\n) AS _q LIMIT 0")
            types = self._sf.constants.FIELD_ID_TO_NAME
            return [(m.name.lower(), _type_name(types.get(m.type_code, str(m.type_code)), m)) for m in meta]

    def exact_hash_columns(self, sql: str, columns: list[str]) -> set[str]:
        """The mapped columns whose text form, which the diff hashes, is not their whole value:
        Snowflake writes a FLOAT with about 15 significant digits (0.1 + 0.2 as 0.3), and a
        timestamp or a TIME in the session's output format, by default to the millisecond (`SS.FF3`)
        or the second (`HH24:MI:SS`), coarser still where an account sets so. A change beyond them
        (03:04:05.123456 -> .123999) hashed the same, and was never sent. Such columns are hashed
        by their native HASH (dialects: DINSYNC_EXACT); the session's formats are left as they are
        (the model SQL may cast a timestamp to text)."""
        if not columns:
            return set()
        types = dict(self.columns(sql))
        return {c for c in columns if str(types.get(c, "")).upper() in _INEXACT_TEXT_TYPES}

    def send_problem(self, column: str, kind: str) -> str | None:
        """VARIANT, OBJECT and ARRAY values reach dinsync as their JSON text (see _SEND_PROBLEMS):
        named at `validate` and before a sync plans, with the cast."""
        fix = _SEND_PROBLEMS.get(kind.upper())
        return fix.format(c=column, kind=kind.upper()) if fix else None

    @translated("reading the columns of a table")
    def tables_columns(self, schema: str, tables: list[str]) -> dict[str, list[str]]:
        return self._catalog_columns(schema, tables, fold=True)

    def table_columns(self, schema: str, table: str) -> list[str] | None:
        return self.tables_columns(schema, [table]).get(table)

    def close(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for _, conn in conns:
            with contextlib.suppress(Exception):
                conn.close()
        self._local = threading.local()


# The connector's names of the types whose text form loses part of the value (see
# exact_hash_columns): FLOAT (its REAL), timestamps and TIME.
_INEXACT_TEXT_TYPES = frozenset({"REAL", "FLOAT", "DOUBLE", "TIMESTAMP", "TIMESTAMP_NTZ", "TIMESTAMP_LTZ",
                                 "TIMESTAMP_TZ", "TIME"})

# Semi-structured types: the connector reads their values as JSON text, so `payload:plan` holding
# the string pro would be sent as '"pro"' (quotes included), an OBJECT as '{"k": "v"}' text (not an
# object: Attio's personal-name got it as "Last, First" text), a number as '5'.
_SEMI_STRUCTURED = ("Snowflake's connector reads {kind} values as their JSON text (the string pro as '\"pro\"' "
                    "with its quotes, an object as '{{\"k\": \"v\"}}' text): ")
_SEND_PROBLEMS = {
    "VARIANT": _SEMI_STRUCTURED + "cast it in the model's SQL, e.g. {c}::VARCHAR AS {c} (a string without "
               "quotes), {c}::NUMBER AS {c}, or TO_JSON({c}) AS {c} to send the JSON text itself",
    "OBJECT": _SEMI_STRUCTURED + "extract its fields in the model's SQL, e.g. {c}:first_name::VARCHAR, or send "
              "the JSON text itself with TO_JSON({c}) AS {c}",
    "ARRAY": _SEMI_STRUCTURED + "extract its items in the model's SQL, e.g. {c}[0]::VARCHAR or "
             "ARRAY_TO_STRING({c}, ','), or send the JSON text itself with TO_JSON({c}) AS {c}",
}


def _type_name(name: str, meta) -> str:
    """The connector names every NUMBER(p, s) FIXED; its metadata has the precision and scale, which
    tell a decimal with a scale (refused as a matching key: its text `10.00` is no identifier)."""
    if name == "FIXED" and meta.precision is not None and meta.scale is not None:
        return f"NUMBER({meta.precision},{meta.scale})"
    return name


def _jsonable(column) -> list:
    """A column's values as JSON can hold them: texts, numbers, booleans; dates, timestamps and
    decimals as their text (cast back by the INSERT)."""
    t = column.type
    if pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_decimal(t):
        return [None if v is None else str(v) for v in column.to_pylist()]
    if pa.types.is_floating(t):  # NaN and infinities are no JSON numbers; their text casts back
        return [v if v is None or math.isfinite(v) else str(v) for v in column.to_pylist()]
    return column.to_pylist()


def _empty(description) -> pa.Table:
    """The empty result of a query (fetch_arrow_batches yields nothing for zero rows)."""
    return pa.table({d.name.lower(): pa.array([], pa.null()) for d in description})


def _load_private_key(pem: str | None, path: str | None, passphrase: str | None) -> bytes:
    """The DER bytes of a PEM private key (text or file) for key-pair authentication."""
    from cryptography.hazmat.primitives import serialization

    try:
        if pem is None:
            with open(path, "rb") as f:  # type: ignore[arg-type]
                pem_bytes = f.read()
        else:
            pem_bytes = pem.encode("utf-8")
        key = serialization.load_pem_private_key(pem_bytes, password=passphrase.encode() if passphrase else None)
    except (OSError, ValueError, TypeError) as exc:
        what = "private_key" if pem is not None else f"private_key_file {path}"
        reason = type(exc).__name__ if pem is not None else str(exc)  # never echo the key itself
        raise E.WarehouseAuthError(f"Snowflake: cannot read the {what} ({reason})",
                                   "give a PEM private key (PKCS#8) and, if it is encrypted, its passphrase",
                                   warehouse="Snowflake") from None
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class _SignalsUntouched:
    """The `signal` module as the connector's cursor sees it: reads pass through, installing a
    handler does nothing (see `_keep_sigint_handler`)."""

    def __init__(self, real):
        self._real = real

    def __getattr__(self, name: str):
        return getattr(self._real, name)

    def signal(self, signalnum, handler):  # noqa: ARG002
        return self._real.getsignal(signalnum)


def _keep_sigint_handler() -> None:
    """The connector puts a SIGINT handler of its own in front of the process's while each statement
    runs (it cancels the statement and raises KeyboardInterrupt): a Ctrl-C while a run planned on
    Snowflake bypassed dinsync's graceful stop, and the run was recorded `failed`, `sync --json`
    printing nothing. Its cursor module is given a `signal` whose `signal()` installs nothing, so a
    SIGINT reaches the handler in place (dinsync's: the run stops as on SIGTERM; elsewhere Python's
    KeyboardInterrupt)."""
    import signal

    import snowflake.connector.cursor as cursor_module

    if getattr(cursor_module, "signal", None) is signal:  # (a connector that imports it otherwise: left as it is)
        cursor_module.signal = _SignalsUntouched(signal)
