"""Checkpoints: what the destination answered, committed to the warehouse as the run goes.

Acknowledged keys enter the snapshot (with the hashes of what was sent), rows rejected for their
content are parked (not planned again until their values change), and every record that was not
acknowledged gets a row in the rejections table with its reason. Records whose outcome arrives
later are stashed under their token (see dinsync.diff.pending), and their outcomes, when they come,
are applied from that copy: a crash or the end of the run loses nothing, the next run reads them. Commits run on one thread of
their own, at least every `checkpoint_rows` acknowledged rows or `checkpoint_seconds`, so a crash
loses at most what was acknowledged since the last one (sent again by the next run).

A first sync's commits only insert into the snapshot; where the warehouse stores tables in blocks
(`Capabilities.insert_block_rows`, DuckDB's row groups) they carry whole blocks: a checkpoint due by
its row count commits the acknowledged rows up to the next block boundary (or several) and keeps
the rest for the next one. DuckDB writes such an insert to the database file once; smaller ones go
through its write-ahead log and are written again when it checkpoints: at the end of a 1M-row first
sync that took ~0.2 s and left a 275 MB file, where whole row groups leave 162 MB (measured; the
price is more acknowledged rows waiting, ~35 MB more peak RSS). A checkpoint due by time, and the
last one, commit everything.

Before each commit the run checks it still holds the sync's lock: a run whose lock was taken
over must not write from a plan table another run may have replaced.

A checkpoint also records the run's counts so far in the run log (`counts`), inside its first
transaction where it has one, at most every `Capabilities.progress_seconds`: a run killed
(`kill -9`, OOM) is `abandoned` there with what it had sent and had acknowledged, not with zeros.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from ..destinations.base import RecordResult
from ..warehouses.base import doing

# (key, field, status, reason)
RejectionRow = tuple[str | None, str | None, str, str]


def whole_blocks(n: int, inserted: int, block: int) -> int:
    """How many of `n` rows to insert after `inserted` rows so that the insert ends on a boundary of
    `block`-row blocks (the next one or a later one); 0: the rows do not reach the next boundary."""
    need = block - inserted % block
    return 0 if n < need else need + (n - need) // block * block


def _slices_of_stashes(stashes: list[tuple[str, list[str]]], most: int) -> list[list[tuple[str, list[str]]]]:
    """`stashes` ((token, keys), in order) cut into groups of at most `most` keys, in order (a key
    in several takes the last one's token, as stashing them in one group did)."""
    groups: list[list[tuple[str, list[str]]]] = [[]]
    room = most
    for token, keys in stashes:
        while keys:
            if room == 0:
                groups.append([])
                room = most
            part, keys = keys[:room], keys[room:]
            groups[-1].append((token, part))
            room -= len(part)
    return [g for g in groups if g]


@dataclass
class Batch:
    """What one checkpoint commits, applied in this order."""

    acked: list[str] = field(default_factory=list)  # plan rows acknowledged
    parked: list[str] = field(default_factory=list)  # plan rows rejected for their content
    stash: list[tuple[str, list[str]]] = field(default_factory=list)  # (token, keys) now pending
    pending_ok: list[str] = field(default_factory=list)  # pending rows acknowledged
    pending_parked: list[str] = field(default_factory=list)  # pending rows rejected for their content
    pending_forget: list[str] = field(default_factory=list)  # pending rows failed / not found
    rows: list[RejectionRow] = field(default_factory=list)  # rejections table
    stashed: int = 0  # keys in `stash`

    def awaiting(self) -> int:
        """Keys of records awaiting their outcome, or whose outcome came, that this batch holds."""
        return self.stashed + len(self.pending_ok) + len(self.pending_parked) + len(self.pending_forget)

    def __bool__(self) -> bool:
        return any((self.acked, self.parked, self.stash, self.pending_ok, self.pending_parked,
                    self.pending_forget, self.rows))


class Checkpointer:
    def __init__(self, planner, state, lock, run_id: str, sync: str, *, rows: int, seconds: float,
                 progress: Callable[[str, dict], None], block_rows: int | None = None,
                 counts: Callable[[], dict[str, int]] | None = None, counts_seconds: float = 0.0):
        self.planner = planner
        self.state = state
        self.lock = lock
        self.run_id = run_id
        self.sync = sync
        self.every_rows = rows
        self.every_seconds = seconds
        self.progress = progress
        self._batch = Batch()
        self._last = time.monotonic()
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dinsync-commit")
        self._busy: asyncio.Lock | None = None
        self.committed = 0
        self.block_rows = block_rows  # a first sync: commits of whole blocks (see the module's doc)
        self.inserted = 0  # rows this run's commits inserted into the snapshot (with block_rows)
        self.counts = counts  # the run's counts so far, recorded in the run log (see the module's doc)
        self.counts_seconds = counts_seconds
        self._counted = -float("inf")  # monotonic time of the last counts taken
        # set on the commit thread the moment a commit fails: the run is lost, and the sender tasks
        # and the reader check it before each request (the event loop learns of the failure later:
        # sender tasks meanwhile started requests whose rows no commit would record)
        self.failed = threading.Event()

    # --- what the pipeline reports ------------------------------------------------------
    def acknowledged(self, keys: list[str]) -> None:
        self._batch.acked.extend(keys)

    def rejected(self, key: str | None, field: str | None, reason: str, park: bool = True) -> None:
        """A row refused for its content: recorded with its reason and parked until it changes.
        `park=False`: withheld because of another row (e.g. two domains Attio reads as one company),
        recorded as `duplicate` and planned again by the next run."""
        self._batch.rows.append((key, field, "rejected" if park else "duplicate", reason))
        if park and key is not None:
            self._batch.parked.append(key)

    def not_delivered(self, result: RecordResult) -> None:
        """`not_found` or `failed`: recorded (with the field the destination named, if any: an
        Attio record-reference whose record does not exist yet), and sent again by the next run
        (nothing parked)."""
        self._batch.rows.append((result.key, result.field, result.status, result.reason or result.status))

    def pending(self, token: str, keys: list[str]) -> None:
        """Records whose outcome comes later (under `token`): stashed at the next checkpoint."""
        self._batch.stash.append((token, list(keys)))
        self._batch.stashed += len(self._batch.stash[-1][1])

    def settled(self, ok: list[str], problems: list[RecordResult]) -> None:
        """Outcomes of stashed records (this run's or an earlier one's)."""
        b = self._batch
        b.pending_ok.extend(ok)
        for r in problems:
            if r.status == "rejected":
                b.pending_parked.append(r.key)
            else:
                b.pending_forget.append(r.key)
            b.rows.append((r.key, r.field, r.status, r.reason or r.status))

    # --- commits ------------------------------------------------------------------------
    def _timed_out(self) -> bool:
        return time.monotonic() - self._last >= self.every_seconds

    def _whole_blocks(self, batch: Batch) -> int:
        """How many of the batch's acknowledged rows to commit: its parked rows are inserted too."""
        return whole_blocks(len(batch.acked), self.inserted + len(batch.parked), self.block_rows)

    def due(self) -> bool:
        if len(self._batch.rows) >= self.every_rows:  # rejections (rows rejected before sending) pile up too
            return True
        if self._batch.awaiting() >= self.every_rows:  # so do records handed over as pending, and outcomes
            return True
        n = len(self._batch.acked)
        if self.block_rows and n >= self.every_rows:
            return self._whole_blocks(self._batch) > 0 or self._timed_out()
        return n >= self.every_rows or self._timed_out()

    async def checkpoint(self, force: bool = False) -> None:
        if self._busy is None:
            self._busy = asyncio.Lock()
        # (after a failed commit, only the run's last checkpoint commits: sender tasks that had not
        # learnt of it yet started commits of their own, each failing in turn)
        if not force and (self._busy.locked() or self.failed.is_set() or not self.due()):
            return
        async with self._busy:
            batch, self._batch = self._batch, Batch()
            if self.block_rows and not (force or self._timed_out()):
                n = self._whole_blocks(batch)
                batch.acked, self._batch.acked = batch.acked[:n], batch.acked[n:]
            self._last = time.monotonic()
            if batch:
                counts = self._counts_due()  # taken here, on the loop's thread, which updates them
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(self._executor, self.commit, batch, counts)

    def _counts_due(self) -> dict[str, int] | None:
        if self.counts is None or time.monotonic() - self._counted < self.counts_seconds:
            return None
        self._counted = time.monotonic()
        return self.counts()

    def commit(self, batch: Batch, counts: dict[str, int] | None = None) -> None:
        """One checkpoint (on the commit thread, or directly when no loop runs); `counts`: the
        run's counts to record, in the first transaction that writes the snapshot (else alone)."""
        try:
            with doing("committing acknowledged rows"):
                self._commit(batch, counts)
        except BaseException:
            self.failed.set()
            raise

    def _commit(self, batch: Batch, counts: dict[str, int] | None) -> None:
        self.lock.check()
        record = None if counts is None else (lambda: self.state.record_progress(self.run_id, counts))
        if batch.rows:
            # the reasons before the parking: a run that dies between the two (kill -9, the warehouse
            # gone) leaves a reason for a row it did not park (sent again, refused and parked again),
            # never a row parked that `dinsync rejections` has no word about (until 2026-12-07)
            self.state.add_rejections(self.run_id, self.sync, batch.rows)
            # failed / not found: sent again by the next run, never committed by this one (a failed
            # write may have been applied all the same: its snapshot row was unsettled before sending)
            self.planner.release_streamed([key for key, _, status, _ in batch.rows
                                           if key is not None and status != "rejected"])
        if batch.acked:
            self.inserted += self.planner.commit_acknowledged(batch.acked, also=record)
            self.committed += len(batch.acked)
            record = None
        if batch.parked:
            self.inserted += self.planner.commit_rejected(batch.parked, also=record)
            record = None
        # Records awaiting their outcome and the outcomes, `every_rows` keys a transaction: a file
        # hands over its rows whole (Splio: up to 199,999), and a run's last outcomes come at once
        # (all of a 1M-row SFTP run's); in one transaction they ran DuckDB's pool of a first sync out
        # of memory. Each is atomic; keys not yet resolved stay pending, for the next run to read.
        for stashes in _slices_of_stashes(batch.stash, self.every_rows):
            self.planner.stash_pending_many(stashes)
        n = self.every_rows
        for outcome, keys in (("ok", batch.pending_ok), ("rejected", batch.pending_parked),
                              ("forget", batch.pending_forget)):
            for i in range(0, len(keys), n):
                ok, _ = self.planner.resolve_pending(**{outcome: keys[i:i + n]})
                self.committed += ok
                self.inserted += ok
        if record is not None:
            record()
        self.progress("checkpoint", {"acknowledged": len(batch.acked) + len(batch.pending_ok),
                                     "committed": self.committed})

    def close(self) -> None:
        self._executor.shutdown(wait=True)
