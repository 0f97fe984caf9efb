"""A change of case only is a change on PostgreSQL, in a `citext` column and in a text column of a
nondeterministic (case-insensitive) ICU collation; and keys of such a column compare as the text
the platform receives.

Before: the row fingerprint (HASH_RECORD_EXTENDED) hashed those values with their type's or
collation's case-insensitive hash, so `Bob` -> `BOB` was never a candidate and never sent; a key
column of that collation made `u1` and `U1` one duplicated key (both withheld), although the
platform stores two users.
"""
from __future__ import annotations

import pyarrow as pa
import pytest

from dinsync.diff import DiffSpec, Planner
from tests.warehouses.support import WarehouseUnderTest, admin_execute

ND = "ci_nd"  # a case-insensitive collation, created in the test's schema


@pytest.fixture
def pg(tmp_path):
    target = WarehouseUnderTest("postgres", tmp_path)
    yield target
    target.close()


def _citext(schema: str) -> str | None:
    """The qualified citext type (the extension installed in the test's schema if it is not yet in
    the database), or None when the server cannot install it."""
    try:
        admin_execute(f'CREATE EXTENSION IF NOT EXISTS citext SCHEMA "{schema}"')
    except Exception:  # noqa: BLE001 - no contrib package, or no right to create extensions
        return None
    import psycopg

    from tests.warehouses.support import PG_DSN

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        [(where,)] = conn.execute("SELECT extnamespace::regnamespace::text FROM pg_extension "
                                  "WHERE extname = 'citext'").fetchall()
    return f"{where}.citext"


class Diff:
    def __init__(self, pg, columns: str, key: str = "email", normalization: str = "email",
                 fields=(("name", "first_name"),)):
        self.wh, self.pg = pg.wh, pg
        self.wh.execute(f'CREATE TABLE "{pg.schema}".people ({columns})')
        spec = DiffSpec(sync="s1", model_sql="SELECT * FROM people", key_column=key,
                        key_normalization=normalization, fields=list(fields), state_schema=pg.state_schema)
        self.p = Planner(self.wh, spec)
        self.p.ensure_state()
        self.plans = 0

    def set_rows(self, **columns):
        self.wh.execute(f'DELETE FROM "{self.pg.schema}".people')
        self.wh.write_arrow(self.pg.schema, "people", pa.table(columns))

    def plan(self):
        self.p.plan()
        self.plans += 1
        rows = self.wh.query(f"SELECT _key, _op FROM {self.wh.table_name(self.pg.state_schema, self.p.plan_table)} "
                             f"/* plan {self.plans} */").to_pylist()
        return {r["_key"]: r["_op"] for r in rows if r["_op"] in ("added", "changed", "removed", "duplicate")}

    def ack_all(self):
        keys = [k for b in self.p.stream_sendable(batch_rows=10) for k in b.column("_key").to_pylist()]
        self.p.commit_acknowledged(keys)
        self.p.commit_removed()


def _case_change_is_a_change(d: Diff):
    d.set_rows(email=["a@x.com", "b@x.com"], name=["Bob", "Carol"])
    assert d.plan() == {"a@x.com": "added", "b@x.com": "added"}
    d.ack_all()
    assert d.plan() == {}
    d.set_rows(email=["a@x.com", "b@x.com"], name=["BOB", "Carol"])
    assert d.plan() == {"a@x.com": "changed"}
    d.ack_all()
    assert d.plan() == {}


def test_a_case_change_in_a_text_column_of_a_case_insensitive_collation_is_sent(pg):
    pg.wh.execute(f'CREATE COLLATION "{pg.schema}".{ND} (provider = icu, locale = \'und-u-ks-level2\', '
               "deterministic = false)")
    _case_change_is_a_change(Diff(pg, f'email text, name text COLLATE "{pg.schema}".{ND}'))


def test_a_case_change_in_a_citext_column_is_sent(pg):
    citext = _citext(pg.schema)
    if citext is None:
        pytest.skip("the citext extension cannot be installed on this server (contrib missing, or no right)")
    _case_change_is_a_change(Diff(pg, f"email text, name {citext}"))


def test_keys_of_a_case_insensitive_collation_are_the_text_sent(pg):
    pg.wh.execute(f'CREATE COLLATION "{pg.schema}".{ND} (provider = icu, locale = \'und-u-ks-level2\', '
               "deterministic = false)")
    d = Diff(pg, f'uid text COLLATE "{pg.schema}".{ND}, name text', key="uid", normalization="none")
    d.set_rows(uid=["u1", "U1"], name=["one", "two"])
    assert d.plan() == {"u1": "added", "U1": "added"}  # two users on the platform, not one duplicated key
    d.ack_all()
    assert d.plan() == {}
    d.set_rows(uid=["u1", "U1"], name=["one", "TWO"])
    assert d.plan() == {"U1": "changed"}
