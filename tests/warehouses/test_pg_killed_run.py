"""A run killed (`kill -9`, an orchestrator's SIGKILL after its grace period) while PostgreSQL runs
one of its statements: the server must not keep running that statement for the dead client."""
from __future__ import annotations

import os
import subprocess
import sys
import time

from tests.conftest import TEST_KEY
from tests.warehouses.support import admin_execute, one_sync_project

SLEEP = "pg_sleep(600.25)"  # a slow model (a heavy dbt view); the odd length marks its statement


def _backends(schema: str) -> list[tuple]:
    import psycopg

    from tests.warehouses.support import PG_DSN

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        return conn.execute("SELECT pid, left(query, 40) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                            "AND query LIKE %s AND query LIKE %s", (f"%{SLEEP}%", f"%{schema}%")).fetchall()


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
