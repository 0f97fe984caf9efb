"""Exceptions and the CLI's documented exit codes.

Nothing below the CLI prints; layers raise these and the CLI maps them to exit codes.
"""
from __future__ import annotations

import errno
import re
from dataclasses import dataclass, field


class ExitCode:
    OK = 0
    RUN_FAILED = 1
    USAGE = 2  # typer / click usage errors
    CONFIG_ERROR = 3
    WARNINGS = 4
    LOCKED = 5
    PAUSED = 6  # the sync was paused by hand: nothing was sent (a sync paused by itself exits as its cause)


class DinsyncError(Exception):
    """Base class. `hint` is a short suggestion shown to the user."""

    exit_code = ExitCode.RUN_FAILED

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


def is_panic(exc: BaseException) -> bool:
    """pyo3's PanicException: a Rust library (Polars) that could not start a thread or open a file.
    It derives from BaseException, so `except Exception` let it through as a raw traceback."""
    return type(exc).__name__ == "PanicException"


# What the system answers when it refuses a process memory or a thread: Python's MemoryError,
# DuckDB's "Allocation failure" / "bad allocation" (not its pool's "could not allocate block ...
# (x/y used)"), Polars' "could not spawn threads: ... WouldBlock" (EAGAIN), Python's "can't start
# new thread".
_SYSTEM_REFUSED = re.compile(r"allocation failure|bad allocation|could not spawn thread|WouldBlock|"
                             r"can't start new thread", re.IGNORECASE)
_NO_DESCRIPTORS = re.compile(r"TooManyOpenFiles|too many open files", re.IGNORECASE)


def _limit(name: str, unit: int = 1) -> str:
    try:
        import resource

        soft = resource.getrlimit(getattr(resource, name))[0]
    except (ImportError, AttributeError, OSError, ValueError):
        return "unknown"
    return "unlimited" if soft == resource.RLIM_INFINITY else str(soft // unit)


def system_memory_refused(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or bool(_SYSTEM_REFUSED.search(str(exc)))


def resource_hint(exc: BaseException) -> str | None:
    """What to raise when the system, not dinsync's own settings, ran out: memory or threads (the
    process's address-space limit), file descriptors. None for any other error."""
    if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE) or _NO_DESCRIPTORS.search(str(exc)):
        return (f"this process ran out of file descriptors (its limit of open files, ulimit -n, is "
                f"{_limit('RLIMIT_NOFILE')}): raise it, or lower the destination's concurrency")
    if system_memory_refused(exc):
        return (f"the system refused this process memory or a thread (its address-space limit, ulimit -v, is "
                f"{_limit('RLIMIT_AS', 1024)} KB; or the machine's memory is used up): raise that limit or free "
                "memory; raising warehouse.memory_limit would not help")
    return None


@dataclass
class ConfigIssue:
    """One configuration problem, located as precisely as we can."""

    message: str
    file: str | None = None
    line: int | None = None
    hint: str | None = None

    def format(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "") + ": "
        text = where + self.message
        if self.hint:
            text += f" (hint: {self.hint})"
        return text

    def as_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "message": self.message, "hint": self.hint}


class ConfigError(DinsyncError):
    """All configuration problems found in one pass."""

    exit_code = ExitCode.CONFIG_ERROR

    def __init__(self, issues: list[ConfigIssue]):
        self.issues = issues
        super().__init__(
            f"{len(issues)} configuration error(s):\n" + "\n".join("  - " + i.format() for i in issues)
        )

    def __reduce__(self):
        # (pickled by process pools, Celery, Ray: the default calls __init__(message), which took
        # the message for the list of issues)
        return type(self), (self.issues,), self.__dict__


def env_setting_error(name: str, kind: str, value: str, default: float | None) -> ConfigError:
    """A DINSYNC_* tuning variable holding what it cannot: `kind` says what it must be ("a
    number"), `default` what unsetting it gives."""
    return ConfigError([ConfigIssue(
        f"environment variable {name} must be {kind}, got {value!r}",
        hint=f"set {name} to {kind}, or unset it for the default"
             + (f" ({default:g})" if default is not None else ""))])


class LockBusyError(DinsyncError):
    exit_code = ExitCode.LOCKED


class DestinationAuthError(DinsyncError):
    """Credentials rejected (401/403): the run fails, nothing more is sent."""


class DestinationUnreachableError(DinsyncError):
    """The destination answered none of several requests in a row, each retried to the end (an
    outage), or asked for a wait longer than a run waits (a Retry-After over the cap): the run stops
    sending and fails; what was acknowledged is committed, the rest is sent by the next run. Not a
    reason to pause the sync."""


class SendingStopped(Exception):
    """A request not sent because the run is stopping (a signal, a lost lock): its records are
    neither acknowledged nor failed, and the next run plans them again."""


class DuplicateKeysError(DinsyncError):
    """Too many duplicated matching keys in the segment: fail before sending."""


class MassChangeError(DinsyncError):
    """More of the rows delivered before would change or leave the model than the sync's
    `max_changed_pct` / `max_removed_pct`: fail before sending (unless `sync --force`)."""


@dataclass
class RunSummary:
    sync: str
    run_id: str
    status: str = "running"  # running | success | warning | failed | cancelled (| abandoned, in the run log)
    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    null_keys: int = 0
    duplicate_keys: int = 0
    sent: int = 0
    acknowledged: int = 0
    rejected: int = 0
    not_found: int = 0
    failed: int = 0
    pending: int = 0  # outcome not known by the end of the run (an import or bulk job still running)
    parked: int = 0  # rows parked as rejected for their content (not planned until they change), when the run ended
    segment_rows: int = 0  # rows the model returned (NULL and duplicated keys included)
    requests: int = 0
    throttled: int = 0
    seconds: float = 0.0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    request_rates: dict[str, float] = field(default_factory=dict)  # achieved req/s per endpoint
