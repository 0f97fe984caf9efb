"""Warehouse errors: what failed, and whether trying again can help.

Every adapter turns its driver's exceptions into one of these (see `ErrorTranslation` in
base.py), so the engine and the CLI never look at a driver's exception classes. Messages are
scrubbed of the adapter's secrets (password, DSN) before they are built.
"""
from __future__ import annotations

from ..errors import DinsyncError, ExitCode


class WarehouseError(DinsyncError):
    """A warehouse operation failed. `retryable`: the same call may succeed later unchanged
    (a dropped connection, a timeout, a serialization conflict); otherwise something must be fixed."""

    kind = "error"
    retryable = False

    def __init__(self, message: str, hint: str | None = None, *, warehouse: str | None = None,
                 sqlstate: str | None = None):
        super().__init__(message, hint)
        self.warehouse = warehouse
        self.sqlstate = sqlstate


class WarehouseAuthError(WarehouseError):
    """Credentials were refused (wrong password, unknown user, expired token)."""

    kind = "credentials"


class WarehouseLoginRefused(WarehouseAuthError):
    """The server refused the login its connection settings ask for (PostgreSQL: a role that does not
    exist, a wrong password, which is how it answers an unknown role under password authentication,
    no pg_hba.conf entry; Snowflake: a wrong password or key pair, a disabled user, the connect
    string's role; Databricks: a token wrong or expired): a configuration error, as running again with the same settings cannot help."""

    exit_code = ExitCode.CONFIG_ERROR


class WarehouseCredentialsUnusable(WarehouseAuthError):
    """The credentials the settings give cannot be used as they are, before any server is asked
    (BigQuery: a key file that cannot be read, text that is no JSON key of a supported type, no
    project): a configuration error."""

    exit_code = ExitCode.CONFIG_ERROR


class WarehousePermissionError(WarehouseError):
    """Logged in, but not allowed to do this (read the model, create the state schema...)."""

    kind = "permission"


class WarehouseStateRefused(WarehousePermissionError):
    """dinsync's role may not use its state schema: no USAGE or CREATE on it, or it does not exist
    and the role may not create it (dinsync.state.refusals). A grant to give, not a run to try
    again: a configuration error, as the same grant missing on the model's schema (until 2026-12-07
    exit 1, which orchestrators retry)."""

    exit_code = ExitCode.CONFIG_ERROR


class WarehouseObjectMissing(WarehouseError):
    """A table, schema or database that the statement names does not exist."""

    kind = "missing"


class WarehouseDatabaseMissing(WarehouseObjectMissing):
    """The database the connection settings name does not exist (nothing was reached in it): a
    configuration error, not a run to try again."""

    exit_code = ExitCode.CONFIG_ERROR


class WarehouseUnavailable(WarehouseError):
    """The warehouse could not be reached, or the statement timed out or was cancelled by it."""

    kind = "unavailable"
    retryable = True


class WarehouseSettingsError(WarehouseError):
    """The connection settings themselves are malformed (a DSN the driver cannot parse, a port that
    is not a number, an unknown sslmode): nothing was reached, and running again cannot help."""

    kind = "settings"
    exit_code = ExitCode.CONFIG_ERROR


class WarehouseConflict(WarehouseError):
    """A concurrent transaction conflicted with this one (serialization failure, deadlock)."""

    kind = "conflict"
    retryable = True


class WarehouseLockTimeout(WarehouseConflict):
    """A statement waited longer than the session's lock timeout for a lock another transaction
    holds (PostgreSQL's lock_timeout). Unlike a conflict between two inserts of the sync's lock
    row, it says nothing of another run: the lock's arbiter lets it through."""

    kind = "lock_timeout"


class WarehouseSqlError(WarehouseError):
    """The warehouse rejected the statement (syntax, types, constraint...)."""

    kind = "sql"


class WarehouseConstraintViolation(WarehouseSqlError):
    """A constraint refused the write (e.g. a duplicate PRIMARY KEY where it is enforced)."""

    kind = "constraint"


class WarehouseDriverMissing(DinsyncError):
    """The optional driver of a warehouse type is not installed."""

    exit_code = ExitCode.CONFIG_ERROR


HINTS = {
    WarehouseAuthError: "check the warehouse user and password (or token) in dinsync.yml and the environment",
    WarehouseLoginRefused: "check the warehouse user and password (or token) in dinsync.yml and the environment",
    WarehouseCredentialsUnusable: "fix the warehouse's credentials in dinsync.yml or the environment",
    WarehouseDatabaseMissing: "the database named by the connection settings (dsn or database, in dinsync.yml or "
                              "the environment), or by the model's SQL (Redshift: database.schema.table), does not "
                              "exist: fix its name, or create it",
    WarehousePermissionError: "grant the dinsync user the privileges it needs (read the models; create and "
                              "write the state schema)",
    WarehouseObjectMissing: "check the names in the model SQL, the database and the state schema",
    WarehouseUnavailable: "the warehouse could not be reached or timed out; run again later",
    WarehouseSettingsError: "fix the warehouse's connection settings in dinsync.yml or the environment "
                            "(dsn, host, port, sslmode, ...)",
    WarehouseConflict: "another transaction changed the same tables at the same time; run again",
    WarehouseLockTimeout: "another transaction holds a lock on a table the statement needed; run again once it ends",
}


def scrub(text: str, secrets: list[str]) -> str:
    """Replace every secret value in `text` by ***."""
    for secret in sorted((s for s in secrets if s and len(s) >= 3), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
