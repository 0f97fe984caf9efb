"""A role that may not use dinsync's state schema (PostgreSQL, and Redshift's code path against it):
no USAGE or CREATE on a schema another role owns, or a schema that does not exist in a database
where the role may not create one. A grant that is missing does not come back by running again: a
configuration error (exit 3), as the same grant missing on the model's schema, naming the schema,
what the role lacks and the GRANT to run. Until 2026-12-07 `sync` failed with exit 1 (orchestrators
retry it) and `validate` passed where the schema was missing or only readable. `validate` tries it
in a transaction it rolls back: nothing is left behind."""
from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass

import psycopg
import pytest

from dinsync.errors import ExitCode
from tests.warehouses.support import PG_DSN, admin_execute, one_sync_project, require_postgres, unique_name


@dataclass
class Place:
    role: str
    model: str
    state: str

    def dsn(self) -> str:
        return " ".join(p for p in PG_DSN.split() if not p.startswith("user=")) + f" user={self.role}"

    def warehouse_yaml(self, kind: str) -> str:
        return textwrap.dedent(f"""\
            warehouse:
              type: {kind}
              dsn: ${{env:STATEPRIV_PG_DSN}}
            state_schema: {self.state}
            """)

    def select(self) -> str:
        return f"select email, first_name from {self.model}.people"

    def cli(self, root, kind: str, base_url: str = "http://127.0.0.1:9", dsn: str | None = None):
        """`cli(command)`: dinsync COMMAND on a one-sync project reading the model's table as this
        role (`dsn`: as another), to the Iterable at `base_url` (by default a closed port)."""
        run = one_sync_project(root, self.warehouse_yaml(kind), base_url, {"first_name": "firstName"},
                               {"STATEPRIV_PG_DSN": dsn or self.dsn()})
        return lambda command: run(command, self.select())

    def json_cli(self, root, kind: str, *command: str) -> tuple[int, dict, str]:
        proc = self.cli(root, kind)(" ".join(("--json", *command)))
        try:
            return proc.returncode, json.loads(proc.stdout), proc.stdout + proc.stderr
        except ValueError:
            raise AssertionError(f"no JSON from {command} (exit {proc.returncode}): {proc.stdout!r} {proc.stderr!r}")

    def state_left(self) -> list[tuple]:
        """The state schema's owner, if it exists, and the tables in it."""
        with psycopg.connect(PG_DSN, autocommit=True) as admin:
            schema = admin.execute("SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = %s",
                                   (self.state,)).fetchall()
            tables = admin.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (self.state,)).fetchall()
        return schema + tables


@pytest.fixture
def place():
    """A login role that may read the model's table `people` (in a schema of its own) and nothing
    else: no CREATE on the database, no privilege on the state schema's name."""
    require_postgres()
    p = Place(unique_name("dsp_role"), unique_name("dsp_model"), unique_name("dsp_state"))
    admin_execute(f"CREATE ROLE {p.role} LOGIN", f"CREATE SCHEMA {p.model}",
                  f"CREATE TABLE {p.model}.people AS SELECT 'a@x.com'::text AS email, 'A'::text AS first_name",
                  f"GRANT USAGE ON SCHEMA {p.model} TO {p.role}", f"GRANT SELECT ON {p.model}.people TO {p.role}")
    try:
        yield p
    finally:
        admin_execute(f"DROP SCHEMA IF EXISTS {p.model} CASCADE", f"DROP SCHEMA IF EXISTS {p.state} CASCADE",
                      f"DROP OWNED BY {p.role} CASCADE", f"DROP ROLE {p.role}")


def _database() -> str:
    with psycopg.connect(PG_DSN, autocommit=True) as admin:
        return admin.execute("SELECT current_database()").fetchone()[0]


def _tables_of_another_role(p: Place) -> None:
    """The state tables created by another role (a first run as the server's superuser), the
    schema granted to this one."""
    from dinsync.state import StateStore
    from dinsync.warehouses import connect

    wh = connect("postgres", dsn=PG_DSN)
    try:
        StateStore(wh, p.state).migrate()
    finally:
        wh.close()
    admin_execute(f"GRANT USAGE, CREATE ON SCHEMA {p.state} TO {p.role}")


# how each case is set up (by the server's superuser), and the GRANT the error must name
CASES = {
    "missing": (lambda p: None, lambda p: f'GRANT CREATE ON DATABASE "{_database()}" TO "{p.role}"'),
    "not granted": (lambda p: admin_execute(f"CREATE SCHEMA {p.state}"),
                    lambda p: f'GRANT USAGE, CREATE ON SCHEMA "{p.state}" TO "{p.role}"'),
    "usage only": (lambda p: admin_execute(f"CREATE SCHEMA {p.state}", f"GRANT USAGE ON SCHEMA {p.state} TO {p.role}"),
                   lambda p: f'GRANT USAGE, CREATE ON SCHEMA "{p.state}" TO "{p.role}"'),
    "tables of another role": (_tables_of_another_role, lambda p: 'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL '
                                                                  f'TABLES IN SCHEMA "{p.state}" TO "{p.role}"'),
}


