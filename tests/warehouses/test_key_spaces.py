"""A matching key is trimmed of the same white space on every warehouse: the Unicode White_Space
characters that Polars' strip_chars drops (normalize_email, the keys' Polars twin).

Each engine's own TRIM drops another set (PostgreSQL and Snowflake ' ' only, DuckDB its Zs spaces
but no tab or line break): a key written ' a@x.co' with a no-break space was sent as a@x.co from
DuckDB and rejected ("contains whitespace") from PostgreSQL, and one ending in a tab the reverse
of nothing; the same model gave different requests and plans by warehouse.
"""
from __future__ import annotations

import polars as pl
import pyarrow as pa
import sqlglot

from dinsync.diff.keys import key_sql
from dinsync.diff.render import replace_pseudo
from dinsync.mapping.normalize import normalize_email

EMAILS = [
    " a@x.co ", "\tb@x.co\n", "\u00a0c@x.co\u2003", "\r\nd@x.co\x0b\x0c", "\u3000E@X.co\u0085", "\u202ff@x.co\u205f",
    "g@x.co", "\u200bh@x.co", "i@x.co\u00ad", "   ", "\t\u00a0", "", "j k@x.co",
]


def test_email_keys_are_trimmed_alike_on_every_warehouse(target):
    target.load("spaced", pa.table({"id": pa.array(range(len(EMAILS)), pa.int64()), "email": EMAILS}))
    with target.connect() as wh:
        dialect = wh.dialect
    table = sqlglot.exp.table_("spaced", db=target.model_schema, quoted=True)
    sql = sqlglot.select(sqlglot.parse_one(key_sql("email", "\"email\"")).as_("k")).from_(table).order_by('"id"')
    got = [list(r.values())[0] for r in target.rows(replace_pseudo(sql, dialect).sql(dialect=dialect))]
    polars = pl.select(normalize_email(pl.lit(pl.Series(EMAILS)))).to_series().to_list()
    assert got == [v or None for v in polars] == [
        "a@x.co", "b@x.co", "c@x.co", "d@x.co", "e@x.co", "f@x.co", "g@x.co", "\u200bh@x.co", "i@x.co\u00ad",
        None, None, None, "j k@x.co"]
