"""Checkpoints of a first sync carry whole storage blocks of the snapshot (DuckDB's row groups):
what a commit inserts reaches the next block boundary or a later one, the rest waits for the next
checkpoint; a checkpoint due by time, and the last one, commit everything."""
from __future__ import annotations

import asyncio
import os

from dinsync.destinations.base import RecordResult
from dinsync.diff import DiffSpec, Planner
from dinsync.engine.commits import Checkpointer
from dinsync.warehouses import connect


class Recorder:
    """A planner that records what each commit was given (every key is a plan row)."""

    def __init__(self):
        self.acked: list[int] = []
        self.parked: list[int] = []
        self.events: list[str] = []  # commits, and the writes run in their transaction ("also")

    def commit_acknowledged(self, keys, also=None):
        self.acked.append(len(keys))
        self.events.append("acked")
        if also is not None:
            also()
        return len(keys)

    def commit_rejected(self, keys, also=None):
        self.parked.append(len(keys))
        self.events.append("parked")
        if also is not None:
            also()
        return len(keys)

    def release_streamed(self, keys):
        pass


class NoLock:
    def check(self):
        pass


class NoState:
    def __init__(self, events=None):
        self.events = events if events is not None else []

    def add_rejections(self, *a):
        self.events.append("rejections")

    def record_progress(self, run_id, counts):
        self.events.append(("progress", counts["sent"]))


def checkpointer(planner, block_rows, rows=4, seconds=3600.0):
    return Checkpointer(planner, NoState(), NoLock(), "run", "s", rows=rows, seconds=seconds,
                        progress=lambda *a: None, block_rows=block_rows)


def ack(c, n, start=0):
    c.acknowledged([f"k{i}" for i in range(start, start + n)])
    asyncio.run(c.checkpoint())


def test_commits_of_a_first_sync_end_on_block_boundaries():
    p = Recorder()
    c = checkpointer(p, block_rows=10)
    ack(c, 7)
    assert p.acked == []  # due by rows (>= 4), but not a whole block yet
    ack(c, 16, 7)  # 23 waiting: two blocks go, 3 wait
    assert p.acked == [20] and c.inserted == 20
    c.rejected("k99", None, "bad email")  # a parked row of a first sync is inserted too
    ack(c, 6, 23)  # 9 waiting; with the parked row the boundary is 9 rows away
    assert p.parked == [1] and p.acked == [20, 9] and c.inserted == 30
    ack(c, 3, 29)
    asyncio.run(c.checkpoint(force=True))  # the last checkpoint: everything
    assert p.acked == [20, 9, 3] and c.inserted == 33
    c.close()


def test_a_checkpoint_due_by_time_commits_everything_then_blocks_line_up_again():
    p = Recorder()
    c = checkpointer(p, block_rows=10, seconds=0.0)
    ack(c, 5)
    assert p.acked == [5]  # due by time: not held back
    c.every_seconds = 3600.0
    ack(c, 17, 5)  # 5 rows reach the boundary, then one whole block: 15; 2 wait
    assert p.acked == [5, 15] and c.inserted == 20
    c.close()


def test_without_blocks_every_due_checkpoint_commits_all():
    p = Recorder()
    c = checkpointer(p, block_rows=None)
    ack(c, 7)
    ack(c, 5, 7)
    assert p.acked == [7, 5]
    c.close()


def test_whole_row_groups_bypass_duckdbs_write_ahead_log(tmp_path):
    """On DuckDB a first sync's commits of whole row groups are written to the database file once:
    its write-ahead log stays small. Commits as they come (none held back) log every row, to be
    written again at the next checkpoint. (DuckDB's automatic checkpoints, which empty the log
    once it holds 16 MB, are put off here, so that the log shows every row written through it.)"""
    sizes = {}
    for mode in ("blocks", "as they come"):
        path = str(tmp_path / f"{mode.replace(' ', '_')}.duckdb")
        w = connect("duckdb", path=path)
        rows = 600_000
        w.execute(f"CREATE TABLE people AS SELECT 'u' || i || '@example.com' AS email, i % 97 AS score "
                  f"FROM range({rows}) AS t(i)")
        w.execute("CHECKPOINT")
        w.execute("SET checkpoint_threshold = '1GB'")
        planner = Planner(w, DiffSpec(sync="s", model_sql="SELECT * FROM people", key_column="email",
                                      key_normalization="email", fields=[("score", "score")]))
        assert planner.plan().first_sync
        block = w.capabilities.insert_block_rows if mode == "blocks" else None
        # with blocks, commits of two row groups at once; as they come, of about 50k rows
        c = checkpointer(planner, block_rows=block, rows=250_000 if block else 50_000)
        with w.streaming(replacing=False):
            for batch in planner.stream_sendable(batch_rows=10_000):  # the stream stays open meanwhile
                c.acknowledged(batch.column("_key").to_pylist())
                asyncio.run(c.checkpoint())
            wal = path + ".wal"
            sizes[mode] = os.path.getsize(wal) if os.path.exists(wal) else 0
        asyncio.run(c.checkpoint(force=True))
        c.close()
        assert c.inserted == rows if block else c.committed == rows
        assert w.query("SELECT count(*) AS n FROM dinsync.snap_s").column(0)[0].as_py() == rows
        if block:  # the snapshot's row groups are whole, but the last
            groups = w.query("""SELECT row_group_id, sum(count) AS n FROM pragma_storage_info('dinsync.snap_s')
                                WHERE column_name = '_kh' AND segment_type <> 'VALIDITY'
                                GROUP BY 1 ORDER BY 1""").column("n").to_pylist()
            assert [int(n) for n in groups] == [block] * 4 + [rows - 4 * block]
        w.close()
    # whole row groups written once (the log holds a few KB for them), against every row in the log
    assert sizes["blocks"] < 100_000 < 5_000_000 < sizes["as they come"], sizes


