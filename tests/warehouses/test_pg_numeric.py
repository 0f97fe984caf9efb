"""PostgreSQL `numeric` through the whole sync path (real CLI, PostgreSQL on 127.0.0.1, the
Iterable sandbox), on the PostgreSQL adapter (ADBC) and Redshift's code path (server-side cursor).

- A NaN in a `numeric(p, s)` column rejects its row with a reason (parked like any content
  rejection), as a float NaN does; before, it was read as NULL and sent as null, which clears the
  platform's value.
- A numeric beyond decimal128 (unconstrained: sums, averages; or p > 38) is sent with its exact
  digits; before, it was read as float64 and sent rounded (12345678901234567.89 as
  1.2345678901234568e+16).
"""
from __future__ import annotations


import pytest

from tests.warehouses.support import run_cli, write_iterable_project

MODEL = """\
-- primary_key: id
-- model_type: user
select id, email, price, big, wide, (select sum(big) from pgnum_customers where big < 'Infinity') as total
from pgnum_customers
"""
ROWS = """
    (1, 'a@example.com', 1.50, 12345678901234567.89, 1234567890123456789012345.25),
    (2, 'b@example.com', 'NaN', 1234567890123456789012345, 0.10),
    (3, 'c@example.com', 2.00, 7, -5),
    (4, 'd@example.com', 3.00, 'Infinity', 7)
"""


@pytest.fixture(params=["postgres", "redshift"])
def pg_target(request):
    return request.getfixturevalue(f"wh_{request.param}")


def test_numeric_nan_is_rejected_and_wide_numerics_keep_their_digits(tmp_path, pg_target, iterable_sandbox, bodies):
    sandbox, thread = iterable_sandbox
    schema = pg_target.model_schema
    pg_target.execute(f'CREATE TABLE "{schema}".pgnum_customers '
                      "(id int, email text, price numeric(10,2), big numeric, wide numeric(50,2))")
    pg_target.execute(f'INSERT INTO "{schema}".pgnum_customers VALUES {ROWS}')
    root = tmp_path / "project"
    write_iterable_project(root, pg_target, thread.url, MODEL, ["price", "big", "wide", "total"])

    # `dinsync plan` shows the values as sent (before: it failed on the NaN, ArrowInvalid), a NaN or
    # an Infinity as the row's rejection; a number a float cannot hold as its digits
    code, plan = run_cli(root, pg_target, "plan", "--samples", "5")
    assert code == 0, plan
    rows = {s["key"]: s for s in plan["plans"][0]["samples"]["added"]}
    assert "price" not in rows["b@example.com"]["fields"]
    assert [r["field"] for r in rows["b@example.com"]["rejected"]] == ["price"]
    assert rows["a@example.com"]["fields"]["big"] == "12345678901234567.89"
    assert [r["field"] for r in rows["d@example.com"]["rejected"]] == ["big"]

    code, result = run_cli(root, pg_target, "sync")
    assert code == 0, result
    [r] = result["runs"]
    assert (r["added"], r["sent"], r["acknowledged"], r["rejected"], r["parked"]) == (4, 2, 2, 2, 2), r

    # The NaN row and the Infinity row are rejected with a reason; nothing was sent for them.
    code, rejections = run_cli(root, pg_target, "rejections", "users")
    assert code == 0, rejections
    assert {(x["key"], x["field"], x["reason"]) for x in rejections["rejections"]} == {
        ("b@example.com", "price", 'field "price": NaN/infinite is not valid JSON'),
        ("d@example.com", "big", 'field "big": NaN/infinite is not valid JSON'),
    }
    users = thread.call(lambda: {u["email"]: dict(u["dataFields"]) for u in sandbox.users})
    assert set(users) == {"a@example.com", "c@example.com"}

    # Every digit of the wide numerics travelled, as JSON numbers.
    [body] = bodies
    assert '"big":12345678901234567.89' in body
    assert '"wide":1234567890123456789012345.25' in body
    assert '"total":1234567902469135690246919.89' in body  # sum() of an unconstrained numeric
    # declared scales keep their form; an unconstrained numeric's integral value gets a fraction
    # (its other values have one: a platform typing a field by its first number sees decimals only)
    assert '"price":1.50' in body and '"wide":-5.00' in body and '"big":7.0' in body
    assert "b@example.com" not in body and "null" not in body

    # Parked: the next run plans nothing for them until their values change.
    code, again = run_cli(root, pg_target, "sync")
    assert code == 0 and (again["runs"][0]["sent"], again["runs"][0]["added"]) == (0, 0), again
    pg_target.execute(f'UPDATE "{schema}".pgnum_customers SET price = 4.25 WHERE id = 2')
    code, fixed = run_cli(root, pg_target, "sync")
    assert code == 0 and fixed["runs"][0]["acknowledged"] == 1, fixed
    assert thread.call(lambda: dict(sandbox.users.get("b@example.com")["dataFields"]))["price"] == 4.25


