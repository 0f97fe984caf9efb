"""Crash safety on Attentive: `dinsync sync` killed with SIGKILL while it looks up and writes, then run again.

After the kill, every key in the snapshot is a subscriber holding exactly the model's values (a row is
committed only after its v1 write answered and its bulk job's results said so). After the re-run,
every subscriber holds the model's values, the snapshot holds every row, and nobody was created.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.e2e.attentive_project import ATTENTIVE_KEY, make_attentive  # noqa: F401 (fixture)
from tests.e2e.crash_support import kill_when

ROWS = 1200


def expected(project) -> dict[str, tuple]:
    rows = project.sql("select email, first_name, city, tier from main.customers")
    return {e: ({"firstName": f, "location": {"city": c}}, {"Tier": t}) for e, f, c, t in rows}


def held(project) -> dict[str, tuple]:
    def read():
        return {s["email"]: (s["attributes"], s["custom"]) for s in project.sandbox.subscribers()}
    return project.thread.call(read)


def sync_process(project) -> subprocess.Popen:
    env = dict(os.environ, ATTENTIVE_TEST_KEY=ATTENTIVE_KEY, DINSYNC_CHECKPOINT_ROWS="50",
               DINSYNC_CHECKPOINT_SECONDS="0.1", DINSYNC_BATCH_ROWS="100")
    return subprocess.Popen([sys.executable, "-m", "dinsync.cli", "--project-dir", str(project.root), "--json",
                             "sync"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
@pytest.mark.parametrize("kill_after_requests", [300, 1500, 2200])
def test_sigkill_mid_sync_then_rerun_converges(make_attentive, kill_after_requests):
    p = make_attentive(seeded=ROWS, limits=False, bulk_job_seconds=0.05)
    p.seed(ROWS)
    p.write(extra="    limits_enabled: false\n    concurrency: 2\n    bulk_max_users: 40\n")
    p.thread.set_faults(latency=0.002, jitter=0.004, reset_after_apply_rate=0.02, seed=kill_after_requests)

    proc = sync_process(p)
    kill_when(proc, lambda: p.stats()["requests"] >= kill_after_requests, within=90)

    want = expected(p)
    have = held(p)
    committed = p.snapshot_keys()
    assert len(committed) < ROWS  # the kill came before the end
    assert all(have[k] == want[k] for k in committed), "a committed row does not hold the model's values"

    p.thread.set_faults(latency=0.0, jitter=0.0, reset_after_apply_rate=0.0)
    rerun = sync_process(p)
    out, err = rerun.communicate(timeout=180)
    assert rerun.returncode == 0, (out, err)
    [run] = json.loads(out)["runs"]
    assert run["status"] == "success" and run["failed"] == 0 and run["not_found"] == 0
    assert run["acknowledged"] == ROWS - len(committed)
    assert held(p) == want
    assert p.snapshot_keys() == set(want)
    assert p.stats()["created_users"] == 0
    statuses = [r[0] for r in p.sql("select status from dinsync.runs order by started_at")]
    assert statuses == ["abandoned", "success"]
