"""PostgreSQL arrays of more than one dimension, on PostgreSQL's path (ADBC) and the cursor path
(Redshift's, run against PostgreSQL): sent as nested lists, whatever the other rows of the column hold.

A column of type `int[]` holds arrays of any number of dimensions, row by row. Before, ADBC read
`{{1,2},{3,4}}` as the list of its elements, and the platform received [1,2,3,4]; the cursor path
failed the whole run on a column mixing 1-D and 2-D arrays (ArrowInvalid: cannot mix list and
non-list). Now each array is read as its elements and its dimensions (array_shapes), and sent nested.
"""
from __future__ import annotations

import datetime as dt

import pytest

from dinsync.diff import DiffSpec, Planner
from dinsync.warehouses.array_shapes import split
from dinsync.warehouses.pgfamily import CursorStream
from tests.warehouses.support import WarehouseUnderTest, run_cli, write_iterable_project

ARRAYS_MODEL = """\
-- primary_key: email
-- model_type: user
select email, ints, texts, nums from pgarr_customers
"""
ROWS = """
    ('a@x.com', '{{1,2},{3,4}}', '{{a,b},{c,d}}', '{{1.5,2},{3,4}}'),
    ('b@x.com', '{1,2}', '{x}', '{1}'),
    ('c@x.com', '[0:1]={5,6}', '[0:1]={a,b}', NULL),
    ('d@x.com', '{1,NULL,3}', '{{NULL,"q,]"},{"r\\"",NULL}}', '{{{1}},{{2}}}'),
    ('e@x.com', NULL, NULL, '{}')"""
SENT = {
    "a@x.com": {"ints": [[1, 2], [3, 4]], "texts": [["a", "b"], ["c", "d"]], "nums": [[1.5, 2], [3, 4]]},
    "b@x.com": {"ints": [1, 2], "texts": ["x"], "nums": [1]},
    "c@x.com": {"ints": [5, 6], "texts": ["a", "b"], "nums": None},
    "d@x.com": {"ints": [1, None, 3], "texts": [[None, "q,]"], ['r"', None]], "nums": [[[1]], [[2]]]},
    "e@x.com": {"ints": None, "texts": None, "nums": []},
}


def _create(execute, schema: str) -> None:
    execute(f'CREATE TABLE "{schema}".pgarr_customers (email text, ints int[], texts text[], nums numeric[])')
    execute(f'INSERT INTO "{schema}".pgarr_customers VALUES {ROWS}')


@pytest.fixture(params=["postgres", "redshift"])
def target(request, tmp_path):
    target = request.getfixturevalue(f"wh_{request.param}")
    yield target


def test_arrays_of_more_than_one_dimension_are_sent_nested(tmp_path, target, iterable_sandbox):
    sandbox, thread = iterable_sandbox
    _create(target.execute, target.model_schema)
    root = tmp_path / "project"
    write_iterable_project(root, target, thread.url, ARRAYS_MODEL, ["ints", "texts", "nums"])

    code, plan = run_cli(root, target, "plan", "--samples", "5")
    assert code == 0, plan
    samples = {s["key"]: s["fields"] for s in plan["plans"][0]["samples"]["added"]}
    assert samples["a@x.com"]["ints"] == [[1, 2], [3, 4]] and samples["b@x.com"]["ints"] == [1, 2], samples
    code, result = run_cli(root, target, "sync")
    assert code == 0, result
    assert result["runs"][0]["acknowledged"] == 5, result
    users = thread.call(lambda: {u["email"]: dict(u["dataFields"]) for u in sandbox.users})
    assert users == SENT


