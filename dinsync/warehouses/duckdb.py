"""DuckDB: the embedded default warehouse."""
from __future__ import annotations

import contextlib
import os
import re
import threading
from collections import Counter
from typing import TYPE_CHECKING, Any, Callable, Iterator

import duckdb

from ..errors import ConfigError, ConfigIssue, DinsyncError, LockBusyError, resource_hint, system_memory_refused
from . import errors as E
from .base import (PROBE_ROWS, STREAM_READ, Capabilities, ErrorTranslation, Params, Warehouse, quote_ident, rebatch,
                   rows_within, translated)
from .params import translate

if TYPE_CHECKING:
    import pyarrow as pa  # a run that sends nothing never imports it


SCRATCH_DATABASE = "dinsync_scratch"
COMMIT_SCRATCH_DATABASE = "dinsync_commits"  # see Capabilities.commit_scratch_database
DISABLED_COMPRESSION = "fsst,dict_fsst,bitpacking,alp,alprd,chimp,patas,zstd,roaring"

# What a streamed query result may hold ahead of its reader (DuckDB's default: 10 MiB, plus what
# each thread is still converting to Arrow). The reader maps and sends slower than DuckDB reads the
# plan, so the buffer stays full: heaptrack saw ~37 MB of Arrow batches waiting at the heap's peak
# of a 3M-row first sync. 1 MB: 1M-row first sync 472-481 MB peak RSS instead of 485-506 at the
# same speed (three interleaved pairs); no change at 10M rows, where the peak is elsewhere.
STREAMING_BUFFER = "1MB"


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


# An error of DuckDB that happens while an Arrow reader streams a result reaches Python as
# pyarrow's OSError carrying DuckDB's message: its class, by the message's prefix.
_READER_ERROR_CLASSES = (("Out of Memory Error", duckdb.OutOfMemoryException),
                         ("INTERRUPT Error", duckdb.InterruptException),
                         ("IO Error", duckdb.IOException))


_LEADING_COMMENTS = re.compile(r"\s*(?:--[^\n]*(?:\n|$)\s*|/\*.*?\*/\s*)*", re.S)


# DuckDB types whose Arrow export is another value than the model's (checked: DuckDB 2.0), and the
# cast that sends the value itself. UHUGEINT is exported as decimal128(38, 0): values from 2^127
# wrap around (2^128 - 1 was sent as -1). BIT as its internal bytes (B'10101' was sent as the base64
# "A/U="). TIMETZ as a time without its offset (12:34:56+02 was sent as "12:34:56"). BIGNUM
# (VARINT) as an opaque binary no field kind reads (every row was rejected).
_TYPE_END = r"(?=\s*(?:[,)\[]|$))"  # a type's name ends there (a STRUCT field's name is followed by its type)
_NESTED = re.compile(r"\[|\b(STRUCT|MAP|UNION)\(")  # a type name (quoted names taken out) of a nested type
_SEND_PROBLEMS = (
    (re.compile(r"\bUHUGEINT" + _TYPE_END, re.I), "DuckDB reads UHUGEINT to Arrow as a 128-bit signed decimal (values from "
     "2^127 wrap around to negative numbers): convert it in the model's SQL, e.g. CAST({c} AS HUGEINT) when its "
     "values stay below 2^127, or CAST({c} AS VARCHAR) to send its digits as text"),
    (re.compile(r"\b(BIGNUM|VARINT)" + _TYPE_END, re.I), "DuckDB reads BIGNUM (VARINT) to Arrow as opaque bytes: convert it "
     "in the model's SQL, e.g. CAST({c} AS HUGEINT) or CAST({c} AS DECIMAL(38, 0)) (a number, 38 digits at most), "
     "or CAST({c} AS VARCHAR) (its digits as text)"),
    (re.compile(r"\bBIT" + _TYPE_END, re.I), "DuckDB reads BIT to Arrow as its internal bytes, not its bits: convert it in "
     "the model's SQL, e.g. CAST({c} AS VARCHAR) (its bits as text, '10101')"),
    (re.compile(r"\b(TIME WITH TIME ZONE|TIMETZ)" + _TYPE_END, re.I), "DuckDB reads TIMETZ to Arrow as a time without "
     "its offset: convert it in the model's SQL, e.g. CAST({c} AS VARCHAR) (12:34:56+02)"),
)


_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")

# Levels of LIST / ARRAY / STRUCT / UNION (a MAP: two) Arrow's import of a schema allows below its
# record batch: a column nested deeper failed every run reading the plan (checked: DuckDB 2.0,
# pyarrow's C data interface; 62 levels read, 63 refused).
ARROW_MAX_DEPTH = 62


