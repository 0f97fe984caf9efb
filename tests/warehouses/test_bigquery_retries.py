"""BigQuery going away: the client retries a request answered 5xx (or cut) for `retry_seconds`,
and a query job again for as long (job_retry). One budget per outage, shared by every request of
the warehouse, as on Snowflake: once a request gave up, the next failing ones are tried once,
until one gets through. Counted in attempts per request (the fake's `gone_requests`), not time."""
from __future__ import annotations

import pytest

from dinsync.sandbox.runner import SandboxThread
from dinsync.warehouses import WarehouseUnavailable, connect
from tests.warehouses.bq_support import PROJECT, FakeBigQuery, unique_dataset
from tests.warehouses.conftest import BigQueryTarget
from tests.warehouses.outage_support import sync_through_an_outage


@pytest.fixture
def fake():
    server = FakeBigQuery()
    with SandboxThread(server) as thread:
        server.thread = thread
        yield server


def open_bq(fake, **options):
    defaults = dict(project=PROJECT, credentials=fake.service_account_json(), api_endpoint=fake.url,
                    retry_seconds=2, http_timeout_seconds=10)
    return connect("bigquery", **{**defaults, **options})


def _attempts(fake) -> list[int]:
    return sorted(fake.gone_requests.values(), reverse=True)


@pytest.mark.parametrize("reset", [False, True], ids=["http-503", "reset"])
def test_after_a_request_gave_up_the_next_failing_ones_are_not_retried_until_one_gets_through(fake, reset):
    """Before: every request (and every query job) retried for the whole budget, also after an
    earlier one had given up: each later write of a failed run (the checkpoint, the run log's end,
    the sync's state, the lock's release) waited `retry_seconds` again, twice for a query."""
    dataset = unique_dataset("m")
    wh = open_bq(fake, dataset=dataset)
    try:
        wh.execute(f"CREATE SCHEMA `{dataset}`")
        fake.gone_reset, fake.gone_after = reset, "fail_me"
        with pytest.raises(WarehouseUnavailable) as first:
            wh.query("SELECT 1 AS fail_me")
        assert _attempts(fake)[0] >= 2, fake.gone_requests  # retried for the budget
        assert "retry_seconds" in first.value.hint, first.value.hint
        later = [lambda: wh.execute("SELECT 2 AS fail_me"),
                 lambda: wh.execute("INSERT INTO t (x) VALUES (:x)", {"x": 1}),
                 lambda: wh.table_columns(dataset, "t"),
                 lambda: wh.transaction().__enter__()]
        for i, call in enumerate(later):
            fake.gone_requests.clear()
            with pytest.raises(WarehouseUnavailable) as caught:
                call()
            assert _attempts(fake) == [1], (i, fake.gone_requests)  # tried once
            assert "retry_seconds" in caught.value.hint, (i, caught.value.hint)
        fake.gone, fake.gone_after = False, None
        assert wh.query("SELECT 3 AS three").to_pylist() == [{"three": 3}]  # BigQuery is back
        fake.gone_requests.clear()
        fake.gone_after = "fail_me"
        with pytest.raises(WarehouseUnavailable):
            wh.query("SELECT 4 AS fail_me")
        assert _attempts(fake)[0] >= 2, fake.gone_requests  # a new outage: the budget again
    finally:
        fake.gone, fake.gone_after = False, None
        wh.close()


def test_after_requests_kept_timing_out_the_next_ones_are_not_sent_until_a_budget_passed(fake):
    """BigQuery (or the way to it) stops answering at all: each attempt waits http_timeout_seconds.
    Before: once the first request had given up, each later write of the run was still sent once
    and waited http_timeout_seconds (60 s by default) for nothing. Now, while such an outage lasts
    (retry_seconds), they fail at once, unsent; then a request is sent again."""
    dataset = unique_dataset("m")
    wh = open_bq(fake, dataset=dataset, retry_seconds=2, http_timeout_seconds=1)
    try:
        wh.execute(f"CREATE SCHEMA `{dataset}`")
        fake.gone_hang, fake.gone_after = True, "hang_me"
        with pytest.raises(WarehouseUnavailable) as first:
            wh.query("SELECT 1 AS hang_me")
        assert _attempts(fake)[0] >= 2, fake.gone_requests  # retried for the budget
        assert "retry_seconds" in first.value.hint
        for i, call in enumerate([lambda: wh.execute("SELECT 2"), lambda: wh.table_columns(dataset, "t")]):
            fake.gone_requests.clear()
            with pytest.raises(WarehouseUnavailable, match="not sent") as caught:
                call()
            assert fake.gone_requests == {}, (i, fake.gone_requests)  # not sent
            assert "retry_seconds" in caught.value.hint
        fake.gone, fake.gone_after, fake.gone_hang = False, None, False
        wh._outage.since -= 3600  # (a budget later: sent again)
        assert wh.query("SELECT 3 AS three").to_pylist() == [{"three": 3}]
    finally:
        fake.gone, fake.gone_after, fake.gone_hang = False, None, False
        wh.close()


def test_a_statement_answered_503_a_few_times_is_still_retried(fake):
    wh = open_bq(fake, retry_seconds=30)
    try:
        fake.gone_after = "flaky"
        failed = []

        def back_after_two(request):  # (the fake's gone mode, ended after two attempts)
            failed.append(1)
            if len(failed) >= 2:
                fake.gone, fake.gone_after = False, None

        original = fake._gone

        async def gone(request):
            answer = await original(request)
            back_after_two(request)
            return answer

        fake._gone = gone
        assert wh.query("SELECT 7 AS flaky").to_pylist() == [{"flaky": 7}]
        assert len(failed) == 2
    finally:
        fake.gone, fake.gone_after = False, None
        wh.close()


class _RetryingTarget(BigQueryTarget):
    """The conformance target, its requests retried for `retry_seconds`."""

    retry_seconds = 3

    def warehouse_yaml(self) -> str:
        return super().warehouse_yaml().replace("retry_seconds: 0", f"retry_seconds: {self.retry_seconds}")


def test_a_run_whose_warehouse_goes_away_retries_for_one_budget_not_one_per_write(tmp_path, iterable_sandbox):
    """BigQuery gone for good mid-run (every request answered 503 from the first write of the
    acknowledged keys on). Before: each later write of the run was retried for the budget again
    (and a query job once more by job_retry). Now only the first failing request is retried; the
    run fails with its error, and the next run, BigQuery back, delivers everything."""

    def back():
        target.fake.gone, target.fake.gone_after = False, None

    target = _RetryingTarget(tmp_path)
    # (JSON_QUERY_ARRAY: the first write of rows, the acknowledged keys)
    sync_through_an_outage(target, tmp_path, iterable_sandbox, "JSON_QUERY_ARRAY", back)