@pytest.mark.parametrize("path", ["adbc", "cursor"])
def test_stream_reads_each_array_as_its_elements_and_dimensions(tmp_path, path):
    pg = WarehouseUnderTest("postgres", tmp_path)
    try:
        _create(pg.wh.execute, pg.schema)
        sql = "SELECT email, ints, texts FROM pgarr_customers ORDER BY email"
        stream = pg.wh.stream(sql) if path == "adbc" else CursorStream.stream(pg.wh, sql)
        [batch] = list(stream)
    finally:
        pg.close()
    ints, texts = split(batch.column("ints")), split(batch.column("texts"))
    assert [ints[0].to_pylist(), ints[1].to_pylist()] == [
        [[1, 2, 3, 4], [1, 2], [5, 6], [1, None, 3], None], [[2, 2], None, None, None, None]]
    assert [texts[0].to_pylist(), texts[1].to_pylist()] == [
        [["a", "b", "c", "d"], ["x"], ["a", "b"], [None, "q,]", 'r"', None], None], [[2, 2], None, None, [2, 2], None]]
    assert batch.to_pylist()[0] == {"email": "a@x.com", "ints": [[1, 2], [3, 4]], "texts": [["a", "b"], ["c", "d"]]}


def test_a_change_of_dimensions_alone_is_a_change(tmp_path, target, iterable_sandbox):
    # the row fingerprint hashed an int[] / numeric[] by its type's hash, which reads the elements
    # only: {{1,2},{3,4}} -> {1,2,3,4} was no change, and the platform kept [[1,2],[3,4]]
    sandbox, thread = iterable_sandbox
    s = target.model_schema
    _create(target.execute, s)
    root = tmp_path / "project"
    write_iterable_project(root, target, thread.url, ARRAYS_MODEL, ["ints", "texts", "nums"])
    code, result = run_cli(root, target, "sync")
    assert code == 0 and result["runs"][0]["acknowledged"] == 5, result

    target.execute(f"""UPDATE "{s}".pgarr_customers SET ints = '{{1,2,3,4}}' WHERE email = 'a@x.com'""")
    target.execute(f"""UPDATE "{s}".pgarr_customers SET nums = '{{{{1,2}}}}' WHERE email = 'd@x.com'""")
    target.execute(f"""UPDATE "{s}".pgarr_customers SET ints = '{{{{5}},{{6}}}}' WHERE email = 'c@x.com'""")
    code, result = run_cli(root, target, "sync")
    assert code == 0, result
    assert result["runs"][0]["acknowledged"] == 3, result
    users = thread.call(lambda: {u["email"]: dict(u["dataFields"]) for u in sandbox.users})
    assert (users["a@x.com"]["ints"], users["d@x.com"]["nums"], users["c@x.com"]["ints"]) == (
        [1, 2, 3, 4], [[1, 2]], [[5], [6]])

    code, result = run_cli(root, target, "sync")  # and nothing else is a change
    assert code == 0 and result["runs"][0]["acknowledged"] == 0, result


def test_the_array_columns_are_named_for_the_fingerprint(tmp_path):
    pg = WarehouseUnderTest("postgres", tmp_path)
    try:
        s = pg.schema
        pg.wh.execute(f'CREATE DOMAIN "{s}".ints AS int[]')
        pg.wh.execute(f'CREATE TYPE "{s}".mood AS ENUM (\'sad\', \'ok\')')
        sql = (f"""SELECT '{{{{1}}}}'::"{s}".ints AS d, '{{1}}'::int[] AS i, '{{a}}'::text[] AS t, """
               f"""'{{sad}}'::"{s}".mood[] AS m, 1 AS n, '{{1.5}}'::numeric[] AS x""")
        forms = pg.wh.shape_hash_forms(sql, ["d", "i", "t", "m", "n", "x"])
    finally:
        pg.close()
    # (text[] is hashed as its text anyway, and an array of the database's enum: the planner leaves them out)
    assert sorted(forms) == ["d", "i", "t", "x"]


