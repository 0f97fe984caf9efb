"""State tables on every warehouse: layout migrations, locks, run log, rejections."""
from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from dinsync.errors import ConfigError, LockBusyError, RunSummary
from dinsync.state import LAYOUT_VERSION, StateStore
from dinsync.state.process import holder_id, read_stat
from dinsync.state.store import FEW_REJECTIONS
from tests.warehouses.support import WAREHOUSE_KINDS, WarehouseUnderTest

# (warehouse kind, arbiter override): each warehouse with its own arbiter, and the arbiter for
# warehouses without enforced keys (insert-then-verify) on the warehouses that can run it here.
CASES = [(k, None) for k in WAREHOUSE_KINDS] + [("duckdb", "insert_verify"), ("postgres", "insert_verify"),
                                                 ("postgres", "table_lock")]


@pytest.fixture(params=CASES, ids=lambda c: c[0] + ("" if c[1] is None else "-" + c[1]))
def target(request, tmp_path):
    kind, arbiter = request.param
    t = WarehouseUnderTest(kind, tmp_path)
    t.store = StateStore(t.wh, t.state_schema, arbiter=arbiter)
    t.store.migrate()
    t.arbiter = arbiter
    yield t
    t.close()


@pytest.fixture
def store(target):
    return target.store


def lock_rows(store):
    return [r["run_id"] for r in store.lock_holders("users")]


def put_lock(store, run_id, holder, expires_in=3600.0):
    """A lock row as another process would have left it."""
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    store.wh.execute(
        f"INSERT INTO {store.t('locks')} (sync, run_id, holder, acquired_at, expires_at, ticket, choosing) "
        "VALUES (:sync, :run, :holder, :now, :exp, 1, FALSE)",
        {"sync": "users", "run": run_id, "holder": holder, "now": now, "exp": now + dt.timedelta(seconds=expires_in)})
    store.start_run(RunSummary(sync="users", run_id=run_id), now, False, "0")


def test_migrate_is_idempotent_and_records_version(store):
    assert store.migrate() == LAYOUT_VERSION
    assert store.layout_version() == LAYOUT_VERSION
    rows = store.wh.query(f"select value from {store.t('meta')} where key = 'layout_version'").to_pylist()
    assert rows == [{"value": str(LAYOUT_VERSION)}]
    for table in ("meta", "runs", "rejections", "locks"):
        assert store.wh.table_columns(store.schema, table)
    assert {"ticket", "choosing"} <= set(store.wh.table_columns(store.schema, "locks"))


def test_newer_layout_is_refused(store):
    store.wh.execute(f"update {store.t('meta')} set value = '99' where key = 'layout_version'")
    with pytest.raises(ConfigError, match="newer than this dinsync"):
        store.migrate()


def test_second_run_of_a_sync_is_refused_while_lock_held(store):
    store.acquire_lock("users", "run-1")
    with pytest.raises(LockBusyError) as info:
        store.acquire_lock("users", "run-2")
    assert "already running" in info.value.message and "run-1" in info.value.message
    assert lock_rows(store) == ["run-1"]  # the loser left nothing behind
    store.acquire_lock("other_sync", "run-3")  # locks are per sync
    store.release_lock("users", "run-1")
    store.acquire_lock("users", "run-2")
    assert lock_rows(store) == ["run-2"]


def test_expired_lock_is_taken_over_and_its_run_abandoned(store):
    store.start_run(RunSummary(sync="users", run_id="crashed-run"), dt.datetime(2026, 1, 1), False, "0")
    store.acquire_lock("users", "crashed-run", ttl_seconds=-5)  # as if its run died long ago
    store.acquire_lock("users", "run-2")
    [run] = store.last_runs("users")
    assert run["status"] == "abandoned" and "without finishing" in run["error"]
    assert lock_rows(store) == ["run-2"]


def test_a_killed_runs_counts_recorded_at_its_checkpoints_stay_when_it_is_abandoned(store):
    store.start_run(RunSummary(sync="users", run_id="killed"), dt.datetime(2026, 1, 1), False, "0")
    store.record_progress("killed", {"added": 9, "sent": 7, "acknowledged": 5, "requests": 2})
    store.record_progress("killed", {"sent": 7})  # the counters given only
    store.acquire_lock("users", "killed", ttl_seconds=-5)
    store.acquire_lock("users", "run-2")
    [run] = store.last_runs("users")
    assert (run["status"], run["added"], run["sent"], run["acknowledged"], run["requests"]) == ("abandoned", 9, 7, 5, 2)
    store.record_progress("killed", {"sent": 8})  # a run no longer running is never written
    assert store.last_runs("users")[0]["sent"] == 7


