"""BigQuery: the diff's SQL has the DuckDB planner's meaning, and the adapter drives the real
google-cloud-bigquery client (auth, query jobs, Arrow pages, Parquet load jobs, failed jobs)
against the loopback fake of tests/warehouses/bigquery_fake.py.

Proof of meaning: every statement the planner renders for BigQuery is transpiled back to DuckDB
with sqlglot and run; over the same model states (first sync, no-op, changes, NULL and
duplicate keys, removals, parking, a newly mapped field, a full refresh) the plan counts and the
operation of every key equal the DuckDB planner's. The same scenario runs again through the fake,
so the real client carries every statement.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import urllib.error
import urllib.request

import pyarrow as pa
import pytest

import dinsync.diff.planner as planner_module
from dinsync.sandbox.runner import SandboxThread
from dinsync.warehouses import (
    WarehouseAuthError,
    WarehouseConflict,
    WarehouseDriverMissing,
    WarehouseObjectMissing,
    WarehouseSqlError,
    WarehouseUnavailable,
    capabilities_of,
    connect,
)
from dinsync.warehouses.bigquery import bind
from tests.warehouses.bq_support import (
    PROJECT,
    FakeBigQuery,
    Scenario,
    TranspiledBigQuery,
    run_scenario,
    transpile,
    unique_dataset,
)
from tests.warehouses.support import ran


@pytest.fixture(autouse=True)
def _sql_cache_dir(tmp_path_factory, monkeypatch):
    """Rendered SQL is cached in a temporary folder (planners of one spec render it once)."""
    monkeypatch.setenv("DINSYNC_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "dinsync-cache"))


@pytest.fixture(scope="module")
def fake():
    server = FakeBigQuery()
    with SandboxThread(server) as thread:
        server.thread = thread
        yield server


def open_bq(fake, **options):
    defaults = dict(project=PROJECT, credentials=fake.service_account_json(), api_endpoint=fake.url,
                    retry_seconds=0, http_timeout_seconds=10)
    return connect("bigquery", **{**defaults, **options})


@pytest.fixture
def bq(fake):
    dataset = unique_dataset("m")
    wh = open_bq(fake, dataset=dataset)
    wh.execute(f"CREATE SCHEMA `{dataset}`")
    wh.model_dataset = dataset
    yield wh
    wh.close()


# --- the SQL's meaning ------------------------------------------------------------------------------

# rendered per column or with parameters (ALTERs, samples: compared by their results), or only for
# snapshot rows whose key hash collides (cand_anomalies)
NOT_IN_SCENARIO = {"add_snapshot_column", "add_pending_column", "forget_field", "pending_forget_field", "sample",
                   "duplicates_sample",
                   "cand_anomalies",
                   "removed_count_part", "commit_removed_part"}  # (these two: rendered with their parameters)


def _duckdb_results(tmp_path, only=None):
    """The DuckDB planner's results of the scenario."""
    wh = connect("duckdb", path=str(tmp_path / "ref.duckdb"))
    try:
        return run_scenario(Scenario(wh, "main", "dinsync"), only)
    finally:
        wh.close()


def _same(reference, results):
    assert len(results) == len(reference)
    for ref, got in zip(reference, results):
        if len(ref) == 2:  # the pending step: what was stashed and resolved
            assert got == ref
            continue
        (name, ref_stats, ref_ops, ref_flags), (_, stats, ops, flags) = ref, got
        assert dataclasses.asdict(stats) == dataclasses.asdict(ref_stats), name
        assert (ops, flags) == (ref_ops, ref_flags), name


def test_transpiled_statements_plan_as_duckdb_does(tmp_path):
    reference = _duckdb_results(tmp_path)
    # the reference itself says something: each kind of step happened
    by_name = {r[0]: (r[1], r[2]) for r in reference if len(r) == 4}
    assert (by_name["first sync"][0].added, by_name["first sync"][0].null_keys,
            by_name["first sync"][0].duplicate_keys) == (4, 2, 1)
    assert by_name["no-op"][1] == {"d@x.com": "duplicate"}
    assert by_name["removals"][0].removed == 3 and by_name["parked stays parked"][1] == {}
    assert by_name["retry parked"][1] == {"a@x.com": "changed"}
    assert by_name["failed write, values back"][1] == {"g@x.com": "changed"}  # the snapshot forgot g
    assert by_name["moved"][0].first_sync and by_name["moved"][0].added == 3
    wh = TranspiledBigQuery()
    try:
        scenario = Scenario(wh, "m", "dinsync")
        _same(reference, run_scenario(scenario))
        # every statement the planner can run was rendered in BigQuery SQL, transpiled and run
        not_run = {name for name in scenario.p.statements()
                   if name not in NOT_IN_SCENARIO and not any(ran(p.render(name), wh.ran) for p in scenario.planners)}
        assert not_run == set(), not_run
        assert scenario.p.render("forget_field", field="points") in wh.ran  # (the retyped field)
        assert scenario.p.render("pending_forget_field", field="points") in wh.ran
        assert all(scenario.p.render(name, parts=2, part=part) in wh.ran  # (the removals in parts)
                   for name in ("removed_count_part", "commit_removed_part") for part in (0, 1))
    finally:
        wh.close()


