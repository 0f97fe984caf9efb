"""`dinsync serve`: the scheduler wired to the warehouse, the engine and the channels.

Each run and each check opens its own warehouse connection (closed right after: a DuckDB file is
not held between runs, and a warehouse that went away is reconnected to). When the warehouse
itself cannot be reached, nothing can be written to the state schema: the syncs are paused in
this process's memory (culprit `warehouse`), channels are told once, the connection is tried
again at every recheck, and on its return the pause and resume are written to `events`.

Everything the service reports goes through `emit(event)`: one dict per line (`format_line`
renders it for people; `--json` prints it as is).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import sys
import threading
from typing import Any, Callable

from .. import redaction
from ..destinations import describe_error
from ..errors import DinsyncError, LockBusyError
from ..report import utc_iso
from ..warehouses.errors import WarehouseAuthError, WarehouseError, WarehouseUnavailable
from .health import CheckResult, check_sync
from .notify import Notice, Notifier
from .operate import Operator
from .scheduler import Clock, Scheduler, SystemClock, as_utc

OUTAGE_ERRORS = (WarehouseUnavailable, WarehouseAuthError)
# A DuckDB file held by another process when a run is due (a `dinsync status`, a dbt build, a run
# of another sync by hand): the run waits for it this long, trying again every BUSY_RETRY_SECONDS,
# before it is refused (exit 5) and the slot passes.
BUSY_WAIT_SECONDS = 120.0
BUSY_RETRY_SECONDS = 1.0


class Service:
    def __init__(self, project: Any, names: list[str], *, connect: Callable[[], Any],
                 run_one: Callable[[Any, str, list], tuple[dict, int]], notifier: Notifier,
                 emit: Callable[[dict], None], stop: Any, clock: Clock | None = None, parallel: int = 1,
                 recheck_seconds: float = 300.0, check: Callable[..., CheckResult] = check_sync,
                 executor: Any = None, busy_wait_seconds: float = BUSY_WAIT_SECONDS):
        self.project = project
        self.schedules = {n: project.syncs[n].schedule for n in names}
        self.connect = connect
        self.run_one = run_one
        self.notifier = notifier
        self._emit = emit
        self.stop = stop
        self.clock = clock or SystemClock()
        self.parallel = parallel
        self.recheck_seconds = recheck_seconds
        self.check_fn = check
        self.executor = executor  # default: a thread pool of `parallel` workers
        self.busy_wait_seconds = busy_wait_seconds
        self.outages: dict[str, tuple[str, dt.datetime]] = {}  # sync -> (reason, since): in memory only
        self._lock = threading.Lock()
        self._emit_lock = threading.Lock()
        self._emit_failed = False  # the log sink failed once (told on stderr)
        self.scheduler: Scheduler | None = None
        # The run log is read at start-up; when the warehouse could not be read then, at the first
        # connection that works (the slots missed before start-up still run once).
        self._run_log_read = False
        # the last run this service started, per sync (a slot it covered is not another's); only the
        # sync's last run is compared, so only it is kept (every id it started was kept before: a leak).
        # (id, start): the last in the run log's order, by start, which a run after a step back of the
        # wall clock does not replace (the run log's last run stays the one before the step)
        self._own_runs: dict[str, tuple[str, str | None]] = {}
        # the last state told to channels per sync, as last read (an outage's `paused` notice says
        # what it follows: never null, as every notice; "ok" for a sync never told anything)
        self._told: dict[str, str] = {}
        # per sync, the run of another process recorded later than now that covered a slot (see _run_since)
        self._covered: dict[str, str] = {}
        # the pauses in the state tables as last read: they stand while the tables cannot be read
        # (a DuckDB file another process holds), else a paused sync was started at its slot
        self._paused_read: dict[str, str] = {}

    # --- wiring ------------------------------------------------------------------------
    def emit(self, event: str, **data: Any) -> None:
        """One log line. A line that cannot be written (stdout a pipe whose reader went away) is
        dropped, stderr says so once: it raised before each run, so the service stayed up running
        nothing."""
        with self._emit_lock:  # one line at a time from the workers
            try:
                self._emit({"at": utc_iso(self.clock.now()), "event": event, **data})
            except (OSError, ValueError) as exc:  # (ValueError: a closed file)
                if not self._emit_failed:
                    self._emit_failed = True
                    with contextlib.suppress(Exception):
                        sys.stderr.write(f"serve: the service's log lines cannot be written ({type(exc).__name__}: "
                                         f"{exc}); the syncs keep running, their runs are in `dinsync runs`\n")
                        sys.stderr.flush()

    def operator(self, wh: Any) -> Operator:
        return Operator(self.project, wh, self.notifier, check=self.check_fn, stop=self.stop,
                        log=lambda text: self.emit("note", message=text),
                        on_change=lambda event, name, **details: self.emit(event, sync=name, **details))

    def build(self) -> Scheduler | None:
        """Read the run log and set the scheduler up; None when a stop was requested meanwhile
        (nothing more is prepared: no `serve` line, no state written)."""
        last: dict[str, dt.datetime | None] = {}
        if self.stop.requested:
            return None
        try:
            wh = self.connect()
        except Exception as exc:
            if self.stop.requested:
                return None
            self._outage(list(self.schedules), exc)
        else:
            try:
                if self.stop.requested:  # asked while connecting
                    return None
                last = self._last_started(wh)
            except WarehouseError as exc:  # (a lock held on the run log: read again before the first slot)
                if not exc.retryable:
                    raise
                self.emit("note", message=redaction.redact(f"could not read the run log: {exc}"))
            finally:
                wh.close()
        if self.stop.requested:
            return None
        self.scheduler = Scheduler(self.schedules, hooks=self, clock=self.clock, last_started=last,
                                   max_parallel=self.parallel, recheck_seconds=self.recheck_seconds,
                                   executor=self.executor)
        self.emit("serve", syncs=[{"sync": n, "schedule": s.describe(), "next": utc_iso(self.scheduler.jobs[n].next_due)}
                                  for n, s in sorted(self.schedules.items())])
        return self.scheduler

    def _last_started(self, wh: Any) -> dict[str, dt.datetime | None]:
        from ..state import StateStore

        store = StateStore(wh, self.project.state_schema)
        store.migrate()
        last = {r["sync"]: r["started_at"] for r in store.last_runs(limit=1) if r["sync"] in self.schedules}
        self._run_log_read = True
        return last

    def serve(self) -> None:
        """Build (unless built) and run until a stop request. A stop requested while starting
        (loading the project, connecting, reading the run log) takes effect at the next of these
        steps: nothing is scheduled, checked or run after it."""
        scheduler = self.scheduler or self.build()
        if scheduler is not None:
            scheduler.run(self.stop)
        self.emit("stop", signal=getattr(self.stop, "signal_name", None) if self.stop.requested else None)

    def wake(self) -> None:
        if self.scheduler is not None:
            self.scheduler.wake.set()

    # --- hooks (dinsync.ops.scheduler.Hooks) -----------------------------------------------
    def paused(self) -> dict[str, str]:
        try:
            wh = self.connect()
        except LockBusyError:
            return self._last_read_pauses()
        except Exception as exc:
            self._outage(list(self.schedules), exc)
            return self._memory_pauses()
        try:
            if not self._run_log_read and self.scheduler is not None:  # unreadable at start-up
                self.scheduler.learn_last_started(self._last_started(wh))
        except Exception as exc:
            self.emit("note", message=redaction.redact(f"could not read the run log: {exc}"))
        try:
            from ..state import StateStore
            from ..state.syncstate import SyncStates

            states = SyncStates(StateStore(wh, self.project.state_schema)).all()
        except Exception as exc:
            self.emit("note", message=redaction.redact(f"could not read the paused syncs: {exc}"))
            return self._last_read_pauses()
        finally:
            wh.close()
        paused = {n: s.paused_by or "auto" for n, s in states.items() if s.paused and n in self.schedules}
        with self._lock:
            self._paused_read = paused
            self._told.update((n, s.notified_state) for n, s in states.items() if s.notified_state)
        return {**paused, **self._memory_pauses()}

    def _last_read_pauses(self) -> dict[str, str]:
        with self._lock:
            read = dict(self._paused_read)
        return {**read, **self._memory_pauses()}

    def _memory_pauses(self) -> dict[str, str]:
        with self._lock:
            return {n: "memory" for n in self.outages}

    def skipped(self, name: str, slot: dt.datetime, paused_by: str) -> None:
        with self._lock:
            why = self.outages[name][0] if name in self.outages else None
        self.emit("skip", sync=name, slot=utc_iso(slot), reason=why or f"paused ({'by hand' if paused_by == 'hand' else paused_by})")

    def run(self, name: str, slot: dt.datetime) -> None:
        if self.stop.requested:
            return
        self.emit("start", sync=name, slot=utc_iso(slot))
        try:
            wh = self._connect_when_free(name)
        except LockBusyError as exc:
            if self.stop.requested:  # the stop ended the wait for the file: it kept the run from starting
                self.emit("end", sync=name, exit_code=getattr(self.stop, "exit_code", 1), run=None,
                          error="not started: a stop was requested")
            else:
                self.emit("end", sync=name, exit_code=exc.exit_code, run=None, error=redaction.redact(exc.message))
            return
        except Exception as exc:
            self._outage([name], exc)
            with self._lock:
                outage = name in self.outages
            if outage and self.scheduler is not None:  # its slot is missed: it runs once when the warehouse answers
                self.scheduler.mark_missed(name)
            self.emit("end", sync=name, exit_code=1, run=None, error=redaction.redact(_text(exc)))
            return
        try:
            other = self._run_since(wh, name, slot)
            if other is not None:
                self.emit("end", sync=name, exit_code=0, run=None, error=other)
                return
            operator = self.operator(wh)
            refusal = operator.guard(name)
            if self.stop.requested:  # asked while connecting or checking: the run does not start
                self.emit("end", sync=name, exit_code=getattr(self.stop, "exit_code", 1), run=None,
                          error="not started: a stop was requested")
                return
            if refusal is not None:
                self.emit("end", sync=name, exit_code=refusal.exit_code, run=None, error=refusal.message)
                return
            errors: list = []
            run, code = self.run_one(wh, name, errors)
            if run and run.get("run_id"):
                with self._lock:
                    start, kept = run.get("started_at"), self._own_runs.get(name)
                    if kept is None or start is None or kept[1] is None or start >= kept[1]:  # (ISO, UTC)
                        self._own_runs[name] = (run["run_id"], start)
            told = operator.after_run(name, run, code, errors[0] if errors else None)
            if told is not None:
                with self._lock:
                    self._told[name] = told
                    if told == "paused":  # (among the pauses as last read until the next read)
                        self._paused_read[name] = "auto"
            # `error` on every `end` (the run's own here), as on the ends of runs that did not start;
            # `run` null for a run never recorded (its lock refused it, a configuration error), as
            # for the others that did not start
            self.emit("end", sync=name, exit_code=code, run=run if (run or {}).get("run_id") else None,
                      error=(run or {}).get("error"))
        except Exception as exc:  # a bug or a state table that failed: this run's report, the service goes on
            self.emit("end", sync=name, exit_code=1, run=None,
                      error=redaction.redact(f"unexpected error: {describe_error(exc)}"))
        finally:
            wh.close()

    def _run_since(self, wh: Any, name: str, slot: dt.datetime) -> str | None:
        """Why this slot needs no run: another process (a second service on the same project, a
        `dinsync sync` by hand) started a run of the sync at or after it (with an interval: less
        than one interval before it, which moves the next slot). Without this check, the
        second of two services ran the sync again in the same slot once the first had finished
        (on DuckDB it always did: it waits for the file the first holds, then runs)."""
        from ..state import StateStore

        try:
            last = StateStore(wh, self.project.state_schema).last_runs(name, limit=1)
        except Exception:  # (no run log yet, or unreadable: the run reports what is wrong)
            return None
        started = last[0]["started_at"] if last else None
        if started is None:
            return None
        started = as_utc(started)
        with self._lock:
            own = last[0]["run_id"] == self._own_runs.get(name, (None,))[0]
        every = self.schedules[name].every
        if own and started > self.clock.now():
            # Its own run recorded later than now: the wall clock went back since (an NTP step). The
            # slot follows that run by the time that passed (the scheduler's), not covered by it.
            return None
        if not own and started > self.clock.now():
            # Another process's run recorded later than now (the wall clock went back since, or its
            # host's clock is ahead): it covers one slot, as a run after a slot does, not every slot
            # until the clock reaches its start (an hour's step after a run by hand: no run for an hour).
            with self._lock:
                if self._covered.get(name) == last[0]["run_id"]:
                    return None
                self._covered[name] = last[0]["run_id"]
        if started < slot:
            # An interval counts from the last run's start: a run another process started less than
            # one interval before this slot (a `dinsync sync` by hand, a second service whose slots
            # fall a little earlier) covers it, and the next slot is one interval after that run's
            # start. Before, the service ran the sync again at its own slot (two services on one
            # project: each once per interval).
            if own or every is None or started <= slot - dt.timedelta(seconds=float(every)):
                return None
            following = started + dt.timedelta(seconds=float(every))
            if self.scheduler is not None:
                self.scheduler.defer(name, following)
            return (f"not started: another process started run {last[0]['run_id']} at {utc_iso(started)}, less than "
                    f"an interval ({self.schedules[name].describe()}) before this slot; the next one is at "
                    f"{utc_iso(following)} ({last[0]['status']})")
        # (this service's own run starts after a slot when it waited for the DuckDB file or ran late)
        who = "this service's run" if own else "another process started run"
        return (f"not started: {who} {last[0]['run_id']} {'started ' if own else ''}at {utc_iso(started)}, after "
                f"this slot ({last[0]['status']})")

    def _connect_when_free(self, name: str) -> Any:
        """Connect for a run; a warehouse file another process holds (LockBusyError at connect:
        DuckDB lets one process open it) is waited for up to `busy_wait_seconds`, a stop request
        ending the wait. Without it, a `dinsync status` run at the instant of a slot cost the
        sync that slot (a daily sync, a day). The time waited adds the clock's moves forward only: a
        deadline on the wall clock moved away with a step back (an NTP step of an hour: an hour's wait)."""
        seen, waited = self.clock.now(), 0.0
        told = False
        while True:
            try:
                return self.connect()
            except LockBusyError as exc:
                now = self.clock.now()
                waited, seen = waited + max(0.0, (now - seen).total_seconds()), now
                left = self.busy_wait_seconds - waited
                if left <= 0 or self.stop.requested:
                    raise
                if not told:
                    told = True
                    self.emit("note", message=redaction.redact(
                        f"{name}: {exc.message}; waiting up to {self.busy_wait_seconds:g}s for it"))
                wake = threading.Event()
                add_waker = getattr(self.stop, "add_waker", None)
                if add_waker is not None:
                    add_waker(wake)
                try:
                    self.clock.wait(min(BUSY_RETRY_SECONDS, left), wake)
                finally:
                    if add_waker is not None:
                        self.stop.remove_waker(wake)

    def check(self, name: str) -> bool:
        """Check a paused sync again; True when it is no longer paused. A stop request abandons
        the check (nothing is recorded for it; a note says so)."""
        if self.stop.requested:
            return False
        try:
            wh = self.connect()
        except LockBusyError:
            return False
        except Exception as exc:
            self._outage([name], exc)
            self.emit("check", sync=name, ok=False, reason=redaction.redact(_text(exc)))
            return False
        try:
            self._end_outage(name, wh)
            operator = self.operator(wh)
            state = operator.states.get(name)
            if not state.paused:
                return True
            if not state.auto_paused:
                return False
            result = operator.recheck(name, state)
            if result.abandoned:
                self.emit("note", message=f"check of {name} abandoned: a stop was requested")
                return False
            self.emit("check", sync=name, ok=result.ok, reason=None if result.ok else result.describe())
            if result.ok:  # resumed: channels were told
                with self._lock:
                    self._told[name] = "ok"
                    self._paused_read.pop(name, None)
            return result.ok
        except Exception as exc:
            self.emit("check", sync=name, ok=False, reason=redaction.redact(f"{type(exc).__name__}: {exc}"))
            return False
        finally:
            wh.close()

    # --- the warehouse itself unreachable: pauses kept in memory --------------------------
    def _outage(self, names: list[str], exc: BaseException) -> None:
        # An outage: the warehouse is unreachable or refuses our credentials, a DuckDB file cannot
        # be opened, or the driver failed outside the adapter's translation. Anything else (a
        # missing driver...) is not: the run reports it.
        if isinstance(exc, DinsyncError) and not isinstance(exc, OUTAGE_ERRORS) and "cannot open" not in exc.message:
            return
        reason = redaction.redact(f"the warehouse cannot be reached: {_text(exc)}")
        new = []
        with self._lock:
            for name in names:
                if name not in self.outages:
                    self.outages[name] = (reason, self.clock.now())
                    new.append((name, self._told.get(name, "ok")))
        for name, told in new:
            self.emit("paused", sync=name, culprit="warehouse", reason=reason)
            if told == "paused":  # channels know it paused (its own culprit): no paused -> paused notice
                continue
            self.notifier.send(Notice("paused", name, "paused", told, f"{name} paused by itself: {reason}",
                                      pause={"paused_by": "auto", "culprit": "warehouse", "reason": reason}))

    def _end_outage(self, name: str, wh: Any) -> None:
        with self._lock:
            outage = self.outages.pop(name, None)
        if outage is None:
            return
        reason, since = outage
        detail = f"the warehouse answers again (unreachable since {utc_iso(since)})"
        operator = self.operator(wh)
        if operator.states.get(name).paused:  # paused for its own culprit (or by hand): it stays paused,
            self.emit("note", message=f"{name}: {detail}; it stays paused")  # and channels were told so
            return
        self.emit("resumed", sync=name, reason=detail)
        operator.states.event(name, "paused", None, f"auto: warehouse: {reason}")
        operator.states.event(name, "resumed", None, detail)
        operator.notify(Notice("resumed", name, "ok", "paused", f"{name} resumed: {detail}",
                               pause={"paused_by": "auto", "culprit": "warehouse", "reason": reason}))
        operator.states.notified(name, "ok")
        with self._lock:
            self._told[name] = "ok"


def _text(exc: BaseException) -> str:
    return exc.message if isinstance(exc, DinsyncError) else f"{type(exc).__name__}: {exc}"


def format_line(event: dict) -> str:
    """One log line for people."""
    at, kind, name = event.get("at") or "", event.get("event"), event.get("sync")
    if kind == "serve":
        jobs = ", ".join(f"{j['sync']} ({j['schedule']}, next {j['next']})" for j in event["syncs"])
        return f"{at} serve: {len(event['syncs'])} scheduled sync(s): {jobs}"
    if kind == "start":
        return f"{at} start {name} (slot {event.get('slot')})"
    if kind == "end":
        run = event.get("run")
        if run is None or run.get("run_id") is None:
            error = str(event.get("error") or (run or {}).get("error"))
            error = error[len("not started: "):] if error.startswith("not started: ") else error  # (said once)
            return f"{at} end {name} not started (exit {event.get('exit_code')}): {error}"
        text = (f"{at} end {name} {run['status']} in {run['seconds'] or 0:.2f}s (exit {event.get('exit_code')}): "
                f"+{run['added']} ~{run['changed']} -{run['removed']}, sent {run['sent']}, acknowledged "
                f"{run['acknowledged']}, rejected {run['rejected']}, failed {run['failed']} (run {run['run_id']})")
        if run.get("warnings"):
            text += " warnings: " + "; ".join(run["warnings"])
        if run.get("error"):
            text += " error: " + run["error"]
        return text
    if kind == "skip":
        return f"{at} skip {name} (slot {event.get('slot')}): {event.get('reason')}"
    if kind == "check":
        return f"{at} check {name}: " + ("passes" if event.get("ok") else f"still paused: {event.get('reason')}")
    if kind in ("paused", "resumed"):
        return f"{at} {kind} {name}" + (f" ({event.get('culprit')})" if event.get("culprit") else "") + \
            f": {event.get('reason')}"
    if kind == "stop":
        return f"{at} stopped" + (f" by {event['signal']}" if event.get("signal") else "")
    return f"{at} {kind}: {event.get('message', '')}"
