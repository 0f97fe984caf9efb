"""The README's "State tables (query them in SQL)" section against real runs, on every warehouse:
analysts query these tables from their BI tool, so each table and column it names holds what it
says, with the type it implies (counts integers, timestamps UTC without a zone, booleans), each
enum value it lists is the one written, and its three SQL examples (read from the README's
```sql block, so the test follows the text) run unchanged and answer right.

The runs: a destination plugin (in-process, answering from `ANSWERS`) and three syncs of one
model. `iterable_users` (the name the README's third query uses) succeeds, fails, then warns with a rejection of each status; `people_auto` pauses itself (a mapped column left its
model); `people_hand` is cancelled while it sends, then paused by hand. Notifications go to a webhook that answers and to one
that does not."""
from __future__ import annotations

import datetime as dt
import http.server
import json
import os
import re
import socket
import sys
import textwrap
import threading
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

import dinsync
from dinsync import destinations
from dinsync.cli import app
from dinsync.engine.stop import StopToken
from tests.warehouses.conftest import (fakesnow, wh_bigquery, wh_databricks, wh_duckdb,  # noqa: F401
                                       wh_postgres, wh_redshift, wh_snowflake)

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = README.read_text(encoding="utf-8").split("### State tables", 1)[1].split("\n## ", 1)[0]
# this test's loopback webhooks (nothing listens on the second), a pair per xdist worker

PLUGIN = '''
import json
import os
from dinsync.destinations.base import (Delivered, Destination, KeySpec, Prepared, RecordResult, Rejection,
                                       Request, ServiceSpec, TransportStats)


class Transport:
    """Answers from STATESQL_ANSWERS: {key: status}; default: acknowledged."""

    def __init__(self):
        self.requests = 0

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        pass

    async def deliver(self, request):
        self.requests += 1
        answers = json.loads(os.environ.get("STATESQL_ANSWERS", "{}"))
        key = request.keys[0]
        if key in answers:
            return Delivered([], [RecordResult(key, answers[key], f"{answers[key]} by the platform", "name")])
        return Delivered(list(request.keys), [])

    def transport_stats(self):
        return TransportStats(requests=self.requests)


class Platform(Destination):
    type_name = "statesql"
    services = {"people": ServiceSpec(name="people", key_fields={"email": KeySpec("email")},
                                      modes=("upsert", "update"))}
    base_urls = {"default": "https://example.invalid"}

    def make_transport(self, options):
        return Transport()

    def prepare(self, frame, sync):
        keys = frame["_key"].to_list()
        refused = [Rejection(k, "name is not a valid name", "name") for k in keys if k.startswith("bad")]
        return Prepared([Request("w", "POST", "", b"{}", [k]) for k in keys if not k.startswith("bad")], refused)


DESTINATIONS = [Platform]
'''

