"""Errors of the warehouses that speak the PostgreSQL protocol, translated: a SQLSTATE (psycopg's,
or the one in ADBC's message) or, for libpq's connection failures that carry none, the message's
words -> the WarehouseError class (`classify_pg`); the `PgErrors` mixin adds the hints for server
timeouts, refused session settings and types the diff cannot hash.
"""
from __future__ import annotations

import re

from . import errors as E


_SQLSTATE_CLASSES: dict[str, type[E.WarehouseError]] = {
    "28": E.WarehouseLoginRefused,  # invalid authorization specification (28P01: invalid password)
    "08": E.WarehouseUnavailable,  # connection exception
    "53": E.WarehouseUnavailable,  # insufficient resources
    "57": E.WarehouseUnavailable,  # operator intervention (statement timeout, shutdown)
    "58": E.WarehouseUnavailable,  # system error (I/O)
    "40": E.WarehouseConflict,  # transaction rollback (serialization failure, deadlock)
    "23": E.WarehouseConstraintViolation,  # integrity constraint violation
}
_SQLSTATES: dict[str, type[E.WarehouseError]] = {
    "42P01": E.WarehouseObjectMissing,  # undefined table
    "3F000": E.WarehouseObjectMissing,  # invalid schema name
    "3D000": E.WarehouseDatabaseMissing,  # invalid catalog (database) name
    "42703": E.WarehouseObjectMissing,  # undefined column
    "42501": E.WarehousePermissionError,  # insufficient privilege
    "25006": E.WarehousePermissionError,  # read-only transaction: a role's default, a standby server
    # lock_timeout: another transaction holds a lock the statement waited for (a dbt run swapping
    # the model's table in, an ALTER TABLE); class 55 is otherwise a statement to fix
    "55P03": E.WarehouseLockTimeout,
}
# Timeouts the server applies, and what to do about each (the class's hint, "could not be reached
# ... run again later" or "another transaction changed the same tables", says neither).
_TIMEOUT_HINTS = (
    ("canceling statement due to lock timeout",
     "another transaction holds a lock on a table the statement needed (a dbt run replacing the model's "
     "table, an ALTER TABLE, a long open transaction: see pg_locks); run again once it ends "
     "(lock_timeout, in warehouse.settings or the role's defaults, is how long to wait for it)"),
    ("canceling statement due to statement timeout",
     "the statement ran longer than statement_timeout (warehouse.settings in dinsync.yml, or the role's "
     "or database's default): raise it for dinsync, e.g. settings: {statement_timeout: 30min}, or make "
     "the model faster; as they are, the next runs will time out too"),
)
# libpq connection failures (and ADBC's errors mid-stream) carry no SQLSTATE: their text says what happened.
_CONNECT_MESSAGES: tuple[tuple[str, type[E.WarehouseError]], ...] = (
    # libpq cannot parse the connection settings (see conninfo_uri_parse / conninfo_parse): nothing
    # was reached; these were "could not be reached ... run again later" (exit 1)
    ("in connection info string", E.WarehouseSettingsError),  # missing "=" after ..., unterminated quote
    ("for connection option", E.WarehouseSettingsError),  # invalid integer value "x" for connection option "port"
    ("invalid connection option", E.WarehouseSettingsError),
    ("invalid uri query parameter", E.WarehouseSettingsError),
    ("invalid percent-encoded token", E.WarehouseSettingsError),
    ("unexpected spaces found in", E.WarehouseSettingsError),
    ("sslmode value", E.WarehouseSettingsError),  # invalid sslmode value: "x"
    # the server refuses a session setting (warehouse.settings, sent as -c options): FATAL at connect
    ("unrecognized configuration parameter", E.WarehouseSettingsError),
    ("invalid value for parameter", E.WarehouseSettingsError),
    ("must be called before any query", E.WarehouseSettingsError),  # settings: {transaction_isolation: ...}
    # a role's CONNECTION LIMIT (or the server's max_connections) reached: busy, not refused (before
    # `role "` below, which read it as a wrong user or password)
    ("too many connections", E.WarehouseUnavailable),
    # the login refused, a database that does not exist: settings to fix (exit 3), not to try again
    ("password authentication failed", E.WarehouseLoginRefused),
    ("no password supplied", E.WarehouseLoginRefused),
    ("role \"", E.WarehouseLoginRefused),  # role "x" does not exist
    ("no pg_hba.conf entry", E.WarehouseLoginRefused),
    ("authentication failed", E.WarehouseLoginRefused),
    # a database that exists, refused for a while (ALLOW_CONNECTIONS false: maintenance, a restore)
    # or to this role (no CONNECT privilege): neither is a name to fix (before `database "` below)
    ("is not currently accepting connections", E.WarehouseUnavailable),
    ("permission denied for database", E.WarehousePermissionError),
    ("database \"", E.WarehouseDatabaseMissing),  # database "x" does not exist
    ("permission denied", E.WarehousePermissionError),
    ("connection refused", E.WarehouseUnavailable),
    ("timeout expired", E.WarehouseUnavailable),
    ("could not translate host name", E.WarehouseUnavailable),
    ("server closed the connection", E.WarehouseUnavailable),
    ("connection is closed", E.WarehouseUnavailable),
    ("the connection is lost", E.WarehouseUnavailable),
    ("could not receive data", E.WarehouseUnavailable),
    ("could not send data", E.WarehouseUnavailable),
    ("no route to host", E.WarehouseUnavailable),
    ("network is unreachable", E.WarehouseUnavailable),
    # operator intervention (SQLSTATE class 57), as ADBC's errors mid-stream say it, without a state
    ("terminating connection due to", E.WarehouseUnavailable),
    ("canceling statement due to", E.WarehouseUnavailable),
)


