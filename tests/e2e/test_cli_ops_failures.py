"""Operational failures of the warehouse a run cannot fix by itself: each is reported as what it
is, with the exit code of a failed run, and a run once it is gone converges."""
from __future__ import annotations

import json

import duckdb

from dinsync.warehouses.duckdb import DuckDBWarehouse

WAL_NOT_WRITABLE = ('TransactionContext Error: Failed to commit: Cannot open file "{path}.wal": '
                    'Permission denied')


def test_a_folder_duckdb_cannot_write_its_wal_in_is_no_run_holding_the_lock(project, monkeypatch):
    """The project folder is read-only (or the disk is full): DuckDB opens the file, reads it,
    and fails every COMMIT, as a TransactionException. That was taken for a write conflict, and
    the first commit, the lock's, for another run having just taken it: "already running", exit 5,
    "wait for that run to finish" (no run was running)."""
    assert project.sync()["exit_code"] == 0
    project.sql("update main.customers set plan = 'pro'")
    original = DuckDBWarehouse.execute

    def execute(self, sql, params=None):
        if sql.strip().upper() == "COMMIT":
            original(self, "ROLLBACK")  # DuckDB rolls back a transaction whose commit failed
            raise self.translate(duckdb.TransactionException(WAL_NOT_WRITABLE.format(path=self.path)),
                                 "running a statement")
        return original(self, sql, params)

    monkeypatch.setattr(DuckDBWarehouse, "execute", execute)
    out = project.sync()
    [run] = out["runs"]
    assert out["exit_code"] == 1, out
    assert "already running" not in (run["error"] or ""), run
    assert ".wal" in run["error"] and "writable" in (run["hint"] or ""), run
    assert project.thread.call(project.sandbox.get_user, email="user1@example.com")["dataFields"]["plan"] == "free"
    monkeypatch.setattr(DuckDBWarehouse, "execute", original)
    again = project.sync()
    assert again["exit_code"] == 0 and again["runs"][0]["acknowledged"] == 20, again
    assert project.sync()["runs"][0]["sent"] == 0


def test_a_lock_held_while_a_failed_run_is_checked_does_not_pause_the_sync(project, monkeypatch):
    """A run fails because another transaction holds the model's table (PostgreSQL's lock_timeout,
    a write conflict), and the check that follows a failed run meets the same lock: that check
    cannot tell whether the model is broken. It paused the sync, culprit `model` ("model customers
    failed in the warehouse"), channels heard `paused`, and `dinsync sync` refused it with exit 3
    until a check passed."""
    from dinsync.diff.planner import Planner
    from dinsync.warehouses.errors import WarehouseConflict

    held = WarehouseConflict("PostgreSQL: canceling statement due to lock timeout (while running a query)")
    calls = {"columns": 0}
    original_columns = DuckDBWarehouse.columns

    def columns(self, sql):
        calls["columns"] += 1
        if calls["columns"] > 1:  # the command's own column check passed: the lock came after it
            raise held
        return original_columns(self, sql)

    def plan(self, *args, **kwargs):
        raise held

    original_plan = Planner.plan
    monkeypatch.setattr(DuckDBWarehouse, "columns", columns)
    monkeypatch.setattr(Planner, "plan", plan)
    out = project.sync()
    assert out["exit_code"] == 1, out
    assert calls["columns"] >= 2  # the failed run was checked
    status = project.cli("status")
    [sync] = json.loads(status.stdout)["syncs"]
    assert not sync["paused"] and sync["culprit"] is None, sync
    monkeypatch.setattr(DuckDBWarehouse, "columns", original_columns)
    monkeypatch.setattr(Planner, "plan", original_plan)
    again = project.sync()
    assert again["exit_code"] == 0 and again["runs"][0]["acknowledged"] == 20, again


def test_a_run_whose_end_could_not_be_recorded_is_not_running_for_ever(project, monkeypatch):
    """The warehouse ended the run's session (an idle-session timeout, a terminated backend): its
    end could not be written, its lock was released all the same (on a new session). Nothing
    marked it: the run log said `running` for good (`dinsync runs`, a query for stuck runs)."""
    from dinsync.state import StateStore
    from dinsync.warehouses.errors import WarehouseUnavailable

    def session_ended(self, *args, **kwargs):
        raise WarehouseUnavailable("PostgreSQL: terminating connection due to idle-session timeout")

    original = StateStore.finish_run
    monkeypatch.setattr(StateStore, "finish_run", session_ended)
    out = project.sync()
    assert out["exit_code"] == 1, out
    [(stuck,)] = project.sql("select run_id from dinsync.runs where status = 'running'")
    assert project.sql("select count(*) from dinsync.locks") == [(0,)]
    monkeypatch.setattr(StateStore, "finish_run", original)
    again = project.sync()
    assert again["exit_code"] == 0, again
    assert project.sql("select status from dinsync.runs where run_id = ?", stuck) == [("abandoned",)]
    assert project.sql("select count(*) from dinsync.runs where status = 'running'") == [(0,)]
