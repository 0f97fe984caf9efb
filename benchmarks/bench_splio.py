"""Splio benchmark: contacts/s over SFTP file imports and over the contacts API, request rate against
Splio's documented 20 requests/s, and 429s received.

The Splio sandbox runs in its own process (`python -m dinsync.sandbox splio`, SFTP + API on
127.0.0.1, its importer polling every 50 ms); `dinsync sync` runs as a user runs it (a subprocess;
wall clock includes Python start-up). Nothing is asserted; each scenario prints a line.

  sftp first    first sync of --rows contacts (insert mode): files of at most 199,999 rows, uploaded,
                imported by the sandbox, outcomes read from its reports; wall clock until every row
                is acknowledged
  sftp churn    2% of the rows changed: one file with the changed column only
  api bulk      first sync of --api-rows contacts in insert mode (bulk create, 1,000 per request)
                under the documented 20 req/s
  api patch     --patch-rows contacts in update mode: one PATCH per contact, at most 20 req/s
Baseline, same run: a naive SFTP exporter in the style of peer tools (rows fetched as Python tuples,
csv.writer row by row, one file, every row resent each run), timed until its report arrives.

    python benchmarks/bench_splio.py --rows 200000 --api-rows 20000 --patch-rows 400
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncssh
import duckdb
from cli_run import run_cli

KEY = "bench-splio-key-0123"
PASSWORD = "bench-sftp-pw-4567"
USER = "dinsync"

DINSYNC_YML = """\
version: 1
warehouse: {{type: duckdb, path: warehouse.duckdb}}
destinations:
  splio:
    type: splio
    transport: {transport}
    universe: sandbox
    base_url: {url}
    api_key: ${{env:BENCH_SPLIO_KEY}}
    sftp:
      host: 127.0.0.1
      port: {port}
      username: {user}
      password: ${{env:BENCH_SFTP_PASSWORD}}
      known_hosts: {known_hosts}
      poll_seconds: 0.05
"""
MODEL = "-- primary_key: id\n-- model_type: user\nselect * from main.people\n"
SYNC = """\
model: people
destination: splio
service: contacts
mode: {mode}
match: {{column: email, field: email}}
fields: {{first_name: firstname, last_name: lastname, phone: cellphone, lang: language,
         plan: {{field: plan, custom: true}}, visits: {{field: visits, custom: true}},
         ltv: {{field: ltv, custom: true}}, signup: {{field: signup, custom: true}}}}
"""
SEED = """
create or replace table main.people as
select i as id, 'user' || i || '@example.com' as email, 'First' || (i % 5000) as first_name,
       'Last' || (i % 7919) as last_name, '+336' || lpad(cast(i % 100000000 as varchar), 8, '0') as phone,
       ['fr', 'en', 'de'][1 + i % 3] as lang, ['free', 'pro', 'team'][1 + i % 3] as plan, i % 1000 as visits,
       round((i % 10007) / 3.0, 2) as ltv, timestamp '2024-01-01' + to_seconds(i * 37 % 31536000) as signup
