"""A loopback fake of the Databricks SQL Statement Execution API, backed by DuckDB.

It serves what the real `databricks-sdk` calls and what the adapter then downloads:
  GET  /.well-known/databricks-config                   (the SDK asks; `{}`)
  POST /api/2.0/sql/statements                          submit (bearer token required)
  GET  /api/2.0/sql/statements/{id}                     poll
  GET  /api/2.0/sql/statements/{id}/result/chunks/{n}   the links (or rows) of chunk n
  POST /api/2.0/sql/statements/{id}/cancel
  GET  /external/{id}/{n}?sig=...                       a "pre-signed" link: chunk n as an Arrow IPC stream

Rules of the real API it enforces (from the API reference): a bearer token on every API call
(401 otherwise) and NO Authorization header on external links (cloud storage refuses them);
`warehouse_id` and `statement` required; `wait_timeout` 0s or 5s-50s; `ARROW_STREAM` only with
the `EXTERNAL_LINKS` disposition; `INLINE` results at most 25 MiB; statements at most 16 MiB;
parameters named as in the statement, typed, NULL without a value; an unknown catalog or schema
fails the statement; links expire; a link's download is dropped when its client stops reading
for `slow_reader_seconds` (cloud storage does not wait for a reader that stopped: S3 resets such a
connection; off unless set), and the next `cut_downloads` downloads are cut half-way (a connection
reset). A SQL error is HTTP 200 with `status.state: FAILED` and a
Databricks-style message (`[ERROR_CLASS] ... SQLSTATE: xxxxx`).

Databricks going away (`gone_after`, `gone`, `gone_reset`, `gone_hang`): from a request whose body
holds a marker on, every request is answered 503 (or its connection dropped, or never answered),
and the attempts of each request are counted (`gone_requests`, by its method, path and body: the
SDK sends the same request again when it retries).

The answer lost (`cut_after`, `cut_times`): a submitted statement whose text (white space runs as
one space) holds the marker runs to its end, then its connection is dropped instead of answered
(`cut_times` times); the statements it applied are listed in `cut_statements`. The API has no
idempotency key: a submit sent again runs again, as on Databricks.

The SQL (Databricks dialect) is transpiled to DuckDB with sqlglot. XXHASH64 becomes DuckDB's
HASH (twice: see _xxhash64) mapped onto the signed 64-bit range (a stable 64-bit hash, not the
same values), as the Redshift tests do with FNV_HASH. `BEGIN ATOMIC ... END;` runs its statements in one DuckDB
transaction. Statements run one at a time (one DuckDB connection, one lock).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import functools
import decimal
import hashlib
import re
import threading
import time
import uuid
import warnings
from typing import Any

import duckdb
import pyarrow as pa
import sqlglot
from aiohttp import web
from sqlglot import exp

MAX_STATEMENT_BYTES = 16 << 20
MAX_INLINE_BYTES = 25 << 20
_WAIT = re.compile(r"^(\d+)s$")

# parameter type (the API's `type`) -> DuckDB type and Python conversion of the value text
_PARAM_TYPES = {
    "STRING": ("VARCHAR", str), "BIGINT": ("BIGINT", int), "INT": ("INTEGER", int), "SMALLINT": ("SMALLINT", int),
    "BOOLEAN": ("BOOLEAN", lambda v: {"true": True, "false": False}[v.lower()]), "DOUBLE": ("DOUBLE", float),
    "FLOAT": ("FLOAT", float), "DATE": ("DATE", dt.date.fromisoformat),
    "TIMESTAMP": ("TIMESTAMPTZ", dt.datetime.fromisoformat),
}
_DECIMAL = re.compile(r"^DECIMAL\((\d+),\s*(\d+)\)$")
# Arrow type -> Databricks type name of the manifest
_TYPE_NAMES = [
    (pa.types.is_boolean, "BOOLEAN"), (pa.types.is_int8, "BYTE"), (pa.types.is_int16, "SHORT"),
    (pa.types.is_int32, "INT"), (pa.types.is_int64, "LONG"), (pa.types.is_float32, "FLOAT"),
    (pa.types.is_float64, "DOUBLE"), (pa.types.is_date, "DATE"), (pa.types.is_timestamp, "TIMESTAMP"),
    (pa.types.is_decimal, "DECIMAL"), (pa.types.is_binary, "BINARY"), (pa.types.is_null, "NULL"),
]


class SqlFailure(Exception):
    """A statement failed: `message` in Databricks' shape."""


