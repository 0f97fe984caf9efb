"""DuckDB's database files: the name DuckDB opens a path by, files not DuckDB's refused, those held open."""
from __future__ import annotations

import os
import threading
from collections import Counter

from ..errors import ConfigError, ConfigIssue



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
