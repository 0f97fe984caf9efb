"""A role that may not create schemas, given a state schema its DBA made (a common PostgreSQL
set-up): dinsync runs in it. PostgreSQL checks the database's CREATE privilege before whether a
schema exists, so `CREATE SCHEMA IF NOT EXISTS` of that schema was refused, every command failing
with "permission denied for database"."""
from __future__ import annotations

import uuid

import psycopg
import pytest

from dinsync.diff import DiffSpec, Planner
from dinsync.state import StateStore
from dinsync.warehouses import WarehousePermissionError, connect
from tests.warehouses.support import PG_DSN, require_postgres


@pytest.fixture
def confined_role():
    """A role without CREATE on the database, owning a schema made for it and a table in it."""
    require_postgres()
    name = f"dinsync_confined_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_DSN, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {name} LOGIN")
        admin.execute(f"REVOKE CREATE ON DATABASE test FROM {name}")
        admin.execute(f"CREATE SCHEMA {name} AUTHORIZATION {name}")
        admin.execute(f"CREATE TABLE {name}.people AS SELECT i AS id, 'user' || i || '@x.com' AS email "
                      "FROM generate_series(1, 5) AS i")
        admin.execute(f"ALTER TABLE {name}.people OWNER TO {name}")
    try:
        yield name
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {name} CASCADE")
            admin.execute(f"DROP ROLE {name}")


def test_a_state_schema_made_by_the_dba_is_used_without_create_on_the_database(confined_role):
    dsn = " ".join(p for p in PG_DSN.split() if not p.startswith("user="))
    w = connect("postgres", dsn=f"{dsn} user={confined_role}")
    try:
        with pytest.raises(WarehousePermissionError):  # the role may not create a schema of its own
            w.execute(f"CREATE SCHEMA {confined_role}_other")
        StateStore(w, confined_role).migrate()
        p = Planner(w, DiffSpec(sync="s", model_sql=f"SELECT * FROM {confined_role}.people", key_column="email", key_normalization="email",
                                fields=[("id", "id")], state_schema=confined_role), cache=False)
        p.ensure_state()
        assert p.plan().added == 5
        assert p.commit_acknowledged([f"user{i}@x.com" for i in range(1, 6)]) == 5
        p.ensure_state()  # the next run
        assert p.plan().unchanged == 5
        with pytest.raises(WarehousePermissionError):  # a schema that does not exist is still refused
            StateStore(w, f"{confined_role}_missing").migrate()
    finally:
        w.close()