def _xxhash64(tree: exp.Expression) -> exp.Expression:
    """XXHASH64(args) -> DuckDB's HASH(HASH(args)) on the signed 64-bit range, innermost first.
    DuckDB's HASH of several values is XOR-linear in the last one (HASH(a, b) = g(HASH(a)) XOR
    HASH(b)), which xxhash64's chaining of its arguments is not: hashed once more, it is not."""
    nodes = [n for n in tree.find_all(exp.Anonymous) if n.name.upper() == "XXHASH64"]
    for node in sorted(nodes, key=lambda n: n.depth, reverse=True):
        hashed = exp.Anonymous(this="HASH", expressions=[
            exp.Anonymous(this="HASH", expressions=[a.copy() for a in node.expressions])])
        shifted = exp.Sub(this=exp.Cast(this=hashed, to=_duck_type("HUGEINT")),
                          expression=exp.Literal.number("9223372036854775808"))
        new = exp.Cast(this=exp.Paren(this=shifted), to=_duck_type("BIGINT"))
        if node is tree:
            return new
        node.replace(new)
    return tree


@functools.lru_cache(maxsize=64)
def _type(name: str) -> exp.DataType:
    return exp.DataType.build(name, dialect="duckdb")


def _duck_type(name: str) -> exp.DataType:
    return _type(name).copy()


def to_duckdb(sql: str, params: dict[str, tuple[str, Any]] | None = None) -> list[str]:
    """Databricks SQL (one statement, or a `BEGIN ATOMIC ... END;` block) as DuckDB statements;
    `params`: name -> (DuckDB type, value), placeholders become typed DuckDB parameters."""
    types = None if params is None else tuple(sorted((name, duck) for name, (duck, _) in params.items()))
    return list(_transpiled(sql, types))


@functools.lru_cache(maxsize=4096)  # a planner runs the same statements run after run (as bigquery_fake)
def _transpiled(sql: str, types: tuple[tuple[str, str], ...] | None) -> tuple[str, ...]:
    """to_duckdb's work, by the text and the parameters' types (their values are bound apart);
    a refusal (SqlFailure) is raised again each time, never cached."""
    params = None if types is None else dict(types)
    text = sql.strip()
    atomic = re.match(r"^BEGIN\s+ATOMIC\b(.*)\bEND\s*;?\s*$", text, re.S | re.I)
    trees = [t for t in sqlglot.parse(atomic.group(1) if atomic else text, read="databricks") if t is not None]
    if not atomic and len(trees) != 1:
        raise SqlFailure("[PARSE_SYNTAX_ERROR] Syntax error: one statement expected. SQLSTATE: 42601")
    out = []
    for tree in trees:
        tree = _xxhash64(tree)
        for node in list(tree.find_all(exp.Placeholder)):
            name = node.name
            if params is None or name not in params:
                raise SqlFailure(f"[UNBOUND_SQL_PARAMETER] Found the unbound parameter: {name}. SQLSTATE: 42P02")
            node.replace(exp.Cast(this=node.copy(), to=_duck_type(params[name])))
        out.append(tree.sql("duckdb"))
    return tuple(out)


def duckdb_params(items: list[dict] | None) -> dict[str, tuple[str, Any]]:
    """The API's parameter list as name -> (DuckDB type, Python value)."""
    out = {}
    for item in items or []:
        name, kind = item.get("name"), (item.get("type") or "STRING").upper()
        if not name or name in out:
            raise SqlFailure(f"[INVALID_PARAMETER_MARKER_VALUE] parameter {name!r} missing or given twice")
        m = _DECIMAL.match(kind)
        if m:
            duck, conv = f"DECIMAL({m.group(1)}, {m.group(2)})", decimal.Decimal
        elif kind in _PARAM_TYPES:
            duck, conv = _PARAM_TYPES[kind]
        else:
            raise SqlFailure(f"[INVALID_PARAMETER_MARKER_VALUE] unknown parameter type {kind}")
        value = item.get("value")
        try:
            out[name] = (duck, None if value is None else conv(value))
        except (ValueError, KeyError):
            raise SqlFailure(f"[INVALID_PARAMETER_MARKER_VALUE] {value!r} is not a {kind}. SQLSTATE: 22023") from None
    return out


