"""State in the warehouse: run log, rejections, locks, and versioned table layouts.

All statements are plain ANSI SQL with quoted identifiers and escaped literals, so every
warehouse adapter can run them. Nothing here ever stores a credential: callers pass texts
through a redactor before they reach these tables.
"""
from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from dataclasses import asdict

import pyarrow as pa

from ..errors import LockBusyError, RunSummary
from ..warehouses.base import Warehouse, quote_ident

LAYOUT_VERSION = 1

# version -> statements that bring the layout from version-1 to version. {s} is the quoted schema.
MIGRATIONS: dict[int, list[str]] = {
    1: [
        "CREATE TABLE IF NOT EXISTS {s}.runs (run_id VARCHAR, sync VARCHAR, started_at TIMESTAMP, "
        "finished_at TIMESTAMP, status VARCHAR, full_refresh BOOLEAN, added BIGINT, changed BIGINT, "
        "removed BIGINT, unchanged BIGINT, null_keys BIGINT, duplicate_keys BIGINT, sent BIGINT, "
        "acknowledged BIGINT, rejected BIGINT, not_found BIGINT, failed BIGINT, requests BIGINT, "
        "throttled BIGINT, seconds DOUBLE PRECISION, error VARCHAR, warnings VARCHAR, tool_version VARCHAR)",
        "CREATE TABLE IF NOT EXISTS {s}.rejections (run_id VARCHAR, sync VARCHAR, key VARCHAR, "
        "field VARCHAR, status VARCHAR, reason VARCHAR, rejected_at TIMESTAMP)",
        "CREATE TABLE IF NOT EXISTS {s}.locks (sync VARCHAR PRIMARY KEY, run_id VARCHAR, holder VARCHAR, "
        "acquired_at TIMESTAMP, expires_at TIMESTAMP)",
    ],
}

REJECTION_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("sync", pa.string()),
        ("key", pa.string()),
        ("field", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("rejected_at", pa.timestamp("us")),
    ]
)

RUN_COUNTERS = (
    "added changed removed unchanged null_keys duplicate_keys sent acknowledged rejected "
    "not_found failed requests throttled"
).split()


