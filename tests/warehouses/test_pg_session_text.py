"""Values whose text form depends on a session setting compare alike from every session, on
PostgreSQL and Redshift's code path (run against PostgreSQL): the diff hashes each value's text.

A timestamptz is written in the session's TimeZone (a role's or database's default, PGTZ in the
client's environment, `settings: {TimeZone: ...}`). Before, a run under another zone than the last
one saw every row holding one in a composite as changed and sent them all again (Redshift: every
row holding one at all), and a scalar or array one on every row changed otherwise, counted as a
changed field. Hashes stored by a UTC session are the same as before (nothing is sent again).
"""
from __future__ import annotations

import json

import pytest

from dinsync.diff import DiffSpec, Planner
from dinsync.diff.render import snapshot_column
from dinsync.warehouses import connect
from tests.warehouses.support import WarehouseUnderTest, run_cli, write_iterable_project


@pytest.fixture(params=["postgres", "redshift"])
def pg(request, tmp_path):
    target = WarehouseUnderTest(request.param, tmp_path)
    yield target
    target.close()


@pytest.fixture
def postgres_only(tmp_path):
    """PostgreSQL alone: Redshift's VARBYTE has no bytea_output."""
    target = WarehouseUnderTest("postgres", tmp_path)
    yield target
    target.close()


class Diff:
    """A sync of table `people` planned by a new session for each plan, under `settings`."""

    def __init__(self, pg, columns: str, fields: list[str]):
        self.pg = pg
        pg.wh.execute(f'CREATE TABLE "{pg.schema}".people (email text, score int, {columns})')
        self.fields = [*fields, "score"]
        self.spec = DiffSpec(sync="s1", model_sql="SELECT * FROM people", key_column="email", key_normalization="email",
                             fields=[(f, f) for f in self.fields], state_schema=pg.state_schema)

    def plan(self, ack: bool = False, **settings: str) -> dict[str, list[str]]:
        """{key: its fields planned as changed} of the added and changed rows."""
        wh = connect(self.pg.kind, **self.pg.options())
        try:
            for name, value in settings.items():
                wh.execute(f"SET {name} = '{value}'")
            p = Planner(wh, self.spec)  # (its rendered SQL cached, as in a run: the same for every session)
            p.ensure_state()
            p.plan()
            xs = ", ".join(f"x{i}" for i in range(len(self.fields)))
            rows = wh.query(f"SELECT _key, {xs} FROM {wh.table_name(self.pg.state_schema, p.plan_table)} "
                            "WHERE _op IN ('added', 'changed')").to_pylist()
            if ack:
                keys = [k for b in p.stream_sendable(batch_rows=10) for k in b.column("_key").to_pylist()]
                p.commit_acknowledged(keys)
            return {r["_key"]: [f for i, f in enumerate(self.fields) if r[f"x{i}"]] for r in rows}
        finally:
            wh.close()


ZONES = ("UTC", "Asia/Tokyo", "America/St_Johns")


