"""Attentive benchmark: achieved requests/s per endpoint against the sandbox's documented limits, 429s.

The Attentive sandbox runs in its own process (`python -m dinsync.sandbox attentive`) with the
documented limits on (fixed 1-second windows per endpoint, 429 without Retry-After, x-ratelimit-*
headers), seeded with N subscribers. `dinsync sync` runs as a user runs it (a subprocess).

Scenarios (each prints a line; nothing is asserted):
  first     first sync of N rows (standard fields + one custom attribute): every row looked up
            (GET /v1/attributes/custom, 150/s), custom attributes through POST /v1/attributes/custom
            (150/s, one user per request), standard fields through v2 bulk jobs
  bulk      every row's first name changed, `lookup: new_rows` (the snapshot vouches for them):
            only v2 bulk submissions (100/s) and job polls; `bulk_max_users` small (rows divided by
            --bulk-requests) so that the run lasts long enough to measure the request rate
  subs      new rows checked through GET /v1/subscriptions only (10/s)
Baseline, in the same run: a naive client in the style of peer tools (one row at a time: lookup,
then the v1 and v2 writes, sequentially; on a 429, sleep 1 s and retry), against the same sandbox.

    python benchmarks/bench_attentive.py --rows 3000
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

KEY = "bench-attentive-key-0123456789"
LIMITS = {"get_custom_attributes": 150, "custom_attributes": 150, "bulk_user_attributes": 100, "bulk_job": 100,
          "get_subscriptions": 10, "user_attributes": 150}

DINSYNC_YML = """\
version: 1
warehouse: {{type: duckdb, path: warehouse.duckdb}}
destinations:
  attentive:
    type: attentive
    api_key: ${{env:BENCH_ATTENTIVE_KEY}}
    base_url: {url}
    concurrency: 16
{extra}"""
MODEL = "-- primary_key: id\n-- model_type: user\nselect * from main.customers where id < {rows}\n"
SYNC = """\
model: customers
destination: attentive
service: users
mode: update
match: {{column: email, field: email}}
fields: {fields}
"""
SEED = """
create or replace table main.customers as
select i as id, 'subscriber' || i || '@example.com' as email, 'First' || i as first_name,
       ['Paris','Lyon','Berlin','Oslo'][1 + i % 4] as city, ['gold','silver'][1 + i % 2] as tier
