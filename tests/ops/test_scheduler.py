"""The scheduler on a clock the tests move: next slots, catch-up once, no overlap, paused syncs,
rechecks, a full worker pool, and the loop's stop. No test sleeps."""
from __future__ import annotations

import datetime as dt
import threading

import pytest

from dinsync.config.models import Schedule
from dinsync.engine import StopToken
from dinsync.ops.scheduler import Scheduler, next_fire

UTC = dt.timezone.utc
T0 = dt.datetime(2025, 1, 1, 5, 59, tzinfo=UTC)


def at(hour: int, minute: int = 0, second: int = 0, day: int = 1) -> dt.datetime:
    return dt.datetime(2025, 1, day, hour, minute, second, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: dt.datetime):
        self.t = now
        self.waits: list[float] = []
        self.on_wait = None

    def now(self) -> dt.datetime:
        return self.t

    def wait(self, seconds: float, wake: threading.Event) -> None:
        self.waits.append(seconds)
        self.t += dt.timedelta(seconds=seconds)
        if self.on_wait:
            self.on_wait(self)


class Hooks:
    """Records what the scheduler asks for; runs block until released when `hold` is set."""

    def __init__(self):
        self.runs: list[tuple[str, dt.datetime]] = []
        self.checks: list[str] = []
        self.skips: list[tuple[str, dt.datetime, str]] = []
        self.paused_syncs: dict[str, str] = {}
        self.resume_on_check: set[str] = set()
        self.hold = None  # threading.Event: runs wait for it
        self.started = threading.Semaphore(0)
        self.lock = threading.Lock()

    def paused(self):
        return dict(self.paused_syncs)

    def run(self, name, slot):
        with self.lock:
            self.runs.append((name, slot))
        self.started.release()
        if self.hold is not None:
            assert self.hold.wait(10)

    def check(self, name):
        self.checks.append(name)
        if name in self.resume_on_check:
            self.paused_syncs.pop(name, None)
            return True
        return False

    def skipped(self, name, slot, by):
        self.skips.append((name, slot, by))


class InlineExecutor:
    """Runs submitted work at once, on the calling thread (a run is over when step() returns)."""

    def submit(self, fn, *args):
        import concurrent.futures

        future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the future like a pool does
            future.set_exception(exc)
        return future

    def shutdown(self, wait=True):
        pass


DAILY = Schedule.model_validate("0 6 * * *")
EVERY_15M = Schedule.model_validate({"every": "15m"})


def make(schedules, clock, hooks, last=None, **kw):
    kw.setdefault("executor", InlineExecutor())
    return Scheduler(schedules, hooks=hooks, clock=clock, last_started=last or {}, **kw)


# --- next slots ------------------------------------------------------------------------------

def test_next_fire_cron_interval_and_time_zone():
    assert next_fire(DAILY, at(5, 59)) == at(6)
    assert next_fire(DAILY, at(6)) == at(6, day=2)  # strictly after
    assert next_fire(EVERY_15M, at(6, 1)) == at(6, 16)
    paris = Schedule.model_validate({"cron": "0 6 * * *", "timezone": "Europe/Paris"})
    assert next_fire(paris, at(4)) == at(5)  # 06:00 in Paris is 05:00 UTC in winter
    summer = dt.datetime(2025, 7, 1, 3, tzinfo=UTC)
    assert next_fire(paris, summer) == dt.datetime(2025, 7, 1, 4, tzinfo=UTC)
    naive = dt.datetime(2025, 1, 1, 5, 59)  # the run log's naive UTC
    assert next_fire(DAILY, naive) == at(6)


