"""BigQuery test support: the diff's BigQuery SQL run on DuckDB by transpiling it (no HTTP), the
loopback fake in a thread, and a scenario of model states that a planner runs through.

`TranspiledBigQuery` is a warehouse with the BigQuery adapter's capabilities (so the planner
renders BigQuery SQL) that runs each statement as `sqlglot.transpile(sql, read="bigquery",
write="duckdb")` on DuckDB, with BigQuery's FARM_FINGERPRINT (farmhash Fingerprint64).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import uuid
from typing import Iterator

import duckdb
import pyarrow as pa
import sqlglot

from dinsync.diff import DiffSpec, Planner
from dinsync.diff.render import OPS
from dinsync.warehouses.base import Warehouse, slice_batches
from dinsync.warehouses.bigquery import BigQueryWarehouse, bind
from tests.warehouses.bigquery_fake import PROJECT, FakeBigQuery, farm_fingerprint


@functools.lru_cache(maxsize=4096)  # the same statements run at every step
def _transpile(sql: str) -> tuple[str, ...]:
    return tuple(sqlglot.transpile(sql, read="bigquery", write="duckdb"))


def transpile(sql: str) -> list[str]:
    return list(_transpile(sql))


class TranspiledBigQuery(Warehouse):
    type_name = "bigquery"
    display_name = "BigQuery (transpiled to DuckDB)"
    capabilities = BigQueryWarehouse.capabilities

    def __init__(self, model_dataset: str = "m"):
        self.con = duckdb.connect()
        self.con.create_function("farm_fingerprint", farm_fingerprint, ["VARCHAR"], "BIGINT")
        self.con.execute(f'CREATE SCHEMA "{model_dataset}"')
        self.con.execute(f'CREATE SCHEMA "{self.capabilities.scratch_database}"')
        self.model_dataset = model_dataset
        self.ran: list[str] = []  # the BigQuery SQL texts run

    def _duck(self, sql: str, params) -> str:
        self.ran.append(sql)
        sql, values = bind(sql, params)
        if values:  # parameters as literals of their BigQuery type (as the fake does)
            tree = sqlglot.parse_one(sql, read="bigquery")
            for node in list(tree.find_all(sqlglot.exp.Parameter)):
                _, kind, value = next(v for v in values if v[0] == node.name)
                node.replace(sqlglot.exp.cast(sqlglot.exp.Literal.string(str(value)), kind, dialect="bigquery"))
            sql = tree.sql(dialect="bigquery")
        [duck] = transpile(sql)
        return duck

    def _cursor(self):
        cur = self.con.cursor()
        cur.execute(f'SET schema = \'{self.model_dataset}\'')  # the job's default dataset
        return cur

    def execute(self, sql, params=None):
        cur = self._cursor()
        cur.execute(self._duck(sql, params))
        if cur.description is not None:
            cur.fetchall()
        return None

    def query(self, sql, params=None) -> pa.Table:
        return self._cursor().sql(self._duck(sql, params)).to_arrow_table()

    def stream(self, sql, batch_rows=50_000, params=None) -> Iterator[pa.RecordBatch]:
        reader = self._cursor().sql(self._duck(sql, params)).to_arrow_reader(batch_rows)
        return slice_batches(iter(reader), batch_rows)

    def write_arrow(self, schema, table, data, mode="append"):
        cur = self._cursor()
        cur.register("__data", data)
        target = f'"{schema}"."{table}"'
        if mode == "replace":
            cur.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM __data")
        else:
            cur.execute(f"INSERT INTO {target} BY NAME SELECT * FROM __data")
        cur.unregister("__data")

    def table_columns(self, schema, table):
        rows = self.con.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND "
                                "table_name = ? ORDER BY ordinal_position", [schema, table]).fetchall()
        return [r[0] for r in rows] or None

    @contextlib.contextmanager
    def transaction(self):
        yield  # as the adapter: every statement is its own job

    def close(self):
        self.con.close()


FIELDS = [("email", "email"), ("name", "first_name"), ("score", "score")]
PEOPLE = pa.schema([("email", pa.string()), ("name", pa.string()), ("score", pa.int64())])


class Scenario:
    """One planner on one warehouse, fed model states; `step` returns what a run would see."""

    def __init__(self, wh, model_dataset: str, state_schema: str, table: str = "people"):
        self.wh, self.model_dataset, self.state_schema, self.table = wh, model_dataset, state_schema, table
        self.replan(FIELDS)

    def replan(self, fields):
        q = self.wh.quote
        self.spec = DiffSpec(sync="s1", model_sql=f"SELECT * FROM {q(self.model_dataset)}.{q(self.table)}",
                             key_column="email", key_normalization="email", fields=list(fields),
                             state_schema=self.state_schema)
        self.p = Planner(self.wh, self.spec)
        self.planners = getattr(self, "planners", []) + [self.p]
        self.p.ensure_state()

    def set_rows(self, rows):
        self.wh.write_arrow(self.model_dataset, self.table, pa.Table.from_pylist(
            [dict(zip(PEOPLE.names, r)) for r in rows], schema=PEOPLE), mode="replace")

    def step(self, rows, *, ack=True, reject=(), fail=(), delete_parts=None, from_snapshot=False, **plan):
        """Plan `rows`; (stats, {key: op}, {key: changed fields}); then commit as a run would
        (`delete_parts`: keys that left are deleted in parts of that many rows; `fail`: keys whose
        write failed, maybe applied: not committed; `from_snapshot`: the keys to send are unsettled
        from the snapshot's rows, the candidates' kept by the plan let go of first)."""
        self.set_rows(rows)
        stats = self.p.plan(**plan)
        q = self.wh.quote
        table = f"{q(self.p.plan_schema)}.{q(self.p.plan_table)}"
        plan_rows = [r for r in self.wh.query(f"SELECT * FROM {table}").to_pylist() if r["_op"] in OPS]
        ops = {r["_key"]: r["_op"] for r in plan_rows}
        flags = {r["_key"]: [f for i, (_, f) in enumerate(self.spec.fields) if r.get(f"x{i}")]
                 for r in plan_rows if r["_op"] == "changed"}
        extra = {"field_changes": self.p.field_change_counts(), "duplicates": self.p.duplicates_sample(5),
                 "sample": [self.p.sample(op, limit=20) for op in ("added", "changed")],
                 "parked_staying": self.p.parked_count(staying=True),  # (of the plan: before the commits)
                 "parked_undelivered": self.p.parked_count(undelivered=True)}  # (max_changed_pct's base)
        sendable = [k for b in self.p.stream_sendable(batch_rows=2) for k in b.column("_key").to_pylist()]
        if sendable and not stats.first_sync:  # as a run does before sending
            if from_snapshot:
                self.p.drop_prior()
            self.p.unsettle_sendable()
        if reject:
            self.p.commit_rejected([k for k in sendable if k in reject])
        if ack:
            self.p.commit_acknowledged([k for k in sendable if k not in reject and k not in fail])
            caps = self.p.warehouse.capabilities
            if delete_parts:
                self.p.warehouse.capabilities = dataclasses.replace(caps, delete_part_rows=delete_parts)
            try:
                self.p.commit_removed()
            finally:
                self.p.warehouse.capabilities = caps
            if plan.get("full_refresh"):
                self.p.commit_full_refresh_cleanup()
        extra["parked"] = self.p.parked_count()
        return stats, ops, (flags, extra)

    def drop_internal_columns(self):
        """A snapshot of the layout before the key hash and fingerprint columns existed."""
        q = self.wh.quote
        for column in ("_kh", "_fp"):
            self.wh.execute(f"ALTER TABLE {q(self.state_schema)}.{q(self.p.snapshot_table)} DROP COLUMN {q(column)}")
        self.replan(self.spec.fields)

    def plan_more_fields(self):
        """`dinsync plan` of files mapping one more field: its column is added, the parking kept."""
        dry = Planner(self.wh, dataclasses.replace(self.spec, fields=list(self.spec.fields) + [("name", "dry")]))
        self.planners.append(dry)
        dry.ensure_state(dry_run=True)

    def new_key_region(self):
        """The key normalisation changed (a phone key's region): every row's key is read again."""
        self.p.forget_raw_keys()

    def retype_points(self):
        """The engine found the type of field `points` changed: it is sent for every row."""
        self.p.forget_fingerprints(resend=["points"])

    def forget_snapshot(self):
        """The sync now sends to another destination: its snapshot is forgotten."""
        self.p.forget_snapshot()

    def pending(self):
        """Outcomes that arrive later: stashed by one planner, resolved by the next."""
        self.set_rows([("A@x.com ", "Ada", 8), ("p@x.com", "Pat", 1), ("q@x.com", "Quinn", 2)])
        self.p.plan()
        stashed = self.p.stash_pending_many([("import-0.csv", ["a@x.com", "p@x.com"]),
                                             ("import-1.csv", ["p@x.com", "q@x.com"])])
        tokens = self.p.pending_tokens()
        # the mapping changed while they were pending (a field retyped): the run that found it sent
        # nothing; the next one reads the outcomes, and sends that field to the acknowledged record
        self.p.forget_fingerprints(resend=["points"])
        self.p.forget_raw_keys()  # (and the key normalisation)
        self.replan(self.spec.fields)
        resolved = self.p.resolve_pending(ok=["a@x.com"], rejected=["p@x.com"], forget=["q@x.com"])
        after = self.p.pending_tokens(), self.p.parked_count()
        self.p.plan()
        return stashed, tokens, resolved, after, self.p.field_change_counts()


def scenario_steps():
    """(name, rows, step options, new field mapping or None): first sync, no-op, changes, NULLs,
    removals, duplicates, parking, a newly mapped field, a renamed one, a retyped one, a full refresh,
    a sync moved to another destination."""
    base = [("A@x.com ", "Ada", 1), ("b@x.com", "Bob", 2), ("c@x.com", None, None), (None, "Nobody", 3),
            ("  ", "Blank", 4), ("d@x.com", "D", 1), ("D@x.com", "D2", 1), ("e@x.com", "", 0)]
    changed = [("A@x.com ", "Ada", 5), ("b@x.com", None, 2), ("c@x.com", "", None), (None, "Nobody", 3),
               ("e@x.com", "NULL", 0), ("f@x.com", "F", 7)]
    return [
        ("first sync", base, {}, None),
        ("no-op", base, {}, None),
        ("changes", changed, {}, None),
        ("no-op after changes", changed, {}, None),
        ("removals", changed[:2], {}, None),
        ("come back", changed, {}, None),
        ("removals in parts", changed[:3], {"delete_parts": 1}, None),
        ("come back again", changed, {}, None),
        ("duplicate fixed", changed + [("d@x.com", "D", 1)], {}, None),
        ("rejected is parked", [("A@x.com ", "Ada", 6)] + changed[1:], {"reject": {"a@x.com"}}, None),
        ("parked stays parked", [("A@x.com ", "Ada", 6)] + changed[1:], {}, None),
        ("parked after a plan of more fields", [("A@x.com ", "Ada", 6)] + changed[1:], {}, "plan_more_fields"),
        ("retry parked", [("A@x.com ", "Ada", 6)] + changed[1:], {"retry_rejected": True}, None),
        ("newly mapped field", changed, {}, FIELDS + [("score", "score_copy")]),
        # the same model columns, a destination field renamed: sent for every row all the same
        ("renamed field", changed, {}, FIELDS + [("score", "points")]),
        ("retyped field", changed, {}, "retype_points"),
        ("keys read again", changed, {}, "new_key_region"),
        ("full refresh", changed[:3], {"full_refresh": True}, None),
        ("after full refresh", changed[:3], {}, None),
        ("unacknowledged", changed[:3] + [("g@x.com", "G", 1)], {"ack": False}, None),
        ("sent again", changed[:3] + [("g@x.com", "G", 1)], {}, None),
        ("failed write", changed[:3] + [("g@x.com", "G2", 1)], {"fail": {"g@x.com"}, "from_snapshot": True}, None),
        ("failed write, values back", changed[:3] + [("g@x.com", "G", 1)], {}, None),  # g: every field
        ("new row rejected", changed[:3] + [("h@x.com", "H", 1)], {"reject": {"h@x.com"}}, None),
        ("layout upgrade", changed[:3] + [("h@x.com", "H", 1)], {}, "drop_internal_columns"),
        ("most buckets dirty", changed[:3] + [("i@x.com", "I", 1)], {"retry_rejected": True}, None),
        # one raw key on two rows: the per-bucket digests find the rows to look at again
        ("same raw key twice", changed[:3] + [("i@x.com", "I", 1), ("i@x.com", "I2", 1)], {}, None),
        ("same raw key twice, retry", changed[:3] + [("i@x.com", "I", 1), ("i@x.com", "I2", 1)],
         {"retry_rejected": True}, None),
        # moved to another destination: the snapshot forgotten, every row added (a first sync)
        ("moved", changed[:3], {}, "forget_snapshot"),
    ]


def run_scenario(scenario: Scenario, only: set[str] | None = None) -> list[tuple]:
    """The steps' results (`only`: those steps, and no pending step)."""
    out = []
    for name, rows, options, fields in scenario_steps():
        if only is not None and name not in only:
            continue
        if isinstance(fields, str):
            getattr(scenario, fields)()
        elif fields is not None:
            scenario.replan(fields)
        stats, ops, flags = scenario.step(rows, **options)
        out.append((name, stats, ops, flags))
    if only is None:
        out.append(("pending", scenario.pending()))
    return out


def unique_dataset(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


__all__ = ["FakeBigQuery", "PROJECT", "Scenario", "TranspiledBigQuery", "run_scenario", "transpile", "unique_dataset"]
