"""A loopback fake of the BigQuery REST API, backed by DuckDB, for the real google-cloud-bigquery
client (route shapes: the harness notes of 2026-11-23, copied into this docstring's rules).

What it serves (everything else: 400 `invalid`, as BigQuery answers a bad request):
- `POST /token`: OAuth 2 JWT-bearer grant of a service account. The assertion's RS256 signature
  is checked against the public key of the key pair `service_account_json()` hands out, with
  its `iss`, `aud` and `exp`; the answer is an access token.
- Every `/bigquery/v2` and `/upload` route wants `Authorization: Bearer <a token it issued>`
  (401 `authError` otherwise).
- `POST /bigquery/v2/projects/{p}/jobs`: jobs.insert of a query (`configuration.query.query`,
  `useLegacySql: false` required; `dryRun` answers the schema only; `queryParameters` typed
  and named; `defaultDataset`) or a resumable load (below). The GoogleSQL is checked for what
  BigQuery enforces and the fake would otherwise let through: DELETE and UPDATE need a WHERE;
  a table name needs a dataset unless the job has a default dataset; a referenced parameter must
  be given. It is then transpiled with sqlglot to DuckDB and run; FARM_FINGERPRINT is farmhash's
  Fingerprint64 (pyfarmhash), as BigQuery's. A failing statement is a DONE job whose
  `status.errorResult` has reason `notFound` (a missing table or dataset) or `invalidQuery`.
- `POST /bigquery/v2/projects/{p}/queries` (jobs.query, as `Client.query_and_wait` sends it: the
  first page in the answer, a failing query as an HTTP 400/404 with its reason).
- `GET /bigquery/v2/projects/{p}/jobs/{id}` and `GET .../queries/{id}` (getQueryResults: paged
  by `maxResults` / `pageToken`, values as strings, TIMESTAMP as int64 microseconds when
  `formatOptions.useInt64Timestamp`; no `rows` key when `maxResults=0`).
- `POST .../datasets` (datasets.insert; 409 when it exists), `GET .../datasets/{d}`,
  `GET .../datasets/{d}/tables/{t}` (schema; 404 `notFound`).
- `POST /upload/bigquery/v2/projects/{p}/jobs?uploadType=resumable` (a load job of
  `sourceFormat: PARQUET` with `destinationTable`; answers a `Location` session URL), then `PUT`
  of the bytes there (chunks with `Content-Range`: 308 until the last), answering the DONE job.
  BigQuery's quota of load jobs per table per day (1,500, failed ones included; DML statements do
  not count, https://cloud.google.com/bigquery/docs/optimize-load-jobs) is enforced over a rolling
  24 hours per table name: beyond it the job fails with reason `quotaExceeded`
  (`load_jobs_per_table_day` sets it lower for a test). A request body other than an upload's
  holds at most 10 MB (MAX_REQUEST_BYTES), as BigQuery's API takes.

BigQuery going away (`gone_after`, `gone`, `gone_reset`): from a request whose body holds a marker
on, every request is answered 503 (or its connection dropped, or never answered), and the attempts of each request
are counted (`gone_requests`, by its requestId or jobId: the client keeps them across its retries).

A request sent again (the client's retries): jobs.insert of a jobId that exists answers 409
`duplicate` (the client then gets that job), and jobs.query of a `requestId` seen in the last 15
minutes with the same request (query, parameters, connection properties, default dataset) answers
the earlier query's first page without running it again, as BigQuery documents requestId ("to
ensure idempotent behavior ... its lifetime is limited to 15 minutes"; `dedup_request_ids` False:
as a server without it). The answer lost (`cut_after`, `cut_times`): a query (jobs.query or
jobs.insert) whose text holds the marker runs, then its connection is dropped instead of answered
(`cut_times` times); `cut_statements` lists them, `query_request_ids` the requestId of every
jobs.query, in order, with its query text.

Sessions (`createSession`, then the connection property `session_id`; `CALL BQ.ABORT_SESSION()`
ends one) hold a DuckDB cursor of their own, so `BEGIN TRANSACTION` ... `COMMIT TRANSACTION` span
jobs as in BigQuery. Enforced as BigQuery does: transaction statements only in a session, no
nesting, no DDL inside a transaction, a failed statement ends the transaction.

Data lives in one DuckDB database whose catalog is the project (datasets are schemas); each
job runs alone (the server's loop is single-threaded), so every job is atomic; a session's open
transaction sees its own writes, and a write that collides with another's fails as a concurrent
update.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import decimal
import functools
import io
import json
import math
import re
import time
import uuid
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import sqlglot
from aiohttp import web
from sqlglot import exp

PROJECT = "dinsync-test"
_ABORT_SESSION = re.compile(r"\s*CALL\s+BQ\.ABORT_SESSION\s*\(\s*\)\s*;?\s*$", re.I)
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # the `aud` google-auth signs, whatever token_uri is


def _error(status: int, reason: str, message: str) -> web.Response:
    body = {"error": {"code": status, "message": message, "errors": [{"reason": reason, "message": message,
                                                                     "domain": "global"}],
                      "status": {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND",
                                 409: "ALREADY_EXISTS"}.get(status, "FAILED_PRECONDITION")}}
    return web.json_response(body, status=status)


# BigQuery's limit on an API request (jobs.query and jobs.insert bodies; uploads have their own).
MAX_REQUEST_BYTES = 10 * 1024 * 1024


class JobError(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


class BadRequest(Exception):
    """The request itself is malformed: HTTP 400, never a retryable 5xx."""


# --- types ---------------------------------------------------------------------------------------

_DUCK_TO_BQ = [  # prefix of DuckDB's type name -> BigQuery's
    ("BIGINT", "INTEGER"), ("INTEGER", "INTEGER"), ("SMALLINT", "INTEGER"), ("TINYINT", "INTEGER"),
    ("HUGEINT", "INTEGER"), ("UBIGINT", "INTEGER"), ("UINTEGER", "INTEGER"), ("USMALLINT", "INTEGER"),
    ("UTINYINT", "INTEGER"), ("DOUBLE", "FLOAT"), ("FLOAT", "FLOAT"), ("DECIMAL", "NUMERIC"),
    ("VARCHAR", "STRING"), ("BOOLEAN", "BOOLEAN"), ("TIMESTAMP WITH TIME ZONE", "TIMESTAMP"),
    ("TIMESTAMP", "DATETIME"), ("DATE", "DATE"), ("BLOB", "BYTES"), ("TIME", "TIME"), ("\"NULL\"", "STRING"),
    ("NULL", "STRING"),
]
_PARAM_TYPES = {"INT64": "BIGINT", "FLOAT64": "DOUBLE", "STRING": "VARCHAR", "BOOL": "BOOLEAN",
                "DATETIME": "TIMESTAMP", "TIMESTAMP": "TIMESTAMPTZ", "DATE": "DATE", "NUMERIC": "DECIMAL(38, 9)"}


_WIDE_SCALE = re.compile(r"^DECIMAL\(\d+,\s*(\d+)\)$")


def bq_type(duck_type: str) -> str:
    name = duck_type.upper()
    scale = _WIDE_SCALE.match(name)
    if scale and int(scale.group(1)) > 9:  # NUMERIC holds 9 decimals: more is a BIGNUMERIC (the
        return "BIGNUMERIC"  # client reads it as decimal256(76, 38); DuckDB holds 38 digits of its 76)
    for prefix, bq in _DUCK_TO_BQ:
        if name.startswith(prefix):
            return bq
    raise JobError("invalidQuery", f"the fake cannot return a column of type {duck_type}")


def bq_field(name: str, duck_type: Any) -> dict:
    """A schema field as BigQuery describes a query's column: a list as a REPEATED field of its
    element's type, a struct as a RECORD with its fields, JSON as JSON (dry runs only: the fake
    returns no rows of these types)."""
    t = duck_type if hasattr(duck_type, "id") else None
    text = str(duck_type)
    if t is not None and t.id == "list":
        return {**bq_field(name, t.children[0][1]), "mode": "REPEATED"}
    if t is not None and t.id == "struct":
        return {"name": name, "type": "RECORD", "mode": "NULLABLE",
                "fields": [bq_field(n, c) for n, c in t.children]}
    if text.upper() == "JSON":
        return {"name": name, "type": "JSON", "mode": "NULLABLE"}
    return {"name": name, "type": bq_type(text), "mode": "NULLABLE"}


def bq_value(value: Any, kind: str, int64_timestamp: bool) -> Any:
    if value is None:
        return None
    if kind == "BOOLEAN":
        return "true" if value else "false"
    if kind == "FLOAT":
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(float(value))
    if kind == "TIMESTAMP":
        value = value.astimezone(dt.timezone.utc)
        micros = (value - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)) // dt.timedelta(microseconds=1)
        return str(micros) if int64_timestamp else f"{micros / 1e6:.6f}"
    if kind == "DATETIME":
        return value.isoformat()
    if kind == "BYTES":
        return base64.b64encode(value).decode()
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    return str(value)


# --- SQL -------------------------------------------------------------------------------------------
def _first_word(sql: str) -> str:
    """The statement's first keyword, past its leading comments (an analyst's query starts with one)."""
    return re.sub(r"^(\s*(--[^\n]*(\n|$)|/\*.*?\*/))*", "", sql, flags=re.S).lstrip().split(None, 1)[0].upper()



def farm_fingerprint(value: str) -> int:
    """BigQuery's FARM_FINGERPRINT: farmhash Fingerprint64 as a signed INT64 (NULL stays NULL)."""
    import farmhash

    h = farmhash.fingerprint64(value)
    return h - (1 << 64) if h >= (1 << 63) else h