def test_a_fixed_time_runs_once_when_the_clocks_go_back():
    """Paris, 26 October 2025: 02:30 happens twice (00:30 and 01:30 UTC). A daily sync ran at both;
    cron runs a fixed-time job once, and a job of every hour (or every n minutes) in both hours."""
    daily = Schedule.model_validate({"cron": "30 2 * * *", "timezone": "Europe/Paris"})
    eve = dt.datetime(2025, 10, 25, 22, tzinfo=UTC)
    first = next_fire(daily, eve)
    assert first == dt.datetime(2025, 10, 26, 0, 30, tzinfo=UTC)
    assert next_fire(daily, first) == dt.datetime(2025, 10, 27, 1, 30, tzinfo=UTC)
    half_hourly = Schedule.model_validate({"cron": "30 * * * *", "timezone": "Europe/Paris"})
    assert next_fire(half_hourly, first) == dt.datetime(2025, 10, 26, 1, 30, tzinfo=UTC)
    # spring forward: 02:30 does not exist on 30 March; the run happens at 03:00 CEST, once
    spring = next_fire(daily, dt.datetime(2025, 3, 29, 22, tzinfo=UTC))
    assert spring == dt.datetime(2025, 3, 30, 1, tzinfo=UTC)
    assert next_fire(daily, spring) == dt.datetime(2025, 3, 31, 0, 30, tzinfo=UTC)


def test_schedule_forms_and_errors():
    assert Schedule.model_validate({"every": "1h30m"}).every == 5400
    assert Schedule.model_validate({"every": 90}).describe() == "every 1m30s"
    assert DAILY.describe() == "cron '0 6 * * *'"
    for bad in ({"every": "soon"}, {"every": "0s"}, {"every": 1.5}, {"every": float("inf")}, {"every": float("nan")}, {"cron": "0 6 * * *", "every": "1h"}, {},
                {"cron": "0 6 * * *", "timezone": "Mars/Olympus"}, "61 * * * *"):
        with pytest.raises(ValueError):
            Schedule.model_validate(bad)
    assert Schedule.model_validate("@daily").cron == "@daily"
    assert next_fire(Schedule.model_validate("0 6 29 2 *"), at(7)) == dt.datetime(2028, 2, 29, 6, tzinfo=UTC)


@pytest.mark.parametrize("cron", ["0 6 * * * *", "0 6 * * * 30", "0 6 * * * * 2030"])
def test_a_cron_of_six_or_seven_fields_is_refused(cron):
    """croniter reads a sixth field as seconds (and a seventh as the year): `0 6 * * * *` ran
    every second of 06:00. The README and the error message say five fields."""
    with pytest.raises(ValueError, match="five fields"):
        Schedule.model_validate(cron)


@pytest.mark.parametrize("cron", ["R 6 * * *", "r 6 * * *", "0 R(5-7) * * *", "R/15 * * * *", "0,R 6 * * *"])
def test_a_random_cron_field_is_refused(cron):
    """croniter's `R` (a random value, drawn again for every next slot) is no cron: `R 6 * * *` was
    accepted, and `serve` ran the "daily" sync at 06:44 on Monday then twice on Tuesday (06:40,
    06:56) or not at all on another day, as each slot drew its minute anew. (`H` was refused.)"""
    with pytest.raises(ValueError, match="five fields"):
        Schedule.model_validate(cron)


def test_a_time_zone_on_an_interval_is_refused():
    """`{every: 1d, timezone: Europe/Paris}` was accepted and the zone ignored (an interval counts
    from the last run's start): a user expecting a local time of day is told to use cron."""
    with pytest.raises(ValueError, match="timezone applies to cron only"):
        Schedule.model_validate({"every": "1d", "timezone": "Europe/Paris"})
    assert Schedule.model_validate({"every": "1d", "timezone": "UTC"}).every == 86400


@pytest.mark.parametrize("cron", ["0 6 31 2 *", "0 6 30 2 *", "0 0 31 4,6,9,11 *"])
def test_a_cron_that_never_fires_is_refused(cron):
    """No 31 February: `serve` failed at start-up with 'unexpected error: CroniterBadDateError'."""
    with pytest.raises(ValueError, match="never fires"):
        Schedule.model_validate(cron)