def _transaction_memory(w) -> int:
    """Bytes of DuckDB's buffer pool held for transactions (undo buffers, catalog changes)."""
    return int(w.scalar("SELECT COALESCE(SUM(memory_usage_bytes), 0) FROM duckdb_memory() WHERE tag = 'TRANSACTION'"))


def test_small_commits_while_the_plan_streams_hold_no_memory_of_their_own(tmp_path):
    """A first sync to a slow destination commits a few rows every few seconds while the plan's
    stream stays open for hours. DuckDB keeps each catalog change of a database while an older
    transaction on it is open, so the commit's scratch view of acknowledged rows, created and
    dropped beside the plan, held ~8 KB of the buffer pool per commit until the stream ended:
    ~3,000 commits exhausted the 33 MB pool of a 3-field sync ("Failed to commit: could not
    allocate block"). The commits' scratch tables live in a database of their own."""
    w = connect("duckdb", path=str(tmp_path / "w.duckdb"))
    assert w.capabilities.commit_scratch_database not in (None, w.capabilities.scratch_database)
    w.execute("CREATE TABLE people AS SELECT 'u' || i || '@example.com' AS email, i % 97 AS score "
              "FROM range(200000) AS t(i)")
    planner = Planner(w, DiffSpec(sync="s", model_sql="SELECT * FROM people", key_column="email",
                                  key_normalization="email", fields=[("score", "score")]))
    assert planner.plan().first_sync
    held, commits = {}, 0
    with w.streaming(replacing=False):
        for batch in planner.stream_sendable(batch_rows=2_000):  # the stream stays open meanwhile
            keys = batch.column("_key").to_pylist()
            for i in range(0, len(keys), 20):  # 20 rows a commit, as a slow platform answers
                planner.commit_acknowledged(keys[i:i + 20])
                commits += 1
                if commits in (50, 600):
                    held[commits] = _transaction_memory(w)
            if commits >= 600:
                break
    assert w.scalar("SELECT count(*) FROM dinsync.snap_s") == commits * 20
    # before: 550 commits more held 550 x ~8 KB = 4.5 MB more; now nothing grows with the commits
    assert held[600] - held[50] < 256 * 1024, held
    w.close()


def _duckdb_held(w) -> int:
    """Bytes DuckDB holds in its pool and its temporary files."""
    return int(w.scalar("SELECT SUM(memory_usage_bytes) + SUM(temporary_storage_bytes) FROM duckdb_memory()"))


