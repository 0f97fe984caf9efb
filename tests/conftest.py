"""Shared fixtures: Iterable and Attio sandboxes on loopback, and recorders that check every request
the client sends to them against the platform's specification file."""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import sys
import tempfile

import aiohttp
import pytest

from dinsync.sandbox import AttioSandbox, IterableSandbox, SandboxThread
from tests.spec_validation import validate_attio_request, validate_iterable_request

# The rate-limit paces that processes share (dinsync.sender.pacefile) live in a folder of this test
# process (each xdist worker's own, and the commands its tests start), not the machine's: a pause a
# sandbox asked for must not reach a test of another worker whose sandbox got the same port.
os.environ["DINSYNC_PACE_DIR"] = tempfile.mkdtemp(prefix="dinsync-test-paces-")
atexit.register(shutil.rmtree, os.environ["DINSYNC_PACE_DIR"], True)
# Every test talks to 127.0.0.1 (sandboxes go direct anyway) or to hosts it expects unreachable: a
# machine's proxy variables (which pip may need) must not route those through its proxy. The proxy
# tests set their own.
for _name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
    os.environ.pop(_name, None)
    os.environ.pop(_name.lower(), None)

# A suite started in the background of a script (`bash .ci/run &`) inherits SIGINT ignored, and so
# would every command its tests start: dinsync then leaves Ctrl-C alone, by design, and the tests
# of what SIGINT does would test nothing. The suite behaves the same however it was started.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

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


ATTIO_TEST_TOKEN = "attio-test-token-3c9d1e"


@pytest.fixture
def attio_requests(monkeypatch):
    """Records (method, path+query, body) of every `aiohttp.ClientSession.request` call (`data=` or `json=`,
    `params=` folded into the query) and validates the Attio ones (`/v2/...`) at teardown."""
    import urllib.parse

    recorder = RequestRecorder()
    original = aiohttp.ClientSession.request

    def request(self, method, url, **kwargs):
        u = url if isinstance(url, str) else str(url)
        path = "/" + u.split("/", 3)[3] if u.count("/") >= 3 else u
        if kwargs.get("params"):
            path += ("&" if "?" in path else "?") + urllib.parse.urlencode(kwargs["params"])
        body = kwargs["data"] if "data" in kwargs else kwargs.get("json")
        recorder.requests.append((method, path, body))
        return original(self, method, url, **kwargs)

    monkeypatch.setattr(aiohttp.ClientSession, "request", request)
    yield recorder
    for method, path, body in recorder.requests:
        if path.startswith("/v2/"):
            validate_attio_request(method, path, body)


@pytest.fixture
def attio_sandbox():
    """(sandbox, runner): an Attio sandbox (default limits, default token scopes) served on 127.0.0.1."""
    sandbox = AttioSandbox([ATTIO_TEST_TOKEN])
    runner = SandboxThread(sandbox)
    runner.start()
    yield sandbox, runner
    runner.stop()


@pytest.fixture(scope="session", autouse=True)
def _sql_cache_dir(tmp_path_factory):
    """The rendered-SQL cache of the suite (its CLI runs' subprocesses too) lives in pytest's
    temporary folder, never in the user's ~/.cache/dinsync, where it left files behind and pruned
    the user's own (256 files at most)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DINSYNC_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "dinsync-cache"))
        yield


@pytest.fixture(autouse=True)
def _pace_dir_of_the_test(tmp_path_factory, monkeypatch):
    """Each test's shared paces (dinsync.sender.pacefile) in a folder of its own: a pause a sandbox
    asked for in one test is kept in a file keyed by its URL, and a later test whose sandbox got the
    same port would have waited for it."""
    monkeypatch.setenv("DINSYNC_PACE_DIR", str(tmp_path_factory.mktemp("paces")))


def pytest_sessionfinish(session, exitstatus):
    """fakesnow, once imported, leaves a folder of its own in the temporary folder (its stage
    bucket, made at import and never removed): removed with the test process."""
    import shutil
    import sys

    bucket = getattr(sys.modules.get("fakesnow.transforms.stage"), "LOCAL_BUCKET_PATH", None)
    if bucket:
        shutil.rmtree(bucket, ignore_errors=True)


def _redactor_state() -> tuple:
    from dinsync import redaction

    with redaction._lock:
        return set(redaction._values), set(redaction._partial), list(redaction._session)


def _restore_redactor(saved: tuple) -> None:
    from dinsync import redaction

    redaction.clear()
    with redaction._lock:
        redaction._values.update(saved[0])
        redaction._partial.update(saved[1])
        redaction._session.extend(saved[2])
        redaction._rebuild()


@pytest.fixture(autouse=True)
def _no_plugin_left_loaded():
    """The destination plugins a test loaded (the toy plugin, in this `tests` package) are forgotten
    after it: left in the process's cache, a later test of its xdist worker whose own code (in
    `tests` too) raised had its error blamed on "destination plugin outbox" (plugin_at_fault goes
    by the top-level package), or not, as xdist dealt the tests."""
    yield
    destinations = sys.modules.get("dinsync.destinations")
    if destinations is not None and destinations._plugins.cache_info().currsize:
        destinations._plugins.cache_clear()


@pytest.fixture(autouse=True)
def _redactor_of_the_test():
    """What a test registers as secret (the process's registry, which its in-process CLI runs and
    API calls fill too) is forgotten after it: a notification test's header token "1234" stayed
    registered in its xdist worker, and later tests there saw `123456` as `***56` in their plan
    samples (a cellphone `0033612345601` as `00336***5601`), or not, as xdist dealt the tests."""
    saved = _redactor_state()
    yield
    if _redactor_state() != saved:
        _restore_redactor(saved)


@pytest.fixture
def empty_redactor():
    """The test starts from an empty redactor (the process's registry of secrets), and what was
    registered before it comes back after: a test asserting that some text stays readable must not
    depend on the secrets registered before it (those of higher-scoped fixtures included)."""
    from dinsync import redaction

    saved = _redactor_state()
    redaction.clear()
    yield
    _restore_redactor(saved)
