"""A stopped run's warehouse writes (checkpoints, the stash of records whose outcome comes later,
the last commit) waiting for another transaction's lock: a SIGTERM interrupts them, the run is
recorded `cancelled` and what could not be committed is sent again by the next run. The state's
lock_timeout is 10 minutes here: a run that waited for it would outlast the test's bound."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import asyncssh
import pyarrow as pa
import pytest

from tests.conftest import TEST_KEY
from tests.e2e.splio_project import API_KEY, SFTP_PASSWORD, SFTP_USER, make_sandbox
from tests.warehouses.support import PG_DSN, one_sync_project

SETTINGS = "  settings: {lock_timeout: 10min}\n"


def _blocked_on(schema: str, table: str) -> bool:
    """A statement naming `table` of the test's state schema waits for a lock."""
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        return bool(conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND wait_event_type = "
                                 "'Lock' AND query LIKE %s", (f"%{schema}%{table}%",)).fetchall())


@contextlib.contextmanager
def _sync_beside(blocker, args: list[str], env: dict):
    """`dinsync --json sync` running beside `blocker` (a connection whose transaction takes locks):
    killed if still running when the block ends, and the blocker's transaction rolled back."""
    proc = subprocess.Popen([sys.executable, "-m", "dinsync.cli", *args, "--json", "sync"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        blocker.rollback()


def _until(proc: subprocess.Popen, condition, deadline: float, what: str) -> None:
    """Poll `condition` while the run goes on; the test fails when the run ended or `deadline`
    passed first."""
    while not condition():
        if proc.poll() is not None or time.monotonic() >= deadline:
            proc.kill()
            pytest.fail(f"the run never {what}: {proc.communicate()}")
        time.sleep(0.02)


def _stop_while_blocked(args: list[str], env: dict, schema: str, table: str,
                        hold: str = "LOCK TABLE {table} IN SHARE MODE") -> tuple[int, dict, str]:
    """Run `dinsync sync` with a SHARE lock on `table` (`hold`: another statement taking a lock on
    it, e.g. an analyst's read) held until the run has ended; SIGTERM once a statement of the run
    waits for it."""
    import psycopg

    with psycopg.connect(PG_DSN) as blocker:
        blocker.execute(hold.format(table=f'"{schema}"."{table}"'))
        with _sync_beside(blocker, args, env) as proc:
            _until(proc, lambda: _blocked_on(schema, table), time.monotonic() + 90, "waited for the lock")
            out, err = _terminated(proc)
    [run] = json.loads(out)["runs"]
    return proc.returncode, run, err


def _terminated(proc: subprocess.Popen) -> tuple[str, str]:
    """SIGTERM to the run, then its output; the test fails when the run still waits 60 s later (for
    the lock_timeout: 10 minutes)."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"the stopped run still waited for the lock 60 s after the SIGTERM: {err[-2000:]}")


def _people(plan: str, n: int = 5) -> str:
    return " UNION ALL ".join(f"SELECT 'u{i}@x.com' AS email, '{plan}' AS plan" for i in range(1, n + 1))


def test_a_sigterm_while_a_checkpoint_waits_for_a_lock_on_the_snapshot_cancels_the_run(
        wh_postgres, iterable_sandbox, tmp_path):
    """A checkpoint's commit blocked by another transaction's lock on the snapshot, then SIGTERM: the
    run waited for the lock_timeout before it ended. The commit is interrupted: the run ends
    `cancelled` at once, its acknowledged rows are sent again by the next run."""
    _, thread = iterable_sandbox
    root = tmp_path / "project"
    cli = one_sync_project(root, wh_postgres.warehouse_yaml() .replace("state_schema", SETTINGS + "state_schema"),
                           thread.url, {"plan": "plan"}, wh_postgres.env)
    schema = wh_postgres.state_schema
    # nothing delivered yet: the run's first write to the snapshot is its commit (no unsettle)
    assert cli("sync", f"SELECT * FROM ({_people('free')}) AS p LIMIT 0").returncode == 0
    (root / "models" / "people.sql").write_text(f"-- primary_key: email\n{_people('pro')}\n")
    sent = thread.stats()["requests"]
    code, run, err = _stop_while_blocked(
        ["--project-dir", str(root)], dict(os.environ, ITERABLE_TEST_KEY=TEST_KEY, **wh_postgres.env), schema,
        "snap_people")
    assert thread.stats()["requests"] > sent
    assert (code, run["status"]) == (143, "cancelled"), (run["error"], err)
    assert "sent again by the next run" in run["error"], run["error"]
    assert run["acknowledged"] == 5
    assert wh_postgres.run_statuses("people") == ["success", "cancelled"]
    rerun = cli("sync", _people("pro"))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert len(wh_postgres.snapshot_keys("people")) == 5


def test_a_sigterm_while_the_run_log_waits_for_a_lock_cancels_the_run(wh_postgres, iterable_sandbox, tmp_path):
    """A run records its start in the state's `runs` table once it holds the sync's lock: a SIGTERM
    while that INSERT waited for another transaction's lock on the table (a DBA's LOCK TABLE, a
    backup) waited for the lock_timeout, then failed. The run is cancelled now, nothing sent, its
    lock released (the next run starts at once)."""
    _, thread = iterable_sandbox
    root = tmp_path / "project"
    cli = one_sync_project(root, wh_postgres.warehouse_yaml().replace("state_schema", SETTINGS + "state_schema"),
                           thread.url, {"plan": "plan"}, wh_postgres.env)
    assert cli("sync", _people("free")).returncode == 0
    (root / "models" / "people.sql").write_text(f"-- primary_key: email\n{_people('pro')}\n")
    sent = thread.stats()["requests"]
    code, run, err = _stop_while_blocked(
        ["--project-dir", str(root)], dict(os.environ, ITERABLE_TEST_KEY=TEST_KEY, **wh_postgres.env),
        wh_postgres.state_schema, "runs")
    assert (code, run["status"]) == (143, "cancelled"), (run["error"], err)
    assert "nothing was sent" in run["error"], run["error"]
    assert thread.stats()["requests"] == sent
    assert wh_postgres.run_statuses("people") == ["success"]  # (the cancelled run had no row yet)
    rerun = cli("sync", _people("pro"))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert wh_postgres.run_statuses("people") == ["success", "success"]


@pytest.mark.parametrize("table", ["runs", "locks"])
def test_a_sigterm_while_the_end_of_the_run_waits_for_a_lock_on_the_state_ends_it(
        wh_postgres, iterable_sandbox, tmp_path, table):
    """A run records its end in `runs`, then releases the sync's lock (`locks`): a SIGTERM while
    either waited for another transaction's lock on the table waited for the lock_timeout. The
    run ends now: cut short in `runs`, it is cancelled and the run log keeps it `running` until
    the next run records it `abandoned`; in `locks`, the next run takes the lock over at once."""
    import psycopg

    _, thread = iterable_sandbox
    root = tmp_path / "project"
    cli = one_sync_project(root, wh_postgres.warehouse_yaml().replace("state_schema", SETTINGS + "state_schema"),
                           thread.url, {"plan": "plan"}, wh_postgres.env)
    model = f"SELECT p.* FROM ({_people('free')}) AS p, (SELECT pg_sleep(1)) AS s"  # (time to take the lock)
    assert cli("sync", model).returncode == 0
    schema = wh_postgres.state_schema
    running = f"SELECT 1 FROM {wh_postgres.state('runs')} WHERE status = 'running'"
    env = dict(os.environ, ITERABLE_TEST_KEY=TEST_KEY, **wh_postgres.env)
    with psycopg.connect(PG_DSN) as blocker, _sync_beside(blocker, ["--project-dir", str(root)], env) as proc:
        deadline = time.monotonic() + 60
        _until(proc, lambda: wh_postgres.rows(running), deadline, "recorded its start")
        blocker.execute(f'LOCK TABLE "{schema}".{table} IN SHARE MODE')  # (the run is planning)
        _until(proc, lambda: _blocked_on(schema, table), deadline, "waited for the lock")
        out, err = _terminated(proc)
    [run] = json.loads(out)["runs"]
    rerun = cli("sync", model)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    if table == "runs":
        assert (proc.returncode, run["status"]) == (143, "cancelled"), (run["error"], err)
        assert "records this one `abandoned`" in run["error"], run["error"]
        assert wh_postgres.run_statuses("people") == ["success", "abandoned", "success"]
    else:  # (its end recorded before: it had planned nothing to send)
        assert (proc.returncode, run["status"]) == (143, "success"), (run["error"], err)
        assert "a next run on this machine takes it over at once" in err, err
        assert wh_postgres.run_statuses("people") == ["success", "success", "success"]


SPLIO_YML = """\
version: 1
{warehouse}destinations:
  splio:
    type: splio
    transport: sftp
    universe: sandbox
    base_url: {api_url}
    api_key: ${{env:SPLIO_TEST_API_KEY}}
    sftp:
      host: 127.0.0.1
      port: {port}
      username: {user}
      password: ${{env:SPLIO_SFTP_PASSWORD}}
      known_hosts: {known_hosts}
      directory: /imports/contacts
      reports_directory: /imports/reports
      poll_seconds: 0.05
"""


@pytest.fixture
def splio_sftp():
    thread, sandbox = make_sandbox(asyncssh.generate_private_key("ssh-ed25519"), insert_allowed=True)
    yield thread, sandbox
    thread.stop()


class SplioOnPostgres:
    """A project syncing model `people` (email, first_name) of PostgreSQL to the Splio sandbox over SFTP."""

    def __init__(self, root, wh, thread, sandbox):
        self.root, self.wh, self.thread, self.sandbox = root, wh, thread, sandbox
        (root / "models").mkdir(parents=True)
        (root / "syncs").mkdir()
        (root / "known_hosts").write_text(sandbox.known_hosts_line() + "\n")
        (root / "dinsync.yml").write_text(SPLIO_YML.format(
            warehouse=wh.warehouse_yaml().replace("state_schema", SETTINGS + "state_schema"),
            api_url=thread.url, port=sandbox.sftp_port, user=SFTP_USER, known_hosts=root / "known_hosts"))
        (root / "syncs" / "people.yml").write_text("model: people\ndestination: splio\nservice: contacts\n"
                                                   "mode: insert\nmatch: {column: email, field: email}\n"
                                                   "fields:\n  first_name: firstname\n")
        (root / "models" / "people.sql").write_text("-- primary_key: email\n-- model_type: user\n"
                                                    "SELECT email, first_name FROM people\n")
        self.env = dict(os.environ, SPLIO_TEST_API_KEY=API_KEY, SPLIO_SFTP_PASSWORD=SFTP_PASSWORD, **wh.env)

    def load(self, name: str) -> None:
        self.wh.load("people", pa.table({"email": [f"u{i}@x.com" for i in range(1, 6)], "first_name": [name] * 5}))

    def sync(self) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "dinsync.cli", "--project-dir", str(self.root), "sync"],
                              env=self.env, capture_output=True, text=True, timeout=120)

    def first_names(self) -> list[str]:
        return sorted(c["firstname"] for c in self.thread.call(self.sandbox.contacts).values())


def test_a_sigterm_while_the_stash_of_pending_records_waits_for_a_lock_cancels_the_run(
        wh_postgres, splio_sftp, tmp_path):
    """Splio over SFTP: the records of an import file await its report, stashed in `pend_<sync>`.
    SIGTERM while the stash's DELETE waited for another session's lock on that table: the run
    waited twice the lock_timeout and was recorded `failed` (exit 143). It ends `cancelled` now; the
    next run sends those records again."""
    p = SplioOnPostgres(tmp_path / "project", wh_postgres, *splio_sftp)
    p.load("Ann")
    first = p.sync()
    assert first.returncode == 0, first.stdout + first.stderr
    p.load("Bob")
    code, run, err = _stop_while_blocked(["--project-dir", str(p.root)], p.env, wh_postgres.state_schema,
                                         "pend_people")
    assert (code, run["status"]) == (143, "cancelled"), (run["error"], err)
    assert "sent again by the next run" in run["error"], run["error"]
    assert wh_postgres.run_statuses("people") == ["success", "cancelled"]
    rerun = p.sync()
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert wh_postgres.run_statuses("people") == ["success", "cancelled", "success"]
    assert p.first_names() == ["Bob"] * 5
    assert len(wh_postgres.snapshot_keys("people")) == 5


def test_a_sigterm_while_the_outcomes_of_an_earlier_run_wait_for_a_lock_cancels_the_run(
        wh_postgres, splio_sftp, tmp_path):
    """A run first commits the outcomes an earlier run did not wait for (Splio's import reports):
    SIGTERM while that commit waited for another transaction's lock on the snapshot waited for the
    lock_timeout. It is cancelled now, before planning: nothing sent, the outcomes left pending
    for the next run."""
    thread, sandbox = splio_sftp
    p = SplioOnPostgres(tmp_path / "project", wh_postgres, thread, sandbox)
    p.load("Ann")
    thread.call(setattr, sandbox.sftp_faults, "importer_delay", 3.0)
    p.env["DINSYNC_OUTCOME_TIMEOUT_SECONDS"] = "0.5"
    first = p.sync()
    assert first.returncode == 4, first.stdout + first.stderr  # (a warning)
    assert "had not arrived" in first.stdout + first.stderr
    assert len(wh_postgres.rows(f"SELECT _key FROM {wh_postgres.state('pend_people')}")) == 5, first.stderr
    thread.call(setattr, sandbox.sftp_faults, "importer_delay", 0.0)
    deadline = time.monotonic() + 30
    while not thread.call(sandbox.stats)["files_processed"]:  # the import is done: its report is there to read
        assert time.monotonic() < deadline
        time.sleep(0.1)
    files = len(thread.call(sandbox.stats)["files_received"])
    code, run, err = _stop_while_blocked(["--project-dir", str(p.root)], p.env, wh_postgres.state_schema,
                                         "snap_people")
    assert (code, run["status"]) == (143, "cancelled"), (run["error"], err)
    assert run["error"].startswith("stopped by SIGTERM"), run["error"]
    assert len(thread.call(sandbox.stats)["files_received"]) == files  # nothing was sent
    rerun = p.sync()
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "5 rows acknowledged" in rerun.stdout + rerun.stderr
    assert wh_postgres.run_statuses("people") == ["warning", "cancelled", "success"]
    assert len(wh_postgres.snapshot_keys("people")) == 5
