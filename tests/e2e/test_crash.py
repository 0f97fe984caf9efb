"""Crash safety: `dinsync sync` killed with SIGKILL while sending, then run again.

After the kill, every key in the snapshot must be a user the sandbox acknowledged (nothing is
committed before the destination acknowledged it). After the re-run, the sandbox must equal the
segment and the snapshot must equal what the sandbox holds.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import TEST_KEY
from tests.e2e.crash_support import kill_when

ROWS = 6000


def segment(project) -> dict[str, dict]:
    rows = project.sql("select email, first_name, plan, ltv from main.customers")
    return {e: {"firstName": f, "plan": p, "ltv": l} for e, f, p, l in rows}


def sandbox_users(project) -> dict[str, dict]:
    return project.thread.call(lambda: {u["email"]: dict(u["dataFields"]) for u in project.sandbox.users})


def run_sync_process(project, *args: str, ignore_sigint: bool = False) -> subprocess.Popen:
    """`dinsync sync` in a process of its own; `ignore_sigint`: started as a script's `cmd &` is."""
    env = dict(os.environ, ITERABLE_TEST_KEY=TEST_KEY, DINSYNC_CHECKPOINT_ROWS="300",
               DINSYNC_CHECKPOINT_SECONDS="0.2")
    ignoring = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None
    return subprocess.Popen([sys.executable, "-m", "dinsync.cli", "--project-dir", str(project.root), "--json",
                             "sync", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=ignoring)


@pytest.mark.slow
@pytest.mark.parametrize("kill_after_requests", [3, 17, 41])
def test_sigkill_mid_send_then_rerun_converges(project, kill_after_requests):
    project.write(destination_extra="    bulk_max_users: 50\n    rate_limits: {bulk_update: null}\n")
    project.seed(ROWS)
    project.thread.call(lambda: project.sandbox.options.__setattr__("limits", False))
    project.thread.set_faults(latency=0.02, jitter=0.02, reset_after_apply_rate=0.05, seed=kill_after_requests)

    proc = run_sync_process(project)
    kill_when(proc, lambda: project.thread.stats()["requests"] >= kill_after_requests)

    # Nothing in the snapshot that the sandbox does not hold with exactly those values.
    delivered = sandbox_users(project)
    committed = project.snapshot_keys()
    assert committed <= set(delivered)
    expected = segment(project)
    assert all(delivered[k] == expected[k] for k in committed)
    assert len(committed) < ROWS  # the kill came before the end
    # the run log has the killed run's counts as of its last checkpoint (taken before that
    # checkpoint's commit, so they hold every committed row); none before its first checkpoint
    [(sent, acknowledged, requests)] = project.sql("select sent, acknowledged, requests from dinsync.runs")
    if committed or sent is not None:
        assert sent >= acknowledged >= len(committed) and requests >= 1

    project.thread.set_faults(latency=0.0, jitter=0.0, reset_after_apply_rate=0.0)
    rerun = run_sync_process(project)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, (out, err)
    [run] = json.loads(out)["runs"]
    assert run["status"] == "success" and run["failed"] == 0

    assert sandbox_users(project) == expected
    assert project.snapshot_keys() == set(expected)
    statuses = [r[0] for r in project.sql("select status from dinsync.runs order by started_at")]
    assert statuses == ["abandoned", "success"]  # the killed run is marked when its lock is taken over
