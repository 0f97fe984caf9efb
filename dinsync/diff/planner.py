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
import re
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from ..errors import ConfigError, ConfigIssue, DinsyncError
from .cache import RenderCache, cache_key
from .commit import CommitMixin, StreamedRows
from .pending import PendingMixin
from .dialects import DEFAULT_HASH_TYPES, DIALECT_SQL
from .keys import KEY_NORMALIZATIONS, key_sql, phone_params
from .render import (
    OPS,
    FieldRef,
    SqlError,
    bind,
    check_identifier,
    check_model_sql,
    check_sync_name,
    ident,
    render_template,
    snapshot_column,
    sql_type,
)
from .statements import NEEDS_NOW, NEEDS_POSITION, NEEDS_SEGMENT_HASHES, STATEMENTS

# The tables a sync's planner names `<prefix>_<sync>`: its state (snapshot, plan, acknowledged keys,
# pending outcomes) and its scratch tables (`seg` too, where the warehouse hashes segments).
STATE_TABLES = ("snap", "plan", "ack", "pend")
SCRATCH_TABLES = ("buckets", "cand", "cur", "prior", "acked", "unsettle", "tokens")
LONGEST_PREFIX = max(("seg", *STATE_TABLES, *SCRATCH_TABLES), key=len)


def check_table_names(warehouse: Any, sync: str) -> None:
    """Refuse (the warehouse's error, with its hint) a sync whose table names are longer than the
    warehouse's identifiers: PostgreSQL truncates such a name to 63 bytes, so two syncs whose names
    share their first ~55 characters shared one snapshot, and a refused `ack_<sync>` failed each run
    only after it had sent every row."""
    check = getattr(warehouse, "check_identifier", None)
    if check is not None:
        check(f"{LONGEST_PREFIX}_{sync}", "table name")


NBUCKETS = 1 << 14  # buckets of the no-op check (buckets.sql)
INTERNAL_COLUMNS = ("_kh", "_fp", "_rkh", "_pfp")  # snapshot columns added by later layouts
# The columns of the tables a sync's planner creates (snapshot, pending, plan and scratch tables):
# dinsync's own (`_key`, `_kh`, ...), a field's hash (`f_<16 hex>`) and per-field values (`v0`, `x0`,
# `h0`). A table of such a name with another column is someone else's (see _refuse_foreign_tables).
_OWN_COLUMN = re.compile(r"_\w*|f_[0-9a-f]{16}|[a-z][0-9]+")
# rendered per column, on demand
COLUMN_STATEMENTS = {"add_snapshot_column", "add_pending_column", "forget_field", "pending_forget_field"}


@dataclass(frozen=True)
class DiffSpec:
    sync: str  # sync name: [A-Za-z0-9_]+ (used in table names)
    model_sql: str  # the user's SELECT, in the warehouse's dialect
    key_column: str  # model column holding the matching key
    key_normalization: str  # see keys.py: "email", "lower", "trim", "none" or "phone"
    fields: list[tuple[str, str]]  # (model column, destination field), in mapping order
    state_schema: str = "dinsync"
    phone_region: str | None = None  # default region of phone keys (ISO 3166 alpha-2)

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
    unchanged: int  # keyed rows not sent (includes parked rows whose values did not change)
    full_refresh: bool
    retry_rejected: bool = False
    first_sync: bool = False  # the snapshot was empty: every row is added, commits only insert


@dataclass(frozen=True)
class MappedField:
    i: int
    column: str
    field: str
    snap_name: str


