"""How many requests of one endpoint may be in flight: enough to hold its rate at the latency seen.

A paced endpoint holds its rate only if rate x latency requests can be in flight at once (Little's
law): Attentive's lookups, 150/s with 32 in flight, held 70% of their rate at 300 ms a request,
Iterable's bulkUpdate (5/s, 4 in flight) 72% at 1 s. A fixed cap is right for one latency only, so
the cap of an endpoint with a rate follows the latency of its recent answers: at least its
`max_concurrency` (the cap when answers are quick, and for an endpoint without a rate), and up to
`ceiling`, which is also the cap until the first answer (a floor there cost a whole latency of
sending at the start: Splio's 20/s at 1 s an answer began at 8/s). More in flight never means more
requests per second: the rate limiter still spaces the starts.

A request's next attempt waits ahead of the requests not tried yet (`retrying`), else a destination
that stopped answering is found down only once every request waiting had timed out once (see
HttpSender._attempt); a place that frees while it backs off still goes to whoever waits.
"""
from __future__ import annotations

import asyncio
import math
from collections import deque

SLACK = 1.25  # in flight = rate x latency x SLACK (latency varies from request to request)
ALPHA = 0.2  # weight of the newest answer in the moving average of latencies
CEILING_FACTOR = 4  # the cap grows to at most this many times `max_concurrency`


class InFlight:
    """An asyncio semaphore (`async with`) whose size follows rate x latency (see the module)."""

    def __init__(self, floor: int, rate: float | None, sockets: int | None = None):
        self.floor = max(1, floor)
        self.rate = rate
        # up to CEILING_FACTOR x the floor, and no more than there are sockets (None: no cap)
        most = CEILING_FACTOR * self.floor
        self.ceiling = max(self.floor, min(most, sockets or most))
        self.latency: float | None = None  # moving average of the answers' seconds
        self.active = 0
        self._waiters: deque[asyncio.Future] = deque()
        self._retries: deque[asyncio.Future] = deque()  # next attempts of requests: served first

    @property
    def capacity(self) -> int:
        if self.rate is None:
            return self.floor
        if self.latency is None:  # no answer yet: the rate limiter alone paces the starts
            return self.ceiling
        need = math.ceil(self.rate * self.latency * SLACK)
        return min(self.ceiling, max(self.floor, need))

    def observe(self, seconds: float) -> None:
        """An answer took `seconds` (request sent to response read)."""
        seconds = max(0.0, seconds)
        self.latency = seconds if self.latency is None else (1 - ALPHA) * self.latency + ALPHA * seconds
        self._wake()

    async def __aenter__(self) -> "InFlight":
        """First come, first in: a request that arrives while others wait queues behind them, and a
        place that frees is handed to the first waiter (counted for it before it runs), so that no
        newcomer takes it meanwhile. (Letting newcomers in sent a run's next slice of lookups ahead
        of the rest of the current one, whose writes then waited for both.)"""
        await self._enter(self._waiters)
        return self

    def retrying(self) -> "_Retrying":
        """`async with in_flight.retrying():` a place for a request's next attempt, ahead of the
        requests not tried yet (first come, first in among next attempts)."""
        return _Retrying(self)

    async def _enter(self, queue: deque[asyncio.Future]) -> None:
        if not self._retries and (queue is self._retries or not self._waiters) and self.active < self.capacity:
            self.active += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed a place, then cancelled: the
                self.active -= 1  # place goes to the next one
                self._wake()
            elif waiter in queue:
                queue.remove(waiter)
            raise

    async def __aexit__(self, *exc: object) -> None:
        self.active -= 1
        self._wake()

    def _wake(self) -> None:
        while (self._retries or self._waiters) and self.active < self.capacity:
            waiter = (self._retries or self._waiters).popleft()
            if not waiter.done():
                self.active += 1
                waiter.set_result(None)


class _Retrying:
    """InFlight.retrying's context."""

    def __init__(self, in_flight: InFlight):
        self.in_flight = in_flight

    async def __aenter__(self) -> InFlight:
        await self.in_flight._enter(self.in_flight._retries)
        return self.in_flight

    async def __aexit__(self, *exc: object) -> None:
        await self.in_flight.__aexit__(*exc)
