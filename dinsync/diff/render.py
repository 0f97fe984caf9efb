"""Render the canonical SQL in `sql/` for one warehouse dialect.

The files in `sql/` are Jinja2 templates (`StrictUndefined`, no autoescaping) of SQL in sqlglot's
neutral dialect. The context holds prepared fragments only: identifiers from user configuration
arrive already quoted (`ident`), the mapped fields as a list of `FieldRef` (`f.i`, `f.col`,
`f.snap`), `{{ model }}` marks where the model query goes, and `{{ param("name") }}` a value bound
when the statement runs (`bind`: integers, plan operations and the time `now` only).

The rendered text is parsed with sqlglot, the `DINSYNC_*` pseudo-functions are replaced by the
warehouse's own SQL (patterns in `dialects.py`, an AST transform), and sqlglot generates the SQL
of the target dialect with every identifier quoted. The model query (the user's SELECT, in the
warehouse's own dialect) is checked with sqlglot but embedded as the user wrote it: it is never
parsed and regenerated.

sqlglot and Jinja2 are imported on first use only: a run whose rendered SQL is cached
(`cache.py`) imports neither.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DinsyncError, ExitCode
from ..lazy_imports import sqlglot_modules as _sqlglot  # (sqlglot itself: on first call)
from .dialects import DIALECT_SQL, DIALECTS, TEXT_TYPES, UNBOUNDED_TEXT, UPDATE_FROM_AS_MERGE

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
_MODEL_MARKER = "__DINSYNC_MODEL__"
_SYNC_RE = re.compile(r"[A-Za-z0-9_]+")

# Values bound when a statement runs: a marker in the rendered SQL, replaced by `bind`.
PARAMS = {"limit": "9110000000000000003", "op": "'__dinsync_param_op__'", "parts": "9110000000000000004",
          "part": "9110000000000000005", "now": "'__dinsync_param_now__'"}
OPS = ("added", "changed", "removed", "duplicate")


class SqlError(DinsyncError, ValueError):
    """A name or a model query that cannot be turned into safe SQL."""

    exit_code = ExitCode.CONFIG_ERROR


class ModelSqlError(SqlError):
    """The model is not a single read-only query."""


# ---------------------------------------------------------------- names (no sqlglot needed)


def check_identifier(name: str, what: str = "identifier") -> str:
    if not isinstance(name, str) or not name:
        raise SqlError(f"{what} must be a non-empty string, got {name!r}")
    if "\x00" in name:
        raise SqlError(f"{what} {name!r} contains a NUL byte")
    if _MODEL_MARKER.lower() in name.lower():
        raise SqlError(f"{what} {name!r} contains the reserved text {_MODEL_MARKER}")
    return name


def snapshot_column(field: str) -> str:
    """Name of a destination field's hash column in the snapshot: stable across mapping edits."""
    return "f_" + hashlib.sha1(field.encode("utf-8")).hexdigest()[:16]


def check_sync_name(sync: str) -> str:
    if not isinstance(sync, str) or not _SYNC_RE.fullmatch(sync):
        raise SqlError(f"sync name {sync!r} must match [A-Za-z0-9_]+")
    return sync


def bind(sql: str, **params: Any) -> str:
    """Replace the `param()` markers of a rendered statement by values (validated here)."""
    for name, value in params.items():
        marker = PARAMS[name]
        if name == "op":
            if value not in OPS:
                raise SqlError(f"unknown plan operation {value!r}; expected one of {', '.join(OPS)}")
            text = f"'{value}'"
        elif name == "now":  # a time the state records: naive UTC, read as TIMESTAMP by every dialect;
            # in UTC with its offset where TIMESTAMP is an instant (Capabilities.timestamp_is_instant)
            if not isinstance(value, dt.datetime) or value.utcoffset() not in (None, dt.timedelta(0)):
                raise SqlError(f"now must be a UTC datetime, got {value!r}")
            text = f"'{value.isoformat(sep=' ', timespec='microseconds')}'"
        else:
            if not isinstance(value, int) or isinstance(value, bool):
                raise SqlError(f"{name} must be an integer, got {value!r}")
            text = str(int(value))
        sql = sql.replace(marker, text)
    return sql


