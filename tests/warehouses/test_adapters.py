"""The warehouse interface, adapter by adapter: bind parameters, streaming, bulk writes,
transactions, identifiers, translated errors, lazy drivers."""
from __future__ import annotations

import datetime as dt
import decimal
import sys
import threading

import duckdb
import pyarrow as pa
import pytest

from dinsync.warehouses import (
    WarehouseAuthError,
    WarehouseConflict,
    WarehouseDriverMissing,
    WarehouseObjectMissing,
    WarehouseSettingsError,
    WarehouseSqlError,
    WarehouseUnavailable,
    capabilities_of,
    connect,
)
from dinsync.errors import DinsyncError
from dinsync.warehouses.base import rebatch
from dinsync.warehouses.pgfamily import CursorStream, MultiRowInsertWrite
from tests.warehouses.support import PG_DSN, WAREHOUSE_KINDS, WarehouseUnderTest, require_postgres


@pytest.fixture(params=WAREHOUSE_KINDS)
def w(request, tmp_path):
    target = WarehouseUnderTest(request.param, tmp_path)
    target.wh.model_schema = target.schema
    yield target.wh
    target.close()


def test_bind_parameters_of_every_type(w):
    w.execute("CREATE TABLE p (s VARCHAR, i BIGINT, f DOUBLE PRECISION, b BOOLEAN, t TIMESTAMP)")
    when = dt.datetime(2026, 3, 4, 5, 6, 7, 890000)
    hostile = "it's \"quoted\"; DROP TABLE p; -- %s %(x)s :x \\"
    w.execute("INSERT INTO p (s, i, f, b, t) VALUES (:s, :i, :f, :b, :t)",
              {"s": hostile, "i": 2**62, "f": 1.25, "b": True, "t": when})
    w.execute("INSERT INTO p (s, i, f, b, t) VALUES (:s, :i, :f, :b, :t)", {"s": None, "i": None, "f": None, "b": None,
                                                                           "t": None})
    rows = w.query("SELECT * FROM p WHERE s = :s OR i IS NULL ORDER BY i", {"s": hostile}).to_pylist()
    assert rows == [{"s": hostile, "i": 2**62, "f": 1.25, "b": True, "t": when},
                    {"s": None, "i": None, "f": None, "b": None, "t": None}]
    assert w.scalar("SELECT COUNT(*) FROM p WHERE s = :s", {"s": "nothing"}) == 0
    assert w.execute("UPDATE p SET i = 1 WHERE i IS NULL") in (1, None)
    assert w.query("SELECT 5 % 2 AS m").to_pylist() == [{"m": 1}]  # a literal % without parameters


def test_stream_is_bounded_batches_of_every_row(w):
    w.execute("CREATE TABLE big AS SELECT CAST(i AS BIGINT) AS i, CAST(i AS VARCHAR) || 'x' AS s "
              "FROM generate_series(1, 25000) AS g(i)")
    sizes = []
    total = 0
    for batch in w.stream("SELECT i, s FROM big ORDER BY i", batch_rows=4000):
        sizes.append(batch.num_rows)
        assert batch.schema.names == ["i", "s"]
        total += pa.compute.sum(batch.column("i")).as_py()
    assert max(sizes) <= 4000 and sum(sizes) == 25000 and len(sizes) >= 7
    assert total == 25000 * 25001 // 2


def test_other_statements_run_while_a_stream_is_open(w):
    w.execute("CREATE TABLE src AS SELECT CAST(i AS BIGINT) AS i FROM generate_series(1, 3000) AS g(i)")
    w.execute("CREATE TABLE dst (i BIGINT)")
    seen = 0
    for batch in w.stream("SELECT i FROM src", batch_rows=500):
        seen += batch.num_rows
        w.write_arrow(w.model_schema, "dst", pa.table({"i": batch.column("i")}))  # commit-like work meanwhile
        errors = []
        t = threading.Thread(target=lambda: errors.append(w.scalar("SELECT COUNT(*) FROM dst")))
        t.start()
        t.join()
        assert errors[0] == seen
    assert w.scalar("SELECT COUNT(*) FROM dst") == 3000


def test_write_arrow_append_by_name_and_replace(w):
    w.execute("CREATE TABLE r (a VARCHAR, b BIGINT, c TIMESTAMP)")
    data = pa.table({"c": pa.array([dt.datetime(2026, 1, 1), None], pa.timestamp("us")), "b": [1, None],
                     "a": ["x,\"y\"\nz", ""]})
    w.write_arrow(w.model_schema, "r", data)
    w.write_arrow(w.model_schema, "r", data.slice(0, 0))  # nothing to write
    assert w.query("SELECT a, b, c FROM r ORDER BY b").to_pylist() == [
        {"a": "x,\"y\"\nz", "b": 1, "c": dt.datetime(2026, 1, 1)}, {"a": "", "b": None, "c": None}]
    long = "é" * 3000  # over Redshift's 256-byte bare VARCHAR
    table = pa.table({"k": pa.array(["a", long]).dictionary_encode(), "n": pa.array([1.5, None]),
                      "flag": [True, False], "d": pa.array([decimal.Decimal("1.25"), None], pa.decimal128(10, 2))})
    w.write_arrow(w.model_schema, "fresh", table, mode="replace")
    w.write_arrow(w.model_schema, "fresh", table.slice(0, 1), mode="replace")  # re-created, not appended
    assert w.query("SELECT k, n, flag, d FROM fresh").to_pylist() == [
        {"k": "a", "n": 1.5, "flag": True, "d": decimal.Decimal("1.25")}]
    w.write_arrow(w.model_schema, "fresh", table.slice(1, 1))
    assert w.scalar("SELECT k FROM fresh WHERE n IS NULL") == long
    with pytest.raises(ValueError):
        w.write_arrow(w.model_schema, "fresh", table, mode="upsert")


