"""A query's rows as a stream of Arrow record batches from a PostgreSQL-protocol warehouse, on a
connection of its own: `AdbcStream` through ADBC (binary COPY on the server; the columns ADBC
cannot read as their values are wrapped in casts to their text), `CursorStream` through a
server-side cursor (DECLARE / FETCH), converted by `pg_values`.
"""
from __future__ import annotations

import functools
import re
from typing import Any, ClassVar, Iterator

import pyarrow as pa

from .array_shapes import with_shapes
from .base import PROBE_ROWS, Params, quote_ident, rebatch, rows_to_arrow, rows_within, translated
from .numeric_text import numeric_text_list
from .params import translate
from .pg_values import (
    _CALENDAR_OIDS,
    _OID_TYPES,
    BPCHAR_OID,
    NUMERIC_ARRAY_OID,
    NUMERIC_OID,
    _calendar_list_of,
    _is_array_oid,
    _load_unpadded,
    _load_value_forms,
    _read_as,
    arrow_type_of_column,
    calendar_array,
    numeric_from_text,
    numeric_list_from_text,
    one_dimension,
)


def _set_local(execute: Any, settings: dict[str, str]) -> None:
    """The stream's settings (`stream_settings`) for its transaction only: LOCAL, so that a
    pooler in transaction mode does not hand them to its next client."""
    for name, value in settings.items():
        execute(f"SET LOCAL {name} = {value}")


class AdbcStream:
    """Arrow record batches through ADBC (`COPY (query) TO STDOUT (FORMAT binary)` on the
    server), on a connection of its own, re-cut to `batch_rows` rows (fewer when they are wide:
    `rebatch`). NUMERIC arrives as text and stays text (`numeric_text`: exact digits, NaN and
    infinities kept); JSON and other opaque types become strings."""

    stream_hint_bytes = 4 << 20
    stream_settings: ClassVar[dict[str, str]] = {}  # SET LOCAL in the stream's transaction (postgres.STREAM_SETTINGS)

    def _adbc_connect(self):  # implemented by adapters
        raise NotImplementedError

    @translated("streaming a query")
    def stream(self, sql: str, batch_rows: int = 50_000, params: Params = None) -> Iterator[pa.RecordBatch]:
        con = self._reach(self._adbc_connect)
        try:
            cur = con.cursor()
            try:
                _set_local(cur.execute, self.stream_settings)
                cur.adbc_statement.set_options(
                    **{"adbc.postgresql.batch_size_hint_bytes": str(self.stream_hint_bytes)})
                values = None
                if params is not None:
                    sql, values = translate(sql, params, "numeric_dollar")
                schema = cur.adbc_execute_schema(sql, values)
                domains = _domain_arrays(cur, schema)
                sql = _with_text_casts(sql, schema, _opaque_arrays(cur, schema),
                                       {i for i, base in domains.items() if base == NUMERIC_OID},
                                       {i for i, base in domains.items() if base == BPCHAR_OID})
                if values is not None:
                    cur.execute(sql, values)
                else:
                    cur.execute(sql)
                reader = cur.fetch_record_batch()
                convert = _adbc_converter(reader.schema)
                try:
                    yield from rebatch((convert(b) for b in reader), batch_rows)
                except OSError as exc:  # the server's error mid-stream, through Arrow's C stream
                    if not str(exc).startswith("[libpq]"):
                        raise
                    raise self.translate(exc, "streaming a query") from None
            finally:
                cur.close()
        finally:
            con.close()


def _pg_type(field: pa.Field) -> str:
    return (field.metadata or {}).get(b"POSTGRESQL:type", b"").decode()


def _binary_extension(t: pa.DataType) -> bool:
    """ADBC hands over a type it has no Arrow type for (inet, cidr, macaddr, timetz, xml, bit,
    geometric and range types, ...) as an opaque extension holding PostgreSQL's binary wire
    format, and uuid as its 16 raw bytes: neither is the value's text form."""
    return isinstance(t, pa.BaseExtensionType) and (
        pa.types.is_binary(t.storage_type) or pa.types.is_fixed_size_binary(t.storage_type))


# the array of text of an array's elements, each in its output form (of any number of dimensions)
_ELEMENTS_AS_TEXT = "CAST(CAST({c} AS TEXT) AS TEXT[])"


