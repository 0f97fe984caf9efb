"""The SQL of every statement, per dialect, pinned in golden files.

Regenerate after an intended change with: DINSYNC_UPDATE_GOLDEN=1 python -m pytest tests/diff
"""
from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlglot
from sqlglot import exp

from dinsync.diff import DiffSpec, Planner
from dinsync.diff.dialects import DEFAULT_HASH_TYPES, DIALECTS
from dinsync.diff.render import ModelSqlError, SqlError, check_model_sql, snapshot_column
from dinsync.warehouses.base import Capabilities
from dinsync.warehouses.bigquery import BigQueryWarehouse
from dinsync.warehouses.duckdb import DuckDBWarehouse

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("DINSYNC_UPDATE_GOLDEN") == "1"
MODEL = "SELECT id, email, first_name, score FROM analytics.people WHERE active -- only active people"
SPEC = DiffSpec(
    sync="people_to_crm",
    model_sql=MODEL,
    key_column="email",
    key_normalization="email",
    fields=[("email", "email"), ("first name", "First Name"), ('score "x"', 'lead "score"'), ("id", "external_id")],
    state_schema="dinsync_state",
)


def capabilities(dialect: str) -> Capabilities:
    """What the golden files are rendered for: the adapters of DuckDB and BigQuery (their scratch
    tables live apart from the state schema), defaults elsewhere (but Snowflake's time type)."""
    if dialect == "duckdb":
        return DuckDBWarehouse.capabilities
    if dialect == "bigquery":
        return BigQueryWarehouse.capabilities
    # (Snowflake: its zone-less time type, which its snapshot and pending tables hold)
    timestamp_type = "TIMESTAMP_NTZ" if dialect == "snowflake" else "TIMESTAMP"
    return Capabilities(dialect=dialect, hash_type=DEFAULT_HASH_TYPES[dialect], timestamp_type=timestamp_type)


def fake_warehouse(dialect: str):
    return SimpleNamespace(dialect=dialect, capabilities=capabilities(dialect))


_PLANNERS: dict[str, Planner] = {}


def planner(dialect: str, spec: DiffSpec = SPEC) -> Planner:
    """A planner rendering without the disk cache (shared per dialect for the default spec)."""
    if spec is not SPEC:
        return Planner(fake_warehouse(dialect), spec, cache=False)
    if dialect not in _PLANNERS:
        _PLANNERS[dialect] = Planner(fake_warehouse(dialect), spec, cache=False)
    return _PLANNERS[dialect]


CASES = [(d, s) for d in DIALECTS for s in sorted(planner(d).statements())]


@pytest.mark.parametrize("dialect,statement", CASES)
def test_golden(dialect, statement):
    sql = planner(dialect).render(statement)
    path = GOLDEN / dialect / f"{statement}.sql"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(sql + "\n", encoding="utf-8")
    assert path.exists(), f"missing golden file {path}; run with DINSYNC_UPDATE_GOLDEN=1"
    assert sql + "\n" == path.read_text(encoding="utf-8")


def test_no_stale_golden_files():
    expected = {f"{d}/{s}.sql" for d, s in CASES} | {f"{d}/phone_key.sql" for d in DIALECTS}  # test_phone_keys
    found = {str(p.relative_to(GOLDEN)) for p in GOLDEN.glob("*/*.sql")}
    assert found == expected


READS_MODEL = {"plan_all", "plan_all_full_refresh", "digest", "digest_retry", "buckets", "buckets_retry", "cand", "cand_all", "cand_retry",
               "cand_all_retry", "cand_anomalies", "cur", "plan_empty"}
# Where the warehouse keeps the model's hashes (Capabilities.segment_hashes), only `seg` reads the
# model of these: the others read its table.
READ_SEG = {"digest", "digest_retry", "buckets", "buckets_retry", "cand_all", "cand_all_retry", "cand_anomalies"}


def reads_model(dialect: str, statement: str) -> bool:
    if capabilities(dialect).segment_hashes:
        return statement == "seg" or (statement in READS_MODEL and statement not in READ_SEG)
    return statement in READS_MODEL


@pytest.mark.parametrize("dialect,statement", CASES)
def test_rendered_sql_parses_back(dialect, statement):
    sql = planner(dialect).render(statement)
    statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    assert len(statements) == 1
    tree = statements[0]
    assert not any(n.name.upper().startswith("DINSYNC_") for n in tree.find_all(exp.Anonymous))
    assert "__DINSYNC_MODEL__" not in sql.upper()
    assert sql.count("(\n" + MODEL + "\n)") == (1 if reads_model(dialect, statement) else 0)  # embedded as written
    if capabilities(dialect).segment_hashes and statement in READ_SEG:
        assert '"dinsync_scratch_people_to_crm"."main"."seg_people_to_crm"' in sql


