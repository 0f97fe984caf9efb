"""Databricks going away: the SDK retries a request answered 429/503 (or whose connection dropped)
for `retry_seconds`. One budget per outage, shared by every request of the warehouse, as on
Snowflake and BigQuery: once a request gave up, the next failing ones are tried once, until one gets
through. Counted in attempts per request (the fake's `gone_requests`), not time."""
from __future__ import annotations

import pytest

from dinsync.sandbox.runner import SandboxThread
from dinsync.warehouses import WarehouseUnavailable, connect
from tests.warehouses.conftest import DatabricksTarget
from tests.warehouses.outage_support import sync_through_an_outage
from tests.warehouses.databricks_fake import DatabricksFake


@pytest.fixture
def fake():
    server = DatabricksFake()
    with SandboxThread(server):
        yield server


def open_wh(fake, **options):
    args = dict(host=fake.url, token=fake.token, warehouse_id=fake.warehouse_id, catalog=fake.catalog,
                schema="main", retry_seconds=3)
    return connect("databricks", **{**args, **options})


def _attempts(fake) -> list[int]:
    return sorted(fake.gone_requests.values(), reverse=True)


def _back(fake) -> None:
    fake.gone = fake.gone_reset = fake.gone_hang = False
    fake.gone_after = None


@pytest.mark.parametrize("reset", [False, True], ids=["http-503", "reset"])
@pytest.mark.parametrize("sdk", ["transport", "older-sdk"])
def test_after_a_request_gave_up_the_next_failing_ones_are_not_retried_until_one_gets_through(
        fake, reset, sdk, monkeypatch):
    """Before: every request retried for the whole budget (the SDK's 300 s, not configurable), also
    after an earlier one had given up: each later write of a failed run (the checkpoint, the run
    log's end, the sync's state, the lock's release) waited the budget again. (older-sdk: a
    databricks-sdk whose Config takes no http_adapter, before 0.16x: mounted on its session.)"""
    from dinsync.warehouses.databricks import DatabricksWarehouse

    monkeypatch.setattr(DatabricksWarehouse, "sdk_takes_transports", sdk == "transport")
    wh = open_wh(fake)
    try:
        wh.execute("CREATE SCHEMA IF NOT EXISTS t")
        fake.gone_reset, fake.gone_after = reset, "fail_me"
        with pytest.raises(WarehouseUnavailable) as first:
            wh.query("SELECT 1 AS fail_me")
        assert _attempts(fake)[0] >= 2, fake.gone_requests  # retried for the budget
        assert "retry_seconds" in first.value.hint, first.value.hint
        later = [lambda: wh.execute("SELECT 2 AS fail_me"),
                 lambda: wh.execute("INSERT INTO t.x (a) VALUES (:a)", {"a": 1}),
                 lambda: wh.table_columns("t", "y"),
                 lambda: wh.query("SELECT 5 AS five")]
        for i, call in enumerate(later):
            fake.gone_requests.clear()
            with pytest.raises(WarehouseUnavailable) as caught:
                call()
            assert _attempts(fake) == [1], (i, fake.gone_requests)  # tried once
            assert "retry_seconds" in caught.value.hint, (i, caught.value.hint)
        _back(fake)
        assert wh.query("SELECT 3 AS three").to_pylist() == [{"three": 3}]  # Databricks is back
        fake.gone_requests.clear()
        fake.gone_after = "fail_me"
        with pytest.raises(WarehouseUnavailable):
            wh.query("SELECT 4 AS fail_me")
        assert _attempts(fake)[0] >= 2, fake.gone_requests  # a new outage: the budget again
    finally:
        _back(fake)
        wh.close()


def test_after_requests_got_no_answer_the_next_ones_are_not_sent_until_a_budget_passed(fake):
    """Databricks (or the way to it) stops answering at all: each attempt waits the SDK's
    http_timeout_seconds (60 s). While such an outage lasts (retry_seconds), later requests fail at
    once, unsent; then a request is sent again."""
    wh = open_wh(fake, client_config={"http_timeout_seconds": 1})
    try:
        fake.gone_hang, fake.gone_after = True, "hang_me"
        with pytest.raises(WarehouseUnavailable) as first:
            wh.query("SELECT 1 AS hang_me")
        assert _attempts(fake) == [1], fake.gone_requests  # (a submit is a POST: not sent twice)
        assert "retry_seconds" in first.value.hint
        for i, call in enumerate([lambda: wh.execute("SELECT 2"), lambda: wh.table_columns("t", "y")]):
            fake.gone_requests.clear()
            with pytest.raises(WarehouseUnavailable, match="not sent") as caught:
                call()
            assert fake.gone_requests == {}, (i, fake.gone_requests)  # not sent
            assert "retry_seconds" in caught.value.hint
        _back(fake)
        wh._outage.since -= 3600  # (a budget later: sent again)
        assert wh.query("SELECT 3 AS three").to_pylist() == [{"three": 3}]
    finally:
        _back(fake)
        wh.close()


def test_a_statement_answered_503_a_few_times_is_still_retried(fake):
    wh = open_wh(fake, retry_seconds=30)
    try:
        gone = fake._gone

        async def flaky(request, body):  # (the gone mode, ended after two attempts)
            answer = await gone(request, body)
            if sum(fake.gone_requests.values()) >= 2:
                _back(fake)
            return answer

        fake._gone = flaky
        fake.gone_after = "flaky"
        assert wh.query("SELECT 7 AS flaky").to_pylist() == [{"flaky": 7}]
        assert _attempts(fake) == [2], fake.gone_requests
    finally:
        _back(fake)
        wh.close()


class _RetryingTarget(DatabricksTarget):
    """The conformance target, its requests retried for `retry_seconds`."""

    retry_seconds = 3

    def warehouse_yaml(self) -> str:
        return super().warehouse_yaml().replace("  catalog:", f"  retry_seconds: {self.retry_seconds}\n  catalog:")


def test_a_run_whose_warehouse_goes_away_retries_for_one_budget_not_one_per_write(tmp_path, iterable_sandbox):
    """Databricks gone for good mid-run (every request answered 503 from the first write of the
    acknowledged keys on). Before: each later write of the run was retried for the budget again
    (the SDK's 300 s each). Now only the first failing request is retried; the run fails with its
    error, and the next run, Databricks back, delivers everything."""
    target = _RetryingTarget(tmp_path)
    sync_through_an_outage(target, tmp_path, iterable_sandbox,
                           f"INSERT INTO `{target.state_schema}`.`ack_",  # the acknowledged keys' first write
                           lambda: _back(target.fake), first_error="a request kept failing for 3 s")

