"""Records whose outcome arrives later: stashed, then resolved in this run or a later one."""
from __future__ import annotations

import datetime as dt

import pytest

from dinsync.diff import DiffSpec, Planner
from dinsync.diff.render import PARAMS
from dinsync.warehouses import connect

FIELDS = [("name", "first_name"), ("plan", "plan")]


@pytest.fixture
def wh(tmp_path):
    w = connect("duckdb", path=str(tmp_path / "w.duckdb"))
    w.execute("CREATE TABLE people (email VARCHAR, name VARCHAR, plan VARCHAR)")
    yield w
    w.close()


def planner(wh, fields=FIELDS) -> Planner:
    p = Planner(wh, DiffSpec(sync="s", model_sql="SELECT * FROM people", key_column="email",
                             key_normalization="email", fields=list(fields), state_schema="st"), cache=False)
    p.ensure_state()
    return p


def keys(p) -> list[str]:
    return [k for b in p.stream_sendable(batch_rows=2) for k in b.column("_key").to_pylist()]


def snapshot(wh) -> dict[str, tuple]:
    return {r["_key"]: (r["_synced_at"] is not None, r["_pfp"] is not None)
            for r in wh.query("SELECT _key, _synced_at, _pfp FROM st.snap_s").to_pylist()}


def test_stashed_records_resolve_in_a_later_process_from_the_copy_not_the_plan(wh):
    wh.execute("INSERT INTO people VALUES ('a@x.co', 'Ann', 'pro'), ('b@x.co', 'Bob', 'free'), "
               "('c@x.co', 'Cy', 'free'), ('d@x.co', 'Di', 'team')")
    p = planner(wh)
    assert p.plan().added == 4
    sent = keys(p)
    assert p.stash_pending(sent[:2], "file-1") == 2 and p.stash_pending(sent[2:], "job/2") == 2
    assert p.stash_pending(["nobody@x.co"], "file-1") == 0  # not in the plan: ignored
    assert p.pending_tokens() == {"file-1": 2, "job/2": 2}
    assert snapshot(wh) == {}  # nothing committed while the outcome is unknown

    # a later run (a new planner, a new plan that no longer holds these rows) reads the outcomes
    wh.execute("UPDATE people SET plan = 'changed-since'")
    later = planner(wh)
    assert later.resolve_pending(ok=["a@x.co", "c@x.co"], rejected=["b@x.co"], forget=["d@x.co"]) == (2, 1)
    assert snapshot(wh) == {"a@x.co": (True, False), "c@x.co": (True, False), "b@x.co": (False, True)}
    assert later.pending_tokens() == {}
    # what was committed is what was sent (plan 'pro'/'free'), so the change since is planned
    stats = later.plan()
    assert (stats.changed, stats.added) == (2, 2)  # a, c changed; b parked then changed: added; d added


def test_one_checkpoint_stashes_many_outcomes_in_one_pass(wh, monkeypatch):
    """A checkpoint of an Attentive run holds a token per bulk job (up to 100 a second). They are
    stashed together: one collection, one delete, one insert and one statement setting every key's
    token (a key in two stashes takes the last one's, as stashing them in turn did), not four
    statements a token."""
    wh.execute("INSERT INTO people SELECT 'u' || i || '@x.co', 'N' || i, 'free' FROM range(30) t(i)")
    p = planner(wh)
    assert p.plan().added == 30
    sent = keys(p)
    ran: list[str] = []
    execute = wh.execute
    monkeypatch.setattr(wh, "execute", lambda sql, *a, **k: (ran.append(sql), execute(sql, *a, **k))[1])
    stashes = [(f"job-{j}", sent[3 * j:3 * j + 3]) for j in range(10)] + [("job-late", [sent[0], sent[29]])]
    assert p.stash_pending_many(stashes) == 30
    assert sum(sql.startswith("UPDATE") for sql in ran) == 1
    stash_insert = p.render("stash_insert").split(PARAMS["now"])[0]  # (the time it records is bound as it runs)
    assert sum(sql.startswith(stash_insert) for sql in ran) == 1 and ran.count(p.render("stash_tokens")) == 1
    tokens = p.pending_tokens()
    assert tokens == {**{f"job-{j}": 3 for j in range(1, 9)}, "job-0": 2, "job-9": 2, "job-late": 2}
    assert p.pending_keys("job-late") == {sent[0], sent[29]}
    assert p.stash_pending_many([("job-x", ["nobody@x.co"]), ("job-y", [])]) == 0  # not in the plan
    later = planner(wh)
    assert later.resolve_pending(ok=sent) == (30, 0) and later.pending_tokens() == {}
    assert len(snapshot(wh)) == 30


