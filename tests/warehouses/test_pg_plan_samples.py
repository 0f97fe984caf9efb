"""`dinsync plan`'s samples on PostgreSQL of dates and timestamps beyond the calendar Python holds
('infinity', 4713 BC, year 10000): the sample shows such a value as out of range, as the DuckDB
path does, instead of failing the whole plan ("date too large (after year 10K)"); the sync rejects
that row alone."""
from __future__ import annotations

import pytest

from dinsync.diff import DiffSpec, Planner
from tests.warehouses.support import WarehouseUnderTest


@pytest.fixture
def pg(tmp_path):
    t = WarehouseUnderTest("postgres", tmp_path)
    yield t
    t.close()


def test_samples_of_dates_beyond_the_calendar_say_so(pg):
    s = pg.schema
    pg.wh.execute(f'CREATE TABLE "{s}".people (email TEXT, born DATE, seen TIMESTAMPTZ)')
    pg.wh.execute(f"""INSERT INTO "{s}".people VALUES ('a@x.com', 'infinity', '-infinity'),
                      ('b@x.com', '4713-01-01 BC', '10000-01-01 00:00:00+00'), ('c@x.com', '2024-05-17', NULL)""")
    p = Planner(pg.wh, DiffSpec(sync="s", model_sql=f'SELECT * FROM "{s}".people', key_column="email",
                                key_normalization="email", fields=[("born", "born"), ("seen", "seen")],
                                state_schema=pg.state_schema), cache=False)
    p.ensure_state()
    assert p.plan().added == 3
    rows = {r["key"]: r["fields"] for r in p.sample("added", limit=5)}
    assert str(rows["c@x.com"]["born"]) == "2024-05-17" and rows["c@x.com"]["seen"] is None
    for key, field in (("a@x.com", "born"), ("a@x.com", "seen"), ("b@x.com", "born"), ("b@x.com", "seen")):
        assert "out of range" in str(rows[key][field]), (key, field, rows[key][field])


def test_cli_plan_samples_are_the_values_the_sync_sends(tmp_path, wh_postgres, iterable_sandbox, bodies):
    """`dinsync plan` on PostgreSQL showed timestamps and numerics as the warehouse holds them
    ("2024-01-02 01:04:05+00:00", "12.50") and a NaN as a value, where the sync sends
    "2024-01-02T01:04:05Z", a JSON number, and rejects the NaN's row."""
    import json

    from tests.warehouses.support import run_cli, write_iterable_project

    sandbox, thread = iterable_sandbox
    schema = wh_postgres.model_schema
    wh_postgres.execute(f'CREATE TABLE "{schema}".samples_customers '
                        "(id int, email text, seen timestamptz, price numeric(10,2), n bigint, ok boolean, doc jsonb)")
    wh_postgres.execute(f"""INSERT INTO "{schema}".samples_customers VALUES
        (1, 'a@example.com', '2024-01-02 03:04:05+02', 12.50, 9007199254740993, true, '{{"a": [1, 2]}}'),
        (2, 'b@example.com', '2024-01-02 03:04:05+00', 'NaN', 1, false, 'null')""")
    root = tmp_path / "project"
    write_iterable_project(root, wh_postgres, thread.url, "-- primary_key: id\n-- model_type: user\n"
                           "select id, email, seen, price, n, ok, doc from samples_customers\n",
                           ["seen", "price", "n", "ok", "doc"])
    code, plan = run_cli(root, wh_postgres, "plan", "--samples", "5")
    assert code == 0, plan
    rows = {s["key"]: s for s in plan["plans"][0]["samples"]["added"]}
    code, result = run_cli(root, wh_postgres, "sync")
    assert code == 0, result
    [body] = bodies
    sent = {u["email"]: u["dataFields"] for u in json.loads(body)["users"]}
    assert rows["a@example.com"]["fields"] == sent["a@example.com"]
    assert rows["a@example.com"]["fields"]["seen"] == "2024-01-02T01:04:05Z"
    assert rows["a@example.com"]["fields"]["n"] == 9007199254740993
    assert "b@example.com" not in sent
    assert rows["b@example.com"]["rejected"] == [{"field": "price",
                                                  "reason": 'field "price": NaN/infinite is not valid JSON'}]


