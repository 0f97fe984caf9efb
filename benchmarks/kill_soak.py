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
                                   [--warehouse duckdb|postgres|redshift|snowflake]

`--warehouse` other than duckdb keeps the model and the state on a server, in two schemas named
`--schema-prefix`_m and _s (dropped before and after): PostgreSQL at $DINSYNC_SOAK_PG_DSN
(default 127.0.0.1:5432, database `test`), the Redshift adapter against that PostgreSQL (with the
tests' stand-ins for FNV_HASH and GETDATE), or Snowflake's connector against fakesnow (started
here, as the tests do). There a round does not start from a copy: a first-sync round drops the
state schema, a churn round changes K x 10% of the rows of the model the previous round converged on.

`--destination attio|attio-companies|attentive|splio|splio-api` (default iterable: the rounds above)
kills syncs to that destination's sandbox instead (kill_soak_destinations.py: DuckDB, a few thousand
rows, kills at chosen moments: while an outcome is awaited, right after a write or an import report,
right after a checkpoint commit began, once everything was delivered, while planning; `--moments`,
`--kills 2`, `--full-refresh`, `--revert`; see that module's docstring):

    python benchmarks/kill_soak.py --destination splio --rows 30000 --rounds 20 [--churn 3 --revert]
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
from typing import Callable

import duckdb
from bench_sync import KEY, SYNC, make_project, sink_call, start_sink

SNAPSHOT = 'dinsync."snap_users"'
ROOT = Path(__file__).resolve().parents[1]

# bench_sync's dataset on the servers (the same columns and rules; the timestamps' text aside)
SERVER_SEED = {
    "postgres": """CREATE TABLE customers AS
SELECT i AS id,
       CASE WHEN i % 40 < 3 THEN (ARRAY['amélie', 'josé', 'zoë'])[1 + i % 3] || '.' || i || '@example.net'
            ELSE 'user' || i || '@example.com' END AS email,
       'First' || (i % 5000) AS first_name, 'Last' || (i % 7919) AS last_name,
       (ARRAY['free', 'pro', 'team'])[1 + i % 3] AS plan, (ARRAY['Paris', 'Lyon', 'Berlin', 'Oslo'])[1 + i % 4] AS city,
       (i % 10007) / 3.0 AS ltv, DATE '2020-01-01' + (i % 2000) AS signup_date,
       to_char(TIMESTAMP '2024-01-01' + make_interval(secs => i * 37 % 31536000), 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS last_seen,
       i % 100 AS score, i % 2 = 0 AS is_active
FROM generate_series(1, {rows}) AS t(i)""",
    "snowflake": """CREATE OR REPLACE TABLE customers AS
SELECT i AS id,
       CASE WHEN i % 40 < 3 THEN DECODE(i % 3, 0, 'amélie', 1, 'josé', 'zoë') || '.' || i || '@example.net'
            ELSE 'user' || i || '@example.com' END AS email,
       'First' || (i % 5000) AS first_name, 'Last' || (i % 7919) AS last_name,
       DECODE(i % 3, 0, 'free', 1, 'pro', 'team') AS plan, DECODE(i % 4, 0, 'Paris', 1, 'Lyon', 2, 'Berlin', 'Oslo') AS city,
       (i % 10007) / 3.0 AS ltv, DATEADD(day, i % 2000, CAST('2020-01-01' AS DATE)) AS signup_date,
       CAST(DATEADD(second, i * 37 % 31536000, CAST('2024-01-01' AS TIMESTAMP)) AS VARCHAR) AS last_seen,
       i % 100 AS score, i % 2 = 0 AS is_active
FROM (SELECT ROW_NUMBER() OVER (ORDER BY SEQ8()) AS i FROM TABLE(GENERATOR(ROWCOUNT => {rows})))""",
}


class ServerState:
    """The model (schema `<prefix>_m`) and dinsync's state (`<prefix>_s`) on a server warehouse."""

    def __init__(self, kind: str, prefix: str):
        self.kind, self.model, self.state = kind, f"{prefix}_m", f"{prefix}_s"
        self.fakesnow = None
        if kind == "snowflake":
            sys.path.insert(0, str(ROOT))
            from tests.warehouses.support import FakesnowServer  # fakesnow with the tests' fixes

            self.fakesnow = FakesnowServer()
            self.options = dict(self.fakesnow.options(), database="SOAK")
            self.admin(None, "CREATE DATABASE IF NOT EXISTS SOAK")
        else:
            self.options = {"dsn": os.environ.get("DINSYNC_SOAK_PG_DSN", "host=127.0.0.1 port=5432 dbname=test")}
        self.drop()

    def connect(self, schema: str | None):
        from dinsync.warehouses import connect

        if self.kind == "snowflake":
            return connect("snowflake", **dict(self.options, schema=schema))
        return connect(self.kind, **self.options, search_path=[schema or "public", "public"])

    def admin(self, schema: str | None, *statements: str) -> list:
        wh = self.connect(schema)
        try:
            out = []
            for sql in statements:
                out = wh.query(sql).to_pylist() if sql.lstrip().upper().startswith("SELECT") else wh.execute(sql)
            return out
        finally:
            wh.close()

    def drop(self, *schemas: str) -> None:
        self.admin(None, *(f'DROP SCHEMA IF EXISTS "{s}" CASCADE' for s in (schemas or (self.model, self.state))))

    def make_project(self, root: Path, url: str, rows: int) -> None:
        """bench_sync's project and dataset, its model and state here."""
        make_project(root, url, 1, limits=False, concurrency=8)  # (its one-row DuckDB file is removed)
        (root / "warehouse.duckdb").unlink()
        where = (f"  type: snowflake\n  account: fakesnow\n  user: {self.options['user']}\n"
                 f"  password: ${{env:SOAK_SF_PASSWORD}}\n  database: {self.options['database']}\n"
                 f"  schema: {self.model}\n  host: 127.0.0.1\n  port: {self.options['port']}\n  protocol: http\n"
                 if self.kind == "snowflake" else
                 f"  type: {self.kind}\n  dsn: ${{env:SOAK_PG_DSN}}\n  search_path: [{self.model}, public]\n")
        yml = (root / "dinsync.yml").read_text().replace("warehouse: {type: duckdb, path: warehouse.duckdb}\n",
                                                          f"warehouse:\n{where}state_schema: {self.state}\n")
        (root / "dinsync.yml").write_text(yml)
        (root / "models" / "customers.sql").write_text("-- primary_key: id\nselect * from customers\n")
        self.admin(None, f'CREATE SCHEMA "{self.model}"')
        if self.kind == "redshift":
            sys.path.insert(0, str(ROOT))
            from tests.warehouses.support import REDSHIFT_FUNCTIONS

            self.admin(None, *(f.format(s=f'"{self.model}"') for f in REDSHIFT_FUNCTIONS))
        self.admin(self.model, SERVER_SEED["snowflake" if self.kind == "snowflake" else "postgres"].format(rows=rows))

    def env(self) -> dict:
        return {"SOAK_SF_PASSWORD": self.options.get("password", ""), "SOAK_PG_DSN": self.options.get("dsn", "")}

    def change(self, round_no: int, churn: int) -> int:
        self.admin(self.model, f"UPDATE customers SET city = 'Soak{round_no}', score = score + {round_no + 1} "
                               f"WHERE id % 10 < {churn}")
        return self.admin(self.model, f"SELECT COUNT(*) AS n FROM customers WHERE id % 10 < {churn}")[0]["n"]

    def snapshot(self, after=None) -> tuple[set[str], int, int, object]:
        wh = self.connect(None)
        try:
            snap = wh.table_name(self.state, "snap_users")
            if not wh.query("SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = :s "
                            "AND table_name = 'snap_users'", {"s": self.state}).to_pylist()[0]["n"]:
                return set(), 0, 0, None
            newer = "_synced_at IS NOT NULL" + (" AND _synced_at > :after" if after is not None else "")
            keys = {r["_key"] for r in wh.query(f"SELECT _key FROM {snap} WHERE {newer}",
                                                {"after": after} if after is not None else None).to_pylist()}
            r = wh.query(f"SELECT COUNT(*) AS n, COUNT(*) - COUNT(DISTINCT _key) AS dup, MAX(_synced_at) AS newest "
                         f"FROM {snap}").to_pylist()[0]
            return keys, r["n"], r["dup"], r["newest"]
        finally:
            wh.close()

    def close(self) -> None:
        try:
            self.drop()
        finally:
            if self.fakesnow is not None:
                self.fakesnow.stop()


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


def kill_round(round_no: int, at: float, start: Callable[[], subprocess.Popen],
               snapshot_of: Callable[..., tuple], before: object, url: str, rows: int, expected: int) -> bool:
    """One round, on whichever warehouse: `start()` a sync, SIGKILL it after `at` seconds, check that
    every key it committed (snapshot rows newer than `before`) reached the sink, run again (it must
    succeed with one snapshot row per key and the sink holding the `expected` rows) and once more
    (it must send nothing). Prints the round's line; True when every invariant held."""
    proc = start()
    time.sleep(at)
    done = proc.poll() is not None
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    committed, _, _, _ = snapshot_of(before)
    received = set(sink_call(url, "GET", "/emails"))
    unacked = len(committed - received)
    rerun = finished(start())
    _, held, dup, _ = snapshot_of()
    delivered = sink_call(url, "GET", "/stats")["distinct"]
    noop = finished(start())
    ok = (unacked == 0 and rerun["status"] == "success" and held == rows and dup == 0
          and delivered == expected and noop["acknowledged"] == 0 and noop["status"] == "success")
    print(f"round {round_no}: killed at {at:5.1f} s{' (had finished)' if done else ''}: "
          f"{len(committed):,} rows committed, {unacked} of them never acknowledged; re-run "
          f"{rerun['status']}, sent {rerun['acknowledged']:,}; snapshot {held:,} rows, {dup} "
          f"duplicated keys; sink {delivered:,} of {expected:,}; next run sent {noop['acknowledged']}"
          f"  {'ok' if ok else 'BROKEN'}", flush=True)
    return ok


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--churn", type=int, default=0, help="0: kill first syncs; K: K x 10%% of rows changed")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--warehouse", choices=("duckdb", "postgres", "redshift", "snowflake"), default="duckdb")
    ap.add_argument("--schema-prefix", default="dinsync_soak", help="server warehouses: <prefix>_m, <prefix>_s")
    ap.add_argument("--destination", choices=("iterable", "attio", "attio-companies", "attio-both", "attentive", "splio", "splio-api"),
                    default="iterable", help="other than iterable: kill_soak_destinations.py's rounds (DuckDB)")
    ap.add_argument("--moments", default="", help="other destinations: kill moments taken in turn "
                    "(random,pending,ack,checkpoint,final; default: all)")
    ap.add_argument("--revert", action="store_true", help="other destinations, with --churn: every other round "
                    "the model goes back to its previous values after the kill")
    ap.add_argument("--kills", type=int, default=1, help="other destinations: runs killed in a row before the "
                    "re-run that must converge (2: the re-run of a killed run is killed too)")
    ap.add_argument("--full-refresh", action="store_true", help="other destinations, with --churn: the killed run "
                    "is `sync --full-refresh`")
    ap.add_argument("--update-mode", action="store_true", help="attio, attio-companies, splio, splio-api with --churn: rounds in "
                    "mode: update")
    ap.add_argument("--unsettled-first", action="store_true", help="other destinations: a run that ends before "
                    "its outcomes arrived (0.2 s outcome timeout) precedes the killed run")
    args = ap.parse_args()
    if args.destination != "iterable" and args.warehouse != "duckdb":
        # (their rounds read the state file of a DuckDB project: they ran on DuckDB whatever was asked)
        ap.error(f"--destination {args.destination} soaks on DuckDB only; --warehouse {args.warehouse} "
                 "works with --destination iterable")
    if args.destination != "iterable":
        from kill_soak_destinations import soak

        return soak(args)
    if args.warehouse != "duckdb":
        return server_soak(args)
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
                broken += not kill_round(round_no, at, lambda: sync(work, env, tmp),
                                         lambda after=None: snapshot(work, after), before, url, args.rows, expected)
    finally:
        sink.terminate()
        sink.wait()
    print(f"{args.rounds - broken} of {args.rounds} rounds converged with nothing committed unacknowledged")
    sys.exit(1 if broken else 0)


