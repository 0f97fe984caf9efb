"""The scheduler behind `dinsync serve`: when each sync is due, on a clock tests control.

Rules:
- A sync's next slot follows its schedule (`Schedule.cron` in its time zone, via croniter, or
  `every` seconds) from its last run's start (from the run log); a sync never run waits for its
  first slot after start-up.
- Catch-up at most once: however many slots were missed (the service was down, a run outlasted
  several slots, no worker was free), the sync runs once, and its next slot is computed from then.
- Never two runs of one sync at once in this process (a job is busy while it runs or is checked);
  across processes the warehouse lock still decides.
- A paused sync is skipped at its slot (and remembered as having missed one); paused syncs are
  checked again every `recheck_seconds` (automatic pauses only: `hooks.check`); one that resumes
  after missing a slot runs once right away.
- The wall clock stepped back (an NTP step, a time set by hand): intervals (`every`) and rechecks
  count elapsed time, so their next slots move back with it; a cron's slots stay wall times, as
  cron's do.
- `stop` (SIGTERM/SIGINT through a StopToken): no new run starts; running ones get the engine's
  graceful stop (they share the token); `run` returns when they are done. The request wakes the
  loop's wait (the token's waker), so an idle loop returns at once.

Time comes from a `Clock` (`now()` and `wait(seconds, wake)`), so tests drive `step(now)` on a
fake clock instead of sleeping.
"""
from __future__ import annotations

import concurrent.futures
import datetime as dt
import threading
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol

MAX_WAIT_SECONDS = 30.0  # the loop looks at the wall clock at least this often (suspend, clock changes)


def next_fire(schedule: Any, after: dt.datetime) -> dt.datetime:
    """The first slot of `schedule` strictly after `after` (aware UTC in, aware UTC out)."""
    after = as_utc(after)
    if schedule.every is not None:
        return after + dt.timedelta(seconds=float(schedule.every))
    import zoneinfo

    from croniter import croniter

    zone = zoneinfo.ZoneInfo(schedule.timezone)
    slots = croniter(schedule.cron, after.astimezone(zone))
    fixed = _fixed_time(slots)
    while True:
        slot = slots.get_next(dt.datetime).astimezone(dt.timezone.utc)
        if not (fixed and _repeated_wall_time(slot, zone)):
            return slot


def _fixed_time(slots: Any) -> bool:
    """A cron at fixed times of day (neither its minute nor its hour a wildcard or `*/n`), which
    runs once at a wall time the end of DST repeats, as cron does; `30 * * * *` runs in both."""
    fields = getattr(slots, "expressions", None) or []
    return len(fields) >= 2 and not any(str(f).startswith("*") for f in fields[:2])


def _repeated_wall_time(slot: dt.datetime, zone: Any) -> bool:
    """True for the second occurrence of a wall time repeated when the clocks go back."""
    local = slot.astimezone(zone)
    first = local.replace(fold=0).astimezone(dt.timezone.utc)
    return first != slot


def as_utc(value: dt.datetime) -> dt.datetime:
    """`value` as an aware UTC datetime (a naive one is taken as UTC, as the run log stores it)."""
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


class Clock(Protocol):
    def now(self) -> dt.datetime: ...

    def wait(self, seconds: float, wake: threading.Event) -> None: ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc)

    def wait(self, seconds: float, wake: threading.Event) -> None:
        wake.wait(max(0.0, min(seconds, MAX_WAIT_SECONDS)))


class Hooks(Protocol):
    """What the scheduler asks of the service around it."""

    def paused(self) -> Mapping[str, str]: ...  # sync -> "auto" | "hand" for the paused ones

    def run(self, name: str, slot: dt.datetime) -> None: ...  # one run (blocking, in a worker)

    def check(self, name: str) -> bool: ...  # check an automatically paused sync; True when it resumed

    def skipped(self, name: str, slot: dt.datetime, paused_by: str) -> None: ...


@dataclass
class Job:
    name: str
    schedule: Any
    next_due: dt.datetime
    busy: bool = False
    missed: bool = False  # a slot was skipped while paused: run once when it resumes