@pytest.mark.parametrize("kind", ["postgres", "redshift"])
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("command", [("validate", "--offline"), ("validate",), ("sync",), ("plan",), ("status",)])
def test_a_state_schema_the_role_may_not_use_is_a_configuration_error(tmp_path, place, kind, case, command):
    setup, grant = CASES[case]
    setup(place)
    before = place.state_left()
    code, out, said = place.json_cli(tmp_path / "proj", kind, *command)
    assert (code, out.get("exit_code")) == (ExitCode.CONFIG_ERROR, ExitCode.CONFIG_ERROR), out
    assert f"state schema {place.state}" in out["error"], out
    assert "permission denied" in out["error"], out
    assert grant(place) in out["hint"], out
    assert "Traceback" not in said
    assert place.state_left() == before  # no schema created, no table created in it


@pytest.mark.parametrize("kind", ["postgres", "redshift"])
def test_the_models_schema_refused_is_the_same_exit_code(tmp_path, place, kind):
    """(what the state schema's refusal is held to: the model's schema without USAGE)"""
    admin_execute(f"CREATE SCHEMA {place.state} AUTHORIZATION {place.role}",
                  f"REVOKE USAGE ON SCHEMA {place.model} FROM {place.role}")
    code, out, _ = place.json_cli(tmp_path / "proj", kind, "sync")
    assert (code, out.get("exit_code")) == (ExitCode.CONFIG_ERROR, ExitCode.CONFIG_ERROR), out
    assert f"permission denied for schema {place.model}" in out["issues"][0]["message"], out


def test_validate_tries_the_state_schema_and_leaves_nothing_behind(tmp_path, place, iterable_sandbox):
    """Once granted, `validate` passes, and its rolled-back try created nothing: the first `sync`
    creates the state tables and sends."""
    sandbox, thread = iterable_sandbox
    admin_execute(f"CREATE SCHEMA {place.state}", f"GRANT USAGE ON SCHEMA {place.state} TO {place.role}")
    cli = place.cli(tmp_path / "proj", "postgres", thread.url)
    refused = cli("validate")
    assert refused.returncode == ExitCode.CONFIG_ERROR, (refused.stdout, refused.stderr)
    assert f'GRANT USAGE, CREATE ON SCHEMA "{place.state}" TO "{place.role}"' in refused.stderr
    admin_execute(f"GRANT CREATE ON SCHEMA {place.state} TO {place.role}")
    before = place.state_left()  # the schema's owner, no table
    for command in ("validate --offline", "validate"):
        proc = cli(command)
        assert proc.returncode == 0, (command, proc.stdout, proc.stderr)
        assert place.state_left() == before, command
    proc = cli("sync")
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert len(sandbox.users) == 1
    assert ("meta",) in place.state_left()


def test_validate_creates_no_missing_state_schema(tmp_path, place, iterable_sandbox):
    """A role that may create the state schema (here the server's superuser) passes `validate`,
    which does not create it: the first `sync` does."""
    sandbox, thread = iterable_sandbox
    cli = place.cli(tmp_path / "proj", "postgres", thread.url, dsn=PG_DSN)
    for command in ("validate --offline", "validate"):
        proc = cli(command)
        assert proc.returncode == 0, (command, proc.stdout, proc.stderr)
        assert place.state_left() == [], command
    proc = cli("sync")
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert len(sandbox.users) == 1
    assert ("meta",) in place.state_left()


@pytest.mark.parametrize("kind", ["postgres", "redshift"])
@pytest.mark.parametrize("command", ["sync", "plan"])
def test_a_sync_table_another_role_owns_is_the_same_configuration_error(tmp_path, place, kind, command):
    """The sync's own tables in the state schema (its snapshot, plan, pending and scratch tables)
    are written by the planner, not through the state's statements: the snapshot handed to another
    role after the first run failed `sync` and `plan` with exit 1 (orchestrators retry it) and the
    generic hint. It is the state's refusal: exit 3, naming the table and how to give it back."""
    admin_execute(f"CREATE SCHEMA {place.state} AUTHORIZATION {place.role}")
    cli = place.cli(tmp_path / "proj", kind)
    first = cli("--json sync")  # (a closed port: the tables are created, nothing sent)
    assert first.returncode == ExitCode.RUN_FAILED, (first.stdout, first.stderr)
    [snap] = [t for (t,) in place.state_left()[1:] if t.startswith("snap_")]
    with psycopg.connect(PG_DSN, autocommit=True) as admin:
        admin.execute(f"ALTER TABLE {place.state}.{snap} OWNER TO CURRENT_USER")
    proc = cli(f"--json {command}")
    code, out, said = proc.returncode, json.loads(proc.stdout), proc.stdout + proc.stderr
    error = out.get("error") or out["runs"][0]["error"]
    hint = out.get("hint") or out["runs"][0]["hint"]
    assert (code, out.get("exit_code")) == (ExitCode.CONFIG_ERROR, ExitCode.CONFIG_ERROR), out
    assert f"state schema {place.state}" in error and snap in error, out
    assert f'ALTER TABLE "{place.state}"."{snap}" OWNER TO "{place.role}"' in hint, out
    assert "Traceback" not in said
