"""Every request a sync sends to Iterable, read off the socket (tests/wire_capture.py), for hostile
rows, checked against Iterable's Swagger file (tests/specs) and its documented header and body rules."""
from __future__ import annotations

import urllib.parse

import orjson
import pytest
from typer.testing import CliRunner

from dinsync.config import load_project
from dinsync.ops.health import check_destination
from dinsync.sandbox import IterableSandbox, SandboxThread
from tests.conftest import TEST_KEY
from tests.e2e.conftest import Project
from tests.spec_validation import validate_iterable_request
from tests.wire_capture import FAULTS, WireRecorder, check_wire, strict_json

BIG = "é" * 500_000  # 1 MB of UTF-8
HOSTILE = ["quote \" and ' backslash \\", "line\nbreak\r\nand\ttab", "emoji 🎉👩‍👩‍👧", BIG, None, "", " ", "\x00\x1f"]
USER_IDS = ["u/1", "u?2", "u#3", "u%4", "u 5", "🎉6", "u+7", "u&8=9", "u\\10"]
EMAILS = ["a+b@example.com", "o'neil@example.com", "a/b@example.com", "a%b@example.com", "a#b@example.com",
          "a?b@example.com", "a&b=c@example.com", "é🎉@example.com", "a{b}@example.com"]


@pytest.fixture
def make_wire(tmp_path, monkeypatch):
    """Factory: a project whose Iterable sandbox sits behind a recording proxy (`faults`: FAULTS)."""
    monkeypatch.setenv("ITERABLE_TEST_KEY", TEST_KEY)
    monkeypatch.setenv("DINSYNC_CHECKPOINT_SECONDS", "0")
    threads = []

    def make(faults=()) -> Project:
        sandbox = IterableSandbox([TEST_KEY], project_type="hybrid")
        thread = SandboxThread(sandbox)
        thread.start()
        recorder = WireRecorder(thread.url, faults)
        proxy = SandboxThread(recorder)
        proxy.start()
        threads.extend([proxy, thread])
        project = Project(tmp_path / f"proj{len(threads)}", proxy.url, CliRunner())
        project.root.mkdir()
        project.sandbox, project.thread, project.recorder = sandbox, thread, recorder
        return project

    yield make
    for thread in threads:
        thread.stop()


@pytest.fixture
def wire(make_wire):
    return make_wire()


def seed_hostile(project: Project) -> None:
    project.sql("create or replace table main.customers (id integer, email varchar, user_id varchar, "
                "first_name varchar, plan varchar, ltv double)")
    ltvs = [float("nan"), float("inf"), float("-inf"), 1e308, -0.0, 2.5, None, 9007199254740993.0, 1.0]
    for i, (email, user_id) in enumerate(zip(EMAILS, USER_IDS)):
        project.sql("insert into main.customers values (?, ?, ?, ?, ?, ?)", i, email, user_id,
                    HOSTILE[i % len(HOSTILE)], HOSTILE[(i + 3) % len(HOSTILE)], ltvs[i])


def api_key_header(headers, captured) -> None:
    assert headers.getall("Api-Key", []) == [TEST_KEY], f"{captured.method} {captured.target}: Api-Key header"
    assert "Authorization" not in headers


def check(project: Project) -> list:
    captured = project.recorder.captured
    assert check_wire(captured, prefix="/api/", validate=validate_iterable_request, auth=api_key_header) > 0
    return captured


def lookup_keys(captured, name: str) -> list[str]:
    out = []
    for c in captured:
        if c.method == "GET" and c.target.startswith("/api/users/"):
            query = c.target.split("?", 1)[1]
            [(param, value)] = urllib.parse.parse_qsl(query, keep_blank_values=True)
            assert param == name
            out.append(value)
    return out


