"""Databricks applied a write and its answer was lost (the connection dropped after the statement
ran): POST /api/2.0/sql/statements has no idempotency key, so a submit sent again runs again. The
databricks-sdk retries any request whose connection dropped (a ConnectionError), a POST too; the
adapter must not let it send a write again once it was sent (the fake's `cut_after` mode)."""
from __future__ import annotations

import pytest

from dinsync.warehouses import WarehouseUnavailable
from tests.warehouses.conftest import DatabricksTarget
from tests.warehouses.test_databricks_retries import fake, open_wh  # noqa: F401 (fake: a fixture)
from tests.warehouses.replay_support import first_sync_losing_an_answer
from tests.warehouses.test_conformance import SYNC, Project, customers, expected_users, only_run


@pytest.mark.parametrize("atomic", ["atomic", "none"])
def test_a_write_whose_answer_was_lost_is_not_applied_twice(fake, atomic):
    """Before: the SDK sent the INSERT again and the table held its row twice."""
    wh = open_wh(fake, transactions=atomic, retry_seconds=5)
    try:
        wh.execute("CREATE SCHEMA IF NOT EXISTS t")
        wh.execute("CREATE TABLE t.x (a BIGINT)")
        fake.cut_after = "cut_me"
        with pytest.raises(WarehouseUnavailable) as caught:
            with wh.transaction():
                wh.execute("DELETE FROM t.x WHERE a = :a", {"a": 2})
                wh.execute("INSERT INTO t.x (a) VALUES (:a) /* cut_me */", {"a": 1})
        assert "may have been applied" in str(caught.value), caught.value
        assert "next run" in (caught.value.hint or ""), caught.value.hint
        assert len(fake.cut_statements) == 1
        assert wh.query("SELECT a FROM t.x").to_pylist() == [{"a": 1}]  # once
        assert wh.query("SELECT 1 AS cut_me").to_pylist() == [{"cut_me": 1}]  # reads are still retried
    finally:
        wh.close()


def test_a_read_whose_answer_was_lost_is_retried(fake):
    wh = open_wh(fake, retry_seconds=5)
    try:
        fake.cut_after = "cut_me"
        assert wh.query("SELECT 7 AS cut_me").to_pylist() == [{"cut_me": 7}]
        assert len(fake.cut_statements) == 1
    finally:
        wh.close()


# the writes of a sync whose answer is lost: a statement's text -> what it writes
WRITES = {
    "snapshot-commit": "INSERT INTO `dinsync`.`snap_",
    "acknowledged-keys": "INSERT INTO `dinsync`.`ack_",
    "run-log-start": "INSERT INTO `dinsync`.`runs`",
    "lock-take": "INSERT INTO `dinsync`.`locks`",
    "plan": "CREATE TABLE `dinsync`.`plan_",
    "migration": "ALTER TABLE `dinsync`.`runs` ADD COLUMN `pending`",
}


def snap_exists(target) -> bool:
    with target.fake.lock:
        return bool(target.fake.con.execute("SELECT 1 FROM information_schema.tables WHERE table_name = ?",
                                            ["snap_" + SYNC]).fetchall())


def test_a_lock_whose_take_lost_its_answer_does_not_block_the_next_run(fake):
    """The insert of the lock row applied, its answer lost: the take fails (transient), and the next
    run of the sync in the same process (`dinsync serve`, whose holder is alive) takes the lock."""
    from dinsync.state.store import StateStore

    wh = open_wh(fake, retry_seconds=5)
    try:
        store = StateStore(wh, "dinsync")
        store.migrate()
        fake.cut_after = "INSERT INTO `dinsync`.`locks`"
        with pytest.raises(WarehouseUnavailable):
            store.acquire_lock("s", "run-1")
        assert fake.cut_statements
        store.acquire_lock("s", "run-2")  # before: "already running (run run-1 ...)" until its expiry
        assert [r["run_id"] for r in store.lock_holders("s")] == ["run-2"]
        store.release_lock("s", "run-2")
        assert store.lock_holders("s") == []
    finally:
        wh.close()


