"""Phone numbers as matching keys: the same key in SQL (every dialect) and in Polars."""
from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest

from dinsync.diff import DiffSpec, Planner
from dinsync.diff.dialects import DIALECTS
from dinsync.diff.keys import key_sql
from dinsync.mapping.normalize import normalize_phones, phone_key_expr, phone_key_params
from dinsync.warehouses import connect

GOLDEN = Path(__file__).parent / "golden"
SPELLINGS = [
    "+33 6 12 34 56 78", "+33612345678", "0033 6 12 34 56 78", "06 12 34 56 78", "06.12.34.56.78",
    "06-12-34-56-78", "(06) 12 34 56 78", " 0612345678 ", "6 12 34 56 78", "+33 (0)6 12 34 56 78",
    "tel: +1 (415) 555-0100", "1-415-555-0100", "415.555.0100", "+1 415 555 0100", "001 415 555 0100",
    "06 12 AB 34", "CALL ME", "", "   ", "+", "00", "0", "+0033 6", "++33 6 12", "6+33", None,
]


def phone_key_select(dialect: str, region: str | None) -> str:
    """SELECT i, <the diff's phone key of k> FROM t, rendered for `dialect` as the planner does."""
    import sqlglot

    from dinsync.diff.keys import phone_params
    from dinsync.diff.render import replace_pseudo

    tree = sqlglot.parse_one(f'SELECT m.i, {key_sql("phone", "m.k", phone_params(region))} AS k FROM t AS m')
    return replace_pseudo(tree, dialect).sql(dialect=dialect, pretty=True, identify=True)


def sql_keys(tmp_path, values: list, region: str | None) -> list:
    """The keys the diff's SQL computes for `values`, in order (DuckDB)."""
    w = connect("duckdb", path=str(tmp_path / f"phone_{region}.duckdb"))
    try:
        w.execute("CREATE TABLE t (i INTEGER, k VARCHAR)")
        w.con.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(values)))
        rows = w.query(phone_key_select("duckdb", region) + " ORDER BY 1").to_pylist()
        return [r["k"] for r in rows]
    finally:
        w.close()


def polars_keys(values: list, region: str | None) -> list:
    frame = pl.DataFrame({"k": values}, schema={"k": pl.String})
    return frame.select(phone_key_expr(pl.col("k"), region)).to_series().to_list()


@pytest.mark.parametrize("region", ["FR", "US", "IT", None])
def test_sql_and_polars_agree(tmp_path, region):
    assert sql_keys(tmp_path, SPELLINGS, region) == polars_keys(SPELLINGS, region)


def test_spellings_of_one_number_are_one_key():
    fr = dict(zip(SPELLINGS, polars_keys(SPELLINGS, "FR")))
    same = ["+33 6 12 34 56 78", "+33612345678", "0033 6 12 34 56 78", "06 12 34 56 78", "06.12.34.56.78",
            "06-12-34-56-78", "(06) 12 34 56 78", " 0612345678 ", "6 12 34 56 78", "+33 (0)6 12 34 56 78"]
    assert {fr[s] for s in same} == {"+33612345678"}
    us = dict(zip(SPELLINGS, polars_keys(SPELLINGS, "US")))
    assert {us[s] for s in ["tel: +1 (415) 555-0100", "1-415-555-0100", "415.555.0100", "+1 415 555 0100",
                            "001 415 555 0100"]} == {"+14155550100"}
    for blank in ["", "   ", "+", "00", "CALL ME", None]:
        assert fr[blank] is None and us[blank] is None
    assert fr["06 12 AB 34"] == "+3361234"  # letters are dropped, not translated
    # the '(0)' convention (a trunk prefix inside an international number) is dropped, as E.164
    # drops it: +44 (0)20 7183 8750 and +44 20 7183 8750 were two keys sent as one number, both
    # written to one subscriber in one run
    uk = polars_keys(["+44 (0)20 7183 8750", "+44 20 7183 8750", "020 7183 8750"], "GB")
    assert uk == ["+442071838750"] * 3 == normalize_phones(pl.Series(uk), "GB").to_list()


