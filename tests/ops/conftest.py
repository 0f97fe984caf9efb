"""Fixtures of the operating tests: the Iterable project of the end-to-end tests, a loopback
webhook receiver, and the project wired to it (`notifications:` in dinsync.yml)."""
from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import project  # noqa: F401 - the fixture, reused
from tests.ops.receiver import start_receiver

SLACK_ENV = "DINSYNC_TEST_SLACK_URL"
HOOK_TOKEN_ENV = "DINSYNC_TEST_HOOK_TOKEN"
HOOK_TOKEN = "hook-secret-5a4b3c2d1e"

NOTIFICATIONS = """\
notifications:
  - type: webhook
    name: ops
    url: {url}/hook
    headers:
      Authorization: ${{env:DINSYNC_TEST_HOOK_TOKEN}}
  - type: slack
    webhook_url: ${{env:DINSYNC_TEST_SLACK_URL}}
    attempts: 2
"""


@pytest.fixture
def receiver():
    rec, thread = start_receiver()
    yield rec, thread
    thread.stop()


@pytest.fixture
def ops(project, receiver, monkeypatch):  # noqa: F811 - the imported fixture
    """The Iterable project with a webhook and a Slack channel on a loopback receiver."""
    rec, thread = receiver
    monkeypatch.setenv(SLACK_ENV, f"{thread.url}/services/T1/B2/slacksecret")
    monkeypatch.setenv(HOOK_TOKEN_ENV, HOOK_TOKEN)
    project.write(destination_extra=NOTIFICATIONS.format(url=thread.url))
    project.receiver = rec
    project.notices = lambda: [(r["path"], r["json"].get("event") or r["json"]["text"]) for r in rec.received]
    project.events = lambda: [r["json"]["event"] for r in rec.received if r["path"] == "/hook"]
    project.status = lambda: {s["sync"]: s for s in json.loads(project.cli("status").stdout)["syncs"]}
    return project


def set_sync(project, *, thresholds: str = "", extra: str = "", **write) -> None:
    """Rewrite the sync file with more `thresholds:` lines and top-level keys."""
    project.write(destination_extra=(project.root / "dinsync.yml").read_text().split("    concurrency: 4\n", 1)[1],
                  **write)
    path = project.root / "syncs" / "iterable_users.yml"
    path.write_text(path.read_text() + thresholds + extra)