@pytest.mark.parametrize("match", ["email", "userId"])
def test_every_request_of_upsert_then_update_follows_the_spec_on_the_wire(wire, match):
    column = "email" if match == "email" else "user_id"
    keys = EMAILS if match == "email" else USER_IDS
    wire.write(match_column=column, match_field=match, max_rejected_pct=100)
    seed_hostile(wire)
    first = wire.sync()
    assert first["exit_code"] in (0, 2), first
    captured = check(wire)
    sent = [u for c in captured if c.target == "/api/users/bulkUpdate" for u in strict_json(c.body)["users"]]
    by_key = {u[match]: u["dataFields"] for u in sent}
    # NaN and the infinities are refused before sending; every other row leaves, its text intact
    assert set(by_key) == {k for i, k in enumerate(keys) if i not in (0, 1, 2)}, sorted(by_key)
    for i, key in enumerate(keys):
        if key in by_key:
            assert by_key[key].get("firstName") == HOSTILE[i % len(HOSTILE)], (key, by_key[key])

    # update mode: rows new to the sync are looked up first, their keys escaped in the query
    wire.write(mode="update", match_column=column, match_field=match, max_rejected_pct=100)
    wire.sql("update main.customers set id = id + 100")
    wire.sql("delete from dinsync.snap_iterable_users")
    wire.recorder.captured.clear()
    wire.sync()
    captured = check(wire)
    assert sorted(lookup_keys(captured, match)) == sorted(k for i, k in enumerate(keys) if i not in (0, 1, 2))


def test_validate_and_check_lookups_follow_the_spec_on_the_wire(wire):
    wire.write()
    seed_hostile(wire)
    assert wire.cli("validate").exit_code == 0, wire.last.stdout
    assert wire.cli("check").exit_code in (0, 1), wire.last.stdout
    # the automatic pause's health check: pre-flight requests and its read-only lookup
    result = check_destination(load_project(wire.root), "iterable_users")
    assert result.ok, result.describe()
    captured = check(wire)
    assert any(c.method == "GET" for c in captured)


COUNTS = ("status", "added", "changed", "acknowledged", "rejected", "not_found", "failed")


@pytest.mark.parametrize("faults", [FAULTS, FAULTS[3:] + FAULTS[:3]], ids=["429-first", "reset-first"])
def test_a_faulty_proxy_changes_no_outcome(make_wire, faults):
    """Behind a proxy answering each request's first attempt with a 429 (Retry-After in seconds or as
    an HTTP date), a 502 / 503 HTML page, or a reset (before or after the request reached Iterable),
    every run ends as it does without it, upsert then update."""
    outcomes = []
    for injected in ((), faults):
        project = make_wire(injected)
        runs = []
        for mode in ("upsert", "update"):
            project.write(mode=mode, match_column="user_id", match_field="userId", max_rejected_pct=100)
            if mode == "upsert":
                seed_hostile(project)
            else:
                project.sql("update main.customers set first_name = 'x' || id, id = id + 100")
                project.sql("insert into main.customers values (200, 'new@example.com', 'u-new', 'n', 'p', 1)")
            [run] = project.sync()["runs"]
            runs.append({k: run[k] for k in COUNTS})
        users = project.thread.call(lambda s=project.sandbox: sorted(
            (u.get("userId"), orjson.dumps(u.get("dataFields"), option=orjson.OPT_SORT_KEYS)) for u in s.users))
        outcomes.append((runs, users))
        check(project)
    assert outcomes[1] == outcomes[0]
    assert len(set(project.recorder.faulted.values())) >= 3, project.recorder.faulted


def test_the_recorder_refuses_what_iterable_would():
    """The wire checks are not vacuous: NaN, a repeated key, a body not in UTF-8 fail."""
    for body in (b'{"users":[{"email":"a@x.co","dataFields":{"v":NaN}}]}', b'{"users":[],"users":[]}',
                 b'{"users":[{"email":"\xff@x.co","dataFields":{}}]}'):
        with pytest.raises((AssertionError, ValueError)):
            strict_json(body)
    assert orjson.loads(b'{"a":1}') == {"a": 1}
