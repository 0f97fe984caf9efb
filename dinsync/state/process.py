"""Who holds a lock, and whether that process still runs.

A holder is written `host:pid:starttime:pidns<inode>`, where starttime is field 22 of
`/proc/<pid>/stat` (clock ticks since boot): a PID reused by another process has another start
time; and pidns names the PID namespace the PID belongs to (the inode of /proc/self/ns/pid).
A holder on this host, in this PID namespace, is dead when its PID is gone, is a zombie (killed but
not reaped: common in containers whose PID 1 does not reap), or belongs to a process that started
at another time. Holders on other hosts are never judged here: their locks wait for the expiry;
nor are holders in another PID namespace under the same host name (containers on the host's network
take its name, and see other PIDs: a live run there looked dead from here, and its lock was taken
while it ran): theirs are taken once they stop refreshing them (locks.silent_seconds). Holders
written before the namespace was (`host:pid:starttime`, `host:pid`) are judged as before; a
dinsync of that time reads the new form as a holder it cannot judge, and waits.
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


NAMESPACE_TAG = "pidns"


def pid_namespace(proc: str = PROC) -> str | None:
    """This process's PID namespace (`pidns<inode>`), or None where /proc does not say."""
    try:
        return f"{NAMESPACE_TAG}{os.stat(f'{proc}/self/ns/pid').st_ino}"
    except OSError:
        return None


def holder_id(pid: int | None = None) -> str:
    """This process as a lock holder: host:pid:starttime:pidns<inode> (host:pid where /proc is
    missing)."""
    pid = os.getpid() if pid is None else pid
    stat = read_stat(pid) if has_proc() else None
    host = socket.gethostname()
    if not stat:
        return f"{host}:{pid}"
    namespace = pid_namespace()
    return f"{host}:{pid}:{stat.start_time}" + (f":{namespace}" if namespace else "")


def _split_namespace(holder: str) -> tuple[str, str | None]:
    """(the holder without its PID namespace, the namespace or None)."""
    head, _, last = (holder or "").rpartition(":")
    if head and last.startswith(NAMESPACE_TAG) and last[len(NAMESPACE_TAG):].isdigit():
        return head, last
    return holder or "", None


def parse_holder(holder: str) -> tuple[str, int | None, int | None]:
    """(host, pid, start time) of a holder text; pid/start None when absent or malformed."""
    holder, _ = _split_namespace(holder)
    parts = holder.split(":")
    if len(parts) >= 3 and parts[-1].isdigit() and parts[-2].isdigit():
        return ":".join(parts[:-2]), int(parts[-2]), int(parts[-1])
    if len(parts) >= 2 and parts[-1].isdigit():  # layout 1: host:pid
        return ":".join(parts[:-1]), int(parts[-1]), None
    return holder or "", None, None


def holder_in_another_namespace(holder: str) -> bool:
    """True when `holder` names this host and a PID namespace other than this process's (a
    container sharing the host's name): whether it runs cannot be told from here."""
    host, pid, _ = parse_holder(holder)
    _, namespace = _split_namespace(holder)
    return (pid is not None and host == socket.gethostname() and namespace is not None
            and namespace != pid_namespace())


def holder_is_dead(holder: str, proc: str = PROC) -> bool:
    """True when `holder` was a process on this host (and in this PID namespace) that no longer runs."""
    host, pid, start = parse_holder(holder)
    if pid is None or host != socket.gethostname():
        return False
    _, namespace = _split_namespace(holder)
    if namespace is not None and namespace != pid_namespace(proc):
        return False  # the same host name, another PID namespace: its PIDs are not ours to look up
        # (its lock is taken once it stops refreshing it: locks.silent_seconds)
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
