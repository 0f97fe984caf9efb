"""A wide sync (many mapped fields) plans and commits under DuckDB's default memory limits: what a
plan and its commits need grows with the number of columns, and the adapter sizes its buffer
pools for the sync (DuckDBWarehouse.size_for)."""
from __future__ import annotations

import pyarrow as pa
import pytest

from dinsync.diff import DiffSpec, Planner
from dinsync.warehouses import WarehouseUnavailable, connect
from dinsync.warehouses.base import BATCH_BYTES


def test_limits_grow_with_the_width_and_come_back_for_a_narrow_sync(tmp_path):
    w = connect("duckdb", path=str(tmp_path / "w.duckdb"), threads=2)
    setting = lambda: w.query("SELECT current_setting('memory_limit') AS v").column(0)[0].as_py()
    w.size_for(9)  # by default ("auto") each pool is what the width needs
    assert (w.memory_limit, w.streaming_memory_limit, w.inserting_memory_limit) == ("141MB", "109MB", "53MB")
    narrow = setting()
    w.size_for(150)
    assert (w.memory_limit, w.streaming_memory_limit, w.inserting_memory_limit) == ("564MB", "532MB", "476MB")
    assert setting() != narrow
    w.size_for(9)  # a narrower sync after it: back to its own
    assert (w.memory_limit, w.streaming_memory_limit, w.inserting_memory_limit) == ("141MB", "109MB", "53MB")
    assert setting() == narrow
    floors = connect("duckdb", path=str(tmp_path / "f.duckdb"), threads=2, memory_limit="192MB",
                     streaming_memory_limit="160MB")
    floors.size_for(9)  # configured limits above the need are kept (the defaults until 2026-12-02)
    assert (floors.memory_limit, floors.streaming_memory_limit, floors.inserting_memory_limit) == (
        "192MB", "160MB", "53MB")
    floors.size_for(150)
    assert (floors.memory_limit, floors.streaming_memory_limit) == ("564MB", "532MB")
    big = connect("duckdb", path=str(tmp_path / "b.duckdb"), threads=2, memory_limit="2GB", streaming_memory_limit="1GB")
    big.size_for(150)  # configured limits above what the width needs are kept; inserts need no more
    assert (big.memory_limit, big.streaming_memory_limit, big.inserting_memory_limit) == ("2GB", "1GB", "476MB")
    small = connect("duckdb", path=str(tmp_path / "s.duckdb"), threads=2, streaming_memory_limit="80MB")
    small.size_for(9)  # both follow the width
    assert (small.streaming_memory_limit, small.inserting_memory_limit) == ("109MB", "53MB")
    small.size_for(2)
    assert (small.streaming_memory_limit, small.inserting_memory_limit) == ("88MB", "32MB")
    unbounded = connect("duckdb", path=str(tmp_path / "u.duckdb"), threads=16, memory_limit=None,
                        streaming_memory_limit=None)
    unbounded.size_for(150)
    assert (unbounded.memory_limit, unbounded.streaming_memory_limit, unbounded.inserting_memory_limit) == (
        None, None, None)


def test_the_send_phase_of_a_first_sync_gets_the_inserting_pool(tmp_path):
    w = connect("duckdb", path=str(tmp_path / "w.duckdb"), threads=2)
    setting = lambda: w.query("SELECT current_setting('memory_limit') AS v").column(0)[0].as_py()
    w.size_for(9)
    planning = setting()
    with w.streaming():
        replacing = setting()
    with w.streaming(replacing=False):
        inserting = setting()
    assert setting() == planning
    mib = [int(float(v.split()[0]) * (1000 if "GiB" in v else 1)) for v in (planning, replacing, inserting)]
    assert mib == [134, 103, 50]  # 141, 109 and 53 MB in MiB, as DuckDB shows them


