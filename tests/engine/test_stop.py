"""The signal handler of `dinsync sync` and `dinsync serve` (dinsync.engine.stop)."""
from __future__ import annotations

import importlib
import importlib._bootstrap as bootstrap
import signal
import sys
import threading
import time

from dinsync.engine import StopToken, stop_on_signals


def _blocked_on_import(ident: int) -> bool:
    return bool(bootstrap._blocking_on.get(ident))  # 3.11: a lock; 3.12+: a list of locks


def test_a_signal_while_the_main_thread_waits_on_an_import_lock_does_not_break_the_import(tmp_path, monkeypatch):
    """A run imports Polars in the background while its plan runs, and the main thread imports it
    too when sending starts: a SIGINT arriving while the main thread waited for that import lock
    made the run fail with `KeyError: <thread id>` (the handler's message imported modules, and
    Python 3.11's import machinery does not survive an import nested in a waiting one)."""
    release, started = threading.Event(), threading.Event()
    (tmp_path / "dinsync_slow_module.py").write_text(
        "import tests.engine.test_stop as t\nt.STARTED.set()\nt.RELEASE.wait(60)\n")
    (tmp_path / "dinsync_fresh_module.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys.modules[__name__], "STARTED", started, raising=False)
    monkeypatch.setattr(sys.modules[__name__], "RELEASE", release, raising=False)
    for name in ("dinsync_slow_module", "dinsync_fresh_module"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    told = threading.Event()

    def on_first(name: str) -> None:  # what the CLI does: print a message (which may import)
        importlib.import_module("dinsync_fresh_module")
        told.set()

    background = threading.Thread(target=importlib.import_module, args=("dinsync_slow_module",), daemon=True)
    main = threading.get_ident()

    def interrupt() -> None:
        deadline = time.monotonic() + 30
        while not _blocked_on_import(main) and time.monotonic() < deadline:
            time.sleep(0.001)
        signal.pthread_kill(main, signal.SIGINT)
        told.wait(30)  # the handler (and its message) ran while the main thread waited
        release.set()

    token = StopToken()
    with stop_on_signals(token, on_first):
        background.start()
        assert started.wait(30)
        threading.Thread(target=interrupt, daemon=True).start()
        module = importlib.import_module("dinsync_slow_module")  # waits on the background import
    assert module.__name__ == "dinsync_slow_module"
    assert token.requested and token.signal_name == "SIGINT"
    assert told.wait(30)


def test_a_signal_sets_the_tokens_wakers_from_a_thread_not_the_handler():
    """The wakers (`serve`'s idle wait) are set on a signal even without an `on_first` callback,
    and never inside the handler: Event.set there could wait forever on a lock the interrupted
    main thread holds inside Event.wait."""
    token, waker = StopToken(), threading.Event()
    token.add_waker(waker)
    setters: list[str] = []
    original = waker.set
    waker.set = lambda: (setters.append(threading.current_thread().name), original())[1]
    with stop_on_signals(token):
        signal.raise_signal(signal.SIGTERM)
        assert token.requested and token.signum == signal.SIGTERM
        assert waker.wait(5)
    assert setters == ["dinsync-signal"]
    late = threading.Event()
    token.add_waker(late)  # added after the request: set at once
    assert late.is_set()


def test_the_signal_message_is_printed_before_the_wakers_are_set():
    """Woken first, an idle `serve` may exit before the daemon thread printed "SIGTERM: stopping"
    (seen: the message missing from a stopped service's stderr)."""
    token, waker = StopToken(), threading.Event()
    token.add_waker(waker)
    seen: list[bool] = []
    with stop_on_signals(token, on_first=lambda name: seen.append(waker.is_set())):
        signal.raise_signal(signal.SIGTERM)
        assert waker.wait(5)
    assert seen == [False]


def test_a_block_that_ends_after_a_signal_waits_for_its_message():
    """An idle `serve` whose loop sees the request before the announcer thread ran (a busy machine)
    ended without printing "SIGTERM: stopping" (seen in CI): the block waits for the message."""
    import time

    said: list[str] = []

    def slow_print(name: str) -> None:
        time.sleep(0.3)
        said.append(name)

    with stop_on_signals(StopToken(), on_first=slow_print):
        signal.raise_signal(signal.SIGTERM)
    assert said == ["SIGTERM"]


def test_a_waker_may_be_any_object_with_set():
    """The contract the health check relies on (its waker cancels an asyncio task): `set()` is
    called on a stop request, or at once when added after one."""
    from dinsync.engine.stop import StopToken

    calls: list[str] = []

    class Waker:
        def __init__(self, name: str):
            self.name = name

        def set(self) -> None:
            calls.append(self.name)

    token = StopToken()
    token.add_waker(Waker("before"))
    token.request()
    token.add_waker(Waker("after"))
    assert calls == ["before", "after"]


class _LockWaits:
    """A warehouse whose interrupt_lock_waits cancels `waiting` statements (each counted)."""

    def __init__(self, waiting: int):
        self.waiting = waiting
        self.lock_waits_cancelled = 0
        self.cancelled = threading.Event()

    def interrupt_lock_waits(self) -> None:
        if self.waiting:
            self.waiting -= 1
            self.lock_waits_cancelled += 1
            self.cancelled.set()


def test_a_write_cut_short_by_the_stop_ends_its_block_and_says_so():
    """StoppableWrites.cut: a stop cancels the block's statement waiting for a lock; the error that
    follows is the stop's (the block ends, `short`), not the run's. `run` says so of a function."""
    from dinsync.engine.stop import StoppableWrites

    token, wh = StopToken(), _LockWaits(waiting=1)
    with StoppableWrites(token, wh).cut() as cut:
        token.request()
        assert wh.cancelled.wait(10)
        raise RuntimeError("canceling statement due to user request")
    assert cut.short

    def cancelled_write():
        token2.request()
        assert wh2.cancelled.wait(10)
        raise RuntimeError("canceling statement due to user request")

    token2, wh2 = StopToken(), _LockWaits(waiting=1)
    assert StoppableWrites(token2, wh2).run(cancelled_write) == (False, None)
    assert StoppableWrites(StopToken(), _LockWaits(waiting=0)).run(lambda: 5) == (True, 5)


def test_a_write_failing_on_its_own_is_raised_stopped_or_not():
    """An error of the block's own (no statement waited for a lock: out of memory, the warehouse
    gone) is raised, also once a stop was requested: it is the run's outcome (`failed`), not a
    cancellation."""
    import pytest

    from dinsync.engine.stop import StoppableWrites

    for stopped in (False, True):
        token, wh = StopToken(), _LockWaits(waiting=0)
        if stopped:
            token.request()
        with pytest.raises(MemoryError):
            with StoppableWrites(token, wh).cut() as cut:
                raise MemoryError("out of memory")
        assert not cut.short
    with StoppableWrites(StopToken(), _LockWaits(waiting=1)).cut() as cut:
        pass  # (no stop, no error: nothing is cancelled)
    assert not cut.short
