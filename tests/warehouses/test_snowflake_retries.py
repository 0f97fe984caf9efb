"""Snowflake requests that keep failing: the connector retries a request answered 5xx (or reset)
without end unless `network_timeout` is set, and that option also cancels any statement running
longer than it. dinsync bounds the retries only (`retry_seconds`, a backoff policy that gives up):
a failing statement ends the run with a transient error, a long statement the server is running
(the connector polls its status) is never cancelled.

The warehouse talks to fakesnow through a loopback proxy that can answer a statement's requests
with HTTP 500, or answer "in progress" to it (and its status polls) for a while before its result."""
from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dinsync.warehouses import WarehouseUnavailable, connect

from tests.warehouses.support import SF_DATABASE, SF_PASSWORD, fakesnow_server


class _QuietServer(ThreadingHTTPServer):
    """A client that gave up on an answer (a connector's timeout, the run stopped) closes its
    connection while the proxy writes: expected here, not a traceback in the test log."""

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FaultyProxy:
    """HTTP proxy to fakesnow on 127.0.0.1. A statement whose text contains `fail` is answered 500
    `fail_times` times (None: always), or its connection closed unanswered with `reset`; one
    containing `slow` is answered "in progress", as Snowflake answers a statement still running,
    and so are its status polls, until `slow_seconds` have passed (or the client aborts it).
    One containing `cut_after` is run by fakesnow, then its connection closed unanswered (`cut_times`
    times; `cut_statements` lists them): its answer lost. The connector sends a request again with
    its requestId (and `retryCount`); with `dedup` (as Snowflake: fakesnow has no such memory) a
    requestId answered before is answered the same again, not run again. `query_requests`: the
    (requestId, retryCount, SQL) of every statement."""

    def __init__(self, port: int):
        self.fail, self.fail_times, self.failed, self.reset = None, None, 0, False
        self.hang = False  # with `fail`: the request is never answered (until hang is cleared)
        self.fail_logins = 0  # logins to answer 500
        self.gone_after, self.gone = None, False  # once a statement contains gone_after: every request 500
        self.gone_requests: dict[str, int] = {}  # while gone: request id -> attempts
        self.slow, self.slow_seconds, self.polls = None, 0.0, 0
        self.results: dict[str, tuple[float, bytes]] = {}  # query id -> (ready at, fakesnow's answer)
        self.cancelled: set[str] = set()  # query ids the client aborted
        self.cut_after, self.cut_times, self.cut_statements = None, 1, []  # the answer lost (see above)
        self.dedup, self.answered = True, {}  # requestId -> (status, answer, headers) of fakesnow
        self.query_requests: list[tuple[str, str | None, str]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _answer(self, status: int, data: bytes, headers=()) -> None:
                self.send_response(status)
                for k, v in headers:
                    if k.lower() not in ("transfer-encoding", "connection", "content-length", "content-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _gone(self):
                rid = next((q[len("requestId="):] for q in self.path.partition("?")[2].split("&")
                            if q.startswith("requestId=")), self.path)
                proxy.gone_requests[rid] = proxy.gone_requests.get(rid, 0) + 1
                return self._answer(500, b"{}")

            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.split("?")[0]
                if path.startswith("/queries/v1/abort-request") and proxy.results:
                    proxy.cancelled.update(proxy.results)  # (fakesnow has nothing running to abort)
                    return self._answer(200, json.dumps({"success": True, "data": None}).encode())
                if path.startswith("/queries/") and path.endswith("/result") and path.split("/")[2] in proxy.results:
                    proxy.polls += 1
                    qid = path.split("/")[2]
                    ready_at, data = proxy.results[qid]
                    if qid in proxy.cancelled:
                        return self._answer(200, json.dumps({
                            "success": False, "code": "000604", "message": "SQL execution canceled",
                            "data": {"queryId": qid, "errorCode": "000604", "sqlState": "57014"}}).encode())
                    if time.monotonic() < ready_at:
                        time.sleep(0.5)
                        return self._answer(200, proxy.in_progress(path.split("/")[2]))
                    return self._answer(200, data)
                if proxy.gone:
                    return self._gone()
                if path.startswith("/session/v1/login-request") and proxy.fail_logins:
                    proxy.fail_logins -= 1
                    return self._answer(500, b"{}")
                sql, rid = "", None
                if path.startswith("/queries/v1/query-request"):
                    raw = gzip.decompress(body) if self.headers.get("Content-Encoding") == "gzip" else body
                    sql = json.loads(raw).get("sqlText", "")
                    query = dict(q.partition("=")[::2] for q in self.path.partition("?")[2].split("&"))
                    rid = query.get("requestId")
                    proxy.query_requests.append((rid, query.get("retryCount"), sql))
                    if proxy.dedup and rid in proxy.answered:  # sent again: answered, not run again
                        return self._answer(*proxy.answered[rid])
                    if proxy.gone_after and proxy.gone_after in sql:
                        proxy.gone = True
                        return self._gone()
                    if proxy.fail and proxy.fail in sql and (proxy.fail_times is None
                                                             or proxy.failed < proxy.fail_times):
                        proxy.failed += 1
                        while proxy.hang:  # no answer at all
                            time.sleep(0.05)
                        if proxy.reset:  # the connection dropped, no answer
                            self.close_connection = True
                            return None
                        return self._answer(500, b"{}")
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                conn.close()
                if answer.getheader("Content-Encoding") == "gzip":
                    data = gzip.decompress(data)
                if rid is not None:
                    proxy.answered[rid] = (answer.status, data, answer.getheaders())
                if proxy.cut_after and proxy.cut_after in sql and proxy.cut_times > 0:
                    proxy.cut_times -= 1
                    proxy.cut_statements.append(sql)
                    self.close_connection = True  # run; its answer lost
                    return None
                if proxy.slow and proxy.slow in sql and answer.status == 200:
                    qid = str(uuid.uuid4())
                    proxy.results[qid] = (time.monotonic() + proxy.slow_seconds, data)
                    return self._answer(200, proxy.in_progress(qid))
                self._answer(answer.status, data, answer.getheaders())

            do_GET = do_POST = _forward

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @staticmethod
    def in_progress(qid: str) -> bytes:
        return json.dumps({"code": "333333", "success": True, "message": "query in progress",
                           "data": {"queryId": qid, "getResultUrl": f"/queries/{qid}/result"}}).encode()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def proxy():
    server = fakesnow_server()
    p = FaultyProxy(server.port)
    yield p
    p.stop()


def _warehouse(proxy: FaultyProxy, **options):
    base = {"account": "fakesnow", "user": "dinsync", "password": SF_PASSWORD, "database": SF_DATABASE,
            "host": "127.0.0.1", "port": proxy.port, "protocol": "http", "login_timeout": 5}
    return connect("snowflake", **{**base, **options})


def _in_thread(fn, seconds: float):
    """fn's outcome ("ok", value) or ("error", exception), or None when it had not ended in time."""
    out: list = []

    def run():
        try:
            out.append(("ok", fn()))
        except Exception as exc:  # noqa: BLE001
            out.append(("error", exc))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    return out[0] if out else None


@pytest.mark.parametrize("reset", [False, True], ids=["http-500", "reset"])
def test_a_statement_failing_every_time_fails_within_the_retry_budget(proxy, reset):
    """Before: with network_timeout unset (the default) the connector retried the request without
    end, and the run never ended. Now it is retried for `retry_seconds`, then fails as transient."""
    wh = _warehouse(proxy, retry_seconds=3)
    try:
        proxy.fail, proxy.reset = "fail_me", reset
        started = time.monotonic()
        outcome = _in_thread(lambda: wh.query("SELECT 1 AS fail_me"), 60)
        if outcome is None:
            proxy.fail = None  # let the stuck request end
        assert outcome is not None, "the statement was still being retried after 60 s"
        kind, exc = outcome
        assert kind == "error" and isinstance(exc, WarehouseUnavailable), outcome
        assert proxy.failed >= 2  # retried, then given up
        assert time.monotonic() - started < 3 + 20  # the budget, and at most one backoff sleep after it
        assert "kept failing for 3 s" in str(exc), str(exc)  # (login_timeout, 5, bounds the login only)
        assert reset or "HTTP 500" in str(exc), str(exc)
        assert "retry_seconds" in exc.hint
        assert SF_PASSWORD not in str(exc)
        proxy.fail = None
        assert wh.query("SELECT 2 AS fail_me").to_pylist() == [{"fail_me": 2}]  # the session still works
    finally:
        proxy.fail = None
        wh.close()



def test_a_statement_fakesnow_cannot_run_ends(proxy):
    """fakesnow answers 500 to a statement it fails on outside its SQL translation (here: PARSE_JSON
    of text that is not JSON, 0.12.1): the statement ends with an error instead of being retried
    without end."""
    wh = _warehouse(proxy, retry_seconds=3, login_timeout=3)
    try:
        outcome = _in_thread(lambda: wh.query("SELECT PARSE_JSON('{bad') AS j"), 60)
        assert outcome is not None, "the statement was still being retried after 60 s"
        assert outcome[0] == "error", outcome
        assert wh.query("SELECT 1 AS one").to_pylist() == [{"one": 1}]
    finally:
        wh.close()

def test_a_statement_answered_500_a_few_times_is_retried_until_it_succeeds(proxy):
    wh = _warehouse(proxy, retry_seconds=60)
    try:
        proxy.fail, proxy.fail_times = "flaky", 2
        assert wh.query("SELECT 7 AS flaky").to_pylist() == [{"flaky": 7}]
        assert proxy.failed == 2
    finally:
        wh.close()



def test_a_login_is_retried_for_login_timeout_not_retry_seconds(proxy):
    """The policy bounds every request of the connection; a login keeps its own bound, login_timeout."""
    proxy.fail_logins = 1  # (the connector gives a login 2 attempts)
    wh = _warehouse(proxy, retry_seconds=1, login_timeout=20)
    try:
        assert proxy.fail_logins == 0
        assert wh.query("SELECT 3 AS three").to_pylist() == [{"three": 3}]
    finally:
        wh.close()

def test_a_statement_running_longer_than_the_retry_budget_is_not_cancelled(proxy):
    """A long statement is answered "in progress" and its status polled: each poll is a request of
    its own, so the retry budget never caps how long a statement runs (network_timeout would: the
    connector cancels a statement running longer than it)."""
    wh = _warehouse(proxy, retry_seconds=2)
    try:
        proxy.slow, proxy.slow_seconds = "slow_one", 7
        started = time.monotonic()
        outcome = _in_thread(lambda: wh.query("SELECT 5 AS slow_one"), 60)
        assert outcome == ("ok", outcome[1]) and outcome[1].to_pylist() == [{"slow_one": 5}], outcome
        assert time.monotonic() - started >= 7
        assert proxy.polls >= 3
    finally:
        wh.close()



def test_network_timeout_still_bounds_the_retries_and_cancels_a_longer_statement(proxy):
    """What network_timeout does when set is kept: the connector stops retrying after it (sooner
    than retry_seconds here) and cancels a statement running longer than it. Before, its giving up
    on HTTP 500 was a WarehouseSqlError ("fix the model's SQL"), not a transient error."""
    wh = _warehouse(proxy, network_timeout=3, login_timeout=3, retry_seconds=600)
    try:
        proxy.fail = "fail_me"
        outcome = _in_thread(lambda: wh.query("SELECT 1 AS fail_me"), 60)
        proxy.fail = None
        assert outcome is not None and outcome[0] == "error", outcome
        assert isinstance(outcome[1], WarehouseUnavailable), outcome
        assert "kept failing" not in str(outcome[1])  # the connector's own bound, not retry_seconds
        proxy.slow, proxy.slow_seconds = "slow_one", 30
        outcome = _in_thread(lambda: wh.query("SELECT 5 AS slow_one"), 60)
        assert outcome is not None and outcome[0] == "error", outcome
        assert "cancelled by the client due to a timeout" in str(outcome[1]), outcome
        assert proxy.cancelled
    finally:
        proxy.fail = proxy.slow = None
        wh.close()


@contextlib.contextmanager
def _proxied_project(proxy: FaultyProxy, tmp_path, iterable_sandbox, schema: str, retry_seconds: float,
                     in_process: bool = False):
    """A conformance Project of 20 customers on Snowflake (fakesnow) through `proxy`, in `schema`,
    its requests retried for `retry_seconds` (its syncs in this process with `in_process`: see
    Project); its schemas dropped and the proxy's faults cleared after."""
    from tests.warehouses.test_conformance import Project, customers

    class Target:
        kind = "snowflake"
        env = {"DINSYNC_TEST_SF_PASSWORD": SF_PASSWORD}

        def warehouse_yaml(self) -> str:
            return textwrap.dedent(f"""\
                warehouse:
                  type: snowflake
                  account: fakesnow
                  user: dinsync
                  password: ${{env:DINSYNC_TEST_SF_PASSWORD}}
                  database: {SF_DATABASE}
                  schema: {schema}
                  host: 127.0.0.1
                  port: {proxy.port}
                  protocol: http
                  login_timeout: 5
                  retry_seconds: {retry_seconds:g}
                state_schema: {schema}_state
                """)

    sandbox, thread = iterable_sandbox
    wh = _warehouse(proxy)
    try:
        wh.execute(f'CREATE SCHEMA IF NOT EXISTS {SF_DATABASE}."{schema}"')
        wh.write_arrow(schema, "customers", customers(range(1, 21)), mode="replace")
        project = Project(tmp_path / "project", Target(), sandbox, thread, in_process=in_process)
        project.write()
        yield project
    finally:
        proxy.fail, proxy.gone_after, proxy.gone = None, None, False
        with contextlib.suppress(Exception):
            wh.execute(f'DROP SCHEMA IF EXISTS {SF_DATABASE}."{schema}" CASCADE')
            wh.execute(f'DROP SCHEMA IF EXISTS {SF_DATABASE}."{schema}_state" CASCADE')
        wh.close()


def test_a_sync_whose_model_query_fails_every_time_ends_with_a_transient_error(tmp_path, iterable_sandbox, proxy):
    """`dinsync sync` through the proxy, its model's statements answered 500: before, the run never
    ended (network_timeout unset); now it exits 1 with the retries' error and a hint, and the next
    run, once Snowflake answers again, delivers everything."""
    from tests.warehouses.test_conformance import customers, expected_users, only_run

    with _proxied_project(proxy, tmp_path, iterable_sandbox, "dsm_retries", retry_seconds=5) as project:
        proxy.fail = "from customers"
        try:
            failed = project.sync(timeout=90)
        except subprocess.TimeoutExpired:
            raise AssertionError("the sync was still retrying after 90 s") from None
        assert failed["exit_code"] == 1, failed
        # (the model is first read before any run starts: the command's error, not a run's)
        assert "kept failing for 5 s" in json.dumps(failed) and "retry_seconds" in json.dumps(failed), failed
        assert SF_PASSWORD not in json.dumps(failed) + failed["stderr"]
        assert proxy.failed >= 2 and project.users() == {}
        proxy.fail = None
        again = project.sync(timeout=120)
        assert again["exit_code"] == 0, only_run(again).get("error")
        assert project.users() == expected_users(customers(range(1, 21)))


def test_after_a_request_gave_up_the_next_failing_ones_are_not_retried_until_one_gets_through(proxy):
    """Before: each request retried for the whole budget, also after an earlier one had given up; a
    run whose warehouse went away (retry_seconds: 10) ended 70 s after it, its later writes (the
    checkpoint, the run log's end, the sync's state, the lock's release) each retried 10 s again.
    Counted in attempts: the first request is retried, the next failing ones are tried once, and
    once a request gets through a failing one is retried again."""
    wh = _warehouse(proxy, retry_seconds=2)
    try:
        proxy.fail = "fail_me"
        with pytest.raises(WarehouseUnavailable, match="kept failing for 2 s"):
            wh.query("SELECT 1 AS fail_me")
        assert proxy.failed >= 2  # retried for the budget
        for sql in ("SELECT 2 AS fail_me", "INSERT INTO fail_me VALUES (1)"):
            proxy.failed = 0
            with pytest.raises(WarehouseUnavailable, match="was not retried") as caught:
                wh.execute(sql)
            assert proxy.failed == 1, (sql, proxy.failed)  # tried once
            assert "retry_seconds" in caught.value.hint
        proxy.fail = None
        assert wh.query("SELECT 3 AS three").to_pylist() == [{"three": 3}]  # the warehouse is back
        proxy.fail, proxy.failed = "fail_me", 0
        with pytest.raises(WarehouseUnavailable, match="kept failing for 2 s"):
            wh.query("SELECT 4 AS fail_me")
        assert proxy.failed >= 2  # a new outage: the budget again
    finally:
        proxy.fail = None
        wh.close()


def test_after_requests_got_no_answer_the_next_ones_are_not_sent_until_a_budget_passed(proxy, monkeypatch):
    """Snowflake (or the way to it) stops answering at all: each attempt waits the connector's
    socket timeout (60 s). Before: once the first request had given up, each later write of the run
    (the checkpoint, the run log's end, the sync's state, the lock's release) was still sent once
    and waited 60 s for nothing. Now, while such an outage lasts (retry_seconds), they fail at once,
    unsent; then a request is sent again. (The socket timeout is cut to 2 s here.)"""
    import snowflake.connector.network as network

    wh = _warehouse(proxy, retry_seconds=2)
    monkeypatch.setattr(network, "DEFAULT_SOCKET_CONNECT_TIMEOUT", 2)
    try:
        proxy.fail, proxy.hang = "hang_me", True
        with pytest.raises(WarehouseUnavailable, match="kept failing for 2 s") as first:
            wh.query("SELECT 1 AS hang_me")
        assert proxy.failed >= 1
        assert "retry_seconds" in first.value.hint
        for sql in ("SELECT 2 AS hang_me", "INSERT INTO hang_me VALUES (1)"):
            proxy.failed = 0
            with pytest.raises(WarehouseUnavailable, match="not sent") as caught:
                wh.execute(sql)
            assert proxy.failed == 0, (sql, proxy.failed)  # not sent
            assert "retry_seconds" in caught.value.hint
        proxy.fail, proxy.hang = None, False
        wh._outage.since -= 3600  # (a budget later: sent again)
        assert wh.query("SELECT 3 AS three").to_pylist() == [{"three": 3}]
    finally:
        proxy.fail, proxy.hang = None, False
        wh.close()


def test_a_run_whose_warehouse_goes_away_retries_for_one_budget_not_one_per_write(tmp_path, iterable_sandbox, proxy):
    """Snowflake gone for good mid-run (every request answered 500 from the first write of the
    acknowledged keys on). Before: the write gave up after the budget, then each later write of the
    run (the checkpoint, the run log's end, the sync's state, the lock's release) was retried for
    the budget again (retry_seconds: 10, the process ended 70 s after; 14 minutes with the default).
    Now only the first failing request is retried; the run fails with its error. Counted in
    attempts per request (the connector keeps a request's id across its retries)."""
    with _proxied_project(proxy, tmp_path, iterable_sandbox, "dsm_gone", retry_seconds=3) as project:
        proxy.gone_after = "FLATTEN"  # the first write of acknowledged keys
        try:
            failed = project.sync(timeout=120)
        except subprocess.TimeoutExpired:
            raise AssertionError("the sync was still retrying after 120 s") from None
        assert proxy.gone, "the run never wrote acknowledged keys"
        assert failed["exit_code"] != 0, failed
        assert "kept failing for 3 s" in json.dumps(failed), failed  # the first failure's error
        assert SF_PASSWORD not in json.dumps(failed) + failed["stderr"]
        retried = {rid: n for rid, n in proxy.gone_requests.items() if n > 1}
        assert len(retried) == 1, proxy.gone_requests  # the first failing request only
