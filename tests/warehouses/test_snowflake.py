"""The Snowflake adapter's own rules: config in dinsync.yml, translated driver errors, key pairs,
a missing driver, an unreachable account, identifier case (the rest runs in the conformance,
adapter and diff SQL suites against fakesnow)."""
from __future__ import annotations

import sys

import pytest

from dinsync.config import load_project
from dinsync.errors import ConfigError
from dinsync.warehouses import (
    WarehouseAuthError,
    WarehouseConflict,
    WarehouseDriverMissing,
    WarehouseObjectMissing,
    WarehousePermissionError,
    WarehouseSqlError,
    WarehouseUnavailable,
    capabilities_of,
    connect,
)
from dinsync.warehouses.errors import WarehouseLoginRefused
from tests.warehouses.support import WarehouseUnderTest
from tests.warehouses.test_config import project

ENV = {"ITERABLE_API_KEY": "itbl-key-123456", "SF_PASSWORD": "sf-pw-from-env-987", "SF_KEY": "-----BEGIN PRIVATE KEY-----x",
       "SF_PASSPHRASE": "sf-passphrase-321"}
BASE = "  type: snowflake\n  account: myorg-acct1\n  user: DINSYNC\n"


def test_password_from_the_environment_and_every_option(tmp_path):
    p = load_project(project(tmp_path, BASE + "  password: ${env:SF_PASSWORD}\n  database: ANALYTICS\n  schema: MARTS\n"
                                              "  warehouse: XS\n  role: DINSYNC_ROLE\n  host: 127.0.0.1\n  port: 8080\n"
                                              "  protocol: http\n  session_parameters: {QUERY_TAG: dinsync}\n"), env=ENV)
    w = p.warehouse
    assert (w.type, w.account, w.user, w.database, w.schema_, w.warehouse, w.role, w.host, w.port, w.protocol) == (
        "snowflake", "myorg-acct1", "DINSYNC", "ANALYTICS", "MARTS", "XS", "DINSYNC_ROLE", "127.0.0.1", 8080, "http")
    assert w.password.get_secret_value() == "sf-pw-from-env-987" and "sf-pw-from-env" not in repr(w)
    from dinsync.operations import connect_warehouse  # noqa: F401 (what the options are dumped for)
    dumped = w.model_dump(exclude={"type"}, by_alias=True)
    assert dumped["schema"] == "MARTS" and "schema_" not in dumped  # the adapter's keyword


def test_key_pair_from_the_environment(tmp_path):
    p = load_project(project(tmp_path, BASE + "  private_key: ${env:SF_KEY}\n  private_key_passphrase: ${env:SF_PASSPHRASE}\n"),
                     env=ENV)
    assert p.warehouse.private_key.get_secret_value() == ENV["SF_KEY"] and p.warehouse.password is None


@pytest.mark.parametrize("block,key", [
    (BASE + "  password: hunter2-literal\n", "password"),
    (BASE + "  private_key: hunter2-literal\n", "private_key"),
    (BASE + "  private_key_file: /k.p8\n  private_key_passphrase: hunter2-literal\n", "private_key_passphrase"),
])
def test_a_secret_written_in_the_file_is_refused(tmp_path, block, key):
    with pytest.raises(ConfigError) as info:
        load_project(project(tmp_path, block), env=ENV)
    [issue] = [i for i in info.value.issues if i.file == "dinsync.yml"]
    assert f"warehouse.{key} holds a password" in issue.message and "hunter2-literal" not in str(info.value)


