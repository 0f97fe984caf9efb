"""A run killed (`kill -9`, an orchestrator's SIGKILL after its grace period) while PostgreSQL runs
one of its statements: the server must not keep running that statement for the dead client."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from tests.conftest import TEST_KEY
from tests.warehouses.support import admin_execute, one_sync_project

SLEEP = "pg_sleep(600.25)"  # a slow model (a heavy dbt view); the odd length marks its statement


def _backends(schema: str) -> list[tuple]:
    import psycopg

    from tests.warehouses.support import PG_DSN

    # (the sleep is recognised by its wait event, not by its text: pg_stat_activity keeps a query's
    # first kilobyte, which the key's expressions can fill before the model's SQL; the statement
    # names the test's own schema at its start)
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        return conn.execute("SELECT pid, left(query, 40) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                            "AND wait_event = 'PgSleep' AND query LIKE %s", (f"%{schema}%",)).fetchall()


def test_a_statement_of_a_killed_run_is_not_left_running_on_the_server(wh_postgres, iterable_sandbox, tmp_path):
    """PostgreSQL notices a client gone only when it next writes to it: the plan statement of a run
    killed while planning a slow model kept running (minutes, for a heavy view), holding its locks,
    and the next run, which takes the dead run's lock over at once, waited behind it and then failed
    (`duplicate key value violates unique constraint "pg_type_typname_nsp_index"`: both created the
    plan table). dinsync's sessions set `client_connection_check_interval`: the server checks the
    client while it runs a statement and ends it once the client is gone."""
    _, thread = iterable_sandbox
    root = tmp_path / "project"
    cli = one_sync_project(root, wh_postgres.warehouse_yaml(), thread.url, {"plan": "plan"}, wh_postgres.env)
    schema = wh_postgres.state_schema  # (the plan statement names it)
    (root / "models" / "people.sql").write_text(
        f"-- primary_key: email\nSELECT 'a@x.com' AS email, 'pro' AS plan FROM (SELECT {SLEEP}) AS s\n")
    proc = subprocess.Popen([sys.executable, "-m", "dinsync.cli", "--project-dir", str(root), "--json", "sync"],
                            env=dict(os.environ, ITERABLE_TEST_KEY=TEST_KEY, **wh_postgres.env),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not _backends(schema):  # the run is planning: its statement waits on the slow model
            assert proc.poll() is None and time.monotonic() < deadline, "the run never reached its plan"
            time.sleep(0.05)
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 30
        while _backends(schema) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _backends(schema) == [], "the killed run's statement still runs on the server"

        rerun = cli("sync", "SELECT 'a@x.com' AS email, 'pro' AS plan")
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert wh_postgres.run_statuses("people") == ["abandoned", "success"]
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid, _ in _backends(schema):  # (before the fix) or the schema's DROP waits for them
            admin_execute(f"SELECT pg_terminate_backend({int(pid)})")


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("unshare") and hasattr(os, "geteuid") and os.geteuid() == 0),
                    reason="needs `unshare --pid` (root)")
def test_a_live_run_in_another_container_keeps_its_lock(wh_postgres, iterable_sandbox, tmp_path):
    """A run in a container sharing this host name (host networking: `unshare --pid` here) wrote its
    holder as host:1:…, which this namespace judged by its own PID 1: dead, so a second run took the
    live run's lock over at once, sent the whole plan again, and the first failed with 'another run
    took the lock over'. The second run is now refused (exit 5) and the first completes."""
    from tests.warehouses.test_conformance import SYNC, Project, customers

    sandbox, thread = iterable_sandbox
    project = Project(tmp_path / "project", wh_postgres, sandbox, thread)
    project.write(destination_extra="    bulk_max_users: 2\n")
    wh_postgres.load("customers", customers(range(1, 11)))
    thread.hold()  # the first run's requests wait until the second has been refused
    first = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-m", "dinsync.cli",
                              "--project-dir", str(project.root), "--json", "sync"], env=project.env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while thread.held() < 1:
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        second = project.sync(timeout=60)
        thread.release()
        assert second["exit_code"] == 5, second
        assert "already running" in second["runs"][0]["error"], second
        out, err = first.communicate(timeout=120)
        assert first.returncode == 0, (out, err)
        assert json.loads(out)["runs"][0]["acknowledged"] == 10
        assert wh_postgres.run_statuses(SYNC) == ["success"]
    finally:
        thread.release()
        if first.poll() is None:
            first.kill()
            first.wait(10)


