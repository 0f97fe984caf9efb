"""Amazon Redshift: the PostgreSQL adapter's sessions and errors, with Redshift's own limits.

Redshift speaks the PostgreSQL protocol, so SQL runs through psycopg 3 (the same code runs
against a local PostgreSQL in the tests). What differs, as capabilities and mixins:
- SQL is rendered in sqlglot's `redshift` dialect; hashes are FNV_HASH (see diff/render.py);
  unbounded text is VARCHAR(65535) (Redshift's VARCHAR is 256 bytes).
- PRIMARY KEY is not enforced: the sync lock is arbitrated by `LOCK TABLE` (table_lock).
- No `COPY FROM STDIN`: bulk writes are batched multi-row INSERTs. No `COPY TO STDOUT` (ADBC):
  reads go through a server-side cursor (DECLARE / FETCH).

Config:
    warehouse:
      type: redshift
      host: my-cluster.abc123.eu-west-1.redshift.amazonaws.com
      port: 5439
      user: dinsync
      password: ${env:REDSHIFT_PASSWORD}
      database: analytics
      search_path: [marts]
Driver: pip install 'dinsync[redshift]'.
"""
from __future__ import annotations

from typing import Sequence

from .base import Capabilities, ErrorTranslation, Warehouse
from .pgfamily import CursorStream, MultiRowInsertWrite, PgErrors, PsycopgSessions
from .postgres import PostgresConnection

DEFAULT_PORT = 5439


class RedshiftWarehouse(PgErrors, ErrorTranslation, PsycopgSessions, MultiRowInsertWrite, CursorStream, Warehouse):
    type_name = "redshift"
    display_name = "Redshift"
    extra = "redshift"
    capabilities = Capabilities(
        dialect="redshift",
        hash_type="BIGINT",
        merge=True,
        temp_tables=True,
        transactional_ddl=True,
        enforces_primary_key=False,
        lock_arbiter="table_lock",
        text_type="VARCHAR(65535)",
        max_identifier_length=127,
        unquoted_case="lower",
        quoted_case_sensitive=False,
        paramstyle="pyformat",
    )

    def __init__(self, dsn: str | None = None, host: str | None = None, port: int | None = None,
                 user: str | None = None, password: str | None = None, database: str | None = None,
                 sslmode: str | None = None, search_path: Sequence[str] | str | None = None,
                 connect_timeout: int | None = 10):
        from . import require_driver

        self._psycopg = require_driver("psycopg", "redshift", package="psycopg")
        self.driver_errors = (self._psycopg.Error,)
        if port is None and not dsn:
            port = DEFAULT_PORT
        self.settings = PostgresConnection(
            dsn=dsn, host=host, port=port, user=user, password=password, database=database, sslmode=sslmode,
            search_path=search_path, connect_timeout=connect_timeout)
        self._secrets = self.settings.secrets
        self._init_sessions()
        with self.translating("connecting"):
            self._conninfo = self.settings.conninfo()
        self.conn  # connect now: a wrong password or host fails here, with a clear error

    def _connect_psycopg(self):
        return self._psycopg.connect(self._conninfo, autocommit=True)
