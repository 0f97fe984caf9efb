"""The engine's interfaces proved with a destination that is not HTTP: files in an outbox whose
outcome arrives later (pending records), end to end through the CLI, with the same crash test
as Iterable."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from dinsync import destinations
from dinsync.cli import app
from tests.toy_destination import REJECT_MARKER, OutboxProcessor

ROOT = Path(__file__).resolve().parents[2]

DINSYNC_YML = """\
version: 1
warehouse: {{type: duckdb, path: warehouse.duckdb}}
destinations:
  outbox:
    type: outbox
    directory: {directory}
    rows_per_file: {rows_per_file}
"""
MODEL = "-- primary_key: id\nselect id, email, name, plan from main.people\n"
SYNC = """\
model: people
destination: outbox
service: records
mode: upsert
match: {column: email, field: email}
fields: {name: name, plan: plan}
thresholds: {max_rejected_pct: 50}
"""


class OutboxProject:
    def __init__(self, root: Path, monkeypatch):
        self.root = root
        self.outbox = root / "outbox"
        root.mkdir()
        (root / "models").mkdir()
        (root / "syncs").mkdir()
        (root / "models" / "people.sql").write_text(MODEL)
        (root / "syncs" / "people.yml").write_text(SYNC)
        self.configure()
        monkeypatch.setenv("DINSYNC_DESTINATION_MODULES", "tests.toy_destination")
        monkeypatch.setenv("DINSYNC_CHECKPOINT_SECONDS", "0")
        destinations._plugins.cache_clear()

    def configure(self, rows_per_file: int = 500) -> None:
        (self.root / "dinsync.yml").write_text(DINSYNC_YML.format(directory=self.outbox, rows_per_file=rows_per_file))

    def sql(self, statement: str, *params):
        con = duckdb.connect(str(self.root / "warehouse.duckdb"))
        try:
            cur = con.execute(statement, list(params) if params else None)
            return cur.fetchall() if cur.description else None
        finally:
            con.close()

    def seed(self, n: int) -> None:
        self.sql("create or replace table main.people as select i as id, 'p' || i || '@example.com' as email, "
                 "'Name ' || i as name, 'free' as plan from range(1, ? + 1) t(i)", n)

    def sync(self, *args: str) -> dict:
        result = CliRunner().invoke(app, ["--project-dir", str(self.root), "--json", "sync", *args],
                                    catch_exceptions=False)
        data = json.loads(result.stdout)
        data["exit_code"] = result.exit_code
        return data

    def snapshot(self) -> set[str]:
        return {r[0] for r in self.sql("select _key from dinsync.snap_people where _synced_at is not null")}

    def segment(self) -> dict[str, dict]:
        return {e: {"name": n, "plan": p} for e, n, p in self.sql("select email, name, plan from main.people")}


@pytest.fixture
def outbox_project(tmp_path, monkeypatch):
    project = OutboxProject(tmp_path / "proj", monkeypatch)
    project.seed(30)
    yield project
    destinations._plugins.cache_clear()


def test_pending_outcomes_are_settled_in_the_run_then_only_changes_travel(outbox_project):
    p = outbox_project
    with OutboxProcessor(p.outbox) as platform:
        first = p.sync()
        [run] = first["runs"]
        assert first["exit_code"] == 0, first
        assert (run["status"], run["added"], run["acknowledged"], run["pending"]) == ("success", 30, 30, 0)
        assert platform.snapshot() == p.segment()
        assert len(p.snapshot()) == 30

        second = p.sync()["runs"][0]
        assert (second["added"], second["changed"], second["sent"]) == (0, 0, 0)

        p.sql("update main.people set plan = 'pro' where id <= 3")
        p.sql("delete from main.people where id = 30")
        third = p.sync()["runs"][0]
        assert (third["changed"], third["removed"], third["acknowledged"]) == (3, 1, 3)
        assert platform.snapshot()["p1@example.com"] == {"name": "Name 1", "plan": "pro"}
        assert "p30@example.com" not in p.snapshot()


def test_platform_rejection_of_a_pending_record_is_kept_with_its_reason(outbox_project):
    p = outbox_project
    p.sql(f"update main.people set name = '{REJECT_MARKER}' where id = 5")
    with OutboxProcessor(p.outbox) as platform:
        run = p.sync()["runs"][0]
    assert (run["acknowledged"], run["rejected"], run["status"]) == (29, 1, "success")
    assert "p5@example.com" not in p.snapshot() and "p5@example.com" not in platform.snapshot()
    [(status, reason)] = p.sql("select status, reason from dinsync.rejections where key = 'p5@example.com'")
    assert status == "rejected" and "REJECT_ME" in reason


def test_outcome_arriving_after_the_run_is_read_by_the_next_run_without_sending_again(outbox_project, monkeypatch):
    p = outbox_project
    monkeypatch.setenv("DINSYNC_OUTCOME_TIMEOUT_SECONDS", "0.3")
    p.sql(f"update main.people set name = '{REJECT_MARKER}' where id = 7")
    with OutboxProcessor(p.outbox) as platform:
        platform.paused.set()
        data = p.sync()
        [run] = data["runs"]
        assert data["exit_code"] == 4  # a warning: nothing lost, the outcome is read next run
        assert (run["status"], run["pending"], run["acknowledged"]) == ("warning", 30, 0)
        assert any("next run reads their outcome" in w for w in run["warnings"])
        assert p.snapshot() == set()  # nothing committed while the outcome is unknown
        files_sent = len(list(p.outbox.glob("*.jsonl")))
        platform.paused.clear()
        deadline = time.monotonic() + 10
        while len(platform.processed) < files_sent:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        again = p.sync()["runs"][0]
        # the earlier run's outcomes were read from their tokens: nothing is sent again
        assert (again["status"], again["sent"], again["added"]) == ("success", 0, 0)
        expected = {k: v for k, v in p.segment().items() if k != "p7@example.com"}
        assert platform.snapshot() == expected and p.snapshot() == set(expected)
        [(status, reason, field)] = p.sql("select status, reason, field from dinsync.rejections "
                                          "where key = 'p7@example.com'")
        assert status == "rejected" and "REJECT_ME" in reason and field is not None  # the field it names
        # the rejected row is parked: not sent again until it changes
        assert p.sync()["runs"][0]["sent"] == 0
        p.sql("update main.people set name = 'Fixed' where id = 7")
        fixed = p.sync()["runs"][0]
        assert (fixed["added"], fixed["acknowledged"]) == (1, 1)


def test_a_field_mapped_while_outcomes_are_awaited_reaches_every_row(outbox_project, monkeypatch):
    """The mapping gains a field (here: plan's destination field renamed) between the run that sent
    rows and the run that reads their outcome: that run used to fail on the pending table's missing
    column, and every run after it, with a raw binder error."""
    p = outbox_project
    monkeypatch.setenv("DINSYNC_OUTCOME_TIMEOUT_SECONDS", "0.3")
    with OutboxProcessor(p.outbox) as platform:
        platform.paused.set()
        assert p.sync()["runs"][0]["pending"] == 30
        (p.root / "syncs" / "people.yml").write_text(SYNC.replace("plan: plan", "plan: tier"))
        files_sent = len(list(p.outbox.glob("*.jsonl")))
        platform.paused.clear()
        deadline = time.monotonic() + 10
        while len(platform.processed) < files_sent:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        data = p.sync()
        [run] = data["runs"]
        assert (data["exit_code"], run["status"], run["error"]) == (0, "success", None)
        assert (run["changed"], run["acknowledged"]) == (30, 60)  # 30 outcomes read, 30 rows sent
        assert all(fields["tier"] == "free" for fields in platform.snapshot().values())
        assert len(platform.snapshot()) == 30
        assert p.sync()["runs"][0]["sent"] == 0


def _sync_process(p: OutboxProject) -> subprocess.Popen:
    env = dict(os.environ, DINSYNC_DESTINATION_MODULES="tests.toy_destination", DINSYNC_CHECKPOINT_SECONDS="0",
               PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "dinsync.cli", "--project-dir", str(p.root), "--json", "sync"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)


@pytest.mark.slow
@pytest.mark.parametrize("kill_after_files", [2, 7])
def test_sigkill_with_outcomes_pending_then_rerun_converges(tmp_path, monkeypatch, kill_after_files):
    p = OutboxProject(tmp_path / "proj", monkeypatch)
    p.seed(3000)
    p.configure(rows_per_file=100)
    with OutboxProcessor(p.outbox, delay=0.02) as platform:
        proc = _sync_process(p)
        deadline = time.monotonic() + 60
        while len(platform.processed) < kill_after_files:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the sync never reached the kill point"
            time.sleep(0.005)
        proc.kill()
        proc.wait(10)
        assert proc.returncode == -9
        delivered, committed = platform.snapshot(), p.snapshot()
        expected = p.segment()
        assert committed <= set(delivered) and len(committed) < 3000
        assert all(delivered[k] == expected[k] for k in committed)

        rerun = _sync_process(p)
        out, err = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, (out, err)
        assert platform.snapshot() == expected
        assert p.snapshot() == set(expected)
    assert not list(p.outbox.glob("*.part")), "an unfinished file was left behind"


def test_a_signal_while_the_run_waits_for_outcomes_stops_it_and_the_next_run_reads_them(outbox_project):
    """SIGTERM while a run waited for its pending outcomes (an import, a bulk job: minutes) did
    nothing until they arrived or DINSYNC_OUTCOME_TIMEOUT_SECONDS (10 minutes) ran out. The run
    now stops: what arrived is committed, the rest stays pending and the next run reads it."""
    p = outbox_project
    with OutboxProcessor(p.outbox) as platform:
        platform.paused.set()
        proc = _sync_process(p)
        deadline = time.monotonic() + 60
        while not list(p.outbox.glob("*.jsonl")):  # its file is written: the run waits for the outcome
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the sync never wrote its file"
            time.sleep(0.02)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            pytest.fail("the run still waited for its outcomes 15 s after SIGTERM")
        assert proc.returncode == 128 + signal.SIGTERM, (out, err)
        [run] = json.loads(out)["runs"]
        assert (run["status"], run["pending"], run["acknowledged"]) == ("cancelled", 30, 0)
        assert p.snapshot() == set()
        platform.paused.clear()
        deadline = time.monotonic() + 10
        while not platform.processed:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        again = p.sync()["runs"][0]
        assert (again["status"], again["sent"], again["acknowledged"]) == ("success", 0, 30)
        assert p.snapshot() == set(p.segment()) and platform.snapshot() == p.segment()


def test_a_plugin_that_cannot_be_loaded_is_a_located_configuration_error(outbox_project, monkeypatch):
    """Not an "unexpected error" (exit 1): the plugin is named, at the destination's type line."""
    p = outbox_project
    for module, message in (("tests.no_such_plugin", "cannot be imported: ModuleNotFoundError"),
                            ("json", "has no DESTINATIONS list")):
        monkeypatch.setenv("DINSYNC_DESTINATION_MODULES", module)
        destinations._plugins.cache_clear()
        result = CliRunner().invoke(app, ["--project-dir", str(p.root), "--json", "validate"], catch_exceptions=False)
        assert result.exit_code == 3, result.output
        issue, = json.loads(result.stdout)["issues"]
        assert (issue["file"], issue["line"]) == ("dinsync.yml", 5)
        assert issue["message"].startswith(f"destination plugin module {module} (DINSYNC_DESTINATION_MODULES) {message}")
        assert issue["hint"]