def test_timestamptz_values_compare_alike_in_every_time_zone(pg):
    s = pg.schema
    if pg.kind == "redshift":  # (no arrays nor composites on Redshift)
        d = Diff(pg, "ts timestamptz", ["ts"])
        rows = ("('a@x.com', 1, '2024-01-01 10:00:00.5+00'), ('b@x.com', 2, NULL), "
                "('c@x.com', 3, '0044-03-15 10:00:00+00 BC')")
    else:
        pg.wh.execute(f'CREATE TYPE "{s}".stamp AS ("at b" timestamptz, n int)')
        pg.wh.execute(f'CREATE DOMAIN "{s}".tsd AS timestamptz')
        d = Diff(pg, f'ts timestamptz, l timestamptz[], st "{s}".stamp, sts "{s}".stamp[], dd "{s}".tsd, '
                 "r tstzrange", ["ts", "l", "st", "sts", "dd", "r"])
        rows = (f"""('a@x.com', 1, '2024-01-01 10:00:00.5+00', '{{"2024-01-01 10:00:00+00",NULL,infinity}}',
                     '("2024-01-01 10:00:00+00",1)', ARRAY['("2024-01-01 10:00:00+00",1)'::"{s}".stamp, NULL],
                     '0044-03-15 10:00:00+00 BC', '[2024-01-01 10:00:00+00,infinity)'),
                    ('b@x.com', 2, 'infinity', '{{}}', '(,)', '{{"(,)"}}', NULL, 'empty'),
                    ('c@x.com', 3, NULL, NULL, NULL, NULL, '2024-06-30 23:59:59.999999+00', NULL)""")
    pg.wh.execute(f'INSERT INTO "{s}".people VALUES {rows}')
    assert len(d.plan(ack=True, TimeZone="UTC")) == 3
    # the hashes stored are those of the values' text in a UTC session, as before
    hash_sql = ("COALESCE(HASHTEXTEXTENDED(CAST({c} AS TEXT) COLLATE \"C\", 0), 0)" if pg.kind == "postgres"
                else "CASE WHEN {c} IS NULL THEN 0 ELSE FNV_HASH(CAST({c} AS VARCHAR(65535))) END")
    pg.wh.execute("SET TimeZone = 'UTC'")
    differ = " OR ".join(f"s.{snapshot_column(f)} <> {hash_sql.format(c='m.' + f)}" for f in d.fields)
    assert pg.wh.query(f'SELECT m.email FROM "{s}".people m JOIN "{pg.state_schema}".snap_s1 s ON s._key = m.email '
                       f"WHERE {differ}").num_rows == 0
    for zone in ZONES:
        assert d.plan(TimeZone=zone) == {}, zone
    pg.wh.execute(f'UPDATE "{s}".people SET score = score + 10')
    for zone in ZONES:
        assert d.plan(TimeZone=zone) == {k: ["score"] for k in ("a@x.com", "b@x.com", "c@x.com")}, zone
    d.plan(ack=True, TimeZone="Asia/Tokyo")
    # a change is one, in any zone
    pg.wh.execute(f"UPDATE \"{s}\".people SET ts = ts + INTERVAL '1 second' WHERE email = 'a@x.com'")
    assert d.plan(TimeZone="America/St_Johns") == {"a@x.com": ["ts"]}
    if pg.kind == "postgres":
        pg.wh.execute(f"""UPDATE "{s}".people SET sts = ARRAY[NULL, NULL]::"{s}".stamp[], st = '(,1)',
                          r = '(,)'
                          WHERE email = 'b@x.com'""")
        assert d.plan(TimeZone="Asia/Tokyo") == {"a@x.com": ["ts"], "b@x.com": ["st", "sts", "r"]}


def test_timestamptz_multiranges_compare_alike_in_every_time_zone(postgres_only):
    """A tstzmultirange (PostgreSQL 14+), also in an array or a domain, is hashed as a UTC session
    writes it, as a tstzrange is: its text is written in the session's TimeZone, and a run under
    another zone than the last one saw every row holding one as changed and sent them all again."""
    pg = postgres_only
    s = pg.schema
    pg.wh.execute(f'CREATE DOMAIN "{s}".mrd AS tstzmultirange')
    d = Diff(pg, f'mr tstzmultirange, mrs tstzmultirange[], md "{s}".mrd', ["mr", "mrs", "md"])
    pg.wh.execute(f"""INSERT INTO "{s}".people VALUES
        ('a@x.com', 1, '{{[2024-01-01 10:00:00+00,2024-01-02 10:00:00+00),[2024-03-01 00:00:00+00,infinity)}}',
         ARRAY['{{(,2024-01-01 10:00:00.5+00]}}'::tstzmultirange, NULL, '{{}}'], '{{[2024-01-01 10:00:00+00,)}}'),
        ('b@x.com', 2, '{{}}', '{{}}', '{{}}'), ('c@x.com', 3, NULL, NULL, NULL)""")
    assert len(d.plan(ack=True, TimeZone="UTC")) == 3
    # the hashes stored are those of the values' text in a UTC session
    pg.wh.execute("SET TimeZone = 'UTC'")
    differ = " OR ".join(f"s.{snapshot_column(f)} <> COALESCE(HASHTEXTEXTENDED(CAST(m.{f} AS TEXT) COLLATE \"C\", 0), 0)"
                         for f in d.fields)
    assert pg.wh.query(f'SELECT m.email FROM "{s}".people m JOIN "{pg.state_schema}".snap_s1 s ON s._key = m.email '
                       f"WHERE {differ}").num_rows == 0
    for zone in ZONES:
        assert d.plan(TimeZone=zone) == {}, zone
    pg.wh.execute(f"UPDATE \"{s}\".people SET mr = '{{[2024-01-01 10:00:01+00,2024-01-02 10:00:00+00)}}' "
                  "WHERE email = 'a@x.com'")
    assert d.plan(TimeZone="Asia/Tokyo") == {"a@x.com": ["mr"]}


