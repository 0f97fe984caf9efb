"""Render the canonical SQL in `sql/` for one warehouse dialect.

The files in `sql/` are readable SQL with a tiny templating layer:

* ``{{ name }}`` is replaced by a prepared fragment (a quoted identifier, a table name, a number);
* ``{% for f in fields %}...{% endfor %}`` repeats its body once per mapped field, and
  ``{% for f in fields joined by ", " %}`` puts the given text between the repetitions. Inside the
  body ``{{ f.i }}`` is the field's position, ``{{ f.col }}`` the quoted model column and
  ``{{ f.snap }}`` the quoted snapshot hash column.

The expanded text is parsed with sqlglot (its neutral dialect), the ``DINSYNC_*`` pseudo-functions
are replaced by each warehouse's own functions (an AST transform), and sqlglot generates the SQL of
the target dialect with every identifier quoted. Names from user configuration only ever enter
the SQL as sqlglot identifiers. The model query (the user's SELECT, in the warehouse's own dialect)
is checked with sqlglot but embedded as the user wrote it: it is never parsed and regenerated.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import sqlglot
from sqlglot import exp
from sqlglot.tokens import TokenType

from ..errors import DinsyncError, ExitCode

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
DIALECTS = ("duckdb", "postgres", "snowflake", "bigquery", "redshift")
# Type of the per-field hash columns when no warehouse says otherwise (golden tests, `render`).
DEFAULT_HASH_TYPES = {"duckdb": "UBIGINT", "postgres": "BIGINT", "snowflake": "BIGINT", "bigquery": "INT64",
                      "redshift": "BIGINT"}
# Text of any length where a bare VARCHAR is bounded (Redshift: 256 bytes). VARCHAR(65535) rather
# than VARCHAR(MAX): the same SQL also runs on PostgreSQL (the Redshift adapter's tests).
UNBOUNDED_TEXT = {"redshift": "VARCHAR(65535)"}
KEY_NORMALIZATIONS = {  # applied to CAST(key AS VARCHAR); an empty result counts as a NULL key
    "email": "LOWER(TRIM({}))",
    "trim": "TRIM({})",
    "none": "{}",
}
BUCKETS = (1 << 10, 1 << 20)  # coarse and fine key buckets compared by digest (candidates.sql)
NULL_HASH = 0  # hash of a NULL value where the warehouse's hash function returns NULL for NULL
_MODEL_MARKER = "__DINSYNC_MODEL__"
_SYNC_RE = re.compile(r"[A-Za-z0-9_]+")


class SqlError(DinsyncError, ValueError):
    """A name or a model query that cannot be turned into safe SQL."""

    exit_code = ExitCode.CONFIG_ERROR


class ModelSqlError(SqlError):
    """The model is not a single read-only query."""


# ---------------------------------------------------------------- identifiers and the model query


def check_identifier(name: str, what: str = "identifier") -> str:
    if not isinstance(name, str) or not name:
        raise SqlError(f"{what} must be a non-empty string, got {name!r}")
    if "\x00" in name:
        raise SqlError(f"{what} {name!r} contains a NUL byte")
    if _MODEL_MARKER.lower() in name.lower():
        raise SqlError(f"{what} {name!r} contains the reserved text {_MODEL_MARKER}")
    return name


def ident(name: str) -> str:
    """A quoted identifier in the canonical (sqlglot) dialect, for the templates."""
    return exp.to_identifier(check_identifier(name), quoted=True).sql()


def key_expression(column: str, normalization: str) -> str:
    """The matching key of a model row `m` as the plan and the key checks read it: its text,
    normalised like the destination does, an empty result counting as NULL (canonical SQL)."""
    if normalization not in KEY_NORMALIZATIONS:
        raise SqlError(f"unknown key normalization {normalization!r}; expected one of {', '.join(KEY_NORMALIZATIONS)}")
    text = f"CAST(m.{ident(column)} AS VARCHAR)"
    return "NULLIF(" + KEY_NORMALIZATIONS[normalization].format(text) + ", '')"


def snapshot_column(field: str) -> str:
    """Name of a destination field's hash column in the snapshot: stable across mapping edits."""
    return "f_" + hashlib.sha1(field.encode("utf-8")).hexdigest()[:16]