# --- due, catch-up, overlap -----------------------------------------------------------------

def test_a_sync_never_run_waits_for_its_first_slot():
    clock, hooks = FakeClock(T0), Hooks()
    s = make({"a": DAILY}, clock, hooks)
    assert s.step(clock.now()) == [] and hooks.runs == []
    assert s.seconds_to_next(clock.now()) == 60
    clock.t = at(6)
    assert s.step(clock.now()) == ["a"] and hooks.runs == [("a", at(6))]
    assert s.jobs["a"].next_due == at(6, day=2)
    assert s.step(at(6, 30)) == []


def test_missed_slots_after_downtime_run_once():
    """The service was down for three days: the sync runs once at start-up, not three times."""
    clock, hooks = FakeClock(at(9, day=4)), Hooks()
    s = make({"a": DAILY, "b": EVERY_15M, "fresh": DAILY}, clock, hooks,
             last={"a": at(6, day=1), "b": at(8, day=4), "fresh": at(6, 0, 0, day=4)})
    assert s.step(clock.now()) == ["a", "b"]  # 'fresh' ran at today's slot: nothing missed
    assert [n for n, _ in hooks.runs] == ["a", "b"]
    assert hooks.runs[0][1] == at(6, day=2)  # the first missed slot is the one reported
    assert s.jobs["a"].next_due == at(6, day=5) and s.jobs["b"].next_due == at(9, 15, day=4)
    assert s.step(clock.now()) == []


def test_no_overlap_and_one_catch_up_after_a_long_run():
    clock, hooks = FakeClock(at(6)), Hooks()
    hooks.hold = threading.Event()
    s = make({"b": EVERY_15M}, clock, hooks, last={"b": at(5, 45)}, executor=None, max_parallel=4)
    try:
        assert s.step(at(6)) == ["b"]
        assert hooks.started.acquire(timeout=5)
        for minute in (15, 30, 45):  # three slots pass while the run goes on
            assert s.step(at(6, minute)) == []
        assert len(hooks.runs) == 1 and s.jobs["b"].busy
        hooks.hold.set()
        _wait_idle(s)
        assert s.step(at(6, 50)) == ["b"]  # the missed slots: one run, now
        assert hooks.started.acquire(timeout=5)
        _wait_idle(s)
        assert s.jobs["b"].next_due == at(7, 5)
        assert len(hooks.runs) == 2
    finally:
        hooks.hold.set()
        s.executor.shutdown(wait=True)


def test_a_full_pool_delays_a_due_sync_without_spinning():
    clock, hooks = FakeClock(at(6)), Hooks()
    hooks.hold = threading.Event()
    yesterday = at(6) - dt.timedelta(days=1)
    s = make({"a": DAILY, "b": DAILY}, clock, hooks, last={"a": yesterday, "b": yesterday}, executor=None,
             max_parallel=1)
    try:
        assert s.step(at(6)) == ["a"]
        assert hooks.started.acquire(timeout=5)
        assert s.step(at(6, 0, 1)) == []  # 'b' is due but the only worker is busy
        assert s.seconds_to_next(at(6, 0, 1)) > 0  # waits for a finished run (wake), not a busy loop
        hooks.hold.set()
        _wait_idle(s)
        assert s.wake.is_set()  # a finished run wakes the loop
        assert s.step(at(6, 0, 2)) == ["b"]
        assert hooks.started.acquire(timeout=5)
    finally:
        hooks.hold.set()
        s.executor.shutdown(wait=True)


def _wait_idle(s: Scheduler) -> None:
    for future in list(s._futures):
        future.result(timeout=10)
    deadline = threading.Event()
    for _ in range(1000):
        if s.active == 0:
            return
        deadline.wait(0.005)
    raise AssertionError("jobs still busy")


# --- paused syncs ----------------------------------------------------------------------------

