"""DuckDB's types the row fingerprint hashes in a form of its own, or Arrow's export sends as other values."""
from __future__ import annotations

import re
from typing import Any

import duckdb

from .base import quote_ident


# DuckDB types whose Arrow export is another value than the model's (checked: DuckDB 2.0), and the
# cast that sends the value itself. UHUGEINT is exported as decimal128(38, 0): values from 2^127
# wrap around (2^128 - 1 was sent as -1). BIT as its internal bytes (B'10101' was sent as the base64
# "A/U="). TIMETZ as a time without its offset (12:34:56+02 was sent as "12:34:56"). BIGNUM
# (VARINT) as an opaque binary no field kind reads (every row was rejected).
_TYPE_END = r"(?=\s*(?:[,)\[]|$))"  # a type's name ends there (a STRUCT field's name is followed by its type)
_NESTED = re.compile(r"\[|\b(STRUCT|MAP|UNION)\(")  # a type name (quoted names taken out) of a nested type
_SEND_PROBLEMS = (
    (re.compile(r"\bUHUGEINT" + _TYPE_END, re.I), "DuckDB reads UHUGEINT to Arrow as a 128-bit signed decimal (values from "
     "2^127 wrap around to negative numbers): convert it in the model's SQL, e.g. CAST({c} AS HUGEINT) when its "
     "values stay below 2^127, or CAST({c} AS VARCHAR) to send its digits as text"),
    (re.compile(r"\b(BIGNUM|VARINT)" + _TYPE_END, re.I), "DuckDB reads BIGNUM (VARINT) to Arrow as opaque bytes: convert it "
     "in the model's SQL, e.g. CAST({c} AS HUGEINT) or CAST({c} AS DECIMAL(38, 0)) (a number, 38 digits at most), "
     "or CAST({c} AS VARCHAR) (its digits as text)"),
    (re.compile(r"\bBIT" + _TYPE_END, re.I), "DuckDB reads BIT to Arrow as its internal bytes, not its bits: convert it in "
     "the model's SQL, e.g. CAST({c} AS VARCHAR) (its bits as text, '10101')"),
    (re.compile(r"\b(TIME WITH TIME ZONE|TIMETZ)" + _TYPE_END, re.I), "DuckDB reads TIMETZ to Arrow as a time without "
     "its offset: convert it in the model's SQL, e.g. CAST({c} AS VARCHAR) (12:34:56+02)"),
)


_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")

# Levels of LIST / ARRAY / STRUCT / UNION (a MAP: two) Arrow's import of a schema allows below its
# record batch: a column nested deeper failed every run reading the plan (checked: DuckDB 2.0,
# pyarrow's C data interface; 62 levels read, 63 refused).
ARROW_MAX_DEPTH = 62


def _arrow_depth(t) -> int:
    """How many Arrow levels a DuckDB type nests (0 for a scalar)."""
    if t.id in ("list", "array"):
        return 1 + _arrow_depth(dict(t.children)["child"])
    if t.id in ("struct", "union"):
        return 1 + max((_arrow_depth(c) for _, c in t.children), default=0)
    if t.id == "map":
        return 2 + max(_arrow_depth(c) for _, c in t.children)
    return 0


def _utc_text(x: str, t: Any, depth: int = 0) -> str | None:
    """SQL of value `x` of DuckDB type `t` with each TIMESTAMPTZ in it written as a UTC session
    writes it (as text; an infinity as itself); None when `t` holds no TIMESTAMPTZ."""
    kind = t.id
    if kind == "timestamp with time zone":
        return (f"CASE WHEN isfinite({x}) THEN CAST(timezone('UTC', {x}) AS VARCHAR) || '+00' "
                f"ELSE CAST({x} AS VARCHAR) END")
    if kind in ("list", "array"):
        item = f"_dinsync_e{depth}"
        inner = _utc_text(item, dict(t.children)["child"], depth + 1)
        # (a list comprehension: DuckDB 2.0 refuses the `->` lambdas sqlglot writes of the templates)
        return None if inner is None else f"[{inner} FOR {item} IN {x}]"
    if kind == "struct":
        members = [(quote_ident(name), child) for name, child in t.children]
        forms = [_utc_text(f"{x}.{name}", child, depth) for name, child in members]
        if all(f is None for f in forms):
            return None
        packed = ", ".join(f"{name} := {form or f'{x}.{name}'}" for (name, _), form in zip(members, forms))
        return f"CASE WHEN {x} IS NULL THEN NULL ELSE struct_pack({packed}) END"
    return None


