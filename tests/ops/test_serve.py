"""`dinsync serve` in process, on a clock the test moves: runs of the real engine against the
Iterable sandbox, automatic pauses named after their culprit, skipped slots, rechecks that resume
and catch up once, and a warehouse that goes away (paused in memory)."""
from __future__ import annotations

import datetime as dt
import json
import types

import pytest

from dinsync.cli import connect_existing, run_sync
from dinsync.operations import connect_warehouse
from dinsync.config import load_project
from dinsync.engine import StopToken
from dinsync.errors import LockBusyError
from dinsync.ops.notify import Notifier
from dinsync.ops.serve import Service, format_line
from dinsync.warehouses.errors import WarehouseUnavailable
from tests.ops.conftest import set_sync
from tests.ops.test_scheduler import FakeClock, InlineExecutor

UTC = dt.timezone.utc


class Served:
    def __init__(self, ops, *, down=None):
        self.ops = ops
        self.project = load_project(ops.root)
        self.events: list[dict] = []
        self.clock = FakeClock(dt.datetime.now(UTC) + dt.timedelta(hours=2))
        self.down = down  # a list: while it holds True, the warehouse cannot be reached
        stop = StopToken()
        self.service = Service(self.project, ["iterable_users"], connect=self.connect,
                               run_one=lambda wh, name, errors: run_sync(self.project, wh, name, False, stop=stop,
                                                                         errors=errors),
                               notifier=Notifier(self.project.notifications), emit=self.events.append, stop=stop,
                               clock=self.clock, executor=InlineExecutor(), recheck_seconds=600)
        self.scheduler = self.service.build()

    def connect(self):
        if self.down and self.down[0]:
            raise WarehouseUnavailable("DuckDB: could not reach the warehouse (test)")
        return connect_warehouse(self.project.warehouse, self.project.root)

    def at(self, minutes: float) -> list[dict]:
        """Move the clock `minutes` on, step once; the events of that step."""
        self.clock.t += dt.timedelta(minutes=minutes)
        before = len(self.events)
        self.scheduler.step(self.clock.t)
        return self.events[before:]


def kinds(events: list[dict]) -> list[str]:
    return [e["event"] for e in events]


@pytest.fixture
def scheduled(ops):
    set_sync(ops, extra="schedule: {every: 15m}\n")
    return ops


def test_serve_catches_up_once_then_follows_the_schedule_and_logs_each_run(scheduled):
    ops = scheduled
    ops.sync()  # the run log says: last run two hours ago (the clock is 2 h ahead)
    served = Served(ops)
    [banner] = served.events
    assert banner["event"] == "serve" and banner["syncs"][0]["schedule"] == "every 15m"
    assert "1 scheduled sync(s): iterable_users (every 15m, next " in format_line(banner)
    ops.sql("update main.customers set plan = 'pro' where id <= 3")
    events = served.at(0)
    assert kinds(events) == ["start", "end"]  # eight missed slots: one run
    start, end = events
    assert end["exit_code"] == 0 and end["run"]["status"] == "success" and end["run"]["changed"] == 3
    assert end["error"] is None  # every `end` carries `error` (README), also when the run started
    assert start["at"].endswith("Z") and start["slot"] < start["at"]
    assert format_line(end).split(" ", 1)[1].startswith("end iterable_users success in ")
    assert served.at(1) == [] and served.at(13) == []
    assert kinds(served.at(1)) == ["start", "end"]  # 15 minutes after the catch-up run
    assert [r[0] for r in ops.sql("select status from dinsync.runs order by started_at")] == ["success"] * 3
    json.dumps(served.events)  # every event is a JSON line


