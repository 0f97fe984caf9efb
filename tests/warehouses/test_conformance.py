"""The conformance suite: the whole sync path on every warehouse, through the real CLI.

Each test runs `dinsync sync` in a subprocess against a project whose warehouse is the `target`
fixture (see conftest.py: one fixture per warehouse) and whose destination is the Iterable
sandbox on 127.0.0.1. The diff runs as SQL in the warehouse, the plan streams out as Arrow, the
acknowledged keys, rejections, run log and lock are written back to the same warehouse.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow as pa
import pytest

from dinsync.errors import ExitCode
from tests.conftest import TEST_KEY

SYNC = "iterable_users"
FIELDS = {"first_name": "firstName", "plan": "plan", "ltv": "ltv"}


def customers(ids, *, email=None, plan="free", first_name=None) -> pa.Table:
    ids = list(ids)
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "email": [email(i) if email else f"User{i}@Example.com " for i in ids],  # normalised to user{i}@example.com
        "first_name": [first_name(i) if first_name else f"Name {i}" for i in ids],
        "plan": [plan(i) if callable(plan) else plan for i in ids],
        "ltv": pa.array([i * 1.5 for i in ids], pa.float64()),
        "vip": [i % 3 == 0 for i in ids],
    })


def expected_users(table: pa.Table, fields=FIELDS) -> dict[str, dict]:
    out = {}
    for row in table.to_pylist():
        if row["email"] is None or not row["email"].strip():
            continue
        out[row["email"].strip().lower()] = {dest: row[col] for col, dest in fields.items()}
    return out


class Project:
    """A project syncing the target's `customers` to the Iterable sandbox. `sync` runs the CLI in a
    process of its own; with `in_process`, in this one (typer's runner: same arguments, environment,
    JSON and exit code), for tests about what a run writes, not about the process: each new process
    imports the warehouse's client again (databricks-sdk alone: 1-3 s, more on a loaded machine)."""

    def __init__(self, root: Path, target, sandbox, thread, in_process: bool = False):
        self.root, self.target, self.sandbox, self.thread = root, target, sandbox, thread
        self.in_process = in_process
        (root / "models").mkdir(parents=True)
        (root / "syncs").mkdir()
        (root / "models" / "customers.sql").write_text(
            "-- primary_key: id\n-- model_type: user\nselect id, email, first_name, plan, ltv, vip from customers\n")

    def write(self, fields=FIELDS, thresholds="{max_rejected_pct: 50}", destination_extra="") -> None:
        (self.root / "dinsync.yml").write_text(
            "version: 1\n" + self.target.warehouse_yaml() + textwrap.dedent(f"""\
            destinations:
              iterable:
                type: iterable
                api_key: ${{env:ITERABLE_TEST_KEY}}
                base_url: {self.thread.url}
                concurrency: 4
            """) + destination_extra)
        lines = "\n".join(f"  {c}: {f}" for c, f in fields.items())
        (self.root / "syncs" / f"{SYNC}.yml").write_text(
            f"model: customers\ndestination: iterable\nservice: users\nmode: upsert\n"
            f"match: {{column: email, field: email}}\nfields:\n{lines}\nthresholds: {thresholds}\n")

    def env(self) -> dict[str, str]:
        return dict(os.environ, **self.own_env())

    def own_env(self) -> dict[str, str]:
        return dict(ITERABLE_TEST_KEY=TEST_KEY, DINSYNC_CHECKPOINT_ROWS="300", DINSYNC_CHECKPOINT_SECONDS="0.2",
                    **self.target.env)

    def start(self) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "dinsync.cli", "--project-dir", str(self.root), "--json", "sync"],
                                env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def sync(self, timeout: float = 120) -> dict:
        if self.in_process:
            return self._sync_in_process()
        proc = self.start()
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"dinsync sync did not end in {timeout} s: {err[-2000:]!r}") from None
        try:
            data = json.loads(out)
        except ValueError:
            raise AssertionError(f"no JSON from dinsync sync (exit {proc.returncode}): {out!r} {err!r}") from None
        data["exit_code"] = proc.returncode
        data["stderr"] = err
        return data

    def _sync_in_process(self) -> dict:
        from typer.testing import CliRunner

        from dinsync.cli import app

        result = CliRunner().invoke(app, ["--project-dir", str(self.root), "--json", "sync"], env=self.own_env(),
                                    catch_exceptions=False)
        try:
            data = json.loads(result.stdout)
        except ValueError:
            raise AssertionError(f"no JSON from dinsync sync (exit {result.exit_code}): {result.stdout!r} "
                                 f"{result.stderr!r}") from None
        data["exit_code"] = result.exit_code
        data["stderr"] = result.stderr
        return data

    def users(self) -> dict[str, dict]:
        return self.thread.call(lambda: {u["email"]: dict(u["dataFields"]) for u in self.sandbox.users})

    def requests(self) -> int:
        return self.thread.stats()["requests"]