def test_a_key_sent_again_replaces_its_older_pending_row(wh):
    wh.execute("INSERT INTO people VALUES ('a@x.co', 'Ann', 'pro')")
    p = planner(wh)
    p.plan()
    p.stash_pending(keys(p), "old")
    wh.execute("UPDATE people SET plan = 'team'")
    q = planner(wh)
    q.plan()
    q.stash_pending(keys(q), "new")
    assert q.pending_tokens() == {"new": 1}
    assert q.resolve_pending(ok=["a@x.co"]) == (1, 0)
    assert planner(wh).plan().changed == 0  # the newer values were recorded


def test_a_field_mapped_after_rows_went_pending_is_sent_once_they_are_acknowledged(wh):
    wh.execute("INSERT INTO people VALUES ('a@x.co', 'Ann', 'pro')")
    p = planner(wh)
    p.plan()
    p.stash_pending(keys(p), "t")
    q = planner(wh, FIELDS + [("email", "email_copy")])
    q.stash_pending([], "t")
    q._ensure_pending()  # noqa: SLF001 (what a stash or a new run does)
    assert q.resolve_pending(ok=["a@x.co"]) == (1, 0)
    stats = q.plan()
    assert stats.changed == 1 and q.field_change_counts() == {"first_name": 0, "plan": 0, "email_copy": 1}


def test_a_field_renamed_after_rows_went_pending_is_sent_once_they_are_acknowledged(wh):
    """A new run reads outcomes before anything else touched the pending table (no stash, no
    `_ensure_pending`); the renamed field reads the same column, so the fingerprint kept with the
    record would let the plan skip the row."""
    wh.execute("INSERT INTO people VALUES ('a@x.co', 'Ann', 'pro')")
    p = planner(wh)
    p.plan()
    p.stash_pending(keys(p), "t")
    q = planner(wh, [("name", "first_name"), ("plan", "tier")])
    assert q.resolve_pending(ok=["a@x.co"]) == (1, 0)
    stats = q.plan()
    assert stats.changed == 1 and q.field_change_counts() == {"first_name": 0, "tier": 1}


@pytest.mark.parametrize("retyped", [False, True])
def test_a_mapping_changed_while_rows_were_pending_is_sent_once_they_are_acknowledged(wh, retyped):
    """The run that found the mapping changed (fields swapped between columns, or given another
    `type:`) recorded it and forgot what the snapshot said, but sent nothing (stopped, or blocked by
    duplicated keys); the outcome of a record sent under the old mapping arrives in a later run,
    whose mapping is the recorded one. The record's copy, which hashes what each field received
    then, entered the snapshot with its fingerprint (the same model columns, in the same order), so
    the plan skipped the row: the platform kept the old mapping's values, or a field's old form."""
    wh.execute("INSERT INTO people VALUES ('a@x.co', 'Ann', 'pro'), ('b@x.co', 'Bob', 'free')")
    p = planner(wh)
    p.plan()
    p.stash_pending(keys(p), "t")
    remapped = FIELDS if retyped else [("name", "plan"), ("plan", "first_name")]
    q = planner(wh, remapped)
    q.forget_fingerprints(resend=["plan"] if retyped else [])  # the run after the edit (see records.py)
    later = planner(wh, remapped)
    assert later.resolve_pending(ok=["a@x.co"], rejected=["b@x.co"]) == (1, 1)
    stats = later.plan()
    assert (stats.changed, stats.added) == (1, 1), stats
    sent = {"first_name": 0, "plan": 1} if retyped else {"first_name": 1, "plan": 1}
    assert later.field_change_counts() == sent