def test_columns_and_table_columns(w):
    w.execute("CREATE TABLE c (id INTEGER, email VARCHAR)")
    cols = w.columns("SELECT id, email, 1 AS one FROM c")
    assert [n for n, _ in cols] == ["id", "email", "one"]
    assert w.table_columns(w.model_schema, "c") == ["id", "email"]
    assert w.table_columns(w.model_schema, "nope") is None
    # several tables at once (one catalog query where the adapter has one): those that exist only
    w.execute("CREATE TABLE c2 (k VARCHAR)")
    assert w.tables_columns(w.model_schema, ["nope", "c2", "c"]) == {"c2": ["k"], "c": ["id", "email"]}
    assert w.tables_columns(w.model_schema, []) == {}



def test_columns_are_named_as_the_model_returns_them_also_twice(w):
    # (DuckDB renamed a second `id` to `id_1` when reading the model as a subquery: the sync then
    # read whichever `id` came first, with no word of the other)
    if w.capabilities.dialect == "snowflake":
        pytest.skip("fakesnow runs the statement on DuckDB, which renames the second id")
    w.execute("CREATE TABLE c2 (id INTEGER, email VARCHAR)")
    cols = w.columns("SELECT c2.id, c2.email AS id FROM c2")
    assert [n.lower() for n, _ in cols] == ["id", "id"]


def test_columns_never_run_a_statement_that_writes(w):
    w.execute("CREATE TABLE c3 (id INTEGER)")
    with pytest.raises(Exception):
        w.columns("WITH x AS (SELECT 1 AS id) INSERT INTO c3 SELECT id FROM x")
    assert w.scalar("SELECT COUNT(*) FROM c3") == 0

def test_transactions_roll_back_and_belong_to_their_thread(w):
    w.execute("CREATE TABLE tx (i INTEGER)")
    with pytest.raises(RuntimeError):
        with w.transaction():
            w.execute("INSERT INTO tx VALUES (1)")
            raise RuntimeError("boom")
    assert w.scalar("SELECT COUNT(*) FROM tx") == 0
    with w.transaction():
        w.execute("INSERT INTO tx VALUES (2)")
    assert w.scalar("SELECT COUNT(*) FROM tx") == 1


def test_errors_say_what_failed(w):
    with pytest.raises(WarehouseObjectMissing) as info:
        w.query("SELECT * FROM no_such_table")
    # (Snowflake names the table as it folds unquoted names: NO_SUCH_TABLE)
    assert not info.value.retryable and "no_such_table" in info.value.message.lower() and info.value.hint
    with pytest.raises(WarehouseSqlError):
        w.execute("SELEC nonsense")
    w.execute("SELECT 1")  # the session is still usable


def test_identifiers_are_quoted_and_length_checked(w):
    name = 'we"ird name'
    w.execute(f"CREATE TABLE {w.quote(name)} (x INTEGER)")
    assert w.table_columns(w.model_schema, name) == ["x"]
    limit = w.capabilities.max_identifier_length
    if limit:
        with pytest.raises(WarehouseSqlError, match="longer than"):
            w.quote("t" * (limit + 1))


@pytest.mark.parametrize("kind", ["postgres", "postgres-cursor", "redshift"])
def test_numeric_and_json_stream_as_plain_arrow_types(tmp_path, monkeypatch, kind):
    """A numeric streams as its text (`numeric_text`), in every batch whatever its values: a NaN
    (before: NULL, then sent as null) and digits beyond decimal128 / float64 (before: float64,
    sent rounded) reach the mapping as PostgreSQL wrote them."""
    from dinsync.warehouses.numeric_text import NUMERIC_TEXT

    if kind == "postgres-cursor":
        monkeypatch.setitem(sys.modules, "adbc_driver_postgresql", None)
        monkeypatch.setitem(sys.modules, "adbc_driver_postgresql.dbapi", None)
    t = WarehouseUnderTest(kind.removesuffix("-cursor"), tmp_path)
    try:
        sql = ("SELECT 1.5::numeric(10,2) AS d, 2.5::numeric AS n, 'NaN'::numeric(10,2) AS nan, "
               "'{\"a\": 1}'::jsonb AS j, now() AS tz, 12345678901234567.89::numeric AS wide, "
               "1234567890123456789012345::numeric(50,0) AS p50, 'Infinity'::numeric AS inf, "
               "NULL::numeric AS nul")
        batch = next(iter(t.wh.stream(sql)))
        for name in ("d", "n", "nan", "wide", "p50", "inf", "nul"):
            assert batch.schema.field(name).type == NUMERIC_TEXT, name
        assert batch.schema.field("j").type == pa.string()
        [row] = batch.to_pylist()
        assert {k: v for k, v in row.items() if k not in ("j", "tz")} == {
            "d": "1.50", "n": "2.5", "nan": "NaN", "wide": "12345678901234567.89",
            "p50": "1234567890123456789012345", "inf": "Infinity", "nul": None}
        assert batch.schema.field("tz").type == pa.timestamp("us", tz="UTC")
        # Small queries (the plan's samples): exact Arrow decimals; what none holds, as its text.
        [row] = t.wh.query(sql).to_pylist()
        assert (row["d"], row["nan"], row["wide"], row["inf"]) == (
            decimal.Decimal("1.50"), "NaN", decimal.Decimal("12345678901234567.89"), "Infinity")
    finally:
        t.close()


