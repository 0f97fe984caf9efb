"""The times the state records are UTC (README, State tables), whatever the session's time zone.

A PostgreSQL server's `timezone` is the host's at initdb (or a role's default, or PGTZ), DuckDB's
the machine's: `CAST(CURRENT_TIMESTAMP AS TIMESTAMP)` wrote a snapshot row's `_synced_at` (and a
pending row's `_stashed_at`) in that zone, 14 hours ahead of the run log's UTC under
Pacific/Kiritimati, and pending outcomes were given up that much late (or early, west of UTC).
"""
from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.warehouses.support import run_cli, write_iterable_project

MODEL = "-- primary_key: email\n-- model_type: user\nselect email, plan from zoned_people\n"
ZONE = "Pacific/Kiritimati"  # UTC+14: a shift no clock skew explains


@pytest.mark.parametrize("kind", ["duckdb", "postgres", "redshift"])
def test_synced_at_is_utc_whatever_the_sessions_time_zone(kind, request, tmp_path, iterable_sandbox):
    target = request.getfixturevalue(f"wh_{kind}")
    target.env.update({"TZ": ZONE, "PGTZ": ZONE})  # DuckDB takes the process's zone, libpq PGTZ
    _, thread = iterable_sandbox
    target.execute(f'CREATE TABLE "{target.model_schema}".zoned_people (email VARCHAR, plan VARCHAR)')
    target.execute(f"""INSERT INTO "{target.model_schema}".zoned_people VALUES ('a@x.co', 'pro'), ('b@x.co', 'free')""")
    root = tmp_path / "project"
    write_iterable_project(root, target, thread.url, MODEL, ["plan"])

    before = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    code, result = run_cli(root, target, "sync")
    after = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    assert code == 0 and result["runs"][0]["acknowledged"] == 2, result
    slack = dt.timedelta(seconds=5)
    synced = [r["_synced_at"] for r in target.rows(f"SELECT _synced_at FROM {target.state('snap_users')}")]
    assert len(synced) == 2 and all(before - slack <= t <= after + slack for t in synced), (synced, before, after)
    started = target.rows(f"SELECT started_at FROM {target.state('runs')}")[0]["started_at"]
    assert all(abs(t - started) < dt.timedelta(minutes=1) for t in synced), (synced, started)


LOS_ANGELES = "America/Los_Angeles"
DEAD_HOLDER = "another-host:4242:1:pidns4026531836"  # (not this host's: its PID is not looked up)


def _zoned(kind: str, target) -> None:
    """Every zone a run of `kind` could take its times from set to Los Angeles: the process's (DuckDB,
    the BigQuery client), libpq's, the Snowflake session's, the Databricks SQL warehouse's."""
    target.env.update({"TZ": LOS_ANGELES, "PGTZ": LOS_ANGELES})
    if kind == "databricks":
        target.fake.time_zone = LOS_ANGELES


@pytest.mark.parametrize("kind", ["duckdb", "postgres", "redshift", "snowflake", "bigquery", "databricks"])
def test_a_sync_under_los_angeles_stores_utc_and_honours_a_locks_ttl(kind, request, tmp_path, iterable_sandbox):
    """A run under America/Los_Angeles records its times in UTC (the run log, the snapshot), and a dead
    run's lock holds exactly until its expiry, not 8 hours more or less."""
    import pyarrow as pa

    target = request.getfixturevalue(f"wh_{kind}")
    _, thread = iterable_sandbox
    target.load("zoned_people", pa.table({"email": ["a@x.co", "b@x.co"], "plan": ["pro", "free"]}))
    root = tmp_path / "project"
    write_iterable_project(root, target, thread.url, MODEL, ["plan"])
    _zoned(kind, target)

    def utcnow() -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)

    before = utcnow()
    code, result = run_cli(root, target, "sync")
    after = utcnow()
    assert code == 0 and result["runs"][0]["acknowledged"] == 2, result
    slack = dt.timedelta(seconds=5)
    synced = [r["_synced_at"] for r in target.rows(f"SELECT _synced_at FROM {target.state('snap_users')}")]
    [run] = target.rows(f"SELECT started_at, finished_at FROM {target.state('runs')}")
    for t in [*synced, run["started_at"], run["finished_at"]]:
        assert before - slack <= t <= after + slack, (t, before, after, synced, run)
    code, shown = run_cli(root, target, "runs", "users")  # (read back under the zone too)
    assert code == 0 and [r["started_at"][-1] for r in shown["runs"]] == ["Z"], shown
    shown_start = dt.datetime.fromisoformat(shown["runs"][0]["started_at"][:-1])
    assert abs(shown_start - run["started_at"]) < dt.timedelta(milliseconds=1), (shown, run)

    # a dead run's lock, valid 10 more minutes: held
    target.execute(f"INSERT INTO {target.state('locks')} (sync, run_id, holder, acquired_at, expires_at) "
                   f"VALUES (:s, :r, :h, :a, :e)", {"s": "users", "r": "20261207T000000-deadbeef", "h": DEAD_HOLDER,
                                                    "a": utcnow(), "e": utcnow() + dt.timedelta(minutes=10)})
    code, result = run_cli(root, target, "sync")
    assert code != 0 and "already running" in json.dumps(result), result
    # ...and once its expiry passed (a minute ago): taken over
    target.execute(f"UPDATE {target.state('locks')} SET expires_at = :e WHERE sync = :s",
                   {"e": utcnow() - dt.timedelta(minutes=1), "s": "users"})
    code, result = run_cli(root, target, "sync")
    assert code == 0, result
    assert target.rows(f"SELECT COUNT(*) AS n FROM {target.state('locks')}")[0]["n"] == 0


