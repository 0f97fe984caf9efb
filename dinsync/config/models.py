"""Validated configuration: the project, its warehouse, destinations, models and syncs.

Every model forbids unknown keys and is frozen. Secrets are pydantic `SecretStr` (inside a
destination's `settings`), so neither `repr()` nor `str()` of any of these objects shows them.
Line numbers of the source files are kept in private attributes for later checks
(`check_columns`) and are read through `line()`.
"""
from __future__ import annotations

import datetime
import functools
import math
import os
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Mapping, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    SerializeAsAny,
    create_model,
    field_validator,
    model_validator,
)

from ..destinations.base import Destination, SyncSpec
from ..destinations.settings import Settings
from .yamlfile import PATTERN_WORDS, fs_path

NAME_PATTERN = r"^[A-Za-z0-9_]+$"  # sync, model and destination names
IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"  # SQL identifiers we create (state schema)
# (checked with re.fullmatch: `$` alone also matches before a final line break)



def _check_name(value: str) -> str:
    if not re.fullmatch(NAME_PATTERN, value):
        raise ValueError(f"invalid name {value!r}: use ASCII letters, digits and underscores only")
    return value


Name = Annotated[str, AfterValidator(_check_name)]
FieldType = Literal["auto", "string", "integer", "number", "boolean", "date", "datetime", "email", "phone", "json"]
SyncMode = Literal["upsert", "update", "insert"]  # each destination service declares which it supports
ModelType = Literal["user", "custom"]


class _Config(Settings):
    # defer_build: a model's validator is built when first used, so the many models a run does
    # not need (other warehouses' and channels' settings) cost nothing at start-up
    # allow_inf_nan=False: `.inf` is no setting (null says "unlimited" where that is meant), and an
    # infinite rate limit or timeout only failed later, inside a run
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True, allow_inf_nan=False)
    # (warehouse configs) schemas the warehouse keeps for itself, as lower-case globs: no state_schema
    reserved_schemas: ClassVar[tuple[str, ...]] = ("information_schema",)


class DbtSettings(_Config):
    """`dbt:` in dinsync.yml (paths relative to the dinsync project folder)."""

    project_dir: str = Field(min_length=1)
    target_path: str | None = Field(default=None, min_length=1)


class _Located(_Config):
    """A config object that remembers the source lines of its keys."""

    _lines: dict[str, int] = PrivateAttr(default_factory=dict)

    def line(self, key: str) -> int | None:
        """1-based line of `key` (e.g. "match.column") in the object's file, if known."""
        return self._lines.get(key)


# --- warehouses ------------------------------------------------------------------------------

def cleartext_remote(url: str) -> bool:
    """Whether `url` is plain http:// to another machine than this one: credentials sent with
    it would cross the network unencrypted (http:// is for loopback: sandboxes, tests, tunnels)."""
    import ipaddress
    from urllib.parse import urlsplit

    if not url.lower().startswith("http://"):
        return False
    try:
        host = (urlsplit(url).hostname or "").rstrip(".")
    except ValueError:
        return True
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return True
    # 0.0.0.0 and :: reach this machine too (Linux connects them to the loopback)
    return not (address.is_loopback or address.is_unspecified)


def refuse_cleartext(url: str, what: str, fix: str = "use https://") -> None:
    """A ValueError when `url` is plain http:// to another machine (`cleartext_remote`): `what`,
    the credential sent with it, would cross the network in clear text."""
    if cleartext_remote(url):
        raise ValueError(f"http:// only reaches this machine (127.0.0.1, localhost, ::1): {what} would cross the "
                         f"network in clear text; {fix}")


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
    # "auto": what the sync is measured to need (dinsync/warehouses/duckdb.py); a size: at least that
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
    retry_seconds: float = Field(default=120, ge=0, le=3600)  # the client's retries of transient errors
    http_timeout_seconds: float = Field(default=60, gt=0, le=3600)
    maximum_bytes_billed: int | None = Field(default=None, ge=1)

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


# --- destinations ----------------------------------------------------------------------------

