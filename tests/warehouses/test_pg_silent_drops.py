"""PostgreSQL (and Redshift, which shares its sessions) when the network drops a connection's
packets without a reset (a NAT, firewall or load balancer timeout): before, dinsync set none of
libpq's TCP bounds, so a statement waited for the kernel's retransmission timeout (~15 minutes)
and an idle session for its keepalive default (2 hours), the run stuck meanwhile. Now every
connection (the sessions, the plan's stream) gives such a server up after `tcp_timeout` seconds.

What is checked is what the kernel is told: the socket options of every connection of a warehouse
(through a loopback proxy, tests/warehouses/pg_proxy.py, whose port tells them apart). A blackhole
on loopback cannot show the bound at work: the proxy's kernel acknowledges the client's statement
and answers its keepalive probes, whatever the proxy forwards; tests/warehouses/test_pg_blackhole.py
shows it through network namespaces (root only)."""
from __future__ import annotations

import json
import os
import socket
import threading
import time

import pytest

from dinsync.warehouses import WarehouseUnavailable, connect
from tests.warehouses.pg_proxy import PgProxy
from tests.warehouses.support import require_postgres


@pytest.fixture
def proxy():
    require_postgres()
    p = PgProxy()
    yield p
    p.stop()


def _tcp_options_to(port: int) -> list[dict[str, int]]:
    """The TCP options of every socket of this process connected to 127.0.0.1:`port`."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            dup = os.dup(int(name))
        except OSError:
            continue
        try:
            s = socket.socket(fileno=dup)
        except OSError:
            os.close(dup)
            continue
        with s:
            try:
                if s.family != socket.AF_INET or s.type != socket.SOCK_STREAM or s.getpeername()[1] != port:
                    continue
            except OSError:
                continue
            found.append({
                "keepalive": s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                "idle": s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                "interval": s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                "count": s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
                "user_timeout": s.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
            })
    return found


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


@pytest.mark.parametrize("kind", ["postgres", "redshift"])
def test_every_connection_gives_up_a_silent_server_after_tcp_timeout(proxy, kind):
    """The sessions of two threads and the plan's stream (ADBC's connection on PostgreSQL, a psycopg
    one on Redshift): keepalive probes after a part of the bound, and unacknowledged data given up
    after it. Before: keepalives after the system's 7,200 s, no user timeout (0)."""
    wh = connect(kind, dsn=proxy.dsn(), tcp_timeout=12)
    try:
        assert wh.query("SELECT 1 AS one").to_pylist() == [{"one": 1}]
        assert _in_thread(lambda: wh.query("SELECT 2 AS two").to_pylist(), 30) == ("ok", [{"two": 2}])
        stream = wh.stream("SELECT g FROM generate_series(1, 5000) AS g", batch_rows=100)
        assert next(stream).num_rows == 100  # (the stream's connection is open)
        options = _tcp_options_to(proxy.port)
        stream.close()
        assert proxy.connects >= 3 and len(options) >= 2, (proxy.connects, options)
        for o in options:
            assert o["keepalive"] == 1, options
            assert o["idle"] + o["interval"] * o["count"] <= 12, options
            assert o["user_timeout"] == 12_000, options
    finally:
        wh.close()


SERVER_TCP_SETTINGS = ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count", "tcp_user_timeout")


def _server_tcp_settings(rows) -> dict[str, int]:
    return {r["name"]: int(r["setting"]) for r in rows}


def test_the_server_gives_up_a_silent_client_after_tcp_timeout_too(proxy):
    """The server's side of every session (the sessions, the plan's stream): after a blackhole the
    server keeps a run's sessions, and their locks, until its own TCP gives them up. Before: its
    keepalive default (2 hours and more): the plan's stream, idle in its transaction, held its
    AccessShareLock on the plan table, and the next run, once the network was back, waited behind it
    dropping that table (measured through a network namespace whose link went down: 14 minutes and
    on, until killed)."""
    query = ("SELECT name, setting FROM pg_settings WHERE name IN "
             + "(" + ", ".join(f"'{n}'" for n in SERVER_TCP_SETTINGS) + ") ORDER BY name")
    wh = connect("postgres", dsn=proxy.dsn(), tcp_timeout=12)
    try:
        seen = [_server_tcp_settings(wh.query(query).to_pylist()),
                _server_tcp_settings(next(wh.stream(query, batch_rows=10)).to_pylist())]
    finally:
        wh.close()
    for s in seen:
        assert s["tcp_keepalives_idle"] + s["tcp_keepalives_interval"] * s["tcp_keepalives_count"] <= 12, seen
        assert s["tcp_keepalives_idle"] > 0 and s["tcp_user_timeout"] == 12_000, seen
    wh = connect("postgres", dsn=proxy.dsn(), tcp_timeout=12, settings={"tcp_keepalives_idle": "5"})
    try:
        assert _server_tcp_settings(wh.query(query).to_pylist())["tcp_keepalives_idle"] == 5  # `settings:` win
    finally:
        wh.close()


