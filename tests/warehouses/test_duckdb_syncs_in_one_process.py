"""Many syncs run one after the other by one process on one DuckDB file (`dinsync sync` of a
300-sync project): each sync's pool is sized for that sync alone."""
from __future__ import annotations

import os

from dinsync.warehouses import duckdb_memory
from dinsync.warehouses.duckdb import DuckDBWarehouse


def wal_bytes(path) -> int:
    return os.path.getsize(f"{path}.wal") if os.path.exists(f"{path}.wal") else 0


def write_like_a_sync(w: DuckDBWarehouse, i: int, rows: int) -> None:
    w.execute(f"CREATE TABLE snap_{i} AS SELECT range AS k, repeat('x', 40) || range AS v FROM range({rows})")


def test_what_earlier_syncs_wrote_is_checkpointed_before_the_next_sync_is_sized(tmp_path):
    """What the earlier syncs wrote stayed in DuckDB's memory, unevictable, until a checkpoint, which
    DuckDB runs only once its log holds 16 MiB (20-row syncs write ~11 KB each): in a 300-sync
    project of 20-row syncs the syncs after the 130th ran out of their 87 MB pools (`Out of Memory
    Error: failed to pin block ... (86.6 MiB/86.7 MiB used)`: 29 failed), or planned twice."""
    path = tmp_path / "w.duckdb"
    w = DuckDBWarehouse(str(path))
    try:
        w.size_for(3)
        write_like_a_sync(w, 0, 20)
        small = wal_bytes(path)
        assert 0 < small < duckdb_memory.CHECKPOINT_EARLIER_BYTES
        w.size_for(3)  # a few KB: not worth a checkpoint per sync
        assert wal_bytes(path) == small
        for i in range(1, 40):
            write_like_a_sync(w, i, 200)
        assert wal_bytes(path) >= duckdb_memory.CHECKPOINT_EARLIER_BYTES
        w.size_for(3)
        assert wal_bytes(path) < duckdb_memory.CHECKPOINT_EARLIER_BYTES
        assert w.rows("SELECT count(*) AS n FROM snap_39")[0]["n"] == 200
    finally:
        w.close()


def test_no_checkpoint_while_a_stream_holds_them_back(tmp_path, monkeypatch):
    path = tmp_path / "w.duckdb"
    w = DuckDBWarehouse(str(path))
    try:
        for i in range(40):
            write_like_a_sync(w, i, 200)
        before = wal_bytes(path)
        assert before >= duckdb_memory.CHECKPOINT_EARLIER_BYTES
        monkeypatch.setattr(w._settings, "holding", {12345})  # another run's wide stream (serve --parallel)
        w.size_for(3)
        assert wal_bytes(path) == before
    finally:
        w.close()


def test_a_file_whose_log_a_killed_run_left_opens(tmp_path):
    """A run killed mid-send (`kill -9`, an orchestrator's SIGKILL, OOM) leaves what it wrote in the
    log: the next run, checkpointing it before it sizes its pool, failed to open the warehouse with
    "unexpected error: AttributeError: 'DuckDBWarehouse' object has no attribute '_local'" (exit 1,
    nothing recorded: an orchestrator's retry failed too)."""
    import duckdb

    path = tmp_path / "w.duckdb"
    killed = duckdb.connect(str(path))
    killed.execute("PRAGMA disable_checkpoint_on_shutdown")  # as a killed process leaves it
    killed.execute("SET checkpoint_threshold = '1GB'")
    killed.execute("CREATE TABLE snap AS SELECT range AS k, repeat('x', 40) || range AS v FROM range(20000)")
    killed.close()
    assert wal_bytes(path) >= duckdb_memory.CHECKPOINT_EARLIER_BYTES
    w = DuckDBWarehouse(str(path))
    try:
        assert wal_bytes(path) < duckdb_memory.CHECKPOINT_EARLIER_BYTES
        assert w.rows("SELECT count(*) AS n FROM snap")[0]["n"] == 20000
    finally:
        w.close()