def _literal(param: dict) -> exp.Expression:
    ptype = (param.get("parameterType") or {}).get("type")
    if ptype not in _PARAM_TYPES:
        raise BadRequest(f"query parameter {param.get('name')!r}: unsupported or missing parameterType.type")
    value = (param.get("parameterValue") or {}).get("value")
    if value is None:
        return exp.cast(exp.Null(), _PARAM_TYPES[ptype])
    if ptype == "BOOL":
        if value not in ("true", "false", "TRUE", "FALSE"):
            raise BadRequest(f"query parameter {param['name']!r}: invalid BOOL value")
        return exp.Boolean(this=value.lower() == "true")
    return exp.cast(exp.Literal.string(str(value)), _PARAM_TYPES[ptype], dialect="duckdb")


def to_duckdb(sql: str, params: list[dict], default_dataset: str | None) -> list[str]:
    """The job's GoogleSQL checked as BigQuery checks it, then as DuckDB statements."""
    if not params:
        return list(_to_duckdb(sql, default_dataset))
    return _convert(sql, params, default_dataset)


@functools.lru_cache(maxsize=4096)  # a planner runs the same statements run after run
def _to_duckdb(sql: str, default_dataset: str | None) -> tuple[str, ...]:
    return tuple(_convert(sql, [], default_dataset))


