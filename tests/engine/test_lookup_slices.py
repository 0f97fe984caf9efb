"""Update-mode lookups run a slice at a time: about a second of lookups at the lookup endpoint's rate
(its requests/s times the rows each request looks up), within LOOKUP_SLICE_MIN_ROWS and
LOOKUP_SLICE_ROWS; a rate set in dinsync.yml counts, and without a rate the slice is the largest.
(That writes begin after the first slice, end to end: tests/e2e/test_cli_attentive.py; rows the
snapshot vouches for are not sliced: tests/e2e/test_cli_iterable.py.)"""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import polars as pl
import pytest

from dinsync.destinations.base import EndpointLimit, Request
from dinsync.engine.pipeline import LOOKUP_SLICE_MIN_ROWS, LOOKUP_SLICE_ROWS, Pipeline


class Looker:
    """A destination whose lookups ask about `per_request` rows each, at `rate` requests/s."""

    def __init__(self, rate: float | None, per_request: int):
        self.limits = {"lookup": EndpointLimit("lookup", rate=rate, max_concurrency=8)}
        self.per_request = per_request

    def lookup_requests(self, keys, ids, sync):
        n = self.per_request
        return [Request("lookup", "GET", "/q", None, list(keys[i:i + n])) for i in range(0, len(keys), n)]


def pipeline_for(destination, rate_overrides=None, limits_enabled=True) -> Pipeline:
    return Pipeline(planner=None, destination=destination, service=None, spec=SimpleNamespace(), mapping=None,
                    transport=None, checkpointer=None, summary=None, options=None, stop=None, lock=None,
                    progress=None, redact=None, concurrency=1, rate_overrides=rate_overrides,
                    limits_enabled=limits_enabled)


def frame(rows: int) -> pl.DataFrame:
    keys = [f"k{i}" for i in range(rows)]
    return pl.DataFrame({"_key": keys, "_id": keys}, schema={"_key": pl.String, "_id": pl.String})


def update_mode_pipeline(slices: int) -> Pipeline:
    """An update-mode run whose one batch maps to `slices` slices of 100 rows to look up (100/s)."""
    import threading

    p = pipeline_for(Looker(100.0, 1))
    p.spec = SimpleNamespace(mode="update")
    p.service = SimpleNamespace(update_needs_lookup=True, lookup_rows="all")
    p.stop = SimpleNamespace(requested=False)
    p.lock = SimpleNamespace(lost=threading.Event())
    p.commits = SimpleNamespace(failed=threading.Event())
    rows = frame(100 * slices)
    p._map = lambda batch: (rows, pl.DataFrame({"_key": []}))
    return p


def slice_rows(destination, rows: int = 5000, rate_overrides=None, limits_enabled=True) -> int:
    return asyncio.run(pipeline_for(destination, rate_overrides, limits_enabled)._lookup_slice_rows(frame(rows)))


def test_a_slice_holds_about_a_second_of_lookups():
    assert slice_rows(Looker(150.0, 1)) == 150  # Attentive: one row a lookup, 150/s
    assert slice_rows(Looker(100.0, 1)) == 100  # Iterable: getByEmail, 100/s
    assert slice_rows(Looker(100.0, 50)) == LOOKUP_SLICE_ROWS  # Attio: 50 rows a query, 100/s: capped
    assert slice_rows(Looker(2.0, 1)) == LOOKUP_SLICE_MIN_ROWS  # a slow endpoint still gets a useful slice


def test_the_rate_set_in_the_config_counts_and_without_a_rate_the_slice_is_the_largest():
    assert slice_rows(Looker(150.0, 1), rate_overrides={"lookup": 400.0}) == 400
    assert slice_rows(Looker(150.0, 1), rate_overrides={"lookup": None}) == LOOKUP_SLICE_ROWS  # unlimited
    assert slice_rows(Looker(None, 1)) == LOOKUP_SLICE_ROWS
    assert slice_rows(Looker(150.0, 1), limits_enabled=False) == LOOKUP_SLICE_ROWS


def test_the_rows_per_lookup_come_from_the_destinations_own_requests():
    assert slice_rows(Looker(10.0, 20)) == 200
    assert slice_rows(Looker(10.0, 20), rows=30) == 150  # the first batch's 30 rows: 15 a request


