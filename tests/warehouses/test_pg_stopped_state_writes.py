"""A stopped run's writes to the state schema outside its checkpoints (the snapshot's new columns,
the sync's records in `meta` before planning and after sending, the rejection rows of the plan,
the daily deletion of old rejection rows) waiting for another transaction's lock: a SIGTERM ends
the wait, as it does a checkpoint's (test_pg_stopped_writes.py). The state's lock_timeout is 10
minutes here: a run that waited for it would outlast the test's bound (60 s after the signal)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import psycopg
import pytest

from tests.conftest import TEST_KEY
from tests.warehouses.support import PG_DSN, one_sync_project
from tests.warehouses.test_pg_stopped_writes import SETTINGS, _blocked_on, _people, _stop_while_blocked, _terminated


def _project(wh, thread, root):
    cli = one_sync_project(root, wh.warehouse_yaml().replace("state_schema", SETTINGS + "state_schema"), thread.url,
                           {"plan": "plan"}, wh.env)
    return cli, ["--project-dir", str(root)], dict(os.environ, ITERABLE_TEST_KEY=TEST_KEY, **wh.env)


def _tiered(plan: str) -> str:
    return f"SELECT p.*, 'gold' AS tier FROM ({_people(plan)}) AS p"


def _users(sandbox, thread) -> dict[str, dict]:
    return thread.call(lambda: {u["email"]: u.get("dataFields", {}) for u in sandbox.users})


def _map_tier(root) -> None:
    """The sync maps one more field (`tier`): its next run adds a snapshot column and records the
    new mapping before planning."""
    sync = root / "syncs" / "people.yml"
    sync.write_text(sync.read_text() + "  tier: tier\n")


@pytest.mark.parametrize("table, hold", [("snap_people", "SELECT count(*) FROM {table}"),
                                         ("meta", "LOCK TABLE {table} IN SHARE MODE")],
                         ids=["snapshot column behind an analyst's read", "mapping record behind a lock"])
def test_a_sigterm_while_a_new_mapping_waits_for_a_lock_cancels_the_run(
        wh_postgres, iterable_sandbox, tmp_path, table, hold):
    """A field newly mapped adds its column to the snapshot (ALTER TABLE) before planning, which waits
    for every other transaction that read the snapshot (an analyst's session left open in a BI
    tool), then the run records the new mapping in `meta`. A SIGTERM while either waited was not
    heard: the ALTER has no bound of dinsync's (only the settings' lock_timeout, if any), the
    record waited for the lock_timeout, then the run failed with it. The run is cancelled now,
    nothing sent; the next run adds the column and sends the new field."""
    sandbox, thread = iterable_sandbox
    root = tmp_path / "project"
    cli, args, env = _project(wh_postgres, thread, root)
    assert cli("sync", _tiered("free")).returncode == 0
    _map_tier(root)
    code, run, err = _stop_while_blocked(args, env, wh_postgres.state_schema, table, hold=hold)
    assert (code, run["status"]) == (143, "cancelled"), (run["error"], err)
    assert "nothing was sent" in run["error"], run["error"]
    assert all("tier" not in fields for fields in _users(sandbox, thread).values())
    assert wh_postgres.run_statuses("people") == ["success", "cancelled"]
    rerun = cli("sync", _tiered("free"))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert _users(sandbox, thread) == {f"u{i}@x.com": {"plan": "free", "tier": "gold"} for i in range(1, 6)}


def test_a_sigterm_while_the_plans_rejection_rows_wait_for_a_lock_cancels_the_run(
        wh_postgres, iterable_sandbox, tmp_path):
    """Once planned, a run lists the rows it skips (a NULL key) in `rejections` before sending: a
    SIGTERM while that INSERT waited for another transaction's lock on the table waited for the
    lock_timeout. The run is cancelled now, nothing sent; the next run sends the changes."""
    sandbox, thread = iterable_sandbox
    root = tmp_path / "project"
    cli, args, env = _project(wh_postgres, thread, root)
    assert cli("sync", _people("free")).returncode == 0
    model = f"{_people('pro')} UNION ALL SELECT NULL AS email, 'pro' AS plan"
    (root / "models" / "people.sql").write_text(f"-- primary_key: email\n{model}\n")
    code, run, err = _stop_while_blocked(args, env, wh_postgres.state_schema, "rejections")
    assert (code, run["status"]) == (143, "cancelled"), (run["error"], err)
    assert "nothing was sent" in run["error"], run["error"]
    assert {fields["plan"] for fields in _users(sandbox, thread).values()} == {"free"}
    assert wh_postgres.run_statuses("people") == ["success", "cancelled"]
    rerun = cli("sync", model)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert _users(sandbox, thread) == {f"u{i}@x.com": {"plan": "pro"} for i in range(1, 6)}


def test_a_sigterm_while_the_sync_records_what_it_writes_behind_a_lock_cancels_the_run(
        wh_postgres, iterable_sandbox, tmp_path):
    """Before sending, a sync without a record of writing its fields (`wrote:` in `meta`: a state of
    a dinsync that kept none, or a run killed before it wrote them) records them: a SIGTERM while
    that write waited for another transaction's lock on the table waited for the lock_timeout. The
    run is cancelled now, nothing sent; the next run records them and sends."""
    sandbox, thread = iterable_sandbox
    root = tmp_path / "project"
    cli, args, env = _project(wh_postgres, thread, root)
    assert cli("sync", _people("free")).returncode == 0
    meta = wh_postgres.state("meta")
    wh_postgres.execute(f"DELETE FROM {meta} WHERE key LIKE :k", {"k": "wrote:%"})
    (root / "models" / "people.sql").write_text(f"-- primary_key: email\n{_people('pro')}\n")
    code, run, err = _stop_while_blocked(args, env, wh_postgres.state_schema, "meta")
    assert (code, run["status"]) == (143, "cancelled"), (run["error"], err)
    assert "nothing was sent" in run["error"], run["error"]
    assert {fields["plan"] for fields in _users(sandbox, thread).values()} == {"free"}
    assert wh_postgres.run_statuses("people") == ["success", "cancelled"]
    rerun = cli("sync", _people("pro"))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert _users(sandbox, thread) == {f"u{i}@x.com": {"plan": "pro"} for i in range(1, 6)}
    assert wh_postgres.rows(f"SELECT count(*) AS n FROM {meta} WHERE key LIKE :k", {"k": "wrote:%"}) == [{"n": 1}]


def test_a_sigterm_while_the_destination_record_waits_for_a_lock_after_sending_ends_the_run(
        wh_postgres, iterable_sandbox, tmp_path):
    """After sending, a run records the destination and matching field its snapshot describes in
    `meta` (a first run, or a state written before dinsync recorded the matching field: no
    `match:` record). A SIGTERM while that write waited for another transaction's lock on the table
    waited for the lock_timeout. The run ends `cancelled` now, what it committed kept; the next run
    records it and sends nothing more."""
    sandbox, thread = iterable_sandbox
    root = tmp_path / "project"
    cli, args, env = _project(wh_postgres, thread, root)
    assert cli("sync", _people("free")).returncode == 0
    meta = wh_postgres.state("meta")
    wh_postgres.execute(f"DELETE FROM {meta} WHERE key = :k", {"k": "match:people"})
    (root / "models" / "people.sql").write_text(f"-- primary_key: email\n{_people('pro')}\n")
    code, run, err = _stop_while_blocked(args, env, wh_postgres.state_schema, "meta")
    assert (code, run["status"]) == (143, "cancelled"), (run["error"], err)
    assert "sending was over" in run["error"], run["error"]
    assert run["acknowledged"] == 5
    assert _users(sandbox, thread) == {f"u{i}@x.com": {"plan": "pro"} for i in range(1, 6)}
    assert wh_postgres.run_statuses("people") == ["success", "cancelled"]
    assert wh_postgres.rows(f"SELECT value FROM {meta} WHERE key = :k", {"k": "match:people"}) == []
    sent = thread.stats()["requests"]
    rerun = cli("sync", _people("pro"))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert thread.stats()["requests"] == sent  # (nothing left to send)
    assert wh_postgres.rows(f"SELECT value FROM {meta} WHERE key = :k", {"k": "match:people"}) == [
        {"value": "email"}]
    assert wh_postgres.run_statuses("people") == ["success", "cancelled", "success"]


def test_a_sigterm_while_old_rejection_rows_wait_for_a_lock_to_be_deleted_ends_the_run(
        wh_postgres, iterable_sandbox, tmp_path):
    """Once a day a run deletes the sync's old rejection rows, after recording its end: a SIGTERM
    while that DELETE waited for another transaction's lock on `rejections` waited for the
    lock_timeout. The run ends now, as recorded (its work was done); the next one deletes them."""
    sandbox, thread = iterable_sandbox
    root = tmp_path / "project"
    cli, args, env = _project(wh_postgres, thread, root)
    assert cli("sync", _people("free")).returncode == 0
    (root / "models" / "people.sql").write_text(f"-- primary_key: email\n{_people('pro')}\n")
    code, run, err = _stop_while_blocked(args, dict(env, DINSYNC_REJECTIONS_DAYS="0.00001"),  # (due at every run)
                                         wh_postgres.state_schema, "rejections")
    assert (code, run["status"]) == (143, "success"), (run["error"], err)
    assert "the next run deletes them" in err, err
    assert _users(sandbox, thread) == {f"u{i}@x.com": {"plan": "pro"} for i in range(1, 6)}
    assert wh_postgres.run_statuses("people") == ["success", "success"]
    sent = thread.stats()["requests"]
    rerun = cli("sync", _people("pro"))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert thread.stats()["requests"] == sent  # (nothing left to send)
    assert wh_postgres.run_statuses("people") == ["success", "success", "success"]


@pytest.mark.parametrize("table, mode, planning", [
    ("locks", "SHARE", 6),  # the lock confirmed before removing rows (its last confirmation 5 s old or more)
    ("runs", "ACCESS EXCLUSIVE", 1),  # the segment of the last good run, read for the warnings
])
def test_a_sigterm_while_the_run_after_sending_waits_for_a_lock_on_the_state_ends_it(
        wh_postgres, iterable_sandbox, tmp_path, table, mode, planning):
    """Once sending is over, a run confirms it still holds the sync's lock (an UPDATE of `locks`, when
    its last confirmation is 5 s old) and reads the last good run's segment in `runs`: a SIGTERM
    while either waited for another transaction's lock on the table (a DBA's LOCK TABLE; a read
    waits only for an ACCESS EXCLUSIVE one, an ALTER TABLE's) waited for the lock_timeout. The run
    ends `cancelled` now; the next run completes."""
    _, thread = iterable_sandbox
    root = tmp_path / "project"
    cli, args, env = _project(wh_postgres, thread, root)
    model = f"SELECT p.* FROM ({_people('free')}) AS p, (SELECT pg_sleep({planning})) AS s"  # (time to lock it)
    assert cli("sync", model).returncode == 0
    schema = wh_postgres.state_schema
    with psycopg.connect(PG_DSN) as blocker:
        proc = subprocess.Popen([sys.executable, "-m", "dinsync.cli", *args, "--json", "sync"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while not wh_postgres.rows(f"SELECT 1 FROM {wh_postgres.state('runs')} WHERE status = 'running'"):
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.02)
            blocker.execute(f'LOCK TABLE "{schema}".{table} IN {mode} MODE')  # (the run is planning)
            while not _blocked_on(schema, table):
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.02)
            out, err = _terminated(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
            blocker.rollback()
    [run] = json.loads(out)["runs"]
    assert (proc.returncode, run["status"]) == (143, "cancelled"), (run["error"], err)
    assert "sending was over" in run["error"], run["error"]
    rerun = cli("sync", model)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert wh_postgres.run_statuses("people") == (
        ["success", "cancelled", "success"] if table == "locks" else ["success", "abandoned", "success"])