def test_sixty_fields_commit_while_the_plan_streams(tmp_path):
    """250k rows x 60 fields: with the default 160 MB while streaming, the commits' inserts ran out
    of memory (measured); sized for the width they go through, first sync and churn."""
    w = connect("duckdb", path=str(tmp_path / "w.duckdb"))
    n_fields, rows = 60, 250_000
    cols = ", ".join(f"'v{j}_' || (i % {97 + j}) AS c{j}" for j in range(n_fields))
    w.execute(f"CREATE TABLE wide AS SELECT 'u' || i || '@x.com' AS email, {cols} FROM range({rows}) t(i)")
    spec = DiffSpec(sync="wide", model_sql="SELECT * FROM wide", key_column="email", key_normalization="email",
                    fields=[("email", "email")] + [(f"c{j}", f"f{j}") for j in range(n_fields)])
    p = Planner(w, spec)
    p.ensure_state()

    def send_all(first: bool) -> int:
        committed, keys = 0, []
        with w.streaming(replacing=not first):  # as the engine: a first sync's commits only insert
            for batch in p.stream_sendable(10_000):
                keys.append(batch.column(0))
                if sum(len(k) for k in keys) >= 50_000:
                    committed += p.commit_acknowledged(pa.concat_arrays(keys))
                    keys = []
            if keys:
                committed += p.commit_acknowledged(pa.concat_arrays(keys))
        return committed

    stats = p.plan()
    assert stats.added == rows and stats.first_sync
    assert send_all(first=True) == rows
    w.execute("UPDATE wide SET c0 = c0 || 'x' WHERE hash(email) % 10 = 0")
    stats = p.plan()
    changed = stats.changed
    assert 20_000 < changed < 30_000 and not stats.first_sync
    assert send_all(first=False) == changed
    assert p.plan().changed == 0
    snap = w.query(f'SELECT COUNT(*) AS n, COUNT(DISTINCT _key) AS k FROM dinsync."{p.snapshot_table}"').to_pylist()[0]
    assert snap == {"n": rows, "k": rows}


def test_pools_follow_duckdbs_threads(tmp_path):
    """DuckDB runs one thread per core by default: a plan gets 16 MB more per thread beyond 4 (with
    16 threads a 2.5M-row plan ran out of 192 MB), and a run sends with 2 threads, for which the
    send phase's pools are sized."""
    w = connect("duckdb", path=str(tmp_path / "w.duckdb"), threads=16)
    setting = lambda name: w.query(f"SELECT current_setting('{name}') AS v").column(0)[0].as_py()
    assert w.memory_limit == "306MB"  # key checks and plans before any sync is sized: 96 + 3 x 6 + 12 x 16
    w.size_for(10)
    assert (w.memory_limit, w.streaming_memory_limit, w.inserting_memory_limit) == ("336MB", "112MB", "56MB")
    for replacing in (True, False):
        with w.streaming(replacing=replacing):
            assert setting("threads") == 2
        assert setting("threads") == 16
    few = connect("duckdb", path=str(tmp_path / "f.duckdb"), threads=4)
    few.size_for(10)
    assert few.memory_limit == "144MB"
    with few.streaming():
        assert few.query("SELECT current_setting('threads') AS v").column(0)[0].as_py() == 2


