"""Bind parameters: one placeholder style for every warehouse, translated per driver.

Shared code writes `:name` placeholders and passes a mapping {name: value}; each adapter
rewrites the placeholders to its driver's style. The scanner skips string literals, quoted
identifiers, comments and PostgreSQL `::` casts, so only real placeholders are rewritten.
Values: None, bool, int, float, str, datetime.datetime, datetime.date.
"""
from __future__ import annotations

import functools
import re
from typing import Any, Mapping

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

STYLES = ("pyformat", "format", "qmark", "dollar", "numeric_dollar", "at", "colon")


@functools.lru_cache(maxsize=512)
def _split(sql: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(texts, names): the SQL cut at each `:name` placeholder; len(texts) == len(names) + 1."""
    texts: list[str] = []
    names: list[str] = []
    start = i = 0
    n = len(sql)
    while i < n:
        c = sql[i]
        if c in ("'", '"', "`"):
            j = i + 1
            while j < n:
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:  # doubled quote inside
                        j += 2
                        continue
                    break
                j += 1
            i = j + 1
        elif c == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif c == "/" and sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif c == ":":
            if sql.startswith("::", i):
                i += 2
                continue
            m = _NAME.match(sql, i + 1)
            if m is None:
                i += 1
                continue
            texts.append(sql[start:i])
            names.append(m.group(0))
            start = i = m.end()
        else:
            i += 1
    texts.append(sql[start:])
    return tuple(texts), tuple(names)


def placeholders(sql: str) -> tuple[str, ...]:
    """The parameter names `sql` uses, in order of appearance (repeats included)."""
    return _split(sql)[1]


def translate(sql: str, params: Mapping[str, Any] | None, style: str) -> tuple[str, Any]:
    """Rewrite `:name` placeholders of `sql` for a driver's paramstyle.

    Returns (sql, params) where params is a dict (named styles) or a list (positional styles),
    or None when `params` is None (the SQL is then returned unchanged). Raises KeyError naming
    a placeholder without a value.
    """
    if params is None:
        return sql, None
    texts, names = _split(sql)
    missing = [n for n in names if n not in params]
    if missing:
        raise KeyError(f"no value for SQL parameter(s) {', '.join(sorted(set(missing)))}")
    if style == "pyformat":  # psycopg, snowflake: %(name)s, and a literal % doubled
        out = [t.replace("%", "%%") for t in texts]
        return _join(out, [f"%({n})s" for n in names]), {n: params[n] for n in names}
    if style == "format":  # %s positional (redshift_connector)
        out = [t.replace("%", "%%") for t in texts]
        return _join(out, ["%s"] * len(names)), [params[n] for n in names]
    if style == "qmark":
        return _join(list(texts), ["?"] * len(names)), [params[n] for n in names]
    if style == "dollar":  # DuckDB named: $name
        return _join(list(texts), [f"${n}" for n in names]), {n: params[n] for n in names}
    if style == "numeric_dollar":  # $1, $2 ... (one number per distinct name)
        order: dict[str, int] = {}
        for n in names:
            order.setdefault(n, len(order) + 1)
        return _join(list(texts), [f"${order[n]}" for n in names]), [params[n] for n in order]
    if style == "at":  # BigQuery: @name
        return _join(list(texts), [f"@{n}" for n in names]), {n: params[n] for n in names}
    if style == "colon":  # Databricks: :name (unchanged)
        return sql, {n: params[n] for n in names}
    raise ValueError(f"unknown paramstyle {style!r}; expected one of {', '.join(STYLES)}")


def _join(texts: list[str], marks: list[str]) -> str:
    parts = [texts[0]]
    for mark, text in zip(marks, texts[1:]):
        parts.append(mark)
        parts.append(text)
    return "".join(parts)
