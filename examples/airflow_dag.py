"""dinsync in Airflow: `dbt build`, then check the models' keys, then sync.

    pip install apache-airflow dinsync
    # copy this file into your dags folder; set DINSYNC_PROJECT_DIR and DBT_PROJECT_DIR
    airflow dags test dinsync_activation

The tasks call the Python API, which loads the project again each time (the manifest of the
`dbt build` that just ran), and fail the way the CLI exits: a blocked model, a failed run or a held
lock fail the task (Airflow retries it); a configuration error or a sync paused by hand fails it
without retries (the next try would fail the same way); warnings are logged and let through. The
return value (the run objects, as the CLI's JSON) goes to XCom. Written for Airflow 3 (`airflow.sdk`), with the
Airflow 2 imports as a fallback.
"""
from __future__ import annotations

import contextlib
import os
from datetime import datetime, timedelta

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import dag, task
    from airflow.sdk.exceptions import AirflowFailException
except ImportError:  # Airflow 2.x
    from airflow.decorators import dag, task
    from airflow.exceptions import AirflowFailException
    from airflow.operators.bash import BashOperator

PROJECT_DIR = os.environ.get("DINSYNC_PROJECT_DIR", "/opt/activation/dinsync_project")
DBT_PROJECT_DIR = os.environ.get("DBT_PROJECT_DIR", "/opt/activation/analytics")
SELECT = os.environ.get("DINSYNC_SELECT", "tag:daily")  # dinsync's selector
DBT_SELECT = os.environ.get("DBT_SELECT", "+tag:daily")  # dbt's: the tagged models and what they read

NOT_RETRIED = {3, 6}  # dinsync's exit codes of a configuration error and of a sync paused by hand


@contextlib.contextmanager
def failing_without_retries_when_permanent():
    """A dinsync error whose exit code says a retry cannot help fails the task at once."""
    import dinsync

    try:
        yield
    except dinsync.DinsyncError as exc:
        if exc.exit_code in NOT_RETRIED:
            raise AirflowFailException(f"{exc} (exit code {exc.exit_code}: not retried)") from exc
        raise


@dag(dag_id="dinsync_activation", schedule="0 6 * * *", start_date=datetime(2025, 1, 1), catchup=False,
     default_args={"retries": 2, "retry_delay": timedelta(minutes=5)}, tags=["dinsync"])
def dinsync_activation():
    dbt_build = BashOperator(task_id="dbt_build", bash_command=f"dbt build --select '{DBT_SELECT}'",
                             cwd=DBT_PROJECT_DIR)

    @task
    def check_keys() -> int:
        import dinsync  # imported by the task, not when the scheduler parses the DAG file

        with failing_without_retries_when_permanent():
            result = dinsync.load_project(PROJECT_DIR).check(select=SELECT)
            for model in result.models:
                print(f"model {model.model}: {model.status}, {model.rows} rows", *model.messages, sep="\n  ")
            result.raise_for_status(allow_warnings=True)  # a blocked model stops here
        return result.exit_code

    @task
    def sync(checked: int) -> list[dict]:
        import dinsync

        with failing_without_retries_when_permanent():
            result = dinsync.load_project(PROJECT_DIR).sync(select=SELECT)
            for run in result.runs:
                print(f"{run.sync}: {run.status}, {run.acknowledged} acknowledged, {run.rejected} rejected"
                      + (f" - {run.error}" if run.error else ""))
            result.raise_for_status(allow_warnings=True)
        return [run.as_dict() for run in result.runs]

    checked = check_keys()
    dbt_build >> checked
    sync(checked)


dinsync_activation()
