"""The Databricks adapter's client wiring: the real databricks-sdk against the loopback fake of the
Statement Execution API (tests/warehouses/databricks_fake.py): bearer auth, statement submit and
polling, Arrow results over external links, bulk writes, failed statements, atomic blocks, config."""
from __future__ import annotations

import math
import sys
import urllib.error
import urllib.request

import pyarrow as pa
import pytest

from dinsync.config import load_project
from dinsync.errors import ConfigError
from dinsync.sandbox.runner import SandboxThread
from dinsync.warehouses import (WarehouseAuthError, WarehouseDriverMissing, WarehouseObjectMissing,
                                WarehouseSqlError, WarehouseUnavailable, connect)
from tests.warehouses.databricks_fake import DatabricksFake, to_duckdb
from tests.warehouses.test_config import project

TOKEN = "dapi-test-token"


@pytest.fixture(scope="module")
def fake():
    fake = DatabricksFake(chunk_rows=400)
    thread = SandboxThread(fake)
    thread.start()
    yield fake
    thread.stop()


def open_wh(fake, **options):
    args = dict(host=fake.url, token=TOKEN, warehouse_id=fake.warehouse_id, catalog=fake.catalog, schema="main",
                retry_seconds=5)
    return connect("databricks", **{**args, **options})


@pytest.fixture
def wh(fake):
    with open_wh(fake) as wh:
        wh.execute("CREATE SCHEMA IF NOT EXISTS t")
        yield wh


def test_a_bad_token_is_refused_with_401_and_never_shown(fake):
    with pytest.raises(WarehouseAuthError) as info:
        open_wh(fake, token="dapi-wrong-secret-123")
    assert "dapi-wrong-secret-123" not in str(info.value) and "token" in info.value.hint
    req = urllib.request.Request(fake.url + "/api/2.0/sql/statements", data=b"{}", method="POST",
                                 headers={"Authorization": "Bearer nope"})
    with pytest.raises(urllib.error.HTTPError) as http:
        urllib.request.urlopen(req, timeout=5)
    assert http.value.code == 401


def test_unknown_warehouse_and_http_path(fake):
    with pytest.raises(WarehouseObjectMissing):
        open_wh(fake, warehouse_id="nosuchwarehouse")
    with open_wh(fake, warehouse_id=None, http_path=f"/sql/1.0/warehouses/{fake.warehouse_id}") as wh:
        assert wh.warehouse_id == fake.warehouse_id and wh.scalar("SELECT 41 + 1") == 42
    with pytest.raises(WarehouseSqlError, match="not a SQL warehouse path"):
        open_wh(fake, warehouse_id=None, http_path="/sql/protocolv1/o/1/0123-cluster")


def test_arrow_results_come_chunk_by_chunk_over_external_links_without_the_token(fake, wh):
    n = 2500  # 400 rows a chunk: 7 chunks
    data = pa.table({"k": [f"k{i}" for i in range(n)], "n": pa.array(range(n), pa.int64()),
                     "x": [i / 4 for i in range(n)], "b": [i % 2 == 0 for i in range(n)]})
    fake.load("t", "big", data)
    before, submitted = fake.link_gets, len(fake.log)
    batches = list(wh.stream("SELECT * FROM t.big ORDER BY n", batch_rows=150))
    assert fake.link_gets - before == math.ceil(n / 400)
    assert fake.log[submitted]["format"] == "ARROW_STREAM" and fake.log[submitted]["disposition"] == "EXTERNAL_LINKS"
    assert max(b.num_rows for b in batches) <= 150
    got = pa.Table.from_batches(batches)
    assert got.schema == data.schema and got.equals(data)
    # a pre-signed link refuses the workspace token, as cloud storage does
    answer = wh._api.execute_statement(
        statement="SELECT 1 AS one", warehouse_id=fake.warehouse_id,
        disposition=wh._sql_service.Disposition.EXTERNAL_LINKS, format=wh._sql_service.Format.ARROW_STREAM)
    link = answer.result.external_links[0].external_link
    with pytest.raises(urllib.error.HTTPError) as http:
        urllib.request.urlopen(urllib.request.Request(link, headers={"Authorization": f"Bearer {TOKEN}"}), timeout=5)
    assert http.value.code == 400
    assert pa.ipc.open_stream(urllib.request.urlopen(link, timeout=5).read()).read_all().to_pylist() == [{"one": 1}]
    # an empty result keeps its columns and types
    empty = wh.query("SELECT k, n FROM t.big WHERE n < 0")
    assert empty.num_rows == 0 and empty.schema.names == ["k", "n"] and empty.schema.field("n").type == pa.int64()


