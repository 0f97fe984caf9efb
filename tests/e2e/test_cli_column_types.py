"""DuckDB column types through the CLI: what Iterable receives, and the types refused at validate."""
from __future__ import annotations

import json


def _model(project, defs: str, values: str, columns: list[str]) -> None:
    project.sql(f"create or replace table main.customers (id integer, email varchar, {defs})")
    project.sql(f"insert into main.customers values (1, 'a@example.com', {values})")
    project.write(fields=[f"- {{column: {c}, field: {c}}}" for c in columns], max_rejected_pct=100)
    (project.root / "models" / "customers.sql").write_text(
        "-- primary_key: id\n-- model_type: user\nselect * from main.customers\n")


def test_types_duckdb_exports_as_other_values_are_configuration_errors(project):
    """UHUGEINT from 2^127 was sent wrapped around (2^128 - 1 as -1), BIT as base64 of its internal
    bytes ("A/U=" for 10101), TIMETZ without its offset, and BIGNUM rejected in every row with an
    Arrow type name: each is now named at validate (file, line, the cast) and nothing is sent."""
    _model(project, "u UHUGEINT, b BIT, tz TIMETZ, big VARINT",
           "340282366920938463463374607431768211455, '10101', '12:34:56+02', '1234567890123456789012345678901234567890'",
           ["u", "b", "tz", "big"])
    result = project.cli("validate")
    assert result.exit_code == 3, result.stdout
    issues = json.loads(result.stdout)["issues"]
    assert [(i["line"], i["message"].split()[1]) for i in issues] == [
        (9, "'u'"), (10, "'b'"), (11, "'tz'"), (12, "'big'")]
    assert all("cannot be sent as it is" in i["message"] and "CAST(" in i["hint"] for i in issues)
    n = len(project.requests.requests)
    assert project.sync()["exit_code"] == 3
    assert not [p for _, p, _ in project.requests.requests[n:] if "bulk" in p]
    assert len(project.sandbox.users) == 0


def test_wide_integers_and_decimals_keep_their_digits_and_a_rerun_sends_nothing(project):
    _model(project, "h HUGEINT, ub UBIGINT, d DECIMAL(38,10), u UHUGEINT",
           "-170141183460469231731687303715884105727, 18446744073709551615, "
           "1234567890123456789012345678.1234567891, 170141183460469231731687303715884105727",
           ["h", "ub", "d"])  # (u: unmapped, so not refused)
    assert project.cli("validate").exit_code == 0
    assert project.sync()["exit_code"] == 0
    bodies = [b for _, p, b in project.requests.requests if "bulk" in p]
    assert len(bodies) == 1
    text = bodies[0].decode() if isinstance(bodies[0], bytes) else bodies[0]
    assert ('"h":-170141183460469231731687303715884105727,"ub":18446744073709551615,'
            '"d":1234567890123456789012345678.1234567891') in text
    assert project.sync()["exit_code"] == 0
    assert len([b for _, p, b in project.requests.requests if "bulk" in p]) == 1  # nothing new


def _strict(text: str):
    def refuse(constant):
        raise ValueError(f"{constant} is no JSON")
    return json.loads(text, parse_constant=refuse)


def test_plan_samples_of_a_nan_and_a_nanosecond_timestamp(project):
    """plan --json wrote a DOUBLE NaN as a bare NaN (no JSON: strict parsers refuse the document)
    and a TIMESTAMP_NS with a nanosecond fraction as "timestamp[ns] out of range (...)". The samples
    are now the values as sent: the NaN is the row's rejection, the timestamp the sync's text."""
    _model(project, "f DOUBLE, ts TIMESTAMP_NS", "'nan', '2024-01-02 03:04:05.123456789'", ["f", "ts"])
    result = project.cli("plan", "--samples", "5")
    assert result.exit_code == 0, result.stdout
    [row] = _strict(result.stdout)["plans"][0]["samples"]["added"]
    assert row["fields"] == {"ts": "2024-01-02T03:04:05.123456"}
    assert row["rejected"] == [{"field": "f", "reason": 'field "f": NaN/infinite is not valid JSON'}]


def test_plan_samples_show_a_blob_as_the_base64_a_sync_sends(project):
    """plan showed a BLOB as Python's bytes repr (`b'\\xaa\\x00'`) in its table and in --json,
    where the sync sends (and the platform keeps) its base64, `qgA=`."""
    _model(project, "bl BLOB, bls BLOB[]", "'\\xAA\\x00'::BLOB, ['abc'::BLOB, NULL]", ["bl", "bls"])
    result = project.cli("plan", "--samples", "5")
    assert result.exit_code == 0, result.stdout
    assert _strict(result.stdout)["plans"][0]["samples"]["added"][0]["fields"] == {"bl": "qgA=", "bls": ["YWJj", None]}
    table = project.cli("plan", json_output=False)
    assert 'bl="qgA="' in table.stdout and "\\x" not in table.stdout
    assert project.sync()["exit_code"] == 0
    [body] = [b for _, p, b in project.requests.requests if "bulk" in p]
    assert '"bl":"qgA=","bls":["YWJj",null]' in (body.decode() if isinstance(body, bytes) else body)


