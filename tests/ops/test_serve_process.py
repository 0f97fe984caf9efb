"""`dinsync serve` as a process: it starts a scheduled sync, SIGTERM stops the run in flight
gracefully (recorded `cancelled`, lock released), and the service exits 0."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import duckdb
import pytest

from tests.conftest import TEST_KEY

ROWS = 4000


@pytest.mark.slow
def test_sigterm_stops_the_run_in_flight_and_the_service(project):
    project.seed(ROWS)
    project.write(destination_extra="    bulk_max_users: 50\n    rate_limits: {bulk_update: null}\n")
    path = project.root / "syncs" / "iterable_users.yml"
    path.write_text(path.read_text() + "schedule: {every: 1s}\n")
    project.thread.call(lambda: project.sandbox.options.__setattr__("limits", False))
    project.thread.set_faults(latency=0.05, jitter=0.02)
    env = dict(os.environ, ITERABLE_TEST_KEY=TEST_KEY, DINSYNC_CHECKPOINT_SECONDS="0.2")
    proc = subprocess.Popen([sys.executable, "-m", "dinsync.cli", "--project-dir", str(project.root), "--json",
                             "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[dict] = []
    reader = threading.Thread(target=lambda: lines.extend(json.loads(line) for line in proc.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while project.thread.stats()["requests"] < 5:  # the first slot came and the run is sending
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "serve never started the sync"
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(10)
    stderr = proc.stderr.read()
    assert proc.returncode == 0, stderr
    assert [e["event"] for e in lines] == ["serve", "start", "end", "stop"], lines
    assert lines[0]["syncs"][0]["schedule"] == "every 1s"
    end = lines[2]
    assert end["run"]["status"] == "cancelled" and "SIGTERM" in end["run"]["error"]
    assert 0 < end["run"]["acknowledged"] < ROWS and end["exit_code"] == 128 + signal.SIGTERM
    assert lines[3]["signal"] == "SIGTERM"
    assert "SIGTERM: stopping" in stderr
    assert project.sql("select status from dinsync.runs") == [("cancelled",)]
    assert project.sql("select count(*) from dinsync.locks") == [(0,)]
    assert len(project.snapshot_keys()) == end["run"]["acknowledged"]


def _start_serve(project) -> subprocess.Popen:
    """`dinsync --json serve` on the project, once it printed its `serve` line."""
    env = dict(os.environ, ITERABLE_TEST_KEY=TEST_KEY)
    # SIGHUP at its default action, whatever this process inherited: under `nohup` (a CI started so)
    # it is ignored, and a service that inherits that goes on after SIGHUP, by design
    proc = subprocess.Popen([sys.executable, "-m", "dinsync.cli", "--project-dir", str(project.root), "--json",
                             "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
    try:
        first = json.loads(proc.stdout.readline())
        assert first["event"] == "serve", first
    except BaseException:
        proc.kill()
        raise
    return proc


def test_sigterm_stops_an_idle_service_with_exit_0(project):
    """Nothing running (the first slot an hour away): SIGTERM ends the service with exit 0 and a
    `stop` line; the wait is woken by the stop request itself (tests/ops/test_scheduler.py)."""
    path = project.root / "syncs" / "iterable_users.yml"
    path.write_text(path.read_text() + "schedule: {every: 1h}\n")
    proc = _start_serve(project)
    try:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert [json.loads(line) for line in out.splitlines()] == [
        {"at": json.loads(out.splitlines()[0])["at"], "event": "stop", "signal": "SIGTERM"}]
    assert "SIGTERM: stopping" in err
    assert project.sql("select count(*) from dinsync.runs") == [(0,)]


def test_sighup_stops_the_service_gracefully_unless_it_is_ignored(project):
    """SIGHUP (its terminal closed, or sent to reload the files) stops the service as SIGTERM does;
    its default action ended it at once, with no `stop` line, and a run in flight was left
    `running` with its lock held until the next start. Under `nohup` (SIGHUP ignored) it goes on."""
    path = project.root / "syncs" / "iterable_users.yml"
    path.write_text(path.read_text() + "schedule: {every: 1h}\n")
    proc = _start_serve(project)
    try:
        proc.send_signal(signal.SIGHUP)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, (proc.returncode, err)
    assert [json.loads(line) for line in out.splitlines()] == [
        {"at": json.loads(out.splitlines()[0])["at"], "event": "stop", "signal": "SIGHUP"}]
    assert "SIGHUP: stopping" in err
    env = dict(os.environ, ITERABLE_TEST_KEY=TEST_KEY)
    ignored = subprocess.Popen([sys.executable, "-c", "import signal, sys; signal.signal(signal.SIGHUP, signal.SIG_IGN); "
                                "sys.argv[0] = 'dinsync'; from dinsync.cli import main; main()", "--project-dir",
                                str(project.root), "--json", "serve"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert json.loads(ignored.stdout.readline())["event"] == "serve"
        ignored.send_signal(signal.SIGHUP)
        ignored.send_signal(signal.SIGTERM)  # (after the SIGHUP: signals to a process arrive in order)
        out, err = ignored.communicate(timeout=60)
    finally:
        if ignored.poll() is None:
            ignored.kill()
    assert ignored.returncode == 0, err
    assert [json.loads(line)["signal"] for line in out.splitlines()] == ["SIGTERM"]


def test_sigterm_abandons_a_check_in_flight(project, monkeypatch):
    """An automatically paused sync is checked at start-up; its destination hangs (answers after
    30 s). SIGTERM abandons the check: the service exits 0 at once (it used to wait for the check,
    up to ~50 s with the send-time retry policy: past Kubernetes' 30 s grace), and nothing is
    recorded for the check (still paused, not checked, not resumed)."""
    monkeypatch.setenv("ITERABLE_TEST_KEY", "wrong-key-0000000000")
    project.sync()  # refused credentials: paused by itself
    assert project.sql("select paused, paused_by, culprit from dinsync.sync_state") == [(True, "auto", "credentials")]
    before = project.sql("select checked_at, check_error, reason from dinsync.sync_state")
    path = project.root / "syncs" / "iterable_users.yml"
    path.write_text(path.read_text() + "schedule: {every: 1h}\n")
    project.thread.set_faults(latency=30.0)
    requests = project.thread.stats()["requests"]
    proc = _start_serve(project)
    try:
        deadline = time.monotonic() + 30
        while project.thread.stats()["requests"] == requests:  # the check's lookup is in flight
            assert proc.poll() is None and time.monotonic() < deadline, "no check started"
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["event"] for e in events] == ["note", "stop"], events
    assert events[0]["message"] == "check of iterable_users abandoned: a stop was requested"
    assert took < 10, f"SIGTERM took {took:.1f}s"  # a sanity bound; the mechanism: tests/ops/test_health_check.py
    assert project.thread.stats()["requests"] == requests + 1
    assert project.sql("select paused, paused_by, culprit from dinsync.sync_state") == [(True, "auto", "credentials")]
    assert project.sql("select checked_at, check_error, reason from dinsync.sync_state") == before
    assert project.sql("select count(*) from dinsync.events where event = 'resumed'") == [(0,)]


@pytest.mark.slow
def test_a_second_signal_exits_at_once_while_a_run_in_flight_stops_gracefully(project):
    """The first SIGINT asks the run in flight to stop gracefully; its requests in flight hang (the
    platform answers after 10 minutes, the grace period is as long). The second SIGINT must end the
    service at once: its main thread waited for the runs in one uninterrupted wait, where Python
    runs no signal handler, so the second signal was only acted on once the graceful stop was over
    (the grace period: 20 s by default)."""
    project.seed(ROWS)
    project.write(destination_extra="    bulk_max_users: 50\n    rate_limits: {bulk_update: null}\n")
    path = project.root / "syncs" / "iterable_users.yml"
    path.write_text(path.read_text() + "schedule: {every: 1s}\n")
    project.thread.call(lambda: project.sandbox.options.__setattr__("limits", False))
    project.thread.set_faults(latency=600.0)
    env = dict(os.environ, ITERABLE_TEST_KEY=TEST_KEY, DINSYNC_GRACE_SECONDS="600")
    proc = subprocess.Popen([sys.executable, "-m", "dinsync.cli", "--project-dir", str(project.root), "--json",
                             "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while project.thread.stats()["requests"] < 1:  # the first slot came and a request is in flight
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "serve never started the sync"
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        time.sleep(1.0)  # the graceful stop is under way, waiting for the hanging requests
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail("the second SIGINT did not end the service")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 128 + signal.SIGINT, err
    assert "second SIGINT: exiting now" in err
    assert project.snapshot_keys() == set()  # nothing committed that was not acknowledged


def test_serve_starts_while_another_process_holds_the_duckdb_file(project):
    """A dbt build (or a `dinsync status`) holding the DuckDB file when the service starts: serve
    exited 5 at once, where its runs wait for the file and its run log is read once it is free."""
    import duckdb

    path = project.root / "syncs" / "iterable_users.yml"
    path.write_text(path.read_text() + "schedule: {every: 1h}\n")
    holder = duckdb.connect(str(project.root / "warehouse.duckdb"))  # another process, for serve
    env = dict(os.environ, ITERABLE_TEST_KEY=TEST_KEY)
    proc = subprocess.Popen([sys.executable, "-m", "dinsync.cli", "--project-dir", str(project.root), "--json",
                             "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        holder.close()
        # (it exited 5, its first line the `{` of {"error": "the DuckDB file ... is in use ...", "exit_code": 5})
        assert first.startswith('{"at"'), first + "".join(proc.communicate(timeout=60))
        assert json.loads(first)["event"] == "serve"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        holder.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    # (the holder, this test's process, named as DuckDB names it)
    assert f"is in use by another process (PID {os.getpid()}: " in err, err
    assert "): serve starts and reads the run log once it is free" in err
    assert [json.loads(line)["event"] for line in out.splitlines()][-1] == "stop"


@pytest.mark.parametrize("minutes", ["inf", "1e10"])
def test_a_recheck_interval_no_date_can_reach_is_a_usage_error(project, minutes):
    """`--recheck-minutes inf` (or 1e10: 19,000 years) passed the option's check, then the service
    printed its `serve` line and failed at its first step with 'unexpected error: OverflowError'
    (exit 1), as a broken service would; it is a usage error (exit 2) naming the limit, before
    anything starts."""
    path = project.root / "syncs" / "iterable_users.yml"
    path.write_text(path.read_text() + "schedule: {every: 1h}\n")
    result = project.cli("serve", "--recheck-minutes", minutes, json_output=False)
    assert result.exit_code == 2, result.output
    assert "--recheck-minutes" in result.output and "5256000" in result.output
    assert "OverflowError" not in result.output and "serve:" not in result.output


@pytest.mark.parametrize("running", [False, True], ids=["skips-only", "skips-and-runs"])
def test_log_lines_to_a_closed_pipe_are_dropped_and_the_service_goes_on(project, running):
    """`dinsync serve | head -1`: once the reader went away, rich's console (the lines without
    --json) turned the next line's BrokenPipeError into SystemExit(1): written by the scheduler
    (a `skip` line) it ended the service with exit 1, without a word on stderr; written by a run
    (`start`, `end`) it ended that worker's job, and every later line was dropped silently. As with
    --json, the lines are dropped, stderr says so once, and the syncs keep running."""
    path = project.root / "syncs" / "iterable_users.yml"
    (project.root / "syncs" / "paused_users.yml").write_text(path.read_text() + "schedule: {every: 1s}\n")
    if running:
        path.write_text(path.read_text() + "schedule: {every: 1s}\n")
    assert project.cli("pause", "paused_users").exit_code == 0, project.last.output
    env = dict(os.environ, ITERABLE_TEST_KEY=TEST_KEY)
    proc = subprocess.Popen([sys.executable, "-m", "dinsync.cli", "--project-dir", str(project.root), "serve"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert f" serve: {2 if running else 1} scheduled sync(s)" in proc.stdout.readline()
        proc.stdout.close()  # the reader goes away: the next line (a skip, a start) finds no reader
        time.sleep(4)  # a few slots: skipped (paused_users) and run (iterable_users)
        still_up = proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        err = proc.stderr.read()
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert still_up, (proc.returncode, err)
    assert proc.returncode == 0, err
    assert err.count("the service's log lines cannot be written") == 1, err
    if running:
        runs = project.sql("select count(*) from dinsync.runs where sync = 'iterable_users'")[0][0]
        assert runs >= 2, runs


def test_notes_to_a_closed_stderr_do_not_interrupt_the_runs(project):
    """`dinsync serve 2>&1 | logger` once the reader went away: a run's note on stderr (a row
    without a key, skipped) met the broken pipe, which rich turns into SystemExit(1): the run was
    interrupted there and recorded `failed` ("interrupted (SystemExit)"), its rows undelivered.
    Notes that cannot be written are dropped; the runs go on."""
    project.sql("insert into main.customers values (999, NULL, 'u-999', 'No key', 'free', 1.0)")
    path = project.root / "syncs" / "iterable_users.yml"
    path.write_text(path.read_text() + "schedule: {every: 1s}\n")
    env = dict(os.environ, ITERABLE_TEST_KEY=TEST_KEY)
    proc = subprocess.Popen([sys.executable, "-m", "dinsync.cli", "--project-dir", str(project.root), "serve"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert " serve: 1 scheduled sync(s)" in proc.stdout.readline()
        proc.stdout.close()  # the reader goes away: the runs' notes and lines find no reader
        # two successful runs after the reader left (each wrote its note), however slow the machine
        successes = _wait_for_successful_runs(project, proc, 2, deadline=time.monotonic() + 120)
        still_up = proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert still_up and proc.returncode == 0, proc.returncode
    assert successes >= 2, successes
    runs = project.sql("select status, error from dinsync.runs")
    assert not [r for r in runs if r[0] == "failed"], runs
    assert sum(1 for r in runs if r[0] == "success") >= 2, runs


def _wait_for_successful_runs(project, proc: subprocess.Popen, count: int, *, deadline: float) -> int:
    """The number of `success` runs once it reaches `count` (or the service ended, or the deadline
    passed): read between the service's runs, as the DuckDB file is free then (a read that meets
    the service's lock is tried again; the service waits for a file held a moment, by design)."""
    successes = 0
    while successes < count and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            con = duckdb.connect(str(project.root / "warehouse.duckdb"), read_only=True)
        except duckdb.IOException:  # the service holds the file: a run is under way
            continue
        try:
            successes = con.execute("select count(*) from dinsync.runs where status = 'success'").fetchone()[0]
        except duckdb.CatalogException:  # before the first run made the state tables
            pass
        finally:
            con.close()
    return successes
