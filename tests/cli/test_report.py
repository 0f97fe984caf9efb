"""Run objects and the exit-code precedence (dinsync.report)."""
from __future__ import annotations

import datetime as dt
import itertools

from dinsync.errors import ExitCode, RunSummary
from dinsync.report import RUN_COUNTS, failed_run, run_from_log, run_from_summary, utc_iso, worst_exit_code


def test_worst_outcome_wins_whatever_the_order():
    codes = [ExitCode.OK, ExitCode.WARNINGS, ExitCode.LOCKED, ExitCode.RUN_FAILED, ExitCode.CONFIG_ERROR]
    for order in itertools.permutations(codes):
        assert worst_exit_code(order) == ExitCode.CONFIG_ERROR
    assert worst_exit_code([ExitCode.WARNINGS, ExitCode.RUN_FAILED]) == ExitCode.RUN_FAILED
    assert worst_exit_code([ExitCode.RUN_FAILED, ExitCode.WARNINGS]) == ExitCode.RUN_FAILED
    assert worst_exit_code([ExitCode.WARNINGS, ExitCode.LOCKED, ExitCode.OK]) == ExitCode.LOCKED
    assert worst_exit_code([ExitCode.OK, ExitCode.WARNINGS]) == ExitCode.WARNINGS
    assert worst_exit_code([]) == ExitCode.OK


def test_timestamps_are_utc_with_zone():
    assert utc_iso(dt.datetime(2025, 1, 2, 3, 4, 5, 678901)) == "2025-01-02T03:04:05.678Z"
    paris = dt.timezone(dt.timedelta(hours=1))
    assert utc_iso(dt.datetime(2025, 1, 2, 4, 4, 5, tzinfo=paris)) == "2025-01-02T03:04:05.000Z"


def test_one_shape_from_the_log_from_a_summary_and_from_an_error():
    started = dt.datetime(2025, 1, 2, 3, 4, 5)
    row = {"run_id": "r1", "sync": "s", "started_at": started, "finished_at": started + dt.timedelta(seconds=2),
           "status": "warning", "full_refresh": False, "seconds": 2.0, "error": None,
           "warnings": "one | two", "tool_version": "0.1.0", **{c: 1 for c in RUN_COUNTS}}
    summary = RunSummary(sync="s", run_id="r1", status="warning", added=1, warnings=["one", "two"], seconds=2.0)
    from_log = run_from_log(row)
    from_summary = run_from_summary(summary, row, full_refresh=False, started_at=dt.datetime.now(dt.timezone.utc))
    failed = failed_run("s", "boom", "fix it", started_at=dt.datetime.now(dt.timezone.utc))
    assert list(from_log) == list(from_summary) == list(failed)
    assert from_log["warnings"] == from_summary["warnings"] == ["one", "two"]
    assert from_log["started_at"] == from_summary["started_at"] == "2025-01-02T03:04:05.000Z"
    assert (failed["status"], failed["run_id"], failed["error"], failed["hint"]) == ("failed", None, "boom", "fix it")
    assert failed["started_at"].endswith("Z") and failed["warnings"] == []


def test_a_run_the_wall_clock_stepped_back_during_has_no_negative_duration():
    """The wall clock stepped back an hour during a run (an NTP step) whose log row could not be
    read back (the warehouse went away): its report said `"seconds": -3588.0`, a run that ended
    before it began. Its duration is the engine's (elapsed time), that of a run that failed before
    the engine measured one never below 0."""
    started = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)  # the start, before the step back
    summary = RunSummary(sync="s", run_id="r1", status="failed", error="warehouse gone", seconds=12.0)
    run = run_from_summary(summary, None, full_refresh=False, started_at=started, recorded=True)
    assert run["seconds"] == 12.0, run
    failed = failed_run("s", "boom", None, started_at=started)
    assert failed["seconds"] >= 0, failed