@pytest.mark.parametrize("kind", ["postgres", "redshift"])
def test_cli_plan_samples_of_numerics_of_more_than_38_digits(kind, request, tmp_path, iterable_sandbox, bodies):
    """A numeric whose values need more than 38 digits together (`numeric(50,2)`, an unconstrained
    one holding 1e-30 and a 30-digit integer, a `numeric[]` of both) was read by `dinsync plan` as
    a 256-bit decimal, which Polars cannot read: the plan panicked (a Rust traceback, no output).
    Its samples show the digits (as a string where a 64-bit float holds fewer), and the sync sends
    them as JSON numbers."""
    import json

    from tests.warehouses.support import run_cli, write_iterable_project

    target = request.getfixturevalue(f"wh_{kind}")
    sandbox, thread = iterable_sandbox
    schema = target.model_schema
    postgres = kind == "postgres"  # (Redshift has no arrays)
    target.execute(f'CREATE TABLE "{schema}".wide_customers (email text, wide numeric(50,2), free numeric'
                   + (", arr numeric[])" if postgres else ")"))
    target.execute(f"""INSERT INTO "{schema}".wide_customers VALUES
        ('a@example.com', 123456789012345678901234567890123456789012345.5, 1e-30
         {", ARRAY[1e-30, 123456789012345678901234567890]" if postgres else ""}),
        ('b@example.com', 1, 123456789012345678901234567890{", ARRAY[1.5]" if postgres else ""})""")
    fields = ["wide", "free"] + ["arr"] * postgres
    root = tmp_path / "project"
    write_iterable_project(root, target, thread.url, "-- primary_key: email\n-- model_type: user\n"
                           f"select email, {', '.join(fields)} from wide_customers\n", fields)
    code, plan = run_cli(root, target, "plan", "--samples", "5")
    assert code == 0, plan
    rows = {s["key"]: s["fields"] for s in plan["plans"][0]["samples"]["added"]}
    assert rows["a@example.com"]["wide"] == "123456789012345678901234567890123456789012345.50"
    assert rows["b@example.com"]["free"] == "123456789012345678901234567890.0"
    if postgres:
        assert rows["a@example.com"]["arr"] == [1e-30, 123456789012345678901234567890]
    code, result = run_cli(root, target, "sync")
    assert code == 0 and result["runs"][0]["acknowledged"] == 2, result
    [body] = bodies
    assert ('"wide":123456789012345678901234567890123456789012345.50,"free":0.000000000000000000000000000001'
            in body), body


@pytest.mark.parametrize("kind", ["postgres", "redshift"])
def test_cli_plan_samples_of_an_unconstrained_numeric_s_integers_have_the_fraction_sent(kind, request, tmp_path,
                                                                                       iterable_sandbox, bodies):
    """An unconstrained numeric's integral value (PostgreSQL's sum() of a bigint) is sent as `7.0`
    (README: a platform typing a field by its first number would refuse the others); `dinsync plan`
    read its samples another way than the sync's stream and showed `7`. The samples are now read
    by the stream."""
    import json

    from tests.warehouses.support import run_cli, write_iterable_project

    target = request.getfixturevalue(f"wh_{kind}")
    sandbox, thread = iterable_sandbox
    schema = target.model_schema
    target.execute(f'CREATE TABLE "{schema}".orders_customers (email text, n bigint)')
    target.execute(f"""INSERT INTO "{schema}".orders_customers VALUES ('a@example.com', 3), ('a@example.com', 4)""")
    root = tmp_path / "project"
    write_iterable_project(root, target, thread.url, "-- primary_key: email\n-- model_type: user\n"
                           "select email, sum(n) as total from orders_customers group by email\n", ["total"])
    code, plan = run_cli(root, target, "plan", "--samples", "5")
    assert code == 0, plan
    [sample] = plan["plans"][0]["samples"]["added"]
    assert repr(sample["fields"]["total"]) == "7.0", sample
    code, result = run_cli(root, target, "sync")
    assert code == 0, result
    assert [json.loads(b)["users"][0]["dataFields"] for b in bodies] == [{"total": 7.0}]
    assert '"total":7.0' in bodies[0]