def test_bytea_values_compare_alike_in_every_bytea_output(postgres_only):
    pg = postgres_only
    # bytea_output `escape` (a role's default, `settings:`) writes bytea as `\001\002`, not `\x0102`:
    # a run under it saw every row holding one as changed and sent them all again
    s = pg.schema
    d = Diff(pg, "b bytea, bs bytea[]", ["b", "bs"])
    pg.wh.execute(f"""INSERT INTO "{s}".people VALUES ('a@x.com', 1, '\\x0102ff', ARRAY['\\x00'::bytea, NULL, '']),
                      ('b@x.com', 2, '', '{{}}'), ('c@x.com', 3, NULL, NULL)""")
    assert len(d.plan(ack=True, bytea_output="hex")) == 3
    assert d.plan(bytea_output="escape") == {}
    pg.wh.execute(f"UPDATE \"{s}\".people SET b = '\\x0103' WHERE email = 'a@x.com'")
    assert d.plan(bytea_output="escape") == {"a@x.com": ["b"]}


DATES_MODEL = """\
-- primary_key: email
-- model_type: user
select email, score, d, ts from pgds_customers
"""


def test_pgdatestyle_in_the_environment_does_not_undo_iso_dates(tmp_path, wh_postgres, iterable_sandbox, bodies,
                                                                monkeypatch):
    # libpq sends PGDATESTYLE after the `options` dinsync's settings travel in: it undid DateStyle
    # ISO, so `plan --samples` failed (psycopg reads a timestamptz in ISO only: NotImplementedError)
    # and a row changed otherwise was sent with its dates too (their text, hashed, differed)
    sandbox, thread = iterable_sandbox
    s = wh_postgres.model_schema
    wh_postgres.execute(f'CREATE TABLE "{s}".pgds_customers (email text, score int, d date, ts timestamptz)')
    wh_postgres.execute(f"INSERT INTO \"{s}\".pgds_customers VALUES "
                        "('a@x.com', 1, '2024-01-02', '2024-01-01 10:00:00+00')")
    root = tmp_path / "project"
    write_iterable_project(root, wh_postgres, thread.url, DATES_MODEL, ["score", "d", "ts"])
    code, result = run_cli(root, wh_postgres, "sync")
    assert code == 0 and result["runs"][0]["acknowledged"] == 1, result

    monkeypatch.setenv("PGDATESTYLE", "SQL, DMY")
    wh_postgres.execute(f'UPDATE "{s}".pgds_customers SET score = 2')
    code, plan = run_cli(root, wh_postgres, "plan", "--samples", "3")
    assert code == 0, plan
    assert plan["plans"][0]["field_changes"] == {"score": 1, "d": 0, "ts": 0}
    [sample] = plan["plans"][0]["samples"]["changed"]
    assert sample["fields"]["ts"].startswith("2024-01-01")
    bodies.clear()
    code, result = run_cli(root, wh_postgres, "sync")
    assert code == 0 and result["runs"][0]["acknowledged"] == 1, result
    assert [json.loads(b)["users"][0]["dataFields"] for b in bodies] == [{"score": 2}]


ZONED_MODEL = """\
-- primary_key: email
-- model_type: user
select email, ts, r, st, b from pgzone_customers
"""


@pytest.mark.parametrize("env", [{"PGTZ": "America/New_York"}, {"PGTZ": "Asia/Tokyo"}])
def test_timestamptz_in_a_range_or_a_composite_is_sent_as_a_utc_session_writes_it(
        tmp_path, wh_postgres, iterable_sandbox, bodies, monkeypatch, env):
    """A scalar timestamptz is sent in UTC (`...Z`) and a range's or a composite's is hashed as a UTC
    session writes it; their text was sent as the stream's session wrote it, in its own zone:
    `["2024-01-01 05:00:00-05",...)` from one host and `["2024-01-01 19:00:00+09",...)` from another
    for the same value (a bytea in a composite likewise, under `bytea_output = escape`)."""
    sandbox, thread = iterable_sandbox
    s = wh_postgres.model_schema
    wh_postgres.execute(f'CREATE TYPE "{s}".zstamp AS (at timestamptz, raw bytea)')
    wh_postgres.execute(f'CREATE TABLE "{s}".pgzone_customers (email text, ts timestamptz, r tstzrange, '
                        f'st "{s}".zstamp, b bytea)')
    wh_postgres.execute(f"""INSERT INTO "{s}".pgzone_customers VALUES ('a@x.com', '2024-01-01 10:00:00+00',
        '[2024-01-01 10:00:00+00,2024-02-01 00:00:00+00)', '("2024-01-01 10:00:00+00","\\\\x01ff")', '\\x01ff')""")
    root = tmp_path / "project"
    write_iterable_project(root, wh_postgres, thread.url, ZONED_MODEL, ["ts", "r", "st", "b"])
    (root / "dinsync.yml").write_text((root / "dinsync.yml").read_text().replace(
        "warehouse:\n", "warehouse:\n  settings: {bytea_output: escape}\n", 1))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, result = run_cli(root, wh_postgres, "sync")
    assert code == 0 and result["runs"][0]["acknowledged"] == 1, result
    assert [json.loads(b)["users"][0]["dataFields"] for b in bodies] == [{
        "ts": "2024-01-01T10:00:00Z", "r": '["2024-01-01 10:00:00+00","2024-02-01 00:00:00+00")',
        "st": '("2024-01-01 10:00:00+00","\\\\x01ff")', "b": "Af8="}]