def written_project(tmp_path: Path, target, iterable_sandbox, rows: int) -> "Project":
    """A written project on `target` whose customers table holds ids 1..rows, syncing to the sandbox."""
    sandbox, thread = iterable_sandbox
    p = Project(tmp_path / "project", target, sandbox, thread)
    p.write()
    target.load("customers", customers(range(1, rows + 1)))
    return p


@pytest.fixture
def project(tmp_path, target, iterable_sandbox):
    sandbox, thread = iterable_sandbox
    p = Project(tmp_path / "project", target, sandbox, thread)
    p.write()
    return p


def only_run(result: dict) -> dict:
    assert "runs" in result, result
    [run] = result["runs"]
    return run


def test_first_sync_noop_changes_removals(project, target):
    data = customers(range(1, 31))
    target.load("customers", data)
    first = project.sync()
    run = only_run(first)
    assert first["exit_code"] == 0, first
    assert (run["status"], run["added"], run["acknowledged"], run["failed"]) == ("success", 30, 30, 0)
    assert project.users() == expected_users(data)
    assert target.snapshot_keys(SYNC) == set(expected_users(data))

    requests = project.requests()
    noop = only_run(project.sync())
    assert (noop["added"], noop["changed"], noop["removed"], noop["sent"], noop["unchanged"]) == (0, 0, 0, 0, 30)
    assert project.requests() == requests  # nothing left the warehouse

    # Only changed fields travel: a value the destination holds for an unchanged field stays.
    project.thread.call(lambda: project.sandbox.users.get("user1@example.com")["dataFields"].__setitem__("ltv", -1.0))
    changed = customers(range(1, 29), plan=lambda i: "pro" if i in (1, 2) else "free",
                        first_name=lambda i: "Renamed" if i == 3 else f"Name {i}")
    target.load("customers", changed)
    third = only_run(project.sync())
    assert (third["added"], third["changed"], third["removed"], third["sent"]) == (0, 3, 2, 3)
    users = project.users()
    assert users["user1@example.com"] == {"firstName": "Name 1", "plan": "pro", "ltv": -1.0}
    assert users["user3@example.com"]["firstName"] == "Renamed"
    assert target.snapshot_keys(SYNC) == set(expected_users(changed))
    assert "user29@example.com" in users  # leaving the segment deletes nothing in the destination

    back = pa.concat_tables([changed, customers([29], first_name=lambda i: "Back")])
    target.load("customers", back)
    fourth = only_run(project.sync())
    assert (fourth["added"], fourth["changed"], fourth["removed"]) == (1, 0, 0)
    assert project.users()["user29@example.com"]["firstName"] == "Back"
    assert target.run_statuses(SYNC) == ["success"] * 4