class DestinationOptions(_Config):
    """Keys every destination accepts besides `type` and its platform-specific settings."""

    base_url: str | None = None  # overrides base_urls[region] (e.g. a local sandbox)
    rate_limits: dict[str, Annotated[float, Field(gt=0)] | None] = Field(default_factory=dict)
    limits_enabled: bool = True
    concurrency: int = Field(default=8, ge=1, le=1024)
    timeout_seconds: float = Field(default=30.0, gt=0)
    phone_region: str | None = None  # ISO 3166 region of phone numbers written in national form

    @field_validator("phone_region")
    @classmethod
    def _known_region(cls, value: str | None) -> str | None:
        if value is None:
            return value
        import phonenumbers

        if value.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown phone region {value!r} (an ISO 3166 alpha-2 code such as US, FR, GB)")
        return value.upper()

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        if value is not None:
            refuse_cleartext(value, "the API key")
        return value


DESTINATION_KEYS = ("type",) + tuple(DestinationOptions.model_fields)


@functools.cache
def destination_options(default_concurrency: int | None) -> type[DestinationOptions]:
    """DestinationOptions whose `concurrency` defaults to a platform's own number, so that the hint
    of a wrong value names that default (Iterable's 48), not the generic 8."""
    if not default_concurrency:
        return DestinationOptions
    return create_model(f"DestinationOptions{default_concurrency}", __base__=DestinationOptions,
                        concurrency=(int, Field(default=default_concurrency, ge=1, le=1024)))


class DestinationConfig(DestinationOptions):
    """A configured destination: generic options plus the platform's validated settings."""

    name: str
    type: str
    settings: SerializeAsAny[BaseModel]  # an instance of destination_class.settings_model
    destination_class: type[Destination] = Field(exclude=True)

    def resolved_base_url(self) -> str:
        """`base_url` if set, else the platform's URL for the configured region."""
        if self.base_url:
            return self.base_url.rstrip("/")
        urls = self.destination_class.base_urls
        region = getattr(self.settings, "region", None)
        if region in urls:
            return urls[region].rstrip("/")
        if len(urls) == 1:
            return next(iter(urls.values())).rstrip("/")
        raise ValueError(f"destination {self.name}: no base URL for region {region!r}; set base_url")

    def credentials(self) -> dict[str, str]:
        """Plain values of the secret settings (pass them to the destination, never log them)."""
        return {k: v.get_secret_value() for k, v in self.settings if isinstance(v, SecretStr)}

    def options(self) -> dict[str, Any]:
        """The non-secret settings."""
        return {k: v for k, v in self.settings if not isinstance(v, SecretStr)}

    def make_destination(self) -> Destination:
        options = self.options()
        if self.phone_region:
            options["phone_region"] = self.phone_region
        return self.destination_class(self.resolved_base_url(), self.credentials(), options)


# --- models ----------------------------------------------------------------------------------

class Model(_Located):
    """models/<name>.sql: one SELECT (header comments removed, no trailing semicolon). A model
    reading dbt models (`{{ ref('name') }}`) holds its SQL with the relations dbt built, the names
    of those dbt models and their tags."""

    name: str
    path: Path
    sql: str
    primary_key: str
    model_type: ModelType = "custom"
    dbt_models: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    _dbt_primary_key: str | None = PrivateAttr(default=None)  # the dbt model whose key it took (no header)


# --- syncs -----------------------------------------------------------------------------------

class FieldMap(_Located):
    """One mapped field: model column -> destination field, with an optional type; `custom`
    maps to a custom attribute of platforms that keep those apart (Attentive, Splio)."""

    example: ClassVar[str] = "- {column: first_name, field: firstName} (or, without the dashes, first_name: firstName)"
    column: str = Field(min_length=1)
    field: str = Field(min_length=1)
    type: FieldType = "auto"
    custom: bool = False


class Thresholds(_Config):
    example: ClassVar[str] = "thresholds: {max_rejected_pct: 5, max_duplicate_pct: 5}"
    max_rejected_pct: float = Field(default=5.0, ge=0, le=100)  # above: the run is a "warning"
    max_duplicate_pct: float = Field(default=5.0, ge=0, le=100)  # above: fail before sending
    fail_on_warning: bool = True  # a warning run exits non-zero
    # --- sync warnings (dinsync.engine.thresholds); each is off unless set
    max_not_found: int | None = Field(default=None, ge=0)  # update mode: more rows not found -> warning
    max_segment_drop_pct: float | None = Field(default=None, ge=0, le=100)  # vs the last successful run
    warn_on_zero_rows: bool = False  # the model returned no row
    max_run_minutes: float | None = Field(default=None, gt=0)  # a run lasting longer -> warning
    # a boolean is no threshold (Settings refuses it: `max_segment_drop_pct: false`, meant as off,
    # was read as 0); its message says what leaving the key out does
    unset_means: ClassVar[str] = "turn it off"


