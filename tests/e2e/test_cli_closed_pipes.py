"""`dinsync sync | head -1`, `dinsync sync 2>&1 | head -2`, a log shipper that went away: the output
is cut, the syncs are not. What cannot be written is dropped (stderr says so once when it can),
every selected sync runs and is recorded as it went, and the exit code is the runs' own."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import TEST_KEY


@pytest.mark.parametrize("closed", ["stdout", "stdout-and-stderr", "stdout-json"])
def test_a_closed_output_pipe_neither_fails_a_run_nor_skips_the_next_sync(project, closed):
    """The reader gone before the first line: rich turned the write's BrokenPipeError into
    SystemExit(1), raised inside the run writing a progress line (`2>&1 | head`: the run was
    recorded `failed`, 'interrupted (SystemExit)', its rows sent and acknowledged) or between two
    syncs by the first one's summary line (`| head -1`: the second sync never ran), exit 1 with
    no word."""
    users = project.root / "syncs" / "iterable_users.yml"
    (project.root / "syncs" / "more_users.yml").write_text(users.read_text())
    env = dict(os.environ, ITERABLE_TEST_KEY=TEST_KEY)
    args = [sys.executable, "-m", "dinsync.cli", "--project-dir", str(project.root), "sync"]
    args += ["--json"] if closed == "stdout-json" else []
    both = closed == "stdout-and-stderr"
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT if both else subprocess.PIPE)
    proc.stdout.close()  # the reader goes away before the first line
    err = b"" if both else proc.stderr.read()
    proc.wait(120)
    runs = project.sql("select sync, status, error from dinsync.runs order by sync")
    assert [(sync, status) for sync, status, _ in runs] == [("iterable_users", "success"),
                                                           ("more_users", "success")], runs
    assert proc.returncode == 0, err
    assert b"Traceback" not in err and b"unexpected" not in err, err
    if not both:
        assert err.count(b"stdout is a closed pipe") == 1, err
