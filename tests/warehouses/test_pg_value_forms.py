"""PostgreSQL values whose Arrow form through ADBC is not the value, through the whole sync path
(real CLI, PostgreSQL on 127.0.0.1, the Iterable sandbox): what the platform receives.

- A composite (`create type comp as (a int, b text)`) and an array of composites are sent as their
  text form, `(2,b)`, as other types ADBC cannot read are (pg_streams._text_cast). Before, ADBC's
  struct reader misfilled them: `(2,b)` sent as {"a":null,"b":null}, NULL as {"a":0,"b":""},
  {(1,x),NULL,(2,y)} as [{"a":1,"b":"x"},null,null].
"""
from __future__ import annotations

import pytest

from tests.warehouses.support import run_cli, write_iterable_project

COMPOSITE_MODEL = """\
-- primary_key: email
-- model_type: user
select email, cmp, cmps from pgcomp_customers
"""


def test_composites_are_sent_as_their_text_form(tmp_path, wh_postgres, iterable_sandbox):
    sandbox, thread = iterable_sandbox
    schema = wh_postgres.model_schema
    wh_postgres.execute(f'CREATE TYPE "{schema}".comp AS (a int, b text)')
    wh_postgres.execute(f'CREATE TABLE "{schema}".pgcomp_customers '
                        f'(id int, email text, cmp "{schema}".comp, cmps "{schema}".comp[])')
    wh_postgres.execute(f"""INSERT INTO "{schema}".pgcomp_customers VALUES
        (1, 'c1@example.com', '(1,a)', '{{"(1,x)",NULL,"(2,y)"}}'),
        (2, 'c2@example.com', NULL, NULL),
        (3, 'c3@example.com', '(,)', '{{}}'),
        (4, 'c4@example.com', '(2,"b, c")', '{{"(3,z)"}}')""")
    root = tmp_path / "project"
    write_iterable_project(root, wh_postgres, thread.url, COMPOSITE_MODEL, ["cmp", "cmps"])

    code, result = run_cli(root, wh_postgres, "sync")
    assert code == 0, result
    assert result["runs"][0]["acknowledged"] == 4, result
    users = thread.call(lambda: {u["email"]: dict(u["dataFields"]) for u in sandbox.users})
    assert users == {
        "c1@example.com": {"cmp": "(1,a)", "cmps": ["(1,x)", None, "(2,y)"]},
        "c2@example.com": {"cmp": None, "cmps": None},
        "c3@example.com": {"cmp": "(,)", "cmps": []},
        "c4@example.com": {"cmp": '(2,"b, c")', "cmps": ["(3,z)"]},
    }

    # a change inside a composite is a change
    wh_postgres.execute(f"""UPDATE "{schema}".pgcomp_customers SET cmp = '(1,A)' WHERE id = 1""")
    code, again = run_cli(root, wh_postgres, "sync")
    assert code == 0 and again["runs"][0]["acknowledged"] == 1, again
    assert thread.call(lambda: dict(sandbox.users.get("c1@example.com")["dataFields"]))["cmp"] == "(1,A)"


CHAR_MODEL = """\
-- primary_key: email
-- model_type: user
select email, code, codes, 'x'::char(3) as lit, dcodes from pgchar_customers
"""


@pytest.fixture(params=["postgres", "redshift"])
def pg_target(request):
    return request.getfixturevalue(f"wh_{request.param}")


def test_char_columns_are_sent_without_their_blank_padding(tmp_path, pg_target, iterable_sandbox):
    """A `char(n)` value is padded with blanks to n characters where it is stored; PostgreSQL's text
    form of it drops them (`'ab'::char(5)::text = 'ab'`), as DuckDB (whose CHAR is a VARCHAR) does
    (also in an array, of char(n) or of a domain over it):
    it is sent, and shown in `dinsync plan`'s samples, as `ab`. Before, `ab   ` reached the platform.
    A second run finds nothing changed."""
    sandbox, thread = iterable_sandbox
    schema = pg_target.model_schema
    pg_target.execute(f'CREATE DOMAIN "{schema}".code5 AS char(5)')
    pg_target.execute(f'CREATE TABLE "{schema}".pgchar_customers '
                      f'(email char(20), code char(5), codes char(4)[], dcodes "{schema}".code5[])')
    pg_target.execute(f"""INSERT INTO "{schema}".pgchar_customers VALUES
        ('a@example.com', 'ab', '{{"x","y z"}}', '{{{{p,q}},{{r,NULL}}}}'), ('b@example.com', ' c ', NULL, NULL),
        ('c@example.com', NULL, '{{}}', '{{}}')""")
    root = tmp_path / "project"
    postgres = pg_target.kind == "postgres"  # (Redshift has neither domains nor arrays)
    model = CHAR_MODEL if postgres else CHAR_MODEL.replace(", dcodes", "")
    write_iterable_project(root, pg_target, thread.url, model, ["code", "codes", "lit"] + ["dcodes"] * postgres)

    code, plan = run_cli(root, pg_target, "plan", "--samples", "5")
    assert code == 0, plan
    samples = {s["key"]: s["fields"] for s in plan["plans"][0]["samples"]["added"]}
    assert (samples["a@example.com"]["code"], samples["a@example.com"]["lit"]) == ("ab", "x"), samples

    code, result = run_cli(root, pg_target, "sync")
    assert code == 0, result
    assert result["runs"][0]["acknowledged"] == 3, result
    users = thread.call(lambda: {u["email"]: dict(u["dataFields"]) for u in sandbox.users})
    expected = {
        "a@example.com": {"code": "ab", "codes": ["x", "y z"], "lit": "x"},
        "b@example.com": {"code": " c", "codes": None, "lit": "x"},
        "c@example.com": {"code": None, "codes": [], "lit": "x"},
    }
    if postgres:
        dcodes = {"a@example.com": [["p", "q"], ["r", None]], "b@example.com": None, "c@example.com": []}
        expected = {k: {**v, "dcodes": dcodes[k]} for k, v in expected.items()}
    assert users == expected
    code, again = run_cli(root, pg_target, "sync")
    assert code == 0, again
    assert (again["runs"][0]["added"], again["runs"][0]["changed"], again["runs"][0]["sent"]) == (0, 0, 0), again