def _arrow_depth(t) -> int:
    """How many Arrow levels a DuckDB type nests (0 for a scalar)."""
    if t.id in ("list", "array"):
        return 1 + _arrow_depth(dict(t.children)["child"])
    if t.id in ("struct", "union"):
        return 1 + max((_arrow_depth(c) for _, c in t.children), default=0)
    if t.id == "map":
        return 2 + max(_arrow_depth(c) for _, c in t.children)
    return 0


def _utc_text(x: str, t: Any, depth: int = 0) -> str | None:
    """SQL of value `x` of DuckDB type `t` with each TIMESTAMPTZ in it written as a UTC session
    writes it (as text; an infinity as itself); None when `t` holds no TIMESTAMPTZ."""
    kind = t.id
    if kind == "timestamp with time zone":
        return (f"CASE WHEN isfinite({x}) THEN CAST(timezone('UTC', {x}) AS VARCHAR) || '+00' "
                f"ELSE CAST({x} AS VARCHAR) END")
    if kind in ("list", "array"):
        item = f"_dinsync_e{depth}"
        inner = _utc_text(item, dict(t.children)["child"], depth + 1)
        # (a list comprehension: DuckDB 2.0 refuses the `->` lambdas sqlglot writes of the templates)
        return None if inner is None else f"[{inner} FOR {item} IN {x}]"
    if kind == "struct":
        members = [(quote_ident(name), child) for name, child in t.children]
        forms = [_utc_text(f"{x}.{name}", child, depth) for name, child in members]
        if all(f is None for f in forms):
            return None
        packed = ", ".join(f"{name} := {form or f'{x}.{name}'}" for (name, _), form in zip(members, forms))
        return f"CASE WHEN {x} IS NULL THEN NULL ELSE struct_pack({packed}) END"
    return None


def _is_delete(sql: str) -> bool:
    """Whether a statement is a DELETE (its first keyword after comments)."""
    return re.match(r"DELETE\b", sql[_LEADING_COMMENTS.match(sql).end():], re.I) is not None


def _reader_error(exc: OSError) -> duckdb.Error:
    """The DuckDB exception an Arrow reader's OSError stands for (so that it is translated, with
    the memory hint for an out-of-memory error, like the same error raised by a statement)."""
    text = str(exc)
    cls = next((c for prefix, c in _READER_ERROR_CLASSES if text.startswith(prefix)), duckdb.Error)
    return cls(text)


_POOL_EXHAUSTED = re.compile(r"could not allocate block|failed to pin block|out of memory", re.IGNORECASE)


# A COMMIT that could not write the file's write-ahead log (`<file>.wal`, next to the file): the
# folder is read-only, the disk full. DuckDB reports it as a TransactionException ("Failed to
# commit: Cannot open file \"/p/w.duckdb.wal\": Permission denied"), as it does a write conflict:
# taken for one, the lock's commit said "already running" (exit 5) when no run was.
_COMMIT_IO_FAILED = re.compile(r"Failed to commit:.*(cannot open file|could not write|could not truncate|"
                               r"could not sync|no space left|permission denied|operation not permitted|"
                               r"read-only file system|disk quota|is a directory)", re.IGNORECASE | re.DOTALL)


# A database file cut short: DuckDB reads a block its header names beyond the file's end.
_DAMAGED_FILE = re.compile(r"Could not read enough bytes from file", re.IGNORECASE)
# The process holding a DuckDB file's lock, as DuckDB names it ("Could not set lock on file ...:
# Conflicting lock is held in /usr/bin/python3 (PID 4242) by user ann"): said with dinsync's
# refusal, so the user need not look for it (lsof); absent where DuckDB cannot tell.
_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (.+?) \(PID (\d+)\)(?: by user (\S+?))?(?=[.\s]|$)")


def _lock_holder(text: str) -> str:
    """` (PID 4242: /usr/bin/python3, user ann)` for DuckDB's lock error `text`, else ''."""
    found = _LOCK_HOLDER.search(text)
    if found is None:
        return ""
    program, pid, user = found.groups()
    return f" (PID {pid}: {program}{f', user {user}' if user else ''})"


# What DuckDB says when a table function of the model (read_csv, read_parquet, ...) finds no file.
_NO_SUCH_FILE = re.compile(r"No files found that match the pattern")


def _damaged_hint(path: str) -> str:
    return (f"the DuckDB file {path} is shorter than its own blocks say (cut off by a copy, a full disk, or "
            "replaced while open): running again fails the same way; restore it or build it again (its state "
            "schema with it: the next run then sends every row once more)")


def _commit_io_failed(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.TransactionException) and bool(_COMMIT_IO_FAILED.search(str(exc)))


