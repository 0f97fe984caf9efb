"""An event loop for jobs with a time bound (a notice, the health check) that does not wait for
the host-name lookups its jobs gave up on.

aiohttp resolves host names in the loop's default executor. A job's timeout abandons a lookup a
DNS server does not answer, but `asyncio.run` then waited for that thread to end (5 s per try and
server, more with search domains), past the bound. `run_leaving_lookups` runs the job with an
executor whose calls are daemon threads never waited for, by the loop's end or the interpreter's.
"""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")


class LeftBehind(ThreadPoolExecutor):
    """Each call in a daemon thread of its own; `shutdown` waits for none of them."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()

        def call() -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as exc:  # (the future carries it to whoever still awaits it)
                    future.set_exception(exc)

        threading.Thread(target=call, name="dinsync-lookup", daemon=True).start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        pass


def run_leaving_lookups(job: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(job)`, but a lookup still running at its end is left behind."""
    with asyncio.Runner() as runner:
        runner.get_loop().set_default_executor(LeftBehind())
        return runner.run(job)
