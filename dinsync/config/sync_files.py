"""Reading syncs/: each `.yml` file validated on its own, then against what the project declares
(the sync's model, destination, service, mode, matching field and mapped fields).

`_SyncFiles` is the part of the loader (`loader._Loader`) that reads the sync files. The
cross-file checks run on the raw YAML, so that they report even when other keys of the file are
invalid; the columns each sync uses are recorded for the column check (`columns.py`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..destinations.base import Destination
from ..errors import ConfigIssue
from .columns import ColumnsOf, ColumnUse, column_issues
from .sync_config import FieldMap, SyncConfig, SyncFile
from .project_files import _NAME, PROJECT_FILE, _files
from .secrets_check import _texts
from .yamlfile import ENV_REF, YamlDoc, _show_path, choice_hint, validation_issues


class _SyncFiles:
    """The syncs/ part of one load (`loader._Loader`): its issues and syncs go to the load's."""

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


def _raw_field_type(data: dict, index: int) -> Any:
    """The `type:` of entry `index` of a sync's raw `fields` (mapping or list form), None without one."""
    raw = data.get("fields")
    items = list(raw.values()) if isinstance(raw, dict) else raw if isinstance(raw, list) else []
    item = items[index] if index < len(items) else None
    return item.get("type") if isinstance(item, dict) else None


def _raw_fields(data: dict) -> list[tuple[int, Any, Any]]:
    """(index, column, field) of each entry of a sync's raw `fields` (mapping or list form)."""
    return [(i, column, field) for i, column, field, _ in _raw_field_items(data)]
