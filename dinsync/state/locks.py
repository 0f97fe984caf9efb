"""The per-sync lock: a row in `<state schema>.locks`, and who decides between two runs.

The arbiter is a capability of the warehouse (`Capabilities.lock_arbiter`):
- `primary_key`: the insert of the lock row is the arbiter; the enforced PRIMARY KEY on `sync`
  fails the second of two racing inserts (DuckDB, PostgreSQL).
- `table_lock`: `LOCK TABLE locks` inside the transaction serialises acquirers; the check and
  the insert then happen alone (Redshift, which does not enforce keys).
- `insert_verify`: no constraint and no lock needed (Snowflake, BigQuery, Databricks): Lamport's
  bakery over rows. A contender inserts its row flagged `choosing`, takes a ticket one above
  the highest it sees, clears the flag, waits until no other contender is choosing, and wins if
  its (ticket, run_id) is the smallest; a loser deletes its row.

Before arbitration, rows whose expiry passed or whose holder process died on this host, in this PID namespace (gone,
zombie, or its PID reused: see process.py) are removed and their runs marked abandoned; so are the
rows of runs of this process that ended without being able to delete them (`_ENDED_HERE`).
"""
from __future__ import annotations

import datetime as dt
import time
import weakref
from dataclasses import dataclass
from typing import Callable

from ..errors import LockBusyError
from ..warehouses.errors import WarehouseConflict, WarehouseConstraintViolation, WarehouseLockTimeout
from .process import holder_id, holder_in_another_namespace, holder_is_dead


# Runs of this process that ended without deleting their lock row (the warehouse could not be
# reached at that moment). The row names a live holder, this very process: without this, the next
# run of the sync in this process (`dinsync serve`, once the warehouse is back) was refused as
# "already running" until the lock's expiry (15 minutes).
_ENDED_HERE: set[str] = set()


# How often a run refreshes its lock (EngineOptions.heartbeat_seconds' default; engine.lock.LockKeeper
# refreshes every min(that, ttl / 3)).
HEARTBEAT_SECONDS = 60.0
SILENT_HEARTBEATS = 3


def silent_seconds(ttl: float) -> float:
    """How long a holder whose process cannot be looked up has not refreshed its lock (three
    heartbeats) before it is taken for dead: never longer than the expiry."""
    return min(SILENT_HEARTBEATS * HEARTBEAT_SECONDS, ttl)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


@dataclass
class LockRow:
    run_id: str
    holder: str
    expires_at: dt.datetime | None
    ticket: int | None = None
    choosing: bool | None = None