def test_every_statement_transpiles_to_one_duckdb_statement():
    wh = TranspiledBigQuery()
    try:
        scenario = Scenario(wh, "m", "dinsync")
        for name in scenario.p.statements():
            sql = scenario.p.render(name)
            assert len(transpile(sql)) == 1, name
    finally:
        wh.close()


def test_farm_fingerprint_is_bigquerys():
    wh = TranspiledBigQuery()
    try:  # BigQuery's documentation: FARM_FINGERPRINT(CONCAT('1', 'foo', 'true'))
        assert wh.scalar("SELECT FARM_FINGERPRINT(CONCAT(CAST(1 AS STRING), 'foo', CAST(TRUE AS STRING)))") \
            == -1541654101129638711
        assert wh.scalar("SELECT FARM_FINGERPRINT(CAST(NULL AS STRING)) IS NULL") is True
    finally:
        wh.close()


# the steps run through the fake (the whole path runs there in the conformance suite too)
FAKE_STEPS = {"first sync", "no-op", "changes", "removals", "come back", "rejected is parked", "parked stays parked",
              "retry parked", "newly mapped field"}


def test_the_same_plans_through_the_real_client_and_the_fake(tmp_path, fake, monkeypatch):
    """With one bucket, any change makes all buckets dirty: candidates by a direct join."""
    monkeypatch.setattr(planner_module, "NBUCKETS", 1)
    reference = _duckdb_results(tmp_path, FAKE_STEPS)
    dataset, state = unique_dataset("m"), unique_dataset("st")
    wh = open_bq(fake, dataset=dataset)
    monkeypatch.setattr(fake, "load_jobs_per_table_day", 0)  # commits, stashes, rejections: no load job
    try:
        wh.execute(f"CREATE SCHEMA `{dataset}`")
        scenario = Scenario(wh, dataset, state)
        _same(reference, run_scenario(scenario, FAKE_STEPS))
        jobs = [j["configuration"]["query"]["query"] for j in fake.jobs.values() if "query" in j["configuration"]]
        assert any(p.render("cand_all") in jobs for p in scenario.planners)
        assert any(p.render("cand_all_retry") in jobs for p in scenario.planners)
    finally:
        wh.close()


# --- the client's wiring ----------------------------------------------------------------------------

def test_bind_parameters_nulls_inline_and_types(bq):
    sql, values = bind("SELECT :a, :b, ':c' FROM t WHERE x = :a AND y = :n", {"a": 1, "b": "x", "n": None})
    assert sql == "SELECT @a, @b, ':c' FROM t WHERE x = @a AND y = NULL"
    assert values == [("a", "INT64", 1), ("b", "STRING", "x")]
    import datetime as dt

    bq.execute("CREATE TABLE p (s STRING, i INT64, f FLOAT64, b BOOL, t DATETIME)")
    when = dt.datetime(2026, 3, 4, 5, 6, 7, 890000)
    hostile = "it's \"quoted\"; DROP TABLE p; -- @x :x \\"
    assert bq.execute("INSERT INTO p (s, i, f, b, t) VALUES (:s, :i, :f, :b, :t)",
                      {"s": hostile, "i": 2**62, "f": 1.25, "b": True, "t": when}) == 1
    bq.execute("INSERT INTO p (s, i, f, b, t) VALUES (:s, :i, :f, :b, :t)", dict.fromkeys("sifbt"))
    rows = bq.query("SELECT * FROM p WHERE s = :s OR i IS NULL ORDER BY i", {"s": hostile}).to_pylist()
    assert rows == [{"s": None, "i": None, "f": None, "b": None, "t": None},  # BigQuery sorts NULLs first
                    {"s": hostile, "i": 2**62, "f": 1.25, "b": True, "t": when}]
    assert bq.execute("UPDATE p SET i = 1 WHERE i IS NULL") == 1
    assert bq.columns("SELECT s, i FROM p") == [("s", "STRING"), ("i", "INTEGER")]
    assert bq.table_columns(bq.model_dataset, "p") == ["s", "i", "f", "b", "t"]
    assert bq.table_columns(bq.model_dataset, "nothing") is None


def test_stream_reads_bounded_pages(bq, fake):
    data = pa.table({"i": pa.array(range(25_000), pa.int64()), "s": [f"{i}x" for i in range(25_000)]})
    bq.write_arrow(bq.model_dataset, "big", data, mode="replace")
    before = len(fake.pages)
    sizes, total = [], 0
    for batch in bq.stream("SELECT i, s FROM big ORDER BY i", batch_rows=4000):
        sizes.append(batch.num_rows)
        total += pa.compute.sum(batch.column("i")).as_py()
    assert max(sizes) <= 4000 and sum(sizes) == 25_000 and total == 25_000 * 24_999 // 2
    pages = fake.pages[before:]  # the rows came in pages of the batch size: never the whole result at once
    assert max(pages) <= 4000 and sum(pages) == 25_000 and len(pages) >= 7


