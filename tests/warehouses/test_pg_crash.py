"""Crash safety with PostgreSQL as the warehouse (the e2e crash tests run on DuckDB): `dinsync sync`
killed with SIGKILL several times in a row, at moments the sandbox's request count picks (writes in
flight, connections reset after the write was applied, checkpoints), with the model changing
between kills, then run to the end.

After each kill, every key the snapshot holds as delivered holds in Iterable the values the snapshot
says it was sent (the model's of that run). The last run takes the dead runs' lock over at once,
sends exactly the rows not committed (nothing committed is sent again), and leaves every user equal
to the model field by field, the snapshot holding exactly the model's keys, no scratch table and a
run log of `abandoned` runs then `success`.
"""
from __future__ import annotations

import pyarrow as pa
import pytest

from tests.e2e.crash_support import kill_when
from tests.warehouses.test_conformance import SYNC, Project, customers, expected_users, only_run

ROWS = 600
STATE_TABLES = {"events", "locks", "meta", "plan_iterable_users", "rejections", "runs", "snap_iterable_users",
                "sync_state"}


def state_tables(target) -> set[str]:
    return {r["table_name"] for r in target.rows(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = :s", {"s": target.state_schema})}


def delivered(target) -> set[str]:
    """The keys the snapshot holds as delivered: those a run was sending keep their row, with no
    fingerprint (unsettled before sending), until their write is acknowledged."""
    return {r["_key"] for r in target.rows(f"SELECT _key FROM {target.state('snap_' + SYNC)} "
                                           "WHERE _synced_at IS NOT NULL AND _fp IS NOT NULL")}


def changed(ids: range) -> pa.Table:
    """The customers with the plan and first name of `ids` changed (the others' as first synced)."""
    return customers(range(1, ROWS + 1), plan=lambda i: "pro" if i in ids else "free",
                     first_name=lambda i: f"Renamed {i}" if i in ids else f"Name {i}")


@pytest.mark.slow
@pytest.mark.parametrize("kills", [(2, 7, 13), (1, 4, 20)])
def test_sigkills_in_a_row_on_postgres_then_a_run_converges(wh_postgres, iterable_sandbox, tmp_path, kills):
    sandbox, thread = iterable_sandbox
    p = Project(tmp_path / "project", wh_postgres, sandbox, thread)
    p.write(destination_extra="    bulk_max_users: 25\n")
    data = customers(range(1, ROWS + 1))
    wh_postgres.load("customers", data)
    first = p.sync()
    assert first["exit_code"] == 0, first
    thread.set_faults(latency=0.01, jitter=0.02, reset_after_apply_rate=0.05, seed=sum(kills))

    for n, after in enumerate(kills):
        data = changed(range(1 + 150 * n, 301 + 150 * n))  # rows a killed run was sending change again
        wh_postgres.load("customers", data)
        before = p.requests()
        proc = p.start()
        kill_when(proc, lambda: p.requests() - before >= after, within=90)
        want, have = expected_users(data), p.users()
        committed = delivered(wh_postgres)
        bad = {k: (have.get(k), want[k]) for k in committed if have.get(k) != want[k]}
        assert not bad, f"kill {n}: {len(bad)} committed rows do not hold the model's values: {list(bad.items())[:2]}"

    thread.set_faults(latency=0.0, jitter=0.0, reset_after_apply_rate=0.0)
    uncommitted = ROWS - len(delivered(wh_postgres))
    result = p.sync()
    run = only_run(result)
    assert result["exit_code"] == 0, result
    assert (run["status"], run["failed"], run["rejected"]) == ("success", 0, 0)
    assert run["acknowledged"] == uncommitted  # nothing committed was sent again
    assert p.users() == expected_users(data)
    assert wh_postgres.snapshot_keys(SYNC) == set(expected_users(data))
    assert state_tables(wh_postgres) - {"pend_iterable_users"} == STATE_TABLES  # no scratch table left
    assert wh_postgres.run_statuses(SYNC) == ["success", "abandoned", "abandoned", "abandoned", "success"]
