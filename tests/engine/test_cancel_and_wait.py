"""engine.stop.cancel_and_wait: every task given up has ended when it returns, however often its
cancellation is swallowed, and however often the caller itself is cancelled meanwhile."""
from __future__ import annotations

import asyncio

import pytest

from dinsync.engine.stop import cancel_and_wait


async def swallowing(times: int, log: list[str]) -> None:
    """A request's attempts: the first `times` cancellations land as a timeout fires (swallowed)."""
    swallowed = 0
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if swallowed == times:
                log.append("ended")
                raise
            swallowed += 1


def test_a_task_swallowing_its_cancellations_is_cancelled_until_it_ends():
    async def main():
        log: list[str] = []
        task = asyncio.ensure_future(swallowing(2, log))
        await asyncio.sleep(0)
        await asyncio.wait_for(cancel_and_wait([task]), 20)
        return task, log

    task, log = asyncio.run(main())
    assert task.cancelled() and log == ["ended"]


def test_the_callers_own_cancellation_waits_for_the_tasks_then_is_raised():
    """A give-up nested in another (a slice's lookups given up by the stop, while the lookup gives
    up its own requests): the outer one cancels the inner every 0.5 s, and the inner one returned
    at once, leaving a request that had swallowed its cancellation retrying after the run moved on."""
    async def main():
        log: list[str] = []
        request = asyncio.ensure_future(swallowing(1, log))
        await asyncio.sleep(0)
        lookup = asyncio.ensure_future(cancel_and_wait([request]))
        await asyncio.sleep(0.1)
        lookup.cancel()  # the outer give-up, before the inner one cancelled again
        done, _ = await asyncio.wait({lookup}, timeout=20)
        return lookup, request.done(), list(log)  # (as the caller returned: asyncio.run ends the rest)

    lookup, request_ended, log = asyncio.run(main())
    assert lookup.done() and lookup.cancelled(), "the caller's cancellation was swallowed"
    assert request_ended and log == ["ended"], "the request was left running when its caller returned"


def test_done_tasks_and_their_errors_are_left_as_they_are():
    async def main():
        async def fails():
            raise ValueError("x")

        failed = asyncio.ensure_future(fails())
        await asyncio.sleep(0)
        await cancel_and_wait([failed])
        await cancel_and_wait([])
        return failed

    failed = asyncio.run(main())
    with pytest.raises(ValueError):
        failed.result()
