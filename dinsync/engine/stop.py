"""Graceful stop on SIGTERM / SIGINT (what Airflow, Kubernetes and Ctrl-C send), and SIGHUP for `serve`.

The first signal asks the running sync to stop: it reads no new batch, lets requests in flight
finish within a grace period, commits what was acknowledged and records the run as `cancelled`.
A second signal exits at once, with 128 + that second signal's number (SIGTERM then SIGINT: 130):
still safe, as after a `kill -9` (the snapshot only ever holds acknowledged rows).

Exit codes follow the shell convention: 128 + signal number (130 for SIGINT, 143 for SIGTERM).
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Awaitable, Callable, Collection, Iterator, TypeVar

T = TypeVar("T")


class StopToken:
    """Set once a stop was requested; carries the signal that asked for it."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signum: int | None = None
        self._rearm: Callable[[], None] | None = None
        self._wakers: list[threading.Event] = []  # set on a stop request (e.g. `serve`'s idle wait)
        self._wakers_lock = threading.Lock()
        self.interruption: BaseException | None = None  # what a host's handler raised (see stop_on_host_exceptions)

    def add_waker(self, event: threading.Event) -> None:
        """Set `event` when a stop is requested (at once if it already was): whoever waits on it
        wakes up instead of sleeping until its timeout. Any object with a `set()` that does not
        block will do (the health check's cancels its asyncio task)."""
        with self._wakers_lock:
            self._wakers.append(event)
        if self.requested:
            event.set()

    def remove_waker(self, event: threading.Event) -> None:
        with self._wakers_lock:
            if event in self._wakers:
                self._wakers.remove(event)

    def wake(self) -> None:
        """Set the wakers. Never from a signal handler: the main thread it interrupts may hold one
        of their locks (inside Event.wait); `stop_on_signals` calls it from a thread."""
        with self._wakers_lock:
            wakers = list(self._wakers)
        for event in wakers:
            event.set()

    def rearm(self) -> None:
        """Install our handlers again. Polars, imported lazily once there are rows to send, puts a
        SIGINT handler of its own in front at import time, which turns a Ctrl-C into a
        KeyboardInterrupt inside whatever Polars computation runs (in any thread), instead of
        the graceful stop: call this after importing it."""
        if self._rearm is not None and threading.current_thread() is threading.main_thread():
            self._rearm()

    def request(self, signum: int = signal.SIGTERM) -> None:
        self._flag(signum)
        self.wake()

    def _flag(self, signum: int) -> None:
        """The request itself, without waking anyone (what a signal handler may do)."""
        if self.signum is None:
            self.signum = signum
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGTERM)

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum or signal.SIGTERM).name


ANNOUNCE_SECONDS = 5.0  # at most this long, a block that ends after a signal waits for its message


@contextlib.contextmanager
def stop_on_signals(token: StopToken, on_first: Callable[[str], None] | None = None,
                    hangup: bool = False) -> Iterator[StopToken]:
    """Route SIGTERM and SIGINT (unless it is ignored) to `token` while the block runs (main thread
    only). `hangup` (`serve`): SIGHUP too, unless it is ignored (`nohup`). Its default action ended the service
    at once, as `kill -9` does, when its terminal closed or someone sent it to reload the files."""
    if threading.current_thread() is not threading.main_thread():
        yield token
        return
    previous = {}
    # Nothing the handler does may import a module: it runs between two bytecodes of the main
    # thread, possibly inside `import polars` waiting on the import lock another thread holds, and
    # Python 3.11's import machinery does not survive an import nested there (KeyError from
    # importlib._bootstrap, the run failed). Nor may it start a thread (Thread.start takes a lock
    # the main thread may hold, starting its own threads). So `on_first` (which prints) runs in a
    # daemon thread started here, which the handler only wakes.
    # The token's wakers (`serve`'s idle wait) are set from that thread too, for the same reason
    # (Event.set takes a lock the interrupted main thread may hold), once the message is printed:
    # woken first, an idle `serve` could exit before this daemon thread printed it.
    announce, told = threading.Event(), []

    def announcer() -> None:
        announce.wait()
        if told:
            try:
                if on_first is not None:
                    on_first(told[0])
            finally:
                token.wake()

    announcing = threading.Thread(target=announcer, name="dinsync-signal", daemon=True)
    announcing.start()

    def handler(signum, frame):  # noqa: ARG001
        if token.requested:
            sys.stderr.write(f"second {signal.Signals(signum).name}: exiting now\n")
            sys.stderr.flush()
            os._exit(128 + signum)
        token._flag(signum)
        told.append(signal.Signals(signum).name)
        announce.set()

    # SIGINT and SIGHUP inherited as ignored stay ignored: a shell script's `dinsync sync &` (and
    # `nohup`) asks that Ctrl-C (or the terminal closing) leave the command alone. SIGTERM, what
    # orchestrators send before SIGKILL, always stops the run gracefully.
    signals = [signal.SIGTERM, signal.SIGINT]
    if hangup and hasattr(signal, "SIGHUP"):
        signals.append(signal.SIGHUP)
    signals = [sig for sig in signals if sig == signal.SIGTERM or signal.getsignal(sig) is not signal.SIG_IGN]
    for sig in signals:
        previous[sig] = signal.signal(sig, handler)
    token._rearm = lambda: [signal.signal(sig, handler) for sig in previous]
    try:
        yield token
    finally:
        token._rearm = None
        for sig, old in previous.items():
            signal.signal(sig, old)
        announce.set()  # (no signal came: the announcer ends without a word)
        if told:  # the block may end before the announcer's turn came (a busy machine): its message first
            announcing.join(ANNOUNCE_SECONDS)


