"""InFlight: an endpoint's in-flight cap follows rate x latency (Little's law), between its
`max_concurrency` and a ceiling; and the sender lets that many requests be in flight over a real
socket when answers are slow (the rate limiter, tested on its own, still spaces their starts)."""
from __future__ import annotations

import asyncio

from aiohttp import web

from dinsync.destinations.base import EndpointLimit
from dinsync.sender import HttpSender
from dinsync.sender.inflight import InFlight

from .test_http_sender import FakeDestination, Server, batch, destination, run


def test_without_a_rate_the_cap_is_max_concurrency_and_with_one_the_ceiling_until_an_answer():
    paced, unpaced = InFlight(32, rate=150.0), InFlight(32, rate=None)
    assert unpaced.capacity == 32
    unpaced.observe(5.0)
    assert unpaced.capacity == 32  # no rate to hold: the cap stays what the destination chose
    assert paced.capacity == paced.ceiling == 128  # the rate limiter alone paces the first requests
    paced.observe(0.01)
    assert paced.capacity == 32  # quick answers: back to max_concurrency


def test_the_cap_follows_rate_times_latency_within_floor_and_ceiling():
    cap = InFlight(32, rate=150.0)
    cap.observe(0.3)  # 150/s x 0.3 s x 1.25 slack
    assert cap.capacity == 57
    cap.observe(0.01)  # a moving average: one quick answer lowers it only in part
    assert 32 < cap.capacity < 57
    for _ in range(40):
        cap.observe(0.01)
    assert cap.capacity == 32  # never below max_concurrency
    for _ in range(40):
        cap.observe(30.0)
    assert cap.capacity == cap.ceiling == 128  # 4 x max_concurrency by default
    assert InFlight(8, rate=5.0, sockets=24).ceiling == 24 and InFlight(8, rate=5.0, sockets=2).ceiling == 8


def test_waiters_enter_when_the_cap_grows_and_a_cancelled_waiter_takes_no_place():
    async def main():
        cap = InFlight(1, rate=10.0)
        cap.observe(0.0)  # quick answers: 1 in flight
        entered = []

        async def enter(i, hold):
            async with cap:
                entered.append(i)
                await hold.wait()

        hold = asyncio.Event()
        tasks = [asyncio.create_task(enter(i, hold)) for i in range(4)]
        await asyncio.sleep(0.01)
        assert entered == [0] and cap.active == 1
        tasks[1].cancel()  # waiting: leaves the queue
        await asyncio.sleep(0.01)
        for _ in range(3):
            cap.observe(0.35)  # the moving average 0.17 s: 10/s x 0.17 s x 1.25: 3 in flight
        await asyncio.sleep(0.01)
        assert sorted(entered) == [0, 2, 3] and cap.active == 3
        hold.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert cap.active == 0 and not cap._waiters

    run(main())


def test_a_freed_place_goes_to_the_first_waiter_not_to_a_newcomer():
    """First come, first in. A place freed while requests wait is handed to the first of them, even
    if another request asks before that waiter has run (the newcomer used to take it, and the waiter
    went to the back of the line: a run's next slice of lookups overtook the rest of the current
    one, whose writes then waited for both)."""

    async def main():
        cap = InFlight(1, rate=10.0)
        cap.observe(0.0)  # quick answers: 1 in flight
        order, holds = [], {name: asyncio.Event() for name in "BC"}

        async def enter(name):
            async with cap:
                order.append(name)
                await holds[name].wait()

        async def release_in_turn():
            for name in "BC":
                await asyncio.sleep(0.01)
                holds[name].set()

        await cap.__aenter__()  # A holds the one place
        waiting = [asyncio.create_task(enter(name)) for name in "BC"]
        await asyncio.sleep(0.01)
        assert order == [] and len(cap._waiters) == 2
        await cap.__aexit__(None, None, None)  # A leaves: the place is B's...
        releaser = asyncio.create_task(release_in_turn())
        await cap.__aenter__()  # ...although D asks before B has run: D queues behind C
        order.append("D")
        await cap.__aexit__(None, None, None)
        await asyncio.gather(releaser, *waiting)
        assert order == ["B", "C", "D"] and cap.active == 0 and not cap._waiters

    run(main())