@pytest.mark.parametrize("adbc", [True, False], ids=["adbc", "cursor"])
def test_types_without_an_arrow_type_stream_as_their_text_form(tmp_path, monkeypatch, adbc):
    """ADBC delivers uuid as 16 raw bytes and inet, cidr, macaddr, timetz, xml, ... as PostgreSQL's
    binary wire format, money as cents (read as its amount: a numeric, as text); psycopg (the cursor path) as Python objects Arrow cannot hold:
    what reaches a destination is each value's text form, also an array's elements (an inet[]'s
    hosts without a /32, as a single inet's: ADBC's elements were cast to text, which adds it)."""
    if not adbc:
        monkeypatch.setitem(sys.modules, "adbc_driver_postgresql", None)
        monkeypatch.setitem(sys.modules, "adbc_driver_postgresql.dbapi", None)
    t = WarehouseUnderTest("postgres", tmp_path)
    try:
        sql = ("SELECT 'e8a2996c-0000-4000-8000-000000000001'::uuid AS u, '10.0.0.1/24'::inet AS ip, "
               "'::1'::inet AS ip6, '10.0.0.0/8'::cidr AS net, '08:00:2b:01:02:03'::macaddr AS mac, "
               "'12:00:00+02'::timetz AS tz, '<a/>'::xml AS x, 12.34::money AS m, "
               "ARRAY['e8a2996c-0000-4000-8000-000000000002'::uuid, NULL] AS us, 7 AS \"Mixed \"\"Name\", "
               "NULL::uuid AS nu, ARRAY[1, 2] AS ints, "
               "ARRAY['10.0.0.1/32', '::1/128', NULL, '10.0.0.0/8']::inet[] AS ips WHERE 1 = :one;")
        [batch] = list(t.wh.stream(sql, params={"one": 1}))
        [row] = batch.to_pylist()
        assert row == {"u": "e8a2996c-0000-4000-8000-000000000001", "ip": "10.0.0.1/24", "ip6": "::1",
                       "net": "10.0.0.0/8", "mac": "08:00:2b:01:02:03", "tz": "12:00:00+02", "x": "<a/>",
                       "m": "12.34" if adbc else "$12.34", "us": ["e8a2996c-0000-4000-8000-000000000002", None], 'Mixed "Name': 7,
                       "nu": None, "ints": [1, 2], "ips": ["10.0.0.1", "::1", None, "10.0.0.0/8"]}
    finally:
        t.close()


@pytest.mark.parametrize("adbc", [True, False], ids=["adbc", "cursor"])
def test_oids_above_two_billion_stream_as_their_value(tmp_path, monkeypatch, adbc):
    """An oid is an unsigned 32-bit number: ADBC read it as int32, so 3000000000::oid went to the
    platform as -1294967296 (also in an oid[]); the cursor path reads it as it is."""
    if not adbc:
        monkeypatch.setitem(sys.modules, "adbc_driver_postgresql", None)
        monkeypatch.setitem(sys.modules, "adbc_driver_postgresql.dbapi", None)
    t = WarehouseUnderTest("postgres", tmp_path)
    try:
        [batch] = list(t.wh.stream("SELECT 3000000000::oid AS o, 7::oid AS small, NULL::oid AS none, "
                                   "ARRAY[4294967295, NULL, 1]::oid[] AS os"))
        assert batch.to_pylist() == [{"o": 3000000000, "small": 7, "none": None, "os": [4294967295, None, 1]}]
    finally:
        t.close()


@pytest.mark.parametrize("kind", ["postgres", "redshift"])
def test_small_queries_read_json_uuid_and_interval_as_their_text_form(tmp_path, kind):
    """`query` (the plan's sample rows, `dinsync plan --samples`) read jsonb as Python dicts and
    lists and uuid as UUID objects: a jsonb column whose arrays mix types ([1, "two"]) made Arrow
    fail and the plan end with "unexpected error: ArrowInvalid". Read as text, as streams do."""
    t = WarehouseUnderTest(kind, tmp_path)
    try:
        table = t.wh.query(
            "SELECT '{\"a\": [1, \"two\", null]}'::jsonb AS j, '[1, \"x\"]'::json AS js, "
            "'e8a2996c-0000-4000-8000-000000000001'::uuid AS u, '1 day'::interval AS i, 7 AS n")
        assert table.to_pylist() == [{"j": '{"a": [1, "two", null]}', "js": '[1, "x"]',
                                      "u": "e8a2996c-0000-4000-8000-000000000001", "i": "1 day", "n": 7}]
    finally:
        t.close()


def test_connection_errors(tmp_path):
    require_postgres()
    with pytest.raises(WarehouseUnavailable) as info:
        connect("postgres", host="127.0.0.1", port=1, user="u", password="sekret-pw-123", database="d")
    assert info.value.retryable and "sekret-pw-123" not in str(info.value) + (info.value.hint or "")
    with pytest.raises(WarehouseObjectMissing, match="does not exist"):
        connect("postgres", dsn=PG_DSN, database="no_such_database_here")
    with pytest.raises(WarehouseAuthError):
        connect("postgres", dsn=PG_DSN, user="no_such_role_here")


@pytest.mark.parametrize("dsn", ["postgresql://root:sekret%zz-pw-123@127.0.0.1:5432/test",
                                 "postgresql://root:sekret-pw-123@127.0.0.1:5432/test?sslmode=bogus",
                                 "host=127.0.0.1 dbname=test password=sekret-pw-123 port"])
def test_a_malformed_dsn_is_reported_without_its_password(dsn):
    """libpq's message about a malformed DSN quotes the token it stopped at, which may be the
    password (a URI whose password has a stray %)."""
    with pytest.raises(WarehouseSettingsError) as info:
        connect("postgres", dsn=dsn)
    assert "sekret" not in str(info.value) + (info.value.hint or "")
    assert "connection info" in str(info.value) or "percent-encoded" in str(info.value) or "sslmode" in str(info.value)


@pytest.mark.parametrize("dsn", ["postgresql://root@127.0.0.1:54x32/test",
                                 "postgresql://root@127.0.0.1:5432/test?sslmode=bogus",
                                 "postgresql://root@127.0.0.1:5432/test?nosuchoption=1",
                                 "host=127.0.0.1 port=5432 dbname",
                                 "host=127.0.0.1 nosuchoption=1"])
def test_malformed_connection_settings_are_a_configuration_error(dsn):
    """A DSN libpq cannot parse reached nothing, and running again cannot help: it was reported as
    a warehouse that "could not be reached or timed out; run again later" (exit 1, retryable)."""
    from dinsync.errors import ExitCode

    with pytest.raises(WarehouseSettingsError) as info:
        connect("postgres", dsn=dsn)
    assert info.value.exit_code == ExitCode.CONFIG_ERROR and not info.value.retryable
    assert "connection settings" in info.value.hint


@pytest.mark.parametrize("settings, message", [
    ({"work_mem": "lots"}, 'invalid value for parameter "work_mem"'),
    ({"wrok_mem": "64MB"}, 'unrecognized configuration parameter "wrok_mem"')])