class MatchSpec(_Config):
    example: ClassVar[str] = "match: {column: email, field: email}"
    column: str = Field(min_length=1)
    field: str = Field(min_length=1)


def _fields_as_list(value: Any) -> Any:
    """`fields` as a mapping {column: field or {field, type, custom}} or a list of
    {column, field, type, custom} -> list."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [{"column": column, **field} if isinstance(field, Mapping) else {"column": column, "field": field}
                for column, field in value.items()]
    return value


_RANDOM_CRON_PART = re.compile(r"^[rR](\(\d+-\d+\))?(/\d+)?$")


def _valid_cron(value: str | None) -> str | None:
    if value is None:
        return value
    from croniter import croniter  # only when a schedule is set (keeps start-up light)

    # croniter also takes a sixth field (seconds) and a seventh (year): `0 6 * * * *` would run
    # every second of 06:00. A schedule is five fields, or a macro such as @daily.
    # croniter's `R` is a random value drawn again for each next slot (`R 6 * * *` ran twice one day
    # and not at all another): no cron has it, like `H`, which croniter refuses without a hash id.
    random_field = any(_RANDOM_CRON_PART.match(part) for field in value.split() for part in field.split(","))
    if (not croniter.is_valid(value) or random_field
            or (len(value.split()) != 5 and not value.strip().startswith("@"))):
        raise ValueError(f"invalid cron expression {value!r} "
                         "(five fields: minute hour day-of-month month day-of-week, e.g. '0 6 * * *')")
    from croniter import CroniterBadDateError

    try:
        croniter(value, datetime.datetime(2000, 1, 1)).get_next(datetime.datetime)
    except CroniterBadDateError:  # e.g. 0 6 31 2 *: `serve` would fail looking for its next slot
        raise ValueError(f"cron expression {value!r} never fires (no such date)") from None
    return value


MAX_EVERY_SECONDS = 3650 * 86400
_EVERY = re.compile(r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$")


def parse_every(value: Any) -> float:
    """An interval as seconds: `15m`, `1h30m`, `2d`, `90s` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("an interval is a duration such as 15m, 1h30m, 2d or 90s")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value != int(value):  # (1.5 would run every 1.5 s, shown as "every 1s")
            raise ValueError(f"invalid interval {value!r}: a number of seconds is a whole number (or a duration "
                             "such as 15m, 1h30m, 2d or 90s)")
        seconds = float(value)
    else:
        m = _EVERY.match(str(value))
        if not m or not any(m.groups()):
            raise ValueError(f"invalid interval {value!r} (a duration such as 15m, 1h30m, 2d or 90s)")
        d, h, mi, sec = (int(g or 0) for g in m.groups())
        seconds = float(((d * 24 + h) * 60 + mi) * 60 + sec)
    if seconds < 1:
        raise ValueError("an interval must be at least 1 second")
    if seconds > MAX_EVERY_SECONDS:  # (`serve` failed at start-up: OverflowError: date value out of range)
        raise ValueError(f"invalid interval {value!r}: at most 3650d (ten years; for rarer runs use a cron "
                         "schedule)")
    return seconds


def _valid_timezone(value: str) -> str:
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (an IANA name such as UTC or Europe/Paris)") from None
    return value