from range(0, {rows}) t(i)
"""


def start_sandbox(subscribers: int, latency: float) -> tuple[subprocess.Popen, str]:
    args = [sys.executable, "-m", "dinsync.sandbox", "attentive", "--port", "0", "--seed-subscribers",
            str(subscribers), "--latency", str(latency)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=dict(os.environ, DINSYNC_SANDBOX_API_KEY=KEY))
    line = proc.stdout.readline().strip()
    assert line.startswith("listening "), line
    return proc, line.split()[1]


def write_project(root: Path, url: str, rows: int, fields: str, extra: str = "") -> None:
    (root / "models").mkdir(parents=True, exist_ok=True)
    (root / "syncs").mkdir(exist_ok=True)
    (root / "dinsync.yml").write_text(DINSYNC_YML.format(url=url, extra=extra))
    (root / "models" / "customers.sql").write_text(MODEL.format(rows=rows))
    (root / "syncs" / "users.yml").write_text(SYNC.format(fields=fields))


def sql(root: Path, statement: str) -> None:
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    con.execute(statement)
    con.close()


def cli_sync(root: Path) -> tuple[dict, float]:
    env = dict(os.environ, BENCH_ATTENTIVE_KEY=KEY)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "dinsync.cli", "-p", str(root), "--json", "sync"], env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 4):
        raise SystemExit(f"sync failed ({proc.returncode}): {proc.stdout}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)["runs"][0], wall


def report(name: str, run: dict, wall: float, endpoints: list[str]) -> None:
    rates = run.get("request_rates") or {}
    print(f"{name:6} rows sent {run['sent']:>6}  acknowledged {run['acknowledged']:>6}  wall {wall:6.2f}s  "
          f"{run['acknowledged'] / wall:8.1f} rows/s  requests {run['requests']:>6}  429s {run['throttled']}")
    for endpoint in endpoints:
        rate = rates.get(endpoint)
        limit = LIMITS[endpoint]
        shown = f"{rate:7.2f} req/s = {100 * rate / limit:5.1f}% of {limit}/s" if rate else "   (under 2 requests)"
        print(f"         {endpoint:22} {shown}")


async def naive(url: str, rows: int, seconds: float) -> tuple[int, int, float]:
    """Peer-tool style: for each row, lookup, then v1 custom attributes, then v2 single, one at a time."""
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    done = throttled = 0
    start = time.perf_counter()

    async def call(session, method, path, body=None):
        nonlocal throttled
        while True:
            async with session.request(method, url + path, data=body, headers=headers) as resp:
                await resp.read()
                if resp.status != 429:
                    return resp.status
                throttled += 1
                await asyncio.sleep(1.0)

    async with aiohttp.ClientSession() as session:
        for i in range(rows):
            if time.perf_counter() - start > seconds:
                break
            email = f"subscriber{i}@example.com"
            if await call(session, "GET", f"/v1/attributes/custom?email=subscriber{i}%40example.com") == 404:
                continue
            await call(session, "POST", "/v1/attributes/custom",
                       orjson.dumps({"properties": {"Tier": "gold"}, "user": {"email": email}}))
            await call(session, "POST", "/v2/user/attributes",
                       orjson.dumps({"identifiers": {"email": email}, "attributes": {"firstName": f"F{i}"}}))
            done += 1
    return done, throttled, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=3000, help="rows of the first sync (150 lookups/s: N/150 s)")
    parser.add_argument("--bulk-requests", type=int, default=1200, help="bulk submissions of the bulk scenario")
    parser.add_argument("--subs-rows", type=int, default=150, help="rows checked through subscriptions (10/s)")
    parser.add_argument("--naive-seconds", type=float, default=10.0)
    parser.add_argument("--latency", type=float, default=0.03,
                        help="seconds the sandbox adds to every answer (a network round trip; 0 = loopback)")
    args = parser.parse_args()
    total = args.rows + args.subs_rows
    proc, url = start_sandbox(total, args.latency)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            print(f"Attentive sandbox {url} (own process, documented limits, +{args.latency * 1000:.0f} ms per "
                  f"answer), {total} subscribers; 2-core machine shared with other work: figures are noisy")
            sql(root, SEED.format(rows=total))
            fields = "{first_name: firstName, city: city, tier: {field: Tier, custom: true}}"
            write_project(root, url, args.rows, fields)
            run, wall = cli_sync(root)
            report("first", run, wall, ["get_custom_attributes", "custom_attributes"])  # bulk: 12 requests
            first_rate = run["acknowledged"] / wall

            sql(root, "update main.customers set first_name = first_name || '!'")
            per_job = max(1, args.rows // args.bulk_requests)
            write_project(root, url, args.rows, fields, f"    lookup: new_rows\n    bulk_max_users: {per_job}\n")
            run, wall = cli_sync(root)
            report("bulk", run, wall, ["bulk_user_attributes", "bulk_job"])

            write_project(root, url, total, fields, "    existence_check: subscriptions\n")
            run, wall = cli_sync(root)
            report("subs", run, wall, ["get_subscriptions"])

        done, throttled, seconds = asyncio.run(naive(url, args.rows, args.naive_seconds))
        print(f"naive  {done} rows in {seconds:.2f}s = {done / seconds:.1f} rows/s, 429s {throttled} "
              f"(dinsync first sync: {first_rate:.1f} rows/s, {first_rate / max(done / seconds, 1e-9):.1f}x)")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
