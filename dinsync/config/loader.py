"""Load a project folder into validated models, reporting every problem in one pass.

`load_project` reads dinsync.yml, models/**/*.sql and syncs/**/*.yml, validates each file on its
own, then checks the references between them (a sync's model, destination, service, mode and
matching field). Given `columns_of`, it also checks in the same pass that the columns each sync
uses (and each model's primary key) exist in the model's output. All issues are collected, sorted
by file then line, and raised together as one `ConfigError`. `check_columns` runs that column
check alone on an already loaded `Project` (both in `columns.py`).
"""
from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path
from typing import Any, Collection, Container, Iterable, Iterator, Mapping

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from .. import redaction
from ..destinations import PluginError, registry
from ..destinations.base import Destination
from ..errors import ConfigError, ConfigIssue
from .columns import ColumnsOf, ColumnUse, column_issues, sort_issues
from .models import (
    CHANNEL_SECRET_KEYS,
    CHANNEL_TYPES,
    DESTINATION_KEYS,
    NAME_PATTERN,
    WAREHOUSE_TYPES,
    DestinationConfig,
    DbtSettings,
    destination_options,
    FieldMap,
    Model,
    Project,
    ProjectFile,
    SyncConfig,
    SyncFile,
)
from .yamlfile import (
    ENV_REF,
    YamlDoc,
    _show_path,
    choice_hint,
    did_you_mean,
    environ,
    load_yaml,
    not_utf8,
    read_text,
    scrub,
    substitute_env,
    validation_issues,
)

PROJECT_FILE = "dinsync.yml"
HEADER_KEYS = ("primary_key", "model_type")
MODEL_TYPES = ("user", "custom")
# a model's statement that writes (or sets up the session) instead of selecting rows
_WRITE_VERB = re.compile(r"\(*\s*(insert|update|delete|merge|create|drop|alter|truncate|grant|revoke|copy|call|"
                         r"attach|detach|install|load|set|pragma|export|import|vacuum|checkpoint|begin|commit)\b",
                         re.IGNORECASE)
_HEADER_LINE = re.compile(r"^\s*--\s*([A-Za-z_][A-Za-z0-9_-]*)\s*:\s*(.*?)\s*$")
_NAME = re.compile(NAME_PATTERN)

# Secret settings of a destination whose value may instead be the path of a file holding the secret
# (Splio's sftp.private_key: "the key itself or a file path"): written in the file, a path is fine.
_SECRET_OR_PATH_KEYS = ("private_key",)
# A URL with a password in it (`https://user:password@host`): written in dinsync.yml, the password
# would live in git; a `base_url` or a webhook's `url` was taken as it was
_URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/?#@\s:]*:[^/?#\s]+@", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # no credential sent in a header or URL holds one


def _secret_settings(settings: Any, at: tuple = ()) -> Iterable[tuple[tuple, str]]:
    """(key path, value) of every SecretStr in a destination's validated settings, nested ones too."""
    for key, value in settings:
        if isinstance(value, SecretStr):
            yield at + (key,), value.get_secret_value()
        elif isinstance(value, BaseModel):
            yield from _secret_settings(value, at + (key,))


def _looks_like_key_text(value: str) -> bool:
    return "\n" in value.strip() or "PRIVATE KEY" in value or value.lstrip().startswith("-----")


class NoSettings(BaseModel):
    """The settings of a destination that declares no `settings_model`: no key of its own."""

    model_config = ConfigDict(extra="forbid")