def test_an_interval_in_a_composite_compares_alike_in_every_interval_style(tmp_path, wh_postgres, iterable_sandbox,
                                                                           bodies):
    """An interval is refused, but one in a composite is sent as the composite's text, which
    IntervalStyle writes (a role's default, `settings:`): under `postgres_verbose` every row holding
    one was changed, and sent again as `(1,"@ 1 day 2 hours")`. dinsync's sessions write intervals
    in PostgreSQL's default style, whatever the role's or `settings:` say, as they write dates in ISO."""
    sandbox, thread = iterable_sandbox
    s = wh_postgres.model_schema
    wh_postgres.execute(f'CREATE TYPE "{s}".span AS (n int, length interval)')
    wh_postgres.execute(f'CREATE TABLE "{s}".pgiv_customers (email text, score int, sp "{s}".span)')
    wh_postgres.execute(f"""INSERT INTO "{s}".pgiv_customers VALUES ('a@x.com', 1, '(1,"1 day 02:00:00")')""")
    root = tmp_path / "project"
    write_iterable_project(root, wh_postgres, thread.url, "-- primary_key: email\n-- model_type: user\n"
                           "select email, score, sp from pgiv_customers\n", ["score", "sp"])
    code, result = run_cli(root, wh_postgres, "sync")
    assert code == 0 and result["runs"][0]["acknowledged"] == 1, result
    (root / "dinsync.yml").write_text((root / "dinsync.yml").read_text().replace(
        "warehouse:\n", "warehouse:\n  settings: {IntervalStyle: postgres_verbose}\n", 1))
    code, result = run_cli(root, wh_postgres, "sync")
    assert code == 0 and result["runs"][0]["sent"] == 0, (result, bodies[1:])
    wh_postgres.execute(f'UPDATE "{s}".pgiv_customers SET score = 2')
    code, result = run_cli(root, wh_postgres, "sync")
    assert code == 0 and [json.loads(b)["users"][0]["dataFields"] for b in bodies] == [
        {"score": 1, "sp": '(1,"1 day 02:00:00")'}, {"score": 2}], bodies