def literal(value: object) -> str:
    """A SQL literal for a value we produced (counts, timestamps, our own texts)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dt.datetime):
        return f"TIMESTAMP '{value.strftime('%Y-%m-%d %H:%M:%S.%f')}'"
    text = str(value).replace("\x00", "")
    return "'" + text.replace("'", "''") + "'"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _holder_is_dead(holder: str) -> bool:
    """True when the lock's holder was a process on this host that no longer exists
    (e.g. a run killed with SIGKILL): its lock need not wait for the expiry."""
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class StateStore:
    def __init__(self, warehouse: Warehouse, schema: str = "dinsync"):
        self.wh = warehouse
        self.schema = schema
        self.s = quote_ident(schema)

    # --- layout ----------------------------------------------------------------------
    def migrate(self) -> int:
        """Create or upgrade the state tables; returns the layout version now in place."""
        self.wh.execute(f"CREATE SCHEMA IF NOT EXISTS {self.s}")
        self.wh.execute(f"CREATE TABLE IF NOT EXISTS {self.s}.meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        rows = self.wh.query(f"SELECT value FROM {self.s}.meta WHERE key = 'layout_version'").to_pylist()
        current = int(rows[0]["value"]) if rows else 0
        if current > LAYOUT_VERSION:
            raise RuntimeError(
                f"the state schema {self.schema} has layout version {current}, newer than this dinsync "
                f"({LAYOUT_VERSION}); upgrade dinsync"
            )
        for version in range(current + 1, LAYOUT_VERSION + 1):
            with self.wh.transaction():
                for stmt in MIGRATIONS[version]:
                    self.wh.execute(stmt.format(s=self.s))
                self.wh.execute(f"DELETE FROM {self.s}.meta WHERE key = 'layout_version'")
                self.wh.execute(f"INSERT INTO {self.s}.meta VALUES ('layout_version', {literal(str(version))})")
        return LAYOUT_VERSION

    # --- locks -----------------------------------------------------------------------
    def acquire_lock(self, sync: str, run_id: str, ttl_seconds: float = 900) -> None:
        """Take the sync's lock, or raise LockBusyError naming its holder.

        A lock whose expiry passed (its run died without releasing it) is taken over.
        The primary key on `sync` makes the insert the arbiter between two racing runs.
        """
        now = utcnow()
        holder = f"{socket.gethostname()}:{os.getpid()}"
        expires = now + dt.timedelta(seconds=ttl_seconds)
        with self.wh.transaction():
            expired = self.wh.query(
                f"SELECT run_id FROM {self.s}.locks WHERE sync = {literal(sync)} AND expires_at < {literal(now)}"
            ).to_pylist()
            if expired:
                self.wh.execute(f"DELETE FROM {self.s}.locks WHERE sync = {literal(sync)}")
                self._abandon(expired[0]["run_id"])
            held = self.wh.query(
                f"SELECT run_id, holder, expires_at FROM {self.s}.locks WHERE sync = {literal(sync)}"
            ).to_pylist()
            if held and _holder_is_dead(held[0]["holder"]):
                self.wh.execute(f"DELETE FROM {self.s}.locks WHERE sync = {literal(sync)}")
                self._abandon(held[0]["run_id"])
                held = []
            if held:
                h = held[0]
                raise LockBusyError(
                    f"sync {sync!r} is already running (run {h['run_id']} on {h['holder']}, lock valid until "
                    f"{h['expires_at']:%Y-%m-%d %H:%M:%S} UTC)",
                    hint="wait for that run to finish; a lock left by a crashed run expires by itself",
                )
            self.wh.execute(
                f"INSERT INTO {self.s}.locks VALUES ({literal(sync)}, {literal(run_id)}, {literal(holder)}, "
                f"{literal(now)}, {literal(expires)})"
            )

    def _abandon(self, run_id: str) -> None:
        """The run that held a lock died without finishing: say so in the run log."""
        self.wh.execute(
            f"UPDATE {self.s}.runs SET status = 'abandoned', error = 'the run ended without finishing "
            f"(killed or crashed); its acknowledged rows up to the last checkpoint were kept' "
            f"WHERE run_id = {literal(run_id)} AND status = 'running'"
        )

    def refresh_lock(self, sync: str, run_id: str, ttl_seconds: float = 900) -> None:
        expires = utcnow() + dt.timedelta(seconds=ttl_seconds)
        self.wh.execute(
            f"UPDATE {self.s}.locks SET expires_at = {literal(expires)} "
            f"WHERE sync = {literal(sync)} AND run_id = {literal(run_id)}"
        )

    def release_lock(self, sync: str, run_id: str) -> None:
        self.wh.execute(
            f"DELETE FROM {self.s}.locks WHERE sync = {literal(sync)} AND run_id = {literal(run_id)}"
        )

    # --- run log ---------------------------------------------------------------------
    @staticmethod
    def new_run_id() -> str:
        return utcnow().strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]

    def start_run(self, summary: RunSummary, started_at: dt.datetime, full_refresh: bool, version: str) -> None:
        self.wh.execute(
            f"INSERT INTO {self.s}.runs (run_id, sync, started_at, status, full_refresh, tool_version) VALUES "
            f"({literal(summary.run_id)}, {literal(summary.sync)}, {literal(started_at)}, 'running', "
            f"{literal(full_refresh)}, {literal(version)})"
        )

    def finish_run(self, summary: RunSummary) -> None:
        data = asdict(summary)
        sets = [f"{c} = {literal(int(data[c]))}" for c in RUN_COUNTERS]
        sets += [
            f"finished_at = {literal(utcnow())}",
            f"status = {literal(summary.status)}",
            f"seconds = {literal(round(summary.seconds, 3))}",
            f"error = {literal(summary.error)}",
            f"warnings = {literal(' | '.join(summary.warnings) or None)}",
        ]
        self.wh.execute(
            f"UPDATE {self.s}.runs SET {', '.join(sets)} WHERE run_id = {literal(summary.run_id)}"
        )

    def last_runs(self, sync: str | None = None, limit: int = 5) -> list[dict]:
        where = f"WHERE sync = {literal(sync)}" if sync else ""
        return self.wh.query(
            f"SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY sync ORDER BY started_at DESC) AS _n "
            f"FROM {self.s}.runs {where}) AS r WHERE _n <= {int(limit)} ORDER BY sync, started_at DESC"
        ).drop_columns(["_n"]).to_pylist()

    # --- rejections ------------------------------------------------------------------
    def add_rejections(self, run_id: str, sync: str, rows: list[tuple[str | None, str | None, str, str]]) -> None:
        """rows: (key, field, status, reason)."""
        if not rows:
            return
        now = utcnow()
        keys, fields, statuses, reasons = zip(*rows)
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
            schema=REJECTION_SCHEMA,
        )
        self.wh.write_arrow(self.schema, "rejections", table, mode="append")

    def rejections(self, run_id: str, limit: int = 1000) -> list[dict]:
        return self.wh.query(
            f"SELECT key, field, status, reason FROM {self.s}.rejections WHERE run_id = {literal(run_id)} "
            f"ORDER BY key LIMIT {int(limit)}"
        ).to_pylist()
