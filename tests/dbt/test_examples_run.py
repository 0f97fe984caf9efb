"""The orchestrator examples, run for real: dbt builds the fixture project, then the Dagster job
(in process) and the Airflow DAG (`airflow dags test`, dbt build -> check -> sync) sync it to the
Iterable sandbox through the Python API."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TEST_KEY
from tests.dbt.conftest import _importable

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"


def need(module: str) -> None:
    if not _importable(module):
        message = f"{module} is needed to run the examples (pip install -e '.[test]')"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def env_for(project, **extra) -> dict:
    return dict(os.environ, ITERABLE_TEST_KEY=TEST_KEY, DINSYNC_PROJECT_DIR=str(project.dir),
                DBT_SEND_ANONYMOUS_USAGE_STATS="false", **extra)


@pytest.mark.slow
def test_dagster_job_checks_then_syncs(dbt_project):
    need("dagster")
    done = subprocess.run([sys.executable, str(EXAMPLES / "dagster_job.py")], env=env_for(dbt_project),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "check_keys - model active: ok, 8 rows" in done.stderr
    assert "iterable_active: success, 8 acknowledged, 0 rejected" in done.stderr
    assert len(dbt_project.sandbox.users) == 8


@pytest.mark.slow
def test_airflow_dag_builds_checks_and_syncs(dbt_project, tmp_path):
    need("airflow")
    # the data changes: the DAG's dbt build must run before the check and the sync
    seed = dbt_project.dbt_dir / "seeds" / "raw_customers.csv"
    seed.write_text(seed.read_text().replace("2,grace@example.com,Grace,free,false",
                                             "2,grace@example.com,Grace,pro,false"))
    home = tmp_path / "airflow"
    (home / "dags").mkdir(parents=True)
    shutil.copy(EXAMPLES / "airflow_dag.py", home / "dags")
    bin_dir = str(Path(sys.executable).parent)  # dbt and airflow of this environment
    env = env_for(dbt_project, AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="false",
                  AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"), DBT_PROJECT_DIR=str(dbt_project.dbt_dir),
                  DBT_PROFILES_DIR=str(dbt_project.dbt_dir),
                  DINSYNC_DBT_WAREHOUSE=str(dbt_project.dbt_dir / "warehouse.duckdb"),
                  PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""))
    airflow = [sys.executable, "-m", "airflow"]
    migrate = subprocess.run(airflow + ["db", "migrate"], env=env, capture_output=True, text=True, timeout=300)
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-2000:]
    done = subprocess.run(airflow + ["dags", "test", "dinsync_activation"], env=env, capture_output=True, text=True,
                          timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "model active: ok, 8 rows" in output
    assert "iterable_active: success, 8 acknowledged, 0 rejected" in output
    assert "Task failed" not in output
    assert dbt_project.sandbox.get_user(email="grace@example.com")["dataFields"]["plan"] == "pro"  # built, then sent