def test_a_server_setting_the_server_refuses_is_a_configuration_error(settings, message):
    """`settings: {wrok_mem: 64MB}` (a typo) or a value the server cannot read: PostgreSQL refuses
    the connection (FATAL), and it was reported as a warehouse that "could not be reached or timed
    out; run again later" (exit 1): every next run is refused the same way until the file changes."""
    from dinsync.errors import ExitCode

    require_postgres()
    with pytest.raises(WarehouseSettingsError) as info:
        connect("postgres", dsn=PG_DSN, settings=settings)
    assert info.value.exit_code == ExitCode.CONFIG_ERROR and not info.value.retryable
    assert message in str(info.value) and "warehouse.settings" in info.value.hint, info.value.hint


@pytest.mark.parametrize("dsn", ["host=127.0.0.1 dbname=test user=root password:sekret-pw-123",
                                 "postgresql://root@127.0.0.1:sekret-pw-123/test",
                                 "postgresql://root@[::1]:sekret-pw-123/test"])
def test_a_mistyped_password_in_a_dsn_is_not_reported(dsn):
    """libpq quotes the token it cannot read: `password:<it>` written for `password=<it>`
    (`missing "=" after "password:<it>"`), or a URI's password where its port goes, the user's `:`
    forgotten (`invalid integer value "<it>" for connection option "port"`)."""
    with pytest.raises(WarehouseSettingsError) as info:
        connect("postgres", dsn=dsn)
    text = str(info.value) + (info.value.hint or "")
    assert "sekret" not in text and "pw-123" not in text, text
    assert "connection info" in text or "port" in text, text


@pytest.mark.parametrize("dsn", ["postgresql://root:sekret@pw-123x@127.0.0.1:5432/test",
                                 "postgresql://root:sekret@pw@123x@127.0.0.1:5432/test",
                                 "postgresql://root:sekret:pw-123x@no-such-host.invalid:5432/test"])
def test_a_password_with_an_unescaped_delimiter_is_not_reported(dsn):
    """libpq ends a URI's password at its first `@`: the rest became the host it failed to
    resolve, quoted in the error ("failed to resolve host 'pw-123x@127.0.0.1'")."""
    with pytest.raises(WarehouseUnavailable) as info:
        connect("postgres", dsn=dsn)
    text = str(info.value) + (info.value.hint or "")
    assert "pw-123x" not in text and "123x" not in text and "resolve host" in text


@pytest.mark.parametrize("password", ["my  sekret-pw-123", "my sekret  pw-123"])
def test_a_password_with_two_spaces_is_not_reported(password):
    """libpq quotes a URI's password holding spaces ("unexpected spaces found in ..."); the message's
    spaces were squeezed before the password was masked, which then matched no more."""
    with pytest.raises(WarehouseSettingsError) as info:
        connect("postgres", dsn=f"postgresql://root:{password}@127.0.0.1:5432/test")
    text = str(info.value)
    assert "sekret" not in text and "unexpected spaces" in text


@pytest.mark.parametrize("dsn", ["host=127.0.0.1 dbname=test user=root password=my sekret-pw-123",
                                 "host=127.0.0.1 password=my-pw\nsekret-pw-123 dbname=test user=root",
                                 "password=my sekret pw-123 host=127.0.0.1 dbname=test"])
def test_an_unquoted_password_with_a_space_in_a_dsn_is_not_reported(dsn):
    """libpq ends an unquoted `password=` value at a space (or line break) and quotes the next
    word, which has no `=`: `missing "=" after "<the password's second word>"`."""
    with pytest.raises(WarehouseSettingsError) as info:
        connect("postgres", dsn=dsn)
    text = str(info.value) + (info.value.hint or "")
    assert "sekret" not in text and "pw-123" not in text, text
    assert "connection info" in text, text


def test_a_missing_driver_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg -> ImportError
    assert capabilities_of("postgres").dialect == "postgres"  # capabilities need no driver
    with pytest.raises(WarehouseDriverMissing) as info:
        connect("postgres", dsn=PG_DSN)
    assert info.value.hint == "pip install 'dinsync[postgres]'"
    with pytest.raises(WarehouseDriverMissing, match="redshift"):
        connect("redshift", dsn=PG_DSN)


def test_without_adbc_postgres_streams_through_a_cursor(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "adbc_driver_postgresql", None)
    monkeypatch.setitem(sys.modules, "adbc_driver_postgresql.dbapi", None)
    t = WarehouseUnderTest("postgres", tmp_path)
    try:
        assert t.wh._adbc is None
        sizes = [b.num_rows for b in t.wh.stream("SELECT i FROM generate_series(1, 1000) AS g(i)", batch_rows=300)]
        assert sizes == [300, 300, 300, 100]
    finally:
        t.close()


def test_redshift_path_writes_with_multi_row_inserts_and_reads_with_a_cursor(tmp_path, monkeypatch):
    from dinsync.warehouses.redshift import RedshiftWarehouse

    assert RedshiftWarehouse.write_arrow is MultiRowInsertWrite.write_arrow
    assert RedshiftWarehouse.stream is CursorStream.stream
    monkeypatch.setattr(RedshiftWarehouse, "insert_rows", 7)
    t = WarehouseUnderTest("redshift", tmp_path)
    try:
        statements = []
        conn = t.wh.conn
        original = conn.cursor

        class Recorder:
            def __init__(self, cur):
                self.cur = cur

            def __enter__(self):
                self.cur.__enter__()
                return self

            def __exit__(self, *exc):
                return self.cur.__exit__(*exc)

            def __getattr__(self, name):
                return getattr(self.cur, name)

            def execute(self, sql, params=None, **kw):
                statements.append(str(sql))
                return self.cur.execute(sql, params, **kw)

        monkeypatch.setattr(conn, "cursor", lambda *a, **k: Recorder(original(*a, **k)))
        t.wh.write_arrow(t.schema, "ins", pa.table({"i": list(range(20)), "s": [str(i) for i in range(20)]}),
                         mode="replace")
        inserts = [s for s in statements if s.startswith("INSERT")]
        assert len(inserts) == 3 and not any("COPY" in s for s in statements)  # 7 + 7 + 6 rows
        assert sorted(r["i"] for r in t.wh.query("SELECT i FROM ins").to_pylist()) == list(range(20))
        assert [b.num_rows for b in t.wh.stream("SELECT i FROM ins ORDER BY i", batch_rows=8)] == [8, 8, 4]
    finally:
        t.close()


