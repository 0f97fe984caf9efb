"""Every warehouse's permission error on a state statement takes the path of PostgreSQL's
(tests/warehouses/test_pg_state_privileges.py): the adapter's error table makes it a
WarehousePermissionError, and the state store a WarehouseStateRefused (exit 3) naming the state
schema. Snowflake, BigQuery and Databricks, whose fakes have no privileges to refuse, with each
driver's own exception as the adapter translates it; a read-only session keeps its own error."""
from __future__ import annotations

import pytest

from dinsync.errors import ExitCode
from dinsync.state import StateStore
from dinsync.warehouses.errors import WarehousePermissionError, WarehouseStateRefused


def _snowflake():
    from snowflake.connector import errors

    from dinsync.warehouses.snowflake import SnowflakeWarehouse

    return SnowflakeWarehouse, errors.ProgrammingError(
        msg="Insufficient privileges to operate on schema 'DINSYNC'", errno=3001, sqlstate="42501"), {}


def _bigquery():
    from google.api_core import exceptions as api

    from dinsync.warehouses.bigquery import BigQueryWarehouse

    return BigQueryWarehouse, api.Forbidden("Access Denied: Dataset p:dinsync: Permission bigquery.tables.create "
                                            "denied on dataset p:dinsync", errors=[{"reason": "accessDenied"}]), {"_api": api}


def _databricks():
    from dinsync.warehouses.databricks import DatabricksWarehouse, StatementFailed

    return DatabricksWarehouse, StatementFailed(
        "FAILED", "[INSUFFICIENT_PERMISSIONS] Insufficient privileges: User does not have USE SCHEMA on Schema "
                  "'main.dinsync'. SQLSTATE: 42501"), {"_checking": False}


def _refusing(adapter, driver_error: BaseException, attributes: dict):
    """An adapter that connects nowhere (`attributes`: those its translation reads), whose every
    statement fails with `driver_error`, as its translation makes it (the error tables are the adapter's)."""
    wh = adapter.__new__(adapter)
    wh._secrets = []
    for name, value in attributes.items():
        setattr(wh, name, value)
    error = wh.translate(driver_error, "running a statement")

    def fail(*args, **kwargs):
        raise error

    for name in ("execute", "query", "rows", "scalar", "table_columns", "write_arrow"):
        setattr(wh, name, fail)
    return wh, error


@pytest.mark.parametrize("make", [_snowflake, _bigquery, _databricks], ids=["snowflake", "bigquery", "databricks"])
def test_a_permission_refused_on_the_state_is_a_configuration_error(make):
    wh, error = _refusing(*make())
    assert type(error) is WarehousePermissionError  # the adapter's table, as for the model's SQL
    store = StateStore(wh, "dinsync")
    with pytest.raises(WarehouseStateRefused) as info:
        store.migrate(attempts=1)
    refused = info.value
    assert refused.exit_code == ExitCode.CONFIG_ERROR and not refused.retryable
    assert refused.message.startswith("dinsync's role may not use its state schema dinsync: it needs ")
    assert error.message in refused.message  # the warehouse's own words
    assert "grant dinsync's role those privileges on schema dinsync" in refused.hint
    with pytest.raises(WarehouseStateRefused):
        store.check_tables()  # (what `validate` reads)


def test_a_read_only_session_keeps_its_own_error():
    """(a standby server, default_transaction_read_only: its hint says to connect to the primary)"""
    import psycopg

    from dinsync.warehouses.postgres import PostgresWarehouse

    wh, error = _refusing(PostgresWarehouse, psycopg.errors.ReadOnlySqlTransaction(
        "cannot execute CREATE SCHEMA in a read-only transaction"), {})
    assert type(error) is WarehousePermissionError and "primary" in error.hint
    with pytest.raises(WarehousePermissionError) as info:
        StateStore(wh, "dinsync").migrate(attempts=1)
    assert type(info.value) is WarehousePermissionError and info.value.hint == error.hint