DATES_MODEL = """\
-- primary_key: id
-- model_type: user
select id, email, d, ts, tstz from pgcal_customers
"""


def test_dates_beyond_the_calendar_reject_their_row_on_both_read_paths(tmp_path, pg_target, iterable_sandbox, bodies):
    """A date or timestamp PostgreSQL (or Redshift: 4713 BC to 294276 AD) holds beyond the years 1
    to 9999, or at ±infinity, rejects its row; before, the server-side cursor (Redshift's path, and
    PostgreSQL's without ADBC) failed the whole run on psycopg's 'date too large'."""
    sandbox, thread = iterable_sandbox
    schema = pg_target.model_schema
    pg_target.execute(f'CREATE TABLE "{schema}".pgcal_customers (id int, email text, d date, ts timestamp, tstz timestamptz)')
    pg_target.execute(f"""INSERT INTO "{schema}".pgcal_customers VALUES
        (1, 'a@example.com', '2020-01-02', '2020-01-02 03:04:05', '2020-01-02 03:04:05+00'),
        (2, 'b@example.com', 'infinity', '2020-01-02 03:04:05', NULL),
        (3, 'c@example.com', '4713-01-01 BC', NULL, NULL),
        (4, 'd@example.com', NULL, '-infinity', NULL),
        (5, 'e@example.com', NULL, '12000-01-01 00:00:00', 'infinity')""")
    root = tmp_path / "project"
    write_iterable_project(root, pg_target, thread.url, DATES_MODEL, ["d", "ts", "tstz"])

    code, result = run_cli(root, pg_target, "sync")
    assert code == 0, result
    [r] = result["runs"]
    assert (r["added"], r["acknowledged"], r["rejected"]) == (5, 1, 4), r
    code, rejections = run_cli(root, pg_target, "rejections", "users")
    assert {x["key"] for x in rejections["rejections"]} == {"b@example.com", "c@example.com", "d@example.com", "e@example.com"}
    assert all("date out of range" in x["reason"] for x in rejections["rejections"]), rejections
    users = thread.call(lambda: {u["email"]: dict(u["dataFields"]) for u in sandbox.users})
    assert users == {"a@example.com": {"d": "2020-01-02", "ts": "2020-01-02T03:04:05", "tstz": "2020-01-02T03:04:05Z"}}


