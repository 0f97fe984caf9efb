"""Crash safety on Splio: `dinsync sync` killed with SIGKILL mid-run (files in flight over SFTP, or
bulk requests over the API), then run again: nothing committed that Splio does not hold, nothing
lost, no partial file left behind."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import asyncssh
import pytest

from tests.e2e.crash_support import kill_when
from tests.e2e.splio_project import SplioProject, expected_contact, make_sandbox, subset

ROOT = Path(__file__).resolve().parents[2]
ROWS = 3000


def run_sync(p: SplioProject) -> subprocess.Popen:
    env = dict(os.environ, **p.env, DINSYNC_CHECKPOINT_ROWS="100", DINSYNC_CHECKPOINT_SECONDS="0.2",
               DINSYNC_OUTCOME_TIMEOUT_SECONDS="60", PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "dinsync.cli", "--project-dir", str(p.root), "--json", "sync"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)


def check_then_rerun(p: SplioProject, api: bool = False) -> None:
    expected = {f"user{i}@example.com": expected_contact(i, api) for i in range(1, ROWS + 1)}
    held = {email: subset(c) for email, c in p.contacts().items()}
    committed = p.snapshot()
    assert committed <= set(held) and len(committed) < ROWS
    assert all(held[k] == expected[k] for k in committed)  # committed only what Splio holds, as sent

    rerun = run_sync(p)
    out, err = rerun.communicate(timeout=180)
    assert rerun.returncode == 0, (out, err)
    [run] = json.loads(out)["runs"]
    assert run["status"] == "success" and run["failed"] == 0
    assert {email: subset(c) for email, c in p.contacts().items()} == expected
    assert p.snapshot() == set(expected)
    statuses = [r[0] for r in p.sql("select status from dinsync.runs order by started_at")]
    assert statuses == ["abandoned", "success"]


@pytest.fixture
def client_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


@pytest.mark.slow
@pytest.mark.parametrize("kill_after_files", [2, 9])
def test_sigkill_with_import_files_in_flight_then_rerun_converges(tmp_path, client_key, kill_after_files):
    thread, sandbox = make_sandbox(client_key, insert_allowed=True)
    try:
        p = SplioProject(tmp_path / "proj", thread, sandbox)
        p.configure(transport="sftp", mode="insert", max_rows=100)
        p.seed(ROWS)
        thread.call(setattr, sandbox.sftp_faults, "importer_delay", 0.03)
        proc = run_sync(p)
        kill_when(proc, lambda: len(p.stats()["files_processed"]) >= kill_after_files)
        check_then_rerun(p)
        assert not [n for n in p.drop_folder() if n.endswith(".part")], "an unfinished upload was left behind"
    finally:
        thread.stop()


@pytest.mark.slow
@pytest.mark.parametrize("kill_after_requests", [5, 23])
def test_sigkill_mid_api_send_then_rerun_converges(tmp_path, client_key, kill_after_requests):
    thread, sandbox = make_sandbox(client_key, limits=False)
    try:
        p = SplioProject(tmp_path / "proj", thread, sandbox)
        p.configure(transport="api", mode="insert",
                    extra="    bulk_max_contacts: 50\n    rate_limits: {contacts: null}\n")
        p.seed(ROWS)
        thread.set_faults(latency=0.02, jitter=0.02)
        proc = run_sync(p)
        kill_when(proc, lambda: p.stats()["requests_by_endpoint"].get("contacts_bulk", 0) >= kill_after_requests)
        thread.set_faults(latency=0.0, jitter=0.0)
        check_then_rerun(p, api=True)
    finally:
        thread.stop()


@pytest.fixture
def silent_server():
    """A port that accepts connections and never says a word (a firewall's tarpit, a hung server)."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()
    for conn in held:
        conn.close()


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["sftp", "api"])
def test_sigterm_while_the_start_check_waits_on_a_silent_server_cancels_within_the_grace(
        tmp_path, client_key, silent_server, transport):
    # The check before sending (SFTP: log in and find the folders; API: /authenticate and the
    # fields list) ignored a stop: SFTP went through its 3 connection attempts (30 s each by
    # default) and the run was recorded `failed` with the connection error; the API's request ran
    # to its timeout (30 s), past the 20 s grace a stop gives requests in flight.
    import signal
    import time

    thread, sandbox = make_sandbox(client_key, insert_allowed=True)
    try:
        p = SplioProject(tmp_path / "proj", thread, sandbox)
        p.configure(transport=transport, mode="insert", sftp_extra="      connect_timeout_seconds: 20\n")
        p.seed(5)
        config = p.root / "dinsync.yml"
        silent = f"port: {silent_server}" if transport == "sftp" else f"base_url: http://127.0.0.1:{silent_server}"
        live = f"port: {sandbox.sftp_port}" if transport == "sftp" else f"base_url: {thread.url}"
        config.write_text(config.read_text().replace(live, silent))
        env = dict(os.environ, **p.env, DINSYNC_GRACE_SECONDS="1", PYTHONPATH=str(ROOT))
        proc = subprocess.Popen([sys.executable, "-m", "dinsync.cli", "--project-dir", str(p.root), "--json", "sync"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
        time.sleep(3)  # in the check: the process is up and waiting for the silent server
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        out, err = proc.communicate(timeout=120)
        took = time.monotonic() - started
        [run] = json.loads(out)["runs"]
        assert (proc.returncode, run["status"]) == (143, "cancelled"), (run["error"], err)
        assert took < 8, took
        assert p.snapshot() == set()
    finally:
        thread.stop()