def test_datetime_columns_reach_polars_as_datetimes(bq):
    """google-cloud-bigquery marks a DATETIME column with the Arrow extension name
    google:sqlType:datetime; Polars read it as an Extension type no JSON encoder knows, and every
    row of a model mapping a DATETIME column was rejected ("values of type Extension(...)")."""
    import datetime as dt

    import polars as pl

    from dinsync.mapping.json import value_json

    bq.execute("CREATE TABLE dts (k STRING, t DATETIME, z TIMESTAMP)")
    bq.execute("INSERT INTO dts (k, t, z) VALUES ('a', DATETIME '2020-01-02 03:04:05', "
               "TIMESTAMP '2020-01-02 03:04:05+00')")
    [batch] = list(bq.stream("SELECT k, t, z FROM dts", batch_rows=10))
    for data in (batch, bq.query("SELECT k, t, z FROM dts")):
        frame = pl.from_arrow(data)
        assert frame.schema["t"] == pl.Datetime("us") and frame.schema["z"] == pl.Datetime("us", "UTC")
        encoded = value_json(pl.col("t"), frame.schema["t"], "t")
        assert frame.select(encoded.text).item() == '"2020-01-02T03:04:05"'
    assert bq.rows("SELECT t FROM dts") == [{"t": dt.datetime(2020, 1, 2, 3, 4, 5)}]


UPLOAD = ("POST", f"/upload/bigquery/v2/projects/{PROJECT}/jobs")


def test_writes_are_insert_statements_not_load_jobs(bq, fake):
    """BigQuery allows a table 1,500 load jobs a day and DML without limit: the keys of every
    commit and the rejections go in as INSERTs (rows as one JSON text parameter), by name."""
    bq.execute("CREATE TABLE r (a STRING, b INT64)")
    before = len(fake.requests)
    bq.write_arrow(bq.model_dataset, "r", pa.table({"b": [1, None], "a": ["x", None]}))  # by name
    bq.write_arrow(bq.model_dataset, "r", pa.table({"a": pa.array(["y"]).dictionary_encode(),
                                                     "b": pa.array([2], pa.uint32())}))
    bq.write_arrow(bq.model_dataset, "r", pa.table({"a": pa.array([], pa.string()), "b": pa.array([], pa.int64())}))
    calls = fake.requests[before:]
    assert bq.query("SELECT a, b FROM r ORDER BY b").to_pylist() == [
        {"a": None, "b": None}, {"a": "x", "b": 1}, {"a": "y", "b": 2}]
    assert UPLOAD not in calls and calls.count(("POST", f"/bigquery/v2/projects/{PROJECT}/queries")) == 2
    inserts = [j["configuration"]["query"] for j in fake.jobs.values()
               if "query" in j["configuration"] and "JSON_QUERY_ARRAY" in j["configuration"]["query"]["query"]]
    assert inserts and all([p["name"] for p in q["queryParameters"]] == ["rows"] for q in inserts)
    bq.write_arrow(bq.model_dataset, "r", pa.table({"z": [1.5]}), mode="replace")
    assert bq.table_columns(bq.model_dataset, "r") == ["z"]
    assert bq.query("SELECT z FROM r").column("z").to_pylist() == [1.5]
    bq.write_arrow(bq.model_dataset, "empty", pa.table({"k": pa.array([], pa.string())}), mode="replace")
    assert bq.table_columns(bq.model_dataset, "empty") == ["k"]
    assert UPLOAD not in fake.requests[before:]
    with pytest.raises(WarehouseSqlError):
        bq.write_arrow(bq.model_dataset, "r", pa.table({"other": [1]}))
    with pytest.raises(WarehouseObjectMissing):
        bq.write_arrow(bq.model_dataset, "absent", pa.table({"a": [1]}))


