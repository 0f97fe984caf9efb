"""The `warehouse:` of dinsync.yml: one configuration model per warehouse type.

DuckDB, PostgreSQL and Redshift (the PostgreSQL protocol's connection settings), BigQuery, Snowflake
and Databricks; `WAREHOUSE_TYPES` maps each `type` to its model and `WarehouseConfig` is their union.
Each names its secret settings (`secret_fields`) and the schemas the warehouse keeps for itself.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from .base_models import _Config, refuse_cleartext
from .yamlfile import fs_path

MAX_DUCKDB_THREADS = 1024
_POOL_SIZE = re.compile(r"auto|\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)")


class DuckDBConfig(_Config):
    """`warehouse:` of type duckdb. `path` is relative to the project folder, or ":memory:"."""

    type: Literal["duckdb"]
    reserved_schemas: ClassVar[tuple[str, ...]] = ("information_schema", "pg_catalog", "temp", "system")
    path: str = Field(min_length=1)
    # DuckDB's worker threads; far above any machine's cores it only aborts the process (100000:
    # "cannot allocate memory for thread-local data") after sizing the pools for them
    threads: int | None = Field(default=None, ge=1, le=MAX_DUCKDB_THREADS)
    # "auto": what the sync is measured to need (dinsync/warehouses/duckdb_memory.py); a size: at least that
    memory_limit: str | None = "auto"
    streaming_memory_limit: str | None = "auto"

    @field_validator("memory_limit", "streaming_memory_limit")
    @classmethod
    def _pool_size(cls, v: str | None) -> str | None:
        if v is not None and not _POOL_SIZE.fullmatch(v):
            raise ValueError(f"expected auto or a size such as 192MB or 1.5GiB, got {v!r}")
        return v

    def resolved_path(self, root: Path) -> str:
        """The file's absolute path: relative to the project folder, `~` the home folder (as DuckDB
        and dbt-duckdb's profiles read it: it was a folder named `~` in the project)."""
        if self.path == ":memory:":
            return self.path
        return str((Path(root) / os.path.expanduser(fs_path(self.path))).resolve())


# a URI's `user:password@`, a `password=` of a key/value DSN, or of a URI's query (`?password=`: libpq
# reads a URI's parameters there too)
_DSN_PASSWORD = re.compile(r"^\w+://[^/@:]*:[^/@]+@|(^|\s|[?&])password\s*=", re.I)


