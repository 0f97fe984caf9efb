"""Every statement of the diff runs for real on PostgreSQL (and, in the Redshift dialect, on the
same server through the Redshift adapter; on Snowflake through fakesnow), with the meaning the
DuckDB semantics tests pin. In the Databricks dialect, every statement goes through the Databricks
adapter and the real databricks-sdk to the loopback fake of the Statement Execution API, which
transpiles it to DuckDB with sqlglot (`read="databricks", write="duckdb"`) and runs it there: the
same plans, in the Databricks SQL."""
from __future__ import annotations

import dataclasses

import pyarrow as pa
import pytest

from dinsync.diff import DiffSpec, Planner
import dinsync.diff.planner as planner_module
from dinsync.diff.render import OPS
from tests.warehouses.support import WarehouseUnderTest, ran

FIELDS = [("email", "email"), ("name", "first_name"), ("score", "score")]


class Recording:
    """A warehouse that remembers every SQL text it ran (to prove each statement ran)."""

    def __init__(self, wh):
        self._wh = wh
        self.ran: list[str] = []

    def __getattr__(self, name):
        return getattr(self._wh, name)

    def execute(self, sql, params=None):
        self.ran.append(sql)
        return self._wh.execute(sql, params)

    def query(self, sql, params=None):
        self.ran.append(sql)
        return self._wh.query(sql, params)

    def rows(self, sql, params=None):
        self.ran.append(sql)
        return self._wh.rows(sql, params)

    def scalar(self, sql, params=None):
        self.ran.append(sql)
        return self._wh.scalar(sql, params)

    def stream(self, sql, batch_rows=50_000, params=None):
        self.ran.append(sql)
        return self._wh.stream(sql, batch_rows, params)


class Sync:
    def __init__(self, wh, state_schema, fields=FIELDS, columns="email TEXT, name TEXT, score INTEGER"):
        self.wh = wh
        self.state_schema = state_schema
        self.wh.execute(f"CREATE TABLE people ({columns})")
        self.replan(fields)

    def replan(self, fields):
        self.spec = DiffSpec(sync="s1", model_sql="SELECT * FROM people", key_column="email",
                             key_normalization="email", fields=list(fields), state_schema=self.state_schema)
        self.p = Planner(self.wh, self.spec)
        self.planners = getattr(self, "planners", []) + [self.p]
        self.p.ensure_state()

    def set_rows(self, rows, names=("email", "name", "score")):
        self.wh.execute("DELETE FROM people")
        if rows:
            data = pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)})
            self.wh.write_arrow(self.model_schema, "people", data)

    def plan(self, **kw):
        self.stats = self.p.plan(**kw)
        # a text of its own each time: psycopg prepares a query run 5 times on a connection, and
        # the plan table's columns differ between plans (PostgreSQL: "cached plan must not change
        # result type")
        self.plans = getattr(self, "plans", 0) + 1
        rows = self.wh.query(f"SELECT * FROM {self.wh.table_name(self.state_schema, self.p.plan_table)} "
                             f"/* plan {self.plans} */").to_pylist()
        # the plan also keeps internal rows (the count of NULL keys, parked keys to forget)
        self.rows = {r["_key"]: r for r in rows if r["_op"] in OPS}
        return {k: r["_op"] for k, r in self.rows.items()}

    def flags(self, key):
        return [f for i, (_, f) in enumerate(self.spec.fields) if self.rows[key][f"x{i}"]]

    def ack_all(self):
        keys = [k for b in self.p.stream_sendable(batch_rows=2) for k in b.column("_key").to_pylist()]
        n = self.p.commit_acknowledged(keys)
        self.p.commit_removed()
        return n

    def snapshot_keys(self):
        return sorted(r["_key"] for r in self.wh.query(
            f"SELECT _key FROM {self.wh.table_name(self.state_schema, self.p.snapshot_table)}").to_pylist())


class DatabricksUnderTest:
    """The Databricks adapter against the loopback fake (its tables in DuckDB)."""

    schema, state_schema = "main", "dinsync_state"

    def __init__(self):
        from dinsync.sandbox.runner import SandboxThread
        from dinsync.warehouses import connect
        from tests.warehouses.databricks_fake import DatabricksFake

        self.fake = DatabricksFake(chunk_rows=3)  # results of a few rows span several chunks
        self.thread = SandboxThread(self.fake)
        url = self.thread.start()
        self.wh = connect("databricks", host=url, token=self.fake.token, warehouse_id=self.fake.warehouse_id,
                          catalog=self.fake.catalog, schema=self.schema, retry_seconds=5)

    def close(self):
        self.wh.close()
        self.thread.stop()