def test_written_values_come_back_exactly(bq):
    """Every value travels as text in JSON and is cast back: nothing rounds, nothing is escaped
    twice, NULL stays NULL."""
    import datetime as dt
    import math

    texts = ['it\'s "quoted"', "back\\slash", "new\nline\ttab\r", "emoji 😀 é ü", "", "{\"json\": [1]}",
             "x" * 1_000_000, "$.c0", "\u2028\u2029", None]
    n = len(texts)
    ints = [2**63 - 1, -2**63, 9007199254740993, 0, -1, None, 1, 2, 3, 4]
    floats = [0.1, -0.0, 1e308, 5e-324, float("nan"), float("inf"), float("-inf"), 1 / 3, None, 2.5]
    bools = [True, False, None] + [True] * (n - 3)
    naive = [dt.datetime(2026, 1, 2, 3, 4, 5, 678901), dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59),
             None] + [dt.datetime(2000, 1, 1)] * (n - 4)
    aware = [dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone.utc), None] + [
        dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)] * (n - 2)
    days = [dt.date(2026, 2, 28), None] + [dt.date(1970, 1, 1)] * (n - 2)
    data = pa.table({"i": list(range(n)), "s": texts, "n": pa.array(ints, pa.int64()), "f": floats, "b": bools,
                     "t": pa.array(naive, pa.timestamp("us")), "z": pa.array(aware, pa.timestamp("us", tz="UTC")),
                     "d": pa.array(days, pa.date32())})
    bq.write_arrow(bq.model_dataset, "v", data, mode="replace")
    got = bq.query("SELECT * FROM v ORDER BY i").to_pylist()
    assert [r["s"] for r in got] == texts
    assert [r["n"] for r in got] == ints
    for want, have in zip(floats, (r["f"] for r in got)):
        assert (want is None and have is None) or (math.isnan(want) and math.isnan(have)) or (
            want == have and math.copysign(1, want) == math.copysign(1, have)), (want, have)
    assert [r["b"] for r in got] == bools
    assert [r["t"] for r in got] == naive
    assert [r["z"] for r in got] == aware
    assert [r["d"] for r in got] == days


def test_large_writes_are_one_load_job(bq, fake, monkeypatch):
    """Past DML_WRITE_MAX_BYTES of rows a write is one Parquet load job (rare: a few a day), and a
    statement's rows stay within BigQuery's 10 MB a request (the fake refuses more)."""
    import dinsync.warehouses.bigquery as module

    keys = pa.table({"k": [f"user{i}@example.com" for i in range(300_000)]})  # ~8 MB of JSON text
    before = len(fake.requests)
    bq.write_arrow(bq.model_dataset, "keys", keys, mode="replace")
    assert UPLOAD not in fake.requests[before:]
    assert bq.query("SELECT COUNT(DISTINCT k) AS n FROM `keys`").column("n").to_pylist() == [300_000]
    # the worst case of the request's ASCII JSON: every character of the text an escaped emoji
    emoji = pa.table({"k": [f"{i}" + "😀" * 40 for i in range(60_000)]})  # ~10 MB of UTF-8, 3x as escapes
    bq.write_arrow(bq.model_dataset, "emoji", emoji, mode="replace")
    assert UPLOAD not in fake.requests[before:]
    assert bq.query("SELECT COUNT(*) AS n, MIN(LENGTH(k)) AS m FROM emoji").to_pylist() == [{"n": 60_000, "m": 41}]
    huge = pa.table({"k": ["😀" * 1_000_000]})  # one row beyond a request: a load job
    bq.write_arrow(bq.model_dataset, "huge", huge, mode="replace")
    assert UPLOAD in fake.requests[before:]
    assert bq.query("SELECT LENGTH(k) AS n FROM huge").column("n").to_pylist() == [1_000_000]
    before = len(fake.requests)
    monkeypatch.setattr(module, "DML_WRITE_MAX_BYTES", 1000)
    bq.execute("CREATE TABLE r (a STRING, b INT64)")
    bq.write_arrow(bq.model_dataset, "r", pa.table({"b": list(range(100)), "a": ["x"] * 100}))
    assert UPLOAD in fake.requests[before:]
    assert bq.query("SELECT COUNT(*) AS n, SUM(b) AS s FROM r").to_pylist() == [{"n": 100, "s": 4950}]
    with pytest.raises(WarehouseSqlError, match="Cannot add fields"):
        bq.write_arrow(bq.model_dataset, "r", pa.table({"other": list(range(100))}))
    with pytest.raises(WarehouseObjectMissing):
        bq.write_arrow(bq.model_dataset, "absent", pa.table({"a": list(range(100))}))


def test_the_fake_refuses_load_jobs_beyond_the_tables_quota(bq, fake, monkeypatch):
    """What the tests above rely on: a table's load jobs of the day are counted (the failed one
    too), and past the quota BigQuery answers quotaExceeded (a transient error to dinsync)."""
    import dinsync.warehouses.bigquery as module

    monkeypatch.setattr(module, "DML_WRITE_MAX_BYTES", 0)  # every write a load job
    monkeypatch.setattr(fake, "load_jobs_per_table_day", 2)
    bq.execute("CREATE TABLE q (a INT64)")
    bq.write_arrow(bq.model_dataset, "q", pa.table({"a": [1]}))
    bq.write_arrow(bq.model_dataset, "q", pa.table({"a": [2]}))
    with pytest.raises(WarehouseUnavailable, match="exceeded quota"):
        bq.write_arrow(bq.model_dataset, "q", pa.table({"a": [3]}))
    bq.write_arrow(bq.model_dataset, "q2", pa.table({"a": [4]}), mode="replace")  # another table: its own
    monkeypatch.setattr(module, "DML_WRITE_MAX_BYTES", 64 << 20)
    bq.write_arrow(bq.model_dataset, "q", pa.table({"a": [5]}))  # an INSERT: no load job
    assert sorted(bq.query("SELECT a FROM q").column("a").to_pylist()) == [1, 2, 5]


