"""A state schema dinsync's role may not use, said as such.

PostgreSQL answers "permission denied for schema dinsync" to a role without USAGE or CREATE on the
state schema, and "permission denied for database analytics" to one that may not create it where
it does not exist. As any permission error that was a failed run (exit 1, "grant the dinsync user
the privileges it needs"), which orchestrators retry, while the same grant missing on the model's
schema was a configuration error (exit 3). A grant does not come back by running again: a state
statement refused for a permission is a `WarehouseStateRefused` (exit 3) naming the schema, what
the role lacks and what to grant (`Warehouse.state_refusal`: the GRANT statement on PostgreSQL and
Redshift). A read-only session (a standby server, `default_transaction_read_only`) keeps its own
error and hint.
"""
from __future__ import annotations

import contextlib
import re
import threading
from typing import Any, Iterator

from ..warehouses.errors import WarehousePermissionError, WarehouseStateRefused, scrub

READ_ONLY = "25006"  # SQLSTATE of a write in a read-only transaction


def _generic(schema: str) -> tuple[str, str]:
    return (f"the privileges to use schema {schema} (read, write and create tables in it) or, where it does not "
            "exist yet, to create it",
            f"grant dinsync's role those privileges on schema {schema}, or create the schema for it")


def refused(warehouse: Any, schema: str, exc: WarehousePermissionError) -> WarehousePermissionError:
    """`exc`, a permission error of a statement on the state schema `schema`, as a WarehouseStateRefused."""
    if isinstance(exc, WarehouseStateRefused) or exc.sqlstate == READ_ONLY or "read-only transaction" in exc.message:
        return exc
    how = getattr(warehouse, "state_refusal", None)
    what, grant = how(schema, exc) if how is not None else _generic(schema)
    secrets = getattr(warehouse, "_secrets", [])
    return WarehouseStateRefused(
        scrub(f"dinsync's role may not use its state schema {schema}: it needs {what} ({exc.message})", secrets),
        scrub(f"{grant} (as a role that may grant it), then run dinsync again", secrets),
        warehouse=exc.warehouse, sqlstate=exc.sqlstate)


def naming(warehouse: Any, schema: str, tables: list[str], exc: Exception) -> Exception:
    """`exc` as a WarehouseStateRefused when it is a permission error naming the state schema or
    one of `tables` (a sync's own tables there: its snapshot, plan, pending and scratch tables,
    which its planner writes without a StateSession), else `exc` as it is: a table another role
    took over failed the run with exit 1, which orchestrators retry."""
    if not isinstance(exc, WarehousePermissionError) or isinstance(exc, WarehouseStateRefused):
        return exc
    text = exc.message.lower()
    if any(re.search(rf"(?<![\w$]){re.escape(name.lower())}(?![\w$])", text) for name in (schema, *tables)):
        return refused(warehouse, schema, exc)
    return exc


class Refusals:
    """Around the state's statements (dinsync.state.store.StateSession): a permission error becomes
    a WarehouseStateRefused. Inside a transaction it is left as it is until the transaction has
    rolled back (the adapter's statement naming the role would fail in the aborted transaction)."""

    def __init__(self, warehouse: Any, schema: str):
        self.warehouse = warehouse
        self.schema = schema
        self._open = threading.local()  # transactions open on this thread

    @contextlib.contextmanager
    def around(self) -> Iterator[None]:
        if getattr(self._open, "depth", 0):
            yield
            return
        try:
            yield
        except WarehousePermissionError as exc:
            raise refused(self.warehouse, self.schema, exc) from exc

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Marks a transaction open on this thread (inside `around`, outside the transaction)."""
        self._open.depth = getattr(self._open, "depth", 0) + 1
        try:
            yield
        finally:
            self._open.depth -= 1