def test_a_batch_without_rows_to_look_up_decides_nothing():
    """A first batch whose rows the snapshot all vouches for has nothing to look up: the slice is
    sized by the next batch that has some, not left at the largest for the rest of the run."""
    pipeline = pipeline_for(Looker(150.0, 1))
    assert asyncio.run(pipeline._lookup_slice_rows(frame(0))) == LOOKUP_SLICE_ROWS
    assert asyncio.run(pipeline._lookup_slice_rows(frame(500))) == 150
    assert asyncio.run(pipeline._lookup_slice_rows(frame(0))) == 150


def test_a_slow_answer_in_one_slice_does_not_stop_the_next_slices_lookups():
    """A slice's rows are written once its slowest lookup answered; meanwhile the lookups of the
    slices after it go on. With one slice ahead only, 3% of answers taking 2 s (and 2% of resets)
    held Iterable's lookups at 69.7/s of 100/s; with LOOKUP_SLICES under way, 90.6/s."""

    async def main():
        p = update_mode_pipeline(slices=6)
        first_answered = asyncio.Event()
        started: list[str] = []

        async def only_existing(part):
            started.append(part["_key"][0])
            if part["_key"][0] == "k0":
                await first_answered.wait()  # the slowest answer of the first slice
            return part

        async def enqueue(found, queue, loop, work_ex):
            pass

        p._only_existing, p._enqueue = only_existing, enqueue
        task = asyncio.ensure_future(p._map_and_enqueue(None, None, asyncio.get_running_loop(), None))
        for _ in range(20):
            await asyncio.sleep(0)
        under_way = list(started)
        first_answered.set()
        await task
        return under_way, started

    under_way, started = asyncio.run(main())
    assert under_way[:3] == ["k0", "k100", "k200"]  # (one slice ahead only: k0, k100)
    assert started == [f"k{i}" for i in range(0, 600, 100)]


def test_a_lookup_that_swallows_its_cancellation_does_not_hold_a_stopped_run():
    """A stop gives the slices' lookups up. A lookup whose cancellation lands as aiohttp's own
    request timeout fires swallows it (that timeout's error is a retry outcome) and goes on to its
    next attempt: cancelled once, the run waited for every attempt of that lookup (minutes at the
    default timeout; for ever here). It is cancelled again until it ends."""

    async def main():
        p = update_mode_pipeline(slices=3)
        swallowed: list[str] = []

        async def only_existing(part):
            while True:  # attempts that never get an answer
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    if swallowed:  # (a second cancellation ends it)
                        raise
                    swallowed.append(part["_key"][0])  # the first one: swallowed, next attempt

        async def enqueue(found, queue, loop, work_ex):
            raise AssertionError("nothing is written once the run stopped")

        p._only_existing, p._enqueue = only_existing, enqueue
        task = asyncio.ensure_future(p._map_and_enqueue(None, None, asyncio.get_running_loop(), None))
        await asyncio.sleep(0.3)
        p.stop.requested = True
        done, _ = await asyncio.wait({task}, timeout=20)
        return bool(done) and task.exception() is None, swallowed

    ended, swallowed = asyncio.run(main())
    assert swallowed, "no lookup swallowed its cancellation: the test proves nothing"
    assert ended, "the stopped run still waited for a lookup that had swallowed its cancellation"


def test_lookups_in_flight_are_not_waited_for_once_one_finds_the_destination_down():
    """A slice's lookups were gathered to the last: once one raised that the destination is down (the
    breaker tripped), the others in flight were still waited for, each up to its timeout (Attentive's
    lookups cut at the default 30 s: found down after ~60 s, the run ended after 93 s). They are
    cancelled now, and the run's error is the outage, not the cancellation."""
    import threading

    from dinsync.errors import DestinationUnreachableError

    never = asyncio.Event()
    cancelled: list[str] = []

    async def deliver(request, keys=None):
        if request.keys == ["k0"]:
            await asyncio.sleep(0.01)
            raise DestinationUnreachableError("fake answered no request for 30 s (lookup): sending stopped")
        try:
            await never.wait()  # in flight, its timeout far off
        except asyncio.CancelledError:
            cancelled.append(request.keys[0])
            raise

    async def main():
        p = pipeline_for(Looker(None, 1))
        p.stop = SimpleNamespace(requested=False)
        p.lock = SimpleNamespace(lost=threading.Event())
        p.commits = SimpleNamespace(failed=threading.Event())
        p._deliver = deliver
        with pytest.raises(DestinationUnreachableError) as err:
            await asyncio.wait_for(p._only_existing(frame(5)), 60)  # (a hang guard)
        return err.value

    err = asyncio.run(main())
    assert "answered no request" in err.message
    assert sorted(cancelled) == ["k1", "k2", "k3", "k4"]
