"""PostgreSQL reached through a connection pooler (PgBouncer), whose handling of the startup
`options` (where dinsync's session settings travel) and of a session's state between transactions
(transaction pooling) differs from a direct connection. The pooler is emulated by
tests/warehouses/startup_proxy.py (refusing or dropping `options`) and by the server itself (a
session's prepared statements are what transaction pooling loses): no pooler need be installed."""
from __future__ import annotations

import psycopg
import pytest

from dinsync.warehouses import WarehouseSettingsError, connect
from tests.warehouses.startup_proxy import StartupProxy
from tests.warehouses.support import PG_DSN, admin_execute, require_postgres, unique_name


@pytest.fixture
def role():
    """A login role (`<name>`) whose own schema holds table `people` (one row, 'theirs'), with
    `public.<name>_people` beside it."""
    require_postgres()
    name = unique_name("dinsync_pooled")
    admin_execute(f"CREATE ROLE {name} LOGIN", f"CREATE SCHEMA {name} AUTHORIZATION {name}",
                  f"CREATE TABLE {name}.people AS SELECT 'theirs' AS who",
                  f"GRANT SELECT ON {name}.people TO {name}")
    try:
        yield name
    finally:
        admin_execute(f"DROP SCHEMA {name} CASCADE", f"DROP OWNED BY {name}", f"DROP ROLE {name}")


@pytest.fixture
def proxy(request):
    p = StartupProxy(request.param)
    yield p
    p.close()


@pytest.mark.parametrize("proxy", ["drop", "refuse", "refuse-setting"], indirect=True)
def test_a_pooler_losing_the_session_settings_fails_the_connection_naming_them(proxy, role):
    """With PgBouncer's `ignore_startup_parameters = options` the session ran with the server's
    defaults, silently: the configured search_path gone, the model's unqualified `people` was read
    from wherever the default path found one. By default PgBouncer refuses `options`, which failed
    as an unreachable warehouse ('run again later'). Now the connection fails at once as a
    configuration error naming each missing setting and the ALTER ROLE that would supply it."""
    with pytest.raises(WarehouseSettingsError) as caught:
        connect("postgres", dsn=proxy.dsn(user=role), search_path=[role], settings={"work_mem": "7MB"})
    message = str(caught.value) + " " + (caught.value.hint or "")
    assert "search_path" in message and "work_mem = 7MB" in message and "pooler" in message
    assert f'ALTER ROLE "{role}" SET search_path' in message
    assert "extra_float_digits" not in message  # the server's default (1) writes floats exactly as well
    assert "jit" not in message  # a default of dinsync's for speed, not needed


@pytest.mark.parametrize("proxy", ["drop", "refuse", "refuse-setting"], indirect=True)
def test_a_pooler_losing_the_session_settings_is_fine_when_the_role_has_them(proxy, role):
    """The remedy the error names: the settings as defaults of dinsync's role, which every server
    session of a pool starts with (transaction pooling included). A refused `options` is left out
    of the next attempt."""
    admin_execute(f"ALTER ROLE {role} SET search_path = {role}", f"ALTER ROLE {role} SET work_mem = '7MB'")
    wh = connect("postgres", dsn=proxy.dsn(user=role), search_path=[role], settings={"work_mem": "7MB"})
    try:
        assert wh.rows("SELECT who FROM people") == [{"who": "theirs"}]
    finally:
        wh.close()
    if proxy.mode != "drop":
        assert "options" not in proxy.startups[-1]


def test_a_direct_connection_runs_with_its_settings_whatever_the_role_says(role):
    """The check does not get in the way of a direct connection: `options` win over a role's
    defaults."""
    admin_execute(f"ALTER ROLE {role} SET search_path = public", f"ALTER ROLE {role} SET extra_float_digits = 0")
    wh = connect("postgres", dsn=f"{PG_DSN} user={role}", search_path=[role])
    try:
        assert wh.rows("SELECT who FROM people") == [{"who": "theirs"}]
        assert wh.scalar("SELECT current_setting('extra_float_digits')") == "3"
    finally:
        wh.close()