@pytest.mark.parametrize("block,needle", [
    (BASE, "set password"),
    (BASE + "  password: ${env:SF_PASSWORD}\n  private_key_file: /k.p8\n", "leave out password"),
    (BASE + "  private_key: ${env:SF_KEY}\n  private_key_file: /k.p8\n", "not both"),
    ("  type: snowflake\n  user: u\n  password: ${env:SF_PASSWORD}\n", "warehouse.account"),
    (BASE + "  password: ${env:SF_PASSWORD}\n  protocol: ftp\n", "warehouse.protocol"),
    (BASE + "  password: ${env:SF_PASSWORD}\n  protocol: http\n", "clear text"),  # to myorg-acct1.snowflakecomputing.com
    (BASE + "  password: ${env:SF_PASSWORD}\n  protocol: http\n  host: sf.example.com\n", "clear text"),
    (BASE + "  password: ${env:SF_PASSWORD}\n  session_parameters: {\"a; drop\": 1}\n", "warehouse.session_parameters"),
    (BASE + "  password: ${env:SF_PASSWORD}\n  search_path: [x]\n", "unknown key warehouse.search_path"),
])
def test_invalid_blocks_are_located(tmp_path, block, needle):
    with pytest.raises(ConfigError) as info:
        load_project(project(tmp_path, block), env=ENV)
    assert any(needle in i.message and i.line for i in info.value.issues), info.value.issues


def _error(cls_name: str, msg: str, errno: int, sqlstate: str | None):
    from snowflake.connector import errors

    return getattr(errors, cls_name)(msg=msg, errno=errno, sqlstate=sqlstate)


@pytest.mark.parametrize("cls_name,msg,errno,sqlstate,expected", [
    ("DatabaseError", "Incorrect username or password was specified.", 390100, "08004", WarehouseLoginRefused),
    ("DatabaseError", "JWT token is invalid.", 390144, "08004", WarehouseLoginRefused),
    ("ProgrammingError", "Object 'X' does not exist or not authorized.", 2003, "42S02", WarehouseObjectMissing),
    ("ProgrammingError", "Schema 'DB.NOPE' does not exist or not authorized.", 2003, "02000", WarehouseObjectMissing),
    ("ProgrammingError", "invalid identifier 'EMAIL'", 904, "42000", WarehouseObjectMissing),
    ("ProgrammingError", "Insufficient privileges to operate on schema 'S'", 3001, "42501", WarehousePermissionError),
    ("OperationalError", "Statement reached its statement or warehouse timeout of 60 second(s)", 630, "57014",
     WarehouseUnavailable),
    ("ProgrammingError", "No active warehouse selected in the current session.", 606, "57P03", WarehouseUnavailable),
    ("ProgrammingError", "Statement was aborted because of a deadlock", 625, "40001", WarehouseConflict),
    ("OperationalError", "Failed to connect to DB: acct.snowflakecomputing.com:443", 250001, "08001",
     WarehouseUnavailable),
    ("ProgrammingError", "SQL compilation error: syntax error line 1 at position 0 unexpected 'SELEC'.", 1003,
     "42000", None),
])
def test_driver_errors_are_translated(cls_name, msg, errno, sqlstate, expected):
    from dinsync.warehouses.snowflake import SnowflakeWarehouse, classify_snowflake

    exc = _error(cls_name, msg, errno, sqlstate)
    assert classify_snowflake(exc) is expected
    adapter = SnowflakeWarehouse.__new__(SnowflakeWarehouse)  # translation needs no connection
    adapter._secrets = ["s3cret-value"]
    error = adapter.translate(_error(cls_name, msg + " s3cret-value", errno, sqlstate), "running a query")
    assert isinstance(error, expected or WarehouseSqlError) and "s3cret-value" not in str(error)
    assert error.retryable == (expected in (WarehouseUnavailable, WarehouseConflict))
    assert error.message.startswith("Snowflake: ") and "(while running a query)" in error.message


def test_an_unreachable_account_is_unavailable_and_the_password_never_shows():
    with pytest.raises(WarehouseUnavailable) as info:
        connect("snowflake", account="fakesnow", user="u", password="sekret-pw-123", host="127.0.0.1", port=1,
                protocol="http", login_timeout=3, network_timeout=3)
    assert info.value.retryable and "sekret-pw-123" not in str(info.value) + (info.value.hint or "")