class SyncLock:
    """Acquire, refresh and release the lock of one sync. `store` supplies the SQL plumbing
    (`wh`, `t(name)` for a quoted state table, `abandon(run_id)`)."""

    choosing_wait_seconds = 5.0  # insert_verify: longest wait for another contender's ticket

    def __init__(self, store, arbiter: str, is_dead: Callable[[str], bool] = holder_is_dead):
        # weakly: the store holds its lock; a cycle kept both (a state connection's session, its
        # warehouse) after each run until a full collection
        self.store = weakref.proxy(store)
        self.wh = store.wh
        self.arbiter = arbiter
        self.is_dead = is_dead
        self.table = store.t("locks")

    # --- reading -----------------------------------------------------------------------
    def rows(self, sync: str) -> list[LockRow]:
        data = self.wh.rows(
            f"SELECT run_id, holder, expires_at, ticket, choosing FROM {self.table} WHERE sync = :sync",
            {"sync": sync},
        )
        return [LockRow(**r) for r in data]

    def clear_stale(self, sync: str, now: dt.datetime, ttl: float | None = None) -> None:
        """Remove the sync's lock rows that expired or whose holder died; their runs are abandoned.
        With `ttl` (a run's, about to take the lock), a holder on this host in another PID namespace
        (whose PIDs cannot be looked up from here) is dead once it has not refreshed the lock for
        three heartbeats (`silent_seconds`): a container restarted in its pod (same host name, new
        namespace) waited the whole expiry (15 minutes) after its predecessor was killed, and
        Kubernetes' restart back-off gave up meanwhile. (Its last refresh: `expires_at - ttl`,
        taking the holder's ttl for ours.)"""
        for row in self.rows(sync):
            expired = row.expires_at is not None and row.expires_at < now
            ended_here = row.run_id in _ENDED_HERE and row.holder == holder_id()
            silent = (ttl is not None and row.expires_at is not None and holder_in_another_namespace(row.holder)
                      and row.expires_at <= now + dt.timedelta(seconds=ttl - silent_seconds(ttl)))
            if expired or ended_here or silent or self.is_dead(row.holder):
                self.wh.execute(f"DELETE FROM {self.table} WHERE sync = :sync AND run_id = :run",
                                {"sync": sync, "run": row.run_id})
                self.store.abandon(row.run_id)
                _ENDED_HERE.discard(row.run_id)

    def _busy(self, sync: str, row: LockRow | None) -> LockBusyError:
        if row is None:
            return LockBusyError(f"sync {sync!r} is already running (another run took its lock just now)",
                                 hint="wait for that run to finish; a lock left by a crashed run expires by itself")
        until = f"{row.expires_at:%Y-%m-%d %H:%M:%S} UTC" if row.expires_at else "its expiry"
        return LockBusyError(
            f"sync {sync!r} is already running (run {row.run_id} on {row.holder}, lock valid until {until})",
            hint="wait for that run to finish; a lock left by a crashed run expires by itself",
        )

    def _insert(self, sync: str, run_id: str, now: dt.datetime, ttl: float, choosing: bool | None) -> None:
        self.wh.execute(
            f"INSERT INTO {self.table} (sync, run_id, holder, acquired_at, expires_at, ticket, choosing) "
            f"VALUES (:sync, :run, :holder, :now, :expires, NULL, :choosing)",
            {"sync": sync, "run": run_id, "holder": holder_id(), "now": now,
             "expires": now + dt.timedelta(seconds=ttl), "choosing": choosing},
        )

    # --- acquire -----------------------------------------------------------------------
    def acquire(self, sync: str, run_id: str, ttl: float) -> None:
        getattr(self, "_acquire_" + self.arbiter)(sync, run_id, ttl)

    def _acquire_primary_key(self, sync: str, run_id: str, ttl: float) -> None:
        now = utcnow()
        try:
            with self.wh.transaction():
                self.clear_stale(sync, now, ttl)
                held = self.rows(sync)
                if held:
                    raise self._busy(sync, held[0])
                self._insert(sync, run_id, now, ttl, None)
        except WarehouseLockTimeout:  # another transaction holds the table: no run of this sync
            raise
        except (WarehouseConstraintViolation, WarehouseConflict):
            held = self.rows(sync)  # a racing run inserted first: the key decided
            raise self._busy(sync, held[0] if held else None) from None

    def _acquire_table_lock(self, sync: str, run_id: str, ttl: float) -> None:
        now = utcnow()
        try:
            with self.wh.transaction():
                self.wh.execute(f"LOCK TABLE {self.table}")
                self.clear_stale(sync, now, ttl)
                held = self.rows(sync)
                if held:
                    raise self._busy(sync, held[0])
                self._insert(sync, run_id, now, ttl, None)
        except WarehouseLockTimeout:
            raise
        except WarehouseConflict:  # serializable isolation (Redshift): the other transaction won
            held = self.rows(sync)
            raise self._busy(sync, held[0] if held else None) from None

    def _acquire_insert_verify(self, sync: str, run_id: str, ttl: float) -> None:
        now = utcnow()
        self.clear_stale(sync, now, ttl)
        try:
            # (in the try: an insert whose answer was lost may have been applied, its row is deleted)
            self._insert(sync, run_id, now, ttl, True)
            highest = self.wh.scalar(f"SELECT MAX(ticket) FROM {self.table} WHERE sync = :sync", {"sync": sync})
            ticket = int(highest or 0) + 1
            self.wh.execute(f"UPDATE {self.table} SET ticket = :ticket, choosing = FALSE "
                            f"WHERE sync = :sync AND run_id = :run", {"ticket": ticket, "sync": sync, "run": run_id})
            deadline = time.monotonic() + self.choosing_wait_seconds
            while True:
                others = [r for r in self.rows(sync) if r.run_id != run_id]
                if any(r.choosing for r in others) and time.monotonic() < deadline:
                    time.sleep(0.02)
                    continue
                ahead = [r for r in others if r.choosing or (r.ticket or 0, r.run_id) < (ticket, run_id)]
                if ahead:
                    raise self._busy(sync, min(ahead, key=lambda r: (r.ticket or 0, r.run_id)))
                return
        except BaseException:
            try:
                self.release(sync, run_id)
            except Exception:  # (the warehouse gone: the take's own error says so, not the release's)
                pass
            raise

    # --- refresh / release -------------------------------------------------------------
    def refresh(self, sync: str, run_id: str, ttl: float) -> bool:
        """Push the expiry `ttl` seconds ahead; False when the lock is no longer this run's
        (it expired and another run took it over)."""
        expires = utcnow() + dt.timedelta(seconds=ttl)
        self.wh.execute(f"UPDATE {self.table} SET expires_at = :expires WHERE sync = :sync AND run_id = :run",
                        {"expires": expires, "sync": sync, "run": run_id})
        ours = self.wh.scalar(f"SELECT COUNT(*) FROM {self.table} WHERE sync = :sync AND run_id = :run",
                              {"sync": sync, "run": run_id})
        return bool(ours)

    def release(self, sync: str, run_id: str) -> None:
        try:
            self.wh.execute(f"DELETE FROM {self.table} WHERE sync = :sync AND run_id = :run",
                            {"sync": sync, "run": run_id})
        except BaseException:  # the run is over all the same: its row is stale for this process
            _ENDED_HERE.add(run_id)
            raise
        _ENDED_HERE.discard(run_id)