class Planner(CommitMixin, PendingMixin):
    def __init__(self, warehouse: Any, spec: DiffSpec, *, cache: bool = True):
        self.warehouse = warehouse
        self.spec = spec
        caps = warehouse.capabilities
        self.dialect: str = getattr(caps, "dialect", None) or warehouse.dialect
        self.hash_type: str = getattr(caps, "hash_type", None) or DEFAULT_HASH_TYPES.get(self.dialect, "BIGINT")
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
            "dialect": self.dialect, "hash_type": self.hash_type, "scratch_database": self.scratch_database,
            "commit_schema": self.commit_schema, "scratch_schema": self._scratch_schema,
            "row_position": self.row_position, "segment_hashes": self.segment_hashes, "nbuckets": NBUCKETS,
            "sync": sync, "model_sql": spec.model_sql,
            "key_column": spec.key_column, "key_normalization": spec.key_normalization,
            "phone_region": spec.phone_region, "fields": spec.fields, "state_schema": spec.state_schema,
            "exact_columns": self.exact_columns, "stable_forms": self.stable_forms, "shape_forms": self.shape_forms,
        })
        self._cache = RenderCache(key) if cache else RenderCache(key, root=None)
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
            params.setdefault("now", dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))
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

    def _refuse_foreign_tables(self) -> None:
        """The tables of this sync that live in the state schema (its snapshot and pending tables,
        and its plan and scratch tables where the warehouse has no scratch database of its own),
        when they exist, must be dinsync's: a state_schema shared with other tables (`public`, a
        dbt schema) may hold a `plan_users` or `cur_users` of someone else's, which the plan would
        drop and replace, or alter (a `snap_users`). Raises ConfigError naming them; changes nothing."""
        schema = self.spec.state_schema
        names = [self.snapshot_table, self.pending_table]
        commits = ("acked", "tokens")  # scratch tables of the commits' schema (see _context)
        if self.plan_schema == schema:
            names += [self.plan_table, *(name for t, name in self.scratch_tables.items() if t not in commits)]
        if self.commit_schema == schema:
            names += [self.ack_table, *(name for t, name in self.scratch_tables.items() if t in commits)]
        foreign = []
        found = self.warehouse.tables_columns(schema, list(dict.fromkeys(names)))
        for name, columns in found.items():
            theirs = [c for c in columns if not _OWN_COLUMN.fullmatch(str(c).lower())]
            if theirs or not any(str(c).startswith("_") for c in columns):
                foreign.append(f"{name} (with {', '.join(map(str, (theirs or columns)[:3]))}"
                               f"{', …' if len(theirs or columns) > 3 else ''})")
        if foreign:
            raise ConfigError([ConfigIssue(
                f"the state schema {schema} holds tables dinsync did not create: {'; '.join(foreign)}; "
                f"sync {self.spec.sync} would drop or alter them", "dinsync.yml",
                hint="set state_schema to a schema of dinsync's own (default: dinsync), or rename those tables")])
        self._tables_checked = True

    def _drop(self, *tables: str) -> None:
        for table in tables:
            self._execute(f"drop_{table}")

    # ------------------------------------------------------------------ state

    def ensure_state(self, dry_run: bool = False) -> None:
        """Create the schema and snapshot table if missing; add hash columns for new fields. A dry
        run (`dinsync plan`) keeps the rows' parking when it adds one: a plan of a branch's files
        must not make the next sync of other files send the parked rows again."""
        with self._lock:
            self.warehouse.create_schema(lambda: self._execute("create_schema"), self.spec.state_schema)
            existing = self.warehouse.table_columns(self.spec.state_schema, self.snapshot_table)
            if existing is None:
                self._execute("create_snapshot")
                self._added_columns |= {f.snap_name for f in self.fields}
                self._fingerprints_forgotten = True  # (an empty snapshot)
            else:
                have = set(existing)
                for column in INTERNAL_COLUMNS:  # layout additions: never drop, only add
                    if column not in have:
                        self._execute("add_snapshot_column", column=column)
                if "_kh" not in have:
                    self._execute("backfill_key_hash")
                new = [f for f in self.fields if f.snap_name not in have]
                if new:  # every row is compared again: a renamed field reads the same columns
                    self._execute("forget_fingerprints_keep_parked" if dry_run else "forget_fingerprints")
                    self._fingerprints_forgotten = True
                for f in new:
                    self._execute("add_snapshot_column", column=f.snap_name)
                    self._added_columns.add(f.snap_name)
            self._state_ready = True

    def forget_fingerprints(self, resend: Sequence[str] = ()) -> None:
        """Make the next plan compare every row field by field (the mapping changed in a way the
        rows' fingerprints, which hash the mapped columns' values, do not show: fields renamed or
        swapped between columns, a field's type). Rows whose values are unchanged then cost a
        refresh; parked rows are sent once more (rejected under the old mapping). The destination
        fields in `resend` (their type changed: what they delivered was written in another form)
        are sent for every row."""
        with self._lock:
            if not self._state_ready:
                self.ensure_state()
            for f in self.fields:
                if f.field in resend and f.snap_name not in self._added_columns:
                    self._execute("forget_field", column=f.snap_name)
            if not self._fingerprints_forgotten:  # (ensure_state did it when it added a column)
                self._execute("forget_fingerprints")
                self._fingerprints_forgotten = True
            # records whose outcome is awaited were stashed under the old mapping: acknowledged by a
            # later run (which finds the new mapping recorded), they must not enter as delivered under it
            pending = self.warehouse.table_columns(self.spec.state_schema, self.pending_table)
            if pending is not None:
                for f in self.fields:
                    if f.field in resend and f.snap_name in pending:
                        self._execute("pending_forget_field", column=f.snap_name)
                self._execute("pending_forget_fingerprints")

    def holds_rows(self) -> bool:
        """The snapshot holds a row (delivered or parked): the sync ran before."""
        with self._lock:
            if not self._state_ready:
                self.ensure_state()
            return not self._scalar("snapshot_empty")

    def forget_raw_keys(self) -> None:
        """Make the next plan read every model row's key again (the key normalisation changed: a
        phone key's default region), also for records awaiting their outcome (see
        forget_raw_keys.sql)."""
        with self._lock:
            if not self._state_ready:
                self.ensure_state()
            self._execute("forget_raw_keys")
            if self._pending_exists():
                self._execute("pending_forget_raw_keys")

    def forget_snapshot(self) -> None:
        """Forget every row of the snapshot (delivered or parked): the sync now sends to another
        destination, which holds none of them (see forget_snapshot.sql)."""
        with self._lock:
            if not self._state_ready:
                self.ensure_state()
            with self.warehouse.transaction():
                self._execute("forget_snapshot")

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

    # ------------------------------------------------------------------ reading the plan

    def stream_sendable(self, batch_rows: int = 50_000) -> Iterator[Any]:
        """Added and changed rows: `_key, _op, v0.., x0..` as Arrow record batches of at most
        `batch_rows` rows. May run in another thread while commits run."""
        sql = self.render("stream_sendable")
        if not self.row_position:
            return self._stream(sql, batch_rows)
        return self._stream_tracked(sql, batch_rows)

    def _stream(self, sql: str, batch_rows: int, rest: Callable[[], tuple[str, Any]] | None = None) -> Iterator[Any]:
        """The plan's rows, bound in its scratch database where there is one (Warehouse.stream_scratch)."""
        within = getattr(self.warehouse, "stream_scratch", None)
        if self.scratch_database and within is not None:
            return within(sql, self.scratch_database, batch_rows, **({"rest": rest} if rest else {}))
        return self.warehouse.stream(sql, batch_rows)

    def _stream_tracked(self, sql: str, batch_rows: int) -> Iterator[Any]:
        """Keep the carried columns of each streamed batch (position, hashes: see StreamedRows)
        for the commits of its rows, and yield what the destination needs. The positions read are
        remembered (a byte a plan row), so that a stream that failed after some rows can go on with
        the others (stream_scratch's `rest`)."""
        import polars as pl
        import pyarrow as pa

        from ..warehouses.base import STREAM_READ

        sent = list(range(1, 3 + 2 * len(self.fields)))  # _key, _op, v0.., x0..
        read = pl.Series("read", [], dtype=pl.Boolean)  # (Polars, not NumPy: NumPy is not a dependency)

        def rest() -> tuple[str, Any]:
            positions = pa.table({"_rn": read.arg_true().cast(pl.Int64).to_arrow()})
            return f"SELECT * FROM (\n{sql}\n) AS _rest WHERE _rn NOT IN (SELECT _rn FROM {STREAM_READ})", positions

        batches = self._stream(sql, batch_rows, rest)
        try:
            for batch in batches:
                if batch.num_rows:
                    positions = pl.from_arrow(pa.record_batch([batch.column(0)], names=["_rn"])).to_series()
                    top = int(positions.max()) + 1
                    if top > len(read):
                        read = read.extend_constant(False, max(top, 2 * len(read)) - len(read))
                    read.scatter(positions, True)
                self._streamed.add(self.carried(batch))
                yield batch.select(sent)
        finally:
            batches.close()

    def carried(self, batch):
        """What the planner keeps of a batch of `stream_sendable` (with a row position) for the
        commits of its rows: `_rn, _key, _kh, _fp, _rkh, _prior, h0, ..`."""
        return batch.select([0, 1] + list(range(3 + 2 * len(self.fields), batch.num_columns)))

    def duplicates_sample(self, limit: int = 20) -> list[tuple[str, int]]:
        """The most duplicated keys, as (key, number of rows)."""
        table = self.warehouse.query(self.render("duplicates_sample", limit=limit))
        return [(r["_key"], int(r["_n"])) for r in table.to_pylist()]

    def sample_table(self, op: str, limit: int = 5) -> Any:
        """A few plan rows of one kind as the warehouse holds them: an Arrow table of `_key` and,
        per field i, `v{i}` and `x{i}` (`sample` reads it as Python values; `dinsync plan` maps it)."""
        if op not in OPS:
            raise SqlError(f"unknown plan operation {op!r}; expected one of {', '.join(OPS)}")
        return self.warehouse.sample_query(self.render("sample", op=op, limit=limit))

    def sample(self, op: str, limit: int = 5) -> list[dict]:
        """A few plan rows of one kind: {"key", "op", "fields": {field: value}, "changed_fields"},
        values as the warehouse holds them (what a run sends: dinsync.engine.preview)."""
        table = self.sample_table(op, limit)
        out = []
        for r in _pylist(table):
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
        """Per destination field, how many changed rows of the plan send it (mapping order)."""
        row = self._row("field_change_counts")
        return {f.field: row.get(f"n{f.i}", 0) for f in self.fields}

    def parked_count(self, staying: bool = False) -> int:
        """Keys parked as rejected: not planned again until their values change. `staying` (after a
        plan): only those still in the segment; a parked key that left it leaves the snapshot."""
        with self._lock:
            if not self._state_ready:
                self.ensure_state()
            return self._scalar("parked_count_staying" if staying else "parked_count")

    def _require_full_refresh_plan(self) -> None:
        if self._planned_full_refresh is not True:
            raise DinsyncError(
                "commit_full_refresh_cleanup needs a full-refresh plan",
                hint="call plan(full_refresh=True) first; a normal plan does not list unchanged keys",
            )


