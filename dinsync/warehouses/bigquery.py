"""Google BigQuery through google-cloud-bigquery (pip install 'dinsync[bigquery]').

Config:
    warehouse:
      type: bigquery
      project: my-gcp-project
      dataset: marts                        # default dataset of the model SQL (unqualified tables)
      location: EU                          # where jobs run (the datasets' location)
      credentials: ${env:GOOGLE_SA_JSON}    # a service-account (or authorized-user) JSON: its text or a path
    state_schema: dinsync                   # a dataset
Without `credentials`, application default credentials are used (GOOGLE_APPLICATION_CREDENTIALS,
gcloud's login, the metadata server).

How the sync's path maps onto BigQuery:
- Every statement is a query (`Client.query_and_wait`: jobs.query, one round trip when the answer
  fits its first page), GoogleSQL with named `@parameters`; a NULL value is written as the literal
  NULL (BigQuery wants a type for every parameter, a NULL fits any). Column types of a model come
  from a dry run (`jobs.insert` with dryRun: nothing runs, nothing is billed).
- Reads: the query's rows `to_arrow_iterable(bqstorage_client=None)`: one Arrow batch per page
  (`maxResults` = the caller's batch size, then getQueryResults pages), re-cut to that size, so
  client memory stays bounded. (The Storage Read API is faster on large plans; it needs
  google-cloud-bigquery-storage, which is not part of the extra.)
- Bulk writes (acknowledged keys, rejections): never row by row. BigQuery allows a table 1,500
  load jobs a day (failed ones count) and DML without limit, and a sync commits every few seconds
  while it sends: a load job per commit would run out within hours (and the state's one
  `rejections` table serves every sync). So a write of up to DML_WRITE_MAX_BYTES of rows is INSERT
  statements whose rows travel as one JSON text parameter each (chunks of DML_CHUNK_BYTES, within
  the 10 MB of a request), parsed by JSON_QUERY_ARRAY and cast to each column's type; a larger
  one (rare: a few a day at most), or a row too large for a request, is a load job of Parquet made
  by Arrow (`load_table_from_file`, a resumable upload), WRITE_APPEND or WRITE_TRUNCATE.
- Scratch tables: there are no session temp tables across jobs, so the plan and the per-run
  scratch tables (`plan_<sync>`, `ack_<sync>`, ...) live in a scratch dataset
  (`Capabilities.scratch_database`, default `dinsync_scratch`, option `scratch_dataset`), created on
  first use in `location` with a default table expiration (`scratch_expiration_hours`, 24 h): the
  tables of a crashed run disappear by themselves. Two projects whose syncs have the same name
  must use different scratch datasets.
- Transactions: `transaction()` opens a BigQuery session (`BEGIN TRANSACTION` with createSession)
  on the calling thread; the statements of the block run in that session (connection property
  `session_id`) and `COMMIT TRANSACTION` (or `ROLLBACK TRANSACTION`) ends it, then the session is
  aborted. BigQuery takes no DDL inside a transaction: DDL of the block (state layout migrations)
  runs outside it, on its own (Capabilities.transactional_ddl is False). A transaction that
  collides with another's writes is aborted by BigQuery: a WarehouseConflict (retryable).
- Locks: BigQuery enforces no PRIMARY KEY: the lock is arbitrated by insert-then-verify.
- Retries: the client's own retries of transient errors (5xx, a dropped connection) apply up to
  `retry_seconds` (0: none), once per outage: after one request gave up, failing ones are tried
  once until one gets through (see outage.py and _outage_retry).
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import datetime as dt
import functools
import io
import json
import os
import re
import threading
import uuid
from typing import Any, Iterator

import pyarrow as pa

from . import errors as E
from .base import Capabilities, ErrorTranslation, Params, Warehouse, json_object_chunks, slice_batches, translated
from .outage import Outage
from .params import _split

SCRATCH_DATASET = "dinsync_scratch"
# Writes of rows as DML (see the module's docstring): the JSON text of a statement's rows, and the
# most a write sends that way before it is a load job instead. The client writes its request as
# ASCII JSON, so a chunk grows up to 3x in it (an emoji's 4 bytes become a 12-character surrogate
# pair of escapes): 3 MB stays within BigQuery's 10 MB a request.
DML_CHUNK_BYTES = 3 << 20
DML_WRITE_MAX_BYTES = 64 << 20
SCOPES = ("https://www.googleapis.com/auth/bigquery",)
_DDL = re.compile(r"\s*(CREATE|ALTER|DROP|TRUNCATE)\b", re.I)  # not allowed inside a BigQuery transaction

# error reasons of BigQuery (errorResult.reason / errors[].reason) -> dinsync error
_REASONS: dict[str, type[E.WarehouseError]] = {
    "notFound": E.WarehouseObjectMissing,
    "accessDenied": E.WarehousePermissionError,
    "billingNotEnabled": E.WarehousePermissionError,
    "responseTooLarge": E.WarehouseSqlError,
    "rateLimitExceeded": E.WarehouseUnavailable,
    "quotaExceeded": E.WarehouseUnavailable,
    "backendError": E.WarehouseUnavailable,
    "internalError": E.WarehouseUnavailable,
    "timeout": E.WarehouseUnavailable,
    "jobBackendError": E.WarehouseUnavailable,
    "jobInternalError": E.WarehouseUnavailable,
    "stopped": E.WarehouseUnavailable,
    "authError": E.WarehouseAuthError,
}


def _bq_type(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FLOAT64"
    if isinstance(value, str):
        return "STRING"
    if isinstance(value, dt.datetime):
        return "TIMESTAMP" if value.tzinfo else "DATETIME"
    if isinstance(value, dt.date):
        return "DATE"
    raise E.WarehouseSqlError(f"BigQuery: cannot bind a parameter of type {type(value).__name__}")


def bind(sql: str, params: Params) -> tuple[str, list[tuple[str, str, Any]]]:
    """`:name` placeholders -> `@name` (NULL values inline as NULL); (sql, [(name, type, value)])."""
    if params is None:
        return sql, []
    texts, names = _split(sql)
    missing = [n for n in names if n not in params]
    if missing:
        raise KeyError(f"no value for SQL parameter(s) {', '.join(sorted(set(missing)))}")
    out = [texts[0]]
    used: dict[str, tuple[str, str, Any]] = {}
    for name, text in zip(names, texts[1:]):
        value = params[name]
        if value is None:
            out.append("NULL")
        else:
            out.append("@" + name)
            used[name] = (name, _bq_type(value), value)
        out.append(text)
    return "".join(out), list(used.values())


def _outage_retry(base: Any, seconds: float, outage: Outage) -> Any:
    """`base` (a google.api_core Retry: the client's DEFAULT_RETRY of a request, DEFAULT_JOB_RETRY of
    a query job) retrying for `seconds`, once per outage: while `outage` is ongoing a failing call is
    not retried; a call whose retries ran out (RetryError), or failing then, starts (or extends) it,
    and one that gets through ends it. Such a failure is marked `dinsync_retries_exhausted`. While an
    outage whose requests got no answer at all (a timeout) lasts, a call is not even sent: each
    would wait http_timeout_seconds (60 s) for nothing, a failed run's every last write."""
    from google.api_core.exceptions import RetryError
    from google.api_core.retry import Retry
    from requests.exceptions import Timeout

    transient = base._predicate

    class OutageRetry(Retry):
        def __call__(self, func, on_error=None):
            retried = super().__call__(func, on_error)

            @functools.wraps(func)
            def call(*args: Any, **kwargs: Any) -> Any:
                if outage.unanswered(seconds, Timeout):
                    unsent = RetryError(f"not sent: earlier requests got no answer for {seconds:g} s", outage.cause)
                    unsent.dinsync_retries_exhausted = True
                    raise unsent
                try:
                    result = retried(*args, **kwargs)
                except Exception as exc:
                    if isinstance(exc, RetryError) or transient(exc):
                        outage.gave_up(exc)
                        exc.dinsync_retries_exhausted = True
                    raise
                outage.reached()
                return result

            return call

    return OutageRetry(predicate=lambda exc: transient(exc) and not outage.ongoing(seconds),
                       initial=base._initial, maximum=base._maximum, multiplier=base._multiplier,
                       timeout=float(seconds))


