"""A sync's tables in the state schema (snap_<sync>, pend_<sync>, and on warehouses without a
scratch database of their own plan_<sync> and the scratch tables cur_, prior_, cand_, ack_, ...)
that exist without being dinsync's are never dropped, replaced or altered: a state_schema shared
with other tables (`public`, a dbt schema) may hold a `plan_users` of someone else's."""
from __future__ import annotations

import pytest

from dinsync.diff import DiffSpec, Planner
from dinsync.errors import ConfigError
from tests.warehouses.support import WarehouseUnderTest


@pytest.mark.parametrize("kind, table", [
    ("duckdb", "snap_s1"), ("duckdb", "pend_s1"),
    ("postgres", "snap_s1"), ("postgres", "plan_s1"), ("postgres", "cur_s1"), ("postgres", "prior_s1"),
    ("postgres", "ack_s1"), ("postgres", "acked_s1"),
])
def test_a_table_of_a_syncs_names_that_dinsync_did_not_create_is_left_alone(tmp_path, kind, table):
    target = WarehouseUnderTest(kind, tmp_path)
    wh, schema = target.wh, target.state_schema
    try:
        wh.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        wh.execute(f'CREATE TABLE "{schema}"."{table}" (important VARCHAR, _loaded_at VARCHAR)')
        wh.execute(f"INSERT INTO \"{schema}\".\"{table}\" VALUES ('theirs', 'x')")
        wh.execute(f'CREATE TABLE "{target.schema}".people (email VARCHAR, name VARCHAR)')
        wh.execute(f"INSERT INTO \"{target.schema}\".people VALUES ('a@x.com', 'Ada')")
        spec = DiffSpec(sync="s1", model_sql=f'SELECT * FROM "{target.schema}".people', key_column="email",
                        key_normalization="email", fields=[("name", "name")], state_schema=schema)
        for attempt in (lambda: Planner(wh, spec).ensure_state(), lambda: Planner(wh, spec).plan(),
                        lambda: Planner(wh, spec).plan(full_refresh=True)):
            with pytest.raises(ConfigError) as info:
                attempt()
            [issue] = info.value.issues
            assert f"{table} (with important" in issue.message and "did not create" in issue.message
            assert "state_schema" in issue.hint
        assert wh.query(f'SELECT * FROM "{schema}"."{table}"').to_pylist() == [{"important": "theirs",
                                                                                "_loaded_at": "x"}]
        assert wh.table_columns(schema, table) == ["important", "_loaded_at"]  # nothing added
    finally:
        target.close()