@pytest.mark.parametrize("write", list(WRITES))
def test_a_sync_whose_write_lost_its_answer_keeps_one_row_per_key(tmp_path, iterable_sandbox, write):
    """A sync of 20 customers whose write `write` is applied and its answer lost. Before (the
    SDK's replay): the snapshot held every key twice (snapshot-commit; a replayed write of the
    acknowledged keys was harmless: acked.sql takes each key once), the run
    log the run twice (run-log-start); a CREATE TABLE replayed failed as "already exists". Now the
    run, when it fails, fails as a transient error; nothing is held twice, and the next run
    delivers what is missing and sends nothing it committed."""
    target = DatabricksTarget(tmp_path)
    try:
        project, first = first_sync_losing_an_answer(tmp_path, target, iterable_sandbox, WRITES[write])
        if first["exit_code"] != 0:
            error = only_run(first)["error"] if first.get("runs") else str(first)
            assert "may have been applied" in error, error
        if snap_exists(target):
            snap = target.rows(f"SELECT COUNT(*) AS n, COUNT(DISTINCT _key) AS k FROM {target.state('snap_' + SYNC)}")
            assert snap[0]["n"] == snap[0]["k"], snap  # one row per key
        runs = target.rows(f"SELECT run_id, COUNT(*) AS n FROM {target.state('runs')} GROUP BY run_id")
        assert all(r["n"] == 1 for r in runs), runs
        committed = target.snapshot_keys(SYNC) if snap_exists(target) else set()

        requests = project.requests()
        again = project.sync()
        assert again["exit_code"] == 0, again
        run = only_run(again)
        assert run["status"] == "success", run
        assert run["sent"] == 20 - len(committed), (run, len(committed))  # nothing committed is sent again
        assert project.users() == expected_users(customers(range(1, 21)))
        assert target.snapshot_keys(SYNC) == set(expected_users(customers(range(1, 21))))
        snap = target.rows(f"SELECT COUNT(*) AS n FROM {target.state('snap_' + SYNC)}")
        assert snap[0]["n"] == 20, snap
        if run["sent"] == 0:
            assert project.requests() == requests
    finally:
        target.close()


# the writes of rows rejected for their content (parked) whose answer is lost
PARKING = {
    "rejections": "INSERT INTO `dinsync`.`rejections`",
    "parked-rows": "NULL, `p`.`_kh`, NULL, `p`.`_rkh`, `p`.`_fp`",  # park_insert.sql
}


@pytest.mark.parametrize("write", list(PARKING))
def test_a_sync_whose_parking_lost_its_answer_parks_each_row_once(tmp_path, iterable_sandbox, write):
    """Two rows of 20 rejected for their content (an email that is not one): their parking applied,
    its answer lost. Nothing is held twice; the next run delivers what is missing and sends neither
    a delivered nor a parked row again."""
    target = DatabricksTarget(tmp_path)
    try:
        sandbox, thread = iterable_sandbox
        project = Project(tmp_path / "project", target, sandbox, thread, in_process=True)
        project.write()
        data = customers(range(1, 21), email=lambda i: f"not an email {i}" if i in (4, 5) else f"user{i}@example.com")
        target.load("customers", data)
        target.fake.cut_after = PARKING[write]
        first = project.sync()
        assert target.fake.cut_statements, "the write was never made"
        if first["exit_code"] != 0:
            assert "may have been applied" in only_run(first)["error"], first
        snap = target.rows(f"SELECT COUNT(*) AS n, COUNT(DISTINCT _key) AS k FROM {target.state('snap_' + SYNC)}")
        assert snap[0]["n"] == snap[0]["k"], snap  # one row per key
        rejected = target.rows(f"SELECT run_id, key, COUNT(*) AS n FROM {target.state('rejections')} "
                               f"GROUP BY run_id, key")
        assert all(r["n"] == 1 for r in rejected), rejected

        again = project.sync()
        assert again["exit_code"] == 0, again
        third = only_run(project.sync())
        assert (third["sent"], third["rejected"]) == (0, 0), third  # delivered and parked rows stay put
        delivered = {k: v for k, v in expected_users(data).items() if "@" in k}
        assert project.users() == delivered
        parked = target.rows(f"SELECT COUNT(*) AS n FROM {target.state('snap_' + SYNC)} WHERE _pfp IS NOT NULL")
        assert parked == [{"n": 2}], parked
    finally:
        target.close()