def test_tcp_timeout_0_leaves_the_systems_defaults_and_the_dsn_keeps_its_own(proxy):
    wh = connect("postgres", dsn=proxy.dsn(), tcp_timeout=0)
    try:
        wh.query("SELECT 1")
        assert [o["user_timeout"] for o in _tcp_options_to(proxy.port)] == [0]
    finally:
        wh.close()
    wh = connect("postgres", dsn=proxy.dsn(keepalives_idle=7, tcp_user_timeout=9000), tcp_timeout=60)
    try:
        wh.query("SELECT 1")
        [o] = _tcp_options_to(proxy.port)
        assert (o["idle"], o["interval"], o["user_timeout"]) == (7, 10, 9000), o
    finally:
        wh.close()


# An unreachable host: libpq's connect_timeout bounds one connection, and a run opens several (the
# sessions of its threads, the plan's stream, a session opened again after the server ended one).
# Before, each waited connect_timeout anew once the host stopped answering: a failed run's last
# writes (the run log's end, the sync's state, the lock's release) each waited it again.

def _raised(outcome):
    assert outcome is not None and outcome[0] == "error", outcome
    raise outcome[1]


@pytest.mark.parametrize("kind", ["postgres", "redshift"])
def test_after_a_connect_failed_the_next_ones_fail_without_trying_again(proxy, kind):
    """Counted in connection attempts the silent host received (it accepts and never answers)."""
    wh = connect(kind, dsn=proxy.dsn(), connect_timeout=2)
    try:
        assert wh.query("SELECT 1 AS one").to_pylist() == [{"one": 1}]
        proxy.silent = True
        proxy.cut()  # the session is reset, its host stops answering
        time.sleep(0.2)  # (the reset reaches the session's socket)
        with pytest.raises(WarehouseUnavailable, match="timeout expired") as first:
            wh.query("SELECT 2")  # a new session: waits connect_timeout
        assert proxy.silent_connects == 1
        later = [lambda: wh.execute("SELECT 3"),
                 lambda: _raised(_in_thread(lambda: wh.query("SELECT 4"), 30)),  # another thread's session
                 lambda: next(wh.stream("SELECT 5 AS five", batch_rows=10))]  # the stream's connection
        for i, call in enumerate(later):
            with pytest.raises(WarehouseUnavailable) as caught:
                call()
            assert proxy.silent_connects == 1, (i, proxy.silent_connects)  # not tried again
            assert "timeout expired" in str(caught.value) and caught.value.retryable, str(caught.value)
        assert first.value.retryable
        proxy.silent = False
        wh._unreachable.since -= 3600  # (a while later: tried again)
        assert wh.query("SELECT 6 AS six").to_pylist() == [{"six": 6}]
    finally:
        wh.close()


@pytest.mark.parametrize("kind", ["postgres", "redshift"])
def test_a_run_whose_host_stops_answering_waits_connect_timeout_once(tmp_path, iterable_sandbox, proxy, kind):
    """`dinsync sync` through the proxy; from the first write of acknowledged keys on, the host
    resets the run's connections and answers no new one. Before: each later write of the run opened
    a session and waited connect_timeout for it. Now the first one does; the run fails with its
    error, and the next run, the host back, delivers everything."""
    from tests.warehouses.conftest import PostgresTarget
    from tests.warehouses.test_conformance import Project, customers, expected_users, only_run

    target = PostgresTarget(tmp_path, kind)
    try:
        target.env = {"DINSYNC_TEST_PG_DSN": proxy.dsn()}
        yaml = target.warehouse_yaml().replace("  search_path:", "  connect_timeout: 2\n  search_path:")
        target.warehouse_yaml = lambda: yaml
        sandbox, thread = iterable_sandbox
        project = Project(tmp_path / "project", target, sandbox, thread)
        project.write()
        target.load("customers", customers(range(1, 21)))
        proxy.cut_after = b"FROM STDIN" if kind == "postgres" else b'INSERT INTO "' + target.state_schema.encode()
        failed = project.sync(timeout=120)
        assert proxy.silent, "the run never wrote acknowledged keys"
        assert failed["exit_code"] != 0, failed
        assert proxy.silent_connects == 1, proxy.silent_connects  # the first new session only
        assert "connection timeout expired" in json.dumps(failed), failed
        proxy.silent, proxy.cut_after = False, None
        again = project.sync(timeout=120)
        assert again["exit_code"] == 0, only_run(again).get("error")
        assert project.users() == expected_users(customers(range(1, 21)))
    finally:
        proxy.silent, proxy.cut_after = False, None
        target.close()