def test_send_problems_name_types_not_field_names_or_enum_values():
    """A STRUCT field or an ENUM value named like such a type is no such column."""
    from dinsync.warehouses.duckdb import DuckDBWarehouse

    problem = lambda kind: DuckDBWarehouse.send_problem(None, "c", kind)  # noqa: E731 (no state is read)
    assert [kind for kind in ('STRUCT("bit" INTEGER)', "STRUCT(timetz INTEGER)", "ENUM('bit', 'uhugeint')",
                              "INTEGER", "VARCHAR[]") if problem(kind)] == []
    assert all(problem(kind) for kind in ("BIT", "BIT[]", "MAP(VARCHAR, BIT)", "STRUCT(a TIMETZ)",
                                          "TIME WITH TIME ZONE", "UHUGEINT", "VARINT", "BIGNUM"))


def test_a_column_nested_deeper_than_arrow_reads_is_a_configuration_error(project):
    """A LIST nested 63 levels deep failed every run reading the plan ('unexpected error: ArrowInvalid:
    Recursion level in ArrowSchema struct exceeded', exit 1): it is named at validate with the cast
    to JSON text; 62 levels are read and sent."""
    from dinsync.warehouses.duckdb import DuckDBWarehouse

    deep = lambda n: "INTEGER" + "[]" * n  # noqa: E731
    literal = lambda n: "[" * n + "1" + "]" * n  # noqa: E731
    assert DuckDBWarehouse.send_problem(None, "c", deep(62)) is None
    assert DuckDBWarehouse.send_problem(None, "c", "STRUCT(a " * 63 + "INTEGER" + ")" * 63)
    _model(project, f"ok {deep(62)}, bad {deep(63)}", f"{literal(62)}, {literal(63)}", ["ok", "bad"])
    issues = json.loads(project.cli("validate").stdout)["issues"]
    assert [i["message"].split()[1] for i in issues] == ["'bad'"]
    assert "63 levels deep" in issues[0]["hint"] and "to_json(bad)" in issues[0]["hint"]
    assert project.sync()["exit_code"] == 3
    _model(project, f"ok {deep(62)}", literal(62), ["ok"])
    assert project.sync()["exit_code"] == 0
    value = project.sandbox.users.get("a@example.com")["dataFields"]["ok"]
    for _ in range(61):
        [value] = value
    assert value == [1]


def test_a_struct_field_or_enum_value_named_like_a_type_is_sent(project):
    """A billing STRUCT with a field `interval`, an ENUM with the value 'map': named like types
    that cannot be sent, they are no such types (validate refused them, the sync exited 3); an
    INTERVAL or a MAP itself, anywhere in a column's type, is still refused."""
    project.sql("create type plan_kind as enum ('union', 'map', 'x')")
    _model(project, 'billing STRUCT("interval" VARCHAR, "map" INTEGER), kind plan_kind, s STRUCT(interval INTEGER)',
           "{'interval': 'monthly', 'map': 2}, 'map', {'interval': 3}", ["billing", "kind", "s"])
    assert project.cli("validate").exit_code == 0
    assert project.sync()["exit_code"] == 0
    assert project.sandbox.users.get("a@example.com")["dataFields"] == {
        "billing": {"interval": "monthly", "map": 2}, "kind": "map", "s": {"interval": 3}}
    _model(project, "d STRUCT(x INTERVAL), m MAP(VARCHAR, INTEGER)", "{'x': INTERVAL 1 DAY}, MAP {'a': 1}",
           ["d", "m"])
    issues = json.loads(project.cli("validate").stdout)["issues"]
    assert [i["message"].split()[1] for i in issues] == ["'d'", "'m'"]
    assert all(i["message"].endswith("which cannot be sent") for i in issues)


