"""Run the dinsync CLI in a subprocess, as a user would, and measure its own peak RSS.

Why not `os.wait4(...).ru_maxrss`: on Linux a child's ru_maxrss starts at its parent's peak (the
address space it had before exec is counted), so a benchmark process that held 700 MB (a DuckDB
connection, a baseline's rows) reported 700 MB for a sync that used 300 MB. The child reads its own
high-water mark (`VmHWM` in /proc/self/status, which exec resets) when it exits.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

# Run dinsync.cli as `python -m dinsync.cli` would, and write VmHWM (kB) to $DINSYNC_BENCH_HWM at exit.
WRAPPER = """\
import atexit, os, runpy, sys

def _hwm():
    try:
        with open("/proc/self/status") as f:
            kb = next(line.split()[1] for line in f if line.startswith("VmHWM"))
    except (OSError, StopIteration):
        return
    with open(os.environ["DINSYNC_BENCH_HWM"], "w") as out:
        out.write(kb)

atexit.register(_hwm)
sys.argv = ["dinsync"] + sys.argv[1:]
runpy.run_module("dinsync.cli", run_name="__main__", alter_sys=True)
"""


def run_cli(args: list[str], env: dict[str, str]) -> tuple[int, str, str, float, float]:
    """(exit code, stdout, stderr, wall seconds, peak RSS in MB of the dinsync process)."""
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        hwm = os.path.join(tmp, "hwm")
        start = time.perf_counter()
        # cwd: a neutral directory, so that `-c` does not put a checkout's dinsync/ (run from the
        # repository root) in front of the installed package.
        proc = subprocess.Popen([sys.executable, "-c", WRAPPER, *args], env=dict(env, DINSYNC_BENCH_HWM=hwm),
                                stdout=out, stderr=err, cwd=tmp)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        try:
            with open(hwm) as f:
                peak = int(f.read()) / 1024
        except (OSError, ValueError):  # no /proc (macOS): the kernel's figure, see above
            peak = usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
        return os.waitstatus_to_exitcode(status), out.read().decode(), err.read().decode(), wall, peak