def test_a_missing_column_pauses_its_sync_until_it_is_back(scheduled):
    ops = scheduled
    (ops.root / "models" / "customers.sql").write_text("-- primary_key: id\n-- model_type: user\n"
                                                       "select * from main.customers\n")
    ops.sync()
    served = Served(ops)
    served.at(0)
    ops.sql("alter table main.customers drop column plan")
    events = served.at(15)
    assert kinds(events) == ["start", "paused", "end"]
    assert events[2]["run"]["status"] == "failed" and events[2]["exit_code"] == 1
    assert events[2]["error"] == events[2]["run"]["error"] and "plan" in events[2]["error"]
    assert events[1]["culprit"] == "column" and events[1]["paused_by"] == "auto"
    assert format_line(events[1]).split(" ", 1)[1] == (
        "paused iterable_users (column): column 'plan' (mapped to 'plan') is not a column of model customers")
    status = ops.status()["iterable_users"]
    assert (status["state"], status["paused_by"], status["culprit"]) == ("paused", "auto", "column")
    assert status["reason"] == "column 'plan' (mapped to 'plan') is not a column of model customers"
    assert ops.events() == ["paused"]

    events = served.at(15)  # the next slot (and the recheck, 10 min after the last): skipped, still paused
    assert kinds(events) == ["skip", "check"] and events[0]["reason"] == "paused (auto)"
    assert events[1]["ok"] is False and "column 'plan' (mapped to 'plan') is not a column" in events[1]["reason"]
    runs_so_far = len(ops.sql("select * from dinsync.runs"))

    ops.sql("alter table main.customers add column plan varchar default 'free'")
    events = served.at(10)  # the recheck resumes it; having missed a slot, it is due at once
    assert kinds(events) == ["resumed", "check"] and events[1]["ok"] is True
    assert ops.events() == ["paused", "resumed"]
    assert kinds(served.at(0)) == ["start", "end"]
    assert len(ops.sql("select * from dinsync.runs")) == runs_so_far + 1
    assert ops.status()["iterable_users"]["state"] == "success"
    assert ops.sql("select event from dinsync.events where event in ('paused', 'resumed') order by event_at") == \
        [("paused",), ("resumed",)]


def test_a_failing_model_pauses_with_the_warehouse_message(scheduled):
    ops = scheduled
    ops.sync()
    served = Served(ops)
    served.at(0)
    ops.sql("alter table main.customers rename to customers_old")
    served.at(15)
    status = ops.status()["iterable_users"]
    assert (status["state"], status["culprit"]) == ("paused", "model")
    assert status["reason"].startswith("model customers failed in the warehouse: DuckDB: Catalog Error: Table "
                                       "with name customers does not exist")
    ops.sql("alter table main.customers_old rename to customers")
    served.at(15)  # skipped, then the recheck passes
    assert not ops.status()["iterable_users"]["paused"]


def test_a_paused_by_hand_sync_is_skipped_and_never_checked(scheduled):
    ops = scheduled
    ops.sync()
    served = Served(ops)
    served.at(0)
    assert ops.cli("pause", "iterable_users").exit_code == 0
    events = served.at(15) + served.at(15) + served.at(15)
    assert kinds(events) == ["skip", "skip", "skip"] and events[0]["reason"] == "paused (by hand)"
    assert ops.cli("resume", "iterable_users").exit_code == 0
    assert kinds(served.at(10)) == ["start", "end"]  # the recheck sees it resumed elsewhere: it catches up once
    assert served.at(0) == []


def test_an_unreachable_warehouse_pauses_in_memory_and_resumes_when_it_answers(scheduled):
    ops = scheduled
    ops.sync()
    down = [False]
    served = Served(ops, down=down)
    served.at(0)
    down[0] = True
    events = served.at(15)  # reading the paused syncs finds the warehouse gone: skipped, checked, still down
    assert kinds(events) == ["paused", "skip", "check"]
    assert events[0]["culprit"] == "warehouse" and "could not reach the warehouse (test)" in events[0]["reason"]
    assert events[1]["reason"].startswith("the warehouse cannot be reached") and events[2]["ok"] is False
    assert ops.events() == ["paused"]
    assert kinds(served.at(15)) == ["skip", "check"]
    assert ops.events() == ["paused"]  # told once
    down[0] = False
    events = served.at(10)
    assert kinds(events) == ["resumed"] and "unreachable since" in events[0]["reason"]
    assert ops.events() == ["paused", "resumed"]
    assert kinds(served.at(0)) == ["start", "end"]  # the slot it missed: once
    logged = ops.sql("select event, detail from dinsync.events where event in ('paused', 'resumed') order by event_at")
    assert [e for e, _ in logged] == ["paused", "resumed"] and logged[0][1].startswith("auto: warehouse: ")