def test_a_first_sync_commits_under_its_pool_on_a_machine_of_many_cores(tmp_path):
    """1M rows x 10 fields with 8 DuckDB threads (an 8-core machine's default): the commits of whole
    row groups ran out of the inserting pool (then 96 MB) while the plan streamed with 8 threads."""
    from dinsync.engine.commits import whole_blocks

    w = connect("duckdb", path=str(tmp_path / "w.duckdb"), threads=8)
    n_fields, rows = 10, 1_000_000
    cols = ", ".join(f"'v{j}_' || (i % {97 + j}) AS c{j}" for j in range(n_fields))
    w.execute(f"CREATE TABLE wide AS SELECT 'u' || i || '@x.com' AS email, {cols} FROM range({rows}) t(i)")
    spec = DiffSpec(sync="wide", model_sql="SELECT * FROM wide", key_column="email", key_normalization="email",
                    fields=[(f"c{j}", f"f{j}") for j in range(n_fields)])
    p = Planner(w, spec)
    p.ensure_state()
    assert p.plan().first_sync
    block, committed, waiting = w.capabilities.insert_block_rows, 0, []
    with w.streaming(replacing=False):  # as the engine: commits of whole row groups
        for batch in p.stream_sendable(10_000):
            waiting.append(pa.concat_arrays([batch.column(0)]))
            keys = pa.concat_arrays(waiting)
            n = whole_blocks(len(keys), committed, block)
            if n:
                committed += p.commit_acknowledged(keys.slice(0, n))
                waiting = [keys.slice(n)]
        committed += p.commit_acknowledged(pa.concat_arrays(waiting))
    assert committed == rows
    snap = w.query(f'SELECT COUNT(DISTINCT _key) AS k FROM dinsync."{p.snapshot_table}"').column(0)[0].as_py()
    assert snap == rows


def test_connections_to_one_file_share_the_pool_of_their_phases(tmp_path):
    """DuckDB's memory_limit and threads are the instance's, shared by every connection of the
    process to one file (`dinsync serve --parallel` opens one per run): a run entering its send
    phase lowered the pool under another run's plan. The instance gets the sum of the pools its
    connections' phases ask for, and the fewest threads."""
    path = str(tmp_path / "w.duckdb")
    a = connect("duckdb", path=path, threads=4)
    b = connect("duckdb", path=path, threads=4)
    setting = lambda: tuple(a.query(f"SELECT current_setting('{n}') AS v").column(0)[0].as_py()
                            for n in ("memory_limit", "threads"))
    a.size_for(9)
    b.size_for(9)
    assert setting() == ("268.9 MiB", 4)  # two plans: 141 MB each
    with b.streaming(replacing=False):
        assert setting() == ("185.0 MiB", 2)  # a plan (141 MB) and a first sync's send phase (53 MB)
        with a.streaming():
            assert setting() == ("154.4 MiB", 2)  # 109 + 53 MB
        assert setting() == ("185.0 MiB", 2)
    assert setting() == ("268.9 MiB", 4)
    b.close()
    a.size_for(9)
    assert setting() == ("134.4 MiB", 4)  # alone again: its own pool
    a.close()
    alone = connect("duckdb", path=str(tmp_path / "other.duckdb"), threads=4)  # another file: its own
    alone.size_for(9)
    with alone.streaming(replacing=False):
        assert alone.query("SELECT current_setting('memory_limit') AS v").column(0)[0].as_py() == "50.5 MiB"


def _synced_people(path: str, rows: int, columns: dict[str, str], then: str | None = None) -> DiffSpec:
    """A DuckDB file whose `people` (`rows` emails and `columns`: name -> SQL of i, each mapped to a
    field of its name) was planned and committed whole, `then` run on it, and closed (checkpointed):
    a sync after its first run. Returns the sync's spec."""
    w = connect("duckdb", path=path, threads=2)
    cols = ", ".join(f"{sql} AS {name}" for name, sql in columns.items())
    w.execute(f"CREATE TABLE people AS SELECT 'u' || i || '@x.com' AS email, {cols} FROM range({rows}) t(i)")
    spec = DiffSpec(sync="people", model_sql="SELECT * FROM people", key_column="email", key_normalization="email",
                    fields=[(name, name) for name in columns])
    p = Planner(w, spec)
    p.ensure_state()
    assert p.plan().added == rows
    assert p.commit_acknowledged(pa.concat_arrays([b.column(0) for b in p.stream_sendable(100_000)])) == rows
    if then:
        w.execute(then)
    w.close()
    return spec