def test_scratch_dataset_is_created_with_an_expiry(fake):
    wh = open_bq(fake, scratch_dataset=unique_dataset("scr"), scratch_expiration_hours=2)
    try:
        wh.write_arrow(wh.scratch_dataset, "k", pa.table({"_key": ["a"]}), mode="replace")
        assert wh.capabilities.scratch_database == wh.scratch_dataset
        assert capabilities_of("bigquery").scratch_database == "dinsync_scratch"
        assert wh.scalar(f"SELECT COUNT(*) FROM `{wh.scratch_dataset}`.`k`") == 1
        ds = wh.client.get_dataset(f"{PROJECT}.{wh.scratch_dataset}")
        assert (ds.dataset_id, ds.default_table_expiration_ms) == (wh.scratch_dataset, 2 * 3_600_000)
        again = open_bq(fake, scratch_dataset=wh.scratch_dataset)  # another connection: it exists already
        again.write_arrow(wh.scratch_dataset, "k", pa.table({"_key": ["b"]}), mode="replace")
        again.close()
    finally:
        wh.close()


def test_failed_jobs_are_translated(bq):
    with pytest.raises(WarehouseObjectMissing) as info:
        bq.query("SELECT * FROM nothing_here")
    assert info.value.retryable is False and "while running a query" in str(info.value)
    with pytest.raises(WarehouseSqlError, match="Syntax error"):
        bq.execute("SELEC 1")
    bq.execute("CREATE TABLE d (a INT64)")
    with pytest.raises(WarehouseSqlError, match="WHERE clause"):  # BigQuery's rule, enforced by the fake
        bq.execute("DELETE FROM d")
    assert bq.execute("DELETE FROM d WHERE TRUE") == 0
    with pytest.raises(WarehouseObjectMissing):  # a dry-run job (jobs.insert) that is DONE with an errorResult
        bq.columns("SELECT * FROM nothing_here")


def test_unqualified_table_needs_a_default_dataset(fake, bq):
    bq.execute("CREATE TABLE q (a INT64)")
    wh = open_bq(fake)  # no dataset
    try:
        with pytest.raises(WarehouseSqlError, match="must be qualified with a dataset"):
            wh.query("SELECT * FROM q")
        assert wh.scalar(f"SELECT COUNT(*) FROM `{bq.model_dataset}`.q") == 0
    finally:
        wh.close()


def test_credentials_service_account_file_wrong_key_and_garbage(fake, tmp_path):
    path = tmp_path / "sa.json"
    path.write_text(fake.service_account_json())
    wh = open_bq(fake, credentials=str(path))
    try:
        assert wh.scalar("SELECT 1") == 1
    finally:
        wh.close()
    stranger = FakeBigQuery()  # another key pair: its signature is refused by the token endpoint
    stranger.url = fake.url
    wrong = open_bq(fake, credentials=stranger.service_account_json())
    with pytest.raises(WarehouseAuthError) as info:
        wrong.scalar("SELECT 1")
    assert "PRIVATE KEY" not in str(info.value) and "Invalid JWT" in str(info.value)
    stranger.con.close()
    with pytest.raises(WarehouseAuthError, match="not valid JSON") as info:
        open_bq(fake, credentials="{not json secret-text-123")
    assert "secret-text-123" not in str(info.value)
    with pytest.raises(WarehouseAuthError, match="cannot read the credentials file"):
        open_bq(fake, credentials=str(tmp_path / "missing.json"))


