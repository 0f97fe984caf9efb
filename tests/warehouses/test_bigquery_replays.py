"""BigQuery applied a write and its answer was lost (the connection dropped after the query ran):
the client sends the request again (its retry, bounded by dinsync's _outage_retry), with the same
`requestId` for jobs.query (made once per query, outside the request's retry) and the same jobId for
jobs.insert, so BigQuery answers the first run instead of running it again: "A unique user provided
identifier to ensure idempotent behavior for queries ... its lifetime is limited to 15 minutes"
(jobs.query reference), and a jobs.insert of an existing jobId fails as a duplicate, which the client
answers with that job. The fake (`cut_after`) runs the query, then drops its connection; it keeps
requestIds as BigQuery does (`dedup_request_ids`)."""
from __future__ import annotations

import pytest

from dinsync.warehouses import WarehouseUnavailable
from tests.warehouses.bq_support import unique_dataset
from tests.warehouses.test_bigquery_retries import _RetryingTarget, fake, open_bq  # noqa: F401 (fake: a fixture)
from tests.warehouses.replay_support import first_sync_losing_an_answer
from tests.warehouses.test_conformance import SYNC, customers, expected_users, only_run


def _sent(fake, marker: str) -> list[str]:
    """The requestIds of the jobs.query requests whose query holds `marker`, in order."""
    return [rid for rid, query in fake.query_request_ids if marker in query]


@pytest.mark.parametrize("in_transaction", [False, True], ids=["alone", "in-transaction"])
def test_a_write_whose_answer_was_lost_is_sent_again_with_its_request_id(fake, in_transaction):
    dataset = unique_dataset("r")
    wh = open_bq(fake, dataset=dataset, retry_seconds=5)
    try:
        wh.execute(f"CREATE SCHEMA `{dataset}`")
        wh.execute(f"CREATE TABLE `{dataset}`.x (a INT64)")
        fake.cut_after = "cut_me"
        with wh.transaction() if in_transaction else _nothing():
            wh.execute(f"INSERT INTO `{dataset}`.x (a) VALUES (:a) /* cut_me */", {"a": 1})
        assert len(fake.cut_statements) == 1
        sent = _sent(fake, "cut_me")
        assert len(sent) == 2 and sent[0] == sent[1], sent  # sent again, with the same requestId
        assert wh.query(f"SELECT a FROM `{dataset}`.x").to_pylist() == [{"a": 1}]  # applied once

        # (the control: a server that ignored requestId would have applied it twice)
        fake.dedup_request_ids, fake.cut_after, fake.cut_times = False, "cut_again", 1
        wh.execute(f"INSERT INTO `{dataset}`.x (a) VALUES (:a) /* cut_again */", {"a": 2})
        assert wh.query(f"SELECT a FROM `{dataset}`.x WHERE a = 2").num_rows == 2
    finally:
        wh.close()


def test_a_write_whose_answer_was_lost_during_an_outage_is_not_sent_again(fake):
    """While an outage is ongoing (_outage_retry), a failing request is not retried, and the query
    not run again by job_retry (a new requestId): the write fails as transient, applied once."""
    dataset = unique_dataset("r")
    wh = open_bq(fake, dataset=dataset, retry_seconds=5)
    try:
        wh.execute(f"CREATE SCHEMA `{dataset}`")
        wh.execute(f"CREATE TABLE `{dataset}`.x (a INT64)")
        wh._outage.gave_up(ConnectionError("an earlier request gave up"))
        fake.cut_after = "cut_me"
        with pytest.raises(WarehouseUnavailable):
            wh.execute(f"INSERT INTO `{dataset}`.x (a) VALUES (:a) /* cut_me */", {"a": 1})
        assert len(_sent(fake, "cut_me")) == 1
        assert wh.query(f"SELECT a FROM `{dataset}`.x").to_pylist() == [{"a": 1}]
    finally:
        wh.close()


def test_a_job_whose_answer_was_lost_is_inserted_again_with_its_job_id(fake):
    """jobs.insert (a transaction's BEGIN, which opens its session): the client sends the same
    jobId again, BigQuery answers 409 (the job exists), and the client gets that job."""
    dataset = unique_dataset("r")
    wh = open_bq(fake, dataset=dataset, retry_seconds=5)
    try:
        wh.execute(f"CREATE SCHEMA `{dataset}`")
        wh.execute(f"CREATE TABLE `{dataset}`.x (a INT64)")
        fake.requests.clear()
        fake.cut_after = "BEGIN TRANSACTION"
        with wh.transaction():
            wh.execute(f"INSERT INTO `{dataset}`.x (a) VALUES (:a)", {"a": 1})
        assert len(fake.cut_statements) == 1
        inserts = [path for method, path in fake.requests if method == "POST" and path.endswith("/jobs")]
        gets = [path for method, path in fake.requests if method == "GET" and "/jobs/" in path]
        assert len(inserts) == 2 and gets, fake.requests  # sent again (409), then the job got
        assert wh.query(f"SELECT a FROM `{dataset}`.x").to_pylist() == [{"a": 1}]
    finally:
        wh.close()


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


# the writes of a sync whose answer is lost: a statement's text -> what it writes
WRITES = {
    "snapshot-commit": "INSERT INTO `dinsync_state`.`snap_",
    "acknowledged-keys": "INSERT INTO `dinsync_scratch`.`ack_",
    "run-log-start": "INSERT INTO `dinsync_state`.`runs`",
    "lock-take": "INSERT INTO `dinsync_state`.`locks`",
    "plan": "CREATE TABLE `dinsync_scratch`.`plan_",
    "commit-transaction": "COMMIT TRANSACTION",
    "begin-transaction": "BEGIN TRANSACTION",  # (jobs.insert: its jobId sent again, answered 409, the job got)
}


@pytest.mark.parametrize("write", list(WRITES))
def test_a_sync_whose_write_lost_its_answer_applies_it_once(tmp_path, iterable_sandbox, write):
    target = _RetryingTarget(tmp_path)
    try:
        project, first = first_sync_losing_an_answer(tmp_path, target, iterable_sandbox, WRITES[write])
        sent = _sent(target.fake, target.fake.cut_statements[0][:60])
        assert first["exit_code"] == 0, first
        assert only_run(first)["acknowledged"] == 20
        snap = target.rows(f"SELECT COUNT(*) AS n, COUNT(DISTINCT _key) AS k FROM {target.state('snap_' + SYNC)}")
        assert snap == [{"n": 20, "k": 20}], snap  # one row per key
        runs = target.rows(f"SELECT run_id, COUNT(*) AS n FROM {target.state('runs')} GROUP BY run_id")
        assert [r["n"] for r in runs] == [1], runs
        if write not in ("commit-transaction", "begin-transaction"):  # (the same text each time; jobs.insert)
            assert len(sent) >= 2 and len(set(sent)) == len(sent) - 1, sent  # sent again with its requestId

        requests = project.requests()
        again = project.sync()
        assert again["exit_code"] == 0, again
        assert (only_run(again)["status"], only_run(again)["sent"]) == ("success", 0)
        assert project.requests() == requests
        assert project.users() == expected_users(customers(range(1, 21)))
    finally:
        target.close()
