"""Rows rejected for their content are parked until their values change (DuckDB)."""
from __future__ import annotations

import threading

import polars as pl
import pyarrow as pa
import pytest

from dinsync.diff import DiffSpec, Planner
from dinsync.diff.dialects import DIALECT_SQL
from dinsync.warehouses import connect

FIELDS = [("email", "email"), ("name", "first_name"), ("score", "score")]


class Sync:
    def __init__(self, tmp_path):
        self.w = connect("duckdb", path=str(tmp_path / "w.duckdb"))
        self.w.execute("CREATE TABLE people (email VARCHAR, name VARCHAR, score INTEGER)")
        self.p = Planner(self.w, DiffSpec(sync="s1", model_sql="SELECT * FROM people", key_column="email",
                                          key_normalization="email", fields=FIELDS))
        self.p.ensure_state()
        self.statements: list[str] = []
        execute = self.w.execute

        def recording(sql, params=None):
            self.statements.append(sql)
            return execute(sql, params)

        self.w.execute = recording

    def set_rows(self, rows):
        self.w.execute("DELETE FROM people")
        data = pa.table({"email": [r[0] for r in rows], "name": [r[1] for r in rows],
                         "score": pa.array([r[2] for r in rows], pa.int32())})
        con = self.w.con
        con.register("new_rows", data)
        con.execute("INSERT INTO people SELECT * FROM new_rows")
        con.unregister("new_rows")

    def plan(self, **kw):
        self.statements.clear()
        self.stats = self.p.plan(**kw)
        rel = f'"{self.p.plan_schema}"."{self.p.plan_table}"'
        rows = self.w.query(f"SELECT * FROM {rel} WHERE _op IN ('added', 'changed', 'removed', 'duplicate')")
        self.rows = {r["_key"]: r for r in rows.to_pylist()}
        return {k: r["_op"] for k, r in self.rows.items()}

    def flags(self, key):
        return [f for i, (_, f) in enumerate(FIELDS) if self.rows[key][f"x{i}"]]

    def compared_rows(self) -> bool:
        """Whether the last plan went beyond the one-pass digest check."""
        return any('"cand_s1"' in s and s.startswith("CREATE TABLE") for s in self.statements)

    def ack(self, keys):
        return self.p.commit_acknowledged(keys)


@pytest.fixture
def s(tmp_path):
    sync = Sync(tmp_path)
    yield sync
    sync.w.close()


def test_rejected_new_row_waits_until_it_changes(s):
    s.set_rows([("a@x.com", "Ada", 1), ("b@x.com", "Bob", 2)])
    assert s.plan() == {"a@x.com": "added", "b@x.com": "added"}
    assert s.ack(["a@x.com"]) == 1
    assert s.p.commit_rejected(["b@x.com"]) == 1
    assert s.p.parked_count() == 1
    assert s.plan() == {}  # parked: not planned again ...
    assert not s.compared_rows()  # ... and not even looked at: the no-op check expects it
    assert (s.stats.unchanged, s.stats.added) == (2, 0)
    s.set_rows([("a@x.com", "Ada", 1), ("b@x.com", "Bobby", 2)])
    assert s.plan() == {"b@x.com": "added"}  # never delivered: added, every field
    assert s.flags("b@x.com") == ["email", "first_name", "score"]
    assert s.ack(["b@x.com"]) == 1
    assert s.p.parked_count() == 0  # acknowledged: parking ends
    assert s.plan() == {}


def test_retry_rejected_plans_parked_rows_again(s):
    s.set_rows([("a@x.com", "Ada", 1), ("b@x.com", "Bob", 2)])
    s.plan()
    s.ack(["a@x.com"])
    s.p.commit_rejected(["b@x.com"])
    assert s.plan(retry_rejected=True) == {"b@x.com": "added"}
    assert s.stats.retry_rejected
    assert s.p.parked_count() == 1  # still parked until answered
    s.p.commit_rejected(["b@x.com"])
    assert s.plan() == {}
    assert s.plan(retry_rejected=True) == {"b@x.com": "added"}
    s.ack(["b@x.com"])
    assert s.p.parked_count() == 0
    assert s.plan(retry_rejected=True) == {}


