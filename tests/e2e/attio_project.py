"""A temporary dinsync project (DuckDB warehouse + Attio sandbox) driven through the CLI."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import duckdb
from typer.testing import CliRunner

from dinsync.cli import app

TOKEN_ENV = "ATTIO_TEST_TOKEN"

DINSYNC_YML = """\
version: 1
warehouse:
  type: duckdb
  path: warehouse.duckdb
destinations:
  attio:
    type: attio
    api_key: ${{env:ATTIO_TEST_TOKEN}}
    base_url: {base_url}
{extra}"""

PEOPLE_MODEL = """\
-- primary_key: id
-- model_type: user
select * from main.people
"""

COMPANIES_MODEL = """\
-- primary_key: domain
-- model_type: custom
select * from main.companies
"""

SYNC = """\
model: {model}
destination: attio
service: {service}
mode: {mode}
match:
  column: {match_column}
  field: {match_field}
fields:
{fields}
thresholds:
  max_rejected_pct: 50
"""

# Custom attributes of the sandbox workspace (what an admin creates in Attio's settings).
CUSTOM_ATTRIBUTES = [
    "people:plan:select:free,pro,team",
    "people:lifetime_value:currency",
    "people:vip:checkbox",
    "people:signup_date:date",
    "people:last_seen:timestamp",
    "people:score:rating",
    "people:visits:number",
    "people:customer_id:text:unique",
    "people:tags:select:red,green,blue:multiselect",
    "companies:employees:number",
    "companies:tier:select:gold,silver,bronze",
]

PEOPLE_FIELDS = ("first_name: job_title", "plan: plan", "ltv: lifetime_value")


class AttioProject:
    def __init__(self, root: Path, base_url: str, runner: CliRunner):
        self.root = root
        self.base_url = base_url
        self.runner = runner
        self.last = None

    def write_config(self, extra: str = "    rate_limits: {write: null, read: null}\n") -> None:
        (self.root / "models").mkdir(exist_ok=True)
        (self.root / "syncs").mkdir(exist_ok=True)
        (self.root / "dinsync.yml").write_text(DINSYNC_YML.format(base_url=self.base_url, extra=extra))
        (self.root / "models" / "people.sql").write_text(PEOPLE_MODEL)
        (self.root / "models" / "companies.sql").write_text(COMPANIES_MODEL)

    def write_sync(self, name: str = "attio_people", *, model="people", service="people", mode="upsert",
                   match_column="email", match_field="email_addresses", fields=PEOPLE_FIELDS) -> None:
        for old in (self.root / "syncs").glob("*.yml"):
            old.unlink()
        (self.root / "syncs" / f"{name}.yml").write_text(SYNC.format(
            model=model, service=service, mode=mode, match_column=match_column, match_field=match_field,
            fields=textwrap.indent("\n".join(fields), "  ")))

    def sql(self, statement: str, *params):
        con = duckdb.connect(str(self.root / "warehouse.duckdb"))
        try:
            cur = con.execute(statement, list(params) if params else None)
            return cur.fetchall() if cur.description else None
        finally:
            con.close()

    def seed_people(self, n: int) -> None:
        self.sql("create or replace table main.people (id integer, email varchar, first_name varchar, "
                 "plan varchar, ltv double, customer_id varchar)")
        self.sql("insert into main.people select i, 'user' || i || '@example.com', 'Name ' || i, "
                 "case when i % 2 = 0 then 'pro' else 'free' end, i * 1.5, 'c-' || i from range(1, ? + 1) t(i)", n)

    def seed_companies(self, n: int) -> None:
        self.sql("create or replace table main.companies (domain varchar, name varchar, employees integer, "
                 "tier varchar)")
        self.sql("insert into main.companies select 'company' || i || '.com', 'Company ' || i, i * 10, "
                 "case when i % 3 = 0 then 'gold' else 'silver' end from range(1, ? + 1) t(i)", n)

    def cli(self, *args: str, json_output: bool = True):
        argv = ["--project-dir", str(self.root)] + (["--json"] if json_output else []) + list(args)
        self.last = self.runner.invoke(app, argv, catch_exceptions=False)
        return self.last

    def sync(self, *args: str) -> dict:
        result = self.cli("sync", *args)
        data = json.loads(result.stdout)
        data["exit_code"] = result.exit_code
        return data

    def run(self, *args: str) -> dict:
        """The single run of `dinsync sync` (asserting there is one)."""
        data = self.sync(*args)
        assert "runs" in data, data
        [run] = data["runs"]
        run["exit_code"] = data["exit_code"]
        return run

    def snapshot_keys(self, sync: str = "attio_people") -> set[str]:
        return {r[0] for r in self.sql(f"select _key from dinsync.snap_{sync} where _synced_at is not null")}

    def rejections(self, run_id: str | None = None) -> dict[str, tuple[str, str]]:
        """key -> (status, reason) of the rejections of one run (default: the last one)."""
        if run_id is None:
            run_id = self.sql("select run_id from dinsync.runs order by started_at desc limit 1")[0][0]
        rows = self.sql("select key, status, reason from dinsync.rejections where run_id = ?", run_id)
        return {k: (s, r) for k, s, r in rows}
