"""The end-to-end check of one retry budget per warehouse outage, shared by the BigQuery and
Databricks retry tests: a `dinsync sync` whose warehouse (a fake with a "gone" mode that counts
attempts per request) goes away at its first write of acknowledged keys fails, having retried only
the first failing request; the next run, the warehouse back, delivers everything."""
from __future__ import annotations

import json
import subprocess
from typing import Callable


def sync_through_an_outage(target, tmp_path, iterable_sandbox, gone_after: str, back: Callable[[], None],
                           first_error: str | None = None) -> None:
    from tests.warehouses.test_conformance import Project, customers, expected_users, only_run

    try:
        sandbox, thread = iterable_sandbox
        project = Project(tmp_path / "project", target, sandbox, thread)
        project.write()
        target.load("customers", customers(range(1, 21)))
        target.fake.gone_after = gone_after
        try:
            failed = project.sync(timeout=120)
        except subprocess.TimeoutExpired:
            raise AssertionError("the sync was still retrying after 120 s") from None
        assert target.fake.gone, "the run never wrote acknowledged keys"
        assert failed["exit_code"] != 0, failed
        assert "retry_seconds" in json.dumps(failed), failed
        if first_error is not None:
            error = only_run(failed)["error"]
            assert first_error in error, error  # the first failure's error
        retried = {rid: n for rid, n in target.fake.gone_requests.items() if n > 1}
        assert len(retried) == 1, target.fake.gone_requests  # the first failing request only
        back()
        again = project.sync(timeout=120)
        assert again["exit_code"] == 0, only_run(again).get("error")
        assert project.users() == expected_users(customers(range(1, 21)))
    finally:
        target.close()
