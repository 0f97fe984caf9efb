"""Plan and commit one sync: the diff between the model and the snapshot, run in the warehouse.

The SQL lives in `sql/` (see `render.py`). A run is:

    planner.ensure_state()             # schema, snapshot table, hash columns of new fields
    stats = planner.plan()             # build the plan table
    for batch in planner.stream_sendable(): ...   # added + changed rows, as Arrow
    planner.commit_acknowledged(keys)  # at checkpoints: record what the destination acknowledged
    planner.commit_removed()           # at the end of a successful run

Nothing here prints; errors are `DinsyncError`s.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Iterator

import pyarrow as pa
from sqlglot import exp

from ..errors import DinsyncError
from .render import (
    BUCKETS,
    DEFAULT_HASH_TYPES,
    KEY_NORMALIZATIONS,
    FieldRef,
    SqlError,
    check_identifier,
    check_model_sql,
    check_sync_name,
    ident,
    key_expression,
    render_template,
    snapshot_column,
)

OPS = ("added", "changed", "removed", "duplicate")

# statement name -> (template in sql/, fixed context)
STATEMENTS: dict[str, tuple[str, dict[str, Any]]] = {
    "create_schema": ("create_schema", {}),
    "create_snapshot": ("create_snapshot", {}),
    "add_snapshot_column": ("add_snapshot_column", {}),
    "backfill_key_hash": ("backfill_key_hash", {}),
    "drop_keys": ("drop_keys", {}),
    "keys": ("keys", {}),
    "drop_candidates": ("drop_candidates", {}),
    "candidates": ("candidates", {"compare_snapshot": "TRUE"}),
    "candidates_full_refresh": ("candidates", {"compare_snapshot": "FALSE"}),
    "drop_plan": ("drop_plan", {}),
    "plan": ("plan", {"compare_snapshot": "TRUE"}),
    "plan_full_refresh": ("plan", {"compare_snapshot": "FALSE"}),
    "refresh_fingerprints": ("refresh_fingerprints", {}),
    "plan_stats": ("plan_stats", {}),
    "stream_sendable": ("stream_sendable", {}),
    "duplicates_sample": ("duplicates_sample", {}),
    "sample": ("sample", {}),
    "field_change_counts": ("field_change_counts", {}),
    "drop_acked": ("drop_acked", {}),
    "acked": ("acked", {}),
    "ack_count": ("ack_count", {}),
    "commit_delete": ("commit_delete", {}),
    "commit_insert": ("commit_insert", {}),
    "drop_ack": ("drop_ack", {}),
    "removed_count": ("removed_count", {}),
    "commit_removed": ("commit_removed", {}),
    "cleanup_count": ("cleanup_count", {}),
    "commit_full_refresh_cleanup": ("commit_full_refresh_cleanup", {}),
}


@dataclass(frozen=True)
class DiffSpec:
    sync: str  # sync name: [A-Za-z0-9_]+ (used in table names)
    model_sql: str  # the user's SELECT, in the warehouse's dialect
    key_column: str  # model column holding the matching key
    key_normalization: str  # "email" (LOWER(TRIM(k))), "trim" (TRIM(k)) or "none"; always cast to VARCHAR
    fields: list[tuple[str, str]]  # (model column, destination field), in mapping order
    state_schema: str = "dinsync"

    def __post_init__(self) -> None:
        check_sync_name(self.sync)
        check_identifier(self.state_schema, "state schema")
        check_identifier(self.key_column, "key column")
        if self.key_normalization not in KEY_NORMALIZATIONS:
            raise SqlError(
                f"unknown key normalization {self.key_normalization!r}; "
                f"expected one of {', '.join(KEY_NORMALIZATIONS)}"
            )
        if not self.fields:
            raise SqlError(f"sync {self.sync!r} maps no field")
        seen: set[str] = set()
        for pair in self.fields:
            if len(pair) != 2:
                raise SqlError(f"a field mapping is a (model column, destination field) pair, got {pair!r}")
            column, field = pair
            check_identifier(column, "model column")
            check_identifier(field, "destination field")
            if field in seen:
                raise SqlError(f"destination field {field!r} is mapped more than once")
            seen.add(field)


@dataclass
class PlanStats:
    segment_rows: int
    null_keys: int
    duplicate_keys: int  # distinct keys that occur more than once
    duplicate_rows: int
    added: int
    changed: int
    removed: int
    unchanged: int
    full_refresh: bool


class Planner:
    def __init__(self, warehouse: Any, spec: DiffSpec):
        self.warehouse = warehouse
        self.spec = spec
        self.dialect: str = warehouse.dialect
        self.model_sql = check_model_sql(spec.model_sql, self.dialect)
        self.snapshot_table = f"snap_{spec.sync}"
        self.plan_table = f"plan_{spec.sync}"
        self.keys_table = f"keys_{spec.sync}"
        self.candidates_table = f"cand_{spec.sync}"
        self.ack_table = f"ack_{spec.sync}"
        self.acked_table = f"acked_{spec.sync}"
        caps = getattr(warehouse, "capabilities", None)
        hash_type = getattr(caps, "hash_type", None) or DEFAULT_HASH_TYPES.get(self.dialect, "BIGINT")
        schema = ident(spec.state_schema)
        # Scratch tables (keys, candidates, acked) live as long as one call. On DuckDB they are
        # session-temporary: kept in memory (spilled if need be), never written to the database file.
        temporary_scratch = self.dialect == "duckdb"
        scratch = f'{ident("temp")}.{ident("main")}' if temporary_scratch else schema
        self.fields = [
            FieldRef(i=i, col=ident(col), snap=ident(snapshot_column(field)), field=field,
                     snap_name=snapshot_column(field))
            for i, (col, field) in enumerate(spec.fields)
        ]
        self._ctx: dict[str, Any] = {
            "schema": schema,
            "snapshot": f"{schema}.{ident(self.snapshot_table)}",
            "plan": f"{schema}.{ident(self.plan_table)}",
            "keys": f"{scratch}.{ident(self.keys_table)}",
            "candidates": f"{scratch}.{ident(self.candidates_table)}",
            "ack": f"{schema}.{ident(self.ack_table)}",
            "acked": f"{scratch}.{ident(self.acked_table)}",
            "scratch": "TEMPORARY" if temporary_scratch else "",
            "key_column": ident(spec.key_column),
            "key_expr": key_expression(spec.key_column, spec.key_normalization),
            "fields": self.fields,
            "hash_type": exp.DataType.build(hash_type, dialect=self.dialect).sql(),
            "buckets": BUCKETS[0],
            "fine_buckets": BUCKETS[1],
        }
        self._rendered: dict[tuple, str] = {}
        self._lock = threading.RLock()
        self._state_ready = False
        self._planned_full_refresh: bool | None = None

    # ------------------------------------------------------------------ SQL

    def render(self, statement: str, **params: Any) -> str:
        """The SQL text of a named statement (see STATEMENTS) for this warehouse's dialect.

        params: `field` (add_snapshot_column; default the first mapped field), `op` (sample;
        default "changed"), `limit` (sample 5, duplicates_sample 20).
        """
        if statement not in STATEMENTS:
            raise SqlError(f"unknown statement {statement!r}; known: {', '.join(STATEMENTS)}")
        template, fixed = STATEMENTS[statement]
        ctx = {**self._ctx, **fixed}
        if statement == "add_snapshot_column":  # `column` (internal) or `field` (destination field)
            column = params.get("column") or snapshot_column(
                check_identifier(params.get("field", self.fields[0].field), "destination field")
            )
            ctx["column"] = ident(column)
        if statement == "sample":
            op = params.get("op", "changed")
            if op not in OPS:
                raise SqlError(f"unknown plan operation {op!r}; expected one of {', '.join(OPS)}")
            ctx["op"] = exp.Literal.string(op).sql()
        if statement in ("sample", "duplicates_sample"):
            limit = params.get("limit", 5 if statement == "sample" else 20)
            if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
                raise SqlError(f"limit must be a non-negative integer, got {limit!r}")
            ctx["limit"] = limit
        cache_key = (statement, tuple(sorted(params.items())))
        sql = self._rendered.get(cache_key)
        if sql is None:
            sql = render_template(template, ctx, self.dialect, self.model_sql)
            self._rendered[cache_key] = sql
        return sql

    def _execute(self, statement: str, **params: Any) -> None:
        self.warehouse.execute(self.render(statement, **params))

    def _scalar(self, statement: str, **params: Any) -> int:
        table = self.warehouse.query(self.render(statement, **params))
        value = table.column(0)[0].as_py() if table.num_rows else 0
        return int(value or 0)

    # ------------------------------------------------------------------ state

    def ensure_state(self) -> None:
        """Create the schema and snapshot table if missing; add hash columns for new fields."""
        with self._lock:
            self._execute("create_schema")
            existing = self.warehouse.table_columns(self.spec.state_schema, self.snapshot_table)
            if existing is None:
                self._execute("create_snapshot")
            else:
                have = set(existing)
                for column in ("_kh", "_fp"):  # layout additions: never drop, only add
                    if column not in have:
                        self._execute("add_snapshot_column", column=column)
                if "_kh" not in have:
                    self._execute("backfill_key_hash")
                for f in self.fields:
                    if f.snap_name not in have:
                        self._execute("add_snapshot_column", field=f.field)
            self._state_ready = True

    # ------------------------------------------------------------------ plan

    def plan(self, full_refresh: bool = False, retry_rejected: bool = False) -> PlanStats:
        """Build the plan table of this run. A full refresh plans as if the snapshot were empty
        (it is left untouched until `commit_full_refresh_cleanup`)."""
        with self._lock:
            if not self._state_ready:
                self.ensure_state()
            self._planned_full_refresh = None
            suffix = "_full_refresh" if full_refresh else ""
            try:
                for statement in ("drop_keys", "keys", "drop_candidates", "candidates" + suffix,
                                  "drop_plan", "plan" + suffix):
                    self._execute(statement)
                row = self.warehouse.query(self.render("plan_stats")).to_pylist()[0]
                counts = {k: int(v or 0) for k, v in row.items()}
                # Candidate rows that are neither sent nor duplicated were unchanged field by field
                # although their fingerprint was not: refresh those fingerprints.
                in_plan = counts["added"] + counts["changed"] + counts["duplicate_rows"]
                if not full_refresh and counts["candidate_rows"] > in_plan:
                    self._execute("refresh_fingerprints")
            finally:
                self._execute("drop_keys")
                self._execute("drop_candidates")
            self._planned_full_refresh = full_refresh
            keyed = counts["segment_rows"] - counts["null_keys"] - counts["duplicate_rows"]
            return PlanStats(
                segment_rows=counts["segment_rows"],
                null_keys=counts["null_keys"],
                duplicate_keys=counts["duplicate_keys"],
                duplicate_rows=counts["duplicate_rows"],
                added=counts["added"],
                changed=counts["changed"],
                removed=counts["removed"],
                unchanged=max(0, keyed - counts["added"] - counts["changed"]),
                full_refresh=full_refresh,
            )

    def stream_sendable(self, batch_rows: int = 50_000) -> Iterator[pa.RecordBatch]:
        """Added and changed rows: `_key, _op, v0.., x0..` in batches of at most `batch_rows`."""
        return self.warehouse.stream(self.render("stream_sendable"), batch_rows)

    def duplicates_sample(self, limit: int = 20) -> list[tuple[str, int]]:
        """The most duplicated keys, as (key, number of rows)."""
        table = self.warehouse.query(self.render("duplicates_sample", limit=limit))
        return [(r["_key"], int(r["_n"])) for r in table.to_pylist()]

    def sample(self, op: str, limit: int = 5) -> list[dict]:
        """A few plan rows of one kind: {"key", "op", "fields": {field: value}, "changed_fields"}."""
        table = self.warehouse.query(self.render("sample", op=op, limit=limit))
        out = []
        for r in table.to_pylist():
            if op in ("removed", "duplicate"):
                out.append({"key": r["_key"], "op": op, "fields": {}, "changed_fields": []})
                continue
            out.append({
                "key": r["_key"],
                "op": op,
                "fields": {f.field: r[f"v{f.i}"] for f in self.fields},
                "changed_fields": [f.field for f in self.fields if r[f"x{f.i}"]],
            })
        return out

    def field_change_counts(self) -> dict[str, int]:
        """Per destination field (mapping order), the changed rows of the plan that send it."""
        table = self.warehouse.query(self.render("field_change_counts"))
        row = table.to_pylist()[0] if table.num_rows else {}
        return {f.field: int(row.get(f"c{f.i}") or 0) for f in self.fields}

    # ------------------------------------------------------------------ commit

    def commit_acknowledged(self, keys: pa.Array | pa.ChunkedArray | list[str]) -> int:
        """Record acknowledged added/changed keys in the snapshot with the plan's hashes, in one
        transaction. Keys that are not added/changed rows of the plan are ignored. Idempotent."""
        if isinstance(keys, pa.ChunkedArray):
            keys = keys.combine_chunks()
        arr = keys if isinstance(keys, pa.Array) else pa.array(list(keys), type=pa.string())
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        if arr.type != pa.string():
            arr = arr.cast(pa.string())
        arr = arr.drop_null()
        if len(arr) == 0:
            return 0
        with self._lock:
            self.warehouse.write_arrow(self.spec.state_schema, self.ack_table, pa.table({"_key": arr}), mode="replace")
            try:
                self._execute("drop_acked")
                self._execute("acked")
                n = self._scalar("ack_count")
                if n:
                    with self.warehouse.transaction():
                        self._execute("commit_delete")
                        self._execute("commit_insert")
            finally:
                self._execute("drop_ack")
                self._execute("drop_acked")
            return n

    # TODO(merge): interim no-ops until the diff branch's parked rejections land.
    def commit_rejected(self, keys) -> int:
        return 0

    def parked_count(self) -> int:
        return 0

    def commit_removed(self) -> int:
        """Delete the plan's removed keys from the snapshot; returns how many left it."""
        with self._lock, self.warehouse.transaction():
            n = self._scalar("removed_count")
            if n:
                self._execute("commit_removed")
            return n

    def commit_full_refresh_cleanup(self) -> int:
        """After a successful full-refresh run: delete snapshot rows whose key left the segment."""
        with self._lock:
            if self._planned_full_refresh is not True:
                raise DinsyncError(
                    "commit_full_refresh_cleanup needs a full-refresh plan",
                    hint="call plan(full_refresh=True) first; a normal plan does not list unchanged keys",
                )
            with self.warehouse.transaction():
                n = self._scalar("cleanup_count")
                if n:
                    self._execute("commit_full_refresh_cleanup")
                return n