def _raw(fake, method, path, body=None, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(fake.url + path, method=method, headers=headers,
                                 data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_the_fake_enforces_auth_routes_and_bodies(fake, bq):
    jobs = f"/bigquery/v2/projects/{PROJECT}/jobs"
    status, body = _raw(fake, "POST", jobs, {"configuration": {"query": {"query": "SELECT 1", "useLegacySql": False}}})
    assert status == 401 and body["error"]["errors"][0]["reason"] == "authError"
    token = next(iter(fake.tokens))  # issued to the adapter by the token endpoint
    assert _raw(fake, "POST", jobs, {"configuration": {}}, token)[0] == 400
    assert _raw(fake, "POST", jobs, {"configuration": {"query": {"query": "SELECT 1"}}}, token)[0] == 400  # legacy SQL
    assert _raw(fake, "POST", jobs, {"configuration": {"query": {"query": "SELECT @x", "useLegacySql": False,
                                                                  "queryParameters": [{"name": "x"}]}}}, token)[0] == 400
    assert _raw(fake, "GET", f"/bigquery/v2/projects/{PROJECT}/nothing", None, token)[0] == 400
    status, job = _raw(fake, "POST", jobs, {"configuration": {"query": {"query": "SELECT 7 AS n",
                                                                         "useLegacySql": False}}}, token)
    assert status == 200 and job["status"]["state"] == "DONE"
    job_id = job["jobReference"]["jobId"]
    status, page = _raw(fake, "GET", f"/bigquery/v2/projects/{PROJECT}/queries/{job_id}?maxResults=0", None, token)
    assert status == 200 and "rows" not in page and page["totalRows"] == "1"
    assert _raw(fake, "POST", jobs, {"jobReference": {"jobId": job_id},
                                     "configuration": {"query": {"query": "SELECT 1", "useLegacySql": False}}},
                token)[0] == 409


def test_missing_driver_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.cloud.bigquery", None)
    with pytest.raises(WarehouseDriverMissing) as info:
        connect("bigquery", project="p")
    assert "google-cloud-bigquery" in str(info.value) and "dinsync[bigquery]" in info.value.hint
    assert capabilities_of("bigquery").dialect == "bigquery"  # capabilities need no driver


def test_identifiers_are_quoted_or_refused(bq):
    assert bq.quote("my table") == "`my table`"
    with pytest.raises(WarehouseSqlError):
        bq.quote("evil`; DROP")


def _project_dir(tmp_path, warehouse: str):
    (tmp_path / "models").mkdir(parents=True)
    (tmp_path / "syncs").mkdir()
    (tmp_path / "models" / "m.sql").write_text("-- primary_key: id\nselect id, email from customers\n")
    (tmp_path / "syncs" / "s.yml").write_text(
        "model: m\ndestination: iterable\nservice: users\nmode: upsert\nmatch: {column: email, field: email}\n"
        "fields: {id: externalId}\n")
    (tmp_path / "dinsync.yml").write_text(
        "version: 1\nwarehouse:\n" + warehouse
        + "destinations:\n  iterable:\n    type: iterable\n    api_key: ${env:ITERABLE_API_KEY}\n")
    return tmp_path


def test_config_block_credentials_from_the_environment(tmp_path):
    from dinsync.config import load_project

    sa = '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----secret-77"}'
    p = load_project(_project_dir(tmp_path, "  type: bigquery\n  project: my-project-1\n  dataset: marts\n"
                                            "  location: EU\n  credentials: ${env:SA_JSON}\n"),
                     env={"ITERABLE_API_KEY": "itbl-key-123456", "SA_JSON": sa})
    w = p.warehouse
    assert (w.type, w.project, w.dataset, w.location, w.scratch_dataset) == (
        "bigquery", "my-project-1", "marts", "EU", "dinsync_scratch")
    assert w.credentials.get_secret_value() == sa and "secret-77" not in repr(w)


def test_config_block_refuses_an_api_endpoint_in_clear_text_to_another_machine(tmp_path):
    from dinsync.config import load_project
    from dinsync.errors import ConfigError

    with pytest.raises(ConfigError) as info:  # the access token would cross the network unencrypted
        load_project(_project_dir(tmp_path, "  type: bigquery\n  project: my-project-1\n"
                                            "  api_endpoint: http://bq.example.com\n"), env={"ITERABLE_API_KEY": "k" * 12})
    assert any("warehouse.api_endpoint" in i.message and "clear text" in i.message for i in info.value.issues)


def test_config_block_refuses_retries_past_the_window_bigquery_deduplicates_a_query_in(tmp_path):
    """A query resent with its requestId after its answer was lost runs once within 15 minutes
    (jobs.query's requestId); `retry_seconds` up to 3600 let a resent write (a commit's rows, the run
    log) run a second time."""
    from dinsync.config import load_project
    from dinsync.errors import ConfigError

    env = {"ITERABLE_API_KEY": "k" * 12}
    block = "  type: bigquery\n  project: my-project-1\n  retry_seconds: {}\n"
    assert load_project(_project_dir(tmp_path / "a", block.format(900)), env=env).warehouse.retry_seconds == 900
    with pytest.raises(ConfigError) as info:
        load_project(_project_dir(tmp_path / "b", block.format(901)), env=env)
    assert any("warehouse.retry_seconds" in i.message and "15 minutes" in i.message for i in info.value.issues), \
        info.value.issues


def test_config_block_refuses_a_key_written_in_the_file_but_takes_a_path(tmp_path):
    from dinsync.config import load_project
    from dinsync.errors import ConfigError

    env = {"ITERABLE_API_KEY": "itbl-key-123456"}
    with pytest.raises(ConfigError) as info:
        load_project(_project_dir(tmp_path / "a", "  type: bigquery\n  project: my-project-1\n"
                                                  "  credentials: '{\"private_key\": \"secret-88\"}'\n"), env=env)
    assert any("warehouse.credentials" in i.message for i in info.value.issues)
    assert "secret-88" not in str(info.value)
    p = load_project(_project_dir(tmp_path / "b", "  type: bigquery\n  project: my-project-1\n"
                                                  "  credentials: /etc/dinsync/sa.json\n"), env=env)
    assert p.warehouse.credentials.get_secret_value() == "/etc/dinsync/sa.json"
    with pytest.raises(ConfigError) as info:
        load_project(_project_dir(tmp_path / "c", "  type: bigquery\n  dataset: 'bad-name;'\n"), env=env)
    assert any("warehouse.dataset" in i.message for i in info.value.issues)


def test_transactions_span_jobs_in_a_session(bq, fake):
    bq.execute("CREATE TABLE t (a INT64)")
    other = open_bq(fake, dataset=bq.model_dataset)
    try:
        with bq.transaction():
            bq.execute("INSERT INTO t (a) VALUES (1)")
            assert bq.scalar("SELECT COUNT(*) FROM t") == 1  # its own write, in the session
            assert other.scalar("SELECT COUNT(*) FROM t") == 0  # not committed yet
            bq.execute("CREATE TABLE t2 (b INT64)")  # DDL: outside the transaction, as BigQuery wants
        assert other.scalar("SELECT COUNT(*) FROM t") == 1 and other.table_columns(bq.model_dataset, "t2") == ["b"]
        with pytest.raises(RuntimeError):
            with bq.transaction():
                bq.execute("DELETE FROM t WHERE TRUE")
                raise RuntimeError("the block failed")
        assert other.scalar("SELECT COUNT(*) FROM t") == 1  # rolled back
        assert fake.sessions == {}  # every session was ended
        with bq.transaction():  # two writers of one row at once: the second is refused, retryable
            bq.execute("UPDATE t SET a = 2 WHERE a = 1")
            with pytest.raises(WarehouseConflict) as info:
                with other.transaction():
                    other.execute("UPDATE t SET a = 3 WHERE a = 1")
            assert info.value.retryable
    finally:
        other.close()
    assert bq.scalar("SELECT a FROM t") == 2 and fake.sessions == {}
    with pytest.raises(WarehouseSqlError, match="only in scripts or sessions"):  # the fake enforces BigQuery's rule
        bq.execute("BEGIN TRANSACTION")


def test_driver_errors_say_what_failed_and_whether_to_retry(bq):
    from google.api_core import exceptions as api
    import google.auth.exceptions as auth
    import requests

    from dinsync.warehouses import WarehousePermissionError

    cases = [
        (api.Forbidden("Access Denied: Table p:d.t", errors=[{"reason": "accessDenied"}]), WarehousePermissionError),
        (api.Forbidden("Exceeded rate limits", errors=[{"reason": "rateLimitExceeded"}]), WarehouseUnavailable),
        (api.BadRequest("Quota exceeded", errors=[{"reason": "quotaExceeded"}]), WarehouseUnavailable),
        (api.Unauthorized("Request had invalid authentication credentials"), WarehouseAuthError),
        (api.NotFound("Not found: Dataset p:d"), WarehouseObjectMissing),
        (api.BadRequest("Transaction is aborted due to concurrent update against table p.d.t"), WarehouseConflict),
        (api.InternalServerError("backend error"), WarehouseUnavailable),
        (api.BadRequest("Syntax error: Unexpected keyword", errors=[{"reason": "invalidQuery"}]), WarehouseSqlError),
        (auth.RefreshError("invalid_grant: account not found"), WarehouseAuthError),
        (auth.DefaultCredentialsError("Could not automatically determine credentials"), WarehouseAuthError),
        (requests.exceptions.ConnectionError("Connection refused"), WarehouseUnavailable),
    ]
    for exc, cls in cases:
        err = bq.translate(exc, "running a query")
        assert type(err) is cls, (exc, err)
        assert err.retryable == (cls in (WarehouseUnavailable, WarehouseConflict))
        assert "BigQuery" in str(err) and "(while running a query)" in str(err)


def test_an_unreachable_endpoint_is_unavailable(fake):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    wh = open_bq(fake, api_endpoint=f"http://127.0.0.1:{port}", http_timeout_seconds=3)
    try:
        with pytest.raises(WarehouseUnavailable) as info:
            wh.scalar("SELECT 1")
        assert info.value.retryable
    finally:
        wh.close()


def test_application_default_credentials(fake, tmp_path, monkeypatch):
    path = tmp_path / "adc.json"
    path.write_text(fake.service_account_json())
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))  # the first place ADC looks
    wh = open_bq(fake, credentials=None, project=None)  # the project comes from the key too
    try:
        assert wh.project == PROJECT and wh.scalar("SELECT 2") == 2
    finally:
        wh.close()