def _exact_columns(warehouse: Any, spec: DiffSpec) -> list[str]:
    """The mapped columns the warehouse hashes in their exact form (Warehouse.exact_hash_columns);
    none when the model cannot be read yet (a planner made before its table: a run reads the model's
    columns before it plans, so only a caller of the Python API meets this)."""
    exact = getattr(warehouse, "exact_hash_columns", None)
    if exact is None:
        return []
    try:
        return sorted(exact(spec.model_sql, sorted({c for c, _ in spec.fields})))
    except DinsyncError:  # (a warehouse error)
        return []


def _column_kinds(warehouse: Any, spec: DiffSpec) -> dict[str, str]:
    """The mapped columns' types that the engine records (Warehouse.recorded_column_types); none
    when the model cannot be read yet (as _exact_columns)."""
    return _column_forms(warehouse, spec, "recorded_column_types")


def _stable_forms(warehouse: Any, spec: DiffSpec) -> dict[str, str]:
    """The mapped columns the warehouse hashes in a form of their own (Warehouse.stable_hash_forms),
    each with that form; none when the model cannot be read yet (as _exact_columns)."""
    return _column_forms(warehouse, spec, "stable_hash_forms")


def _shape_forms(warehouse: Any, spec: DiffSpec) -> dict[str, str]:
    """The mapped columns whose own hash leaves out part of the value, each with the SQL of that part
    (Warehouse.shape_hash_forms); none when the model cannot be read yet (as _exact_columns)."""
    return _column_forms(warehouse, spec, "shape_hash_forms")


