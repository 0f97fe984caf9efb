"""What orchestrators do to a run: SIGTERM / SIGINT mid-sync, and runs that stay silent longer
than the lock's expiry."""
from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from typing import Callable

import pytest

from dinsync.operations import connect_warehouse
from dinsync.config import load_project
from dinsync.engine import SyncRun
from tests.e2e.attentive_project import make_attentive  # noqa: F401 (fixture)
from tests.e2e.test_crash import run_sync_process, sandbox_users, segment
from tests.e2e.test_toy_destination import OutboxProject
from tests.toy_destination import OutboxProcessor

ROWS = 6000


def _wait_for_requests(project, proc: subprocess.Popen, n: float) -> None:
    """Until the sandbox has seen `n` requests in all (the sync still running; at most 60 s)."""
    deadline = time.monotonic() + 60
    while project.thread.stats()["requests"] < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.005)


def _start_slow_sync(project, latency: float = 0.05) -> subprocess.Popen:
    project.write(destination_extra="    bulk_max_users: 50\n    rate_limits: {bulk_update: null}\n")
    project.seed(ROWS)
    project.thread.call(lambda: project.sandbox.options.__setattr__("limits", False))
    project.thread.set_faults(latency=latency, jitter=0.02)
    proc = run_sync_process(project)
    _wait_for_requests(project, proc, 10 * min(1.0, 0.05 / latency))
    return proc


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_gracefully_commits_acknowledged_and_rerun_completes(project, signum):
    proc = _start_slow_sync(project)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, (out, err)
    assert out.strip(), err
    [run] = json.loads(out)["runs"]
    assert run["status"] == "cancelled" and signal.Signals(signum).name in run["error"]
    assert 0 < run["acknowledged"] < ROWS

    delivered, committed = sandbox_users(project), project.snapshot_keys()
    expected = segment(project)
    assert committed <= set(delivered)
    assert all(delivered[k] == expected[k] for k in committed)
    # what was acknowledged before the stop was committed, not thrown away
    assert len(committed) == run["acknowledged"]
    statuses = [r[0] for r in project.sql("select status from dinsync.runs order by started_at")]
    assert statuses == ["cancelled"]
    assert project.sql("select count(*) from dinsync.locks")[0][0] == 0  # released on the way out

    project.thread.set_faults(latency=0.0, jitter=0.0)
    rerun = run_sync_process(project)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, (out, err)
    [again] = json.loads(out)["runs"]
    assert again["added"] == ROWS - len(committed)
    assert sandbox_users(project) == expected and project.snapshot_keys() == set(expected)


def test_requests_waiting_for_their_rate_slot_are_not_sent_after_a_signal(project):
    """At a platform's pace, the requests taken off the queue wait for their rate slots: after
    SIGTERM they went out one by one for seconds (48 of a run's 64 bulk requests, ~10 s, seen by
    an auditor), though "no new batch is sent". Now only the requests in flight finish."""
    project.write(destination_extra="    bulk_max_users: 50\n    rate_limits: {bulk_update: 2}\n")
    project.seed(600)
    proc = run_sync_process(project)
    _wait_for_requests(project, proc, 3)
    proc.send_signal(signal.SIGTERM)
    at_signal = project.thread.stats()["requests"]
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, (out, err)
    [run] = json.loads(out)["runs"]
    assert run["status"] == "cancelled"
    assert project.thread.stats()["requests"] - at_signal <= 1  # (one leaving as the signal came)
    assert run["sent"] == run["acknowledged"] == len(project.snapshot_keys())
    rerun = run_sync_process(project)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, (out, err)
    assert sandbox_users(project) == segment(project) and len(project.snapshot_keys()) == 600


def test_a_signal_while_the_request_queue_is_full_stops_the_run(project):
    """Under a rate limit the reader waits on a full request queue while the senders wait for
    their rate slots. A signal made each sender give up its request and leave, none taking from
    the queue any more: the reader waited forever (a 429 storm's 100 s pause, then SIGTERM: still
    running 10 minutes later). The senders now drain what is queued, unsent."""
    project.write(destination_extra="    bulk_max_users: 5\n    rate_limits: {bulk_update: 2}\n")
    project.seed(600)  # 120 requests; 4 senders and a queue of 16
    proc = run_sync_process(project)
    _wait_for_requests(project, proc, 3)
    project.thread.set_faults(throttle_rate=1.0, throttle_retry_after=3.0)  # every sender waits for the pause
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError("the run did not stop within 60 s of SIGTERM")
    assert proc.returncode == 128 + signal.SIGTERM, (out, err)
    [run] = json.loads(out)["runs"]
    assert run["status"] == "cancelled"
    assert run["sent"] == run["acknowledged"] == len(project.snapshot_keys())


