"""Snowflake applied a write and its answer was lost (the connection dropped after the statement
ran): snowflake-connector-python sends the request again with the same `requestId` in the URL (made
once per execute) and `retryCount`, and dinsync never runs a statement again itself (its backoff
policy only bounds the connector's retries). Snowflake keys a statement's execution by its request
id ("if you specify the same request ID in the initial request and in the resubmitted request,
Snowflake does not execute the statement again if the statement has already executed
successfully": the SQL API's documentation of requestId; the connector's query-request carries
the same parameter). fakesnow keeps no request ids: the proxy in front of it does (`dedup`)."""
from __future__ import annotations

import pytest

from tests.warehouses.support import SF_DATABASE
from tests.warehouses.test_snowflake_retries import FaultyProxy, _proxied_project, _warehouse, proxy  # noqa: F401


def _sent(proxy: FaultyProxy, marker: str) -> list[tuple[str, str | None]]:
    """(requestId, retryCount) of each request of the statements holding `marker`, in order."""
    return [(rid, retry) for rid, retry, sql in proxy.query_requests if marker in sql]


def test_a_write_whose_answer_was_lost_is_sent_again_with_its_request_id(proxy):
    wh = _warehouse(proxy, retry_seconds=10)
    schema = f'{SF_DATABASE}."rp_alone"'
    try:
        wh.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        wh.execute(f"CREATE OR REPLACE TABLE {schema}.x (a INT)")
        proxy.cut_after = "cut_me"
        with wh.transaction():
            wh.execute(f"INSERT INTO {schema}.x (a) SELECT :a /* cut_me */", {"a": 1})
        assert len(proxy.cut_statements) == 1
        [(first, none), (again, retry)] = _sent(proxy, "cut_me")
        assert first == again and none is None and retry == "1", _sent(proxy, "cut_me")
        assert wh.query(f"SELECT a FROM {schema}.x").to_pylist() == [{"a": 1}]  # applied once

        # (the control: fakesnow alone, without request ids, runs it twice)
        proxy.dedup, proxy.cut_after, proxy.cut_times = False, "cut_again", 1
        wh.execute(f"INSERT INTO {schema}.x (a) SELECT :a /* cut_again */", {"a": 2})
        assert wh.query(f"SELECT a FROM {schema}.x WHERE a = 2").num_rows == 2
    finally:
        proxy.cut_after = None
        wh.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        wh.close()


# the writes of a sync whose answer is lost: a statement's text -> what it writes
WRITES = {
    "snapshot-commit": 'INSERT INTO "{state}"."snap_iterable_users"',
    "acknowledged-keys": 'INSERT INTO "{state}"."ack_iterable_users"',
    "run-log-start": 'INSERT INTO "{state}"."runs"',
    "lock-take": 'INSERT INTO "{state}"."locks"',
    "plan": 'CREATE TABLE "{state}"."plan_iterable_users"',
}


@pytest.mark.parametrize("write", list(WRITES))
def test_a_sync_whose_write_lost_its_answer_applies_it_once(tmp_path, iterable_sandbox, proxy, write):
    from tests.warehouses.test_conformance import SYNC, customers, expected_users, only_run

    schema = f"rp_{write.replace('-', '_')}"
    with _proxied_project(proxy, tmp_path, iterable_sandbox, schema, retry_seconds=10, in_process=True) as project:
        proxy.cut_after = WRITES[write].format(state=f"{schema}_state")
        first = project.sync(timeout=120)
        assert proxy.cut_statements, [sql[:80] for _, _, sql in proxy.query_requests if "INSERT" in sql]
        assert first["exit_code"] == 0, first
        assert only_run(first)["acknowledged"] == 20
        sent = _sent(proxy, proxy.cut_statements[0])
        assert len(sent) == 2 and sent[0][0] == sent[1][0] and sent[1][1] == "1", sent
        wh = _warehouse(proxy)
        try:
            state = f'{SF_DATABASE}."{schema}_state"'
            snap = wh.query(f'SELECT COUNT(*) AS n, COUNT(DISTINCT "_key") AS k FROM {state}."snap_{SYNC}"')
            assert snap.to_pylist() == [{"n": 20, "k": 20}], snap.to_pylist()
            runs = wh.query(f'SELECT run_id, COUNT(*) AS n FROM {state}."runs" GROUP BY run_id').to_pylist()
            assert [r["n"] for r in runs] == [1], runs
        finally:
            wh.close()
        again = project.sync(timeout=120)
        assert again["exit_code"] == 0, again
        assert (only_run(again)["status"], only_run(again)["sent"]) == ("success", 0)
        assert project.users() == expected_users(customers(range(1, 21)))