def test_an_outages_paused_notice_names_the_state_it_follows(scheduled):
    """The `paused` notice of an unreachable warehouse had `previous_state` null, where every other
    notice names the state told last: here `ok`, told by the run that recovered from `failed` (as
    sync_state said when the service last read it) just before the warehouse went away."""
    ops = scheduled
    ops.sync()
    ops.sql("insert into dinsync.sync_state (sync, paused, notified_state, updated_at) "
            "values ('iterable_users', false, 'failed', timezone('UTC', now()))")
    down = [False]
    served = Served(ops, down=down)
    assert kinds(served.at(15)) == ["start", "end"]
    down[0] = True
    assert kinds(served.at(15))[0] == "paused"
    hooks = [r["json"] for r in ops.receiver.received if r["path"] == "/hook"]
    assert [(h["event"], h["state"], h["previous_state"]) for h in hooks] == [
        ("recovered", "ok", "failed"), ("paused", "paused", "ok")]


def test_a_warehouse_file_gone_is_an_outage_not_a_new_empty_file(scheduled):
    """`serve` connected for each run as `sync` does once, with a DuckDB file validated when the
    process started: deleted or moved since, the file was created again, empty, and the run failed
    on its model (or, with the model elsewhere, synced into a new state). It is now an outage that
    ends when the file is back."""
    ops = scheduled
    ops.sync()
    served = Served(ops)
    served.connect = lambda: connect_existing(served.project.warehouse, served.project.root)
    served.service.connect = served.connect
    path = served.project.warehouse.resolved_path(served.project.root)
    served.at(0)
    moved = ops.root / "elsewhere.duckdb"
    (ops.root / path).rename(moved)
    events = served.at(15)
    assert not (ops.root / path).exists()
    assert kinds(events) == ["paused", "skip", "check"] and events[0]["culprit"] == "warehouse"
    assert f"warehouse.path {path} does not exist (deleted or moved since this process started?)" in events[0]["reason"]
    moved.rename(ops.root / path)
    assert kinds(served.at(10)) == ["resumed"]
    assert kinds(served.at(0)) == ["start", "end"]


class Starting:
    """A service whose warehouse connections are counted, with a hook called on each (e.g. a
    SIGTERM arriving while connecting), and whose runs are only recorded."""

    def __init__(self, ops, on_connect=None):
        self.project = load_project(ops.root)
        self.stop = StopToken()
        self.events: list[dict] = []
        self.connects = 0
        self.runs: list[str] = []
        self.on_connect = on_connect
        self.service = Service(self.project, ["iterable_users"], connect=self.connect, run_one=self.run_one,
                               notifier=Notifier(self.project.notifications), emit=self.events.append,
                               stop=self.stop, clock=FakeClock(dt.datetime.now(UTC) + dt.timedelta(hours=2)),
                               executor=InlineExecutor(), recheck_seconds=600)

    def connect(self):
        self.connects += 1
        if self.on_connect:
            self.on_connect(self)
        return connect_warehouse(self.project.warehouse, self.project.root)

    def run_one(self, wh, name, errors):
        self.runs.append(name)
        return {"status": "success"}, 0


class HeldFile:
    """Another process (a `dinsync status`, a dbt build) holding the DuckDB file for the next
    `times` connections: `check` (an `on_connect` hook) refuses them as opening the file would."""

    def __init__(self, times: int = 0):
        self.times = times

    def check(self, *_) -> None:
        if self.times > 0:
            self.times -= 1
            raise LockBusyError("the DuckDB file warehouse.duckdb is in use by another process")


def test_a_stop_requested_while_loading_the_project_ends_serve_before_it_connects(scheduled):
    served = Starting(scheduled)
    served.stop.request()  # SIGTERM while the CLI loads the project
    served.service.serve()
    assert kinds(served.events) == ["stop"] and served.events[0]["signal"] == "SIGTERM"
    assert served.connects == 0 and served.runs == []


def test_a_stop_requested_while_connecting_at_start_up_prepares_nothing_more(scheduled):
    """Before, the service went on: state tables migrated, run log read, `serve` line, then the
    loop saw the request."""
    ops = scheduled
    ops.sync()  # a sync that is due at once (its last run two hours ago on the test's clock)
    served = Starting(ops, on_connect=lambda s: s.stop.request())
    served.service.serve()
    assert kinds(served.events) == ["stop"], served.events
    assert served.connects == 1 and served.runs == []