def test_key_pair_authentication_is_what_the_connector_receives(monkeypatch):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.BestAvailableEncryption(b"pass-phrase")).decode()
    seen = {}

    class Stop(Exception):
        pass

    import snowflake.connector

    def fake_connect(**options):
        seen.update(options)
        raise snowflake.connector.errors.DatabaseError(msg="JWT token is invalid.", errno=390144, sqlstate="08004")

    monkeypatch.setattr(snowflake.connector, "connect", fake_connect)
    with pytest.raises(WarehouseAuthError):
        connect("snowflake", account="a", user="u", private_key=pem, private_key_passphrase="pass-phrase")
    assert seen["authenticator"] == "SNOWFLAKE_JWT" and "password" not in seen
    loaded = serialization.load_der_private_key(seen["private_key"], password=None)
    assert loaded.private_numbers() == key.private_numbers()
    assert seen["session_parameters"]["QUOTED_IDENTIFIERS_IGNORE_CASE"] is True
    with pytest.raises(WarehouseAuthError, match="cannot read the private_key") as info:
        connect("snowflake", account="a", user="u", private_key=pem, private_key_passphrase="wrong")
    assert "PRIVATE KEY" not in str(info.value)  # the key itself is never echoed


def refused_logins(monkeypatch) -> dict:
    """The connector's `connect` replaced by one that keeps the options it was given (returned,
    updated at each call) and refuses the login, as a wrong password is."""
    import snowflake.connector

    seen: dict = {}

    def fake_connect(**options):
        seen.update(options)
        raise snowflake.connector.errors.DatabaseError(msg="Incorrect username or password", errno=390100)

    monkeypatch.setattr(snowflake.connector, "connect", fake_connect)
    return seen


def test_every_session_commits_each_statement_whatever_the_config_says(monkeypatch):
    """dinsync holds no transaction between requests on Snowflake (a killed run left it open):
    each statement must commit on its own, so AUTOCOMMIT is set over `session_parameters`."""
    seen = refused_logins(monkeypatch)
    with pytest.raises(WarehouseAuthError):
        connect("snowflake", account="a", user="u", password="p",
                session_parameters={"AUTOCOMMIT": False, "QUERY_TAG": "mine"})
    assert seen["session_parameters"]["AUTOCOMMIT"] is True and seen["session_parameters"]["QUERY_TAG"] == "mine"


def test_every_session_pins_the_output_formats_the_diff_reads_as_text(monkeypatch):
    """A DATE or BINARY field is hashed as its text, a timestamp key is its text: an account's or
    user's own output formats (e.g. DATE_OUTPUT_FORMAT = 'DD/MM/YYYY') would make every row look
    changed, so each session sets Snowflake's defaults; the config's `session_parameters` may still
    say otherwise, knowingly."""
    seen = refused_logins(monkeypatch)
    with pytest.raises(WarehouseAuthError):
        connect("snowflake", account="a", user="u", password="p")
    params = seen["session_parameters"]
    assert (params["DATE_OUTPUT_FORMAT"], params["BINARY_OUTPUT_FORMAT"], params["TIME_OUTPUT_FORMAT"]) == (
        "YYYY-MM-DD", "HEX", "HH24:MI:SS")
    assert params["TIMESTAMP_OUTPUT_FORMAT"] == "YYYY-MM-DD HH24:MI:SS.FF3 TZHTZM"
    assert params["TIMESTAMP_NTZ_OUTPUT_FORMAT"] == "YYYY-MM-DD HH24:MI:SS.FF3"
    assert params["TIMESTAMP_LTZ_OUTPUT_FORMAT"] == params["TIMESTAMP_TZ_OUTPUT_FORMAT"] == params["TIMESTAMP_OUTPUT_FORMAT"]
    seen.clear()
    with pytest.raises(WarehouseAuthError):
        connect("snowflake", account="a", user="u", password="p", session_parameters={"DATE_OUTPUT_FORMAT": "DD/MM/YYYY"})
    assert seen["session_parameters"]["DATE_OUTPUT_FORMAT"] == "DD/MM/YYYY"


