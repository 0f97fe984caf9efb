"""The Attio step of `dinsync demo`: companies then people into a local Attio sandbox, offline.

`run_attio_demo_step(path, rows, say)` builds a small project of its own in `path` (a DuckDB
warehouse of `rows` people and their companies, two models, two syncs), serves the Attio sandbox
on 127.0.0.1 from a thread, syncs companies (a custom model, matched on `domains`) and people (a
user model, matched on `email_addresses`, with select, currency, personal-name, phone and a
record reference to the person's company), changes the warehouse, syncs again, and returns what
happened. It prints nothing: lines for the user go to `say` (rich markup).
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Callable

from .errors import DinsyncError
from .terminal import plural

TOKEN_ENV = "DINSYNC_DEMO_ATTIO_TOKEN"
MARKER = "# written by dinsync demo (Attio step)"
CUSTOM_ATTRIBUTES = ["people:plan:select:free,pro,team", "people:lifetime_value:currency",
                     "companies:employees:number", "companies:tier:select:gold,silver,bronze"]

DINSYNC_YML = MARKER + """
version: 1
warehouse:
  type: duckdb
  path: warehouse.duckdb
destinations:
  attio:
    type: attio
    api_key: ${{env:{env}}}
    base_url: {base_url}     # the local Attio sandbox
"""
COMPANIES_SQL = """\
-- primary_key: domain
-- model_type: custom
select domain, name, employees, tier from main.companies
"""
PEOPLE_SQL = """\
-- primary_key: email
-- model_type: user
select email, {'first_name': first_name, 'last_name': last_name} as full_name, plan, lifetime_value,
       phone, company_domain
from main.people where not churned
"""
COMPANIES_SYNC = """\
model: companies
destination: attio
service: companies
mode: upsert
match: {column: domain, field: domains}
fields: {name: name, employees: employees, tier: tier}
thresholds: {fail_on_warning: false}
"""
PEOPLE_SYNC = """\
model: people
destination: attio
service: people
mode: upsert
match: {column: email, field: email_addresses}
fields: {full_name: name, plan: plan, lifetime_value: lifetime_value, phone: phone_numbers,
         company_domain: company}
thresholds: {fail_on_warning: false}
"""
SEED_SQL = """
create or replace table main.companies as
select 'company' || i || '.example' as domain, 'Company ' || i as name, 10 * i as employees,
       ['gold', 'silver', 'bronze'][1 + i % 3] as tier
from range(1, {companies} + 1) t(i);
create or replace table main.people as
select 'person' || i || '@company' || (1 + i % {companies}) || '.example' as email,
       ['Ada', 'Grace', 'Linus', 'Barbara'][1 + i % 4] as first_name, 'Person ' || i as last_name,
       ['free', 'pro', 'team'][1 + i % 3] as plan, round(i * 12.5, 2) as lifetime_value,
       '+4420794609' || lpad(cast(i % 100 as varchar), 2, '0') as phone,
       'company' || (1 + i % {companies}) || '.example' as company_domain, false as churned
from range(1, {rows} + 1) t(i);
"""
CHANGE_SQL = """
update main.people set plan = 'team' where email like 'person1_@%';            -- a few change plan
update main.people set churned = true where email like 'person2_@%';           -- a few leave the model
insert into main.people values ('newcomer@company1.example', 'New', 'Comer', 'enterprise', 0,
  '+442079460999', 'company1.example', false);                                 -- an unknown plan option