def ident(name: str) -> str:
    """A quoted identifier in the canonical (sqlglot) dialect, for the templates."""
    _, exp = _sqlglot()
    return exp.to_identifier(check_identifier(name), quoted=True).sql()


def sql_type(name: str, dialect: str) -> str:
    """A type name as the canonical dialect writes it (e.g. UBIGINT, INT64 -> BIGINT)."""
    _, exp = _sqlglot()
    return exp.DataType.build(name, dialect=dialect).sql()


def check_model_sql(sql: str, dialect: str) -> str:
    """Check that `sql` is one read-only query in `dialect`; return it without a trailing `;`."""
    if not isinstance(sql, str) or not sql.strip():
        raise ModelSqlError("the model SQL is empty", hint="write one SELECT (or WITH ... SELECT) query")
    if "\x00" in sql:
        raise ModelSqlError("the model SQL contains a NUL byte")
    sqlglot, exp = _sqlglot()
    TokenType = sqlglot.TokenType

    forbidden = {
        TokenType.INSERT, TokenType.UPDATE, TokenType.DELETE, TokenType.MERGE, TokenType.CREATE,
        TokenType.DROP, TokenType.ALTER, TokenType.TRUNCATE, TokenType.GRANT,
        TokenType.COMMAND, TokenType.EXECUTE, TokenType.COPY,
    }
    dialect_obj = sqlglot.Dialect.get_or_raise(dialect)
    try:
        tokens = dialect_obj.tokenize(sql)
    except sqlglot.errors.TokenError as exc:
        raise ModelSqlError(f"the model SQL cannot be read as {dialect} SQL: {exc}") from None
    semis = [i for i, t in enumerate(tokens) if t.token_type == TokenType.SEMICOLON]
    text = sql
    if semis:
        if any(t.token_type != TokenType.SEMICOLON for t in tokens[semis[0]:]):
            raise ModelSqlError(
                "the model SQL holds more than one statement",
                hint="a model is a single SELECT query; move other statements into your dbt project",
            )
        text = sql[: tokens[semis[0]].start]
    if not any(t.token_type != TokenType.SEMICOLON for t in tokens):
        raise ModelSqlError("the model SQL is empty", hint="write one SELECT (or WITH ... SELECT) query")
    try:
        statements = [s for s in sqlglot.parse(text, read=dialect) if s is not None]
    except sqlglot.errors.ParseError:
        statements = None  # sqlglot does not know every dialect feature: fall back to tokens
    if statements is not None:
        ok = len(statements) == 1 and isinstance(statements[0], (exp.Query, exp.Values, exp.Pivot))
        if ok and not any(isinstance(n, (exp.DML, exp.DDL)) for n in statements[0].walk()):
            return text.rstrip()
        kind = type(statements[0]).__name__.upper() if statements else "nothing"
        raise ModelSqlError(
            f"the model SQL must be a single SELECT query, found {kind}",
            hint="models only read data; DDL and DML (CREATE, INSERT, DELETE, ...) are not allowed",
        )
    first = next(t for t in tokens if t.token_type != TokenType.SEMICOLON)
    if first.token_type not in (TokenType.SELECT, TokenType.WITH, TokenType.L_PAREN, TokenType.FROM) or any(
        t.token_type in forbidden for t in tokens
    ):
        raise ModelSqlError(
            "the model SQL must be a single SELECT query",
            hint="models only read data; DDL and DML (CREATE, INSERT, DELETE, ...) are not allowed",
        )
    return text.rstrip()


# ---------------------------------------------------------------------------- dialect transform


def _expand(node, dialect: str):
    """The dialect's SQL for one pseudo-function call whose arguments hold none."""
    sqlglot, _ = _sqlglot()
    pattern = DIALECT_SQL[dialect][node.name.upper()]
    args = [a.sql(dialect=dialect, identify=True) for a in node.expressions]
    text_type = TEXT_TYPES[dialect]
    as_text = [f"CAST({a} AS {text_type})" for a in args]
    text = pattern.format(
        x=args[0] if args else "",
        args=", ".join(args),
        args_text=", ".join(as_text),
        args_text_concat=" || ',' || ".join(as_text),
        args_hash=", ".join(f"DINSYNC_HASH({a})" for a in args),
        args_typeof=", ".join(f"TYPEOF({a})" for a in args),
    )
    return replace_pseudo(sqlglot.parse_one(text, read=dialect), dialect)


