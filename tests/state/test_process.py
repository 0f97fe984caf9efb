"""Lock holders: who holds a lock, and whether that process still runs (dinsync/state/process.py)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

import pytest

from dinsync.state.process import holder_id, holder_is_dead, parse_holder, pid_namespace, read_stat


def test_holder_names_its_pid_namespace():
    host, pid, start = parse_holder(holder_id())
    assert (host, pid, start) == (socket.gethostname(), os.getpid(), read_stat(os.getpid()).start_time)
    assert holder_id().endswith(":" + pid_namespace())
    assert not holder_is_dead(holder_id())


def test_holders_of_earlier_layouts_are_still_judged():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a pid that no longer runs
    host = socket.gethostname()
    assert holder_is_dead(f"{host}:{proc.pid}:12345")
    assert holder_is_dead(f"{host}:{proc.pid}")
    assert holder_is_dead(f"{host}:{proc.pid}:12345:{pid_namespace()}")
    assert parse_holder(f"{host}:{proc.pid}:12345:{pid_namespace()}") == (host, proc.pid, 12345)


def test_holder_in_another_pid_namespace_of_this_host_is_never_judged():
    """A container on the host's network has the host's name but PIDs of its own: its live run's PID
    (1 here) is another process on this side, which said 'dead' and let its lock be taken."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.fail("this test needs root and unshare(1) to start a process in a PID namespace of its own")
    code = ("import sys, time; from dinsync.state.process import holder_id; "
            "print(holder_id(), flush=True); sys.stdin.read()")
    inside = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", code],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    try:
        holder = inside.stdout.readline().strip()
        host, pid, start = parse_holder(holder)
        assert host == socket.gethostname() and pid == 1, holder
        assert not holder.endswith(":" + pid_namespace())
        assert holder_is_dead(holder) is False  # alive, over there: its lock waits for the expiry
    finally:
        inside.stdin.close()
        inside.wait(timeout=30)