def test_null_and_duplicate_keys(project, target):
    base = customers(range(1, 41))
    odd = pa.table({
        "id": pa.array([41, 42, 43, 44], pa.int64()),
        "email": [None, "   ", "", "user5@example.com"],  # two NULL-like keys, one empty, a duplicate of user 5
        "first_name": ["Nobody", "Blank", "Empty", "Five bis"],
        "plan": ["free"] * 4,
        "ltv": pa.array([0.0] * 4, pa.float64()),
        "vip": [False] * 4,
    })
    target.load("customers", pa.concat_tables([base, odd]))
    result = project.sync()
    run = only_run(result)
    assert result["exit_code"] == ExitCode.WARNINGS, result  # duplicates under 5%: a warning, the rest is sent
    assert (run["status"], run["null_keys"], run["duplicate_keys"]) == ("warning", 3, 1)
    assert run["acknowledged"] == 39 and "withheld" in " ".join(run["warnings"])
    users = project.users()
    assert "user5@example.com" not in users and len(users) == 39

    target.load("customers", base)  # the duplicate is fixed: its key is sent now
    fixed = only_run(project.sync())
    assert (fixed["status"], fixed["added"], fixed["null_keys"]) == ("success", 1, 0)
    assert project.users()["user5@example.com"]["firstName"] == "Name 5"

    many = customers(range(1, 41), email=lambda i: f"user{i % 30}@example.com", plan="team")  # 20 rows share keys
    target.load("customers", many)
    requests = project.requests()
    over = project.sync()
    error = over["runs"][0]["error"] if "runs" in over else over["error"]  # (the JSON shape is the CLI's)
    assert over["exit_code"] == ExitCode.RUN_FAILED and "over the 5" in error
    assert project.requests() == requests  # nothing was sent
    assert target.run_statuses(SYNC)[-1] == "failed"


def test_newly_mapped_field_is_sent_for_every_row(project, target):
    data = customers(range(1, 21))
    target.load("customers", data)
    assert only_run(project.sync())["acknowledged"] == 20
    project.write(fields={**FIELDS, "vip": "vip"})
    run = only_run(project.sync())
    assert (run["changed"], run["acknowledged"]) == (20, 20)
    assert project.users() == expected_users(data, {**FIELDS, "vip": "vip"})


def _with_iterable_eu(project):
    """The project with a second Iterable destination, `iterable_eu` (the same sandbox); the sync's file."""
    project.write(destination_extra=f"  iterable_eu:\n    type: iterable\n    api_key: ${{env:ITERABLE_TEST_KEY}}\n"
                                    f"    base_url: {project.thread.url}\n")
    return project.root / "syncs" / f"{SYNC}.yml"


def test_a_sync_moved_to_another_destination_sends_it_every_row_once(project, target):
    """The old destination's snapshot is forgotten (forget_snapshot.sql) and the new destination
    recorded before sending: every row goes as added, then nothing until something changes."""
    data = customers(range(1, 21))
    target.load("customers", data)
    assert only_run(project.sync())["acknowledged"] == 20
    sync_file = _with_iterable_eu(project)
    sync_file.write_text(sync_file.read_text().replace("destination: iterable", "destination: iterable_eu"))
    run = only_run(project.sync())
    assert (run["status"], run["full_refresh"], run["added"], run["acknowledged"]) == ("success", True, 20, 20), run
    run = only_run(project.sync())
    assert (run["full_refresh"], run["sent"], run["unchanged"]) == (False, 0, 20), run
    assert project.users() == expected_users(data)


def test_a_sync_renamed_by_case_only_and_moved_sends_the_new_destination_every_row(project, target):
    """Where table names ignore case (DuckDB, Snowflake, Databricks), `Iterable_Users`'s snapshot is
    `iterable_users`'s table, and its records were none: it sent nothing to its new destination."""
    data = customers(range(1, 21))
    target.load("customers", data)
    assert only_run(project.sync())["acknowledged"] == 20
    sync_file = _with_iterable_eu(project)
    (project.root / "syncs" / "Iterable_Users.yml").write_text(
        sync_file.read_text().replace("destination: iterable", "destination: iterable_eu"))
    sync_file.unlink()
    run = only_run(project.sync())
    assert (run["status"], run["full_refresh"], run["added"], run["acknowledged"]) == ("success", True, 20, 20), run
    run = only_run(project.sync())
    assert (run["full_refresh"], run["sent"], run["unchanged"]) == (False, 0, 20), run


