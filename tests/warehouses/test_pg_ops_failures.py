"""Operational failures of a PostgreSQL warehouse, through the CLI: another transaction holding
the model's table, a statement timeout. Each fails the run (exit 1) saying what happened and what
to do, and the next run once it is gone converges."""
from __future__ import annotations

import json
import textwrap
import uuid

import psycopg
import pytest

from tests.warehouses.support import PG_DSN, one_sync_project, require_postgres


@pytest.fixture
def schema():
    require_postgres()
    name = f"dinsync_ops_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_DSN, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {name}")
        admin.execute(f"CREATE TABLE {name}.people AS SELECT 'user' || i || '@x.com' AS email, "
                      "'Name ' || i AS first_name FROM generate_series(1, 20) AS i")
    try:
        yield name
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
            admin.execute(f"DROP SCHEMA IF EXISTS {name}_state CASCADE")


def _project(tmp_path, schema, base_url, settings, state_lock_timeout=None):
    warehouse = textwrap.dedent(f"""\
        warehouse:
          type: postgres
          dsn: ${{env:OPS_TEST_PG_DSN}}
          settings: {settings}
        state_schema: {schema}_state
        """)
    if state_lock_timeout is not None:  # (the test's wait for the lock, shorter than the default 15 s)
        warehouse = warehouse.replace("  settings:", f"  state_lock_timeout: {state_lock_timeout}\n  settings:")
    return one_sync_project(tmp_path / "proj", warehouse, base_url, {"first_name": "firstName"},
                            {"OPS_TEST_PG_DSN": PG_DSN})


def _summary(proc):
    return json.loads(proc.stdout) if proc.stdout.startswith("{") else None


def test_a_lock_held_on_the_models_table_is_no_configuration_error(tmp_path, schema, iterable_sandbox):
    """With a `lock_timeout`, a model whose table another transaction holds (a dbt run swapping it
    in, an ALTER TABLE) times out in the command's column check: that was a configuration error
    (exit 3, "model people failed in the warehouse", "run the model's SQL to debug it"), which an
    orchestrator does not retry, for a model that has nothing to fix."""
    sandbox, thread = iterable_sandbox
    cli = _project(tmp_path, schema, thread.url, "{lock_timeout: 1s}")
    select = f"select email, first_name from {schema}.people"
    with psycopg.connect(PG_DSN) as holder:
        holder.execute(f"LOCK TABLE {schema}.people IN ACCESS EXCLUSIVE MODE")
        proc = cli("sync", select)
        holder.rollback()
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "lock timeout" in proc.stderr and "configuration error" not in proc.stderr, proc.stderr
    assert "another transaction holds a lock" in proc.stderr, proc.stderr  # not "changed the same tables"
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(sandbox.users) == 0
    again = cli("sync", select)
    assert again.returncode == 0 and "+20 " in again.stdout, (again.stdout, again.stderr)
    assert len(sandbox.users) == 20
    assert " sent 0," in cli("sync", select).stdout


def test_a_statement_timeout_says_which_setting_to_raise(tmp_path, schema, iterable_sandbox):
    """A plan longer than statement_timeout failed with the hint of a warehouse that could not be
    reached, "run again later": the next run times out the same way; the setting is what to change."""
    sandbox, thread = iterable_sandbox
    cli = _project(tmp_path, schema, thread.url, "{statement_timeout: 300ms}")
    slow = f"select email, first_name from {schema}.people, (select pg_sleep(1)) as s"
    proc = cli("sync", slow)
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "statement timeout" in proc.stderr and "statement_timeout" in proc.stderr, proc.stderr
    assert "run again later" not in proc.stderr, proc.stderr
    assert len(sandbox.users) == 0
    fast = f"select email, first_name from {schema}.people"
    assert cli("sync", fast).returncode == 0 and len(sandbox.users) == 20
    assert " sent 0," in cli("sync", fast).stdout


