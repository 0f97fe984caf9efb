"""Every request a sync over Splio's API sends, read off the socket (tests/wire_capture.py), for hostile
rows, checked against Splio's Swagger excerpt (tests/specs) and its documented header and body rules."""
from __future__ import annotations

import urllib.parse

import pytest

from dinsync.config import load_project
from dinsync.ops.health import check_destination
from dinsync.sandbox import SandboxThread
from tests.e2e.splio_project import SplioProject, make_sandbox, subset
from tests.spec_validation import validate_splio_request
from tests.wire_capture import FAULTS, WireRecorder, check_wire, strict_json

BIG = "é" * 200
TEXTS = ["quote \" and ' backslash \\", "line\nbreak\r\nand\ttab", "emoji 🎉👩‍👩‍👧", BIG, None, "", " ", "NaN"]
EMAILS = ["a+b@example.com", "o'neil@example.com", "a/b@example.com", "a%b@example.com", "a#b@example.com",
          "a?b@example.com", "a&b=c@example.com", "a{b}@example.com"]
LTVS = [float("nan"), float("inf"), None, 1e308, -0.0, 2.5, 12.3456, 9007199254740993.0]


@pytest.fixture
def make_wire(tmp_path):
    """Factory: a project whose Splio sandbox's API sits behind a recording proxy (`faults`: FAULTS)."""
    threads = []

    def make(faults=()) -> SplioProject:
        thread, sandbox = make_sandbox()
        recorder = WireRecorder(thread.url, faults)
        proxy = SandboxThread(recorder)
        proxy.start()
        threads.extend([proxy, thread])
        project = SplioProject(tmp_path / f"proj{len(threads)}", thread, sandbox)
        project.recorder, project.proxy_url = recorder, proxy.url
        project.seed(1)
        project.sql("delete from main.people")
        for i, email in enumerate(EMAILS):
            project.sql("insert into main.people values (?, ?, ?, ?, ?, 'fr', ?, ?, ?, "
                        "timestamp '2024-01-31 10:00:00')",
                        i, email, TEXTS[i], TEXTS[(i + 3) % 8], f"+3361234560{i}", TEXTS[(i + 5) % 8], i, LTVS[i])
        return project

    yield make
    for thread in threads:
        thread.stop()


@pytest.fixture
def wire(make_wire):
    return make_wire()


def configure(project, **kwargs) -> None:
    project.configure(transport="api", max_rejected_pct=100, **kwargs)
    config = project.root / "dinsync.yml"
    config.write_text(config.read_text().replace(project.thread.url, project.proxy_url))


def bearer(headers, captured) -> None:
    auth = headers.getall("Authorization", [])
    if captured.target == "/authenticate":
        assert auth == [], "the API key is sent in the body, not a header"
    else:
        assert len(auth) == 1 and auth[0].startswith("Bearer ") and auth[0].count(".") == 2, \
            f"{captured.method} {captured.target}: {auth}"


def check(project) -> list:
    captured = project.recorder.captured
    assert check_wire(captured, prefix="/", validate=validate_splio_request, auth=bearer) > 0
    return captured


def patched(captured) -> list[str]:
    """The emails PATCHed, each escaped in its path segment (`/`, `?`, `#`, `%`, `&`, `+` encoded)."""
    out = []
    for c in captured:
        if c.method == "PATCH":
            raw = c.target.split("/data/contacts/", 1)[1]
            assert "/" not in raw and "?" not in raw and "#" not in raw and "+" not in raw, c.target
            out.append(urllib.parse.unquote(raw))
    return out


def test_every_request_of_insert_then_changes_then_update_follows_the_spec_on_the_wire(wire):
    configure(wire, mode="insert")
    first = wire.sync()
    assert first["exit_code"] in (0, 2), first
    captured = check(wire)
    created = [u["email"] for c in captured if c.target == "/data/contacts/bulk"
               for u in strict_json(c.body)["contacts"]]
    assert set(created) == set(EMAILS) - {EMAILS[0], EMAILS[1]}, created  # NaN, inf refused before sending
    wire.sql("update main.people set first_name = coalesce(first_name, '') || '!'")
    wire.recorder.captured.clear()
    second = wire.sync()
    assert second["exit_code"] in (0, 2), second
    captured = check(wire)
    # contacts created are PATCHed, those Splio refused (a double it cannot hold) created again
    again = [u["email"] for c in captured if c.target == "/data/contacts/bulk" for u in strict_json(c.body)["contacts"]]
    assert set(patched(captured)) | set(again) == set(EMAILS) - {EMAILS[0], EMAILS[1]}
    assert patched(captured)
    # update mode, rows new to the sync: PATCHed by their email, escaped in the path
    configure(wire, mode="update")
    wire.sql("update main.people set id = id + 100, email = 'new.' || email")
    wire.recorder.captured.clear()
    wire.sync()
    captured = check(wire)
    assert sorted(patched(captured)) == sorted("new." + e for e in set(EMAILS) - {EMAILS[0], EMAILS[1]})


def test_validate_and_check_follow_the_spec_on_the_wire(wire):
    configure(wire)
    assert wire.cli("validate").exit_code == 0, wire.last.stdout
    assert wire.cli("check").exit_code in (0, 1), wire.last.stdout
    # the automatic pause's health check: pre-flight requests and its read-only lookup
    result = check_destination(load_project(wire.root, env=wire.env), "splio_people")
    assert result.ok, result.describe()
    check(wire)


COUNTS = ("status", "added", "changed", "acknowledged", "rejected", "not_found", "failed")


@pytest.mark.parametrize("faults", [FAULTS, FAULTS[3:] + FAULTS[:3]], ids=["429-first", "reset-first"])
def test_a_faulty_proxy_changes_no_outcome(make_wire, faults):
    """Behind a proxy answering each request's first attempt with a 429 (Retry-After in seconds or as
    an HTTP date), a 502 / 503 HTML page, or a reset (before or after the request reached Splio),
    every run ends as it does without it (insert, changes, update), and the contacts are the same."""
    outcomes = []
    for injected in ((), faults):
        project = make_wire(injected)
        configure(project, mode="insert")
        runs = [project.sync()["runs"][0]]
        project.sql("update main.people set first_name = coalesce(first_name, '') || '!'")
        runs.append(project.sync()["runs"][0])
        configure(project, mode="update")
        project.sql("update main.people set id = id + 100, last_name = 'L'")
        runs.append(project.sync()["runs"][0])
        contacts = {e: subset(c) for e, c in project.contacts().items()}
        outcomes.append(([{k: r[k] for k in COUNTS} for r in runs], project.rejections(), contacts))
        check(project)
    assert outcomes[1] == outcomes[0]
    assert len(set(project.recorder.faulted.values())) == len(FAULTS), project.recorder.faulted
