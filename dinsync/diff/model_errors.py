"""Warehouse errors located in the model: the line of the model's SQL a statement's error names.

The planner runs the model's SQL inside its statements (render_template puts it between "(\n" and
"\n)"); an error the warehouse located there ("LINE 28: ...") or raised on a value of the model's
rows is marked by `locating`, and `located_in_model` words it as an error of the model file's line.
"""
from __future__ import annotations

import contextlib
import re
from typing import Iterator

from ..errors import DinsyncError


_STATEMENT_LINE = re.compile(r"\bLINE (\d+):")  # DuckDB's and PostgreSQL's (Redshift's) errors


def model_line(message: str, sql: str, model_sql: str) -> int | None:
    """The line of `model_sql` (1-based) that an error of statement `sql` points at, when the
    error names a line ("LINE 28: ...") inside the model, which render_template puts between
    "(\n" and "\n)"; else None."""
    found = _STATEMENT_LINE.search(message)
    start = sql.find("(\n" + model_sql + "\n)")
    if found is None or start < 0:
        return None
    offset = int(found.group(1)) - (sql.count("\n", 0, start) + 2)  # the model starts on the next line
    return offset + 1 if 0 <= offset <= model_sql.count("\n") else None


def located_in_model(exc: DinsyncError, model: str, file: str, first_line: int | None) -> DinsyncError:
    """`exc` as an error of the model file's line when it carries `model_line` (see `model_line`):
    "models/x.sql:10: model x failed in the warehouse: ... line 10: ...", with a hint; else `exc`."""
    line = getattr(exc, "model_line", None)
    if (line is None or first_line is None) and getattr(exc, "model_rows", False):
        try:  # a data error no line locates (PostgreSQL's `division by zero` names none)
            return type(exc)(f"{file}: model {model} failed in the warehouse on a value of its rows: {exc.message}",
                             exc.hint or "run the model's SQL in the warehouse to debug it")
        except TypeError:
            return exc
    if line is None or first_line is None:
        return exc
    at = first_line + line - 1
    message = _STATEMENT_LINE.sub(f"line {at}:", exc.message, count=1)
    try:  # the same class (its exit code, whether a retry may help)
        return type(exc)(f"{file}:{at}: model {model} failed in the warehouse: {message}",
                         exc.hint or "run the model's SQL in the warehouse to debug it")
    except TypeError:  # a class built otherwise (ConfigError): left as it is
        return exc


@contextlib.contextmanager
def locating(sql: str, model_sql: str) -> Iterator[None]:
    """An error the warehouse located in the model's part of statement `sql` ("LINE 28:") gets
    `model_line`: that line of the model's SQL (1-based); see `located_in_model`."""
    try:
        yield
    except DinsyncError as exc:
        line = model_line(getattr(exc, "message", str(exc)), sql, model_sql)
        if line is not None:
            exc.model_line = line  # type: ignore[attr-defined]
        elif str(getattr(exc, "sqlstate", None) or "").startswith("22") and f"(\n{model_sql}\n)" in sql:
            # SQLSTATE class 22, a data exception (division by zero, a cast of a value, an
            # overflow), in a statement reading the model: its rows raised it, not dinsync's SQL
            exc.model_rows = True  # type: ignore[attr-defined]
        raise