def test_commits_that_delete_snapshot_rows_get_room_for_their_version_records(tmp_path, monkeypatch):
    """A DELETE keeps a 16 KiB version record per vector of 2,048 rows it touched until the file is
    checkpointed: a 2% churn of a 20M-row snapshot touches every vector and ran out of the 160 MB
    send pool in every run. Here a 2M-row snapshot of one field under a send pool shrunk to 24 MB
    (its base patched out) stands for it: its deletes need ~31-35 MB, and get the delete base (or
    the width's share when that is more) and 16 MB of version records: 72 MB."""
    import dinsync.warehouses.duckdb_memory as adapter

    rows = 2_000_000
    spec = _synced_people(str(tmp_path / "w.duckdb"), rows, {"score": "i % 97"})  # (no version record left)

    monkeypatch.setattr(adapter, "STREAMING_BASE_MB", 0)
    w = connect("duckdb", path=str(tmp_path / "w.duckdb"), threads=2, streaming_memory_limit="24MB")
    p = Planner(w, spec)
    assert p.plan().changed == 0 and w.streaming_memory_limit == "24MB"  # nothing to delete: as configured
    w.execute("UPDATE people SET score = score + 1 WHERE hash(email) % 50 = 0")  # 2%, all over the table
    stats = p.plan()
    assert 35_000 < stats.changed < 45_000
    base = max(adapter.DELETE_BASE_MB, adapter.PER_COLUMN_MB * (1 + 6))
    assert w.streaming_memory_limit == f"{base + 16}MB"  # 977 vectors x 16 KiB
    committed, keys = 0, []
    with w.streaming():
        for batch in p.stream_sendable(10_000):
            keys.append(batch.column(0))
            if sum(len(k) for k in keys) >= 20_000:
                committed += p.commit_acknowledged(pa.concat_arrays(keys))
                keys = []
        if keys:
            committed += p.commit_acknowledged(pa.concat_arrays(keys))
    assert committed == stats.changed
    assert p.plan().changed == 0
    snap = w.query(f'SELECT COUNT(*) AS n, COUNT(DISTINCT _key) AS k FROM dinsync."{p.snapshot_table}"').to_pylist()[0]
    assert snap == {"n": rows, "k": rows}


def test_a_plan_that_needs_more_memory_runs_again_with_more(tmp_path, monkeypatch):
    """A plan's statements need memory by the rows they compare: 1M changed rows x 9 fields needed
    242-248 MB, more than the default 192 MB, and such a sync failed every run. A statement that
    runs out of memory outside a transaction runs again with the pools doubled. Here 200k changed
    rows under a pool shrunk to 16 MB (base and width shares patched out)."""
    import dinsync.warehouses.duckdb_memory as adapter

    rows = 200_000
    columns = {f"c{j}": f"'value{j}_' || (i % {97 + j})" for j in range(9)}
    spec = _synced_people(str(tmp_path / "w.duckdb"), rows, columns, then="UPDATE people SET c0 = c0 || 'x'")

    monkeypatch.setattr(adapter, "PLAN_BASE_MB", 0)
    monkeypatch.setattr(adapter, "PER_COLUMN_MB", 0)
    w = connect("duckdb", path=str(tmp_path / "w.duckdb"), threads=2, memory_limit="16MB")
    with pytest.raises(WarehouseUnavailable), w.transaction():  # in a transaction: not run again
        w.execute("CREATE TABLE copy AS SELECT * FROM people ORDER BY c1, c2, c3, email")
    assert w.grown_to is None
    stats = Planner(w, spec).plan()
    assert stats.changed == rows and w.grown_to in ("32MB", "64MB", "128MB", "256MB")
    from dinsync.engine.run import memory_note  # what `dinsync sync` and `dinsync plan` print
    assert f"it ran again with {w.grown_to}" in memory_note(w) and "warehouse.memory_limit" in memory_note(w)
    sizes = [int(float(v.split()[0]) * (1024 if "GiB" in v else 1)) for v in
             [w.query("SELECT current_setting('memory_limit') AS v").column(0)[0].as_py()]]
    assert sizes[0] >= 30  # (MiB) the grown pool stays for the rest of the plan
    with w.streaming():  # sending starts again from its own pool
        assert w.query("SELECT current_setting('memory_limit') AS v").column(0)[0].as_py() == "61.0 MiB"  # 64 MB
    w.size_for(9)  # the next plan too
    assert w.grown_to is None
    assert w.query("SELECT current_setting('memory_limit') AS v").column(0)[0].as_py() == "15.2 MiB"


