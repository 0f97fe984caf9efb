"""The column check of a project: the columns each sync uses (its match column, its mapped
columns) and each model's primary key exist in the model's output, once, and are of a type the
diff can compare and a destination can take. `load_project(..., columns_of=...)` runs it in its
one pass over the files; `check_columns` runs it alone on a loaded `Project`."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from ..errors import ConfigIssue
from .models import Model, Project
from .yamlfile import did_you_mean

# model -> its column names, or (name, warehouse type) pairs (then the types are checked too)
ColumnsOf = Callable[[Model], list[Any]]
# Warehouse types whose values cannot reach a destination (Arrow's interval and union types have
# no Polars counterpart; no field kind writes a map), anywhere in a column's type (e.g. INTERVAL[]).
# Searched in the type with its quoted names taken out (a STRUCT field or an ENUM value named
# "map" or 'interval' is no map or interval); a MAP or UNION is followed by its parameters, and an
# INTERVAL is not followed by a type (as a field named interval is: `STRUCT(interval INTEGER)`).
_UNSENDABLE_TYPE = re.compile(r"\b(MAP|UNION)\s*\(|\bINTERVAL\b(?!\s+[A-Z_])", re.IGNORECASE)
_QUOTED_NAME = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")
# Warehouse types whose text form is no identifier: floating point (`1.0`, and digits lost beyond
# ~15), and decimals with a scale (`1.00`); a matching key of such a type names other records than
# the integer or text it stands for (a key column turned DOUBLE re-created every user as `1.0`).
_NOT_A_KEY_TYPE = re.compile(r"^\s*(FLOAT\d*|DOUBLE( PRECISION)?|REAL|float[48])\s*$|"
                             r"^\s*(DECIMAL|NUMERIC|NUMBER)\s*\(\s*\d+\s*,\s*[1-9]\d*\s*\)\s*$", re.IGNORECASE)

# Instants whose text form, the key a platform receives, is written in the session's time zone:
# DuckDB's and PostgreSQL's (Redshift's) TIMESTAMP WITH TIME ZONE, Snowflake's TIMESTAMP_LTZ. The
# same instant was the key `2024-01-01 00:00:01+00` from a UTC host and `2023-12-31 19:00:01-05`
# under TZ / PGTZ=America/New_York (or a database's timezone setting): a run from another zone
# created every record again under its new key and dropped the old ones from the snapshot.
_ZONED_KEY_TYPE = re.compile(r"^\s*(TIMESTAMP WITH TIME ZONE|TIMESTAMPTZ|TIMESTAMP_LTZ)\s*$", re.IGNORECASE)


# What a column's values are, by its warehouse type's name, where that name says it for certain (the
# families `type:` conversions tell apart: dinsync.mapping.field_kinds); other types (text, JSON, UUID,
# enums, a warehouse's ARRAY or VARIANT read as text...) are not classified, so never refused below.
_TYPE_FAMILIES = (
    ("list", re.compile(r"\[\d*\]$|^_(int2|int4|int8|float4|float8|numeric|text|varchar|bpchar|bool|date|timestamp|"
                        r"timestamptz|time|uuid|jsonb|bytea)$", re.IGNORECASE)),  # (PostgreSQL's arrays: _int4)
    ("struct", re.compile(r"^STRUCT\s*\(", re.IGNORECASE)),
    ("binary", re.compile(r"^(BLOB|BYTEA|BINARY|VARBINARY|BYTES)$", re.IGNORECASE)),
    ("boolean", re.compile(r"^(BOOLEAN|BOOL)$", re.IGNORECASE)),
    ("date", re.compile(r"^DATE$", re.IGNORECASE)),
    ("timestamp", re.compile(r"^(TIMESTAMP\b.*|TIMESTAMPTZ|TIMESTAMP_(S|MS|NS|NTZ|LTZ|TZ)|DATETIME)$", re.IGNORECASE)),
    ("time", re.compile(r"^TIME(\s*\(\d+\))?( WITHOUT TIME ZONE)?$", re.IGNORECASE)),
    ("number", re.compile(r"^(TINYINT|SMALLINT|INTEGER|INT|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|"
                          r"INT2|INT4|INT8|INT64|FLOAT|FLOAT4|FLOAT8|FLOAT64|DOUBLE|DOUBLE PRECISION|REAL)$",
                          re.IGNORECASE)),
    ("decimal", re.compile(r"^(DECIMAL|NUMERIC|NUMBER)(\s*\(\s*\d+\s*(,\s*\d+\s*)?\))?$", re.IGNORECASE)),
)
# The families no value of which a field's `type:` converts (map_batch rejects every such value,
# "cannot convert values of type ... to ..."): such a mapping would reject every row of the model.
_KIND_REFUSES = {
    "integer": {"date", "timestamp", "time", "list", "struct", "binary"},
    "number": {"date", "timestamp", "time", "list", "struct", "binary"},
    "boolean": {"date", "timestamp", "time", "list", "struct", "binary"},
    "date": {"number", "decimal", "boolean", "time", "list", "struct", "binary"},
    "datetime": {"number", "decimal", "boolean", "time", "list", "struct", "binary"},
    "email": {"number", "decimal", "boolean", "date", "timestamp", "time", "list", "struct", "binary"},
    # (integers are read as numbers; a decimal of scale 0 may arrive as one)
    "phone": {"boolean", "date", "timestamp", "time", "list", "struct", "binary"},
}


def _type_family(kind: str) -> str | None:
    text = _QUOTED_NAME.sub("", kind).strip()
    return next((family for family, pattern in _TYPE_FAMILIES if pattern.search(text)), None)


@dataclass
class ColumnUse:
    """The model columns one sync uses: (what, column, line) items, located in `file`; `typed`: the
    fields given a `type:`, as (column, field, type, line)."""

    file: str
    model: str
    uses: list[tuple[str, str, int | None]]
    typed: list[tuple[str, str, str, int | None]] = field(default_factory=list)


def sort_issues(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    return sorted(issues, key=lambda i: (i.file or "", i.line or 0))


def check_columns(project: Project, columns_of: ColumnsOf, syncs: Iterable[str] | None = None) -> list[ConfigIssue]:
    """Check that primary keys, match columns and mapped columns exist in each model's output.

    `columns_of(model)` returns the model's column names (e.g. from the warehouse); when it
    raises, the model gets one issue carrying the exception's message. This is the check
    `load_project(..., columns_of=...)` runs; use it on a project that is already loaded.
    `syncs`: only these syncs and their models (a command that runs some syncs is not stopped by
    a model that only others use, e.g. one dbt has not built yet); default: every model.
    """
    chosen = list(project.syncs.values()) if syncs is None else [project.syncs[name] for name in syncs]
    models = project.models if syncs is None else {
        name: model for name, model in project.models.items() if any(s.model == name for s in chosen)}
    uses = [ColumnUse(project.relative(sync.path), sync.model,
                       [("match column", sync.match_column, sync.line("match.column"))]
                       + [("column", f.column, f.line("field")) for f in sync.fields],
                       [(f.column, f.field, f.type, f.line("field")) for f in sync.fields])
            for sync in chosen]
    return sort_issues(column_issues(models, project.relative, uses, columns_of))


def column_issues(models: Mapping[str, Model], relative: Callable[[Path], str], uses: Iterable[ColumnUse],
                   columns_of: ColumnsOf) -> list[ConfigIssue]:
    """Call `columns_of` once per model; report failing models, missing primary keys and columns."""
    issues: list[ConfigIssue] = []
    columns: dict[str, list[str] | None] = {}
    types: dict[str, dict[str, str]] = {}
    problems: dict[str, dict[str, str]] = {}  # column -> why the warehouse cannot diff it, and the fix
    send_problems: dict[str, dict[str, str]] = {}  # column -> why its values would not be sent as they are, and the fix
    for name, model in models.items():
        file = relative(model.path)
        try:
            found = list(columns_of(model))
            columns[name] = [str(c[0]) if isinstance(c, tuple) else str(c) for c in found]
            types[name] = {str(c[0]): str(c[1]) for c in found if isinstance(c, tuple)}
            problems[name] = {str(c[0]): c[2] for c in found if isinstance(c, tuple) and len(c) > 2 and c[2]}
            send_problems[name] = {str(c[0]): c[3] for c in found if isinstance(c, tuple) and len(c) > 3 and c[3]}
        except Exception as exc:  # the warehouse's message is what the user needs
            if getattr(exc, "retryable", False):
                # not the model's fault: the warehouse went away, a statement or a lock timed out
                # (another transaction holds the model's table). As a configuration error (exit 3,
                # "debug the model's SQL") an orchestrator would not retry a model with nothing to fix.
                raise
            columns[name] = None
            message = str(exc).strip() or type(exc).__name__
            line, message = _model_error_line(model, message)
            # refused to read its data (a revoked grant): the adapter's hint says what to grant; the SQL is fine
            access = getattr(exc, "kind", None) in ("permission", "credentials") and getattr(exc, "hint", None)
            # the warehouse's own word on this error (a table not in the search_path), unless dbt built it
            precise = not model.dbt_models and getattr(exc, "precise_hint", False) and getattr(exc, "hint", None)
            issues.append(ConfigIssue(f"model {name} failed in the warehouse: {message}", file,
                                      line, access or precise or _failed_hint(model)))
            continue
        if len(twice := _returned(model.primary_key, columns[name])) > 1:
            issues.append(_returned_twice("primary key", model.primary_key, name, twice, file, model.line("primary_key")))
        elif model.primary_key not in columns[name] and model._dbt_primary_key:  # no header: dbt's key
            issues.append(ConfigIssue(
                f"primary key {model.primary_key!r}, taken from dbt model {model._dbt_primary_key} (the file has "
                f"no primary_key header), is not a column of model {name}", file, model.line("primary_key"),
                "start the file with `-- primary_key: <column>`; " + _column_hint(model.primary_key, columns[name])))
        elif model.primary_key not in columns[name]:
            issues.append(ConfigIssue(f"primary key {model.primary_key!r} is not a column of model {name}", file,
                                      model.line("primary_key"), _column_hint(model.primary_key, columns[name])))
    seen: set[tuple[str, int | None, str]] = set()
    for use in uses:
        available = columns.get(use.model)
        if available is None:  # unknown or unparsed model, or it failed: reported elsewhere
            continue
        for what, column, line in use.uses:
            kind = types.get(use.model, {}).get(column, "")
            problem = problems.get(use.model, {}).get(column)
            send_problem = send_problems.get(use.model, {}).get(column)
            if len(twice := _returned(column, available)) > 1:
                issue = _returned_twice(what, column, use.model, twice, use.file, line)
                message, hint = issue.message, issue.hint
            elif column in available and problem:
                message = f"{what} {column!r} of model {use.model} is of type {kind}, which the diff cannot compare"
                hint = problem
            elif column in available and send_problem and what != "match column":
                message = f"{what} {column!r} of model {use.model} is of type {kind}, which cannot be sent as it is"
                hint = send_problem
            elif column in available and what == "match column" and _NOT_A_KEY_TYPE.search(kind):
                message = (f"{what} {column!r} of model {use.model} is of type {kind}, whose text form (e.g. 1.0) "
                           "is no key: it would name other records than the integers or text it stands for")
                hint = f"cast it in the model's SQL, e.g. CAST({column} AS BIGINT) or CAST({column} AS VARCHAR)"
            elif column in available and what == "match column" and _ZONED_KEY_TYPE.search(kind):
                message = (f"{what} {column!r} of model {use.model} is of type {kind}, whose text form (the key "
                           "sent) is written in the session's time zone: a run from a host or database in "
                           "another time zone would name other records for the same instants")
                hint = (f"make it a key of a fixed form in the model's SQL, e.g. epoch seconds "
                        f"CAST(EXTRACT(EPOCH FROM {column}) AS BIGINT), or its text in UTC "
                        f"CAST({column} AT TIME ZONE 'UTC' AS VARCHAR)")
            elif column in available and _UNSENDABLE_TYPE.search(_QUOTED_NAME.sub("", kind)):
                message = f"{what} {column!r} of model {use.model} is of type {kind}, which cannot be sent"
                hint = (f"convert it in the model's SQL, e.g. CAST({column} AS VARCHAR); an interval as a "
                        f"number (EXTRACT(EPOCH FROM {column}): seconds), a map as JSON (to_json({column}))")
            elif column in available:
                continue
            else:
                message = f"{what} {column!r} is not a column of model {use.model}"
                hint = _column_hint(column, available)
            if (use.file, line, message) in seen:
                continue
            seen.add((use.file, line, message))
            issues.append(ConfigIssue(message, use.file, line, hint))
        issues += _typed_issues(use, available, types.get(use.model, {}), problems.get(use.model, {}),
                                send_problems.get(use.model, {}))
    return issues


def _typed_issues(use: ColumnUse, available: list[str], types: Mapping[str, str], problems: Mapping[str, str],
                  send_problems: Mapping[str, str]) -> list[ConfigIssue]:
    """A field whose `type:` takes no value of its column's type (a DATE as `integer`): every row
    of the model would be rejected by the sync (and parked), so it is a configuration error here.
    Only columns reported fine otherwise, of a type whose values are known (`_TYPE_FAMILIES`)."""
    issues = []
    for column, field_name, kind, line in use.typed:
        if column not in available or len(_returned(column, available)) > 1 or column in problems \
                or column in send_problems:
            continue
        family = _type_family(types.get(column, ""))
        if family is None or family not in _KIND_REFUSES.get(kind, ()):
            continue
        issues.append(ConfigIssue(
            f"field {field_name!r}: type: {kind} takes no value of column {column!r} of model {use.model}, of type "
            f"{types[column]}", use.file, line,
            f"every row would be rejected: remove `type: {kind}` (or give another type), or convert the column in "
            f"the model's SQL"))
    return issues


def _returned(column: str, available: list[str]) -> list[str]:
    """The model's columns that name `column`: names differing only by case are one column on most
    warehouses (DuckDB, Snowflake, BigQuery, Databricks, Redshift), so they are counted together."""
    return [c for c in available if c.lower() == str(column).lower()]


def _returned_twice(what: str, column: str, model: str, names: list[str], file: str, line: int | None) -> ConfigIssue:
    return ConfigIssue(f"{what} {column!r} is returned {len(names)} times by model {model} (as {', '.join(names)})",
                       file, line, "give each column its own name in the model's SQL (e.g. `select c.id, p.id as "
                       "plan_id`, not `select *` over a join): dinsync cannot tell which one is meant")


# "LINE 9: fro read_csv(..." in DuckDB's and PostgreSQL's (Redshift's) errors: a line of the columns
# query, `SELECT * FROM (\n<model>\n) AS _q LIMIT 0`, whose second line is the model's first
_QUERY_LINE = re.compile(r"\bLINE (\d+):")


def _model_error_line(model: Model, message: str) -> tuple[int | None, str]:
    """The model file's line a warehouse error points at, and the message saying that line (the
    query's line number would not match the file: the header comments are not sent)."""
    first = model.line("sql")
    found = _QUERY_LINE.search(message)
    if first is None or found is None:
        return first, message
    offset = int(found.group(1)) - 2  # the model's lines start on the query's second line
    if not 0 <= offset < len(model.sql.splitlines()):
        return first, message
    line = first + offset
    return line, message[:found.start()] + f"line {line}:" + message[found.end():]