def test_a_missing_driver_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "snowflake.connector", None)
    assert capabilities_of("snowflake").dialect == "snowflake"  # capabilities need no driver
    with pytest.raises(WarehouseDriverMissing) as info:
        connect("snowflake", account="a", user="u", password="p")
    assert info.value.hint == "pip install 'dinsync[snowflake]'" and "snowflake-connector-python" in info.value.message


def test_names_fold_case_insensitively_and_come_back_lower_case(tmp_path, fakesnow):
    t = WarehouseUnderTest("snowflake", tmp_path)
    try:
        t.wh.execute('CREATE TABLE "Mixed" (Id INTEGER, "Email" VARCHAR)')
        t.wh.execute("INSERT INTO mixed (id, email) VALUES (1, 'a@x.com')")
        assert t.wh.query('SELECT ID, "email" FROM "MIXED"').to_pylist() == [{"id": 1, "email": "a@x.com"}]
        assert t.wh.columns("SELECT Id, Email FROM mixed") == [("id", "NUMBER(38,0)"), ("email", "TEXT")]
        assert t.wh.table_columns(t.schema, "MIXED") == ["id", "email"]
        # CREATE SCHEMA makes the new schema current on Snowflake: the adapter moves back
        t.wh.execute(f'CREATE SCHEMA IF NOT EXISTS "{t.state_schema}"')
        assert t.wh.scalar("SELECT COUNT(*) FROM mixed") == 1
        # DDL inside a transaction commits what came before it (Snowflake's rule), then goes on
        with pytest.raises(RuntimeError):
            with t.wh.transaction():
                t.wh.execute("INSERT INTO mixed (id) VALUES (2)")
                t.wh.execute("CREATE TABLE other (i INTEGER)")
                t.wh.execute("INSERT INTO mixed (id) VALUES (3)")
                raise RuntimeError("boom")
        assert sorted(r["id"] for r in t.wh.query("SELECT id FROM mixed").to_pylist()) == [1, 2]
    finally:
        t.close()


def test_a_stream_outlives_its_result_chunks_urls(tmp_path, fakesnow, monkeypatch):
    """Snowflake sends a large result as chunks behind pre-signed URLs valid for 6 hours, and a
    stream is read at the platform's pace. When its URLs expire mid-stream (the server answers 403
    as S3 does), the stream asks for the same result's links again and goes on from the chunk it
    was at: every row once, in order. Before, the run failed with "HTTP 403: Forbidden"."""
    import json
    import re
    import urllib.request

    import snowflake.connector.result_batch as result_batch
    from tests.warehouses.support import FAKESNOW_CHUNK_ROWS

    monkeypatch.setattr(result_batch, "MAX_DOWNLOAD_RETRY", 2)  # the connector's own retries of a 403 (10, backing off)
    server = f"http://127.0.0.1:{fakesnow.port}/_test/"
    gets = lambda: json.load(urllib.request.urlopen(server + "chunk-gets"))["gets"]
    rows = 5 * FAKESNOW_CHUNK_ROWS + 123
    t = WarehouseUnderTest("snowflake", tmp_path)
    try:
        before, seen = gets(), []
        for n, batch in enumerate(t.wh.stream(f"SELECT i, 'row ' || i AS t FROM range({rows}) AS r(i) ORDER BY i",
                                              batch_rows=700)):
            if n == 4:  # in the third chunk; the fourth is being downloaded ahead
                urllib.request.urlopen(urllib.request.Request(server + "expire-chunks", method="POST"))
            seen += batch.column("i").to_pylist()
        assert seen == list(range(rows))
        assert gets() - before >= 5  # the rows beyond the first chunk came through downloads
        # links that are not the same chunks' (here: none): the stream stops, transient, saying why
        stream = t.wh.stream(f"SELECT i FROM range({rows}) AS r(i) ORDER BY i", batch_rows=700)
        next(stream)
        monkeypatch.setattr(type(t.wh.conn.cursor()), "query_result", lambda self, qid: self)
        urllib.request.urlopen(urllib.request.Request(server + "expire-chunks", method="POST"))
        with pytest.raises(WarehouseUnavailable) as info:
            list(stream)
        assert re.search(r"chunk [2-6] of 6 of the result could not be downloaded \(290403: HTTP 403: Forbidden\)",
                         str(info.value)), info.value
        assert "not those of the same chunks" in str(info.value) and "?g=" not in str(info.value)
    finally:
        t.close()


