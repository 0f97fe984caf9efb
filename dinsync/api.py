"""The Python API: what an orchestrator needs, with the CLI's results and exit codes.

    import dinsync

    project = dinsync.load_project("path/to/project")     # raises dinsync.ConfigError
    result = project.sync(select="tag:daily")              # also plan(), status(), check()
    for run in result.runs:
        print(run.sync, run.status, run.acknowledged)
    result.raise_for_status()                              # dinsync.SyncFailed unless exit_code is 0

Each call reads the project files and the dbt manifest again (a long-lived object sees the latest
`dbt build`), opens the warehouse, does its work and closes it (DuckDB's file is free between
calls), with the project folder as working directory meanwhile (so one call at a time per
process). The results are dataclasses with the fields of the CLI's JSON (`as_dict()` gives that
JSON object) and `exit_code` follows the CLI's rules (a requested stop's 128 + signal, then
3 > 1 > 6 > 5 > 4 > 0). A selection or project problem raises `dinsync.ConfigError` (exit code 3)
before anything runs; a sync that fails is reported in its run, and the other selected syncs still
run, as on the command line.
Heavy libraries are imported by the calls that need them, not by `import dinsync`.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import os
import signal
import sys
import threading
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .checks import CheckReport, KeyCheck, ModelCheck
from .errors import DinsyncError, ExitCode

Selector = str | Iterable[str] | None
ProgressCallback = Callable[[str, str, dict], None]  # (sync, event, data): see dinsync.progress


class SyncFailed(DinsyncError):
    """Raised by `raise_for_status()`; `exit_code` is the result's, `result` the result itself."""

    def __init__(self, message: str, result: Any):
        super().__init__(message, "see the runs' errors and hints (result.runs)")
        self.exit_code = result.exit_code
        self.result = result

    def __reduce__(self):
        # (pickled by process pools, Celery, Ray, Prefect: the default calls __init__(message) alone)
        return type(self), (self.message, self.result), self.__dict__


@dataclass
class Run:
    """One run of one sync: the CLI's run object (`dinsync.report.run_object`)."""

    sync: str
    run_id: str | None
    status: str  # running | success | warning | failed | cancelled | abandoned | paused
    started_at: str | None  # ISO 8601, UTC (`Z`)
    finished_at: str | None
    seconds: float | None
    full_refresh: bool
    added: int
    changed: int
    removed: int
    unchanged: int
    null_keys: int
    duplicate_keys: int
    sent: int
    acknowledged: int
    rejected: int
    not_found: int
    failed: int
    pending: int
    parked: int
    requests: int
    throttled: int
    segment_rows: int  # rows of the model this run saw (thresholds compare those with a key with the last good run)
    warnings: list[str]
    error: str | None
    hint: str | None
    issues: list[dict]  # configuration issues that stopped the run: {file, line, message, hint}
    request_rates: dict[str, float] | None
    tool_version: str | None

    @classmethod
    def from_dict(cls, data: dict) -> "Run":
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})

    def as_dict(self) -> dict:
        return asdict(self)


class _Result:
    exit_code: int
    notes: list[str]

    @property
    def ok(self) -> bool:
        return self.exit_code == ExitCode.OK

    def as_dict(self) -> dict:
        return asdict(self)

    def raise_for_status(self, *, allow_warnings: bool = False) -> None:
        """Raise SyncFailed when the exit code is not 0 (or 4, with `allow_warnings`)."""
        if self.ok or (allow_warnings and self.exit_code == ExitCode.WARNINGS):
            return
        raise SyncFailed(self._failure(), self)

    def _failure(self) -> str:
        return f"exit code {self.exit_code}"


@dataclass
class SyncResult(_Result):
    runs: list[Run]
    exit_code: int
    notes: list[str] = field(default_factory=list)

    def _failure(self) -> str:
        bad = [r for r in self.runs if r.status != "success"]
        parts = [f"{r.sync} {r.status}" + (f": {r.error}" if r.error else "") for r in bad]  # (not started ones too)
        return f"{len(bad)} of {len(self.runs)} syncs did not succeed (exit code {self.exit_code}): " + "; ".join(parts)