def test_a_time_at_the_end_of_the_day_is_planned_and_sent(tmp_path, pg_target, iterable_sandbox):
    """A `time` of '24:00:00' (PostgreSQL and Redshift accept it: the end of a day) is read by
    dinsync's sessions as ADBC reads it: `dinsync plan` (both) and every sync on Redshift failed with
    "can't parse time '24:00:00': hour must be in 0..23". It is planned and sent as "24:00:00" (also
    in an array), and a second run sends nothing."""
    sandbox, thread = iterable_sandbox
    schema = pg_target.model_schema
    postgres = pg_target.kind == "postgres"  # (Redshift has no arrays)
    pg_target.execute(f'CREATE TABLE "{schema}".pgtime_customers (email text, t time'
                      + (", ts time[])" if postgres else ")"))
    pg_target.execute(f"""INSERT INTO "{schema}".pgtime_customers VALUES
        ('a@example.com', '24:00:00'{", '{24:00:00,NULL,01:02:03.5}'" if postgres else ""}),
        ('b@example.com', '12:00:00'{", '{}'" if postgres else ""}), ('c@example.com', NULL{", NULL" if postgres else ""})""")
    root = tmp_path / "project"
    fields = ["t"] + ["ts"] * postgres
    write_iterable_project(root, pg_target, thread.url, "-- primary_key: email\n-- model_type: user\n"
                           f"select email, {', '.join(fields)} from pgtime_customers\n", fields)

    code, plan = run_cli(root, pg_target, "plan", "--samples", "5")
    assert code == 0, plan
    samples = {s["key"]: s["fields"] for s in plan["plans"][0]["samples"]["added"]}
    assert samples["a@example.com"]["t"] == "24:00:00", samples

    code, result = run_cli(root, pg_target, "sync")
    assert code == 0, result
    assert result["runs"][0]["acknowledged"] == 3, result
    users = thread.call(lambda: {u["email"]: dict(u["dataFields"]) for u in sandbox.users})
    expected = {"a@example.com": {"t": "24:00:00"}, "b@example.com": {"t": "12:00:00"}, "c@example.com": {"t": None}}
    if postgres:
        arrays = {"a@example.com": ["24:00:00", None, "01:02:03.500000"], "b@example.com": [], "c@example.com": None}
        expected = {k: {**v, "ts": arrays[k]} for k, v in expected.items()}
    assert users == expected
    code, again = run_cli(root, pg_target, "sync")
    assert code == 0, again
    assert (again["runs"][0]["added"], again["runs"][0]["changed"], again["runs"][0]["sent"]) == (0, 0, 0), again


def test_multiranges_are_planned_and_sent_as_their_text_form(tmp_path, wh_postgres, iterable_sandbox):
    """A multirange (PostgreSQL 14+) is read as its text form, as a range is: `dinsync plan
    --samples` failed ("unexpected error: ArrowInvalid: Could not convert Multirange(...)") on a
    model mapping one."""
    sandbox, thread = iterable_sandbox
    schema = wh_postgres.model_schema
    wh_postgres.execute(f'CREATE TABLE "{schema}".pgmr_customers (email text, im int4multirange, dm datemultirange)')
    wh_postgres.execute(f"""INSERT INTO "{schema}".pgmr_customers VALUES
        ('a@example.com', '{{[1,3),[5,7)}}', '{{[2024-01-01,2024-02-01)}}'), ('b@example.com', '{{}}', NULL)""")
    root = tmp_path / "project"
    write_iterable_project(root, wh_postgres, thread.url, "-- primary_key: email\n-- model_type: user\n"
                           "select email, im, dm from pgmr_customers\n", ["im", "dm"])
    code, plan = run_cli(root, wh_postgres, "plan", "--samples", "5")
    assert code == 0, plan
    samples = {s["key"]: s["fields"] for s in plan["plans"][0]["samples"]["added"]}
    assert samples == {"a@example.com": {"im": "{[1,3),[5,7)}", "dm": "{[2024-01-01,2024-02-01)}"},
                       "b@example.com": {"im": "{}", "dm": None}}
    code, result = run_cli(root, wh_postgres, "sync")
    assert code == 0 and result["runs"][0]["acknowledged"] == 2, result
    users = thread.call(lambda: {u["email"]: dict(u["dataFields"]) for u in sandbox.users})
    assert users == samples