HOST_SIGNALS = tuple(getattr(signal, name) for name in ("SIGALRM", "SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1", "SIGUSR2")
                     if hasattr(signal, name))


@contextlib.contextmanager
def stop_on_host_exceptions(token: StopToken) -> Iterator[None]:
    """While the block runs (main thread): an exception a host's own signal handler raises requests a
    stop (by that signal) and is kept as `token.interruption`, then goes on. The API installs no
    handler, but an orchestrator's raise to end its task: Airflow's `execution_timeout` (SIGALRM:
    AirflowTaskTimeout, an Exception), Airflow 2's SIGTERM (AirflowTaskTerminated). Raised in the
    middle of a run, such an exception was taken for the run's own failure: the later syncs all
    ran, past the timeout, and the call returned. With the stop requested, the run ends `cancelled`
    (committing what was acknowledged), the later syncs do not start, and the caller raises it
    again. Python's own SIGINT handler (KeyboardInterrupt) is left alone: it stops the call already."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    wrapped = {}

    def wrapping(host):
        def handler(signum, frame):
            try:
                host(signum, frame)
            except BaseException as exc:
                token._flag(signum)  # (no wake: see StopToken.wake; the exception unwinds the main thread)
                if token.interruption is None:
                    token.interruption = exc
                raise
        return handler

    for sig in HOST_SIGNALS:
        host = signal.getsignal(sig)
        if callable(host) and host is not signal.default_int_handler:
            wrapped[sig] = (host, wrapping(host))
            signal.signal(sig, wrapped[sig][1])
    try:
        yield
    finally:
        for sig, (host, handler) in wrapped.items():
            if signal.getsignal(sig) is handler:  # (unless the host installed another meanwhile)
                signal.signal(sig, host)


class _Interrupter:
    """A StopToken waker (see `interrupting`)."""

    def __init__(self, interrupt: Callable[[], None], every: float):
        self.interrupt = interrupt
        self.every = every
        self.done = threading.Event()
        self.mutex = threading.Lock()  # no interrupt once the block has ended
        self.fired = False

    def set(self) -> None:
        if not self.fired:
            self.fired = True
            threading.Thread(target=self._loop, name="dinsync-interrupt", daemon=True).start()

    def _loop(self) -> None:
        while True:
            with self.mutex:
                if self.done.is_set():
                    return
                self.interrupt()
            if self.done.wait(self.every):
                return

    def end(self) -> None:
        with self.mutex:
            self.done.set()


@contextlib.contextmanager
def interrupting(token: StopToken, interrupt: Callable[[], None], every: float = 0.25) -> Iterator[None]:
    """While the block runs, a stop request calls `interrupt` (cancel the warehouse's statement in
    flight: a run planning a slow model kept its lock, and did not stop, until the model's query
    ended, minutes later, past an orchestrator's grace period), then again every `every` seconds
    until the block ends: a cancel that falls between two statements cancels neither, so the next
    one is cancelled in turn. Nothing is interrupted once the block has ended."""
    interrupter = _Interrupter(interrupt, every)
    token.add_waker(interrupter)  # (fires at once when the stop was requested already)
    try:
        yield
    finally:
        token.remove_waker(interrupter)
        interrupter.end()


class Cut:
    """What `StoppableWrites.cut` yields: `short` once the stop cut its block short."""

    short = False


class StoppableWrites:
    """The warehouse writes of a run that a stop may cut short, and how to tell a write the stop cut
    from one failing on its own (out of memory, the warehouse gone: the run's error, stopped or not).

    By default only statements waiting for another transaction's lock are cancelled
    (`Warehouse.interrupt_lock_waits`: a stopped run's write to the state tables, or its DDL, which
    has no lock_timeout of dinsync's, waited for that lock past an orchestrator's grace period), and
    an error is the stop's only when one such wait was cancelled meanwhile
    (`Warehouse.lock_waits_cancelled` grew). `whole`: the stop cancels any statement in flight
    (`Warehouse.interrupt`), for work that is one transaction a stop may abandon (a plan, an
    unsettle); any error after the stop is the stop's."""

    def __init__(self, token: StopToken, warehouse) -> None:
        self.token = token
        self.wh = warehouse

    def cut_short(self, before: int) -> bool:
        """Whether the stop cancelled a statement waiting for a lock since the warehouse had
        cancelled `before`: the error that followed is the stop's."""
        return self.token.requested and self.wh.lock_waits_cancelled > before

    @contextlib.contextmanager
    def cut(self, whole: bool = False) -> Iterator[Cut]:
        """The block under the stop: an error that is the stop's ends it and sets the yielded
        `Cut.short`; any other is raised."""
        cut = Cut()
        before = self.wh.lock_waits_cancelled
        try:
            with interrupting(self.token, self.wh.interrupt if whole else self.wh.interrupt_lock_waits):
                yield cut
        except Exception:
            if not (self.token.requested if whole else self.cut_short(before)):
                raise
            cut.short = True

    def run(self, write: Callable[[], T], whole: bool = False) -> tuple[bool, T | None]:
        """(True, what `write` returned), or (False, None) when the stop cut it short."""
        with self.cut(whole):
            return True, write()
        return False, None


CANCEL_AGAIN_SECONDS = 0.5


async def cancel_and_wait(tasks: Collection[asyncio.Future]) -> None:
    """Cancel `tasks` and wait until each has ended. A task may swallow its cancellation: one that
    lands as aiohttp's own request timeout fires becomes that timeout's error (a retry outcome), and
    the sender task went back to the queue, empty with the reader cancelled, to wait on it forever,
    and the run with it. Such a task is cancelled again until it ends. (Every place the engine gives
    tasks up goes through here: sender tasks, lookups, a transport's wait for outcomes, a pre-flight
    check.) The caller cancelled meanwhile (a nested give-up cancelling again every 0.5 s) still
    waits for `tasks` to end, then its cancellation is raised: leaving them would leave a request
    retrying after the run had moved on."""
    import asyncio

    interrupted: BaseException | None = None
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        try:
            _, pending = await asyncio.wait(pending, timeout=CANCEL_AGAIN_SECONDS)
        except asyncio.CancelledError as exc:
            interrupted = exc
            pending = {t for t in pending if not t.done()}
    for task in tasks:  # (their errors retrieved, without giving the loop a turn)
        if not task.cancelled():
            task.exception()
    if interrupted is not None:
        raise interrupted


async def within_grace(waiting: Awaitable[T], token: StopToken, grace: float, poll: float = 0.1) -> T:
    """Await `waiting` (a pre-flight check: a login, a schema read); once a stop is requested it may
    finish within `grace` seconds (counted from then, as requests in flight are), then it is given
    up. Stopped, given up or failing after the stop: raises SendingStopped (nothing was sent)."""
    import asyncio

    from ..errors import SendingStopped

    task = asyncio.ensure_future(waiting)
    loop = asyncio.get_running_loop()
    deadline = None
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=poll)
            if done:
                try:
                    return task.result()
                except Exception:
                    if token.requested:  # (e.g. retries cut short by the stop)
                        raise SendingStopped() from None
                    raise
            if token.requested:
                deadline = loop.time() + grace if deadline is None else deadline
                if loop.time() >= deadline:
                    raise SendingStopped()
    finally:
        await cancel_and_wait([task])