def test_paused_syncs_are_skipped_rechecked_and_catch_up_once_when_resumed():
    clock, hooks = FakeClock(at(5)), Hooks()
    hooks.paused_syncs = {"auto": "auto", "hand": "hand"}
    s = make({"auto": EVERY_15M, "hand": EVERY_15M, "ok": EVERY_15M}, clock, hooks,
             last={n: at(4, 50) for n in ("auto", "hand", "ok")}, recheck_seconds=600)

    def step(t):
        clock.t = t
        return s.step(t)

    # start-up: paused syncs are checked (automatic pauses only); nothing is due yet
    assert step(at(5)) == [] and hooks.checks == ["auto"]
    # the slot of 05:05: the paused ones are skipped, the other runs
    assert step(at(5, 5)) == ["ok"]
    assert sorted((n, by) for n, _, by in hooks.skips) == [("auto", "auto"), ("hand", "hand")]
    assert s.jobs["auto"].missed and s.jobs["auto"].next_due == at(5, 20)
    # the next recheck (05:10): 'auto' passes its check and, having missed a slot, is due at once
    hooks.resume_on_check.add("auto")
    assert step(at(5, 10)) == []
    assert hooks.checks == ["auto", "auto"] and s.jobs["auto"].next_due == at(5, 10)
    assert step(at(5, 10, 1)) == ["auto"]
    assert s.jobs["auto"].next_due == at(5, 25, 1)
    # 'hand' is never checked; resumed elsewhere (by hand), it catches up at the next recheck
    hooks.paused_syncs.pop("hand")
    assert step(at(5, 20, 1)) == ["hand", "ok"]
    assert hooks.checks == ["auto", "auto"]
    assert [n for n, _ in hooks.runs] == ["ok", "auto", "hand", "ok"]


# --- the loop --------------------------------------------------------------------------------

def test_the_loop_runs_due_syncs_and_stops_on_request():
    clock, hooks = FakeClock(at(5, 50)), Hooks()
    stop = StopToken()

    def on_wait(c):
        if c.t >= at(7, 31):
            stop.request()

    clock.on_wait = on_wait
    s = make({"b": EVERY_15M}, clock, hooks, last={"b": at(5, 45)}, recheck_seconds=3600)
    s.run(stop)
    assert [slot for _, slot in hooks.runs] == [at(6) + dt.timedelta(minutes=15 * i) for i in range(7)]
    assert max(clock.waits) <= 15 * 60


def test_the_loop_waits_for_a_running_sync_on_stop():
    """A stop request during a run: no new run starts, and run() returns once the run is over."""
    clock, hooks = FakeClock(at(6)), Hooks()
    hooks.hold = threading.Event()
    stop = StopToken()
    s = make({"a": EVERY_15M, "b": EVERY_15M}, clock, hooks, last={"a": at(5, 45), "b": at(5, 50)},
             executor=None, max_parallel=2)

    def on_wait(c):
        assert hooks.started.acquire(timeout=5)
        stop.request()
        threading.Timer(0.05, hooks.hold.set).start()

    clock.on_wait = on_wait
    s.run(stop)
    assert [n for n, _ in hooks.runs] == ["a"] and hooks.hold.is_set() and s.active == 0


class EventClock(FakeClock):
    """Waits on the scheduler's wake event for real (bounded), recording whether it was set."""

    def __init__(self, now: dt.datetime):
        super().__init__(now)
        self.woken: list[bool] = []
        self.waiting = threading.Event()

    def wait(self, seconds: float, wake: threading.Event) -> None:
        self.waits.append(seconds)
        self.waiting.set()
        self.woken.append(wake.wait(10))


