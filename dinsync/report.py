"""What the CLI reports: the run object (one JSON shape wherever a run appears) and exit codes.

A run object is built from the run log row (`status`) or from a finished `RunSummary` plus its
log row (`sync`), or, when a sync failed before its run was recorded (its lock was held, its
model SQL was refused...), from the error alone: `sync --json`, `status --json` and failures all
show the same keys.

    {"sync": "iterable_users", "run_id": "20250101T060000-1a2b3c4d", "status": "success",
     "started_at": "2025-01-01T06:00:00.123Z", "finished_at": "2025-01-01T06:00:02.456Z",
     "seconds": 2.333, "full_refresh": false,
     "added": 20, "changed": 0, "removed": 0, "unchanged": 0, "null_keys": 0, "duplicate_keys": 0,
     "sent": 20, "acknowledged": 20, "rejected": 0, "not_found": 0, "failed": 0,
     "requests": 1, "throttled": 0,
     "warnings": [], "error": null, "hint": null, "request_rates": {"bulk_update": 4.9},
     "tool_version": "0.1.0"}
"""
from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from typing import Any, Iterable, Mapping

from . import __version__
from .errors import ExitCode

RUN_COUNTS = ("added", "changed", "removed", "unchanged", "null_keys", "duplicate_keys", "sent", "acknowledged",
              "rejected", "not_found", "failed", "pending", "parked", "requests", "throttled", "segment_rows")
RUN_STATUSES = ("running", "success", "warning", "failed", "cancelled", "abandoned",
                "paused")  # paused: `dinsync sync` refused a paused sync (no run was recorded)

# The worst outcome wins when several syncs run: a configuration error (the sync could not even
# start; someone must fix a file) over a failed run (rows were not delivered) over a paused sync
# (nothing was sent until someone fixes its cause or resumes it) over a held lock (another run is
# doing the work; try again later) over warnings (everything was delivered, but look) over success.
EXIT_PRECEDENCE = (ExitCode.CONFIG_ERROR, ExitCode.RUN_FAILED, ExitCode.PAUSED, ExitCode.LOCKED, ExitCode.WARNINGS,
                   ExitCode.OK)


def worst_exit_code(codes: Iterable[int]) -> int:
    """The code that wins by EXIT_PRECEDENCE (unknown codes rank with a failed run). A stop by a
    signal (128 + its number, see dinsync.engine.stop) wins over everything: it was asked for."""
    codes = list(codes)
    for code in codes:
        if code >= 128:
            return code
    rank = {code: len(EXIT_PRECEDENCE) - i for i, code in enumerate(EXIT_PRECEDENCE)}
    worst = ExitCode.OK
    for code in codes:
        if rank.get(code, rank[ExitCode.RUN_FAILED]) > rank.get(worst, 0):
            worst = code
    return worst


def utc_iso(value: dt.datetime | None) -> str | None:
    """ISO 8601 in UTC with its zone (`Z`), milliseconds. Naive values are UTC (the run log's)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# Longest matching key `dinsync rejections` shows (text and JSON): beyond any platform's identifier
# (emails 254 bytes, Iterable userIds 52, Attentive's 100), so a real key is shown whole; a longer
# one (a 1 MB value in the key column) is shown as its first SHOWN_KEY_MAX characters and its length,
# `kkk… (1,000,012 characters)`: SHORTENED_KEY_MAX characters at most, which a key so shortened is
# never shortened again.
SHOWN_KEY_MAX = 1000
SHORTENED_KEY_MAX = SHOWN_KEY_MAX + 40
# The statuses of the rejections table (`dinsync rejections --status`): refused for its content
# (parked), unknown to an update-only platform, not delivered after retries, a key on several
# rows (withheld), rows without a key (one row a run, with their count).
REJECTION_STATUSES = ("rejected", "not_found", "failed", "duplicate", "skipped")


def shown_key(key: str | None, length: int | None = None) -> str | None:
    """`key`, or its start and its length where it is over SHORTENED_KEY_MAX characters; `length`:
    the whole key's, where `key` is only its start (as read from the rejections table)."""
    if key is None:
        return None
    length = len(key) if length is None else int(length)
    return key if length <= SHORTENED_KEY_MAX else f"{key[:SHOWN_KEY_MAX]}… ({length:,} characters)"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def wall_seconds(started_at: dt.datetime, finished_at: dt.datetime) -> float:
    """Seconds between two wall-clock times, never below 0: the clock may have stepped back between
    them (an NTP step), and a run does not end before it begins. (The engine measures a run's
    duration in elapsed time: where it did, that one is used.)"""
    return max(0.0, (finished_at - started_at).total_seconds())


