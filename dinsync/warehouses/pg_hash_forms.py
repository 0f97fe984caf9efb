"""How the diff's row fingerprint hashes the columns of a PostgreSQL-protocol warehouse: the types
it cannot hash (and the cast that fixes each), anonymous records no table holds, the types hashed
as their text, the SQL that writes a value's text as a session of PostgreSQL's defaults would
(`session_text_form`, over the catalog's `type_tree`) and an array's shape (`ARRAY_SHAPE`).
"""
from __future__ import annotations

import json
from typing import Any

from .base import quote_ident


# Types without an extended hash function (checked on PostgreSQL 15): the diff's row fingerprint,
# HASH_RECORD_EXTENDED(ROW(...)), fails on them (and on arrays of them) -> the cast that fixes it.
NO_EXTENDED_HASH = {
    "json": "{c}::jsonb", "jsonpath": "{c}::text", "money": "{c}::numeric", "xml": "{c}::text",
    "bit": "{c}::text", "varbit": "{c}::text", "bit varying": "{c}::text", "tsvector": "{c}::text",
    "tsquery": "{c}::text", "txid_snapshot": "{c}::text", "point": "{c}::text", "line": "{c}::text",
    "lseg": "{c}::text", "box": "{c}::text", "path": "{c}::text", "polygon": "{c}::text", "circle": "{c}::text",
}


def extended_hash_problem(column: str, kind: str) -> str | None:
    """A mapped column of a type PostgreSQL cannot hash (NO_EXTENDED_HASH), with its fix: named at
    `validate` and before a sync plans, instead of the plan failing with PostgreSQL's message."""
    base = kind.strip().lower().removesuffix("[]").lstrip("_")
    fix = NO_EXTENDED_HASH.get(base)
    if fix is None:
        return None
    name = column if column.isidentifier() and column.islower() else quote_ident(column)
    return (f"PostgreSQL has no extended hash function for {base}, which the diff needs to compare values: "
            f"convert it in the model's SQL, e.g. {fix.format(c=name)} AS {name}")


def record_problem(column: str, kind: str) -> str | None:
    """A mapped column of an anonymous record (`ROW(a, b)`, `(a, b)`, a subquery's row; an array of
    them, which `columns` names by its element type too): a pseudo-type no table column can hold, so
    the plan's first statement failed on every run ("column "v0" has pseudo-type record", exit 1,
    naming none of the model's columns). Named at `validate` and before a sync plans, with the cast.
    (A match column is read as its text, `(1,x)`, and works as it is.)"""
    if kind.strip().lower().removesuffix("[]").lstrip("_") != "record":
        return None
    name = column if column.isidentifier() and column.islower() else quote_ident(column)
    return ("an anonymous record (ROW(...), a subquery's row) cannot be held in the plan's table: convert it "
            f"in the model's SQL, e.g. to_jsonb({name}) AS {name} (an object, with `type: json`) or "
            f"{name}::text AS {name} (its text form), or map its fields, ({name}).f1")


# Types whose own (extended) hash gives two values one hash only when their text forms are equal
# (arrays of them too: `columns` names an array by its element type). A mapped column of any other
# type (text and varchar, whose collation may be case-insensitive; citext; composites, enums,
# domains) is hashed in the row fingerprint as its text under the "C" collation (DINSYNC_EXACT):
# with HASH_RECORD_EXTENDED, `Bob` -> `BOB` in a citext column, or in a text column of an ICU
# collation with deterministic = false, left the fingerprint as it was, and was never sent.
NATIVE_HASH_EXACT = frozenset({
    "int2", "int4", "int8", "oid", "bool", "float4", "float8", "numeric", "date", "time", "timestamp",
    "timestamptz", "uuid", "jsonb",
})


def exact_hash_columns(kinds: list[tuple[str, str]], columns: list[str]) -> set[str]:
    """Of `columns`, those whose type (in `kinds`: `columns()`'s answer) is not NATIVE_HASH_EXACT."""
    found = dict(kinds)
    return {c for c in columns if found.get(c) not in NATIVE_HASH_EXACT}


# Built-in types (by OID, the same on every server of the protocol) whose text form depends on a
# session setting, each with the SQL of the text ({x}: the value) a session of PostgreSQL's
# defaults writes: the diff hashes that text instead (Warehouse.stable_hash_forms), so that a run
# under another setting (a role's or database's default, PGTZ, `settings:`) finds the values it
# hashed unchanged, and the hashes stored under the defaults stay as they were. A timestamptz is
# written in the session's TimeZone (UTC's form: `2024-01-01 10:00:00+00`, `... BC` after it); a
# bytea as bytea_output says (`hex`'s form: `\x0102`; `escape` writes `\001\002`).
SESSION_TEXT_FORMS = {
    1184: "CASE WHEN ISFINITE({x}) THEN REPLACE(CAST({x} AT TIME ZONE 'UTC' AS TEXT) || '+00', ' BC+00', '+00 BC') "
          "ELSE CAST({x} AS TEXT) END",
    17: "CHR(92) || 'x' || ENCODE({x}, 'hex')",
}

# The types of a query's result columns, with what each holds: (oid, typtype, typcategory,
# typelem, typbasetype, rngsubtype (of a multirange: its range type), [[attname, atttypid], ...]
# of a composite). (pg_range.rngmultitypid, PostgreSQL 14+, is read through to_jsonb: older
# servers have no such column.)
_TYPE_INFO = """SELECT t.oid::int8, t.typtype::text, t.typcategory::text, t.typelem::int8, t.typbasetype::int8,
  COALESCE((SELECT r.rngsubtype::int8 FROM pg_catalog.pg_range r WHERE r.rngtypid = t.oid),
           (SELECT r.rngtypid::int8 FROM pg_catalog.pg_range r
            WHERE t.typtype = 'm' AND to_jsonb(r) ->> 'rngmultitypid' = t.oid::text)),
  (SELECT json_agg(json_build_array(a.attname, a.atttypid::int8) ORDER BY a.attnum)::text
   FROM pg_catalog.pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped)
FROM pg_catalog.pg_type t WHERE t.oid = ANY(%(oids)s)"""


