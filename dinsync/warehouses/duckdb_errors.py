"""DuckDB's exceptions -> WarehouseErrors, with hints (out of memory, a damaged file, the lock's holder)."""
from __future__ import annotations

import re

import duckdb

from ..errors import resource_hint, system_memory_refused
from . import errors as E


# An error of DuckDB that happens while an Arrow reader streams a result reaches Python as
# pyarrow's OSError carrying DuckDB's message: its class, by the message's prefix.
_READER_ERROR_CLASSES = (("Out of Memory Error", duckdb.OutOfMemoryException),
                         ("INTERRUPT Error", duckdb.InterruptException),
                         ("IO Error", duckdb.IOException))


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


class DuckDBErrors:
    """How DuckDBWarehouse classifies DuckDB's exceptions and what it says to do about them."""

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