def test_writes_bind_json_chunks_unpacked_by_flatten(tmp_path, fakesnow, monkeypatch):
    import datetime as dt
    import decimal

    import pyarrow as pa

    from dinsync.warehouses.snowflake import SnowflakeWarehouse

    monkeypatch.setattr(SnowflakeWarehouse, "json_bytes", 2000)  # several statements
    t = WarehouseUnderTest("snowflake", tmp_path)
    try:
        original = SnowflakeWarehouse.execute
        n = 300
        data = pa.table({
            "k": [f"it's \"k{i}\" é \\ %s" if i % 7 else None for i in range(n)],
            "i": pa.array([i if i % 5 else None for i in range(n)], pa.int64()),
            "when": pa.array([dt.datetime(2026, 1, 1, 0, 0, i % 60, 500000) if i % 3 else None for i in range(n)],
                             pa.timestamp("us")),
            "d": pa.array([decimal.Decimal("1.25") if i % 2 else None for i in range(n)], pa.decimal128(10, 2)),
            "b": [i % 4 == 0 for i in range(n)],
        })
        t.wh.write_arrow(t.schema, "w", data, mode="replace")
        back = t.wh.query("SELECT k, i, \"when\", d, b FROM w ORDER BY i NULLS LAST, k").to_pylist()
        expected = sorted(data.to_pylist(), key=lambda r: (r["i"] is None, r["i"] or 0, r["k"] or ""))
        assert sorted(back, key=repr) == sorted(expected, key=repr)

        statements = []
        monkeypatch.setattr(SnowflakeWarehouse, "execute", lambda self, sql, params=None: (
            statements.append(sql), original(self, sql, params))[1])
        conn = t.wh.conn
        cursor = conn.cursor
        ran = []

        class Recorder:
            def __init__(self, cur):
                self.cur = cur

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.cur.close()

            def __getattr__(self, name):
                return getattr(self.cur, name)

            def execute(self, sql, params=None):
                ran.append(sql)
                return self.cur.execute(sql, params)

        monkeypatch.setattr(conn, "cursor", lambda *a, **k: Recorder(cursor(*a, **k)))
        t.wh.write_arrow(t.schema, "w", data)
        inserts = [s for s in ran if s.startswith("INSERT")]
        assert len(inserts) >= 5 and all("FLATTEN(INPUT => PARSE_JSON(%s))" in s for s in inserts)
        # each statement commits on its own: no transaction held open between requests (a kill -9
        # between two of them left it open on the server, see test_snowflake_killed_run.py)
        assert not {"BEGIN", "COMMIT"} & {s.strip().upper() for s in statements + ran}
        assert t.wh.scalar("SELECT COUNT(*) FROM w") == 2 * n
    finally:
        t.close()