def test_a_mapped_column_bigquery_cannot_cast_to_text_is_refused_by_name(wh_bigquery, iterable_sandbox, tmp_path):
    """The diff hashes CAST(value AS STRING); BigQuery has that cast for no ARRAY, STRUCT, JSON or
    GEOGRAPHY (its conversion rules), so such a mapped column would fail the plan with "Invalid cast
    from ARRAY<INT64> to STRING" and no column named. `dinsync sync` refuses it before anything
    runs, naming the column and its fix; converted as the hint says, it syncs. (The fake runs the
    SQL on DuckDB, which casts anything: only the refusal, from the dry run's schema, is shown here.)"""
    from dinsync.errors import ExitCode
    from tests.warehouses.support import one_sync_project

    sandbox, thread = iterable_sandbox
    cli = one_sync_project(tmp_path / "project", wh_bigquery.warehouse_yaml(), thread.url,
                           {"tags": "tags", "address": "address", "plan": "plan"}, wh_bigquery.env)

    def sync(select: str):
        return cli("sync", select)

    refused = sync("SELECT 'a@x.com' AS email, [1, 2] AS tags, STRUCT(1 AS zip) AS address, 'pro' AS plan")
    out = refused.stdout + refused.stderr
    assert refused.returncode == ExitCode.CONFIG_ERROR, out
    assert "column 'tags' of model people is of type ARRAY<INTEGER>" in " ".join(out.split()), out
    assert "TO_JSON_STRING(tags)" in out and "TO_JSON_STRING(address)" in out, out
    assert "'plan'" not in out  # a column the diff can compare is not named
    assert thread.call(lambda: len(sandbox.users)) == 0

    done = sync("SELECT 'a@x.com' AS email, TO_JSON_STRING([1, 2]) AS tags, "
                "TO_JSON_STRING(STRUCT(1 AS zip)) AS address, 'pro' AS plan")
    assert done.returncode == 0, done.stdout + done.stderr
    users = thread.call(lambda: {u["email"]: dict(u["dataFields"]) for u in sandbox.users})
    assert users["a@x.com"]["plan"] == "pro" and users["a@x.com"]["tags"].replace(" ", "") == "[1,2]"


