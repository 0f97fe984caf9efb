"""State written by dinsync 0.1 (layout 1) is migrated in place by this version."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import duckdb
import pytest

from dinsync.errors import LockBusyError
from dinsync.state import LAYOUT_VERSION, StateStore
from dinsync.warehouses import connect

# Exactly what dinsync 0.1 (commit cdf9fad, dinsync/state/store.py) created and wrote.
LAYOUT_1 = [
    'CREATE SCHEMA IF NOT EXISTS "dinsync"',
    'CREATE TABLE IF NOT EXISTS "dinsync".meta (key VARCHAR PRIMARY KEY, value VARCHAR)',
    'CREATE TABLE IF NOT EXISTS "dinsync".runs (run_id VARCHAR, sync VARCHAR, started_at TIMESTAMP, '
    "finished_at TIMESTAMP, status VARCHAR, full_refresh BOOLEAN, added BIGINT, changed BIGINT, "
    "removed BIGINT, unchanged BIGINT, null_keys BIGINT, duplicate_keys BIGINT, sent BIGINT, "
    "acknowledged BIGINT, rejected BIGINT, not_found BIGINT, failed BIGINT, requests BIGINT, "
    "throttled BIGINT, seconds DOUBLE PRECISION, error VARCHAR, warnings VARCHAR, tool_version VARCHAR)",
    'CREATE TABLE IF NOT EXISTS "dinsync".rejections (run_id VARCHAR, sync VARCHAR, key VARCHAR, '
    "field VARCHAR, status VARCHAR, reason VARCHAR, rejected_at TIMESTAMP)",
    'CREATE TABLE IF NOT EXISTS "dinsync".locks (sync VARCHAR PRIMARY KEY, run_id VARCHAR, holder VARCHAR, '
    "acquired_at TIMESTAMP, expires_at TIMESTAMP)",
    "DELETE FROM \"dinsync\".meta WHERE key = 'layout_version'",
    "INSERT INTO \"dinsync\".meta VALUES ('layout_version', '1')",
]


def release_01_state(path, holder: str) -> None:
    con = duckdb.connect(str(path))
    for statement in LAYOUT_1:
        con.execute(statement)
    con.execute("INSERT INTO dinsync.runs (run_id, sync, started_at, status, full_refresh, tool_version, added) "
                "VALUES ('old-ok', 'users', TIMESTAMP '2026-01-01 00:00:00', 'success', FALSE, '0.1.0', 20), "
                "('old-killed', 'users', TIMESTAMP '2026-01-02 00:00:00', 'running', FALSE, '0.1.0', NULL)")
    con.execute("INSERT INTO dinsync.rejections VALUES ('old-ok', 'users', 'a@x.com', NULL, 'rejected', 'bad', "
                "TIMESTAMP '2026-01-01 00:00:01')")
    con.execute("INSERT INTO dinsync.locks VALUES ('users', 'old-killed', ?, TIMESTAMP '2026-01-02 00:00:00', "
                "timezone('UTC', now()) + INTERVAL 1 HOUR)", [holder])
    con.execute("CREATE TABLE dinsync.snap_users (_key VARCHAR NOT NULL, _synced_at TIMESTAMP)")
    con.execute("INSERT INTO dinsync.snap_users VALUES ('a@x.com', NULL)")
    con.close()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_layout_1_migrates_and_its_killed_run_is_taken_over(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    release_01_state(path, f"{socket.gethostname()}:{dead_pid()}")  # 0.1 wrote holders as host:pid
    wh = connect("duckdb", path=str(path))
    try:
        store = StateStore(wh, "dinsync")
        assert store.layout_version() == 1
        assert store.migrate() == LAYOUT_VERSION == 5
        assert {"ticket", "choosing"} <= set(wh.table_columns("dinsync", "locks"))
        # everything 0.1 wrote is still there
        assert [r["run_id"] for r in store.last_runs("users")] == ["old-killed", "old-ok"]
        assert store.rejections("old-ok") == [{"key": "a@x.com", "field": None, "status": "rejected", "reason": "bad"}]
        assert wh.query("select _key from dinsync.snap_users").to_pylist() == [{"_key": "a@x.com"}]
        # the lock of the killed 0.1 run (old holder format) is taken over; the PRIMARY KEY still arbitrates
        store.acquire_lock("users", "new-run")
        assert [r["run_id"] for r in store.lock_holders("users")] == ["new-run"]
        assert store.last_runs("users")[0]["status"] == "abandoned"
        with pytest.raises(LockBusyError):
            store.acquire_lock("users", "another")
        assert store.migrate() == LAYOUT_VERSION  # idempotent
    finally:
        wh.close()


def test_layout_1_lock_of_a_live_process_is_kept(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    release_01_state(path, f"{socket.gethostname()}:{os.getpid()}")  # a 0.1 run still going (this process)
    wh = connect("duckdb", path=str(path))
    try:
        store = StateStore(wh, "dinsync")
        store.migrate()
        with pytest.raises(LockBusyError, match="old-killed"):
            store.acquire_lock("users", "new-run")
    finally:
        wh.close()


@pytest.mark.parametrize("tables", [
    ["CREATE TABLE analytics.runs AS SELECT 42 AS marathon_id", "CREATE TABLE analytics.events AS SELECT 1 AS id"],
    ["CREATE TABLE analytics.meta AS SELECT 1 AS x"],
])
def test_tables_of_the_layouts_names_that_are_not_dinsyncs_are_never_touched(tmp_path, tables):
    """A state_schema shared with other tables: their own `runs` was altered (columns added),
    then the run failed on a binder error."""
    from dinsync.errors import ConfigError

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE SCHEMA analytics")
    for statement in tables:
        con.execute(statement)
    before = {t: con.execute(f"SELECT * FROM analytics.{t}").fetchall() for (t,) in
              con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'analytics'").fetchall()}
    con.close()
    wh = connect("duckdb", path=str(tmp_path / "w.duckdb"))
    store = StateStore(wh, "analytics")
    for attempt in (store.check_tables, store.migrate):
        with pytest.raises(ConfigError) as info:
            attempt()
        [issue] = info.value.issues
        assert "holds tables dinsync did not create" in issue.message and "state_schema" in issue.hint
    wh.close()
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    assert {t: con.execute(f"SELECT * FROM analytics.{t}").fetchall() for (t,) in
            con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'analytics'").fetchall()} == before
    assert all(len(con.execute(f"DESCRIBE analytics.{t}").fetchall()) == 1 for t in before)  # no column added
    con.close()


def test_tables_an_interrupted_migration_created_are_taken_as_they_are(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    for statement in LAYOUT_1[:3]:  # schema, meta and runs: no layout version written yet
        con.execute(statement)
    con.close()
    wh = connect("duckdb", path=str(tmp_path / "w.duckdb"))
    assert StateStore(wh).migrate() == LAYOUT_VERSION
    wh.close()


def test_a_lock_timeout_on_the_state_is_not_tried_again_by_migrate(tmp_path, monkeypatch):
    """`migrate` tries a step again where another process migrating at once made it fail; a lock
    another transaction holds on a state table (a lock timeout, 15 s on PostgreSQL) is no such race:
    trying six times made `dinsync sync` wait six lock timeouts before saying so."""
    from dinsync.warehouses.errors import WarehouseLockTimeout

    wh = connect("duckdb", path=str(tmp_path / "w.duckdb"))
    try:
        store = StateStore(wh)
        calls = []

        def locked():
            calls.append(1)
            raise WarehouseLockTimeout("canceling statement due to lock timeout")

        monkeypatch.setattr(store, "_migrate", locked)
        with pytest.raises(WarehouseLockTimeout):
            store.migrate()
        assert len(calls) == 1
    finally:
        wh.close()


def test_state_this_dinsync_migrated_is_refused_by_a_layout_4_dinsync(tmp_path, monkeypatch):
    """Layout 4's dinsync (up to 2026-12-06) keeps no `meta` records of a sync (mapping:, match:,
    phone_keys:, wrote:...), hashes nested DuckDB columns natively and takes a pending Attentive job
    still running for lost: run on state this dinsync wrote, it went ahead, sent again what this one
    waits for, and left the records stale for this one's next run (phone keys it read by its older
    rule under a `phone_keys:` record saying they were read by the new one: never read again). The
    state this dinsync migrates is a layout that dinsync refuses ("newer than this dinsync")."""
    from dinsync.errors import ConfigError
    from dinsync.state import layout, store as store_module

    path = tmp_path / "w.duckdb"
    con = duckdb.connect(str(path))
    con.execute('CREATE SCHEMA "dinsync"')
    con.execute(layout.render(layout.META, "dinsync", "duckdb", "VARCHAR", True))
    for version in (1, 2, 3, 4):
        for statement in layout.MIGRATIONS[version]:
            con.execute(layout.render(statement, "dinsync", "duckdb", "VARCHAR", True))
    con.execute("INSERT INTO dinsync.meta VALUES ('layout_version', '4')")
    con.close()
    wh = connect("duckdb", path=str(path))
    try:
        assert StateStore(wh).migrate() == LAYOUT_VERSION
        # the layout-4 dinsync's own check: its version and migrations
        monkeypatch.setattr(store_module, "LAYOUT_VERSION", 4)
        monkeypatch.setattr(store_module, "MIGRATIONS", {v: layout.MIGRATIONS[v] for v in (1, 2, 3, 4)})
        with pytest.raises(ConfigError, match="newer than this dinsync"):
            StateStore(wh).migrate()
    finally:
        wh.close()
