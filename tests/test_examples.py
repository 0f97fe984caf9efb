"""The orchestrator examples (examples/*.py) use only the public Python API, as it is.

Dagster and Airflow are not installed by the test extra (see README, "Python API"), so the
examples are not run here: this reads them and checks every `dinsync.<name>` they use, and the
keyword arguments they pass to the API's methods, against the API itself.
"""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import dinsync
from dinsync import api

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.py"))
METHODS = {"check": api.Project.check, "sync": api.Project.sync, "plan": api.Project.plan,
           "status": api.Project.status, "raise_for_status": api.SyncResult.raise_for_status}


def test_there_are_examples():
    assert {p.name for p in EXAMPLES} >= {"airflow_dag.py", "dagster_job.py"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_uses_the_public_api(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    used = {n.attr for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "dinsync"}
    assert used and used <= set(dinsync.__all__), used - set(dinsync.__all__)
    calls = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in METHODS:
            chain = ast.unparse(node.func.value)
            if node.func.attr != "raise_for_status" and "dinsync.load_project" not in chain:
                continue
            params = inspect.signature(METHODS[node.func.attr]).parameters
            for keyword in node.keywords:
                assert keyword.arg in params, f"{path.name}:{node.lineno}: {node.func.attr}({keyword.arg}=...)"
            calls += 1
    assert calls >= 3  # check, sync and raise_for_status at least
    for field in {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                  and isinstance(n.value, ast.Name) and n.value.id in ("run", "model")}:
        assert field in {f for f in api.Run.__dataclass_fields__} | set(api.ModelCheck.__dataclass_fields__) \
            | {"as_dict"}, field
