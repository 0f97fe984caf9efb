"""End-to-end sync benchmark: DuckDB model -> `dinsync sync` (the whole command) -> a sink in its own process.

Dataset (deterministic): N customers x 9 mapped fields (text, numbers, a date, a timestamp held as
text, a boolean), ~7.5% of emails with a non-ASCII local part (`amélie.40@example.net`).

Scenarios (each prints a line; nothing is asserted):
  first   first sync of N rows, no rate limit: wall clock as a user times it, rows/s, every row
          delivered (distinct emails at the sink), peak RSS of the dinsync process
  churn   2% of rows changed (no updated_at column): only those rows travel; `--repeat` runs
          (default 3; 0: neither churn nor no-op runs), each changing another 2% of the rows, the
          median in the table
  noop    nothing changed (`--repeat` runs, the median in the table)
  rate    a sync under Iterable's documented bulkUpdate limit (5 req/s) against the full sandbox:
          achieved rate and 429s
The sink (`--sink fast`, default) is `benchmarks/bulk_sink.py`, an Iterable-shaped bulk endpoint
that does not store profiles; `--sink sandbox` uses the full Iterable sandbox (which answers
~150-200 bulk requests/s and then bounds the first sync). Baseline, in the same run: a naive
row-by-row sender in the style of peer tools (rows fetched as Python tuples, dicts, orjson per
batch, one request at a time, everything resent when there is no cursor column).

    python benchmarks/bench_sync.py --rows 1000000
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import duckdb
import orjson
from cli_run import run_cli

KEY = "bench-key-0123456789"

DINSYNC_YML = """\
version: 1
warehouse: {{type: duckdb, path: warehouse.duckdb}}
destinations:
  iterable:
    type: iterable
    api_key: ${{env:BENCH_ITERABLE_KEY}}
    base_url: {url}
    concurrency: {concurrency}
    {limits}
"""
MODEL = "-- primary_key: id\nselect * from main.customers\n"
SYNC = """\
model: customers
destination: iterable
service: users
mode: upsert
match: {column: email, field: email}
fields: {first_name: firstName, last_name: lastName, plan: plan, city: city, ltv: ltv,
         signup_date: signupDate, last_seen: lastSeen, score: score, is_active: isActive}
"""
SEED = """
create or replace table main.customers as
select i as id,
       case when i % 40 < 3 then ['amélie', 'josé', 'zoë'][1 + i % 3] || '.' || i || '@example.net'
            else 'user' || i || '@example.com' end as email,
       'First' || (i % 5000) as first_name, 'Last' || (i % 7919) as last_name,
       ['free','pro','team'][1 + i % 3] as plan, ['Paris','Lyon','Berlin','Oslo'][1 + i % 4] as city,
       (i % 10007) / 3.0 as ltv, date '2020-01-01' + cast(i % 2000 as integer) as signup_date,
       strftime(timestamp '2024-01-01' + to_seconds(i * 37 % 31536000), '%Y-%m-%dT%H:%M:%SZ') as last_seen,
       i % 100 as score, i % 2 = 0 as is_active
