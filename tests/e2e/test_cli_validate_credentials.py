"""`dinsync validate` checks each destination's credentials before anything is sent: Iterable's
and Attentive's pre-flight checks ask the platform nothing, so a wrong API key passed validate (exit
0) and the first sync failed on it. validate now makes the health check's read-only lookup of a key
no record has (Iterable: `GET /api/users/getByEmail`, in Iterable's spec; Attentive: its custom
attributes' GET), once per destination: a refused key is a configuration error (exit 3) naming the
sync and never the key, a platform that does not answer leaves it unchecked (exit 1)."""
from __future__ import annotations

import json
import socket

from dinsync.errors import ExitCode
from tests.e2e.attentive_project import ATTENTIVE_KEY, make_attentive  # noqa: F401 (fixture)
from tests.e2e.conftest import project  # noqa: F401 (fixture)


def _requests(project) -> int:
    return project.thread.call(project.sandbox.stats)["requests"]


def test_a_wrong_iterable_key_fails_validate_without_writing_or_printing_it(project, monkeypatch):
    wrong = "wrong-iterable-key-7f3a9c2e"
    monkeypatch.setenv("ITERABLE_TEST_KEY", wrong)
    result = project.cli("validate")
    assert result.exit_code == ExitCode.CONFIG_ERROR, result.stdout
    out = json.loads(result.stdout)
    assert out["exit_code"] == ExitCode.CONFIG_ERROR
    [issue] = out["issues"]
    assert issue["file"] == "syncs/iterable_users.yml"
    assert "Iterable refused the API key (HTTP 401" in issue["message"]
    text = project.cli("validate", json_output=False)
    assert text.exit_code == ExitCode.CONFIG_ERROR and "Iterable refused the API key" in text.output
    assert wrong not in result.output + text.output and wrong[:8] not in result.output + text.output
    sent = [(method, path.split("?")[0]) for method, path, _ in project.requests.requests]
    assert sent == [("GET", "/api/users/getByEmail")] * 2  # one read per validate, nothing written


def test_the_right_key_asks_once_per_destination(project):
    (project.root / "syncs" / "iterable_users_too.yml").write_text(
        (project.root / "syncs" / "iterable_users.yml").read_text())
    result = project.cli("validate")
    assert result.exit_code == 0, result.stdout
    assert json.loads(result.stdout)["ok"] is True
    assert _requests(project) == 1
    assert project.cli("validate", "--offline").exit_code == 0 and _requests(project) == 1


def test_an_iterable_that_does_not_answer_leaves_the_key_unchecked(project):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yml = project.root / "dinsync.yml"
    yml.write_text(yml.read_text().replace(project.base_url, f"http://127.0.0.1:{port}"))
    result = project.cli("validate")
    out = json.loads(result.stdout)
    assert (result.exit_code, out["exit_code"]) == (ExitCode.RUN_FAILED, ExitCode.RUN_FAILED), out
    assert "the credentials of iterable were not checked" in out["error"]


def test_a_wrong_attentive_key_fails_validate(make_attentive, monkeypatch):  # noqa: F811
    p = make_attentive()
    wrong = "attn-wrong-key-4d5e6f70"
    monkeypatch.setenv("ATTENTIVE_TEST_KEY", wrong)
    result = p.cli("validate")
    assert result.exit_code == ExitCode.CONFIG_ERROR, result.stdout
    [issue] = json.loads(result.stdout)["issues"]
    assert "Attentive refused the API key (HTTP 401" in issue["message"] and wrong not in result.stdout
    monkeypatch.setenv("ATTENTIVE_TEST_KEY", ATTENTIVE_KEY)
    assert p.cli("validate").exit_code == 0


def test_a_sync_that_can_make_no_lookup_leaves_the_key_to_the_next_one(project, monkeypatch):
    """The first sync (by name) of a destination whose service can build no lookup checks nothing:
    the destination's credentials are checked by the next sync's lookup, not taken for checked."""
    from dinsync.ops import health

    (project.root / "syncs" / "a_first.yml").write_text((project.root / "syncs" / "iterable_users.yml").read_text())
    probe = health._probe
    monkeypatch.setattr(health, "_probe", lambda d, cfg, spec: None if cfg.name == "a_first" else probe(d, cfg, spec))
    monkeypatch.setenv("ITERABLE_TEST_KEY", "wrong-iterable-key-1b2c3d4e")
    result = project.cli("validate")
    assert result.exit_code == ExitCode.CONFIG_ERROR, result.stdout
    [issue] = json.loads(result.stdout)["issues"]
    assert issue["file"] == "syncs/iterable_users.yml" and "refused the API key" in issue["message"]


def test_a_platform_that_asks_validate_to_wait_hours_says_so_not_that_a_run_sends_it(project):
    """A 429 whose Retry-After is longer than a run waits: validate says the key is unchecked
    (exit 1) and why, in its own words: "sent by the next run" is the sender's word for the rows of
    a run, and validate sends none."""
    from dinsync.sandbox.faults import throttle

    project.thread.call(project.sandbox.faults.script, "getByEmail", throttle(retry_after=7200))
    result = project.cli("validate")
    out = json.loads(result.stdout)
    assert (result.exit_code, out["exit_code"]) == (ExitCode.RUN_FAILED, ExitCode.RUN_FAILED), out
    assert "the credentials of iterable were not checked" in out["error"], out
    assert "asked to wait 7200 s (Retry-After)" in out["error"], out
    assert "next run" not in out["error"], out["error"]