def test_a_nocase_column_change_of_case_is_sent_and_its_keys_are_apart(project):
    """DuckDB's NOCASE collation (`VARCHAR COLLATE NOCASE`, a column of dbt's or a DBA's making)
    made HASH and GROUP BY ignore case: `Bob` -> `BOB` was no change (the row fingerprint and the
    value's hash alike), never sent, and the userIds `u2` and `U2`, two users on the platform, were
    one duplicated key, both withheld (PostgreSQL's case-insensitive collations had the same fix)."""
    project.sql("create or replace table main.customers (id integer, email varchar, user_id varchar collate nocase, "
                "first_name varchar collate nocase, plan varchar collate noaccent.nocase, ltv double)")
    project.sql("insert into main.customers values (1, 'a@example.com', 'u1', 'Bob', 'free', 1), "
                "(2, 'b@example.com', 'u2', 'Ann', 'pro', 2), (3, 'c@example.com', 'U2', 'Eve', 'pro', 3)")
    project.write(match_column="user_id", match_field="userId")
    first = project.sync()["runs"][0]
    assert (first["added"], first["duplicate_keys"], first["acknowledged"]) == (3, 0, 3), first
    assert project.sync()["runs"][0]["sent"] == 0
    project.sql("update main.customers set first_name = 'BOB', plan = 'frée' where id = 1")
    run = project.sync()["runs"][0]
    assert (run["changed"], run["acknowledged"]) == (1, 1), run
    user = project.thread.call(project.sandbox.get_user, None, "u1")
    assert (user["dataFields"]["firstName"], user["dataFields"]["plan"]) == ("BOB", "frée")
    assert project.sync()["runs"][0]["sent"] == 0


def test_a_text_column_of_numbers_mapped_as_number_keeps_one_field_type(project):
    """A VARCHAR of "100" and "99.5" mapped `type: number`: "100" went as the integer 100, so Iterable
    typed the field long by that first user and refused the user holding 99.5 (parked as rejected)."""
    project.sql("create or replace table main.customers (id integer, email varchar, ltv varchar)")
    project.sql("insert into main.customers values (1, 'a@example.com', '100'), (2, 'b@example.com', '99.5')")
    project.write(fields=["- {column: ltv, field: ltv, type: number}"], max_rejected_pct=100)
    (project.root / "models" / "customers.sql").write_text(
        "-- primary_key: id\n-- model_type: user\nselect * from main.customers\n")
    run = project.sync()["runs"][0]
    assert (run["acknowledged"], run["rejected"]) == (2, 0), run
    assert [project.sandbox.users.get(e)["dataFields"]["ltv"] for e in ("a@example.com", "b@example.com")] == [
        100.0, 99.5]


def test_a_type_no_value_of_its_column_converts_to_is_refused_at_validate(project):
    """A `type:` that no value of the column's type converts to (a DATE as `integer`, a BOOLEAN as
    `date`, a DOUBLE as `email`, a TIMESTAMP as `boolean`, a list as `number`) passed `validate`:
    `sync` then rejected every row of the model (a warning, each row parked). It is a configuration
    error at the field's line, naming the column's type; types that may convert are not refused."""
    project.sql("create or replace table main.customers (id integer, email varchar, d DATE, b BOOLEAN, "
                "f DOUBLE, ts TIMESTAMP, l INTEGER[], t VARCHAR, n BIGINT)")
    project.sql("insert into main.customers values (1, 'a@example.com', '2024-01-02', true, 1.5, "
                "'2024-01-02 03:04:05', [1], '2024-01-02', 5)")
    bad = ["{column: d, field: d, type: integer}", "{column: b, field: b, type: date}",
           "{column: f, field: f, type: email}", "{column: ts, field: ts, type: boolean}",
           "{column: l, field: l, type: number}"]
    good = ["{column: t, field: t, type: date}", "{column: n, field: n, type: phone}",
            "{column: ts, field: ts2, type: date}", "{column: b, field: b2, type: integer}",
            "{column: l, field: l2, type: string}", "{column: d, field: d2, type: datetime}"]
    project.write(fields=[f"- {f}" for f in bad + good], max_rejected_pct=100)
    (project.root / "models" / "customers.sql").write_text(
        "-- primary_key: id\n-- model_type: user\nselect * from main.customers\n")
    result = project.cli("validate")
    assert result.exit_code == 3, result.stdout
    issues = json.loads(result.stdout)["issues"]
    assert [(i["line"], i["message"]) for i in issues] == [
        (9, "field 'd': type: integer takes no value of column 'd' of model customers, of type DATE"),
        (10, "field 'b': type: date takes no value of column 'b' of model customers, of type BOOLEAN"),
        (11, "field 'f': type: email takes no value of column 'f' of model customers, of type DOUBLE"),
        (12, "field 'ts': type: boolean takes no value of column 'ts' of model customers, of type TIMESTAMP"),
        (13, "field 'l': type: number takes no value of column 'l' of model customers, of type INTEGER[]"),
    ], issues
    assert all("every row would be rejected" in i["hint"] for i in issues)
    n = len(project.requests.requests)
    assert project.sync()["exit_code"] == 3
    assert not [p for _, p, _ in project.requests.requests[n:] if "bulk" in p]
