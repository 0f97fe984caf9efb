"""Benchmark the diff on DuckDB: plan and commit a large segment.

    python benchmarks/bench_plan.py [--rows 10000000] [--churn 0.02] [--checkpoint-rows 50000]
                                    [--db PATH | --memory] [--memory-limit 192MB]
                                    [--streaming-memory-limit 160MB] [--profile]
                                    [--no-baseline] [--one-process]

Builds a table of `--rows` people x 10 columns, plans it (everything added), streams the sendable
rows and commits their keys from another thread as the engine's checkpoints do (at least
`--checkpoint-rows` keys a commit, whole row groups in a first sync), changes `--churn` of the
rows and plans again, then plans twice with nothing changed.
Each phase runs in a process of its own, as it would for a user: building the model (dbt's work),
the first `dinsync sync`, changing the model, the next `dinsync sync` (`--one-process`: all in this
process, as before 2026-12-05).
Prints seconds and peak RSS per step (Linux), the worst single commit, how much the commits grew
the database file and the time this disk needs to write that much durably (`commit: disk floor`,
a probe of 256 MB with a sync every 16 MB), and the peak RSS of the run and of dinsync's own steps;
`--profile` adds the seconds of every SQL statement. No asserts: the targets live in issue 10 (10M
rows: first plan <= 12 s, commits <= 4 s in total, 2% churn plan <= 2.5 s, peak RSS <= 400 MB).

Baseline, in the same run: a naive diff as a straightforward SQL tool would write it (the last
delivered rows kept as a full copy of the model; a plan is a FULL OUTER JOIN of the model with it
on the key, every column compared with IS DISTINCT FROM), timed on the same no-op and churn data.
"""
from __future__ import annotations

import argparse
import collections
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time

from dinsync.process import use_one_blas_thread, use_one_polars_arena, use_system_arrow_pool

use_system_arrow_pool()  # Arrow's and Polars' allocators as in the `dinsync` command (before either is imported)
use_one_polars_arena()
use_one_blas_thread()

import pyarrow as pa  # noqa: E402

from dinsync.diff import DiffSpec, Planner  # noqa: E402
from dinsync.engine.commits import whole_blocks  # noqa: E402
from dinsync.engine.options import EngineOptions  # noqa: E402
from dinsync.warehouses import connect  # noqa: E402

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


def commit_all(planner: Planner, every: int, block: int | None) -> tuple[float, float, float, int, int]:
    """Stream the sendable rows (in the engine's batches) and commit their keys in a committer
    thread while streaming goes on, as the engine's checkpoints do: a commit starts when the last
    one is done and at least `every` keys wait; with `block` (a first sync on DuckDB: a row group)
    it takes whole blocks and leaves the rest waiting. When max(every, block) keys wait while a
    commit runs, the stream waits for it: the engine's stream is held back by its request queue,
    and at ~250k rows/s about a row group is acknowledged while a commit runs (twice that: +120 MB
    of peak RSS at 10M rows, for commits no faster beyond the noise).
    Returns (wall seconds, total commit seconds, worst commit seconds, commits, keys)."""
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="commit")
    times: list[float] = []
    done: list[concurrent.futures.Future] = []
    inserted = 0

    def commit(keys: pa.Array) -> int:
        t0 = time.perf_counter()
        n = planner.commit_acknowledged(keys)
        times.append(time.perf_counter() - t0)
        return n

    waiting: list[pa.Array] = []
    n_waiting = 0
    hold = max(every, block or 0)
    t0 = time.perf_counter()
    for batch in planner.stream_sendable(batch_rows=EngineOptions().batch_rows):
        # a copy: a slice of a batch imported from DuckDB keeps all its columns alive until the
        # keys are committed (~45 MB of peak RSS at 10M rows); the engine acknowledges Python lists
        waiting.append(pa.concat_arrays([batch.column(0)]))
        n_waiting += batch.num_rows
        if done and not done[-1].done() and n_waiting >= hold:
            done[-1].result()  # back-pressure
        if done and not done[-1].done() or n_waiting < every:
            continue
        n = whole_blocks(n_waiting, inserted, block) if block else n_waiting
        if n:
            keys = pa.concat_arrays(waiting)
            done.append(pool.submit(commit, keys.slice(0, n)))
            inserted += n
            waiting, n_waiting = [keys.slice(n)], n_waiting - n
    if n_waiting:
        done.append(pool.submit(commit, pa.concat_arrays(waiting)))
    keys = sum(f.result() for f in done)
    pool.shutdown()
    return time.perf_counter() - t0, sum(times), max(times, default=0.0), len(times), keys