def test_a_numeric_beyond_a_float_sent_as_a_string_keeps_its_digits(tmp_path, wh_postgres, iterable_sandbox, bodies):
    """`type: string` sends a numeric as a JSON string of its digits: one beyond a 64-bit float's
    range has that form (only a JSON number lacks it) and is sent; before, its row was rejected.
    A NaN is still rejected, as a float NaN is under `type: string`."""
    sandbox, thread = iterable_sandbox
    schema = wh_postgres.model_schema
    wh_postgres.execute(f'CREATE TABLE "{schema}".pgstr_customers (id int, email text, big numeric)')
    wh_postgres.execute(f"""INSERT INTO "{schema}".pgstr_customers VALUES
        (1, 'a@example.com', 1e400), (2, 'b@example.com', 'NaN'), (3, 'c@example.com', 12.50)""")
    root = tmp_path / "project"
    write_iterable_project(root, wh_postgres, thread.url,
                           "-- primary_key: id\n-- model_type: user\nselect id, email, big from pgstr_customers\n", [])
    sync = root / "syncs" / "users.yml"
    sync.write_text(sync.read_text().replace("fields:\n", "fields:\n  - {column: big, field: big, type: string}\n"))

    code, result = run_cli(root, wh_postgres, "sync")
    assert code == 0, result
    [r] = result["runs"]
    assert (r["acknowledged"], r["rejected"]) == (2, 1), r
    users = thread.call(lambda: {u["email"]: dict(u["dataFields"]) for u in sandbox.users})
    assert users == {"a@example.com": {"big": "1" + "0" * 400}, "c@example.com": {"big": "12.50"}}


def test_numeric_arrays_are_sent_as_numbers_and_a_nan_element_rejects_its_row(tmp_path, pg_target, iterable_sandbox,
                                                                              bodies):
    """A `numeric[]` is sent as an array of JSON numbers with their exact digits, on both read
    paths (ADBC, the server-side cursor); an element NaN or ±Infinity rejects its row, as a NaN
    numeric alone does. Before, the elements went as JSON strings ("1.5") and the NaN as "nan"."""
    sandbox, thread = iterable_sandbox
    schema = pg_target.model_schema
    pg_target.execute(f'CREATE TABLE "{schema}".pgarr_customers (id int, email text, scores numeric[], '
                      "prices numeric(10,2)[])")
    pg_target.execute(f"""INSERT INTO "{schema}".pgarr_customers VALUES
        (1, 'a@example.com', ARRAY[1.5, 2, 12345678901234567890.125], ARRAY[1.5, 2]),
        (2, 'b@example.com', ARRAY[1, 'NaN']::numeric[], ARRAY[3]),
        (3, 'c@example.com', ARRAY[NULL, -0.5]::numeric[], '{{}}'),
        (4, 'd@example.com', ARRAY['-Infinity']::numeric[], NULL)""")
    root = tmp_path / "project"
    write_iterable_project(root, pg_target, thread.url,
                           "-- primary_key: id\n-- model_type: user\nselect id, email, scores, prices from pgarr_customers\n",
                           ["scores", "prices"])

    code, result = run_cli(root, pg_target, "sync")
    assert code == 0, result
    [r] = result["runs"]
    assert (r["acknowledged"], r["rejected"]) == (2, 2), r
    code, rejections = run_cli(root, pg_target, "rejections", "users")
    assert {(x["key"], x["field"], x["reason"]) for x in rejections["rejections"]} == {
        ("b@example.com", "scores", 'field "scores": NaN/infinite is not valid JSON'),
        ("d@example.com", "scores", 'field "scores": NaN/infinite is not valid JSON'),
    }
    [body] = bodies
    assert '"scores":[1.5,2,12345678901234567890.125]' in body and '"prices":[1.50,2.00]' in body
    assert '"scores":[null,-0.5]' in body and '"prices":[]' in body
    users = thread.call(lambda: {u["email"]: dict(u["dataFields"]) for u in sandbox.users})
    assert users["c@example.com"] == {"scores": [None, -0.5], "prices": []}
    assert set(users) == {"a@example.com", "c@example.com"}