def test_a_stop_requested_while_a_run_connects_or_is_guarded_does_not_start_it(scheduled):
    ops = scheduled
    ops.sync()
    served = Starting(ops)
    scheduler = served.service.build()
    served.on_connect = lambda s: s.stop.request() if s.connects == 3 else None  # the run's (after paused())
    scheduler.step(served.service.clock.now())
    assert kinds(served.events) == ["serve", "start", "end"], served.events
    end = served.events[-1]
    assert end["run"] is None and end["error"] == "not started: a stop was requested" and end["exit_code"] == 143
    assert served.runs == []


def test_slots_missed_before_start_up_run_once_when_the_run_log_could_only_be_read_later(scheduled):
    """The warehouse could not be reached when the service started (or the DuckDB file was held by
    another process just then): the run log was not read, and the sync was scheduled as one never
    run, from start-up: the slots it missed while the service was down were never caught up (a
    daily sync skipped a whole day). The run log is now read at the first connection that works."""
    ops = scheduled
    ops.sync()  # the last run: two hours ago on the test's clock, eight slots missed
    down = [True]
    served = Served(ops, down=down)
    assert served.scheduler.jobs["iterable_users"].next_due > served.clock.t  # the run log was unread
    down[0] = False
    events = served.at(0) + served.at(0)
    assert kinds(events).count("start") == 1 and kinds(events)[-2:] == ["start", "end"], events
    assert events[-1]["run"]["status"] == "success"
    assert served.at(1) == []  # once, then the schedule
    assert kinds(served.at(15)) == ["start", "end"]


def test_a_run_due_while_another_process_holds_the_duckdb_file_waits_for_it(scheduled):
    """DuckDB lets one process open its file: a `dinsync status` (or a dbt build) holding it at the
    instant of a slot made the run end at once with exit 5, and the sync waited for its next slot
    (a daily sync: a day) although no other run was doing its work. The run now waits for the file
    (a bounded wait, on the service's clock)."""
    ops = scheduled
    ops.sync()  # due at once (its last run two hours ago on the test's clock)
    held = HeldFile()
    served = Starting(ops, on_connect=held.check)
    scheduler = served.service.build()
    held.times = 4  # the paused-syncs read and three attempts of the run find the file held
    scheduler.step(served.service.clock.now())
    assert served.runs == ["iterable_users"], served.events
    end = [e for e in served.events if e["event"] == "end"]
    assert [e["exit_code"] for e in end] == [0]
    assert sum(1 for e in served.events if e["event"] == "note" and "waiting up to" in e["message"]) == 1

    held.times = 10 ** 6  # held for good: refused with exit 5 once the wait is over
    served.service.busy_wait_seconds = 30
    scheduler.jobs["iterable_users"].next_due = served.service.clock.now()
    scheduler.step(served.service.clock.now())
    assert served.runs == ["iterable_users"]
    assert [e["exit_code"] for e in served.events if e["event"] == "end"] == [0, 5]


def test_a_stop_while_a_run_waits_for_the_duckdb_file_says_it_did_not_start_for_the_stop(scheduled):
    """SIGTERM while a run waited for a DuckDB file another process held ended the wait (as it
    should), but its `end` line said exit 5 with "the DuckDB file ... is in use by another process",
    as if the hold had refused it, where a run a stop keeps from starting says so (exit 143)."""
    ops = scheduled
    ops.sync()  # due at once (its last run two hours ago on the test's clock)

    def on_connect(s):
        if s.connects >= 3:  # the run's second attempt: the file still held, a stop asked meanwhile
            s.stop.request()
        if s.connects >= 2:
            raise LockBusyError("the DuckDB file warehouse.duckdb is in use by another process")

    served = Starting(ops, on_connect=on_connect)
    scheduler = served.service.build()
    scheduler.step(served.service.clock.now())
    end = [e for e in served.events if e["event"] == "end"]
    assert [(e["exit_code"], e["error"]) for e in end] == [(143, "not started: a stop was requested")], served.events
    assert served.runs == []