def test_dialect_functions():
    duck, pg, snow, bq, rs = (planner(d).render("plan") for d in ("duckdb", "postgres", "snowflake", "bigquery",
                                                                  "redshift"))
    assert 'HASH(CAST("c"."v1" AS TEXT) COLLATE C)' in duck  # (byte for byte under a NOCASE column too)
    assert 'COALESCE(HASHTEXTEXTENDED(CAST("c"."v1" AS TEXT) COLLATE "C", 0), 0)' in pg
    assert 'COALESCE(HASH(CAST("c"."v1" AS VARCHAR)) % 9223372036854775807, 0)' in snow
    assert "COALESCE(FARM_FINGERPRINT(CAST(`c`.`v1` AS STRING)), 0)" in bq
    assert 'FNV_HASH(CAST("c"."v1" AS VARCHAR(65535)))' in rs and "VARCHAR)" not in rs  # bare VARCHAR is 256 bytes
    assert "HASH_RECORD_EXTENDED(ROW(" in planner("postgres").render("cur")
    assert "AS DECIMAL(38, 0)" in planner("redshift").render("buckets")
    assert "BIT_XOR" in planner("duckdb").render("buckets") and "SUM(" in planner("postgres").render("buckets")
    assert "UBIGINT" in planner("duckdb").render("create_snapshot")
    assert "INT64" in planner("bigquery").render("create_snapshot")
    assert planner("snowflake").render("create_snapshot").count("BIGINT") == 8
    assert '"dinsync_scratch_people_to_crm"."main"."plan_people_to_crm"' in planner("duckdb").render("stream_sendable")
    assert '"dinsync_state"."plan_people_to_crm"' in planner("postgres").render("stream_sendable")
    dbx = planner("databricks").render("plan")
    assert "CASE WHEN `c`.`v1` IS NULL THEN 0 ELSE XXHASH64(CAST(`c`.`v1` AS STRING)) END" in dbx
    assert "BIT_XOR(XXHASH64(" in planner("databricks").render("buckets")  # no BIGINT SUM to overflow
    assert planner("databricks").render("create_snapshot").count("BIGINT") == 8
    assert "`_key` STRING NOT NULL" in planner("databricks").render("create_snapshot")
    assert "VARCHAR" not in "".join(planner("databricks").render(n) for n in planner("databricks").statements())


DATABRICKS_DML = [s for s in sorted(planner("databricks").statements())
                  if isinstance(sqlglot.parse_one(planner("databricks").render(s), read="databricks"),
                                (exp.Delete, exp.Update, exp.Merge))]


@pytest.mark.parametrize("statement", DATABRICKS_DML)
def test_databricks_dml_has_no_nested_subquery(statement):
    """Databricks' DELETE, UPDATE and MERGE take subqueries in their condition but not "nested
    subqueries, that is, a subquery inside another subquery" (DELETE FROM, UPDATE: "The following
    types of subqueries are not supported", https://docs.databricks.com/sql/language-manual/delta-delete-from.html).
    The loopback fake runs the SQL on DuckDB, which takes them: pending_ok_delete's had one, so a
    commit of pending records acknowledged (a file delivery's outcome) failed on Databricks."""
    tree = sqlglot.parse_one(planner("databricks").render(statement), read="databricks")
    condition = tree.args.get("where") or tree.args.get("on")
    for select in (condition.find_all(exp.Select) if condition else ()):
        inner = [s for s in select.find_all(exp.Select) if s is not select]
        assert not inner, f"{statement}: a subquery inside a subquery: {inner[0].sql(dialect='databricks')}"


def test_identifiers_are_quoted():
    hostile = 'x"; DROP TABLE users; --'
    spec = DiffSpec(sync="s", model_sql="SELECT 1", key_column=hostile, key_normalization="none",
                    fields=[(hostile, "a`b"), ("ok", hostile)], state_schema='sch"ema')
    for dialect in DIALECTS:
        p = planner(dialect, spec)
        for statement in p.statements():
            sql = p.render(statement)
            trees = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
            assert len(trees) == 1, (dialect, statement)
            drops = [n for n in trees[0].walk() if isinstance(n, exp.Drop)]
            assert drops == ([trees[0]] if statement.startswith("drop_") else [])
            names = {i.this for i in trees[0].find_all(exp.Identifier)}
            if reads_model(dialect, statement):
                assert hostile in names
            schemas = {t.db for t in trees[0].find_all(exp.Table) if t.db and not t.catalog}
            # the state schema; BigQuery's scratch dataset
            assert schemas <= {'sch"ema', "dinsync_scratch"}
            # DuckDB's scratch databases (the sync's, the commits'), named with their schema in full
            catalogs = {(t.catalog, t.db) for t in trees[0].find_all(exp.Table) if t.catalog}
            assert catalogs <= {("dinsync_scratch_s", "main"), ("dinsync_commits", "main")}
            if statement.startswith(("create_", "commit_", "park_", "buckets", "prior", "cand", "digest")) \
                    and "anomal" not in statement and statement != "cand_counts":
                assert 'sch"ema' in schemas
    assert snapshot_column(hostile) == snapshot_column(hostile) and snapshot_column(hostile).startswith("f_")