def test_release_only_removes_own_lock(store):
    store.acquire_lock("users", "run-1")
    store.release_lock("users", "someone-else")
    with pytest.raises(LockBusyError):
        store.acquire_lock("users", "run-2")


def test_refresh_lock_says_whether_the_lock_is_still_ours(store):
    store.acquire_lock("users", "run-1", ttl_seconds=-1)
    assert store.refresh_lock("users", "run-1", ttl_seconds=600) is True
    [row] = store.lock_holders("users")
    assert row["expires_at"] > dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(seconds=500)
    with pytest.raises(LockBusyError):  # refreshed: no longer expired
        store.acquire_lock("users", "run-2")
    store.refresh_lock("users", "run-1", ttl_seconds=-1)  # the run stalls past its expiry...
    store.acquire_lock("users", "run-2")  # ...and is taken over
    assert store.refresh_lock("users", "run-1") is False
    assert store.refresh_lock("users", "run-2") is True


def test_live_holder_is_refused(store):
    put_lock(store, "alive", holder_id())  # this very process, with its real start time
    with pytest.raises(LockBusyError, match="alive"):
        store.acquire_lock("users", "run-2")


def test_holder_on_another_host_waits_for_the_expiry(store):
    put_lock(store, "remote", "some-other-host:1:1")
    with pytest.raises(LockBusyError, match="remote"):
        store.acquire_lock("users", "run-2")


def test_dead_process_holder_is_taken_over(store):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a pid that no longer runs
    put_lock(store, "killed", f"{socket.gethostname()}:{proc.pid}:12345")
    store.acquire_lock("users", "run-2")
    assert lock_rows(store) == ["run-2"]
    assert store.last_runs("users")[-1]["status"] == "abandoned"


def test_zombie_holder_is_taken_over(store):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        start = read_stat(proc.pid).start_time
        proc.kill()  # not reaped yet: the process stays a zombie, os.kill(pid, 0) still succeeds
        deadline = time.monotonic() + 10
        while read_stat(proc.pid).state != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.kill(proc.pid, 0)  # what the old check relied on: says "alive"
        put_lock(store, "zombie", f"{socket.gethostname()}:{proc.pid}:{start}")
        store.acquire_lock("users", "run-2")
        assert lock_rows(store) == ["run-2"]
    finally:
        proc.wait()


def test_reused_pid_is_taken_over(store):
    me = read_stat(os.getpid())
    put_lock(store, "old-run", f"{socket.gethostname()}:{os.getpid()}:{me.start_time - 100}")  # same pid, other start
    store.acquire_lock("users", "run-2")
    assert lock_rows(store) == ["run-2"]


