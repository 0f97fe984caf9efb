"""State in the warehouse: run log, rejections, locks, and versioned table layouts.

Warehouse-neutral: values only ever travel as bind parameters (`:name`, translated by each
adapter), identifiers are quoted by the adapter, DDL is rendered per dialect (layout.py), and
the lock's arbiter is a capability of the warehouse (locks.py). Nothing here stores a
credential: callers pass texts through a redactor before they reach these tables.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import random
import time
import uuid
from dataclasses import asdict
from typing import Callable

from ..errors import ConfigError, ConfigIssue, RunSummary
from ..redaction import redact
from ..report import SHOWN_KEY_MAX, shown_key
from ..warehouses.base import Warehouse
from ..warehouses.errors import WarehouseError, WarehouseLockTimeout, WarehouseObjectMissing
from . import layout
from .layout import LAYOUT_VERSION, MIGRATIONS
from .locks import SyncLock, utcnow
from .refusals import Refusals

RUN_COUNTERS = (
    "added changed removed unchanged null_keys duplicate_keys sent acknowledged rejected "
    "not_found failed pending parked requests throttled segment_rows"
).split()

ABANDONED = ("the run ended without finishing (killed or crashed); its acknowledged rows up to the last "
             "checkpoint were kept, and its counts are those recorded by its last checkpoint (none: NULL)")


# Rejections written with one INSERT of parameters, not through Arrow: a run with nothing to send
# but rows without a key (their note in the rejections table) does not import pyarrow (~80 ms).
FEW_REJECTIONS = 10


def _text(value: str | None) -> str | None:
    """Texts as every warehouse can hold them: PostgreSQL text cannot hold NUL, written as the four
    characters `\\x00`, as dinsync shows other control characters (dropped, the key
    'nul\\x00@example.com' was listed as 'nul@example.com', another address)."""
    return value.replace("\x00", "\\x00") if isinstance(value, str) else value


def _naive_utc(value):
    """A time read from the state as naive UTC, as the state works in: a table an earlier dinsync
    created with a zoned type (Snowflake's TIMESTAMP_LTZ, where the account maps TIMESTAMP to it)
    gives its times with a zone, and a lock's expiry so read, compared with the naive clock, failed
    the next run instead of being taken over."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value


def _naive_utc_table(data):
    """An Arrow result's zoned timestamp columns as naive UTC (see _naive_utc)."""
    import pyarrow as pa

    zoned = [i for i, f in enumerate(data.schema) if pa.types.is_timestamp(f.type) and f.type.tz]
    for i in zoned:
        column = data.column(i)
        data = data.set_column(i, data.schema.field(i).with_type(pa.timestamp(column.type.unit)),
                               column.cast(pa.timestamp(column.type.unit, "UTC")).cast(pa.timestamp(column.type.unit)))
    return data


class _Tried(Exception):
    """Rolls back StateStore.try_writes's transaction."""


class StateSession:
    """The warehouse as the state's statements use it: each statement and transaction within
    `Warehouse.state_waits` (a bounded wait for another transaction's lock, on PostgreSQL). A
    `LOCK TABLE` or an ALTER left open on a state table stalled `dinsync status`, and `serve`'s
    reads of its syncs' states, for ever. Times are read as naive UTC, whatever the column's type
    (see _naive_utc). A permission refused is a configuration error naming the state schema and
    what to grant (dinsync.state.refusals)."""

    def __init__(self, warehouse: Warehouse, schema: str):
        self.warehouse = warehouse
        self.refusals = Refusals(warehouse, schema)

    def __getattr__(self, name: str):
        return getattr(self.warehouse, name)

    def execute(self, sql: str, params=None):
        with self.refusals.around(), self.warehouse.state_waits():
            return self.warehouse.execute(sql, params)

    def query(self, sql: str, params=None):
        with self.refusals.around(), self.warehouse.state_waits():
            return _naive_utc_table(self.warehouse.query(sql, params))

    def rows(self, sql: str, params=None):
        with self.refusals.around(), self.warehouse.state_waits():
            rows = self.warehouse.rows(sql, params)
        return [{k: _naive_utc(v) for k, v in row.items()} for row in rows]

    def scalar(self, sql: str, params=None):
        with self.refusals.around(), self.warehouse.state_waits():
            return _naive_utc(self.warehouse.scalar(sql, params))

    def write_arrow(self, schema: str, table: str, data, mode: str = "append") -> None:
        with self.refusals.around(), self.warehouse.state_waits():
            self.warehouse.write_arrow(schema, table, data, mode)

    def table_columns(self, schema: str, table: str):
        with self.refusals.around(), self.warehouse.state_waits():
            return self.warehouse.table_columns(schema, table)

    @contextlib.contextmanager
    def transaction(self):
        with self.refusals.around(), self.warehouse.state_waits(), self.warehouse.transaction(), \
                self.refusals.transaction():
            yield


class StateStore:
    """`arbiter` overrides the warehouse's lock arbiter (tests); it decides the locks table's
    PRIMARY KEY when the layout is first created."""

    def __init__(self, warehouse: Warehouse, schema: str = "dinsync", arbiter: str | None = None):
        self.schema = warehouse.check_identifier(schema, "state schema")
        self.wh = StateSession(warehouse, self.schema)
        self.caps = warehouse.capabilities
        self.arbiter = arbiter or self.caps.lock_arbiter
        self.s = warehouse.quote(schema)
        self.lock = SyncLock(self, self.arbiter)

    def t(self, table: str) -> str:
        """A state table's quoted name."""
        return f"{self.s}.{self.wh.quote(table)}"

    # --- layout ----------------------------------------------------------------------
    def _ddl(self, statement: str) -> str:
        return layout.render(statement, self.schema, self.caps.dialect, self.caps.text_type,
                             self.arbiter == "primary_key", self.caps.timestamp_type)

    def layout_version(self) -> int:
        """The layout version in place (0: no state yet)."""
        try:
            value = self.wh.scalar(f"SELECT value FROM {self.t('meta')} WHERE key = :key", {"key": "layout_version"})
        except WarehouseObjectMissing:
            return 0
        return int(value) if value is not None else 0

    def migrate(self, attempts: int = 6, stopped: Callable[[], bool] | None = None) -> int:
        """Create or upgrade the state tables; returns the layout version now in place. Processes
        migrating at once: a step that collides with another's fails (or finds the work done)
        and is tried again after a short pause; each failure means another process progressed. A
        lock held on a state table (a lock timeout) is no such race: it fails at once, and so does
        a step failing once `stopped()` (a run's stop, which cancels the statement)."""
        for attempt in range(attempts):
            try:
                return self._migrate()
            except WarehouseError as exc:
                if attempt == attempts - 1 or isinstance(exc, WarehouseLockTimeout) or (stopped and stopped()):
                    raise
                time.sleep(0.05 * (2 ** attempt) * (1 + random.random()))
        raise AssertionError("unreachable")

    def check_tables(self) -> int:
        """The layout version in place, after refusing (ConfigError) tables of the layout's names
        that dinsync did not create (see _refuse_foreign_tables) and a layout a newer dinsync wrote
        (its tables may mean what this version cannot read, and its writes would undo what the
        newer one relies on). Changes nothing."""
        try:
            current = self.layout_version()
        except WarehouseError:  # e.g. a `meta` table without dinsync's columns
            self._refuse_foreign_tables([layout.META])
            raise
        if current > LAYOUT_VERSION:
            raise ConfigError([ConfigIssue(
                f"the state schema {self.schema} has layout version {current}, newer than this dinsync "
                f"({LAYOUT_VERSION}): a newer dinsync migrated it, and this one neither reads nor writes it",
                "dinsync.yml", hint="upgrade dinsync to the version that migrated it")])
        if current < LAYOUT_VERSION:  # the tables about to be created or altered (none once in place)
            self._refuse_foreign_tables([layout.META] * (current == 0) + [
                statement for version in range(current + 1, LAYOUT_VERSION + 1) for statement in MIGRATIONS[version]])
        return current

    def try_writes(self) -> None:
        """`dinsync validate`: what a run's first statements on the state need of dinsync's role,
        tried in a transaction that is rolled back (nothing is left, nothing is seen by others): create
        the state schema where it does not exist, and a table in it (a first run creates the state
        tables there, every run its scratch tables). A refusal raises WarehouseStateRefused, as the
        run would. Where DDL is not transactional (Snowflake, BigQuery, Databricks) it could not be
        rolled back: only what `check_tables` reads is checked there."""
        if not self.caps.transactional_ddl:
            return
        exists = self.wh.schema_exists(self.schema)  # (before: a failed statement aborts the transaction)
        try:
            with self.wh.transaction():
                if not exists:
                    self.wh.execute(self._ddl("CREATE SCHEMA IF NOT EXISTS {s}"))
                self.wh.execute(f"CREATE TABLE {self.t('tried_' + uuid.uuid4().hex[:12])} (k {self.caps.text_type})")
                raise _Tried()
        except _Tried:
            pass

    def _migrate(self) -> int:
        current = self.check_tables()  # (a newer layout is refused there)
        if current == LAYOUT_VERSION:
            return current
        if current == 0:
            self.wh.create_schema(lambda: self.wh.execute(self._ddl("CREATE SCHEMA IF NOT EXISTS {s}")), self.schema)
            self.wh.execute(self._ddl(layout.META))
        for version in range(current + 1, LAYOUT_VERSION + 1):
            with self.wh.transaction():
                for statement in MIGRATIONS[version]:
                    added = layout.added_column(statement)
                    if added and added[1] in (self.wh.table_columns(self.schema, added[0]) or []):
                        continue
                    self.wh.execute(self._ddl(statement))
                self._write_meta("layout_version", str(version))
        return LAYOUT_VERSION

    def meta_values(self, *keys: str) -> dict[str, str]:
        """Values kept in the `meta` table under `keys` (those set), in one query."""
        marks = ", ".join(f":k{i}" for i in range(len(keys)))
        rows = self.wh.rows(f"SELECT key, value FROM {self.t('meta')} WHERE key IN ({marks})",
                            {f"k{i}": key for i, key in enumerate(keys)})
        return {str(r["key"]): str(r["value"]) for r in rows if r["value"] is not None}

    def meta_keys_in_other_case(self, key: str) -> list[str]:
        """The `meta` keys equal to `key` but for the case of their letters (sorted)."""
        rows = self.wh.rows(f"SELECT key FROM {self.t('meta')} WHERE LOWER(key) = LOWER(:key) AND key <> :key",
                            {"key": key})
        return sorted(str(r["key"]) for r in rows)

    def set_meta_value(self, key: str, value: str) -> None:
        self.set_meta_values({key: value})

    def set_meta_values(self, values: dict[str, str]) -> None:
        """Replace several `meta` rows in one transaction."""
        with self.wh.transaction():
            for key, value in values.items():
                self._write_meta(key, value)

    def _write_meta(self, key: str, value: str) -> None:
        """Replace a `meta` row (inside the caller's transaction): UPDATE, then INSERT where no row
        holds the key. Where the two commit on their own (Snowflake), a run killed between them
        leaves the old value or the new one; DELETE then INSERT left none (a layout version, a
        sync's destination or mapping forgotten)."""
        meta, text = self.t("meta"), self.caps.text_type
        self.wh.execute(f"UPDATE {meta} SET value = :value WHERE key = :key", {"key": key, "value": value})
        self.wh.execute(f"INSERT INTO {meta} (key, value) SELECT n.k, n.v FROM (SELECT CAST(:key AS {text}) AS k, "
                        f"CAST(:value AS {text}) AS v) AS n WHERE NOT EXISTS (SELECT 1 FROM {meta} AS m "
                        f"WHERE m.key = n.k)", {"key": key, "value": value})

    def _refuse_foreign_tables(self, statements: list[str]) -> None:
        """A table the layout would create that already exists without the layout's columns is
        someone else's (a state_schema shared with other tables: their own `runs` or `events`):
        dinsync never alters it nor writes to it. A table an interrupted (or concurrent) migration
        created has the columns, and is taken as it is."""
        foreign = []
        for statement in statements:
            created = layout.created_table(statement)
            if created is None:
                continue
            table, columns = created
            existing = self.wh.table_columns(self.schema, table)
            if existing is None:
                continue
            have = {column.lower() for column in existing}
            missing = [column for column in columns if column.lower() not in have]
            if missing:
                foreign.append(f"{table} (without {', '.join(missing[:3])}{', …' if len(missing) > 3 else ''})")
        if foreign:
            raise ConfigError([ConfigIssue(
                f"the state schema {self.schema} holds tables dinsync did not create: {'; '.join(foreign)}; "
                "dinsync never alters or writes them", "dinsync.yml",
                hint="set state_schema to a schema of dinsync's own (default: dinsync), or rename those tables")])

    # --- locks -----------------------------------------------------------------------
    def acquire_lock(self, sync: str, run_id: str, ttl_seconds: float = 900) -> None:
        """Take the sync's lock, or raise LockBusyError naming its holder. A lock whose run died
        (expired, or its process on this host is gone, a zombie or a reused PID) is taken over."""
        self.lock.acquire(sync, run_id, ttl_seconds)
        try:
            self.abandon_unlocked(sync, run_id)
        except WarehouseError:  # housekeeping: the run goes on, the next one tries again
            pass

    def abandon_unlocked(self, sync: str, run_id: str) -> None:
        """With the sync's lock held (by `run_id`): its other runs still `running` hold no lock, so
        none is running. A run whose end could not be recorded (the warehouse closed its session)
        while its lock was released on a new one stayed `running` in the run log for good."""
        self.wh.execute(
            f"UPDATE {self.t('runs')} SET status = :status, error = :error WHERE sync = :sync AND status = :running "
            f"AND run_id <> :run",
            {"status": "abandoned", "error": ABANDONED, "sync": sync, "running": "running", "run": run_id},
        )

    def clear_stale_lock(self, sync: str) -> None:
        """Release the lock of a run that died (see acquire_lock), marking that run abandoned."""
        self.lock.clear_stale(sync, utcnow())

    def refresh_lock(self, sync: str, run_id: str, ttl_seconds: float = 900) -> bool:
        """Extend this run's lock; False when it is no longer ours (the run must stop)."""
        return self.lock.refresh(sync, run_id, ttl_seconds)

    def release_lock(self, sync: str, run_id: str) -> None:
        self.lock.release(sync, run_id)

    def lock_holders(self, sync: str) -> list[dict]:
        """The lock rows of a sync (normally none or one)."""
        return [asdict(r) for r in self.lock.rows(sync)]

    def abandon(self, run_id: str) -> None:
        """The run that held a lock died without finishing: say so in the run log."""
        self.wh.execute(
            f"UPDATE {self.t('runs')} SET status = :status, error = :error WHERE run_id = :run AND status = :running",
            {"status": "abandoned", "error": ABANDONED, "run": run_id, "running": "running"},
        )

    # --- run log ---------------------------------------------------------------------
    @staticmethod
    def new_run_id() -> str:
        return utcnow().strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]

    def start_run(self, summary: RunSummary, started_at: dt.datetime, full_refresh: bool, version: str) -> None:
        self.wh.execute(
            f"INSERT INTO {self.t('runs')} (run_id, sync, started_at, status, full_refresh, tool_version) "
            f"VALUES (:run, :sync, :started, :status, :full, :version)",
            {"run": summary.run_id, "sync": summary.sync, "started": started_at, "status": "running",
             "full": bool(full_refresh), "version": version},
        )

    def finish_run(self, summary: RunSummary) -> None:
        data = asdict(summary)
        columns: dict = {c: int(data[c]) for c in RUN_COUNTERS}
        columns.update(finished_at=utcnow(), status=summary.status, seconds=round(float(summary.seconds), 3),
                       error=summary.error, warnings=" | ".join(summary.warnings) or None)
        self._update_run(summary.run_id, columns)

    def record_progress(self, run_id: str, counts: dict[str, int]) -> None:
        """A running run's counts so far (RUN_COUNTERS), written at its checkpoints: a run killed
        (`kill -9`, OOM) is `abandoned` with what it had done, not with zeros. Never touches a run
        that is no longer `running`. Counters not in `counts` are left as they are."""
        columns = {c: int(counts[c]) for c in RUN_COUNTERS if c in counts}
        if columns:
            self._update_run(run_id, columns, only_running=True)

    def _update_run(self, run_id: str, columns: dict, only_running: bool = False) -> None:
        """Set `columns` (column -> value) of run `run_id`'s row (`only_running`: while it is running)."""
        sets = ", ".join(f"{c} = :{c}" for c in columns)
        values = {**columns, "run": run_id}
        where = "run_id = :run"
        if only_running:
            where += " AND status = :running"
            values["running"] = "running"
        self.wh.execute(f"UPDATE {self.t('runs')} SET {sets} WHERE {where}", values)

    def last_runs(self, sync: str | None = None, limit: int = 5) -> list[dict]:
        where = "WHERE sync = :sync" if sync else ""
        rows = self.wh.rows(
            f"SELECT * FROM (SELECT r.*, ROW_NUMBER() OVER (PARTITION BY sync ORDER BY started_at DESC) AS _n "
            f"FROM {self.t('runs')} AS r {where}) AS q WHERE _n <= :limit ORDER BY sync, started_at DESC",
            {"sync": sync, "limit": int(limit)} if sync else {"limit": int(limit)},
        )
        for row in rows:
            row.pop("_n", None)
        return rows

    def parked_in_snapshot(self, sync: str) -> int:
        """Keys the sync's snapshot holds parked as rejected (0 when it has no snapshot yet)."""
        table = f"snap_{sync}"
        if "_pfp" not in (self.wh.table_columns(self.schema, table) or []):
            return 0
        return int(self.wh.scalar(f"SELECT COUNT(*) FROM {self.t(table)} WHERE _pfp IS NOT NULL") or 0)

    def has_run(self, sync: str, run_id: str) -> bool:
        """Whether the runs table holds run `run_id` of `sync`."""
        return self.wh.scalar(f"SELECT COUNT(*) FROM {self.t('runs')} WHERE sync = :sync AND run_id = :run",
                              {"sync": sync, "run": run_id}) not in (None, 0)

    def last_good_segment_rows(self, sync: str) -> int | None:
        """The segment size of the sync's last successful (or warning) run, if it was recorded: its
        rows with a key (sync_warnings compares those)."""
        value = self.wh.scalar(
            f"SELECT segment_rows - COALESCE(null_keys, 0) FROM {self.t('runs')} "
            f"WHERE sync = :sync AND status IN ('success', 'warning') "
            f"AND segment_rows IS NOT NULL ORDER BY started_at DESC LIMIT 1", {"sync": sync})
        return None if value is None else int(value)

    # --- rejections ------------------------------------------------------------------
    def add_rejections(self, run_id: str, sync: str, rows: list[tuple[str | None, str | None, str, str]]) -> None:
        """rows: (key, field, status, reason). The field and the reason are redacted here, where
        every path to the table meets: both may quote a platform's answer (a field named by an
        error body that echoed the request's credentials, say). A key over SHORTENED_KEY_MAX
        characters is kept as its start and its length (`shown_key`): the table is only read to be
        shown (parking lives in the snapshot), and a run's 166 keys of 1 MB were 166 MB written here."""
        if not rows:
            return
        now = utcnow()
        rows = [(_text(shown_key(key)), _text(redact(field)), _text(status), _text(redact(reason)))
                for key, field, status, reason in rows]
        if len(rows) <= FEW_REJECTIONS:  # (a run's note of skipped rows, a few rejections): no Arrow
            marks, values = [], {"run": run_id, "sync": sync, "at": now}
            for i, (key, field, status, reason) in enumerate(rows):
                marks.append(f"(:run, :sync, :k{i}, :f{i}, :s{i}, :r{i}, :at)")
                values.update({f"k{i}": key, f"f{i}": field, f"s{i}": status, f"r{i}": reason})
            self.wh.execute(f"INSERT INTO {self.t('rejections')} (run_id, sync, key, field, status, reason, "
                            f"rejected_at) VALUES {', '.join(marks)}", values)
            return
        keys, fields, statuses, reasons = zip(*rows)
        import pyarrow as pa  # only when there is something to write: a no-op run never imports it

        schema = pa.schema([("run_id", pa.string()), ("sync", pa.string()), ("key", pa.string()),
                            ("field", pa.string()), ("status", pa.string()), ("reason", pa.string()),
                            ("rejected_at", pa.timestamp("us"))])
        table = pa.table(
            {
                "run_id": [run_id] * len(rows),
                "sync": [sync] * len(rows),
                "key": list(keys),
                "field": list(fields),
                "status": list(statuses),
                "reason": list(reasons),
                "rejected_at": [now] * len(rows),
            },
            schema=schema,
        )
        self.wh.write_arrow(self.schema, "rejections", table, mode="append")

    def prune_rejections(self, sync: str, older_than: dt.timedelta) -> None:
        """Forget the sync's rejection rows older than `older_than`, but for each key's newest row
        when it is `rejected`: the reason a row is parked for, however old, until the key has a
        newer row, but for a `duplicate` one. Rows of the other statuses are written again by every
        run while their cause lasts (a key not found in update mode, a duplicated key, the rows
        without a key), so a sync run every 15 minutes that kept them all grew the table by its
        count of such rows each run. A key withheld as duplicated was not sent, so it is still
        parked for its reason (until 2026-12-07 a `duplicate` row superseded it too: a parked key
        duplicated in the model for a day lost its reason, then those rows were pruned in turn,
        and on one row again the key stayed parked with no reason left). Nor is a reason kept once
        its key is no longer parked in the sync's snapshot."""
        rej = self.t("rejections")
        params = {"sync": sync, "cutoff": utcnow() - older_than, "parked": "rejected"}
        old = f"DELETE FROM {rej} AS r WHERE r.sync = :sync AND r.rejected_at < :cutoff AND "
        # Two statements: PostgreSQL makes a join of an EXISTS only outside an OR; inside one it ran
        # the subquery (a scan of the table) once per old row: 400 s for 1M rows. The superseded rows
        # go first, while the newer rows that supersede them are still there.
        self.wh.execute(old + f"EXISTS (SELECT 1 FROM {rej} AS n WHERE n.sync = r.sync AND n.key = r.key "
                        f"AND n.status <> :withheld AND n.rejected_at > r.rejected_at)",
                        {**params, "withheld": "duplicate"})
        self.wh.execute(old + "(r.status <> :parked OR r.key IS NULL)", params)
        # A reason outlives the retention only while its key is parked: a refused key that left the
        # model (an address replaced by a good one) is forgotten by the snapshot, and its newest
        # row, kept until 2026-12-07, stayed forever (every address ever refused).
        # (A key over SHOWN_KEY_MAX characters may be kept shortened here, and is then no snapshot
        # key: it is kept.)
        snap = f"snap_{sync}"
        if "_pfp" in (self.wh.table_columns(self.schema, snap) or []):
            self.wh.execute(old + f"LENGTH(r.key) <= {SHOWN_KEY_MAX} AND NOT EXISTS (SELECT 1 FROM "
                            f"{self.t(snap)} AS s WHERE s._key = r.key AND s._pfp IS NOT NULL)", params)

    def rejections(self, run_id: str, limit: int = 1000) -> list[dict]:
        return self.wh.rows(
            f"SELECT key, field, status, reason FROM {self.t('rejections')} WHERE run_id = :run "
            f"ORDER BY key LIMIT :limit",
            {"run": run_id, "limit": int(limit)},
        )