@dataclass
class SyncPlan:
    """`dinsync plan` of one sync (nothing sent, nothing committed)."""

    sync: str
    segment_rows: int
    null_keys: int
    duplicate_keys: int
    duplicate_rows: int
    added: int
    changed: int
    removed: int
    unchanged: int
    full_refresh: bool
    retry_rejected: bool
    first_sync: bool  # nothing delivered yet (empty snapshot): every row is added
    field_changes: dict[str, int]  # changed rows that send each field
    duplicates: list[dict]  # the most duplicated keys: {key, rows}
    samples: dict[str, list[dict]]  # added / changed / removed -> sample rows
    notes: list[str] = field(default_factory=list)  # e.g. the plan needed more memory than configured
    parked: int = 0  # rows parked as rejected, counted unchanged: not sent until their values change

    @classmethod
    def from_dict(cls, data: dict) -> "SyncPlan":
        return cls(**{f.name: data[f.name] for f in fields(cls)})

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class PlanResult(_Result):
    plans: list[SyncPlan]
    exit_code: int = ExitCode.OK  # the worst of `errors` (the CLI's)
    # the selected syncs that could not be planned (a model failing on its rows, a lock held), as
    # `dinsync plan --json` lists them: {"sync", "error", "hint", "exit_code"[, "issues"]}
    errors: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def _failure(self) -> str:
        return (f"{len(self.errors)} of {len(self.plans) + len(self.errors)} syncs could not be planned (exit code "
                f"{self.exit_code}): " + "; ".join(f"{e['sync']}: {e['error']}" for e in self.errors))


@dataclass
class StatusResult(_Result):
    runs: list[Run]  # newest first per sync
    syncs: list[dict] = field(default_factory=list)  # each sync's state, as `dinsync status --json` (paused, why, ...)
    exit_code: int = ExitCode.OK
    notes: list[str] = field(default_factory=list)


@dataclass
class CheckResult(_Result):
    models: list[ModelCheck]
    exit_code: int
    notes: list[str] = field(default_factory=list)

    def _failure(self) -> str:
        return "; ".join(m for c in self.models for m in c.messages) or f"exit code {self.exit_code}"


_in_callback = threading.local()  # set while a caller's callback runs in this thread


def _not_from_a_callback_of_another_thread() -> None:
    """A call from a callback that a run's own thread (its commits') calls would wait for that run,
    which waits for the thread: it hung for ever. RuntimeError instead (the callback's note says it)."""
    if not getattr(_in_callback, "active", False):
        return
    from .operations import WORKING_DIR_LOCK

    if not WORKING_DIR_LOCK.acquire(blocking=False):
        raise RuntimeError("a dinsync call from a callback run by another thread of a running sync() would wait "
                           "for that sync() for ever: make it after sync() returns")
    WORKING_DIR_LOCK.release()


_runs_going = 0  # runs of a sync() under way in this process (their engines alive): see _not_during_a_run


def _not_during_a_run(call: str) -> None:
    """A sync() or plan() from a progress callback, in the thread that holds the running call's
    lock, would plan a sync beside a run whose engine is alive: on DuckDB both plan in the same
    scratch database of that sync, and the inner call's end detached it under the outer run,
    which failed. RuntimeError instead; on_run (called between runs) may make such calls."""
    from .operations import WORKING_DIR_LOCK

    with WORKING_DIR_LOCK:  # (another thread's call waits for the running one, as before)
        if _runs_going:
            raise RuntimeError(f"{call}() from a progress callback while a sync() run is going would disturb "
                               "that run: make it from on_run (between runs) or after sync() returns")


def _guarded(callback: Callable | None, name: str, notes: list[str]) -> Callable | None:
    """The caller's callback, kept from failing the syncs: an exception it raises (a bug or an outage
    of the orchestrator's own monitoring) is told in the result's `notes` and the callback is not
    called again by this call; the runs go on and are recorded as they went. A BaseException that
    is not an Exception (KeyboardInterrupt, SystemExit) still stops the call."""
    if callback is None:
        return None
    broken: list[BaseException] = []

    def call(*args: Any) -> None:
        if broken:
            return
        try:
            _in_callback.active = True
            try:
                callback(*args)
            finally:
                _in_callback.active = False
        except Exception as exc:
            from . import redaction

            broken.append(exc)
            notes.append(redaction.redact(f"the {name} callback raised {type(exc).__name__}: {exc}; "
                                          "it was not called again by this sync() call") or "")

    return call