def test_a_slot_another_process_already_ran_is_not_run_again(scheduled):
    """Two services on one project (or a `dinsync sync` by hand after the slot): the second ran the
    sync again in the same slot once the first had finished (on DuckDB always: it waits for the file
    the first one holds, then runs). A run started at or after the slot, by anyone, is that slot's."""
    ops = scheduled
    ops.sync()
    served = Served(ops)  # due at once (its last run two hours ago on the test's clock)
    other_start = served.clock.t.astimezone(UTC).replace(tzinfo=None)  # another service, at this slot
    ops.sql("insert into dinsync.runs (run_id, sync, started_at, finished_at, status, full_refresh, tool_version) "
            f"values ('20990101T000000-0badcafe', 'iterable_users', '{other_start}', '{other_start}', 'success', "
            "false, 'test')")
    events = served.at(0)
    assert kinds(events) == ["start", "end"], events
    assert events[1]["exit_code"] == 0 and events[1]["run"] is None
    assert "another process started run 20990101T000000-0badcafe" in events[1]["error"], events
    assert "not started (exit 0)" in format_line(events[1])
    assert ops.sql("select count(*) from dinsync.runs") == [(2,)]  # ours and the other's: no second run

    events = served.at(15)  # the next slot is this service's again
    assert kinds(events) == ["start", "end"] and events[1]["run"]["status"] == "success", events
    assert ops.sql("select count(*) from dinsync.runs") == [(3,)]


def test_an_interval_counts_from_a_run_another_process_started_before_the_slot(scheduled):
    """`every: 15m`: an interval counts from the last run's start (README), but a run another
    process started shortly before the slot (a `dinsync sync` by hand 5 minutes before it, or a
    second service whose slots fall a little before this one's) did not count: the service ran the
    sync again at its own slot, 5 minutes after, and two services on one project each ran it once
    per interval. Such a run now covers the slot, and the next one is an interval after its start."""
    ops = scheduled
    ops.sync()
    served = Served(ops)
    assert kinds(served.at(0)) == ["start", "end"]  # the catch-up run; the next slot in 15 minutes
    by_hand = (served.clock.t + dt.timedelta(minutes=10)).astimezone(UTC).replace(tzinfo=None)
    ops.sql("insert into dinsync.runs (run_id, sync, started_at, finished_at, status, full_refresh, tool_version) "
            f"values ('20990101T000000-0badcafe', 'iterable_users', '{by_hand}', '{by_hand}', 'success', "
            "false, 'test')")
    events = served.at(15)  # the slot, 5 minutes after the run by hand
    assert kinds(events) == ["start", "end"] and events[1]["run"] is None, events
    assert events[1]["exit_code"] == 0 and "another process started run 20990101T000000-0badcafe" in events[1]["error"]
    assert ops.sql("select count(*) from dinsync.runs") == [(3,)]  # the sync by hand, ours, theirs: no new run
    assert served.at(9) == []  # 14 minutes after the run by hand
    events = served.at(1)  # 15 minutes after it
    assert kinds(events) == ["start", "end"] and events[1]["run"]["status"] == "success", events
    assert ops.sql("select count(*) from dinsync.runs") == [(4,)]


def test_a_run_the_lock_refused_ends_with_no_run_object(scheduled):
    """A slot whose run the sync's lock refused (another process's run holds it) is logged `not
    started (exit 5)`, but its JSON `end` carried a run object (status `failed`, run_id null) where
    the README says `run` is null when the run did not start and `error` says why: a collector
    counting the `end` lines with a run counted a failed run that never was."""
    ops = scheduled
    ops.sync()
    served = Served(ops)
    assert kinds(served.at(0)) == ["start", "end"]
    ops.sql("insert into dinsync.locks (sync, run_id, holder, acquired_at, expires_at, ticket, choosing) values "
            "('iterable_users', 'elsewhere-run', 'another-host:4242:1', timezone('UTC', now()), "
            "timezone('UTC', now()) + interval 1 hour, 1, false)")
    events = served.at(15)
    assert kinds(events) == ["start", "end"], events
    end = events[1]
    assert end["exit_code"] == 5 and "already running" in end["error"], end
    assert end["run"] is None, end
    assert format_line(end).split(" ", 1)[1].startswith("end iterable_users not started (exit 5): sync ")


