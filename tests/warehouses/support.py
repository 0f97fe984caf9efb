"""Test support for warehouses: the local PostgreSQL server, unique schemas, and the functions
a stock PostgreSQL lacks to run Redshift SQL.

PostgreSQL is expected on 127.0.0.1:5432 (trust auth, database `test`); override with
DINSYNC_TEST_PG_DSN. When it is missing, tests that need it fail when CI is set, and skip with
a message saying how to start it otherwise.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Callable

import pytest

# connect_timeout: a server that is down refuses at once whatever it is; 3 s made a connection of
# the suite fail on a loaded 2-core machine (a fresh-clone CI run on 2026-12-05, at load ~2.3)
PG_DSN = os.environ.get("DINSYNC_TEST_PG_DSN", "host=127.0.0.1 port=5432 dbname=test connect_timeout=30")
START_HINT = "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"

# Redshift built-ins the Redshift SQL uses that PostgreSQL does not have, created in a schema on
# the test session's search_path. FNV_HASH here is not FNV-1a: the diff only needs a stable
# 64-bit hash with Redshift's signature (value, optional BIGINT seed); GETDATE() is the
# transaction's local timestamp, as on Redshift.
REDSHIFT_FUNCTIONS = [
    "CREATE FUNCTION {s}.fnv_hash(v anyelement, seed bigint DEFAULT -3750763034362895579) RETURNS bigint "
    "LANGUAGE sql IMMUTABLE AS $$ SELECT hashtextextended(v::text, seed) $$",
    "CREATE FUNCTION {s}.getdate() RETURNS timestamp LANGUAGE sql STABLE AS $$ SELECT localtimestamp $$",
]


@functools.lru_cache(maxsize=1)
def postgres_problem() -> str | None:
    """None when the test PostgreSQL server answers, else why not."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[test]')"
    try:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means: no server to test against
        return f"PostgreSQL is not reachable at {PG_DSN!r}: {' '.join(str(exc).split())[:200]}"
    return None


def require_postgres() -> None:
    problem = postgres_problem()
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{problem}; CI needs it ({START_HINT})", pytrace=False)
    pytest.skip(f"{problem}; {START_HINT}")


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def admin_execute(*statements: str) -> None:
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def create_redshift_functions(schema: str) -> None:
    admin_execute(*(f.format(s=f'"{schema}"') for f in REDSHIFT_FUNCTIONS))


def drop_schemas(*schemas: str) -> None:
    admin_execute(*(f'DROP SCHEMA IF EXISTS "{s}" CASCADE' for s in schemas))


WAREHOUSE_KINDS = ("duckdb", "postgres", "redshift", "snowflake")  # redshift: its code path against PostgreSQL;
# snowflake: the real connector against fakesnow


class WarehouseUnderTest:
    """A connected adapter of one kind with a private schema for models (`schema`) and a unique
    state schema name (`state_schema`); `open()` gives another connection to the same place."""

    def __init__(self, kind: str, tmp_path):
        self.kind = kind
        self.tmp_path = tmp_path
        self.schema = unique_name("dsm") if kind != "duckdb" else "main"
        self.state_schema = unique_name("dss") if kind != "duckdb" else "dinsync"
        self.opened: list = []
        if kind == "snowflake":
            # The state schema's name is fixed: the SQL rendered for one test (cached on disk, keyed
            # by the state schema) serves the next. Tests of one session run one at a time.
            self.state_schema = SF_STATE_SCHEMA
            self.server = fakesnow_server()
            sf_admin(f'DROP SCHEMA IF EXISTS {SF_DATABASE}."{self.state_schema}" CASCADE',
                     f'CREATE SCHEMA IF NOT EXISTS {SF_DATABASE}."{self.schema}"')
        elif kind != "duckdb":
            require_postgres()
            admin_execute(f'CREATE SCHEMA "{self.schema}"')
            if kind == "redshift":
                create_redshift_functions(self.schema)
        self.wh = self.open()

    def options(self) -> dict:
        if self.kind == "duckdb":
            return {"path": str(self.tmp_path / "warehouse.duckdb")}
        if self.kind == "snowflake":
            return self.server.options(self.schema)
        return {"dsn": PG_DSN, "search_path": [self.schema, "public"]}

    def open(self):
        from dinsync.warehouses import connect

        wh = connect(self.kind, **self.options())
        self.opened.append(wh)
        return wh

    def close(self) -> None:
        for wh in self.opened:
            wh.close()
        if self.kind == "snowflake":
            sf_admin(*(f'DROP SCHEMA IF EXISTS {SF_DATABASE}."{s}" CASCADE' for s in (self.schema, self.state_schema)))
        elif self.kind != "duckdb":
            drop_schemas(self.schema, self.state_schema)