def test_rebatch_cuts_and_joins_to_the_requested_size():
    batches = [pa.record_batch({"i": list(range(n))}) for n in (3, 0, 10, 1, 6)]
    assert [b.num_rows for b in rebatch(iter(batches), 4)] == [4, 4, 4, 4, 4]
    assert [b.num_rows for b in rebatch(iter(batches), 100)] == [20]


def test_rebatch_puts_fewer_wide_rows_in_a_batch(monkeypatch):
    """Batches put together from wide rows hold about BATCH_BYTES (here 100 KB), not `batch_rows`
    rows: 10,000 rows of 100 KB made one batch of 1 GB. A single row wider than that is a batch."""
    import dinsync.warehouses.base as base

    monkeypatch.setattr(base, "BATCH_BYTES", 100_000)
    batches = [pa.record_batch({"i": list(range(k, k + n)), "t": ["x" * 10_000] * n})
               for k, n in ((0, 3), (3, 25), (28, 2), (30, 40))]
    out = list(rebatch(iter(batches), 1000))
    assert [i for b in out for i in b.column("i").to_pylist()] == list(range(70))
    assert len(out) >= 7 and max(b.nbytes for b in out) <= 100_000 + 10_100
    huge = [pa.record_batch({"t": ["y" * 300_000, "z"]})]
    assert [b.num_rows for b in rebatch(iter(huge), 1000)] == [1, 1]


@pytest.mark.parametrize("adbc", [True, False], ids=["adbc", "cursor"])
def test_postgres_streams_wide_rows_in_fewer_rows_a_batch(tmp_path, monkeypatch, adbc):
    """Both PostgreSQL paths put `batch_rows` rows in a batch whatever their width (ADBC joined
    its 4 MB batches, the cursor fetched `batch_rows` rows as Python objects): a batch now holds
    about BATCH_BYTES (here 1 MB). Narrow rows still come `batch_rows` at a time."""
    import dinsync.warehouses.base as base

    require_postgres()
    if not adbc:
        monkeypatch.setitem(sys.modules, "adbc_driver_postgresql", None)
        monkeypatch.setitem(sys.modules, "adbc_driver_postgresql.dbapi", None)
    monkeypatch.setattr(base, "BATCH_BYTES", 1 << 20)
    t = WarehouseUnderTest("postgres", tmp_path)
    try:
        assert (t.wh._adbc is not None) is adbc
        narrow = [b.num_rows for b in t.wh.stream("SELECT i FROM generate_series(1, 25000) AS g(i)",
                                                  batch_rows=10_000)]
        assert narrow == [10_000, 10_000, 5_000]
        wide = list(t.wh.stream("SELECT i, repeat('x', 10000) || i AS t FROM generate_series(1, 3000) AS g(i) "
                                "ORDER BY i", batch_rows=10_000))
        assert [i for b in wide for i in b.column("i").to_pylist()] == list(range(1, 3001))
        assert len(wide) >= 25 and max(b.nbytes for b in wide) <= (1 << 20) + 20_000
    finally:
        t.close()


@pytest.mark.parametrize("name, content", [("customers.csv", b"id,email\n1,a@example.com\n"),
                                           ("notes.txt", b"hello world, a longer line\n")])
def test_duckdb_refuses_a_data_file_as_its_database(tmp_path, name, content):
    """DuckDB 2.0 would open it as an in-memory view: the state would vanish with the process."""
    from dinsync.errors import ConfigError

    (tmp_path / name).write_bytes(content)
    with pytest.raises(ConfigError) as info:
        connect("duckdb", path=str(tmp_path / name))
    assert "is not a DuckDB database file" in info.value.issues[0].message
    assert (tmp_path / name).read_bytes() == content
    w = connect("duckdb", path=str(tmp_path / "w.duckdb"))  # created, then opened again
    w.close()
    connect("duckdb", path=str(tmp_path / "w.duckdb")).close()


def test_duckdb_a_second_connection_of_the_process_keeps_the_file_locked_for_others(tmp_path):
    """`serve --parallel` opens a connection per run: the second one read the file's header with a
    file handle of its own, and closing it dropped the process's POSIX lock on the file (fcntl locks
    go with any descriptor of the file closed): a dbt build then opened the file while a run wrote
    to it, and the file was corrupted or one side's writes lost."""
    import subprocess

    path = str(tmp_path / "w.duckdb")
    first = connect("duckdb", path=path)
    try:
        connect("duckdb", path=path).close()
        second = connect("duckdb", path=path)
        second.close()
        other = subprocess.run([sys.executable, "-c", f"import duckdb; duckdb.connect({path!r}).close()"],
                               capture_output=True, text=True)
        assert other.returncode != 0 and "lock" in other.stderr.lower(), other.stderr[-300:]
    finally:
        first.close()


def test_duckdb_refuses_an_empty_file_as_a_configuration_error_with_its_fix(tmp_path):
    """`touch warehouse.duckdb`: DuckDB 2.0 opens no empty file ("not a valid DuckDB database
    file"), and the run failed (exit 1) with "cannot open DuckDB file" and a hint about permissions."""
    from dinsync.errors import ConfigError

    (tmp_path / "warehouse.duckdb").write_bytes(b"")
    with pytest.raises(ConfigError) as info:
        connect("duckdb", path=str(tmp_path / "warehouse.duckdb"))
    [issue] = info.value.issues
    assert issue.message.endswith("warehouse.duckdb is an empty file, not a DuckDB database file")
    assert "duckdb.connect(" in issue.hint
    assert (tmp_path / "warehouse.duckdb").read_bytes() == b""


