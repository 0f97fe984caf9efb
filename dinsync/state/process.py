"""Who holds a lock, and whether that process still runs.

A holder is written `host:pid:starttime`, where starttime is field 22 of `/proc/<pid>/stat`
(clock ticks since boot): a PID reused by another process has another start time. A holder on
this host is dead when its PID is gone, is a zombie (killed but not reaped: common in
containers whose PID 1 does not reap), or belongs to a process that started at another time.
Holders on other hosts are never judged here: their locks wait for the expiry.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass

PROC = "/proc"


@dataclass(frozen=True)
class ProcessStat:
    state: str  # R, S, D, Z (zombie), X (dead), T...
    start_time: int  # clock ticks after boot


def read_stat(pid: int, proc: str = PROC) -> ProcessStat | None:
    """State and start time of a process from /proc/<pid>/stat, or None when it does not exist."""
    try:
        with open(f"{proc}/{int(pid)}/stat", "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses; it ends at the last ')'.
    rest = text[text.rindex(")") + 2:].split()
    return ProcessStat(state=rest[0], start_time=int(rest[19]))  # fields 3 and 22


def has_proc(proc: str = PROC) -> bool:
    return os.path.exists(f"{proc}/self/stat")


def holder_id(pid: int | None = None) -> str:
    """This process as a lock holder: host:pid:starttime (host:pid where /proc is missing)."""
    pid = os.getpid() if pid is None else pid
    stat = read_stat(pid) if has_proc() else None
    host = socket.gethostname()
    return f"{host}:{pid}:{stat.start_time}" if stat else f"{host}:{pid}"


def parse_holder(holder: str) -> tuple[str, int | None, int | None]:
    """(host, pid, start time) of a holder text; pid/start None when absent or malformed."""
    parts = (holder or "").split(":")
    if len(parts) >= 3 and parts[-1].isdigit() and parts[-2].isdigit():
        return ":".join(parts[:-2]), int(parts[-2]), int(parts[-1])
    if len(parts) >= 2 and parts[-1].isdigit():  # layout 1: host:pid
        return ":".join(parts[:-1]), int(parts[-1]), None
    return holder or "", None, None


def holder_is_dead(holder: str, proc: str = PROC) -> bool:
    """True when `holder` was a process on this host that no longer runs."""
    host, pid, start = parse_holder(holder)
    if pid is None or host != socket.gethostname():
        return False
    if has_proc(proc):
        stat = read_stat(pid, proc)
        if stat is None or stat.state in ("Z", "X"):
            return True
        return start is not None and stat.start_time != start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