def session_text_form(x: str, oid: int, types: dict[int, tuple], forms: dict[int, str], depth: int = 0) -> str | None:
    """SQL of value `x` of type `oid` with each value of a type of `forms` in it written as its
    form (a domain as its base type; an array's, a composite's elements and fields alike), as the
    text of the whole; None when the type holds none. `types`: _TYPE_INFO's rows by oid."""
    if oid in forms:
        return forms[oid].format(x=x)
    info = types.get(oid)
    if info is None or depth > 8:
        return None
    _, typtype, category, elem, base, sub, attrs = info
    if typtype == "d":
        return session_text_form(x, base, types, forms, depth + 1)
    if typtype == "r" and _base_type(sub, types) in forms:  # tstzrange: `["2024-01-01 10:00:00+00",infinity)`
        lower, upper = (session_text_form(f"{end}({x})", sub, types, forms, depth + 1) for end in ("LOWER", "UPPER"))
        # a bound is quoted when its text holds a space (as a finite timestamptz's); none: unbounded
        bound = "COALESCE(CASE WHEN POSITION(' ' IN {b}) > 0 THEN '\"' || {b} || '\"' ELSE {b} END, '')"
        return (f"CASE WHEN {x} IS NULL THEN NULL WHEN ISEMPTY({x}) THEN 'empty' ELSE "
                f"CASE WHEN LOWER_INC({x}) THEN '[' ELSE '(' END || {bound.format(b=lower)} || ',' || "
                f"{bound.format(b=upper)} || CASE WHEN UPPER_INC({x}) THEN ']' ELSE ')' END END")
    if typtype == "m" and sub:  # tstzmultirange: `{["2024-01-01 10:00:00+00",...),[...)}`, its ranges in order
        r, o = f"_dinsync_r{depth}", f"_dinsync_o{depth}"
        inner = session_text_form(r, sub, types, forms, depth + 1)
        if inner is None:
            return None
        ranges = f"SELECT STRING_AGG({inner}, ',' ORDER BY {o}) FROM UNNEST({x}) WITH ORDINALITY AS _dinsync_m{depth}({r}, {o})"
        return f"CASE WHEN {x} IS NULL THEN NULL ELSE '{{' || COALESCE(({ranges}), '') || '}}' END"
    if category == "A" and elem:
        e = f"_dinsync_e{depth}"
        inner = session_text_form(e, elem, types, forms, depth + 1)
        if inner is None:
            return None
        # (UNNEST in the select list: in FROM, a NULL composite element would be read as `(,)`)
        items = f"CAST(ARRAY(SELECT {inner} FROM (SELECT UNNEST({x}) AS {e}) AS _dinsync_u{depth}) AS TEXT)"
        # the text of a one-dimensional array from 1 (`{a,b}`); other shapes are told by their
        # bounds, with the elements in order (`[0:1]={a,b}`, `[1:2][1:1]={a,b}`)
        return (f"CASE WHEN {x} IS NULL THEN NULL WHEN COALESCE(ARRAY_NDIMS({x}), 1) = 1 "
                f"AND COALESCE(ARRAY_LOWER({x}, 1), 1) = 1 THEN {items} ELSE ARRAY_DIMS({x}) || '=' || {items} END")
    if typtype == "c" and attrs:
        fields = [(quote_ident(name), session_text_form(f"({x}).{quote_ident(name)}", t, types, forms, depth + 1))
                  for name, t in json.loads(attrs)]
        if all(form is None for _, form in fields):
            return None
        row = ", ".join(form or f"({x}).{name}" for name, form in fields)
        # (x IS NULL holds for `(,)` too, whose text is not NULL)
        return f"CASE WHEN CAST({x} AS TEXT) IS NULL THEN NULL ELSE CAST(ROW({row}) AS TEXT) END"
    return None


# The dimensions of an array of more than one ({x}: the array), else NULL: what the row fingerprint
# hashes with the array, whose own hash (hash_array_extended) reads its elements only
# (Warehouse.shape_hash_forms). NULL for the others, so that their fingerprints stay as they were.
ARRAY_SHAPE = "CASE WHEN ARRAY_NDIMS(@X@) > 1 THEN ARRAY_DIMS(@X@) END"


def _base_type(oid: int, types: dict[int, tuple]) -> int:
    """The type a domain `oid` is of (through domains of domains), else `oid`."""
    while oid in types and types[oid][1] == "d":
        oid = types[oid][4]
    return oid


def type_tree(execute: Any, oids: set[int]) -> dict[int, tuple]:
    """_TYPE_INFO's rows of the types `oids` and of every type they hold (`execute(sql, params)`
    gives rows)."""
    found: dict[int, tuple] = {}
    todo = set(oids)
    while todo:
        rows = execute(_TYPE_INFO, {"oids": sorted(todo)})
        found.update({r[0]: tuple(r) for r in rows})
        held = set()
        for _, _, _, elem, base, sub, attrs in rows:
            held |= {t for t in (elem, base, sub) if t}
            held |= {t for _, t in json.loads(attrs or "[]")}
        todo = held - set(found) - set(SESSION_TEXT_FORMS)
        if len(found) > 1000:
            break
    return found
