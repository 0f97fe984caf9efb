"""PostgreSQL: SQL through psycopg 3, reads as Arrow through ADBC, writes through COPY.

Config (dinsync.yml):
    warehouse:
      type: postgres
      dsn: ${env:DINSYNC_PG_DSN}      # or host / port / user / password / database
      sslmode: require               # optional
      search_path: [analytics]       # optional: schemas the model SQL finds unqualified names in
      settings: {work_mem: 64MB}     # optional: server settings of dinsync's sessions

The driver is the `postgres` extra: pip install 'dinsync[postgres]' (psycopg[binary],
adbc-driver-postgresql). Without ADBC, reads fall back to a server-side cursor.
"""
from __future__ import annotations

import os
import re
import urllib.parse
from typing import Any, Sequence

from .base import Capabilities, ErrorTranslation, Warehouse
from .errors import WarehouseSettingsError, scrub
from .pg_errors import PgErrors
from .pg_hash_forms import (ARRAY_SHAPE, SESSION_TEXT_FORMS, exact_hash_columns, extended_hash_problem, record_problem,
                            session_text_form, type_tree)
from .pg_sessions import PsycopgSessions
from .pg_settings_check import SEARCH_PATH, literal, options_refused, quote_role, settings_not_in_force
from .pg_streams import AdbcStream, CursorStream
from .pg_writes import CsvCopyWrite

DEFAULT_PORT = 5432
# Settings of dinsync's own sessions (the `settings` config overrides them). The plan's statements
# are large scans written into tables (CREATE TABLE AS); PostgreSQL's default costs rarely run
# those in parallel, which halves their time on two cores (measured: keys of 1M rows 2.5 s -> 1.3 s).
# JIT is off: the plan's statements read tables just created (no statistics yet), so PostgreSQL
# overestimates their cost and JIT-compiles them with inlining and optimisation, which took 6.4 s of
# a 6.8 s statement over 20,000 rows (EXPLAIN ANALYZE, 1M-row model, 2% churn).
# client_connection_check_interval (PostgreSQL 14+): while a statement runs, the server checks
# every second that the client is still there and ends the statement when it is gone. Without it,
# the statement of a run killed (`kill -9`, an orchestrator's SIGKILL) went on to its end (the plan
# of a slow model: minutes), holding its locks: the next run took the dead run's lock over at once,
# then waited behind it and failed creating the same plan table.
# idle_session_timeout (PostgreSQL 14+) off: a run's sessions sit idle while the platform answers
# (the main one, the whole send long); a role's reaper of forgotten sessions ended them, and every
# run of a send longer than it failed once it had sent everything. A session of a dinsync process
# that dies is closed with it (the server reads the end of the socket).
# default_transaction_isolation READ COMMITTED (PostgreSQL's default), whatever a role's or
# database's: dinsync's transactions are short writes of its own state tables, each statement a
# snapshot of its own, and its lock is a row of a primary key. Under a DBA's `serializable` default,
# two syncs checkpointing at once failed one run of three (measured, two syncs of 20,000 rows, a
# checkpoint each batch) with 'could not serialize access due to read/write dependencies' on the
# shared state tables: rows acknowledged since the last checkpoint were sent again by the next run.
SESSION_SETTINGS = {"parallel_setup_cost": "100", "parallel_tuple_cost": "0.01", "jit": "off",
                    "client_connection_check_interval": "1000", "idle_session_timeout": "0",
                    "default_transaction_isolation": "read committed"}
