"""Load a project folder into validated models, reporting every problem in one pass.

`load_project` reads dinsync.yml, models/**/*.sql and syncs/**/*.yml, validates each file on its
own, then checks the references between them (a sync's model, destination, service, mode and
matching field). Given `columns_of`, it also checks in the same pass that the columns each sync
uses (and each model's primary key) exist in the model's output. All issues are collected, sorted
by file then line, and raised together as one `ConfigError`. `check_columns` runs that column
check alone on an already loaded `Project` (both in `columns.py`).

dinsync.yml (warehouse, destinations, notifications) is read here; models/ by `model_files.py`,
syncs/ by `sync_files.py`; what counts as a credential written in the file, and what is masked in
output, is in `secrets_check.py`.
"""
from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Any, Collection, Mapping

from pydantic import BaseModel, ConfigDict, ValidationError

from ..destinations import PluginError, hooks, registry
from ..destinations.base import Destination
from ..errors import ConfigError, ConfigIssue
from .columns import ColumnsOf, ColumnUse, sort_issues
from .model_files import _ModelFiles
from .models import (
    CHANNEL_SECRET_KEYS,
    CHANNEL_TYPES,
    DESTINATION_KEYS,
    DestinationConfig,
    DbtSettings,
    destination_options,
    Model,
    Project,
    ProjectFile,
)
from .project_files import _NAME, PROJECT_FILE
from .secrets_check import (
    _CONTROL,
    _SECRET_OR_PATH_KEYS,
    _URL_PASSWORD,
    _empty_env_values,
    _empty_value_issue,
    _has_userinfo,
    _looks_like_key_text,
    _register_secrets,
    _secret_settings,
    _texts,
)
from .sync_config import SyncConfig
from .sync_files import _SyncFiles
from .warehouse_config import WAREHOUSE_TYPES
from .yamlfile import (
    YamlDoc,
    _show_path,
    choice_hint,
    environ,
    load_yaml,
    not_utf8,
    read_text,
    scrub,
    substitute_env,
    validation_issues,
)


class NoSettings(BaseModel):
    """The settings of a destination that declares no `settings_model`: no key of its own."""

    model_config = ConfigDict(extra="forbid")