def test_duckdb_out_of_memory_says_which_limits_to_raise(tmp_path):
    w = connect("duckdb", path=str(tmp_path / "w.duckdb"), threads=2, memory_limit="96MB")
    w.execute("SET memory_limit = '8MB'")  # (below what the adapter ever sets) for a quick failure
    with pytest.raises(WarehouseUnavailable) as info, w.transaction():  # (outside one it would grow)
        w.query("SELECT i, 'x' || i AS s FROM range(3000000) t(i) ORDER BY s DESC LIMIT 1000000")
    assert "Out of Memory" in info.value.message
    assert "could not be reached" not in info.value.hint
    assert "114MB to plan, 82MB while sending" in info.value.hint and "warehouse.memory_limit" in info.value.hint
    w.close()


def test_duckdb_out_of_memory_while_a_stream_is_read_says_which_limits_to_raise(tmp_path):
    """DuckDB's error in the middle of a stream reaches Python as pyarrow's OSError: it is
    translated like the same error of a statement, with the memory hint."""
    w = connect("duckdb", path=str(tmp_path / "w.duckdb"), threads=2, memory_limit="96MB")
    w.attach_scratch("dinsync_scratch_s")  # (in an in-memory scratch database, as a plan is)
    w.execute("CREATE TABLE dinsync_scratch_s.main.t AS SELECT i, hash(i) AS h, 'x' || hash(i + 1) AS s "
              "FROM range(3000000) t(i)")
    batches = w.stream("SELECT * FROM dinsync_scratch_s.main.t", batch_rows=10_000)
    assert next(batches).num_rows == 10_000
    w.execute("SET memory_limit = '2MB'")  # (below what the adapter ever sets) for a quick failure
    with pytest.raises(WarehouseUnavailable) as info:
        for _ in batches:
            pass
    assert "Out of Memory" in info.value.message and "while streaming a query" in info.value.message
    assert "114MB to plan, 82MB while sending" in info.value.hint and "warehouse.memory_limit" in info.value.hint
    w.close()


def test_a_column_type_without_hash_function_gets_a_hint(tmp_path):
    from dinsync.diff import DiffSpec, Planner

    t = WarehouseUnderTest("postgres", tmp_path)
    try:
        t.wh.execute("CREATE TABLE j AS SELECT 'a@x.com' AS email, '{}'::json AS payload")
        # HASH_RECORD_EXTENDED on a type without an extended hash function fails with a hint
        with pytest.raises(WarehouseSqlError) as info:
            t.wh.execute("SELECT HASH_RECORD_EXTENDED(ROW(payload), 0) FROM j")
        assert "json" in info.value.hint and "::text" in info.value.hint
        # the diff's fingerprint hashes such a column as its text (pg_hash_forms.NATIVE_HASH_EXACT), so a
        # plan that skipped `validate`'s refusal of it no longer fails
        p = Planner(t.wh, DiffSpec(sync="j", model_sql="SELECT * FROM j", key_column="email", key_normalization="email",
                                   fields=[("payload", "payload")], state_schema=t.state_schema))
        assert p.plan().added == 1
        p = Planner(t.wh, DiffSpec(sync="j", model_sql="SELECT email, payload::jsonb AS payload FROM j",
                                   key_column="email", key_normalization="email", fields=[("payload", "payload")],
                                   state_schema=t.state_schema))
        assert p.plan().added == 1
    finally:
        t.close()


def test_a_plan_reads_the_model_columns_once(tmp_path, monkeypatch):
    """The planner asks for the columns' hash forms three times in a row (exact, stable, shape):
    each was a `LIMIT 0` run of the model, which a view over many joins makes PostgreSQL plan each
    time. Within `describing()` they read the model once; outside it, every call reads it again (a
    column's type changes without the model's SQL changing)."""
    import psycopg

    from dinsync.diff import DiffSpec, Planner

    t = WarehouseUnderTest("postgres", tmp_path)
    try:
        t.wh.execute("CREATE TABLE d AS SELECT 'a@x.com' AS email, now() AS seen, ARRAY[1, 2] AS tags, 'x' AS name")
        model = "SELECT * FROM d"
        reads = []
        execute = psycopg.Cursor.execute

        def counted(cur, query, *args, **kwargs):
            if isinstance(query, str) and f"\n{model}\n" in query and query.endswith("LIMIT 0"):
                reads.append(query)
            return execute(cur, query, *args, **kwargs)

        monkeypatch.setattr(psycopg.Cursor, "execute", counted)
        p = Planner(t.wh, DiffSpec(sync="d", model_sql=model, key_column="email", key_normalization="email",
                                   fields=[("seen", "seen"), ("tags", "tags"), ("name", "name")],
                                   state_schema=t.state_schema))
        assert (set(p.stable_forms), set(p.shape_forms)) == ({"seen"}, {"tags"})
        assert len(reads) == 1, reads
        t.wh.execute("ALTER TABLE d ALTER COLUMN seen TYPE timestamp")  # read again outside a plan
        assert t.wh.stable_hash_forms(model, ["seen"]) == {} and len(reads) == 2
        assert p.plan().added == 1
    finally:
        t.close()


def test_session_settings(tmp_path):
    require_postgres()
    with connect("postgres", dsn=PG_DSN, settings={"work_mem": "48MB", "statement_timeout": "5min"},
                 search_path=["a b", "public"]) as wh:
        assert wh.scalar("SELECT current_setting('work_mem')") == "48MB"
        assert wh.scalar("SELECT current_setting('statement_timeout')") == "5min"
        assert wh.scalar("SELECT current_setting('parallel_tuple_cost')") == "0.01"  # dinsync's default
        assert wh.scalar("SELECT current_setting('jit')") == "off"  # see SESSION_SETTINGS
        assert wh.scalar("SELECT current_setting('search_path')") == '"a b","public"'
        batch = next(iter(wh.stream("SELECT current_setting('work_mem') AS w, current_setting('jit') AS j")))
        assert batch.to_pylist() == [{"w": "48MB", "j": "off"}]  # the ADBC session too
    with connect("postgres", dsn=PG_DSN, settings={"jit": "on"}) as wh:  # the project's settings win
        assert wh.scalar("SELECT current_setting('jit')") == "on"