def replace_pseudo(tree, dialect: str):
    """Replace the DINSYNC_* pseudo-functions of `tree` (in place), innermost first."""
    _, exp = _sqlglot()
    patterns = DIALECT_SQL[dialect]
    pseudo = [n for n in tree.find_all(exp.Anonymous) if n.name.upper() in patterns]
    for node in sorted(pseudo, key=lambda n: n.depth, reverse=True):
        new = _expand(node, dialect)
        if node is tree:
            return new
        node.replace(new)
    return tree


def _update_as_merge(tree, dialect: str):
    """`UPDATE t SET a = x FROM s WHERE c` as `MERGE INTO t USING s ON c WHEN MATCHED THEN UPDATE
    SET a = x` (for dialects in UPDATE_FROM_AS_MERGE)."""
    sqlglot, _ = _sqlglot()
    target = tree.this.sql(dialect=dialect, identify=True)
    source = tree.args["from_"].this.sql(dialect=dialect, identify=True)
    on = tree.args["where"].this.sql(dialect=dialect, identify=True) if tree.args.get("where") else "TRUE"
    sets = ", ".join(e.sql(dialect=dialect, identify=True) for e in tree.expressions)
    return sqlglot.parse_one(f"MERGE INTO {target} USING {source} ON {on} WHEN MATCHED THEN UPDATE SET {sets}",
                             read=dialect)


# ---------------------------------------------------------------------------- templates


@dataclass(frozen=True)
class FieldRef:
    i: int
    col: str  # quoted model column
    snap: str  # quoted snapshot hash column
    field: str  # destination field name (unquoted; for Python only)
    snap_name: str  # unquoted snapshot column name
    exact: bool = False  # wrapped in DINSYNC_EXACT in the fingerprint (Warehouse.exact_hash_columns)
    # the value's form its hashes take, a SQL expression of `@X@` (Warehouse.stable_hash_forms)
    stable: str | None = None
    # what the value's own hash leaves out, a SQL expression of `@X@` (Warehouse.shape_hash_forms)
    shape: str | None = None


_ENV = None


def _jinja():
    global _ENV
    if _ENV is None:
        import jinja2

        _ENV = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(SQL_DIR)),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
        )
    return _ENV


def _param(name: str) -> str:
    if name not in PARAMS:
        raise KeyError(f"unknown template parameter {name!r}")
    return PARAMS[name]


def render_template(name: str, ctx: dict[str, Any], dialect: str, model_sql: str | None = None) -> str:
    """Render sql/<name>.sql for `dialect`; `model_sql` replaces {{ model }}."""
    if dialect not in DIALECTS:
        raise SqlError(f"unsupported SQL dialect {dialect!r}; expected one of {', '.join(DIALECTS)}")
    sqlglot, exp = _sqlglot()
    text = _jinja().get_template(f"{name}.sql").render(**ctx, model=_MODEL_MARKER, param=_param)
    statements = [s for s in sqlglot.parse(text) if s is not None]
    if len(statements) != 1:
        raise AssertionError(f"sql/{name}.sql must hold exactly one statement")
    tree = replace_pseudo(statements[0], dialect)
    if dialect in UPDATE_FROM_AS_MERGE and isinstance(tree, exp.Update) and tree.args.get("from_"):
        tree = _update_as_merge(tree, dialect)
    if dialect in UNBOUNDED_TEXT:
        unbounded = exp.DataType.build(UNBOUNDED_TEXT[dialect], dialect=dialect)
        for node in list(tree.find_all(exp.DataType)):
            if node.this in (exp.DataType.Type.VARCHAR, exp.DataType.Type.TEXT) and not node.expressions:
                node.replace(unbounded.copy())
    sql = tree.sql(dialect=dialect, pretty=True, identify=True, comments=False)
    marker = exp.to_identifier(_MODEL_MARKER).sql(dialect=dialect, identify=True)
    if marker in sql:
        if model_sql is None:
            raise AssertionError(f"sql/{name}.sql needs the model query")
        if any(p in sql for p in PARAMS.values()):
            raise AssertionError(f"sql/{name}.sql: a statement that reads the model takes no param()")
        sql = sql.replace(marker, "(\n" + model_sql + "\n)")
    return sql