def _convert(sql: str, params: list[dict], default_dataset: str | None) -> list[str]:
    try:
        trees = [t for t in sqlglot.parse(sql, read="bigquery") if t is not None]
    except sqlglot.errors.SqlglotError as exc:
        raise JobError("invalidQuery", f"Syntax error: {str(exc).splitlines()[0]}") from None
    values = {}
    for p in params:
        if not p.get("name"):
            raise BadRequest("positional query parameters are not used by dinsync (name required)")
        values[p["name"].lower()] = _literal(p)
    out = []
    for tree in trees:
        if isinstance(tree, (exp.Delete, exp.Update)) and not tree.args.get("where"):
            kind = "DELETE" if isinstance(tree, exp.Delete) else "UPDATE"
            raise JobError("invalidQuery", f"{kind} must have a WHERE clause at [1:1]")
        ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
        for table in tree.find_all(exp.Table):
            if not table.name or table.args.get("db") or table.name.lower() in ctes:
                continue
            if isinstance(table.parent, exp.Create) and table.parent.kind == "SCHEMA":
                continue
            if default_dataset is None:
                raise JobError("invalidQuery", f'Table "{table.name}" must be qualified with a dataset '
                                               f"(e.g. dataset.table).")
            table.set("db", exp.to_identifier(default_dataset, quoted=True))
        for node in list(tree.find_all(exp.Parameter)):
            name = node.name.lower()
            if name not in values:
                raise JobError("invalidQuery", f"Query parameter '{node.name}' not found at [1:1]")
            node.replace(values[name].copy())
        out.append(tree.sql(dialect="duckdb"))
    return out