def test_a_mapping_change_sends_parked_rows_once_more(s):
    """Rejected under the old mapping (a field's name or type): the row is tried again once, not
    left parked until its values change."""
    s.set_rows([("a@x.com", "Ada", 1), ("b@x.com", "Bob", 2)])
    s.plan()
    s.ack(["a@x.com"])
    s.p.commit_rejected(["b@x.com"])
    assert s.plan() == {} and s.p.parked_count() == 1
    s.p.forget_fingerprints()
    assert s.p.parked_count() == 0
    assert s.plan() == {"b@x.com": "added"}  # a: compared, unchanged (its fingerprint refreshed)
    s.p.commit_rejected(["b@x.com"])  # rejected again: parked again
    assert s.plan() == {} and s.p.parked_count() == 1


def test_rejected_change_is_compared_with_what_was_delivered(s):
    s.set_rows([("a@x.com", "Ada", 1)])
    s.plan()
    s.ack(["a@x.com"])
    s.set_rows([("a@x.com", "Ada", 2)])
    assert s.plan() == {"a@x.com": "changed"} and s.flags("a@x.com") == ["score"]
    s.p.commit_rejected(["a@x.com"])
    assert s.plan() == {} and not s.compared_rows()
    s.set_rows([("a@x.com", "Adele", 2)])  # changes again: fields that differ from the delivered row
    assert s.plan() == {"a@x.com": "changed"}
    assert s.flags("a@x.com") == ["first_name", "score"]
    assert s.plan(retry_rejected=True) == {"a@x.com": "changed"}
    s.set_rows([("a@x.com", "Ada", 2)])
    assert s.plan(retry_rejected=True) == {"a@x.com": "changed"} and s.flags("a@x.com") == ["score"]
    s.set_rows([("a@x.com", "Ada", 1)])  # back to what was delivered: nothing to send, parking ends
    assert s.plan() == {}
    assert s.p.parked_count() == 0
    assert s.plan() == {} and not s.compared_rows()


def test_parked_keys_that_leave_the_segment_are_forgotten(s):
    s.set_rows([("a@x.com", "Ada", 1), ("b@x.com", "Bob", 2), ("c@x.com", "Cy", 3)])
    s.plan()
    s.ack(["a@x.com", "c@x.com"])
    s.p.commit_rejected(["b@x.com"])
    s.set_rows([("a@x.com", "Ada", 1), ("c@x.com", "Cyd", 3)])
    s.plan()
    s.p.commit_rejected(["c@x.com"])  # delivered, then a change rejected
    assert s.p.parked_count() == 2
    s.set_rows([("a@x.com", "Ada", 1)])
    assert s.plan() == {"c@x.com": "removed"}  # b was never delivered: not reported as removed
    assert s.stats.removed == 1
    assert s.p.commit_removed() == 1
    assert s.p.parked_count() == 0
    snap = s.w.query(f'SELECT _key FROM dinsync."{s.p.snapshot_table}"').column(0).to_pylist()
    assert snap == ["a@x.com"]
    s.set_rows([("a@x.com", "Ada", 1), ("b@x.com", "Bob", 2)])
    assert s.plan() == {"b@x.com": "added"}  # re-enters: planned again, like any new key


@pytest.mark.parametrize("d_stays", [True, False])
def test_parked_keys_that_leave_the_segment_are_forgotten_when_parked_rows_are_retried(s, d_stays):
    """A retry of the parked rows compared the model with the delivered rows only, so a parked key
    never delivered that had left the model stayed in the snapshot (counted parked by that run and
    by `status`) until a run without --retry-rejected; `d_stays`: another parked key is retried (else
    the model's rows are the delivered ones, and the one-pass check found nothing to plan)."""
    s.set_rows([("a@x.com", "Ada", 1), ("b@x.com", "Bob", 2), ("c@x.com", "Cy", 3), ("d@x.com", "Di", 4)])
    s.plan()
    s.ack(["a@x.com", "c@x.com"])
    s.p.commit_rejected(["b@x.com", "d@x.com"])
    s.set_rows([("a@x.com", "Ada", 1), ("c@x.com", "Cy", 3)] + ([("d@x.com", "Di", 4)] if d_stays else []))
    assert s.plan(retry_rejected=True) == ({"d@x.com": "added"} if d_stays else {})
    assert (s.stats.removed, s.stats.unchanged) == (0, 2)
    s.p.commit_removed()
    assert s.p.parked_count() == (1 if d_stays else 0)  # b left the model (d too, unless it stays)
    snap = s.w.query(f'SELECT _key FROM dinsync."{s.p.snapshot_table}" ORDER BY 1').column(0).to_pylist()
    assert snap == ["a@x.com", "c@x.com"] + (["d@x.com"] if d_stays else [])
    s.set_rows([("a@x.com", "Ada", 1), ("b@x.com", "Bob", 2), ("c@x.com", "Cy", 3)])
    assert s.plan() == {"b@x.com": "added"}  # re-enters: planned again, like any new key


