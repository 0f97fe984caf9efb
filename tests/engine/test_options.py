"""EngineOptions.from_env: the DINSYNC_* tuning variables."""
from __future__ import annotations

import pytest

from dinsync.engine.options import EngineOptions
from dinsync.errors import ConfigError


def test_usable_values_are_taken(monkeypatch):
    monkeypatch.setenv("DINSYNC_CHECKPOINT_SECONDS", "0")
    monkeypatch.setenv("DINSYNC_BATCH_ROWS", "500")
    monkeypatch.setenv("DINSYNC_HEARTBEAT_SECONDS", "0.2")
    opts = EngineOptions.from_env()
    assert (opts.checkpoint_seconds, opts.batch_rows, opts.heartbeat_seconds) == (0.0, 500, 0.2)


@pytest.mark.parametrize("name, value, must", [
    ("DINSYNC_BATCH_ROWS", "0", "a whole number of 1 or more"),  # was: an unexpected error (exit 1) once the run read its plan
    ("DINSYNC_QUEUE_REQUESTS", "-1", "a whole number of 1 or more"),
    ("DINSYNC_CHECKPOINT_ROWS", "0", "a whole number of 1 or more"),
    ("DINSYNC_LOCK_TTL_SECONDS", "-1", "a number above 0"),  # every lock expired at once: a live run's lock taken over
    ("DINSYNC_LOCK_TTL_SECONDS", "inf", "a finite number"),  # was: an unexpected error (exit 1)
    ("DINSYNC_HEARTBEAT_SECONDS", "0", "a number above 0"),
    ("DINSYNC_PENDING_DAYS", "nan", "a finite number"),
    ("DINSYNC_CHECKPOINT_SECONDS", "-5", "a number of 0 or more"),
    ("DINSYNC_GRACE_SECONDS", "nan", "a finite number"),
    ("DINSYNC_OUTCOME_TIMEOUT_SECONDS", "-inf", "a finite number"),
])
def test_an_unusable_value_is_a_configuration_error_naming_the_variable(monkeypatch, name, value, must):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        EngineOptions.from_env()
    [issue] = info.value.issues
    assert issue.message == f"environment variable {name} must be {must}, got {value!r}"
    assert issue.hint.startswith(f"set {name} to ") and "unset it for the default" in issue.hint


def test_the_request_queue_is_four_per_socket_up_to_a_cap(monkeypatch):
    """The default queue is 4 requests per socket, at most QUEUE_REQUESTS_MAX: Iterable's 20
    sockets (16 of them for lookups) would otherwise queue 80 bulk bodies of up to 4 MB each.
    DINSYNC_QUEUE_REQUESTS still sets it exactly."""
    from dinsync.engine.options import QUEUE_REQUESTS_MAX

    opts = EngineOptions()
    assert (opts.queue_size(1), opts.queue_size(8)) == (4, 32)
    assert opts.queue_size(20) == opts.queue_size(24) == QUEUE_REQUESTS_MAX == 32
    monkeypatch.setenv("DINSYNC_QUEUE_REQUESTS", "100")
    assert EngineOptions.from_env().queue_size(20) == 100