SYNC = """\
model: {model}
destination: platform
service: people
mode: update
match: {{column: email, field: email}}
fields: {{name: name}}
thresholds: {{max_rejected_pct: 100, max_duplicate_pct: 50}}
"""


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - the http.server name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    """The webhook receiver's port (any free one: a fixed port met a connection's local port in CI)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(10)


def _people(rows: list[tuple[int, str | None, str]], with_name: bool = True) -> pa.Table:
    data = {"id": [r[0] for r in rows], "email": [r[1] for r in rows]}
    if with_name:
        data["name"] = [r[2] for r in rows]
    return pa.table(data, schema=pa.schema([("id", pa.int64()), ("email", pa.string())]
                                           + ([("name", pa.string())] if with_name else [])))


CLEAN = [(i, f"p{i}@example.com", f"N{i}") for i in range(1, 7)]
# a row refused for its content, two on one key, one without a key; p2 and p3 answered not_found and failed
MESSY = [(1, "p1@example.com", "M1"), (2, "p2@example.com", "M2"), (3, "p3@example.com", "M3"),
         (4, "p4@example.com", "M4"), (7, "bad@example.com", "B"), (8, "dup@example.com", "D1"),
         (9, "dup@example.com", "D2"), (10, None, "nobody")]


def _dead_port() -> int:
    """A port nothing listens on (bound, then let go)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _project(root: Path, target, monkeypatch, receiver_port: int) -> None:
    (root / "models").mkdir(parents=True)
    (root / "syncs").mkdir()
    (root / "plugin").mkdir()
    (root / "plugin" / "statesql_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(root / "plugin"))
    monkeypatch.setenv("DINSYNC_DESTINATION_MODULES", "statesql_plugin")
    monkeypatch.setenv("DINSYNC_CACHE_DIR", str(root / "cache"))
    monkeypatch.setenv("DINSYNC_PACE_DIR", str(root / "pace"))
    for name, value in target.env.items():
        monkeypatch.setenv(name, value)
    sys.modules.pop("statesql_plugin", None)
    destinations._plugins.cache_clear()
    yml = target.warehouse_yaml()
    if "state_schema:" not in yml:
        yml += f"state_schema: {target.state_schema}\n"
    (root / "dinsync.yml").write_text(yml + textwrap.dedent(f"""\
        version: 1
        destinations:
          platform: {{type: statesql, concurrency: 1}}
        notifications:
          - type: webhook
            name: ops
            url: http://127.0.0.1:{receiver_port}/hook
            attempts: 1
          - type: webhook
            url: http://127.0.0.1:{_dead_port()}/hook
            attempts: 1
            timeout_seconds: 5
        """))
    (root / "models" / "people.sql").write_text(
        f"-- primary_key: id\nselect id, email, name from {target.model_schema}.people\n")
    (root / "models" / "people_auto.sql").write_text(  # (fails in the warehouse once a name is not a number)
        f"-- primary_key: id\nselect id, email, name from {target.model_schema}.people_auto "
        "where cast(name as integer) >= 0\n")
    for sync, model in (("iterable_users", "people"), ("people_auto", "people_auto"), ("people_hand", "people")):
        (root / "syncs" / f"{sync}.yml").write_text(SYNC.format(model=model))


def _sync(root: Path, sync: str, **kwargs) -> dinsync.Run:
    [run] = dinsync.load_project(root).sync(sync, **kwargs).runs
    return run


def _the_runs(root: Path, target, monkeypatch) -> dict:
    """The runs of the module docstring; what the test expects of them."""
    target.load("people", _people(CLEAN))
    target.load("people_auto", _people([(i, e, str(i)) for i, e, _ in CLEAN]))
    seen: dict = {}
    runs = {"success": _sync(root, "iterable_users")}
    target.load("people", _people([r for r in MESSY if r[1] != "bad@example.com"]))
    monkeypatch.setenv("STATESQL_ANSWERS", json.dumps({"p3@example.com": "failed"}))
    runs["failed"] = _sync(root, "iterable_users")  # (a row not delivered fails the run)
    target.load("people", _people([(2, e, "changed") if i == 2 else (i, e, n) for i, e, n in MESSY]))
    monkeypatch.setenv("STATESQL_ANSWERS", json.dumps({"p2@example.com": "not_found"}))
    runs["warning"] = _sync(root, "iterable_users")
    assert runs["warning"].status == "warning", (runs["warning"].error, runs["warning"].warnings)
    monkeypatch.delenv("STATESQL_ANSWERS")
    stop = StopToken()

    def stop_at_the_first_send(sync, event, data):
        if event == "send" and not stop.requested:
            seen["locks"] = target.rows(f"SELECT * FROM {target.state('locks')}")
            stop.request()

    runs["cancelled"] = _sync(root, "people_hand", stop=stop, progress=stop_at_the_first_send)
    runs["auto_ok"] = _sync(root, "people_auto")
    target.load("people_auto", _people(CLEAN))  # names no longer numbers: the model fails when it runs
    runs["auto_failed"] = _sync(root, "people_auto")
    # the failure as `dinsync sync` and `dinsync serve` diagnose it once the model fails on its columns
    # (a model that no longer loads is refused before a run, so the diagnosis is called here)
    target.load("people_auto", _people(CLEAN, with_name=False))
    _diagnosed(root, "people_auto", runs["auto_failed"])
    paused = CliRunner().invoke(app, ["--project-dir", str(root), "pause", "people_hand", "--reason", "CRM migration"])
    assert paused.exit_code == 0, paused.output
    seen["runs"] = runs
    return seen


def _diagnosed(root: Path, sync: str, run: dinsync.Run) -> None:
    from dinsync.operations import load, make_operator

    monkeypatch_cwd = Path.cwd()
    os.chdir(root)
    try:
        project, wh = load(check_models=False, root=root)
        try:
            assert make_operator(project, wh).after_run(sync, run.as_dict(), 1) == "paused"
        finally:
            wh.close()
    finally:
        os.chdir(monkeypatch_cwd)


ZONELESS = {"TIMESTAMP", "TIMESTAMP WITHOUT TIME ZONE", "TIMESTAMP_NTZ"}
NUMERIC = {"DOUBLE", "DOUBLE PRECISION", "FLOAT", "NUMBER", "REAL"}
INTEGER = {"BIGINT", "NUMBER", "INTEGER"}
BOOLEAN = {"BOOLEAN"}


def _naive(value) -> bool:
    return isinstance(value, dt.datetime) and value.tzinfo is None


@pytest.mark.parametrize("kind", ["duckdb", "postgres", "redshift", "snowflake", "bigquery", "databricks"])
def test_the_state_tables_hold_what_the_readme_says(kind, request, tmp_path, monkeypatch, receiver):
    target = request.getfixturevalue(f"wh_{kind}")
    root = tmp_path / "project"
    _project(root, target, monkeypatch, receiver)
    before = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(seconds=5)
    seen = _the_runs(root, target, monkeypatch)
    after = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(seconds=5)
    runs = seen["runs"]
    assert {k: r.status for k, r in runs.items()} == {
        "success": "success", "failed": "failed", "cancelled": "cancelled", "warning": "warning",
        "auto_ok": "success", "auto_failed": "failed"}, runs

    # --- runs -----------------------------------------------------------------------------------------
    rows = {r["run_id"]: r for r in target.rows(f"SELECT * FROM {target.state('runs')}")}
    assert len(rows) == 6, rows
    for r in rows.values():
        assert re.fullmatch(r"\d{8}T\d{6}-[0-9a-f]{8}", r["run_id"]), r["run_id"]
        assert _naive(r["started_at"]) and _naive(r["finished_at"]), r
        assert before <= r["started_at"] <= r["finished_at"] <= after, (r, before, after)
        assert isinstance(r["seconds"], (float, Decimal)) and r["seconds"] >= 0, r
        assert isinstance(r["full_refresh"], bool), r
        assert r["tool_version"] == dinsync.__version__, r
    warning = rows[runs["warning"].run_id]
    counts = ("segment_rows", "added", "changed", "removed", "unchanged", "null_keys", "duplicate_keys", "sent",
              "acknowledged", "rejected", "not_found", "failed", "pending", "parked", "requests", "throttled")
    assert all(isinstance(warning[c], int) and not isinstance(warning[c], bool) for c in counts), warning
    assert {c: warning[c] for c in ("sync", "segment_rows", "null_keys", "duplicate_keys", "rejected", "not_found",
                                    "failed", "parked")} == {
        "sync": "iterable_users", "segment_rows": 8, "null_keys": 1, "duplicate_keys": 1, "rejected": 1,
        "not_found": 1, "failed": 0, "parked": 1}, warning
    assert warning["warnings"] and warning["error"] is None, warning
    failed = rows[runs["failed"].run_id]
    assert failed["failed"] == 1 and "could not be delivered" in failed["error"], failed

    # --- rejections -----------------------------------------------------------------------------------
    rejections = target.rows(f"SELECT * FROM {target.state('rejections')} WHERE run_id IN (:w, :f)",
                             {"w": runs["warning"].run_id, "f": runs["failed"].run_id})
    by_status = {}
    for r in rejections:
        assert r["sync"] == "iterable_users" and _naive(r["rejected_at"]), r
        by_status.setdefault(r["status"], []).append(r)
    assert sorted(by_status) == ["duplicate", "failed", "not_found", "rejected", "skipped"], rejections
    assert [(r["key"], r["field"]) for r in by_status["rejected"]] == [("bad@example.com", "name")]
    assert [r["key"] for r in by_status["not_found"]] == ["p2@example.com"]
    assert [(r["key"], r["run_id"]) for r in by_status["failed"]] == [("p3@example.com", runs["failed"].run_id)]
    assert [r["key"] for r in by_status["duplicate"]] == ["dup@example.com"] * 2
    assert len(by_status["skipped"]) == 2 and all(r["key"] is None and "1" in r["reason"] for r in by_status["skipped"])
    last_run = [r for r in rejections if r["run_id"] == runs["warning"].run_id]

    # --- sync_state -----------------------------------------------------------------------------------
    states = {r["sync"]: r for r in target.rows(f"SELECT * FROM {target.state('sync_state')}")}
    auto, hand = states["people_auto"], states["people_hand"]
    assert (auto["paused"], auto["paused_by"], auto["culprit"], auto["paused_run_id"], auto["notified_state"]) == (
        True, "auto", "model", runs["auto_failed"].run_id, "paused"), auto
    assert (hand["paused"], hand["paused_by"], hand["culprit"], hand["reason"]) == (
        True, "hand", "hand", "CRM migration"), hand
    assert states["iterable_users"]["paused"] is False and states["iterable_users"]["notified_state"] == "warning"
    for state in states.values():
        assert all(state[c] is None or _naive(state[c])
                   for c in ("paused_at", "checked_at", "notified_at", "updated_at")), state

    # --- events ---------------------------------------------------------------------------------------
    events = target.rows(f"SELECT * FROM {target.state('events')} ORDER BY event_at")
    assert all(_naive(e["event_at"]) for e in events), events
    details = {(e["sync"], e["event"]): e["detail"] for e in events}
    assert details[("people_hand", "paused")] == "hand: CRM migration", details
    assert details[("people_auto", "paused")].startswith("auto: model: "), details
    assert details[("iterable_users", "notified")] == "warning to ops", details
    assert details[("iterable_users", "notify_failed")].startswith("warning to webhook#2: "), details

    # --- locks (held while a run sends) and meta ------------------------------------------------------
    [lock] = seen["locks"]
    assert lock["sync"] == "people_hand" and lock["run_id"] == runs["cancelled"].run_id, lock
    assert re.fullmatch(r"[^:]+:\d+:[^:]+:pidns\d+", lock["holder"]), lock["holder"]
    assert _naive(lock["acquired_at"]) and _naive(lock["expires_at"]) and lock["expires_at"] > lock["acquired_at"]
    meta = {r["key"]: r["value"] for r in target.rows(f"SELECT * FROM {target.state('meta')}")}
    assert meta["layout_version"] == "5", meta
    for prefix in ("mapping", "destination", "account", "match", "rejections_pruned"):
        assert f"{prefix}:iterable_users" in meta, (prefix, sorted(meta))
    assert float(meta["rejections_pruned:iterable_users"]) > 1.7e9, meta
    meta_text = SECTION.split("**`meta`**", 1)[1].split("**`snap_", 1)[0]
    documented = set(re.findall(r"`([a-z_]+):", meta_text)) | {"layout_version"}
    assert {k.split(":", 1)[0] for k in meta} - documented == set(), (sorted(meta), documented)

    # --- the declared types, where information_schema tells them ------------------------------------
    if kind in ("duckdb", "postgres", "redshift", "snowflake"):
        declared = {(r["table_name"].lower(), r["column_name"].lower()): r["data_type"].upper() for r in target.rows(
            "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE "
            f"table_schema = '{target.state_schema}'")}
        kinds = {"started_at": ZONELESS, "finished_at": ZONELESS, "rejected_at": ZONELESS, "paused_at": ZONELESS,
                 "event_at": ZONELESS, "expires_at": ZONELESS, "seconds": NUMERIC, "added": INTEGER,
                 "rejected": INTEGER, "ticket": INTEGER, "paused": BOOLEAN, "full_refresh": BOOLEAN}
        wrong = {k: t for k, t in declared.items() if k[1] in kinds and t not in kinds[k[1]]}
        assert not wrong and len(declared) > 50, (wrong, declared)

    # --- the README's queries, unchanged -------------------------------------------------------------
    answers = _readme_queries(target, kind)
    assert sorted(answers[0]) == sorted([
        ("people_auto", "auto", "model", auto["reason"], auto["paused_at"]),
        ("people_hand", "hand", "hand", "CRM migration", hand["paused_at"])]), answers[0]
    assert {(s, n, float(share)) for s, n, share in answers[1]} == {
        ("iterable_users", 3, 1 / 3), ("people_auto", 2, 0.5), ("people_hand", 1, 0.0)}, answers[1]
    assert len(last_run) == 4 and sorted(answers[2]) == sorted((r["reason"], 1) for r in last_run), answers[2]


_NAMES = {"bigquery": "BigQuery", "databricks": "Databricks"}


def _readme_queries(target, kind: str) -> list[list[tuple]]:
    block = SECTION.split("```sql\n", 1)[1].split("```", 1)[0]
    schema = f"`{target.state_schema}`." if kind in ("bigquery", "databricks") else f'"{target.state_schema}".'
    text = block.replace("dinsync.", schema)
    # the warehouses the README says write the interval otherwise: BigQuery (no `interval '30 days'`), and
    # Databricks (whose ANSI literal wants a unit: `INTERVAL '30' DAY`; the fake, on DuckDB, reads both)
    rewriters = re.search(r"\(([^()]*) writes? the\s+interval `INTERVAL 30 DAY`", SECTION)
    if kind in ("bigquery", "databricks"):
        assert rewriters and _NAMES[kind] in rewriters.group(1), (kind, rewriters and rewriters.group(0))
        text = text.replace("interval '30 days'", "INTERVAL 30 DAY")
    statements = [s for s in text.split(";") if s.strip()]
    assert len(statements) == 3, statements
    return [[tuple(r.values()) for r in target.rows(s)] for s in statements]