def _column_forms(warehouse: Any, spec: DiffSpec, method: str) -> dict[str, str]:
    """What the warehouse's `method` says of the model's mapped columns, by column."""
    forms = getattr(warehouse, method, None)
    if forms is None:
        return {}
    try:
        return dict(sorted(forms(spec.model_sql, sorted({c for c, _ in spec.fields})).items()))
    except DinsyncError:  # (a warehouse error)
        return {}


def _pylist(table: Any) -> list[dict]:
    """Rows of an Arrow table as dicts; a value Python cannot hold (DuckDB's date 'infinity', a
    year before 1 or after 9999) becomes a text saying so instead of failing the whole sample. A
    timestamp labelled with a zone Python does not know (DuckDB's session zone under TZ=IST) is
    shown in UTC."""
    columns = {}
    for name, column in zip(table.column_names, table.columns):
        try:
            columns[name] = column.to_pylist()
        except (KeyError, OverflowError, ValueError):  # (KeyError: pytz's / zoneinfo's unknown zone)
            from ..mapping.frame import utc_labelled

            column = column.cast(utc_labelled(column.type))
            try:
                columns[name] = column.to_pylist()
            except (OverflowError, ValueError):
                columns[name] = [_py_value(v) for v in column]
        columns[name] = _end_of_day(column, columns[name])
    return [dict(zip(columns, values)) for values in zip(*columns.values())]