@pytest.mark.parametrize("bad", [
    dict(sync="a-b"), dict(sync="a b"), dict(sync=""), dict(sync="x;drop"),
    dict(key_column="e\x00mail"), dict(state_schema="s\x00"), dict(fields=[("a\x00", "a")]),
    dict(fields=[("a", "b\x00")]), dict(fields=[]), dict(fields=[("a", "x"), ("b", "x")]),
    dict(key_normalization="upper"), dict(key_column="__dinsync_model__"),
])
def test_bad_specs_are_rejected(bad):
    args = dict(sync="s", model_sql="SELECT 1", key_column="k", key_normalization="none", fields=[("a", "a")])
    with pytest.raises(SqlError):
        DiffSpec(**{**args, **bad})


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("sql", [
    "SELECT 1; SELECT 2",
    "CREATE TABLE x AS SELECT 1",
    "DROP TABLE people",
    "INSERT INTO people VALUES (1)",
    "DELETE FROM people",
    "UPDATE people SET a = 1",
    "SELECT 1; DROP TABLE people",
    "",
    "  ;  ",
    "-- nothing but a comment",
])
def test_bad_models_are_rejected(dialect, sql):
    with pytest.raises(ModelSqlError):
        check_model_sql(sql, dialect)
    with pytest.raises(ModelSqlError):
        planner(dialect, DiffSpec(sync="s", model_sql=sql, key_column="k", key_normalization="none", fields=[("a", "a")]))


def test_data_modifying_cte_is_rejected():
    with pytest.raises(ModelSqlError):
        check_model_sql("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "postgres")


@pytest.mark.parametrize("dialect,sql,kept", [
    ("duckdb", "SELECT * FROM people;", "SELECT * FROM people"),
    ("duckdb", "SELECT * FROM people; -- trailing", "SELECT * FROM people"),
    ("duckdb", "FROM people SELECT * EXCLUDE (secret)", "FROM people SELECT * EXCLUDE (secret)"),
    ("duckdb", "WITH a AS (SELECT 1 AS k) SELECT * FROM a", "WITH a AS (SELECT 1 AS k) SELECT * FROM a"),
    ("postgres", "SELECT 'a;b' AS k -- x;\n", "SELECT 'a;b' AS k -- x;"),
    ("snowflake", "SELECT * FROM t QUALIFY ROW_NUMBER() OVER (PARTITION BY k ORDER BY u DESC) = 1", None),
    ("bigquery", "SELECT * FROM `proj.ds.people` WHERE x IS NOT NULL", None),
])
def test_good_models_are_embedded_as_written(dialect, sql, kept):
    assert check_model_sql(sql, dialect) == (kept if kept is not None else sql)
    spec = DiffSpec(sync="s", model_sql=sql, key_column="k", key_normalization="none", fields=[("a", "a")])
    rendered = planner(dialect, spec).render("cur")
    assert "(\n" + (kept if kept is not None else sql) + "\n)" in rendered


@pytest.mark.parametrize("statement", sorted(planner("redshift").statements()))
def test_redshift_select_lists_compare_no_boolean_with_is(statement):
    """Redshift: "You can use an IS comparison to check a Boolean value only as a predicate in the
    WHERE clause. You can't use the IS comparison with a Boolean value in the SELECT list"
    (https://docs.aws.amazon.com/redshift/latest/dg/r_Boolean_type.html). The tests run Redshift's
    SQL on PostgreSQL, which takes it: a column made of a boolean literal (cand's snapshot-side
    marker was `TRUE AS _here`, read as `_here IS NOT NULL` in the select list) must not be."""
    tree = sqlglot.parse_one(planner("redshift").render(statement), read="redshift")
    booleans = {a.alias for a in tree.find_all(exp.Alias) if isinstance(a.this, exp.Boolean)}
    for select in tree.find_all(exp.Select):
        for projection in select.expressions:
            for test in projection.find_all(exp.Is):
                column = test.this
                assert not (isinstance(column, exp.Column) and column.name in booleans), \
                    f"{statement}: {projection.sql(dialect='redshift')}"