# A connection pooler's refusal of what dinsync does, whatever SQLSTATE it carries (PgBouncer's is
# 08P01, a connection exception: "could not be reached ... run again later", and every run alike)
_POOL_MODE_REFUSED = "not allowed in statement pooling mode"  # transaction blocks, prepared statements...
POOL_MODE_HINT = ("dinsync runs transactions (its lock, its state's writes, the plan's stream): connect it to "
                  "PostgreSQL directly, or through a pool in session or transaction mode (PgBouncer's pool_mode)")


# A pooler's refusal of a startup parameter ("unsupported startup parameter: options", "...
# in options: jit"): the server was reached, and what to send must change (postgres.py then connects
# without `options`). As a connection failure it was taken for the server's absence, and the
# warehouse's next connections of the following 30 s, that one included, failed at once unsent.
_STARTUP_PARAMETER_REFUSED = "unsupported startup parameter"


def classify_pg(exc: BaseException) -> type[E.WarehouseError] | None:
    if _POOL_MODE_REFUSED in str(exc) or _STARTUP_PARAMETER_REFUSED in str(exc):
        return E.WarehouseSettingsError
    state = getattr(exc, "sqlstate", None) or _adbc_sqlstate(exc)
    if state:
        if state in _SQLSTATES:
            return _SQLSTATES[state]
        if state[:2] in _SQLSTATE_CLASSES:
            return _SQLSTATE_CLASSES[state[:2]]
        return None
    text = str(exc).lower()
    for needle, cls in _CONNECT_MESSAGES:
        if needle in text:
            return cls
    if type(exc).__name__ in ("OperationalError", "InterfaceError"):
        return E.WarehouseUnavailable
    return None


def _adbc_sqlstate(exc: BaseException) -> str | None:
    state = getattr(exc, "sqlstate", None)
    if state:
        return state
    text = str(exc)
    marker = "SQLSTATE: "
    if marker in text:
        return text.split(marker, 1)[1][:5]
    return None


_UNQUALIFIED_RELATION = re.compile(r'relation "[^".]+" does not exist')


