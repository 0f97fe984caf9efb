"""A Snowflake run killed (`kill -9`) while a write of its state is under way: the next run must
neither wait on what the dead run left open nor lose or repeat rows.

The run talks to its own fakesnow server through a loopback HTTP proxy that sees each statement:
the proxy lets the commit's DELETE of snapshot rows through, holds its answer, and the test kills
the run then, so the kill lands after that DELETE was applied and before the statements that
followed it in the same commit."""
from __future__ import annotations

import gzip
import http.client
import json
import re
import subprocess
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from dinsync.warehouses import connect
from tests.warehouses.support import SF_DATABASE, SF_PASSWORD, FakesnowServer
from tests.warehouses.test_conformance import SYNC, Project, customers, expected_users, only_run

# the commit's DELETE of snapshot rows (not the unsettling's, which names unsettle_<sync>)
COMMIT_DELETE = re.compile(r"^\s*(--[^\n]*\n\s*)*DELETE\s+FROM\s+[^\n]*snap_", re.I)


class HoldingProxy:
    """HTTP proxy to fakesnow on 127.0.0.1. When `armed`, the first statement matching COMMIT_DELETE
    is forwarded, its answer held back, and `reached` set; the connection is closed on `release`."""

    def __init__(self, port: int):
        self.armed, self.reached, self.release = False, threading.Event(), threading.Event()
        self.statements: list[str] = []  # the text of every statement run through the proxy
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hold = False
                if self.path.startswith("/queries/v1/query-request"):
                    raw = gzip.decompress(body) if self.headers.get("Content-Encoding") == "gzip" else body
                    sql = json.loads(raw).get("sqlText", "")
                    proxy.statements.append(sql)
                    hold = proxy.armed and not proxy.reached.is_set() and bool(COMMIT_DELETE.match(sql))
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                conn.close()
                if hold:
                    proxy.reached.set()
                    proxy.release.wait(60)
                    self.close_connection = True
                    return
                self.send_response(answer.status)
                for k, v in answer.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _forward

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class _Target:
    kind = "snowflake"

    def __init__(self, port: int, schema: str, state_schema: str):
        self.port, self.model_schema, self.state_schema = port, schema, state_schema
        self.env = {"DINSYNC_TEST_SF_PASSWORD": SF_PASSWORD}

    def warehouse_yaml(self) -> str:
        return textwrap.dedent(f"""\
            warehouse:
              type: snowflake
              account: fakesnow
              user: dinsync
              password: ${{env:DINSYNC_TEST_SF_PASSWORD}}
              database: {SF_DATABASE}
              schema: {self.model_schema}
              host: 127.0.0.1
              port: {self.port}
              protocol: http
              login_timeout: 20
              network_timeout: 30
            state_schema: {self.state_schema}
            """)


def test_a_run_killed_inside_a_commit_leaves_nothing_the_next_run_waits_on(tmp_path, iterable_sandbox):
    """Before: a commit ran as BEGIN, DELETE, INSERT, COMMIT, each a request of its own; killed after
    the DELETE, the transaction stayed open on the server holding the deleted rows (Snowflake aborts
    it once it has blocked another for 5 idle minutes; fakesnow never does), and the next run's
    DELETE of the same keys waited on it: on fakesnow it failed after network_timeout (forever with
    none set), and so did every later run. Now no Snowflake session holds a transaction between two
    requests: the next run sends the keys whose snapshot rows were deleted again and converges."""
    sandbox, thread = iterable_sandbox
    server = FakesnowServer()
    proxy = HoldingProxy(server.port)
    schema, state = "dsm_killed", "dss_killed"
    wh = connect("snowflake", **server.options())
    proc = None
    try:
        wh.execute(f'CREATE SCHEMA IF NOT EXISTS {SF_DATABASE}."{schema}"')
        project = Project(tmp_path / "project", _Target(proxy.port, schema, state), sandbox, thread)
        project.write()
        rows = 900
        wh.write_arrow(schema, "customers", customers(range(1, rows + 1)), mode="replace")
        first = project.sync()
        assert first["exit_code"] == 0, first

        changed = customers(range(1, rows + 1), plan="pro")
        wh.write_arrow(schema, "customers", changed, mode="replace")
        proxy.armed = True
        proc = project.start()
        assert proxy.reached.wait(90), proc.poll() is None or proc.communicate()
        proc.kill()
        proc.wait(10)
        proxy.release.set()
        proxy.armed = False

        try:
            rerun = project.sync(timeout=100)
        except subprocess.TimeoutExpired:
            raise AssertionError("the run after the killed one did not end within 100 s") from None
        assert rerun["exit_code"] == 0, only_run(rerun).get("error")
        assert only_run(rerun)["failed"] == 0
        expected = expected_users(changed)
        assert project.users() == expected
        snapshot = {r["_key"] for r in wh.query(
            f'SELECT "_key" FROM "{state}"."snap_{SYNC}" WHERE "_synced_at" IS NOT NULL').to_pylist()}
        assert snapshot == set(expected)
        statuses = [r["status"] for r in wh.query(
            f'SELECT status FROM "{state}".runs WHERE sync = :s ORDER BY started_at', {"s": SYNC}).to_pylist()]
        assert statuses == ["success", "abandoned", "success"]
        # no run opened a transaction of its own (one is only ever the statement running)
        assert not [q for q in proxy.statements if re.match(r"\s*(BEGIN|START\s+TRANSACTION|COMMIT)\b", q, re.I)]
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        wh.close()
        proxy.stop()
        server.stop()