def check_sync_name(sync: str) -> str:
    if not isinstance(sync, str) or not _SYNC_RE.fullmatch(sync):
        raise SqlError(f"sync name {sync!r} must match [A-Za-z0-9_]+")
    return sync


_FORBIDDEN = {
    TokenType.INSERT, TokenType.UPDATE, TokenType.DELETE, TokenType.MERGE, TokenType.CREATE,
    TokenType.DROP, TokenType.ALTER, TokenType.TRUNCATE, TokenType.GRANT,
    TokenType.COMMAND, TokenType.EXECUTE, TokenType.COPY,
}


def check_model_sql(sql: str, dialect: str) -> str:
    """Check that `sql` is one read-only query in `dialect`; return it without a trailing `;`."""
    if not isinstance(sql, str) or not sql.strip():
        raise ModelSqlError("the model SQL is empty", hint="write one SELECT (or WITH ... SELECT) query")
    if "\x00" in sql:
        raise ModelSqlError("the model SQL contains a NUL byte")
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
        t.token_type in _FORBIDDEN for t in tokens
    ):
        raise ModelSqlError(
            "the model SQL must be a single SELECT query",
            hint="models only read data; DDL and DML (CREATE, INSERT, DELETE, ...) are not allowed",
        )
    return text.rstrip()


# ---------------------------------------------------------------------------- dialect transforms


def _cast_text(x: exp.Expression, dialect: str) -> exp.Expression:
    to = {"postgres": "TEXT", "bigquery": "STRING"}.get(dialect) or UNBOUNDED_TEXT.get(dialect, "VARCHAR")
    return exp.Cast(this=x, to=exp.DataType.build(to, dialect=dialect))


def _not_null(e: exp.Expression) -> exp.Expression:
    return exp.func("COALESCE", e, exp.Literal.number(NULL_HASH))


def _value_hash(x: exp.Expression, dialect: str) -> exp.Expression:
    """64-bit hash of a value's text form; never NULL (NULL gets its own value)."""
    text = _cast_text(x, dialect)
    if dialect == "duckdb":
        # DuckDB's hash() maps NULL to a fixed non-NULL value, distinct from '' and 'NULL'.
        return exp.Anonymous(this="HASH", expressions=[text])
    if dialect == "postgres":
        return _not_null(exp.Anonymous(this="HASHTEXTEXTENDED", expressions=[text, exp.Literal.number(0)]))
    if dialect == "snowflake":
        return _not_null(exp.Anonymous(this="HASH", expressions=[text]))
    if dialect == "bigquery":
        return _not_null(exp.Anonymous(this="FARM_FINGERPRINT", expressions=[text]))
    if dialect == "redshift":  # FNV_HASH's answer for NULL is undocumented: NULL is decided here
        return exp.Case(ifs=[exp.If(this=exp.Is(this=x.copy(), expression=exp.Null()),
                                    true=exp.Literal.number(NULL_HASH))],
                        default=exp.Anonymous(this="FNV_HASH", expressions=[text]))
    raise SqlError(f"no hash function for dialect {dialect!r}")


