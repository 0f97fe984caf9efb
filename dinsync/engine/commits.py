"""Checkpoints: what the destination answered, committed to the warehouse as the run goes.

Acknowledged keys enter the snapshot (with the hashes of what was sent), rows rejected for their
content are parked (not planned again until their values change), and every record that was not
acknowledged gets a row in the rejections table with its reason. Commits run on one thread of
their own, at least every `checkpoint_rows` acknowledged rows or `checkpoint_seconds`, so a crash
loses at most what was acknowledged since the last one (sent again by the next run).

Before each commit the run checks it still holds the sync's lock: a run whose lock was taken
over must not write from a plan table another run may have replaced.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import time
from typing import Callable

from ..destinations.base import RecordResult

# (key, field, status, reason)
RejectionRow = tuple[str | None, str | None, str, str]


class Checkpointer:
    def __init__(self, planner, state, lock, run_id: str, sync: str, *, rows: int, seconds: float,
                 progress: Callable[[str, dict], None]):
        self.planner = planner
        self.state = state
        self.lock = lock
        self.run_id = run_id
        self.sync = sync
        self.every_rows = rows
        self.every_seconds = seconds
        self.progress = progress
        self._acked: list[str] = []
        self._parked: list[str] = []
        self._rows: list[RejectionRow] = []
        self._last = time.monotonic()
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dinsync-commit")
        self._busy: asyncio.Lock | None = None
        self.committed = 0

    # --- what the pipeline reports ------------------------------------------------------
    def acknowledged(self, keys: list[str]) -> None:
        self._acked.extend(keys)

    def rejected(self, key: str | None, field: str | None, reason: str, park: bool = True) -> None:
        """A row refused for its content: recorded with its reason and parked until it changes."""
        self._rows.append((key, field, "rejected", reason))
        if park and key is not None:
            self._parked.append(key)

    def not_delivered(self, result: RecordResult) -> None:
        """`not_found` or `failed`: recorded, and sent again by the next run (nothing parked)."""
        self._rows.append((result.key, None, result.status, result.reason or result.status))

    # --- commits ------------------------------------------------------------------------
    def due(self) -> bool:
        return len(self._acked) >= self.every_rows or time.monotonic() - self._last >= self.every_seconds

    async def checkpoint(self, force: bool = False) -> None:
        if self._busy is None:
            self._busy = asyncio.Lock()
        if not force and (self._busy.locked() or not self.due()):
            return
        async with self._busy:
            acked, self._acked = self._acked, []
            parked, self._parked = self._parked, []
            rows, self._rows = self._rows, []
            self._last = time.monotonic()
            if acked or parked or rows:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(self._executor, self.commit, acked, parked, rows)

    def commit(self, acked: list[str], parked: list[str], rows: list[RejectionRow]) -> None:
        """One checkpoint (on the commit thread, or directly when no loop runs)."""
        self.lock.check()
        if acked:
            self.planner.commit_acknowledged(acked)
            self.committed += len(acked)
        if parked:
            self.planner.commit_rejected(parked)
        if rows:
            self.state.add_rejections(self.run_id, self.sync, rows)
        self.progress("checkpoint", {"acknowledged": len(acked), "committed": self.committed})

    def flush_now(self) -> None:
        """Commit what is buffered, synchronously (outside the event loop)."""
        acked, self._acked = self._acked, []
        parked, self._parked = self._parked, []
        rows, self._rows = self._rows, []
        if acked or parked or rows:
            self.commit(acked, parked, rows)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
