"""Senders of one process that draw on the same platform counter share its pace.

Attio counts 25 writes/s for the whole token, Iterable and Attentive per project key and endpoint,
Splio per client IP. Two syncs sending at once (`dinsync serve --parallel`, each run in a thread of
its own with its own event loop) each paced at the full rate made 832 429s out of 1,831 writes
against a strict server in a 2 x 500-row Attio run (both at 25/s on one token)."""
from __future__ import annotations

import asyncio
import bisect
import threading

from dinsync.destinations.attentive import AttentiveDestination
from dinsync.destinations.attio.destination import AttioDestination
from dinsync.destinations.splio.destination import SplioDestination
from dinsync.sender import HttpSender
from dinsync.sender.ratelimit import FakeClock

URL = "http://127.0.0.1:9"


def most_in_a_second(times: list[float]) -> int:
    times = sorted(times)
    return max(bisect.bisect_left(times, t + 1.0 - 1e-9) - i for i, t in enumerate(times))


def attio(key: str = "token-a") -> AttioDestination:
    return AttioDestination(URL, {"api_key": key})


async def _starts(limiter, clock, n: int, out: list[float]) -> None:
    for _ in range(n):
        await limiter.acquire()
        out.append(clock.now())


def test_two_senders_on_one_token_share_its_write_limit():
    async def main():
        clock = FakeClock(start=100.0)
        a, b = HttpSender(attio(), clock=clock), HttpSender(attio(), clock=clock)
        starts: list[float] = []
        await asyncio.gather(_starts(a.limiter("write"), clock, 60, starts),
                             _starts(b.limiter("write"), clock, 60, starts))
        return starts

    starts = asyncio.run(main())
    assert len(starts) == 120
    assert most_in_a_second(starts) <= 25  # two paces of their own: 50


def test_a_429_pauses_every_sender_of_the_token():
    clock = FakeClock(start=100.0)
    a, b = HttpSender(attio(), clock=clock), HttpSender(attio(), clock=clock)
    a.limiter("write").penalize(2.0)
    assert b.limiter("write").paused_until == 102.0


def test_other_tokens_and_clocks_keep_paces_of_their_own():
    clock = FakeClock()
    a = HttpSender(attio("token-a"), clock=clock)
    assert HttpSender(attio("token-b"), clock=clock).limiter("write")._pace is not a.limiter("write")._pace
    assert HttpSender(attio("token-a"), clock=FakeClock()).limiter("write")._pace is not a.limiter("write")._pace
    assert HttpSender(attio("token-a"), clock=clock).limiter("read")._pace is not a.limiter("write")._pace


def test_splio_counts_per_address_whatever_the_key():
    clock = FakeClock()
    one = HttpSender(SplioDestination(URL, {"api_key": "k1"}, {"transport": "api"}), clock=clock)
    two = HttpSender(SplioDestination(URL, {"api_key": "k2"}, {"transport": "api"}), clock=clock)
    assert one.limiter("contacts")._pace is two.limiter("contacts")._pace


def test_attentive_probe_draws_on_the_lookups_bucket():
    sender = HttpSender(AttentiveDestination(URL, {"api_key": "k"}), clock=FakeClock())
    assert sender.limiter("probe")._pace is sender.limiter("get_custom_attributes")._pace


def test_senders_in_threads_of_their_own_share_the_pace():
    """As `serve --parallel` runs them: each sender on its own event loop, in its own thread."""
    key = "token-threads"
    senders = [HttpSender(AttioDestination(URL, {"api_key": key}), rate_overrides={"write": 40.0}) for _ in range(2)]
    starts: list[float] = []
    lock = threading.Lock()

    def run(sender: HttpSender) -> None:
        async def main():
            limiter = sender.limiter("write")
            for _ in range(30):
                slot = await limiter.acquire()
                with lock:  # the start as the pace placed it (a thread scheduled late records no bunch)
                    starts.append(slot[0])
        asyncio.run(main())

    threads = [threading.Thread(target=run, args=(s,)) for s in senders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(starts) == 60
    assert most_in_a_second(starts) <= 40  # (each thread alone paced at 40/s: up to 80)


def test_splio_paces_on_the_minute_limit_its_gateway_announces():
    """Splio's gateway counts per second and per minute (x-rateLimit-limit-minute; the minute's limit
    is not documented). At 20/s, 480 a minute were spent in 24 s, then 429s for the rest of it."""
    from multidict import CIMultiDict

    sender = HttpSender(SplioDestination(URL, {"api_key": "k-minute"}, {"transport": "api"}), clock=FakeClock())
    sender.follow_announced_limits("contacts", CIMultiDict({"x-rateLimit-limit-minute": "480",
                                                            "x-rateLimit-limit-second": "20"}))
    assert sender.limiter("contacts").rate == 8.0
    sender.follow_announced_limits("contacts", CIMultiDict({"X-RateLimit-Limit-Minute": "6000"}))
    assert sender.limiter("contacts").rate == 20.0  # never above the documented 20/s
    sender.follow_announced_limits("contacts", CIMultiDict({"x-rateLimit-limit-second": "10"}))
    assert sender.limiter("contacts").rate == 10.0
    sender.follow_announced_limits("contacts", CIMultiDict({"x-rateLimit-limit-minute": "soon"}))
    assert sender.limiter("contacts").rate == 10.0  # nothing readable announced: kept


def test_a_rate_set_in_dinsync_yml_is_not_overridden_by_announcements():
    from multidict import CIMultiDict

    sender = HttpSender(SplioDestination(URL, {"api_key": "k-minute2"}, {"transport": "api"}),
                        rate_overrides={"contacts": 15.0}, clock=FakeClock())
    sender.follow_announced_limits("contacts", CIMultiDict({"x-rateLimit-limit-minute": "480"}))
    assert sender.limiter("contacts").rate == 15.0


def test_a_sync_right_after_another_on_one_token_counts_the_starts_still_in_the_window():
    """Syncs of one `dinsync sync` (or one `serve`) run one after the other: the next one's sender
    starts ~40 ms after the last one's answers came back, while the platform's window still holds
    the last second of its writes. A pace of its own (the previous one gone with its sender) let 2
    writes go at once (Attio's burst) onto a full window: 26-27 in a second."""
    import gc

    async def one_sync(clock, n: int, out: list[float]) -> None:
        sender = HttpSender(attio(), clock=clock)
        await _starts(sender.limiter("write"), clock, n, out)

    async def main():
        clock = FakeClock(start=100.0)
        starts: list[float] = []
        await one_sync(clock, 60, starts)
        gc.collect()
        clock._now += 0.05  # the last answer, the run's end, the next sync's plan
        await one_sync(clock, 60, starts)
        return starts

    starts = asyncio.run(main())
    assert most_in_a_second(starts) <= 25