def test_dates_are_read_whatever_the_datestyle_setting(tmp_path):
    """psycopg parses timestamptz text in the ISO DateStyle only: with `settings: {datestyle: German}`
    (or a role's default), reading one failed (NotImplementedError, `dinsync plan`'s samples and
    cursor streams). dinsync's sessions write dates as ISO, keeping a day/month order given."""
    require_postgres()
    sql = "SELECT timestamptz '2020-06-01 12:00:00+00' AS t, date '2020-06-02' AS d"
    for datestyle, order in (("German", "DMY"), ("DMY", "DMY"), ("SQL", "MDY")):
        with connect("postgres", dsn=PG_DSN, settings={"datestyle": datestyle}) as wh:
            assert wh.query(sql).column("d").to_pylist() == [dt.date(2020, 6, 2)]
            assert wh.scalar("SELECT current_setting('datestyle')").startswith("ISO")
            if datestyle == "DMY":
                assert wh.scalar("SELECT '01/02/2020'::date::text") == "2020-02-01"


def test_floats_text_form_tells_every_double_apart_whatever_extra_float_digits(monkeypatch):
    """The diff hashes each value's text form: under `extra_float_digits = 0` (a role's or database's
    default, emulated by PGOPTIONS, or a `settings:` entry) PostgreSQL writes a float8 with 15
    significant digits, so 1.0 -> 1.0000000000000002 (1 ulp) or 0.1234567890123456 -> ...57 was no
    change and the platform kept the old value for good. dinsync's sessions write floats exactly."""
    require_postgres()
    sql = "SELECT (1.0000000000000002::float8)::text || ' ' || (0.1::real)::text"
    monkeypatch.setenv("PGOPTIONS", "-c extra_float_digits=0")
    with connect("postgres", dsn=PG_DSN) as wh:
        assert wh.scalar(sql) == "1.0000000000000002 0.1"
    monkeypatch.delenv("PGOPTIONS")
    with connect("postgres", dsn=PG_DSN, settings={"extra_float_digits": "0"}) as wh:
        assert wh.scalar(sql) == "1.0000000000000002 0.1"
    monkeypatch.setenv("PGOPTIONS", "-c extra_float_digits=0")  # Redshift's default is 0
    with connect("redshift", dsn=PG_DSN) as wh:
        assert wh.scalar(sql) == "1.0000000000000002 0.1"


def test_redshift_reads_dates_whatever_the_datestyle_default(monkeypatch):
    """Redshift has no `settings:`, but a user's or database's default DateStyle (`ALTER USER ..
    SET datestyle TO 'SQL, DMY'`, emulated here by PGOPTIONS) made every read of a timestamptz
    through its cursor stream fail (psycopg parses ISO text only). Its sessions set ISO."""
    require_postgres()
    monkeypatch.setenv("PGOPTIONS", "-c datestyle=German,DMY")
    sql = "SELECT timestamptz '2020-06-01 12:00:00+00' AS t, date '2020-06-02' AS d"
    with connect("redshift", dsn=PG_DSN) as wh:
        batch = next(iter(wh.stream(sql)))
        assert batch.column("d").to_pylist() == [dt.date(2020, 6, 2)]
        assert batch.column("t").to_pylist()[0] == dt.datetime(2020, 6, 1, 12, tzinfo=dt.timezone.utc)
        assert wh.query(sql).column("d").to_pylist() == [dt.date(2020, 6, 2)]
        assert wh.scalar("SELECT '01/02/2020'::date::text") == "2020-02-01"  # its day/month order kept


def test_a_mapped_column_postgresql_cannot_hash_is_refused_by_name(wh_postgres, tmp_path):
    """json, money, xml, bit, geometric... have no extended hash function, which the diff's row
    fingerprint needs: `dinsync validate` names each such mapped column and the cast that fixes
    it (before, the check passed and the sync's plan failed with PostgreSQL's message, naming no
    column); a column of another type, and a cast one, pass."""
    from dinsync.errors import ExitCode
    from tests.warehouses.support import one_sync_project

    cli = one_sync_project(tmp_path / "project", wh_postgres.warehouse_yaml(), "http://127.0.0.1:9",
                           {"payload": "payload", "balance": "balance", "Spot": "spot", "plan": "plan"},
                           wh_postgres.env)

    def validate(select: str):
        return cli("validate --offline", select)

    refused = validate("""SELECT 'a@x.com' AS email, '{"a": 1}'::json AS payload, 12.34::money AS balance,
                          point(1, 2) AS "Spot", 'pro' AS plan""")
    out = " ".join((refused.stdout + refused.stderr).split())
    assert refused.returncode == ExitCode.CONFIG_ERROR, out
    assert "column 'payload' of model people is of type json" in out and "payload::jsonb AS payload" in out, out
    assert "column 'balance' of model people is of type money" in out and "balance::numeric AS balance" in out
    assert "column 'Spot' of model people is of type point" in out and '"Spot"::text AS "Spot"' in out
    assert "'plan'" not in out  # a column the diff can hash is not named
    done = validate("""SELECT 'a@x.com' AS email, '{"a": 1}'::jsonb AS payload, 12.34::numeric AS balance,
                       point(1, 2)::text AS "Spot", 'pro' AS plan""")
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_mapped_anonymous_record_is_refused_by_name(wh_postgres, tmp_path):
    """An anonymous record (`ROW(...)`, `(a, b)`, a subquery's row) is a pseudo-type no table column
    holds: mapped, the plan failed on every run with "column "v0" has pseudo-type record" (exit 1,
    naming no column of the model). `validate`, `plan` and `sync` name the column and the casts; a
    record as the match column (read as its text) and a cast one pass."""
    from dinsync.errors import ExitCode
    from tests.warehouses.support import one_sync_project

    cli = one_sync_project(tmp_path / "project", wh_postgres.warehouse_yaml(), "http://127.0.0.1:9",
                           {"pair": "pair", "Pairs": "pairs"}, wh_postgres.env)
    select = """SELECT 'a@x.com' AS email, ROW(1, 'x') AS pair, ARRAY[(2, 'y')] AS "Pairs" """
    for command in ("validate", "plan"):
        refused = cli(command, select)
        out = " ".join((refused.stdout + refused.stderr).split())
        assert refused.returncode == ExitCode.CONFIG_ERROR, out
        assert "column 'pair' of model people is of type record" in out and "to_jsonb(pair) AS pair" in out, out
        assert "column 'Pairs' of model people is of type record" in out and '"Pairs"::text AS "Pairs"' in out, out
        assert "pseudo-type" not in out
    done = cli("validate --offline", """SELECT ROW(1, 'x') AS email, to_jsonb(ROW(1, 'x')) AS pair,
                              ARRAY[(2, 'y')]::text AS "Pairs" """)
    assert done.returncode == 0, done.stdout + done.stderr