def test_full_refresh_ignores_parking(s):
    s.set_rows([("a@x.com", "Ada", 1), ("b@x.com", "Bob", 2)])
    s.plan()
    s.ack(["a@x.com"])
    s.p.commit_rejected(["b@x.com"])
    assert s.plan(full_refresh=True) == {"a@x.com": "added", "b@x.com": "added"}
    s.p.commit_rejected(["b@x.com"])
    s.ack(["a@x.com"])
    s.p.commit_full_refresh_cleanup()
    assert s.plan() == {}
    assert s.p.parked_count() == 1


def test_commit_rejected_is_idempotent_and_ignores_other_keys(s):
    s.set_rows([("a@x.com", "Ada", 1), ("b@x.com", "Bob", 2), ("b@x.com", "Bob", 3)])
    assert s.plan() == {"a@x.com": "added", "b@x.com": "duplicate"}
    assert s.p.commit_rejected(pa.array(["a@x.com", "a@x.com", None, "b@x.com", "zz@x.com"])) == 1
    assert s.p.commit_rejected(["a@x.com"]) == 1
    assert s.p.commit_rejected([]) == 0
    snap = s.w.query(f'SELECT _key, _synced_at FROM dinsync."{s.p.snapshot_table}"').to_pylist()
    assert snap == [{"_key": "a@x.com", "_synced_at": None}]  # parked only: never delivered
    s.set_rows([("a@x.com", "Ada", 1)])
    assert s.plan() == {}


def test_commits_run_while_the_plan_streams(s):
    s.set_rows([(f"u{i}@x.com", "n", i) for i in range(5000)])
    s.plan()
    batches = s.p.stream_sendable(batch_rows=500)
    errors: list[BaseException] = []
    committed = []

    def commit(keys, rejected):
        try:
            committed.append((s.p.commit_rejected if rejected else s.p.commit_acknowledged)(keys))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = []
    for n, batch in enumerate(batches):
        t = threading.Thread(target=commit, args=(batch.column("_key"), n % 3 == 0))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    assert not errors and sum(committed) == 5000
    assert s.p.parked_count() == 2000  # batches 0, 3, 6, 9 (500 rows each)
    assert s.plan() == {}


@pytest.mark.parametrize("collide", [True, False])
def test_commits_stay_exact_whatever_the_streamed_rows_say(s, collide, monkeypatch):
    """The rows the planner keeps from its stream are found by a hash of the key: with every key
    hash colliding, or with keys committed twice and keys it never streamed, commits record exactly
    the right rows."""
    from dinsync.diff.commit import StreamedRows

    monkeypatch.setattr(StreamedRows, "SLICE", 7)  # keys looked up in several slices
    if collide:
        monkeypatch.setattr(StreamedRows, "hash", staticmethod(lambda keys: pl.Series([7] * len(keys), dtype=pl.UInt64)))
    s.set_rows([(f"u{i}@x.com", "n", i) for i in range(300)])
    s.plan()
    batches = list(s.p.stream_sendable(batch_rows=64))
    keys = [k for b in batches for k in b.column("_key").to_pylist()]
    assert s.ack(keys[:100] + keys[:10]) == 100
    assert s.p.commit_rejected(keys[100:150]) == 50
    assert s.ack(keys[140:160]) == 20  # 10 of them were rejected before: acknowledged now
    assert s.ack(keys[:5] + ["nope@x.com"]) == 5
    snap = s.w.query(f'SELECT _key, _synced_at IS NOT NULL AS d, _pfp IS NOT NULL AS p FROM dinsync."{s.p.snapshot_table}"')
    state = {r["_key"]: (r["d"], r["p"]) for r in snap.to_pylist()}
    assert len(state) == 160
    assert all(state[k] == (True, False) for k in keys[:100] + keys[140:160])
    assert all(state[k] == (False, True) for k in keys[100:140])
    assert s.plan() == {k: "added" for k in keys[160:]}