class DuckDBTypeForms:
    """The hash forms and send problems of DuckDBWarehouse's column types (read with `columns`)."""

    def exact_hash_columns(self, sql: str, columns: list[str]) -> set[str]:
        """The mapped columns of nested types (LIST, ARRAY, STRUCT, MAP, UNION): DuckDB's HASH gives
        `[]`, `[NULL]` and a NULL list one hash, a NULL struct and one of NULL members one hash,
        `[[1], [2]]` and `[[1, 2]]` one hash, so the fingerprint hashes their text form (which
        quotes strings as needed: `['a, b']` is not `[a, b]`). And the VARCHAR columns: one of a
        case- or accent-insensitive collation (`COLLATE NOCASE`, which the column's type does not
        show) hashed `Bob` and `BOB` alike, so the change was never seen; under COLLATE C
        (DINSYNC_EXACT) a text hashes byte for byte, as any text of no collation already does
        natively (the same hash: fingerprints stored before stay as they were). Other scalars
        keep the native hash."""
        if not columns:
            return set()
        types = dict(self.columns(sql))
        return {c for c in columns if c in types
                and (_NESTED.search(_QUOTED.sub("", types[c])) or types[c].upper() == "VARCHAR")}

    def stable_hash_forms(self, sql: str, columns: list[str]) -> dict[str, str]:
        """The mapped columns holding a TIMESTAMPTZ (also in a LIST, ARRAY or STRUCT), whose text is
        written in the session's time zone (TZ's): from a host in another zone every such value read
        as changed (a nested one's rows were all sent again). Hashed as the text a UTC session
        writes (`2024-01-01 10:00:00+00`, as before in UTC), whatever the session's zone."""
        if not columns:
            return {}
        types = dict(self.columns(sql))
        forms = {}
        for c in columns:
            if c in types and "TIME ZONE" in _QUOTED.sub("", types[c]).upper():
                try:
                    form = _utc_text("@X@", duckdb.sqltype(types[c]))
                except (duckdb.Error, ValueError, TypeError, KeyError):
                    form = None
                if form is not None:
                    forms[c] = form
        return forms

    def send_problem(self, column: str, kind: str) -> str | None:
        """DuckDB types its Arrow export turns into other values (see _SEND_PROBLEMS), anywhere in
        a column's type (e.g. BIT[]), or cannot export (nested deeper than ARROW_MAX_DEPTH): named
        at `validate` and before a sync plans, with the cast."""
        bare = _QUOTED.sub("", kind)  # not in a STRUCT field's or an ENUM value's quoted name
        for pattern, fix in _SEND_PROBLEMS:
            if pattern.search(bare):
                return fix.format(c=column)
        if _NESTED.search(bare):
            try:
                depth = _arrow_depth(duckdb.sqltype(kind))
            except (duckdb.Error, ValueError, TypeError, KeyError):
                return None
            if depth > ARROW_MAX_DEPTH:
                return (f"its values nest {depth} levels deep, more than the {ARROW_MAX_DEPTH} Arrow reads (every run "
                        f"failed with 'ArrowInvalid: Recursion level in ArrowSchema struct exceeded'): send it as "
                        f"JSON text, e.g. CAST(to_json({column}) AS VARCHAR) mapped with type: json")
        return None
