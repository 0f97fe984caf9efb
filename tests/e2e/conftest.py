"""A temporary dinsync project (DuckDB warehouse + Iterable sandbox) driven through the CLI."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from dinsync.cli import app
from tests.conftest import TEST_KEY

DINSYNC_YML = """\
version: 1
warehouse:
  type: duckdb
  path: warehouse.duckdb
destinations:
  iterable:
    type: iterable
    api_key: ${{env:ITERABLE_TEST_KEY}}
    base_url: {base_url}
    concurrency: 4
{extra}"""

MODEL = """\
-- primary_key: id
-- model_type: user
select id, email, user_id, first_name, plan, ltv from main.customers
"""

SYNC = """\
model: customers
destination: iterable
service: users
mode: {mode}
match:
  column: {match_column}
  field: {match_field}
fields:
{fields}
thresholds:
  max_rejected_pct: {max_rejected_pct}
"""


class Project:
    def __init__(self, root: Path, base_url: str, runner: CliRunner):
        self.root = root
        self.base_url = base_url
        self.runner = runner
        self.last = None

    def write(self, *, mode="upsert", match_column="email", match_field="email",
              fields=("first_name: firstName", "plan: plan", "ltv: ltv"), max_rejected_pct=50,
              destination_extra="") -> None:
        (self.root / "models").mkdir(exist_ok=True)
        (self.root / "syncs").mkdir(exist_ok=True)
        (self.root / "dinsync.yml").write_text(DINSYNC_YML.format(base_url=self.base_url, extra=destination_extra))
        (self.root / "models" / "customers.sql").write_text(MODEL)
        (self.root / "syncs" / "iterable_users.yml").write_text(SYNC.format(
            mode=mode, match_column=match_column, match_field=match_field,
            fields=textwrap.indent("\n".join(fields), "  "), max_rejected_pct=max_rejected_pct))

    def sql(self, statement: str, *params):
        con = duckdb.connect(str(self.root / "warehouse.duckdb"))
        try:
            cur = con.execute(statement, list(params) if params else None)
            return cur.fetchall() if cur.description else None
        finally:
            con.close()

    def seed(self, n: int) -> None:
        self.sql("create or replace table main.customers (id integer, email varchar, user_id varchar, "
                 "first_name varchar, plan varchar, ltv double)")
        self.sql("insert into main.customers select i, 'user' || i || '@example.com', 'u-' || i, "
                 "'Name ' || i, 'free', i * 1.5 from range(1, ? + 1) t(i)", n)

    def cli(self, *args: str, json_output: bool = True):
        argv = ["--project-dir", str(self.root)] + (["--json"] if json_output else []) + list(args)
        self.last = self.runner.invoke(app, argv, catch_exceptions=False)
        return self.last

    def sync(self, *args: str) -> dict:
        result = self.cli("sync", *args)
        data = json.loads(result.stdout)
        data["exit_code"] = result.exit_code
        return data

    def snapshot_keys(self) -> set[str]:
        return {r[0] for r in self.sql("select _key from dinsync.snap_iterable_users where _synced_at is not null")}


@pytest.fixture
def project(tmp_path, iterable_sandbox, monkeypatch, iterable_requests):
    sandbox, thread = iterable_sandbox
    monkeypatch.setenv("ITERABLE_TEST_KEY", TEST_KEY)
    monkeypatch.setenv("DINSYNC_CHECKPOINT_SECONDS", "0")
    p = Project(tmp_path / "proj", thread.url, CliRunner())
    p.root.mkdir()
    p.sandbox, p.thread, p.requests = sandbox, thread, iterable_requests
    p.write()
    p.seed(20)
    return p