def _text_cast(field: pa.Field) -> str | None:
    """The expression ({c}: the column) that makes a result column readable as its value (None:
    read it as it is)."""
    if _binary_extension(field.type):
        # inet's output form ('10.0.0.1', '::1'); its cast to text adds the netmask ('/32', '/128')
        return "ABBREV({c})" if _pg_type(field) == "inet" else "CAST({c} AS TEXT)"
    if (pa.types.is_list(field.type) or pa.types.is_large_list(field.type)) and _binary_extension(
            field.type.value_type):
        # the array's own text holds each element's output form, read back as text[]: a cast of
        # the array to text[] casts each element, and inet's cast adds the netmask (['10.0.0.1/32']
        # where a single inet, and the cursor path, give '10.0.0.1')
        return _ELEMENTS_AS_TEXT
    if _pg_type(field) == "money":  # ADBC: an int64 of cents (lc_monetary's minor unit)
        return "CAST({c} AS NUMERIC)"
    # an oid is unsigned 32-bit, which ADBC reads as int32 (3000000000 as -1294967296)
    if _pg_type(field) == "oid":
        return "CAST({c} AS BIGINT)"
    if _is_array(field) and _pg_type(field) == "_oid":
        return "CAST({c} AS BIGINT[])"
    # char(n)'s text form, without the blanks that pad it to n ('ab'::char(5)::text = 'ab': see _load_unpadded)
    if _pg_type(field) == "bpchar":
        return "CAST({c} AS TEXT)"
    if _is_array(field) and _pg_type(field) == "_bpchar":
        return "CAST({c} AS TEXT[])"
    # A composite (`create type comp as (a int, b text)`): ADBC's struct reader misfills it (rows
    # marked invalid, children shifted: (2,b) read as {"a": null, "b": null}, NULL as {"a": 0,
    # "b": ""}, {(1,x),NULL,(2,y)} as [{"a":1,"b":"x"},null,null]): read as its text form,
    # `(2,b)`, as other types ADBC cannot read are. Its fields as fields: `(col).a` in the model;
    # as an object: `to_jsonb(col)` with `type: json`.
    if pa.types.is_struct(field.type):
        return "CAST({c} AS TEXT)"
    if (pa.types.is_list(field.type) or pa.types.is_large_list(field.type)) and pa.types.is_struct(
            field.type.value_type):
        return "CAST({c} AS TEXT[])"
    return None


def _is_array(field: pa.Field) -> bool:
    return pa.types.is_list(field.type) or pa.types.is_large_list(field.type)


_DIMS = "_dinsync_dims_{i}"  # the wrapped query's column of the dimensions of array column i
# The length of each dimension of an array of more than one (else NULL), in order
_DIMS_SQL = ("CASE WHEN ARRAY_NDIMS({c}) > 1 THEN ARRAY(SELECT ARRAY_LENGTH({c}, _dinsync_d) "
             "FROM GENERATE_SERIES(1, ARRAY_NDIMS({c})) AS _dinsync_d ORDER BY _dinsync_d) END")


_UNNAMED = re.compile(r"unnamed<oid:(\d+)>")


def _opaque_arrays(cur: Any, schema: pa.Schema) -> set[int]:
    """The columns that ADBC hands over as one opaque value although they are arrays (of ranges:
    `unnamed<oid:3905>`), which the catalog tells (one query, only where there are such columns)."""
    unnamed = {i: int(m.group(1)) for i, f in enumerate(schema)
               if _binary_extension(f.type) and (m := _UNNAMED.fullmatch(_pg_type(f)))}
    if not unnamed:
        return set()
    oids = ",".join(str(o) for o in sorted(set(unnamed.values())))
    cur.execute(f"SELECT oid::int8 FROM pg_catalog.pg_type WHERE oid IN ({oids}) AND typcategory = 'A'")
    arrays = {row[0] for row in cur.fetchall()}
    return {i for i, oid in unnamed.items() if oid in arrays}


# Element types of arrays that are no domain (the common ones: no catalog query for them)
_BUILT_IN_ELEMENTS = frozenset("numeric text varchar bpchar name int2 int4 int8 float4 float8 bool date timestamp "
                               "timestamptz uuid json jsonb bytea".split())