def _plain(data: pa.Table) -> pa.Table:
    """Columns Parquet and BigQuery hold as is: dictionaries decoded, large strings as strings,
    unsigned integers as signed (BigQuery has only INT64)."""
    columns = []
    for col in data.columns:
        t = col.type
        if pa.types.is_dictionary(t):
            col, t = col.cast(t.value_type), t.value_type
        if pa.types.is_large_string(t):
            col = col.cast(pa.string())
        elif pa.types.is_unsigned_integer(t) or (pa.types.is_integer(t) and t.bit_width < 64):
            col = col.cast(pa.int64())
        elif pa.types.is_null(t):
            col = col.cast(pa.string())
        columns.append(col)
    return pa.Table.from_arrays(columns, names=data.column_names)


def _dml_type(t: pa.DataType) -> tuple[str, Any] | None:
    """The BigQuery type a column of Arrow type `t` (as `_plain` left it) is written as, and how a
    value becomes the text that CAST(.. AS type) reads back exactly (None: as it is); None for a
    type written only by a load job (decimals, bytes, nested, nanoseconds)."""
    if pa.types.is_string(t):
        return "STRING", None
    if pa.types.is_boolean(t):
        return "BOOL", lambda v: "true" if v else "false"
    if pa.types.is_int64(t):
        return "INT64", str
    if pa.types.is_floating(t):
        return "FLOAT64", lambda v: repr(float(v))  # nan, inf, -inf: CAST reads them
    if pa.types.is_timestamp(t) and t.unit != "ns":
        # naive: DATETIME (as a Parquet load writes it); with a zone: the instant, offset written
        return ("TIMESTAMP" if t.tz else "DATETIME"), lambda v: v.isoformat(sep=" ")
    if pa.types.is_date32(t):
        return "DATE", lambda v: v.isoformat()
    return None


