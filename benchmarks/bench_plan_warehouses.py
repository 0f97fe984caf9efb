"""Benchmark the diff on PostgreSQL and Snowflake beside DuckDB: the same model, the same steps,
one table.

    python benchmarks/bench_plan_warehouses.py [--rows 1000000] [--churn 0.02]
                                               [--warehouses duckdb,postgres,snowflake] [--pg-dsn DSN]
                                               [--sf-port PORT]

Per warehouse: build a model table of `--rows` people x 10 columns (in the warehouse), plan it
(everything added), stream the sendable rows and commit every key (1M keys per commit), change
`--churn` of the rows (80% new values, 10% leave, 10% new people), plan, commit, then plan twice
with nothing changed. Prints seconds per step and the client's peak RSS (each warehouse runs in
a child process, so each RSS is its own). No asserts; targets (issue 15, PostgreSQL at 1M rows):
plan after 2% churn <= 3 s, no-op plan <= 1.5 s, bounded client memory.
PostgreSQL defaults to 127.0.0.1:5432, database `test`; it works in a schema it drops at the end.
Snowflake is the real snowflake-connector-python 4.x against fakesnow in server mode (DuckDB behind
Snowflake's HTTP protocol) on loopback, started here unless --sf-port names a running one: its
figures measure the adapter's path (connector, Arrow batches, multi-row INSERT commits) plus
fakesnow's SQL translation, not a Snowflake warehouse.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid

import pyarrow as pa

from dinsync.diff import DiffSpec, Planner
from dinsync.warehouses import connect

COLUMNS = ["id", "email", "first_name", "last_name", "plan", "ltv", "created_at", "orders", "country", "active"]

BUILD = {
    "duckdb": """
        CREATE OR REPLACE TABLE people AS
        SELECT i AS id, 'user' || i || '@example.com' AS email, 'first' || (i % 1000) AS first_name,
               'last' || (i % 5000) AS last_name, ['free', 'pro', 'team', 'enterprise'][1 + i % 4] AS plan,
               round((i % 100000) / 7.0, 2)::DOUBLE AS ltv, TIMESTAMP '2020-01-01' + to_seconds(i % 100000000) AS created_at,
               (i % 97)::INTEGER AS orders, ['US', 'DE', 'FR', 'GB', 'NL'][1 + i % 5] AS country, (i % 3 = 0) AS active
        FROM range({rows}) AS t(i)""",
    "postgres": """
        CREATE TABLE people AS
        SELECT i AS id, 'user' || i || '@example.com' AS email, 'first' || (i % 1000) AS first_name,
               'last' || (i % 5000) AS last_name, (ARRAY['free', 'pro', 'team', 'enterprise'])[1 + i % 4] AS plan,
               round((i % 100000) / 7.0, 2)::DOUBLE PRECISION AS ltv,
               TIMESTAMP '2020-01-01' + make_interval(secs => i % 100000000) AS created_at,
               (i % 97)::INTEGER AS orders, (ARRAY['US', 'DE', 'FR', 'GB', 'NL'])[1 + i % 5] AS country,
               (i % 3 = 0) AS active
        FROM generate_series(0, {rows} - 1) AS t(i)""",
    # valid on Snowflake too (ROW_NUMBER over SEQ8: SEQ8 alone may have gaps there)
    "snowflake": """
        CREATE OR REPLACE TABLE people AS
        SELECT i AS id, 'user' || i || '@example.com' AS email, 'first' || (i % 1000) AS first_name,
               'last' || (i % 5000) AS last_name, DECODE(i % 4, 0, 'free', 1, 'pro', 2, 'team', 'enterprise') AS plan,
               CAST(ROUND((i % 100000) / 7.0, 2) AS DOUBLE) AS ltv,
               DATEADD(second, i % 100000000, CAST('2020-01-01' AS TIMESTAMP)) AS created_at,
               CAST(i % 97 AS INTEGER) AS orders, DECODE(i % 5, 0, 'US', 1, 'DE', 2, 'FR', 3, 'GB', 'NL') AS country,
               (i % 3 = 0) AS active
        FROM (SELECT ROW_NUMBER() OVER (ORDER BY SEQ8()) - 1 AS i FROM TABLE(GENERATOR(ROWCOUNT => {rows})))""",
}
NEW_PEOPLE = {
    "duckdb": "SELECT i, 'new' || i || '@example.com', 'first', 'last', 'free', 1.0, TIMESTAMP '2024-01-01', 0, 'US', "
              "TRUE FROM range({lo}, {hi}) AS t(i)",
    "postgres": "SELECT i, 'new' || i || '@example.com', 'first', 'last', 'free', 1.0, TIMESTAMP '2024-01-01', 0, "
                "'US', TRUE FROM generate_series({lo}, {hi} - 1) AS t(i)",
    "snowflake": "SELECT {lo} + i, 'new' || ({lo} + i) || '@example.com', 'first', 'last', 'free', 1.0, "
                 "CAST('2024-01-01' AS TIMESTAMP), 0, 'US', TRUE FROM (SELECT ROW_NUMBER() OVER (ORDER BY SEQ8()) - 1 AS i "
                 "FROM TABLE(GENERATOR(ROWCOUNT => {n})))",
}


def churn(w, kind: str, rows: int, share: float) -> int:
    n = max(1, int(rows * share))
    every = max(1, rows // n)
    w.execute(f"UPDATE people SET ltv = ltv + 1, plan = 'pro' WHERE id % {every} = 0 AND id % {every * 10} NOT IN (0, 1)")
    w.execute(f"DELETE FROM people WHERE id % {every * 10} = 1")
    w.execute("INSERT INTO people " + NEW_PEOPLE[kind].format(lo=rows, hi=rows + n // 10, n=n // 10))
    return n


def settle(w, kind: str) -> None:
    """What a dbt run leaves behind: DuckDB checkpointed, PostgreSQL statistics up to date
    (Snowflake keeps its own statistics)."""
    if kind != "snowflake":
        w.execute("CHECKPOINT" if kind == "duckdb" else "ANALYZE people")


def commit_all(planner: Planner, chunk: int = 1_000_000) -> tuple[float, float, int]:
    """Stream the sendable rows, committing their keys every `chunk` keys, as the engine does."""
    t_stream = t_commit = 0.0
    pending: list[pa.Array] = []
    pending_n = total = 0

    def flush() -> None:
        nonlocal t_commit, pending, pending_n, total
        if pending_n:
            t0 = time.perf_counter()
            total += planner.commit_acknowledged(pa.concat_arrays(pending))
            t_commit += time.perf_counter() - t0
            pending, pending_n = [], 0

    t0 = time.perf_counter()
    for batch in planner.stream_sendable(batch_rows=20_000):
        t_stream += time.perf_counter() - t0
        pending.append(batch.column(0))
        pending_n += batch.num_rows
        if pending_n >= chunk:
            flush()
        t0 = time.perf_counter()
    t_stream += time.perf_counter() - t0
    flush()
    return t_stream, t_commit, total


class Profiled:
    """A warehouse that prints each statement's seconds (--profile)."""

    def __init__(self, wh, kind: str):
        self._wh, self._kind = wh, kind

    def __getattr__(self, name):
        return getattr(self._wh, name)

    def _timed(self, fn, sql, *args):
        t0 = time.perf_counter()
        out = fn(sql, *args)
        first = " ".join(sql.split())[:60]
        print(f"      [{self._kind}] {time.perf_counter() - t0:6.2f} s  {first}", file=sys.stderr, flush=True)
        return out

    def execute(self, sql, params=None):
        return self._timed(self._wh.execute, sql, params)

    def query(self, sql, params=None):
        return self._timed(self._wh.query, sql, params)


