"""The first plan DuckDB does not write (Capabilities.lazy_first_plan): it finds what is not sent
(NULL and duplicated keys) in one pass over the keys, and the added rows are computed from the
model as the plan streams. Whatever the data, the snapshot it leaves must be the one a written
plan leaves."""
from __future__ import annotations

import random

import pyarrow as pa
import pytest

from dinsync.diff import DiffSpec, Planner
from dinsync.errors import DinsyncError
from dinsync.warehouses import connect

FIELDS = [("email", "email"), ("name", "first_name"), ("score", "score")]
SNAPSHOT_COLUMNS = "_key, _synced_at IS NOT NULL AS delivered, _kh, _fp, _rkh, _pfp"


def hostile_rows(seed: int, n: int = 400) -> list[tuple]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        email = rng.choice([f"u{i}@x.com", f" U{i}@X.com ", f"u{i % 37}@x.com", None, "", "   ",
                            f"amélie.{i}@exämple.fr", f"q'\"{i}@x.com", f"line\n{i}@x.com"])
        rows.append((email, rng.choice([None, "", "Ada", "🙂", "x" * 300]), rng.choice([None, 0, i, -i])))
    return rows


def load(w, rows) -> None:
    w.execute("DROP TABLE IF EXISTS people")
    w.execute("CREATE TABLE people (email VARCHAR, name VARCHAR, score INTEGER)")
    w.con.register("new_rows", pa.Table.from_pylist([{"email": e, "name": n, "score": s} for e, n, s in rows]))
    w.con.execute("INSERT INTO people SELECT * FROM new_rows")
    w.con.unregister("new_rows")


def first_sync(tmp_path, name: str, rows, lazy: bool, acked_share: float = 0.7):
    """Plan, stream, acknowledge a share of the rows (in several commits, some keys twice) and park
    some: (plan stats, rows streamed, the snapshot's rows)."""
    w = connect("duckdb", path=str(tmp_path / f"{name}.duckdb"))
    load(w, rows)
    p = Planner(w, DiffSpec(sync="s", model_sql="SELECT * FROM people", key_column="email",
                            key_normalization="email", fields=FIELDS), cache=False)
    p.lazy_first_plan = lazy
    stats = p.plan()
    assert p.lazy is lazy
    streamed = []
    for batch in p.stream_sendable(batch_rows=50):
        keys = batch.column("_key").to_pylist()
        streamed += [(k, tuple(batch.column(f"v{i}")[j].as_py() for i in range(len(FIELDS))))
                     for j, k in enumerate(keys)]
    keys = sorted(k for k, _ in streamed)
    cut = int(len(keys) * acked_share)
    for start in range(0, cut, 64):
        chunk = keys[start:min(start + 64, cut)]
        again = keys[max(0, start - 5):start]  # committed before, their batch still held: counted once
        assert p.commit_acknowledged(chunk + chunk[:3] + again + ["not-a-key@x.com"]) >= len(chunk)
    assert p.commit_rejected(keys[cut:cut + 10]) == len(keys[cut:cut + 10])
    snap = w.query(f'SELECT {SNAPSHOT_COLUMNS} FROM dinsync."{p.snapshot_table}" ORDER BY _key').to_pylist()
    w.close()
    return stats, sorted(streamed), snap


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_snapshot_is_the_one_a_written_plan_leaves(tmp_path, seed):
    rows = hostile_rows(seed)
    lazy = first_sync(tmp_path, "lazy", rows, lazy=True)
    written = first_sync(tmp_path, "written", rows, lazy=False)
    assert lazy[0] == written[0]  # counts: segment, NULL keys, duplicates, added
    assert lazy[0].null_keys > 0 and lazy[0].duplicate_keys > 0 and lazy[0].added > 100
    assert lazy[1] == written[1]  # the same rows sent, with the same values
    assert lazy[2] == written[2]  # the same hashes, fingerprints and parking
    assert len({r["_key"] for r in lazy[2]}) == len(lazy[2])


