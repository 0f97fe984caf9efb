"""Which failures of the Airflow example's tasks Airflow retries, and of the Dagster example's ops
Dagster retries: a retry can help a failed run (exit code 1) or a held lock (5), never a
configuration error (3) or a sync paused by hand (6)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.dbt.test_examples_run import need

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

PROJECT = """\
version: 1
warehouse: {type: duckdb, path: w.duckdb}
destinations:
  iterable: {type: iterable, api_key: "${env:ITERABLE_KEY}", base_url: "http://127.0.0.1:9"}
"""
SYNC = """\
model: people
destination: iterable
service: users
mode: upsert
tags: [daily]
match: {column: email, field: email}
fields: {email: email}
"""

CALL_THE_TASKS = textwrap.dedent("""
    import importlib.util, sys
    spec = importlib.util.spec_from_file_location("airflow_dag", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = module.dinsync_activation()
    for task_id, args in (("check_keys", ()), ("sync", (0,))):
        try:
            dag.get_task(task_id).python_callable(*args)
        except Exception as exc:
            print(task_id, type(exc).__name__)
""")

CALL_THE_OPS = textwrap.dedent("""
    import importlib.util, sys
    import dagster as dg
    spec = importlib.util.spec_from_file_location("dagster_job", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for op, args in ((module.check_keys, ()), (module.sync, (0,))):
        print(op.name, "policy", op.retry_policy.max_retries, op.retry_policy.delay)
        try:
            op(dg.build_op_context(), module.Selection(), *args)
        except dg.Failure as exc:
            print(op.name, "Failure", "allow_retries", exc.allow_retries)
        except Exception as exc:
            print(op.name, type(exc).__name__)
""")


def project_with_a_held_warehouse(tmp_path, broken: str | None):
    """A project (its dinsync.yml `broken` when given) whose DuckDB file another connection holds:
    yields the environment a task of the examples runs in."""
    import duckdb

    project = tmp_path / "project"
    project.mkdir()
    (project / "dinsync.yml").write_text(broken or PROJECT)
    (project / "models").mkdir()
    (project / "models" / "people.sql").write_text("-- primary_key: id\nselect 1 as id, 'a@example.com' as email\n")
    duckdb.connect(str(project / "w.duckdb")).close()
    (project / "syncs").mkdir()
    (project / "syncs" / "people.yml").write_text(SYNC)
    return project, duckdb.connect(str(project / "w.duckdb"))  # (another process's lock: a DuckDB file opens once)


@pytest.mark.slow
@pytest.mark.parametrize("broken, raised", [
    ("version: 2\n", "AirflowFailException"),  # a configuration error: the same on every try
    (None, "LockBusyError"),  # the DuckDB file held by another process: the next try may run
])
def test_airflow_retries_only_what_a_retry_can_help(tmp_path, broken, raised):
    """Every failure was raised as is: Airflow retried a configuration error (exit code 3) twice,
    5 minutes apart, before anyone heard of it. Now it fails the task at once (AirflowFailException)."""
    need("airflow")
    project, holder = project_with_a_held_warehouse(tmp_path, broken)
    try:
        env = {"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path / "airflow"), "DINSYNC_PROJECT_DIR": str(project), "ITERABLE_KEY": "k" * 20,
               "AIRFLOW__CORE__LOAD_EXAMPLES": "false", "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        done = subprocess.run([sys.executable, "-c", CALL_THE_TASKS, str(EXAMPLES / "airflow_dag.py")], env=env,
                              capture_output=True, text=True, timeout=300)
    finally:
        holder.close()
    assert done.stdout.split("\n")[:2] == [f"check_keys {raised}", f"sync {raised}"], done.stdout + done.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("broken, failed", [
    ("version: 2\n", "Failure allow_retries False"),  # a configuration error: the same on every try
    (None, "LockBusyError"),  # the DuckDB file held by another process: retried by the op's policy
])
def test_dagster_retries_only_what_a_retry_can_help(tmp_path, broken, failed):
    """The ops had no retry policy: a lock held a moment longer by the previous run, or a failed
    run, failed the job for good. Now both ops are retried twice, 5 minutes apart, except for a
    failure a retry cannot help, raised as a `dg.Failure` that allows no retry."""
    need("dagster")
    project, holder = project_with_a_held_warehouse(tmp_path, broken)
    try:
        env = {"PATH": "/usr/bin:/bin", "DAGSTER_HOME": str(tmp_path / "dagster"), "DINSYNC_PROJECT_DIR": str(project),
               "ITERABLE_KEY": "k" * 20, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        (tmp_path / "dagster").mkdir()
        done = subprocess.run([sys.executable, "-c", CALL_THE_OPS, str(EXAMPLES / "dagster_job.py")], env=env,
                              capture_output=True, text=True, timeout=300)
    finally:
        holder.close()
    assert done.stdout.split("\n")[:4] == ["check_keys policy 2 300", f"check_keys {failed}",
                                            "sync policy 2 300", f"sync {failed}"], done.stdout + done.stderr[-3000:]
