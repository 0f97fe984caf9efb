"""Benchmark the diff on DuckDB: plan and commit a large segment.

    python benchmarks/bench_plan.py [--rows 10000000] [--churn 0.02] [--db PATH | --memory]
                                    [--memory-limit 256MB]

Builds a table of `--rows` people x 10 columns, plans it (everything added), commits every key in
checkpoints of 1M keys, changes `--churn` of the rows and plans again, then plans once more with
nothing changed. Prints seconds per step and the peak RSS. No asserts: targets live in the brief
(10M rows, 2% churn: plan <= 5 s; no-op plan <= 3 s). The model is changed in this process, so the
benchmark checkpoints after changing it, as a dbt run writing the model would have done.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time

import pyarrow as pa

from dinsync.diff import DiffSpec, Planner
from dinsync.warehouses import connect

COLUMNS = ["id", "email", "first_name", "last_name", "plan", "ltv", "created_at", "orders", "country", "active"]


def build(w, rows: int) -> None:
    w.execute(f"""
        CREATE OR REPLACE TABLE people AS
        SELECT
          i AS id,
          'user' || i || '@example.com' AS email,
          'first' || (i % 1000) AS first_name,
          'last' || (i % 5000) AS last_name,
          ['free', 'pro', 'team', 'enterprise'][1 + i % 4] AS plan,
          round((i % 100000) / 7.0, 2)::DOUBLE AS ltv,
          TIMESTAMP '2020-01-01' + to_seconds(i % 100000000) AS created_at,
          (i % 97)::INTEGER AS orders,
          ['US', 'DE', 'FR', 'GB', 'NL'][1 + i % 5] AS country,
          (i % 3 = 0) AS active
        FROM range({rows}) AS t(i)""")


def churn(w, rows: int, share: float) -> int:
    """Change `share` of the rows: 80% get new values, 10% leave the segment, 10% are new people."""
    n = max(1, int(rows * share))
    every = max(1, rows // n)
    w.execute(f"UPDATE people SET ltv = ltv + 1, plan = 'pro' WHERE id % {every} = 0 AND id % {every * 10} NOT IN (0, 1)")
    w.execute(f"DELETE FROM people WHERE id % {every * 10} = 1")
    w.execute(f"""
        INSERT INTO people
        SELECT i, 'new' || i || '@example.com', 'first', 'last', 'free', 1.0, TIMESTAMP '2024-01-01', 0, 'US', TRUE
        FROM range({rows}, {rows + n // 10}) AS t(i)""")
    return n


def commit_all(planner: Planner, chunk: int = 1_000_000) -> tuple[float, float, float, int]:
    """Stream the sendable rows, committing their keys every `chunk` keys, like the engine does.
    Returns (stream seconds, total commit seconds, worst commit seconds, keys)."""
    t_stream = t_commit = worst = 0.0
    pending: list[pa.Array] = []
    pending_n = total = 0

    def flush() -> None:
        nonlocal t_commit, worst, pending, pending_n, total
        if not pending_n:
            return
        keys = pa.concat_arrays(pending)
        t0 = time.perf_counter()
        total += planner.commit_acknowledged(keys)
        dt = time.perf_counter() - t0
        t_commit += dt
        worst = max(worst, dt)
        pending, pending_n = [], 0

    t0 = time.perf_counter()
    for batch in planner.stream_sendable(batch_rows=100_000):
        t_stream += time.perf_counter() - t0
        pending.append(batch.column(0))
        pending_n += batch.num_rows
        if pending_n >= chunk:
            flush()
        t0 = time.perf_counter()
    t_stream += time.perf_counter() - t0
    flush()
    return t_stream, t_commit, worst, total


def peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--churn", type=float, default=0.02)
    ap.add_argument("--db", help="DuckDB file (default: a temporary file)")
    ap.add_argument("--memory", action="store_true", help="use an in-memory DuckDB")
    ap.add_argument("--memory-limit", help="DuckDB memory_limit (default: the adapter's default)")
    args = ap.parse_args()

    tmp = None
    if args.memory:
        path = ":memory:"
    elif args.db:
        path = args.db
    else:
        tmp = tempfile.TemporaryDirectory(prefix="dinsync-bench-")
        path = os.path.join(tmp.name, "bench.duckdb")
    w = connect("duckdb", path=path, **({"memory_limit": args.memory_limit} if args.memory_limit else {}))
    setting = lambda name: w.query(f"SELECT current_setting('{name}') AS v").column(0)[0].as_py()
    limit, threads = setting("memory_limit"), setting("threads")
    results: list[tuple[str, float, str]] = []

    def step(name: str, fn, note=lambda r: ""):
        t0 = time.perf_counter()
        r = fn()
        dt = time.perf_counter() - t0
        results.append((name, dt, note(r)))
        print(f"  {name:<34} {dt:8.2f} s  {note(r)}", flush=True)
        return r

    print(f"dinsync plan benchmark: {args.rows:,} rows x {len(COLUMNS)} columns, DuckDB {path}, "
          f"memory_limit {limit}, threads {threads}")
    step("build model table", lambda: (build(w, args.rows), w.execute("CHECKPOINT")))
    spec = DiffSpec(
        sync="bench",
        model_sql="SELECT * FROM people",
        key_column="email",
        key_normalization="email",
        fields=[(c, c) for c in COLUMNS],
    )
    planner = Planner(w, spec)
    step("ensure_state", planner.ensure_state)
    fmt = lambda s: f"added={s.added:,} changed={s.changed:,} removed={s.removed:,} unchanged={s.unchanged:,}"
    step("first plan (all added)", planner.plan, fmt)
    s, c, worst, n = commit_all(planner)
    results.append(("stream sendable rows", s, ""))
    print(f"  {'stream sendable rows':<34} {s:8.2f} s")
    results.append(("commit all keys (1M per commit)", c, f"{n:,} keys, worst commit {worst:.2f} s"))
    print(f"  {'commit all keys (1M per commit)':<34} {c:8.2f} s  {n:,} keys, worst 1M commit {worst:.2f} s")
    step(f"mutate {args.churn:.0%} of rows", lambda: (churn(w, args.rows, args.churn), w.execute("CHECKPOINT"))[0],
         lambda n: f"{n:,} rows")
    stats = step(f"plan after {args.churn:.0%} churn", planner.plan, fmt)
    step("commit changed keys", lambda: commit_all(planner)[3], lambda n: f"{n:,} keys")
    step("commit removed", planner.commit_removed, lambda n: f"{n:,} keys")
    step("no-op plan", planner.plan, fmt)
    step("no-op plan (again)", planner.plan, fmt)
    del stats

    print()
    print(f"{'step':<36}{'seconds':>10}")
    print("-" * 46)
    for name, dt, _ in results:
        print(f"{name:<36}{dt:>10.2f}")
    print("-" * 46)
    print(f"{'peak RSS (MB)':<36}{peak_rss_mb():>10.0f}")
    w.close()
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
