"""The scenario the replay tests share: a first sync of 20 customers whose write holding `marker`
is applied by the (fake) warehouse and its answer lost (the fake's `cut_after`)."""
from __future__ import annotations

from tests.warehouses.test_conformance import Project, customers


def first_sync_losing_an_answer(tmp_path, target, iterable_sandbox, marker: str) -> tuple[Project, dict]:
    """The project and what its first sync returned; asserts the write was made."""
    sandbox, thread = iterable_sandbox
    project = Project(tmp_path / "project", target, sandbox, thread, in_process=True)
    project.write()
    target.load("customers", customers(range(1, 21)))
    target.fake.cut_after = marker
    first = project.sync()
    assert target.fake.cut_statements, "the write was never made"
    return project, first