def test_a_slot_this_services_own_late_run_covered_is_not_blamed_on_another_process(scheduled):
    """A run that waited for the DuckDB file (a `dinsync status`, a dbt build) started after the
    next slot; that slot was rightly not run again, but its `end` said "another process started run
    R", naming the service's own run, and its log line "not started (exit 0): not started: ..."."""
    ops = scheduled
    served = Served(ops)
    served.service.run("iterable_users", served.clock.t)  # a run of this service
    own = [e for e in served.events if e["event"] == "end"][-1]["run"]
    slot = dt.datetime.fromisoformat(own["started_at"].replace("Z", "+00:00")) - dt.timedelta(seconds=1)
    served.service.run("iterable_users", slot)  # a slot before that run started: covered by it
    end = served.events[-1]
    assert end["event"] == "end" and end["run"] is None and end["exit_code"] == 0, end
    assert "another process" not in end["error"], end
    assert f"this service's run {own['run_id']} started at " in end["error"], end
    assert format_line(end).split(" ", 1)[1].startswith(
        f"end iterable_users not started (exit 0): this service's run {own['run_id']}"), format_line(end)
    assert ops.sql("select count(*) from dinsync.runs") == [(1,)]


def test_the_service_remembers_one_run_of_its_own_per_sync(scheduled):
    """The service kept the id of every run it started, for as long as it lived (to tell its own
    late run from another process's): `every: 1s` added 86,400 ids a day, a slow leak in a process
    meant to run for months. Only a sync's last run is ever compared, so only that one is kept, and
    a slot its own late run covered is still told apart."""
    ops = scheduled
    served = Served(ops)
    for _ in range(3):
        served.service.run("iterable_users", served.clock.t)
    assert len(served.service._own_runs) == 1, served.service._own_runs
    own = [e for e in served.events if e["event"] == "end"][-1]["run"]
    slot = dt.datetime.fromisoformat(own["started_at"].replace("Z", "+00:00")) - dt.timedelta(seconds=1)
    served.service.run("iterable_users", slot)
    assert f"this service's run {own['run_id']} started at " in served.events[-1]["error"], served.events[-1]


def test_a_run_leaves_no_plan_in_a_duckdb_instance_another_run_keeps_open(scheduled):
    """`serve --parallel`: runs overlap, so the process's DuckDB instance stays open from one run
    to the next, and a scratch database attached to it outlived the run that planned in it: every
    sync's last plan stayed in DuckDB's pool and temporary files until no run was open. A run now
    lets go of its sync's scratch database when it ends, and `dinsync plan` after its samples."""
    from dinsync.operations import plan_sync

    scheduled.sync()  # due at once (its last run two hours ago on the test's clock)
    scheduled.sql("update main.customers set plan = 'pro' where id <= 3")
    served = Served(scheduled)
    overlapping = served.connect()  # another run's connection, open meanwhile (same process, same file)
    try:
        def scratch():
            return sorted(overlapping.query("SELECT database_name FROM duckdb_databases() "
                                            "WHERE database_name LIKE 'dinsync_scratch%'").column(0).to_pylist())

        assert scratch() == []
        served.at(0)  # the sync runs on a connection of its own, then closes it
        assert [(e["run"]["status"], e["run"]["changed"]) for e in served.events if e["event"] == "end"] == [
            ("success", 3)]
        assert scratch() == []  # was: ['dinsync_scratch_iterable_users'], holding the plan
        report = plan_sync(served.project, overlapping, "iterable_users", samples=2)
        assert report["added"] == 0 and scratch() == []
    finally:
        overlapping.close()


