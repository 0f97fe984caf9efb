"""Fault injection and rate limiting (dinsync.sandbox.faults), alone and through the Iterable sandbox."""
from __future__ import annotations

import asyncio
import http.client
import socket
import time
from typing import Any

import aiohttp
import orjson
import pytest

from dinsync.sandbox import Faults, IterableSandbox, SandboxThread
from dinsync.sandbox.faults import RateLimiter, delay, error, reset, reset_after_apply, respond, throttle

KEY = "fault-test-key"
BULK = "/api/users/bulkUpdate"


def post(url: str, path: str, body: Any, timeout: float = 10.0) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=timeout)
    try:
        conn.request("POST", path, body=orjson.dumps(body), headers={"Api-Key": KEY, "Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, dict(resp.headers), resp.read()
    finally:
        conn.close()


def bulk(email: str) -> dict:
    return {"users": [{"email": email, "dataFields": {"plan": "pro"}}]}


@pytest.fixture
def runner():
    thread = SandboxThread(IterableSandbox(KEY, limits=False, faults=Faults(seed=7)))
    thread.start()
    yield thread
    thread.stop()


def has_user(thread: SandboxThread, email: str) -> bool:
    return thread.call(lambda: thread.sandbox.get_user(email=email) is not None)


# ------------------------------------------------------------------ Faults alone
def test_random_faults_are_reproducible_from_the_seed():
    def sequence(seed: int) -> list:
        faults = Faults(error_rate=0.3, reset_rate=0.1, throttle_rate=0.1, reset_after_apply_rate=0.1, seed=seed)
        return [(f.kind, f.status) if f else None for f in (faults.pick("bulkUpdate") for _ in range(200))]

    first = sequence(1)
    assert first == sequence(1)
    assert first != sequence(2)
    kinds = {item[0] for item in first if item}
    assert kinds == {"error", "reset", "throttle", "reset_after_apply"} and None in first
    assert {status for kind, status in filter(None, first) if kind == "error"} <= {500, 502, 503}
    assert Faults().pick("bulkUpdate") is None


def test_fault_settings_are_validated():
    with pytest.raises(ValueError):
        Faults(error_rate=1.5)
    with pytest.raises(ValueError):
        Faults(error_rate=0.6, reset_rate=0.6)
    faults = Faults()
    with pytest.raises(AttributeError):
        faults.update(nonsense=1)
    with pytest.raises(ValueError):
        faults.update(latency=-1)
    assert faults.update(error_rate=0.5, seed=3).error_rate == 0.5


def test_scripted_faults_run_in_order_per_endpoint():
    faults = Faults()
    faults.script("bulkUpdate", throttle(2), times=2)
    faults.script(None, error(502))
    assert faults.pending() == 3 and faults.pending("bulkUpdate") == 2
    assert faults.pick("update").kind == "error"  # the any-endpoint queue
    assert [faults.pick("bulkUpdate").retry_after for _ in range(2)] == [2, 2]
    assert faults.pick("bulkUpdate") is None and faults.pending() == 0
    faults.script("update", reset())
    faults.clear()
    assert faults.pick("update") is None


def test_latency_stays_within_bounds():
    faults = Faults(latency=0.1, jitter=0.05, seed=1)
    values = [faults.latency_seconds() for _ in range(100)]
    assert all(0.1 <= v <= 0.15 for v in values) and len(set(values)) > 1
    assert Faults(latency=0.2).latency_seconds() == 0.2


@pytest.mark.parametrize("window", ["sliding", "fixed"])
def test_rate_limiter_windows(window):
    now = [100.25]
    limiter = RateLimiter(window, clock=lambda: now[0])
    assert [limiter.acquire("e", 2) for _ in range(2)] == [None, None]
    wait = limiter.acquire("e", 2)
    assert wait == pytest.approx(1.0 if window == "sliding" else 0.75)
    assert limiter.acquire("other", 2) is None  # per endpoint
    assert limiter.acquire("e", None) is None  # no limit
    now[0] += wait
    assert limiter.acquire("e", 2) is None
    limiter.clear()
    assert limiter.acquire("e", 1) is None and limiter.acquire("e", 1) is not None


# ------------------------------------------------------------------ through the sandbox
def test_error_page_is_html_and_has_no_effect(runner):
    runner.script("bulkUpdate", error(502))
    status, headers, body = post(runner.url, BULK, bulk("a@b.co"))
    assert status == 502 and headers["Content-Type"].startswith("text/html")
    assert b"<h1>502 Bad Gateway</h1>" in body
    assert not has_user(runner, "a@b.co")
    assert post(runner.url, BULK, bulk("a@b.co"))[0] == 200
    assert runner.stats()["faults"] == {"error": 1}


def test_scripted_throttle_uses_iterables_429(runner):
    runner.script("bulkUpdate", throttle(retry_after=1), times=2)
    first, second, third = (post(runner.url, BULK, bulk(f"u{i}@b.co")) for i in range(3))
    for status, headers, body in (first, second):
        assert status == 429 and headers["Retry-After"] == "1"
        assert orjson.loads(body) == {"msg": "Rate limit exceeded", "code": "RateLimitExceeded", "params": None}
    assert third[0] == 200
    assert runner.call(lambda: len(runner.sandbox.users)) == 1
    assert runner.stats()["responses_429"] == 2


def test_scripted_raw_response(runner):
    runner.script(None, respond(503, {"msg": "maintenance"}, {"Retry-After": "3"}))
    status, headers, body = post(runner.url, BULK, bulk("a@b.co"))
    assert (status, headers["Retry-After"], orjson.loads(body)) == (503, "3", {"msg": "maintenance"})


def test_reset_before_apply_writes_nothing(runner):
    runner.script("bulkUpdate", reset())
    with pytest.raises(ConnectionError):
        post(runner.url, BULK, bulk("a@b.co"))
    assert not has_user(runner, "a@b.co")
    entry = runner.call(lambda: runner.sandbox.log[-1])
    assert (entry.endpoint, entry.status, entry.fault) == ("bulkUpdate", None, "reset")


def test_reset_after_apply_writes_although_the_client_saw_an_error(runner):
    runner.script("bulkUpdate", reset_after_apply())
    with pytest.raises(ConnectionError):
        post(runner.url, BULK, bulk("a@b.co"))
    assert has_user(runner, "a@b.co")
    entry = runner.call(lambda: runner.sandbox.log[-1])
    assert (entry.status, entry.users, entry.fault) == (None, 1, "reset_after_apply")


def test_reset_seen_by_aiohttp(runner):
    runner.script(None, reset_after_apply())

    async def send() -> None:
        async with aiohttp.ClientSession(headers={"Api-Key": KEY}) as session:
            async with session.post(runner.url + BULK, json=bulk("x@b.co")) as resp:
                await resp.read()

    with pytest.raises(aiohttp.ClientConnectionError):
        asyncio.run(send())
    assert has_user(runner, "x@b.co")


def test_random_faults_change_at_run_time_and_repeat_with_the_seed():
    def statuses(seed: int) -> list[int]:
        with SandboxThread(IterableSandbox(KEY, limits=False)) as thread:
            thread.set_faults(error_rate=0.5, seed=seed)
            found = [post(thread.url, BULK, bulk(f"u{i}@b.co"))[0] for i in range(12)]
            thread.set_faults(error_rate=0.0)
            assert post(thread.url, BULK, bulk("after@b.co"))[0] == 200
            assert thread.stats()["faults"]["error"] == sum(s != 200 for s in found)
            return found

    first = statuses(11)
    assert first == statuses(11)
    assert set(first) <= {200, 500, 502, 503} and 200 in first and set(first) - {200}


def test_throttle_rate_bypasses_the_limiter():
    with SandboxThread(IterableSandbox(KEY, limits=False, faults=Faults(throttle_rate=1.0))) as thread:
        status, headers, body = post(thread.url, BULK, bulk("a@b.co"))
        assert status == 429 and orjson.loads(body)["code"] == "RateLimitExceeded"
        assert thread.call(lambda: len(thread.sandbox.users)) == 0


def test_scripted_delay_trips_a_client_timeout(runner):
    runner.script("bulkUpdate", delay(0.5))
    with pytest.raises(socket.timeout):
        post(runner.url, BULK, bulk("slow@b.co"), timeout=0.1)
    assert runner.call(lambda: runner.sandbox.faults.injected["delay"]) == 1


def test_held_requests_wait_for_release_and_then_meet_the_apis_rules():
    """`hold` keeps requests waiting (counted in `held`, nothing written) until `release`; released,
    they meet the rate limiter and validation as any other."""
    from concurrent.futures import ThreadPoolExecutor

    with SandboxThread(IterableSandbox(KEY)) as thread, ThreadPoolExecutor(8) as pool:
        thread.hold()
        sent = [pool.submit(post, thread.url, BULK, bulk(f"u{i}@b.co")) for i in range(6)]  # bulkUpdate: 5/s
        sent.append(pool.submit(post, thread.url, "/api/users/update", {"email": "v@b.co", "unknown": 1}))
        deadline = time.monotonic() + 30
        while thread.held() < 7:
            assert time.monotonic() < deadline, f"{thread.held()} requests held"
            time.sleep(0.01)
        assert not any(f.done() for f in sent)
        assert thread.call(lambda: len(thread.sandbox.users)) == 0
        thread.release()
        statuses = [f.result(timeout=10)[0] for f in sent]
        assert thread.held() == 0
        users = thread.call(lambda: len(thread.sandbox.users))
        assert post(thread.url, BULK, bulk("late@b.co"))[0] in (200, 429)  # not held any more
    assert statuses[-1] == 400, statuses  # the unknown key
    assert sorted(statuses[:6]) == [200] * users + [429] * (6 - users) and 1 <= users <= 5, statuses