# the table a refusal names ("permission denied for table x", "must be owner of table x")
_REFUSED_TABLE = re.compile(r'(?:permission denied for|must be owner of) (?:table|relation) "?([^\s".]+)"?')


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PgErrors:
    def classify(self, exc: BaseException) -> type[E.WarehouseError] | None:
        return classify_pg(exc)

    def state_refusal(self, schema: str, exc: E.WarehouseError) -> tuple[str, str]:
        """What dinsync's role lacks on its state schema, and the GRANT that gives it (named with the
        session's role and database; placeholders when they cannot be read)."""
        try:
            found = self.rows("SELECT current_user AS role, current_database() AS db")[0]  # type: ignore[attr-defined]
            role, database = _ident(str(found["role"])), _ident(str(found["db"]))
        except Exception:  # (the statement that failed may have been the session's last)
            role, database = "<dinsync's role>", "<the database>"
        text = str(exc)
        if "permission denied for database" in text:  # CREATE SCHEMA of a schema that does not exist
            return (f"the CREATE privilege on database {database} to create it (it does not exist)",
                    f"GRANT CREATE ON DATABASE {database} TO {role}; or create it for that role: "
                    f"CREATE SCHEMA {_ident(schema)} AUTHORIZATION {role}")
        if "permission denied for schema" in text:
            return (f"the USAGE and CREATE privileges on schema {schema} (it reads its tables and creates "
                    "tables there)", f"GRANT USAGE, CREATE ON SCHEMA {_ident(schema)} TO {role}")
        grant = f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {_ident(schema)} TO {role}"
        table = _REFUSED_TABLE.search(text)
        if table is None:
            return (f"the SELECT, INSERT, UPDATE and DELETE privileges on the tables in schema {schema} (another "
                    "role created them)", f"{grant}; or make {role} their owner")
        # (a sync's snapshot, plan and scratch tables are altered and dropped too: only their owner may)
        return (f"to own table {schema}.{table[1]}, which another role owns now, or at least the SELECT, INSERT, "
                f"UPDATE and DELETE privileges on the tables in schema {schema}",
                f"ALTER TABLE {_ident(schema)}.{_ident(table[1])} OWNER TO {role}; or {grant}")

    def hint_for(self, exc: BaseException) -> str | None:
        text = str(exc)
        for needle, hint in _TIMEOUT_HINTS:
            if needle in text:
                return hint
        if "unrecognized configuration parameter" in text or "invalid value for parameter" in text:
            return ("fix the setting's name or value under warehouse.settings in dinsync.yml: "
                    "the server refuses every session with it")
        if _POOL_MODE_REFUSED in text:
            return POOL_MODE_HINT
        if _STARTUP_PARAMETER_REFUSED in text:
            return ("a connection pooler (PgBouncer) refuses a parameter of the connection: connect dinsync to "
                    "PostgreSQL directly, or list the parameter in the pooler's ignore_startup_parameters")
        if getattr(exc, "sqlstate", None) == "25006" or "read-only transaction" in text:
            return ("dinsync writes its state and plan tables in the warehouse, and this session's transactions "
                    "are read-only: the role's or database's default_transaction_read_only (ALTER ROLE <role> "
                    "RESET default_transaction_read_only), or a standby server (connect to the primary)")
        if classify_pg(exc) is E.WarehouseObjectMissing and _UNQUALIFIED_RELATION.search(text):
            # runs in the user's SQL editor, whose search_path holds the table's schema
            search_path = getattr(self, "_required_settings", {}).get("search_path") or "the server's default"
            return (f"names without a schema are looked up in the session's search_path ({search_path}): write the "
                    "table's schema (schema.table), or list it in warehouse.search_path in dinsync.yml")
        if "could not identify an extended hash function for type" in text:  # the diff's row fingerprint
            kind = text.split("for type", 1)[1].split()[0]
            return (f"the diff hashes each mapped column with its type's hash function, and {kind} has none: "
                    f"cast that column in the model SQL (e.g. col::jsonb or col::text)")
        return None