from range(1, {rows} + 1) t(i)
"""
SINK = Path(__file__).with_name("bulk_sink.py")


def start_sink(kind: str, limits: bool) -> tuple[subprocess.Popen, str]:
    if kind == "fast":
        args = [sys.executable, str(SINK), "--port", "0"]
    else:
        args = [sys.executable, "-m", "dinsync.sandbox", "iterable", "--port", "0", "--api-key", KEY]
        if not limits:
            args.append("--no-limits")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    assert line.startswith("listening "), line
    return proc, line.split()[1]


def make_project(root: Path, url: str, rows: int, limits: bool, concurrency: int) -> None:
    (root / "models").mkdir(parents=True, exist_ok=True)
    (root / "syncs").mkdir(exist_ok=True)
    limit_line = "" if limits else "rate_limits: {bulk_update: null}"
    (root / "dinsync.yml").write_text(DINSYNC_YML.format(url=url, concurrency=concurrency, limits=limit_line))
    (root / "models" / "customers.sql").write_text(MODEL)
    (root / "syncs" / "users.yml").write_text(SYNC)
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    con.execute(SEED.format(rows=rows))
    con.close()


def cli_sync(root: Path) -> tuple[dict, float, float]:
    """One `dinsync sync` as a user runs it: (run summary, wall seconds, peak RSS MB of that process)."""
    env = dict(os.environ, BENCH_ITERABLE_KEY=KEY)
    code, stdout, stderr, wall, peak = run_cli(["-p", str(root), "--json", "sync"], env)
    if code not in (0, 4):
        raise SystemExit(f"sync failed ({code}): {stdout}\n{stderr[-3000:]}")
    return json.loads(stdout)["runs"][0], wall, peak


def median_run(runs: list[tuple[dict, float, float]]) -> tuple[dict, float, float]:
    """The run of median wall clock among `runs` (run summary, wall seconds, peak RSS MB)."""
    return sorted(runs, key=lambda r: r[1])[len(runs) // 2]


def sink_call(url: str, method: str, path: str):
    """The sink's JSON answer to `method path` (GET /stats, GET /emails, POST /reset)."""
    async def call():
        async with aiohttp.ClientSession() as session, session.request(method, url + path) as resp:
            return orjson.loads(await resp.read())

    return asyncio.run(call())


