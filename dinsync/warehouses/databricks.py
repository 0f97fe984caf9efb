"""Databricks: SQL through the Statement Execution API of a SQL warehouse (databricks-sdk).

Config (dinsync.yml):
    warehouse:
      type: databricks
      host: https://dbc-1234abcd-5678.cloud.databricks.com
      http_path: /sql/1.0/warehouses/abc123def456    # or warehouse_id: abc123def456
      token: ${env:DATABRICKS_TOKEN}                  # a personal access token
      catalog: main
      schema: analytics          # default schema of the model SQL
      transactions: atomic       # atomic | none (see below)
      retry_seconds: 120         # how long a request answered 429/5xx, or cut, is retried

The driver is the `databricks` extra: pip install 'dinsync[databricks]' (databricks-sdk).

How each part maps onto the API (POST /api/2.0/sql/statements and its polls):
- Every statement is submitted with the configured catalog and schema; values travel as named
  parameters (`:name`, typed), never as text in the SQL.
- Reads ask for `ARROW_STREAM` results with the `EXTERNAL_LINKS` disposition: the result is a
  list of chunks, each an Arrow IPC stream behind a short-lived pre-signed URL. The adapter
  fetches the chunks one at a time (the next chunk's links come from
  `/result/chunks/{n}`), reads each as record batches and re-cuts them to `batch_rows` rows, so
  client memory holds about one chunk. The pre-signed URLs are fetched WITHOUT the workspace
  token (it must never travel to cloud storage). A chunk is downloaded whole (into a spooled
  temporary file) before its first batch is handed on: the plan's reader is the platform, and a
  download read at its pace (a chunk of 100,000 rows at 25 rows/s: an hour) is cut by cloud
  storage, which drops a client that stops reading; a download that fails is tried again with
  the chunk's links asked anew (the old ones may have expired meanwhile).
- Bulk writes (acknowledged keys, rejections) are multi-row `INSERT ... VALUES` statements with
  one typed parameter per value, bounded by `insert_params` parameters and `insert_bytes` of
  SQL and values per statement: one API call per few thousand values, nothing row by row, no
  staging location to configure. (A staged Parquet file + `COPY INTO` needs a Unity Catalog
  volume the user must grant; it would pay off for writes of millions of rows, which a
  checkpointed commit never makes.)
- The API has no session, so no interactive transaction: `transaction()` collects the writes
  of the block and submits them as one `BEGIN ATOMIC ... END;` compound statement (Databricks
  runs it as one transaction: all or nothing). Reads inside the block run at once, and must
  come before its writes (they do in dinsync); DDL runs at once (it is not transactional on
  Databricks). Atomic blocks need Unity Catalog managed tables with catalog-managed commits;
  `transactions: none` runs each write as its own transaction instead (a crash between two
  writes of a commit then leaves acknowledged rows out of the snapshot: they are sent again).
- Delta enforces no PRIMARY KEY: the sync lock uses the insert-then-verify arbiter.
- Retries: the SDK retries a request answered 429/503 (or whose connection dropped, or a GET
  unanswered) for `retry_seconds` (its retry_timeout_seconds; 120 s by default), once per outage:
  after one gave up, failing ones are tried once, and while its requests got no answer at all they
  are not sent, until one gets through (see outage.py and _outage_transport).
- A write is never sent twice: the API has no idempotency key (a statement submitted again runs
  again), and the SDK retries a POST whose connection dropped, also after the warehouse ran it (its
  answer lost): a commit's rows entered the snapshot twice, the run log held the run twice. A write
  whose connection dropped once sent fails instead (AnswerLost: transient, the next run plans from
  what the warehouse holds); reads are retried.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import http.client
import inspect
import re
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Iterator, Mapping

import pyarrow as pa

from . import errors as E
from .base import Capabilities, ErrorTranslation, Params, Warehouse, slice_batches, translated
from .column_types import DATABRICKS
from .outage import Outage
from .params import _split

_HTTP_PATH = re.compile(r"^/?sql/1\.0/(?:warehouses|endpoints)/([0-9A-Za-z_-]+)/?$")
_SQLSTATE = re.compile(r"SQLSTATE:\s*([0-9A-Z]{5})")
_ERROR_CLASS = re.compile(r"^\[([A-Z0-9_]+)(?:\.[A-Z0-9_]+)*\]")
_DDL = re.compile(r"^\s*(CREATE|ALTER|DROP|TRUNCATE|COMMENT)\b", re.I)
# seconds the connection check lets the SDK retry a connection it cannot open (a run keeps the
# configured retry_seconds, for a network that fails midway)
CONNECT_RETRY_SECONDS = 20
# A chunk's download: kept in memory up to SPOOL_BYTES, beyond it in a temporary file; tried
# DOWNLOAD_ATTEMPTS times (fresh links each time after the first).
SPOOL_BYTES = 16 << 20
DOWNLOAD_ATTEMPTS = 3

# Databricks error classes ("[TABLE_OR_VIEW_NOT_FOUND] ...") and SQLSTATEs -> dinsync errors
_ERROR_CLASSES: dict[str, type[E.WarehouseError]] = {
    "TABLE_OR_VIEW_NOT_FOUND": E.WarehouseObjectMissing,
    "SCHEMA_NOT_FOUND": E.WarehouseObjectMissing,
    "NO_SUCH_CATALOG_EXCEPTION": E.WarehouseObjectMissing,
    "CATALOG_NOT_FOUND": E.WarehouseObjectMissing,
    "UNRESOLVED_COLUMN": E.WarehouseObjectMissing,
    "INSUFFICIENT_PERMISSIONS": E.WarehousePermissionError,
    "PERMISSION_DENIED": E.WarehousePermissionError,
    "DELTA_CONCURRENT_APPEND": E.WarehouseConflict,
    "DELTA_CONCURRENT_DELETE_READ": E.WarehouseConflict,
    "DELTA_CONCURRENT_DELETE_DELETE": E.WarehouseConflict,
    "DELTA_CONCURRENT_TRANSACTION": E.WarehouseConflict,
    "DELTA_METADATA_CHANGED": E.WarehouseConflict,
    "CONCURRENT_QUERY": E.WarehouseConflict,
    "TRANSACTION_CONFLICT": E.WarehouseConflict,
    "DELTA_VIOLATE_CONSTRAINT_WITH_VALUES": E.WarehouseConstraintViolation,
}
_SQLSTATES: dict[str, type[E.WarehouseError]] = {
    "42P01": E.WarehouseObjectMissing, "42704": E.WarehouseObjectMissing, "3F000": E.WarehouseObjectMissing,
    "42703": E.WarehouseObjectMissing, "42501": E.WarehousePermissionError,
}
_SQLSTATE_CLASSES: dict[str, type[E.WarehouseError]] = {
    "40": E.WarehouseConflict, "23": E.WarehouseConstraintViolation, "08": E.WarehouseUnavailable,
    "28": E.WarehouseAuthError,
}
# databricks-sdk exception class names (HTTP answers of the API) -> dinsync errors
_SDK_ERRORS: dict[str, type[E.WarehouseError]] = {
    "Unauthenticated": E.WarehouseLoginRefused,  # a token wrong or expired (the SDK renews OAuth ones): exit 3
    "PermissionDenied": E.WarehousePermissionError,
    "NotFound": E.WarehouseObjectMissing,
    "ResourceDoesNotExist": E.WarehouseObjectMissing,
    "TooManyRequests": E.WarehouseUnavailable,
    "RequestLimitExceeded": E.WarehouseUnavailable,
    "ResourceExhausted": E.WarehouseUnavailable,
    "TemporarilyUnavailable": E.WarehouseUnavailable,
    "DeadlineExceeded": E.WarehouseUnavailable,
    "InternalError": E.WarehouseUnavailable,
    "Aborted": E.WarehouseConflict,
}

# Arrow types of result columns by their Databricks type name (for results without any chunk)
_ARROW_TYPES = {
    "BOOLEAN": pa.bool_(), "BYTE": pa.int8(), "SHORT": pa.int16(), "INT": pa.int32(), "LONG": pa.int64(),
    "FLOAT": pa.float32(), "DOUBLE": pa.float64(), "DATE": pa.date32(), "TIMESTAMP": pa.timestamp("us"),
    "TIMESTAMP_NTZ": pa.timestamp("us"), "STRING": pa.string(), "CHAR": pa.string(), "BINARY": pa.binary(),
    "NULL": pa.null(),
}


class StatementFailed(Exception):
    """A statement the API ran ended FAILED, CANCELED or CLOSED (or ran past the timeout)."""

    def __init__(self, state: str, message: str, sqlstate: str | None = None):
        super().__init__(message)
        self.state = state
        m = _SQLSTATE.search(message)
        self.sqlstate = sqlstate or (m.group(1) if m else None)
        m = _ERROR_CLASS.match(message)
        self.error_class = m.group(1) if m else None


class AnswerLost(Exception):
    """A write's connection dropped after it was sent, before its answer: Databricks may have run it.
    Not sent again (see the module's docstring); the SDK retries no exception but its own and
    requests' connection errors and timeouts, so it gives up at once on this one."""


def _maybe_sent(exc: BaseException) -> bool:
    """Whether a request that failed with `exc` (a requests error) may have reached the server: all
    but a connection that could not be opened (refused, unresolved, timed out connecting)."""
    import requests
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

    if isinstance(exc, requests.ConnectTimeout):
        return False
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # (urllib3's MaxRetryError around it)
    return not isinstance(reason, (NewConnectionError, ConnectTimeoutError))


class GaveUp(Exception):
    """A request retried for retry_seconds in vain (the SDK's TimeoutError, from the last failure),
    or not retried (not sent) because the warehouse's outage is ongoing (see _outage_transport).
    The SDK retries no exception but its own and requests' connection errors and timeouts, so it
    gives up at once on this one."""


def _outage_transport(outage: Outage, seconds: float, writing: Callable[[], bool] = lambda: False) -> Any:
    """The requests transport of one SDK client of a warehouse whose clients share `outage`
    (outage.py). The SDK retries each request for `seconds` on its own: before, every request got
    the whole budget anew (the SDK's 300 s), also after an earlier one had given up, so each later
    write of a failed run (checkpoint, run log end, sync state, lock release) waited it again. While
    the outage is ongoing an attempt that fails (429, 5xx, a dropped connection, no answer) raises
    GaveUp instead, and while its requests got no answer at all a request is not even sent (it
    would wait http_timeout_seconds, 60 s, for nothing); an attempt answered otherwise ends the
    outage. A request whose retries ran out starts it (DatabricksWarehouse._watching). While
    `writing()`, a request whose connection dropped once sent raises AnswerLost: not sent again."""
    import requests

    class OutageTransport(requests.adapters.HTTPAdapter):
        def send(self, request, *args: Any, **kwargs: Any):
            ongoing = outage.ongoing(seconds)
            if outage.unanswered(seconds, requests.Timeout):
                raise GaveUp(f"a request was not sent (earlier requests got no answer for {seconds:g} s, "
                             f"the last time: {outage.cause})")
            try:
                response = super().send(request, *args, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if ongoing:
                    outage.gave_up(exc)
                    raise GaveUp(f"a request was not retried (an earlier request had kept failing for "
                                 f"{seconds:g} s): {exc}") from exc
                if writing() and isinstance(exc, requests.ConnectionError) and _maybe_sent(exc):
                    raise AnswerLost(f"the connection dropped after a write was sent, before its answer: it may "
                                     f"have been applied, and was not sent again (a statement submitted again "
                                     f"runs again): {exc}") from exc
                raise
            if response.status_code == 429 or response.status_code >= 500:
                if ongoing:
                    response.close()
                    failed = GaveUp(f"a request was not retried (an earlier request had kept failing for "
                                    f"{seconds:g} s): HTTP {response.status_code} {response.reason}")
                    outage.gave_up(failed)
                    raise failed
            else:
                outage.reached()
            return response

    return OutageTransport(pool_connections=20, pool_maxsize=20, pool_block=True)


def parameter(name: str, value: Any, sql_type: str | None = None) -> dict[str, Any]:
    """A typed statement parameter of the API ({name, value, type}); NULL has no value."""
    if value is None:
        return {"name": name, "type": sql_type or "STRING"}
    if isinstance(value, bool):
        return {"name": name, "value": "true" if value else "false", "type": "BOOLEAN"}
    if isinstance(value, int):
        return {"name": name, "value": str(value), "type": sql_type if sql_type in ("INT", "SMALLINT") else "BIGINT"}
    if isinstance(value, float):
        return {"name": name, "value": repr(value), "type": "DOUBLE"}
    if isinstance(value, decimal.Decimal):
        return {"name": name, "value": str(value), "type": sql_type or "DECIMAL(38, 18)"}
    if isinstance(value, dt.datetime):
        # naive: UTC (the state store's times). Sent with its offset: a TIMESTAMP without one is read
        # in the SQL warehouse's TIMEZONE, which a workspace may set (stored hours off, locks included)
        value = value.astimezone(dt.timezone.utc) if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)
        return {"name": name, "value": value.isoformat(sep=" "), "type": "TIMESTAMP"}
    if isinstance(value, dt.date):
        return {"name": name, "value": value.isoformat(), "type": "DATE"}
    return {"name": name, "value": str(value), "type": "STRING"}


def renamed(sql: str, params: Mapping[str, Any] | None, prefix: str) -> tuple[str, dict[str, Any]]:
    """`sql` with each `:name` placeholder renamed `:<prefix>name` (statements of one atomic block
    share one parameter list)."""
    if not params:
        return sql, {}
    texts, names = _split(sql)
    missing = sorted({n for n in names if n not in params})
    if missing:
        raise KeyError(f"no value for SQL parameter(s) {', '.join(missing)}")
    out = [texts[0]]
    for name, text in zip(names, texts[1:]):
        out += [f":{prefix}{name}", text]
    return "".join(out), {prefix + n: params[n] for n in names}


def _naive_utc(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Timestamps with a time zone as naive UTC (the state store works in naive UTC). Small
    queries only (`query`, `rows`: the state store's reads): a stream carries model values, whose
    TIMESTAMP (an instant on Databricks) must keep its zone to be sent as UTC with `Z`."""
    if not any(pa.types.is_timestamp(f.type) and f.type.tz for f in batch.schema):
        return batch
    arrays = [c.cast(pa.timestamp(c.type.unit)) if pa.types.is_timestamp(c.type) and c.type.tz else c
              for c in batch.columns]
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


class DatabricksWarehouse(ErrorTranslation, Warehouse):
    type_name = "databricks"
    display_name = "Databricks"
    extra = "databricks"
    capabilities = Capabilities(
        dialect="databricks",
        hash_type="BIGINT",
        merge=True,  # Delta MERGE INTO
        temp_tables=False,  # no session: scratch tables live in the state schema
        transactional_ddl=False,
        enforces_primary_key=False,  # Delta constraints are informational
        lock_arbiter="insert_verify",
        text_type="STRING",
        timestamp_is_instant=True,  # (TIMESTAMP is Spark's TIMESTAMP_LTZ)
        identifier_quote="`",
        max_identifier_length=255,
        unquoted_case="lower",
        quoted_case_sensitive=False,  # Unity Catalog folds names to lower case
        paramstyle="colon",
    )

    sdk_takes_transports = True  # (tests: False, for the older databricks-sdk's way; see _client)
    insert_params = 2000  # parameters per multi-row INSERT
    insert_bytes = 4 << 20  # SQL text + parameter values per statement (the API takes up to 16 MiB)

    def __init__(self, host: str, token: str | None = None, warehouse_id: str | None = None,
                 http_path: str | None = None, catalog: str | None = None, schema: str | None = None,
                 transactions: str = "atomic", wait_timeout: int = 10, statement_timeout: float = 3600,
                 retry_seconds: int = 120, client_config: dict[str, Any] | None = None,
                 schema_: str | None = None):
        """`wait_timeout`: seconds a submit waits for the answer (0, or 5 to 50) before polling;
        `statement_timeout`: a statement still running after it is cancelled;
        `retry_seconds`: how long the SDK retries a request answered 429/503 or cut (tests: a few
        seconds), once per outage (see _outage_transport); `client_config`: more SDK Config options;
        `schema_`: `schema` as the config model names it."""
        from . import require_driver

        self._sdk = require_driver("databricks.sdk", "databricks", package="databricks-sdk")
        self._sql_service = require_driver("databricks.sdk.service.sql", "databricks", package="databricks-sdk")
        errors = require_driver("databricks.sdk.errors", "databricks", package="databricks-sdk")
        import requests

        self.driver_errors = (errors.DatabricksError, StatementFailed, GaveUp, AnswerLost, requests.RequestException,
                              OSError, pa.ArrowInvalid)
        self._timeouts = requests.Timeout
        self._secrets = [token] if token else []
        if transactions not in ("atomic", "none"):
            raise E.WarehouseSqlError(f"transactions must be atomic or none, got {transactions!r}")
        if not warehouse_id and http_path:
            m = _HTTP_PATH.match(http_path.strip())
            if not m:
                raise E.WarehouseSqlError(f"http_path {http_path!r} is not a SQL warehouse path",
                                          hint="copy it from the warehouse's Connection details: "
                                               "/sql/1.0/warehouses/<id>")
            warehouse_id = m.group(1)
        if not warehouse_id:
            raise E.WarehouseSqlError("the databricks warehouse needs warehouse_id or http_path")
        if not (0 == wait_timeout or 5 <= wait_timeout <= 50):
            raise E.WarehouseSqlError("wait_timeout must be 0 or between 5 and 50 seconds")
        self.host = host if "://" in host else f"https://{host}"
        self.warehouse_id = warehouse_id
        self.catalog, self.schema = catalog, schema or schema_
        self.atomic = transactions == "atomic"
        self.wait_timeout = f"{int(wait_timeout)}s"
        self.statement_timeout = statement_timeout
        self.retry_seconds = max(1, int(retry_seconds))  # (the SDK takes whole seconds, 0 as its 300)
        self._outage = Outage()  # one budget per outage, shared by the clients of all threads
        self._config = dict(host=self.host, token=token, auth_type="pat" if token else None,
                            retry_timeout_seconds=self.retry_seconds, **(client_config or {}))
        self._local = threading.local()
        # A wrong token, host or warehouse fails here, with a clear error. The SDK retries a connection
        # it cannot open (a DNS error, a refused port) for its retry budget, 300 s by default, twice
        # (the host's metadata, then the statement): the check gets a short budget of its own, so a
        # mistyped host is reported within a minute; later calls have the configured one.
        budget = min(self.retry_seconds, CONNECT_RETRY_SECONDS)
        self._local.api = self._client(retry_timeout_seconds=budget)
        self._retrying, self._checking = budget, True  # seconds a request is retried; the check runs
        try:
            with self.translating("connecting"):
                self.scalar("SELECT 1")
        finally:
            self._local.api, self._retrying, self._checking = None, self.retry_seconds, False

    # --- the API ---------------------------------------------------------------------
    @property
    def _api(self):
        """The calling thread's statement API (a WorkspaceClient each: requests sessions are not
        shared between threads)."""
        api = getattr(self._local, "api", None)
        if api is None:
            api = self._local.api = self._client()
        return api

    def _client(self, **overrides: Any):
        """A new statement API client (`overrides`: Config options for this one)."""
        options = {k: v for k, v in {**self._config, **overrides}.items() if v is not None}
        transport = _outage_transport(self._outage, options["retry_timeout_seconds"],
                                      lambda: getattr(self._local, "writing", False))
        config = self._sdk.core.Config
        if self.sdk_takes_transports and "http_adapter" in inspect.signature(config).parameters:
            return self._sdk.WorkspaceClient(config=config(http_adapter=transport, **options)).statement_execution
        # databricks-sdk before 0.16x takes no transport (its Config ignores one): mounted on the session
        api = self._sdk.WorkspaceClient(config=config(**options)).statement_execution
        session = api._api._api_client._session
        for scheme in ("https://", "http://"):
            session.mount(scheme, transport)
        return api

    @contextlib.contextmanager
    def _watching(self) -> Iterator[None]:
        """Around the SDK's calls: one whose retries ran out (its TimeoutError "Timed out after
        0:02:00", from the last failure: raised as GaveUp naming it), or a submit that got no answer
        (a POST is not sent again), starts the warehouse's outage (see _outage_transport)."""
        try:
            yield
        except TimeoutError as exc:
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            self._outage.gave_up(cause)
            last = (str(cause).splitlines() or ["?"])[0]
            raise GaveUp(f"a request kept failing for {self._retrying:g} s, the last time with: "
                         f"{type(cause).__name__}: {last}") from cause
        except self._timeouts as exc:
            self._outage.gave_up(exc)
            exc.dinsync_retries_exhausted = True
            raise

    def _run(self, sql: str, params: Params, arrow: bool):
        """Submit a statement (values as typed parameters), poll until it ends; the SUCCEEDED
        response."""
        items = None
        if params:
            texts, names = _split(sql)
            missing = sorted({n for n in names if n not in params})
            if missing:
                raise KeyError(f"no value for SQL parameter(s) {', '.join(missing)}")
            items = [parameter(n, params[n]) for n in dict.fromkeys(names)]
        return self._submit(sql, items, arrow)

    def _submit(self, sql: str, items: list[dict] | None, arrow: bool):
        with self._watching():
            return self._submitted(sql, items, arrow)

    def _submitted(self, sql: str, items: list[dict] | None, arrow: bool):
        svc = self._sql_service
        api = self._api
        self._local.writing = not arrow  # (reads ask for Arrow: a write's submit is not sent twice)
        try:
            st = api.execute_statement(
                statement=sql, warehouse_id=self.warehouse_id, catalog=self.catalog, schema=self.schema,
                parameters=[svc.StatementParameterListItem.from_dict(p) for p in items] if items else None,
                wait_timeout=self.wait_timeout, on_wait_timeout=svc.ExecuteStatementRequestOnWaitTimeout.CONTINUE,
                disposition=svc.Disposition.EXTERNAL_LINKS if arrow else svc.Disposition.INLINE,
                format=svc.Format.ARROW_STREAM if arrow else svc.Format.JSON_ARRAY)
        finally:
            self._local.writing = False
        deadline = time.monotonic() + self.statement_timeout
        delay = 0.05
        while st.status is not None and st.status.state in (svc.StatementState.PENDING, svc.StatementState.RUNNING):
            if time.monotonic() > deadline:
                with contextlib.suppress(Exception):
                    api.cancel_execution(st.statement_id)
                raise StatementFailed("CANCELED", f"the statement ran longer than {self.statement_timeout:g} s "
                                                  "and was cancelled")
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
            st = api.get_statement(st.statement_id)
        state = st.status.state if st.status else None
        if state != svc.StatementState.SUCCEEDED:
            error = st.status.error if st.status else None
            message = (error.message if error and error.message else None) or f"the statement ended {state}"
            raise StatementFailed(state.value if state else "UNKNOWN", message,
                                  st.status.sql_state if st.status else None)
        return st

    def _chunks(self, st) -> Iterator[pa.RecordBatch]:
        """The record batches of a result, chunk after chunk (one chunk downloaded at a time)."""
        result = st.result
        while result is not None:
            links = result.external_links or []
            for link in links:
                with self._downloaded(st.statement_id, link) as chunk:
                    for batch in pa.ipc.open_stream(chunk):
                        if batch.num_rows:
                            yield batch
            nxt = links[-1].next_chunk_index if links else result.next_chunk_index
            if nxt is None:
                return
            with self._watching():
                result = self._api.get_statement_result_chunk_n(st.statement_id, nxt)

    @contextlib.contextmanager
    def _downloaded(self, statement_id: str, link) -> Iterator[Any]:
        """A chunk's Arrow IPC stream, downloaded whole from its pre-signed URL (no workspace token
        sent) into a spooled temporary file, positioned at its start (see the module's docstring)."""
        for attempt in range(DOWNLOAD_ATTEMPTS):
            if attempt:  # the links again: they expire
                with self._watching():
                    again = self._api.get_statement_result_chunk_n(statement_id, link.chunk_index)
                link = next(x for x in again.external_links or [] if x.chunk_index == link.chunk_index)
            spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
            try:
                request = urllib.request.Request(link.external_link, headers=dict(link.http_headers or {}))
                with urllib.request.urlopen(request, timeout=300) as response:
                    shutil.copyfileobj(response, spool, 1 << 20)
                    if response.length:  # (http.client ends a body cut short without an error)
                        raise http.client.IncompleteRead(b"", response.length)
            except (urllib.error.URLError, http.client.HTTPException, OSError):
                spool.close()
                if attempt + 1 == DOWNLOAD_ATTEMPTS:
                    raise
                continue
            spool.seek(0)
            with spool:
                yield spool
            return

    @staticmethod
    def _schema(st) -> pa.Schema:
        columns = st.manifest.schema.columns if st.manifest and st.manifest.schema else None
        fields = []
        for c in columns or []:
            name = c.type_name.value if c.type_name else "STRING"
            if name == "DECIMAL" and c.type_precision:
                t = pa.decimal128(c.type_precision, c.type_scale or 0)
            else:
                t = _ARROW_TYPES.get(name, pa.string())
            fields.append(pa.field(c.name, t))
        return pa.schema(fields)

    # --- SQL -------------------------------------------------------------------------
    @translated("running a statement")
    def execute(self, sql: str, params: Params = None) -> int | None:
        pending = getattr(self._local, "atomic", None)
        if pending is not None and not _DDL.match(sql):
            pending.append((sql, dict(params or {})))
            return None
        st = self._run(sql, params, arrow=False)
        columns = st.manifest.schema.columns if st.manifest and st.manifest.schema else None
        rows = st.result.data_array if st.result else None
        if columns and columns[0].name == "num_affected_rows" and rows:
            return int(rows[0][0])
        return None

    @translated("running a query")
    def query(self, sql: str, params: Params = None) -> pa.Table:
        if getattr(self._local, "atomic", None):
            raise E.WarehouseSqlError("Databricks: a read after a write inside one atomic block is not supported")
        st = self._run(sql, params, arrow=True)
        batches = [_naive_utc(b) for b in self._chunks(st)]
        if not batches:
            return self._schema(st).empty_table()
        return pa.Table.from_batches(batches)

    @translated("streaming a query")
    def stream(self, sql: str, batch_rows: int = 50_000, params: Params = None) -> Iterator[pa.RecordBatch]:
        st = self._run(sql, params, arrow=True)
        yield from slice_batches(self._chunks(st), batch_rows)

    @translated("reading the columns of a query")
    def columns(self, sql: str) -> list[tuple[str, str]]:
        st = self._run(f"SELECT * FROM (\n{sql}\n) AS _q LIMIT 0", None, arrow=True)
        cols = st.manifest.schema.columns if st.manifest and st.manifest.schema else []
        return [(c.name, c.type_text or (c.type_name.value if c.type_name else "")) for c in cols or []]

    def table_columns(self, schema: str, table: str) -> list[str] | None:
        try:
            return [name for name, _ in self.columns(f"SELECT * FROM {self.table_name(schema, table)}")] or None
        except E.WarehouseObjectMissing:
            return None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """The writes of the block, submitted as one `BEGIN ATOMIC ... END;` when it ends (see the
        module's docstring); with `transactions: none`, each write runs at once."""
        if not self.atomic or getattr(self._local, "atomic", None) is not None:
            yield  # no atomic blocks, or nested in one (flattened into it)
            return
        self._local.atomic = pending = []
        try:
            yield
        finally:
            self._local.atomic = None
        if not pending:
            return
        if len(pending) == 1:
            self.execute(*pending[0])
            return
        parts, params = [], {}
        for i, (sql, values) in enumerate(pending):
            text, named = renamed(sql.strip().rstrip(";"), values, f"t{i}_")
            parts.append(text + ";")
            params.update(named)
        self.execute("BEGIN ATOMIC\n" + "\n".join(parts) + "\nEND;", params or None)

    # --- bulk writes -----------------------------------------------------------------
    @translated("writing rows")
    def write_arrow(self, schema: str, table: str, data: pa.Table, mode: str = "append") -> None:
        if mode not in ("append", "replace"):
            raise ValueError(f"write mode must be append or replace, got {mode!r}")
        target = self.table_name(schema, table)
        types = [DATABRICKS.of(f.type, self.capabilities.text_type) for f in data.schema]
        if mode == "replace":
            cols = ", ".join(f"{self.quote(f.name)} {t}" for f, t in zip(data.schema, types))
            self.execute(f"CREATE OR REPLACE TABLE {target} ({cols})")
        if data.num_rows == 0:
            return
        head = f"INSERT INTO {target} ({', '.join(self.quote(n) for n in data.column_names)}) VALUES "
        ncols = max(1, data.num_columns)
        for chunk in data.to_batches(max_chunksize=max(1, self.insert_params // ncols)):
            columns = [c.to_pylist() for c in chunk.columns]
            rows, params, size = [], {}, len(head)
            for r in range(chunk.num_rows):
                marks = []
                for c in range(ncols):
                    name = f"v{len(params)}"
                    item = parameter(name, columns[c][r], types[c])
                    params[name] = item
                    marks.append(":" + name)
                    size += len(name) + 40 + len(item.get("value", ""))
                rows.append("(" + ", ".join(marks) + ")")
                if size >= self.insert_bytes:
                    self._insert(head, rows, params)
                    rows, params, size = [], {}, len(head)
            if rows:
                self._insert(head, rows, params)

    def _insert(self, head: str, rows: list[str], params: dict[str, dict]) -> None:
        self._submit(head + ", ".join(rows), list(params.values()), arrow=False)

    # --- errors ----------------------------------------------------------------------
    def classify(self, exc: BaseException) -> type[E.WarehouseError] | None:
        if isinstance(exc, (GaveUp, AnswerLost)):
            return E.WarehouseUnavailable
        if isinstance(exc, StatementFailed):
            if exc.state in ("CANCELED", "CLOSED"):
                return E.WarehouseUnavailable
            if exc.error_class in _ERROR_CLASSES:
                return _ERROR_CLASSES[exc.error_class]
            if exc.error_class and exc.error_class.startswith("DELTA_CONCURRENT"):
                return E.WarehouseConflict
            if exc.sqlstate:
                return _SQLSTATES.get(exc.sqlstate) or _SQLSTATE_CLASSES.get(exc.sqlstate[:2])
            return None
        for cls in type(exc).__mro__:
            if cls.__name__ in _SDK_ERRORS:
                return _SDK_ERRORS[cls.__name__]
        if isinstance(exc, (OSError, TimeoutError)) or type(exc).__module__.startswith(("requests", "urllib3")):
            return E.WarehouseUnavailable
        return None

    def hint_for(self, exc: BaseException) -> str | None:
        if isinstance(exc, StatementFailed) and "ATOMIC" in str(exc).upper() and "TRANSACTION" in str(exc).upper():
            return ("atomic blocks need Unity Catalog managed tables with catalog-managed commits; enable them "
                    "for the state schema, or set `transactions: none` in dinsync.yml")
        if type(exc).__name__ == "Unauthenticated":
            return "check the Databricks token (warehouse.token from ${env:...}): it may be wrong or expired"
        if isinstance(exc, AnswerLost):
            return ("the connection to Databricks dropped before it answered; the next run tries again, from what "
                    "the warehouse holds (a row whose commit was lost is sent again)")
        retried = "the warehouse's retry_seconds sets how long a request is retried"
        cause = exc.__cause__ if isinstance(exc, GaveUp) else None
        if self._checking and type(cause).__name__ == "ConnectionError":
            return (f"no connection could be opened to {self.host} (the last try: {type(cause).__name__}): "
                    "check warehouse.host and that this machine can reach it")
        if isinstance(exc, GaveUp) or getattr(exc, "dinsync_retries_exhausted", False):
            return ("Databricks kept answering with a server error (HTTP 429/5xx), dropping the connection or not "
                    f"answering; the next run tries again ({retried})")
        return None

    def close(self) -> None:
        self._local = threading.local()