class Schedule(_Config):
    """When `dinsync serve` runs a sync: a cron expression (in `timezone`, default UTC) or an
    interval (`every: 15m`). In a sync file: `schedule: "0 6 * * *"`, `schedule: {every: 15m}` or
    `schedule: {cron: "0 6 * * 1-5", timezone: Europe/Paris}`."""

    example: ClassVar[str] = ('schedule: "0 6 * * *" (cron, UTC), {every: 15m} or '
                              '{cron: "0 6 * * 1-5", timezone: Europe/Paris}')
    expected: ClassVar[str] = "a cron expression (text) or a mapping with every: or cron: (and timezone:)"
    cron: str | None = None
    every: float | None = None  # seconds
    timezone: str = "UTC"

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        return {"cron": value} if isinstance(value, str) else value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return _valid_cron(value)

    @field_validator("every", mode="before")
    @classmethod
    def _every(cls, value: Any) -> Any:
        return None if value is None else parse_every(value)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return _valid_timezone(value)

    @model_validator(mode="after")
    def _one_kind(self):
        if (self.cron is None) == (self.every is None):
            raise ValueError("set one of cron (e.g. \"0 6 * * *\") or every (e.g. 15m)")
        if self.every is not None and "timezone" in self.model_fields_set and self.timezone != "UTC":
            # an interval counts from the last run's start: a time zone would silently do nothing
            raise ValueError("timezone applies to cron only (every: counts from the last run's start; "
                             "for a local time of day use e.g. {cron: \"0 6 * * *\", timezone: " + self.timezone + "})")
        return self

    def describe(self) -> str:
        if self.cron is not None:
            return f"cron {self.cron!r}" + ("" if self.timezone == "UTC" else f" ({self.timezone})")
        seconds = int(self.every or 0)
        parts = [(seconds // 86400, "d"), (seconds % 86400 // 3600, "h"), (seconds % 3600 // 60, "m"),
                 (seconds % 60, "s")]
        return "every " + "".join(f"{n}{u}" for n, u in parts if n)

def _tag_list(value: Any) -> Any:
    """`tags: daily` or `tags: [daily, crm]`."""
    return [value] if isinstance(value, str) else value


TAG_PATTERN = r"^[^\s,:]+$"
Tag = Annotated[str, Field(min_length=1, pattern=TAG_PATTERN)]
PATTERN_WORDS.update({TAG_PATTERN: "no spaces, commas or colons",
                      NAME_PATTERN: "ASCII letters, digits and underscores only"})


class SyncFile(_Config):
    """The schema of a syncs/<name>.yml file (turned into a SyncConfig by the loader)."""

    model: str = Field(min_length=1)
    destination: str = Field(min_length=1)
    service: str = Field(min_length=1)
    mode: SyncMode
    match: MatchSpec
    fields: list[FieldMap] = Field(default_factory=list)
    schedule: Schedule | None = None
    thresholds: Thresholds = Field(default_factory=Thresholds)
    enabled: bool = True
    tags: list[Tag] = Field(default_factory=list)  # for `--select tag:NAME`

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: Any) -> Any:
        return _tag_list(value)

    @field_validator("fields", mode="before")
    @classmethod
    def _list_fields(cls, value: Any) -> Any:
        return _fields_as_list(value)


class SyncConfig(_Located):
    """A validated sync. `name` is the file stem."""

    name: str
    path: Path
    model: str
    destination: str
    service: str
    mode: SyncMode
    match_column: str
    match_field: str
    fields: list[FieldMap]
    schedule: Schedule | None = None
    thresholds: Thresholds = Field(default_factory=Thresholds)
    enabled: bool = True
    tags: tuple[str, ...] = ()

    def spec(self) -> SyncSpec:
        """What the destination needs to know of this sync."""
        return SyncSpec(name=self.name, service=self.service, mode=self.mode, key_field=self.match_field,
                        fields=[f.field for f in self.fields], custom=[f.custom for f in self.fields])


# --- notifications ---------------------------------------------------------------------------

NotifyEvent = Literal["warning", "failed", "recovered", "paused", "resumed"]
NOTIFY_EVENTS: tuple[str, ...] = ("warning", "failed", "recovered", "paused", "resumed")


def _http_secret_url(value: SecretStr) -> SecretStr:
    if not value.get_secret_value().startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value


class _Channel(_Config):
    """What every notification channel accepts (see dinsync.ops.notify)."""

    name: str | None = Field(default=None, pattern=NAME_PATTERN)  # shown in logs (default: type and position)
    events: list[NotifyEvent] = Field(default_factory=lambda: list(NOTIFY_EVENTS))  # which changes to send
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    attempts: int = Field(default=4, ge=1, le=10)  # tries per notification (backoff between them)