def _texts(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, str]]:
    """Every string of a parsed YAML document, with its key path (keys and list indexes)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _texts(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _texts(item, path + (index,))
    elif isinstance(value, str):
        yield path, value


class _Loader:
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
                                             choice_hint("", types, "supported types")))
                return
            cls = types.get(kind) if isinstance(kind, str) else None
            if cls is None:
                self.issues.append(doc.issue(at + ("type",), f"unknown destination type {kind!r}",
                                             choice_hint(kind, types, "supported types")))
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
            try:
                settings = settings_model.model_validate({k: v for k, v in raw.items() if k in setting_keys})
            except ValidationError as exc:
                ok = False
                self.issues += validation_issues(exc, doc, at, settings_model)
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

    # --- models --------------------------------------------------------------------------
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

    def load_models(self) -> None:
        self.check_folder("models", ".sql files, one per model (the file name is the model name)")
        folder = self.root / "models"
        from .dbt import dbt_model_paths

        # dinsync.yml beside dbt_project.yml: one folder (models/ is read at any depth), two tools
        if any(p == "models" or p.startswith("models" + os.sep) for p in dbt_model_paths(self.root)):
            self.issues.append(ConfigIssue(
                "models/ is the dbt project's model folder (dbt_project.yml here): dinsync would read dbt's models "
                "as its own", "dbt_project.yml", None, "keep the dinsync project in a folder of its own inside the "
                "dbt project (dinsync.yml, models/, syncs/ in e.g. activation/: the dbt project is found in its "
                "parent folder)"))
            return
        first: dict[str, str] = {}
        for path in _files(folder, "*.sql"):
            file, name = self.rel(path), path.stem
            if not self._check_name(name, file, "model"):
                continue
            if name.lower() in first:
                self.issues.append(ConfigIssue(f"duplicate model name {name!r} (also {first[name.lower()]})",
                                               file, 1, "model names must be unique; rename one of the files"))
                continue
            first[name.lower()] = file
            self.model_names.add(name)
            text, problem = read_text(path, file)
            if problem:
                self.issues.append(problem)
                continue
            model = self._parse_model(name, path, file, text)
            if model is not None:
                self.models[name] = model

    def _parse_model(self, name: str, path: Path, file: str, text: str) -> Model | None:
        issues: list[ConfigIssue] = []
        header: dict[str, tuple[str, int]] = {}
        lines = text.splitlines()
        body_line = len(lines) + 1
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            if not line.strip().startswith("--"):
                body_line = number
                break
            match = _HEADER_LINE.match(line)
            if not match:
                continue
            key, value = match.groups()
            if key in HEADER_KEYS:
                if key in header:
                    issues.append(ConfigIssue(f"{key} declared twice (first on line {header[key][1]})", file, number,
                                              "keep one header line per key"))
                else:
                    header[key] = (value, number)
            elif did_you_mean(key, HEADER_KEYS):
                issues.append(ConfigIssue(f"unknown header key {key!r}", file, number,
                                          choice_hint(key, HEADER_KEYS, "header keys")))

        if "{{" in text or "{%" in text:  # refs to dbt models (or Jinja dinsync refuses)
            from .dbt import resolve_model

            resolved, dbt_issues, dbt_ok = resolve_model(self.dbt, text, file)
        else:
            resolved, dbt_issues, dbt_ok = None, [], True
        self.dbt_issues += dbt_issues
        if self.dbt_strict:
            issues += dbt_issues
        if resolved is not None:
            text = resolved.sql
        # its refs are fine but dbt's manifest is missing, stale or says a model was not built: the
        # dbt model's primary key is not known, and the issue already reported says why
        dbt_issues_only = not dbt_ok and not any(i.message.startswith("unsupported Jinja") for i in dbt_issues)
        primary_key, model_type, key_of_dbt_model = None, "custom", None
        if "primary_key" not in header and resolved is not None and resolved.primary_key:
            primary_key = resolved.primary_key  # the dbt model's (its unique + not_null tests, or constraint)
            key_of_dbt_model = resolved.dbt_models[0]
        elif "primary_key" not in header and not dbt_ok and (not self.dbt_strict or dbt_issues_only):
            primary_key = ""  # unknown until the dbt manifest can be read (not used by this command)
        elif "primary_key" not in header:
            hint = "start the file with `-- primary_key: <column>`"
            if resolved is not None:
                hint += " (or give the dbt model `unique` and `not_null` tests on one column)"
            issues.append(ConfigIssue("missing primary key header", file, 1, hint))
        else:
            value, number = header["primary_key"]
            quoted = len(value) > 2 and value[0] == value[-1] == '"'
            primary_key = value[1:-1].replace('""', '"') if quoted else value
            if not primary_key or (not quoted and re.search(r"[\s,]", primary_key)):
                hint = "write `-- primary_key: <column>` (composite keys are not supported)"
                if primary_key and "," not in primary_key:
                    hint = f"a column name holding spaces goes in double quotes: `-- primary_key: \"{primary_key}\"`"
                issues.append(ConfigIssue(f"primary_key must name one column, got {value!r}", file, number, hint))
                primary_key = None
        if "model_type" in header:
            value, number = header["model_type"]
            if value not in MODEL_TYPES:
                issues.append(ConfigIssue(f"invalid model_type {value!r}", file, number,
                                          choice_hint(value, MODEL_TYPES, "expected one of")))
            model_type = value

        sql, sql_line = self._model_sql(text, file, issues)
        verb = _WRITE_VERB.match(sql)
        if verb:  # the warehouse would answer "syntax error at or near ..." (the model is read as a subquery)
            issues.append(ConfigIssue(f"a model is a SELECT query, not a {verb.group(1).upper()} statement", file,
                                      sql_line or body_line, "write the SELECT whose rows the syncs send; "
                                      "build tables with dbt or in the warehouse"))
        elif sql and not issues and _WRITE_WORD.search(sql):
            write = _hidden_write(sql, getattr(self.warehouse, "type", None) or "duckdb")
            if write:  # `with d as (delete ... returning *) select`: DuckDB deletes as it reads the columns
                words = [m for m in _WRITE_WORD.finditer(sql) if m.group(1).upper() == write] or [None]
                line = (sql_line or body_line) + (sql.count("\n", 0, words[0].start()) if words[0] else 0)
                article = "an" if write[0] in "AEIOU" else "a"
                issues.append(ConfigIssue(f"a model is a SELECT query, not one holding {article} {write} statement",
                                          file, line, "write the SELECT whose rows the syncs send; change data "
                                          "with dbt or in the warehouse"))
        self.issues += issues
        if issues or (not dbt_ok and self.dbt_strict):
            return None
        dbt_models, tags = (resolved.dbt_models, resolved.tags) if resolved else ((), ())
        if not dbt_ok:  # (not strict) known from the manifest as far as it goes, for `model:`/`tag:`
            self.dbt_problems[name] = dbt_issues
            dbt_models, tags = self._dbt.partial.get(file, ((), ())) if self._dbt is not None else ((), ())
        model = Model(name=name, path=path, sql=sql, primary_key=primary_key, model_type=model_type,
                      dbt_models=tuple(dbt_models), tags=tuple(tags))
        model._dbt_primary_key = key_of_dbt_model
        model._lines.update({"sql": sql_line or body_line,
                             "primary_key": header["primary_key"][1] if "primary_key" in header else 1})
        if "model_type" in header:
            model._lines["model_type"] = header["model_type"][1]
        return model

    @staticmethod
    def _model_sql(text: str, file: str, issues: list[ConfigIssue]) -> tuple[str, int | None]:
        """The single statement of a model (without its trailing semicolon) and its first line."""
        simple = _single_statement(text)
        if simple is not None:
            return simple
        from ..lazy_imports import sqlglot_modules  # only for models with `;` or `/*` inside

        sqlglot, _ = sqlglot_modules()
        Dialect, TokenType = sqlglot.Dialect, sqlglot.TokenType

        try:
            tokens = Dialect.get_or_raise("duckdb").tokenize(text)
        except Exception:  # unterminated string, ...: the warehouse reports it (check_columns)
            return text.strip().rstrip(";").strip(), None
        statements: list[list] = [[]]
        for token in tokens:
            if token.token_type == TokenType.SEMICOLON:
                statements.append([])
            else:
                statements[-1].append(token)
        statements = [s for s in statements if s]
        if not statements:
            issues.append(ConfigIssue("model SQL is empty", file, len(text.splitlines()) or 1,
                                      "write one SELECT after the header comments"))
            return "", None
        if len(statements) > 1:
            issues.append(ConfigIssue("more than one SQL statement in a model", file, statements[1][0].line,
                                      "a model is a single SELECT; remove the extra statement"))
        first = statements[0]
        start = text.rfind("\n", 0, first[0].start) + 1  # keep comments on the statement's first line
        prefix = text[start:first[0].start]
        if "*/" in prefix and "/*" not in prefix[:prefix.find("*/")]:
            start = first[0].start  # (not the tail of a block comment opened on an earlier line)
        return text[start:first[-1].end + 1].strip(), first[0].line

    def check_dbt_adapter(self) -> None:
        """The relations in the manifest are only readable from a warehouse of dbt's type."""
        if self._dbt is None:
            return  # no model reads dbt
        manifest = self.dbt.loaded_manifest
        kind = getattr(self.warehouse, "type", None)
        if manifest is None or not manifest.adapter_type or kind is None or manifest.adapter_type == kind:
            return
        issue = ConfigIssue(f"the dbt project builds into {manifest.adapter_type} (manifest adapter_type) but "
                            f"the warehouse is {kind}", PROJECT_FILE, self.project_data_line("warehouse"),
                            "dinsync must read the warehouse dbt builds into: point warehouse at dbt's target")
        self.dbt_issues.append(issue)
        if self.dbt_strict:
            self.issues.append(issue)

    def project_data_line(self, key: str) -> int | None:
        return self.project_doc.line((key,)) if self.project_doc is not None else None

    # --- syncs ---------------------------------------------------------------------------
    def load_syncs(self) -> None:
        self.check_folder("syncs", ".yml files, one per sync (the file name is the sync name)")
        folder = self.root / "syncs"
        paths = _files(folder, "*.yml", "*.yaml")
        for path in _files(folder, "*.[yY][mM][lL]", "*.[yY][aA][mM][lL]"):
            if path.suffix not in (".yml", ".yaml"):  # `leads.YML`: never read, the sync never ran
                self.issues.append(ConfigIssue(f"{self.rel(path)} is not read: a sync file's name ends in .yml or "
                                               ".yaml", self.rel(path), None, f"rename it to {path.stem}.yml"))
        first: dict[str, str] = {}
        for path in paths:
            file, name = self.rel(path), path.stem
            if not self._check_name(name, file, "sync"):
                continue
            if name.lower() in first:
                self.issues.append(ConfigIssue(f"duplicate sync name {name!r} (also {first[name.lower()]})",
                                               file, 1, "sync names must be unique; rename one of the files"))
                continue
            first[name.lower()] = file
            doc = self._read_yaml(path, env=False)
            if doc is not None:
                self._load_sync(name, path, doc)

    def _load_sync(self, name: str, path: Path, doc: YamlDoc) -> None:
        data = doc.data
        if isinstance(data.get("fields"), dict):  # mapping form: item i is the i-th key
            for index, (column, value) in enumerate(data["fields"].items()):
                doc.lines[("fields", index)] = doc.line(("fields", column))
                doc.written[("fields", index)] = ("fields", column)
                if isinstance(value, dict):  # `column: {field: ..., type: ...}`: each key on its line
                    for key in value:
                        doc.lines[("fields", index, key)] = doc.line(("fields", column, key))
                else:  # `column: field`: the item's field is the column's value
                    doc.written[("fields", index, "field")] = ("fields", column)
        self._check_references(doc)
        self._check_no_env_refs(doc)
        try:
            raw = SyncFile.model_validate(data)
        except ValidationError as exc:
            self.issues += validation_issues(exc, doc, (), SyncFile)
            return
        if not raw.fields:  # the diff has nothing to compare nor the platform to receive
            self.issues.append(doc.issue(("fields",), "the sync maps no field",
                                         "map model columns to destination fields, e.g. `fields: {first_name: "
                                         "firstName}`"))
        fields = []
        for index, item in enumerate(raw.fields):
            field = FieldMap(column=item.column, field=item.field, type=item.type, custom=item.custom)
            field._lines["field"] = doc.line(("fields", index))
            fields.append(field)
        sync = SyncConfig(name=name, path=path, model=raw.model, destination=raw.destination,
                          service=raw.service, mode=raw.mode, match_column=raw.match.column,
                          match_field=raw.match.field, fields=fields, schedule=raw.schedule,
                          thresholds=raw.thresholds, enabled=raw.enabled, tags=tuple(raw.tags))
        for key in ("model", "destination", "service", "mode", "match", "match.column", "match.field",
                    "fields", "schedule", "thresholds", "enabled", "tags"):
            sync._lines[key] = doc.line(tuple(key.split(".")))
        self.syncs[name] = sync

    def _check_no_env_refs(self, doc: YamlDoc) -> None:
        """`${env:NAME}` is substituted in dinsync.yml only: in a sync file it was taken as written (a
        field named `${env:PLAN_FIELD}` went to the platform, which may create it)."""
        for path, value in _texts(doc.data):
            ref = next((m for m in ENV_REF.finditer(value) if not m.group(1)), None)
            if ref is not None:
                self.issues.append(doc.issue(path, f"{_show_path(path)}: {ref.group(0)} is not read in a "
                                             "sync file", "environment variables are read in dinsync.yml only: "
                                             "write the value itself"))

    def _check_references(self, doc: YamlDoc) -> None:
        """Cross-file checks on the raw sync data (so they run even when other keys are invalid)."""
        data = doc.data
        model = data.get("model")
        if isinstance(model, str) and model not in self.model_names:
            folder = self.root / "models"
            # models/<name>.SQL, .sql.txt, ...: not read (a model is a .sql file); say so (a <name>.sql
            # not read is a duplicate of a name in another case, reported at its file: did you mean...)
            other = [self.rel(p) for p in _files(folder, f"{model}.*")
                     if p.is_file() and p.suffix != ".sql"] if _NAME.fullmatch(model) else []
            # models/<name>.sql whose name is no valid model name is refused at its file: name it here
            misnamed = [] if _NAME.fullmatch(model) else [self.rel(p) for p in _files(folder, "*.sql")
                                                          if p.stem == model]
            hint = (f"{other[0]} is not read: a model's file name ends in .sql" if other
                    else f"{misnamed[0]} is not read: its name is not a valid model name" if misnamed
                    else choice_hint(model, self.model_names, "models"))
            self.issues.append(doc.issue(("model",), f"unknown model {model!r}", hint))
        destination = data.get("destination")
        cls = None
        if isinstance(destination, str) and self.destination_types is not None:
            if destination not in self.destination_types:
                self.issues.append(doc.issue(("destination",), f"unknown destination {destination!r}",
                                             choice_hint(destination, self.destination_types,
                                                         f"destinations in {PROJECT_FILE}")))
            cls = self.destination_types.get(destination)
        match = data.get("match") if isinstance(data.get("match"), dict) else {}
        if cls is not None:
            self._check_service(doc, cls, model, match)
        self._check_field_targets(doc, match)
        if isinstance(model, str) and model in self.model_names:  # unknown model: reported above
            self._record_column_uses(doc, model, match)

    def _check_service(self, doc: YamlDoc, cls: type[Destination], model: Any, match: dict) -> None:
        """What the destination's service declares: modes, matching fields, model types, fields."""
        data = doc.data
        service_name, mode, key = data.get("service"), data.get("mode"), match.get("field")
        if not isinstance(service_name, str):
            return  # the schema check reports it
        service = cls.services.get(service_name)
        if service is None:
            self.issues.append(doc.issue(("service",), f"{cls.type_name} has no service {service_name!r}",
                                         choice_hint(service_name, cls.services, "services")))
            return
        if mode in ("upsert", "update", "insert") and mode not in service.modes:  # else: schema error
            why = service.mode_notes.get(mode)
            self.issues.append(doc.issue(("mode",), f"{cls.type_name} {service_name} does not support mode {mode!r}"
                                         + (f": {why}" if why else ""),
                                         choice_hint(mode, service.modes, "supported modes")))
        if isinstance(key, str) and key not in service.key_fields:
            self.issues.append(doc.issue(("match", "field"), f"{cls.type_name} {service_name} cannot match on {key!r}",
                                         choice_hint(key, service.key_fields, "matching fields")))
        model_obj = self.models.get(model) if isinstance(model, str) else None
        if model_obj is not None and model_obj.model_type not in service.model_types:
            self.issues.append(doc.issue(
                ("model",), f"{cls.type_name} {service_name} takes models of type "
                f"{' or '.join(service.model_types)}, and model {model} is {model_obj.model_type!r}",
                f"set `-- model_type: {service.model_types[0]}` in models/{model}.sql if its rows are "
                f"{service.model_types[0]}s"))
        for index, _column, field, raw_custom in _raw_field_items(data):
            if not isinstance(field, str):
                continue
            custom = _custom_flag(raw_custom)
            if custom is True and not service.custom_fields:
                self.issues.append(doc.issue(("fields", index), f"{cls.type_name} {service_name} has no custom "
                                             f"attributes: {field!r} cannot be marked custom",
                                             "remove `custom: true`"))
            elif custom is not True and not service.open_fields and field not in service.fields \
                    and field != key:
                hint = choice_hint(field, service.fields, "fields")
                if service.custom_fields:
                    hint += "; or mark it `custom: true` to send it as a custom attribute"
                self.issues.append(doc.issue(("fields", index), f"{cls.type_name} {service_name} has no field "
                                             f"{field!r}", hint))
            elif custom is not True and field in service.fields and not service.fields[field].writable:
                self.issues.append(doc.issue(("fields", index), f"{cls.type_name} field {field!r} is read-only",
                                             "remove it from the mapping"))

    def _record_column_uses(self, doc: YamlDoc, model: str, match: dict) -> None:
        """Remember the columns this sync uses, for the column check (`columns_of`)."""
        uses: list[tuple[str, str, int | None]] = []
        column = match.get("column")
        if isinstance(column, str) and column:  # else: the schema check reports it
            uses.append(("match column", column, doc.line(("match", "column"))))
        typed: list[tuple[str, str, str, int | None]] = []
        for index, column, field in _raw_fields(doc.data):
            if isinstance(column, str) and column:
                uses.append(("column", column, doc.line(("fields", index))))
                kind = _raw_field_type(doc.data, index)
                if isinstance(field, str) and isinstance(kind, str):  # (an invalid one: the schema check)
                    typed.append((column, field, kind, doc.line(("fields", index))))
        self.column_uses.append(ColumnUse(doc.file, model, uses, typed))

    def check_columns(self, columns_of: ColumnsOf) -> None:
        self.issues += column_issues(self.models, self.rel, self.column_uses, columns_of)

    def _check_field_targets(self, doc: YamlDoc, match: dict) -> None:
        seen: dict[str, tuple[Any, int]] = {}
        for index, column, field in _raw_fields(doc.data):
            if not isinstance(field, str):
                continue
            line = doc.line(("fields", index))
            if field in seen:
                self.issues.append(doc.issue(("fields", index), f"destination field {field!r} is mapped twice "
                                             f"(from {seen[field][0]!r} on line {seen[field][1]} and {column!r})",
                                             "map each destination field from one column"))
                continue
            seen[field] = (column, line)
            if field == match.get("field") and column != match.get("column"):
                self.issues.append(doc.issue(("fields", index), f"field {field!r} is the matching key, set from "
                                             f"match.column {match.get('column')!r}, not from {column!r}",
                                             "remove this mapping or match on another field"))

    # --- helpers -------------------------------------------------------------------------
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