def test_keys_leaving_in_numbers_are_deleted_in_parts(tmp_path, monkeypatch):
    """5M of a 10M-row sync's keys leaving the segment needed more than 192 MB to delete in one
    transaction, and that sync failed every run: past Capabilities.delete_part_rows they are
    deleted in parts (by key hash), each its own transaction with room for its rows. Here ~1M of
    2M keys leave under a 72 MB pool (base and width shares patched out; in one transaction they
    need 127-134 MB, in parts of 300k 76-83 MB), in parts of at most 150k (48-55 MB). And a pool
    that DuckDB cannot shrink to (its blocks are in use) is kept, not fatal."""
    import dataclasses

    import dinsync.warehouses.duckdb_memory as adapter

    rows = 2_000_000
    spec = _synced_people(str(tmp_path / "w.duckdb"), rows, {"score": "i % 97"},
                          then="DELETE FROM people WHERE hash(email) % 2 = 0")

    for name in ("PLAN_BASE_MB", "PER_COLUMN_MB", "DELETE_BASE_MB"):
        monkeypatch.setattr(adapter, name, 0)
    w = connect("duckdb", path=str(tmp_path / "w.duckdb"), threads=2, memory_limit="72MB")
    w.capabilities = dataclasses.replace(w.capabilities, delete_part_rows=150_000)
    p = Planner(w, spec)
    removed = p.plan().removed
    assert removed > rows // 3 and w.grown_to is None
    assert p._removal_parts() == 7 and w.memory_limit == "72MB"  # (16 MB of version records + 20 MB a part)
    statements = []
    run = w.execute
    monkeypatch.setattr(w, "execute", lambda sql, params=None: statements.append(sql) or run(sql, params))
    assert p.commit_removed() == removed
    assert sum(s.lstrip().startswith("DELETE") for s in statements) == 7 and statements.count("COMMIT") == 7
    left = w.query(f'SELECT COUNT(*) AS n FROM dinsync."{p.snapshot_table}"').column(0)[0].as_py()
    assert left == rows - removed and p.plan().removed == 0
    w.execute("CREATE TABLE pinned AS SELECT * FROM people")
    w.execute("SET memory_limit = '1GB'")
    held = w.query("SELECT * FROM pinned")  # (an Arrow result: DuckDB's blocks stay in use)
    w._configured_limits = ("2MB", "2MB")
    w.size_for(1)  # DuckDB cannot free enough for 2 MB: the pool stays, the run goes on
    assert held.num_rows == rows - removed and w.query("SELECT 1 AS one").column(0)[0].as_py() == 1


def test_a_delete_that_ran_out_of_memory_is_not_run_again(tmp_path):
    """DuckDB refuses, for the rest of the process, the rows of a DELETE that ran out of memory
    ("Conflict on tuple deletion", seen every time with 1M rows): running it again with a larger
    pool would turn an out-of-memory error, whose hint says what to raise, into a conflict that
    says to run again. So a DELETE is not run again: the user gets the out-of-memory error, and
    the table is as it was."""
    w = connect("duckdb", path=str(tmp_path / "w.duckdb"), threads=2, memory_limit="64MB")
    w.execute("CREATE TABLE t AS SELECT i AS id FROM range(1000000) AS r(i)")
    w.con.execute("SET memory_limit = '2MB'")
    with pytest.raises(WarehouseUnavailable) as err:
        w.execute("-- a comment first\nDELETE FROM t WHERE id % 7 = 0")
    assert "out of memory" in str(err.value).lower() and "memory_limit" in (err.value.hint or "")
    assert w.grown_to is None
    assert w.query("SELECT COUNT(*) AS n FROM t").column(0)[0].as_py() == 1_000_000
    w.con.execute("SET memory_limit = '2MB'")
    w.execute("UPDATE t SET id = id + 1 WHERE id % 7 = 0")  # an UPDATE is run again with more
    assert w.grown_to is not None
    assert w.query("SELECT COUNT(*) AS n FROM t WHERE id % 7 = 1").column(0)[0].as_py() == 2 * 142_857 + 1