# --------------------------------------------------------------------------- Snowflake (fakesnow)
# The real snowflake-connector-python 4.x talks to fakesnow in server mode (`python -m fakesnow -s`)
# on 127.0.0.1: one server per test session (started on first use, stopped at exit), a private
# model schema and state schema per test in the database SF_DATABASE. fakesnow keeps its data in
# one in-memory DuckDB database shared by all sessions; it accepts any password.
# DINSYNC_TEST_FAKESNOW_PORT=N uses a server already listening on 127.0.0.1:N instead.
SF_DATABASE = "DINSYNC_TEST"
SF_STATE_SCHEMA = "dss_snowflake"
ROOT = str(Path(__file__).resolve().parents[2])  # tests.warehouses.fakesnow_main runs from here
SF_PASSWORD = "fakesnow-test-password"  # fakesnow checks none; passed through ${env:} like a real one
# Results of more rows come as Snowflake sends large ones: a first chunk inline, the rest downloaded
# from URLs (fakesnow_main.py), so that every read of more rows takes the connector's download path.
FAKESNOW_CHUNK_ROWS = 2000
FAKESNOW_HINT = "pip install -e '.[test]' installs fakesnow and snowflake-connector-python 4.x"


class FakesnowServer:
    def __init__(self, port: int | None = None):
        """Start a server on a free port; or, with `port`, use one already running there."""
        import socket
        import subprocess
        import sys
        import tempfile
        import time

        if port:
            self.port, self.proc, self.log = port, None, None
            return
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = tempfile.NamedTemporaryFile(prefix="fakesnow-", suffix=".log", delete=False)
        # fakesnow makes a folder of its own in the temporary folder when imported (its stage
        # bucket) and never removes it: the server's go into one that stop() removes
        self.tmp = tempfile.mkdtemp(prefix="dinsync-fakesnow-")
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.warehouses.fakesnow_main", "-s", "-p", str(self.port), "--host", "127.0.0.1"],
                                     stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT,
                                     env=dict(os.environ, TMPDIR=self.tmp, FAKESNOW_CHUNK_ROWS=str(FAKESNOW_CHUNK_ROWS)))
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"fakesnow exited with {self.proc.returncode}: {self.tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"fakesnow did not listen on 127.0.0.1:{self.port} within 60 s: {self.tail()}")
                time.sleep(0.1)

    def tail(self) -> str:
        with open(self.log.name, errors="replace") as f:
            return " ".join(f.read()[-600:].split())

    def options(self, schema: str | None = None) -> dict:
        return {"account": "fakesnow", "user": "dinsync", "password": SF_PASSWORD, "database": SF_DATABASE,
                "schema": schema, "host": "127.0.0.1", "port": self.port, "protocol": "http",
                "login_timeout": 20, "network_timeout": 120}

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except Exception:  # noqa: BLE001
                self.proc.kill()
        os.unlink(self.log.name)
        shutil.rmtree(self.tmp, ignore_errors=True)


_FAKESNOW: list = []  # [server] or [problem text]


def fakesnow_server() -> FakesnowServer:
    """The session's fakesnow server (started on first use). Fails in CI when it cannot start;
    skips elsewhere, saying what is missing."""
    if not _FAKESNOW:
        try:
            import fakesnow  # noqa: F401
            import snowflake.connector  # noqa: F401
        except ImportError as exc:
            # (not "X is not installed": an installed package that fails to import, e.g. fakesnow
            # with a sqlglot it was not made for, says so in its own words)
            _FAKESNOW.append(f"fakesnow cannot be imported: {exc} ({FAKESNOW_HINT})")
        else:
            try:
                server = FakesnowServer(int(os.environ.get("DINSYNC_TEST_FAKESNOW_PORT") or 0) or None)
            except Exception as exc:  # noqa: BLE001
                _FAKESNOW.append(f"fakesnow could not start: {exc}")
            else:
                import atexit

                atexit.register(server.stop)
                _FAKESNOW.append(server)
                sf_admin("CREATE DATABASE IF NOT EXISTS " + SF_DATABASE)
    found = _FAKESNOW[0]
    if isinstance(found, str):
        if os.environ.get("CI"):
            pytest.fail(f"{found}; CI needs it", pytrace=False)
        pytest.skip(found)
    return found