def test_racing_acquirers_exactly_one_wins(target):
    """Threads with their own connections (one process may hold a DuckDB file) start together."""
    contenders = 4
    for round_ in range(5):
        stores = [StateStore(target.open() if target.kind != "duckdb" else target.wh, target.state_schema,
                             arbiter=target.arbiter) for _ in range(contenders)]
        barrier = threading.Barrier(contenders)
        results: list = [None] * contenders

        def contend(i: int) -> None:
            barrier.wait()
            try:
                stores[i].acquire_lock("users", f"run-{round_}-{i}")
                results[i] = "won"
            except LockBusyError:
                results[i] = "busy"
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                results[i] = repr(exc)

        threads = [threading.Thread(target=contend, args=(i,)) for i in range(contenders)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(results) == ["busy"] * (contenders - 1) + ["won"], results
        winner = f"run-{round_}-{results.index('won')}"
        assert lock_rows(target.store) == [winner]
        target.store.release_lock("users", winner)


def test_run_log_and_rejections(store):
    summary = RunSummary(sync="users", run_id="r1")
    store.start_run(summary, dt.datetime(2026, 1, 1), False, "0.1.0")
    summary.added, summary.acknowledged, summary.status = 3, 2, "warning"
    summary.warnings = ["one", "two"]
    summary.error = "it's broken; DROP TABLE x; -- \\' :run"
    store.finish_run(summary)
    [run] = store.last_runs("users")
    assert (run["added"], run["acknowledged"], run["status"]) == (3, 2, "warning")
    assert run["warnings"] == "one | two" and run["error"] == summary.error
    long_reason = "x" * 5000  # longer than a bare VARCHAR on Redshift
    store.add_rejections("r1", "users", [("k'1", None, "rejected", "bad email"), ("k2", "plan", "failed", long_reason),
                                         ("k3\x00", "a,b", "rejected", 'quote " and\nnewline')])
    assert store.rejections("r1") == [
        {"key": "k'1", "field": None, "status": "rejected", "reason": "bad email"},
        {"key": "k2", "field": "plan", "status": "failed", "reason": long_reason},
        {"key": "k3\\x00", "field": "a,b", "status": "rejected", "reason": 'quote " and\nnewline'},
    ]
    # a few rows go in one INSERT of parameters, more through Arrow: both write the same
    many = [(None if i == 0 else f"m{i}'", "f", "failed", f"reason {i}\n") for i in range(FEW_REJECTIONS + 2)]
    store.add_rejections("r2", "users", many)
    assert sorted(store.rejections("r2"), key=lambda r: r["reason"]) == sorted(
        ({"key": k, "field": f, "status": s, "reason": r} for k, f, s, r in many), key=lambda r: r["reason"])


def test_long_keys_are_kept_and_listed_as_their_start_and_length(store):
    """On every warehouse: a long key is stored as its start and its length, and one an older
    dinsync stored whole is read (SUBSTR, LENGTH) and listed so too; short keys stay whole."""
    from dinsync.state.syncstate import SyncStates

    store.add_rejections("r1", "users", [("a" * 3000, "email", "rejected", "too long"),
                                         ("short@x.com", "email", "rejected", "bad")])
    store.wh.execute(f"INSERT INTO {store.t('rejections')} (run_id, sync, key, field, status, reason, rejected_at) "
                     "VALUES (:run, :sync, :key, :field, :status, :reason, :at)",
                     {"run": "r1", "sync": "users", "key": "b" * 5000, "field": "email", "status": "rejected",
                      "reason": "too long", "at": dt.datetime(2026, 1, 1)})
    assert sorted(r["key"] for r in store.rejections("r1")) == ["a" * 1000 + "… (3,000 characters)", "b" * 5000,
                                                                "short@x.com"]
    listed = sorted(r["key"] for r in SyncStates(store).rejections("users"))
    assert listed == ["a" * 1000 + "… (3,000 characters)", "b" * 1000 + "… (5,000 characters)", "short@x.com"]


def test_rejections_never_hold_a_registered_secret(store):
    """Every path to the rejections table meets here: a field or a reason quoting a platform's
    answer that echoed the credentials is stored masked."""
    from dinsync import redaction

    secret = "sk-test-rejections-0123456789"
    redaction.register(secret)
    rows = [("k1", f"proj:::{secret}", "rejected", f"HTTP 400: key {secret}")]
    store.add_rejections("r1", "users", rows)
    store.add_rejections("r2", "users", rows * (FEW_REJECTIONS + 1))  # the Arrow path
    for run in ("r1", "r2"):
        assert {(r["field"], r["reason"]) for r in store.rejections(run)} == {("proj:::***", "HTTP 400: key ***")}


def test_old_rejection_rows_are_deleted_but_a_parked_keys_newest_reason(store):
    """On every warehouse: rows past the retention go, per sync, but for a key's newest `rejected`
    row (the reason it is parked for); a newer row of the key supersedes the older ones, but for a
    `duplicate` row."""
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    rows = [("users", "k-parked", "rejected", 40), ("users", "k-changed", "rejected", 40),
            ("users", "k-changed", "rejected", 35), ("users", "k-retried", "not_found", 40),
            ("users", "k-retried", "not_found", 1), ("users", "k-dup", "duplicate", 40), ("users", None, "skipped", 40),
            ("users", "k-fixed", "rejected", 40), ("users", "k-fixed", "failed", 33), ("other", "k-retried", "not_found", 40),
            ("users", "k-parked-dup", "rejected", 40), ("users", "k-parked-dup", "duplicate", 35)]
    for i, (sync, key, status, days) in enumerate(rows):
        store.wh.execute(f"INSERT INTO {store.t('rejections')} (run_id, sync, key, field, status, reason, rejected_at) "
                         "VALUES (:run, :sync, :key, :field, :status, :reason, :at)",
                         {"run": f"r{i}", "sync": sync, "key": key, "field": "email", "status": status,
                          "reason": "why", "at": now - dt.timedelta(days=days)})
    store.prune_rejections("users", dt.timedelta(days=30))
    left = store.wh.rows(f"SELECT run_id FROM {store.t('rejections')} ORDER BY run_id")
    # (a key withheld as duplicated was not sent: still parked for its reason)
    assert [r["run_id"] for r in left] == ["r0", "r10", "r2", "r4", "r9"]


def test_an_old_reason_is_kept_only_while_its_key_is_parked_in_the_snapshot(store):
    """On every warehouse: a key's newest `rejected` row outlives the retention while the sync's
    snapshot holds the key parked; a refused key that left the model (no snapshot row, or one
    delivered since) loses it, as any row. A key kept shortened (over 1,000 characters) is kept."""
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    store.wh.execute(f"CREATE TABLE {store.t('snap_users')} (_key {store.caps.text_type}, _pfp BIGINT)")
    store.wh.execute(f"INSERT INTO {store.t('snap_users')} (_key, _pfp) VALUES ('k-parked', 1), ('k-delivered', NULL)")
    long_key = "k" * 1001
    for i, key in enumerate(("k-parked", "k-delivered", "k-left", long_key)):
        store.wh.execute(f"INSERT INTO {store.t('rejections')} (run_id, sync, key, field, status, reason, rejected_at) "
                         "VALUES (:run, 'users', :key, 'email', 'rejected', 'why', :at)",
                         {"run": f"r{i}", "key": key, "at": now - dt.timedelta(days=40)})
    store.prune_rejections("users", dt.timedelta(days=30))
    left = store.wh.rows(f"SELECT run_id FROM {store.t('rejections')} ORDER BY run_id")
    assert [r["run_id"] for r in left] == ["r0", "r3"]


def test_the_deletion_of_old_rejection_rows_is_no_correlated_subquery_per_row(tmp_path):
    """PostgreSQL: an EXISTS inside an OR cannot become a join, so it ran once per old row, each a
    scan of the table: 400 s for 1M rows (23,334 old `rejected` rows). No statement's plan may hold
    a SubPlan; what the statements delete is test_old_rejection_rows_are_deleted_but_..."""
    t = WarehouseUnderTest("postgres", tmp_path)
    try:
        store = StateStore(t.wh, t.state_schema)
        store.migrate()
        # (the statement that keeps the reasons of parked keys reads the sync's snapshot)
        store.wh.execute(f"CREATE TABLE {store.t('snap_users')} (_key TEXT, _pfp BIGINT)")
        deletes: list = []
        execute = store.wh.execute

        def spy(sql, params=None, *args, **kwargs):
            if sql.lstrip().upper().startswith("DELETE"):
                deletes.append((sql, params))
            return execute(sql, params, *args, **kwargs)

        store.wh.execute = spy
        store.prune_rejections("users", dt.timedelta(days=30))
        assert len(deletes) == 3
        for sql, params in deletes:
            plan = "\n".join(str(next(iter(r.values()))) for r in store.wh.rows("EXPLAIN " + sql, params))
            assert "SubPlan" not in plan, plan
    finally:
        t.close()


def test_last_runs_limits_per_sync(store):
    for i in range(4):
        store.start_run(RunSummary(sync="a", run_id=f"a{i}"), dt.datetime(2026, 1, 1, 0, i), False, "0")
    store.start_run(RunSummary(sync="b", run_id="b0"), dt.datetime(2026, 1, 1), False, "0")
    runs = store.last_runs(limit=2)
    assert [r["run_id"] for r in runs] == ["a3", "a2", "b0"]


def test_concurrent_migrations(tmp_path):
    """Two processes' first runs migrate a fresh state schema at the same time."""
    t = WarehouseUnderTest("postgres", tmp_path)
    try:
        stores = [StateStore(t.open(), t.state_schema) for _ in range(3)]
        barrier = threading.Barrier(len(stores))
        errors: list = []

        def run(s):
            barrier.wait()
            try:
                s.migrate()
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(s,)) for s in stores]
        for th in threads:
            th.start()
        for th in threads:
            th.join(30)
        assert errors == []
        assert stores[0].layout_version() == LAYOUT_VERSION
    finally:
        t.close()


