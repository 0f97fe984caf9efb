"""A temporary dinsync project (DuckDB warehouse) syncing to a Splio sandbox on 127.0.0.1, driven
through the CLI; used by the Splio end-to-end and crash tests."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import asyncssh
import duckdb
from typer.testing import CliRunner

from dinsync.cli import app
from dinsync.sandbox import SandboxThread, SplioSandbox

API_KEY = "splio-e2e-key-4c1d9a"
SFTP_USER = "dinsync"
SFTP_PASSWORD = "sftp-e2e-pw-71b0e3"
CUSTOM_FIELDS = [{"id": 3, "name": "plan", "type": "text"}, {"id": 4, "name": "visits", "type": "int"},
                 {"id": 5, "name": "ltv", "type": "double"}, {"id": 7, "name": "signup", "type": "date"}]

DINSYNC_YML = """\
version: 1
warehouse: {{type: duckdb, path: warehouse.duckdb}}
destinations:
  splio:
    type: splio
    transport: {transport}
    universe: sandbox
    base_url: {api_url}
    api_key: ${{env:SPLIO_TEST_API_KEY}}
    concurrency: 4
    sftp:
      host: 127.0.0.1
      port: {sftp_port}
      username: {user}
      {credential}
      known_hosts: {known_hosts}
      directory: /imports/contacts
      reports_directory: /imports/reports
      poll_seconds: 0.05
      max_rows_per_file: {max_rows}
{sftp_extra}{extra}"""

MODEL = """\
-- primary_key: id
-- model_type: user
select id, email, first_name, last_name, phone, lang, plan, visits, ltv, signup from main.people
"""

SYNC = """\
model: people
destination: splio
service: contacts
mode: {mode}
match: {{column: email, field: email}}
fields:
{fields}
thresholds: {{max_rejected_pct: {max_rejected_pct}}}
"""

FIELDS = ("  first_name: firstname", "  last_name: lastname", "  phone: cellphone", "  lang: language",
          "  plan: {field: plan, custom: true}", "  visits: {field: visits, custom: true}",
          "  ltv: {field: ltv, custom: true}", "  signup: {field: signup, custom: true}")


def make_sandbox(client_key: asyncssh.SSHKey | None = None, **options: Any) -> tuple[SandboxThread, SplioSandbox]:
    options.setdefault("custom_fields", CUSTOM_FIELDS)
    options.setdefault("poll_interval", 0.05)
    users = {"password": SFTP_PASSWORD}
    if client_key is not None:
        users["public_keys"] = [client_key.export_public_key().decode()]
    options.setdefault("sftp_users", {SFTP_USER: users})
    sandbox = SplioSandbox(API_KEY, **options)
    thread = SandboxThread(sandbox)
    thread.start()
    return thread, sandbox


class SplioProject:
    def __init__(self, root: Path, thread: SandboxThread, sandbox: SplioSandbox):
        self.root = root
        self.thread = thread
        self.sandbox = sandbox
        self.runner = CliRunner()
        root.mkdir(parents=True, exist_ok=True)
        (root / "models").mkdir(exist_ok=True)
        (root / "syncs").mkdir(exist_ok=True)
        (root / "models" / "people.sql").write_text(MODEL)
        self.known_hosts = root / "known_hosts"
        self.known_hosts.write_text(sandbox.known_hosts_line() + "\n")
        self.env = {"SPLIO_TEST_API_KEY": API_KEY, "SPLIO_SFTP_PASSWORD": SFTP_PASSWORD}
        self.last = None

    def configure(self, *, transport: str = "sftp", mode: str = "insert", fields=FIELDS, max_rejected_pct=50,
                  credential: str = "password: ${env:SPLIO_SFTP_PASSWORD}", user: str = SFTP_USER,
                  max_rows: int = 199_999, extra: str = "", known_hosts: Path | None = None,
                  sftp_extra: str = "") -> None:
        (self.root / "dinsync.yml").write_text(DINSYNC_YML.format(
            transport=transport, api_url=self.thread.url, sftp_port=self.sandbox.sftp_port, user=user,
            credential=credential, known_hosts=known_hosts or self.known_hosts, max_rows=max_rows, extra=extra,
            sftp_extra=sftp_extra))
        (self.root / "syncs" / "splio_people.yml").write_text(SYNC.format(
            mode=mode, fields="\n".join(fields), max_rejected_pct=max_rejected_pct))

    # --- warehouse --------------------------------------------------------------------------
    def sql(self, statement: str, *params):
        con = duckdb.connect(str(self.root / "warehouse.duckdb"))
        try:
            cur = con.execute(statement, list(params) if params else None)
            return cur.fetchall() if cur.description else None
        finally:
            con.close()

    def seed(self, n: int, start: int = 1) -> None:
        self.sql("create or replace table main.people (id integer, email varchar, first_name varchar, "
                 "last_name varchar, phone varchar, lang varchar, plan varchar, visits integer, ltv double, "
                 "signup timestamp)")
        self.sql("insert into main.people select i, 'user' || i || '@example.com', 'Name ' || i, 'Last ' || i, "
                 "'+336123456' || lpad(cast(i % 100 as varchar), 2, '0'), 'fr', 'free', i, i * 1.5, "
                 "timestamp '2024-01-31 10:00:00' + to_days(i) from range(?, ? + ?) t(i)", start, start, n)

    def snapshot(self) -> set[str]:
        try:
            return {r[0] for r in self.sql("select _key from dinsync.snap_splio_people where _synced_at is not null")}
        except duckdb.CatalogException:
            return set()

    def rejections(self) -> list[tuple]:
        return self.sql("select key, status, reason from dinsync.rejections order by key")

    # --- CLI ------------------------------------------------------------------------------
    def cli(self, *args: str):
        old = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            self.last = self.runner.invoke(app, ["--project-dir", str(self.root), "--json", *args],
                                           catch_exceptions=False)
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        return self.last

    def sync(self, *args: str) -> dict:
        result = self.cli("sync", *args)
        try:
            data = json.loads(result.stdout)
        except json.JSONDecodeError:
            raise AssertionError(f"not JSON (exit {result.exit_code}): {result.stdout!r} {result.stderr!r}")
        data["exit_code"] = result.exit_code
        data["output"] = result.stdout + result.stderr
        return data

    # --- the sandbox ------------------------------------------------------------------------
    def contacts(self) -> dict[str, dict]:
        return self.thread.call(self.sandbox.contacts)

    def contact(self, email: str) -> dict | None:
        return self.thread.call(self.sandbox.contact, email)

    def stats(self) -> dict:
        return self.thread.call(self.sandbox.stats)

    def drop_folder(self) -> list[str]:
        return sorted(os.listdir(self.sandbox.root / "imports" / "contacts"))


def expected_contact(i: int, api: bool = False) -> dict:
    """What the sandbox should hold for seed row i (as Splio stores it; cellphones in the form each
    transport writes by default: `0033...` in files, `+33...` over the API)."""
    phone = ("+33" if api else "0033") + f"6123456{i % 100:02d}"
    return {"firstname": f"Name {i}", "lastname": f"Last {i}", "cellphone": phone,
            "language": "fr", "custom_fields": {"plan": "free", "visits": str(i), "ltv": f"{i * 1.5:.2f}",
                                                "signup": _signup(i)}}


def _signup(i: int) -> str:
    import datetime as dt

    return (dt.datetime(2024, 1, 31, 10) + dt.timedelta(days=i)).strftime("%Y-%m-%d %H:%M:%S")


def subset(contact: dict | None) -> dict | None:
    if contact is None:
        return None
    return {k: contact[k] for k in ("firstname", "lastname", "cellphone", "language", "custom_fields")}