def test_duplicate_spellings_are_withheld_together(tmp_path):
    w = connect("duckdb", path=str(tmp_path / "w.duckdb"))
    w.execute("CREATE TABLE t (phone VARCHAR, name VARCHAR)")
    w.con.executemany("INSERT INTO t VALUES (?, ?)", [("06 12 34 56 78", "a"), ("+33612345678", "b"),
                                                      ("07 00 00 00 01", "c")])
    p = Planner(w, DiffSpec(sync="ph", model_sql="SELECT * FROM t", key_column="phone", key_normalization="phone",
                            fields=[("name", "name")], phone_region="FR"))
    stats = p.plan()
    assert (stats.added, stats.duplicate_keys, stats.duplicate_rows) == (1, 1, 2)
    assert p.duplicates_sample() == [("+33612345678", 2)]
    p.commit_acknowledged(["+33700000001"])
    w.execute("DELETE FROM t WHERE name = 'b'")
    w.execute("UPDATE t SET phone = '0700000001' WHERE name = 'c'")  # another spelling, same key
    stats = p.plan()
    assert (stats.added, stats.changed, stats.unchanged) == (1, 0, 1)
    w.close()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_golden_phone_key(dialect):
    """The phone key's SQL per dialect, pinned (regenerate with DINSYNC_UPDATE_GOLDEN=1)."""
    sql = phone_key_select(dialect, "FR")
    path = GOLDEN / dialect / "phone_key.sql"
    if os.environ.get("DINSYNC_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(sql + "\n", encoding="utf-8")
    assert sql + "\n" == path.read_text(encoding="utf-8")
    assert "'+33'" in sql and "DINSYNC" not in sql.upper()


def test_region_parameters_come_from_phonenumbers():
    assert phone_key_params("FR") == ("33", "0")
    assert phone_key_params("us") == ("1", "1")
    assert phone_key_params("IT") == ("39", "")
    assert phone_key_params(None) == ("", "")
    with pytest.raises(ValueError):
        phone_key_params("ZZ")
    with pytest.raises(ValueError):
        key_sql("phone", "m.k", ("33'; DROP", "0"))


def test_a_new_default_region_reads_the_keys_again_once_the_raw_keys_are_forgotten(tmp_path):
    """The destination's phone_region changed: a number in national form is another key, an
    international one the same. The raw key text did not change, so the no-op check alone saw
    nothing; once the snapshot forgets its raw key hashes (the engine does, from its record of the
    region), the next plan adds the new key, removes the old one and leaves the other row alone."""
    w = connect("duckdb", path=str(tmp_path / "region.duckdb"))
    try:
        w.execute("CREATE TABLE people (phone VARCHAR, name VARCHAR)")
        w.execute("INSERT INTO people VALUES ('06 12 34 56 78', 'Ann'), ('+33 6 00 00 00 01', 'Bob')")

        def planner(region):
            p = Planner(w, DiffSpec(sync="s", model_sql="SELECT * FROM people", key_column="phone",
                                    key_normalization="phone", fields=[("name", "name")], state_schema="st",
                                    phone_region=region), cache=False)
            p.ensure_state()
            return p

        us = planner("US")
        assert us.plan().added == 2
        assert us.commit_acknowledged(["+10612345678", "+33600000001"]) == 2
        fr = planner("FR")
        assert fr.plan().unchanged == 2  # what the snapshot's raw key hashes say
        fr.forget_raw_keys()
        stats = fr.plan()
        assert (stats.added, stats.changed, stats.removed, stats.unchanged) == (1, 0, 1, 1), stats
        assert fr.sample("added")[0]["key"] == "+33612345678"
        assert fr.commit_acknowledged(["+33612345678"]) == 1 and fr.commit_removed() == 1
        assert fr.plan().unchanged == 2 and fr.plan().added == 0
        keys = {r["_key"] for r in w.query("SELECT _key FROM st.snap_s WHERE _rkh IS NOT NULL").to_pylist()}
        assert keys == {"+33612345678", "+33600000001"}
    finally:
        w.close()


# (Not Redshift's SQL on PostgreSQL: Redshift's REGEXP_REPLACE replaces every match, as its
# golden relies on, where PostgreSQL's replaces the first one without the 'g' flag.)
@pytest.mark.parametrize("kind", ["postgres", "snowflake"])
def test_every_engine_computes_the_keys_polars_computes(tmp_path, kind):
    """The golden phone key run on its engine (PostgreSQL, Snowflake's on fakesnow; DuckDB's in
    test_sql_and_polars_agree): the same keys as the Polars twin, spelling by spelling."""
    from tests.warehouses.support import WarehouseUnderTest

    t = WarehouseUnderTest(kind, tmp_path)
    try:
        values = ", ".join(f"({i}, {'NULL' if v is None else repr_sql(v)})" for i, v in enumerate(SPELLINGS))
        t.wh.execute(f'CREATE TABLE "{t.schema}".t (i INTEGER, k VARCHAR)')
        t.wh.execute(f'INSERT INTO "{t.schema}".t VALUES {values}')
        for region in ("FR", "US", None):
            select = phone_key_select(kind, region).replace('"t"', f'"{t.schema}"."t"', 1)
            rows = sorted(t.wh.query(select).to_pylist(), key=lambda r: r["i"])
            assert [r["k"] for r in rows] == polars_keys(SPELLINGS, region), region
    finally:
        t.close()


def repr_sql(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