def test_rows_kept_from_the_stream_stay_bounded_by_the_rows_in_flight(s):
    """What the stream carried for a row is let go once the row is committed, parked, stashed or
    released (failed, not found): a long run keeps only the rows in flight. Commits read it in
    place (no copy of the plan's rows): the snapshot gets exactly the hashes of the values sent."""
    s.set_rows([(f"u{i}@x.com", "n", i) for i in range(600)])
    s.plan()
    batches = list(s.p.stream_sendable(batch_rows=100))
    assert [b.column_names[:2] for b in batches] == [["_key", "_op"]] * 6  # carried columns not sent
    keys = [k for b in batches for k in b.column("_key").to_pylist()]
    assert len(s.p._streamed._parts) == 6
    assert s.ack(keys[:250]) == 250
    assert s.p.commit_rejected(keys[250:300]) == 50
    s.p.stash_pending(keys[300:350], "job-1")
    assert len(s.p._streamed._parts) == 3  # the first three batches were taken whole
    s.p.release_streamed(keys[350:])
    assert s.p._streamed._parts == []
    # the hashes of the plan's values (the plan keeps the values; the stream carried their hashes)
    hashed = DIALECT_SQL["duckdb"]["DINSYNC_HASH"]
    same = " AND ".join(f's."{f.snap_name}" = {hashed.format(x=f"p.v{f.i}")}' for f in s.p.fields)
    snap = s.w.query(f'SELECT s._key, {same} AND s._fp = p._fp AND s._kh = p._kh AND s._rkh = p._rkh AS same '
                     f'FROM dinsync."{s.p.snapshot_table}" s JOIN "{s.p.plan_schema}"."{s.p.plan_table}" p '
                     f'USING (_key) WHERE s._synced_at IS NOT NULL')
    assert snap.num_rows == 250 and all(snap.column("same").to_pylist())
    # released rows are still committed when acknowledged later (looked for in the plan)
    assert s.ack(keys[350:360]) == 10


def test_rows_kept_from_the_stream_do_not_hold_the_streamed_batch(s):
    """DuckDB's batches arrive through Arrow's C interface, freed as a whole: what the planner keeps
    of a row is a copy, so the values and send flags of the batch it came in can be freed (1M rows x
    10 fields: 289 instead of 413 bytes of RSS a streamed row). Checked by where the kept columns'
    data lives."""
    from dinsync.diff.commit import StreamedRows

    s.set_rows([(f"u{i}@x.com", "n", i) for i in range(50)])
    s.plan()
    batch = s.w.query(s.p.render("stream_sendable")).to_batches()[0]
    carried = s.p.carried(batch)
    kept = StreamedRows()
    kept.add(carried)
    part = kept._parts[0]
    for name in carried.schema.names:
        source = {b.address for b in carried.column(name).buffers() if b is not None}
        held = {b.address for b in part.get_column(name).to_arrow().buffers() if b is not None}
        assert not source & held, name
    assert part.get_column("_key").to_list() == carried.column("_key").to_pylist()
    assert part.get_column("_kh").to_list() == carried.column("_kh").to_pylist()


def test_the_stream_keeps_adding_rows_while_a_commit_takes_its_own(s, monkeypatch):
    """A commit looks its keys up without holding the lock the stream needs to add a batch (the
    stream waited for every commit's lookup); rows added meanwhile are kept for later commits."""
    from dinsync.diff.commit import StreamedRows

    s.set_rows([(f"u{i}@x.com", "n", i) for i in range(200)])
    s.plan()
    batches = s.w.query(s.p.render("stream_sendable")).to_batches(max_chunksize=100)
    carried = [s.p.carried(b) for b in batches]
    kept = StreamedRows()
    kept.add(carried[0])
    looking, added = threading.Event(), threading.Event()
    gather = StreamedRows._gather

    def slow_gather(parts, starts, positions):
        looking.set()
        assert added.wait(10), "the stream could not add a batch while a commit looked up its keys"
        return gather(parts, starts, positions)

    monkeypatch.setattr(StreamedRows, "_gather", staticmethod(slow_gather))
    result = {}
    taking = threading.Thread(target=lambda: result.update(took=kept.take(carried[0].column("_key"))))
    taking.start()
    assert looking.wait(10)
    kept.add(carried[1])  # while the lookup runs
    added.set()
    taking.join(10)
    found, rest = result["took"]
    assert found.num_rows == 100 and len(rest) == 0
    assert len(kept._parts) == 1 and kept._parts[0].get_column("_key").to_list() == carried[1].column("_key").to_pylist()