class Scheduler:
    def __init__(self, schedules: Mapping[str, Any], *, hooks: Hooks, clock: Clock,
                 last_started: Mapping[str, dt.datetime | None] | None = None, max_parallel: int = 1,
                 recheck_seconds: float = 300.0,
                 executor: concurrent.futures.Executor | None = None):
        self.hooks = hooks
        self.clock = clock
        self.max_parallel = max(1, int(max_parallel))
        self.recheck_seconds = float(recheck_seconds)
        self.executor = executor or concurrent.futures.ThreadPoolExecutor(self.max_parallel,
                                                                           thread_name_prefix="dinsync-serve")
        self.wake = threading.Event()
        self._mutex = threading.RLock()
        self._futures: set[concurrent.futures.Future] = set()
        now = clock.now()
        last_started = last_started or {}
        self.jobs = {}
        for name, schedule in schedules.items():
            last = last_started.get(name)
            self.jobs[name] = Job(name, schedule, next_fire(schedule, last if last is not None else now))
        self.next_recheck = now  # paused syncs are checked at start-up
        self.seen = now  # the latest time a step was given (see `_follow_step_back`)
        self.check_due: set[str] = set()  # paused syncs to check this recheck, waiting for a free worker

    def learn_last_started(self, last_started: Mapping[str, dt.datetime | None]) -> None:
        """The run log, read late (the warehouse could not be read at start-up): a sync whose slot
        passed since its last run is due at once (catch-up once), as it would have been at start-up."""
        with self._mutex:
            for name, last in last_started.items():
                job = self.jobs.get(name)
                if job is not None and last is not None and not job.busy:
                    job.next_due = min(job.next_due, next_fire(job.schedule, last))

    def mark_missed(self, name: str) -> None:
        """A run that could not start for a pause found at its start (the warehouse gone between
        the read of the paused syncs and the run): its slot counts as skipped, run once on resume."""
        with self._mutex:
            self.jobs[name].missed = True

    def defer(self, name: str, due: dt.datetime) -> None:
        """The next slot of a sync with an interval, counted from a run another process started
        (`every` counts from the last run's start, whoever started it)."""
        with self._mutex:
            self.jobs[name].next_due = as_utc(due)

    # --- one step --------------------------------------------------------------------
    @property
    def active(self) -> int:
        return sum(1 for job in self.jobs.values() if job.busy)

    def step(self, now: dt.datetime) -> list[str]:
        """Start what is due at `now` and, when it is time, check paused syncs; returns the names
        of the runs started."""
        started = []
        with self._mutex:
            self._follow_step_back(now)
            idle = [j for j in self.jobs.values() if not j.busy]
            recheck = now >= self.next_recheck
            checks_waiting = bool(self.check_due) and self.active < self.max_parallel
            if not recheck and not checks_waiting and not any(j.next_due <= now for j in idle):
                return started
            paused = dict(self.hooks.paused())
            if recheck:
                self.next_recheck = now + dt.timedelta(seconds=self.recheck_seconds)
                for job in idle:
                    if job.missed and job.name not in paused:  # resumed elsewhere (by hand): catch up once
                        job.next_due = min(job.next_due, now)
            for job in sorted((j for j in idle if j.next_due <= now), key=lambda j: (j.next_due, j.name)):
                by = paused.get(job.name)
                if by is not None:
                    slot, job.next_due, job.missed = job.next_due, next_fire(job.schedule, now), True
                    self.hooks.skipped(job.name, slot, by)
                elif self.active < self.max_parallel:
                    slot, job.next_due, job.missed = job.next_due, next_fire(job.schedule, now), False
                    self._submit(job, self.hooks.run, job.name, slot)
                    started.append(job.name)
                # else: it stays due and runs (once) when a worker is free
            if recheck:  # every automatic pause is checked once per recheck, as soon as a worker is free
                self.check_due = {j.name for j in idle if paused.get(j.name, "hand") != "hand"}
            for name in sorted(self.check_due):
                job = self.jobs[name]
                if paused.get(name, "hand") == "hand":  # resumed (or paused by hand) meanwhile
                    self.check_due.discard(name)
                elif not job.busy and self.active < self.max_parallel:
                    self.check_due.discard(name)
                    self._submit(job, self._check, job)
        return started

    def _follow_step_back(self, now: dt.datetime) -> None:
        """A `now` earlier than a step's before it: the wall clock went back. Without this, a sync
        `every: 15m` waited for the wall clock to reach its slot again (an hour's step: no run for
        an hour and a quarter), and so did the rechecks of paused syncs."""
        back, self.seen = self.seen - now, now
        if back <= dt.timedelta(0):
            return
        self.next_recheck -= back
        for job in self.jobs.values():
            if job.schedule.every is not None:
                job.next_due -= back

    def _check(self, job: Job) -> None:
        if self.hooks.check(job.name) and job.missed:
            with self._mutex:
                job.next_due = min(job.next_due, self.clock.now())

    def _submit(self, job: Job, fn: Callable, *args: Any) -> None:
        job.busy = True

        def done(future: concurrent.futures.Future) -> None:
            with self._mutex:
                job.busy = False
                self._futures.discard(future)
            self.wake.set()

        future = self.executor.submit(fn, *args)
        self._futures.add(future)
        future.add_done_callback(done)

    def seconds_to_next(self, now: dt.datetime) -> float:
        """How long the loop may wait: until the next slot of an idle job or the next recheck."""
        with self._mutex:
            free = self.active < self.max_parallel  # else a finished run wakes the loop
            times = [j.next_due for j in self.jobs.values() if not j.busy and (free or j.next_due > now)]
            times.append(self.next_recheck)
        return max(0.0, (min(times) - now).total_seconds())

    # --- the loop ----------------------------------------------------------------------
    def run(self, stop: Any) -> None:
        """Step until `stop.requested`, then wait for the runs in flight (they stop gracefully).
        A stop request wakes the idle wait at once (a StopToken's waker), whoever asks for it."""
        add_waker = getattr(stop, "add_waker", None)
        if add_waker is not None:
            add_waker(self.wake)
        try:
            while not stop.requested:
                now = self.clock.now()
                self.step(now)
                if stop.requested:
                    break
                self.clock.wait(self.seconds_to_next(now), self.wake)
                self.wake.clear()
        finally:
            if add_waker is not None:
                stop.remove_waker(self.wake)
            self._wait_for_runs()
            self.executor.shutdown(wait=True)

    def _wait_for_runs(self, every: float = 0.2) -> None:
        """Wait for the runs and checks in flight in short waits. Python runs a signal handler
        between two bytecodes of the main thread: waiting in one call (`executor.shutdown`) left
        a second SIGTERM / SIGINT unhandled until the runs had stopped gracefully (their grace
        period: 20 s and more), when it should end the service at once."""
        while True:
            with self._mutex:
                pending = set(self._futures)
            if not pending:
                return
            concurrent.futures.wait(pending, timeout=every)