def file_mb(path: str) -> float:
    """The size of a DuckDB database file and its write-ahead log, in MB (0 for `:memory:`)."""
    return sum(os.path.getsize(p) for p in (path, path + ".wal") if os.path.exists(p)) / 1e6


def durable_write_mb_s(folder: str, mb: int = 256) -> float:
    """This disk's speed for writes that must reach it (1 MB writes, fsync every 16 MB, as a
    database's commits do): the floor under commits that write a given number of MB. Other dirty
    pages are flushed first (the temporary files of the plan)."""
    os.sync()
    path = os.path.join(folder, "disk-probe")
    block = os.urandom(1 << 20)
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for i in range(mb):
            os.write(fd, block)
            if i % 16 == 15:
                os.fsync(fd)
        os.fsync(fd)
    finally:
        os.close(fd)
        os.remove(path)
    return mb * (1 << 20) / 1e6 / (time.perf_counter() - t0)


def step_peak_mb() -> float | None:
    """The peak RSS since the last call, and a reset of it (Linux: VmHWM, reset by writing 5 to
    clear_refs), so that each step reports its own: building the model table and mutating it are
    the user's work, not dinsync's. None where /proc has no such file."""
    try:
        with open("/proc/self/status") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except (OSError, StopIteration, ValueError):
        return None
    return kb / 1024


class Profile:
    """Seconds per SQL statement (first line of the statement as its name)."""

    def __init__(self, w):
        self.seconds: dict[str, float] = collections.defaultdict(float)
        self.cpu: dict[str, float] = collections.defaultdict(float)
        self.calls: dict[str, int] = collections.defaultdict(int)
        for name in ("execute", "query", "write_arrow"):
            original = getattr(w, name)
            setattr(w, name, self._timed(original))

    def _timed(self, fn):
        def run(sql, *a, **kw):
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                return fn(sql, *a, **kw)
            finally:
                key = f"write_arrow {a[0]}" if fn.__name__ == "write_arrow" else " ".join(sql.split())[:70]
                self.seconds[key] += time.perf_counter() - t0
                self.cpu[key] += time.process_time() - c0
                self.calls[key] += 1
        return run

    def report(self, title: str) -> None:
        if not self.seconds:
            return
        print(f"    SQL of {title}:")
        for key, s in sorted(self.seconds.items(), key=lambda kv: -kv[1])[:12]:
            print(f"      {s:7.3f} s  cpu {self.cpu[key]:7.3f} s  x{self.calls[key]:<4} {key}")
        self.seconds.clear()
        self.cpu.clear()
        self.calls.clear()


def naive_baseline(w, step) -> None:
    """The naive diff: a full copy of the delivered rows, compared column by column."""
    cols = ", ".join(COLUMNS)
    step("baseline: keep a full copy", lambda: w.execute(f"CREATE OR REPLACE TABLE delivered AS SELECT {cols} FROM people"))
    diff = " OR ".join(f"m.{c} IS DISTINCT FROM d.{c}" for c in COLUMNS)
    sql = f"""SELECT count(*) FROM people m FULL OUTER JOIN delivered d ON lower(trim(m.email)) = lower(trim(d.email))
              WHERE m.email IS NULL OR d.email IS NULL OR {diff}"""
    step("baseline: naive no-op diff", lambda: w.query(sql).column(0)[0].as_py(), lambda n: f"{n:,} rows differ")
    return sql


PHASES = ("build", "first", "mutate", "churn", "baseline")


