"""SIGTERM while a run plans a slow model (a heavy dbt view): the run stops then, not once the
model's query has ended (minutes later, past an orchestrator's grace period, its lock held all
the while): the warehouse's statement is cancelled, the run is recorded `cancelled`, its lock
released, and the next run plans again."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import TEST_KEY
from tests.warehouses.support import admin_execute, one_sync_project

SLOW_MODELS = {  # each takes far longer than the test waits for the stop
    "duckdb": "SELECT 'a@x.com' AS email, 'pro' AS plan FROM (SELECT sum(a.range * b.range) AS n "
              "FROM range(3000000) a, range(3000000) b) AS s",
    "postgres": "SELECT 'a@x.com' AS email, 'pro' AS plan FROM (SELECT pg_sleep(600.5)) AS s",
}


def _pg_leftovers(schema: str) -> list[int]:
    import psycopg

    from tests.warehouses.support import PG_DSN

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        return [r[0] for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query LIKE %s AND query LIKE %s",
            ("%pg_sleep(600.5)%", f"%{schema}%")).fetchall()]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["duckdb", "postgres", "redshift"])
def test_sigterm_while_planning_a_slow_model_stops_the_run_then(kind, iterable_sandbox, tmp_path, request):
    _, thread = iterable_sandbox
    if kind == "duckdb":
        import duckdb

        duckdb.connect(str(tmp_path / "wh.duckdb")).close()  # dinsync never creates the warehouse file
        yaml, env, schema, statuses = f"warehouse:\n  type: duckdb\n  path: {tmp_path / 'wh.duckdb'}\n", {}, None, None
    else:
        target = request.getfixturevalue("wh_postgres" if kind == "postgres" else "wh_redshift")
        yaml, env, schema, statuses = target.warehouse_yaml(), target.env, target.state_schema, target.run_statuses
    root = tmp_path / "project"
    cli = one_sync_project(root, yaml, thread.url, {"plan": "plan"}, env)
    (root / "models" / "people.sql").write_text("-- primary_key: email\n" + SLOW_MODELS[
        "duckdb" if kind == "duckdb" else "postgres"] + "\n")
    proc = subprocess.Popen([sys.executable, "-m", "dinsync.cli", "--project-dir", str(root), "sync"],
                            env=dict(os.environ, ITERABLE_TEST_KEY=TEST_KEY, DINSYNC_PROGRESS_SECONDS="1", **env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        seen = ""
        while "planning" not in seen:  # (the line comes when the plan starts)
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            seen += proc.stderr.readline()
        time.sleep(1.0)  # the model's query is running
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail("the run went on planning after SIGTERM")
        assert proc.returncode == 128 + signal.SIGTERM, (out, err)
        assert "people cancelled" in out and "while planning: nothing was sent" in err, (out, err)
        assert thread.stats()["requests"] == 0
        if statuses is not None:
            assert statuses("people") == ["cancelled"]

        rerun = cli("sync", "SELECT 'a@x.com' AS email, 'pro' AS plan")  # the lock was released
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        if statuses is not None:
            assert statuses("people") == ["cancelled", "success"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if schema is not None:
            for pid in _pg_leftovers(schema):  # or the schema's DROP waits for them
                admin_execute(f"SELECT pg_terminate_backend({int(pid)})")
