"""Redshift's SQL as Redshift itself takes it, where the PostgreSQL server its code path is tested
on would accept more.

Redshift has no cast of a BOOLEAN to a character type (its CAST and TRY_CAST permit BOOL only to
SMALLINT, INTEGER, BIGINT and SUPER: https://docs.aws.amazon.com/redshift/latest/dg/r_TRY_CAST.html,
"Usage notes"); PostgreSQL casts it to text. The diff hashes each mapped value's text, so a mapped
BOOLEAN column (`vip`, `opted_in`) was `CAST(vip AS VARCHAR(65535))` in every plan: every sync
mapping one failed on Redshift, while the tests on PostgreSQL passed.
"""
from __future__ import annotations

import re

import pytest

from dinsync.diff import DiffSpec, Planner
from dinsync.diff.render import snapshot_column
from tests.warehouses.support import WarehouseUnderTest


@pytest.fixture
def rs(tmp_path):
    target = WarehouseUnderTest("redshift", tmp_path)
    yield target
    target.close()


def _recording(wh) -> list[str]:
    """Every SQL text the adapter runs from now on."""
    sent: list[str] = []
    for name in ("execute", "query", "stream"):
        original = getattr(wh, name)

        def record(sql, *args, _original=original, **kwargs):
            sent.append(sql)
            return _original(sql, *args, **kwargs)

        setattr(wh, name, record)
    return sent


def test_a_mapped_boolean_is_never_cast_to_a_character_type(rs):
    s = rs.schema
    rs.wh.execute(f'CREATE TABLE "{s}".people (email text, vip boolean, score int)')
    rs.wh.execute(f"""INSERT INTO "{s}".people VALUES ('a@x.com', true, 1), ('b@x.com', false, 2),
                      ('c@x.com', NULL, 3)""")
    fields = ["vip", "score"]
    spec = DiffSpec(sync="s1", model_sql="SELECT * FROM people", key_column="email", key_normalization="email",
                    fields=[(f, f) for f in fields], state_schema=rs.state_schema)
    sent = _recording(rs.wh)

    def plan(ack: bool = False) -> dict[str, list[str]]:
        p = Planner(rs.wh, spec)
        p.ensure_state()
        p.plan()
        rows = rs.wh.query(f"SELECT _key, x0, x1 FROM {rs.wh.table_name(rs.state_schema, p.plan_table)} "
                           "WHERE _op IN ('added', 'changed')").to_pylist()
        if ack:
            keys = [k for b in p.stream_sendable(batch_rows=10) for k in b.column("_key").to_pylist()]
            p.commit_acknowledged(keys)
        return {r["_key"]: [f for i, f in enumerate(fields) if r[f"x{i}"]] for r in rows}

    assert len(plan(ack=True)) == 3
    assert plan() == {}
    rs.wh.execute(f"UPDATE \"{s}\".people SET vip = NOT vip WHERE email = 'a@x.com'")
    rs.wh.execute(f"UPDATE \"{s}\".people SET vip = true WHERE email = 'c@x.com'")
    assert plan(ack=True) == {"a@x.com": ["vip"], "c@x.com": ["vip"]}
    assert plan() == {}

    # the boolean is the model's `vip`, and v0 of the scratch tables that copy it
    cast = re.compile(r'CAST\(\s*"\w+"\."(vip|v0)"\s+AS\s+(VARCHAR|TEXT|CHAR)', re.I)
    offending = [sql for sql in sent if cast.search(sql)]
    assert not offending, offending[0]
    # stored hashes are those of the value's text ('true' / 'false'), as PostgreSQL's cast writes it
    hashed = "CASE WHEN {c} IS NULL THEN 0 ELSE FNV_HASH(CAST({c} AS VARCHAR(65535))) END"
    differ = " OR ".join(f"s.{snapshot_column(f)} <> {hashed.format(c='CAST(m.' + f + ' AS TEXT)')}" for f in fields)
    assert rs.wh.query(f'SELECT m.email FROM "{s}".people m JOIN "{rs.state_schema}".snap_s1 s '
                       f"ON s._key = m.email WHERE {differ}").num_rows == 0
