"""DuckDB's memory: the buffer pools and threads each phase of a sync is sized for, grown to, and shares."""
from __future__ import annotations

import contextlib
import os
import re
import threading
from typing import Any, Callable

import duckdb


# What a plan and its commits need grows with the sync's width (each column pins its own blocks,
# and a commit inserts whole row groups): measured with 300k rows, 60 mapped fields needed more
# than 160 MB to commit while the plan streamed (224 MB passed), 150 fields more than 384 MB
# (448 MB passed) and more than 192 MB to plan. The configured limits are raised to at least
# BASE + PER_COLUMN x (fields + 6 columns of the snapshot's own).
PLAN_BASE_MB, STREAMING_BASE_MB, PER_COLUMN_MB = 96, 64, 3
# While a plan that only adds rows streams (a first sync), commits only insert: 1M rows x 9 fields
# sent with 64 and 93 MB as fast as with 160 MB, for 15-85 MB less peak RSS. Never above the
# streaming limit. (Commits of 50k keys paid for it at 10M rows, +60%; since a first sync commits
# whole row groups, written to the file directly (engine/commits.py), 10M rows commit as fast
# under it as under the streaming pool, for 30-65 MB less peak RSS: measured with bench_plan.py.)
# The base was 48 MB until the inserts' needs were measured with the send phase's 2 threads, 300k
# rows: they ran out of memory below ~30 MB at 10 fields, ~72 MB at 30, ~120 MB at 60 and
# ~290 MB at 150 (1 field: under 8 MB; 240-character keys at 10 fields: under 32 MB). 8 MB + 3 MB
# per column keeps 1.5-1.9x that: 1M rows x 9 fields sent at the same speed with 444-457 instead
# of 482-487 MB peak RSS, 10M rows committed as fast with 413-417 instead of 455-456 MB.
INSERTING_BASE_MB = 8
# DuckDB's threads (its default: one per core) each pin blocks of every column they scan, and a
# plan's hash tables grow with them: the pools above were measured with 2 threads. With 8, a first
# sync of 1M rows x 10 fields ran out of its 96 MB inserting pool while committing; with 16, a
# 2.5M-row plan ran out of 192 MB (256 MB passed; 2, 4 and 8 threads planned it under 128 MB).
# So a run sends with at most SEND_THREADS (sending is bound by the platform: two threads read the
# plan far faster than any platform takes rows), and the plan pool grows by PLAN_PER_THREAD_MB for
# each thread beyond PLAN_THREADS.
SEND_THREADS, PLAN_THREADS, PLAN_PER_THREAD_MB = 2, 4, 16
# A DELETE keeps, until the next checkpoint (when the run closes the file), a version record for
# each vector of VECTOR_ROWS rows it touched: VERSION_KIB each (a transaction id per row), held in
# the buffer pool and never spilled. So commits that replace snapshot rows, and the deletion of
# removed keys, need up to 8 bytes per snapshot row: 50,000 random deletes from a snapshot of 2M
# rows needed 31-35 MB, of 5M rows 55-59 MB, of 10M rows 98-102 MB, of 20M rows more than the
# streaming pool's 160 MB (the churn runs of a 20M-row sync all ran out of memory); 2,000 deletes
# from 10M rows 51-55 MB (2 threads, 9 fields). While rows may be deleted the pools are raised to
# at least VERSION_KIB per vector the deletes may touch + the larger of DELETE_BASE_MB and the
# width's share (what the commit's insert needs grows with it). Measured 2026-12-02, commits
# replacing 200,000 rows of a 10M-row snapshot (50,000 keys a commit, the plan streaming; ~78 MB
# of version records): with 10 fields they ran out of memory at 75 MB and passed at 90 MB, with one
# field at 100 MB and passed at 105 MB; so what they need beside the version records does not
# follow the width. 56 MB keeps 1.3x of the one-field need and 1.3-1.7x of the ten-field one (the
# 98-102 MB above, and today's). Until then the estimate was 32 MB + the width's share (133 MB at
# one field, 160 MB at ten with the default floor of the time): at 10M rows x 10 fields the commits'
# pool is now 136 instead of 160 MB, and they peaked at 369-376 instead of 391-394 MB (a churn
# run's commits as bench_plan.py does them, each in a new process, two pairs against 152 MB).
VECTOR_ROWS, VERSION_KIB, DELETE_BASE_MB = 2048, 16, 56
# Deleting many rows in one transaction (the keys that left the segment) also holds their keys'
# hash tables and undo records: 1M of a 2M-row snapshot needed 127-134 MB, ~115 bytes a row
# beyond the version records (a 10M-row sync that lost 5M keys failed every run under 192 MB):
# such deletes go in parts (Capabilities.delete_part_rows), each given DELETE_ROW_BYTES a row.
DELETE_ROW_BYTES = 128
# What the everyday plan's statements hold grows with the rows they compare (the changed rows, their
# snapshot rows, the plan), and with the values' length: 1M changed rows x 9 fields needed 242-248
# MB, 400k changed rows of a 10M-row sync 200-208 MB, both more than the default 192 MB (such a
# sync failed every run). No estimate covers every model, so a statement that runs out of memory
# outside a transaction (DuckDB rolled it back whole) runs again with the pools doubled, for the
# rest of the run, while they stay under GROW_RAM_SHARE of the machine's memory (DuckDB's own
# default limit is 80% of it). Not in a transaction (a commit): after a DELETE ran out of memory,
# deleting the same rows again in this process failed 1 time in 4 ("Conflict on tuple deletion"),
# so the commits' deletes are sized beforehand instead (expect_deletes).
GROW_RAM_SHARE = 0.5
# While the plan streams wide rows (a block pinned for each value of 1 MB it reads), the stream
# fills the pool it grew to, and a commit's transaction, which may not grow it (_grow), ran out of
# it: its insert (and then its ROLLBACK: "FATAL Error: Failed to rollback transaction"), or the
# checkpoint its COMMIT runs once the write-ahead log holds more than DuckDB's checkpoint_threshold
# (16 MiB): "COMMIT succeeded and is durable, but the autocheckpoint failed", after which the
# database is invalidated for the process and the run cannot even record its state (3 runs in 12
# of 5,000 rows with 500 values of 1 MB). So while the stream's rows are wide, a commit gets
# ROOM_FACTOR x (its keys' bytes + the WAL's + CHECKPOINT_MB) above the pool for its transaction,
# and the stream reads nothing meanwhile (it would take that room). Measured, a stream of 250 values
# of 1 MB under 280 MB and commits of 8 keys of 1 MB: 1x or 2x the keys + 16 or 32 MB failed,
# 2x (keys + 16 MB) passed. A checkpoint that runs out of memory invalidates the database wherever it
# runs (an explicit CHECKPOINT too), and any statement that commits may run one (the run log's,
# the rejections'): meanwhile DuckDB checkpoints only when asked (HELD_CHECKPOINT_THRESHOLD), and
# a commit with room does it once the WAL holds CHECKPOINT_MB (DuckDB's own threshold). Narrow rows
# (rows_within keeps the batch's rows) get neither: their pools and checkpoints stay as they were.
ROOM_FACTOR, CHECKPOINT_MB, HELD_CHECKPOINT_THRESHOLD = 2, 16, "1TB"
# What the earlier syncs of a process wrote is checkpointed before the next one is sized once the
# log holds this much (see _checkpoint_earlier): a 20-row sync writes ~11 KB of log and leaves
# ~0.5 MB in the pool; a sync with nothing to send, ~4 KB (a checkpoint after each cost a no-op run
# of 300 syncs ~15% more time).
CHECKPOINT_EARLIER_BYTES = 256 << 10
_UNITS = {"B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4,
          "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "TIB": 1024**4}


# A limit configured as "auto" (the default) is what the sync is measured to need (size_for,
# expect_deletes): no floor of its own.
AUTO = "auto"


def _bytes(limit: str) -> float | None:
    """A size as the config writes it ("160MB", "1.5 GiB") in bytes (AUTO: 0, no floor); None when
    it is not one."""
    if limit.strip().lower() == AUTO:
        return 0.0
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*", limit)
    return float(m.group(1)) * _UNITS[m.group(2).upper()] if m and m.group(2).upper() in _UNITS else None


def _at_least(limit: str | None, mb: int) -> str | None:
    """`limit` (as the config writes it), or `mb` MB when that is more; None (no limit) stays."""
    size = _bytes(limit) if limit else None
    return limit if size is None or size >= mb * 1000**2 else f"{mb}MB"


def _at_most(limit: str | None, mb: int) -> str | None:
    """`limit`, or `mb` MB when that is less; None (no limit) stays."""
    size = _bytes(limit) if limit else None
    return limit if size is None or size <= mb * 1000**2 else f"{mb}MB"


def _machine_memory() -> int | None:
    """Bytes of memory this process may use: the machine's, or its container's (cgroup) when lower."""
    try:
        sizes = [os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")]
    except (ValueError, OSError, AttributeError):
        return None
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        with contextlib.suppress(OSError, ValueError):
            with open(path) as f:
                sizes.append(int(f.read().strip()))  # ("max": no limit)
    return min(sizes)


class _InstanceSettings:
    """`memory_limit` and `threads` belong to a DuckDB database instance, which every connection
    of this process to one file shares (`dinsync serve --parallel` opens one per run): a run that
    lowered the pool to send would have starved another one's plan. So each connection states what
    its phase needs, and the instance gets the sum of the pools asked (each phase was measured
    alone) and the fewest threads asked (a send phase's pools are sized for SEND_THREADS)."""

    _shared: dict[str, "_InstanceSettings"] = {}
    _guard = threading.Lock()

    def __init__(self, default_threads: int):
        self.default_threads = default_threads  # DuckDB's own, read before any connection set it
        self.needs: dict[int, tuple[str | None, int]] = {}  # id(connection) -> (pool, threads)
        self.holding: set[int] = set()  # connections whose wide stream holds checkpoints back
        self.threshold: str | None = None  # the instance's checkpoint_threshold before they did
        self.lock = threading.Lock()

    @classmethod
    def of(cls, path: str, con: duckdb.DuckDBPyConnection) -> "_InstanceSettings":
        """The settings of the instance `con` belongs to (one per file; ':memory:' is private)."""
        threads = int(con.execute("SELECT current_setting('threads')").fetchone()[0])
        if path == ":memory:":
            return cls(threads)
        with cls._guard:
            key = os.path.realpath(path)
            if key not in cls._shared or not cls._shared[key].needs:
                cls._shared[key] = cls(threads)
            return cls._shared[key]

    def need(self, con: duckdb.DuckDBPyConnection, owner: int, pool: str | None, threads: int) -> None:
        with self.lock:
            self.needs[owner] = (pool, threads)
            pools = [p for p, _ in self.needs.values()]
            if all(pools):
                total = pools[0] if len(pools) == 1 else f"{int(sum(_bytes(p) or 0 for p in pools))}B"
                try:
                    con.execute("SET memory_limit = ?", [total])
                except duckdb.OutOfMemoryException:
                    pass  # DuckDB cannot free enough yet (blocks in use): it keeps the larger pool
            con.execute(f"SET threads = {min(t for _, t in self.needs.values())}")

    def hold_checkpoints(self, con: duckdb.DuckDBPyConnection, owner: int, held: bool) -> None:
        """checkpoint_threshold at HELD_CHECKPOINT_THRESHOLD while any connection asks (see
        ROOM_FACTOR), back to what it was once none does: two runs' streams overlap (serve)."""
        with self.lock:
            before = bool(self.holding)
            (self.holding.add if held else self.holding.discard)(owner)
            if bool(self.holding) == before:
                return
            if self.holding:
                self.threshold = con.execute("SELECT current_setting('checkpoint_threshold')").fetchone()[0]
                con.execute(f"SET checkpoint_threshold = '{HELD_CHECKPOINT_THRESHOLD}'")
            else:
                con.execute("SET checkpoint_threshold = ?", [self.threshold])

    def leave(self, owner: int) -> None:
        with self.lock:
            self.needs.pop(owner, None)


class DuckDBMemory:
    """The pools of DuckDBWarehouse: sized for each sync and phase, grown when a statement runs out
    of memory, given room for a commit while wide rows stream (checkpoints held back meanwhile)."""

    def _need(self, pool: str | None, threads: int) -> None:
        """Ask the instance for `pool` (times the growth of this run, plus a commit's room) and `threads`."""
        self._phase = (pool, threads)
        size = _bytes(pool) if pool else None
        if size is not None and (self._scale > 1 or self._room):
            pool = f"{int(size * self._scale + self._room)}B"
        self._settings.need(self._con, id(self), pool, threads)

    def _grow(self) -> bool:
        """After a statement ran out of memory: double the pools when that stays under
        GROW_RAM_SHARE of the machine's memory; False when it would not."""
        pool, threads = self._phase
        size = _bytes(pool) if pool else None
        if size is None or getattr(self._local, "in_transaction", False):
            return False
        ram = _machine_memory()
        if ram is None or size * self._scale * 2 > GROW_RAM_SHARE * ram:
            return False
        self._scale *= 2
        self.grown_to = f"{int(size * self._scale / 1000**2)}MB"
        self._need(pool, threads)
        return True

    def _retrying(self, run: Callable[[], Any], again: bool = True) -> Any:
        """run(), again with more memory when it ran out (see GROW_RAM_SHARE), unless not `again`."""
        while True:
            try:
                return run()
            except duckdb.OutOfMemoryException:
                if not again or not self._grow():
                    raise

    def _hold_checkpoints(self, held: bool) -> None:
        """While wide rows stream: DuckDB checkpoints only when room_for asks (see ROOM_FACTOR);
        after it, at its threshold again."""
        if self._file is None or held == self._held:
            return
        cur = self._con.cursor()
        try:
            self._settings.hold_checkpoints(cur, id(self), held)
            self._held = held
        finally:
            cur.close()

    def _wal_bytes(self) -> int:
        with contextlib.suppress(OSError, TypeError):
            return os.path.getsize(f"{self._file}.wal")
        return 0

    def _threads_mb(self) -> int:
        """What a plan needs beyond PLAN_BASE_MB for DuckDB's threads (see PLAN_THREADS)."""
        return PLAN_PER_THREAD_MB * max(0, self.threads - PLAN_THREADS)

    def size_for(self, fields: int) -> None:
        """Raise the buffer pools to what a sync of `fields` mapped fields needs (see
        PER_COLUMN_MB), never below the configured limits; a narrower sync after it gets those back.
        What the earlier syncs of this process wrote is checkpointed first (see _checkpoint_earlier)."""
        self._checkpoint_earlier()
        plan, streaming = self._configured_limits
        self._scale, self.grown_to = 1, None  # each plan finds again what it needs
        width = self._width_mb = PER_COLUMN_MB * (fields + 6)
        self.memory_limit = _at_least(plan, PLAN_BASE_MB + width + self._threads_mb())
        self.streaming_memory_limit = _at_least(streaming, STREAMING_BASE_MB + width)
        self.inserting_memory_limit = _at_most(self.streaming_memory_limit, INSERTING_BASE_MB + width)
        self._need(self.memory_limit, self.threads)

    def _checkpoint_earlier(self) -> None:
        """A pool is sized for one sync, but what the syncs before it in this process wrote stays in
        the instance's memory, unevictable, until a checkpoint, which DuckDB runs once the log holds
        16 MiB (a sync of 20 rows writes a few KB): in a 300-sync project the syncs after the 130th
        ran out of their 87 MB pools (`failed to pin block`). Once the log holds
        CHECKPOINT_EARLIER_BYTES; not while a stream holds checkpoints
        back, nor when another connection's write is under way (serve --parallel: it checkpoints at
        its own end)."""
        if self._file is None or self._settings.holding or self._wal_bytes() < CHECKPOINT_EARLIER_BYTES:
            return
        with contextlib.suppress(duckdb.TransactionException):
            self.con.execute("CHECKPOINT")

    def expect_deletes(self, table: str | None, rows: int | None, at_once: int = 0,
                       table_rows: int | None = None) -> None:
        """Raise the pools (until the next size_for) for the version records of deleting up to
        `rows` rows of `table` (None: any; at most one record a vector: see VERSION_KIB) and for
        deleting `at_once` rows in one transaction (DELETE_ROW_BYTES). The table's rows are
        counted unless `table_rows` gives them."""
        if rows == 0 or not (self.memory_limit or self.streaming_memory_limit):
            return
        if table_rows is None:
            cur = self._con.cursor()  # (this thread's may hold a stream open)
            try:
                table_rows = int(cur.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
            finally:
                cur.close()
        vectors = -(-table_rows // VECTOR_ROWS)
        if rows is not None:
            vectors = min(rows, vectors)
        need = (max(DELETE_BASE_MB, self._width_mb) + -(-vectors * VERSION_KIB // 1024)
                + -(-at_once * DELETE_ROW_BYTES // 1000**2))
        self.memory_limit = _at_least(self.memory_limit, need)
        self.streaming_memory_limit = _at_least(self.streaming_memory_limit, need)
        self._need(self.memory_limit, self.threads)

    @contextlib.contextmanager
    def streaming(self, replacing: bool = True):
        """While the plan streams out and acknowledged keys come back in small commits, DuckDB
        needs far less memory than for building the plan: shrink its buffer pool meanwhile,
        so the sending phase of a large first sync stays within a few hundred MB. (Commits that
        may replace snapshot rows get room for their deletes' version records: expect_deletes.
        Commits that only insert (`replacing=False`) get INSERTING_BASE_MB + the width's
        share: a commit inserts whole row groups, whose size grows with the mapped fields (see
        size_for); at 10 fields 28 MB ran out of memory, 32 MB did not.) DuckDB runs with at most
        SEND_THREADS threads meanwhile: the pools are sized for them."""
        if not (self.memory_limit and self.streaming_memory_limit):
            yield
            return
        limit = self.streaming_memory_limit if replacing else self.inserting_memory_limit
        self._scale = 1  # (what the plan's statements needed is not what sending needs)
        self._need(limit, min(self.threads, SEND_THREADS))
        self._only_inserting = not replacing
        try:
            yield
        finally:
            self._only_inserting = False
            self._scale = 1
            self._need(self.memory_limit, self.threads)

    @contextlib.contextmanager
    def beyond_inserts(self):
        """The streaming pool, instead of the inserting one, for a commit of a first sync that
        stashes or resolves pending outcomes (Splio's files, Attentive's jobs): its delete, insert
        and token update ran in one transaction, which may not grow the pool (`_grow`), and a
        250,000-row first sync over SFTP ran out of the 48 MB inserting pool."""
        if not self._only_inserting:
            yield
            return
        phase = self._phase
        self._need(self.streaming_memory_limit, phase[1])
        try:
            yield
        finally:
            if self._only_inserting:
                self._need(*phase)

    @contextlib.contextmanager
    def room_for(self, key_bytes: int):
        """Room in the pool for a commit's transaction while the stream's rows are wide (see
        ROOM_FACTOR), the stream waiting meanwhile; nothing for narrow rows."""
        if not (self._wide_stream and self._phase[0]):
            yield
            return
        with self._reading:
            self._room = ROOM_FACTOR * (key_bytes + self._wal_bytes() + CHECKPOINT_MB * 1000**2)
            self._need(*self._phase)
            try:
                yield
                if self._held and self._wal_bytes() >= CHECKPOINT_MB << 20:
                    with contextlib.suppress(duckdb.TransactionException):  # (another write under way)
                        self.con.execute("CHECKPOINT")
            finally:
                self._room = 0
                self._need(*self._phase)
