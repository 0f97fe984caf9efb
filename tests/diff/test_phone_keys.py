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
    # more than digits and separators: kept as written (reduced to their ASCII digits they were
    # other numbers, e.g. +1 201 555 0123\uff18 -> +12015550123)
    "+1201200000\uff18", "+1 201 555 0123\uff18", "+1 201 555 \u0660\u0661\u0662\u0663",
    "\u0660\u0666\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668", "+91 98765 4321\u0966",
    "+1 800 FLOWERS", "415-555-0100 ext. 12", "415*555*0100", "#31#0612345678", "06 12 34 56 78\v",
    "n/a", "N/A", "unknown", "-", "( )", "\u00e9", "?",
    # separators people write: dropped
    "06\u00a012\u00a034\u00a056\u00a078", "06\u202f12\u202f34\u202f56\u202f78", "06\u201312\u201334\u201356\u201378",
    "(+33) 6/12/34/56/78", "06 12 34 56 78\n", "0612345678\r\n", "\t06\t12\t34\t56\t78",
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
    assert {fr[s] for s in ["06\u00a012\u00a034\u00a056\u00a078", "06\u202f12\u202f34\u202f56\u202f78",
                            "06\u201312\u201334\u201356\u201378", "(+33) 6/12/34/56/78"]} == {"+33612345678"}
    us = dict(zip(SPELLINGS, polars_keys(SPELLINGS, "US")))
    assert {us[s] for s in ["1-415-555-0100", "415.555.0100", "+1 415 555 0100",
                            "001 415 555 0100"]} == {"+14155550100"}
    for blank in ["", "   ", "+", "00", "CALL ME", None, "n/a", "N/A", "unknown", "-", "( )"]:
        assert fr[blank] is None and us[blank] is None
    # the '(0)' convention (a trunk prefix inside an international number) is dropped, as E.164
    # drops it: +44 (0)20 7183 8750 and +44 20 7183 8750 were two keys sent as one number, both
    # written to one subscriber in one run
    uk = polars_keys(["+44 (0)20 7183 8750", "+44 20 7183 8750", "020 7183 8750"], "GB")
    assert uk == ["+442071838750"] * 3 == normalize_phones(pl.Series(uk), "GB").to_list()


# A value holding more than ASCII digits and separators: its key is its text as written, which
# the mapping rejects quoting it. Reduced to its ASCII digits it was another number: the audit's
# +1 201 555 0123\uff18 updated the subscriber of +12015550123.
UNREAD = ["+1201200000\uff18", "+1 201 555 0123\uff18", "+1 201 555 \u0660\u0661\u0662\u0663",
          "\u0660\u0666\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668", "+91 98765 4321\u0966",
          "+1 800 FLOWERS", "415-555-0100 ext. 12", "415*555*0100", "#31#0612345678", "06 12 34 56 78\v",
          "tel: +1 (415) 555-0100", "06 12 AB 34", "++33 6 12", "6+33", "\u00e9", "?"]


def test_a_key_holding_more_than_digits_and_separators_is_kept_as_written(tmp_path):
    for region in ("US", "FR", None):
        assert sql_keys(tmp_path, UNREAD, region) == UNREAD == polars_keys(UNREAD, region), region
    # no digit and only ASCII letters and separators: no number, the row is skipped as before
    (tmp_path / "words").mkdir()
    assert sql_keys(tmp_path / "words", ["n/a", "CALL ME", "+", "( )"], "US") == [None] * 4


def test_a_key_kept_as_written_is_not_a_duplicate_of_the_number_its_ascii_digits_make(tmp_path):
    """+1 201 555 0123\uff18 was the key +12015550123: with a row of that number in the model both
    were withheld as duplicates, without one another subscriber's row got its values."""
    w = connect("duckdb", path=str(tmp_path / "w.duckdb"))
    try:
        w.execute("CREATE TABLE t (phone VARCHAR, name VARCHAR)")
        w.con.executemany("INSERT INTO t VALUES (?, ?)", [("+1 201 555 0123\uff18", "a"), ("+12015550123", "b"),
                                                          ("+1 800 FLOWERS", "c"), ("n/a", "d")])
        p = Planner(w, DiffSpec(sync="ph", model_sql="SELECT * FROM t", key_column="phone", key_normalization="phone",
                                fields=[("name", "name")], phone_region="US"))
        stats = p.plan()
        assert (stats.added, stats.duplicate_keys, stats.null_keys) == (3, 0, 1), stats
        assert {r["key"] for r in p.sample("added")} == {"+1 201 555 0123\uff18", "+12015550123", "+1 800 FLOWERS"}
    finally:
        w.close()


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


@pytest.mark.parametrize("kind", ["postgres", "snowflake"])
def test_every_engine_keeps_a_key_it_cannot_read_as_written(tmp_path, kind):
    """PostgreSQL's and Snowflake's (fakesnow) phone key of values holding more than digits and
    separators: their text as written, never their ASCII digits (+1 201 555 0123\uff18 was the key
    +12015550123, another subscriber's number)."""
    from tests.warehouses.support import WarehouseUnderTest

    t = WarehouseUnderTest(kind, tmp_path)
    try:
        values = ", ".join(f"({i}, {repr_sql(v)})" for i, v in enumerate(UNREAD + ["n/a", "06\u00a012\u00a034\u00a056\u00a078"]))
        t.wh.execute(f'CREATE TABLE "{t.schema}".t (i INTEGER, k VARCHAR)')
        t.wh.execute(f'INSERT INTO "{t.schema}".t VALUES {values}')
        select = phone_key_select(kind, "FR").replace('"t"', f'"{t.schema}"."t"', 1)
        rows = sorted(t.wh.query(select).to_pylist(), key=lambda r: r["i"])
        assert [r["k"] for r in rows] == UNREAD + [None, "+33612345678"]
    finally:
        t.close()


def test_the_sql_and_polars_read_phone_keys_through_one_class():
    from dinsync.diff.dialects import PHONE_KEY_READ
    from dinsync.mapping.normalize import PHONE_KEY_READ as POLARS_READ

    assert PHONE_KEY_READ == POLARS_READ


def repr_sql(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def test_without_a_region_a_national_number_is_not_read_as_another_countrys(tmp_path):
    """Without `phone_region`, '+' in front of a national number's digits made another country's
    number: the US (201) 555-0002 became +2015550002, a plausible Egyptian number (about one US
    number in four so became a plausible foreign one), looked up and written as that subscriber.
    Without a region only the international forms ('+', '00') are read; the others keep their
    digits without '+', which the mapping rejects ("no default region: write it in international
    form"), as it rejects such a number in a field."""
    from dinsync.mapping import KeyMapping, map_batch

    values = ["201.555.0002", "(201) 555-0002", "12015550002", "+1 201 555 0002", "001 201 555 0002"]
    keys = sql_keys(tmp_path, values, None)
    assert keys == polars_keys(values, None)
    assert keys[:3] == ["2015550002", "2015550002", "12015550002"] and keys[3:] == ["+12015550002"] * 2
    plan = pl.DataFrame({"_key": list(dict.fromkeys(keys)), "_op": ["added"] * 3})
    b = map_batch(plan, KeyMapping("phone", "phone"), [])
    assert b.frame["_id"].to_list() == ["+12015550002"]
    assert sorted(b.rejections["_key"].to_list()) == ["12015550002", "2015550002"]
    assert all("international form" in r for r in b.rejections["reason"].to_list())