class _PostgresProtocolConfig(_Config):
    """Connection settings of the warehouses that speak the PostgreSQL protocol. Either `dsn`
    (a libpq connection string or URI) or `host`; parts given next to `dsn` override it.
    A password, in `password` or inside `dsn`, must come from the environment (${env:NAME})."""

    reserved_schemas: ClassVar[tuple[str, ...]] = ("information_schema", "pg_*")  # "the prefix pg_ is reserved"
    dsn: SecretStr | None = None
    host: str | None = Field(default=None, min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    user: str | None = Field(default=None, min_length=1)
    password: SecretStr | None = None
    database: str | None = Field(default=None, min_length=1)
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None = None
    search_path: list[Annotated[str, Field(min_length=1)]] | None = None  # schemas the model SQL reads unqualified
    connect_timeout: int = Field(default=10, ge=1, le=3600)
    # seconds after which a connection the server stopped answering (packets dropped, no reset) is
    # given up: TCP keepalives and tcp_user_timeout (postgres.tcp_bounds); 0: the system's defaults
    tcp_timeout: int = Field(default=60, ge=0, le=86400)

    @field_validator("search_path", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _dsn_or_host(self):
        if self.dsn is None and self.host is None:
            raise ValueError("set `dsn` (e.g. dsn: ${env:DINSYNC_PG_DSN}) or `host` (with user, database ...)")
        return self

    def secret_fields(self) -> list[str]:
        """Keys whose values are secrets, so must come from the environment."""
        keys = ["password"] if self.password is not None else []
        if self.dsn is not None and _DSN_PASSWORD.search(self.dsn.get_secret_value()):
            keys.append("dsn")
        return keys


class PostgresConfig(_PostgresProtocolConfig):
    """`warehouse:` of type postgres (pip install 'dinsync[postgres]')."""

    type: Literal["postgres"]
    # server settings of dinsync's sessions, e.g. {work_mem: 64MB, statement_timeout: 30min}
    settings: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")],
                   Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:+/-]+$")]] = Field(default_factory=dict)  # /: time zones
    # seconds dinsync's statements on its state tables wait for another transaction's lock (a BI
    # tool's long transaction, a backup) before failing as a lock timeout; settings' lock_timeout wins
    state_lock_timeout: int = Field(default=15, ge=1, le=86400)

    @field_validator("settings")
    @classmethod
    def _lower_names(cls, value: dict[str, str]) -> dict[str, str]:
        """Names as the server reads them, case-insensitively (`TimeZone`, as PostgreSQL spells it)."""
        return {k.lower(): v for k, v in value.items()}


class RedshiftIam(_Config):
    """Temporary database credentials from AWS (GetClusterCredentials / serverless GetCredentials);
    AWS credentials come from the usual chain (environment, profile, instance role)."""

    cluster_identifier: str | None = Field(default=None, min_length=1)
    workgroup: str | None = Field(default=None, min_length=1)  # Redshift Serverless
    region: str | None = Field(default=None, min_length=1)
    profile: str | None = Field(default=None, min_length=1)
    duration_seconds: int = Field(default=900, ge=900, le=3600)
    auto_create: bool = False

    @model_validator(mode="after")
    def _one_target(self):
        if (self.cluster_identifier is None) == (self.workgroup is None):
            raise ValueError("set one of iam.cluster_identifier (provisioned) or iam.workgroup (serverless)")
        return self


class RedshiftConfig(_PostgresProtocolConfig):
    """`warehouse:` of type redshift (pip install 'dinsync[redshift]'); port defaults to 5439."""

    type: Literal["redshift"]
    iam: RedshiftIam | None = None

    @model_validator(mode="after")
    def _iam_needs(self):
        if self.iam is not None:
            if self.password is not None:
                raise ValueError("with iam, leave out password: temporary credentials replace it")
            if self.database is None or (self.iam.cluster_identifier and self.user is None):
                raise ValueError("with iam, set database (and user, for a provisioned cluster)")
        return self


_DATASET = r"^[A-Za-z0-9_]{1,1024}$"
QUERY_DEDUP_SECONDS = 900  # BigQuery runs a jobs.query resent with the same requestId once, within this


class BigQueryConfig(_Config):
    """`warehouse:` of type bigquery (pip install 'dinsync[bigquery]'). `credentials`: the
    service-account JSON (its text or the path of its file), from the environment; without it,
    application default credentials. The state schema is a dataset; scratch tables of running
    syncs live in `scratch_dataset` and expire after `scratch_expiration_hours`."""

    type: Literal["bigquery"]
    project: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9.:-]{4,62}$")  # default: the credentials'
    dataset: str | None = Field(default=None, pattern=_DATASET)  # the model SQL's unqualified tables
    location: str | None = Field(default=None, min_length=1)  # US, EU, europe-west1 ...
    credentials: SecretStr | None = None
    scratch_dataset: str = Field(default="dinsync_scratch", pattern=_DATASET)
    scratch_expiration_hours: float = Field(default=24, gt=0, le=24 * 30)
    api_endpoint: str | None = Field(default=None, pattern=r"^https?://")  # e.g. a private endpoint
    retry_seconds: float = Field(default=120, ge=0)  # the client's retries of transient errors
    http_timeout_seconds: float = Field(default=60, gt=0, le=3600)
    maximum_bytes_billed: int | None = Field(default=None, ge=1)

    @field_validator("retry_seconds")
    @classmethod
    def _within_the_dedup_window(cls, value: float) -> float:
        # a query resent with its requestId (its answer lost, the connection cut) runs once only
        # within 15 minutes: a write resent later (a commit's rows, the run log) would run twice
        if value > QUERY_DEDUP_SECONDS:
            raise ValueError(f"at most {QUERY_DEDUP_SECONDS} (BigQuery runs a query resent after its answer was "
                             "lost only once within 15 minutes; a write retried later could run twice)")
        return value

    @field_validator("api_endpoint")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is not None:
            refuse_cleartext(value, "the access token")
        return value

    def secret_fields(self) -> list[str]:
        """The credentials JSON text is a secret (the path of its file may be written in the file)."""
        if self.credentials is not None and self.credentials.get_secret_value().lstrip().startswith("{"):
            return ["credentials"]
        return []