class FakeBigQuery:
    """The fake (an aiohttp app; run it with dinsync.sandbox.runner.SandboxThread)."""

    def __init__(self, path: str = ":memory:", project: str = PROJECT):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.project = project
        self.con = duckdb.connect()
        self.con.execute(f"ATTACH '{path}' AS \"{project}\"")
        self.con.execute(f'USE "{project}"')
        self.con.create_function("farm_fingerprint", farm_fingerprint, ["VARCHAR"], "BIGINT")
        self.jobs: dict[str, dict] = {}
        self.results: dict[str, tuple[list[dict], list[tuple]]] = {}
        self.uploads: dict[str, dict] = {}
        self.sessions: dict[str, dict] = {}
        self.datasets: dict[str, dict] = {}  # datasets created through datasets.insert  # session id -> its DuckDB cursor and transaction state
        self.tokens: set[str] = set()
        self.load_jobs_per_table_day = 1500
        self.load_jobs: dict[tuple[str, str], list[float]] = {}  # (dataset, table) -> times of its load jobs
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self.pages: list[int] = []  # rows in each page of results answered
        # BigQuery going away mid-run: once a request's body contains `gone_after` (or `gone` is set),
        # every request is answered 503 (with `gone_reset`: its connection closed unanswered), and
        # its attempts are counted per request (see _request_id)
        self.gone_after: str | None = None
        self.gone, self.gone_reset, self.gone_hang = False, False, False  # gone_hang: never answered
        self.gone_requests: dict[str, int] = {}
        # requests sent again (see the module's docstring)
        self.dedup_request_ids = True
        self.request_ids: dict[str, tuple[str, float, str]] = {}  # requestId -> (request, time, job id)
        self.query_request_ids: list[tuple[str, str]] = []  # (requestId, query) of every jobs.query
        self.cut_after: str | None = None
        self.cut_times = 1
        self.cut_statements: list[str] = []
        self.url: str | None = None
        self._runner = None
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._pem = self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()).decode()
        self.client_email = f"dinsync@{project}.iam.gserviceaccount.com"

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self, port: int = 0) -> str:
        app = web.Application(client_max_size=256 << 20, middlewares=[self._middleware])
        r = app.router
        r.add_post("/token", self._token)
        base = "/bigquery/v2/projects/{project}"
        r.add_post(base + "/jobs", self._jobs_insert)
        r.add_get(base + "/jobs/{job}", self._jobs_get)
        r.add_post(base + "/queries", self._jobs_query)
        r.add_get(base + "/queries/{job}", self._query_results)
        r.add_post(base + "/datasets", self._datasets_insert)
        r.add_get(base + "/datasets/{dataset}", self._datasets_get)
        r.add_get(base + "/datasets/{dataset}/tables/{table}", self._tables_get)
        r.add_post("/upload/bigquery/v2/projects/{project}/jobs", self._upload_start)
        r.add_put("/upload/bigquery/v2/projects/{project}/jobs", self._upload_put)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        self._runner = runner
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.con.close()

    def service_account_json(self) -> str:
        """A service-account key of this fake: its token_uri is the fake's /token."""
        return json.dumps({"type": "service_account", "project_id": self.project, "private_key_id": "k1",
                           "private_key": self._pem, "client_email": self.client_email, "client_id": "1",
                           "token_uri": f"{self.url}/token"})

    # --- HTTP plumbing ---------------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler):
        self.requests.append((request.method, request.path))
        if self.gone_after is not None and not self.gone and request.body_exists:
            self.gone = self.gone_after.encode() in await request.read()
        if self.gone:
            return await self._gone(request)
        if request.path != "/token":
            auth = request.headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
                return _error(401, "authError", "Request is missing required authentication credential.")
            if request.match_info.get("project", self.project) != self.project:
                return _error(404, "notFound", f"Not found: Project {request.match_info['project']}")
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status == 404:
                return _error(400, "invalid", f"the fake serves no route {request.method} {request.path}")
            if exc.status == 405:
                return _error(400, "invalid", f"the fake serves no method {request.method} on {request.path}")
            raise
        except BadRequest as exc:
            return _error(400, "invalid", str(exc))
        except Exception as exc:  # a bug of the fake: a 400 (never a 5xx, which the client would retry)
            return _error(400, "invalid", f"the fake failed: {type(exc).__name__}: {exc}")

    @staticmethod
    async def _request_id(request: web.Request) -> str:
        """What names one request across the client's retries of it: jobs.query's requestId, a job's
        jobId (both made by the client once per request), else the method and URL."""
        if request.body_exists and not request.path.startswith("/upload/"):
            with contextlib.suppress(ValueError):
                body = json.loads(await request.read())
                if isinstance(body, dict):
                    named = body.get("requestId") or (body.get("jobReference") or {}).get("jobId")
                    if named:
                        return str(named)
        return f"{request.method} {request.path_qs}"

    async def _gone(self, request: web.Request) -> web.StreamResponse:
        rid = await self._request_id(request)
        self.gone_requests[rid] = self.gone_requests.get(rid, 0) + 1
        if self.gone_hang:
            await asyncio.sleep(3600)
        if self.gone_reset and request.transport is not None:
            request.transport.abort()  # the connection dropped, no answer
        return web.Response(status=503, text="Service Unavailable")

    async def _json(self, request: web.Request) -> dict:
        raw = await request.read()
        if len(raw) > MAX_REQUEST_BYTES and not request.path.startswith("/upload/"):
            raise BadRequest(f"Request payload size exceeds the limit: {MAX_REQUEST_BYTES} bytes.")
        try:
            body = await request.json()
        except ValueError:
            raise BadRequest("the request body is not JSON") from None
        if not isinstance(body, dict):
            raise BadRequest("the request body is not a JSON object")
        return body

    async def _token(self, request: web.Request) -> web.Response:
        """The JWT-bearer grant (RFC 7523) as Google's token endpoint takes it."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        form = await request.post()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        try:
            head, claims, sig = str(form.get("assertion", "")).split(".")
            header = json.loads(_b64(head))
            payload = json.loads(_b64(claims))
            self._key.public_key().verify(_b64(sig), f"{head}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except (ValueError, InvalidSignature):
            return web.json_response({"error": "invalid_grant", "error_description": "Invalid JWT Signature."},
                                     status=400)
        now = time.time()
        if (header.get("alg") != "RS256" or payload.get("iss") != self.client_email
                or payload.get("aud") not in (GOOGLE_TOKEN_AUDIENCE, f"{self.url}/token") or not payload.get("exp", 0) > now - 60):
            return web.json_response({"error": "invalid_grant", "error_description": "Invalid JWT claims."},
                                     status=400)
        token = "ya29.fake-" + uuid.uuid4().hex
        self.tokens.add(token)
        return web.json_response({"access_token": token, "expires_in": 3600, "token_type": "Bearer"})

    # --- jobs ------------------------------------------------------------------------------
    def _new_job(self, body: dict) -> dict:
        ref = dict(body.get("jobReference") or {})
        job_id = ref.get("jobId") or uuid.uuid4().hex
        if job_id in self.jobs:
            raise _Conflict(f"Already Exists: Job {self.project}:{ref.get('location', 'US')}.{job_id}")
        ref.update(projectId=self.project, jobId=job_id, location=ref.get("location") or "US")
        now = str(int(time.time() * 1000))
        job = {"kind": "bigquery#job", "id": f"{self.project}:{ref['location']}.{job_id}", "jobReference": ref,
               "configuration": body.get("configuration"), "status": {"state": "DONE"},
               "statistics": {"creationTime": now, "startTime": now, "endTime": now},
               "user_email": self.client_email}
        self.jobs[job_id] = job
        return job

    def _fail(self, job: dict, error: JobError) -> None:
        err = {"reason": error.reason, "message": error.message}
        job["status"] = {"state": "DONE", "errorResult": err, "errors": [err]}

    async def _jobs_insert(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        config = body.get("configuration")
        if not isinstance(config, dict) or "query" not in config:
            raise BadRequest("jobs.insert needs configuration.query (loads come through the upload endpoint)")
        query = config["query"]
        if not isinstance(query.get("query"), str) or not query["query"].strip():
            raise BadRequest("configuration.query.query is required")
        if query.get("useLegacySql") is not False:
            raise BadRequest("this fake runs GoogleSQL only: set configuration.query.useLegacySql to false")
        try:
            job = self._new_job(body)
        except _Conflict as exc:
            return _error(409, "duplicate", str(exc))
        default = query.get("defaultDataset")
        if default is not None and default.get("projectId", self.project) != self.project:
            raise BadRequest("defaultDataset of another project")
        session = self._session(job, query.get("createSession"), query.get("connectionProperties"))
        try:
            self._execute(job, query["query"], query.get("queryParameters") or [],
                          default.get("datasetId") if default else None, bool(config.get("dryRun")), session)
        except JobError as exc:
            self._fail(job, exc)
            if config.get("dryRun"):  # a dry run's error is the HTTP answer itself
                return _error(404 if exc.reason == "notFound" else 400, exc.reason, exc.message)
        self._cut(request, query["query"])
        return web.json_response(job)

    def _cut(self, request: web.Request, query: str) -> None:
        """The answer of a query that ran lost (see the module's docstring)."""
        if self.cut_after is not None and self.cut_times > 0 and self.cut_after in query and request.transport:
            self.cut_times -= 1
            self.cut_statements.append(query)
            request.transport.abort()

    # --- sessions ----------------------------------------------------------------------------
    def _session(self, job: dict, create: Any, properties: Any) -> dict | None:
        """The session a job runs in: a new one (createSession), the one its connection property
        `session_id` names (400 when unknown), or None."""
        if properties is not None and not isinstance(properties, list):
            raise BadRequest("connectionProperties is a list of {key, value}")
        named = [p.get("value") for p in properties or [] if isinstance(p, dict) and p.get("key") == "session_id"]
        if create and named:
            raise BadRequest("createSession and a session_id connection property exclude each other")
        if create:
            sid = uuid.uuid4().hex
            self.sessions[sid] = {"id": sid, "cur": self._cursor(), "in_tx": False}
        elif named:
            sid = named[0]
            if sid not in self.sessions:
                raise BadRequest(f"Session {sid} was not found or has ended")
        else:
            return None
        job["statistics"]["sessionInfo"] = {"sessionId": sid}
        return self.sessions[sid]

    def _execute(self, job: dict, text: str, params: list, default: str | None, dry: bool,
                 session: dict | None) -> None:
        if _ABORT_SESSION.match(text):
            if session is None:
                raise JobError("invalidQuery", "BQ.ABORT_SESSION() must run in a session")
            self._end_session(session)
            return
        statements = to_duckdb(text, params, default)
        for sql in statements:
            first = sql.lstrip().split(None, 1)[0].upper()
            if first in ("BEGIN", "COMMIT", "ROLLBACK"):
                if session is None:
                    raise JobError("invalidQuery", "Transaction control statements are supported only in scripts "
                                                   "or sessions")
                if (first == "BEGIN") == session["in_tx"]:
                    raise JobError("invalidQuery", "Nested transactions are not supported" if first == "BEGIN"
                                   else f"{first} TRANSACTION without an active transaction")
            elif first in ("CREATE", "ALTER", "DROP") and session is not None and session["in_tx"]:
                raise JobError("invalidQuery", f"{first} statements are not supported inside a transaction "
                                               "(only CREATE TEMP TABLE is)")
        self._run_query(job, statements, dry, session)
        if session is not None:
            for sql in statements:
                first = sql.lstrip().split(None, 1)[0].upper()
                if first in ("BEGIN", "COMMIT", "ROLLBACK"):
                    session["in_tx"] = first == "BEGIN"

    def _end_session(self, session: dict) -> None:
        if session["in_tx"]:
            with contextlib.suppress(duckdb.Error):
                session["cur"].execute("ROLLBACK")
        session["cur"].close()
        self.sessions.pop(session["id"], None)

    def _run_query(self, job: dict, statements: list[str], dry: bool, session: dict | None = None) -> None:
        stats = job["statistics"].setdefault("query", {})
        cur = session["cur"] if session else self._cursor()
        try:
            for i, sql in enumerate(statements):
                last = i == len(statements) - 1
                if dry:
                    if not last:
                        continue
                    rel = cur.sql(sql)
                    if rel is not None:
                        stats["schema"] = {"fields": [bq_field(n, t) for n, t in zip(rel.columns, rel.types)]}
                    stats["totalBytesProcessed"] = "0"
                    continue
                cur.execute(sql)
                if not last:
                    if cur.description is not None:
                        cur.fetchall()
                    continue
                first = _first_word(sql)
                if cur.description is None:
                    fields, rows = [], []
                else:
                    rows = cur.fetchall()
                    fields = [{"name": d[0], "type": bq_type(str(d[1])), "mode": "NULLABLE"} for d in cur.description]
                if first in ("INSERT", "UPDATE", "DELETE", "MERGE"):
                    stats["statementType"] = first
                    stats["numDmlAffectedRows"] = str(int(rows[0][0]) if rows else 0)
                    fields, rows = [], []
                elif first == "SELECT" or first == "WITH" or first == "(":
                    stats["statementType"] = "SELECT"
                else:
                    stats["statementType"] = first
                    fields, rows = [], []
                self.results[job["jobReference"]["jobId"]] = (fields, rows)
                if fields:
                    stats["schema"] = {"fields": fields}
                stats["totalBytesProcessed"] = "0"
        except duckdb.Error as exc:
            if session is not None and session["in_tx"]:  # a failed statement ends BigQuery's transaction
                with contextlib.suppress(duckdb.Error):
                    cur.execute("ROLLBACK")
                session["in_tx"] = False
            raise JobError(*self._reason(exc)) from None
        finally:
            if session is None:
                cur.close()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cur = self.con.cursor()  # a cursor starts in the default catalog: the project's is ours
        cur.execute(f'USE "{self.project}"')
        return cur

    def _reason(self, exc: duckdb.Error) -> tuple[str, str]:
        text = " ".join(str(exc).split())
        if isinstance(exc, duckdb.CatalogException) and ("does not exist" in text or "not found" in text.lower()):
            m = re.search(r"(Table|Schema) with name \"?([^\s!\"]+)\"? does not exist", text)
            if m:  # as BigQuery says it
                kind = "Table" if m.group(1) == "Table" else "Dataset"
                return "notFound", f"Not found: {kind} {self.project}:{m.group(2)} was not found in location US"
            return "notFound", f"Not found: {text}"
        if isinstance(exc, duckdb.TransactionException):
            return "invalidQuery", f"Could not serialize access to table due to concurrent update: {text}"
        return "invalidQuery", text

    async def _jobs_query(self, request: web.Request) -> web.Response:
        """jobs.query: the query runs as a job; the answer holds its first page. A failing query
        is an HTTP error here (jobs.insert answers a DONE job holding the error instead)."""
        body = await self._json(request)
        allowed = {"kind", "query", "maxResults", "defaultDataset", "timeoutMs", "dryRun", "useQueryCache",
                   "useLegacySql", "parameterMode", "queryParameters", "location", "formatOptions", "labels",
                   "maximumBytesBilled", "requestId", "jobCreationMode", "preserveNulls", "connectionProperties",
                   "createSession"}
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise BadRequest(f"Invalid JSON payload received. Unknown name {unknown[0]!r} in QueryRequest")
        if not isinstance(body.get("query"), str) or not body["query"].strip():
            raise BadRequest("QueryRequest.query is required")
        if body.get("useLegacySql") is not False:
            raise BadRequest("this fake runs GoogleSQL only: set useLegacySql to false")
        if body.get("dryRun"):
            raise BadRequest("dinsync dry-runs through jobs.insert; this fake does not take dryRun here")
        request_id = body.get("requestId")
        self.query_request_ids.append((request_id, body["query"]))
        same = json.dumps([body.get(k) for k in ("query", "queryParameters", "connectionProperties", "defaultDataset",
                                                  "useLegacySql", "createSession")], sort_keys=True)
        earlier = self.request_ids.get(request_id) if request_id and self.dedup_request_ids else None
        if earlier is not None and earlier[0] == same and time.time() - earlier[1] < 15 * 60:
            page = self._page(self.jobs[earlier[2]], 0, int(body["maxResults"]) if "maxResults" in body else 100_000,
                              (body.get("formatOptions") or {}).get("useInt64Timestamp") is True)
            page["kind"] = "bigquery#queryResponse"
            return web.json_response(page)  # not run again
        job = self._new_job({"jobReference": {"location": body.get("location")},
                             "configuration": {"query": {k: body[k] for k in ("query", "useLegacySql", "defaultDataset",
                                                                              "queryParameters") if k in body}}})
        default = body.get("defaultDataset")
        session = self._session(job, body.get("createSession"), body.get("connectionProperties"))
        try:
            self._execute(job, body["query"], body.get("queryParameters") or [],
                          default.get("datasetId") if default else None, False, session)
        except JobError as exc:
            self._fail(job, exc)
            return _error(404 if exc.reason == "notFound" else 400, exc.reason, exc.message)
        if request_id:
            self.request_ids[request_id] = (same, time.time(), job["jobReference"]["jobId"])
        self._cut(request, body["query"])
        page = self._page(job, 0, int(body["maxResults"]) if "maxResults" in body else 100_000,
                          (body.get("formatOptions") or {}).get("useInt64Timestamp") is True)
        page["kind"] = "bigquery#queryResponse"
        return web.json_response(page)

    async def _jobs_get(self, request: web.Request) -> web.Response:
        job = self.jobs.get(request.match_info["job"])
        if job is None:
            return _error(404, "notFound", f"Not found: Job {self.project}:{request.match_info['job']}")
        return web.json_response(job)

    async def _query_results(self, request: web.Request) -> web.Response:
        job_id = request.match_info["job"]
        job = self.jobs.get(job_id)
        if job is None:
            return _error(404, "notFound", f"Not found: Job {self.project}:{job_id}")
        if "errorResult" in job["status"]:
            err = job["status"]["errorResult"]
            return _error(404 if err["reason"] == "notFound" else 400, err["reason"], err["message"])
        q = request.query
        try:
            start = int(q.get("pageToken") or q.get("startIndex") or 0)
            limit = int(q["maxResults"]) if "maxResults" in q else 100_000
        except ValueError:
            raise BadRequest("pageToken, startIndex and maxResults are integers here") from None
        int64 = q.get("formatOptions.useInt64Timestamp", "false").lower() == "true"
        return web.json_response(self._page(job, start, limit, int64))

    def _page(self, job: dict, start: int, limit: int, int64: bool) -> dict:
        job_id = job["jobReference"]["jobId"]
        fields, rows = self.results.get(job_id, ([], []))
        body: dict[str, Any] = {"kind": "bigquery#getQueryResultsResponse", "jobReference": job["jobReference"],
                                "jobComplete": True, "totalRows": str(len(rows)), "cacheHit": False,
                                "totalBytesProcessed": "0"}
        if fields:
            body["schema"] = {"fields": fields}
        stats = job["statistics"].get("query", {})
        if "numDmlAffectedRows" in stats:
            body["numDmlAffectedRows"] = stats["numDmlAffectedRows"]
        if limit > 0:
            page = rows[start:start + limit]
            kinds = [f["type"] for f in fields]
            body["rows"] = [{"f": [{"v": bq_value(v, k, int64)} for v, k in zip(row, kinds)]} for row in page]
            self.pages.append(len(page))
            if start + limit < len(rows):
                body["pageToken"] = str(start + limit)
        return body

    # --- datasets and tables -----------------------------------------------------------------
    def _dataset_exists(self, name: str) -> bool:
        return bool(self.con.execute(
            "SELECT 1 FROM information_schema.schemata WHERE catalog_name = ? AND schema_name = ?",
            [self.project, name]).fetchall())

    async def _datasets_insert(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        ref = body.get("datasetReference") or {}
        name = ref.get("datasetId")
        if not isinstance(name, str) or not name or not all(c.isalnum() or c == "_" for c in name):
            raise BadRequest("datasetReference.datasetId is required (letters, digits, underscores)")
        if self._dataset_exists(name):
            return _error(409, "duplicate", f"Already Exists: Dataset {self.project}:{name}")
        self.con.execute(f'CREATE SCHEMA "{name}"')
        body["datasetReference"] = {"projectId": self.project, "datasetId": name}
        body.update(kind="bigquery#dataset", id=f"{self.project}:{name}", location=body.get("location") or "US")
        self.datasets[name] = body  # its options (defaultTableExpirationMs ...), answered by datasets.get
        return web.json_response(body)

    async def _datasets_get(self, request: web.Request) -> web.Response:
        name = request.match_info["dataset"]
        if not self._dataset_exists(name):
            return _error(404, "notFound", f"Not found: Dataset {self.project}:{name}")
        return web.json_response(self.datasets.get(name) or {
            "kind": "bigquery#dataset", "id": f"{self.project}:{name}", "location": "US",
            "datasetReference": {"projectId": self.project, "datasetId": name}})

    async def _tables_get(self, request: web.Request) -> web.Response:
        ds, table = request.match_info["dataset"], request.match_info["table"]
        cols = self.con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_catalog = ? AND "
            "table_schema = ? AND table_name = ? ORDER BY ordinal_position", [self.project, ds, table]).fetchall()
        if not cols:
            return _error(404, "notFound", f"Not found: Table {self.project}:{ds}.{table}")
        return web.json_response({
            "kind": "bigquery#table", "id": f"{self.project}:{ds}.{table}", "type": "TABLE",
            "tableReference": {"projectId": self.project, "datasetId": ds, "tableId": table},
            "schema": {"fields": [{"name": n, "type": bq_type(t), "mode": "NULLABLE"} for n, t in cols]}})

    # --- load jobs ---------------------------------------------------------------------------
    async def _upload_start(self, request: web.Request) -> web.Response:
        if request.query.get("uploadType") != "resumable":
            raise BadRequest("this fake takes resumable uploads only (uploadType=resumable)")
        body = await self._json(request)
        load = (body.get("configuration") or {}).get("load")
        if not isinstance(load, dict):
            raise BadRequest("a load job needs configuration.load")
        dest = load.get("destinationTable") or {}
        if not all(isinstance(dest.get(k), str) and dest[k] for k in ("projectId", "datasetId", "tableId")):
            raise BadRequest("configuration.load.destinationTable needs projectId, datasetId and tableId")
        if load.get("sourceFormat") != "PARQUET":
            raise BadRequest("this fake loads PARQUET only (configuration.load.sourceFormat)")
        for key, allowed in (("writeDisposition", ("WRITE_APPEND", "WRITE_TRUNCATE", "WRITE_EMPTY")),
                             ("createDisposition", ("CREATE_IF_NEEDED", "CREATE_NEVER"))):
            if load.get(key) not in (None,) + allowed:
                raise BadRequest(f"configuration.load.{key}: invalid value {load.get(key)!r}")
        upload_id = uuid.uuid4().hex
        self.uploads[upload_id] = {"job": body, "data": bytearray()}
        location = f"{self.url}/upload/bigquery/v2/projects/{self.project}/jobs?uploadType=resumable&upload_id={upload_id}"
        return web.Response(status=200, headers={"Location": location})

    async def _upload_put(self, request: web.Request) -> web.Response:
        upload = self.uploads.get(request.query.get("upload_id", ""))
        if upload is None:
            return _error(404, "notFound", "no such upload session")
        chunk = await request.read()
        span = request.headers.get("Content-Range", "")
        total = None
        if span.startswith("bytes "):
            rng, _, size = span[6:].partition("/")
            if rng != "*":
                first = int(rng.split("-")[0])
                if first != len(upload["data"]):
                    raise BadRequest("Content-Range does not continue the upload")
            total = None if size == "*" else int(size)
        upload["data"] += chunk
        if total is not None and len(upload["data"]) < total or (total is None and span):
            return web.Response(status=308, headers={"Range": f"bytes=0-{len(upload['data']) - 1}"})
        del self.uploads[request.query["upload_id"]]
        try:
            job = self._new_job(upload["job"])
        except _Conflict as exc:
            return _error(409, "duplicate", str(exc))
        try:
            self._load(job["configuration"]["load"], bytes(upload["data"]))
        except JobError as exc:
            self._fail(job, exc)
        return web.json_response(job)

    def _load(self, load: dict, data: bytes) -> None:
        dest = load["destinationTable"]
        ds, table = dest["datasetId"], dest["tableId"]
        now = time.time()
        recent = [t for t in self.load_jobs.get((ds, table), []) if t > now - 86400]
        self.load_jobs[(ds, table)] = recent + [now]  # a failed load job counts too
        if len(recent) >= self.load_jobs_per_table_day:
            raise JobError("quotaExceeded", f"Quota exceeded: Your table exceeded quota for imports or query "
                                            f"appends per table ({ds}.{table}). For more information, see "
                                            "https://cloud.google.com/bigquery/docs/troubleshoot-quotas")
        if dest["projectId"] != self.project:
            raise JobError("notFound", f"Not found: Project {dest['projectId']}")
        if not self._dataset_exists(ds):
            raise JobError("notFound", f"Not found: Dataset {self.project}:{ds}")
        try:
            arrow = pq.read_table(io.BytesIO(data))
        except (pa.ArrowInvalid, OSError) as exc:
            raise JobError("invalid", f"Error while reading data: not a Parquet file ({exc})") from None
        exists = bool(self.con.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_catalog = ? AND table_schema = ? AND table_name = ?",
            [self.project, ds, table]).fetchall())
        target = f'"{ds}"."{table}"'
        write = load.get("writeDisposition") or "WRITE_APPEND"
        if not exists and load.get("createDisposition") == "CREATE_NEVER":
            raise JobError("notFound", f"Not found: Table {self.project}:{ds}.{table}")
        cur = self._cursor()
        try:
            cur.register("__load", arrow)
            if not exists or write == "WRITE_TRUNCATE":
                cur.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM __load")
            elif write == "WRITE_EMPTY" and cur.execute(f"SELECT COUNT(*) FROM {target}").fetchall()[0][0]:
                raise JobError("duplicate", f"Already Exists: Table {self.project}:{ds}.{table}")
            else:
                have = {r[0] for r in cur.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_catalog = ? AND "
                    "table_schema = ? AND table_name = ?", [self.project, ds, table]).fetchall()}
                unknown = [n for n in arrow.column_names if n not in have]
                if unknown:
                    raise JobError("invalid", f"Provided Schema does not match Table {ds}.{table}. "
                                              f"Cannot add fields (field: {unknown[0]})")
                cur.execute(f"INSERT INTO {target} BY NAME SELECT * FROM __load")
        except duckdb.Error as exc:
            raise JobError(*self._reason(exc)) from None
        finally:
            cur.close()


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class _Conflict(Exception):
    pass