async def naive_send(url: str, rows: list[tuple], columns: list[str], batch: int = 1000) -> int:
    headers = {"Api-Key": KEY, "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session:
        for start in range(0, len(rows), batch):
            users = []
            for row in rows[start:start + batch]:
                record = dict(zip(columns, row))
                email = record.pop("email")
                record.pop("id")
                users.append({"email": email, "dataFields": {k: (v.isoformat() if hasattr(v, "isoformat") else v)
                                                             for k, v in record.items()}})
            async with session.post(url + "/api/users/bulkUpdate", data=orjson.dumps({"users": users}),
                                    headers=headers) as resp:
                await resp.read()
                assert resp.status == 200, resp.status
    return len(rows)


def naive_baseline(root: Path, url: str) -> float:
    start = time.perf_counter()
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    cur = con.execute("select * from main.customers")
    columns = [d[0] for d in cur.description]
    rows = cur.fetchall()
    con.close()
    sent = asyncio.run(naive_send(url, rows, columns))
    return sent / (time.perf_counter() - start)


def bytecode_note() -> str:
    """Whether the dinsync the CLI imports runs from compiled bytecode, as a regular install does
    (pip compiles it); an editable install under PYTHONDONTWRITEBYTECODE=1 compiles every module
    on every command, ~0.1 s of each churn and no-op run."""
    import importlib.util

    import dinsync.engine.run as module

    cached = os.path.exists(importlib.util.cache_from_source(module.__file__))
    return "dinsync bytecode: " + ("compiled" if cached else "NOT compiled (each command compiles its modules, "
                                   "~0.1 s: run `python -m compileall -q dinsync` for figures as installed)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--churn", type=float, default=0.02)
    ap.add_argument("--rate-rows", type=int, default=50_000, help="rows for the rate-limit scenario (0: skip)")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--sink", choices=("fast", "sandbox"), default="fast")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--repeat", type=int, default=3,
                    help="churn runs (each on other rows) and no-op runs; the table shows the median "
                         "(0: the first sync only)")
    args = ap.parse_args()
    args.repeat = max(0, args.repeat)
    results = []
    spread: dict[str, list] = {}
    delivered = None
    with tempfile.TemporaryDirectory(prefix="dinsync-bench-") as tmp:
        root = Path(tmp) / "fast"
        sink, url = start_sink(args.sink, limits=False)
        try:
            make_project(root, url, args.rows, limits=False, concurrency=args.concurrency)
            run, wall, rss = cli_sync(root)
            results.append(("first sync", run["acknowledged"], wall, run["seconds"], run["acknowledged"] / wall, rss,
                            run["requests"], run["throttled"]))
            if args.sink == "fast":
                delivered = sink_call(url, "GET", "/stats")["distinct"]
            step = max(1, round(1 / args.churn))
            churns, noops = [], []
            for k in range(args.repeat):  # each churn run changes another `churn` share of the rows
                con = duckdb.connect(str(root / "warehouse.duckdb"))
                con.execute(f"update main.customers set plan = 'enterprise', score = score + 1 "
                            f"where id % {step} = {k % step}")
                con.close()
                churns.append(cli_sync(root))
            for _ in range(args.repeat):
                noops.append(cli_sync(root))
            if args.repeat:
                run, wall, rss = median_run(churns)
                results.append((f"{args.churn:.0%} churn", run["changed"], wall, run["seconds"],
                                run["acknowledged"] / wall, rss, run["requests"], run["throttled"]))
                run, wall, rss = median_run(noops)
                results.append(("no-op", 0, wall, run["seconds"], 0.0, rss, run["requests"], run["throttled"]))
                spread = {f"{args.churn:.0%} churn": churns, "no-op": noops}
            baseline = None if args.no_baseline else naive_baseline(root, url)
        finally:
            sink.terminate()
            sink.wait()
        if args.rate_rows:
            sink, url = start_sink("sandbox", limits=True)
            try:
                rroot = Path(tmp) / "rate"
                make_project(rroot, url, args.rate_rows, limits=True, concurrency=args.concurrency)
                run, wall, rss = cli_sync(rroot)
                # achieved bulkUpdate rate between the first and the last request the sender started
                rate = run["request_rates"].get("bulk_update", 0.0)
                results.append(("rate 5/s (sandbox)", run["acknowledged"], wall, run["seconds"],
                                run["acknowledged"] / wall, rss, run["requests"], run["throttled"]))
                results.append((f"  -> req/s {rate / 5.0:.1%} of 5", None, None, None, rate, None, None, None))
            finally:
                sink.terminate()
                sink.wait()
    print(bytecode_note())
    print(f"{'scenario':<22}{'rows':>10}{'wall s':>9}{'engine s':>10}{'rows/s':>12}{'peak RSS MB':>13}"
          f"{'requests':>10}{'429s':>6}")
    for name, rows, wall, eng, rps, rss, reqs, thr in results:
        def fmt(v, f):
            return "" if v is None else format(v, f)

        print(f"{name:<22}{fmt(rows, ',d'):>10}{fmt(wall, '.2f'):>9}{fmt(eng, '.2f'):>10}"
              f"{fmt(rps, ',.2f' if rps and rps < 100 else ',.0f'):>12}"
              f"{fmt(rss, '.0f'):>13}{fmt(reqs, 'd'):>10}{fmt(thr, 'd'):>6}")
    for name, runs in spread.items():
        if len(runs) > 1:
            walls = ", ".join(f"{wall:.2f}" for _, wall, _ in runs)
            rss = ", ".join(f"{peak:.0f}" for _, _, peak in runs)
            print(f"{name}: {len(runs)} runs, wall s {walls} (median in the table); peak RSS MB {rss}")
    if delivered is not None:
        print(f"delivered: {delivered:,} distinct users at the sink of {args.rows:,} rows "
              f"({'all' if delivered == args.rows else 'NOT all'})")
    if baseline:
        first = results[0][4]
        line = (f"naive row-by-row baseline (full resend, 1 request at a time): {baseline:,.0f} rows/s; "
                f"dinsync first sync is {first / baseline:.1f}x")
        if args.repeat:
            line += (f"; on the churn run the baseline resends all {args.rows:,} rows "
                     f"(~{args.rows / baseline:.1f}s) vs {results[1][2]:.2f}s")
        print(line)


if __name__ == "__main__":
    main()