class _Loader(_ModelFiles, _SyncFiles):
    """State of one load: the issues found so far and what each file declared."""

    def __init__(self, root: Path, env: Mapping[str, str], dbt_strict: bool = True,
                 destination_secrets: bool | Collection[str] = True, notification_secrets: bool = True,
                 warehouse_must_exist: bool = False):
        self.root = root
        self.warehouse_must_exist = warehouse_must_exist
        self.env = env
        self.dbt_strict = dbt_strict
        self.destination_secrets = destination_secrets
        self.notification_secrets = notification_secrets
        # the dbt project (dinsync.config.dbt, loaded only when a model holds Jinja or dinsync.yml
        # says where dbt is): settings from dinsync.yml once it is read
        self.dbt_settings: tuple[Any, int | None] = (None, None)
        self._dbt = None
        self.dbt_issues: list[ConfigIssue] = []  # dbt problems, kept apart (see dbt_strict)
        self.dbt_problems: dict[str, list[ConfigIssue]] = {}  # not strict: model -> its dbt issues
        self.issues: list[ConfigIssue] = []
        self.secrets: list[str] = []
        self.project_data: dict[str, Any] | None = None
        self.notifications: list = []
        self.project_doc: YamlDoc | None = None
        self.warehouse: Any = None
        self.destinations: dict[str, DestinationConfig] = {}
        self.destination_types: dict[str, type[Destination] | None] | None = None  # None: unknown
        self.models: dict[str, Model] = {}
        self.model_names: set[str] = set()
        self.syncs: dict[str, SyncConfig] = {}
        self.column_uses: list[ColumnUse] = []  # from the raw data of every sync that parsed as YAML

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    # --- dinsync.yml ---------------------------------------------------------------------
    def load_project_file(self) -> None:
        path = self.root / PROJECT_FILE
        if not path.is_file():
            hint = "rename dinsync.yaml to dinsync.yml" if (self.root / "dinsync.yaml").is_file() \
                else "run `dinsync init` to create a project, or pass the project folder"
            self.issues.append(ConfigIssue(f"{PROJECT_FILE} not found in {self.root}", PROJECT_FILE, None, hint))
            return
        doc = self._read_yaml(path, env=True)
        if doc is None:
            return
        data = doc.data
        self.project_doc = doc
        try:
            ProjectFile.model_validate(data)
        except ValidationError as exc:
            self.issues += validation_issues(exc, doc, (), ProjectFile)
        self._refuse_url_passwords(doc, data)
        self.load_notifications(doc, data.get("notifications"))
        self.project_data = data
        self._load_dbt_settings(doc, data.get("dbt"))
        if isinstance(data.get("warehouse"), dict):
            self.load_warehouse(doc, data["warehouse"])
        destinations = data.get("destinations", {})
        if isinstance(destinations, dict):  # else: reported; skip sync checks against it
            self.destination_types = {}
            for name, raw in destinations.items():
                if isinstance(raw, dict):
                    self.load_destination(doc, str(name), raw)
                else:
                    self.destination_types[str(name)] = None

    def _refuse_url_passwords(self, doc: YamlDoc, data: Any) -> None:
        """A URL written in the file with a password in it (`base_url: https://api:pw@host`, a
        webhook's `url`) is a credential written in the file, as an `api_key` would be. (A
        PostgreSQL `dsn` has its own issue, see load_warehouse.)"""
        for path, value in _texts(data):
            if path not in doc.env_paths and path != ("warehouse", "dsn") and _URL_PASSWORD.match(value):
                self.issues.append(doc.issue(path, f"{_show_path(path)} holds a password (user:password@) written "
                                             "in the file",
                                             "write the URL as ${env:NAME} (or its password as "
                                             f"https://user:${{env:NAME}}@...) and export NAME; secrets never live "
                                             f"in {doc.file}"))

    def load_notifications(self, doc: YamlDoc, raw: Any) -> None:
        """`notifications:` channels, each validated by its type's model; a channel's credential (a
        Slack webhook URL) must come from the environment."""
        for index, channel in enumerate(raw if isinstance(raw, list) else ()):
            at = ("notifications", index)
            if not isinstance(channel, dict):
                continue  # the ProjectFile check reports it
            if not self.notification_secrets and any(p[:2] == at for p in doc.missing_env_paths):
                continue  # a command that notifies nobody: a channel whose variable is not set is left out
            empty = _empty_env_values(doc, at)
            if empty:  # set but empty (a CI's secret it does not have): unset for whoever notifies nobody
                if self.notification_secrets:
                    self.issues += [_empty_value_issue(doc, path) for path in empty]
                continue
            kind = channel.get("type")
            cls = CHANNEL_TYPES.get(kind) if isinstance(kind, str) else None
            if cls is None:
                self.issues.append(doc.issue(at + (("type",) if kind is not None else ()),
                                             f"unknown notification type {kind!r}" if kind is not None
                                             else f"missing required key notifications[{index}].type",
                                             choice_hint(str(kind or ""), CHANNEL_TYPES, "types")))
                continue
            secret_issue = False
            for key in CHANNEL_SECRET_KEYS.get(kind, ()):
                path = at + (key,)
                if channel.get(key) and path not in doc.env_paths and path not in doc.missing_env_paths:
                    secret_issue = True
                    self.issues.append(doc.issue(path, f"notifications[{index}].{key} is a credential written in "
                                                       "the file", "write it as ${env:NAME} and export NAME; "
                                                       f"secrets never live in {doc.file}"))
            try:
                validated = cls.model_validate(channel)
            except ValidationError as exc:
                self.issues += validation_issues(exc, doc, at, cls)
                continue
            if not secret_issue:
                self.notifications.append(validated)
    def _load_dbt_settings(self, doc: YamlDoc, raw: Any) -> None:
        settings = None
        if isinstance(raw, dict):
            try:
                settings = DbtSettings.model_validate(raw)
            except ValidationError:
                pass  # reported by the ProjectFile check
        self.dbt_settings = (settings, doc.line(("dbt",)) if raw is not None else None)

    @property
    def dbt(self):
        if self._dbt is None:
            from .dbt import DbtProject

            self._dbt = DbtProject(self.root, self.dbt_settings[0], self.dbt_settings[1], self.env)
        return self._dbt

    def load_warehouse(self, doc: YamlDoc, raw: dict) -> None:
        kind = raw.get("type")
        if kind is None:
            self.issues.append(doc.issue(("warehouse",), "missing required key warehouse.type",
                                         choice_hint("", WAREHOUSE_TYPES, "supported types")))
            return
        cls = WAREHOUSE_TYPES.get(kind) if isinstance(kind, str) else None
        if cls is None:
            self.issues.append(doc.issue(("warehouse", "type"), f"unknown warehouse type {kind!r}",
                                         choice_hint(kind, WAREHOUSE_TYPES, "supported types")))
            return
        # A value set but empty (a CI's secret it does not have): an empty dsn is libpq's defaults,
        # another database; empty credentials, ADC. Not a password: an empty one reaches the same
        # database or none (a server that trusts the host, as a CI's service container often does).
        empty = [path for path in _empty_env_values(doc, ("warehouse",)) if path[-1] != "password"]
        if empty:
            self.issues += [_empty_value_issue(doc, path) for path in empty]
            return
        try:
            self.warehouse = cls.model_validate(raw)
        except ValidationError as exc:
            self.issues += validation_issues(exc, doc, ("warehouse",), cls)
            return
        path = getattr(self.warehouse, "path", None)
        if (hasattr(self.warehouse, "resolved_path") and isinstance(path, str) and path != ":memory:"
                and "://" not in path and not path.startswith("md:")):
            file = Path(self.warehouse.resolved_path(self.root))
            if not_utf8(os.fsencode(file).decode("utf-8", "surrogateescape")):  # a folder named in Latin-1, say
                self.issues.append(doc.issue(("warehouse", "path"), "warehouse.path: the file's path is not valid "
                                             "UTF-8, which DuckDB cannot open", "rename the folder, or give "
                                             "warehouse.path as an absolute path whose names are UTF-8"))
            elif not file.parent.is_dir():  # DuckDB creates its file, never the folder: say where, not "IO Error"
                self.issues.append(doc.issue(("warehouse", "path"), f"warehouse.path: folder {file.parent} does not exist",
                                             "create the folder, or fix the path: it is relative to the project folder"))
            elif file.is_dir():
                self.issues.append(doc.issue(("warehouse", "path"), f"warehouse.path: {file} is a folder, not a DuckDB file",
                                             f"name a file, e.g. {path.rstrip('/')}/warehouse.duckdb"))
            elif self.warehouse_must_exist and not file.exists():  # a typo: never an empty warehouse (and new state)
                self.issues.append(doc.issue(("warehouse", "path"), f"warehouse.path: {file} does not exist",
                                             "fix the path (it is relative to the project folder); dinsync never "
                                             "creates the warehouse file (`dinsync init` does): to start an empty "
                                             "one, run python -c \"import duckdb; duckdb.connect('"
                                             f"{path}').close()\""))
        schema = doc.data.get("state_schema")
        reserved = self.warehouse.reserved_schemas  # e.g. DuckDB's temp: every command failed with a Binder Error
        if isinstance(schema, str) and any(fnmatch.fnmatchcase(schema.lower(), p) for p in reserved):
            self.issues.append(doc.issue(("state_schema",), f"state_schema: {schema} is a schema the warehouse keeps "
                                         "for itself", "give dinsync a schema of its own, e.g. state_schema: dinsync"))
        for key in getattr(self.warehouse, "secret_fields", lambda: [])():
            if ("warehouse", key) not in doc.env_paths:
                self.issues.append(doc.issue(("warehouse", key), f"warehouse.{key} holds a password written in the file",
                                             f"write it as ${{env:NAME}} and export NAME; secrets never live in {doc.file}"))

    def load_destination(self, doc: YamlDoc, name: str, raw: dict) -> None:
        at = ("destinations", name)
        self.destination_types[name] = None
        kind = raw.get("type")
        types = registry()
        try:  # (a type that is not built in loads the plugins)
            if kind is None:
                self.issues.append(doc.issue(at, f"missing required key destinations.{name}.type",
                                             _type_hint("", types)))
                return
            cls = types.get(kind) if isinstance(kind, str) else None
            if cls is None:
                self.issues.append(doc.issue(at + ("type",), f"unknown destination type {kind!r}",
                                             _type_hint(kind, types)))
                return
        except PluginError as exc:
            self.issues.append(doc.issue(at + ("type",) if kind is not None else at, str(exc), exc.hint))
            return
        self.destination_types[name] = cls
        settings_model = cls.settings_model or NoSettings  # a plugin may declare no settings of its own
        setting_keys = tuple(settings_model.model_fields) if settings_model else ()
        ok = True
        for key in raw:
            if key not in DESTINATION_KEYS and key not in setting_keys:
                ok = False
                self.issues.append(doc.issue(at + (key,), f"unknown key destinations.{name}.{key}",
                                             choice_hint(key, DESTINATION_KEYS + setting_keys, "allowed keys")))
        settings = None
        if settings_model is not None:
            try:  # (a plugin's validators within its time limit: destinations/hooks.py)
                settings = hooks.call_blocking(cls, "the validators of its settings_model", settings_model.model_validate,
                                               {k: v for k, v in raw.items() if k in setting_keys})
            except ValidationError as exc:
                ok = False
                self.issues += validation_issues(exc, doc, at, settings_model)
            except hooks.HookTimeoutError as exc:
                self.issues.append(doc.issue(at, exc.message, exc.hint))
                return
        for path, value in _secret_settings(settings) if settings is not None else ():
            where, label = at + path, f"destinations.{name}.{'.'.join(map(str, path))}"
            if (value and where not in doc.env_paths and where not in doc.missing_env_paths
                    and not (path[-1] in _SECRET_OR_PATH_KEYS and not _looks_like_key_text(value))):
                ok = False  # the README's rule, as for warehouse passwords and Slack webhook URLs
                self.issues.append(doc.issue(where, f"{label} is a credential written in the file",
                                             f"write it as ${{env:NAME}} and export NAME; secrets never live in {doc.file}"))
            elif (not value and len(path) == 1 and self.needs_secrets(name)  # e.g. ${env:KEY} set to ''
                    and where not in doc.missing_env_paths):  # (an unset variable is its own issue)
                ok = False
                names = doc.env_names.get(where, [])
                hint = (f"environment variable {names[0]} is set but empty: export {names[0]}=<the value>"
                        if len(names) == 1 else "set it, e.g. from an environment variable: ${env:NAME}")
                self.issues.append(doc.issue(where, f"{label} is empty", hint))
            elif _CONTROL.search(value) and path[-1] not in _SECRET_OR_PATH_KEYS:  # (a PEM key holds line ends)
                ok = False  # `$(cat key.txt)` of a file saved on Windows keeps its \r: every request refused
                names = doc.env_names.get(where, [])
                variable = names[0] if len(names) == 1 else "the variable"
                self.issues.append(doc.issue(where, f"{label} holds a control character (a line end or a tab)",
                                             f"export {variable} without it, e.g. "
                                             f"export {variable}=\"$(tr -d '\\r\\n\\t' < key.txt)\""))
        rate_limits = raw.get("rate_limits")
        for endpoint in rate_limits if isinstance(rate_limits, dict) else ():
            if endpoint not in cls.limits:
                ok = False
                self.issues.append(doc.issue(
                    at + ("rate_limits", endpoint), f"{kind} has no endpoint {endpoint!r} (in rate_limits)",
                    choice_hint(endpoint, cls.limits, "endpoints")))
        generic = {k: v for k, v in raw.items() if k in DESTINATION_KEYS and k != "type"}
        options_model = destination_options(cls.default_concurrency)  # the platform's own default
        try:
            options = options_model.model_validate(generic)
        except ValidationError as exc:
            self.issues += validation_issues(exc, doc, at, options_model)
            return
        if not ok or settings is None:
            return
        config = DestinationConfig(name=name, type=kind, settings=settings, destination_class=cls,
                                   **options.model_dump())
        try:
            config.resolved_base_url()
        except ValueError as exc:
            self.issues.append(doc.issue(at, str(exc), "set base_url"))
            return
        if cls.credential_header == "Authorization" and _has_userinfo(config.base_url):
            # aiohttp sends a URL's user:password@ as `Authorization: Basic`, which the platform's
            # bearer token needs: every request failed ("Cannot combine AUTHORIZATION header"), as transient
            self.issues.append(doc.issue(
                at + ("base_url",), f"destinations.{name}.base_url: {kind} sends its credentials in the "
                "Authorization header, so base_url cannot carry a user or password (user:password@)",
                "leave the user and password out of base_url (a proxy asking for them is not supported here)"))
            return
        self.destinations[name] = config


    # --- helpers -------------------------------------------------------------------------
    def check_folder(self, name: str, holds: str) -> None:
        """A project folder that is a file, or missing next to a folder of a close name (`Syncs/`,
        `sync/`): said, not read as a project without syncs ("OK: 0 sync(s)")."""
        folder = self.root / name
        if folder.exists() and not folder.is_dir():
            self.issues.append(ConfigIssue(f"{name} is a file, not a folder", name, None,
                                           f"make {name}/ a folder of {holds}"))
        elif not folder.exists():
            others = [p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")]
            close = [o for o in others if o.lower() in (name, name.rstrip("s"))]
            if close:
                self.issues.append(ConfigIssue(f"no folder {name}/, but {close[0]}/: rename it to {name}", close[0],
                                               None, f"dinsync reads {name}/ only, in lower case"))

    def project_data_line(self, key: str) -> int | None:
        return self.project_doc.line((key,)) if self.project_doc is not None else None

    def _read_yaml(self, path: Path, env: bool) -> YamlDoc | None:
        file = self.rel(path)
        text, problem = read_text(path, file)
        if problem:
            self.issues.append(problem)
            return None
        doc, issues = load_yaml(text, file)
        self.issues += issues
        if doc is None:
            return None
        if env:
            # a command that sends nothing may run without the destinations' variables
            # (and one that notifies nobody without the notification channels' variables)
            unset_ok = {("destinations",): self.destination_secrets is not True,
                        ("notifications",): not self.notification_secrets}

            def optional(at: tuple) -> bool:
                if at[:1] == ("destinations",) and len(at) > 1:
                    return not self.needs_secrets(str(at[1]))
                return unset_ok.get(at[:1], False)

            self.issues += substitute_env(doc, self.env, optional if any(unset_ok.values()) else None)
            self.secrets += doc.env_values
        if not isinstance(doc.data, dict):
            kind = "empty" if doc.data is None else f"a {type(doc.data).__name__}, not a mapping"
            self.issues.append(ConfigIssue(f"file is {kind}", file, doc.line(()),
                                           "write `key: value` lines at the top level"))
            return None
        return doc

    def needs_secrets(self, destination: str) -> bool:
        """Whether destination `destination`'s `${env:NAME}` must be set: `destination_secrets` is
        a bool (every destination, or none) or the names of the destinations a command sends to."""
        if isinstance(self.destination_secrets, bool):
            return self.destination_secrets
        return destination in self.destination_secrets

    def _check_name(self, name: str, file: str, what: str) -> bool:
        if _NAME.fullmatch(name):
            return True
        self.issues.append(ConfigIssue(f"invalid {what} name {name!r}", file, None,
                                       "rename the file: ASCII letters, digits and underscores only"))
        return False


def load_project(root: str | Path, env: Mapping[str, str] | None = None, *,
                 columns_of: ColumnsOf | None = None, dbt_strict: bool = True,
                 destination_secrets: bool | Collection[str] = True, notification_secrets: bool = True,
                 warehouse_must_exist: bool = False) -> Project:
    """Load and validate the project in `root`; raise ConfigError with every issue found.

    `env` holds the variables for `${env:NAME}` in dinsync.yml (default: os.environ).
    `columns_of(model)`, when given, returns a model's column names (e.g. from the warehouse); it
    is called once for every model that parsed, even when other files have issues, and the match
    column, mapped columns and primary key of each sync / model must then be among them (see
    `check_columns`). Those issues are reported together with all the others.
    `dbt_strict=False` (commands that only read the run log): a model whose dbt refs cannot be
    resolved (no manifest, a stale one...) is loaded with its SQL as written, not reported.
    `destination_secrets=False` (commands that send nothing: status, runs, rejections, pause,
    check): a `${env:NAME}` under `destinations:` that is not set is '' instead of an issue; the
    warehouse's variables are still needed. A collection of destination names: only theirs are
    needed (the destinations of the syncs a command runs). `notification_secrets=False` (commands that notify
    nobody: status, runs, rejections, check): a channel under `notifications:` whose `${env:NAME}`
    is not set is left out instead of an issue. `warehouse_must_exist` (commands that open the
    warehouse): a DuckDB file that does not exist is an issue (opening it would create it).
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise ConfigError([ConfigIssue(f"project folder {root} not found", str(root), None,
                                       "pass the folder that holds dinsync.yml")])
    loader = _Loader(root, environ() if env is None else env, dbt_strict, destination_secrets, notification_secrets,
                     warehouse_must_exist)
    loader.load_project_file()
    loader.load_models()
    loader.check_dbt_adapter()
    loader.load_syncs()
    if columns_of is not None:
        loader.check_columns(columns_of)
    if loader.issues:
        scrub(loader.issues, loader.secrets)
        raise ConfigError(sort_issues(loader.issues))
    data = loader.project_data
    project = Project(root=root, path=root / PROJECT_FILE, version=data["version"], warehouse=loader.warehouse,
                      state_schema=data.get("state_schema", "dinsync"), destinations=loader.destinations,
                      models=loader.models, syncs=loader.syncs, notifications=loader.notifications,
                      dbt=loader.dbt_settings[0])
    project._dbt_problems, project._dbt_issues = dict(loader.dbt_problems), list(loader.dbt_issues)
    _register_secrets(project, loader.secrets)
    return project


def load_warehouse_config(root: str | Path, env: Mapping[str, str] | None = None) -> Any:
    """The validated `warehouse:` section of dinsync.yml alone (`${env:NAME}` substituted), or None
    when that section has an issue. For a project that failed validation elsewhere: its warehouse
    can still check the model columns, so that every issue is reported in one pass."""
    loader = _Loader(Path(root).resolve(), environ() if env is None else env)
    path = loader.root / PROJECT_FILE
    doc = loader._read_yaml(path, env=False) if path.is_file() else None
    if doc is None or not isinstance(doc.data.get("warehouse"), dict):
        return None
    section = YamlDoc(file=doc.file, data={"warehouse": doc.data["warehouse"]}, lines=doc.lines)
    if substitute_env(section, loader.env):  # a missing or malformed ${env:...} in the section
        return None
    loader.load_warehouse(section, section.data["warehouse"])
    return None if loader.issues else loader.warehouse


def _type_hint(kind: object, types) -> str:
    """The destination types to choose from, and the plugins that cannot be loaded, with their errors."""
    hint = choice_hint(kind, types, "supported types")
    broken = types.broken()
    return hint + ("; plugins that cannot be loaded: " + "; ".join(broken) if broken else "")
