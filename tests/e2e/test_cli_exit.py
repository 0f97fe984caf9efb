"""The console script leaves through `dinsync.process.exit_now` (no interpreter teardown): what a
normal exit guarantees must still hold: the exit code, flushed output, atexit hooks, and
non-daemon threads finishing."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dinsync import __version__

DRIVER = """
import atexit, sys, threading, time
from pathlib import Path
marks = Path(sys.argv[1])
atexit.register(lambda: marks.write_text(marks.read_text() + "atexit\\n"))
def late():
    time.sleep(0.3)
    marks.write_text(marks.read_text() + "thread\\n")
threading.Thread(target=late).start()  # non-daemon: a normal exit waits for it
sys.stdout.write("x" * 100000)  # buffered (a pipe): lost unless flushed
sys.argv = ["dinsync", *sys.argv[2:]]
from dinsync.cli import main
main()
"""


def _run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    marks = tmp_path / "marks"
    marks.write_text("")
    done = subprocess.run([sys.executable, "-c", DRIVER, str(marks), *args], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    return done, marks.read_text().split()


def test_exit_keeps_code_output_hooks_and_threads(tmp_path):
    done, marks = _run(tmp_path, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "x" * 100000 + f"dinsync {__version__}\n"
    assert marks == ["thread", "atexit"]  # threads are waited for first, as at a normal exit


def test_exit_code_of_a_failing_command_is_kept(tmp_path):
    done, marks = _run(tmp_path, "--project-dir", str(tmp_path / "missing"), "--json", "sync")
    assert done.returncode == 3, (done.stdout[-500:], done.stderr)  # configuration error
    assert '"exit_code": 3' in done.stdout
    assert marks == ["thread", "atexit"]


def test_usage_error_exits_2(tmp_path):
    done, _ = _run(tmp_path, "sync", "--no-such-option")
    assert done.returncode == 2
    assert "No such option" in done.stderr