"""


def run_attio_demo_step(path: Path, rows: int = 200, say: Callable[[str], None] | None = None, *,
                        force: bool = False) -> dict:
    """Run the Attio tour in `path` (created if needed; a dinsync.yml there that this step did not
    write, or a link, is overwritten only with `force`: `demo --force` said so before the Iterable
    step ran). Returns {"project", "runs": [...], "sandbox": {...}, "sample": {...}}."""
    from .config import load_project
    from .demo import write_own
    from .engine import SyncRun
    from .sandbox import AttioSandbox, SandboxThread
    from .warehouses import connect

    say = say or (lambda text: None)
    path = Path(path).resolve()
    existing = path / "dinsync.yml"
    if not force and (existing.is_symlink() or existing.exists() and not existing.read_text().startswith(MARKER)):
        raise DinsyncError(f"{existing} exists and was not written by the demo: not overwriting it",
                           "give the Attio demo step a folder of its own")
    (path / "models").mkdir(parents=True, exist_ok=True)
    (path / "syncs").mkdir(exist_ok=True)
    token = os.environ.get(TOKEN_ENV) or "demo-" + secrets.token_hex(12)
    os.environ[TOKEN_ENV] = token
    rows = max(rows, 10)
    companies = max(rows // 10, 1)
    report: dict = {"project": str(path), "runs": []}
    sandbox = AttioSandbox([token], custom_attributes=CUSTOM_ATTRIBUTES)
    with SandboxThread(sandbox) as runner:
        write_own(path / "dinsync.yml", DINSYNC_YML.format(env=TOKEN_ENV, base_url=runner.base_url))
        write_own(path / "models" / "companies.sql", COMPANIES_SQL)
        write_own(path / "models" / "people.sql", PEOPLE_SQL)
        write_own(path / "syncs" / "attio_companies.yml", COMPANIES_SYNC)
        write_own(path / "syncs" / "attio_people.yml", PEOPLE_SYNC)
        db = path / "warehouse.duckdb"
        for suffix in ("", ".wal"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        say(f"[bold]Attio[/]: {rows:,} people at {companies:,} companies; Attio sandbox at {runner.base_url} "
            "(25 writes/s, 100 reads/s, as documented)")
        wh = connect("duckdb", path=str(db))
        wh.execute(SEED_SQL.format(rows=rows, companies=companies))
        previous = os.getcwd()
        os.chdir(path)
        try:
            project = load_project(path)
            for title, change in (("first sync", False), ("after changes", True)):
                if change:
                    say("   changing the warehouse: a few plans change, a few people leave, one newcomer "
                        "with a plan Attio does not know")
                    wh.execute(CHANGE_SQL)
                for sync in ("attio_companies", "attio_people"):
                    s = SyncRun(project, sync, wh).run()
                    say(f"   {title}, {sync}: [green]+{s.added}[/] [yellow]~{s.changed}[/] [red]-{s.removed}[/] → "
                        f"{plural(s.requests, 'request')}, acknowledged {s.acknowledged}, rejected {s.rejected}, "
                        f"{s.throttled} throttled ({s.seconds:.1f}s, {s.status})")
                    report["runs"].append({"step": title, "sync": sync, "added": s.added, "changed": s.changed,
                                           "removed": s.removed, "sent": s.sent, "acknowledged": s.acknowledged,
                                           "rejected": s.rejected, "requests": s.requests, "throttled": s.throttled,
                                           "status": s.status, "seconds": round(s.seconds, 3)})
            for r in wh.query("select key, reason from dinsync.rejections order by rejected_at limit 3").to_pylist():
                say(f"   rejected {r['key']!r}: {r['reason']}")
            stats = runner.call(sandbox.stats)
            found = runner.call(sandbox.find_person, "person1@company2.example")
            sample = runner.call(sandbox.plain, found) if found else {}
            report["sandbox"] = {"records": stats["records"], "created": stats["created"],
                                 "updated": stats["updated"], "responses_429": stats["responses_429"]}
            report["sample"] = {k: sample.get(k) for k in ("email_addresses", "name", "plan", "lifetime_value",
                                                          "phone_numbers", "company")}
            say(f"   Attio now holds {stats['records']['people']:,} people and {stats['records']['companies']:,} "
                f"companies; e.g. {report['sample']}")
        finally:
            os.chdir(previous)
            wh.close()
    return report