def databricks_message(exc: Exception) -> str:
    """A DuckDB error as Databricks words it."""
    text = " ".join(str(exc).split())
    if isinstance(exc, duckdb.CatalogException):
        if re.search(r"Schema with name .* does not exist", text):
            return f"[SCHEMA_NOT_FOUND] The schema cannot be found. {text} SQLSTATE: 42704"
        if re.search(r"(Table|View) with name .* does not exist", text):
            return f"[TABLE_OR_VIEW_NOT_FOUND] The table or view cannot be found. {text} SQLSTATE: 42P01"
        return f"[UNRESOLVED_ROUTINE] {text} SQLSTATE: 42883"
    if isinstance(exc, duckdb.BinderException) and "column" in text.lower():
        return f"[UNRESOLVED_COLUMN.WITHOUT_SUGGESTION] {text} SQLSTATE: 42703"
    if isinstance(exc, (duckdb.ParserException, sqlglot.errors.ParseError)):
        return f"[PARSE_SYNTAX_ERROR] Syntax error. {text} SQLSTATE: 42601"
    if isinstance(exc, duckdb.ConstraintException):
        return f"[DELTA_VIOLATE_CONSTRAINT_WITH_VALUES] {text} SQLSTATE: 23001"
    if isinstance(exc, duckdb.TransactionException):
        return f"[DELTA_CONCURRENT_APPEND] {text} SQLSTATE: 2D521"
    return f"[INTERNAL_ERROR] {text} SQLSTATE: XX000"


def type_name(t: pa.DataType) -> str:
    for test, name in _TYPE_NAMES:
        if test(t):
            return name
    return "STRING"


class Statement:
    def __init__(self, sid: str, fmt: str, disposition: str):
        self.id, self.format, self.disposition = sid, fmt, disposition
        self.state = "PENDING"
        self.error: str | None = None
        self.table: pa.Table | None = None
        self.chunks: list[tuple[int, pa.Table]] = []  # (row_offset, rows)
        self.done = asyncio.Event()
        self.polls = 0