def test_a_paused_sync_whose_slot_finds_the_duckdb_file_held_is_skipped_not_started(scheduled):
    """The paused syncs are read at each slot; when another process held the DuckDB file then (a
    `dinsync status`, a dbt build), the read answered "none paused": a sync paused by hand was
    started (a `start` line, a wait for the file, then `end ... not started (exit 6)`), and an
    automatically paused one lost the slot it missed (no catch-up when it resumes). The pauses as
    last read now stand while the file is held."""
    ops = scheduled
    ops.sync()
    held = HeldFile()
    served = Starting(ops, on_connect=held.check)
    scheduler = served.service.build()
    scheduler.step(served.service.clock.now())  # the catch-up run
    assert served.runs == ["iterable_users"]
    assert ops.cli("pause", "iterable_users").exit_code == 0
    served.service.clock.t += dt.timedelta(minutes=15)
    scheduler.step(served.service.clock.now())  # the pause is read: skipped
    assert [e["event"] for e in served.events][-1] == "skip"
    held.times = 1  # the next slot's read of the paused syncs finds the file held
    served.service.clock.t += dt.timedelta(minutes=15)
    before = len(served.events)
    scheduler.step(served.service.clock.now())
    events = served.events[before:]
    assert [e["event"] for e in events] == ["skip"], events
    assert served.runs == ["iterable_users"] and scheduler.jobs["iterable_users"].missed


def test_an_outage_of_a_sync_already_paused_tells_no_resume_while_it_stays_paused(scheduled):
    """A sync paused by itself (its model broken) when the warehouse went away got a second
    `paused` notice (paused -> paused), and when the warehouse answered again channels heard
    `resumed` and sync_state said `ok` told, while the sync stayed paused for its model (the check
    right after still failed): people were told it runs again. The outage now tells nothing of a
    sync channels know paused, and its end resumes only what the outage paused."""
    ops = scheduled
    ops.sync()
    down = [False]
    served = Served(ops, down=down)
    served.at(0)
    ops.sql("alter table main.customers rename to customers_old")
    served.at(15)
    assert ops.status()["iterable_users"]["culprit"] == "model" and ops.events() == ["paused"]
    down[0] = True
    served.at(15)
    down[0] = False
    events = served.at(15)
    assert ops.status()["iterable_users"]["paused"] and "resumed" not in kinds(events), events
    assert ops.events() == ["paused"]
    assert ops.status()["iterable_users"]["notified_state"] == "paused"
    ops.sql("alter table main.customers_old rename to customers")
    served.at(15)
    assert ops.events() == ["paused", "resumed"] and not ops.status()["iterable_users"]["paused"]


def test_a_broken_stdout_does_not_stop_the_runs(scheduled, capsys):
    """`dinsync serve --json | collector`: once the reader went away (a log shipper restarted, a
    `| head`), each `start` line raised BrokenPipeError before its run: the service stayed up and
    ran nothing, silently, then exited 1 on SIGTERM. Lines that cannot be written are dropped
    (stderr says so once) and the syncs keep running."""
    ops = scheduled
    ops.sync()  # due at once (its last run two hours ago on the test's clock)
    served = Starting(ops)

    def broken(event):
        raise BrokenPipeError(32, "Broken pipe")

    served.service._emit = broken
    scheduler = served.service.build()
    scheduler.step(served.service.clock.now())
    served.service.clock.t += dt.timedelta(minutes=15)
    scheduler.step(served.service.clock.now())
    assert served.runs == ["iterable_users", "iterable_users"]
    err = capsys.readouterr().err
    assert err.count("the service's log lines cannot be written") == 1, err


def test_a_slot_whose_run_found_the_warehouse_gone_runs_once_it_answers(scheduled):
    """The warehouse went away between the read of the paused syncs and the run's connection:
    the sync was paused in memory (told once), but its slot was not counted as missed, so the
    resume did not run it and it waited for its next slot (a daily sync: a day), where a slot
    skipped for the same outage runs once right after it."""
    ops = scheduled
    ops.sync()
    refuse = []

    def on_connect(s):
        if s.connects in refuse:
            raise WarehouseUnavailable("PostgreSQL: connection refused (test)")

    served = Starting(ops, on_connect=on_connect)
    scheduler = served.service.build()
    refuse.append(served.connects + 2)  # the step's read of the paused syncs works, the run's connection not
    scheduler.step(served.service.clock.now())
    assert served.runs == [] and [e["event"] for e in served.events][-2:] == ["paused", "end"]
    served.service.clock.t += dt.timedelta(minutes=10)  # the recheck: the warehouse answers
    scheduler.step(served.service.clock.now())
    assert any(e["event"] == "resumed" for e in served.events)
    scheduler.step(served.service.clock.now())
    assert served.runs == ["iterable_users"], served.events