def test_counts_withheld_rows_and_dry_run_readers(tmp_path):
    w = connect("duckdb", path=str(tmp_path / "w.duckdb"))
    load(w, [("a@x.com", "Ada", 1), ("B@x.com", "Bob", 2), (" b@x.com", "Bob", 3), (None, "n", 0), ("", "e", 0),
             ("c@x.com", None, None)])
    p = Planner(w, DiffSpec(sync="s", model_sql="SELECT * FROM people", key_column="email",
                            key_normalization="email", fields=FIELDS), cache=False)
    stats = p.plan()
    assert p.lazy
    assert (stats.segment_rows, stats.null_keys, stats.duplicate_keys, stats.duplicate_rows, stats.added) == (6, 2, 1, 2, 2)
    assert p.duplicates_sample() == [("b@x.com", 2)]
    assert [s["key"] for s in p.sample("added")] == ["a@x.com", "c@x.com"]
    assert p.sample("added", limit=1)[0]["fields"] == {"email": "a@x.com", "first_name": "Ada", "score": 1}
    assert [s["key"] for s in p.sample("duplicate")] == ["b@x.com"]
    assert p.sample("changed") == [] and p.field_change_counts() == {"email": 0, "first_name": 0, "score": 0}
    assert sorted(k for b in p.stream_sendable() for k in b.column("_key").to_pylist()) == ["a@x.com", "c@x.com"]
    w.close()


def test_it_streams_once_and_commits_only_what_it_streamed(tmp_path):
    """Its rows are numbered as they stream: a second stream is refused, and a key is committed
    with what the stream carried, never with what the model holds later."""
    w = connect("duckdb", path=str(tmp_path / "w.duckdb"))
    load(w, [("a@x.com", "Ada", 1), ("b@x.com", "Bob", 2)])
    p = Planner(w, DiffSpec(sync="s", model_sql="SELECT * FROM people", key_column="email",
                            key_normalization="email", fields=FIELDS), cache=False)
    p.plan()
    assert p.commit_acknowledged(["a@x.com"]) == 0  # not streamed yet: nothing to record
    batches = list(p.stream_sendable())
    with pytest.raises(DinsyncError, match="streamed already"):
        p.stream_sendable()
    w.execute("UPDATE people SET score = 99")  # the model changes after sending
    assert p.commit_acknowledged(pa.chunked_array([pa.array(["a@x.com", "b@x.com"])])) == 2
    assert sum(b.num_rows for b in batches) == 2
    # the next plan compares with what was sent (score 1 and 2), so both rows changed
    stats = p.plan()
    assert (stats.changed, stats.added) == (2, 0) and not p.lazy
    w.close()


def test_a_model_whose_key_hashes_collide_withholds_only_true_duplicates(tmp_path, monkeypatch):
    """Duplicates are found by key hash, then confirmed by key: with every key hash equal, no key
    is duplicated and every row is sent."""
    from dinsync.diff import dialects

    w = connect("duckdb", path=str(tmp_path / "w.duckdb"))
    load(w, [(f"u{i}@x.com", "n", i) for i in range(20)] + [("u3@x.com", "again", 0)])
    monkeypatch.setitem(dialects.DIALECT_SQL["duckdb"], "DINSYNC_HASH", "CAST(7 AS UBIGINT)")
    p = Planner(w, DiffSpec(sync="s", model_sql="SELECT * FROM people", key_column="email",
                            key_normalization="email", fields=FIELDS), cache=False)
    stats = p.plan()
    assert p.lazy and (stats.added, stats.duplicate_keys, stats.duplicate_rows) == (19, 1, 2)
    sent = sorted(k for b in p.stream_sendable() for k in b.column("_key").to_pylist())
    assert sent == sorted(f"u{i}@x.com" for i in range(20) if i != 3)
    w.close()


def test_a_row_taken_twice_counts_once_for_its_batch():
    """The planner lets go of a streamed batch once each of its rows was taken: a row taken twice
    must not make it leave before a row not taken yet (a first plan that is not written cannot
    look that row up again)."""
    from dinsync.diff.commit import StreamedRows

    rows = StreamedRows()
    batch = pa.record_batch({"_rn": pa.array([0, 0, 0, 0], pa.int64()), "_key": ["a", "b", "c", "d"],
                             "_kh": pa.array([1, 2, 3, 4], pa.int64()), "_fp": pa.array([1, 2, 3, 4], pa.int64()),
                             "_rkh": pa.array([1, 2, 3, 4], pa.int64()), "_prior": [False] * 4,
                             "h0": pa.array([5, 6, 7, 8], pa.int64())})
    rows.add(batch, position=10)
    for keys in (["a"], ["a"], ["b", "c"]):
        found, rest = rows.take(pa.array(keys))
        assert found.column("_key").to_pylist() == keys and len(rest) == 0
    found, rest = rows.take(pa.array(["d"]))
    assert found.to_pylist() == [{"_rn": 13, "_key": "d", "_kh": 4, "_fp": 4, "_rkh": 4, "_replace": False, "h0": 8}]
    assert rows._parts == []  # every row taken: the batch is let go