def server_soak(args) -> None:
    """main() with the model and state on a server warehouse (see the module's docstring)."""
    rng = random.Random(args.seed)
    server = ServerState(args.warehouse, args.schema_prefix)
    sink, url = start_sink("fast", limits=False)
    broken = 0
    try:
        with tempfile.TemporaryDirectory(prefix="dinsync-soak-") as tmp:
            root = Path(tmp) / "project"
            server.make_project(root, url, args.rows)
            env = dict(os.environ, BENCH_ITERABLE_KEY=KEY, PYTHONPATH=str(ROOT), **server.env())

            def prepare(round_no: int) -> int:
                sink_call(url, "POST", "/reset")
                if not args.churn:
                    server.drop(server.state)
                    return args.rows
                return server.change(round_no, args.churn)

            if args.churn:
                finished(sync(root, env, tmp))
            whole = float("inf")
            for n in range(2):
                prepare(-1 - n)
                start = time.perf_counter()
                finished(sync(root, env, tmp))
                whole = min(whole, time.perf_counter() - start)
            print(f"{args.warehouse}: {'first sync' if not args.churn else f'{args.churn * 10}% churn'} of "
                  f"{args.rows:,} rows, unkilled: {whole:.1f} s; killing at 5-95% of that", flush=True)
            for round_no in range(args.rounds):
                expected = prepare(round_no)
                _, _, _, before = server.snapshot()
                at = rng.uniform(0.05, 0.95) * whole
                broken += not kill_round(round_no, at, lambda: sync(root, env, tmp), server.snapshot, before, url,
                                         args.rows, expected)
    finally:
        sink.terminate()
        sink.wait()
        server.close()
    print(f"{args.rounds - broken} of {args.rounds} rounds converged with nothing committed unacknowledged")
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