def test_a_sync_a_run_just_paused_is_skipped_when_the_next_read_finds_the_file_held(scheduled):
    """The pauses as last read stand while the DuckDB file is held; a pause its own run had just
    made was not among them yet, so the next slot started the sync (a `start`, a wait for the
    file, a check) as if it were not paused."""
    ops = scheduled
    ops.sync()
    served = Served(ops)
    served.at(0)
    ops.sql("alter table main.customers rename to customers_old")
    assert "paused" in kinds(served.at(15))
    connect, held = served.service.connect, HeldFile(1)

    def held_connect():
        held.check()
        return connect()

    served.service.connect = held_connect
    events = served.at(15)
    assert kinds(events)[:1] == ["skip"], events


def _served_on_the_wall_clock(ops, monkeypatch) -> "Served":
    """A service whose clock is also the wall clock the engine records a run's start at."""
    served = Served(ops)

    class Wall(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return served.clock.t.astimezone(tz)

    monkeypatch.setattr("dinsync.engine.run.dt", types.SimpleNamespace(**{**vars(dt), "datetime": Wall}))
    return served


def test_an_interval_goes_on_after_the_wall_clock_steps_back(scheduled, monkeypatch):
    """An NTP step back of an hour: the scheduler waited for the wall clock to reach its slot
    again, and at each slot the service took its run recorded before the step (the run log's last
    for an hour) for a run that covered it: no run for the whole step."""
    ops = scheduled
    ops.sync()
    served = _served_on_the_wall_clock(ops, monkeypatch)
    assert kinds(served.at(0)) == ["start", "end"]  # the catch-up run
    served.clock.t -= dt.timedelta(hours=1)  # the step back
    assert served.at(0) == []
    for _ in range(2):  # 15 minutes after the run, by the time that passed; and again
        events = served.at(15)
        assert kinds(events) == ["start", "end"], events
        assert (events[1]["run"] or {}).get("status") == "success", events[1]["error"]


def test_a_run_by_hand_before_the_wall_clock_steps_back_covers_one_slot_not_the_whole_step(scheduled, monkeypatch):
    """A `dinsync sync` by hand, then an NTP step back of an hour: the run log's last run (the one
    by hand) started later than now, and each slot of the hour took it for a run of another process
    after the slot: no run for the whole step. It covers one slot, as any run after a slot does."""
    ops = scheduled
    ops.sync()
    served = _served_on_the_wall_clock(ops, monkeypatch)
    assert kinds(served.at(0)) == ["start", "end"]  # the catch-up run
    assert served.at(5) == []
    assert ops.sync()["exit_code"] == 0  # by hand, 5 minutes after the service's run
    served.clock.t -= dt.timedelta(hours=1)  # the step back
    assert served.at(0) == []
    events = served.at(10)  # the slot 15 minutes after the service's run: covered by the run by hand
    assert kinds(events) == ["start", "end"] and "another process started run" in events[1]["error"], events
    assert events[1]["run"] is None
    events = served.at(15)  # the next one runs
    assert kinds(events) == ["start", "end"], events
    assert (events[1]["run"] or {}).get("status") == "success", events[1]["error"]


def test_the_wait_for_a_held_duckdb_file_stays_bounded_when_the_wall_clock_steps_back(scheduled):
    """The wall clock stepped back an hour (an NTP step) while a run waited for the DuckDB file
    another process held: its deadline, a wall time, moved an hour away, and the run waited (and
    tried to open the file each second) an hour and 30 s instead of 30 s."""
    ops = scheduled
    ops.sync()  # due at once (its last run two hours ago on the test's clock)
    held = HeldFile(10 ** 6)
    served = Starting(ops)
    scheduler = served.service.build()
    served.on_connect = held.check
    served.service.busy_wait_seconds = 30
    clock = served.service.clock

    def step_back_once(c):
        c.on_wait = None
        c.t -= dt.timedelta(hours=1)

    clock.on_wait = step_back_once
    scheduler.step(clock.now())
    assert served.runs == [] and [e["exit_code"] for e in served.events if e["event"] == "end"] == [5]
    assert sum(clock.waits) <= 31, (len(clock.waits), sum(clock.waits))