def test_postgres_connects_without_a_session_setting_the_server_does_not_know(monkeypatch):
    """client_connection_check_interval exists since PostgreSQL 14: an older server refuses the
    whole connection for an unknown setting in `options`. Such a setting is dropped and the
    connection made again; one the project's `settings:` asks for is not."""
    import dinsync.warehouses.postgres as postgres

    require_postgres()
    monkeypatch.setattr(postgres, "SESSION_SETTINGS", {**postgres.SESSION_SETTINGS, "dinsync_no_such_setting": "1"})
    monkeypatch.setattr(postgres, "OPTIONAL_SETTINGS", ("dinsync_no_such_setting",))
    wh = connect("postgres", dsn=PG_DSN)
    try:
        assert wh.scalar("SELECT 1") == 1
        assert wh.scalar("SHOW client_connection_check_interval") == "1s"  # the others are kept
        assert "dinsync_no_such_setting" not in wh.settings.params["options"]
    finally:
        wh.close()
    with pytest.raises(DinsyncError, match="dinsync_no_such_setting"):
        connect("postgres", dsn=PG_DSN, settings={"dinsync_no_such_setting": "1"})


@pytest.mark.parametrize("exc, expected, hint", [
    # DuckDB (2.0) reports a COMMIT that ran out of its pool as a transaction error
    (duckdb.TransactionException("TransactionContext Error: Failed to commit: could not allocate block of size "
                                 "256.0 KiB (33.1 MiB/33.3 MiB used)"), WarehouseUnavailable, "memory_limit"),
    (duckdb.TransactionException("TransactionContext Error: Failed to commit: failed to pin block of size "
                                 "256.0 KiB (33.2 MiB/33.3 MiB used)"), WarehouseUnavailable, "memory_limit"),
    (duckdb.OutOfMemoryException("Out of Memory Error: could not allocate block"), WarehouseUnavailable, "memory_limit"),
    (duckdb.TransactionException("TransactionContext Error: Conflict on tuple deletion!"), WarehouseConflict,
     "another transaction"),
])
def test_duckdb_errors_out_of_memory_are_not_conflicts(tmp_path, exc, expected, hint):
    w = connect("duckdb", path=str(tmp_path / "w.duckdb"))
    try:
        err = w.translate(exc, "committing")
        assert isinstance(err, expected)
        assert hint in (err.hint or "")
    finally:
        w.close()


def test_duckdb_streams_wide_rows_in_fewer_rows_a_batch(tmp_path, monkeypatch):
    """A batch of `batch_rows` wide rows was as large as the rows made it (10,000 rows of 100 KB:
    1 GB, held in about three copies while it was sent): the stream's first rows say how wide they
    are, and a batch holds about BATCH_BYTES (here 1 MB). Narrow rows come `batch_rows` at a time."""
    import dinsync.warehouses.base as base

    monkeypatch.setattr(base, "BATCH_BYTES", 1 << 20)
    w = connect("duckdb", path=str(tmp_path / "w.duckdb"))
    try:
        narrow = [b.num_rows for b in w.stream("SELECT i FROM range(30000) AS t(i) -- a trailing comment",
                                               batch_rows=10_000)]
        assert narrow == [10_000, 10_000, 10_000]
        wide = list(w.stream("SELECT i, repeat('x', 10000) || i AS t FROM range(3000) AS t(i)", batch_rows=10_000))
        assert sorted(i for b in wide for i in b.column("i").to_pylist()) == list(range(3000))
        assert len(wide) >= 25 and max(b.nbytes for b in wide) <= (1 << 20) + 20_000
    finally:
        w.close()


def test_duckdb_bounds_batches_by_bytes_where_wide_rows_come_after_narrow_ones(tmp_path, monkeypatch):
    """The stream's first 100 rows said how wide every batch could be: 300 rows of 100 KB after 3,000
    narrow ones (a model sorted so) came 10,000 rows a batch (a 5,000-row first sync whose last 500
    rows held 1 MB values peaked at 2.9 GB of RSS). Where DuckDB's statistics bound every row's
    width (a table's columns: the plan), no batch holds much more than BATCH_BYTES (here 1 MB);
    narrow rows still come `batch_rows` at a time."""
    import dinsync.warehouses.base as base

    monkeypatch.setattr(base, "BATCH_BYTES", 1 << 20)
    w = connect("duckdb", path=str(tmp_path / "w.duckdb"))
    try:
        w.execute("CREATE TABLE t AS SELECT i, 'n' || i AS v, i * 2 AS n FROM range(3000) AS r(i) "
                  "UNION ALL SELECT i, repeat('x', 100000) || i, i * 2 FROM range(3000, 3300) AS r(i)")
        wide = list(w.stream("SELECT * FROM t ORDER BY i", batch_rows=10_000))
        assert [i for b in wide for i in b.column("i").to_pylist()] == list(range(3300))
        assert max(b.nbytes for b in wide) <= (1 << 20) + 110_000, [b.nbytes for b in wide]
        assert len(wide) < 40  # the narrow rows joined, not 100,000-byte batches
        narrow = [b.num_rows for b in w.stream("SELECT * FROM t WHERE i < 3000 ORDER BY i", batch_rows=1000)]
        assert narrow == [1000, 1000, 1000]
    finally:
        w.close()