def _debug_traceback(notes: list[str], exc: BaseException) -> None:
    """With DINSYNC_DEBUG=1, the (redacted) traceback behind a failed run, in the notes: the run's
    hint says to set it for one, as the CLI prints it on stderr."""
    from .operations import DEBUG_ENV

    if os.environ.get(DEBUG_ENV):
        import traceback

        from . import redaction

        notes.append(redaction.redact("".join(traceback.format_exception(type(exc), exc, exc.__traceback__))) or "")


_used_polars = False  # a sync() or plan() ran in this process: Polars' thread pool is up
_forked_with_polars = False  # this process was forked from one where _used_polars was True


def _after_fork_in_child() -> None:
    # (a parent that only imported Polars, e.g. a Celery app's task module, forks safely: its
    # thread pool starts on first use)
    global _forked_with_polars
    _forked_with_polars = _used_polars


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _not_in_a_child_forked_after_polars() -> None:
    """Polars' thread pool does not survive a fork: a sync or plan in a process forked (Celery's
    prefork pool, Airflow's LocalExecutor, multiprocessing's default on Linux) after a sync or
    plan in its parent hung in Polars for ever, holding the sync's lock. RuntimeError instead,
    before anything runs."""
    global _used_polars
    if _forked_with_polars:
        raise RuntimeError("this process was forked after a dinsync sync() or plan() ran in its parent, and "
                           "Polars cannot run in such a child (it hangs): start the worker processes with the "
                           "'spawn' or 'forkserver' method (multiprocessing.set_start_method('spawn')), or make "
                           "the call in the parent")
    _used_polars = True


_calls = threading.local()  # depth: API calls under way in this thread (a callback's call nests)


def _off_the_event_loop(method):
    """Run the call in a helper thread when the calling thread runs an asyncio event loop (a call
    from a coroutine: an async orchestrator, a web handler): the sender and the notifier run their
    own loop (`asyncio.run`), which cannot start in such a thread, and every run failed with
    "asyncio.run() cannot be called from a running event loop". The call still blocks its caller; a
    KeyboardInterrupt there (Jupyter's interrupt) stops the sync as a `stop.request()` does."""

    @functools.wraps(method)
    def call(self, *args: Any, **kwargs: Any):
        _not_from_a_callback_of_another_thread()
        with _keeping_sigint():
            return in_the_right_thread(self, *args, **kwargs)

    def marked(*args: Any, **kwargs: Any):
        _calls.depth = getattr(_calls, "depth", 0) + 1
        try:
            return method(*args, **kwargs)
        finally:
            _calls.depth -= 1

    def in_the_right_thread(self, *args: Any, **kwargs: Any):
        asyncio = sys.modules.get("asyncio")  # not imported: no loop can be running
        if asyncio is None or getattr(_calls, "depth", 0):
            # (a call from a callback of this thread's running call, e.g. inside the sender's
            # event loop: a helper thread would wait for ever for the lock this thread holds)
            return marked(self, *args, **kwargs)
        try:
            asyncio.get_running_loop()
            running = True
        except RuntimeError:  # no running loop in this thread
            running = False
        if not running:  # (called outside the `except`: its errors are not chained to that RuntimeError)
            with _keeping_event_loop(asyncio):
                return marked(self, *args, **kwargs)
        import concurrent.futures

        stop = None
        if stoppable:
            from .engine.stop import StopToken, stop_on_host_exceptions

            stop = kwargs["stop"] = kwargs.get("stop") or StopToken()
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dinsync-api") as helper:
            done = helper.submit(marked, self, *args, **kwargs)
            try:
                # (the host's handlers run in this thread: what they raise is kept, see stop_on_host_exceptions)
                with stop_on_host_exceptions(stop) if stop is not None else contextlib.nullcontext():
                    while not done.done():  # in short waits: after `import polars` a signal no longer ends a long one
                        concurrent.futures.wait([done], timeout=0.2)
            except KeyboardInterrupt:
                # Jupyter's interrupt, in the loop's thread: the sync stops as on SIGINT (else it ran on)
                if stop is not None:
                    stop.request(signal.SIGINT)
                raise
            except BaseException:
                # an orchestrator's timeout (its handler's exception), in the loop's thread: the sync stops
                # as on that signal (else the run and every later sync ran on, the helper waited for)
                if stop is not None and stop.interruption is not None:
                    stop.request(stop.signum or signal.SIGTERM)
                raise
            return done.result()

    stoppable = "stop" in inspect.signature(method).parameters
    return call