def _files(folder: Path, *patterns: str) -> list[Path]:
    """The files of `folder` (at any depth) matching `patterns`, but none hidden or in a hidden
    folder: editors' lock files (`.#customers.sql`), macOS's `._customers.sql`, `.ipynb_checkpoints`."""
    if not folder.is_dir():
        return []
    return sorted(p for pattern in patterns for p in folder.rglob(pattern)
                  if not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _custom_flag(value: Any) -> bool:
    """A raw field's `custom:` as FieldMap reads it (True for `true`, and for `"true"`, `1`, `"yes"`...,
    which the run takes for true): the checks of the fields took only `true`, so `custom: "true"` was
    checked as a standard field (and refused as one Splio lacks) while the run wrote a custom one.
    A value FieldMap refuses is False here (the schema check reports it)."""
    if value is None or isinstance(value, bool):
        return bool(value)
    try:
        return FieldMap.model_validate({"column": "c", "field": "f", "custom": value}).custom
    except ValidationError:
        return False


def _raw_field_items(data: dict) -> list[tuple[int, Any, Any, Any]]:
    """(index, column, field, custom) of each entry of a sync's raw `fields`."""
    raw = data.get("fields")
    items = []
    if isinstance(raw, dict):
        for i, (column, value) in enumerate(raw.items()):
            if isinstance(value, dict):
                items.append((i, column, value.get("field"), value.get("custom")))
            else:
                items.append((i, column, value, None))
    elif isinstance(raw, list):
        items = [(i, item.get("column"), item.get("field"), item.get("custom"))
                 for i, item in enumerate(raw) if isinstance(item, dict)]
    return items


def _single_statement(text: str) -> tuple[str, int] | None:
    """Fast path of `_model_sql` without a SQL tokenizer (keeps sqlglot out of start-up): a text
    with no `/*` and no `;` except one closing the last line is at most one statement, starting
    at its first line that is neither blank nor a `--` comment. None: tokenize it instead (also
    when a trailing line starting with `--` may be the end of a string spanning lines)."""
    body = text.rstrip()
    if body.endswith(";") and "--" not in body[body.rfind("\n") + 1:]:
        body = body[:-1]
    if ";" in body or "/*" in body:
        return None
    lines = body.splitlines()
    while lines and (not lines[-1].strip() or lines[-1].lstrip().startswith("--")):
        if lines[-1].strip() and any(q in body for q in "'\"$"):
            return None  # `'a\n-- b'`: the line is in a string, which the tokenizer sees
        lines.pop()  # trailing comment lines belong to no statement
    for number, line in enumerate(lines, 1):
        if line.strip() and not line.lstrip().startswith("--"):
            return "\n".join(lines[number - 1:]).strip(), number
    return None  # no statement: the tokenizer path reports it


_WRITE_WORD = re.compile(r"\b(insert|update|delete|merge)\b", re.IGNORECASE)


def _hidden_write(sql: str, dialect: str) -> str | None:
    """The write (INSERT, UPDATE, DELETE, MERGE) a SELECT holds, e.g. in a data-modifying CTE; None
    for a read-only query. DuckDB runs such a CTE when the query is bound, so the column check of
    `validate` changed the warehouse: refused before the warehouse sees the model. The planner's
    check (`check_model_sql`) decides, on the tokens where sqlglot cannot parse the dialect."""
    from ..diff.render import ModelSqlError, check_model_sql
    from ..lazy_imports import sqlglot_modules

    try:
        check_model_sql(sql, dialect)
        return None
    except ModelSqlError:
        pass
    sqlglot, exp = sqlglot_modules()
    try:
        trees = [t for t in sqlglot.parse(sql, read=dialect) if t is not None]
    except sqlglot.errors.TokenError:  # not SQL sqlglot can read (an unterminated string): the warehouse says why
        return None
    except sqlglot.errors.ParseError:
        trees = []
    kinds = [type(n).__name__.upper() for t in trees for n in t.walk() if isinstance(n, exp.DML)]
    return kinds[0] if kinds else (_WRITE_WORD.search(sql).group(1).upper())


def _raw_field_type(data: dict, index: int) -> Any:
    """The `type:` of entry `index` of a sync's raw `fields` (mapping or list form), None without one."""
    raw = data.get("fields")
    items = list(raw.values()) if isinstance(raw, dict) else raw if isinstance(raw, list) else []
    item = items[index] if index < len(items) else None
    return item.get("type") if isinstance(item, dict) else None


def _raw_fields(data: dict) -> list[tuple[int, Any, Any]]:
    """(index, column, field) of each entry of a sync's raw `fields` (mapping or list form)."""
    return [(i, column, field) for i, column, field, _ in _raw_field_items(data)]


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


def _register_secrets(project: Project, env_values: Iterable[str] = ()) -> None:
    """Every secret setting (also one written in the file, not taken from the environment) is
    masked in all output from now on (see `dinsync.redaction`). `env_values`: the values substituted
    for `${env:NAME}` (a channel URL given whole so is a credential, see `_url_tokens`)."""
    env_values = set(env_values)
    redaction.register(*(v.get_secret_value() for _, v in project.warehouse if isinstance(v, SecretStr)),
                       partial=True)
    for destination in project.destinations.values():
        redaction.register(*destination.credentials().values(), _basic_auth(destination.base_url),
                           _url_password(destination.base_url), partial=True)
    for channel in project.notifications:  # webhook URLs and headers may carry tokens
        urls = [v.get_secret_value() for _, v in channel if isinstance(v, SecretStr)]
        redaction.register(*urls, *map(_basic_auth, urls), *map(_url_password, urls), partial=True)
        redaction.register(*_url_tokens(channel, env_values))
        named, long_values = _query_secrets(channel)
        redaction.register(*named, partial=True)
        redaction.register(*long_values)  # (whole only: the start of `engineering-alerts` is no secret)
        headers = [v.get_secret_value() for name, v in getattr(channel, "headers", {}).items()
                   if _credential_header(name) or v.get_secret_value() in env_values]
        # and the token of `Bearer <token>` alone, whose start an answer may echo; not the scheme
        # word before it (`Bearer`, `Basic`), which masked as a secret garbled every text naming it
        redaction.register(*headers, *(word for value in headers for word in _credential_words(value)), partial=True)


# Header names whose values are credentials even when written in the file (`Authorization: Bearer
# ...`); any other header's is one only when it comes from `${env:NAME}`: a literal `X-Source:
# dinsync` registered as a secret masked every "dinsync" of every message (`*** runs SYNC`).
_CREDENTIAL_HEADER = re.compile(r"authorization|cookie|token|key|secret|auth|sign|pass|session|api|bearer|jwt",
                                re.IGNORECASE)


def _credential_header(name: str) -> bool:
    return _CREDENTIAL_HEADER.search(name) is not None


def _credential_words(value: str) -> list[str]:
    """The words of a header value that may be credentials: all but the first of several (an
    authentication scheme, `Bearer <token>`, `Basic <base64>`: the scheme is no secret)."""
    words = value.split()
    return words[1:] if len(words) > 1 else words


def _has_userinfo(url: str | None) -> bool:
    """Whether `url` names a user or a password before its host (`https://user:pw@host`)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url or "")
        return parts.username is not None or parts.password is not None
    except ValueError:
        return False


def _basic_auth(url: str | None) -> str | None:
    """The `Authorization: Basic` token a URL's `user:password@` is sent as (aiohttp's encoding):
    a server echoing that header shows it, and it decodes to the password."""
    import base64
    from urllib.parse import unquote, urlsplit

    try:
        parts = urlsplit(url or "")
        if parts.username is None:  # (`https://token@host` is sent too, as `token:`)
            return None
        login = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        return base64.b64encode(login.encode("latin1")).decode()
    except (ValueError, UnicodeEncodeError):  # no URL, or credentials aiohttp cannot send either
        return None


def _url_password(url: str | None) -> str | None:
    """The password of a URL's `user:password@` (as sent, percent-decoded): an answer may name it
    alone, which neither the URL nor its Basic token (`_basic_auth`) matches."""
    from urllib.parse import unquote, urlsplit

    try:
        password = urlsplit(url or "").password
    except ValueError:
        return None
    return unquote(password) if password else None


def _empty_env_values(doc: YamlDoc, under: tuple) -> list[tuple]:
    """The paths under `under` whose `${env:NAME}` value is set but empty."""
    return [p for p in sorted(doc.env_paths, key=str) if p[:len(under)] == under and _value_at(doc.data, p) == ""]


def _empty_value_issue(doc: YamlDoc, path: tuple) -> ConfigIssue:
    names = doc.env_names.get(path, [])
    return doc.issue(path, f"{_show_path(path)} is empty",
                     f"environment variable {names[0]} is set but empty: export {names[0]}=<the value>"
                     if len(names) == 1 else "set it, e.g. from an environment variable: ${env:NAME}")


def _value_at(node: Any, path: tuple) -> Any:
    """The value at `path` in parsed YAML (None where there is none)."""
    for key in path:
        if isinstance(node, dict):
            node = node.get(key)
        elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            node = node[key]
        else:
            return None
    return node


def _url_tokens(channel: Any, env_values: Container[str] = ()) -> list[str]:
    """The parts of a channel's URLs an answer may echo without the rest (`Cannot POST /services/...`):
    the query, and the path of a URL that is the credential itself: Slack's (its path is the token),
    and one given whole as `${env:NAME}` (one of `env_values`), as webhook URLs whose path holds the
    token are (Zapier's /hooks/catch/<id>/<token>/, Discord's, Teams')."""
    from urllib.parse import urlsplit

    tokens = []
    for key, value in channel:
        if isinstance(value, SecretStr):
            parts = urlsplit(value.get_secret_value())
            tokens.append(parts.query)
            if key in CHANNEL_SECRET_KEYS.get(channel.type, ()) or value.get_secret_value() in env_values:
                # (also without its trailing slash: servers quote the path they routed)
                tokens += [parts.path + (f"?{parts.query}" if parts.query else ""), parts.path, parts.path.rstrip("/")]
                # and its token-like segments alone, which an answer may name without the rest
                # (`no hook <token>`); short ones (`services`, an id `123456`) stay readable
                tokens += [s for s in parts.path.split("/") if _long_token(s)]
    return [t for t in tokens if t.strip("/")]


# Query parameters whose values are credentials, besides the names `_CREDENTIAL_HEADER` matches:
# Azure Functions' `code`, a signature's `sig`
_CREDENTIAL_QUERY = re.compile(r"^(code|sig)$", re.IGNORECASE)
_TOKEN_CHARS = 16  # a query value or path segment this long (no whitespace) is taken for a token


def _long_token(text: str) -> bool:
    return len(text) >= _TOKEN_CHARS and not any(c.isspace() for c in text)


def _query_secrets(channel: Any) -> tuple[list[str], list[str]]:
    """The values of a channel URL's query parameters that are credentials on their own: an answer
    may name one alone (`invalid token <it>`, or the parameters echoed back), which the query
    masked whole (`_url_tokens`) does not match. A parameter's value is one when its name says
    credential (as a header's: `token`, `key`, `sig`, `code` ...) or when it is token-like and
    long; `channel=ops` stays readable. (values of credential names, other long values)"""
    from urllib.parse import parse_qsl, urlsplit

    named, long_values = [], []
    for _, value in channel:
        if isinstance(value, SecretStr):
            try:
                pairs = parse_qsl(urlsplit(value.get_secret_value()).query, keep_blank_values=False)
            except ValueError:
                continue
            for k, v in pairs:
                if _credential_header(k) or _CREDENTIAL_QUERY.match(k):
                    named.append(v)
                elif _long_token(v):
                    long_values.append(v)
    return named, long_values


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