def _failed_hint(model: Model) -> str:
    if model.dbt_models:  # e.g. `dbt parse` wrote the manifest but nothing was built yet
        return (f"run `dbt build` (dbt models {', '.join(model.dbt_models)}); dinsync reads the relations in the "
                "warehouse of dinsync.yml, which must be dbt's target")
    return "run the model's SQL in the warehouse to debug it"


def _column_hint(column: str, available: list[str]) -> str:
    shown = ", ".join(available[:20]) + (", ..." if len(available) > 20 else "")
    lookalike = next((c for c in available if _seen_as(c) == _seen_as(column)), None)
    if lookalike is not None:  # `did you mean 'prénom'?` for 'prénom' told the user nothing
        return (f"{column!r} looks like the model's column {lookalike!r} but is not the same text (other Unicode "
                f"characters: {ascii(column)} vs {ascii(lookalike)}, e.g. a decomposed accent, a no-break space "
                f"or an invisible character); type the name again. columns: {shown}")
    close = did_you_mean(column, available)
    return f"{close + ' ' if close else ''}columns: {shown}"


def _seen_as(name: str) -> str:
    """A name as a reader sees it: Unicode-normalized (NFKC: `é` decomposed or not, a no-break
    space as a space), without invisible format characters (zero-width space, BOM)."""
    import unicodedata

    return "".join(ch for ch in unicodedata.normalize("NFKC", str(name)) if unicodedata.category(ch) != "Cf")