def run_object(*, sync: str, status: str, run_id: str | None = None, started_at: dt.datetime | None = None,
               finished_at: dt.datetime | None = None, seconds: float | None = None, full_refresh: bool = False,
               counts: Mapping[str, Any] | None = None, warnings: Iterable[str] = (), error: str | None = None,
               hint: str | None = None, request_rates: Mapping[str, float] | None = None,
               tool_version: str | None = None) -> dict[str, Any]:
    """The one JSON shape of a run (see the module docstring)."""
    counts = counts or {}
    return {
        "sync": sync,
        "run_id": run_id,
        "status": status,
        "started_at": utc_iso(started_at),
        "finished_at": utc_iso(finished_at),
        "seconds": None if seconds is None else round(float(seconds), 3),
        "full_refresh": bool(full_refresh),
        **{name: int(counts.get(name) or 0) for name in RUN_COUNTS},
        "warnings": [w for w in warnings if w],
        "error": error,
        "hint": hint,
        "issues": [],  # a run stopped by configuration errors (e.g. the pre-flight check) lists them here
        "request_rates": None if request_rates is None else dict(request_rates),
        "tool_version": tool_version,
    }


def run_from_log(row: Mapping[str, Any]) -> dict[str, Any]:
    """A run object from a row of the run log (`StateStore.last_runs`)."""
    warnings = row.get("warnings")
    return run_object(
        sync=row["sync"], run_id=row.get("run_id"), status=row.get("status") or "running",
        started_at=row.get("started_at"), finished_at=row.get("finished_at"), seconds=row.get("seconds"),
        full_refresh=bool(row.get("full_refresh")), counts=row,
        warnings=warnings.split(" | ") if isinstance(warnings, str) else (warnings or ()),
        error=row.get("error"), tool_version=row.get("tool_version"))


def run_from_summary(summary: Any, logged: Mapping[str, Any] | None, *, full_refresh: bool,
                     started_at: dt.datetime, hint: str | None = None, recorded: bool = False) -> dict[str, Any]:
    """A run object from the engine's `RunSummary` and, when the run was recorded, its log row
    (which holds the timestamps). Without the row, the CLI's own clock gives the timestamps, and
    the run has no run_id unless it was `recorded` all the same (its row could not be read back:
    the warehouse went away during the run) rather than never (e.g. its lock was held)."""
    data = asdict(summary)
    status = data["status"] if data["status"] != "running" else "failed"
    if logged is None:
        finished = utcnow()
        return run_object(sync=data["sync"], run_id=data["run_id"] if recorded else None, status=status,
                          started_at=started_at, finished_at=finished,
                          seconds=data["seconds"] or wall_seconds(started_at, finished), full_refresh=full_refresh,
                          counts=data, warnings=data["warnings"], error=data["error"], hint=hint,
                          request_rates=data["request_rates"], tool_version=__version__)
    return run_object(sync=data["sync"], run_id=data["run_id"], status=status, started_at=logged.get("started_at"),
                      finished_at=logged.get("finished_at"), seconds=data["seconds"], full_refresh=full_refresh,
                      counts=data, warnings=data["warnings"], error=data["error"], hint=hint,
                      request_rates=data["request_rates"], tool_version=logged.get("tool_version") or __version__)


def failed_run(sync: str, error: str, hint: str | None, *, started_at: dt.datetime,
               full_refresh: bool = False, counts: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The run object of a sync that failed before the engine had a run summary (`counts`: those
    already known, e.g. the model's rows and keys that blocked it)."""
    finished = utcnow()
    return run_object(sync=sync, status="failed", started_at=started_at, finished_at=finished,
                      seconds=wall_seconds(started_at, finished), full_refresh=full_refresh, counts=counts,
                      error=error, hint=hint, tool_version=__version__)
