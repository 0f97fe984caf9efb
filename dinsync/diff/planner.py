"""Plan one sync: the diff between the model and the snapshot, run in the warehouse.

The SQL lives in `sql/` (see `render.py`, statement names in `statements.py`). A run is:

    planner.ensure_state()              # schema, snapshot table, hash columns of new fields
    stats = planner.plan()              # build the plan table
    for batch in planner.stream_sendable(): ...   # added + changed rows, as Arrow
    planner.commit_acknowledged(keys)   # at checkpoints: record what the destination acknowledged
    planner.commit_rejected(keys)       # ... and park what it rejected for its content
    planner.commit_removed()            # at the end of a successful run

How a plan is built:
- empty snapshot or full refresh: every model row in one pass (`plan_all`), no comparison;
- otherwise one pass over the model and one over the snapshot compare counts and a digest
  (`digest`); when nothing differs the plan is empty and nothing else runs. Else model and
  snapshot rows are matched by raw key hash (`cand_all`), the candidates' model rows are read
  again with their values (`cur`), and compared field by field with their snapshot rows (`plan`).
  When a raw key occurs more than once in the model, per-bucket digests (`buckets`) find the
  rows to look at again (`cand_anomalies`).
Rows parked as rejected are expected with their parked fingerprint, so they cost nothing until
their values change.

Nothing here prints; errors are `DinsyncError`s.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import threading
from typing import Any, Callable

from ..errors import DinsyncError
from .cache import RenderCache, cache_key
from .column_forms import _column_forms, _column_kinds, _exact_columns, _shape_forms, _stable_forms
from .commit import CommitMixin, StreamedRows
from .pending import PendingMixin
from .dialects import DEFAULT_HASH_TYPES, DIALECT_SQL
from .keys import key_sql, phone_params
from .model_errors import located_in_model, locating  # noqa: F401 (located_in_model: engine/run.py)
from .plan_reads import PlanReadMixin
from .render import (
    FieldRef,
    SqlError,
    bind,
    check_identifier,
    check_model_sql,
    ident,
    render_template,
    snapshot_column,
    sql_type,
)
from .snapshot_state import SnapshotStateMixin
from .spec import (  # noqa: F401 (re-exported: the planner's public names)
    LONGEST_PREFIX,
    SCRATCH_TABLES,
    STATE_TABLES,
    DiffSpec,
    MappedField,
    PlanStats,
    check_table_names,
)
from .statements import NEEDS_NOW, NEEDS_POSITION, NEEDS_SEGMENT_HASHES, STATEMENTS

NBUCKETS = 1 << 14  # buckets of the no-op check (buckets.sql)
# rendered per column, on demand
COLUMN_STATEMENTS = {"add_snapshot_column", "add_pending_column", "forget_field", "pending_forget_field"}


class Planner(CommitMixin, PendingMixin, SnapshotStateMixin, PlanReadMixin):
    def __init__(self, warehouse: Any, spec: DiffSpec, *, cache: bool = True, cache_room: int = 0):
        """cache_room: the number of syncs of the project (see RenderCache's `room`)."""
        self.warehouse = warehouse
        self.spec = spec
        caps = warehouse.capabilities
        self.dialect: str = getattr(caps, "dialect", None) or warehouse.dialect
        self.hash_type: str = getattr(caps, "hash_type", None) or DEFAULT_HASH_TYPES.get(self.dialect, "BIGINT")
        # the times the snapshot and pending tables hold: the state tables' zone-less type (a bare
        # TIMESTAMP is TIMESTAMP_TYPE_MAPPING's on Snowflake, TIMESTAMP_LTZ on some accounts)
        self.timestamp_type: str = getattr(caps, "timestamp_type", None) or "TIMESTAMP"
        self.timestamp_is_instant = bool(getattr(caps, "timestamp_is_instant", False))
        self.scratch_database: str | None = getattr(caps, "scratch_database", None)
        # a scratch database of this sync's own, attached now and let go of by release()
        self._own_scratch = bool(self.scratch_database and getattr(caps, "scratch_per_sync", False))
        if self._own_scratch:
            self.scratch_database = f"{self.scratch_database}_{spec.sync}"
            attach = getattr(warehouse, "attach_scratch", None)
            if attach is not None:
                attach(self.scratch_database)
        self.row_position: str | None = getattr(caps, "row_position", None)
        self.arrow_views: bool = bool(getattr(caps, "arrow_views", False))
        self.segment_hashes: bool = bool(getattr(caps, "segment_hashes", False))
        self._acked_view = False  # `acked` is a view over Arrow data (see commit.py)
        sync = spec.sync
        check_table_names(warehouse, sync)  # never created under a name the warehouse would truncate
        self.snapshot_table = f"snap_{sync}"
        self.plan_table = f"plan_{sync}"
        self.ack_table = f"ack_{sync}"
        self.pending_table = f"pend_{sync}"
        self._pending_ready = False  # pend_<sync> exists with a column per mapped field (pending.py)
        scratch = ("seg",) * self.segment_hashes + SCRATCH_TABLES
        self.scratch_tables = {t: f"{t}_{sync}" for t in scratch}
        # where the plan and the scratch tables live (the state schema unless the warehouse offers
        # a scratch database: DuckDB attaches an in-memory one, never written to the file)
        self.plan_schema = self.scratch_database or spec.state_schema
        # where a commit's own scratch tables (ack, acked) live: see Capabilities.commit_scratch_database
        self.commit_schema: str = getattr(caps, "commit_scratch_database", None) or self.plan_schema
        # the scratch databases' schema, named in full in the statements (see Capabilities.scratch_schema)
        self._scratch_schema: str | None = getattr(caps, "scratch_schema", None) if self.scratch_database else None
        self.fields = [MappedField(i, col, field, snapshot_column(field)) for i, (col, field) in enumerate(spec.fields)]
        # mapped columns the fingerprint hashes in their exact form (see Warehouse.exact_hash_columns):
        # asked each run, since a column's type or collation changes without the model SQL changing
        # (one read of the model's columns for the three: see Warehouse.describing)
        with getattr(warehouse, "describing", contextlib.nullcontext)():
            self.exact_columns = _exact_columns(warehouse, spec)
            self.stable_forms = _stable_forms(warehouse, spec)
            shape_forms = _shape_forms(warehouse, spec)
            # the mapped columns' types the fingerprint does not see (SyncRecords.compare_if_retyped)
            self.column_kinds = _column_kinds(warehouse, spec)
            # the plan's v{i} of the mapped numerics that declare a scale (see Warehouse.declared_scales)
            scales = _column_forms(warehouse, spec, "declared_scales")
            self.declared_scale_values = {f"v{f.i}" for f in self.fields if f.column in scales}
        if "{args_hash}" in DIALECT_SQL[self.dialect]["DINSYNC_FINGERPRINT"]:
            # a fingerprint of the values' text (Redshift's, Snowflake's...) hashes a column of a
            # stable form in that form too: else a run in another time zone found every row changed
            self.exact_columns = sorted({*self.exact_columns, *self.stable_forms})
        # (a column hashed in its exact or stable form is hashed as its text, which has its shape)
        self.shape_forms = {c: f for c, f in shape_forms.items()
                            if c not in self.exact_columns and c not in self.stable_forms}
        key = cache_key({
            "dialect": self.dialect, "hash_type": self.hash_type, "timestamp_type": self.timestamp_type,
            "scratch_database": self.scratch_database,
            "commit_schema": self.commit_schema, "scratch_schema": self._scratch_schema,
            "row_position": self.row_position, "segment_hashes": self.segment_hashes, "nbuckets": NBUCKETS,
            "sync": sync, "model_sql": spec.model_sql,
            "key_column": spec.key_column, "key_normalization": spec.key_normalization,
            "phone_region": spec.phone_region, "fields": spec.fields, "state_schema": spec.state_schema,
            "exact_columns": self.exact_columns, "stable_forms": self.stable_forms, "shape_forms": self.shape_forms,
        })
        self._cache = RenderCache(key, room=cache_room) if cache else RenderCache(key, root=None)
        model = self._cache.get("__model_sql__")
        if model is None:
            model = check_model_sql(spec.model_sql, self.dialect)
            self._cache.put("__model_sql__", model)
        self.model_sql = model
        self._ctx: dict[str, Any] | None = None
        self._lock = threading.RLock()
        self._done_lock = threading.Lock()
        self._streamed = StreamedRows()  # streamed, not yet committed rows (see commit.py)
        self._done = None  # positions committed by this run (a Polars Boolean Series), see commit.py
        self._state_ready = False
        self._tables_checked = False  # the sync's tables in the state schema are dinsync's (or absent)
        self._leftover_scratch: list[str] = []  # scratch tables of a killed run (see drop_leftover_scratch)
        # snapshot columns ensure_state added (all NULL) and whether it forgot the fingerprints,
        # until the next plan: forget_fingerprints then has nothing more to clear
        self._added_columns: set[str] = set()
        self._fingerprints_forgotten = False
        self._planned_full_refresh: bool | None = None
        self._leaving: int | None = None  # removed + forgotten keys of the plan (None: unknown)
        self.forgotten = 0  # of the last plan: parked keys never delivered that left the segment
        # the everyday plan kept its candidates' snapshot rows (`prior`) for unsettle_sendable
        self._prior_kept = False
        # called (no argument, in the planning thread) once a plan is known to hold rows to look
        # at, before the statements that find them: the engine starts loading what sending needs
        self.on_changes: Callable[[], None] | None = None

    def table_names(self) -> list[str]:
        """The names of the tables this sync's planner creates (its state and its scratch tables)."""
        return [self.snapshot_table, self.plan_table, self.ack_table, self.pending_table,
                *self.scratch_tables.values()]

    # ------------------------------------------------------------------ SQL

    def _context(self) -> dict[str, Any]:
        if self._ctx is None:
            spec = self.spec
            schema = ident(spec.state_schema)
            inner = f".{ident(self._scratch_schema)}" if self._scratch_schema else ""
            scratch = ident(self.scratch_database) + inner if self.scratch_database else schema
            phone = phone_params(spec.phone_region) if spec.key_normalization == "phone" else ("", "")
            commits = ident(self.commit_schema) + inner if self.commit_schema != self.plan_schema else scratch
            tables = {"plan": f"{scratch}.{ident(self.plan_table)}", "ack": f"{commits}.{ident(self.ack_table)}"}
            tables.update({t: f"{commits if t in ('acked', 'tokens') else scratch}.{ident(name)}"
                           for t, name in self.scratch_tables.items()})
            self._ctx = {
                "schema": schema,
                "snapshot": f"{schema}.{ident(self.snapshot_table)}",
                "pending": f"{schema}.{ident(self.pending_table)}",
                **tables,
                "tables": tables,
                "key_column": ident(spec.key_column),
                "raw_key": f"CAST(m.{ident(spec.key_column)} AS VARCHAR)",
                "key_expr": key_sql(spec.key_normalization, f"m.{ident(spec.key_column)}", phone),
                "fields": [FieldRef(i=f.i, col=ident(f.column), snap=ident(f.snap_name), field=f.field,
                                    snap_name=f.snap_name, exact=f.column in self.exact_columns,
                                    stable=self.stable_forms.get(f.column), shape=self.shape_forms.get(f.column))
                           for f in self.fields],
                "hash_type": sql_type(self.hash_type, self.dialect),
                # (the default as the neutral dialect's TIMESTAMP: BigQuery's own names an instant)
                "timestamp_type": ("TIMESTAMP" if self.timestamp_type == "TIMESTAMP"
                                   else sql_type(self.timestamp_type, self.dialect)),
                "nbuckets": NBUCKETS,
                "position": ident(self.row_position) if self.row_position else None,
                "segment_hashes": self.segment_hashes,
            }
        return self._ctx

    def statements(self) -> list[str]:
        """Names of the statements this warehouse can run (see statements.py)."""
        return [s for s in STATEMENTS if (self.row_position or s not in NEEDS_POSITION)
                and (self.segment_hashes or s not in NEEDS_SEGMENT_HASHES)]

    def _sql(self, statement: str, column: str | None = None) -> str:
        if statement not in STATEMENTS:
            raise SqlError(f"unknown statement {statement!r}; known: {', '.join(STATEMENTS)}")
        entry = statement if column is None else f"{statement}:{column}"
        sql = self._cache.get(entry)
        if sql is None:
            if column is None:
                # render every statement at once, so that the next run with the same inputs
                # renders (and imports) nothing, whichever path its plan takes
                for name in self.statements():
                    if name not in COLUMN_STATEMENTS and self._cache.get(name) is None:
                        self._cache.put(name, self._render_template(name), save=False)
                self._cache.save()
                return self._cache.get(entry)
            sql = self._render_template(statement, column)
            self._cache.put(entry, sql)
        return sql

    def _render_template(self, statement: str, column: str | None = None) -> str:
        template, fixed = STATEMENTS[statement]
        ctx = {**self._context(), **fixed}
        if column is not None:
            ctx["column"] = ident(column)
        return render_template(template, ctx, self.dialect, self.model_sql)

    def render(self, statement: str, **params: Any) -> str:
        """The SQL text of a named statement (see statements.py) for this warehouse's dialect.

        params: `field` or `column` (add_snapshot_column; default the first mapped field); values of
        the statement's param() markers (`op`, `limit`, `lo`, `hi`), left as markers when not given.
        """
        column = None
        if statement in COLUMN_STATEMENTS:
            column = params.pop("column", None) or snapshot_column(
                check_identifier(params.pop("field", self.fields[0].field), "destination field"))
        return bind(self._sql(statement, column), **params)

    def _execute(self, statement: str, **params: Any) -> int | None:
        """Run a statement; the number of rows it changed when the driver says."""
        if not self._tables_checked:  # before the first statement that may create, alter or drop one
            self._refuse_foreign_tables()
        if statement in NEEDS_NOW:
            # (with its offset where TIMESTAMP is an instant: Databricks read the time without one in
            # the SQL warehouse's TIMEZONE, `_synced_at` and `_stashed_at` hours off where one is set)
            now = dt.datetime.now(dt.timezone.utc)
            params.setdefault("now", now if self.timestamp_is_instant else now.replace(tzinfo=None))
        sql = self.render(statement, **params)
        with self._locating(sql):
            return self.warehouse.execute(sql)

    def _row(self, statement: str, **params: Any) -> dict[str, int]:
        sql = self.render(statement, **params)
        with self._locating(sql):
            rows = self.warehouse.rows(sql)
        return {k: int(v or 0) for k, v in rows[0].items()} if rows else {}

    def _locating(self, sql: str):
        return locating(sql, self.model_sql)

    def _scalar(self, statement: str, **params: Any) -> int:
        row = self._row(statement, **params)
        return next(iter(row.values()), 0)

    def _drop(self, *tables: str) -> None:
        for table in tables:
            self._execute(f"drop_{table}")

    @contextlib.contextmanager
    def _writing_state(self):
        """A transaction that writes the snapshot or the pending records: it waits for another
        transaction's lock on them as long as the state's statements do (`Warehouse.state_waits`,
        the lock only: how long it runs depends on the run's changes), then fails as a lock
        timeout. A checkpoint's commit waited for ever behind a lock held on the snapshot (a
        VACUUM FULL, an open DELETE), the run with it, deaf to SIGTERM."""
        with self.warehouse.state_waits(locks_only=True), self.warehouse.transaction():
            yield

    # ------------------------------------------------------------------ plan

    def plan(self, full_refresh: bool = False, retry_rejected: bool = False, dry_run: bool = False) -> PlanStats:
        """Build the plan table of this run. A full refresh plans as if the snapshot were empty
        (it is left untouched until `commit_full_refresh_cleanup`) and ignores parking;
        `retry_rejected` plans parked rows again (as if they had never been rejected). A dry run
        (`dinsync plan`) leaves the snapshot as it is: rows found unchanged under its mapping keep
        their fingerprints (see `_plan_changes`)."""
        with self._lock:
            # from here on commits write fingerprints and hashes: what ensure_state cleared no longer is
            self._added_columns, self._fingerprints_forgotten = set(), False
            self.warehouse.size_for(len(self.fields))
            if not self._state_ready:
                self.ensure_state()
            self._planned_full_refresh = None
            self.drop_prior()  # of a plan before this one that sent nothing
            self.drop_leftover_scratch()
            with self._done_lock:
                self._done = None
            self.drop_plan()
            first = not full_refresh and bool(self._scalar("snapshot_empty"))
            if full_refresh or first:
                counts = self._plan_all(full_refresh)
            else:
                counts = self._plan_changes(retry_rejected, dry_run)
            self._planned_full_refresh = full_refresh
            self._leaving = counts["removed"] + counts["forget"]
            self.forgotten = counts["forget"]
            if full_refresh:  # the keys that left the segment leave the snapshot once the refresh succeeds
                counts["removed"] = self._row("cleanup_count")["gone"]
            # commits replace the snapshot rows of changed keys (a full refresh: of any key) and
            # delete those that left (in parts: see commit_removed)
            deletes = None if full_refresh else counts["changed"] + self._leaving
            if deletes != 0:
                # the snapshot's size: the everyday plan's digest counted it (naming the table
                # would load sqlglot, ~0.3 s of a run whose SQL is cached); a full refresh's is
                # counted by the adapter
                known = counts.get("snapshot_rows")
                table = None if known is not None else self._context()["snapshot"]
                self.warehouse.expect_deletes(table, deletes, at_once=-(-self._leaving // self._removal_parts()),
                                              table_rows=known)
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
                retry_rejected=retry_rejected,
                first_sync=first,
            )

    def drop_plan(self) -> None:
        """Drop this run's plan table (`plan` does it before building the next one). A run never
        needs to: the plan lives in the warehouse's scratch database where there is one (DuckDB:
        in memory, gone with the connection)."""
        with self._lock:
            self._streamed.clear()
            self._drop("plan")

    def release(self) -> None:
        """The run is over (its plan read, its samples taken): let go of what the planner holds,
        the rows kept for commits and, where each sync plans in a scratch database of its own, that
        database (Warehouse.detach_scratch). Elsewhere the plan stays until the next run replaces it."""
        with self._lock:
            self._streamed.clear()
            if self._own_scratch:
                self.warehouse.detach_scratch(self.scratch_database)

    def drop_prior(self) -> None:
        """Drop the candidates' snapshot rows an everyday plan kept for unsettle_sendable, when
        nothing is sent (a dry run, a stop, nothing to send)."""
        with self._lock:
            if self._prior_kept:
                self._prior_kept = False
                self._drop("prior")

    def _changes_ahead(self) -> None:
        if self.on_changes is not None:
            self.on_changes()

    def _plan_all(self, full_refresh: bool) -> dict[str, int]:
        self._changes_ahead()
        self._execute("plan_all_full_refresh" if full_refresh else "plan_all")
        if self._scalar("plan_all_duplicates"):
            self._execute("plan_all_mark_duplicates")
            self._execute("plan_all_withhold_duplicated")
        counts = self._row("plan_stats")
        counts["null_keys"] = counts["skipped"]
        counts["segment_rows"] = counts["skipped"] + counts["added"] + counts["duplicate_rows"]
        return counts

    def _plan_changes(self, retry: bool, dry_run: bool = False) -> dict[str, int]:
        suffix = "_retry" if retry else ""
        scratch = ("seg",) * self.segment_hashes + ("buckets", "cand", "cur", "prior")
        try:
            self._drop(*scratch)
            if self.segment_hashes:  # the one pass over the model, kept for the digest and the candidates
                self._execute("seg")
            seg = self._row("digest" + suffix)
            if not seg["dirty"]:
                self._execute("plan_empty")
                counts = dict.fromkeys(("skipped", "duplicate_keys", "duplicate_rows", "added", "changed",
                                        "removed", "forget", "refresh"), 0)
            else:
                self._changes_ahead()
                self._execute("cand_all" + suffix)
                cand = self._row("cand_counts")
                if seg["keyed_rows"] - cand["new"] > seg["snapshot_rows"] - cand["gone"]:
                    # a raw key occurs more than once: the buckets tell which rows to look at
                    self._execute("buckets" + suffix)
                    if self._scalar("cand_anomaly_count"):
                        self._execute("cand_anomalies")
                self._execute("cur")
                self._execute("prior")
                self._execute("plan" + suffix)
                counts = self._row("plan_stats")
                # not in a dry run: the fingerprint hashes the mapped columns, not which fields they
                # feed, so a branch's mapping that swaps two fields would record as unchanged a row
                # whose values swapped between those columns, which the sync of other files must send
                if counts["refresh"] and not dry_run:
                    self._execute("refresh_snapshot")
                # what unsettle_sendable reads instead of the snapshot (drop_prior when not sending)
                self._prior_kept = bool(counts["added"] or counts["changed"])
        finally:
            self._drop(*(t for t in scratch if not (t == "prior" and self._prior_kept)))
        counts["segment_rows"] = seg["segment_rows"]
        counts["null_keys"] = seg["null_keys"] + counts["skipped"]
        if not retry:  # (with retry_rejected the digest counts the delivered rows only)
            counts["snapshot_rows"] = seg["snapshot_rows"]
        return counts

    def _require_full_refresh_plan(self) -> None:
        if self._planned_full_refresh is not True:
            raise DinsyncError(
                "commit_full_refresh_cleanup needs a full-refresh plan",
                hint="call plan(full_refresh=True) first; a normal plan does not list unchanged keys",
            )