def test_fingerprints_of_rows_without_such_arrays_are_as_before(tmp_path, monkeypatch):
    # the dimensions are hashed along only where there are more than one: the fingerprints a
    # snapshot holds of the other rows stay as they were (no statement rewrites them)
    pg = WarehouseUnderTest("postgres", tmp_path)
    try:
        _create(pg.wh.execute, pg.schema)
        spec = DiffSpec(sync="s1", model_sql="SELECT * FROM pgarr_customers", key_column="email",
                        key_normalization="email", fields=[(c, c) for c in ("ints", "texts", "nums")],
                        state_schema=pg.state_schema)

        def sync() -> dict[str, int]:
            """{key: its fingerprint in the snapshot} once the plan's rows are acknowledged."""
            p = Planner(pg.wh, spec)
            p.ensure_state()
            p.plan()
            p.commit_acknowledged([k for b in p.stream_sendable(batch_rows=10) for k in b.column("_key").to_pylist()])
            rows = pg.wh.query(f'SELECT _key, _fp FROM "{pg.state_schema}"."snap_s1"').to_pylist()
            return {r["_key"]: r["_fp"] for r in rows}

        with monkeypatch.context() as m:
            m.setattr(type(pg.wh), "shape_hash_forms", lambda self, sql, columns: {})
            before = sync()
        after = sync()
    finally:
        pg.close()
    assert {k for k in before if before[k] != after[k]} == {"a@x.com", "d@x.com"}


RANGES_MODEL = """\
-- primary_key: email
-- model_type: user
select email, spans, days from pgarr_ranges
"""


def test_arrays_of_ranges_are_sent_as_lists_of_their_text(tmp_path, target, iterable_sandbox):
    # ADBC reads an array of ranges as an opaque value, which was read as the array's text, one
    # string: '{"[1,3)",NULL,empty}' where the cursor path sends ["[1,3)", null, "empty"]
    sandbox, thread = iterable_sandbox
    s = target.model_schema
    target.execute(f'CREATE TABLE "{s}".pgarr_ranges (email text, spans int4range[], days daterange[])')
    target.execute(f"""INSERT INTO "{s}".pgarr_ranges VALUES
        ('a@x.com', ARRAY['[1,3)'::int4range, NULL, 'empty'], ARRAY['[2024-01-01,2024-02-01)'::daterange]),
        ('b@x.com', ARRAY[ARRAY['[1,3)'::int4range], ARRAY['[5,7)'::int4range]], NULL),
        ('c@x.com', NULL, '{{}}')""")
    root = tmp_path / "project"
    write_iterable_project(root, target, thread.url, RANGES_MODEL, ["spans", "days"])

    code, result = run_cli(root, target, "sync")
    assert code == 0 and result["runs"][0]["acknowledged"] == 3, result
    users = thread.call(lambda: {u["email"]: dict(u["dataFields"]) for u in sandbox.users})
    assert users == {
        "a@x.com": {"spans": ["[1,3)", None, "empty"], "days": ["[2024-01-01,2024-02-01)"]},
        "b@x.com": {"spans": [["[1,3)"], ["[5,7)"]], "days": None},
        "c@x.com": {"spans": None, "days": []},
    }


DATES_MODEL = """\
-- primary_key: email
-- model_type: user
select email, days, stamps from pgarr_dates
"""


