"""PostgreSQL behind a real blackhole (tests/warehouses/netns_blackhole.py: the link between the
client's network namespace and the server's goes down, and the client's packets vanish without a
reset). At each moment (a statement running, a session idle, a connection being opened) the
connection is given up within `tcp_timeout` (or `connect_timeout`) as a transient error, and once
the network is back the same warehouse object works again. Without the bounds: the kernel's
retransmission timeout (~15 minutes) or keepalive default (2 hours). Needs root (`ip netns`)."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from tests.warehouses.netns_blackhole import SERVER_IP, Blackhole, unavailable_reason
from tests.warehouses.support import require_postgres

PG_SOCKET = "/var/run/postgresql/.s.PGSQL.5432"
TCP_TIMEOUT, CONNECT_TIMEOUT = 6, 3

# Runs in the client's namespace: connects, says "ready", does `moment` once told the network is
# cut (a statement is sent before), prints how it ended, then once told it is back runs a statement.
CLIENT = """
import json, sys, time
from dinsync.warehouses import connect
moment, dsn = sys.argv[1], sys.argv[2]
wh = None if moment == "connect" else connect("postgres", dsn=dsn, tcp_timeout=%(tcp)d, connect_timeout=%(connect)d)
if wh is not None:
    wh.query("SELECT 1")
print("ready", flush=True)
if moment != "statement":
    sys.stdin.readline()
start = time.monotonic()
try:
    if moment == "connect":
        wh = connect("postgres", dsn=dsn, tcp_timeout=%(tcp)d, connect_timeout=%(connect)d)
    wh.query("SELECT pg_sleep(25)" if moment == "statement" else "SELECT 2")
    outcome = {"error": None}
except Exception as exc:
    outcome = {"error": str(exc), "type": type(exc).__name__, "retryable": getattr(exc, "retryable", None)}
outcome["seconds"] = time.monotonic() - start
print(json.dumps(outcome), flush=True)
sys.stdin.readline()
if wh is not None:
    if wh._unreachable.since is not None:
        wh._unreachable.since -= 3600  # (later: a new connection is tried again)
    print(json.dumps(wh.query("SELECT 3 AS three").to_pylist()), flush=True)
""" % {"tcp": TCP_TIMEOUT, "connect": CONNECT_TIMEOUT}


@pytest.fixture
def blackhole(worker_id):
    require_postgres()
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    port = 42390 + (int(worker_id[2:]) if worker_id.startswith("gw") else 0) % 10
    hole = Blackhole(PG_SOCKET, port)
    yield hole
    hole.close()


@pytest.mark.parametrize("moment", ["statement", "idle", "connect"])
def test_a_connection_whose_packets_vanish_is_given_up_within_its_bound(blackhole, moment):
    dsn = f"host={SERVER_IP} port={blackhole.port} dbname=test"
    proc = blackhole.in_client([sys.executable, "-c", CLIENT, moment, dsn], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(60, proc.kill)  # (a client that never gives up: its output ends)
    watchdog.start()
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        if moment == "statement":
            time.sleep(0.5)  # (the statement is on the server)
        blackhole.cut()
        if moment != "statement":
            proc.stdin.write("cut\n")
            proc.stdin.flush()
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        outcome = json.loads(line)
        bound = CONNECT_TIMEOUT if moment == "connect" else TCP_TIMEOUT
        # given up at its bound (not at the sleep's end, 25 s, nor the kernel's ~15 minutes)
        assert outcome["error"] and outcome["retryable"] is True, outcome
        assert outcome["seconds"] < bound + CONNECT_TIMEOUT + 3, outcome
        assert "timed out" in outcome["error"] or "timeout expired" in outcome["error"], outcome
        blackhole.restore()
        proc.stdin.write("back\n")
        proc.stdin.flush()
        if moment != "connect":
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            assert json.loads(line) == [{"three": 3}]
    finally:
        watchdog.cancel()
        proc.kill()
        proc.communicate()