def run_phase(args, path: str) -> dict:
    """One phase in this process: its steps' lines are printed here; returns its results (steps'
    seconds, peaks, the DuckDB settings) for the summary."""
    limits = {"memory_limit": args.memory_limit, "streaming_memory_limit": args.streaming_memory_limit}
    w = connect("duckdb", path=path, **{k: v for k, v in limits.items() if v})
    setting = lambda name: w.query(f"SELECT current_setting('{name}') AS v").column(0)[0].as_py()
    out: dict = {"results": [], "peaks": {}, "limit": setting("memory_limit"), "threads": setting("threads")}
    results, peaks = out["results"], out["peaks"]
    profile = Profile(w) if args.profile else None

    def step(name: str, fn, note=lambda r: ""):
        step_peak_mb()
        t0, c0 = time.perf_counter(), time.process_time()
        r = fn()
        dt = time.perf_counter() - t0
        results.append((name, dt))
        peak = step_peak_mb()
        if peak is not None:
            peaks[name] = peak
        rss = f"  peak RSS {peak:.0f} MB" if peak is not None else ""
        print(f"  {name:<36} {dt:8.2f} s  (cpu {time.process_time() - c0:6.2f} s){rss}  {note(r)}", flush=True)
        if profile:
            profile.report(name)
        return r

    # Building and changing the model is the user's work (dbt's, in its own process): it gets a pool
    # of its own, DuckDB's 192 MB (dinsync's default until 2026-12-02). Under the smaller pool that
    # `auto` starts with (114 MB), changing 2% of a 20M-row model ran out of memory, and the
    # adapter's retry of that DELETE failed 1 time in 3 ("Conflict on tuple deletion"). The next
    # plan sets dinsync's own pool again (size_for).
    users_pool = lambda: w.execute("SET memory_limit = '192MB'")
    spec = DiffSpec(sync="bench", model_sql="SELECT * FROM people", key_column="email", key_normalization="email",
                    fields=[(c, c) for c in COLUMNS])
    fmt = lambda s: f"added={s.added:,} changed={s.changed:,} removed={s.removed:,} unchanged={s.unchanged:,}"
    phases = PHASES if args.one_process else (args.phase,)
    planner = None
    for phase in phases:
        if phase == "build":
            step("build model table", lambda: (users_pool(), build(w, args.rows), w.execute("CHECKPOINT")))
        elif phase == "first":
            planner = Planner(w, spec)
            step("ensure_state", planner.ensure_state)
            step("first plan (all added)", planner.plan, fmt)
            ck = args.checkpoint_rows
            # as the engine: the adapter's smaller buffer pool while rows stream out (a first plan's
            # commits only insert: the inserting pool)
            step_peak_mb()
            size = file_mb(path) if path != ":memory:" else None
            with w.streaming(replacing=False):
                wall, total, worst, commits, n = commit_all(planner, ck, w.capabilities.insert_block_rows)
            peaks["stream + commit"] = step_peak_mb() or 0.0
            results.append(("stream + commit (wall)", wall))
            results.append(("commit all keys", total))
            results.append(("worst single commit", worst))
            print(f"  {'stream + commit (wall)':<36} {wall:8.2f} s  peak RSS {peaks['stream + commit']:.0f} MB")
            print(f"  {'commit all keys':<36} {total:8.2f} s  {n:,} keys in {commits} commits, worst {worst:.3f} s")
            if profile:
                profile.report("commits")
            step("checkpoint", lambda: w.execute("CHECKPOINT"))
            if size is not None:
                # the commits wrote the snapshot to the database file and synced it: at 10 fields
                # ~136 bytes a key (the key and 14 64-bit hashes, which do not compress; 1,364 MB at 10M)
                grown, speed = file_mb(path) - size, durable_write_mb_s(os.path.dirname(os.path.abspath(path)))
                results.append(("commit: disk floor", grown / speed))
                print(f"  {'commit: disk floor':<36} {grown / speed:8.2f} s  the commits grew the database by "
                      f"{grown:,.0f} MB; this disk writes {speed:,.0f} MB/s when synced")
        elif phase == "mutate":
            step(f"mutate {args.churn:.0%} of rows", lambda: (users_pool(), churn(w, args.rows, args.churn),
                                                             w.execute("CHECKPOINT"))[1],
                 lambda n: f"{n:,} rows")
        elif phase == "churn":
            if planner is None:  # the next `dinsync sync`: a new process, a new planner
                planner = Planner(w, spec)
                step("ensure_state (next run)", planner.ensure_state)
            else:  # one process: the first run's plan is still in the scratch database
                step("drop the first run's plan", planner.drop_plan)
            step(f"plan after {args.churn:.0%} churn", planner.plan, fmt)
            # as the engine before sending: the snapshot rows of the keys to send forget what was
            # delivered (from the candidates' snapshot rows the plan kept, which go with it)
            step("unsettle the keys to send", planner.unsettle_sendable)
            with w.streaming():
                step("commit changed keys", lambda: commit_all(planner, args.checkpoint_rows, None)[4],
                     lambda n: f"{n:,} keys")
            step("commit removed", planner.commit_removed, lambda n: f"{n:,} keys")
            step("no-op plan", planner.plan, fmt)
            step("no-op plan (again)", planner.plan, fmt)
        elif phase == "baseline" and not args.no_baseline:
            # a naive tool leaves DuckDB's memory limit at its default (80% of RAM): under dinsync's
            # limit its FULL OUTER JOIN of 10M rows runs out of memory
            limit = out["limit"]
            w.execute("RESET memory_limit")
            sql = naive_baseline(w, step)
            churn(w, args.rows, args.churn)
            w.execute("CHECKPOINT")
            step(f"baseline: naive diff after {args.churn:.0%}", lambda: w.query(sql).column(0)[0].as_py(),
                 lambda n: f"{n:,} rows differ")
            w.execute(f"SET memory_limit = '{limit}'")
            planner = planner or Planner(w, spec)
            planner.drop_plan()
            step(f"plan after {args.churn:.0%} churn (again)", planner.plan, fmt)
    w.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--churn", type=float, default=0.02)
    ap.add_argument("--checkpoint-rows", type=int, default=EngineOptions().checkpoint_rows,
                    help="a commit starts when at least this many keys wait (the engine's checkpoint_rows); "
                         "a first sync's commits take whole row groups, as the engine's")
    ap.add_argument("--db", help="DuckDB file (default: a temporary file)")
    ap.add_argument("--memory", action="store_true", help="use an in-memory DuckDB (implies --one-process)")
    ap.add_argument("--one-process", action="store_true",
                    help="every phase in this process (before 2026-12-05, the only way): each phase's peak "
                         "RSS then starts from what the phases before it left in the process")
    ap.add_argument("--memory-limit", help="DuckDB memory_limit (default: the adapter's default)")
    ap.add_argument("--streaming-memory-limit", help="DuckDB memory_limit while rows stream out and commits run "
                                                     "(default: the adapter's default)")
    ap.add_argument("--profile", action="store_true", help="print the seconds of each SQL statement")
    ap.add_argument("--no-baseline", action="store_true", help="skip the naive diff")
    ap.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)  # a child process's phase
    ap.add_argument("--phase-out", help=argparse.SUPPRESS)  # where a child writes its results
    args = ap.parse_args()
    args.one_process = args.one_process or args.memory

    if args.phase:  # a child: one phase, its results as JSON
        out = run_phase(args, args.db)
        with open(args.phase_out, "w") as f:
            json.dump(out, f)
        return

    tmp = None
    if args.memory:
        path = ":memory:"
    elif args.db:
        path = args.db
    else:
        tmp = tempfile.TemporaryDirectory(prefix="dinsync-bench-")
        path = os.path.join(tmp.name, "bench.duckdb")
    how = "one process" if args.one_process else "each phase in a process of its own, as the user's and dinsync's runs"
    print(f"dinsync plan benchmark: {args.rows:,} rows x {len(COLUMNS)} columns, DuckDB {path} ({how})", flush=True)
    if args.one_process:
        outs = [run_phase(args, path)]
    else:
        # Each `dinsync sync` is a process of its own, and so is the user's work (dbt building and
        # changing the model): a phase's peak RSS does not start from what an earlier one left in
        # the process (DuckDB's pool filled by the user's 192 MB, freed memory the allocators keep).
        outs = []
        with tempfile.TemporaryDirectory(prefix="dinsync-bench-out-") as outdir:
            for phase in PHASES:
                if phase == "baseline" and args.no_baseline:
                    continue
                out_path = os.path.join(outdir, phase + ".json")
                argv = [a for a in sys.argv[1:] if a not in ("--memory",)]
                cmd = [sys.executable, os.path.abspath(__file__), *argv, "--db", path, "--phase", phase,
                       "--phase-out", out_path]
                code = subprocess.call(cmd)
                if code:
                    raise SystemExit(f"phase {phase} failed (exit {code})")
                with open(out_path) as f:
                    outs.append(json.load(f))
    print(f"DuckDB memory_limit {outs[-1]['limit']}, threads {outs[-1]['threads']} (dinsync's defaults)")
    results = [tuple(r) for o in outs for r in o["results"]]
    peaks = {k: v for o in outs for k, v in o["peaks"].items()}

    print()
    print(f"{'step':<40}{'seconds':>10}")
    print("-" * 50)
    for name, dt in results:
        print(f"{name:<40}{dt:>10.2f}")
    print("-" * 50)
    # (the per-step resets of the peak also reset ru_maxrss: the largest step peak is the run's)
    print(f"{'peak RSS of every step (MB)':<40}{max(peaks.values(), default=0.0):>10.0f}")
    own = {k: v for k, v in peaks.items() if not k.startswith(("build", "mutate", "baseline"))}
    if own:  # without the steps that build and change the model (the user's work)
        name = max(own, key=own.get)
        print(f"{'peak RSS of dinsync steps (MB)':<40}{own[name]:>10.0f}  ({name})")
    if not args.no_baseline:
        get = dict(results)
        print(f"no-op: naive {get['baseline: naive no-op diff']:.2f} s / dinsync {get['no-op plan (again)']:.2f} s = "
              f"{get['baseline: naive no-op diff'] / max(get['no-op plan (again)'], 1e-9):.1f}x")
        key = f"baseline: naive diff after {args.churn:.0%}"
        ours = get[f"plan after {args.churn:.0%} churn (again)"]
        print(f"churn: naive {get[key]:.2f} s / dinsync {ours:.2f} s = {get[key] / max(ours, 1e-9):.1f}x")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