def test_no_statement_is_left_prepared_on_the_session():
    """psycopg prepares a statement run five times (a lock's refresh, a checkpoint's update) as a
    named statement of the server session; a pooler in transaction mode (PgBouncer before 1.21,
    or without max_prepared_statements) runs the next transaction on another server session, where
    it does not exist: the sync failed with 'prepared statement "_pg3_0" does not exist'."""
    require_postgres()
    wh = connect("postgres", dsn=PG_DSN)
    try:
        for _ in range(8):
            wh.execute("SELECT 1 WHERE :x = 1", {"x": 1})
            wh.rows("SELECT :x AS x", {"x": 1})
        assert wh.scalar("SELECT COUNT(*) FROM pg_prepared_statements") == 0
    finally:
        wh.close()


def test_the_settings_check_reads_values_as_the_server_writes_them(role):
    """A setting's value is compared as the server writes it (`64MB` and `65536kB` alike), and a
    search_path by the schemas it finds (the role's `x` is the `"x"` dinsync sends)."""
    from dinsync.warehouses.pg_settings_check import settings_not_in_force

    admin_execute(f"ALTER ROLE {role} SET work_mem = '65536kB'", f"ALTER ROLE {role} SET search_path = {role}")
    with psycopg.connect(f"{PG_DSN} user={role}", autocommit=True) as conn:
        name, missing = settings_not_in_force(conn, {"work_mem": "64MB", "search_path": f'"{role}"'})
        assert (name, missing) == (role, {})
        _, missing = settings_not_in_force(conn, {"work_mem": "32MB", "search_path": '"public"', "jit": "off"})
        assert missing == {"work_mem": ("32MB", "64MB"), "search_path": ('"public"', role), "jit": ("off", "on")}
        assert conn.execute("SELECT current_setting('work_mem')").fetchone()[0] == "64MB"  # (all rolled back)


def test_a_read_only_role_is_refused_as_a_permission_naming_the_setting(role):
    """A DBA's `default_transaction_read_only = on` for a role that reads models (or a standby
    server): dinsync cannot write its state. It failed as a SQL error with no hint; it is now a
    permission error saying which setting (or server) makes the session read-only."""
    from dinsync.state import StateStore
    from dinsync.warehouses import WarehousePermissionError

    admin_execute(f"ALTER ROLE {role} SET default_transaction_read_only = on")
    wh = connect("postgres", dsn=f"{PG_DSN} user={role}")
    try:
        with pytest.raises(WarehousePermissionError) as caught:
            StateStore(wh, role).migrate()
        assert "read-only" in str(caught.value) and "default_transaction_read_only" in caught.value.hint
    finally:
        wh.close()


def test_a_pool_in_statement_mode_is_a_settings_error_naming_the_pool_mode():
    """PgBouncer in statement mode refuses every transaction block (SQLSTATE 08P01): dinsync
    reported it as an unreachable warehouse, 'run again later', and each run failed alike. (The
    error as psycopg raises PgBouncer's, measured through PgBouncer 1.18.)"""
    require_postgres()
    wh = connect("postgres", dsn=PG_DSN)
    try:
        exc = psycopg.errors.lookup("08P01")("transaction blocks not allowed in statement pooling mode")
        err = wh.translate(exc, "connecting")
        assert isinstance(err, WarehouseSettingsError) and err.exit_code == 3
        assert "pool_mode" in err.hint and "run again later" not in err.hint
    finally:
        wh.close()


def test_a_sync_runs_through_a_pool_in_transaction_mode(wh_postgres, iterable_sandbox, tmp_path):
    """Through a pooler in transaction mode each transaction may run on another server session:
    what a session keeps between transactions (a prepared statement, a SET, a temporary table, an
    advisory lock) is not there for the next one. A first sync, a change and a no-op sync run
    through such a pool (TransactionPool: two server sessions in turn) as they do directly."""
    from tests.warehouses.startup_proxy import TransactionPool
    from tests.warehouses.support import one_sync_project

    sandbox, thread = iterable_sandbox
    pool = TransactionPool()
    try:
        env = {"DINSYNC_TEST_PG_DSN": pool.dsn()}
        cli = one_sync_project(tmp_path / "project", wh_postgres.warehouse_yaml(), thread.url, {"plan": "plan"}, env)
        people = "SELECT 'u' || i || '@x.com' AS email, {plan} AS plan FROM generate_series(1, 30) AS i"
        for plan in ("'free'", "'free'", "'pro'", "'pro'"):  # a first sync, no change, a change, no change
            run = cli("sync", people.format(plan=plan))
            assert run.returncode == 0, run.stdout + run.stderr
        assert wh_postgres.run_statuses("people") == ["success"] * 4
        assert sandbox.users.get("u7@x.com")["dataFields"]["plan"] == "pro"
        assert pool.switches > 20
    finally:
        pool.close()


