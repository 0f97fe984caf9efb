"""The state tables' timestamps are "UTC without a zone" (README, State tables) on every warehouse,
whatever the account's settings: analysts read them from their BI tool, in its session's time zone."""
from __future__ import annotations

import re

import pytest

from dinsync.state import StateStore, layout
from dinsync.warehouses import adapter_class


def _rendered(kind: str) -> str:
    """The layout's DDL as the adapter's state store writes it (no connection: DDL is rendered only)."""
    store = StateStore(object.__new__(adapter_class(kind)), "dinsync")
    statements = [layout.META] + [s for v in sorted(layout.MIGRATIONS) for s in layout.MIGRATIONS[v]]
    return "\n".join(store._ddl(s) for s in statements)


def test_snowflake_state_timestamps_do_not_follow_the_accounts_type_mapping():
    """A bare TIMESTAMP is TIMESTAMP_TYPE_MAPPING's type on Snowflake: an account that maps it to
    TIMESTAMP_LTZ (a common setting) got `runs.started_at` and the rest as local times, shown
    shifted by the reader's TIMEZONE (8 hours in a BI tool set to America/Los_Angeles)."""
    ddl = _rendered("snowflake")
    # (TIMESTAMPNTZ: Snowflake's alias of TIMESTAMP_NTZ, as sqlglot writes it)
    assert re.findall(r'"started_at" (\w+)', ddl) == ["TIMESTAMPNTZ"], ddl
    assert not re.search(r"TIMESTAMP(?!NTZ)", ddl), ddl


@pytest.mark.parametrize("kind", ["duckdb", "postgres", "redshift", "bigquery"])
def test_the_other_warehouses_keep_their_zone_less_type(kind):
    ddl = _rendered(kind)
    assert re.findall(r'.started_at. (\w+)', ddl) == ["DATETIME" if kind == "bigquery" else "TIMESTAMP"], ddl


def _planner_sql(kind: str) -> dict[str, str]:
    """The statements of a sync's snapshot and pending tables as the adapter's planner renders them."""
    from types import SimpleNamespace

    from dinsync.diff import DiffSpec, Planner

    spec = DiffSpec(sync="people", model_sql="SELECT email, plan FROM people", key_column="email",
                    key_normalization="email", fields=[("plan", "plan")], state_schema="dinsync")
    caps = adapter_class(kind).capabilities
    planner = Planner(SimpleNamespace(dialect=caps.dialect, capabilities=caps), spec, cache=False)
    return {s: planner.render(s) for s in ("create_snapshot", "create_pending", "commit_insert", "stash_insert",
                                           "pending_ok_insert")}


def test_snowflake_snapshot_and_pending_times_are_the_state_tables_type():
    """`snap_<sync>._synced_at` and `pend_<sync>._stashed_at` (and the times written into them) were a
    bare TIMESTAMP after the state tables became TIMESTAMP_NTZ: on an account mapping TIMESTAMP to
    TIMESTAMP_LTZ, an analyst's query showed them shifted by the session's TIMEZONE, unlike the run log."""
    sql = _planner_sql("snowflake")
    assert re.findall(r'"_synced_at" (\w+)', sql["create_snapshot"]) == ["TIMESTAMPNTZ"], sql["create_snapshot"]
    assert re.findall(r'"_stashed_at" (\w+)', sql["create_pending"]) == ["TIMESTAMPNTZ"], sql["create_pending"]
    for name in ("commit_insert", "stash_insert", "pending_ok_insert"):
        assert re.findall(r"AS (TIMESTAMP\w*)\)", sql[name]) == ["TIMESTAMPNTZ"], (name, sql[name])


@pytest.mark.parametrize("kind", ["duckdb", "postgres", "redshift", "bigquery", "databricks"])
def test_the_other_warehouses_snapshot_times_keep_their_type(kind):
    sql = _planner_sql(kind)
    assert re.findall(r'.\_synced_at. (\w+)', sql["create_snapshot"]) == [
        "DATETIME" if kind == "bigquery" else "TIMESTAMP"], sql["create_snapshot"]