def test_a_slow_reader_gets_every_chunk_whole_and_a_cut_download_again():
    """The plan's reader is the platform: a chunk read at its pace was cut by cloud storage, which
    drops a client that stops reading (the fake after 0.5 s). A chunk is downloaded whole before
    its rows are handed on, and a download cut half-way (a reset) is tried again with its links
    asked anew (they may have expired meanwhile)."""
    import time

    slow = DatabricksFake(chunk_rows=250_000, slow_reader_seconds=0.5)
    with SandboxThread(slow):
        with open_wh(slow) as wh:
            n = 500_000  # two chunks of ~20 MB each: more than the loopback socket's buffers
            slow.load("main", "wide", pa.table({"k": [f"{i:010d}" + "x" * 60 for i in range(n)]}))
            seen = []
            for i, batch in enumerate(wh.stream("SELECT k FROM main.wide", batch_rows=50_000)):
                seen += batch.column("k").to_pylist()
                if i in (0, 6):
                    time.sleep(2.0)  # the platform is slow
            assert len(seen) == len(set(seen)) == n and slow.dropped_readers == 0
            gets, chunk_calls = slow.link_gets, slow.chunk_gets
            slow.cut_downloads = 1
            assert sum(b.num_rows for b in wh.stream("SELECT k FROM main.wide", batch_rows=50_000)) == n
            assert slow.link_gets - gets == 3  # chunk 0 twice, then chunk 1
            assert slow.chunk_gets - chunk_calls == 2  # chunk 0's links anew, then chunk 1's


def test_streamed_timestamps_keep_their_zone(fake, wh):
    """A model's TIMESTAMP (an instant on Databricks) streamed without its zone was sent to the
    platform as a naive datetime (no `Z`), unlike the same column on every other warehouse; only
    the state store's small reads (`query`, `rows`) work in naive UTC."""
    import datetime as dt

    when = dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    fake.load("t", "tz", pa.table({"k": ["a"], "ts": pa.array([when], pa.timestamp("us", "UTC")),
                                   "ntz": pa.array([when.replace(tzinfo=None)], pa.timestamp("us"))}))
    [batch] = list(wh.stream("SELECT k, ts, ntz FROM t.tz", batch_rows=10))
    assert batch.schema.field("ts").type.tz is not None and batch.schema.field("ntz").type.tz is None
    assert batch.to_pylist()[0]["ts"] == when
    assert wh.rows("SELECT ts FROM t.tz") == [{"ts": when.replace(tzinfo=None)}]


def test_parameters_are_typed_and_never_in_the_sql(fake, wh):
    wh.execute("CREATE OR REPLACE TABLE t.p (s STRING, i BIGINT, b BOOLEAN, ts TIMESTAMP)")
    import datetime as dt

    when = dt.datetime(2026, 1, 2, 3, 4, 5, 123456)
    wh.execute("INSERT INTO t.p (s, i, b, ts) VALUES (:s, :i, :b, :ts)",
               {"s": "O'Brien; DROP TABLE x --", "i": 2 ** 62, "b": True, "ts": when})
    assert "O'Brien" not in fake.log[-1]["statement"]
    assert {p["name"]: p["type"] for p in fake.log[-1]["parameters"]} == {
        "s": "STRING", "i": "BIGINT", "b": "BOOLEAN", "ts": "TIMESTAMP"}
    row = wh.query("SELECT * FROM t.p WHERE s = :s AND i = :i", {"s": "O'Brien; DROP TABLE x --", "i": 2 ** 62})
    assert row.to_pylist() == [{"s": "O'Brien; DROP TABLE x --", "i": 2 ** 62, "b": True, "ts": when}]
    assert wh.execute("UPDATE t.p SET b = :b WHERE i = :i", {"b": None, "i": 2 ** 62}) == 1


def test_bulk_writes_are_multi_row_inserts_of_bounded_size(fake, wh, monkeypatch):
    n = 5000
    keys = pa.table({"_key": [f"user{i}@example.com" if i % 7 else None for i in range(n)],
                     "why": ["it's \"quoted\" — ünïcode"] * n})
    submitted = len(fake.log)
    wh.write_arrow("t", "keys", keys, mode="replace")
    inserts = [e for e in fake.log[submitted:] if e["statement"].startswith("INSERT")]
    per = wh.insert_params // 2
    assert len(inserts) == math.ceil(n / per)
    assert all(len(e["parameters"]) <= wh.insert_params for e in inserts)
    assert inserts[0]["statement"].count("(:v") == per  # one row of parameters per row, many rows a statement
    assert wh.query("SELECT * FROM t.keys").sort_by("_key").equals(keys.sort_by("_key"))
    wh.write_arrow("t", "keys", keys.slice(0, 10))  # append
    assert wh.scalar("SELECT COUNT(*) FROM t.keys") == n + 10
    monkeypatch.setattr(wh, "insert_bytes", 2000)  # the size bound cuts statements too
    submitted = len(fake.log)
    wh.write_arrow("t", "keys", keys.slice(0, 100), mode="replace")
    assert len([e for e in fake.log[submitted:] if e["statement"].startswith("INSERT")]) > 1
    assert wh.scalar("SELECT COUNT(*) FROM t.keys") == 100


