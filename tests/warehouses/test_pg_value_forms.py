"""PostgreSQL values whose Arrow form through ADBC is not the value, through the whole sync path
(real CLI, PostgreSQL on 127.0.0.1, the Iterable sandbox): what the platform receives.

- A composite (`create type comp as (a int, b text)`) and an array of composites are sent as their
  text form, `(2,b)`, as other types ADBC cannot read are (pgfamily._text_cast). Before, ADBC's
  struct reader misfilled them: `(2,b)` sent as {"a":null,"b":null}, NULL as {"a":0,"b":""},
  {(1,x),NULL,(2,y)} as [{"a":1,"b":"x"},null,null].
"""
from __future__ import annotations

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
