"""State tables on DuckDB: layout migrations, locks, run log, rejections."""
import datetime as dt

import pytest

from dinsync.errors import LockBusyError, RunSummary
from dinsync.state import LAYOUT_VERSION, StateStore
from dinsync.state.store import literal
from dinsync.warehouses import connect


@pytest.fixture
def store(tmp_path):
    wh = connect("duckdb", path=str(tmp_path / "wh.duckdb"))
    s = StateStore(wh, "dinsync")
    s.migrate()
    yield s
    wh.close()


def test_migrate_is_idempotent_and_records_version(store):
    assert store.migrate() == LAYOUT_VERSION
    rows = store.wh.query("select value from dinsync.meta where key = 'layout_version'").to_pylist()
    assert rows == [{"value": str(LAYOUT_VERSION)}]
    tables = {r["table_name"] for r in store.wh.query(
        "select table_name from information_schema.tables where table_schema = 'dinsync'").to_pylist()}
    assert {"meta", "runs", "rejections", "locks"} <= tables


def test_newer_layout_is_refused(store):
    store.wh.execute("update dinsync.meta set value = '99' where key = 'layout_version'")
    with pytest.raises(RuntimeError, match="newer than this dinsync"):
        store.migrate()


def test_second_run_of_a_sync_is_refused_while_lock_held(store):
    store.acquire_lock("users", "run-1")
    with pytest.raises(LockBusyError) as info:
        store.acquire_lock("users", "run-2")
    assert "already running" in info.value.message and "run-1" in info.value.message
    store.acquire_lock("other_sync", "run-3")  # locks are per sync
    store.release_lock("users", "run-1")
    store.acquire_lock("users", "run-2")


def test_stale_lock_expires(store):
    store.start_run(RunSummary(sync="users", run_id="crashed-run"), dt.datetime(2026, 1, 1), False, "0")
    store.acquire_lock("users", "crashed-run", ttl_seconds=-5)  # as if its run died long ago
    store.acquire_lock("users", "run-2")
    [run] = store.last_runs("users")
    assert run["status"] == "abandoned" and "without finishing" in run["error"]
    holders = store.wh.query("select run_id from dinsync.locks").to_pylist()
    assert holders == [{"run_id": "run-2"}]


def test_release_only_removes_own_lock(store):
    store.acquire_lock("users", "run-1")
    store.release_lock("users", "someone-else")
    with pytest.raises(LockBusyError):
        store.acquire_lock("users", "run-2")


def test_run_log_and_rejections(store):
    summary = RunSummary(sync="users", run_id="r1")
    store.start_run(summary, dt.datetime(2026, 1, 1), False, "0.1.0")
    summary.added, summary.acknowledged, summary.status = 3, 2, "warning"
    summary.warnings = ["one", "two"]
    summary.error = "it's broken"
    store.finish_run(summary)
    [run] = store.last_runs("users")
    assert (run["added"], run["acknowledged"], run["status"]) == (3, 2, "warning")
    assert run["warnings"] == "one | two" and run["error"] == "it's broken"
    store.add_rejections("r1", "users", [("k'1", None, "rejected", "bad email"), ("k2", "plan", "failed", "x")])
    assert store.rejections("r1") == [
        {"key": "k'1", "field": None, "status": "rejected", "reason": "bad email"},
        {"key": "k2", "field": "plan", "status": "failed", "reason": "x"},
    ]


def test_last_runs_limits_per_sync(store):
    for i in range(4):
        s = RunSummary(sync="a", run_id=f"a{i}")
        store.start_run(s, dt.datetime(2026, 1, 1, 0, i), False, "0")
    store.start_run(RunSummary(sync="b", run_id="b0"), dt.datetime(2026, 1, 1), False, "0")
    runs = store.last_runs(limit=2)
    assert [r["run_id"] for r in runs] == ["a3", "a2", "b0"]


def test_literal_escapes_quotes_and_nul():
    assert literal("a'b\x00") == "'a''b'"
    assert literal(None) == "NULL" and literal(True) == "TRUE" and literal(3) == "3"


def test_lock_of_a_dead_process_on_this_host_is_taken_over(store):
    import socket
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a pid that no longer runs
    store.wh.execute(
        f"insert into dinsync.locks values ('users', 'killed', '{socket.gethostname()}:{proc.pid}', now(), "
        "now() + interval 1 hour)")
    store.acquire_lock("users", "run-2")
    assert store.wh.query("select run_id from dinsync.locks").to_pylist() == [{"run_id": "run-2"}]