def test_a_role_defaulting_to_serializable_runs_dinsync_at_read_committed(role):
    """A DBA's `default_transaction_isolation = serializable` for the role: two syncs checkpointing
    at once on the shared state tables failed a run with 'could not serialize access' (one run of
    three, measured). dinsync's sessions run at READ COMMITTED, unless `settings:` say otherwise."""
    admin_execute(f"ALTER ROLE {role} SET default_transaction_isolation = serializable")
    wh = connect("postgres", dsn=f"{PG_DSN} user={role}")
    configured = connect("postgres", dsn=f"{PG_DSN} user={role}",
                         settings={"default_transaction_isolation": "repeatable read"})
    try:
        with wh.transaction():
            assert wh.scalar("SELECT current_setting('transaction_isolation')") == "read committed"
        with configured.transaction():
            assert configured.scalar("SELECT current_setting('transaction_isolation')") == "repeatable read"
    finally:
        wh.close()
        configured.close()


def test_an_application_name_in_settings_names_the_session_and_is_not_refused():
    """`settings: {application_name: ...}` (a DBA's monitoring reads it) passes the config check, but
    libpq's own `application_name` keyword ("dinsync") overrode the `-c` sent in `options`: the
    session was silently named dinsync, and since the settings check (this session) every command
    failed, exit 3, blaming a connection pooler on a direct connection. The configured name is now
    the keyword's; client_encoding (UTF-8, which dinsync reads) stays dinsync's and is not checked."""
    require_postgres()
    wh = connect("postgres", dsn=PG_DSN, settings={"application_name": "reporting", "client_encoding": "LATIN1"})
    try:
        assert wh.rows("SELECT current_setting('application_name') AS a, current_setting('client_encoding') AS e") \
            == [{"a": "reporting", "e": "UTF8"}]
    finally:
        wh.close()


@pytest.mark.parametrize("where", ["dsn", "PGOPTIONS"])
def test_the_users_own_connection_options_are_kept(where, monkeypatch):
    """A DSN's `options=-c search_path=...` (or PGOPTIONS) was replaced by dinsync's own `options`
    (its session settings, always sent): the session ran with the default search_path, and the
    model's unqualified names were read from another schema, without a word. The user's come first
    now, dinsync's after them (a clash: dinsync's, later, win)."""
    require_postgres()
    theirs = "-c search_path=information_schema -c statement_timeout=123s"
    if where == "dsn":
        dsn = f"{PG_DSN} options='{theirs}'"
    else:
        dsn = PG_DSN
        monkeypatch.setenv("PGOPTIONS", theirs)
    wh = connect("postgres", dsn=dsn)
    try:
        got = wh.rows("SELECT current_setting('search_path') AS p, current_setting('statement_timeout') AS t, "
                      "current_setting('jit') AS j")
        assert got == [{"p": "information_schema", "t": "123s", "j": "off"}]
    finally:
        wh.close()


def test_a_role_out_of_connections_is_unavailable_and_a_startup_only_setting_is_a_settings_error(role):
    """`too many connections for role "x"` (a role's CONNECTION LIMIT, a pool's) read as an
    authentication error ('check the warehouse user and password': not retried by an orchestrator),
    its `role "` matched first; it is the warehouse being busy, a transient error. And a setting the
    server refuses at connect only by when it is set (`transaction_isolation`: "SET TRANSACTION
    ISOLATION LEVEL must be called before any query") read as an unreachable warehouse ('run again
    later'), whose memo then failed the next connections of 30 s unsent: it is a settings error."""
    from dinsync.warehouses import WarehouseAuthError, WarehouseUnavailable

    admin_execute(f"ALTER ROLE {role} CONNECTION LIMIT 1")
    with psycopg.connect(f"{PG_DSN} user={role}", autocommit=True):
        with pytest.raises(WarehouseUnavailable) as caught:
            connect("postgres", dsn=f"{PG_DSN} user={role}")
        assert not isinstance(caught.value, WarehouseAuthError)
        assert "too many connections" in str(caught.value)
    with pytest.raises(WarehouseSettingsError, match="must be called before any query"):
        connect("postgres", dsn=PG_DSN, settings={"transaction_isolation": "serializable"})