def _domain_arrays(cur: Any, schema: pa.Schema) -> dict[int, int]:
    """The array columns whose elements are of a domain, with the domain's base type (its OID). ADBC
    names such elements by the domain and reads them as strings: over numeric `["1.50","nan"]`,
    where a numeric[]'s are numbers and a NaN is refused; over char(n) with their blank padding. The
    catalog tells (one query, only where an array holds values of a type of another name)."""
    named = {i: _pg_type(f.type.value_field) for i, f in enumerate(schema)
             if _is_array(f) and not _binary_extension(f.type.value_type)
             and (isinstance(f.type.value_type, pa.BaseExtensionType) or pa.types.is_string(f.type.value_type))}
    named = {i: n for i, n in named.items() if n and n not in _BUILT_IN_ELEMENTS}
    if not named:
        return {}
    names = ", ".join("'" + n.replace("'", "''") + "'" for n in sorted(set(named.values())))
    # the base type of each type of those names (a domain's, through domains over domains); a name of
    # several types (in several schemas) only where each is such a domain: the cast must not fail
    cur.execute(f"""WITH RECURSIVE b(name, typtype, base) AS (
  SELECT typname::text, typtype::text, typbasetype FROM pg_catalog.pg_type WHERE typname IN ({names})
  UNION ALL
  SELECT b.name, t.typtype::text, t.typbasetype FROM b JOIN pg_catalog.pg_type t ON t.oid = b.base
  WHERE b.typtype = 'd' AND t.typtype = 'd')
SELECT name, MIN(base)::int8 FROM b
WHERE NOT (typtype = 'd' AND base IN (SELECT oid FROM pg_catalog.pg_type WHERE typtype = 'd'))
GROUP BY name HAVING BOOL_AND(typtype = 'd') AND COUNT(DISTINCT base) = 1""")
    bases = {row[0]: row[1] for row in cur.fetchall()}
    return {i: bases[n] for i, n in named.items() if n in bases}


def _with_text_casts(sql: str, schema: pa.Schema, opaque_arrays: set[int] = frozenset(),
                     numeric_arrays: set[int] = frozenset(), char_arrays: set[int] = frozenset()) -> str:
    """`sql`, wrapped so that the columns ADBC would deliver as binary wire format (see
    `_binary_extension`), money as cents, or composites misread (see `_text_cast`) come out as their
    text form, an array it would deliver as one opaque value (`opaque_arrays`: of ranges) as the
    list of its elements' text, an array of a numeric domain (`numeric_arrays`) as a numeric[], of a
    char(n) domain (`char_arrays`) as a text[] (without the blank padding: `_load_unpadded`); each
    array column's dimensions (of an array of more than one, which ADBC reads as the list of its
    elements) in a column after the others (`_adbc_converter`: array_shapes)."""
    casts = [_ELEMENTS_AS_TEXT if i in opaque_arrays else "CAST({c} AS NUMERIC[])" if i in numeric_arrays
             else "CAST({c} AS TEXT[])" if i in char_arrays else _text_cast(f) for i, f in enumerate(schema)]
    arrays = [i for i, f in enumerate(schema) if _is_array(f) or i in opaque_arrays]
    if not any(casts) and not arrays:
        return sql
    cols = []
    for field, cast in zip(schema, casts):
        col = "_dinsync_q." + quote_ident(field.name)
        cols.append(cast.format(c=col) + " AS " + quote_ident(field.name) if cast else col)
    cols += [_DIMS_SQL.format(c="_dinsync_q." + quote_ident(schema[i].name)) + " AS " + _DIMS.format(i=i)
             for i in arrays]
    return f"SELECT {', '.join(cols)} FROM (\n{sql.rstrip().rstrip(';')}\n) AS _dinsync_q"


def _adbc_converter(schema: pa.Schema):
    """Each batch's columns as the mapping reads them; each array column with its rows' dimensions
    (see `_with_text_casts`: array_shapes), the columns of dimensions dropped."""
    prefix = _DIMS.format(i="")
    dims = {int(f.name[len(prefix):]): k for k, f in enumerate(schema) if f.name.startswith(prefix)}
    if dims:
        keep = len(schema) - len(dims)
        inner = _adbc_converter(pa.schema(list(schema)[:keep]))

        def with_dimensions(batch: pa.RecordBatch) -> pa.RecordBatch:
            head = pa.RecordBatch.from_arrays(batch.columns[:keep], schema=pa.schema(list(batch.schema)[:keep]))
            columns = [with_shapes(c, batch.column(dims[i])) if i in dims else c
                       for i, c in enumerate(inner(head).columns)]
            return pa.RecordBatch.from_arrays(columns, names=batch.schema.names[:keep])

        return with_dimensions
    plan = []
    for field in schema:
        meta = {k.decode(): v.decode() for k, v in (field.metadata or {}).items()}
        if meta.get("POSTGRESQL:type") == "_numeric" and (
                pa.types.is_list(field.type) or pa.types.is_large_list(field.type)):
            plan.append(numeric_text_list)  # elements as numbers, not strings (numeric_text_list)
        elif isinstance(field.type, pa.BaseExtensionType):
            if meta.get("POSTGRESQL:type") == "numeric":
                typmod = int(meta.get("POSTGRESQL:typmod", "-1"))
                plan.append(lambda a, free=typmod < 4: numeric_from_text(a.storage, free))
            else:
                plan.append(lambda a: a.storage)
        else:
            plan.append(None)
    if not any(plan):
        return lambda batch: batch

    def convert(batch: pa.RecordBatch) -> pa.RecordBatch:
        arrays = [fn(col) if fn else col for fn, col in zip(plan, batch.columns)]
        return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)

    return convert


