"""Running a sandbox: in a background thread (tests, demo) or in the foreground (CLI, benchmarks).

A sandbox is any object with `async start(port) -> url` and `async stop()`; one serving several
URLs (Splio: SFTP and HTTP) also has `urls` and `banner_lines()`, which `serve` prints. Its state lives on
its own event loop; from other threads, go through `SandboxThread.call`, which runs a function
on that loop and hands back the result.
"""
from __future__ import annotations

import asyncio
import gc
import inspect
import signal
import sys
import threading
from typing import Any, Callable, TextIO

from .attentive import AttentiveSandbox
from .attio import AttioSandbox
from .faults import Fault
from .iterable import IterableSandbox
from .splio import SplioSandbox

PLATFORMS = {"iterable": IterableSandbox, "attio": AttioSandbox, "attentive": AttentiveSandbox, "splio": SplioSandbox}


def build_sandbox(platform: str, api_key: str | None = None, *, api_keys: list[str] | None = None,
                  **options: Any) -> Any:
    """A sandbox by platform name, e.g. `build_sandbox("iterable", api_key="k", limits=False)`."""
    try:
        factory = PLATFORMS[platform]
    except KeyError:
        raise ValueError(f"unknown sandbox platform {platform!r}; known: {', '.join(PLATFORMS)}") from None
    keys = list(api_keys or []) + ([api_key] if api_key else [])
    return factory(keys, **options)


class SandboxThread:
    """Serve `sandbox` on 127.0.0.1 from a daemon thread with its own event loop.

        with SandboxThread(IterableSandbox("key")) as runner:
            requests to runner.url ...
            runner.call(runner.sandbox.get_user, email="a@b.co")
    """

    def __init__(self, sandbox: Any, port: int = 0, start_timeout: float = 10.0):
        self.sandbox = sandbox
        self.port = port
        self.start_timeout = start_timeout
        self.url: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> str:
        """Start serving; returns the base URL (`http://127.0.0.1:PORT`)."""
        if self._thread is not None:
            raise RuntimeError("already started")
        self._thread = threading.Thread(target=self._run, name="dinsync-sandbox", daemon=True)
        self._thread.start()
        if not self._ready.wait(self.start_timeout):
            raise RuntimeError("sandbox did not start in time")
        if self._error is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError(f"sandbox failed to start: {self._error}") from self._error
        return self.url  # type: ignore[return-value]

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            self.url = loop.run_until_complete(self.sandbox.start(self.port))
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._loop = loop
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self.sandbox.stop())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the thread to end. Safe to call twice."""
        thread, loop = self._thread, self._loop
        if thread is None:
            return
        if loop is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._thread = self._loop = None

    @property
    def base_url(self) -> str | None:
        return self.url

    def __enter__(self) -> "SandboxThread":
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 10.0, **kwargs: Any) -> Any:
        """Run `fn(*args, **kwargs)` on the sandbox's loop and return its result (awaited if a coroutine)."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("sandbox is not running")

        async def run() -> Any:
            result = fn(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout)

    # Conveniences over call()
    def set_faults(self, **changes: Any) -> None:
        """Change fault settings, e.g. `set_faults(error_rate=0.2, seed=7)`."""
        self.call(self.sandbox.faults.update, **changes)

    def script(self, endpoint: str | None, *faults: Fault, times: int = 1) -> None:
        """Queue scripted faults for the next requests to `endpoint` (None: any)."""
        self.call(self.sandbox.faults.script, endpoint, *faults, times=times)

    def hold(self) -> None:
        """Hold every request from now on until `release()` (see faults.Faults.hold)."""
        self.call(self.sandbox.faults.hold)

    def release(self) -> None:
        self.call(self.sandbox.faults.release)

    def held(self) -> int:
        """How many requests are waiting to be released now."""
        return self.call(lambda: self.sandbox.faults.held)

    def stats(self) -> dict:
        return self.call(self.sandbox.stats)

    def reset(self) -> None:
        self.call(self.sandbox.reset)


def serve(sandbox: Any, port: int = 0, out: TextIO | None = None, freeze_gc: bool = True, **build: Any) -> None:
    """Serve in the foreground until SIGINT or SIGTERM.

    `sandbox` is a sandbox object, or a platform name built with `build_sandbox(name, **build)`
    (e.g. `serve("iterable", port=8765, api_key="k", limits=False)`).

    The first line written to `out` (stdout) is `listening http://127.0.0.1:PORT` (all of the
    sandbox's `urls`, space-separated, when it has several), then its `banner_lines()` if any;
    benchmarks and scripts wait for it. `freeze_gc` (for a process of its own): every second, move the
    objects alive so far out of the garbage collector's reach (`gc.freeze`). A million stored
    users otherwise make each full collection walk them all, which cost ~40% of the CPU of a
    bulk load; the price is that cyclic garbage alive at a freeze is never reclaimed.
    """
    if isinstance(sandbox, str):
        sandbox = build_sandbox(sandbox, **build)
    elif build:
        raise TypeError(f"unexpected arguments for a ready sandbox: {', '.join(build)}")
    asyncio.run(_serve(sandbox, port, out or sys.stdout, freeze_gc))


async def _freeze_gc_forever(period: float = 1.0) -> None:
    while True:
        await asyncio.sleep(period)
        gc.freeze()


async def _serve(sandbox: Any, port: int, out: TextIO, freeze_gc: bool) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    try:
        url = await sandbox.start(port)
        print(f"listening {' '.join(getattr(sandbox, 'urls', None) or [url])}", file=out, flush=True)
        for line in getattr(sandbox, "banner_lines", list)():
            print(line, file=out, flush=True)
        freezer = asyncio.create_task(_freeze_gc_forever()) if freeze_gc else None
        await stopping.wait()
        if freezer is not None:
            freezer.cancel()
    finally:
        await sandbox.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
