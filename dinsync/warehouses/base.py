"""The warehouse interface every adapter implements.

An adapter knows SQL execution, Arrow streaming and bulk writes for one engine; it knows
nothing of platforms. Capabilities are data so shared code can branch on them, not on names.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import pyarrow as pa


@dataclass(frozen=True)
class Capabilities:
    dialect: str  # sqlglot dialect name
    transactional_ddl: bool = True
    hash_type: str = "UBIGINT"  # type of the per-field hash columns in snapshots
    # A database the adapter attaches for per-run scratch tables (the plan, commit scratch), shared
    # by all its connections and never persisted (DuckDB: an in-memory database). None: scratch
    # tables live in the state schema.
    scratch_database: str | None = None
    # A pseudo-column numbering a table's rows in storage order, whose range filters skip storage
    # blocks (DuckDB: rowid). Commits then find acknowledged plan rows by position, not by a scan
    # of the whole plan. None: commits join the plan on the key.
    row_position: str | None = None


class Warehouse:
    capabilities: Capabilities

    @property
    def dialect(self) -> str:
        return self.capabilities.dialect

    def execute(self, sql: str) -> None:
        raise NotImplementedError

    def query(self, sql: str) -> pa.Table:
        """Run a query whose result is small and return it whole."""
        raise NotImplementedError

    def stream(self, sql: str, batch_rows: int = 50_000) -> Iterator[pa.RecordBatch]:
        """Run a query and yield its result as Arrow record batches of at most `batch_rows` rows."""
        raise NotImplementedError

    def write_arrow(self, schema: str, table: str, data: pa.Table, mode: str = "append") -> None:
        """Write an Arrow table into schema.table. mode: append | replace (create or overwrite)."""
        raise NotImplementedError

    def columns(self, sql: str) -> list[tuple[str, str]]:
        """(name, type) of the columns a SELECT returns, without running it in full."""
        raise NotImplementedError

    def table_columns(self, schema: str, table: str) -> list[str] | None:
        """Column names of an existing table, or None when it does not exist."""
        raise NotImplementedError

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.execute("ROLLBACK")
            raise
        else:
            self.execute("COMMIT")

    @contextlib.contextmanager
    def streaming(self) -> Iterator[None]:
        """Around the send phase of a run (plan built, rows streaming out, small commits coming
        back): an adapter may lower its memory use meanwhile."""
        yield

    def close(self) -> None:
        pass


def quote_ident(name: str) -> str:
    """Quote an identifier with double quotes (ANSI; DuckDB, PostgreSQL, Snowflake)."""
    if "\x00" in name:
        raise ValueError("identifier contains a NUL byte")
    return '"' + name.replace('"', '""') + '"'
