"""Crash safety on Attio: `dinsync sync` killed with SIGKILL while it writes People, then run again.

Attio writes one record a request (the assert endpoint, idempotent by the matching attribute), and
the sandbox resets some connections after it applied the write. After the kill, every key in the
snapshot is a person holding exactly the model's values (a row is committed only after its write
answered). After the re-run, every person holds the model's values, the snapshot holds every row,
and no person exists twice.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from dinsync.sandbox import AttioSandbox, SandboxThread

from .attio_project import CUSTOM_ATTRIBUTES, TOKEN_ENV, AttioProject
from .crash_support import kill_when

TOKEN = "attio-crash-token-0b1c2d3e"
ROWS = 400


@pytest.fixture
def attio_crash(tmp_path):
    sandbox = AttioSandbox([TOKEN], custom_attributes=CUSTOM_ATTRIBUTES, limits=False)
    thread = SandboxThread(sandbox)
    thread.start()
    p = AttioProject(tmp_path / "proj", thread.url, CliRunner())
    p.root.mkdir()
    p.sandbox, p.thread = sandbox, thread
    p.write_config()
    p.write_sync()
    p.seed_people(ROWS)
    p.seed_companies(3)  # the project's other model (every model is checked in the warehouse)
    yield p
    thread.stop()


def expected(p) -> dict[str, dict]:
    rows = p.sql("select email, first_name, plan, ltv from main.people")
    return {e: {"job_title": f, "plan": plan, "lifetime_value": ltv} for e, f, plan, ltv in rows}


def held(p) -> dict[str, dict]:
    """email -> the mapped values of every person the sandbox holds (one entry per record)."""
    def read():
        out = []
        for record in p.sandbox.records("people"):
            values = p.sandbox.plain(record)
            out.append((values["email_addresses"],
                        {k: values.get(k) for k in ("job_title", "plan", "lifetime_value")}))
        return out
    people = p.thread.call(read)
    emails = [e for emails, _ in people for e in emails]
    assert len(emails) == len(set(emails)) == len(people), "a person exists twice"
    return {emails[0]: values for emails, values in people}


def sync_process(p) -> subprocess.Popen:
    env = dict(os.environ, **{TOKEN_ENV: TOKEN}, DINSYNC_CHECKPOINT_ROWS="25",
               DINSYNC_CHECKPOINT_SECONDS="0.1", DINSYNC_BATCH_ROWS="50")
    return subprocess.Popen([sys.executable, "-m", "dinsync.cli", "--project-dir", str(p.root), "--json",
                             "sync"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
@pytest.mark.parametrize("kill_after_requests", [60, 200, 330])
def test_sigkill_mid_sync_then_rerun_converges(attio_crash, kill_after_requests):
    p = attio_crash
    p.thread.set_faults(latency=0.002, jitter=0.004, reset_after_apply_rate=0.05, seed=kill_after_requests)

    proc = sync_process(p)
    kill_when(proc, lambda: p.thread.stats()["requests"] >= kill_after_requests, within=90)

    want = expected(p)
    have = held(p)
    committed = p.snapshot_keys()
    assert len(committed) < ROWS  # the kill came before the end
    assert all(have.get(k) == want[k] for k in committed), "a committed row does not hold the model's values"

    p.thread.set_faults(latency=0.0, jitter=0.0, reset_after_apply_rate=0.0)
    rerun = sync_process(p)
    out, err = rerun.communicate(timeout=180)
    assert rerun.returncode == 0, (out, err)
    [run] = json.loads(out)["runs"]
    assert run["status"] == "success" and run["failed"] == 0 and run["rejected"] == 0
    assert run["acknowledged"] == ROWS - len(committed)
    assert held(p) == want
    assert p.snapshot_keys() == set(want)
    statuses = [r[0] for r in p.sql("select status from dinsync.runs order by started_at")]
    assert statuses == ["abandoned", "success"]