def test_a_first_plan_withholds_duplicated_keys_after_running_out_of_memory(tmp_path):
    """The rows of keys a first plan finds duplicated are withheld by an UPDATE of the plan
    (plan_all_withhold_duplicated), which can run again with a larger pool when it ran out of
    memory (a DELETE could not, see above). Here it starts under a 1 MB pool."""
    w = connect("duckdb", path=str(tmp_path / "w.duckdb"), threads=2)
    rows = 300_000
    w.execute(f"CREATE TABLE people AS SELECT 'u' || (i % {rows - 50_000}) || '@x.com' AS email, i AS score "
              f"FROM range({rows}) AS t(i)")
    spec = DiffSpec(sync="people", model_sql="SELECT * FROM people", key_column="email", key_normalization="email",
                    fields=[("score", "score")])
    p = Planner(w, spec)
    p.ensure_state()
    run = w.execute

    def execute(sql, params=None):
        if "'withheld'" in sql:
            w.con.execute("SET memory_limit = '1MB'")
        return run(sql, params)

    w.execute = execute
    stats = p.plan()
    assert w.grown_to is not None
    assert (stats.duplicate_keys, stats.duplicate_rows, stats.added) == (50_000, 100_000, rows - 100_000)
    sent = pa.concat_arrays([b.column(0) for b in p.stream_sendable(100_000)])
    assert len(sent) == rows - 100_000 and len(set(sent.to_pylist())) == rows - 100_000
    assert not {f"u{i}@x.com" for i in range(50_000)} & set(sent.to_pylist())


def test_a_stream_of_a_few_megabyte_rows_starts_again_with_a_larger_pool(tmp_path):
    """30 rows of 1 MB among 1,000 small ones: the strings a chunk pins at once exceed the pool a
    first sync sends under. Nothing was read yet, so the stream starts again with a larger pool
    instead of failing every run."""
    w = connect("duckdb", path=str(tmp_path / "w.duckdb"), threads=2)
    w.execute("CREATE TABLE t AS SELECT i AS id, CASE WHEN i < 30 THEN repeat('x', 1000000) ELSE 'y' END AS v "
              "FROM range(1030) AS r(i)")
    w.size_for(1)
    with w.streaming(replacing=False):
        w._need("8MB", 1)  # (what a narrow first sync's inserting pool could be, smaller still)
        rows = sum(b.num_rows for b in w.stream("SELECT id, v FROM t"))
    assert rows == 1030 and w.grown_to is not None


