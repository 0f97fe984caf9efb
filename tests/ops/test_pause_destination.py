"""A destination field removed in the platform pauses the sync (the pre-flight check names it);
restoring it lets the next `dinsync sync` resume and deliver. Attio sandbox on loopback."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from dinsync.errors import ExitCode
from dinsync.sandbox import AttioSandbox, SandboxThread
from tests.e2e.attio_project import CUSTOM_ATTRIBUTES, AttioProject

TOKEN = "attio-ops-token-7d2e9a41"


@pytest.fixture
def attio(tmp_path, monkeypatch, attio_requests):
    sandbox = AttioSandbox([TOKEN], custom_attributes=CUSTOM_ATTRIBUTES, limits=False)
    thread = SandboxThread(sandbox)
    thread.start()
    monkeypatch.setenv("ATTIO_TEST_TOKEN", TOKEN)
    monkeypatch.setenv("DINSYNC_CHECKPOINT_SECONDS", "0")
    p = AttioProject(tmp_path / "proj", thread.url, CliRunner())
    p.root.mkdir()
    p.sandbox, p.thread, p.requests = sandbox, thread, attio_requests
    p.write_config()
    p.write_sync()
    p.seed_people(10)
    p.seed_companies(2)  # the project's other model reads it
    yield p
    thread.stop()


def set_archived(p, slug: str, archived: bool) -> None:
    def change():
        p.sandbox.objects["people"].attributes[slug].is_archived = archived
    p.thread.call(change)


def test_a_removed_destination_field_pauses_until_it_is_restored(attio):
    assert attio.run()["acknowledged"] == 10
    set_archived(attio, "plan", True)
    attio.sql("update main.people set plan = 'team' where id = 1")
    run = attio.run()
    assert run["exit_code"] == ExitCode.CONFIG_ERROR and run["status"] == "failed"
    [state] = json.loads(attio.cli("status").stdout)["syncs"]
    assert (state["state"], state["paused_by"], state["culprit"]) == ("paused", "auto", "destination")
    assert state["reason"] == "Attio attribute 'plan' of people is archived"

    refused = attio.run()
    assert refused["exit_code"] == ExitCode.CONFIG_ERROR and refused["status"] == "paused"
    assert refused["error"] == ("sync attio_people is paused by itself (destination: Attio attribute 'plan' of people "
                                "is archived); nothing was sent")
    [issue] = refused["issues"]
    assert (issue["file"], issue["line"], issue["message"]) == ("syncs/attio_people.yml", 10,
                                                                "Attio attribute 'plan' of people is archived")
    # the check ran the pre-flight and nothing else: no write reached Attio
    assert len([r for r in attio.requests.requests if r[0] == "PUT" and "/records" in r[1]]) == 10  # the first run's

    set_archived(attio, "plan", False)
    run = attio.run()
    assert run["exit_code"] == ExitCode.OK and run["changed"] == 1 and run["acknowledged"] == 1
    [state] = json.loads(attio.cli("status").stdout)["syncs"]
    assert state["state"] == "success" and not state["paused"]
    events = attio.sql("select event, detail from dinsync.events order by event_at")
    assert [e for e, _ in events] == ["paused", "resumed"]
    assert events[0][1] == "auto: destination: Attio attribute 'plan' of people is archived"