def _dml_texts(column) -> list:
    """A column's values as their text (every value as text, so that no JSON number rounds it)."""
    _, text = _dml_type(column.type)
    values = column.to_pylist()
    return values if text is None else [None if v is None else text(v) for v in values]


def _without_extensions(batch):
    """A record batch (or table) without the client's Arrow extension names: google-cloud-bigquery
    marks DATETIME (and JSON, GEOGRAPHY) columns `ARROW:extension:name = google:sqlType:...`, which
    Polars reads as an Extension type that no JSON encoder knows (every row would be rejected).
    Zero-copy: only the schema changes."""
    schema = batch.schema
    if not any(f.metadata for f in schema):
        return batch
    plain = pa.schema([f.remove_metadata() for f in schema], metadata=schema.metadata)
    if isinstance(batch, pa.Table):
        return pa.Table.from_arrays(batch.columns, schema=plain)
    return pa.RecordBatch.from_arrays(batch.columns, schema=plain)


def _readable(batch):
    """A batch (or table) of the client as the mapping reads it: without extension names (see
    _without_extensions), BIGNUMERIC (decimal256(76, 38), which Polars cannot read: the run failed
    with a panic) as its exact digits (`numeric_text`, sent as JSON numbers)."""
    from .numeric_text import wide_decimals_as_text

    return wide_decimals_as_text(_without_extensions(batch))


def _type_text(field) -> str:
    """A result column's type as BigQuery writes it: ARRAY<...> for a REPEATED field (whose
    `field_type` is its element's), STRUCT<...> for a RECORD."""
    kind = field.field_type or ""
    if kind.upper() in ("RECORD", "STRUCT"):
        kind = "STRUCT<" + ", ".join(f"{f.name} {_type_text(f)}" for f in (field.fields or ())) + ">"
    return f"ARRAY<{kind}>" if (field.mode or "").upper() == "REPEATED" else kind


