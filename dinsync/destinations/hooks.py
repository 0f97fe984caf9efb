"""A time limit on a destination plugin's hooks: a hook that never returns (a `prepare` or `parse`
stuck in a loop, a `settle` or `preflight` awaiting a server that never answers) hung `dinsync sync`
and `dinsync validate` forever. Past its limit the hook is given up and the run stops, naming the
plugin and the hook (`HookTimeoutError`); what was acknowledged is committed, the rest is sent (or
its outcome read) by the next run.

The limit is data: `Destination.hook_seconds` (a plugin may declare more for a slow schema read;
None: no limit, as for the built-in destinations, whose waits have limits of their own), which
DINSYNC_HOOK_SECONDS overrides. Hooks that wait by design get theirs on top: `settle` the outcome
timeout, `resolve` the resolve wait.

Async hooks are awaited under the limit. Sync hooks (`prepare`, `parse`, `lookup_requests`, a
settings model's validators) run on a daemon thread of the destination's, one call at a time, as
they ran one at a time before: a hook stuck in Python code cannot be stopped, only left behind;
a daemon thread is not waited for when the process exits.
"""
from __future__ import annotations

import concurrent.futures
import inspect
import os
import queue
import threading
import weakref
from typing import Any, Awaitable, Callable, TypeVar

from ..errors import DinsyncError

T = TypeVar("T")
ENV = "DINSYNC_HOOK_SECONDS"


class HookTimeoutError(DinsyncError):
    """A destination plugin's hook did not return within its time limit: the run stops."""


def hook_seconds(destination: Any) -> float | None:
    """The time limit of `destination`'s hooks (a Destination or its class): its `hook_seconds`
    (None: no limit, whatever the environment says), DINSYNC_HOOK_SECONDS when set."""
    declared = getattr(destination, "hook_seconds", None)
    value = os.environ.get(ENV)
    if declared is None or not value:
        return declared
    from ..engine.options import _setting

    return _setting("hook_seconds", value, declared)


def transport_hook(transport: Any, name: str) -> str | None:
    """The plugin hook a call of `transport.name` runs: a transport of the plugin's own runs its
    `name`; the HTTP sender's deliver is dinsync's (None: no limit of a hook's), its settle and
    resolve the destination's settle_pending and resolve_pending."""
    from ..sender import HttpSender

    if not isinstance(transport, HttpSender):
        return name
    return {"settle": "settle_pending", "resolve": "resolve_pending"}.get(name)


def who(destination: Any) -> str:
    cls = destination if isinstance(destination, type) else type(destination)
    name = getattr(cls, "type_name", "") or cls.__name__
    return f"destination plugin {name} ({cls.__module__}.{cls.__qualname__})"


def timed_out(destination: Any, hook: str, seconds: float) -> HookTimeoutError:
    """`hook`: a hook's name (`prepare`), or what else of the plugin's code ran."""
    what = f"its {hook}()" if hook.isidentifier() else hook
    return HookTimeoutError(
        f"{who(destination)}: {what} did not return within {seconds:g} s, given up",
        hint=f"a bug or a hang in that plugin's code; {ENV} sets the limit of its hooks (now {seconds:g} s)")


async def limited(destination: Any, hook: str | None, waiting: Awaitable[T], extra: float = 0.0) -> T:
    """Await an async hook of `destination` within its limit (+ `extra` seconds of a wait by design;
    `hook` None: no hook's, awaited as it is). A plugin's hook written as a plain def where the
    README has an async one returned its result already: taken as it is."""
    if not inspect.isawaitable(waiting):
        return waiting
    seconds = hook_seconds(destination) if hook is not None else None
    if seconds is None:
        return await waiting
    import asyncio  # (here, not at the top: the config's loader imports this module, and `status` or a
    # no-op sync never starts an event loop: start-up imports no asyncio, tests/e2e/test_cli_conventions.py)

    try:
        return await asyncio.wait_for(waiting, seconds + extra)
    except asyncio.TimeoutError:
        raise timed_out(destination, hook, seconds + extra) from None


class opened:
    """`async with hooks.opened(destination, transport) as t:` is `async with transport as t:`, a
    plugin's own transport entered and left within its hooks' limit (an SFTP login that never
    answers); the HTTP sender as it is."""

    def __init__(self, destination: Any, transport: Any):
        self.destination, self.transport = destination, transport
        self.timed = transport_hook(transport, "deliver") is not None

    async def __aenter__(self) -> Any:
        entering = self.transport.__aenter__()
        if not self.timed:
            return await entering
        return await limited(self.destination, "its transport's __aenter__()", entering)

    async def __aexit__(self, *exc: Any) -> Any:
        leaving = self.transport.__aexit__(*exc)
        if not self.timed:
            return await leaving
        return await limited(self.destination, "its transport's __aexit__()", leaving)


async def call(destination: Any, hook: str, fn: Callable[..., T], *args: Any) -> T:
    """A sync hook of `destination`, on its hook thread, awaited within its limit (no limit:
    called here, as before). One written as an async def is awaited (within the limit too)."""
    seconds = hook_seconds(destination)
    if seconds is None:
        result = fn(*args)
    else:
        import asyncio  # (see `limited`)

        future = _thread_of(destination).submit(fn, *args)
        try:
            result = await asyncio.wait_for(asyncio.wrap_future(future), seconds)
        except asyncio.TimeoutError:
            _abandon(destination)
            raise timed_out(destination, hook, seconds) from None
    return await limited(destination, hook, result) if inspect.isawaitable(result) else result


def call_blocking(destination: Any, hook: str, fn: Callable[..., T], *args: Any) -> T:
    """A sync hook called outside an event loop (a settings model's validators), within its limit."""
    seconds = hook_seconds(destination)
    if seconds is None:
        return fn(*args)
    future = _thread_of(destination).submit(fn, *args)
    try:
        return future.result(timeout=seconds)
    except concurrent.futures.TimeoutError:
        _abandon(destination)
        raise timed_out(destination, hook, seconds) from None


class _HookThread:
    """One daemon thread running a destination's sync hooks in turn."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="dinsync-plugin-hook", daemon=True).start()

    def submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._calls.put((future, fn, args))
        return future

    def stop(self) -> None:
        self._calls.put(None)

    def _serve(self) -> None:
        while True:
            item = self._calls.get()
            if item is None:
                return
            future, fn, args = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # (the caller's to raise)
                future.set_exception(exc)
            del future, fn, args, item


_threads: "weakref.WeakKeyDictionary[Any, _HookThread]" = weakref.WeakKeyDictionary()
_threads_lock = threading.Lock()


def _thread_of(destination: Any) -> _HookThread:
    with _threads_lock:
        thread = _threads.get(destination)
        if thread is None:
            thread = _threads[destination] = _HookThread()
            weakref.finalize(destination, thread.stop)
        return thread


def _abandon(destination: Any) -> None:
    """The hook thread is stuck: left to itself (a daemon), a new one serves later calls."""
    with _threads_lock:
        thread = _threads.pop(destination, None)
    if thread is not None:
        thread.stop()