@pytest.fixture(params=["postgres", "redshift", "snowflake", "databricks"])
def s(request, tmp_path):
    target = DatabricksUnderTest() if request.param == "databricks" else WarehouseUnderTest(request.param, tmp_path)
    sync = Sync(Recording(target.wh), target.state_schema)
    sync.model_schema = target.schema
    yield sync
    target.close()


def test_every_statement_runs_with_the_documented_meaning(s, monkeypatch):
    # first run: everything added; NULL and empty keys skipped; duplicates withheld
    s.set_rows([("A@x.com ", "Ada", 1), ("b@x.com", "Bob", 2), ("c@x.com", None, None), (None, "Nobody", 3),
                ("  ", "Blank", 4), ("d@x.com", "D", 1), ("D@x.com", "D2", 1)])
    assert s.plan() == {"a@x.com": "added", "b@x.com": "added", "c@x.com": "added", "d@x.com": "duplicate"}
    assert (s.stats.segment_rows, s.stats.null_keys, s.stats.duplicate_keys, s.stats.duplicate_rows) == (7, 2, 1, 2)
    assert s.p.duplicates_sample(5) == [("d@x.com", 2)]
    assert s.p.duplicates_sample() == [("d@x.com", 2)]
    assert s.p.sample("added", limit=1)[0]["key"] == "a@x.com"
    assert s.ack_all() == 3
    assert s.snapshot_keys() == ["a@x.com", "b@x.com", "c@x.com"]

    # nothing changed: nothing planned
    assert s.plan() == {"d@x.com": "duplicate"} and s.stats.unchanged == 3

    # a value change flags only its field; NULL -> value, value -> NULL, '' and 'NULL' differ from NULL
    s.set_rows([("A@x.com ", "Ada", 5), ("b@x.com", None, 2), ("c@x.com", "", None), ("e@x.com", "NULL", 1)])
    ops = s.plan()
    assert ops == {"a@x.com": "changed", "b@x.com": "changed", "c@x.com": "changed", "e@x.com": "added"}
    assert s.flags("a@x.com") == ["score"] and s.flags("b@x.com") == ["first_name"] and s.flags("c@x.com") == ["first_name"]
    assert s.p.field_change_counts() == {"email": 0, "first_name": 2, "score": 1}
    assert s.rows["a@x.com"]["v2"] == 5 and s.rows["b@x.com"]["v1"] is None
    assert s.p.sample("changed", limit=5)[0] == {"key": "a@x.com", "op": "changed", "changed_fields": ["score"],
                                                  "fields": {"email": "A@x.com ", "first_name": "Ada", "score": 5}}
    # only acknowledged keys are committed; a second commit of the same keys changes nothing
    assert s.p.commit_acknowledged(["a@x.com", "nobody@x.com"]) == 1
    assert s.p.commit_acknowledged(["a@x.com"]) == 1
    s.p.commit_removed()
    assert s.plan() == {"b@x.com": "changed", "c@x.com": "changed", "e@x.com": "added"}
    s.ack_all()
    assert s.plan() == {}

    # a column type change alone is no change (text forms are compared); fingerprints refreshed
    s.wh.execute("ALTER TABLE people ALTER COLUMN score TYPE BIGINT")
    assert s.plan() == {} and s.stats.unchanged == 4

    # rows that leave the segment are removed (many of them: in parts, here of 1), and come back
    # as added
    s.set_rows([("A@x.com ", "Ada", 5), ("b@x.com", None, 2)])
    assert s.plan() == {"c@x.com": "removed", "e@x.com": "removed"}
    caps = s.wh.capabilities
    monkeypatch.setattr(s.wh, "capabilities", dataclasses.replace(caps, delete_part_rows=1))
    s.ack_all()
    monkeypatch.setattr(s.wh, "capabilities", caps)
    assert all(s.p.render(name, parts=2, part=part) in s.wh.ran
               for name in ("removed_count_part", "commit_removed_part") for part in (0, 1))
    assert s.snapshot_keys() == ["a@x.com", "b@x.com"]
    s.set_rows([("A@x.com ", "Ada", 5)])
    assert s.plan() == {"b@x.com": "removed"}
    s.ack_all()
    assert s.snapshot_keys() == ["a@x.com"]
    s.set_rows([("A@x.com ", "Ada", 5), ("e@x.com", "NULL", 1)])
    assert s.plan() == {"e@x.com": "added"}
    s.ack_all()

    # a newly mapped field is sent for every row
    s.replan(FIELDS + [("score", "score_copy")])
    assert s.plan() == {"a@x.com": "changed", "e@x.com": "changed"}
    assert s.flags("a@x.com") == ["score_copy"]
    s.ack_all()
    # ... also when it reads the same model columns as before (a destination field renamed)
    s.replan(FIELDS + [("score", "points")])
    assert s.plan() == {"a@x.com": "changed", "e@x.com": "changed"}
    assert s.flags("a@x.com") == ["points"]
    s.ack_all()
    assert s.plan() == {}
    s.replan(FIELDS + [("score", "score_copy")])  # back: its delivered values are the model's
    assert s.plan() == {}
    # a field's type changed (the engine tells from its record of the mapping): sent for every row
    s.p.forget_fingerprints(resend=["score_copy"])
    assert s.plan() == {"a@x.com": "changed", "e@x.com": "changed"} and s.flags("a@x.com") == ["score_copy"]
    assert s.p.render("forget_field", field="score_copy") in s.wh.ran
    s.ack_all()
    assert s.plan() == {}

    # full refresh: every key added; afterwards keys that left the segment are forgotten
    s.set_rows([("A@x.com ", "Ada", 5)])
    assert s.plan(full_refresh=True) == {"a@x.com": "added"}
    s.p.unsettle_sendable()  # from the snapshot: a full refresh keeps no candidates' rows (prior)
    assert s.plan()["a@x.com"] == "added"  # not acknowledged yet: no longer vouched for as delivered
    s.plan(full_refresh=True)
    s.ack_all()
    assert s.p.commit_full_refresh_cleanup() == 1
    assert s.snapshot_keys() == ["a@x.com"]

    # a snapshot written before the key hash existed gets it back-filled
    table = s.wh.table_name(s.state_schema, s.p.snapshot_table)
    s.wh.execute(f"ALTER TABLE {table} DROP COLUMN _kh")
    s.wh.execute(f"ALTER TABLE {table} DROP COLUMN _fp")
    s.replan(FIELDS + [("score", "score_copy")])
    assert s.plan() == {} and s.stats.unchanged == 1

    # a row rejected for its content is parked: not planned again until it changes (or on retry)
    s.set_rows([("A@x.com ", "Ada", 6)])
    assert s.plan() == {"a@x.com": "changed"}
    assert s.p.commit_rejected(["a@x.com"]) == 1 and s.p.parked_count() == 1
    assert s.plan() == {} and s.p.parked_count() == 1 and s.p.parked_count(staying=True) == 1
    assert s.p.parked_count(undelivered=True) == 0  # (delivered before: in max_changed_pct's base)
    # once it left the segment, the plan's parked keys are those it keeps (parked_count_staying)
    s.set_rows([("e@x.com", "E", 1)])
    assert s.plan() == {"a@x.com": "removed", "e@x.com": "added"}
    assert s.p.parked_count() == 1 and s.p.parked_count(staying=True) == 0
    s.set_rows([("A@x.com ", "Ada", 6)])
    assert s.plan() == {} and s.p.parked_count(staying=True) == 1
    # a dry run (`dinsync plan`) of files mapping one more field adds its column and keeps the
    # parking: a plan of the files before still skips the parked row
    dry = Planner(s.wh, dataclasses.replace(s.spec, fields=s.spec.fields + [("name", "dry_field")]))
    s.planners.append(dry)
    dry.ensure_state(dry_run=True)
    assert dry.render("forget_fingerprints_keep_parked") in s.wh.ran
    assert s.plan() == {} and s.p.parked_count() == 1
    assert s.plan(retry_rejected=True) == {"a@x.com": "changed"}
    # the same keys acknowledged twice in one plan: the second commit replaces what the first wrote
    assert s.p.commit_acknowledged(["a@x.com"]) == 1 and s.p.commit_acknowledged(["a@x.com"]) == 1
    assert s.p.parked_count() == 0 and s.plan() == {}

    # a delivered key that appears twice in the model (same raw text): the duplicate is found
    s.set_rows([("A@x.com ", "Ada", 6), ("A@x.com ", "Ada2", 6)])
    assert s.plan() == {"a@x.com": "duplicate"}
    assert s.plan(retry_rejected=True) == {"a@x.com": "duplicate"}  # per-bucket digests, on retry

    # most buckets dirty: candidates by a direct join (one bucket: any change makes it dirty)
    monkeypatch.setattr(planner_module, "NBUCKETS", 1)
    wide = Planner(s.wh, s.spec)  # (its cache key holds NBUCKETS: its own SQL)
    s.planners.append(wide)
    s.set_rows([("A@x.com ", "Ada", 7), ("z@x.com", "Zed", 1)])
    assert {k: r.added + r.changed for k, r in [("all", wide.plan())]} == {"all": 2}
    assert wide.commit_rejected(["z@x.com"]) == 1
    assert wide.plan(retry_rejected=True).added == 1

    # these warehouses have no row position: a filter says which keys this run may have committed,
    # and a rejected key it wrongly takes for one (a tiny filter here), which the snapshot does not
    # hold, is parked all the same (park_insert_unfound, run when park_update finds fewer rows)
    monkeypatch.setattr(Planner, "AGAIN_BITS", 8)
    tiny = Planner(s.wh, s.spec)  # (AGAIN_BITS is no input of the SQL: wide's statements)
    s.planners.append(tiny)
    new = [f"n{i}@x.com" for i in range(40)]
    s.set_rows([("A@x.com ", "Ada", 7)] + [(k, "N", i) for i, k in enumerate(new)])
    assert tiny.plan().added == 40
    assert tiny.commit_acknowledged(new[:30]) == 30 and tiny.commit_rejected(new[30:]) == 10
    snap = s.wh.table_name(s.state_schema, tiny.snapshot_table)
    parked = s.wh.query(f"SELECT _key FROM {snap} WHERE _pfp IS NOT NULL AND _synced_at IS NULL").column(0)
    assert sorted(k for k in parked.to_pylist() if k.startswith("n")) == sorted(new[30:])
    assert ran(tiny.render("park_insert_unfound"), s.wh.ran)
    monkeypatch.setattr(Planner, "AGAIN_BITS", 1 << 26)
    s.set_rows([("A@x.com ", "Ada", 7), ("z@x.com", "Zed", 1)])  # the delivered ones leave again
    assert sorted(k for k, op in s.plan().items() if op == "removed") == sorted(new[:30])
    s.p.commit_removed()

    # records whose outcome arrives later: stashed, then resolved (by a later planner)
    s.set_rows([("A@x.com ", "Ada", 8), ("p@x.com", "Pat", 1), ("q@x.com", "Quinn", 2)])
    s.plan()
    # (one checkpoint stashes several outcomes' records at once: a key in two takes the last token)
    assert s.p.stash_pending_many([("import-0.csv", ["a@x.com", "p@x.com"]),
                                   ("import-1.csv", ["p@x.com", "q@x.com"])]) == 3
    assert s.p.pending_tokens() == {"import-0.csv": 1, "import-1.csv": 2}
    assert s.p.pending_keys("import-1.csv") == {"p@x.com", "q@x.com"}
    later = Planner(s.wh, s.spec)
    s.planners.append(later)
    assert later.resolve_pending(ok=["a@x.com"], rejected=["p@x.com"], forget=["q@x.com"]) == (1, 1)
    delivered = {r["_key"]: r["_synced_at"] is not None for r in s.wh.query(
        f"SELECT _key, _synced_at FROM {s.wh.table_name(s.state_schema, s.p.snapshot_table)}").to_pylist()}
    assert later.pending_tokens() == {} and delivered["a@x.com"] and not delivered["p@x.com"]  # p: parked only
    assert "q@x.com" not in delivered  # failed or not found: forgotten, sent again

    # the mapping changed while a record was pending (a field retyped): the run that found it sent
    # nothing, a later one reads the outcome; the record enters without the retyped field's hash
    # nor a fingerprint, so that field is sent for it too
    s.set_rows([("A@x.com ", "Ada", 8), ("r@x.com", "Rae", 3)])
    assert s.plan() == {"r@x.com": "added"}
    assert s.p.stash_pending(["r@x.com"], "import-2.csv") == 1
    s.p.forget_fingerprints(resend=["score_copy"])
    assert s.p.render("pending_forget_field", field="score_copy") in s.wh.ran
    later = Planner(s.wh, s.spec)
    s.planners.append(later)
    assert later.resolve_pending(ok=["r@x.com"]) == (1, 0)
    assert s.plan() == {"a@x.com": "changed", "r@x.com": "changed"} and s.flags("r@x.com") == ["score_copy"]
    s.ack_all()

    # the key normalisation changed (a phone key's region; here every key stays the same): every
    # row's key is read again, also a pending record's once acknowledged; nothing is sent, and the
    # snapshot takes its raw key hashes back
    s.set_rows([("A@x.com ", "Ada", 8), ("r@x.com", "Rae", 3), ("t@x.com", "Tia", 4)])
    assert s.plan() == {"t@x.com": "added"}
    assert s.p.stash_pending(["t@x.com"], "import-3.csv") == 1
    s.p.forget_raw_keys()
    assert s.p.render("pending_forget_raw_keys") in s.wh.ran
    assert later.resolve_pending(ok=["t@x.com"]) == (1, 0)
    assert s.plan() == {} and s.stats.unchanged == 3
    table = s.wh.table_name(s.state_schema, s.p.snapshot_table)
    assert s.wh.query(f"SELECT COUNT(*) AS n FROM {table} WHERE _rkh IS NULL").column(0)[0].as_py() == 0

    # before sending, the snapshot forgets what it delivered for the keys about to be sent: a write
    # never acknowledged (here: not committed) may have been applied, so going back to the values
    # delivered before (score 8) is still a change, of every field
    s.set_rows([("A@x.com ", "Ada", 9)])
    assert s.plan()["a@x.com"] == "changed"
    s.p.unsettle_sendable()
    s.set_rows([("A@x.com ", "Ada", 8)])
    assert s.plan()["a@x.com"] == "changed" and s.flags("a@x.com") == ["email", "first_name", "score", "score_copy"]
    s.p.drop_prior()  # (the candidates' snapshot rows let go of: the snapshot's own are read)
    s.p.unsettle_sendable()
    assert s.plan()["a@x.com"] == "changed"

    # a sync moved to another destination forgets its whole snapshot (delivered and parked rows):
    # every row is then new to it
    table = s.wh.table_name(s.state_schema, s.p.snapshot_table)
    assert s.wh.query(f"SELECT COUNT(*) AS n FROM {table}").column(0)[0].as_py() > 0
    s.p.forget_snapshot()
    assert s.wh.query(f"SELECT COUNT(*) AS n FROM {table}").column(0)[0].as_py() == 0
    assert s.plan() == {"a@x.com": "added"} and s.stats.first_sync

    # statements rendered with parameters (sample, duplicates_sample: their limit; the parts of
    # removed keys) ran above
    not_run = sorted(name for name in s.p.statements()
                     if name not in ("add_snapshot_column", "add_pending_column", "forget_field", "pending_forget_field",
                                     "sample",
                                     "duplicates_sample",
                                     "removed_count_part", "commit_removed_part")
                     and not any(ran(p.render(name), s.wh.ran) for p in s.planners))
    assert not_run == [], not_run
    # add_snapshot_column (Snowflake's ALTER TABLE ... ADD takes no COLUMN keyword)
    assert any(sql.startswith("ALTER TABLE") and "\nADD " in sql for sql in s.wh.ran)


def test_rows_that_swap_values_or_make_the_same_change_do_not_cancel_in_the_digest(s):
    """The no-op check's digest over rows (digest.sql) on each engine: two rows that swap their
    values and two rows that make the same change are all planned (the key is not mapped, so
    equal values give equal fingerprints; see the DuckDB test of the same name)."""
    s.replan([("name", "plan"), ("score", "country")])
    rows = [(f"u{i}@x.com", "pro" if i % 2 else "free", i % 3) for i in range(40)]
    s.set_rows(rows)
    s.plan()
    assert s.ack_all() == 40
    rows[1], rows[2] = ("u1@x.com", "free", 2), ("u2@x.com", "pro", 1)
    rows[6], rows[12] = ("u6@x.com", "pro", 9), ("u12@x.com", "pro", 9)
    s.set_rows(rows)
    assert s.plan() == dict.fromkeys(["u1@x.com", "u2@x.com", "u6@x.com", "u12@x.com"], "changed")
    assert s.ack_all() == 4 and s.plan() == {}