def test_a_numeric_of_scale_zero_is_sent_as_an_integer(tmp_path, pg_target, iterable_sandbox, bodies):
    """A `numeric(p, 0)` declares its scale as `numeric(10, 2)` does: its values are integers and are
    sent so, as DuckDB's DECIMAL(20, 0) is. The first run read them from a plan column that kept the
    declared scale; later runs from one (a CASE of the model's) that had lost it, and sent every
    changed value with a fraction (12345678901234567891.0, 43.0): Iterable, which had typed the
    field as an integer, refused each such row (RequestFieldsTypesMismatched), parking it; Splio's
    int fields refuse them too. An unconstrained numeric's integral value still gets its fraction."""
    sandbox, thread = iterable_sandbox
    schema = pg_target.model_schema
    pg_target.execute(f'CREATE TABLE "{schema}".pgint_customers '
                      "(id int, email text, n0 numeric(20,0), small numeric(4,0), free numeric)")
    pg_target.execute(f"""INSERT INTO "{schema}".pgint_customers VALUES
        (1, 'a@example.com', 12345678901234567890, -42, 7)""")
    root = tmp_path / "project"
    write_iterable_project(root, pg_target, thread.url,
                           "-- primary_key: id\n-- model_type: user\nselect id, email, n0, small, free, "
                           "n0 + 1 as computed from pgint_customers\n", ["n0", "small", "free", "computed"])
    code, result = run_cli(root, pg_target, "sync")
    assert code == 0, result
    [body] = bodies
    assert '"n0":12345678901234567890,"small":-42,"free":7.0,"computed":12345678901234567891.0' in body, body
    # a later run plans the changes (a CASE of the model's values: the declared scale is lost there)
    pg_target.execute(f'UPDATE "{schema}".pgint_customers SET n0 = n0 + 1, small = 43, free = 8')
    code, result = run_cli(root, pg_target, "sync")
    assert '"n0":12345678901234567891,"small":43,"free":8.0,"computed":12345678901234567892.0' in bodies[1]
    assert code == 0 and result["runs"][0]["acknowledged"] == 1, result


def test_an_unconstrained_numeric_keeps_one_json_type_across_runs_and_type_integer_sends_integers(
        tmp_path, pg_target, iterable_sandbox, bodies):
    """An unconstrained numeric (PostgreSQL's `sum(bigint)`, a `numeric` column) may hold `5` on one
    row and `0.5` on the next: its integral values are sent with a fraction (`7.0`) on every run, so
    that a platform typing a field by its first number (Iterable) types it as a decimal and refuses
    none of them; DuckDB's `sum()` of integers is an integer type and sends `7`. `type: integer`
    sends the integers as integers (a Splio `int` field refuses `7.0`), on the first run and later."""
    sandbox, thread = iterable_sandbox
    schema = pg_target.model_schema
    pg_target.execute(f'CREATE TABLE "{schema}".pgfree_customers (id int, email text, cents bigint, u numeric)')
    pg_target.execute(f"""INSERT INTO "{schema}".pgfree_customers VALUES
        (1, 'a@example.com', 7, 5), (2, 'b@example.com', 9, 0.5)""")
    root = tmp_path / "project"
    write_iterable_project(root, pg_target, thread.url,
                           "-- primary_key: id\n-- model_type: user\nselect id, email, u, sum(cents) as total, "
                           "sum(cents) as total_int from pgfree_customers group by id, email, u\n", [])
    sync = root / "syncs" / "users.yml"
    sync.write_text(sync.read_text().replace("fields:\n", "fields: [{column: u, field: u}, {column: total, field: "
                                             "total}, {column: total_int, field: total_int, type: integer}]\n"))
    code, result = run_cli(root, pg_target, "sync")
    assert code == 0 and result["runs"][0]["acknowledged"] == 2, result
    assert '"u":5.0,"total":7.0,"total_int":7}' in bodies[0] and '"u":0.5,"total":9.0,"total_int":9}' in bodies[0]
    pg_target.execute(f'UPDATE "{schema}".pgfree_customers SET cents = cents + 1')
    code, result = run_cli(root, pg_target, "sync")
    assert code == 0 and result["runs"][0]["acknowledged"] == 2, result
    assert '{"total":8.0,"total_int":8}' in bodies[1] and '{"total":10.0,"total_int":10}' in bodies[1]  # (changed)
