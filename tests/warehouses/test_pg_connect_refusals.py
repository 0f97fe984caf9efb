"""A PostgreSQL (or Redshift) server that refuses the connection's settings: a database or a role
that does not exist is a configuration error (exit 3: nothing was sent, and running again as is
cannot help), not a warehouse to try again later (exit 1, which orchestrators retry for an hour);
a server that does not answer stays exit 1. Through the CLI, with `--json` carrying the same code."""
from __future__ import annotations

import socket
import uuid

import pytest

from dinsync.errors import ExitCode
from tests.warehouses.support import PG_DSN, cli_on_warehouse, require_postgres


def _dsn(**parts: str) -> str:
    """PG_DSN (key=value form) with some parts replaced."""
    kept = [p for p in PG_DSN.split() if p.split("=", 1)[0] not in parts]
    return " ".join(kept + [f"{k}={v}" for k, v in parts.items()])


def _cli(tmp_path, kind: str, dsn: str, *command: str) -> tuple[int, dict, str]:
    return cli_on_warehouse(tmp_path / "proj", f"warehouse:\n  type: {kind}\n  dsn: ${{env:AUD_PG_DSN}}\n"
                            "state_schema: dinsync_refusals\n", {"AUD_PG_DSN": dsn}, *command)


@pytest.mark.parametrize("kind", ["postgres", "redshift"])
@pytest.mark.parametrize("command", [("validate", "--offline"), ("sync",), ("plan",)])
def test_a_database_that_does_not_exist_is_a_configuration_error(tmp_path, kind, command):
    require_postgres()
    missing = f"dinsync_missing_{uuid.uuid4().hex[:8]}"
    code, out, _ = _cli(tmp_path, kind, _dsn(dbname=missing), *command)
    assert (code, out["exit_code"]) == (ExitCode.CONFIG_ERROR, ExitCode.CONFIG_ERROR), out
    assert f'database "{missing}" does not exist' in out["error"]
    assert "database" in out["hint"] and "connection settings" in out["hint"]


@pytest.mark.parametrize("kind", ["postgres", "redshift"])
def test_a_role_that_does_not_exist_is_a_configuration_error(tmp_path, kind):
    require_postgres()
    role = f"dinsync_nobody_{uuid.uuid4().hex[:8]}"
    code, out, _ = _cli(tmp_path, kind, _dsn(user=role), "sync")
    assert (code, out["exit_code"]) == (ExitCode.CONFIG_ERROR, ExitCode.CONFIG_ERROR), out
    assert f'role "{role}" does not exist' in out["error"]
    assert "user and password" in out["hint"]


def test_a_server_that_does_not_answer_is_still_worth_another_try(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, out, _ = _cli(tmp_path, "postgres", _dsn(host="127.0.0.1", port=str(port)), "sync")
    assert (code, out["exit_code"]) == (ExitCode.RUN_FAILED, ExitCode.RUN_FAILED), out
    assert "Connection refused" in out["error"] and "run again later" in out["hint"]


@pytest.mark.parametrize("message", [
    'connection to server at "db", port 5432 failed: FATAL:  password authentication failed for user "dinsync"',
    'connection to server at "db", port 5432 failed: FATAL:  no pg_hba.conf entry for host "10.0.0.1", user "x"',
    'connection to server at "db", port 5432 failed: fe_sendauth: no password supplied',
])
def test_a_refused_login_is_a_configuration_error(message):
    """With password authentication PostgreSQL answers a role that does not exist with "password
    authentication failed" (it does not tell which): a wrong password, a missing role and a
    connection pg_hba.conf does not allow are the same mistake, in the connection settings."""
    import psycopg

    from dinsync.warehouses.pg_errors import classify_pg

    cls = classify_pg(psycopg.OperationalError(message))
    assert cls.exit_code == ExitCode.CONFIG_ERROR and cls.kind == "credentials", cls


@pytest.mark.parametrize("message, exit_code, kind", [
    # ALLOW_CONNECTIONS false (maintenance, a restore): the database is there, for later (SQLSTATE 55000)
    ('connection to server at "db", port 5432 failed: FATAL:  database "analytics" is not currently '
     'accepting connections', ExitCode.RUN_FAILED, "unavailable"),
    # no CONNECT privilege on a database that exists (42501): a grant, as any other permission error
    ('connection to server at "db", port 5432 failed: FATAL:  permission denied for database "analytics"\n'
     'DETAIL:  User does not have CONNECT privilege.', ExitCode.RUN_FAILED, "permission"),
])
def test_a_database_that_exists_is_not_said_missing(message, exit_code, kind):
    """Only `database "x" does not exist` is a database missing (exit 3, "fix its name, or create
    it"): the other connection failures naming a database were read as it, one a state that ends
    by itself, the other a grant to give, both told the database does not exist."""
    import psycopg

    from dinsync.warehouses.pg_errors import classify_pg

    cls = classify_pg(psycopg.OperationalError(message))
    assert (cls.exit_code, cls.kind) == (exit_code, kind), cls


def test_a_database_not_accepting_connections_is_worth_another_try(tmp_path):
    """Through the CLI against a database whose ALLOW_CONNECTIONS is false, as during maintenance."""
    require_postgres()
    import psycopg

    name = f"dinsync_closed_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        try:
            code, out, _ = _cli(tmp_path, "postgres", _dsn(dbname=name), "sync")
        finally:
            admin.execute(f'DROP DATABASE "{name}"')
    assert (code, out["exit_code"]) == (ExitCode.RUN_FAILED, ExitCode.RUN_FAILED), out
    assert "not currently accepting connections" in out["error"] and "does not exist" not in out["hint"], out
