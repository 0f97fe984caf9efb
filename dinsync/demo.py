"""`dinsync demo`: an offline tour on the embedded defaults.

Builds a sample DuckDB warehouse, starts the Iterable sandbox on 127.0.0.1, syncs, changes the
data (updates, deletions, new customers), syncs again and shows that only the changes travelled.
"""
from __future__ import annotations

import os
import secrets
import textwrap
from pathlib import Path
from typing import Callable

DEMO_KEY_ENV = "DINSYNC_DEMO_ITERABLE_KEY"

DINSYNC_YML = """\
version: 1
warehouse:
  type: duckdb
  path: warehouse.duckdb
state_schema: dinsync
destinations:
  iterable:
    type: iterable
    api_key: ${{env:{env}}}
    region: us
    base_url: {base_url}     # the local Iterable sandbox
    concurrency: 4
"""

MODEL_SQL = """\
-- primary_key: customer_id
-- model_type: user
select customer_id, email, first_name, plan, lifetime_value, signed_up_on
from main.customers
where not churned
"""

SYNC_YML = """\
model: active_customers
destination: iterable
service: users
mode: upsert
match:
  column: email
  field: email
fields:
  first_name: firstName
  plan: plan
  lifetime_value: ltv
  signed_up_on: signupDate
thresholds:
  max_rejected_pct: 5
  fail_on_warning: false
"""

SEED_SQL = """
create or replace table main.customers as
select
  i as customer_id,
  'customer' || i || '@example.com' as email,
  ['Ada', 'Grace', 'Linus', 'Barbara', 'Ken', 'Margaret'][1 + i % 6] || ' ' || i as first_name,
  ['free', 'pro', 'team'][1 + i % 3] as plan,
  round((i * 37 % 1000) / 7.0, 2) as lifetime_value,
  date '2024-01-01' + cast(i % 600 as integer) as signed_up_on,
  false as churned
from range(1, {rows} + 1) t(i);
-- a few rows a real model would have: a NULL key and a malformed email
insert into main.customers values
  ({rows} + 1, null, 'No Email', 'free', 0, date '2024-02-02', false),
  ({rows} + 2, 'not-an-email', 'Bad Email', 'free', 0, date '2024-02-02', false);
"""

CHANGE_SQL = """
update main.customers set plan = 'enterprise' where customer_id % 50 = 0;       -- 2% change plan
update main.customers set churned = true where customer_id % 200 = 7;          -- 0.5% leave the segment
insert into main.customers
select i, 'newcomer' || i || '@example.com', 'New ' || i, 'free', 0, date '2026-11-25', false
from range({rows} + 100, {rows} + 125) t(i);                                   -- 25 new customers
"""


def run_demo(path: Path, rows: int, say: Callable[[str], None] | None = None) -> dict:
    from .config import load_project
    from .engine import SyncRun
    from .sandbox import IterableSandbox, SandboxThread
    from .warehouses import connect

    say = say or (lambda text: None)
    path = Path(path).resolve()
    (path / "models").mkdir(parents=True, exist_ok=True)
    (path / "syncs").mkdir(exist_ok=True)
    api_key = os.environ.get(DEMO_KEY_ENV) or "demo-" + secrets.token_hex(12)
    os.environ[DEMO_KEY_ENV] = api_key
    report: dict = {"project": str(path), "runs": []}
    sandbox = IterableSandbox(api_keys=[api_key])
    with SandboxThread(sandbox) as runner:
        base_url = runner.base_url
        (path / "dinsync.yml").write_text(DINSYNC_YML.format(env=DEMO_KEY_ENV, base_url=base_url))
        (path / "models" / "active_customers.sql").write_text(MODEL_SQL)
        (path / "syncs" / "iterable_customers.yml").write_text(SYNC_YML)
        db = path / "warehouse.duckdb"
        for suffix in ("", ".wal"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        say(f"[bold]1.[/] sample warehouse {db} with {rows:,} customers; Iterable sandbox at {base_url}")
        wh = connect("duckdb", path=str(db))
        wh.execute(SEED_SQL.format(rows=rows))
        previous = os.getcwd()
        os.chdir(path)
        try:
            project = load_project(path)
            for step, title in ((2, "first sync: every customer is new"),
                                (4, "second sync: only what changed travels")):
                if step == 4:
                    say("[bold]3.[/] changing the warehouse: 2% change plan, 0.5% churn, 25 newcomers")
                    wh.execute(CHANGE_SQL.format(rows=rows))
                before = runner.call(lambda: sandbox.stats()["requests"])
                summary = SyncRun(project, "iterable_customers", wh).run()
                requests = runner.call(lambda: sandbox.stats()["requests"]) - before
                say(f"[bold]{step}.[/] {title}: [green]+{summary.added}[/] [yellow]~{summary.changed}[/] "
                    f"[red]-{summary.removed}[/] → sent {summary.sent} rows in {requests} requests, "
                    f"acknowledged {summary.acknowledged}, rejected {summary.rejected} "
                    f"({summary.seconds:.2f}s, status {summary.status})")
                report["runs"].append({"step": title, "added": summary.added, "changed": summary.changed,
                                       "removed": summary.removed, "sent": summary.sent,
                                       "acknowledged": summary.acknowledged, "rejected": summary.rejected,
                                       "requests": requests, "status": summary.status,
                                       "seconds": round(summary.seconds, 3)})
            rejected = wh.query("select key, reason from dinsync.rejections order by rejected_at limit 3").to_pylist()
            for r in rejected:
                say(f"   rejected {r['key']!r}: {r['reason']}")
            users = runner.call(lambda: len(sandbox.users))
            report["sandbox_users"] = users
            say(f"[bold]5.[/] the sandbox now holds {users:,} users; run history: "
                f"`dinsync --project-dir {path} status`")
        finally:
            os.chdir(previous)
            wh.close()
    say(textwrap.dedent(f"""\
        Try it yourself: start `dinsync sandbox --port 8765` in another terminal, point base_url in
        {path / 'dinsync.yml'} at http://127.0.0.1:8765, export {DEMO_KEY_ENV}=sandbox-key and run
        `dinsync --project-dir {path} plan` / `sync`."""))
    return report
