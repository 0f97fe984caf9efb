"""A temporary dinsync project (DuckDB warehouse + Attentive sandbox on loopback) driven through the CLI,
and a recorder that validates every Attentive API request the client sends against the OpenAPI files."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import aiohttp
import duckdb
import orjson
import pytest
from typer.testing import CliRunner

from dinsync.cli import app
from dinsync.sandbox import AttentiveSandbox, SandboxThread
from tests.conftest import RequestRecorder
from tests.spec_validation import validate_attentive_request

ATTENTIVE_KEY = "attn-e2e-key-6d2f90b1c4"

DINSYNC_YML = """\
version: 1
warehouse:
  type: duckdb
  path: warehouse.duckdb
destinations:
  attentive:
    type: attentive
    api_key: ${{env:ATTENTIVE_TEST_KEY}}
    base_url: {base_url}
{extra}"""

MODEL = """\
-- primary_key: id
-- model_type: user
select * from main.customers
"""

SYNC = """\
model: customers
destination: attentive
service: users
mode: {mode}
match: {{column: {match_column}, field: {match_field}}}
fields:
{fields}
thresholds:
  max_rejected_pct: {max_rejected_pct}
"""

DEFAULT_FIELDS = ("first_name: firstName", "city: city", "tier: {field: Tier, custom: true}")


class AttentiveProject:
    """Rows `customers(id, email, phone, first_name, city, tier, dob)`; subscriber i of the sandbox's seed
    is `subscriber{i}@example.com` / `+1201{2000000+i}`, so model rows 0..n-1 name seeded subscribers."""

    def __init__(self, root: Path, sandbox: AttentiveSandbox, thread: SandboxThread, requests: RequestRecorder):
        self.root, self.sandbox, self.thread, self.requests = root, sandbox, thread, requests
        self.runner = CliRunner()
        root.mkdir()
        (root / "models").mkdir()
        (root / "syncs").mkdir()
        (root / "models" / "customers.sql").write_text(MODEL)

    def write(self, *, mode="update", match_column="email", match_field="email", fields=DEFAULT_FIELDS,
              max_rejected_pct=100, extra="") -> None:
        (self.root / "dinsync.yml").write_text(DINSYNC_YML.format(base_url=self.thread.url, extra=extra))
        (self.root / "syncs" / "attentive_users.yml").write_text(SYNC.format(
            mode=mode, match_column=match_column, match_field=match_field,
            fields=textwrap.indent("\n".join(fields), "  "), max_rejected_pct=max_rejected_pct))

    def sql(self, statement: str, *params):
        con = duckdb.connect(str(self.root / "warehouse.duckdb"))
        try:
            cur = con.execute(statement, list(params) if params else None)
            return cur.fetchall() if cur.description else None
        finally:
            con.close()

    def seed(self, n: int, start: int = 0) -> None:
        """Model rows for subscribers start..start+n-1 (ids equal to the subscriber number)."""
        self.sql("create or replace table main.customers (id integer, email varchar, phone varchar, "
                 "first_name varchar, city varchar, tier varchar, dob date)")
        self.sql("insert into main.customers select i, 'subscriber' || i || '@example.com', "
                 "'+1201' || lpad(cast(2000000 + i as varchar), 7, '0'), 'Name ' || i, 'City ' || (i % 3), "
                 "case when i % 2 = 0 then 'gold' else 'silver' end, date '1990-01-01' + cast(i as integer) "
                 "from range(?, ? + ?) t(i)", start, start, n)

    def cli(self, *args: str, json_output: bool = True):
        argv = ["--project-dir", str(self.root)] + (["--json"] if json_output else []) + list(args)
        return self.runner.invoke(app, argv, catch_exceptions=False)

    def sync(self, *args: str) -> dict:
        result = self.cli("sync", *args)
        data = json.loads(result.stdout)
        data["exit_code"] = result.exit_code
        return data

    def run(self, *args: str) -> dict:
        [run] = self.sync(*args)["runs"]
        return run

    def snapshot_keys(self) -> set[str]:
        return {r[0] for r in self.sql("select _key from dinsync.snap_attentive_users where _synced_at is not null")}

    def rejections(self) -> dict[str, tuple[str, str]]:
        """key -> (status, reason) of the latest run's rejections."""
        # (the latest by its start: run ids order by the second, then at random)
        rows = self.sql("select key, status, reason from dinsync.rejections where run_id = "
                        "(select run_id from dinsync.runs order by started_at desc limit 1)")
        return {k: (s, r) for k, s, r in rows}

    def subscriber(self, email: str) -> dict | None:
        return self.thread.call(self.sandbox.get_subscriber, email=email)

    def stats(self) -> dict:
        return self.thread.stats()

    # --- what was sent ---------------------------------------------------------------------------
    def v2_users(self) -> list[dict]:
        users = []
        for body in self.requests.bodies("/v2/bulk/user/attributes"):
            users += orjson.loads(body)["users"]
        users += [orjson.loads(b) for b in self.requests.bodies("/v2/user/attributes")]
        return users

    def v1_bodies(self) -> list[dict]:
        return [orjson.loads(b) for b in self.requests.bodies("/v1/attributes/custom")]

    def lookups(self) -> list[str]:
        """Existence checks of model rows (not the run's probe)."""
        return [p for m, p, _ in self.requests.requests if m == "GET" and "dinsync-existence-probe" not in p
                and p.startswith(("/v1/attributes/custom?", "/v1/subscriptions?"))]


def record_attentive_requests(monkeypatch) -> RequestRecorder:
    """Records (method, path+query, body) of every aiohttp API request; validate them with `validate_all`."""
    recorder = RequestRecorder()
    original = aiohttp.ClientSession.request

    def request(self, method, url, **kwargs):
        u = url if isinstance(url, str) else str(url)
        path = "/" + u.split("/", 3)[3] if u.count("/") >= 3 else u
        recorder.requests.append((method, path, kwargs.get("data")))
        return original(self, method, url, **kwargs)

    monkeypatch.setattr(aiohttp.ClientSession, "request", request)
    return recorder


def validate_all(recorder: RequestRecorder) -> int:
    n = 0
    for method, path, body in recorder.requests:
        if path.startswith(("/v1/", "/v2/")):
            validate_attentive_request(method, path, body)
            n += 1
    return n


@pytest.fixture
def make_attentive(tmp_path, monkeypatch):
    """Factory: `make_attentive(seeded=20, api_keys=None, **sandbox_options)` -> an AttentiveProject whose
    sandbox holds `seeded` subscribers (0..seeded-1) and whose model has rows 0..19."""
    recorder = record_attentive_requests(monkeypatch)
    monkeypatch.setenv("ATTENTIVE_TEST_KEY", ATTENTIVE_KEY)
    monkeypatch.setenv("DINSYNC_CHECKPOINT_SECONDS", "0")
    threads: list[SandboxThread] = []

    def make(seeded: int = 20, api_keys=None, **options) -> AttentiveProject:
        sandbox = AttentiveSandbox(api_keys or [ATTENTIVE_KEY], **options)
        thread = SandboxThread(sandbox)
        thread.start()
        threads.append(thread)
        thread.call(sandbox.seed_subscribers, seeded)
        project = AttentiveProject(tmp_path / f"proj{len(threads)}", sandbox, thread, recorder)
        project.write()
        project.seed(20)
        return project

    try:
        yield make
        validate_all(recorder)  # every API request the client sent follows Attentive's specs
    finally:
        for thread in threads:
            thread.stop()


@pytest.fixture
def attentive(make_attentive):
    """An AttentiveProject with the sandbox's defaults (unknown_user="create": the worst case)."""
    return make_attentive()
