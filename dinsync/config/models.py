"""Validated configuration: the project, its warehouse, destinations, models and syncs.

Every model forbids unknown keys and is frozen. Secrets are pydantic `SecretStr` (inside a
destination's `settings`), so neither `repr()` nor `str()` of any of these objects shows them.
Line numbers of the source files are kept in private attributes for later checks
(`check_columns`) and are read through `line()`.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    SecretStr,
    SerializeAsAny,
    create_model,
    field_validator,
    model_validator,
)

from ..destinations.base import Destination
from .base_models import (  # noqa: F401 (re-exported: defined here before)
    IDENTIFIER_PATTERN,
    NAME_PATTERN,
    FieldType,
    ModelType,
    Name,
    SyncMode,
    _Config,
    _Located,
    cleartext_remote,
    refuse_cleartext,
)
from .sync_config import (  # noqa: F401 (re-exported: defined here before)
    MAX_EVERY_SECONDS,
    TAG_PATTERN,
    FieldMap,
    MatchSpec,
    Schedule,
    SyncConfig,
    SyncFile,
    Tag,
    Thresholds,
    parse_every,
)
from .warehouse_config import (  # noqa: F401 (re-exported: defined here before)
    MAX_DUCKDB_THREADS,
    WAREHOUSE_TYPES,
    BigQueryConfig,
    DatabricksConfig,
    DuckDBConfig,
    PostgresConfig,
    RedshiftConfig,
    RedshiftIam,
    SnowflakeConfig,
    WarehouseConfig,
)


class DbtSettings(_Config):
    """`dbt:` in dinsync.yml (paths relative to the dinsync project folder)."""

    project_dir: str = Field(min_length=1)
    target_path: str | None = Field(default=None, min_length=1)


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
        from ..destinations import hooks  # (a plugin's constructor within its hooks' limit)

        cls = self.destination_class
        return hooks.call_blocking(cls, "__init__", cls, self.resolved_base_url(), self.credentials(), options)


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


# --- notifications ---------------------------------------------------------------------------

NotifyEvent = Literal["warning", "failed", "recovered", "paused", "resumed"]
NOTIFY_EVENTS: tuple[str, ...] = ("warning", "failed", "recovered", "paused", "resumed")


def _http_secret_url(value: SecretStr) -> SecretStr:
    """The URL without the whitespace around it (a secret file's or a variable's last newline was
    sent as `%0A`: Slack answered 404 no_service), which must be http:// or https://."""
    url = value.get_secret_value().strip()
    if not url.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return SecretStr(url) if url != value.get_secret_value() else value


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
    def _credentials_encrypted(self):
        from .secrets_check import url_credential

        url = self.url.get_secret_value()
        if self.headers:
            refuse_cleartext(url, "the headers (credentials)")
        if (carried := url_credential(url)) is not None:
            refuse_cleartext(url, carried)
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