def test_a_number_with_a_scale_is_reported_with_it_and_refused_as_a_matching_key(tmp_path, fakesnow):
    """The connector's metadata gives NUMBER's precision and scale: `columns` reports NUMBER(12,2),
    so `validate` refuses it as a matching key (its keys would be `10.00`), as on DuckDB. It used to
    say FIXED, and a NUMBER(12,2) key passed validate and was sent as "10.00"."""
    from dinsync.config import check_columns, load_project

    t = WarehouseUnderTest("snowflake", tmp_path)
    try:
        t.wh.execute("CREATE TABLE people (id NUMBER(38,0), amount NUMBER(12,2), small NUMBER(9,0), "
                     "ratio FLOAT, email VARCHAR)")
        assert t.wh.columns("SELECT * FROM people") == [
            ("id", "NUMBER(38,0)"), ("amount", "NUMBER(12,2)"), ("small", "NUMBER(9,0)"), ("ratio", "REAL"),
            ("email", "TEXT")]
        root = tmp_path / "p"
        root.mkdir()
        (root / "models").mkdir()
        (root / "syncs").mkdir()
        (root / "models" / "people.sql").write_text("-- primary_key: id\n-- model_type: user\nselect * from people\n")
        (root / "dinsync.yml").write_text("version: 1\nwarehouse: {type: duckdb, path: w.duckdb}\ndestinations:\n  iterable:\n"
                                          "    type: iterable\n    api_key: ${env:ITERABLE_API_KEY}\n")
        for column in ("amount", "id"):
            (root / "syncs" / f"by_{column}.yml").write_text(
                f"model: people\ndestination: iterable\nservice: users\nmode: upsert\n"
                f"match: {{column: {column}, field: userId}}\nfields:\n  email: email\n")
        project = load_project(root, env=ENV)
        issues = check_columns(project, lambda model: t.wh.columns(model.sql))
        assert [(i.file, i.message.split(",")[0]) for i in issues] == [
            ("syncs/by_amount.yml", "match column 'amount' of model people is of type NUMBER(12")]
    finally:
        t.close()


def test_a_mapped_semi_structured_column_is_refused_by_name(wh_snowflake, tmp_path):
    """The connector reads VARIANT, OBJECT and ARRAY values as their JSON text: `v:plan` holding the
    string pro arrived as '"pro"' (quotes included) and was sent so to Iterable; an OBJECT mapped to
    Attio's personal-name went as text Attio split into a garbled name. `dinsync validate` now names
    such a mapped column with the cast that fixes it; the cast model passes."""
    from dinsync.errors import ExitCode
    from dinsync.warehouses.snowflake import SnowflakeWarehouse
    from tests.warehouses.support import one_sync_project

    wh_snowflake.execute("CREATE TABLE people_raw (email VARCHAR, payload VARIANT)")
    wh_snowflake.execute("""INSERT INTO people_raw SELECT 'a@x.com', PARSE_JSON('{"plan": "pro", "n": 5}')""")
    cli = one_sync_project(tmp_path / "project", wh_snowflake.warehouse_yaml(), "http://127.0.0.1:9",
                           {"plan": "plan", "payload": "payload", "n": "n"}, wh_snowflake.env)
    refused = cli("validate --offline",
                  "SELECT email, payload:plan AS plan, payload, payload:n::NUMBER AS n FROM people_raw")
    out = " ".join((refused.stdout + refused.stderr).split())
    assert refused.returncode == ExitCode.CONFIG_ERROR, out
    assert "column 'plan' of model people is of type VARIANT, which cannot be sent as it is" in out, out
    assert "column 'payload' of model people is of type VARIANT" in out and "payload::VARCHAR" in out, out
    assert "'n'" not in out  # a cast column is not named
    done = cli("validate --offline", "SELECT email, payload:plan::VARCHAR AS plan, TO_JSON(payload) AS payload, "
                                     "payload:n::NUMBER AS n FROM people_raw")
    assert done.returncode == 0, done.stdout + done.stderr
    for kind in ("OBJECT", "ARRAY"):  # (fakesnow describes these as VARIANT)
        assert "TO_JSON(c)" in SnowflakeWarehouse.send_problem(None, "c", kind)
    assert SnowflakeWarehouse.send_problem(None, "c", "TEXT") is None