def test_a_lock_held_on_the_state_is_no_run_holding_the_syncs_lock(tmp_path, schema, iterable_sandbox):
    """Another transaction holds the state's `locks` table (a DBA's LOCK TABLE, a backup tool): the
    insert of the sync's lock row times out. No run holds the sync: "already running (another run
    took its lock just now)", exit 5, would send an operator looking for one."""
    sandbox, thread = iterable_sandbox
    cli = _project(tmp_path, schema, thread.url, "{lock_timeout: 1s}")
    select = f"select email, first_name from {schema}.people"
    assert cli("sync", select).returncode == 0
    with psycopg.connect(PG_DSN) as holder:
        holder.execute(f"LOCK TABLE {schema}_state.locks IN SHARE MODE")  # reads pass, writes wait
        proc = cli("sync", select)
        holder.rollback()
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "lock timeout" in proc.stderr and "already running" not in proc.stderr, proc.stderr
    again = cli("sync", select)
    assert again.returncode == 0 and " sent 0," in again.stdout, (again.stdout, again.stderr)


@pytest.fixture
def reaped_role(schema):
    """A role whose idle sessions the server ends after 1 s (idle_session_timeout, PostgreSQL 14+:
    a DBA's reaper of forgotten sessions), owning the test's schema."""
    name = f"{schema}_reaped"
    with psycopg.connect(PG_DSN, autocommit=True) as admin:
        if admin.info.server_version < 140000:
            pytest.skip("idle_session_timeout is PostgreSQL 14+")
        admin.execute(f"CREATE ROLE {name} LOGIN")
        admin.execute(f"ALTER ROLE {name} SET idle_session_timeout = '1s'")
        admin.execute(f"ALTER SCHEMA {schema} OWNER TO {name}")
        admin.execute(f"ALTER TABLE {schema}.people OWNER TO {name}")
        admin.execute(f"CREATE SCHEMA {schema}_state AUTHORIZATION {name}")
    try:
        yield name
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA IF EXISTS {schema}_state CASCADE")
            admin.execute(f"DROP OWNED BY {name} CASCADE")
            admin.execute(f"DROP ROLE {name}")


def test_sessions_idle_while_the_platform_answers_are_not_ended_by_the_server(tmp_path, schema, reaped_role,
                                                                            iterable_sandbox):
    """A run's own sessions sit idle while the platform answers (between checkpoints, or all the
    send long): a role's idle_session_timeout ended them, and the run failed after sending
    everything ("terminating connection due to idle-session timeout"), every run of a long send."""
    sandbox, thread = iterable_sandbox
    thread.set_faults(latency=2.5)
    dsn = " ".join(p for p in PG_DSN.split() if not p.startswith("user=")) + f" user={reaped_role}"
    warehouse = textwrap.dedent(f"""\
        warehouse:
          type: postgres
          dsn: ${{env:OPS_TEST_PG_DSN}}
        state_schema: {schema}_state
        """)
    cli = one_sync_project(tmp_path / "proj", warehouse, thread.url, {"first_name": "firstName"},
                           {"OPS_TEST_PG_DSN": dsn})
    select = f"select email, first_name from {schema}.people"
    proc = cli("sync", select)
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    assert len(sandbox.users) == 20
    thread.set_faults(latency=0)
    assert " sent 0," in cli("sync", select).stdout


def test_a_lock_held_on_a_state_table_bounds_the_wait_of_status(tmp_path, schema, iterable_sandbox):
    """Another transaction holds the state's `runs` table (an ALTER TABLE, a DBA's LOCK TABLE left
    open in a session): without a `lock_timeout` of the project's, `dinsync status` waited for it
    forever. A statement on the state waits a bounded time, then fails as a transient failure (exit 1)
    saying what holds it; once the lock is gone, status and sync work."""
    sandbox, thread = iterable_sandbox
    cli = _project(tmp_path, schema, thread.url, "{}", state_lock_timeout=1)
    select = f"select email, first_name from {schema}.people"
    assert cli("sync", select).returncode == 0
    with psycopg.connect(PG_DSN) as holder:
        holder.execute(f"LOCK TABLE {schema}_state.runs IN ACCESS EXCLUSIVE MODE")
        try:
            proc = cli("status", select)
        finally:
            holder.rollback()
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "lock timeout" in proc.stderr and "another transaction holds a lock" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert cli("status", select).returncode == 0
    again = cli("sync", select)
    assert again.returncode == 0 and " sent 0," in again.stdout, (again.stdout, again.stderr)