class SnowflakeConfig(_Config):
    """`warehouse:` of type snowflake (pip install 'dinsync[snowflake]'). Authentication by
    password or key pair (`private_key` PEM text, or `private_key_file`, with an optional
    passphrase); secrets must come from the environment (${env:NAME}). `host`, `port` and
    `protocol` point the connector at another endpoint (tests: fakesnow on loopback)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True, populate_by_name=True)

    type: Literal["snowflake"]
    account: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    user: str = Field(min_length=1)
    password: SecretStr | None = None
    private_key: SecretStr | None = None  # PEM text
    private_key_file: str | None = Field(default=None, min_length=1)
    private_key_passphrase: SecretStr | None = None
    authenticator: str | None = Field(default=None, min_length=1)  # e.g. externalbrowser, oauth
    database: str | None = Field(default=None, min_length=1)
    schema_: str | None = Field(default=None, min_length=1, alias="schema")
    warehouse: str | None = Field(default=None, min_length=1)
    role: str | None = Field(default=None, min_length=1)
    host: str | None = Field(default=None, min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    protocol: Literal["https", "http"] | None = None
    login_timeout: int = Field(default=60, ge=1, le=3600)
    network_timeout: int | None = Field(default=None, ge=1, le=86400)
    retry_seconds: int = Field(default=120, ge=1, le=86400)  # how long a request failing 5xx/reset is retried
    session_parameters: dict[Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")], str | int | bool] = Field(
        default_factory=dict)

    @model_validator(mode="after")
    def _one_credential(self):
        if self.private_key is not None and self.private_key_file is not None:
            raise ValueError("set one of private_key (PEM text) or private_key_file, not both")
        keyed = self.private_key is not None or self.private_key_file is not None
        if keyed and self.password is not None:
            raise ValueError("with a key pair (private_key or private_key_file), leave out password")
        if not keyed and self.password is None and self.authenticator is None:
            raise ValueError("set password (e.g. password: ${env:SNOWFLAKE_PASSWORD}) or a key pair "
                             "(private_key: ${env:SNOWFLAKE_PRIVATE_KEY} or private_key_file)")
        if self.protocol == "http":
            refuse_cleartext(f"http://{self.host or self.account + '.snowflakecomputing.com'}", "the password",
                             "leave protocol out (https)")
        return self

    def secret_fields(self) -> list[str]:
        """Keys whose values are secrets, so must come from the environment."""
        return [k for k in ("password", "private_key", "private_key_passphrase") if getattr(self, k) is not None]


class DatabricksConfig(_Config):
    """`warehouse:` of type databricks (pip install 'dinsync[databricks]'): a SQL warehouse reached
    through the Statement Execution API with a personal access token (from ${env:NAME})."""

    type: Literal["databricks"]
    host: str = Field(min_length=1, pattern=r"^(https?://)?[A-Za-z0-9.:\[\]-]+/?$")
    http_path: str | None = Field(default=None, min_length=1)  # /sql/1.0/warehouses/<id>
    warehouse_id: str | None = Field(default=None, pattern=r"^[0-9A-Za-z_-]+$")
    token: SecretStr
    catalog: str | None = Field(default=None, min_length=1)
    schema_: str | None = Field(default=None, min_length=1, alias="schema")  # default schema of the models
    transactions: Literal["atomic", "none"] = "atomic"  # none: no BEGIN ATOMIC blocks (see warehouses/databricks.py)
    wait_timeout: int = Field(default=10, ge=0, le=50)
    statement_timeout: float = Field(default=3600, gt=0)
    retry_seconds: int = Field(default=120, ge=1, le=86400)  # how long a request failing 429/5xx/reset is retried

    @field_validator("host")
    @classmethod
    def _https(cls, value: str) -> str:
        refuse_cleartext(value, "the token", "use https:// (or the host name alone)")
        return value

    @model_validator(mode="after")
    def _warehouse(self):
        if (self.http_path is None) == (self.warehouse_id is None):
            raise ValueError("set one of http_path (/sql/1.0/warehouses/<id>) or warehouse_id")
        if 0 < self.wait_timeout < 5:
            raise ValueError("wait_timeout must be 0 or between 5 and 50 seconds")
        return self

    def secret_fields(self) -> list[str]:
        return ["token"]


# Add a warehouse: write its config model (with a `type` Literal), register it here and add it to
# the union below.
WAREHOUSE_TYPES: dict[str, type[BaseModel]] = {
    "duckdb": DuckDBConfig,
    "postgres": PostgresConfig,
    "redshift": RedshiftConfig,
    "bigquery": BigQueryConfig,
    "snowflake": SnowflakeConfig,
    "databricks": DatabricksConfig,
}
WarehouseConfig = Annotated[Union[DuckDBConfig, PostgresConfig, RedshiftConfig, BigQueryConfig, SnowflakeConfig,
                                  DatabricksConfig],
                            Field(discriminator="type")]