def test_changes_beyond_a_float_or_timestamp_text_are_sent(tmp_path):
    """The diff hashed each value's text, and Snowflake writes a FLOAT as text with about 15
    significant digits (0.1 + 0.2 as 0.3) and a timestamp in the session's output format, to the
    millisecond by default (a TIME to the second): a change beyond them hashed the same, and was
    never sent. Mapped FLOAT, timestamp and TIME columns are now hashed by their native HASH, in the
    value hashes that decide what is sent as in the row's fingerprint. (fakesnow's CAST keeps every
    digit: the SQL that takes their exact form is checked, and that it runs.)"""
    import datetime as dt

    from dinsync.diff import DiffSpec, Planner

    t = WarehouseUnderTest("snowflake", tmp_path)
    try:
        t.wh.execute(f'CREATE TABLE "{t.schema}".people (email VARCHAR, ltv FLOAT, ts TIMESTAMP_NTZ, tm TIME, '
                     "name VARCHAR)")
        spec = DiffSpec(sync="f1", model_sql="SELECT * FROM people", key_column="email", key_normalization="email",
                        fields=[("ltv", "ltv"), ("ts", "ts"), ("tm", "tm"), ("name", "name")],
                        state_schema=t.state_schema)
        p = Planner(t.wh, spec)
        assert p.exact_columns == ["ltv", "tm", "ts"]
        plan_sql = " ".join(p.render("plan").split())
        for i in range(3):  # ltv, ts, tm: their exact form
            assert f'HASH(CAST(HASH("c"."v{i}") AS VARCHAR))' in plan_sql
        assert 'HASH(CAST("c"."v3" AS VARCHAR))' in plan_sql  # name: its text, as before
        p.ensure_state()
        base = {"ltv": 0.1 + 0.2, "ts": dt.datetime(2024, 1, 2, 3, 4, 5, 123456), "tm": dt.time(12, 0, 0, 500)}

        def plan(**values):
            row = {**base, **values}
            t.wh.execute(f'DELETE FROM "{t.schema}".people')
            t.wh.execute(f"""INSERT INTO "{t.schema}".people SELECT 'a@x.com', {row['ltv']!r}::FLOAT, """
                         f"""'{row['ts']}'::TIMESTAMP_NTZ, '{row['tm']}'::TIME, 'A'""")
            p.plan()
            rows = t.wh.query(f"SELECT _op, x0, x1, x2, x3 FROM {t.wh.table_name(t.state_schema, p.plan_table)}")
            found = [(r["_op"], [f for f, x in zip(("ltv", "ts", "tm", "name"), (r["x0"], r["x1"], r["x2"], r["x3"]))
                                 if x]) for r in rows.to_pylist() if r["_op"] in ("added", "changed")]
            keys = [k for b in p.stream_sendable(batch_rows=10) for k in b.column("_key").to_pylist()]
            p.commit_acknowledged(keys)
            return found

        assert plan() == [("added", ["ltv", "ts", "tm", "name"])]
        assert plan() == []
        assert plan(ltv=0.3) == [("changed", ["ltv"])]  # 0.30000000000000004 -> 0.3
        assert plan(ltv=0.3, ts=dt.datetime(2024, 1, 2, 3, 4, 5, 123999)) == [("changed", ["ts"])]  # same millisecond
        assert plan(ltv=0.3, ts=dt.datetime(2024, 1, 2, 3, 4, 5, 123999), tm=dt.time(12, 0, 0, 900)) == [
            ("changed", ["tm"])]  # same second
        assert plan(ltv=0.3, ts=dt.datetime(2024, 1, 2, 3, 4, 5, 123999), tm=dt.time(12, 0, 0, 900)) == []
    finally:
        t.close()