def test_a_signal_while_requests_wait_out_a_429s_pause_stops_the_run_at_once(project, monkeypatch):
    """A 429 asking for a minute's pause: the request waiting out its retry, and those waiting for
    their rate slot behind the pause, are not sent after SIGTERM, but the run waited for them the
    whole grace period (20 s by default) before it stopped. They now give up at the signal. The
    grace period is 10 s here (DINSYNC_GRACE_SECONDS), still past the stop's bound (8 s), and the
    pause (15 s) outlasts it, as a minute's would; no longer, as the rerun waits out what is left
    of it (the pace is shared)."""
    monkeypatch.setenv("DINSYNC_GRACE_SECONDS", "10")
    project.write(destination_extra="    bulk_max_users: 50\n")
    project.seed(200)
    project.thread.set_faults(throttle_rate=1.0, throttle_retry_after=15.0)
    proc = run_sync_process(project)
    _wait_for_requests(project, proc, 1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, (out, err)
    assert time.monotonic() - signalled < 8
    [run] = json.loads(out)["runs"]
    assert (run["status"], run["acknowledged"]) == ("cancelled", 0) and project.snapshot_keys() == set()
    project.thread.set_faults(throttle_rate=0.0)
    rerun = run_sync_process(project)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, (out, err)
    assert sandbox_users(project) == segment(project)


def _synced_in_requests_of_50(project) -> None:
    project.write(destination_extra="    bulk_max_users: 50\n    rate_limits: {bulk_update: null}\n")
    project.seed(ROWS)
    project.thread.call(lambda: project.sandbox.options.__setattr__("limits", False))
    assert project.sync()["runs"][0]["acknowledged"] == ROWS


def _stopped_after_ten_requests(project, *args: str) -> dict:
    """`dinsync sync ARGS` (slowed down) sent SIGTERM once it made 10 requests: its run, cancelled,
    a full refresh (both tests stop one)."""
    project.thread.set_faults(latency=0.05, jitter=0.02)
    before = project.thread.stats()["requests"]
    proc = run_sync_process(project, *args)
    _wait_for_requests(project, proc, before + 10)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    [stopped] = json.loads(out)["runs"]
    assert (stopped["status"], stopped["full_refresh"]) == ("cancelled", True), (out, err)
    return stopped


@pytest.mark.slow
def test_a_sync_moved_and_stopped_midway_is_resumed_by_the_next_run_not_restarted(project):
    """A sync pointed at another destination sends it every row. Stopped midway, the next run sends
    the rows the new destination did not acknowledge, as added; before, the stopped run left the
    old destination's record, and every run until one completed sent every row again."""
    _synced_in_requests_of_50(project)
    text = (project.root / "dinsync.yml").read_text()
    (project.root / "dinsync.yml").write_text(text + text.split("destinations:\n")[1].replace("  iterable:",
                                                                                                "  iterable_eu:"))
    sync_file = project.root / "syncs" / "iterable_users.yml"
    sync_file.write_text(sync_file.read_text().replace("destination: iterable", "destination: iterable_eu"))
    stopped = _stopped_after_ten_requests(project)
    assert 0 < stopped["acknowledged"] < ROWS
    assert project.snapshot_keys() <= set(segment(project))
    assert len(project.snapshot_keys()) == stopped["acknowledged"]  # the old destination's rows: forgotten

    project.thread.set_faults(latency=0.0, jitter=0.0)
    run = project.sync()["runs"][0]
    assert (run["status"], run["full_refresh"]) == ("success", False), run
    assert (run["added"], run["changed"], run["acknowledged"]) == (ROWS - stopped["acknowledged"], 0,
                                                                   ROWS - stopped["acknowledged"]), run
    assert project.snapshot_keys() == set(segment(project))
    assert project.sync()["runs"][0]["sent"] == 0


@pytest.mark.slow
def test_a_full_refresh_stopped_midway_is_finished_by_the_next_run(project):
    """`--full-refresh` forgets what was delivered for every row before sending (unsettle): stopped
    midway, the next plain run sends, with every field, the rows the refresh did not get
    acknowledged, and only those."""
    _synced_in_requests_of_50(project)
    stopped = _stopped_after_ten_requests(project, "--full-refresh")
    assert 0 < stopped["acknowledged"] < ROWS

    project.thread.set_faults(latency=0.0, jitter=0.0)
    project.requests.clear()
    run = project.sync()["runs"][0]
    assert (run["status"], run["full_refresh"]) == ("success", False), run
    assert run["acknowledged"] == ROWS - stopped["acknowledged"], run
    sent = [u for body in project.requests.bodies("/api/users/bulkUpdate") for u in json.loads(body)["users"]]
    assert len(sent) == ROWS - stopped["acknowledged"]
    assert all(set(u["dataFields"]) == {"firstName", "plan", "ltv"} for u in sent)
    assert project.sync()["runs"][0]["sent"] == 0


def test_a_signal_before_the_first_run_exits_with_the_signal_not_0(project, monkeypatch):
    """SIGTERM while `dinsync sync` loads its project: no run starts, and the command says it was
    stopped (it exited 0 with no run, as if every sync had run)."""
    import os

    from dinsync.cli import sync_commands  # where `sync` looks load_chosen up

    load_chosen = sync_commands.load_chosen

    def load_then_signal(*args, **kwargs):
        loaded = load_chosen(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # the handler of `sync` is installed: it only sets the token
        return loaded

    monkeypatch.setattr(sync_commands, "load_chosen", load_then_signal)
    result = project.cli("sync")
    assert result.exit_code == 128 + signal.SIGTERM, result.stdout
    data = json.loads(result.stdout)
    assert data["exit_code"] == 128 + signal.SIGTERM
    run, = data["runs"]  # listed, never recorded
    assert (run["sync"], run["status"], run["run_id"], run["sent"]) == ("iterable_users", "cancelled", None, 0)
    assert run["error"] == "not started: stopped by SIGTERM before this sync's turn"
    assert project.sql("select count(*) from dinsync.runs") == [(0,)]
    assert project.thread.stats()["requests"] == 0


def test_syncs_a_signal_kept_from_starting_are_listed_as_not_started(project, monkeypatch):
    """SIGTERM during the first of two syncs: the second never starts, and `sync --json` lists it
    (`cancelled`, no run id) instead of leaving it out, so an orchestrator reading the document
    sees every selected sync's fate; the next command runs it."""
    import os

    import dinsync.operations as operations

    (project.root / "syncs" / "iterable_users_2.yml").write_text(
        (project.root / "syncs" / "iterable_users.yml").read_text())
    operated_run = operations.operated_run

    def run_then_signal(*args, **kwargs):
        outcome = operated_run(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # after the first run: only the token is set
        return outcome

    monkeypatch.setattr(operations, "operated_run", run_then_signal)
    result = project.cli("sync")
    data = json.loads(result.stdout)
    assert result.exit_code == data["exit_code"] == 128 + signal.SIGTERM
    first, second = data["runs"]
    assert (first["sync"], first["status"], first["sent"]) == ("iterable_users", "success", 20)
    assert (second["sync"], second["status"], second["run_id"], second["sent"]) == (
        "iterable_users_2", "cancelled", None, 0)
    assert second["error"] == "not started: stopped by SIGTERM before this sync's turn"
    assert project.sql("select sync from dinsync.runs") == [("iterable_users",)]
    monkeypatch.setattr(operations, "operated_run", operated_run)
    text = project.cli("sync", json_output=False)
    assert text.exit_code == 0 and "iterable_users_2 success" in text.stdout


@pytest.mark.slow
def test_second_signal_exits_at_once_and_stays_safe(project):
    proc = _start_slow_sync(project, latency=3.0)  # requests in flight keep a graceful stop waiting
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)
    assert proc.returncode == 128 + signal.SIGTERM
    assert time.monotonic() - started < 1.5
    delivered, committed = sandbox_users(project), project.snapshot_keys()
    assert committed <= set(delivered)
    project.thread.set_faults(latency=0.0, jitter=0.0)
    rerun = run_sync_process(project)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, (out, err)
    assert sandbox_users(project) == segment(project)


@pytest.mark.slow
def test_run_silent_past_the_lock_expiry_keeps_its_lock(tmp_path, monkeypatch):
    """A run waiting on a slow platform (no acknowledgement, so no checkpoint) for longer than
    the lock's expiry still holds its lock: its heartbeat refreshes it. (Both runs share one
    process here, because DuckDB itself lets one process at a time open the file.)"""
    p = OutboxProject(tmp_path / "proj", monkeypatch)
    p.seed(50)
    monkeypatch.setenv("DINSYNC_LOCK_TTL_SECONDS", "1")
    monkeypatch.setenv("DINSYNC_HEARTBEAT_SECONDS", "0.2")
    monkeypatch.setenv("DINSYNC_OUTCOME_TIMEOUT_SECONDS", "30")
    project = load_project(p.root)
    result: dict = {}

    def first_run() -> None:
        wh = connect_warehouse(project.warehouse, project.root)
        try:
            result["summary"] = SyncRun(project, "people", wh).run()
        except Exception as exc:  # reported by the assertions below
            result["error"] = exc
        finally:
            wh.close()

    with OutboxProcessor(p.outbox) as platform:
        platform.paused.set()
        thread = threading.Thread(target=first_run)
        thread.start()
        deadline = time.monotonic() + 30
        while not list(p.outbox.glob("*.jsonl")):  # the first run handed its file over and waits
            assert thread.is_alive() and time.monotonic() < deadline, result
            time.sleep(0.02)
        time.sleep(2.5)  # well past the 1 s expiry
        second = p.sync()
        assert second["exit_code"] == 5, second
        assert "already running" in second["runs"][0]["error"]
        platform.paused.clear()
        thread.join(60)
    assert "error" not in result, result
    summary = result["summary"]
    assert summary.status == "success" and summary.acknowledged == 50
    assert len(p.snapshot()) == 50


def test_requests_in_flight_past_the_grace_period_are_given_up(project, monkeypatch):
    """With every sender busy on a slow answer, the reader waited for room in the full request
    queue (and the end of sending for room for its end markers) without looking at the stop: the
    run waited for the answers however long they took (23 s with DINSYNC_GRACE_SECONDS=3, seen by
    an auditor), past an orchestrator's grace period. Now requests in flight get the grace period,
    then are given up (not acknowledged: sent again by the next run)."""
    monkeypatch.setenv("DINSYNC_GRACE_SECONDS", "0.5")
    proc = _start_slow_sync(project, latency=30)
    time.sleep(0.5)  # (the queue fills behind the requests in flight)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, (out, err)
    [run] = json.loads(out)["runs"]
    assert run["status"] == "cancelled", run
    assert run["acknowledged"] == 0, run  # given up after the grace period, not waited for
    assert project.snapshot_keys() == set()
    assert project.sql("select count(*) from dinsync.locks")[0][0] == 0


def test_lookups_in_flight_do_not_hold_a_stop_past_the_grace_period(project, monkeypatch):
    """Update mode: the reader waited for its slice of lookups (the record exists?) whatever the
    stop, so a slow platform's lookups held the run until they were answered or timed out (22 s
    with DINSYNC_GRACE_SECONDS=2, seen by an auditor): past an orchestrator's grace period. After
    a stop nothing more is written, so their answers are not waited for."""
    project.write(destination_extra="    bulk_max_users: 50\n    timeout_seconds: 300\n"
                                    "    rate_limits: {bulk_update: null, get_user: null}\n")
    project.seed(400)
    assert project.sync()["exit_code"] == 0  # the records exist
    project.write(mode="update", destination_extra="    bulk_max_users: 50\n    timeout_seconds: 300\n"
                                                   "    rate_limits: {bulk_update: null, get_user: null}\n")
    project.sql("insert into main.customers select i, 'user' || i || '@example.com', 'u-' || i, 'Name ' || i, "
                "'free', 1.5 from range(401, 801) t(i)")  # rows the snapshot does not vouch for: looked up
    monkeypatch.setenv("DINSYNC_GRACE_SECONDS", "0.5")
    project.thread.set_faults(latency=300, jitter=0.0)
    proc = run_sync_process(project)
    _wait_for_requests(project, proc, project.thread.stats()["requests"] + 1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=100)  # (the lookups are answered after 300 s)
    assert proc.returncode == 143, (out, err)
    [run] = json.loads(out)["runs"]
    assert run["status"] == "cancelled" and run["acknowledged"] == 0, run
    assert project.sql("select count(*) from dinsync.locks")[0][0] == 0


def test_a_signal_while_the_start_check_is_retried_cancels_the_run(make_attentive):  # noqa: F811
    """Attentive answering 5xx to the check that starts a run's sending (`GET /v1/me`, retried with
    backoff) when SIGTERM comes: the check gives up at the signal (SendingStopped), and the run is
    `cancelled` with the stop's message, nothing sent. It was recorded `failed`, its error the
    bare 'SendingStopped: ' (an unexpected error), and the sync counted as failing."""
    from tests.e2e.test_crash_attentive import sync_process

    p = make_attentive(seeded=10)
    p.seed(10)
    p.write()
    assert p.run()["acknowledged"] == 10
    p.sql("update main.customers set city = 'Elsewhere'")
    p.thread.set_faults(error_rate=1.0, seed=3)
    before = p.stats()["requests"]
    run = sigterm_while_retried(sync_process(p), lambda: p.stats()["requests"] - before)
    assert (run["status"], run["sent"]) == ("cancelled", 0), run
    assert run["error"].startswith("stopped by SIGTERM"), run["error"]


def sigterm_while_retried(proc: subprocess.Popen, requests: Callable[[], int]) -> dict:
    """SIGTERM to a `dinsync --json sync` process once `requests()` says it asked twice (a check
    being retried); its run, after checking it exited 143."""
    deadline = time.monotonic() + 60
    while requests() < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, (out, err)
    [run] = json.loads(out)["runs"]
    return run


def test_a_signal_while_the_start_check_waits_on_a_slow_answer_cancels_within_the_grace(
        make_attentive, monkeypatch):  # noqa: F811
    """Attentive slow to answer the check that starts a run's sending (`GET /v1/me`, then the probe)
    when SIGTERM comes: the check was awaited without looking at the stop, so the run went on until
    its answer or the request's timeout (30 s by default), past the grace a stop gives requests in
    flight. It is given up once the grace is over; the run is `cancelled`, nothing sent."""
    from dinsync.sandbox.faults import delay
    from tests.e2e.test_crash_attentive import sync_process

    p = make_attentive(seeded=10)
    p.seed(10)
    p.thread.script("getMe", delay(25))
    monkeypatch.setenv("DINSYNC_GRACE_SECONDS", "1")
    proc = sync_process(p)
    deadline = time.monotonic() + 60
    while p.stats()["requests"] < 1:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    out, err = proc.communicate(timeout=60)
    took = time.monotonic() - started
    [run] = json.loads(out)["runs"]
    assert (proc.returncode, run["status"], run["sent"]) == (143, "cancelled", 0), (run, err)
    assert took < 8, took


HOLD_THE_FILE = """\
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "ro")
print("holding", flush=True)
sys.stdin.read()  # until the test closes our stdin
con.close()
"""


@pytest.mark.parametrize("mode", ["rw", "ro"])
def test_a_duckdb_file_another_process_holds_is_refused_naming_that_process(project, mode):
    """A dbt build (or a notebook, read-write or read-only) holding the DuckDB file: `sync` exits 5
    naming the file, as it did, but not the process holding it, which DuckDB names ("Conflicting
    lock is held in /usr/bin/python3 (PID 4242)"): the user had to find it with lsof."""
    import sys

    path = project.root / "warehouse.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_FILE, str(path), mode], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "holding\n"
        result = project.cli("sync")
    finally:
        holder.communicate(timeout=30)
    out = json.loads(result.stdout)
    assert result.exit_code == 5, result.output
    assert out["exit_code"] == 5 and "Traceback" not in result.output
    assert out["error"].startswith(f"the DuckDB file {path} is in use by another process")
    assert f"PID {holder.pid}" in out["error"], out["error"]
    assert project.requests.requests == []  # nothing sent
    assert project.sql("select count(*) from information_schema.schemata where schema_name = 'dinsync'") == [(0,)]


def test_a_sync_started_with_sigint_ignored_leaves_ctrl_c_alone(project):
    """A script's `dinsync sync &` starts it with SIGINT ignored, so that a Ctrl-C meant for the
    script leaves the command alone. dinsync put its own handler in place of that: a SIGINT in its
    first second was ignored, a later one cancelled the run. An inherited SIG_IGN is kept now
    (SIGTERM still stops the run gracefully, as the test above shows)."""
    project.write(destination_extra="    bulk_max_users: 50\n    rate_limits: {bulk_update: null}\n")
    project.seed(ROWS)
    project.thread.call(lambda: project.sandbox.options.__setattr__("limits", False))
    project.thread.set_faults(latency=0.02, jitter=0.01)
    proc = run_sync_process(project, ignore_sigint=True)
    _wait_for_requests(project, proc, 10)
    proc.send_signal(signal.SIGINT)
    _wait_for_requests(project, proc, 20)  # still sending
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, (out, err)
    [run] = json.loads(out)["runs"]
    assert run["status"] == "success" and run["acknowledged"] == ROWS
    assert sandbox_users(project) == segment(project)
