"""The `dinsync` process keeps NumPy's OpenBLAS (loaded by pyarrow) from starting threads of its
own: on a machine with more than one core they spin waiting for linear algebra that dinsync never
does (see `dinsync.process.use_one_blas_thread`), unless the user set OPENBLAS_NUM_THREADS."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dinsync.process import BLAS_THREADS, POLARS_MALLOC_CONF

# The process's unnamed native threads (named like the process, as OpenBLAS's are; Arrow's allocator
# names its own) before and after pyarrow (hence NumPy and its OpenBLAS) is loaded, with
# `use_one_blas_thread` called first or not, and the variable the process ended with.
DRIVER = """
import json, os, sys
def threads():
    name = lambda task: open(f"/proc/self/task/{task}/comm").read()
    return sum(name(task) == name(os.getpid()) for task in os.listdir("/proc/self/task"))
if sys.argv[2] == "main":
    from dinsync.process import use_one_blas_thread
    use_one_blas_thread()
numpy_before = "numpy" in sys.modules
before = threads()
import pyarrow, numpy
print(json.dumps({"before": before, "after": threads(), "numpy_before": numpy_before,
                  "value": os.environ.get(sys.argv[1])}))
"""


def _run(tmp_path: Path, how: str, **env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if k != BLAS_THREADS}
    done = subprocess.run([sys.executable, "-c", DRIVER, BLAS_THREADS, how], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path, env={**environ, **env})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_command_starts_no_blas_thread(tmp_path):
    seen = _run(tmp_path, "main")
    assert seen["value"] == "1"
    assert seen["numpy_before"] is False  # set before OpenBLAS read it
    assert seen["after"] == seen["before"]  # pyarrow and NumPy loaded, no thread started


def test_without_it_openblas_starts_threads_where_there_are_cores_to_spare(tmp_path):
    """What the setting avoids: OpenBLAS starts threads for the further cores (none on one core)."""
    seen = _run(tmp_path, "plain")
    assert seen["value"] is None
    if len(os.sched_getaffinity(0)) > 1:
        assert seen["after"] > seen["before"]
    else:
        assert seen["after"] == seen["before"]


def test_a_thread_count_chosen_by_the_user_is_kept(tmp_path):
    assert _run(tmp_path, "main", **{BLAS_THREADS: "2"})["value"] == "2"


def test_the_command_calls_it_before_running(tmp_path, monkeypatch):
    """`main` sets the variable before any command runs (and so before any import of pyarrow)."""
    import dinsync.cli as cli

    for name in (BLAS_THREADS, POLARS_MALLOC_CONF, "ARROW_DEFAULT_MEMORY_POOL"):
        monkeypatch.setenv(name, "")  # recorded, so that what `main` sets is undone after the test
        monkeypatch.delenv(name)
    seen = {}
    monkeypatch.setattr(cli, "_run_app", lambda: seen.setdefault("value", os.environ.get(BLAS_THREADS)))
    monkeypatch.setattr(cli, "exit_now", lambda code: seen.setdefault("code", code))
    cli.main()
    assert seen == {"value": "1", "code": 0}