@contextlib.contextmanager
def _keeping_sigint() -> Iterator[None]:
    """The host's SIGINT handler, installed again once a call imported Polars: Polars puts its own
    in front at import time, and the host's handler (or KeyboardInterrupt) then ran only when the
    main thread's wait (`Thread.join()`, `Event.wait()`) ended, not when the signal came."""
    before = "polars" in sys.modules
    try:
        yield
    finally:
        handler = signal.getsignal(signal.SIGINT)
        if (not before and "polars" in sys.modules and handler is not None
                and threading.current_thread() is threading.main_thread()):
            signal.signal(signal.SIGINT, handler)


@contextlib.contextmanager
def _keeping_event_loop(asyncio: Any) -> Iterator[None]:
    """The calling thread's event loop, set again after the call: `asyncio.run` (the sender's, the
    notifier's) ends by unsetting the thread's loop, and a host that had set one (`set_event_loop`,
    then `get_event_loop().run_until_complete(...)`), or that let `get_event_loop()` create it, got
    "There is no current event loop"."""
    policy_of = getattr(asyncio.events, "_get_event_loop_policy", asyncio.get_event_loop_policy)
    local = getattr(policy_of(), "_local", None)  # (the thread's state: getting its loop would create one)
    previous, was_set = getattr(local, "_loop", None), getattr(local, "_set_called", None)
    try:
        yield
    finally:
        if previous is not None and not previous.is_closed():
            policy_of().set_event_loop(previous)
        elif was_set is False and getattr(local, "_loop", None) is None:
            # none was set: `asyncio.get_event_loop()` creates one again, as before the call
            local._set_called = False


def _at_least(minimum: int, **values: int) -> None:
    """The CLI's bounds of `--limit` (1) and `--samples` (0), up to MAX_COUNT: a value outside is the
    caller's mistake (ValueError, before anything runs), not a warehouse error or an empty answer."""
    from .operations import MAX_COUNT

    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_COUNT:
            raise ValueError(f"{name} must be an integer from {minimum} to {MAX_COUNT:,}, not {value!r}")


def _flags(**values: Any) -> None:
    """`full_refresh`, `retry_rejected`, `force` are True or False: a string ("yes") or a number
    from an orchestrator's config is the caller's mistake (TypeError, before anything runs); the
    engine asks `is True`, so a truthy other value sent a full refresh, then failed the run."""
    for name, value in values.items():
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, not {value!r}")