def test_a_lock_this_process_could_not_release_is_taken_over_by_its_next_run(store, monkeypatch):
    """`dinsync serve`: a run ended while the warehouse was unreachable, so its lock row (naming
    the service, a live process) stayed; once the warehouse was back, every run of the sync was
    refused as "already running" until the lock expired 15 minutes later."""
    store.start_run(RunSummary(sync="users", run_id="run-1"), dt.datetime(2026, 1, 1), False, "0")
    store.acquire_lock("users", "run-1")
    execute = store.wh.execute

    def unreachable(sql, *args, **kwargs):
        if sql.lstrip().upper().startswith("DELETE"):
            raise ConnectionError("the warehouse went away")
        return execute(sql, *args, **kwargs)

    monkeypatch.setattr(store.wh, "execute", unreachable)
    with pytest.raises(ConnectionError):
        store.release_lock("users", "run-1")
    monkeypatch.setattr(store.wh, "execute", execute)  # the warehouse is back
    store.acquire_lock("users", "run-2")
    assert lock_rows(store) == ["run-2"]
    [run] = store.last_runs("users")
    assert run["run_id"] == "run-1" and run["status"] == "abandoned"
    store.release_lock("users", "run-2")
    put_lock(store, "alive", holder_id())  # a live run of this process is still refused
    with pytest.raises(LockBusyError, match="alive"):
        store.acquire_lock("users", "run-3")


