"""Layout 4 (segment sizes, sync_state, events): state written by layout 3 is upgraded in place,
and the operating state round-trips through the warehouse."""
from __future__ import annotations

import duckdb

from dinsync.errors import RunSummary
from dinsync.report import run_from_log
from dinsync.state import LAYOUT_VERSION, StateStore, layout
from dinsync.state.syncstate import SyncStates
from dinsync.warehouses import connect


def layout_3_state(path) -> None:
    """What dinsync wrote with layout 3: its statements, rendered as it rendered them, and a run."""
    con = duckdb.connect(str(path))
    con.execute('CREATE SCHEMA IF NOT EXISTS "dinsync"')
    con.execute(layout.render(layout.META, "dinsync", "duckdb", "VARCHAR", True))
    for version in (1, 2, 3):
        for statement in layout.MIGRATIONS[version]:
            con.execute(layout.render(statement, "dinsync", "duckdb", "VARCHAR", True))
    con.execute("INSERT INTO dinsync.meta VALUES ('layout_version', '3')")
    con.execute("INSERT INTO dinsync.runs (run_id, sync, started_at, finished_at, status, full_refresh, added, "
                "pending, parked, tool_version) VALUES ('r3', 'users', TIMESTAMP '2026-01-01 06:00:00', "
                "TIMESTAMP '2026-01-01 06:00:02', 'success', FALSE, 20, 0, 2, '0.1.0')")
    con.close()


def test_layout_3_upgrades_to_4_and_keeps_its_runs(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    layout_3_state(path)
    wh = connect("duckdb", path=str(path))
    try:
        store = StateStore(wh, "dinsync")
        assert store.layout_version() == 3
        assert store.migrate() == LAYOUT_VERSION == 5
        assert "segment_rows" in wh.table_columns("dinsync", "runs")
        assert wh.table_columns("dinsync", "sync_state")[:3] == ["sync", "paused", "paused_by"]
        assert wh.table_columns("dinsync", "events") == ["event_at", "sync", "event", "run_id", "detail"]
        [old] = store.last_runs("users")
        assert old["segment_rows"] is None and run_from_log(old)["segment_rows"] == 0
        assert store.last_good_segment_rows("users") is None  # a run before layout 4 has no segment size
        s = RunSummary(sync="users", run_id="r4", status="success", segment_rows=18)
        store.start_run(s, old["finished_at"].replace(hour=7), False, "0.2.0")
        store.finish_run(s)
        assert store.last_good_segment_rows("users") == 18
        assert store.migrate() == LAYOUT_VERSION  # idempotent
    finally:
        wh.close()


def test_sync_state_round_trip(tmp_path):
    wh = connect("duckdb", path=str(tmp_path / "w.duckdb"))
    try:
        store = StateStore(wh, "dinsync")
        store.migrate()
        states = SyncStates(store)
        assert states.get("users").paused is False and states.all() == {}
        states.pause("users", by="auto", culprit="column", reason="column 'plan' is gone", run_id="r1")
        states.notified("users", "paused")
        st = states.get("users")
        assert (st.paused, st.paused_by, st.culprit, st.reason, st.paused_run_id, st.notified_state) == \
            (True, "auto", "column", "column 'plan' is gone", "r1", "paused")
        assert st.auto_paused and st.paused_at is not None
        states.checked("users", "still gone", culprit="model", reason="model failed")
        assert (states.get("users").culprit, states.get("users").check_error) == ("model", "still gone")
        states.resume("users", "its checks pass again")
        st = states.get("users")
        assert (st.paused, st.culprit, st.reason, st.notified_state) == (False, None, None, "paused")
        assert list(states.all()) == ["users"]
        assert wh.scalar("SELECT COUNT(*) FROM dinsync.sync_state") == 1  # one row per sync
        assert [e["event"] for e in states.events("users")] == ["resumed", "paused"]
    finally:
        wh.close()


from tests.warehouses.conftest import (  # noqa: E402,F401 - fixtures
    fakesnow, target, wh_bigquery, wh_databricks, wh_duckdb, wh_postgres, wh_redshift, wh_snowflake)


def test_operating_state_on_every_warehouse(target):  # noqa: F811 - the imported fixture
    """DELETE + INSERT per sync, booleans, NULL timestamps and events through each adapter's binds."""
    wh = target.connect()
    try:
        store = StateStore(wh, target.state_schema)
        store.migrate()
        states = SyncStates(store)
        states.pause("users", by="hand", culprit="hand", reason="it's 'quoted' — and long " * 20)
        states.notified("users", "paused")
        states.pause("other", by="auto", culprit="credentials", reason="401")
        got = states.all()
        assert sorted(got) == ["other", "users"] and got["users"].paused_by == "hand"
        assert got["users"].reason.startswith("it's 'quoted' — and long ") and got["users"].notified_state == "paused"
        states.resume("other", "its checks pass again")
        assert states.get("other").paused is False and states.get("other").checked_at is not None
        assert wh.scalar(f"SELECT COUNT(*) FROM {store.t('sync_state')}") == 2
        assert len(states.events()) == 3
    finally:
        wh.close()
