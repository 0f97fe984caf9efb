"""Crash soak: `dinsync sync` killed with SIGKILL at random moments of a large sync, then run again.

The tests (tests/e2e/test_crash*.py) kill small syncs; this kills the bench_sync.py dataset
(default 1M rows x 9 fields, DuckDB, the bulk sink in its own process), where a first sync commits
whole row groups of 122,880 rows written straight to the database file, and a churn run replaces
snapshot rows (DELETE + INSERT) while the plan streams. Each round:

  1. a copy of the same project (its first sync done already with `--churn K`, and K x 10% of the
     rows changed before the killed run), the sink emptied;
  2. `dinsync sync` killed with SIGKILL after a random share (5-95%) of an unkilled run's time
     (the shorter of two);
  3. checked: every key the killed run committed (snapshot rows newer than before it) is one the
     sink received; the file opens;
  4. `dinsync sync` again: it must succeed, leave one snapshot row per key of the model, and the
     sink must then hold every row that had to travel; a third run must send nothing.

Prints one line per round and a summary; exits 1 when a round broke an invariant.

    python benchmarks/kill_soak.py --rows 1000000 --rounds 8 [--churn 3] [--seed 1]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
from bench_sync import KEY, make_project, sink_call, start_sink

SNAPSHOT = 'dinsync."snap_users"'


def sync(root: Path, env: dict, cwd: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dinsync.cli", "-p", str(root), "--json", "sync"], env=env,
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate()
    if proc.returncode != 0 or not out.strip():
        raise SystemExit(f"sync failed ({proc.returncode}): {out}\n{err[-3000:]}")
    return json.loads(out)["runs"][0]


def snapshot(root: Path, after=None) -> tuple[set[str], int, int, object]:
    """(keys delivered after `after`, snapshot rows, duplicated keys, newest _synced_at)."""
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        if not con.execute("select count(*) from information_schema.tables where table_schema = 'dinsync' "
                           "and table_name = 'snap_users'").fetchone()[0]:
            return set(), 0, 0, None
        newer = "_synced_at is not null" + (" and _synced_at > ?" if after is not None else "")
        keys = {k for (k,) in con.execute(f"select _key from {SNAPSHOT} where {newer}",
                                          [after] if after is not None else []).fetchall()}
        rows, dup, newest = con.execute(f"select count(*), count(*) - count(distinct _key), max(_synced_at) "
                                        f"from {SNAPSHOT}").fetchone()
        return keys, rows, dup, newest
    finally:
        con.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--churn", type=int, default=0, help="0: kill first syncs; K: K x 10%% of rows changed")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    env = dict(os.environ, BENCH_ITERABLE_KEY=KEY)
    sink, url = start_sink("fast", limits=False)
    broken = 0
    try:
        with tempfile.TemporaryDirectory(prefix="dinsync-soak-") as tmp:
            base, work = Path(tmp) / "base", Path(tmp) / "work"
            make_project(base, url, args.rows, limits=False, concurrency=8)
            if args.churn:
                finished(sync(base, env, tmp))
            _, _, _, before = snapshot(base)

            def prepare(round_no: int) -> int:
                shutil.rmtree(work, ignore_errors=True)
                shutil.copytree(base, work)
                sink_call(url, "POST", "/reset")
                if not args.churn:
                    return args.rows
                con = duckdb.connect(str(work / "warehouse.duckdb"))
                con.execute(f"update main.customers set city = 'Soak{round_no}', score = score + {round_no + 1} "
                            f"where id % 10 < {args.churn}")
                n = con.execute(f"select count(*) from main.customers where id % 10 < {args.churn}").fetchone()[0]
                con.close()
                return n

            whole = float("inf")
            for _ in range(2):  # the shorter of two unkilled runs: one stall would skew every kill late
                prepare(-1)
                start = time.perf_counter()
                finished(sync(work, env, tmp))
                whole = min(whole, time.perf_counter() - start)
            print(f"{'first sync' if not args.churn else f'{args.churn * 10}% churn'} of {args.rows:,} rows, "
                  f"unkilled: {whole:.1f} s; killing at 5-95% of that")
            for round_no in range(args.rounds):
                expected = prepare(round_no)
                at = rng.uniform(0.05, 0.95) * whole
                proc = sync(work, env, tmp)
                time.sleep(at)
                done = proc.poll() is not None
                proc.send_signal(signal.SIGKILL)
                proc.communicate()
                committed, _, _, _ = snapshot(work, before)
                received = set(sink_call(url, "GET", "/emails"))
                unacked = len(committed - received)
                rerun = finished(sync(work, env, tmp))
                _, rows, dup, _ = snapshot(work)
                delivered = sink_call(url, "GET", "/stats")["distinct"]
                noop = finished(sync(work, env, tmp))
                ok = (unacked == 0 and rerun["status"] == "success" and rows == args.rows and dup == 0
                      and delivered == expected and noop["acknowledged"] == 0 and noop["status"] == "success")
                broken += not ok
                print(f"round {round_no}: killed at {at:5.1f} s{' (had finished)' if done else ''}: "
                      f"{len(committed):,} rows committed, {unacked} of them never acknowledged; re-run "
                      f"{rerun['status']}, sent {rerun['acknowledged']:,}; snapshot {rows:,} rows, {dup} "
                      f"duplicated keys; sink {delivered:,} of {expected:,}; next run sent {noop['acknowledged']}"
                      f"  {'ok' if ok else 'BROKEN'}", flush=True)
    finally:
        sink.terminate()
        sink.wait()
    print(f"{args.rounds - broken} of {args.rounds} rounds converged with nothing committed unacknowledged")
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