class CursorStream:
    """Rows through a server-side cursor (`DECLARE ... CURSOR` / `FETCH FORWARD n`) in a
    transaction on a connection of its own, converted to Arrow `batch_rows` at a time (fewer when
    they are wide: `_fetched`). NUMERIC is read as its text (`numeric_text`), as the ADBC path
    reads it."""

    stream_settings: ClassVar[dict[str, str]] = {}  # SET LOCAL in the stream's transaction (postgres.STREAM_SETTINGS)

    @translated("streaming a query")
    def stream(self, sql: str, batch_rows: int = 50_000, params: Params = None) -> Iterator[pa.RecordBatch]:
        conn = self._reach(self._connect_psycopg)
        try:
            _load_value_forms(conn, ("numeric",))  # numerics as PostgreSQL writes them (numeric_text)
            sql, values = self._sql(sql, params)
            with conn.transaction(), conn.cursor(name="dinsync_stream") as cur:
                _set_local(conn.execute, self.stream_settings)
                cur.execute(sql, values)
                if self.database_arrays:
                    _load_arrays_of_the_database(conn, cur)
                yield from rebatch(_fetched(cur, batch_rows), batch_rows)
        finally:
            conn.close()


def _load_arrays_of_the_database(conn: Any, cur: Any) -> None:
    """Loaders on cursor `cur` (executed, not fetched yet) of the arrays among its columns that
    psycopg knows no type of (of an enum, a composite made in the database), which it read as their
    text, one string ('{sad,ok}') where ADBC reads a list: their elements are read as their text
    (a composite's `(1,x)`, as ADBC's path reads it too)."""
    from psycopg.types import TypeInfo

    unknown = sorted({c.type_code for c in cur.description or () if cur.adapters.types.get(c.type_code) is None})
    if not unknown:
        return
    oids = ", ".join(str(int(o)) for o in unknown)
    # (and the base type of elements of a domain over char(n): read without their blank padding)
    rows = conn.execute("SELECT t.oid::int8, t.typelem::int8, t.typname::text, e.typbasetype::int8 "
                        "FROM pg_catalog.pg_type t JOIN pg_catalog.pg_type e ON e.oid = t.typelem "
                        f"WHERE t.oid IN ({oids}) AND t.typcategory = 'A' AND t.typelem <> 0").fetchall()
    for oid, elem, name, base in rows:
        TypeInfo(name.lstrip("_"), elem, oid).register(cur)
        if base == BPCHAR_OID:
            _load_unpadded(cur, elem)


def _fetched(cur: Any, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The cursor's rows as Arrow, fetched PROBE_ROWS first, then as many as make about
    BATCH_BYTES at the width of the rows fetched last (`rows_within`): 10,000 rows of 100 KB
    of text were 1 GB of Python objects at once."""
    names = types = None
    size = min(batch_rows, PROBE_ROWS)
    while True:
        rows = cur.fetchmany(size)
        if names is None:
            names = [c.name for c in cur.description]
            types = [functools.partial(numeric_from_text, free_scale=c.scale is None)
                     if c.type_code == NUMERIC_OID else numeric_list_from_text
                     if c.type_code == NUMERIC_ARRAY_OID else
                     functools.partial(calendar_array, t=_OID_TYPES[c.type_code])
                     if c.type_code in _CALENDAR_OIDS else arrow_type_of_column(c)
                     for c in cur.description]
            types = [functools.partial(one_dimension, convert=_calendar_list_of(c.type_code, t)
                                       or _read_as(cur, cur.adapters.types.get(c.type_code).oid, list_of=True))
                     if _is_array_oid(cur, c.type_code) else t if t is not None else _read_as(cur, c.type_code)
                     for c, t in zip(cur.description, types)]
        if not rows:
            return
        table = rows_to_arrow(names, rows, types)
        size = rows_within(batch_rows, table.nbytes / table.num_rows)
        yield from table.to_batches()