def test_an_array_holding_an_infinite_date_rejects_its_row_only(tmp_path, target, iterable_sandbox):
    # psycopg cannot load 'infinity' (pg_values._load_beyond_calendar reads it as a marker): in an
    # array, on the cursor path, the marker failed the whole run (ArrowTypeError), where ADBC reads a
    # day beyond the calendar, whose row the mapping rejects
    sandbox, thread = iterable_sandbox
    s = target.model_schema
    target.execute(f'CREATE TABLE "{s}".pgarr_dates (email text, days date[], stamps timestamp[])')
    target.execute(f"""INSERT INTO "{s}".pgarr_dates VALUES
        ('a@x.com', '{{2024-01-02,infinity}}', '{{"2024-01-02 03:04:05"}}'),
        ('b@x.com', '{{{{2024-01-02}},{{2024-01-03}}}}', '{{{{"2024-01-02 03:04:05",-infinity}}}}'),
        ('c@x.com', '{{2024-01-02,NULL}}', '{{{{"2024-01-02 03:04:05"}}}}')""")
    root = tmp_path / "project"
    write_iterable_project(root, target, thread.url, DATES_MODEL, ["days", "stamps"])

    code, result = run_cli(root, target, "sync")
    assert code == 0, result
    assert result["runs"][0]["acknowledged"] == 1 and result["runs"][0]["rejected"] == 2, result
    users = thread.call(lambda: {u["email"]: dict(u["dataFields"]) for u in sandbox.users})
    assert users == {"c@x.com": {"days": ["2024-01-02", None], "stamps": [["2024-01-02T03:04:05"]]}}
    code, rejected = run_cli(root, target, "rejections", "users")
    reasons = {r["key"]: r["reason"] for r in rejected["rejections"]}
    beyond = "date out of range (years 1 to 9999; an infinity?), which cannot be sent"
    assert reasons == {"a@x.com": f'field "days": {beyond}', "b@x.com": f'field "stamps": {beyond}'}, rejected


@pytest.mark.parametrize("path", ["adbc", "cursor"])
def test_arrays_of_a_type_of_the_database_are_lists_on_both_paths(tmp_path, path):
    # psycopg has no loader for the array of an enum or a composite made in the database: the cursor
    # path read it as the array's text, one string ('{sad,ok}', '{{"(1,x)"},...}') where ADBC
    # reads a list (of the composites' text forms), so a sync sent another value without ADBC
    pg = WarehouseUnderTest("postgres", tmp_path)
    try:
        s = pg.schema
        pg.wh.execute(f'CREATE TYPE "{s}".mood AS ENUM (\'sad\', \'ok\')')
        pg.wh.execute(f'CREATE TYPE "{s}".comp AS (a int, b text)')
        sql = (f"""SELECT ARRAY['sad'::"{s}".mood, NULL, 'ok'] AS moods, """
               f"""ARRAY[ARRAY['sad'::"{s}".mood], ARRAY['ok'::"{s}".mood]] AS grid, """
               f"""ARRAY['(1,x)'::"{s}".comp, '(2,"y z")'] AS comps, NULL::"{s}".mood[] AS none""")
        stream = pg.wh.stream(sql) if path == "adbc" else CursorStream.stream(pg.wh, sql)
        [row] = [r for b in stream for r in b.to_pylist()]
    finally:
        pg.close()
    assert row == {"moods": ["sad", None, "ok"], "grid": [["sad"], ["ok"]], "comps": ["(1,x)", '(2,"y z")'],
                   "none": None}


@pytest.mark.parametrize("kind", ["postgres", "redshift"])
def test_the_cursor_path_gives_a_column_one_type_when_its_first_rows_are_null(tmp_path, kind):
    # the cursor path inferred the Arrow type of an array (or a uuid, a jsonb: read as text) from the
    # rows of each fetch: NULL in all of the first 100 (a sparse column) made it `null` there and
    # list<int64> later, and the stream failed (ArrowInvalid: Schema at index 1 was different)
    pg = WarehouseUnderTest(kind, tmp_path)
    try:
        sql = ("SELECT g, CASE WHEN g > 3000 THEN ARRAY[g, g] END AS ints, "
               "CASE WHEN g > 3000 THEN ARRAY[ARRAY['a'], ARRAY['b']] END AS texts, "
               "CASE WHEN g > 3000 THEN CAST('e8a2996c-0000-4000-8000-000000000001' AS uuid) END AS u, "
               "CASE WHEN g > 3000 THEN CAST('{\"a\": 1}' AS jsonb) END AS j, "
               "CASE WHEN g > 3000 THEN ARRAY[CAST('\\x01' AS bytea)] END AS b, "
               "CASE WHEN g > 3000 THEN CAST('10:00' AS time) END AS t "
               "FROM generate_series(1, 3500) AS g ORDER BY g")
        batches = list(CursorStream.stream(pg.wh, sql, batch_rows=100_000))
    finally:
        pg.close()
    assert len(batches) == 1 and batches[0].num_rows == 3500
    assert batches[0].slice(3499).to_pylist() == [
        {"g": 3500, "ints": [3500, 3500], "texts": [["a"], ["b"]], "u": "e8a2996c-0000-4000-8000-000000000001",
         "j": '{"a": 1}', "b": [b"\x01"], "t": dt.time(10)}]


