"""Operational failures of the warehouse a run cannot fix by itself: each is reported as what it
is, with the exit code of a failed run, and a run once it is gone converges."""
from __future__ import annotations

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