def test_many_rejections_are_written_to_the_state_table_by_insert(bq, fake, monkeypatch):
    """More rejections than FEW_REJECTIONS go in as one write of rows (the state's `rejections`
    table serves every sync: with a load job each, a project's runs spent its 1,500 a day)."""
    from dinsync.state import StateStore

    state = unique_dataset("st")
    store = StateStore(bq, state)
    store.migrate()
    monkeypatch.setattr(fake, "load_jobs_per_table_day", 0)
    rows = [(f"user{i}@example.com", "email" if i % 2 else None, "rejected", f"reason {i}: 😀 \"x\"\n")
            for i in range(50)]
    store.add_rejections("run-1", "s", rows)
    got = store.rejections("run-1", limit=100)
    assert sorted((r["key"], r["field"], r["status"], r["reason"]) for r in got) == sorted(rows)
    when = bq.query(f"SELECT MIN(rejected_at) AS a, MAX(rejected_at) AS b FROM `{state}`.`rejections`").to_pylist()[0]
    assert when["a"] == when["b"] and when["a"] is not None


def test_a_runs_counts_are_recorded_within_a_commits_transaction(bq, fake):
    """A checkpoint records the run's counts in its commit's transaction (engine/commits.py): in
    BigQuery's session, rolled back with it."""
    import datetime as dt

    from dinsync.errors import RunSummary
    from dinsync.state import StateStore

    store = StateStore(bq, "bq_progress")
    store.migrate()
    store.start_run(RunSummary(sync="users", run_id="r1"), dt.datetime(2026, 1, 1), False, "0")
    with pytest.raises(RuntimeError):
        with bq.transaction():
            store.record_progress("r1", {"sent": 3})
            raise RuntimeError("the commit failed")
    assert store.last_runs("users")[0]["sent"] is None  # rolled back with the commit
    with bq.transaction():
        store.record_progress("r1", {"sent": 7, "acknowledged": 5})
    [run] = store.last_runs("users")
    assert (run["status"], run["sent"], run["acknowledged"]) == ("running", 7, 5)
    assert fake.sessions == {}


def test_credentials_that_are_neither_json_nor_a_file_stay_out_of_the_error(fake):
    # a service-account JSON stored base64-encoded (as CI secrets often are) is no JSON and no path:
    # the error said "cannot read the credentials file <the whole key>", and a WarehouseError's
    # message reaches Python API callers (and their orchestrator's logs) as it is
    import base64

    secret = base64.b64encode(fake.service_account_json().encode()).decode()
    with pytest.raises(WarehouseAuthError, match="cannot read the credentials file") as info:
        open_bq(fake, credentials=secret)
    assert secret[:12] not in str(info.value) and secret[:12] not in str(info.value.hint)
    with pytest.raises(WarehouseAuthError) as info:  # a path from ~: expanded, it matched no registered value
        open_bq(fake, credentials="~/S3CR3T-sa-key-path.json")
    assert "S3CR3T-sa-key-path" not in str(info.value)
