"""Every request a sync sends to Attio, read off the socket (tests/wire_capture.py), for hostile rows,
checked against Attio's OpenAPI file (tests/specs) and its documented header and body rules."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from dinsync.config import load_project
from dinsync.ops.health import check_destination
from dinsync.sandbox import AttioSandbox, SandboxThread
from tests.e2e.attio_project import CUSTOM_ATTRIBUTES, AttioProject
from tests.spec_validation import validate_attio_request
from tests.wire_capture import FAULTS, WireRecorder, check_wire, strict_json

TOKEN = "attio-wire-token-51c0e2"
BIG = "é" * 500_000
TEXTS = ["quote \" and ' backslash \\", "line\nbreak\r\nand\ttab", "emoji 🎉👩‍👩‍👧", BIG, None, "", " "]
CUSTOMER_IDS = ["c/1", "c?2", "c#3", "c%4", "c 5", "🎉6", "c+7", "c&8=9", "c\\10"]
EMAILS = ["a+b@example.com", "o'neil@example.com", "a/b@example.com", "a%b@example.com", "a#b@example.com",
          "a?b@example.com", "a&b=c@example.com", "a.b@example.com", "a{b}@example.com"]
LTVS = [float("nan"), float("inf"), None, 1e308, -0.0, 2.5, 12.3456, 9007199254740993.0, 1.0]


@pytest.fixture
def make_wire(tmp_path, monkeypatch):
    """Factory: a project whose Attio sandbox sits behind a recording proxy (`faults`: FAULTS)."""
    monkeypatch.setenv("ATTIO_TEST_TOKEN", TOKEN)
    monkeypatch.setenv("DINSYNC_CHECKPOINT_SECONDS", "0")
    threads = []

    def make(faults=()) -> AttioProject:
        sandbox = AttioSandbox([TOKEN], custom_attributes=CUSTOM_ATTRIBUTES, limits=False)
        thread = SandboxThread(sandbox)
        thread.start()
        recorder = WireRecorder(thread.url, faults)
        proxy = SandboxThread(recorder)
        proxy.start()
        threads.extend([proxy, thread])
        project = AttioProject(tmp_path / f"proj{len(threads)}", proxy.url, CliRunner())
        project.root.mkdir()
        project.sandbox, project.thread, project.recorder = sandbox, thread, recorder
        project.write_config()
        project.sql("create or replace table main.people (id integer, email varchar, first_name varchar, "
                    "plan varchar, ltv double, customer_id varchar)")
        plans = ["free", "pro", None, "team", "nope", "free", "pro", "free", "free"]
        for i, (email, cid) in enumerate(zip(EMAILS, CUSTOMER_IDS)):
            project.sql("insert into main.people values (?, ?, ?, ?, ?, ?)", i, email, TEXTS[i % len(TEXTS)],
                        plans[i], LTVS[i], cid)
        project.seed_companies(2)
        return project

    yield make
    for thread in threads:
        thread.stop()


@pytest.fixture
def wire(make_wire):
    return make_wire()


def bearer(headers, captured) -> None:
    assert headers.getall("Authorization", []) == [f"Bearer {TOKEN}"], f"{captured.method} {captured.target}"


def literal(method: str, target: str, body: bytes | None) -> None:
    """The spec read literally: every record value an array (what dinsync sends, values.py)."""
    validate_attio_request(method, target, body, values_must_be_arrays=True)


def check(project) -> list:
    captured = project.recorder.captured
    assert check_wire(captured, prefix="/v2/", validate=literal, auth=bearer) > 0
    return captured


@pytest.mark.parametrize("match_column, match_field", [("email", "email_addresses"), ("customer_id", "customer_id")])
def test_every_request_of_upsert_then_update_follows_the_spec_on_the_wire(wire, match_column, match_field):
    fields = ("first_name: job_title", "plan: plan", "ltv: lifetime_value", "email: email_addresses") \
        if match_field == "customer_id" else ("first_name: job_title", "plan: plan", "ltv: lifetime_value")
    wire.write_sync(match_column=match_column, match_field=match_field, fields=fields)
    first = wire.sync()
    assert first["exit_code"] in (0, 2), first
    captured = check(wire)
    asserts = [c for c in captured if c.method == "PUT" and "matching_attribute=" in c.target]
    assert asserts
    for c in asserts:
        assert c.target.endswith(f"?matching_attribute={match_field}")
        assert strict_json(c.body)["data"]["values"]
    wire.write_sync(match_column=match_column, match_field=match_field, fields=fields, mode="update")
    wire.sql("update main.people set first_name = coalesce(first_name, '') || '!', id = id + 100")
    wire.recorder.captured.clear()
    second = wire.sync()
    assert second["exit_code"] in (0, 2), second
    captured = check(wire)
    assert any(c.target.endswith("/records/query") for c in captured)


def test_validate_and_check_follow_the_spec_on_the_wire(wire):
    wire.write_sync()
    assert wire.cli("validate").exit_code == 0, wire.last.stdout
    assert wire.cli("check").exit_code in (0, 1), wire.last.stdout
    # the automatic pause's health check: pre-flight requests and its read-only lookup
    result = check_destination(load_project(wire.root), "attio_people")
    assert result.ok, result.describe()
    check(wire)


COUNTS = ("status", "added", "changed", "acknowledged", "rejected", "not_found", "failed")


@pytest.mark.parametrize("faults", [FAULTS, FAULTS[3:] + FAULTS[:3]], ids=["429-first", "reset-first"])
def test_a_faulty_proxy_changes_no_outcome(make_wire, faults):
    """Behind a proxy answering each request's first attempt with a 429 (Retry-After in seconds or as
    an HTTP date), a 502 / 503 HTML page, or a reset (before or after the request reached Attio),
    every run ends as it does without it, upsert then update, and the records hold the same values."""
    fields = ("first_name: job_title", "plan: plan", "ltv: lifetime_value", "email: email_addresses")
    outcomes = []
    for injected in ((), faults):
        project = make_wire(injected)
        runs = []
        for mode in ("upsert", "update"):
            project.write_sync(match_column="customer_id", match_field="customer_id", fields=fields, mode=mode)
            if mode == "update":
                project.sql("update main.people set first_name = coalesce(first_name, '') || '!', id = id + 100")
            run = project.run()
            runs.append({k: run[k] for k in COUNTS})
        outcomes.append((runs, project.rejections()))
        check(project)
    assert outcomes[1] == outcomes[0]
    assert len(set(project.recorder.faulted.values())) == len(FAULTS), project.recorder.faulted
