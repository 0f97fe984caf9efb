"""A sync name makes table names (`snap_<sync>`, `unsettle_<sync>`, ...): on PostgreSQL, whose
identifiers hold 63 bytes, a name too long for them is a configuration error before anything is
sent. PostgreSQL truncated `snap_<sync>` (two syncs whose names shared their first 58 characters
shared one snapshot), and the run failed on `ack_<sync>` only after it had sent every row, again
on each next run."""
from __future__ import annotations

import pytest

from dinsync.diff import DiffSpec, Planner
from dinsync.warehouses.errors import WarehouseSqlError
from tests.warehouses.test_conformance import SYNC, written_project


@pytest.fixture
def project(tmp_path, wh_postgres, iterable_sandbox):
    return written_project(tmp_path, wh_postgres, iterable_sandbox, rows=5)


def test_a_sync_name_too_long_for_postgres_table_names_is_refused_before_sending(project, wh_postgres):
    long_one, long_two = "x" * 60 + "_one", "x" * 60 + "_two"
    synced = project.root / "syncs" / f"{SYNC}.yml"
    text = synced.read_text()
    synced.unlink()
    for name in (long_one, long_two):
        (project.root / "syncs" / f"{name}.yml").write_text(text)
    result = project.sync()
    assert result["exit_code"] == 3, result
    assert [(i["file"], i["hint"]) for i in result["issues"]] == [
        (f"syncs/{name}.yml", "rename the sync file: a name of at most 54 characters (it becomes part of "
                              "table names)") for name in (long_one, long_two)]
    assert all("longer than the 63 bytes PostgreSQL allows" in i["message"] for i in result["issues"])
    assert project.requests() == 0 and project.users() == {}
    assert not [r for r in wh_postgres.rows(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = :s", {"s": wh_postgres.state_schema})
        if r["table_name"].startswith(("snap_", "plan_"))]

    for name in (long_one, long_two):  # a name that fits runs
        (project.root / "syncs" / f"{name}.yml").unlink()
    (project.root / "syncs" / f"{'y' * 54}.yml").write_text(text)
    first = project.sync()
    assert first["exit_code"] == 0, first
    assert len(project.users()) == 5
    assert project.sync()["runs"][0]["sent"] == 0


def test_the_planner_refuses_a_name_the_warehouse_would_truncate(wh_postgres):
    spec = DiffSpec(sync="x" * 55, model_sql="SELECT 1 AS id, 'a@x.com' AS email", key_column="email",
                    key_normalization="email", fields=[("id", "id")], state_schema=wh_postgres.state_schema)
    with wh_postgres.connect() as wh, pytest.raises(WarehouseSqlError, match="longer than the 63 bytes"):
        Planner(wh, spec)
