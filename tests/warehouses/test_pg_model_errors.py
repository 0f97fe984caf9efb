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