def test_commits_of_megabyte_keys_while_megabyte_rows_stream_neither_fail_nor_invalidate_the_file(tmp_path):
    """600 rows, 100 of them with a key of 1 MB (parked, as rows rejected for their content) and 100
    with a value of 1 MB (acknowledged), committed batch by batch while the plan streams, as a first
    sync does. The stream grows the pool until it can read them and fills it; the commits' inserts,
    and the checkpoint a COMMIT runs once the write-ahead log is full, ran out of it in their
    transaction, which may not grow it: an out-of-memory error, or a database invalidated for the
    process (the autocheckpoint failed after the COMMIT). With room for each commit they go through."""
    w = connect("duckdb", path=str(tmp_path / "w.duckdb"), threads=2)
    w.execute("CREATE TABLE people AS SELECT CASE WHEN i % 3 = 0 AND i % 6 <> 0 THEN repeat('k', 1000000) || i "
              "ELSE 'u' || i || '@x.com' END AS email, CASE WHEN i % 6 = 0 THEN repeat('v', 1000000) || i "
              "ELSE 'n' || i END AS name FROM range(600) AS t(i)")
    spec = DiffSpec(sync="people", model_sql="SELECT * FROM people", key_column="email", key_normalization="none",
                    fields=[("name", "name")])
    p = Planner(w, spec)
    p.ensure_state()
    w.size_for(1)
    assert p.plan().added == 600
    parked = acknowledged = 0
    with w.streaming(replacing=False):
        for batch in p.stream_sendable(10_000):
            keys = batch.column(0).to_pylist()
            acknowledged += p.commit_acknowledged([k for k in keys if len(k) < 1000])
            parked += p.commit_rejected([k for k in keys if len(k) >= 1000])
    assert (acknowledged, parked) == (500, 100)
    assert w.query("SELECT COUNT(*) AS n, COUNT(*) FILTER (WHERE length(_key) > 1000) AS wide "
                   f"FROM {p._context()['snapshot']}").to_pylist() == [{"n": 600, "wide": 100}]


def test_statements_outside_commits_run_no_checkpoint_while_megabyte_rows_stream(tmp_path):
    """As above, with a statement of its own after each commit (the engine records rejections and
    the run's counts so): any statement that commits may run DuckDB's checkpoint once the WAL holds
    16 MiB, and one run outside a commit's room ran out of the pool the stream filled ("COMMIT
    succeeded and is durable, but the autocheckpoint failed": the database invalidated for the
    process). While wide rows stream, DuckDB checkpoints only in a commit's room."""
    w = connect("duckdb", path=str(tmp_path / "w.duckdb"), threads=2)
    w.execute("CREATE TABLE people AS SELECT CASE WHEN i % 3 = 0 AND i % 6 <> 0 THEN repeat('k', 1000000) || i "
              "ELSE 'u' || i || '@x.com' END AS email, CASE WHEN i % 6 = 0 THEN repeat('v', 1000000) || i "
              "ELSE 'n' || i END AS name FROM range(600) AS t(i)")
    w.execute("CREATE TABLE log (n INTEGER)")
    spec = DiffSpec(sync="people", model_sql="SELECT * FROM people", key_column="email", key_normalization="none",
                    fields=[("name", "name")])
    p = Planner(w, spec)
    p.ensure_state()
    w.size_for(1)
    p.plan()
    committed = 0
    with w.streaming(replacing=False):
        for batch in p.stream_sendable(10_000):
            keys = batch.column(0).to_pylist()
            committed += p.commit_acknowledged([k for k in keys if len(k) < 1000])
            committed += p.commit_rejected([k for k in keys if len(k) >= 1000])
            w.execute("INSERT INTO log VALUES (1)")
    assert committed == 600
    assert w.query("SELECT current_setting('checkpoint_threshold') AS v").column(0)[0].as_py() == "16.0 MiB"
    w.execute("CHECKPOINT")
    assert w.query(f"SELECT COUNT(*) AS n FROM {p._context()['snapshot']}").column(0)[0].as_py() == 600


