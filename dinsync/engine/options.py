"""Tuning knobs of a run (defaults suit production; tests and operators override them)."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields

from ..state.locks import HEARTBEAT_SECONDS

# The least value of each knob that a run can work with (a knob not named here: above 0, as a lock
# that expires at once would let a second run take over a live one, and a heartbeat of 0 spins);
# whole numbers are 1 or more.
_AT_LEAST_ZERO = ("checkpoint_seconds", "grace_seconds", "outcome_timeout_seconds")
_WHOLE = ("batch_rows", "checkpoint_rows", "queue_requests")


# The default request queue holds at most this many requests: the queue keeps the senders fed while
# rows are read and mapped, which a few per socket do; a destination with many sockets for reads
# (Iterable's 16 lookups) must not also queue 4 bulk bodies of up to 4 MB per socket.
QUEUE_REQUESTS_MAX = 32


@dataclass
class EngineOptions:
    batch_rows: int = 10_000  # rows per Arrow batch read from the plan (20k: ~30-50 MB more at peak for ~0.1 s less at 1M rows)
    checkpoint_rows: int = 50_000  # commit acknowledged rows at least this often (a first sync: whole blocks, see commits.py) ...
    checkpoint_seconds: float = 5.0  # ... or this often
    queue_requests: int | None = None  # bounded request queue (default 4 x concurrency, at most QUEUE_REQUESTS_MAX)
    lock_ttl_seconds: float = 900.0  # a lock not refreshed for this long is taken over
    heartbeat_seconds: float = HEARTBEAT_SECONDS  # how often a run refreshes its lock, whatever it is doing
    grace_seconds: float = 20.0  # on SIGTERM/SIGINT: how long requests in flight may finish
    outcome_timeout_seconds: float = 600.0  # how long a run waits for pending outcomes (imports, bulk jobs)
    pending_days: float = 7.0  # outcomes not read after this long are given up (those rows are sent again)
    rejections_days: float = 30.0  # rejection rows older than this are deleted (each parked key keeps its newest)

    def queue_size(self, concurrency: int) -> int:
        """Requests the send queue holds (DINSYNC_QUEUE_REQUESTS, else 4 per socket up to
        QUEUE_REQUESTS_MAX)."""
        return self.queue_requests or min(4 * concurrency, QUEUE_REQUESTS_MAX)

    @classmethod
    def from_env(cls) -> "EngineOptions":
        """Every field may be set as DINSYNC_<FIELD> (e.g. DINSYNC_CHECKPOINT_ROWS=300)."""
        opts = cls()
        for f in fields(cls):
            value = os.environ.get("DINSYNC_" + f.name.upper())
            if value:
                setattr(opts, f.name, _setting(f.name, value, getattr(cls, f.name)))
        return opts


def _setting(name: str, value: str, default: float | None) -> float:
    """The value of DINSYNC_<NAME>, or a ConfigError saying what it must be."""
    from ..errors import env_setting_error

    whole = name in _WHOLE
    try:
        number = int(value) if whole else float(value)
    except ValueError:
        raise env_setting_error(f"DINSYNC_{name.upper()}", "a whole number" if whole else "a number",
                                value, default) from None
    if not math.isfinite(number):
        must = "a finite number"
    elif whole:
        must = "a whole number of 1 or more" if number < 1 else None
    elif name in _AT_LEAST_ZERO:
        must = "a number of 0 or more" if number < 0 else None
    else:
        must = "a number above 0" if number <= 0 else None
    if must is not None:
        raise env_setting_error(f"DINSYNC_{name.upper()}", must, value, default)
    return number


OUTAGE_SECONDS_ENV = "DINSYNC_OUTAGE_SECONDS"
OUTAGE_SECONDS = 30.0  # its default: sender/breaker.py's OutageLimits.silent_seconds


def outage_seconds(default: float) -> float:
    """DINSYNC_OUTAGE_SECONDS, the silence after which the sender's breaker (and Splio SFTP's
    connections and report polls) give a server up (sender/breaker.py), else `default`: a number of
    seconds above 0, anything else a ConfigError. A run reads it as it starts (SyncRun), as it reads
    its knobs above: read first by the breaker once the run sent, an unusable value failed the run
    after planning, and the automatic pause's check, reading it again, paused the sync blaming its
    destination."""
    value = os.environ.get(OUTAGE_SECONDS_ENV)
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        from ..errors import env_setting_error

        raise env_setting_error(OUTAGE_SECONDS_ENV, "a number of seconds above 0", value, default)
    return seconds