class BigQueryWarehouse(ErrorTranslation, Warehouse):
    type_name = "bigquery"
    display_name = "BigQuery"
    extra = "bigquery"
    capabilities = Capabilities(
        dialect="bigquery",
        hash_type="INT64",
        merge=True,
        temp_tables=False,  # only inside one script or session
        transactional_ddl=False,  # DDL runs outside the session's transaction
        enforces_primary_key=False,
        lock_arbiter="insert_verify",
        text_type="STRING",
        identifier_quote="`",
        max_identifier_length=1024,
        unquoted_case="preserve",
        quoted_case_sensitive=True,
        paramstyle="at",
        scratch_database=SCRATCH_DATASET,
    )

    def __init__(self, project: str | None = None, dataset: str | None = None, location: str | None = None,
                 credentials: str | None = None, scratch_dataset: str = SCRATCH_DATASET,
                 scratch_expiration_hours: float = 24, api_endpoint: str | None = None,
                 retry_seconds: float = 120, http_timeout_seconds: float = 60,
                 maximum_bytes_billed: int | None = None):
        from . import require_driver

        self._bq = require_driver("google.cloud.bigquery", "bigquery", package="google-cloud-bigquery")
        from google.api_core import exceptions as api_exceptions
        import google.auth.exceptions as auth_exceptions
        import requests

        self._api = api_exceptions
        self.driver_errors = (api_exceptions.GoogleAPIError, auth_exceptions.GoogleAuthError,
                              requests.exceptions.RequestException, concurrent.futures.TimeoutError)
        self._secrets: list[str] = []
        self.location = location
        self.dataset = dataset
        self.scratch_dataset = self.check_identifier(scratch_dataset, "scratch dataset")
        self.capabilities = dataclasses.replace(type(self).capabilities, scratch_database=self.scratch_dataset)
        self.scratch_expiration_ms = int(float(scratch_expiration_hours) * 3_600_000) or None
        self.http_timeout = float(http_timeout_seconds)
        self.maximum_bytes_billed = maximum_bytes_billed
        self.retry_seconds = float(retry_seconds or 0)
        self._outage = Outage()  # one budget per outage, not per request (see _outage_retry)
        if self.retry_seconds > 0:
            from google.cloud.bigquery.retry import DEFAULT_JOB_RETRY, DEFAULT_RETRY

            self._retry = _outage_retry(DEFAULT_RETRY, self.retry_seconds, self._outage)
            self._job_retry = _outage_retry(DEFAULT_JOB_RETRY, self.retry_seconds, self._outage)
        else:
            self._retry = self._job_retry = None
        with self.translating("connecting"):
            creds, default_project = self._credentials(credentials)
            self.project = project or default_project
            if not self.project:
                raise E.WarehouseCredentialsUnusable(
                    "BigQuery: no project: set warehouse.project (the credentials name none)")
            options = {"api_endpoint": api_endpoint} if api_endpoint else None
            default = self._bq.QueryJobConfig()
            if dataset:
                default.default_dataset = f"{self.project}.{self.check_identifier(dataset, 'dataset')}"
            self.client = self._bq.Client(project=self.project, credentials=creds, location=location,
                                          client_options=options, default_query_job_config=default)
        self._scratch_ready = False
        self._tx = threading.local()  # the session of the calling thread's transaction

    # --- credentials ---------------------------------------------------------------------
    def _credentials(self, value: str | None):
        """(credentials, project named by them) from a JSON text or file path, or the application
        default credentials when `value` is None."""
        import google.auth

        if value is None or not str(value).strip():
            creds, project = google.auth.default(scopes=list(SCOPES))
            return creds, project
        text = str(value).strip()
        self._secrets.append(text)
        if not text.startswith("{"):
            path = os.path.expanduser(text)
            try:
                with open(path, encoding="utf-8") as fh:
                    text = fh.read()
            except OSError as exc:
                # the value is not named: a key that is no JSON (base64-encoded, say) is read as a path,
                # and a WarehouseError's message reaches Python API callers as it is
                raise E.WarehouseCredentialsUnusable(
                    f"BigQuery: cannot read the credentials file warehouse.credentials names (not JSON, so "
                    f"read as a path): {exc.strerror}",
                    "warehouse.credentials is the service-account JSON (not base64-encoded), or the path of "
                    "its file") from None
            self._secrets.append(text.strip())
        try:
            info = json.loads(text)
        except ValueError:
            raise E.WarehouseCredentialsUnusable("BigQuery: the credentials are not valid JSON",
                                       "warehouse.credentials is the service-account JSON, or the path "
                                       "of its file") from None
        if not isinstance(info, dict):
            raise E.WarehouseCredentialsUnusable("BigQuery: the credentials JSON is not an object")
        self._secrets += [str(info[k]) for k in ("private_key", "private_key_id", "client_secret", "refresh_token")
                          if info.get(k)]
        kind = info.get("type")
        try:
            if kind == "service_account":
                from google.oauth2 import service_account

                creds = service_account.Credentials.from_service_account_info(info, scopes=list(SCOPES))
            elif kind == "authorized_user":
                from google.oauth2 import credentials as user_credentials

                creds = user_credentials.Credentials.from_authorized_user_info(info, scopes=list(SCOPES))
            else:
                raise E.WarehouseCredentialsUnusable(
                    f"BigQuery: credentials of type {kind!r} are not supported",
                    "use a service-account key (type service_account) or an authorized-user JSON")
        except (ValueError, KeyError) as exc:
            raise E.WarehouseCredentialsUnusable(
                f"BigQuery: the credentials JSON is incomplete ({type(exc).__name__})") from None
        return creds, info.get("project_id") or info.get("quota_project_id")

    # --- errors --------------------------------------------------------------------------
    def classify(self, exc: BaseException) -> type[E.WarehouseError] | None:
        api = self._api
        if isinstance(exc, concurrent.futures.TimeoutError):
            return E.WarehouseUnavailable
        module = type(exc).__module__
        if module.startswith("google.auth"):
            return E.WarehouseUnavailable if type(exc).__name__ == "TransportError" else E.WarehouseAuthError
        if module.startswith("requests"):
            return E.WarehouseUnavailable
        reasons = [e.get("reason") for e in (getattr(exc, "errors", None) or []) if isinstance(e, dict)]
        text = str(exc).lower()
        if "concurrent update" in text or "could not serialize access" in text:
            return E.WarehouseConflict
        for reason in reasons:
            if reason in _REASONS:
                return _REASONS[reason]
        if isinstance(exc, api.Unauthorized):
            return E.WarehouseAuthError
        if isinstance(exc, api.Forbidden):
            return E.WarehousePermissionError
        if isinstance(exc, api.NotFound) or text.split(": ", 1)[-1].startswith("not found:"):
            return E.WarehouseObjectMissing
        if isinstance(exc, (api.ServerError, api.TooManyRequests, api.RetryError, api.DeadlineExceeded)):
            return E.WarehouseUnavailable
        return None

    def hint_for(self, exc: BaseException) -> str | None:
        if getattr(exc, "dinsync_retries_exhausted", False):
            return ("BigQuery kept answering with a server error (HTTP 5xx) or dropping the connection; the next "
                    "run tries again (the warehouse's retry_seconds sets how long a request is retried)")
        return None

    # --- jobs ----------------------------------------------------------------------------
    def _job_config(self, params: list[tuple[str, str, Any]], sql: str = "", **extra: Any):
        bq = self._bq
        config = bq.QueryJobConfig(**extra)
        config.use_legacy_sql = False
        session = getattr(self._tx, "session", None)
        if session and not _DDL.match(sql):
            config.connection_properties = [bq.ConnectionProperty("session_id", session)]
        if self.maximum_bytes_billed:
            config.maximum_bytes_billed = int(self.maximum_bytes_billed)
        if params:
            config.query_parameters = [bq.ScalarQueryParameter(n, t, v) for n, t, v in params]
        return config

    def _prepare(self, sql: str, params: Params, **extra: Any):
        if not self._scratch_ready and f"`{self.scratch_dataset}`" in sql:
            self._ensure_scratch(self.scratch_dataset)
        sql, values = bind(sql, params)
        return sql, self._job_config(values, sql, **extra)

    def _rows(self, sql: str, params: Params, page_size: int | None = None):
        """jobs.query (`query_and_wait`): one round trip when the answer fits its first page, a job
        and getQueryResults pages otherwise."""
        sql, config = self._prepare(sql, params)
        in_session = bool(config.connection_properties)  # a failed job ended the transaction: never rerun it
        return self.client.query_and_wait(sql, job_config=config, location=self.location, retry=self._retry,
                                          job_retry=None if in_session else self._job_retry,
                                          api_timeout=self.http_timeout,
                                          wait_timeout=None, page_size=page_size)

    @translated("running a statement")
    def execute(self, sql: str, params: Params = None) -> int | None:
        n = self._rows(sql, params).num_dml_affected_rows
        return int(n) if n is not None else None

    @translated("running a query")
    def query(self, sql: str, params: Params = None) -> pa.Table:
        return _readable(self._rows(sql, params).to_arrow(create_bqstorage_client=False))

    @translated("streaming a query")
    def stream(self, sql: str, batch_rows: int = 50_000, params: Params = None) -> Iterator[pa.RecordBatch]:
        rows = self._rows(sql, params, page_size=max(1, int(batch_rows)))
        pages = (_readable(b) for b in rows.to_arrow_iterable(bqstorage_client=None))
        yield from slice_batches(pages, batch_rows)

    @translated("reading the columns of a query")
    def columns(self, sql: str) -> list[tuple[str, str]]:
        sql, config = self._prepare(sql, None, dry_run=True, use_query_cache=False)  # nothing runs or is billed
        job = self.client.query(sql, job_config=config, location=self.location, retry=self._retry,
                                job_retry=self._job_retry, timeout=self.http_timeout)
        if job.error_result:  # BigQuery answers a failing dry run with an HTTP error; be sure anyway
            raise self._api.BadRequest(job.error_result.get("message", "dry run failed"), errors=[job.error_result])
        return [(f.name, _type_text(f)) for f in (job.schema or [])]

    def column_problem(self, column: str, kind: str) -> str | None:
        """The diff hashes each mapped value's text, CAST(value AS STRING): BigQuery has no such cast
        for ARRAY, STRUCT, JSON or GEOGRAPHY (the plan would fail with "Invalid cast from ... to
        STRING", naming no column), and casts BYTES only when they are valid UTF-8."""
        base = kind.split("<", 1)[0].upper()
        if base in ("ARRAY", "STRUCT", "RECORD", "JSON"):
            return f"BigQuery cannot cast {base} to STRING: convert it in the model's SQL, e.g. TO_JSON_STRING({column})"
        if base == "GEOGRAPHY":
            return f"BigQuery cannot cast GEOGRAPHY to STRING: convert it in the model's SQL, e.g. ST_ASTEXT({column})"
        if base == "BYTES":
            return (f"BigQuery casts BYTES to STRING only when they are valid UTF-8: convert it in the model's SQL, "
                    f"e.g. TO_BASE64({column}) (or SAFE_CONVERT_BYTES_TO_STRING({column}) for text)")
        return None

    @translated("reading the columns of a table")
    def table_columns(self, schema: str, table: str) -> list[str] | None:
        ref = f"{self.project}.{self.check_identifier(schema, 'dataset')}.{self.check_identifier(table, 'table')}"
        try:
            found = self.client.get_table(ref, retry=self._retry, timeout=self.http_timeout)
        except self._api.NotFound:
            return None
        return [f.name for f in found.schema] or None

    # --- writes --------------------------------------------------------------------------
    def _ensure_scratch(self, schema: str) -> None:
        """The scratch dataset, created on first use with its default table expiration."""
        if schema != self.scratch_dataset or self._scratch_ready:
            return
        ds = self._bq.Dataset(f"{self.project}.{self.scratch_dataset}")
        if self.location:
            ds.location = self.location
        if self.scratch_expiration_ms:
            ds.default_table_expiration_ms = self.scratch_expiration_ms
        ds.description = "dinsync scratch tables (plans of running syncs); tables expire by themselves"
        self.client.create_dataset(ds, exists_ok=True, retry=self._retry, timeout=self.http_timeout)
        self._scratch_ready = True

    @translated("writing rows")
    def write_arrow(self, schema: str, table: str, data: pa.Table, mode: str = "append") -> None:
        """Rows into `schema`.`table` by column name: appended to the table, or replacing it (then
        created with the data's columns). INSERT statements up to DML_WRITE_MAX_BYTES of rows,
        else a load job (see the module's docstring)."""
        if mode not in ("append", "replace"):
            raise ValueError(f"write mode must be append or replace, got {mode!r}")
        self._ensure_scratch(schema)
        data = _plain(data)
        columns = [_dml_type(f.type) for f in data.schema]
        # (the Arrow data's size bounds its JSON text's, give or take the names and the quoting)
        chunks = (list(json_object_chunks(data, DML_CHUNK_BYTES, _dml_texts)) if None not in columns
                  and data.nbytes + 16 * data.num_rows * max(1, data.num_columns) <= DML_WRITE_MAX_BYTES else None)
        # (a single row over the chunk size, a long key of emoji: within a request only as Parquet)
        if chunks is None or any(len(c) > DML_CHUNK_BYTES for c in chunks):
            self._load_rows(schema, table, data, mode)
            return
        name = f"{self.quote(schema)}.{self.quote(table)}"
        if mode == "replace":
            defs = ", ".join(f"{self.quote(c)} {t}" for c, (t, _) in zip(data.column_names, columns))
            self._rows(f"CREATE OR REPLACE TABLE {name} ({defs})", None)
        targets = ", ".join(self.quote(c) for c in data.column_names)
        values = ", ".join(f"CAST(JSON_VALUE(r, '$.c{i}') AS {t})" for i, (t, _) in enumerate(columns))
        sql = f"INSERT INTO {name} ({targets}) SELECT {values} FROM UNNEST(JSON_QUERY_ARRAY(:rows)) AS r"
        for chunk in chunks:
            self._rows(sql, {"rows": chunk.decode()})

    def _load_rows(self, schema: str, table: str, data: pa.Table, mode: str) -> None:
        """The rows as one load job of Parquet."""
        import pyarrow.parquet as pq

        bq = self._bq
        ref = f"{self.project}.{self.check_identifier(schema, 'dataset')}.{self.check_identifier(table, 'table')}"
        buf = io.BytesIO()
        pq.write_table(data, buf, compression="snappy")
        buf.seek(0)
        config = bq.LoadJobConfig(
            source_format=bq.SourceFormat.PARQUET,
            write_disposition=(bq.WriteDisposition.WRITE_TRUNCATE if mode == "replace"
                               else bq.WriteDisposition.WRITE_APPEND),
            create_disposition=(bq.CreateDisposition.CREATE_IF_NEEDED if mode == "replace"
                                else bq.CreateDisposition.CREATE_NEVER),
        )
        job = self.client.load_table_from_file(
            buf, ref, job_config=config, location=self.location,
            num_retries=0 if self._retry is None or self._outage.ongoing(self.retry_seconds) else 6,
            job_id=f"dinsync_load_{uuid.uuid4().hex}", timeout=self.http_timeout)
        job.result(retry=self._retry, timeout=None)

    # --- scratch dataset and transactions ------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """A multi-statement transaction in a session of the calling thread (see the module's
        docstring); a block inside another joins it."""
        if getattr(self._tx, "session", None):
            yield
            return
        with self.translating("starting a transaction"):
            job = self.client.query("BEGIN TRANSACTION", job_config=self._job_config([], create_session=True),
                                    location=self.location, retry=self._retry, job_retry=None,
                                    timeout=self.http_timeout)
            job.result(retry=self._retry, timeout=None)
            session = job.session_info.session_id if job.session_info else None
            if not session:
                raise E.WarehouseSqlError("BigQuery: no session was created for the transaction")
        self._tx.session = session
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):
                self._session_statement("ROLLBACK TRANSACTION")
            self._end_session()
            raise
        try:
            with self.translating("committing a transaction"):
                self._session_statement("COMMIT TRANSACTION")
        finally:
            self._end_session()

    def _session_statement(self, sql: str) -> None:
        self.client.query_and_wait(sql, job_config=self._job_config([], sql), location=self.location,
                                   retry=self._retry, job_retry=None, api_timeout=self.http_timeout,
                                   wait_timeout=None)

    def _end_session(self) -> None:
        try:
            with contextlib.suppress(Exception):  # an idle session expires by itself anyway
                self._session_statement("CALL BQ.ABORT_SESSION()")
        finally:
            self._tx.session = None

    # --- identifiers ---------------------------------------------------------------------
    def quote(self, name: str) -> str:
        name = self.check_identifier(name)
        if any(c in name for c in "`\\\n\r"):
            raise E.WarehouseSqlError(f"identifier {name!r} holds a character BigQuery names cannot hold")
        return f"`{name}`"

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
