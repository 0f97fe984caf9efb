"""Every request a sync sends to Attentive, read off the socket (tests/wire_capture.py), for hostile
rows, checked against Attentive's OpenAPI files (tests/specs) and its documented header and body rules."""
from __future__ import annotations

import urllib.parse

import pytest

from dinsync.config import load_project
from dinsync.ops.health import check_destination
from dinsync.sandbox import AttentiveSandbox, SandboxThread
from tests.conftest import RequestRecorder
from tests.e2e.attentive_project import ATTENTIVE_KEY, AttentiveProject
from tests.spec_validation import validate_attentive_request
from tests.wire_capture import FAULTS, WireRecorder, check_wire, strict_json

BIG = "é" * 500_000
TEXTS = ["quote \" and ' backslash \\", "line\nbreak\r\nand\ttab", "emoji 🎉👩‍👩‍👧", BIG, None, "", " ", "NaN"]
ODD_EMAILS = ["a+b@example.com", "o'neil@example.com", "a/b@example.com", "a%b@example.com", "a#b@example.com",
              "a?b@example.com", "a&b=c@example.com", "a{b}@example.com"]


@pytest.fixture
def make_wire(tmp_path, monkeypatch):
    """Factory: a project whose Attentive sandbox sits behind a recording proxy (`faults`: FAULTS)."""
    monkeypatch.setenv("ATTENTIVE_TEST_KEY", ATTENTIVE_KEY)
    monkeypatch.setenv("DINSYNC_CHECKPOINT_SECONDS", "0")
    threads = []

    def make(faults=()) -> AttentiveProject:
        sandbox = AttentiveSandbox([ATTENTIVE_KEY])
        thread = SandboxThread(sandbox)
        thread.start()
        thread.call(sandbox.seed_subscribers, 8)
        recorder = WireRecorder(thread.url, faults)
        proxy = SandboxThread(recorder)
        proxy.start()
        threads.extend([proxy, thread])
        project = AttentiveProject(tmp_path / f"proj{len(threads)}", sandbox, thread, RequestRecorder())
        project.recorder, project.proxy_url = recorder, proxy.url
        seed(project)
        return project

    yield make
    for thread in threads:
        thread.stop()


@pytest.fixture
def wire(make_wire):
    return make_wire()


def seed(project) -> None:
    project.sql("create or replace table main.customers (id integer, email varchar, phone varchar, "
                "first_name varchar, city varchar, tier varchar, dob date)")
    for i in range(8):  # seeded subscribers, hostile values
        project.sql("insert into main.customers values (?, ?, ?, ?, ?, ?, date '1990-01-01')", i,
                    f"subscriber{i}@example.com", f"+1201{2000000 + i:07d}", TEXTS[i], TEXTS[(i + 3) % 8],
                    TEXTS[(i + 5) % 8])
    for i, email in enumerate(ODD_EMAILS):  # unknown subscribers whose keys need escaping
        project.sql("insert into main.customers values (?, ?, ?, 'x', 'y', 'z', null)", 100 + i, email,
                    f"+1415555{i:04d}")


def write(project, **kwargs) -> None:
    project.write(**kwargs)
    config = project.root / "dinsync.yml"
    config.write_text(config.read_text().replace(project.thread.url, project.proxy_url))


def bearer(headers, captured) -> None:
    assert headers.getall("Authorization", []) == [f"Bearer {ATTENTIVE_KEY}"], f"{captured.method} {captured.target}"


def check(project) -> list:
    captured = project.recorder.captured
    assert check_wire(captured, prefix="/v", validate=validate_attentive_request, auth=bearer) > 0
    return captured


def looked_up(captured, name: str) -> set[str]:
    out = set()
    for c in captured:
        if c.method == "GET" and "?" in c.target and "dinsync-existence-probe" not in c.target:
            out.update(v for k, v in urllib.parse.parse_qsl(c.target.split("?", 1)[1]) if k == name)
    return out


VARIANTS = ["", "    existence_check: subscriptions\n    standard_fields_via: single\n",
            "    custom_attributes_via: v2\n    send_nulls: true\n    lookup: new_rows\n"]


@pytest.mark.parametrize("match_column, match_field, extra", [("email", "email", VARIANTS[0]),
                                                              ("phone", "phone", VARIANTS[0]),
                                                              ("email", "email", VARIANTS[1]),
                                                              ("phone", "phone", VARIANTS[2])])
def test_every_request_of_a_sync_follows_the_spec_on_the_wire(wire, match_column, match_field, extra):
    write(wire, match_column=match_column, match_field=match_field, extra=extra)
    first = wire.sync()
    assert first["exit_code"] in (0, 2), first
    captured = check(wire)
    # subscribers new to the sync are looked up, their keys escaped in the query
    keys = {r[0] for r in wire.sql(f"select {match_column} from main.customers where id >= 100")}
    assert keys and keys <= looked_up(captured, match_field), (keys, looked_up(captured, match_field))
    sent = [u for c in captured if c.target == "/v2/bulk/user/attributes" for u in strict_json(c.body)["users"]]
    sent += [strict_json(c.body) for c in captured if c.target == "/v2/user/attributes"]
    assert sent, [c.target for c in captured]
    # a second run after changes sends only what changed: the same rules
    wire.sql("update main.customers set tier = coalesce(tier, '') || '!', city = null")
    wire.recorder.captured.clear()
    second = wire.sync()
    assert second["exit_code"] in (0, 2), second
    check(wire)


def test_validate_and_check_follow_the_spec_on_the_wire(wire):
    write(wire)
    assert wire.cli("validate").exit_code == 0
    assert wire.cli("check").exit_code in (0, 1)
    # the automatic pause's health check: pre-flight requests and its read-only lookup
    result = check_destination(load_project(wire.root), "attentive_users")
    assert result.ok, result.describe()
    check(wire)


COUNTS = ("status", "added", "changed", "acknowledged", "rejected", "not_found", "failed")


@pytest.mark.parametrize("faults, extra", [(FAULTS, VARIANTS[0]), (FAULTS[3:] + FAULTS[:3], VARIANTS[1]),
                                           (FAULTS[1:] + FAULTS[:1], VARIANTS[2])])
def test_a_faulty_proxy_changes_no_outcome(make_wire, faults, extra):
    """Behind a proxy answering each request's first attempt with a 429 (Retry-After in seconds or as
    an HTTP date), a 502 / 503 HTML page, or a reset (before or after the request reached Attentive),
    every run ends as it does without it, and the subscribers hold the same values."""
    outcomes = []
    for injected in ((), faults):
        project = make_wire(injected)
        write(project, extra=extra)
        runs = [project.run()]
        project.sql("update main.customers set tier = coalesce(tier, '') || '!', city = null")
        runs.append(project.run())
        subscribers = [project.subscriber(f"subscriber{i}@example.com") for i in range(8)]
        downloads = [c for c in project.recorder.captured if c.target.startswith("/sandbox-downloads/")]
        bulk = any(c.target == "/v2/bulk/user/attributes" for c in project.recorder.captured)
        assert bool(downloads) == bulk and all("Authorization" not in c.headers for c in downloads)  # no key
        outcomes.append(([{k: r[k] for k in COUNTS} for r in runs], project.rejections(), subscribers))
        check(project)
    assert outcomes[1] == outcomes[0]
    assert len(set(project.recorder.faulted.values())) == len(FAULTS), project.recorder.faulted
