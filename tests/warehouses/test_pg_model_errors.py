"""A model whose rows fail on PostgreSQL (division by zero on one row, a cast of one value): the
error names the model file, as a DuckDB error naming its line does. PostgreSQL names no line for
such errors (SQLSTATE class 22, data exceptions), so the run failed with "PostgreSQL: division by
zero (while running a statement)", not saying it was the model, nor which."""
from __future__ import annotations

import pytest

from tests.warehouses.test_conformance import written_project


@pytest.fixture
def project(tmp_path, wh_postgres, iterable_sandbox):
    return written_project(tmp_path, wh_postgres, iterable_sandbox, rows=300)


@pytest.mark.parametrize("expression, error", [
    ("100 / (300 - id)", "division by zero"),
    ("CAST(CASE WHEN id = 299 THEN 'x' ELSE '1' END AS INTEGER)", 'invalid input syntax for type integer: "x"'),
])
def test_a_value_error_in_the_models_rows_names_the_model(project, expression, error):
    (project.root / "models" / "customers.sql").write_text(
        "-- primary_key: id\n-- model_type: user\n"
        f"select id, email, first_name, {expression} as plan, ltv, vip\nfrom customers\n")
    result = project.sync()
    assert result["exit_code"] == 1, result
    [run] = result["runs"]
    assert run["error"].startswith("models/customers.sql: model customers failed in the warehouse on a value of "
                                   f"its rows: PostgreSQL: {error}"), run["error"]
    assert run["hint"] == "run the model's SQL in the warehouse to debug it"
    assert project.requests() == 0


def test_a_dbt_relation_dropped_while_the_run_plans_says_to_run_again_once_dbt_built_it(tmp_path, wh_postgres,
                                                                                        iterable_sandbox):
    """A dbt run rebuilding a model drops its relation (dbt-postgres drops the old table with
    CASCADE, taking the views reading it along) while a sync plans from it: the run failed
    naming the relation, with the hint "check the names in the model SQL, the database and the
    state schema", where the names come from dbt's manifest and were right a moment before. The
    hint now names the dbt models and says to run again once dbt has built them."""
    import json
    import time

    import psycopg

    from tests.dbt.test_hand_manifest import hand_project
    from tests.warehouses.support import PG_DSN

    project = written_project(tmp_path, wh_postgres, iterable_sandbox, rows=30)
    schema = wh_postgres.model_schema
    hand_project(tmp_path / "dbt")  # analytics/: the dbt project, its manifest naming the relation
    manifest_path = tmp_path / "dbt" / "analytics" / "target" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["metadata"]["adapter_type"] = "postgres"
    manifest["nodes"]["model.analytics.customers"]["relation_name"] = f'"test"."{schema}"."customers"'
    manifest_path.write_text(json.dumps(manifest))
    yml = project.root / "dinsync.yml"
    yml.write_text(yml.read_text() + "dbt: {project_dir: ../dbt/analytics}\n")
    (project.root / "models" / "customers.sql").write_text(
        "-- primary_key: id\n-- model_type: user\nselect c.id, c.email, c.first_name, c.plan, c.ltv, c.vip\n"
        "from {{ ref('customers') }} as c cross join (select pg_sleep(0.75)) as s\n")
    assert project.sync()["exit_code"] == 0
    requests = project.requests()
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'UPDATE "{schema}".customers SET plan = \'pro\' WHERE id = 1')
        proc = project.start()
        deadline = time.monotonic() + 60
        while not conn.execute("SELECT 1 FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND "
                               "pid <> pg_backend_pid() AND query LIKE %s", (f"%{schema}%",)).fetchall():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.02)
        conn.execute(f'DROP TABLE "{schema}".customers')  # once the statement reading it ends
        out, err = proc.communicate(timeout=120)
    [run] = json.loads(out)["runs"]
    assert proc.returncode == 1, (out, err)
    assert 'relation "customers" does not exist' in run["error"] or f'"{schema}.customers"' in run["error"], run
    assert run["error"].startswith("models/customers.sql:"), run["error"]
    assert "dbt models customers" in run["hint"] and "dbt build" in run["hint"], run["hint"]
    assert project.requests() == requests  # nothing sent