def test_an_array_of_a_numeric_domain_is_an_array_of_numbers(tmp_path, wh_postgres, iterable_sandbox):
    # ADBC names such an array's elements by their domain and reads them as numeric text: they were
    # sent as strings (["1.50"]), and a NaN as "nan", where a numeric[]'s are numbers and a NaN
    # rejects its row
    sandbox, thread = iterable_sandbox
    s = wh_postgres.model_schema
    wh_postgres.execute(f'CREATE DOMAIN "{s}".amount AS numeric(8,2)')
    wh_postgres.execute(f'CREATE DOMAIN "{s}".big_amount AS "{s}".amount')
    wh_postgres.execute(f'CREATE TABLE "{s}".pgarr_amounts '
                        f'(email text, amounts "{s}".amount[], bigs "{s}".big_amount[])')
    wh_postgres.execute(f"""INSERT INTO "{s}".pgarr_amounts VALUES ('a@x.com', '{{1.5,2}}', '{{{{3}},{{4.25}}}}'),
        ('b@x.com', '{{1,NaN}}', '{{}}'), ('c@x.com', NULL, '{{NULL}}')""")
    root = tmp_path / "project"
    model = "-- primary_key: email\n-- model_type: user\nselect email, amounts, bigs from pgarr_amounts\n"
    write_iterable_project(root, wh_postgres, thread.url, model, ["amounts", "bigs"])
    code, result = run_cli(root, wh_postgres, "sync")
    assert code == 0, result
    users = thread.call(lambda: {u["email"]: dict(u["dataFields"]) for u in sandbox.users})
    assert users == {"a@x.com": {"amounts": [1.5, 2], "bigs": [[3], [4.25]]},
                     "c@x.com": {"amounts": None, "bigs": [None]}}
    code, rejected = run_cli(root, wh_postgres, "rejections", "users")
    assert {r["key"]: r["reason"] for r in rejected["rejections"]} == {
        "b@x.com": 'field "amounts": NaN/infinite is not valid JSON'}


LITERALS_MODEL = """\
-- primary_key: email
-- model_type: user
-- arrays written in PostgreSQL's text form: values, not Jinja
select email, '{{1,2},{3,4}}'::int[] as grid, E'{{a,b},{"c}}",d}}'::text[] as words, $${{x},{y}}$$ as dollars
from pgarr_customers where email = 'b@x.com'
"""


def test_an_array_literal_in_the_model_is_not_taken_for_jinja(tmp_path, wh_postgres, iterable_sandbox):
    """PostgreSQL's text form of a 2-D array, `'{{1,2},{3,4}}'`, written as a string literal in the
    model: the model was refused as `unsupported Jinja {{1,2},{3,4}}` (exit 3) although Jinja
    cannot parse it; it is a value and is sent as one."""
    sandbox, thread = iterable_sandbox
    _create(wh_postgres.execute, wh_postgres.model_schema)
    root = tmp_path / "project"
    write_iterable_project(root, wh_postgres, thread.url, LITERALS_MODEL, ["grid", "words", "dollars"])
    code, result = run_cli(root, wh_postgres, "sync")
    assert code == 0, result
    users = thread.call(lambda: {u["email"]: dict(u["dataFields"]) for u in sandbox.users})
    assert users == {"b@x.com": {"grid": [[1, 2], [3, 4]], "words": [["a", "b"], ["c}}", "d"]], "dollars": "{{x},{y}}"}}