def test_a_next_attempt_enters_ahead_of_requests_not_tried_yet():
    """A request's retry waits for a place ahead of the requests not tried yet (behind them, Attentive's
    hundreds of lookups, a silent destination was found down only once each of them had timed out);
    retries among themselves, first come, first in."""

    async def main():
        cap = InFlight(1, rate=10.0)
        cap.observe(0.0)  # quick answers: 1 in flight
        order = []

        async def enter(name, place):
            async with place:
                order.append(name)
                await asyncio.sleep(0)

        await cap.__aenter__()  # A holds the one place
        fresh = [asyncio.create_task(enter(name, cap)) for name in "BC"]
        await asyncio.sleep(0)
        retries = [asyncio.create_task(enter(name, cap.retrying())) for name in ("a2", "b2")]
        await asyncio.sleep(0)
        assert order == [] and len(cap._waiters) == 2 and len(cap._retries) == 2
        await cap.__aexit__(None, None, None)
        await asyncio.gather(*fresh, *retries)
        assert order == ["a2", "b2", "B", "C"] and cap.active == 0 and not cap._waiters and not cap._retries

    run(main())


def test_a_waiter_handed_a_place_and_cancelled_passes_it_on():
    async def main():
        cap = InFlight(1, rate=10.0)
        cap.observe(0.0)
        entered = []

        async def enter(name):
            async with cap:
                entered.append(name)
                await asyncio.sleep(0)

        await cap.__aenter__()
        b, c = asyncio.create_task(enter("B")), asyncio.create_task(enter("C"))
        await asyncio.sleep(0.01)
        await cap.__aexit__(None, None, None)  # the place is handed to B...
        b.cancel()  # ...which is cancelled before it runs: C gets it
        await asyncio.gather(b, c, return_exceptions=True)
        assert entered == ["C"] and cap.active == 0 and not cap._waiters

    run(main())


def send_to_a_slow_server(rate: float, max_concurrency: int, seconds: float, requests: int,
                          connections: int | None = None):
    """`requests` one-record requests of an endpoint paced at `rate` to a server answering each in
    `seconds`: (the server, the endpoint's InFlight)."""

    class Slow(FakeDestination):
        limits = {"write": EndpointLimit("write", rate=rate, max_concurrency=max_concurrency)}

    async def handler(request, hit):
        await asyncio.sleep(seconds)
        return web.json_response({})

    async def main():
        async with Server(handler) as srv, HttpSender(destination(srv, Slow), connections=connections) as s:
            await asyncio.gather(*(s.send(batch([f"k{i}"])) for i in range(requests)))
            return srv, s._endpoint("write").in_flight

    return run(main())


def test_slow_answers_let_more_requests_be_in_flight_over_a_socket():
    """40 requests of an endpoint paced at 40/s whose answers take 0.25 s: holding 40/s needs 10 in
    flight, more than its max_concurrency of 4. (The count at the server, not a duration.)"""
    srv, cap = send_to_a_slow_server(40.0, 4, 0.25, 40)
    assert len(srv.hits) == 40
    assert srv.max_in_flight >= 9 and cap.capacity >= 12


def test_the_cap_never_exceeds_the_sockets():
    srv, cap = send_to_a_slow_server(100.0, 2, 0.2, 20, connections=3)
    assert cap.ceiling == 3 and cap.capacity == 3 and srv.max_in_flight == 3


def test_the_senders_limiters_count_their_first_starts_as_cold():
    """The sender's limiters take COLD_MARGIN for their first window of starts (see ratelimit.py):
    Attio's sliding window answered a 429 in the first second of most 750-write upserts without."""
    from dinsync.sender.ratelimit import COLD_MARGIN

    class Paced(FakeDestination):
        limits = {"write": EndpointLimit("write", rate=25.0, burst=2, max_concurrency=4)}

    sender = HttpSender(Paced("http://127.0.0.1:9", {"api_key": "k"}))
    assert sender.limiter("write").cold_margin == COLD_MARGIN > 0