def _combine(args: list[exp.Expression], dialect: str) -> exp.Expression:
    """Hash of several (non-NULL) hashes, order-sensitive."""
    if dialect in ("duckdb", "snowflake"):
        return exp.Anonymous(this="HASH", expressions=args)
    if dialect == "postgres":  # hashint8extended(a2, seed => a1): no text round trip (NULL stays NULL)
        out = args[0]
        if len(args) == 1:
            return exp.Anonymous(this="HASHINT8EXTENDED", expressions=[out, exp.Literal.number(0)])
        for a in args[1:]:
            out = exp.Anonymous(this="HASHINT8EXTENDED", expressions=[a, out])
        return out
    if dialect == "redshift":  # FNV_HASH(a2, FNV_HASH(a1)): the documented way to chain columns
        out = exp.Anonymous(this="FNV_HASH", expressions=[args[0]])
        for a in args[1:]:
            out = exp.Anonymous(this="FNV_HASH", expressions=[a, out])
        return out
    parts: list[exp.Expression] = []
    for i, a in enumerate(args):
        if i:
            parts.append(exp.Literal.string(","))
        parts.append(_cast_text(a, dialect))
    if dialect == "postgres":  # || keeps NULL as NULL (CONCAT would skip it)
        text = parts[0]
        for p in parts[1:]:
            text = exp.DPipe(this=text, expression=p, safe=True)
        return exp.Anonymous(this="HASHTEXTEXTENDED", expressions=[exp.Paren(this=text), exp.Literal.number(0)])
    if dialect == "bigquery":
        return exp.Anonymous(this="FARM_FINGERPRINT", expressions=[exp.Anonymous(this="CONCAT", expressions=parts)])
    raise SqlError(f"no hash function for dialect {dialect!r}")


def _digest(x: exp.Expression, dialect: str) -> exp.Expression:
    """Order-independent aggregate of hashes, compared together with the row count: an exact sum
    where the type cannot overflow, else a XOR (with the count, a pair of equal rows that cancels
    out still changes the digest: the snapshot holds each key once)."""
    if dialect in ("duckdb", "bigquery"):
        return exp.Anonymous(this="BIT_XOR", expressions=[x])
    return exp.Sum(this=x)  # PostgreSQL: NUMERIC; Snowflake: NUMBER(38, 0)


def _fingerprint(args: list[exp.Expression], dialect: str) -> exp.Expression:
    """Hash of a row's values, to skip unchanged rows quickly. It may change when only a type
    changes (the plan then compares the rows field by field and finds them unchanged). DuckDB hashes
    the values natively (several times faster than their text), with the types' names mixed in;
    elsewhere it is the hash of the per-field text hashes."""
    if dialect == "postgres":
        # The row hashed by each column type's own hash function (PostgreSQL 14+): about 3x
        # cheaper than hashing each value's text. Every column needs a hash function: a json,
        # xml or geometric column must be cast in the model (the adapter's error says so).
        row = exp.Anonymous(this="ROW", expressions=[a.copy() for a in args])
        return exp.Anonymous(this="HASH_RECORD_EXTENDED", expressions=[row, exp.Literal.number(0)])
    if dialect == "duckdb":
        types = exp.Anonymous(
            this="CONCAT_WS",
            expressions=[exp.Literal.string(",")] + [exp.Anonymous(this="TYPEOF", expressions=[a.copy()]) for a in args],
        )
        return exp.Anonymous(this="HASH", expressions=[a.copy() for a in args] + [types])
    return _combine([_value_hash(a.copy(), dialect) for a in args], dialect)


_PSEUDO: dict[str, Callable[[list[exp.Expression], str], exp.Expression]] = {
    "DINSYNC_HASH": lambda args, d: _value_hash(args[0], d),
    "DINSYNC_ROWHASH": _combine,
    "DINSYNC_DIGEST": lambda args, d: _digest(args[0], d),
    "DINSYNC_FINGERPRINT": _fingerprint,
}

_DUCKDB_TRIM = sqlglot.parse_one(
    "CASE WHEN _x NOT LIKE ' %' AND _x NOT LIKE '% ' AND STRLEN(_x) = LENGTH(_x) THEN _x ELSE TRIM(_x) END",
    read="duckdb",
)


def _duckdb_trim(x: exp.Expression) -> exp.Expression:
    """DuckDB's TRIM(x) decodes every character; an ASCII string without a space at either end
    is returned as is (ASCII's only space character is ' '), which is the same result, faster."""
    return _DUCKDB_TRIM.transform(lambda n: x.copy() if isinstance(n, exp.Column) and n.name == "_x" else n)