def test_a_stream_that_runs_out_of_memory_after_its_first_rows_goes_on_with_the_rest(tmp_path):
    """200 rows of 1 MB after 19,800 narrow ones: the pool the stream's first rows needed (the send
    pool of an everyday run) cannot read them, and rows already read cannot be read again. The run
    after one killed -9 of a model with 500 values of 1 MB failed so every time ("Out of Memory
    Error ... while streaming a query"). The stream goes on with the plan's rows not read yet
    (by their positions), with a larger pool: every row once."""
    w = connect("duckdb", path=str(tmp_path / "w.duckdb"), threads=2)
    w.execute("CREATE TABLE people AS SELECT 'u' || i || '@x.com' AS email, CASE WHEN i >= 19800 "
              "THEN repeat('v', 1000000) || i ELSE 'n' || i END AS name FROM range(20000) AS t(i)")
    spec = DiffSpec(sync="people", model_sql="SELECT * FROM people", key_column="email", key_normalization="email",
                    fields=[("name", "name")])
    p = Planner(w, spec)
    p.ensure_state()
    w.size_for(1)
    assert p.plan().added == 20_000
    with w.streaming():
        keys = [k for batch in p.stream_sendable(10_000) for k in batch.column(0).to_pylist()]
    assert len(keys) == 20_000 and set(keys) == {f"u{i}@x.com" for i in range(20_000)}
    assert w.grown_to is not None


def test_checkpoints_come_back_once_no_run_of_the_file_streams_wide_rows(tmp_path):
    """`serve --parallel`: two runs of one DuckDB file share its instance, and each stream of wide
    rows holds its checkpoints back (see the test above). The second to hold them took the held
    threshold for DuckDB's own and set it back last: the file was never checkpointed again while the
    process lived (its WAL growing). Held while any run's stream holds them, back once none does."""
    path = str(tmp_path / "w.duckdb")
    a, b = connect("duckdb", path=path, threads=2), connect("duckdb", path=path, threads=2)
    setting = lambda: a.query("SELECT current_setting('checkpoint_threshold') AS v").column(0)[0].as_py()
    try:
        a._hold_checkpoints(True)
        b._hold_checkpoints(True)
        assert setting() != "16.0 MiB"
        a._hold_checkpoints(False)
        assert setting() != "16.0 MiB"  # b's stream still holds them
        b._hold_checkpoints(False)
        assert setting() == "16.0 MiB"
        a._hold_checkpoints(True)
        a.close()  # closed with its stream open
        assert b.query("SELECT current_setting('checkpoint_threshold') AS v").column(0)[0].as_py() == "16.0 MiB"
    finally:
        b.close()


def test_a_plan_of_wide_rows_streams_within_the_send_phase_pool(tmp_path):
    """1,500 rows of 100 KB (a plan of 150 MB) streamed under a first sync's inserting pool (29 MB
    at one field). DuckDB reads a table 2,048 rows at a time, pinning every value of them: the
    stream ran out of the pool, and started again with it doubled until a chunk fitted (to 232 MB
    here; 1 GB for 200 KB values, 4 GB for rows of 1 MB, and a first sync of 20,000 rows of 200 KB
    to Iterable peaked at 2.2 GB of RSS). The plan is read in ranges of its row positions, a few MB
    at a time: the pool stays the send phase's, every row comes once, in order, and no batch holds
    much more than BATCH_BYTES."""
    w = connect("duckdb", path=str(tmp_path / "w.duckdb"), threads=2)
    w.execute("CREATE TABLE people AS SELECT 'u' || i || '@x.com' AS email, repeat(md5(i::VARCHAR), 3125) AS notes "
              "FROM range(1500) AS t(i)")
    spec = DiffSpec(sync="people", model_sql="SELECT * FROM people", key_column="email", key_normalization="email",
                    fields=[("notes", "notes")])
    p = Planner(w, spec)
    p.ensure_state()
    w.size_for(1)
    assert p.plan().added == 1500
    setting = "SELECT current_setting('memory_limit') AS v"
    keys, pools, sizes = [], set(), []
    with w.streaming(replacing=False):
        pools.add(w.query(setting).column(0)[0].as_py())
        for batch in p.stream_sendable(10_000):
            keys += batch.column(0).to_pylist()
            sizes.append(batch.nbytes)
            pools.add(w.query(setting).column(0)[0].as_py())
    assert keys == [f"u{i}@x.com" for i in range(1500)]
    assert len(pools) == 1, pools
    assert max(sizes) <= BATCH_BYTES + 200_000, sizes
