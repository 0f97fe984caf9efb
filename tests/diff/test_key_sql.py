"""The SQL of `dinsync check` (sql/key_counts.sql, sql/key_duplicates.sql) per dialect, pinned in
golden files, and its figures against the plan's on DuckDB.

Regenerate after an intended change with: DINSYNC_UPDATE_GOLDEN=1 python -m pytest tests/diff
"""
from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest
import sqlglot

from dinsync.diff.keycheck import KeyCounter
from dinsync.diff.render import DIALECTS, SqlError
from dinsync.warehouses.duckdb import DuckDBWarehouse

GOLDEN = Path(__file__).parent / "golden_keys"
UPDATE = os.environ.get("DINSYNC_UPDATE_GOLDEN") == "1"
MODEL = "SELECT id, email FROM analytics.people WHERE active"
STATEMENTS = ("key_counts", "key_duplicates")


def counter(dialect: str, column: str = 'e-mail "main"', normalization: str = "email") -> KeyCounter:
    return KeyCounter(SimpleNamespace(dialect=dialect), "people", MODEL, column, normalization)


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("statement", STATEMENTS)
def test_golden(dialect, statement):
    sql = counter(dialect).render(statement, limit=7)
    path = GOLDEN / dialect / f"{statement}.sql"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(sql + "\n", encoding="utf-8")
    assert path.exists(), f"missing golden file {path}; run with DINSYNC_UPDATE_GOLDEN=1"
    assert sql + "\n" == path.read_text(encoding="utf-8")
    tree, = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    assert sql.count("(\n" + MODEL + "\n)") == 1  # the model is read once, embedded as written
    quoted = {"bigquery": "`m`.`e-mail \"main\"`", "databricks": "`m`.`e-mail \"main\"`"}.get(dialect, '"m"."e-mail ""main"""')
    assert quoted in sql  # the key column arrives only as a quoted identifier


def test_bad_names_and_models_are_refused():
    with pytest.raises(SqlError):
        counter("duckdb", normalization="upper")
    with pytest.raises(SqlError):
        KeyCounter(SimpleNamespace(dialect="duckdb"), "m", "DELETE FROM people", "id")
    with pytest.raises(ValueError):
        counter("duckdb").render("key_duplicates", limit=-1)


def test_counts_on_duckdb(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("create table people as select * from (values (1, 'A@x.co'), (2, ' a@x.co'), (3, 'b@x.co'), "
                "(3, 'c@x.co'), (4, NULL), (5, ''), (6, 'c@x.co'), (7, 'C@X.CO')) t(id, email)")
    con.close()
    wh = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    try:
        model = "select id, email from people"
        email = KeyCounter(wh, "people", model, "email", "email").count(samples=1)
        assert (email.rows, email.null_keys, email.duplicate_keys, email.duplicate_rows) == (8, 2, 2, 5)
        assert email.sample == [("c@x.co", 3)]
        raw = KeyCounter(wh, "people", model, "email", "none").count()
        assert (raw.null_keys, raw.duplicate_keys, raw.duplicate_rows, raw.sample) == (2, 1, 2, [("c@x.co", 2)])
        ids = KeyCounter(wh, "people", model, "id").count()
        assert (ids.null_keys, ids.duplicate_keys, ids.duplicate_rows, ids.sample) == (0, 1, 2, [("3", 2)])
        assert round(ids.duplicate_pct, 2) == 25.0
    finally:
        wh.close()


def test_phone_keys_are_counted_as_the_plan_reads_them(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("create table people as select * from (values (1, '06 12 34 56 78'), (2, '+33 6 12 34 56 78'), "
                "(3, '0033612345678'), (4, '07 00 00 00 01'), (5, ' ')) t(id, phone)")
    con.close()
    wh = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    try:
        phone = KeyCounter(wh, "people", "select id, phone from people", "phone", "phone", "FR").count()
        assert (phone.null_keys, phone.duplicate_keys, phone.duplicate_rows) == (1, 1, 3)
        assert phone.sample == [("+33612345678", 3)]
    finally:
        wh.close()