def _out_of_memory(exc: BaseException) -> bool:
    """Whether DuckDB ran out of its buffer pool: an OutOfMemoryException, or a COMMIT that could
    not allocate or pin a block (DuckDB reports that as a TransactionException, "Failed to commit:
    could not allocate block of size 256.0 KiB (33.1 MiB/33.3 MiB used)")."""
    if isinstance(exc, duckdb.OutOfMemoryException):
        return True
    return isinstance(exc, duckdb.TransactionException) and bool(_POOL_EXHAUSTED.search(str(exc)))


def _bit_width(kind) -> int:
    """Bits of a fixed-width Arrow type's value; 0 for any other (pyarrow raises there)."""
    try:
        return int(kind.bit_width)
    except (ValueError, AttributeError):
        return 0


def _widest(cur, sql: str, values, schema: "pa.Schema") -> int | None:
    """An upper bound of the bytes of one row of `sql` as Arrow, from DuckDB's statistics (a
    table's columns carry their longest string: a few ms, no scan); None where a column's width is
    not bounded by them (nested values, strings computed by the query)."""
    import pyarrow as pa

    widths, strings = 0, []
    for column in schema:
        kind = column.type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind) \
                or pa.types.is_large_binary(kind) or pa.types.is_string_view(kind):
            strings.append(column.name)
            widths += 16  # its offset (a view: its header)
        elif not pa.types.is_nested(kind) and _bit_width(kind):
            widths += -(-_bit_width(kind) // 8) + 1
        else:
            return None
    if not strings:
        return widths
    stats = ", ".join(f"stats({quote_ident(name)})" for name in strings)
    try:
        rows = cur.execute(f"SELECT {stats} FROM (\n{sql}\n) AS _widest LIMIT 1", values).fetchall()
    except duckdb.Error:  # (a DuckDB without stats() as a struct)
        return None
    if not rows:
        return None
    for column in rows[0]:
        longest = column.get("max_string_length") if isinstance(column, dict) else None
        if not isinstance(longest, int):
            return None
        widths += longest
    return widths


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


# DuckDB files this process holds open, by real path -> connections. A POSIX lock (DuckDB's, on the
# file) belongs to the process and goes as soon as *any* descriptor of the file is closed: reading
# the header again for a second connection (`serve --parallel`: one per run) dropped the lock of
# the first, and another process (dbt) then wrote the file under a running sync (lost writes, a
# corrupted file). An open file was checked when it was first opened.
_OPEN_FILES: Counter[str | None] = Counter()
_OPEN_FILES_GUARD = threading.Lock()


def duckdb_name(path: str) -> str:
    """The name DuckDB opens `path` by: it writes every name as UTF-8, where Python writes a path in
    the file system encoding, which a locale such as fr_FR.ISO-8859-1 (or C without UTF-8 mode)
    makes Latin-1 or ASCII: a folder named `Équipe` (UTF-8 on disk) was another folder to DuckDB."""
    try:
        return os.fsencode(path).decode("utf-8")
    except (UnicodeError, TypeError):  # (refused at validation: not UTF-8 on disk)
        return path


def _refuse_a_file_that_is_not_duckdb(path: str) -> None:
    """DuckDB 2.0 opens a CSV, Parquet or JSON file given as the database as a read-only view of it,
    in memory: dinsync's state would then vanish with the process (every run a first sync). A
    DuckDB file carries "DUCK" at bytes 8-12. An empty file (`touch warehouse.duckdb`, a copy cut
    short) DuckDB 2.0 refuses too ("not a valid DuckDB database file"): said here, as a
    configuration error with its fix, not as a file dinsync could not open (exit 1, "must be
    readable and writable")."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:  # no such file, a folder, ":memory:", an extension's URL
        return
    if not head:
        raise ConfigError([ConfigIssue(
            f"warehouse.path {path} is an empty file, not a DuckDB database file",
            "dinsync.yml", hint="delete it and create the database with DuckDB: python -c \"import duckdb; "
                                f"duckdb.connect({str(path)!r}).close()\" (or point warehouse.path at the file dbt "
                                "builds)")])
    if head[8:12] != b"DUCK":
        raise ConfigError([ConfigIssue(
            f"warehouse.path {path} is not a DuckDB database file",
            "dinsync.yml", hint="point warehouse.path at a DuckDB database file (one dbt built, say); "
                                "read data files from the model's SQL, e.g. select * from read_csv('data.csv')")])


class DuckDBWarehouse(ErrorTranslation, Warehouse):
    type_name = "duckdb"
    display_name = "DuckDB"
    capabilities = Capabilities(
        dialect="duckdb",
        hash_type="UBIGINT",
        merge=True,
        temp_tables=True,
        transactional_ddl=True,
        enforces_primary_key=True,
        lock_arbiter="primary_key",
        paramstyle="dollar",
        scratch_database=SCRATCH_DATABASE,
        commit_scratch_database=COMMIT_SCRATCH_DATABASE,
        scratch_per_sync=True,
        scratch_schema="main",
        row_position="rowid",
        insert_block_rows=122_880,
        delete_part_rows=500_000,
        arrow_views=True,
        segment_hashes=True,
        progress_seconds=0.0,
    )
    driver_errors = (duckdb.Error,)

    def __init__(self, path: str = ":memory:", threads: int | None = None, read_only: bool = False,
                 memory_limit: str | None = AUTO, streaming_memory_limit: str | None = AUTO):
        """`memory_limit` bounds DuckDB's buffer pool while a plan is built (it spills to disk
        beyond it): without it a 1M-row plan keeps ~700 MB resident. `streaming_memory_limit`
        applies while a run sends (see `streaming`). Each is raised to what the sync needs (see
        size_for, expect_deletes); AUTO (the default) is that need alone, None no limit at all.
        (The defaults were 192 MB and 160 MB until 2026-12-02. Sized by need, at 10 fields 144 MB
        and 112 MB: a 10M-row first plan peaked at 312-313 instead of 385-406 MB, in 13.1-13.9
        instead of 12.7-13.3 s; a 1M-row churn run at 331-334 instead of 376-394 MB, in 2.60-2.65
        instead of 2.65-3.55 s.)"""
        self.path = path
        self._secrets: list[str] = []
        self._scale = 1  # the pools' multiplier after statements ran out of memory (GROW_RAM_SHARE)
        self._phase: tuple[str | None, int] = (memory_limit, 1)  # the pool and threads asked last
        self._only_inserting = False  # in `streaming(replacing=False)`: the inserting pool
        self._room = 0  # bytes above the pool for a commit while wide rows stream (room_for)
        self._wide_stream = False  # a stream of rows wider than rows_within keeps whole is open
        self._reading = threading.Lock()  # held while a stream reads a batch, and by room_for
        self._held = False  # this connection's stream holds checkpoints back (_hold_checkpoints)
        self._configured_limits = (memory_limit, streaming_memory_limit)
        self._file = None if path == ":memory:" else os.path.realpath(path)
        try:
            with _OPEN_FILES_GUARD:
                if not _OPEN_FILES[self._file]:  # (see _OPEN_FILES)
                    _refuse_a_file_that_is_not_duckdb(path)
                self._con = duckdb.connect(duckdb_name(path), read_only=read_only)
                if self._file is not None:
                    _OPEN_FILES[self._file] += 1
        except duckdb.IOException as exc:
            text = str(exc)
            if "lock" in text.lower():
                raise LockBusyError(
                    f"the DuckDB file {path} is in use by another process{_lock_holder(text)}",
                    hint="DuckDB lets one process open a database file at a time: another dinsync run (or a "
                         "tool such as dbt) holds it; wait for it to finish (status, runs and rejections too)",
                ) from None
            hint = (_damaged_hint(path) if _DAMAGED_FILE.search(text) else
                    "warehouse.path in dinsync.yml names it: the file and its folder must be readable and writable")
            raise DinsyncError(f"cannot open DuckDB file {path}: {text}", hint=hint) from None
        self._settings = _InstanceSettings.of(path, self._con)
        self.grown_to: str | None = None  # the pool after statements ran out of memory, if they did
        self.threads = int(threads) if threads else self._settings.default_threads
        # Until a sync is sized: the pools of one without mapped fields, the snapshot's own columns
        # (key checks and plans of many threads need more: see PLAN_THREADS).
        self.size_for(0)
        # Plans and snapshots need no row order; without it DuckDB streams and spills more freely.
        self._con.execute("SET preserve_insertion_order = false")
        # What this process writes are snapshots of 64-bit hashes (incompressible) and keys: trying
        # the costlier compression methods on them nearly doubles the CPU time of a commit
        # (measured: 0.84 vs 0.47 CPU-s per 1M snapshot rows) for ~15% less disk. Constant, RLE
        # and dictionary encodings stay. Only data written by this process is affected.
        self._disable_compression(DISABLED_COMPRESSION.split(","))
        # The commits' scratch tables (Capabilities.commit_scratch_database); a sync's plan and
        # scratch tables get a database of their own (attach_scratch).
        self._con.execute(f"ATTACH IF NOT EXISTS ':memory:' AS {self.quote(COMMIT_SCRATCH_DATABASE)}")
        # One connection object per thread: a DuckDB connection must not run two statements at
        # once, and the engine streams the plan while it commits acknowledged rows.
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []

    def attach_scratch(self, name: str) -> None:
        """The plan and the scratch tables of a sync: an in-memory database shared by every cursor
        of this connection, spilled to temporary files beyond memory_limit and never written to
        the database file (writing a 10M-row plan there costs ~3x more, and it is dropped anyway).
        One per sync: see Capabilities.scratch_per_sync."""
        self._con.execute(f"ATTACH IF NOT EXISTS ':memory:' AS {self.quote(name)}")

    def detach_scratch(self, name: str) -> None:
        """An attached database belongs to the DuckDB instance, which outlives this connection
        while another one of the process is open (`serve --parallel`: runs overlap): every sync's
        last plan stayed in the pool and its temporary files until the instance closed."""
        with contextlib.suppress(duckdb.Error):  # (a cursor still reading it: it goes with the instance)
            self.con.execute(f"DETACH DATABASE IF EXISTS {self.quote(name)}")

    def _disable_compression(self, methods: list[str]) -> None:
        """Disable the compression methods this DuckDB version knows among `methods`."""
        known: list[str] = []
        for method in methods:
            try:
                self._con.execute(f"SET disabled_compression_methods = '{','.join(known + [method])}'")
                known.append(method)
            except duckdb.Error:  # an older DuckDB: no such method, or no such setting
                continue
        if known:
            self._con.execute(f"SET disabled_compression_methods = '{','.join(known)}'")

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._con.cursor()
            self._local.cursor = cur
            self._cursors.append(cur)
        return cur

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

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self._local.in_transaction = True
        try:
            with super().transaction():
                yield
        finally:
            self._local.in_transaction = False

    def classify(self, exc: BaseException) -> type[E.WarehouseError] | None:
        if isinstance(exc, duckdb.CatalogException):
            return E.WarehouseObjectMissing if "does not exist" in str(exc) else None
        if isinstance(exc, duckdb.PermissionException):
            return E.WarehousePermissionError
        if isinstance(exc, duckdb.ConstraintException):
            return E.WarehouseConstraintViolation
        if _out_of_memory(exc):
            return E.WarehouseUnavailable
        if _commit_io_failed(exc):
            return E.WarehouseUnavailable
        if isinstance(exc, duckdb.TransactionException):
            return E.WarehouseConflict
        if isinstance(exc, duckdb.IOException) and _NO_SUCH_FILE.search(str(exc)):
            return E.WarehouseObjectMissing  # a file the model reads, like a missing table: nothing to retry
        if isinstance(exc, (duckdb.IOException, duckdb.InterruptException)):
            return E.WarehouseUnavailable
        return None

    def interrupted(self, exc: BaseException) -> bool:
        """DuckDB (2.0) answers the KeyboardInterrupt that Python's SIGINT handler raises while a
        statement runs by stopping it with `RuntimeError: Query interrupted`, the KeyboardInterrupt
        gone: Ctrl-C during `dinsync check` was an "unexpected error", exit 1. (`interrupt()`, which
        a run's stop calls, raises duckdb.InterruptException instead: a warehouse error.)"""
        return type(exc) is RuntimeError and str(exc) == "Query interrupted"

    def sqlstate_of(self, exc: BaseException) -> str | None:
        """DuckDB gives no SQLSTATE; its DataError (a conversion, an overflow: a CSV's `n/a` in a
        number column) is PostgreSQL's class 22, so the planner names the model whose rows raised it."""
        return "22000" if isinstance(exc, duckdb.DataError) else None

    def hint_for(self, exc: BaseException) -> str | None:
        if _out_of_memory(exc) and system_memory_refused(exc):  # the system's limit, not the pool's
            return resource_hint(exc)
        if _out_of_memory(exc):  # not a warehouse that could not be reached, nor a conflict
            return (f"DuckDB ran out of the memory this run gave it ({self.memory_limit or 'no limit'} to plan, "
                    f"{self.streaming_memory_limit or 'no limit'} while sending, as sized for this sync): raise "
                    "warehouse.memory_limit and warehouse.streaming_memory_limit in dinsync.yml, or lower "
                    "warehouse.threads")
        if _commit_io_failed(exc):
            # Not "nothing was committed": a run's checkpoints before this commit stay committed.
            too_large = " and the file within the file size limit (ulimit -f)" if "too large" in str(exc).lower() else ""
            return (f"DuckDB could not write next to the file (its write-ahead log, {self.path}.wal): the "
                    f"folder of warehouse.path must be writable, its disk not full{too_large}; this commit was "
                    "rolled back (what was committed before it stays)")
        if isinstance(exc, duckdb.IOException) and _DAMAGED_FILE.search(str(exc)):
            return _damaged_hint(self.path)
        if isinstance(exc, duckdb.IOException) and f"{self.path}.tmp" in str(exc):
            return (f"DuckDB writes what does not fit in memory to the folder {self.path}.tmp: the folder of "
                    "warehouse.path must be writable (and hold no file of that name) and its disk not full; or "
                    "raise warehouse.memory_limit in dinsync.yml so that less is written there")
        return None

    @translated("running a statement")
    def execute(self, sql: str, params: Params = None) -> int | None:
        sql, values = translate(sql, params, self.capabilities.paramstyle)
        cur = self.con
        # Not a DELETE: DuckDB (2.0.1) refuses, for the rest of the process, the rows of a DELETE
        # that ran out of memory ("Conflict on tuple deletion"), so running it again would turn an
        # error whose hint says what to raise into one that says to run again.
        self._retrying(lambda: cur.execute(sql, values), again=not _is_delete(sql))
        if cur.description is None:
            return None
        rows = cur.fetchall()  # always read to the end: a pending result blocks the connection
        if cur.description[0][0] == "Count" and len(rows) == 1:
            return int(rows[0][0])
        return None

    @translated("running a query")
    def query(self, sql: str, params: Params = None) -> pa.Table:
        sql, values = translate(sql, params, self.capabilities.paramstyle)
        return self._retrying(lambda: self.con.sql(sql, params=values).to_arrow_table())

    @translated("running a query")
    def rows(self, sql: str, params: Params = None) -> list[dict[str, Any]]:
        """Like `query`, run again with more memory when it ran out (outside a transaction): `dinsync
        check` grouping 150 keys of 1 MB ran out of a pool the plan of the same model grows."""
        sql, values = translate(sql, params, self.capabilities.paramstyle)
        cur = self.con
        self._retrying(lambda: cur.execute(sql, values))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    def stream_scratch(self, sql: str, database: str, batch_rows: int = 50_000,
                       rest: Callable[[], tuple[str, pa.Table]] | None = None) -> Iterator[pa.RecordBatch]:
        return self.stream(sql, batch_rows, within=database, rest=rest)

    @translated("streaming a query")
    def stream(self, sql: str, batch_rows: int = 50_000, params: Params = None,
               within: str | None = None, rest: Callable[[], tuple[str, pa.Table]] | None = None,
               ) -> Iterator[pa.RecordBatch]:
        """`within`: the database the query is bound in (its functions are looked for there
        first, not in the database file: see stream_scratch). `rest`: see stream_scratch."""
        sql, values = translate(sql, params, self.capabilities.paramstyle)
        emitted = grown = False
        read = None  # the positions of the rows read before the stream ran out of memory
        while True:
            cur = self._con.cursor()  # its own cursor: other statements may run while we stream
            try:
                with contextlib.suppress(duckdb.Error):  # (a DuckDB without the setting)
                    cur.execute(f"SET streaming_buffer_size = '{STREAMING_BUFFER}'")
                if within is not None:
                    cur.execute(f"USE {self.quote(within)}")
                if read is not None:
                    cur.register(STREAM_READ, read)
                try:
                    rows, chunk = self._batch_rows_within(cur, sql, values, batch_rows)
                    wide = self._wide_stream = grown or chunk < batch_rows
                    if wide:
                        self._hold_checkpoints(True)
                    with self._reading:
                        reader = iter(cur.sql(sql, params=values).to_arrow_reader(chunk))
                    batches = self._read(reader) if chunk == rows else rebatch(self._read(reader), batch_rows)
                    for batch in batches:
                        if batch.num_rows:
                            emitted = True
                            if not wide and rows_within(batch_rows, batch.nbytes / batch.num_rows) < batch_rows:
                                wide = self._wide_stream = True  # wide rows after narrow ones
                                self._hold_checkpoints(True)
                            yield batch
                    return
                except OSError as exc:
                    error = _reader_error(exc)
                except duckdb.OutOfMemoryException as exc:
                    error = exc
                # Out of memory before the first batch (e.g. a few rows of megabytes each, whose
                # strings a chunk pins at once): nothing was read, so the stream starts again with
                # a larger pool. Later, rows already read would be read twice: the stream goes on
                # with the rows not read yet where the caller can say which (`rest`: the plan's,
                # by their positions; a run after one killed -9 failed so every time, the rows of
                # 1 MB it had left wider than the pool its first rows needed), else the error stands.
                if emitted and rest is None or not isinstance(error, duckdb.OutOfMemoryException) \
                        or not self._grow():
                    raise error
                if emitted:
                    sql, read = rest()
                    sql, values = translate(sql, params, self.capabilities.paramstyle)
                grown = True  # (rows that need a larger pool to be read are wide)
            finally:
                self._wide_stream = False
                self._hold_checkpoints(False)
                if read is not None:
                    with contextlib.suppress(duckdb.Error):
                        cur.unregister(STREAM_READ)
                cur.close()

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

    def _read(self, reader) -> Iterator[pa.RecordBatch]:
        """A stream's batches, each read while no commit has room (see room_for)."""
        while True:
            with self._reading:
                batch = next(reader, None)
            if batch is None:
                return
            yield batch

    @staticmethod
    def _batch_rows_within(cur, sql: str, values, batch_rows: int) -> tuple[int, int]:
        """(rows a batch, rows DuckDB converts to Arrow at once): `batch_rows`, or fewer where the
        query's rows are wide: its first PROBE_ROWS rows say how wide (a few ms), and a batch holds
        about BATCH_BYTES. A batch of 10,000 rows of 100 KB of text was 1 GB, held in about three
        copies while it was sent (a first sync of 30,000 such rows peaked at 3.8 GB of RSS; 1.3 GB in
        batches of 64 MB). Where DuckDB's statistics say that a later row may be far wider (`_widest`:
        1 MB values after narrow ones), DuckDB converts as many rows at once as the widest fits in
        BATCH_BYTES, and those are joined into batches of about BATCH_BYTES (`rebatch`, a copy: only
        then, never on the usual narrow plan)."""
        probe = cur.sql(f"SELECT * FROM (\n{sql}\n) AS _probe LIMIT {PROBE_ROWS}", params=values).to_arrow_table()
        if probe.num_rows == 0:
            return batch_rows, batch_rows
        rows = rows_within(batch_rows, probe.nbytes / probe.num_rows)
        widest = _widest(cur, sql, values, probe.schema)
        chunk = rows if widest is None else min(rows, rows_within(batch_rows, widest))
        return rows, chunk

    @translated("writing rows")
    def write_arrow(self, schema: str, table: str, data: pa.Table, mode: str = "append") -> None:
        con = self.con
        name = f"__dinsync_arrow_{id(data)}"
        con.register(name, data)
        try:
            target = self.table_name(schema, table)
            if mode == "replace":
                con.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM {self.quote(name)}")
            elif mode == "append":
                con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM {self.quote(name)}")
            else:
                raise ValueError(f"write mode must be append or replace, got {mode!r}")
        finally:
            con.unregister(name)

    @translated("reading rows in place")
    def view_arrow(self, schema: str, table: str, data: pa.Table) -> None:
        """Make `data` readable as `schema.table` by the statements of this thread, without a copy:
        a view over the Arrow table registered on this thread's cursor (until drop_arrow_view)."""
        con = self.con
        con.register(f"__dinsync_view_{table}", data)
        con.execute(f"CREATE OR REPLACE VIEW {self.table_name(schema, table)} AS "
                    f"SELECT * FROM {self.quote(f'__dinsync_view_{table}')}")

    @translated("dropping a view")
    def drop_arrow_view(self, schema: str, table: str) -> None:
        con = self.con
        con.execute(f"DROP VIEW IF EXISTS {self.table_name(schema, table)}")
        con.unregister(f"__dinsync_view_{table}")

    @translated("reading the columns of a query")
    def columns(self, sql: str) -> list[tuple[str, str]]:
        # A single SELECT is bound as it is and never run (its relation is lazy): read as a
        # subquery, DuckDB would rename a second `id` to `id_1`, and the model's duplicated names
        # must be seen as the model returns them. Anything else (`WITH ... INSERT`, which con.sql
        # would run at once) is read as a subquery, which fails without running it. On lines of
        # their own, as on the other warehouses: an error's LINE n is the model's line n - 1, and a
        # model whose last line ends in a `--` comment does not comment out the closing parenthesis.
        text = f"\n{sql}\n"
        statements = self.con.extract_statements(text)
        select = len(statements) == 1 and statements[0].type == duckdb.StatementType.SELECT
        if not select:
            text = f"SELECT * FROM ({text}) AS _q LIMIT 0"
        try:
            rel = self.con.sql(text)
        except duckdb.Error as exc:
            if not select or "LINE " in str(exc):
                raise
            # A relation's binder error says no `LINE n` ("Referenced column "firstname" not found"),
            # so the model's first line was named, not the one to fix: the statement prepared (not
            # run: it failed to bind) says where. Its own error if it says something else.
            try:
                self.con.execute(f"SELECT * FROM ({text}) AS _q LIMIT 0")
            except duckdb.Error as placed:
                if "LINE " in str(placed) and str(placed).split("\n")[0] == str(exc).split("\n")[0]:
                    raise placed from None
            raise
        return [(n, str(t)) for n, t in zip(rel.columns, rel.types)]

    def exact_hash_columns(self, sql: str, columns: list[str]) -> set[str]:
        """The mapped columns of nested types (LIST, ARRAY, STRUCT, MAP, UNION): DuckDB's HASH gives
        `[]`, `[NULL]` and a NULL list one hash, a NULL struct and one of NULL members one hash,
        `[[1], [2]]` and `[[1, 2]]` one hash, so the fingerprint hashes their text form (which
        quotes strings as needed: `['a, b']` is not `[a, b]`). And the VARCHAR columns: one of a
        case- or accent-insensitive collation (`COLLATE NOCASE`, which the column's type does not
        show) hashed `Bob` and `BOB` alike, so the change was never seen; under COLLATE C
        (DINSYNC_EXACT) a text hashes byte for byte, as any text of no collation already does
        natively (the same hash: fingerprints stored before stay as they were). Other scalars
        keep the native hash."""
        if not columns:
            return set()
        types = dict(self.columns(sql))
        return {c for c in columns if c in types
                and (_NESTED.search(_QUOTED.sub("", types[c])) or types[c].upper() == "VARCHAR")}

    def stable_hash_forms(self, sql: str, columns: list[str]) -> dict[str, str]:
        """The mapped columns holding a TIMESTAMPTZ (also in a LIST, ARRAY or STRUCT), whose text is
        written in the session's time zone (TZ's): from a host in another zone every such value read
        as changed (a nested one's rows were all sent again). Hashed as the text a UTC session
        writes (`2024-01-01 10:00:00+00`, as before in UTC), whatever the session's zone."""
        if not columns:
            return {}
        types = dict(self.columns(sql))
        forms = {}
        for c in columns:
            if c in types and "TIME ZONE" in _QUOTED.sub("", types[c]).upper():
                try:
                    form = _utc_text("@X@", duckdb.sqltype(types[c]))
                except (duckdb.Error, ValueError, TypeError, KeyError):
                    form = None
                if form is not None:
                    forms[c] = form
        return forms

    def send_problem(self, column: str, kind: str) -> str | None:
        """DuckDB types its Arrow export turns into other values (see _SEND_PROBLEMS), anywhere in
        a column's type (e.g. BIT[]), or cannot export (nested deeper than ARROW_MAX_DEPTH): named
        at `validate` and before a sync plans, with the cast."""
        bare = _QUOTED.sub("", kind)  # not in a STRUCT field's or an ENUM value's quoted name
        for pattern, fix in _SEND_PROBLEMS:
            if pattern.search(bare):
                return fix.format(c=column)
        if _NESTED.search(bare):
            try:
                depth = _arrow_depth(duckdb.sqltype(kind))
            except (duckdb.Error, ValueError, TypeError, KeyError):
                return None
            if depth > ARROW_MAX_DEPTH:
                return (f"its values nest {depth} levels deep, more than the {ARROW_MAX_DEPTH} Arrow reads (every run "
                        f"failed with 'ArrowInvalid: Recursion level in ArrowSchema struct exceeded'): send it as "
                        f"JSON text, e.g. CAST(to_json({column}) AS VARCHAR) mapped with type: json")
        return None

    @translated("reading the columns of a table")
    def tables_columns(self, schema: str, tables: list[str]) -> dict[str, list[str]]:
        return self._catalog_columns(schema, tables)

    def table_columns(self, schema: str, table: str) -> list[str] | None:
        return self.tables_columns(schema, [table]).get(table)

    def _threads_mb(self) -> int:
        """What a plan needs beyond PLAN_BASE_MB for DuckDB's threads (see PLAN_THREADS)."""
        return PLAN_PER_THREAD_MB * max(0, self.threads - PLAN_THREADS)

    def size_for(self, fields: int) -> None:
        """Raise the buffer pools to what a sync of `fields` mapped fields needs (see
        PER_COLUMN_MB), never below the configured limits; a narrower sync after it gets those back."""
        plan, streaming = self._configured_limits
        self._scale, self.grown_to = 1, None  # each plan finds again what it needs
        width = self._width_mb = PER_COLUMN_MB * (fields + 6)
        self.memory_limit = _at_least(plan, PLAN_BASE_MB + width + self._threads_mb())
        self.streaming_memory_limit = _at_least(streaming, STREAMING_BASE_MB + width)
        self.inserting_memory_limit = _at_most(self.streaming_memory_limit, INSERTING_BASE_MB + width)
        self._need(self.memory_limit, self.threads)

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

    def interrupt(self) -> None:
        for cur in list(self._cursors):
            with contextlib.suppress(duckdb.Error):
                cur.interrupt()

    def close(self) -> None:
        """Close every cursor, then the connection: the database file is checkpointed and
        released here, not whenever the last thread-local cursor happens to be collected."""
        for cur in self._cursors:
            with contextlib.suppress(duckdb.Error):
                cur.close()
        self._cursors.clear()
        with contextlib.suppress(duckdb.Error):  # (a stream left open: its checkpoints come back)
            self._hold_checkpoints(False)
        self._settings.leave(id(self))
        self._con.close()
        with _OPEN_FILES_GUARD:
            if self._file is not None and _OPEN_FILES[self._file] > 0:
                _OPEN_FILES[self._file] -= 1
            self._file = None  # (closed twice: counted once)