def run_one(kind: str, rows: int, share: float, pg_dsn: str, profile: bool = False, sf_port: int = 0) -> dict:
    """All steps on one warehouse; returns {step: seconds, ...} and the peak RSS."""
    tmp = None
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    if kind == "duckdb":
        tmp = tempfile.TemporaryDirectory(prefix="dinsync-bench-")
        w = connect("duckdb", path=os.path.join(tmp.name, "bench.duckdb"))
        state = "dinsync"
    elif kind == "snowflake":
        w = connect("snowflake", account="fakesnow", user="bench", password="fakesnow", database="BENCH", schema=schema,
                    host="127.0.0.1", port=sf_port, protocol="http", network_timeout=3600)
        w.execute("CREATE DATABASE IF NOT EXISTS BENCH")
        w.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        state = schema + "_state"
    else:
        w = connect(kind, dsn=pg_dsn, search_path=[schema])
        w.execute(f'CREATE SCHEMA "{schema}"')
        state = schema + "_state"
    steps: dict[str, float] = {}
    notes: dict[str, str] = {}

    def step(name, fn, note=None):
        t0 = time.perf_counter()
        r = fn()
        steps[name] = time.perf_counter() - t0
        if note:
            notes[name] = note(r)
        print(f"  [{kind}] {name:<30} {steps[name]:7.2f} s  {notes.get(name, '')}", file=sys.stderr, flush=True)
        return r

    try:
        step("build model table", lambda: (w.execute(BUILD[kind].format(rows=rows)), settle(w, kind)))
        planner = Planner(Profiled(w, kind) if profile else w, DiffSpec(sync="bench", model_sql="SELECT * FROM people", key_column="email",
                                      key_normalization="email", fields=[(c, c) for c in COLUMNS], state_schema=state))
        step("ensure_state", planner.ensure_state)
        fmt = lambda s: f"added={s.added:,} changed={s.changed:,} removed={s.removed:,} unchanged={s.unchanged:,}"
        step("first plan (all added)", planner.plan, fmt)
        s, c, n = commit_all(planner)
        steps["stream sendable rows"], steps["commit all keys"] = s, c
        notes["commit all keys"] = f"{n:,} keys"
        print(f"  [{kind}] stream {s:.2f} s, commit {c:.2f} s ({n:,} keys)", file=sys.stderr, flush=True)
        step("mutate rows", lambda: (churn(w, kind, rows, share), settle(w, kind))[0], lambda n: f"{n:,} rows")
        step(f"plan after {share:.0%} churn", planner.plan, fmt)
        step("commit changed keys", lambda: commit_all(planner)[2], lambda n: f"{n:,} keys")
        step("commit removed", planner.commit_removed, lambda n: f"{n:,} keys")
        step("no-op plan", planner.plan, fmt)
        step("no-op plan (again)", planner.plan, fmt)
    finally:
        if kind != "duckdb":
            w.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            w.execute(f'DROP SCHEMA IF EXISTS "{state}" CASCADE')
        w.close()
        if tmp is not None:
            tmp.cleanup()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"steps": steps, "notes": notes, "peak_rss_mb": rss}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--churn", type=float, default=0.02)
    ap.add_argument("--warehouses", default="duckdb,postgres")
    ap.add_argument("--pg-dsn", default=os.environ.get("DINSYNC_TEST_PG_DSN", "host=127.0.0.1 port=5432 dbname=test"))
    ap.add_argument("--sf-port", type=int, default=0, help="a fakesnow server already on 127.0.0.1:PORT")
    ap.add_argument("--profile", action="store_true", help="print the seconds of each statement (stderr)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child, args.rows, args.churn, args.pg_dsn, args.profile, args.sf_port)))
        return

    kinds = [k.strip() for k in args.warehouses.split(",") if k.strip()]
    print(f"dinsync plan benchmark: {args.rows:,} rows x {len(COLUMNS)} columns, {args.churn:.0%} churn, "
          f"{os.cpu_count()} CPUs", flush=True)
    results = {}
    server = None
    if "snowflake" in kinds and not args.sf_port:
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        from tests.warehouses.support import FakesnowServer  # fakesnow with the tests' NULL-timestamp fix

        server = FakesnowServer()
        args.sf_port = server.port
    try:
        for kind in kinds:
            out = subprocess.run([sys.executable, __file__, "--child", kind, "--rows", str(args.rows),
                                  "--churn", str(args.churn), "--pg-dsn", args.pg_dsn, "--sf-port", str(args.sf_port)]
                                 + (["--profile"] if args.profile else []), stdout=subprocess.PIPE, check=True, text=True)
            results[kind] = json.loads(out.stdout)
    finally:
        if server is not None:
            server.stop()
    names = list(next(iter(results.values()))["steps"])
    head = f"{'step':<32}" + "".join(f"{k:>12}" for k in kinds)
    if len(kinds) > 1:
        head += f"{kinds[1] + '/' + kinds[0]:>20}"
    print(head)
    print("-" * len(head))
    for name in names:
        line = f"{name:<32}" + "".join(f"{results[k]['steps'][name]:>12.2f}" for k in kinds)
        if len(kinds) > 1 and results[kinds[0]]["steps"][name] > 0:
            line += f"{results[kinds[1]]['steps'][name] / results[kinds[0]]['steps'][name]:>19.1f}x"
        print(line)
    print("-" * len(head))
    print(f"{'peak client RSS (MB)':<32}" + "".join(f"{results[k]['peak_rss_mb']:>12.0f}" for k in kinds))


if __name__ == "__main__":
    main()