from range(1, {rows} + 1) t(i)
"""


def start_sandbox(limits: bool, latency: float = 0.0) -> tuple[subprocess.Popen, int, str, str]:
    args = [sys.executable, "-m", "dinsync.sandbox", "splio", "--http-port", "0", "--sftp-port", "0",
            "--api-key", KEY, "--sftp-user", USER, "--sftp-password-env", "BENCH_SFTP_PASSWORD", "--insert-allowed",
            "--poll-interval", "0.05", "--latency", str(latency)]
    for spec in ("plan:text", "visits:int", "ltv:double", "signup:date"):
        args += ["--custom-field", spec]
    if not limits:
        args.append("--no-limits")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=dict(os.environ, BENCH_SFTP_PASSWORD=PASSWORD))
    line = proc.stdout.readline().split()
    assert line and line[0] == "listening", line
    sftp_url, http_url = line[1], line[2]
    known = proc.stdout.readline().split(" ", 1)[1].strip()
    return proc, int(sftp_url.rsplit(":", 1)[1]), http_url, known


def make_project(root: Path, transport: str, mode: str, url: str, port: int, known_hosts: Path, rows: int) -> None:
    (root / "models").mkdir(parents=True, exist_ok=True)
    (root / "syncs").mkdir(exist_ok=True)
    (root / "dinsync.yml").write_text(DINSYNC_YML.format(transport=transport, url=url, port=port, user=USER,
                                                         known_hosts=known_hosts))
    (root / "models" / "people.sql").write_text(MODEL)
    (root / "syncs" / "splio_people.yml").write_text(SYNC.format(mode=mode))
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    con.execute(SEED.format(rows=rows))
    con.close()


def cli_sync(root: Path) -> tuple[dict, float, float]:
    """One `dinsync sync`: (run summary, wall seconds, peak RSS MB of that process)."""
    env = dict(os.environ, BENCH_SPLIO_KEY=KEY, BENCH_SFTP_PASSWORD=PASSWORD)
    code, stdout, stderr, wall, peak = run_cli(["-p", str(root), "--json", "sync"], env)
    if code not in (0, 4):
        raise SystemExit(f"sync failed: {stdout}\n{stderr[-3000:]}")
    return json.loads(stdout)["runs"][0], wall, peak


async def naive_export(root: Path, port: int, known_hosts: Path) -> float:
    """Peer-tool style: every row as a Python tuple, csv.writer row by row, one upload, wait for the report."""
    start = time.perf_counter()
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    rows = con.execute("select email, first_name, last_name, phone, lang, plan, visits, ltv, signup "
                       "from main.people").fetchall()
    con.close()
    local = root / "naive.csv"
    with local.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=";", lineterminator="\n")
        writer.writerow(["email", "firstname", "lastname", "cellphone", "language", "plan", "visits", "ltv", "signup"])
        for email, first, last, phone, lang, plan, visits, ltv, signup in rows:
            writer.writerow([email, first, last, "00" + phone[1:], lang, plan, visits, f"{ltv:.2f}",
                             signup.strftime("%Y-%m-%d %H:%M:%S")])
    name = f"sandbox_contacts_naive_{int(time.time())}.csv"
    async with asyncssh.connect("127.0.0.1", port, username=USER, password=PASSWORD, client_keys=None,
                                agent_path=None, config=[], known_hosts=str(known_hosts)) as conn, \
            conn.start_sftp_client() as sftp:
        await sftp.put(str(local), f"/imports/contacts/{name}.part")
        await sftp.posix_rename(f"/imports/contacts/{name}.part", f"/imports/contacts/{name}")
        report = f"/imports/reports/{name}.report.json"
        while not await sftp.exists(report):
            await asyncio.sleep(0.05)
    return len(rows) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--api-rows", type=int, default=20_000)
    ap.add_argument("--patch-rows", type=int, default=400)
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--latency", type=float, default=0.0, help="seconds the sandbox adds to every API answer")
    args = ap.parse_args()
    lines = []
    baseline = None
    with tempfile.TemporaryDirectory(prefix="dinsync-bench-splio-") as tmp:
        proc, port, url, known = start_sandbox(limits=True, latency=args.latency)
        try:
            known_hosts = Path(tmp) / "known_hosts"
            known_hosts.write_text(known + "\n")
            root = Path(tmp) / "sftp"
            make_project(root, "sftp", "insert", url, port, known_hosts, args.rows)
            run, wall, rss = cli_sync(root)
            lines.append(("sftp first", run["acknowledged"], wall, run["seconds"], run["acknowledged"] / wall, rss,
                          run["requests"], None, run["throttled"]))
            con = duckdb.connect(str(root / "warehouse.duckdb"))
            con.execute("update main.people set plan = 'enterprise' where id % 50 = 0")
            con.close()
            run, wall, rss = cli_sync(root)
            lines.append(("sftp 2% churn", run["acknowledged"], wall, run["seconds"], run["acknowledged"] / wall, rss,
                          run["requests"], None, run["throttled"]))
            run, wall, rss = cli_sync(root)
            lines.append(("sftp no-op", run["sent"], wall, run["seconds"], None, rss, run["requests"], None, 0))
            if not args.no_baseline:
                baseline = asyncio.run(naive_export(root, port, known_hosts))
        finally:
            proc.terminate()
            proc.wait()
        for name, mode, rows in (("api bulk (insert)", "insert", args.api_rows),
                                 ("api patch (update)", "update", args.patch_rows)):
            if not rows:
                continue
            proc, port, url, known = start_sandbox(limits=True, latency=args.latency)  # a fresh universe: no contact exists yet
            try:
                known_hosts.write_text(known + "\n")
                root = Path(tmp) / mode
                make_project(root, "api", "insert", url, port, known_hosts, rows)
                if mode == "update":  # the contacts must exist: create them first, then time the PATCHes
                    cli_sync(root)
                    (root / "syncs" / "splio_people.yml").write_text(SYNC.format(mode="update"))
                    con = duckdb.connect(str(root / "warehouse.duckdb"))
                    con.execute("update main.people set visits = visits + 1")
                    con.close()
                run, wall, rss = cli_sync(root)
                rate = run["request_rates"].get("contacts")
                lines.append((name, run["acknowledged"], wall, run["seconds"], run["acknowledged"] / wall, rss,
                              run["requests"], rate, run["throttled"]))
            finally:
                proc.terminate()
                proc.wait()
    print(f"{'scenario':<20}{'contacts':>10}{'wall s':>9}{'engine s':>10}{'contacts/s':>12}{'peak RSS MB':>13}"
          f"{'requests':>10}{'req/s':>8}{'of 20/s':>9}{'429s':>6}")
    for name, n, wall, eng, cps, rss, reqs, rate, thr in lines:
        def fmt(v, f):
            return "" if v is None else format(v, f)

        print(f"{name:<20}{fmt(n, ',d'):>10}{fmt(wall, '.2f'):>9}{fmt(eng, '.2f'):>10}{fmt(cps, ',.0f'):>12}"
              f"{fmt(rss, '.0f'):>13}{fmt(reqs, 'd'):>10}{fmt(rate, '.2f'):>8}"
              f"{fmt(rate / 20 if rate else None, '.1%'):>9}{fmt(thr, 'd'):>6}")
    if baseline:
        first = lines[0][4]
        print(f"naive exporter baseline (tuples, csv.writer, one file, no email/phone validation, full resend): "
              f"{baseline:,.0f} contacts/s; "
              f"dinsync first sync {first / baseline:.2f}x; on the churn run the baseline resends all "
              f"{args.rows:,} rows (~{args.rows / baseline:.1f}s) vs {lines[1][2]:.2f}s")


if __name__ == "__main__":
    main()
