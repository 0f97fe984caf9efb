"""What the SIGKILL tests of every destination share."""
from __future__ import annotations

import subprocess
import time
from typing import Callable


def kill_when(proc: subprocess.Popen, reached: Callable[[], bool], within: float = 60) -> None:
    """SIGKILL the running sync `proc` as soon as `reached()` (e.g. the sandbox has received so many
    requests), failing if it ends first or does not get there within `within` seconds."""
    deadline = time.monotonic() + within
    while not reached():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the sync never reached the kill point"
        time.sleep(0.005)
    assert proc.poll() is None, "the sync finished before it could be killed"
    proc.kill()
    proc.wait(10)
    assert proc.returncode == -9
