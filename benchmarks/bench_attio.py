"""Attio benchmark: how much of the documented write limit (25 requests/s per token) `dinsync sync`
holds against the Attio sandbox, with the sandbox's own limits on (sliding 1 s window, 429 +
HTTP-date Retry-After) and 150 ms of latency per request (Attio: 100-300 ms per write).

The sandbox runs in its own process (`python -m dinsync.sandbox attio ...`); `dinsync sync` runs as
a subprocess, as a user runs it. Scenarios (each prints a line; nothing is asserted):
  upsert  N people created by asserts (one write per row)
  update  the same N people changed in update mode: batched records queries (reads) then one
          PUT by record id per row (writes)
Figures per scenario: wall clock, writes acknowledged, achieved writes/s (first to last write
attempt, as the sender measures it) and its share of 25/s, 429s received, and a check that the
sandbox holds every row. Baseline in the same run: a naive client sending one assert at a time
(no concurrency), as a row-by-row connector would.

    python benchmarks/bench_attio.py --rows 750
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

TOKEN = "bench-attio-token-0123456789"
LIMIT = 25.0

DINSYNC_YML = """\
version: 1
warehouse: {{type: duckdb, path: warehouse.duckdb}}
destinations:
  attio:
    type: attio
    api_key: ${{env:BENCH_ATTIO_TOKEN}}
    base_url: {url}
"""
MODEL = "-- primary_key: id\n-- model_type: user\nselect * from main.people\n"
SYNC = """\
model: people
destination: attio
service: people
mode: {mode}
match: {{column: email, field: email_addresses}}
fields: {{title: job_title, plan: plan, ltv: lifetime_value, city: description}}
"""


def start_sandbox(latency: float) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, DINSYNC_SANDBOX_API_KEY=TOKEN)
    args = [sys.executable, "-m", "dinsync.sandbox", "attio", "--port", "0", "--latency", str(latency),
            "--custom-attribute", "people:plan:select:free,pro,team",
            "--custom-attribute", "people:lifetime_value:currency"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline().strip()
    assert line.startswith("listening "), line
    return proc, line.split()[1]


def make_project(root: Path, url: str, rows: int) -> None:
    (root / "models").mkdir(parents=True)
    (root / "syncs").mkdir()
    (root / "dinsync.yml").write_text(DINSYNC_YML.format(url=url))
    (root / "models" / "people.sql").write_text(MODEL)
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    con.execute("create table main.people as select i as id, 'person' || i || '@bench.example' as email, "
                "'Title ' || i as title, case when i % 3 = 0 then 'pro' else 'free' end as plan, "
                "round(i * 1.25, 2) as ltv, 'City ' || (i % 50) as city from range(1, ? + 1) t(i)", [rows])
    con.close()


def write_sync(root: Path, mode: str) -> None:
    (root / "syncs" / "attio_people.yml").write_text(SYNC.format(mode=mode))


def cli_sync(root: Path) -> tuple[dict, float]:
    env = dict(os.environ, BENCH_ATTIO_TOKEN=TOKEN)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "dinsync.cli", "-p", str(root), "--json", "sync"],
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    data = json.loads(proc.stdout)
    if "runs" not in data:
        raise SystemExit(f"sync failed: {data} {proc.stderr[-2000:]}")
    return data["runs"][0], wall


async def _people(url: str, rows: int) -> list[dict]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.post(f"{url}/v2/objects/people/records/query", data=orjson.dumps({"limit": rows + 100}),
                                headers={"Content-Type": "application/json"}) as resp:
            body = await resp.json()
    return body["data"]


def held_by_sandbox(url: str, rows: int, plan_of) -> str:
    people = asyncio.run(_people(url, rows))
    emails = {p["values"]["email_addresses"][0]["email_address"]: p for p in people}
    good = sum(1 for i in range(1, rows + 1)
               if (p := emails.get(f"person{i}@bench.example")) is not None
               and p["values"]["plan"] and p["values"]["plan"][0]["option"]["title"] == plan_of(i))
    return f"{good}/{rows} rows as in the model"


async def naive_asserts(url: str, rows: int) -> float:
    """One assert at a time, as a row-by-row client would send them."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    started = time.perf_counter()
    async with aiohttp.ClientSession(headers=headers) as session:
        for i in range(1, rows + 1):
            body = orjson.dumps({"data": {"values": {"email_addresses": [f"naive{i}@bench.example"],
                                                     "job_title": [f"Title {i}"]}}})
            async with session.put(f"{url}/v2/objects/people/records?matching_attribute=email_addresses",
                                   data=body) as resp:
                await resp.read()
                if resp.status == 429:
                    await asyncio.sleep(1.0)
    return rows / (time.perf_counter() - started)


def report(name: str, run: dict, wall: float, held: str) -> float:
    rate = run["request_rates"].get("write", 0.0)
    print(f"{name:7} | {wall:7.2f} | {run['acknowledged']:6d} | {rate:8.2f} | {100 * rate / LIMIT:6.1f}% | "
          f"{run['throttled']:4d} | {run.get('request_rates', {}).get('read', 0.0):7.2f} | {held}", flush=True)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=750)
    parser.add_argument("--latency", type=float, default=0.15, help="sandbox seconds per request")
    parser.add_argument("--baseline-rows", type=int, default=60)
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    proc, url = start_sandbox(args.latency)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-attio-") as tmp:
            root = Path(tmp) / "project"
            make_project(root, url, args.rows)
            print(f"Attio sandbox {url}: limits on (25 writes/s, 100 reads/s), latency {args.latency * 1000:.0f} ms; "
                  f"{args.rows} people", flush=True)
            print("scenario|  wall s | writes | writes/s | of 25/s | 429s | reads/s | sandbox check")
            write_sync(root, "upsert")
            run, wall = cli_sync(root)
            rates = [report("upsert", run, wall, held_by_sandbox(url, args.rows,
                                                                 lambda i: "pro" if i % 3 == 0 else "free"))]
            con = duckdb.connect(str(root / "warehouse.duckdb"))
            con.execute("update main.people set plan = 'team'")
            con.close()
            write_sync(root, "update")
            run, wall = cli_sync(root)
            rates.append(report("update", run, wall, held_by_sandbox(url, args.rows, lambda i: "team")))
            if not args.no_baseline:
                naive = asyncio.run(naive_asserts(url, args.baseline_rows))
                print(f"baseline: one assert at a time ({args.baseline_rows} rows): {naive:.2f} writes/s "
                      f"= {100 * naive / LIMIT:.1f}% of 25/s; dinsync upsert {rates[0]:.2f} writes/s "
                      f"({rates[0] / naive:.1f}x)")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