def _items(value: Selector) -> list[str]:
    """A selector as a list of strings; anything else is the caller's mistake (TypeError), not an
    AttributeError from deep in the selection."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else None
    if items is None and not isinstance(value, (bytes, bytearray, dict)):
        with contextlib.suppress(TypeError):
            items = list(value)
    if items is None or not all(isinstance(item, str) for item in items):
        raise TypeError(f"a selection is a sync name, glob, tag: or model: selector, or an iterable of them, "
                        f"not {value!r}")
    return items


class Project:
    """A dinsync project folder. `config` is the validated configuration (`dinsync.config.Project`)
    as last read."""

    def __init__(self, root: Path, config: Any):
        self.root = root
        self.config = config

    def __repr__(self) -> str:
        return f"dinsync.Project({str(self.root)!r})"

    @property
    def syncs(self) -> list[str]:
        return sorted(self.config.syncs)

    @property
    def models(self) -> list[str]:
        return sorted(self.config.models)

    @contextlib.contextmanager
    def _open(self, check_models: bool = True, syncs: Callable[[Any], list[str]] | None = None,
              destination_secrets: bool = True, notification_secrets: bool = True) -> Iterator[tuple[Any, Any]]:
        """The project and its warehouse; `syncs` (project -> the syncs to run): only their models'
        columns are checked; `destination_secrets=False`: nothing is sent (see `load_project`)."""
        from .errors import ConfigError, ConfigIssue
        from .operations import load, working_dir

        if not self.root.is_dir():  # removed since (an old release): not a FileNotFoundError from chdir
            raise ConfigError([ConfigIssue(f"project folder {self.root} not found", str(self.root), None,
                                           "pass the folder that holds dinsync.yml")])
        with working_dir(self.root):
            project, wh = load(check_models, syncs=syncs, destination_secrets=destination_secrets,
                               notification_secrets=notification_secrets)
            self.config = project
            try:
                yield project, wh
            finally:
                wh.close()

    def _select(self, project, select: Selector, exclude: Selector, include_disabled: bool = False):
        from .operations import select as select_syncs

        return select_syncs(project, None, _items(select), _items(exclude), include_disabled=include_disabled)

    @_off_the_event_loop
    def plan(self, select: Selector = None, exclude: Selector = None, *, full_refresh: bool = False,
             samples: int = 3) -> PlanResult:
        """What each selected sync would send: each is planned whatever the others did, those that
        could not be in `errors` (the worst one's `exit_code`), as `dinsync plan`; a sync selected
        alone that cannot be planned raises its DinsyncError."""
        _not_in_a_child_forked_after_polars()
        _not_during_a_run("plan")
        _at_least(0, samples=samples)
        _flags(full_refresh=full_refresh)
        select, exclude = _items(select), _items(exclude)  # read once: an iterator is read empty the second time
        from .operations import plan_syncs
        from .terminal import _json_safe as as_json  # the CLI's JSON values: a decimal's digits, a date's text

        with self._open(syncs=lambda project: self._select(project, select, exclude).names) as (project, wh):
            chosen = self._select(project, select, exclude)
            plans, errors, exit_code = plan_syncs(project, wh, list(chosen.names), full_refresh=full_refresh,
                                                  samples=samples)
        return PlanResult(plans=[SyncPlan.from_dict(as_json(plan)) for plan in plans], exit_code=exit_code,
                          errors=errors, notes=chosen.notes)

    @_off_the_event_loop
    def sync(self, select: Selector = None, exclude: Selector = None, *, full_refresh: bool = False,
             retry_rejected: bool = False, force: bool = False, stop: Any = None,
             progress: ProgressCallback | None = None, on_run: Callable[[Run], None] | None = None) -> SyncResult:
        """Run the selected syncs (every enabled one by default), one after the other, as
        `dinsync sync` does: paused syncs are refused unless `force`, a failure may pause its sync,
        and changes of state are notified.

        `stop`: a `dinsync.engine.StopToken`; `stop.request()` (e.g. from the orchestrator's
        kill handler) stops gracefully like SIGTERM does on the command line. `progress(sync,
        event, data)` receives the engine's progress events; `on_run(run)` each finished run."""
        _not_in_a_child_forked_after_polars()
        _not_during_a_run("sync")
        from .engine.stop import StopToken, stop_on_host_exceptions
        from .operations import make_operator, run_syncs, sync_exit_code

        if stop is not None and not isinstance(stop, StopToken):  # (an AttributeError from inside, else)
            raise TypeError(f"stop must be a dinsync.engine.StopToken (stop.request() stops the runs), not {stop!r}")
        _flags(full_refresh=full_refresh, retry_rejected=retry_rejected, force=force)
        select, exclude = _items(select), _items(exclude)  # read once: an iterator is read empty the second time
        notes: list[str] = []
        progress = _guarded(progress, "progress", notes)
        on_run = _guarded(on_run, "on_run", notes)

        @contextlib.contextmanager
        def progress_for(name: str):
            def on_event(event: str, data: dict) -> None:
                if event == "note":  # what the CLI prints on stderr as `<sync>: note: ...`
                    notes.append(f"{name}: {data.get('message', '')}")
                if progress:
                    progress(name, event, data)

            global _runs_going
            _runs_going += 1  # (under the call's lock, as every change of it)
            try:
                yield on_event
            finally:
                _runs_going -= 1

        stop = stop or StopToken()
        try:
            with stop_on_host_exceptions(stop), \
                    self._open(syncs=lambda project: self._select(project, select, exclude).names) as (project, wh):
                chosen = self._select(project, select, exclude)
                results = run_syncs(project, wh, chosen.names, full_refresh=full_refresh,
                                    retry_rejected=retry_rejected, stop=stop, progress_for=progress_for,
                                    on_run=(lambda run: on_run(Run.from_dict(run))) if on_run else None,
                                    operator=make_operator(project, wh, log=notes.append, stop=stop), force=force,
                                    log=notes.append,  # pauses, resumes, notifications that failed
                                    on_exception=functools.partial(_debug_traceback, notes))
        except BaseException:
            if stop.interruption is None:
                raise
            raise stop.interruption  # (not what it became on the way: a driver's "interrupted", a KeyboardInterrupt)
        result = SyncResult(runs=[Run.from_dict(run) for run, _ in results],
                            exit_code=sync_exit_code(results, stop), notes=[*chosen.notes, *notes])
        if stop.interruption is not None:  # the host's handler meant to end the call: its runs are recorded
            raise stop.interruption
        return result

    @_off_the_event_loop
    def status(self, select: Selector = None, exclude: Selector = None, *, limit: int = 5) -> StatusResult:
        """Each selected sync's state (`syncs`: paused, why, last run, parked rows) and its last
        `limit` runs (disabled syncs included), from the state tables: `dinsync status --json`."""
        _at_least(1, limit=limit)
        from .operations import status_data

        with self._open(check_models=False, destination_secrets=False, notification_secrets=False) as (project, wh):
            chosen = self._select(project, select, exclude, include_disabled=True)
            data = status_data(project, wh, chosen.names, limit)
        return StatusResult(runs=[Run.from_dict(r) for r in data["runs"]], syncs=data["syncs"], notes=chosen.notes)

    @_off_the_event_loop
    def check(self, select: Selector = None, exclude: Selector = None, *, samples: int = 5) -> CheckResult:
        """NULL and duplicated keys of the models of the selected syncs (see `dinsync.checks`)."""
        _at_least(0, samples=samples)
        from . import redaction
        from .checks import check_models

        with self._open(destination_secrets=False, notification_secrets=False) as (project, wh):
            chosen = self._select(project, select, exclude)
            report: CheckReport = check_models(project, wh, chosen.names, samples=samples, redact=redaction.redact)
        return CheckResult(models=report.models, exit_code=report.exit_code, notes=chosen.notes)


def load_project(path: str | Path = ".") -> Project:
    """Read and validate the project folder at `path` (its files and, for models reading dbt
    models, the dbt manifest; the warehouse is opened by each call). Raises ConfigError. As on the
    command line, a destination secret (`${env:NAME}`) that is not set is an error of the calls
    that need it (`sync`, `plan`), not of `load_project`, `status` or `check`."""
    from .config import load_project as load_config
    from .errors import ConfigError, ConfigIssue
    from .operations import WORKING_DIR_LOCK, working_dir

    with WORKING_DIR_LOCK:  # a relative path is the caller's, not that of another thread's call
        # (absolute, a symlink kept: each call follows it to the release a deployment switched it to)
        try:
            root = Path(os.path.abspath(path))
        except FileNotFoundError:  # relative to a working directory that was removed
            raise ConfigError([ConfigIssue(f"project folder {os.fspath(path)!r} is relative to the working "
                                           "directory, which was removed",
                                           hint="pass load_project() the project folder's absolute path")]) from None
    if not (root / "dinsync.yml").is_file():
        from .operations import no_project_hint

        hint = no_project_hint(root, "run `dinsync init` or pass load_project() the project folder", "load_project()")
        raise ConfigError([ConfigIssue(f"no dinsync.yml in {root}", hint=hint)])
    with working_dir(root):
        config = load_config(root, destination_secrets=False, notification_secrets=False)
    return Project(root, config)


__all__ = ["CheckResult", "KeyCheck", "ModelCheck", "PlanResult", "Project", "Run", "StatusResult", "SyncFailed",
           "SyncPlan", "SyncResult", "load_project"]
