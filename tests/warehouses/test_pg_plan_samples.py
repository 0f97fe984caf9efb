"""`dinsync plan`'s samples on PostgreSQL of dates and timestamps beyond the calendar Python holds
('infinity', 4713 BC, year 10000): the sample shows such a value as out of range, as the DuckDB
path does, instead of failing the whole plan ("date too large (after year 10K)"); the sync rejects
that row alone."""
from __future__ import annotations

import pytest

from dinsync.diff import DiffSpec, Planner
from tests.warehouses.support import WarehouseUnderTest


@pytest.fixture
def pg(tmp_path):
    t = WarehouseUnderTest("postgres", tmp_path)
    yield t
    t.close()


def test_samples_of_dates_beyond_the_calendar_say_so(pg):
    s = pg.schema
    pg.wh.execute(f'CREATE TABLE "{s}".people (email TEXT, born DATE, seen TIMESTAMPTZ)')
    pg.wh.execute(f"""INSERT INTO "{s}".people VALUES ('a@x.com', 'infinity', '-infinity'),
                      ('b@x.com', '4713-01-01 BC', '10000-01-01 00:00:00+00'), ('c@x.com', '2024-05-17', NULL)""")
    p = Planner(pg.wh, DiffSpec(sync="s", model_sql=f'SELECT * FROM "{s}".people', key_column="email",
                                key_normalization="email", fields=[("born", "born"), ("seen", "seen")],
                                state_schema=pg.state_schema), cache=False)
    p.ensure_state()
    assert p.plan().added == 3
    rows = {r["key"]: r["fields"] for r in p.sample("added", limit=5)}
    assert str(rows["c@x.com"]["born"]) == "2024-05-17" and rows["c@x.com"]["seen"] is None
    for key, field in (("a@x.com", "born"), ("a@x.com", "seen"), ("b@x.com", "born"), ("b@x.com", "seen")):
        assert "out of range" in str(rows[key][field]), (key, field, rows[key][field])