@pytest.mark.slow
def test_kill_9_mid_sync_then_rerun_converges(project, target):
    rows = 3000
    project.write(destination_extra="    bulk_max_users: 50\n    rate_limits: {bulk_update: null}\n")
    data = customers(range(1, rows + 1))
    target.load("customers", data)
    project.thread.call(lambda: project.sandbox.options.__setattr__("limits", False))
    project.thread.set_faults(latency=0.02, jitter=0.02, reset_after_apply_rate=0.05, seed=7)

    proc = project.start()
    deadline = time.monotonic() + 60
    while project.requests() < 15:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the sync never reached the kill point"
        time.sleep(0.005)
    proc.kill()
    proc.wait(10)
    assert proc.returncode == -9

    delivered = project.users()
    committed = target.snapshot_keys(SYNC)
    expected = expected_users(data)
    assert committed <= set(delivered)  # nothing committed that the destination did not acknowledge
    assert all(delivered[k] == expected[k] for k in committed)
    assert len(committed) < rows

    project.thread.set_faults(latency=0.0, jitter=0.0, reset_after_apply_rate=0.0)
    rerun = project.sync()
    assert rerun["exit_code"] == 0, rerun
    assert only_run(rerun)["failed"] == 0
    assert project.users() == expected
    assert target.snapshot_keys(SYNC) == set(expected)
    assert target.run_statuses(SYNC) == ["abandoned", "success"]  # the killed run's lock was taken over


def test_scratch_table_left_by_a_killed_run_does_not_fail_the_next_one(project, target):
    """A run killed (-9) between staging the rows it unsettles (unsettle_stage.sql: CREATE TABLE
    unsettle_<sync>) and dropping that table left it behind, and every later run that sent a
    changed row failed with 'relation "unsettle_<sync>" already exists' until one got past it."""
    from dinsync.warehouses import capabilities_of

    if capabilities_of(target.kind).scratch_database:
        pytest.skip("scratch tables live in a database that dies with the process")
    target.load("customers", customers(range(1, 11)))
    assert project.sync()["exit_code"] == 0
    target.execute(f"CREATE TABLE {target.state('unsettle_' + SYNC)} (_key VARCHAR)")  # what the kill left
    changed = customers(range(1, 11), plan=lambda i: "pro" if i <= 3 else "free")
    target.load("customers", changed)
    rerun = project.sync()
    assert rerun["exit_code"] == 0, rerun
    assert (only_run(rerun)["changed"], only_run(rerun)["acknowledged"]) == (3, 3)
    assert project.users() == expected_users(changed)


@pytest.mark.slow
def test_concurrent_run_is_refused_by_the_lock(project, target):
    # the sandbox holds the first run's requests (5 of them, 4 in flight) until the second run has
    # been refused: the first is provably mid-send, its lock taken, however slow the machine is to
    # start the second process; then the first ends within bulkUpdate's 5 requests a second
    project.write(destination_extra="    bulk_max_users: 2\n")
    target.load("customers", customers(range(1, 11)))
    project.thread.hold()
    first = project.start()
    try:
        deadline = time.monotonic() + 60
        while project.thread.held() < 1:
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first run sent nothing in 60 s"
            time.sleep(0.01)
        try:
            second = project.sync(timeout=60)
        except AssertionError as exc:  # a second run that sends is held too
            raise AssertionError(f"the second run was not refused ({project.thread.held()} requests held): {exc}")
        assert first.poll() is None  # the refusal came while the first run held the lock
    except BaseException:
        project.thread.release()
        first.kill()
        first.communicate()
        raise
    project.thread.release()  # the first may finish now
    assert second["exit_code"] == ExitCode.LOCKED, second
    # DuckDB: the file itself is busy (the command cannot open the warehouse); elsewhere the lock says so
    error = second["runs"][0]["error"] if "runs" in second else second["error"]
    assert re.search(target.busy_message, error), second
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, (out, err)
    assert only_run(json.loads(out))["acknowledged"] == 10
    assert only_run(project.sync())["sent"] == 0
    assert target.run_statuses(SYNC) == ["success", "success"]
