"""The times the state records are UTC (README, State tables), whatever the session's time zone.

A PostgreSQL server's `timezone` is the host's at initdb (or a role's default, or PGTZ), DuckDB's
the machine's: `CAST(CURRENT_TIMESTAMP AS TIMESTAMP)` wrote a snapshot row's `_synced_at` (and a
pending row's `_stashed_at`) in that zone, 14 hours ahead of the run log's UTC under
Pacific/Kiritimati, and pending outcomes were given up that much late (or early, west of UTC).
"""
from __future__ import annotations

import datetime as dt

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