def to_dialect(tree: exp.Expression, dialect: str) -> exp.Expression:
    """Replace the DINSYNC_* pseudo-functions by the dialect's own, innermost first."""
    tree = tree.copy()
    pseudo = [n for n in tree.find_all(exp.Anonymous) if n.name.upper() in _PSEUDO]
    for node in sorted(pseudo, key=lambda n: n.depth, reverse=True):
        node.replace(_PSEUDO[node.name.upper()](list(node.expressions), dialect))
    if dialect not in ("duckdb", "postgres"):  # `WITH x AS MATERIALIZED (...)` is theirs only
        for cte in tree.find_all(exp.CTE):
            cte.set("materialized", None)
    if dialect in UNBOUNDED_TEXT:
        unbounded = exp.DataType.build(UNBOUNDED_TEXT[dialect], dialect=dialect)
        for node in list(tree.find_all(exp.DataType)):
            if node.this in (exp.DataType.Type.VARCHAR, exp.DataType.Type.TEXT) and not node.expressions:
                node.replace(unbounded.copy())
    if dialect == "duckdb":
        for node in list(tree.find_all(exp.Trim)):
            if not node.args.get("expression") and not node.args.get("position"):
                node.replace(_duckdb_trim(node.this))
    return tree


# ---------------------------------------------------------------------------- templates


_FOR_RE = re.compile(
    r"\{%\s*for\s+(\w+)\s+in\s+(\w+)(?:\s+joined\s+by\s+\"([^\"]*)\")?\s*%\}(.*?)\{%\s*endfor\s*%\}", re.S
)
_VAR_RE = re.compile(r"\{\{\s*([\w.]+)\s*\}\}")


def expand(template: str, ctx: dict[str, Any]) -> str:
    """Expand the tiny template language described in the module docstring."""

    def lookup(path: str, scope: dict[str, Any]) -> str:
        head, *rest = path.split(".")
        if head not in scope:
            raise KeyError(f"template placeholder {{{{ {path} }}}} is not defined")
        value = scope[head]
        for attr in rest:
            value = value[attr] if isinstance(value, dict) else getattr(value, attr)
        return str(value)

    def for_loop(m: re.Match) -> str:
        var, seq, sep, body = m.group(1), m.group(2), m.group(3) or "", m.group(4)
        items = ctx[seq]
        return sep.join(_VAR_RE.sub(lambda v: lookup(v.group(1), {**ctx, var: item}), body) for item in items)

    text = _FOR_RE.sub(for_loop, template)
    return _VAR_RE.sub(lambda v: lookup(v.group(1), ctx), text)


@dataclass(frozen=True)
class FieldRef:
    i: int
    col: str  # quoted model column
    snap: str  # quoted snapshot column
    field: str  # destination field name (unquoted; for Python only)
    snap_name: str  # unquoted snapshot column name


def render_template(name: str, ctx: dict[str, Any], dialect: str, model_sql: str | None = None) -> str:
    """Render sql/<name>.sql for `dialect`; `model_sql` replaces {{ model }}."""
    if dialect not in DIALECTS:
        raise SqlError(f"unsupported SQL dialect {dialect!r}; expected one of {', '.join(DIALECTS)}")
    text = expand((SQL_DIR / f"{name}.sql").read_text(encoding="utf-8"), {**ctx, "model": _MODEL_MARKER})
    statements = [s for s in sqlglot.parse(text) if s is not None]
    if len(statements) != 1:
        raise AssertionError(f"sql/{name}.sql must hold exactly one statement")
    tree = to_dialect(statements[0], dialect)
    sql = tree.sql(dialect=dialect, pretty=True, identify=True, comments=False)
    marker = exp.to_identifier(_MODEL_MARKER).sql(dialect=dialect, identify=True)
    if marker in sql:
        if model_sql is None:
            raise AssertionError(f"sql/{name}.sql needs the model query")
        sql = sql.replace(marker, "(\n" + model_sql + "\n)")
    return sql
