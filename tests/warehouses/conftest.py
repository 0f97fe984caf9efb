"""One fixture per warehouse for the conformance suite (the dlt / ibis pattern).

Each `wh_<name>` fixture yields a `ConformanceTarget`: the `warehouse:` block of a dinsync.yml
and the environment the CLI needs, plus a way to load fixture tables and to read state back.
`CONFORMANCE_WAREHOUSES` lists them; the `target` fixture runs a test once per entry. A new
adapter gets the whole suite by writing its fixture and adding its name there (databricks runs
through a loopback fake of its Statement Execution API; phase 2: snowflake through fakesnow,
bigquery through its loopback fake).
"""
from __future__ import annotations

import textwrap
from typing import Any, Iterator

import pyarrow as pa
import pytest

from dinsync.warehouses import connect
from tests.warehouses.support import PG_DSN, WarehouseUnderTest

CONFORMANCE_WAREHOUSES = ["duckdb", "postgres", "redshift", "databricks"]


class ConformanceTarget:
    """What the conformance tests need of a warehouse. Subclasses fill the blanks."""

    kind: str
    state_schema: str = "dinsync"
    env: dict[str, str]
    busy_message = "already running"  # what a second concurrent run is refused with
    # latency of the destination while a run must still hold its lock when a second one starts:
    # longer than the second CLI needs to start and reach its lock
    busy_latency = 1.0  # 0.15 s lost the race on a loaded machine (the second CLI started too late)

    def warehouse_yaml(self) -> str:
        raise NotImplementedError

    def connect(self):
        """A new adapter connection (closed by the caller)."""
        raise NotImplementedError

    def load(self, table: str, data: pa.Table) -> None:
        """Create (or replace) the model table `table` with `data`."""
        with self.connect() as wh:
            wh.write_arrow(self.model_schema, table, data, mode="replace")

    def execute(self, sql: str, params: dict | None = None) -> None:
        with self.connect() as wh:
            wh.execute(sql, params)

    def rows(self, sql: str, params: dict | None = None) -> list[dict[str, Any]]:
        with self.connect() as wh:
            return wh.query(sql, params).to_pylist()

    def state(self, table: str) -> str:
        return f'"{self.state_schema}"."{table}"'

    def snapshot_keys(self, sync: str) -> set[str]:
        return {r["_key"] for r in self.rows(f"SELECT _key FROM {self.state('snap_' + sync)} WHERE _synced_at IS NOT NULL")}

    def run_statuses(self, sync: str) -> list[str]:
        return [r["status"] for r in self.rows(
            f"SELECT status FROM {self.state('runs')} WHERE sync = :s ORDER BY started_at", {"s": sync})]


class DuckDBTarget(ConformanceTarget):
    kind = "duckdb"
    model_schema = "main"
    busy_message = "already running|in use by another process"  # one process at a time opens the file

    def __init__(self, tmp_path):
        self.path = tmp_path / "warehouse.duckdb"
        self.env = {}

    def warehouse_yaml(self) -> str:
        return f"warehouse:\n  type: duckdb\n  path: {self.path}\n"

    def connect(self):
        return connect("duckdb", path=str(self.path))  # never held open while the CLI runs

    def close(self) -> None:
        pass


class PostgresTarget(ConformanceTarget):
    """PostgreSQL on 127.0.0.1:5432, a private model schema and state schema per test. With
    kind="redshift", the Redshift adapter runs against the same server."""

    def __init__(self, tmp_path, kind: str = "postgres"):
        self.kind = kind
        self.under_test = WarehouseUnderTest(kind, tmp_path)
        self.model_schema = self.under_test.schema
        self.state_schema = self.under_test.state_schema
        self.env = {"DINSYNC_TEST_PG_DSN": PG_DSN}

    def warehouse_yaml(self) -> str:
        return textwrap.dedent(f"""\
            warehouse:
              type: {self.kind}
              dsn: ${{env:DINSYNC_TEST_PG_DSN}}
              search_path: [{self.model_schema}, public]
            state_schema: {self.state_schema}
            """)

    def connect(self):
        return connect(self.kind, **self.under_test.options())

    def close(self) -> None:
        self.under_test.close()


class DatabricksTarget(ConformanceTarget):
    """The Databricks adapter and the real databricks-sdk against the loopback fake of the
    Statement Execution API (tests/warehouses/databricks_fake.py), whose tables live in DuckDB."""

    kind = "databricks"
    model_schema = "main"
    busy_latency = 5.0  # importing databricks-sdk alone takes 1-3 s (up to 8 s on a loaded machine)

    def __init__(self, tmp_path):
        from dinsync.sandbox.runner import SandboxThread
        from tests.warehouses.databricks_fake import DatabricksFake

        self.fake = DatabricksFake(str(tmp_path / "databricks.duckdb"), chunk_rows=500)
        self.thread = SandboxThread(self.fake)
        self.url = self.thread.start()
        self.env = {"DINSYNC_TEST_DATABRICKS_TOKEN": self.fake.token}

    def warehouse_yaml(self) -> str:
        return textwrap.dedent(f"""\
            warehouse:
              type: databricks
              host: {self.url}
              warehouse_id: {self.fake.warehouse_id}
              token: ${{env:DINSYNC_TEST_DATABRICKS_TOKEN}}
              catalog: {self.fake.catalog}
              schema: {self.model_schema}
            state_schema: {self.state_schema}
            """)

    def connect(self):
        return connect("databricks", host=self.url, token=self.fake.token, warehouse_id=self.fake.warehouse_id,
                       catalog=self.fake.catalog, schema=self.model_schema, retry_timeout_seconds=5)

    def load(self, table: str, data: pa.Table) -> None:
        self.fake.load(self.model_schema, table, data)  # fixture data straight into the fake's tables

    def state(self, table: str) -> str:
        return f"`{self.state_schema}`.`{table}`"

    def close(self) -> None:
        self.thread.stop()


@pytest.fixture
def wh_duckdb(tmp_path) -> Iterator[ConformanceTarget]:
    target = DuckDBTarget(tmp_path)
    yield target
    target.close()


@pytest.fixture
def wh_postgres(tmp_path) -> Iterator[ConformanceTarget]:
    target = PostgresTarget(tmp_path)
    yield target
    target.close()


@pytest.fixture
def wh_redshift(tmp_path) -> Iterator[ConformanceTarget]:
    target = PostgresTarget(tmp_path, kind="redshift")
    yield target
    target.close()


@pytest.fixture
def wh_databricks(tmp_path) -> Iterator[ConformanceTarget]:
    target = DatabricksTarget(tmp_path)
    yield target
    target.close()


@pytest.fixture(params=CONFORMANCE_WAREHOUSES)
def target(request) -> ConformanceTarget:
    return request.getfixturevalue(f"wh_{request.param}")