def test_a_holder_in_another_pid_namespace_is_taken_over_once_it_stops_refreshing(store):
    """Same host name, another PID namespace (a container on the host's network, or the one a
    restarted pod container replaced): its PID says nothing here. While it refreshes its lock it
    is refused; three heartbeats silent (180 s of a 900 s lock), it is taken for dead, not after
    the whole expiry (a pod's restarted container waited 15 minutes)."""
    other = f"{socket.gethostname()}:1:12345:pidns1"
    put_lock(store, "refreshing", other, expires_in=900 - 30)  # refreshed 30 s ago
    with pytest.raises(LockBusyError, match="refreshing"):
        store.acquire_lock("users", "run-2")
    store.wh.execute(f"DELETE FROM {store.t('locks')}")
    put_lock(store, "silent", other, expires_in=900 - 200)  # silent for 200 s
    store.acquire_lock("users", "run-2")
    assert lock_rows(store) == ["run-2"]
    assert store.last_runs("users")[-1]["status"] == "abandoned"


def test_a_nul_character_in_a_rejected_key_is_shown_not_dropped(store):
    """PostgreSQL text cannot hold NUL, so the rejections table writes it as the four characters
    `\\x00` (as dinsync shows other control characters). Dropped, the key 'nul\\x00@example.com'
    was listed as 'nul@example.com', another (valid) address, with a reason saying that one 'is
    not a valid email: contains whitespace or control characters'."""
    reason = "key \"email\": 'nul\x00@example.com' is not a valid email: contains whitespace or control characters"
    store.add_rejections("r1", "users", [("nul\x00@example.com", "email", "rejected", reason)])
    store.add_rejections("r2", "users", [("nul\x00@example.com", "email", "rejected", reason)] * (FEW_REJECTIONS + 1))
    for run in ("r1", "r2"):
        assert {(r["key"], r["reason"]) for r in store.rejections(run)} == {
            ("nul\\x00@example.com", reason.replace("\x00", "\\x00"))}


def test_a_lock_take_failing_with_the_warehouse_gone_reports_its_own_error(tmp_path, monkeypatch):
    """Insert-then-verify (Snowflake, BigQuery, Databricks): the take's insert failing with the
    warehouse gone, the clean-up of the row it may have written fails too; the run's error is the
    take's, not the clean-up's (which replaced it, once the insert moved inside the clean-up's scope)."""
    from dinsync.state.locks import SyncLock
    from dinsync.warehouses import errors as E

    t = WarehouseUnderTest("duckdb", tmp_path)
    try:
        store = StateStore(t.wh, t.state_schema, arbiter="insert_verify")
        store.migrate()

        def insert(*args, **kwargs):
            raise E.WarehouseUnavailable("the take's insert: connection reset")

        def release(*args, **kwargs):
            raise E.WarehouseUnavailable("the release: a request was not sent")

        monkeypatch.setattr(SyncLock, "_insert", insert)
        monkeypatch.setattr(SyncLock, "release", release)
        with pytest.raises(E.WarehouseUnavailable, match="the take's insert"):
            store.acquire_lock("users", "run-1")
    finally:
        t.close()