def test_a_stop_request_wakes_the_idle_wait():
    """An idle loop (the next slot an hour away) wakes as soon as a stop is requested, whoever
    requests it: the wait used to end only at its timeout (up to 30 s) unless the CLI's signal
    callback woke it, after printing its message."""
    clock, hooks = EventClock(at(6)), Hooks()
    stop = StopToken()
    s = make({"a": Schedule.model_validate({"every": "1h"})}, clock, hooks, recheck_seconds=3600)
    loop = threading.Thread(target=s.run, args=(stop,), daemon=True)
    loop.start()
    assert clock.waiting.wait(5) and clock.waits == [3600.0]
    stop.request()  # no `s.wake.set()`
    loop.join(15)
    assert not loop.is_alive() and clock.woken == [True] and hooks.runs == []
    assert stop._wakers == []  # the loop's waker is removed when it returns


def test_a_stop_requested_before_the_loop_starts_never_waits():
    clock, hooks = EventClock(at(6)), Hooks()
    stop = StopToken()
    stop.request()
    make({"a": Schedule.model_validate({"every": "1h"})}, clock, hooks).run(stop)
    assert clock.waits == [] and hooks.runs == []


def test_paused_syncs_a_full_pool_could_not_check_are_checked_when_a_worker_frees():
    """`--recheck-minutes`: every automatically paused sync is checked once per recheck. With one
    worker (the default `--parallel 1`) and three paused syncs, or a run in flight at the recheck,
    the checks that found no free worker wait for one, like a due run does; they used to wait for
    the next recheck, so the third sync was checked (and resumed) three rechecks late."""
    clock, hooks = FakeClock(at(6)), Hooks()
    hooks.paused_syncs = {"a": "auto", "b": "auto", "c": "auto"}
    release = threading.Event()
    checking = threading.Semaphore(0)
    plain_check = hooks.check

    def check(name):
        checking.release()
        assert release.wait(10)
        return plain_check(name)

    hooks.check = check
    s = make({n: DAILY for n in "abc"}, clock, hooks, last={n: at(6) for n in "abc"}, executor=None,
             max_parallel=1, recheck_seconds=300)
    try:
        for second in range(1, 4):  # well before the next recheck (06:05)
            s.step(at(6, 0, second))
            assert checking.acquire(timeout=5)
            release.set()
            _wait_idle(s)
            release.clear()
        assert sorted(hooks.checks) == ["a", "b", "c"]
        s.step(at(6, 0, 4))
        _wait_idle(s)
        assert sorted(hooks.checks) == ["a", "b", "c"]  # once per recheck, not in a loop
    finally:
        release.set()
        s.executor.shutdown(wait=True)


# --- the wall clock stepped back -------------------------------------------------------------

def test_an_interval_and_the_rechecks_go_on_when_the_wall_clock_steps_back():
    """An NTP step of an hour back: a sync `every: 15m` waited for the wall clock to reach its
    slot again, an hour and a quarter without a run, and the rechecks of paused syncs as long. An
    interval counts elapsed time; a cron's slots stay wall times (as cron's)."""
    clock, hooks = FakeClock(at(6)), Hooks()
    hooks.paused_syncs = {"auto": "auto"}
    s = make({"b": EVERY_15M, "auto": EVERY_15M, "daily": DAILY}, clock, hooks,
             last={"b": at(5, 45), "auto": at(5, 45), "daily": at(6)}, recheck_seconds=600)
    assert s.step(at(6)) == ["b"] and hooks.checks == ["auto"]
    assert s.step(at(6, 5)) == []
    back = dt.timedelta(hours=1)  # 06:05 becomes 05:05
    assert s.step(at(6, 5) - back) == []
    assert s.jobs["b"].next_due == at(6, 15) - back
    assert s.jobs["daily"].next_due == at(6, day=2)  # a wall time: not run again today
    assert s.step(at(6, 10) - back) == [] and hooks.checks == ["auto", "auto"]  # 10 minutes after the first
    assert s.step(at(6, 15) - back) == ["b"]  # 15 minutes after its run
    assert s.jobs["b"].next_due == at(6, 30) - back