def test_serve_goes_on_while_a_state_table_is_locked(tmp_path, schema, iterable_sandbox):
    """A lock held on the state's `sync_state` table (another session's open transaction) stalled
    `dinsync serve` for ever, at its first read of the syncs' states. Each read of the state now
    gives up after a bounded wait: the service says so, goes on, and runs the sync once the lock is
    gone."""
    import os
    import subprocess
    import sys
    import threading
    import time

    from tests.conftest import TEST_KEY

    sandbox, thread = iterable_sandbox
    cli = _project(tmp_path, schema, thread.url, "{}", state_lock_timeout=1)
    select = f"select email, first_name from {schema}.people"
    assert cli("sync", select).returncode == 0
    root = tmp_path / "proj"
    sync = root / "syncs" / "people.yml"
    sync.write_text(sync.read_text() + "schedule: {every: 1s}\n")
    with psycopg.connect(PG_DSN, autocommit=True) as admin:
        admin.execute(f"UPDATE {schema}.people SET first_name = 'New' WHERE email = 'user1@x.com'")
    env = dict(os.environ, ITERABLE_TEST_KEY=TEST_KEY, OPS_TEST_PG_DSN=PG_DSN)
    lines: list[dict] = []
    with psycopg.connect(PG_DSN) as holder:
        holder.execute(f"LOCK TABLE {schema}_state.sync_state IN ACCESS EXCLUSIVE MODE")
        proc = subprocess.Popen([sys.executable, "-m", "dinsync.cli", "--project-dir", str(root), "--json", "serve"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            reader = threading.Thread(target=lambda: lines.extend(json.loads(x) for x in proc.stdout), daemon=True)
            reader.start()
            deadline = time.monotonic() + 60
            while not any(e["event"] in ("note", "end") for e in lines):  # it said it could not read
                assert proc.poll() is None and time.monotonic() < deadline, (lines, proc.poll())
                time.sleep(0.1)
            holder.rollback()
            while not any(e["event"] == "end" and e["exit_code"] == 0 for e in lines):
                assert proc.poll() is None and time.monotonic() < deadline, (lines, proc.poll())
                time.sleep(0.1)
        finally:
            holder.rollback()
            proc.terminate()
            proc.wait(30)
    stderr = proc.stderr.read()
    events = [e["event"] for e in lines]
    assert events[0] == "serve" and events[1] == "note", lines  # its scheduler went on
    assert "could not read the paused syncs" in lines[1]["message"] and "lock timeout" in lines[1]["message"]
    assert "Traceback" not in stderr, stderr
    assert thread.call(lambda: dict(sandbox.users.get("user1@x.com")["dataFields"]))["firstName"] == "New"


def test_the_state_waits_are_bounded_only_around_state_statements():
    """The bound is transaction-local (a pooler in transaction mode would hand a session's SET to its
    next client) and ends with the state's statement: the plan's statements, before and after, and
    in the same transaction as a state write (a checkpoint's), keep the session's own settings."""
    from dinsync.warehouses import connect

    require_postgres()
    wh = connect("postgres", dsn=PG_DSN)
    try:
        def show() -> tuple:
            return tuple(wh.scalar(f"SHOW {name}") for name in ("lock_timeout", "statement_timeout"))

        assert show() == ("0", "0")
        with wh.state_waits():
            assert show() == ("15s", "5min")
        assert show() == ("0", "0")
        with wh.transaction():
            with wh.state_waits():
                assert show() == ("15s", "5min")
            assert show() == ("0", "0")
        assert show() == ("0", "0")
    finally:
        wh.close()
    wh = connect("postgres", dsn=PG_DSN, state_lock_timeout=3)  # the config's state_lock_timeout
    try:
        with wh.state_waits():
            assert (wh.scalar("SHOW lock_timeout"), wh.scalar("SHOW statement_timeout")) == ("3s", "5min")
    finally:
        wh.close()
    wh = connect("postgres", dsn=PG_DSN, settings={"lock_timeout": "2s"}, state_lock_timeout=3)  # the project's own bound wins
    try:
        with wh.state_waits():
            assert (wh.scalar("SHOW lock_timeout"), wh.scalar("SHOW statement_timeout")) == ("2s", "5min")
    finally:
        wh.close()


def _waiting_on_a_lock(schema: str) -> bool:
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        return bool(conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
            (f"%{schema}_state%",)).fetchone()[0])


def test_sigterm_while_the_run_waits_for_a_lock_on_the_state_cancels_it_then(tmp_path, schema, iterable_sandbox):
    """SIGTERM while a run waited for another transaction's lock on the state's `locks` table (a
    DBA's LOCK TABLE, a backup) to take the sync's lock: the signal did nothing until the wait ended
    (lock_timeout, 15 s by default, here 60 s), then the run was reported `failed` with the lock
    timeout's error and hint (an operator sent looking for a long transaction) while the command
    exited 143. Now the wait is cancelled at once: the run is `cancelled`, nothing was sent, and the
    next run converges."""
    held = "locks"
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import TEST_KEY

    sandbox, thread = iterable_sandbox
    cli = _project(tmp_path, schema, thread.url, "{lock_timeout: 60s}")
    select = f"select email, first_name from {schema}.people"
    assert cli("sync", select).returncode == 0
    with psycopg.connect(PG_DSN) as holder:
        holder.execute(f"LOCK TABLE {schema}_state.{held} IN ACCESS EXCLUSIVE MODE")
        proc = subprocess.Popen([sys.executable, "-m", "dinsync.cli", "--project-dir", str(tmp_path / "proj"),
                                 "--json", "sync"], env=dict(os.environ, ITERABLE_TEST_KEY=TEST_KEY,
                                                             OPS_TEST_PG_DSN=PG_DSN),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while not _waiting_on_a_lock(schema):
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            try:
                out, err = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                pytest.fail("the run went on waiting for the lock after SIGTERM")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            holder.rollback()
    assert proc.returncode == 128 + signal.SIGTERM, (out, err)
    runs = json.loads(out)["runs"]
    assert [r["status"] for r in runs] == ["cancelled"], runs
    assert "lock timeout" not in (runs[0]["error"] or "") and "SIGTERM" in runs[0]["error"], runs
    assert len(sandbox.users) == 20
    again = cli("sync", select)
    assert again.returncode == 0 and " sent 0," in again.stdout, (again.stdout, again.stderr)


def test_a_lock_held_on_the_snapshot_bounds_the_wait_of_a_commit(tmp_path):
    """Another transaction holds the sync's snapshot table (a DBA's VACUUM FULL or LOCK TABLE, an
    analyst's DELETE left open): a checkpoint's commit of acknowledged rows waited for it for ever,
    the run (and its lock) with it, and a SIGTERM could not end the run (its last commit waited
    too: 90 s, as long as the lock was held). The commit waits as long as the state's statements
    do (lock_timeout, 15 s by default; 1 s here), then fails as a lock timeout: nothing of it is
    committed, and the rows are sent again by the next run."""
    import threading

    from dinsync.diff import DiffSpec, Planner
    from dinsync.warehouses.errors import WarehouseLockTimeout
    from tests.warehouses.support import WarehouseUnderTest

    target = WarehouseUnderTest("postgres", tmp_path)
    wh = target.wh
    try:
        wh.state_wait_settings = {"lock_timeout": "1s"}  # (the adapter's 15 s, shortened)
        wh.execute(f'CREATE TABLE "{target.schema}".people AS SELECT \'u\' || i || \'@x.com\' AS email, '
                   "'n' || i AS name FROM generate_series(1, 5) AS i")
        planner = Planner(wh, DiffSpec(sync="s1", model_sql="SELECT * FROM people", key_column="email",
                                       key_normalization="email", fields=[("email", "email"), ("name", "name")],
                                       state_schema=target.state_schema))
        planner.ensure_state()
        planner.plan()
        keys = [k for b in planner.stream_sendable(batch_rows=10) for k in b.column("_key").to_pylist()]
        snapshot = wh.table_name(target.state_schema, planner.snapshot_table)
        with psycopg.connect(PG_DSN) as holder:
            holder.execute(f"LOCK TABLE {snapshot} IN ACCESS EXCLUSIVE MODE")
            # (so that the test ends if the commit waits for ever: its statement is cancelled after 30 s)
            waiter = threading.Timer(30, lambda: psycopg.connect(PG_DSN, autocommit=True).execute(
                "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE %s", (f"%{target.state_schema}%",)))
            waiter.start()
            try:
                with pytest.raises(WarehouseLockTimeout, match="lock timeout"):
                    planner.commit_acknowledged(keys[:3])
            finally:
                waiter.cancel()
                holder.rollback()
        assert wh.scalar(f"SELECT count(*) FROM {snapshot}") == 0  # nothing of it committed
        assert wh.scalar("SHOW lock_timeout") == "0"  # (the bound ended with the commit)
        assert planner.commit_acknowledged(keys) == 5  # once the lock is gone
        assert wh.scalar(f"SELECT count(*) FROM {snapshot}") == 5
    finally:
        target.close()


def test_a_warehouse_error_names_what_the_run_was_doing(tmp_path, schema, iterable_sandbox):
    """A checkpoint's commit that failed (its connection ended, a lock timeout) said "PostgreSQL:
    ... (while running a statement)", as a failure of the plan did: nothing told whether the rows
    sent had been committed. The error names the run's phase; the rows are sent again next run."""
    import threading
    import time

    sandbox, thread = iterable_sandbox
    thread.set_faults(latency=1.5)  # the lock below is taken while the platform answers
    cli = _project(tmp_path, schema, thread.url, "{lock_timeout: 1s}")
    select = f"select email, first_name from {schema}.people"
    done = threading.Event()
    holder = psycopg.connect(PG_DSN)

    def lock_once_sending() -> None:
        while not done.is_set() and not thread.stats()["requests"]:
            time.sleep(0.01)
        if not done.is_set():
            holder.execute(f"LOCK TABLE {schema}_state.snap_people IN ACCESS EXCLUSIVE MODE")

    locker = threading.Thread(target=lock_once_sending)
    locker.start()
    try:
        proc = cli("sync", select)
    finally:
        done.set()
        locker.join()
        holder.rollback()
        holder.close()
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "PostgreSQL: canceling statement due to lock timeout" in proc.stderr, proc.stderr
    assert "the run was committing acknowledged rows" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(sandbox.users) == 20  # delivered, not committed
    thread.set_faults(latency=0)
    again = cli("sync", select)
    assert again.returncode == 0 and " sent 20," in again.stdout, (again.stdout, again.stderr)
    assert " sent 0," in cli("sync", select).stdout


def test_a_table_named_without_its_schema_outside_the_search_path_names_the_search_path(tmp_path, schema,
                                                                                        iterable_sandbox):
    """A model reading `people` unqualified, whose schema is not in `warehouse.search_path`, failed
    with `relation "people" does not exist` and the hint "run the model's SQL in the warehouse to
    debug it": in the user's SQL editor, whose search_path holds the schema, it runs. The hint now
    says where the session looked and how to point it at the table."""
    sandbox, thread = iterable_sandbox
    warehouse = textwrap.dedent(f"""\
        warehouse:
          type: postgres
          dsn: ${{env:OPS_TEST_PG_DSN}}
          search_path: [{schema}_state]
        state_schema: {schema}_state
        """)
    cli = one_sync_project(tmp_path / "proj", warehouse, thread.url, {"first_name": "firstName"},
                           {"OPS_TEST_PG_DSN": PG_DSN})
    proc = cli("validate", "select email, first_name from people")
    assert proc.returncode == 3, (proc.returncode, proc.stdout, proc.stderr)
    assert 'relation "people" does not exist' in proc.stderr, proc.stderr
    assert (f"names without a schema are looked up in the session's search_path (\"{schema}_state\"): write the "
            "table's schema (schema.table), or list it in warehouse.search_path in dinsync.yml") in proc.stderr, proc.stderr