def test_state_times_are_utc_whatever_the_warehouses_time_zone(fake, wh):
    """A SQL warehouse whose TIMEZONE is America/New_York (a workspace setting) read the state
    store's naive UTC times as New York's: `runs.started_at` and `locks.expires_at` were stored
    5 hours late (a dead run's lock held 5 hours past its TTL), and analysts saw every run shifted."""
    import datetime as dt

    wh.execute("CREATE OR REPLACE TABLE t.times (ts TIMESTAMP)")
    when = dt.datetime(2026, 12, 7, 17, 0, 0)
    fake.time_zone = "America/New_York"
    try:
        wh.execute("INSERT INTO t.times (ts) VALUES (:ts)", {"ts": when})
    finally:
        fake.time_zone = "UTC"
    assert wh.rows("SELECT ts FROM t.times") == [{"ts": when}]


def test_failed_statements_are_translated(wh):
    with pytest.raises(WarehouseObjectMissing) as info:
        wh.query("SELECT * FROM t.no_such_table")
    assert "TABLE_OR_VIEW_NOT_FOUND" in str(info.value) and not info.value.retryable
    assert info.value.sqlstate == "42P01"
    with pytest.raises(WarehouseObjectMissing):
        wh.execute("INSERT INTO no_such_schema.t VALUES (1)")
    with pytest.raises(WarehouseSqlError) as info:
        wh.execute("SELEC 1")
    assert type(info.value) is WarehouseSqlError and "PARSE_SYNTAX_ERROR" in str(info.value)
    assert wh.table_columns("t", "no_such_table") is None


def test_slow_statements_are_polled_and_cancelled_past_the_timeout(fake):
    fake.delay = 0.3
    try:
        with open_wh(fake, wait_timeout=0) as wh:
            polls = sum(s.polls for s in fake.statements.values())
            assert wh.scalar("SELECT 7") == 7
            assert sum(s.polls for s in fake.statements.values()) > polls
            wh.statement_timeout = 0.1
            with pytest.raises(WarehouseUnavailable, match="cancelled"):
                wh.execute("SELECT 8")
            assert list(fake.statements.values())[-1].state == "CANCELED"
    finally:
        fake.delay = 0.0


def test_a_transaction_is_one_atomic_block(fake, wh):
    wh.execute("CREATE OR REPLACE TABLE t.a (k STRING, n BIGINT)")
    with wh.transaction():
        wh.execute("INSERT INTO t.a (k, n) VALUES (:k, :n)", {"k": "x", "n": 1})
        wh.execute("INSERT INTO t.a (k, n) VALUES (:k, :n)", {"k": "y", "n": 2})
    assert fake.log[-1]["statement"].startswith("BEGIN ATOMIC")
    assert {p["name"] for p in fake.log[-1]["parameters"]} == {"t0_k", "t0_n", "t1_k", "t1_n"}
    with pytest.raises(WarehouseObjectMissing):
        with wh.transaction():
            wh.execute("DELETE FROM t.a WHERE k = :k", {"k": "x"})
            wh.execute("INSERT INTO t.missing (k) VALUES (:k)", {"k": "z"})
    assert sorted(wh.query("SELECT k FROM t.a").column("k").to_pylist()) == ["x", "y"]  # all or nothing
    with open_wh(fake, transactions="none") as plain:
        submitted = len(fake.log)
        with plain.transaction():
            plain.execute("DELETE FROM t.a WHERE k = :k", {"k": "x"})
            plain.execute("DELETE FROM t.a WHERE k = :k", {"k": "y"})
        assert len(fake.log) - submitted == 2 and plain.scalar("SELECT COUNT(*) FROM t.a") == 0


def test_the_fake_transpiles_databricks_sql_to_duckdb():
    [sql] = to_duckdb("SELECT XXHASH64(XXHASH64(CAST(`a` AS STRING)), 1), REGEXP_REPLACE(`b`, '[^0-9]', '') FROM `s`.`t`")
    assert "XXHASH64" not in sql.upper() and "HASH(" in sql and "'g'" in sql and '"s"."t"' in sql


def test_a_missing_driver_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "databricks.sdk", None)
    with pytest.raises(WarehouseDriverMissing) as info:
        connect("databricks", host="h", token="t", warehouse_id="w")
    assert "dinsync[databricks]" in info.value.hint


