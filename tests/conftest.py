"""Shared fixtures: an Iterable sandbox on loopback, and a recorder that checks every request the
client sends to it against Iterable's Swagger file."""
from __future__ import annotations

import aiohttp
import pytest

from dinsync.sandbox import IterableSandbox, SandboxThread
from tests.spec_validation import validate_iterable_request

TEST_KEY = "itbl-test-key-7f3a9c2e51d04b"


class RequestRecorder:
    def __init__(self):
        self.requests: list[tuple[str, str, bytes | None]] = []

    def bodies(self, path_prefix: str) -> list[bytes]:
        return [b for m, p, b in self.requests if p.startswith(path_prefix) and b]

    def clear(self) -> None:
        self.requests.clear()


@pytest.fixture
def iterable_requests(monkeypatch):
    """Records (method, path+query, body) of every aiohttp request; validates Iterable ones at teardown."""
    recorder = RequestRecorder()
    original = aiohttp.ClientSession.request

    def request(self, method, url, **kwargs):
        u = url if isinstance(url, str) else str(url)
        path = "/" + u.split("/", 3)[3] if u.count("/") >= 3 else u
        recorder.requests.append((method, path, kwargs.get("data")))
        return original(self, method, url, **kwargs)

    monkeypatch.setattr(aiohttp.ClientSession, "request", request)
    yield recorder
    for method, path, body in recorder.requests:
        if path.startswith("/api/"):
            validate_iterable_request(method, path, body)


@pytest.fixture
def iterable_sandbox():
    """(sandbox, runner): an Iterable sandbox served from a thread on 127.0.0.1."""
    sandbox = IterableSandbox([TEST_KEY])
    runner = SandboxThread(sandbox)
    runner.start()
    yield sandbox, runner
    runner.stop()