def test_a_key_with_a_nul_character_is_kept_as_planned(tmp_path):
    """Snowflake's writes (acknowledged keys, rejections) went through PostgreSQL's preparation,
    which removes NUL characters from text (PostgreSQL text cannot hold them; a Snowflake VARCHAR
    does): the key `u\\x001` was recorded as `u1`, not the key planned, so its row was planned as
    added and sent again on every run (and a rejected one was never parked)."""
    import pyarrow as pa

    from dinsync.diff import DiffSpec, Planner

    t = WarehouseUnderTest("snowflake", tmp_path)
    try:
        t.wh.write_arrow(t.schema, "w", pa.table({"k": ["u\x001", "tab\tand\\back"],
                                                  "d": pa.array(["a\x00b", None]).dictionary_encode()}), mode="replace")
        assert t.wh.query(f'SELECT k, d FROM "{t.schema}".w ORDER BY k').to_pylist() == [
            {"k": "tab\tand\\back", "d": None}, {"k": "u\x001", "d": "a\x00b"}]

        t.wh.execute(f'CREATE TABLE "{t.schema}".people (uid VARCHAR, name VARCHAR)')
        t.wh.execute(f"""INSERT INTO "{t.schema}".people VALUES (:k, 'A'), ('u2', 'B')""", {"k": "u\x001"})
        spec = DiffSpec(sync="n1", model_sql="SELECT * FROM people", key_column="uid", key_normalization="none",
                        fields=[("name", "name")], state_schema=t.state_schema)
        p = Planner(t.wh, spec)
        p.ensure_state()

        def plan():
            p.plan()
            keys = [k for b in p.stream_sendable(batch_rows=10) for k in b.column("_key").to_pylist()]
            p.commit_acknowledged(keys)
            return sorted(keys)

        assert plan() == ["u\x001", "u2"]
        assert plan() == []  # (before: ["u\x001"], every run)
    finally:
        t.close()


def test_ctrl_c_during_a_statement_reaches_dinsyncs_stop_not_a_keyboard_interrupt(tmp_path, fakesnow):
    """The connector puts a SIGINT handler of its own in front of whatever is installed while each
    statement runs: it cancels the statement and raises KeyboardInterrupt. A Ctrl-C (SIGINT) while a
    run planned on Snowflake therefore bypassed dinsync's graceful stop: the run was recorded
    `failed` ("interrupted (KeyboardInterrupt)"), and `sync --json` printed nothing and exited 130.
    SIGINT now reaches dinsync's handler as SIGTERM does (the run ends `cancelled`)."""
    import os
    import signal
    import threading

    from dinsync.engine.stop import StopToken, stop_on_signals

    t = WarehouseUnderTest("snowflake", tmp_path)
    slow = ("SELECT SUM(a.v * b.v) AS n FROM (SELECT SEQ4() AS v FROM TABLE(GENERATOR(ROWCOUNT => 30000))) a, "
            "(SELECT SEQ4() AS v FROM TABLE(GENERATOR(ROWCOUNT => 30000))) b")
    token = StopToken()
    started = threading.Event()
    try:
        with stop_on_signals(token):
            ours = signal.getsignal(signal.SIGINT)

            def interrupt_when_running() -> None:
                started.wait(30)
                # the statement (~5 s) is under way once the connector's handler replaced ours, or 1 s on
                for _ in range(200):
                    if signal.getsignal(signal.SIGINT) is not ours or done.wait(0.005):
                        break
                os.kill(os.getpid(), signal.SIGINT)

            done = threading.Event()
            sender = threading.Thread(target=interrupt_when_running, daemon=True)
            sender.start()
            started.set()
            try:
                t.wh.query(slow)
            except KeyboardInterrupt:
                pytest.fail("Ctrl-C during the statement raised KeyboardInterrupt, bypassing dinsync's stop")
            finally:
                done.set()
                sender.join(30)
        assert token.requested and token.signum == signal.SIGINT
    finally:
        t.close()