def test_snowflake_state_tables_of_an_earlier_dinsync_as_timestamp_ltz_still_work(tmp_path, monkeypatch):
    """State tables an earlier dinsync created on an account mapping TIMESTAMP to TIMESTAMP_LTZ keep
    that type (README, State tables): their times read back with a zone, and a dead run's lock,
    compared with the naive UTC clock, failed the next run ("can't compare offset-naive and
    offset-aware datetimes") instead of being taken over."""
    from dataclasses import replace

    from dinsync.errors import LockBusyError
    from dinsync.state import StateStore
    from tests.warehouses.support import WarehouseUnderTest

    under_test = WarehouseUnderTest("snowflake", tmp_path)
    try:
        earlier = StateStore(under_test.wh, under_test.state_schema)
        monkeypatch.setattr(earlier, "caps", replace(earlier.caps, timestamp_type="TIMESTAMP_LTZ"))
        earlier.migrate()
        store = StateStore(under_test.open(), under_test.state_schema)
        assert store.migrate() == earlier.migrate()
        types = {r["data_type"] for r in store.wh.rows(
            "SELECT data_type FROM information_schema.columns WHERE table_schema = :s AND table_name = 'LOCKS' "
            "AND column_name = 'EXPIRES_AT'", {"s": under_test.state_schema})}
        assert types != {"TIMESTAMP_NTZ"}, types  # (fakesnow names TIMESTAMP_LTZ TIMESTAMP_TZ)

        store.acquire_lock("users", "20261207T100000-aaaaaaaa", ttl_seconds=600)
        with pytest.raises(LockBusyError):  # held: refused, naming its expiry
            store.acquire_lock("users", "20261207T100001-bbbbbbbb", ttl_seconds=600)
        [held] = store.lock_holders("users")
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        assert held["expires_at"].tzinfo is None and abs(held["expires_at"] - now - dt.timedelta(minutes=10)) < dt.timedelta(minutes=1)
        store.wh.execute(f"UPDATE {store.t('locks')} SET expires_at = :e WHERE sync = :s",
                         {"e": now - dt.timedelta(minutes=1), "s": "users"})
        store.acquire_lock("users", "20261207T100002-cccccccc", ttl_seconds=600)  # expired: taken over
        assert [h["run_id"] for h in store.lock_holders("users")] == ["20261207T100002-cccccccc"]
    finally:
        under_test.close()


@pytest.mark.parametrize("kind", ["snowflake", "databricks"])
def test_pending_records_expire_by_their_utc_age(kind, tmp_path):
    """`pend_<sync>._stashed_at` is the UTC time of the stash, and a pending outcome is given up once
    it is older than its expiry, not 13 hours early under a SQL warehouse's Pacific/Auckland (UTC+13)."""
    from tests.warehouses.support import WarehouseUnderTest
    from tests.warehouses.test_diff_sql import DatabricksUnderTest, Recording, Sync

    target = DatabricksUnderTest() if kind == "databricks" else WarehouseUnderTest(kind, tmp_path)
    try:
        if kind == "databricks":
            target.fake.time_zone = "Pacific/Auckland"
        s = Sync(Recording(target.wh), target.state_schema)
        s.model_schema = target.schema
        s.set_rows([("a@x.com", "Ada", 1), ("b@x.com", "Bob", 2)])
        s.plan()
        before = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        assert s.p.stash_pending(["a@x.com", "b@x.com"], "job-1") == 2
        after = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        pend = s.wh.table_name(s.state_schema, s.p.pending_table)
        stashed = [r["_stashed_at"] for r in s.wh.rows(f"SELECT _stashed_at FROM {pend}")]
        slack = dt.timedelta(seconds=5)
        assert len(stashed) == 2 and all(before - slack <= t.replace(tzinfo=None) <= after + slack for t in stashed), (
            stashed, before, after)
        assert s.p.expire_pending(dt.timedelta(hours=1)) == 0  # an hour's expiry: still awaited
        assert s.p.pending_tokens() == {"job-1": 2}
        assert s.p.expire_pending(dt.timedelta(seconds=-5)) == 2 and s.p.pending_tokens() == {}
    finally:
        target.close()