def test_config_takes_the_token_from_the_environment(tmp_path):
    env = {"ITERABLE_API_KEY": "itbl-key-123456", "DBX_TOKEN": "dapi-from-env-42"}
    for sub in "abc":
        (tmp_path / sub).mkdir()
    p = load_project(project(tmp_path / "a", "  type: databricks\n  host: https://dbc-1.cloud.databricks.com\n"
                                             "  http_path: /sql/1.0/warehouses/abc123\n  token: ${env:DBX_TOKEN}\n"
                                             "  catalog: main\n  schema: analytics\n"), env=env)
    w = p.warehouse
    assert (w.type, w.catalog, w.schema_, w.transactions) == ("databricks", "main", "analytics", "atomic")
    assert w.token.get_secret_value() == "dapi-from-env-42" and "dapi-from-env" not in repr(w)
    with pytest.raises(ConfigError) as info:
        load_project(project(tmp_path / "b", "  type: databricks\n  host: h\n  warehouse_id: w\n"
                                             "  token: dapi-literal-secret\n"), env=env)
    assert "warehouse.token" in str(info.value.issues) and "dapi-literal-secret" not in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_project(project(tmp_path / "c", "  type: databricks\n  host: h\n  token: ${env:DBX_TOKEN}\n"), env=env)
    assert "http_path" in str(info.value.issues)
    (tmp_path / "d").mkdir()
    with pytest.raises(ConfigError) as info:  # the token would cross the network in clear text
        load_project(project(tmp_path / "d", "  type: databricks\n  host: http://dbc-1.cloud.databricks.com\n"
                                             "  warehouse_id: w\n  token: ${env:DBX_TOKEN}\n"), env=env)
    assert "warehouse.host" in str(info.value.issues) and "clear text" in str(info.value.issues)


@pytest.mark.parametrize("body,status", [
    ({"statement": "SELECT 1", "warehouse_id": "wh0123456789", "format": "ARROW_STREAM", "disposition": "INLINE"}, 400),
    ({"statement": "SELECT 1", "warehouse_id": "wh0123456789", "wait_timeout": "3s"}, 400),
    ({"statement": "SELECT 1"}, 400),
    ({"statement": "SELECT 1", "warehouse_id": "wh0123456789", "wait_timeout": "5s"}, 200),
])
def test_the_fake_enforces_the_api_rules(fake, body, status):
    import json

    req = urllib.request.Request(fake.url + "/api/2.0/sql/statements", data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    try:
        code = urllib.request.urlopen(req, timeout=10).status
    except urllib.error.HTTPError as exc:
        code = exc.code
    assert code == status


def test_an_unreachable_host_fails_the_connection_check_quickly(monkeypatch):
    """A host nobody answers on (a typo, a closed port) is a connection error within the connection
    check's short retry budget, not after the SDK's 300 s per call (host metadata, then the statement:
    ~10 minutes of silence). The SDK's clock is faked: slept seconds are counted, never waited."""
    import socket

    from databricks.sdk import clock

    now = [1_000_000.0]
    monkeypatch.setattr(clock.RealClock, "time", lambda self: now[0])
    monkeypatch.setattr(clock.RealClock, "sleep", lambda self, seconds: now.__setitem__(0, now[0] + seconds))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: connections are refused
    with pytest.raises(WarehouseUnavailable) as info:
        connect("databricks", host=f"http://127.0.0.1:{port}", token=TOKEN, warehouse_id="abc123", catalog="main")
    assert now[0] - 1_000_000.0 <= 60
    assert f"no connection could be opened to http://127.0.0.1:{port}" in info.value.hint


def test_a_runs_counts_are_recorded_within_a_commits_atomic_block(fake, wh):
    """A checkpoint records the run's counts in its commit's transaction (engine/commits.py): on
    Databricks one `BEGIN ATOMIC` block with the commit's own statements."""
    import datetime as dt

    from dinsync.errors import RunSummary
    from dinsync.state import StateStore

    store = StateStore(wh, "dbx_progress")
    store.migrate()
    store.start_run(RunSummary(sync="users", run_id="r1"), dt.datetime(2026, 1, 1), False, "0")
    wh.execute("CREATE OR REPLACE TABLE dbx_progress.snap (k STRING)")
    with wh.transaction():
        wh.execute("INSERT INTO dbx_progress.snap (k) VALUES (:k)", {"k": "a"})
        store.record_progress("r1", {"sent": 7, "acknowledged": 5})
    assert fake.log[-1]["statement"].startswith("BEGIN ATOMIC")
    [run] = store.last_runs("users")
    assert (run["status"], run["sent"], run["acknowledged"], run["added"]) == ("running", 7, 5, None)  # (not given)
