"""One fixture per warehouse for the conformance suite (the dlt / ibis pattern).

Each `wh_<name>` fixture yields a `ConformanceTarget`: the `warehouse:` block of a dinsync.yml
and the environment the CLI needs, plus a way to load fixture tables and to read state back.
`CONFORMANCE_WAREHOUSES` lists them; the `target` fixture runs a test once per entry. A new
adapter gets the whole suite by writing its fixture and adding its name there. Snowflake runs
through the real snowflake-connector-python 4.x against fakesnow in server mode on 127.0.0.1
(one server for the test session: the `fakesnow` fixture); BigQuery through the real
google-cloud-bigquery client against its loopback fake (tests/warehouses/bigquery_fake.py);
Databricks through the real databricks-sdk against a loopback fake of its Statement Execution API
(tests/warehouses/databricks_fake.py). Both fakes run the statements, transpiled by sqlglot, on DuckDB.
"""
from __future__ import annotations

import textwrap
from typing import Any, Iterator

import pyarrow as pa
import pytest

from dinsync.warehouses import connect
from tests.warehouses.support import PG_DSN, SF_PASSWORD, FakesnowServer, WarehouseUnderTest, fakesnow_server

CONFORMANCE_WAREHOUSES = ["duckdb", "postgres", "redshift", "bigquery", "snowflake", "databricks"]


class ConformanceTarget:
    """What the conformance tests need of a warehouse. Subclasses fill the blanks."""

    kind: str
    state_schema: str = "dinsync"
    env: dict[str, str]
    busy_message = "already running"  # what a second concurrent run is refused with

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


class BigQueryTarget(ConformanceTarget):
    """BigQuery through the real google-cloud-bigquery client, against the loopback fake of its REST
    API (tests/warehouses/bigquery_fake.py, backed by DuckDB); the CLI authenticates with a
    service-account key of the fake given as ${env:...}. A private model and state dataset per test."""

    kind = "bigquery"

    def __init__(self, tmp_path):
        from dinsync.sandbox.runner import SandboxThread
        from tests.warehouses.bigquery_fake import PROJECT, FakeBigQuery

        self.fake = FakeBigQuery(str(tmp_path / "bigquery.duckdb"))
        self.thread = SandboxThread(self.fake)
        self.thread.start()
        self.project = PROJECT
        self.model_schema = "models"
        self.state_schema = "dinsync_state"
        self.scratch = "dinsync_scratch"
        self.env = {"DINSYNC_TEST_BQ_CREDENTIALS": self.fake.service_account_json()}
        with self.connect() as wh:
            wh.execute(f"CREATE SCHEMA `{self.model_schema}`")

    def warehouse_yaml(self) -> str:
        return textwrap.dedent(f"""\
            warehouse:
              type: bigquery
              project: {self.project}
              dataset: {self.model_schema}
              location: US
              credentials: ${{env:DINSYNC_TEST_BQ_CREDENTIALS}}
              api_endpoint: {self.fake.url}
              scratch_dataset: {self.scratch}
              retry_seconds: 0
              http_timeout_seconds: 30
            state_schema: {self.state_schema}
            """)

    def connect(self):
        return connect("bigquery", project=self.project, dataset=self.model_schema, location="US",
                       credentials=self.env["DINSYNC_TEST_BQ_CREDENTIALS"], api_endpoint=self.fake.url,
                       scratch_dataset=self.scratch, retry_seconds=0, http_timeout_seconds=30)

    def state(self, table: str) -> str:
        return f"`{self.state_schema}`.`{table}`"

    def close(self) -> None:
        self.thread.stop()


@pytest.fixture
def wh_bigquery(tmp_path) -> Iterator[ConformanceTarget]:
    target = BigQueryTarget(tmp_path)
    yield target
    target.close()


class SnowflakeTarget(ConformanceTarget):
    """Snowflake through the real connector against the session's fakesnow server: a private
    model schema (the session's current schema) and state schema per test."""

    kind = "snowflake"

    def __init__(self, tmp_path):
        self.under_test = WarehouseUnderTest("snowflake", tmp_path)
        self.model_schema = self.under_test.schema
        self.state_schema = self.under_test.state_schema
        self.server: FakesnowServer = self.under_test.server
        self.env = {"DINSYNC_TEST_SF_PASSWORD": SF_PASSWORD}

    def warehouse_yaml(self) -> str:
        o = self.server.options(self.model_schema)
        return textwrap.dedent(f"""\
            warehouse:
              type: snowflake
              account: {o["account"]}
              user: {o["user"]}
              password: ${{env:DINSYNC_TEST_SF_PASSWORD}}
              database: {o["database"]}
              schema: {self.model_schema}
              host: {o["host"]}
              port: {o["port"]}
              protocol: http
              login_timeout: 20
              network_timeout: 120
            state_schema: {self.state_schema}
            """)

    def connect(self):
        return connect("snowflake", **self.under_test.options())

    def close(self) -> None:
        self.under_test.close()


@pytest.fixture(scope="session")
def fakesnow() -> FakesnowServer:
    """One fakesnow server for the whole test session (stopped when the session ends)."""
    return fakesnow_server()


@pytest.fixture
def wh_snowflake(tmp_path, fakesnow) -> Iterator[ConformanceTarget]:
    target = SnowflakeTarget(tmp_path)
    yield target
    target.close()


class DatabricksTarget(ConformanceTarget):
    """The Databricks adapter and the real databricks-sdk against the loopback fake of the
    Statement Execution API (tests/warehouses/databricks_fake.py), whose tables live in DuckDB."""

    kind = "databricks"
    model_schema = "main"

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
                       catalog=self.fake.catalog, schema=self.model_schema, retry_seconds=5)

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


@pytest.fixture
def bodies(monkeypatch) -> list[str]:
    """The raw request bodies the Iterable sandbox receives (it parses numbers as floats: the digits
    sent are only seen here)."""
    import dinsync.sandbox.iterable as iterable_sandbox_module

    seen: list[str] = []
    parse = iterable_sandbox_module._parse_object

    def recording(raw: bytes) -> dict:
        seen.append(raw.decode())
        return parse(raw)

    monkeypatch.setattr(iterable_sandbox_module, "_parse_object", recording)
    return seen