def _blocked_on(schema: str) -> list[str]:
    """The statements of the test's state schema waiting for a lock (a run blocked on the test's)."""
    import psycopg

    from tests.warehouses.support import PG_DSN

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        return [q for (q,) in conn.execute("SELECT query FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                                           "AND wait_event_type = 'Lock' AND query LIKE %s", (f"%{schema}%",))]


def _state_tables(schema: str) -> set[str]:
    import psycopg

    from tests.warehouses.support import PG_DSN

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        return {t for (t,) in conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                                           (schema,))}


def _people(plan: str) -> str:
    return " UNION ALL ".join(f"SELECT 'u{i}@x.com' AS email, '{plan}' AS plan" for i in range(1, 6))


@pytest.mark.parametrize("statement", ["unsettle", "commit"])
def test_the_scratch_tables_of_a_run_killed_midway_are_dropped_by_the_next_run(
        wh_postgres, iterable_sandbox, tmp_path, statement):
    """A run killed while it forgot what the rows it sends had received (unsettle_<sync>) or while
    it committed a checkpoint (ack_<sync>, acked_<sync>) left those tables in the state schema,
    and a next run that had nothing to send (the model went back) never dropped them: only a
    run reaching the same step did. Every run now drops a dead run's scratch tables first. The
    kill lands at that statement: the test holds a SHARE lock on the snapshot, which the
    statement's write waits for."""
    import psycopg

    from tests.warehouses.support import PG_DSN

    _, thread = iterable_sandbox
    root = tmp_path / "project"
    cli = one_sync_project(root, wh_postgres.warehouse_yaml(), thread.url, {"plan": "plan"}, wh_postgres.env)
    schema = wh_postgres.state_schema
    assert cli("sync", _people("free")).returncode == 0
    (root / "models" / "people.sql").write_text(f"-- primary_key: email\n{_people('pro')}\n")
    scratch = {"unsettle": {"unsettle_people"}, "commit": {"ack_people", "acked_people"}}[statement]
    with psycopg.connect(PG_DSN) as blocker:
        blocker.execute(f'LOCK TABLE "{schema}".snap_people IN SHARE MODE')
        proc = subprocess.Popen([sys.executable, "-m", "dinsync.cli", "--project-dir", str(root), "sync"],
                                env=dict(os.environ, ITERABLE_TEST_KEY=TEST_KEY, **wh_postgres.env),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while True:  # the unsettle's DELETE is the run's first write to the snapshot, a commit's next
                assert proc.poll() is None and time.monotonic() < deadline, "the run never wrote its snapshot"
                blocked = _blocked_on(schema)
                if blocked and (statement == "unsettle") == ("unsettle_people" in blocked[0]):
                    break
                if blocked:  # the unsettle: let it through to the commit
                    blocker.rollback()
                    while _blocked_on(schema):
                        time.sleep(0.01)
                    blocker.execute(f'LOCK TABLE "{schema}".snap_people IN SHARE MODE')
                time.sleep(0.01)
            proc.kill()
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
            blocker.rollback()
    assert scratch <= _state_tables(schema)  # (what the killed run left)

    # nothing to send: back to what was delivered (the unsettle did not commit), or the rows whose
    # commit was cut short (forgotten, sent again if they stay) left the model
    rerun = cli("sync", _people("free") if statement == "unsettle" else f"{_people('free')} LIMIT 0")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert _state_tables(schema) & scratch == set(), "a dead run's scratch tables are still there"


@pytest.mark.parametrize("write", ["unsettle", "removed"])
def test_a_sigterm_while_a_write_to_the_snapshot_waits_for_a_lock_cancels_the_run(
        wh_postgres, iterable_sandbox, tmp_path, write):
    """Before sending, a run makes the snapshot forget what it delivered for the rows it is about to
    send (`unsettle`: one DELETE + INSERT on the snapshot); after sending, it removes the rows that
    left the model (`removed`). A SIGTERM while either write waited for another transaction's lock
    on the snapshot (a VACUUM FULL, an analyst's open transaction) was not heard: the run waited
    for the state's lock_timeout, then was recorded `failed` with the lock timeout's error and hint
    while exiting 143. Such a run is cancelled now, as a stop while planning is (the statement is
    cancelled, its transaction changed nothing): nothing sent, the removed rows left for the next run."""
    import json
    import signal

    import psycopg

    from tests.warehouses.support import PG_DSN

    _, thread = iterable_sandbox
    root = tmp_path / "project"
    cli = one_sync_project(root, wh_postgres.warehouse_yaml(), thread.url, {"plan": "plan"}, wh_postgres.env)
    schema = wh_postgres.state_schema
    assert cli("sync", _people("free")).returncode == 0
    requests = thread.stats()["requests"]
    model = _people("pro") if write == "unsettle" else f"SELECT * FROM ({_people('free')}) AS p WHERE email <> 'u1@x.com'"
    (root / "models" / "people.sql").write_text(f"-- primary_key: email\n{model}\n")
    with psycopg.connect(PG_DSN) as blocker:
        blocker.execute(f'LOCK TABLE "{schema}".snap_people IN SHARE MODE')  # held until the run has ended
        proc = subprocess.Popen([sys.executable, "-m", "dinsync.cli", "--project-dir", str(root), "--json", "sync"],
                                env=dict(os.environ, ITERABLE_TEST_KEY=TEST_KEY, **wh_postgres.env),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while not _blocked_on(schema):  # (the run's first write to the snapshot, either way)
                assert proc.poll() is None and time.monotonic() < deadline, "the run never wrote its snapshot"
                time.sleep(0.01)
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
            blocker.rollback()
    [run] = json.loads(out)["runs"]
    assert (proc.returncode, run["status"]) == (143, "cancelled"), (run["error"], err)
    assert run["error"].startswith("stopped by SIGTERM"), run["error"]
    left = "the rest is sent by" if write == "unsettle" else "the rows that left the model are removed from the snapshot by"
    assert f"{left} the next run" in run["error"], run["error"]
    assert thread.stats()["requests"] == requests  # nothing was sent
    assert len(wh_postgres.snapshot_keys("people")) == 5  # (nothing forgotten, nothing removed)
    rerun = cli("sync", model)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert wh_postgres.run_statuses("people") == ["success", "cancelled", "success"]
    assert len(wh_postgres.snapshot_keys("people")) == (5 if write == "unsettle" else 4)