def sf_admin(*statements: str) -> None:
    import snowflake.connector

    server = _FAKESNOW[0]
    with snowflake.connector.connect(**{k: v for k, v in server.options().items() if v is not None},
                                     session_parameters={"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False}) as conn:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)


def one_sync_project(root: Path, warehouse_yaml: str, base_url: str, fields: dict[str, str],
                     env: dict[str, str]) -> Callable[[str, str], subprocess.CompletedProcess]:
    """A project folder with one Iterable users sync (match on `email`, `fields`: model column ->
    field) of model `people` on the given warehouse. Returns `cli(command, select)`: writes the
    model's SELECT and runs `dinsync <command>` in a subprocess (the Iterable sandbox's key set;
    `command` may hold options: "validate --offline")."""
    from tests.conftest import TEST_KEY

    (root / "models").mkdir(parents=True)
    (root / "syncs").mkdir()
    (root / "dinsync.yml").write_text("version: 1\n" + warehouse_yaml + textwrap.dedent(f"""\
        destinations:
          iterable: {{type: iterable, api_key: "${{env:ITERABLE_TEST_KEY}}", base_url: "{base_url}"}}
        """))
    mapped = "".join(f"  {json.dumps(column)}: {field}\n" for column, field in fields.items())
    (root / "syncs" / "people.yml").write_text(
        "model: people\ndestination: iterable\nservice: users\nmode: upsert\n"
        "match: {column: email, field: email}\nfields:\n" + mapped)

    def cli(command: str, select: str) -> subprocess.CompletedProcess:
        (root / "models" / "people.sql").write_text(f"-- primary_key: email\n-- model_type: user\n{select}\n")
        return subprocess.run([sys.executable, "-m", "dinsync.cli", "--project-dir", str(root), *command.split()],
                              env=dict(os.environ, ITERABLE_TEST_KEY=TEST_KEY, **env),
                              capture_output=True, text=True, timeout=120)

    return cli


def cli_on_warehouse(root: Path, warehouse_yaml: str, env: dict[str, str], *command: str) -> tuple[int, dict, str]:
    """`dinsync --json COMMAND` on a one-sync project (one_sync_project) on the given warehouse,
    whose Iterable destination is a closed port (nothing can be sent): (exit code, its JSON, all it
    printed: stdout and stderr).
    For the failures found before anything is sent (a login refused, credentials unusable)."""
    cli = one_sync_project(root, warehouse_yaml, "http://127.0.0.1:9", {"first_name": "firstName"}, env)
    proc = cli(" ".join(("--json", *command)), "select 'a@x.com' as email, 'A' as first_name")
    try:
        return proc.returncode, json.loads(proc.stdout), proc.stdout + proc.stderr
    except ValueError:
        raise AssertionError(f"no JSON from dinsync {command} (exit {proc.returncode}): {proc.stdout!r} {proc.stderr!r}")


def ran(sql: str, statements: list[str]) -> bool:
    """`sql` (a planner's `render`) is among the `statements` run, whatever time its `now` marker
    was bound to as it ran (statements.NEEDS_NOW)."""
    import re

    from dinsync.diff.render import PARAMS

    # (with its UTC offset where TIMESTAMP is an instant: Capabilities.timestamp_is_instant)
    pattern = re.compile(r"'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}(\+00:00)?'".join(
        map(re.escape, sql.split(PARAMS["now"]))))
    return any(pattern.fullmatch(r) for r in statements)


def run_cli(root, target, *args, timeout: float = 180) -> tuple[int, dict]:
    """`dinsync --json ARGS` on the project at `root` against `target`: (exit code, its JSON)."""
    from tests.conftest import TEST_KEY

    env = dict(os.environ, ITERABLE_TEST_KEY=TEST_KEY, **target.env)
    proc = subprocess.run([sys.executable, "-m", "dinsync.cli", "--project-dir", str(root), "--json", *args],
                          env=env, capture_output=True, text=True, timeout=timeout)
    try:
        return proc.returncode, json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f"no JSON from dinsync {args} (exit {proc.returncode}): {proc.stdout!r} {proc.stderr!r}")


def write_iterable_project(root: Path, target, base_url: str, model_sql: str, fields: list[str],
                           max_rejected_pct: int = 90) -> None:
    """A project at `root`: the model `customers` (`model_sql`) on `target`, synced to the Iterable
    sandbox at `base_url` by sync `users` mapping each of `fields` to a field of the same name."""
    (root / "models").mkdir(parents=True)
    (root / "syncs").mkdir()
    (root / "models" / "customers.sql").write_text(model_sql)
    (root / "dinsync.yml").write_text("version: 1\n" + target.warehouse_yaml() + textwrap.dedent(f"""\
        destinations:
          iterable:
            type: iterable
            api_key: ${{env:ITERABLE_TEST_KEY}}
            base_url: {base_url}
        """))
    (root / "syncs" / "users.yml").write_text(
        "model: customers\ndestination: iterable\nservice: users\nmode: upsert\n"
        "match: {column: email, field: email}\nfields:\n" + "".join(f"  {c}: {c}\n" for c in fields)
        + f"thresholds: {{max_rejected_pct: {max_rejected_pct}}}\n")
