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
Or, with IAM (temporary database credentials from GetClusterCredentials, or GetCredentials
of Redshift Serverless; AWS credentials from the usual chain: environment, profile, role):
    warehouse:
      type: redshift
      host: my-cluster.abc123.eu-west-1.redshift.amazonaws.com
      user: dinsync                  # the database user to get credentials for
      database: analytics
      iam: {cluster_identifier: my-cluster, region: eu-west-1}   # or {workgroup: wg, region: ...}
Driver: pip install 'dinsync[redshift]' (psycopg; boto3 for IAM).
"""
from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any, Callable, Sequence

from . import errors as E
from .base import Capabilities, ErrorTranslation, Warehouse
from .pg_errors import PgErrors
from .pg_sessions import PsycopgSessions
from .pg_streams import CursorStream
from .pg_writes import MultiRowInsertWrite
from .postgres import DEFAULT_TCP_TIMEOUT, PostgresConnection

DEFAULT_PORT = 5439


class RedshiftWarehouse(PgErrors, ErrorTranslation, PsycopgSessions, MultiRowInsertWrite, CursorStream, Warehouse):
    type_name = "redshift"
    display_name = "Redshift"
    lock_waits_sql = None  # (no wait events in its pg_stat_activity: a stopped run's commit waits for its lock)
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
    database_arrays = False  # no enums nor composites (and its catalog, of PostgreSQL 8.0, predates typcategory)
    # The plan's stream reads timestamptz values in UTC, as PostgreSQL's does (postgres.STREAM_SETTINGS):
    # under a user's `timezone` (ALTER USER .. SET timezone) or PGTZ west of UTC, 0001-01-01 00:00 UTC
    # is written `... BC` and was rejected as out of range (east of it, 9999-12-31 23:00 UTC likewise).
    stream_settings = {"timezone": "'UTC'"}

    def __init__(self, dsn: str | None = None, host: str | None = None, port: int | None = None,
                 user: str | None = None, password: str | None = None, database: str | None = None,
                 sslmode: str | None = None, search_path: Sequence[str] | str | None = None,
                 connect_timeout: int | None = 10, iam: dict[str, Any] | None = None,
                 aws_client: Callable[[str], Any] | None = None, tcp_timeout: float | None = DEFAULT_TCP_TIMEOUT):
        """`iam`: {cluster_identifier | workgroup, region, profile, duration_seconds, auto_create};
        `aws_client(service)` builds the boto3 client (tests pass a stubbed one)."""
        from . import require_driver

        self._psycopg = require_driver("psycopg", "redshift", package="psycopg")
        self.driver_errors = (self._psycopg.Error,)
        if port is None and not dsn:
            port = DEFAULT_PORT
        self.settings = PostgresConnection(
            dsn=dsn, host=host, port=port, user=user, password=password, database=database, sslmode=sslmode,
            search_path=search_path, connect_timeout=connect_timeout, tcp_timeout=tcp_timeout)
        self._secrets = self.settings.secrets
        self._iam = IamCredentials(iam, user, database, self._secrets, aws_client) if iam else None
        self._init_sessions()
        with self.translating("connecting"):
            self._conninfo = self.settings.conninfo()
        self.conn  # connect now: a wrong password or host fails here, with a clear error

    def _connect_psycopg(self):
        extra = self._iam.login() if self._iam else {}
        conn = self._psycopg.connect(self._conninfo, autocommit=True, prepare_threshold=None, **extra)  # (see postgres.py)
        # psycopg parses dates and timestamps in the ISO DateStyle only: a user's or database's
        # default (`ALTER USER .. SET datestyle`) would fail every read of one. Setting the format
        # alone keeps its day/month order. (No startup `options` here, as PostgreSQL's sessions use.)
        conn.execute("SET datestyle TO 'ISO'")
        # The diff hashes each value's text form: with Redshift's default (0) a float8 is written
        # with 15 significant digits, so a change in its last digits was no change and never sent.
        # 2 (Redshift's maximum) writes 17, enough to tell every double apart.
        conn.execute("SET extra_float_digits TO 2")
        return conn

    def stable_hash_forms(self, sql: str, columns: list[str]) -> dict[str, str]:
        """The mapped timestamptz columns, whose text is written in the session's TimeZone (a user's
        default, `ALTER USER .. SET timezone`): hashed as a UTC session writes them. (The diff hashes
        every value's text: a run in another zone found every row holding one changed, sent again.)"""
        if not columns:
            return {}
        oids = self.column_oids(sql)
        forms = {c: REDSHIFT_TEXT_FORMS.get(oids.get(c)) for c in columns}
        return {c: form.format(x="@X@") for c, form in forms.items() if form}

    def exact_hash_columns(self, sql: str, columns: list[str]) -> set[str]:
        """The mapped columns Redshift cannot cast to VARCHAR (BOOLEAN): the row fingerprint hashes
        them in their text form (stable_hash_forms) too, not with the CAST it gives other values."""
        if not columns:
            return set()
        oids = self.column_oids(sql)
        return {c for c in columns if oids.get(c) in NO_TEXT_CAST}


# Types whose text depends on a session setting, with the text (of {x}) a UTC session writes (see
# pg_hash_forms.SESSION_TEXT_FORMS; Redshift has no infinite timestamps, nor ISFINITE)
# A BOOLEAN has no cast to a character type on Redshift (CAST and TRY_CAST permit BOOL only to
# SMALLINT, INTEGER, BIGINT and SUPER: "TRY_CAST function", usage notes), where PostgreSQL casts it
# to 'true' / 'false': its text is written so here, the text whose hashes PostgreSQL stores.
REDSHIFT_TEXT_FORMS = {1184: "REPLACE(CAST({x} AT TIME ZONE 'UTC' AS VARCHAR) || '+00', ' BC+00', '+00 BC')",
                       16: "CASE WHEN {x} THEN 'true' WHEN NOT {x} THEN 'false' END"}
# Types Redshift cannot CAST to VARCHAR: hashed in their REDSHIFT_TEXT_FORMS everywhere (exact_hash_columns).
NO_TEXT_CAST = {16}


class IamCredentials:
    """Temporary database credentials from AWS, fetched again shortly before they expire (every
    new session asks; most reuse the cached pair)."""

    margin = dt.timedelta(seconds=60)

    def __init__(self, options: dict[str, Any], user: str | None, database: str | None, secrets: list[str],
                 aws_client: Callable[[str], Any] | None = None):
        self.cluster = options.get("cluster_identifier")
        self.workgroup = options.get("workgroup")
        if bool(self.cluster) == bool(self.workgroup):
            raise E.WarehouseAuthError("Redshift IAM needs either iam.cluster_identifier or iam.workgroup")
        if not database or (self.cluster and not user):
            raise E.WarehouseAuthError("Redshift IAM needs `database` (and `user` for a provisioned cluster)")
        self.user, self.database = user, database
        self.region, self.profile = options.get("region"), options.get("profile")
        self.duration = int(options.get("duration_seconds") or 900)
        self.auto_create = bool(options.get("auto_create", False))
        self.secrets = secrets
        self._client_factory = aws_client
        self._cached: tuple[str, str, float] | None = None  # user, password, good until (time.monotonic())
        self._lock = threading.Lock()

    def _client(self, service: str):
        if self._client_factory is not None:
            return self._client_factory(service)
        from . import require_driver

        boto3 = require_driver("boto3", "redshift", package="boto3")
        return boto3.session.Session(profile_name=self.profile, region_name=self.region).client(service)

    def login(self) -> dict[str, str]:
        """{"user", "password", "sslmode"} for a new session."""
        with self._lock:
            now = time.monotonic()
            if self._cached is None or self._cached[2] - self.margin.total_seconds() <= now:
                asked = dt.datetime.now(dt.timezone.utc)
                user, password, expires = self._fetch()
                # AWS's expiry is on AWS's clock, and the wall clock may step: with ours 10 minutes
                # behind AWS's, credentials were kept 10 minutes after they expired. They are good for
                # the duration asked for at most, counted in elapsed time.
                life = min((expires - asked).total_seconds(), float(self.duration))
                self._cached = (user, password, now + life)
                self.secrets.append(password)
            user, password, _ = self._cached
        return {"user": user, "password": password, "sslmode": "require"}

    def _fetch(self) -> tuple[str, str, dt.datetime]:
        try:
            if self.cluster:
                r = self._client("redshift").get_cluster_credentials(
                    DbUser=self.user, DbName=self.database, ClusterIdentifier=self.cluster,
                    DurationSeconds=self.duration, AutoCreate=self.auto_create)
                user, password, expires = r["DbUser"], r["DbPassword"], r["Expiration"]
            else:
                r = self._client("redshift-serverless").get_credentials(
                    workgroupName=self.workgroup, dbName=self.database, durationSeconds=self.duration)
                user, password, expires = r["dbUser"], r["dbPassword"], r["expiration"]
        except (E.WarehouseError, E.WarehouseDriverMissing):  # (boto3 not installed: the extra, not a login)
            raise
        except Exception as exc:  # botocore: no AWS credentials, access denied, endpoint unreachable
            name = type(exc).__name__
            retry = name in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError")
            cls = E.WarehouseUnavailable if retry else E.WarehouseAuthError
            text = " ".join(E.scrub(str(exc), self.secrets).split())
            raise cls(f"Redshift: could not get IAM database credentials: {name}: {text}",
                      E.HINTS[cls] if retry else "check the AWS credentials (environment, profile or role) and "
                      "their permission redshift:GetClusterCredentials (serverless: redshift-serverless:GetCredentials)",
                      warehouse="Redshift") from None
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=dt.timezone.utc)
        return user, password, expires