class DatabricksFake:
    """The fake server. `token`: the one valid bearer token; `chunk_rows`: rows per result chunk
    (small in tests, so results span chunks); `delay`: seconds each statement takes (with a short
    `wait_timeout`, the client polls)."""

    def __init__(self, path: str = ":memory:", *, token: str = "dapi-test-token", catalog: str = "main",
                 warehouse_id: str = "wh0123456789", chunk_rows: int = 1000, delay: float = 0.0,
                 link_ttl: float = 900.0, slow_reader_seconds: float | None = None):
        self.token, self.catalog, self.warehouse_id = token, catalog, warehouse_id
        self.chunk_rows, self.delay, self.link_ttl = chunk_rows, delay, link_ttl
        self.slow_reader_seconds = slow_reader_seconds
        self.dropped_readers = 0
        self.cut_downloads = 0
        self.chunk_gets = 0  # GETs of a chunk's links (/result/chunks/{n})
        self.con = duckdb.connect(path)
        self.con.execute("SET TimeZone = 'UTC'")
        # the SQL warehouse's TIMEZONE (a workspace's SQL configuration parameter; UTC by default): a
        # TIMESTAMP parameter without a zone is read in it, as on Databricks
        self.time_zone = "UTC"
        self.lock = threading.Lock()
        self.statements: dict[str, Statement] = {}
        self.log: list[dict] = []  # submitted statements (SQL, parameters, format, disposition)
        self.link_gets = 0
        # the warehouse going away mid-run (see the module's docstring)
        self.gone_after: str | None = None
        self.gone, self.gone_reset, self.gone_hang = False, False, False
        self.gone_requests: dict[str, int] = {}
        # the answer of an applied statement lost (see the module's docstring)
        self.cut_after: str | None = None
        self.cut_times = 1
        self.cut_statements: list[str] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    # --- server --------------------------------------------------------------------
    async def start(self, port: int = 0) -> str:
        app = web.Application(client_max_size=MAX_STATEMENT_BYTES + (1 << 20), middlewares=[self._going_away])
        app.router.add_get("/.well-known/databricks-config", self.well_known)
        app.router.add_post("/api/2.0/sql/statements", self.submit)
        app.router.add_post("/api/2.0/sql/statements/", self.submit)
        app.router.add_get("/api/2.0/sql/statements/{id}", self.poll)
        app.router.add_get("/api/2.0/sql/statements/{id}/result/chunks/{n}", self.chunk)
        app.router.add_post("/api/2.0/sql/statements/{id}/cancel", self.cancel)
        app.router.add_get("/external/{id}/{n}", self.external)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        with self.lock:  # a statement still running on a worker thread finishes first (DuckDB 2
            self.con.close()  # refuses to close a connection that is busy in another thread)

    @web.middleware
    async def _going_away(self, request: web.Request, handler):
        body = await request.read() if request.body_exists else b""
        if self.gone_after is not None and not self.gone:
            self.gone = self.gone_after.encode() in body
        if not self.gone:
            return await handler(request)
        return await self._gone(request, body)

    async def _gone(self, request: web.Request, body: bytes) -> web.Response:
        rid = f"{request.method} {request.path_qs} {hashlib.sha256(body).hexdigest()[:12]}"
        self.gone_requests[rid] = self.gone_requests.get(rid, 0) + 1
        while self.gone_hang:  # (until the test brings the fake back: its server stops at once then)
            await asyncio.sleep(0.05)
        if self.gone_reset and request.transport is not None:
            request.transport.abort()  # the connection dropped, no answer
        return self._error(503, "TEMPORARILY_UNAVAILABLE", "The service is temporarily unavailable.")

    async def well_known(self, request: web.Request) -> web.Response:
        return web.json_response({})

    @staticmethod
    def _error(status: int, code: str, message: str) -> web.Response:
        return web.json_response({"error_code": code, "message": message}, status=status)

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    # --- API -------------------------------------------------------------------------
    def load(self, schema: str, table: str, data: pa.Table) -> None:
        """Create (or replace) a table with `data` (test fixtures; not through the API)."""
        with self.lock:
            cur = self.con.cursor()
            try:
                cur.register("_fixture", data)
                cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                cur.execute(f'CREATE OR REPLACE TABLE "{schema}"."{table}" AS SELECT * FROM _fixture')
                cur.unregister("_fixture")
            finally:
                cur.close()

    async def submit(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._error(401, "UNAUTHENTICATED", "Invalid access token.")
        try:
            body = await request.json()
        except ValueError:
            return self._error(400, "MALFORMED_REQUEST", "the body is not JSON")
        sql, wh = body.get("statement"), body.get("warehouse_id")
        if not isinstance(sql, str) or not sql.strip() or not wh:
            return self._error(400, "INVALID_PARAMETER_VALUE", "statement and warehouse_id are required")
        if wh != self.warehouse_id:
            return self._error(404, "RESOURCE_DOES_NOT_EXIST", f"SQL warehouse {wh} does not exist.")
        if len(sql.encode()) > MAX_STATEMENT_BYTES:
            return self._error(400, "INVALID_PARAMETER_VALUE", "the statement is larger than 16 MiB")
        fmt, disposition = body.get("format", "JSON_ARRAY"), body.get("disposition", "INLINE")
        if fmt not in ("JSON_ARRAY", "ARROW_STREAM", "CSV") or disposition not in ("INLINE", "EXTERNAL_LINKS"):
            return self._error(400, "INVALID_PARAMETER_VALUE", "unknown format or disposition")
        if fmt != "JSON_ARRAY" and disposition != "EXTERNAL_LINKS":
            return self._error(400, "INVALID_PARAMETER_VALUE",
                               f"{fmt} format is only supported with the EXTERNAL_LINKS disposition")
        wait = _WAIT.match(body.get("wait_timeout", "10s"))
        seconds = int(wait.group(1)) if wait else -1
        if not (seconds == 0 or 5 <= seconds <= 50):
            return self._error(400, "INVALID_PARAMETER_VALUE", "wait_timeout must be 0s or between 5s and 50s")
        st = Statement(uuid.uuid4().hex, fmt, disposition)
        self.statements[st.id] = st
        self.log.append({"statement": sql, "parameters": body.get("parameters"), "format": fmt,
                         "disposition": disposition, "catalog": body.get("catalog"), "schema": body.get("schema")})
        task = asyncio.get_running_loop().run_in_executor(
            None, self._execute, st, sql, body.get("parameters"), body.get("catalog"), body.get("schema"))
        task.add_done_callback(lambda _: st.done.set())
        if seconds:
            try:
                await asyncio.wait_for(asyncio.shield(st.done.wait()), seconds)
            except asyncio.TimeoutError:
                if body.get("on_wait_timeout") == "CANCEL":
                    st.state = "CANCELED"
        if (self.cut_after is not None and self.cut_times > 0 and self.cut_after in " ".join(sql.split())
                and request.transport):
            await st.done.wait()  # applied; its answer never arrives
            self.cut_times -= 1
            self.cut_statements.append(sql)
            request.transport.abort()
        return web.json_response(self._response(st, request))

    async def poll(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._error(401, "UNAUTHENTICATED", "Invalid access token.")
        st = self.statements.get(request.match_info["id"])
        if st is None:
            return self._error(404, "RESOURCE_DOES_NOT_EXIST", "no such statement")
        st.polls += 1
        return web.json_response(self._response(st, request))

    async def cancel(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._error(401, "UNAUTHENTICATED", "Invalid access token.")
        st = self.statements.get(request.match_info["id"])
        if st is not None and st.state in ("PENDING", "RUNNING"):
            st.state = "CANCELED"
        return web.json_response({})

    async def chunk(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._error(401, "UNAUTHENTICATED", "Invalid access token.")
        st = self.statements.get(request.match_info["id"])
        n = int(request.match_info["n"])
        if st is None or st.state != "SUCCEEDED" or not 0 <= n < len(st.chunks):
            return self._error(404, "RESOURCE_DOES_NOT_EXIST", "no such result chunk")
        self.chunk_gets += 1
        return web.json_response(self._result(st, n, request))

    async def external(self, request: web.Request) -> web.StreamResponse:
        if "Authorization" in request.headers:  # as S3 / ADLS / GCS answer a stray token
            return web.Response(status=400, text="<Error><Code>InvalidArgument</Code><Message>Only one auth "
                                                 "mechanism allowed</Message></Error>")
        st = self.statements.get(request.match_info["id"])
        n = int(request.match_info["n"])
        expires = float(request.query.get("expires", "0"))
        if st is None or request.query.get("sig") != self._signature(st.id, n, expires):
            return web.Response(status=403, text="<Error><Code>AccessDenied</Code></Error>")
        if time.time() > expires:
            return web.Response(status=403, text="<Error><Code>AccessDenied</Code><Message>Request has expired"
                                                 "</Message></Error>")
        self.link_gets += 1
        sink = pa.BufferOutputStream()
        rows = st.chunks[n][1]
        with pa.ipc.new_stream(sink, rows.schema) as writer:
            writer.write_table(rows, max_chunksize=max(1, self.chunk_rows // 4))
        body = sink.getvalue().to_pybytes()
        cut = self.cut_downloads > 0
        self.cut_downloads -= cut
        if self.slow_reader_seconds is None and not cut:
            return web.Response(body=body, content_type="application/vnd.apache.arrow.stream")
        resp = web.StreamResponse(headers={"Content-Type": "application/vnd.apache.arrow.stream"})
        resp.content_length = len(body)
        await resp.prepare(request)
        for at in range(0, len(body), 1 << 16):
            if cut and at >= len(body) // 2:
                request.transport.abort()
                return resp
            try:  # (a write waits once the client's socket buffers are full: it stopped reading)
                await asyncio.wait_for(resp.write(body[at:at + (1 << 16)]), self.slow_reader_seconds or None)
            except asyncio.TimeoutError:
                self.dropped_readers += 1
                request.transport.abort()
                return resp
        await resp.write_eof()
        return resp

    def _signature(self, sid: str, n: int, expires: float) -> str:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"{sid}/{n}/{expires:.0f}/{self.token}").hex

    # --- execution ---------------------------------------------------------------------
    def _execute(self, st: Statement, sql: str, items, catalog, schema) -> None:
        st.state = "RUNNING"
        if self.delay:
            time.sleep(self.delay)
        try:
            if catalog not in (None, self.catalog):
                raise SqlFailure(f"[NO_SUCH_CATALOG_EXCEPTION] Catalog '{catalog}' was not found. SQLSTATE: 42704")
            params = duckdb_params(items)
            statements = to_duckdb(sql, params)
            with self.lock:
                cur = self.con.cursor()
                try:
                    cur.execute(f"SET TimeZone = '{self.time_zone}'")
                    if schema:
                        if not cur.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = ?",
                                           [schema]).fetchall():
                            raise SqlFailure(f"[SCHEMA_NOT_FOUND] The schema `{schema}` cannot be found. "
                                             "SQLSTATE: 42704")
                        cur.execute(f"SET schema = '{schema}'")
                    table = self._run(cur, statements, params)
                finally:
                    cur.close()
        except SqlFailure as exc:
            st.state, st.error = "FAILED", str(exc)
            return
        except (duckdb.Error, sqlglot.errors.SqlglotError) as exc:
            st.state, st.error = "FAILED", databricks_message(exc)
            return
        except Exception as exc:  # noqa: BLE001 - a bug of the fake: a failed statement, never a hang
            st.state, st.error = "FAILED", f"[INTERNAL_ERROR] fake: {type(exc).__name__}: {exc} SQLSTATE: XX000"
            return
        if st.state == "CANCELED":
            return
        if st.disposition == "INLINE" and table.nbytes > MAX_INLINE_BYTES:
            st.state, st.error = "FAILED", "[INLINE_RESULT_TOO_LARGE] the result exceeds 25 MiB. SQLSTATE: 54000"
            return
        st.table = table
        st.chunks = [(off, table.slice(off, self.chunk_rows)) for off in range(0, table.num_rows, self.chunk_rows)]
        st.state = "SUCCEEDED"

    @staticmethod
    def _run(cur, statements: list[str], params: dict) -> pa.Table:
        """Run the statements (several: one transaction); the result of the last one."""
        def run(sql: str) -> pa.Table:
            used = {n: v for n, (_, v) in params.items() if f"${n}" in sql}
            cur.execute(sql, used or None)
            if cur.description is None:
                return pa.table({})
            if [d[0] for d in cur.description] == ["Count"]:  # DML: Databricks answers num_affected_rows
                return pa.table({"num_affected_rows": pa.array([r[0] for r in cur.fetchall()], pa.int64())})
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # (the extra copy is fine for a test server)
                return cur.to_arrow_table()

        if len(statements) == 1:
            return run(statements[0])
        cur.execute("BEGIN TRANSACTION")
        try:
            for sql in statements:
                result = run(sql)
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")
        return result

    # --- answers -----------------------------------------------------------------------
    def _response(self, st: Statement, request: web.Request) -> dict:
        out: dict[str, Any] = {"statement_id": st.id, "status": {"state": st.state}}
        if st.state == "FAILED":
            code = re.search(r"SQLSTATE: (\w{5})", st.error or "")
            out["status"]["error"] = {"error_code": "BAD_REQUEST", "message": st.error}
            if code:
                out["status"]["sql_state"] = code.group(1)
        if st.state != "SUCCEEDED":
            return out
        table = st.table
        fields = table.schema
        out["manifest"] = {
            "format": st.format,
            "schema": {"column_count": len(fields), "columns": [
                {"name": f.name, "position": i, "type_name": type_name(f.type), "type_text": type_name(f.type),
                 **({"type_precision": f.type.precision, "type_scale": f.type.scale}
                    if pa.types.is_decimal(f.type) else {})}
                for i, f in enumerate(fields)]},
            "total_row_count": table.num_rows,
            "total_chunk_count": len(st.chunks),
            "chunks": [{"chunk_index": i, "row_offset": off, "row_count": rows.num_rows}
                       for i, (off, rows) in enumerate(st.chunks)],
            "truncated": False,
        }
        if st.chunks:
            out["result"] = self._result(st, 0, request)
        elif st.disposition == "INLINE":
            out["result"] = {"chunk_index": 0, "row_offset": 0, "row_count": 0, "data_array": []}
        return out

    def _result(self, st: Statement, n: int, request: web.Request) -> dict:
        off, rows = st.chunks[n]
        nxt = n + 1 if n + 1 < len(st.chunks) else None
        base = {"chunk_index": n, "row_offset": off, "row_count": rows.num_rows}
        if st.disposition == "INLINE":
            data = [[None if v is None else (str(v).lower() if isinstance(v, bool) else str(v)) for v in row.values()]
                    for row in rows.to_pylist()]
            return {**base, "data_array": data,
                    **({"next_chunk_index": nxt,
                        "next_chunk_internal_link": f"/api/2.0/sql/statements/{st.id}/result/chunks/{nxt}"}
                       if nxt is not None else {})}
        expires = time.time() + self.link_ttl
        link = {**base, "byte_count": rows.nbytes,
                "external_link": f"{self.url}/external/{st.id}/{n}?expires={expires:.0f}"
                                 f"&sig={self._signature(st.id, n, float(f'{expires:.0f}'))}",
                "expiration": dt.datetime.fromtimestamp(expires, dt.timezone.utc).isoformat().replace("+00:00", "Z")}
        if nxt is not None:
            link["next_chunk_index"] = nxt
            link["next_chunk_internal_link"] = f"/api/2.0/sql/statements/{st.id}/result/chunks/{nxt}"
        return {**base, "external_links": [link]}