def _end_of_day(column: Any, values: list) -> list:
    """TIME '24:00:00' (the end of a day), which pyarrow reads as time(0, 0), as the text the sync
    sends for it (top-level and in lists)."""
    import pyarrow as pa

    t, listed = column.type, False
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        t, listed = t.value_type, True
    if not pa.types.is_time(t):
        return values
    day = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}[t.unit]
    ints = pa.chunked_array(column.chunks if isinstance(column, pa.ChunkedArray) else [column], column.type)
    ints = ints.cast(pa.list_(pa.int64()) if listed else pa.int64()) if t.bit_width == 64 else \
        ints.cast(pa.list_(pa.int32()) if listed else pa.int32())

    def one(raw: Any, value: Any) -> Any:
        return "24:00:00" if raw is not None and raw >= day else value

    if listed:
        return [None if r is None else [one(x, v) for x, v in zip(r, vs)] for r, vs in zip(ints.to_pylist(), values)]
    return [one(r, v) for r, v in zip(ints.to_pylist(), values)]


def _py_value(scalar: Any) -> Any:
    try:
        return scalar.as_py()
    except (OverflowError, ValueError):
        import pyarrow as pa

        # a list or struct holding such a value: each item on its own (one view of the whole fails)
        if pa.types.is_list(scalar.type) or pa.types.is_large_list(scalar.type) \
                or pa.types.is_fixed_size_list(scalar.type):
            return None if not scalar.is_valid else [_py_value(v) for v in scalar.values]
        if pa.types.is_struct(scalar.type):
            return None if not scalar.is_valid else {name: _py_value(v) for name, v in scalar.items()}
        if pa.types.is_timestamp(scalar.type) and scalar.type.unit == "ns":
            # a nanosecond fraction (TIMESTAMP_NS): Python's datetime holds microseconds only
            return str(scalar.cast(pa.string()))
        unit = "days" if pa.types.is_date32(scalar.type) else getattr(scalar.type, "unit", "units")
        raw = pa.array([scalar], scalar.type).view(pa.int32() if unit == "days" else pa.int64())[0].as_py()
        return f"{scalar.type} out of range ({raw} {unit} from 1970-01-01)"


_STATEMENT_LINE = re.compile(r"\bLINE (\d+):")  # DuckDB's and PostgreSQL's (Redshift's) errors


def model_line(message: str, sql: str, model_sql: str) -> int | None:
    """The line of `model_sql` (1-based) that an error of statement `sql` points at, when the
    error names a line ("LINE 28: ...") inside the model, which render_template puts between
    "(\n" and "\n)"; else None."""
    found = _STATEMENT_LINE.search(message)
    start = sql.find("(\n" + model_sql + "\n)")
    if found is None or start < 0:
        return None
    offset = int(found.group(1)) - (sql.count("\n", 0, start) + 2)  # the model starts on the next line
    return offset + 1 if 0 <= offset <= model_sql.count("\n") else None


def located_in_model(exc: DinsyncError, model: str, file: str, first_line: int | None) -> DinsyncError:
    """`exc` as an error of the model file's line when it carries `model_line` (see `model_line`):
    "models/x.sql:10: model x failed in the warehouse: ... line 10: ...", with a hint; else `exc`."""
    line = getattr(exc, "model_line", None)
    if (line is None or first_line is None) and getattr(exc, "model_rows", False):
        try:  # a data error no line locates (PostgreSQL's `division by zero` names none)
            return type(exc)(f"{file}: model {model} failed in the warehouse on a value of its rows: {exc.message}",
                             exc.hint or "run the model's SQL in the warehouse to debug it")
        except TypeError:
            return exc
    if line is None or first_line is None:
        return exc
    at = first_line + line - 1
    message = _STATEMENT_LINE.sub(f"line {at}:", exc.message, count=1)
    try:  # the same class (its exit code, whether a retry may help)
        return type(exc)(f"{file}:{at}: model {model} failed in the warehouse: {message}",
                         exc.hint or "run the model's SQL in the warehouse to debug it")
    except TypeError:  # a class built otherwise (ConfigError): left as it is
        return exc


@contextlib.contextmanager
def locating(sql: str, model_sql: str) -> Iterator[None]:
    """An error the warehouse located in the model's part of statement `sql` ("LINE 28:") gets
    `model_line`: that line of the model's SQL (1-based); see `located_in_model`."""
    try:
        yield
    except DinsyncError as exc:
        line = model_line(getattr(exc, "message", str(exc)), sql, model_sql)
        if line is not None:
            exc.model_line = line  # type: ignore[attr-defined]
        elif str(getattr(exc, "sqlstate", None) or "").startswith("22") and f"(\n{model_sql}\n)" in sql:
            # SQLSTATE class 22, a data exception (division by zero, a cast of a value, an
            # overflow), in a statement reading the model: its rows raised it, not dinsync's SQL
            exc.model_rows = True  # type: ignore[attr-defined]
        raise
