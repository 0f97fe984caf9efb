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