class WebhookChannel(_Channel):
    """A generic JSON webhook: POST {event, sync, state, previous_state, message, run, pause, ...}."""

    type: Literal["webhook"]
    url: SecretStr  # may carry a token: masked in all output
    headers: dict[str, SecretStr] = Field(default_factory=dict)  # e.g. Authorization: ${env:HOOK_TOKEN}

    _check_url = field_validator("url")(_http_secret_url)

    @model_validator(mode="after")
    def _headers_encrypted(self):
        if self.headers:
            refuse_cleartext(self.url.get_secret_value(), "the headers (credentials)")
        return self


class SlackChannel(_Channel):
    """A Slack-compatible incoming webhook: POST {"text": ..., "blocks": [...]}."""

    type: Literal["slack"]
    webhook_url: SecretStr  # the URL is the credential: only from the environment

    @field_validator("webhook_url")
    @classmethod
    def _check_url(cls, value: SecretStr) -> SecretStr:
        value = _http_secret_url(value)
        refuse_cleartext(value.get_secret_value(), "the URL, which is the credential,")
        return value


NotificationChannel = Annotated[Union[WebhookChannel, SlackChannel], Field(discriminator="type")]
CHANNEL_TYPES: dict[str, type[_Channel]] = {"webhook": WebhookChannel, "slack": SlackChannel}
CHANNEL_SECRET_KEYS = {"slack": ("webhook_url",)}  # settings that must come from ${env:NAME}


# --- project ---------------------------------------------------------------------------------

class ProjectFile(_Config):
    """Top-level schema of dinsync.yml (warehouse and destinations are validated per type)."""

    version: Literal[1]
    warehouse: dict[str, Any]
    state_schema: str = "dinsync"
    destinations: dict[Name, dict[str, Any]] = Field(default_factory=dict)
    notifications: list[dict[str, Any]] = Field(default_factory=list)  # validated per type (CHANNEL_TYPES)
    dbt: DbtSettings | None = None  # where the dbt project is (models may read `{{ ref('name') }}`)

    @field_validator("state_schema")
    @classmethod
    def _plain_identifier(cls, value: str) -> str:
        if not re.fullmatch(IDENTIFIER_PATTERN, value):
            raise ValueError("must be a plain identifier "
                             "(ASCII letters, digits and underscores, not starting with a digit)")
        return value


class Project(_Config):
    root: Path  # the project folder (absolute)
    path: Path  # its dinsync.yml
    version: Literal[1]
    warehouse: WarehouseConfig
    state_schema: str = "dinsync"
    destinations: dict[str, DestinationConfig]
    models: dict[str, Model]
    syncs: dict[str, SyncConfig]
    notifications: list[NotificationChannel] = Field(default_factory=list)
    dbt: DbtSettings | None = None
    # Loaded without dbt strictness (load_project(dbt_strict=False)): the models whose dbt refs
    # did not resolve -> their own issues (empty: the manifest's problem, in `_dbt_issues`), and
    # every dbt issue found. See `dbt_issues_of`.
    _dbt_problems: dict[str, list] = PrivateAttr(default_factory=dict)
    _dbt_issues: list = PrivateAttr(default_factory=list)

    def dbt_issues_of(self, syncs) -> list:
        """The dbt issues that stop `syncs` (names): those of their models whose dbt refs did not
        resolve (the manifest's own problem when a model has none of its own), and the project's
        (a dbt adapter that is not the warehouse's) when one of them reads dbt."""
        models = {self.syncs[name].model for name in syncs if name in self.syncs}
        broken = [m for m in sorted(models) if m in self._dbt_problems]
        reads_dbt = any(self.models[m].dbt_models or m in self._dbt_problems for m in models if m in self.models)
        if not broken and not reads_dbt:
            return []
        own = [i for m in broken for i in self._dbt_problems[m]]
        if any(not self._dbt_problems[m] for m in broken):
            return list(self._dbt_issues)  # a problem of the manifest: reported with the first model
        model_files = {str(i.file) for m in self._dbt_problems for i in self._dbt_problems[m]}
        shared = [i for i in self._dbt_issues if str(i.file) not in model_files]  # e.g. the adapter
        return own + shared

    def relative(self, path: Path) -> str:
        """`path` as shown in messages: relative to the project folder, with / separators."""
        try:
            return Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return str(path)