def test_plans_and_writes_of_other_syncs_while_one_streams_leave_nothing_behind(tmp_path):
    """`serve --parallel`: one sync streams its plan to a slow platform for hours while another
    plans and commits every few minutes. DuckDB keeps what a transaction replaced or dropped while
    an older transaction on the same database is open: in a scratch database shared by the syncs,
    every plan of the second sync (its candidates, its plan) stayed until the first sync's stream
    ended; and the stream, naming its plan `"scratch"."plan"`, also held a transaction on the
    database file (DuckDB looks for a schema of that name there first), so every write to the model
    and the snapshots stayed too. Each sync now has a scratch database of its own, named in full
    (`"dinsync_scratch_slow"."main"."plan_slow"`)."""
    path = str(tmp_path / "w.duckdb")
    w = connect("duckdb", path=path)
    w.execute("CREATE TABLE people AS SELECT 'u' || i || '@example.com' AS email, i % 97 AS score, "
              "'x' || hash(i) AS note FROM range(300000) AS t(i)")
    spec = dict(model_sql="SELECT * FROM people", key_column="email", key_normalization="email",
                fields=[("score", "score"), ("note", "note")])
    streaming = Planner(w, DiffSpec(sync="slow", **spec))
    assert streaming.plan().first_sync
    busy_wh = connect("duckdb", path=path)  # (another run: its own connection to the same database)
    busy = Planner(busy_wh, DiffSpec(sync="busy", **spec))
    assert busy.plan().first_sync
    busy.commit_acknowledged([k for b in busy.stream_sendable(batch_rows=100_000) for k in b.column("_key").to_pylist()])
    stream = streaming.stream_sendable(batch_rows=1_000)
    next(stream)  # the slow sync's stream stays open meanwhile
    held = []
    for run in range(4):
        busy_wh.execute(f"UPDATE people SET note = note || '{run}' WHERE hash(email) % 10 < 3")
        assert busy.plan().changed > 80_000
        keys = [k for b in busy.stream_sendable(batch_rows=100_000) for k in b.column("_key").to_pylist()]
        busy.commit_acknowledged(keys)
        held.append(_duckdb_held(w))
    # before: each round held ~15-30 MB more (the busy sync's scratch tables, the replaced rows)
    assert held[-1] - held[0] < 8 << 20, [h >> 20 for h in held]
    stream.close()
    busy_wh.close()
    w.close()


def test_rejections_piling_up_make_a_checkpoint_due():
    # rows rejected before sending are committed (recorded, parked) by row count as acknowledged
    # ones are: a sync whose rows were all rejected held every one of them until its last checkpoint
    p = Recorder()
    c = checkpointer(p, block_rows=None, rows=4)
    for i in range(4):
        c.rejected(f"k{i}", "ltv", "NaN")
    asyncio.run(c.checkpoint())
    assert p.parked == [4]
    c.close()


def test_checkpoints_record_the_runs_counts_within_their_commit_at_most_every_counts_seconds():
    p = Recorder()
    sent = [0]
    c = Checkpointer(p, NoState(p.events), NoLock(), "run", "s", rows=4, seconds=3600.0, progress=lambda *a: None,
                     counts=lambda: {"sent": sent[0]}, counts_seconds=0.0)
    sent[0] = 5
    ack(c, 5)
    assert p.events == ["acked", ("progress", 5)]  # inside the commit of the acknowledged rows
    for i in range(4):  # only rejection rows: recorded on their own, after them
        c.rejected(None, None, "no key")
    sent[0] = 9
    asyncio.run(c.checkpoint())
    assert p.events[2:] == ["rejections", ("progress", 9)]
    c.counts_seconds = 3600.0  # recorded less often where a statement is costly
    ack(c, 5, 5)
    ack(c, 5, 10)
    assert p.events[4:] == ["acked", "acked"]
    c.close()


class PendingRecorder(Recorder):
    """Also records the sizes of the stashes and of the pending outcomes each statement got."""

    def __init__(self):
        super().__init__()
        self.stashed: list[int] = []
        self.resolved: list[tuple[int, int, int]] = []

    def stash_pending_many(self, stashes):
        self.stashed.append(sum(len(keys) for _, keys in stashes))
        return self.stashed[-1]

    def resolve_pending(self, ok=(), rejected=(), forget=()):
        self.resolved.append((len(ok), len(rejected), len(forget)))
        return len(ok), len(rejected)


def test_records_awaiting_their_outcome_are_stashed_and_resolved_a_checkpoints_rows_at_a_time():
    """A 1M-row Splio run over SFTP hands over every row as pending (a file's rows, up to 199,999)
    and, at its end, every outcome at once: stashes were due by time only (150-195K keys a
    transaction) and the outcomes resolved in one, and DuckDB's pool of a first sync (~100 MB) ran
    out in 4 runs of 7 ("could not allocate block", a failed autocheckpoint invalidating the
    database). Each transaction now holds at most `checkpoint_rows` keys; each is atomic, and keys
    not yet resolved stay pending, read by the next run."""
    p = PendingRecorder()
    c = checkpointer(p, block_rows=None, rows=100)
    for f in range(3):  # three files of 90 rows: due once 100 keys wait
        c.pending(f"file{f}", [f"k{f}-{i}" for i in range(90)])
        asyncio.run(c.checkpoint())
    c.pending("big", [f"b{i}" for i in range(250)])  # one file handed over whole
    asyncio.run(c.checkpoint())
    assert p.stashed and max(p.stashed) <= 100 and sum(p.stashed) == 520
    ok = [f"b{i}" for i in range(230)]
    c.settled(ok, [RecordResult(f"b{i}", "rejected", "bad") for i in range(230, 250)])
    asyncio.run(c.checkpoint(force=True))
    assert all(sum(r) <= 100 for r in p.resolved), p.resolved
    assert [sum(col) for col in zip(*p.resolved)] == [230, 20, 0]
    c.close()
