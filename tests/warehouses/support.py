"""Test support for warehouses: the local PostgreSQL server, unique schemas, and the functions
a stock PostgreSQL lacks to run Redshift SQL.

PostgreSQL is expected on 127.0.0.1:5432 (trust auth, database `test`); override with
DINSYNC_TEST_PG_DSN. When it is missing, tests that need it fail when CI is set, and skip with
a message saying how to start it otherwise.
"""
from __future__ import annotations

import functools
import os
import uuid

import pytest

PG_DSN = os.environ.get("DINSYNC_TEST_PG_DSN", "host=127.0.0.1 port=5432 dbname=test connect_timeout=3")
START_HINT = "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"

# Redshift built-ins the Redshift SQL uses that PostgreSQL does not have, created in a schema on
# the test session's search_path. FNV_HASH here is not FNV-1a: the diff only needs a stable
# 64-bit hash with Redshift's signature (value, optional BIGINT seed); GETDATE() is the
# transaction's local timestamp, as on Redshift.
REDSHIFT_FUNCTIONS = [
    "CREATE FUNCTION {s}.fnv_hash(v anyelement, seed bigint DEFAULT -3750763034362895579) RETURNS bigint "
    "LANGUAGE sql IMMUTABLE AS $$ SELECT hashtextextended(v::text, seed) $$",
    "CREATE FUNCTION {s}.getdate() RETURNS timestamp LANGUAGE sql STABLE AS $$ SELECT localtimestamp $$",
]


@functools.lru_cache(maxsize=1)
def postgres_problem() -> str | None:
    """None when the test PostgreSQL server answers, else why not."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[test]')"
    try:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means: no server to test against
        return f"PostgreSQL is not reachable at {PG_DSN!r}: {' '.join(str(exc).split())[:200]}"
    return None


def require_postgres() -> None:
    problem = postgres_problem()
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{problem}; CI needs it ({START_HINT})", pytrace=False)
    pytest.skip(f"{problem}; {START_HINT}")


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def admin_execute(*statements: str) -> None:
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def create_redshift_functions(schema: str) -> None:
    admin_execute(*(f.format(s=f'"{schema}"') for f in REDSHIFT_FUNCTIONS))


def drop_schemas(*schemas: str) -> None:
    admin_execute(*(f'DROP SCHEMA IF EXISTS "{s}" CASCADE' for s in schemas))


WAREHOUSE_KINDS = ("duckdb", "postgres", "redshift")  # redshift: its code path against PostgreSQL


class WarehouseUnderTest:
    """A connected adapter of one kind with a private schema for models (`schema`) and a unique
    state schema name (`state_schema`); `open()` gives another connection to the same place."""

    def __init__(self, kind: str, tmp_path):
        self.kind = kind
        self.tmp_path = tmp_path
        self.schema = unique_name("dsm") if kind != "duckdb" else "main"
        self.state_schema = unique_name("dss") if kind != "duckdb" else "dinsync"
        self.opened: list = []
        if kind != "duckdb":
            require_postgres()
            admin_execute(f'CREATE SCHEMA "{self.schema}"')
            if kind == "redshift":
                create_redshift_functions(self.schema)
        self.wh = self.open()

    def options(self) -> dict:
        if self.kind == "duckdb":
            return {"path": str(self.tmp_path / "warehouse.duckdb")}
        return {"dsn": PG_DSN, "search_path": [self.schema, "public"]}

    def open(self):
        from dinsync.warehouses import connect

        wh = connect(self.kind, **self.options())
        self.opened.append(wh)
        return wh

    def close(self) -> None:
        for wh in self.opened:
            wh.close()
        if self.kind != "duckdb":
            drop_schemas(self.schema, self.state_schema)