def test_a_pause_survives_a_run_killed_between_the_writes_of_its_state(tmp_path, fakesnow, monkeypatch):
    """A sync's state is written as two statements, each committed on its own on Snowflake (see
    above). They were DELETE then INSERT: a run killed between them (here: its second write fails)
    left no row, and a paused sync read as not paused ran again. The new row is written first."""
    from dinsync.state import StateStore
    from dinsync.state.syncstate import SyncStates
    from tests.warehouses.support import WarehouseUnderTest

    t = WarehouseUnderTest("snowflake", tmp_path)
    try:
        store = StateStore(t.wh, t.state_schema)
        store.migrate()
        states = SyncStates(store)
        states.pause("users", by="hand", culprit="hand", reason="held by hand")
        assert killed_after_one_write(monkeypatch, lambda: states.notified("users", "paused")) == 2
        after = states.get("users")
        assert after.paused and after.reason == "held by hand"
        states.notified("users", "paused")
        assert len(t.wh.rows(f'SELECT sync FROM "{t.state_schema}".sync_state')) == 1
    finally:
        t.close()


def test_a_value_of_the_state_survives_a_run_killed_between_the_writes_that_replace_it(tmp_path, fakesnow,
                                                                                      monkeypatch):
    """A `meta` value (a sync's destination, mapping, layout version) is replaced by two statements,
    each committed on its own on Snowflake. They were DELETE then INSERT: a run killed between them
    (here: its second write fails) left the key without a value. UPDATE, then INSERT where no row
    holds the key, leaves the old value or the new one."""
    from dinsync.state import LAYOUT_VERSION, StateStore
    from tests.warehouses.support import WarehouseUnderTest

    t = WarehouseUnderTest("snowflake", tmp_path)
    try:
        store = StateStore(t.wh, t.state_schema)
        store.migrate()
        store.set_meta_value("sync:users:destination", "iterable:a")
        assert killed_after_one_write(
            monkeypatch, lambda: store.set_meta_value("sync:users:destination", "iterable:b")) == 2
        assert store.meta_values("sync:users:destination") in ({"sync:users:destination": "iterable:a"},
                                                               {"sync:users:destination": "iterable:b"})
        store.set_meta_values({"sync:users:destination": "iterable:c", "sync:users:new": "x"})
        assert store.meta_values("sync:users:destination", "sync:users:new") == {
            "sync:users:destination": "iterable:c", "sync:users:new": "x"}
        assert store.layout_version() == LAYOUT_VERSION
    finally:
        t.close()


def killed_after_one_write(monkeypatch, action) -> int:
    """Run `action` with its second statement on Snowflake failing as a kill would leave it (the
    first applied, nothing after it); returns how many statements it reached."""
    from dinsync.warehouses import WarehouseUnavailable
    from dinsync.warehouses.snowflake import SnowflakeWarehouse

    run = SnowflakeWarehouse._run
    seen = []

    def dies_after_one_write(self, sql, params):
        seen.append(sql)
        if len(seen) == 2:
            raise WarehouseUnavailable("Snowflake: the process was killed here")
        return run(self, sql, params)

    monkeypatch.setattr(SnowflakeWarehouse, "_run", dies_after_one_write)
    try:
        action()
    except WarehouseUnavailable:
        pass
    monkeypatch.setattr(SnowflakeWarehouse, "_run", run)
    return len(seen)