def test_stale_pending_records_expire(wh):
    wh.execute("INSERT INTO people VALUES ('a@x.co', 'Ann', 'pro')")
    p = planner(wh)
    p.plan()
    p.stash_pending(keys(p), "t")
    assert p.expire_pending(dt.timedelta(days=1)) == 0
    assert p.expire_pending(dt.timedelta(seconds=-1)) == 1 and p.pending_tokens() == {}


def test_a_first_sync_stashes_and_resolves_many_pending_records_beyond_the_inserting_pool(tmp_path):
    """A first sync's commits only insert, and DuckDB's pool is lowered for that while it sends
    (`streaming(replacing=False)`); stashing a Splio file's records (a delete, an insert and the
    tokens' update in one transaction, which may not grow the pool) and applying their outcomes do
    more than insert: a 250,000-row first sync over SFTP ran out of its 48 MB."""
    w = connect("duckdb", path=str(tmp_path / "big.duckdb"))
    try:
        w.execute("CREATE TABLE people AS SELECT 'user' || i || '@example.com' AS email, 'name ' || i AS name, "
                  "'plan ' || (i % 7) AS plan FROM range(250000) t(i)")
        p = planner(w)
        w.size_for(len(FIELDS))
        assert p.plan().added == 250_000
        with w.streaming(replacing=False):
            sent, waiting = [], []
            for batch in p.stream_sendable(batch_rows=2000):
                keys_ = batch.column("_key").to_pylist()
                sent += keys_
                waiting += keys_
                if len(waiting) >= 100_000:  # a checkpoint stashing two files' records
                    half = len(waiting) // 2
                    p.stash_pending_many([(f"file-{len(sent)}a", waiting[:half]),
                                          (f"file-{len(sent)}b", waiting[half:])])
                    waiting = []
            p.stash_pending_many([("file-last", waiting), ("file-again", waiting[:1])])
            assert sum(p.pending_tokens().values()) == 250_000
            assert p.resolve_pending(ok=sent) == (250_000, 0)
        assert w.scalar("SELECT COUNT(*) FROM st.snap_s") == 250_000 and p.pending_tokens() == {}
    finally:
        w.close()


def test_a_stash_never_takes_over_records_an_interrupted_stash_left_without_a_token(wh):
    """A stash is a delete, an insert of the records without a token, and the setting of their token.
    Where those commit on their own (Snowflake; Databricks with transactions: none), a run killed
    after the insert left records without a token, and the next stash's `SET _token = :token WHERE
    _token IS NULL` gave them its own: the outcome of a job they were never part of then settled them
    (committed as delivered). Records left without a token are dropped instead (not in the snapshot,
    they are sent again)."""
    wh.execute("INSERT INTO people VALUES ('a@x.co', 'Ann', 'pro'), ('b@x.co', 'Bob', 'free')")
    p = planner(wh)
    p.plan()
    sent = keys(p)
    assert p.stash_pending(["a@x.co"], "job-1") == 1
    wh.execute("UPDATE st.pend_s SET _token = NULL")  # what a run killed before its token was set left
    later = planner(wh)
    later.plan()
    assert later.stash_pending(["b@x.co"], "job-2") == 1 and "b@x.co" in sent
    assert later.pending_keys("job-2") == {"b@x.co"}
    assert later.pending_tokens() == {"job-2": 1}
    assert later.resolve_pending(ok=["a@x.co", "b@x.co"]) == (1, 0)
    assert snapshot(wh) == {"b@x.co": (True, False)}