# Settings a server may not know (PostgreSQL 13 and older; 11 and older for tcp_user_timeout; other
# servers of its protocol): a connection refused for one of them ("unrecognized configuration
# parameter") is made again without it, unless the project's `settings:` asked for it.
OPTIONAL_SETTINGS = ("client_connection_check_interval", "idle_session_timeout", "tcp_user_timeout")
# Settings the diff relies on, which neither a `settings:` entry nor a role's default may change:
# the diff hashes each value's text form, and with extra_float_digits 0 or less a float8 is written
# with 15 significant digits (1.0000000000000002 as 1): a change of the last digits would be no
# change. From PostgreSQL 12 any positive value writes the shortest exact form (as the default 1).
# IntervalStyle likewise: an interval is refused, but one in a composite is sent as (and hashed
# in) the composite's text, and under `postgres_verbose` every row holding one was changed.
FIXED_SETTINGS = {"extra_float_digits": "3", "intervalstyle": "postgres"}
# Settings of the connection that streams a plan to the platform, over any other: its reader is
# the platform, so the stream lasts as long as sending does (hours at a platform's rate). A role's
# (or `settings:`) statement_timeout ended the COPY of the ADBC path once it ran that long, and
# idle_in_transaction_session_timeout the server-side cursor's transaction between two fetches;
# the run then failed, and each next one got as far again. The stream reads the plan (the model's
# SQL ran when it was planned, in the session's zone): the text of what it casts to text (a range,
# a composite) is written as the diff hashes it, in UTC and with bytea in hex, as a scalar
# timestamptz is sent; in the session's zone it was `-05` from one host, `+09` from another.
STREAM_SETTINGS = {"statement_timeout": "0", "idle_in_transaction_session_timeout": "0",
                   "TimeZone": "'UTC'", "bytea_output": "hex"}
# Settings of the statements on the state tables (runs, locks, sync_state...: StateStore), where the
# project's `settings:` do not set them: a LOCK TABLE or an ALTER TABLE left open on one (a DBA's
# session, a backup tool) made `dinsync status` and `serve` wait for it for ever. Waiting longer
# than this for a lock (`state_lock_timeout` seconds, the config's) fails the command as a transient
# error (exit 1: "lock timeout"). The plan's statements are not bounded: they may legitimately run
# long, or wait for a dbt run's swap.
STATE_WAIT_SETTINGS = {"statement_timeout": "5min"}
DEFAULT_STATE_LOCK_TIMEOUT = 15
# Settings libpq sends from the client's environment, which the server applies after the `options`
# a session's settings travel in: PGDATESTYLE=SQL undid DateStyle ISO (the diff then hashed another
# text of every date, and psycopg failed to read a timestamptz); PGTZ a `settings:` TimeZone. A
# session set up under one of them sets those settings again.
LIBPQ_ENV_SETTINGS = {"PGDATESTYLE": "datestyle", "PGTZ": "timezone", "PGGEQO": "geqo"}
# Settings libpq sends as keywords of its own (PostgresConnection), which win over a `-c` in
# `options`: not checked against the session (see _check_settings). application_name takes the
# configured value; client_encoding stays UTF-8, as dinsync reads text.
LIBPQ_KEYWORD_SETTINGS = frozenset({"application_name", "client_encoding"})
# How long a connection whose server stopped answering at the TCP level is kept (the `tcp_timeout`
# config, seconds; 0: the system's). A NAT, firewall or load balancer that drops a connection's
# packets sends no reset: a statement then waited for the kernel's retransmission timeout (~15
# minutes) and an idle session for its keepalive default (2 hours and more), the run stuck
# meanwhile. libpq's TCP keepalives (probes after half the bound idle, three more a sixth apart)
# and tcp_user_timeout (data unacknowledged that long) end it instead, as "connection timed out";
# a statement the server is still running answers the probes, so it is never cut.
DEFAULT_TCP_TIMEOUT = 60


