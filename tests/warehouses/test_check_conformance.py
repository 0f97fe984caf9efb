"""`dinsync check` on every warehouse of the conformance suite: NULL and duplicated keys counted
with SQL in the warehouse (DuckDB, PostgreSQL, Redshift through PostgreSQL), through the CLI, with
the same figures as the sync's own plan."""
from __future__ import annotations

import json
import subprocess
import sys

import pyarrow as pa

from dinsync.errors import ExitCode
from tests.warehouses.test_conformance import SYNC, Project, customers  # noqa: F401 (fixtures below)


def check(project: Project, *args: str) -> tuple[dict, int]:
    done = subprocess.run([sys.executable, "-m", "dinsync.cli", "--project-dir", str(project.root), "--json",
                           "check", *args], env=project.env(), capture_output=True, text=True, timeout=120)
    try:
        return json.loads(done.stdout), done.returncode
    except ValueError:
        raise AssertionError(f"no JSON from dinsync check (exit {done.returncode}): {done.stdout!r} {done.stderr!r}")


def test_check_counts_keys_in_the_warehouse(tmp_path, target, iterable_sandbox):
    sandbox, thread = iterable_sandbox
    project = Project(tmp_path / "project", target, sandbox, thread)
    project.write()
    odd = pa.table({
        "id": pa.array([201, 202, 203, 204, 204], pa.int64()),
        "email": [None, "   ", "USER5@example.com", " user5@example.com", "user6@Example.com"],
        "first_name": ["Nobody", "Blank", "Five bis", "Five ter", "Six bis"],
        "plan": ["free"] * 5,
        "ltv": pa.array([0.0] * 5, pa.float64()),
        "vip": [False] * 5,
    })
    target.load("customers", pa.concat_tables([customers(range(1, 101)), odd]))
    data, code = check(project)
    assert code == ExitCode.WARNINGS, data
    model, = data["models"]
    email, pk = model["keys"]
    assert model["rows"] == 105 and model["status"] == "warning"
    # emails trimmed and lowercased as the sync reads them; blank counts as NULL
    assert (email["null_keys"], email["duplicate_keys"], email["duplicate_rows"]) == (2, 2, 5)
    assert email["sample"] == [{"key": "user5@example.com", "rows": 3}, {"key": "user6@example.com", "rows": 2}]
    assert (pk["column"], pk["null_keys"], pk["duplicate_keys"], pk["sample"]) == ("id", 0, 1, [{"key": "204", "rows": 2}])
    run = project.sync()["runs"][0]  # the sync's plan counts the same, in its own pass
    assert (run["status"], run["null_keys"], run["duplicate_keys"], run["acknowledged"]) == ("warning", 2, 2, 98)