def test_plan_samples_are_written_as_the_sync_sends_them_in_every_time_zone(tmp_path, wh_postgres, iterable_sandbox,
                                                                            bodies, monkeypatch):
    """`dinsync plan` read its samples in the session's TimeZone (and bytea_output), the sync's
    stream in UTC: under PGTZ=Asia/Tokyo a range's and a composite's timestamptz showed `+09` where
    `+00` is sent, and under America/New_York a timestamptz of 0001-01-01 UTC (`... BC` in that
    zone's text) showed its row as rejected (out of range) where the sync sends it."""
    sandbox, thread = iterable_sandbox
    s = wh_postgres.model_schema
    wh_postgres.execute(f'CREATE TYPE "{s}".sstamp AS (at timestamptz, raw bytea)')
    wh_postgres.execute(f'CREATE TABLE "{s}".pgsample_customers (email text, ts timestamptz, r tstzrange, '
                        f'st "{s}".sstamp)')
    wh_postgres.execute(f"""INSERT INTO "{s}".pgsample_customers VALUES ('a@x.com', '0001-01-01 00:00:00+00',
        '[2024-01-01 10:00:00+00,2024-02-01 00:00:00+00)', '("2024-01-01 10:00:00+00","\\\\x01ff")')""")
    root = tmp_path / "project"
    write_iterable_project(root, wh_postgres, thread.url, "-- primary_key: email\n-- model_type: user\n"
                           "select email, ts, r, st from pgsample_customers\n", ["ts", "r", "st"])
    (root / "dinsync.yml").write_text((root / "dinsync.yml").read_text().replace(
        "warehouse:\n", "warehouse:\n  settings: {bytea_output: escape}\n", 1))
    expected = {"ts": "0001-01-01T00:00:00Z", "r": '["2024-01-01 10:00:00+00","2024-02-01 00:00:00+00")',
                "st": '("2024-01-01 10:00:00+00","\\\\x01ff")'}
    for zone in ("Asia/Tokyo", "America/New_York"):
        monkeypatch.setenv("PGTZ", zone)
        code, plan = run_cli(root, wh_postgres, "plan", "--samples", "3")
        assert code == 0, plan
        [sample] = plan["plans"][0]["samples"]["added"]
        assert (sample["fields"], sample["rejected"]) == (expected, []), zone
    code, result = run_cli(root, wh_postgres, "sync")
    assert code == 0 and result["runs"][0]["acknowledged"] == 1, result
    assert [json.loads(b)["users"][0]["dataFields"] for b in bodies] == [expected]


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Tokyo"])
def test_redshift_sends_timestamptz_at_the_calendar_s_ends_in_every_time_zone(tmp_path, wh_redshift, iterable_sandbox,
                                                                              bodies, monkeypatch, zone):
    """Redshift's stream read a timestamptz in the session's zone: west of UTC 0001-01-01 00:00 UTC is
    `0001-12-31 19:03:58-04:56:02 BC`, east of it 9999-12-31 23:00 UTC is in year 10000; each row was
    rejected as out of range (and parked), where a UTC session sends it."""
    sandbox, thread = iterable_sandbox
    s = wh_redshift.model_schema
    wh_redshift.execute(f'CREATE TABLE "{s}".rsz_customers (email text, ts timestamptz)')
    wh_redshift.execute(f"""INSERT INTO "{s}".rsz_customers VALUES ('a@x.com', '0001-01-01 00:00:00+00'),
                            ('b@x.com', '9999-12-31 23:00:00+00'), ('c@x.com', '2024-01-01 10:00:00+00')""")
    root = tmp_path / "project"
    write_iterable_project(root, wh_redshift, thread.url, "-- primary_key: email\n-- model_type: user\n"
                           "select email, ts from rsz_customers\n", ["ts"])
    monkeypatch.setenv("PGTZ", zone)
    code, result = run_cli(root, wh_redshift, "sync")
    assert code == 0, result
    assert (result["runs"][0]["acknowledged"], result["runs"][0]["rejected"]) == (3, 0), result
    sent = {u["email"]: u["dataFields"]["ts"] for b in bodies for u in json.loads(b)["users"]}
    assert sent == {"a@x.com": "0001-01-01T00:00:00Z", "b@x.com": "9999-12-31T23:00:00Z",
                    "c@x.com": "2024-01-01T10:00:00Z"}


@pytest.mark.parametrize("encoding", ["LATIN1", "WIN1252"])
def test_pgclientencoding_in_the_environment_does_not_change_the_text_sent(tmp_path, wh_postgres, iterable_sandbox,
                                                                           bodies, monkeypatch, encoding):
    """libpq takes the client encoding from PGCLIENTENCODING (a laptop set up for Latin-1, a Windows
    code page): the stream's ADBC driver reads text as UTF-8 whatever it is, so `café` was sent as the
    bytes `caf\\xe9`, not JSON's UTF-8 (the platform refused it, its row parked until it changed),
    and a value the encoding has no character for (`İ`, an emoji) failed the run. dinsync's sessions
    talk UTF-8."""
    sandbox, thread = iterable_sandbox
    s = wh_postgres.model_schema
    wh_postgres.execute(f'CREATE TABLE "{s}".pgenc_customers (email text, name text, tags text[])')
    wh_postgres.execute(f"INSERT INTO \"{s}\".pgenc_customers VALUES ('a@x.com', 'café', ARRAY['é']), "
                        "('b@x.com', 'İsmail 🎉', ARRAY['ı'])")
    root = tmp_path / "project"
    write_iterable_project(root, wh_postgres, thread.url, "-- primary_key: email\n-- model_type: user\n"
                           "select email, name, tags from pgenc_customers\n", ["name", "tags"])
    monkeypatch.setenv("PGCLIENTENCODING", encoding)
    code, result = run_cli(root, wh_postgres, "sync")
    assert code == 0 and result["runs"][0]["acknowledged"] == 2, result
    sent = {u["email"]: u["dataFields"] for b in bodies for u in json.loads(b)["users"]}
    assert sent == {"a@x.com": {"name": "café", "tags": ["é"]}, "b@x.com": {"name": "İsmail 🎉", "tags": ["ı"]}}
    code, plan = run_cli(root, wh_postgres, "plan", "--samples", "3")
    assert code == 0 and plan["plans"][0]["unchanged"] == 2, plan