def tcp_bounds(seconds: float | None) -> dict[str, int]:
    """libpq's parameters that give up a silent connection after about `seconds`."""
    if not seconds or seconds <= 0:
        return {}
    seconds = int(seconds)
    interval = max(1, seconds // 6)
    return {"keepalives": 1, "keepalives_idle": max(1, seconds - 3 * interval), "keepalives_interval": interval,
            "keepalives_count": 3, "tcp_user_timeout": seconds * 1000}


def server_tcp_bounds(seconds: float | None) -> dict[str, str]:
    """The same bounds on the server's side of a session (its settings): after a blackhole the
    server kept a run's sessions, and their locks, for its keepalive default (2 hours and more); the
    plan's stream, idle in its transaction, held the plan table, and the next run waited behind it."""
    client = tcp_bounds(seconds)
    if not client:
        return {}
    return {"tcp_keepalives_idle": str(client["keepalives_idle"]),
            "tcp_keepalives_interval": str(client["keepalives_interval"]),
            "tcp_keepalives_count": str(client["keepalives_count"]),
            "tcp_user_timeout": str(client["tcp_user_timeout"])}


class PostgresConnection:
    """Connection settings of a PostgreSQL-protocol server, shared by psycopg and ADBC."""

    def __init__(self, *, dsn: str | None = None, host: str | None = None, port: int | None = None,
                 user: str | None = None, password: str | None = None, database: str | None = None,
                 sslmode: str | None = None, search_path: Sequence[str] | str | None = None,
                 connect_timeout: int | None = 10, application_name: str = "dinsync",
                 options: dict[str, str] | None = None, tcp_timeout: float | None = DEFAULT_TCP_TIMEOUT):
        self.dsn = dsn or ""
        options = dict(options or {})
        # a `settings:` application_name is the keyword's: libpq's keyword wins over the `-c` in
        # `options`, and the session was silently named dinsync
        application_name = options.pop("application_name", None) or application_name
        # client_encoding: UTF-8 whatever PGCLIENTENCODING says (a keyword wins over libpq's
        # environment): ADBC reads text as UTF-8, so under LATIN1 `café` was sent as `caf\xe9`
        self.params: dict[str, Any] = {
            k: v for k, v in dict(host=host, port=port, user=user, password=password, dbname=database,
                                  sslmode=sslmode, connect_timeout=connect_timeout,
                                  application_name=application_name, client_encoding="UTF8").items()
            if v is not None
        }
        self.tcp_params = tcp_bounds(tcp_timeout)  # (those the DSN sets itself win: see conninfo)
        settings = dict(options or {})
        if search_path:
            settings[SEARCH_PATH] = search_path_setting(search_path)
        if settings:
            self.params["options"] = " ".join(
                f"-c {k}={_escape_option(str(v))}" for k, v in settings.items())
        self.secrets = [s for s in (password, dsn, *_dsn_passwords(dsn or "")) if s]

    def conninfo(self) -> str:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        given = conninfo_to_dict(self.dsn) if self.dsn else {}
        tcp = {k: v for k, v in self.tcp_params.items() if k not in given}
        params = dict(self.params)
        # the user's own `options` (the DSN's, else PGOPTIONS) go first: dinsync's replaced them, and
        # a DSN's `-c search_path=analytics` was dropped without a word (the model read elsewhere);
        # on a clash dinsync's, later, win
        theirs = given.get("options") if "options" in given else os.environ.get("PGOPTIONS")
        if theirs and params.get("options"):
            params["options"] = f"{theirs} {params['options']}"
        info = make_conninfo(self.dsn, **params, **tcp)
        password = conninfo_to_dict(info).get("password")
        if password:
            self.secrets.append(str(password))
        return info


def search_path_setting(search_path: Sequence[str] | str) -> str:
    paths = [search_path] if isinstance(search_path, str) else list(search_path)
    return ",".join('"' + p.replace('"', '""') + '"' for p in paths)


_URI_PASSWORD = re.compile(r"^[a-z]+://[^/@?#]*?:([^/@?#]*)@", re.IGNORECASE)
_KV_PASSWORD = re.compile(r"\bpassword\s*=\s*('(?:[^'\\]|\\.)*'?|\S+)", re.IGNORECASE)
# `password:` (or another mark instead of `=`): libpq quotes the whole token it cannot read,
# `missing "=" after "password:<the password>"`
_KV_PASSWORD_TYPO = re.compile(r"\bpassword[^\w\s=']+(\S+)", re.IGNORECASE)
# An unquoted `password=` value holding a space (or a line break): libpq ends it there and quotes
# the next word, `missing "=" after "<the password's next word>"`: the words up to the next `key=`
_KV_PASSWORD_REST = re.compile(r"\bpassword\s*=\s*[^\s']\S*((?:\s+(?![^\s=]+\s*=)[^\s=]+)+)", re.IGNORECASE)
# A URI's port that is not a number (`user@host:<password>/db`, the user's `:` forgotten): libpq
# quotes it, `invalid integer value "<the password>" for connection option "port"`
_URI_BAD_PORT = re.compile(r"^[a-z][a-z0-9+.-]*://(?:[^@/?#]*@)?(?:\[[^\]]*\]|[^:/?#\[]*):([^/?#,]*[^\d/?#,][^/?#,]*)",
                           re.IGNORECASE)


# A URI's password as meant when it holds an unescaped `@`, `/`, `?`, `#` or `:`: up to the last `@`
_URI_USERINFO = re.compile(r"^[a-z][a-z0-9+.-]*://[^:@/?#]*:(.*)@", re.IGNORECASE | re.DOTALL)
_URI_DELIMITERS = "@/?#:"


def _dsn_passwords(dsn: str) -> list[str]:
    """The password of a DSN as written (and unquoted / percent-decoded), found without parsing
    it: libpq's message about a malformed DSN quotes the token it stopped at, which may be it.
    In a URI whose password holds an unescaped delimiter (`user:p@ss@host`), libpq ends the
    password at it and reads the rest as host, port or database, which its messages quote
    ("failed to resolve host 'ss@host'"): each such rest is a secret too."""
    found = [m.group(1) for m in _URI_PASSWORD.finditer(dsn)] + [m.group(1) for m in _KV_PASSWORD.finditer(dsn)]
    found += [m.group(i) for m in _KV_PASSWORD_TYPO.finditer(dsn) for i in (0, 1)]
    found += [word for m in _KV_PASSWORD_REST.finditer(dsn) for word in m.group(1).split()]
    found += [m.group(1) for m in _URI_BAD_PORT.finditer(dsn)]
    meant = _URI_USERINFO.match(dsn)
    if meant:
        raw = meant.group(1)
        found += [raw] + [raw[i + 1:] for i, c in enumerate(raw) if c in _URI_DELIMITERS and len(raw) - i > 4]
    out = []
    for raw in found:
        out += [raw, raw.strip("'"), urllib.parse.unquote(raw)]
    return [s for s in dict.fromkeys(out) if s]


_DATE_ORDERS = {"dmy", "mdy", "ymd", "euro", "european", "us", "noneuro", "noneuropean"}


def _iso_dates(settings: dict[str, str]) -> dict[str, str]:
    """The sessions' settings with DateStyle ISO (a `datestyle` setting keeps only its day/month
    order): psycopg parses timestamptz text in ISO only, so another style (a setting, or a role's
    or database's default) failed every read of one (NotImplementedError)."""
    out = {k: v for k, v in settings.items() if k.lower() != "datestyle"}
    orders = [str(v) for k, v in settings.items() if k.lower() == "datestyle" and str(v).lower() in _DATE_ORDERS]
    out["datestyle"] = ",".join(["ISO", *orders[-1:]])
    return out


def _literal(value: str) -> str:
    """A SQL string literal (standard_conforming_strings: a backslash is itself)."""
    return "'" + value.replace("'", "''") + "'"


def _escape_option(value: str) -> str:
    """A value inside libpq's `options` (-c name=value): spaces and backslashes escaped."""
    return value.replace("\\", "\\\\").replace(" ", "\\ ")


class PostgresWarehouse(PgErrors, ErrorTranslation, PsycopgSessions, CsvCopyWrite, AdbcStream, Warehouse):
    type_name = "postgres"
    display_name = "PostgreSQL"
    extra = "postgres"
    capabilities = Capabilities(
        dialect="postgres",
        hash_type="BIGINT",
        merge=True,  # PostgreSQL 15+
        temp_tables=True,
        transactional_ddl=True,
        enforces_primary_key=True,
        lock_arbiter="primary_key",
        text_type="TEXT",
        max_identifier_length=63,
        unquoted_case="lower",
        quoted_case_sensitive=True,
        paramstyle="pyformat",
        progress_seconds=0.0,
    )
    stream_settings = STREAM_SETTINGS

    def __init__(self, dsn: str | None = None, host: str | None = None, port: int | None = None,
                 user: str | None = None, password: str | None = None, database: str | None = None,
                 sslmode: str | None = None, search_path: Sequence[str] | str | None = None,
                 connect_timeout: int | None = 10, settings: dict[str, str] | None = None,
                 tcp_timeout: float | None = DEFAULT_TCP_TIMEOUT, state_lock_timeout: int = DEFAULT_STATE_LOCK_TIMEOUT):
        from . import require_driver

        self._psycopg = require_driver("psycopg", "postgres", package="psycopg")
        self.driver_errors = (self._psycopg.Error,)
        try:
            self._adbc = require_driver("adbc_driver_postgresql.dbapi", "postgres", package="adbc-driver-postgresql")
            self.driver_errors += (self._adbc.Error,)
        except Exception:
            self._adbc = None  # reads fall back to a server-side cursor
        server_tcp = server_tcp_bounds(tcp_timeout)
        options = _iso_dates({**SESSION_SETTINGS, **server_tcp, **(settings or {})}) | FIXED_SETTINGS
        # settings that libpq's environment variables (PGDATESTYLE, PGTZ) override: set again
        env = {var: name for var, name in LIBPQ_ENV_SETTINGS.items() if os.environ.get(var)}
        self._env_overridden = {k: str(v) for k, v in options.items() if k.lower() in env.values()}
        optional = [k for k in OPTIONAL_SETTINGS if k not in (settings or {})]
        configured = {k.lower() for k in settings or {}}
        state_waits = {"lock_timeout": f"{int(state_lock_timeout)}s", **STATE_WAIT_SETTINGS}
        self.state_wait_settings = {k: v for k, v in state_waits.items() if k not in configured}
        # what a session must run with, checked on the first one (_check_settings): all but the
        # defaults of SESSION_SETTINGS, which make statements faster or a killed run's end quicker
        self._required_settings = {k: str(v) for k, v in options.items()
                                   if (k not in SESSION_SETTINGS and k not in server_tcp or k.lower() in configured)
                                   and k.lower() not in LIBPQ_KEYWORD_SETTINGS}
        if search_path:
            self._required_settings[SEARCH_PATH] = search_path_setting(search_path)
        self._settings_checked = False
        send_options = True
        self._init_sessions()
        while True:
            self.settings = PostgresConnection(
                dsn=dsn, host=host, port=port, user=user, password=password, database=database, sslmode=sslmode,
                search_path=search_path if send_options else None, connect_timeout=connect_timeout,
                options=options if send_options else None, tcp_timeout=tcp_timeout)
            self._secrets = self.settings.secrets
            with self.translating("connecting"):
                self._conninfo = self.settings.conninfo()
            try:
                self.conn  # connect now: a wrong password or host fails here, with a clear error
                return
            except Exception as exc:
                if send_options and options_refused(exc):
                    send_options = False  # a pooler's refusal: the role's defaults may hold them (checked)
                    continue
                unknown = [k for k in optional if k in options and f'parameter "{k}"' in str(exc)]
                if not unknown:
                    raise
                del options[unknown[0]]  # a server without it: the sessions go without

    def _connect_psycopg(self):
        # prepare_threshold None: psycopg prepared a statement run 5 times (a lock's refresh, a
        # checkpoint's) as a named statement of the session, which a pooler in transaction mode
        # (PgBouncer before 1.21) does not carry to the next transaction's server session: the run
        # failed with 'prepared statement "_pg3_0" does not exist'
        conn = self._psycopg.connect(self._conninfo, autocommit=True, prepare_threshold=None)
        for name, value in self._env_overridden.items():
            conn.execute(f"SET {name} = {_literal(value)}")
        if not self._settings_checked:
            try:
                self._check_settings(conn)
            except BaseException:
                conn.close()
                raise
            self._settings_checked = True
        return conn

    def _check_settings(self, conn) -> None:
        """Fail (a configuration error) unless session `conn` runs with the settings dinsync needs:
        a connection pooler may refuse or drop the startup `options` they travel in
        (pg_settings_check). Checked once: every session is made alike."""
        role, missing = settings_not_in_force(conn, self._required_settings)
        if not missing:
            return
        listed = ", ".join(f"{n} = {want} (the session has {have})" for n, (want, have) in missing.items())
        fix = "; ".join(f"ALTER ROLE {quote_role(role)} SET {n} = {literal(want)}" for n, (want, _) in missing.items())
        raise WarehouseSettingsError(scrub(
            f"PostgreSQL: dinsync's session does not run with the settings it sent when connecting: {listed}. "
            "A connection pooler (PgBouncer) refused or dropped the connection's `options` parameter they "
            "travel in (PgBouncer's ignore_startup_parameters = options)", self._secrets),
            hint=scrub(f"connect dinsync to PostgreSQL directly, or make them the defaults of its role: {fix}",
                       self._secrets), warehouse=self.display_name)

    def _adbc_connect(self):
        con = self._adbc.connect(self._conninfo)
        if self._env_overridden:
            with con.cursor() as cur:
                for name, value in self._env_overridden.items():
                    cur.execute(f"SET {name} = {_literal(value)}")
        return con

    def stream(self, sql, batch_rows=50_000, params=None):
        if self._adbc is None:
            return CursorStream.stream(self, sql, batch_rows, params)
        return AdbcStream.stream(self, sql, batch_rows, params)

    def column_problem(self, column: str, kind: str) -> str | None:
        """The diff's row fingerprint hashes each mapped value with its type's extended hash
        function (HASH_RECORD_EXTENDED): json, money, xml, bit, geometric types have none."""
        return extended_hash_problem(column, kind)

    def send_problem(self, column: str, kind: str) -> str | None:
        """An anonymous record (pg_hash_forms.record_problem) cannot be held in the plan's table."""
        return record_problem(column, kind)

    def exact_hash_columns(self, sql: str, columns: list[str]) -> set[str]:
        """The fingerprint hashes each value with its type's own hash, which under a case-insensitive
        collation (or for citext) ignores case: those columns are hashed as text (see
        pg_hash_forms.NATIVE_HASH_EXACT)."""
        return exact_hash_columns(self.columns(sql), columns)

    def recorded_column_types(self, sql: str, columns: list[str]) -> dict[str, str]:
        """Every mapped column's type: HASH_RECORD_EXTENDED hashes a value with its type's own hash,
        which gives a `timestamp` and the `timestamptz` of the same instant, or a `real` and the
        `double precision` it widens to, one hash although their text (what is sent) differs."""
        kinds = dict(self.columns(sql))
        return {c: kinds[c] for c in columns if c in kinds}

    def stable_hash_forms(self, sql: str, columns: list[str]) -> dict[str, str]:
        """The mapped columns holding a type whose text depends on a session setting (a timestamptz,
        also in an array, a composite or a domain: pg_hash_forms.SESSION_TEXT_FORMS), hashed as the text a
        session of PostgreSQL's defaults writes, whatever the session's."""
        if not columns:
            return {}
        oids = self.column_oids(sql)
        with self.translating("reading the columns of a query"), self.conn.cursor() as cur:
            types = type_tree(lambda q, p: cur.execute(q, p).fetchall(), {oids[c] for c in columns if c in oids})
        forms = {c: session_text_form("@X@", oids[c], types, SESSION_TEXT_FORMS) for c in columns if c in oids}
        return {c: f for c, f in forms.items() if f is not None}

    def shape_hash_forms(self, sql: str, columns: list[str]) -> dict[str, str]:
        """The mapped array columns (a domain's too: a result column names its base type) of a type
        psycopg knows (built-in: those of a type of the database are hashed as their text, see
        exact_hash_columns): an array's hash reads its elements only, so `{{1,2},{3,4}}` ->
        `{1,2,3,4}` left the fingerprint as it was, and the platform kept [[1,2],[3,4]]
        (pg_hash_forms.ARRAY_SHAPE)."""
        if not columns:
            return {}
        oids = self.column_oids(sql)
        known = self.conn.adapters.types
        arrays = {c for c in columns if c in oids and getattr(known.get(oids[c]), "array_oid", 0) == oids[c]}
        return {c: ARRAY_SHAPE for c in sorted(arrays)}
