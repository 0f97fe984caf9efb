"""HttpSender against a scripted aiohttp.web server on 127.0.0.1."""
from __future__ import annotations

import asyncio
import bisect
import math
import sys
import time
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any, Awaitable, Callable
from urllib.parse import quote

import aiohttp
import orjson
import pytest
from aiohttp import web

from dinsync.destinations.base import Destination, EndpointLimit, Outcome, RecordResult, Request
from dinsync.errors import DestinationAuthError, DestinationUnreachableError
from dinsync.sender import HttpSender, RetryPolicy
from dinsync.sandbox.runner import SandboxThread
from dinsync.sender.breaker import OutageLimits
from dinsync.sender.http import OUTAGE_REQUESTS
from tests.mute_server import MuteServer

SECRET = "sk_live_T0P/SECRET+key"
FAST = RetryPolicy(base=0.01, cap=0.05)


# --- a scripted server ------------------------------------------------------------------------
@dataclass
class Hit:
    n: int  # 0-based arrival number
    at: float  # time.monotonic() on arrival
    wall: float  # time.time() on arrival
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    keys: list[str]


Handler = Callable[[web.Request, Hit], Awaitable[web.StreamResponse]]


async def ok(request: web.Request, hit: Hit) -> web.Response:
    return web.json_response({})


class Server:
    def __init__(self, handler: Handler = ok):
        self.handler = handler
        self.hits: list[Hit] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = orjson.loads(raw) if raw else None
        keys = [i["key"] for i in body["items"]] if isinstance(body, dict) and "items" in body else []
        hit = Hit(len(self.hits), time.monotonic(), time.time(), request.method, request.raw_path,
                  dict(request.headers), body, keys)
        self.hits.append(hit)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self.handler(request, hit)
        finally:
            self.in_flight -= 1

    async def start(self, port: int = 0) -> str:
        """Serve on 127.0.0.1 (`port` 0: any free one); the base URL. With `stop`, what
        `dinsync.sandbox.runner.SandboxThread` needs to serve it from a thread of its own."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        return self.url

    async def stop(self) -> None:
        await self.runner.cleanup()

    async def __aenter__(self) -> "Server":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


# --- a minimal destination --------------------------------------------------------------------
class FakeDestination(Destination):
    type_name = "fake"
    limits = {"write": EndpointLimit("write", rate=None, max_concurrency=4)}

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credentials['api_key']}"}

    def parse(self, request: Request, status: int, headers, body: bytes) -> Outcome:
        data = orjson.loads(body) if body else {}
        if status == 200:
            results = [RecordResult(k, "rejected", why) for k, why in data.get("failed", {}).items()]
            results += [RecordResult(k, "not_found") for k in data.get("not_found", [])]
            return Outcome("done", results)
        if status == 400 and data.get("split"):
            return Outcome("split", reason=data.get("error", "batch rejected"))
        if status in (401, 403):
            return Outcome("fatal", reason=f"HTTP {status}: {body.decode()}")
        return Outcome("done", [RecordResult(k, "rejected", f"HTTP {status}") for k in request.keys])


def destination(server: Server, cls: type[Destination] = FakeDestination) -> Destination:
    return cls(server.url, {"api_key": SECRET})


def batch(keys: list[str], endpoint: str = "write", path: str = "/batch") -> Request:
    items = [orjson.dumps({"key": k}) for k in keys]

    def rebuild(ks: list[str], its: list[bytes]) -> Request:
        body = b'{"items":[' + b",".join(its) + b"]}"
        return Request(endpoint, "POST", path, body, list(ks), list(its), rebuild)

    return rebuild(keys, items)


def run(coro):
    return asyncio.run(coro)


def statuses(results: list[RecordResult]) -> dict[str, str]:
    return {r.key: r.status for r in results}


# --- tests ------------------------------------------------------------------------------------
def test_success_sends_the_request_as_built():
    async def main():
        async with Server() as srv, HttpSender(destination(srv), retry_policy=FAST) as s:
            req = batch(["a", "b", "c"])
            results = await s.send(req)
            return srv, s, req, results

    srv, s, req, results = run(main())
    assert results == [RecordResult("a", "ok"), RecordResult("b", "ok"), RecordResult("c", "ok")]
    (hit,) = srv.hits
    assert (hit.method, hit.path) == ("POST", "/batch")
    assert hit.headers["Authorization"] == f"Bearer {SECRET}"
    assert hit.headers["Content-Type"] == "application/json"
    assert hit.keys == ["a", "b", "c"]
    assert (s.stats.requests, s.stats.retries, s.stats.bytes_sent) == (1, 0, len(req.body))
    assert s.stats.endpoints["write"].requests == 1


def test_a_redirect_to_another_host_is_not_followed_with_the_key_and_rows():
    """aiohttp drops only `Authorization` on a cross-host redirect: a key in another header
    (Iterable's `Api-Key`) and the rows went to whatever host `Location` named, which then
    acknowledged them. A redirect now fails the request (sent again next run), naming Location."""
    class ApiKeyDestination(FakeDestination):
        def auth_headers(self):
            return {"Api-Key": self.credentials["api_key"]}

    async def main():
        async with Server() as other:
            async def redirect(request, hit):
                raise web.HTTPTemporaryRedirect(other.url + "/batch")

            async with Server(redirect) as srv, HttpSender(destination(srv, ApiKeyDestination),
                                                            retry_policy=FAST) as s:
                return other, srv, await s.send(batch(["a", "b"]))

    other, srv, results = run(main())
    assert other.hits == []  # neither the key nor the rows left for the other host
    assert len(srv.hits) == 1  # not retried: a redirect is an address to fix
    assert statuses(results) == {"a": "failed", "b": "failed"}
    assert "HTTP 307: redirect to http://127.0.0.1:" in results[0].reason
    assert "not followed" in results[0].reason and "base_url" in results[0].reason


def test_get_path_sent_as_escaped_without_content_type():
    async def main():
        async with Server() as srv, HttpSender(destination(srv)) as s:
            path = "/users?email=a%2Bb%40c.d&x=%2F"
            results = await s.send(Request("write", "GET", path, None, ["a+b@c.d"]))
            return srv, results

    srv, results = run(main())
    assert results == [RecordResult("a+b@c.d", "ok")]
    assert srv.hits[0].path == "/users?email=a%2Bb%40c.d&x=%2F"  # sent exactly as escaped
    assert "Content-Type" not in srv.hits[0].headers


def test_per_record_results_one_per_key_in_order():
    async def handler(request, hit):
        return web.json_response({"failed": {"b": "invalid email", "zzz": "unknown key"}, "not_found": ["d"]})

    async def main():
        async with Server(handler) as srv, HttpSender(destination(srv)) as s:
            return await s.send(batch(["a", "b", "c", "d"]))

    results = run(main())
    assert results == [
        RecordResult("a", "ok"),
        RecordResult("b", "rejected", "invalid email"),
        RecordResult("c", "ok"),
        RecordResult("d", "not_found"),
    ]


def test_a_record_an_answer_says_both_acknowledged_and_refused_is_not_acknowledged():
    """A plugin's parse() read an answer listing "b" twice, ok then rejected: the first won, and
    "b" entered the snapshot though the platform refused it (the README: a record said both
    acknowledged and refused is not acknowledged)."""
    class TwiceDestination(FakeDestination):
        def parse(self, request, status, headers, body):
            return Outcome("done", [RecordResult("b", "ok"), RecordResult("a", "ok"),
                                    RecordResult("b", "rejected", "bad email"), RecordResult("b", "failed", "x")])

    async def main():
        async with Server() as srv, HttpSender(destination(srv, TwiceDestination)) as s:
            return await s.deliver(batch(["a", "b", "c"]))

    delivered = run(main())
    assert delivered.ok == ["a", "c"]
    assert delivered.problems == [RecordResult("b", "rejected", "bad email")]


def test_a_plugin_whose_requests_carry_no_credentials_need_not_write_auth_headers():
    """The README names no `auth_headers` hook: a plugin for an endpoint without credentials (or
    with them in its requests' headers) failed every run with a bare `NotImplementedError: `."""
    class NoAuth(Destination):
        type_name = "noauth"
        limits = {"write": EndpointLimit("write", rate=None)}

        def parse(self, request, status, headers, body):
            return Outcome("done")

    async def main():
        async with Server() as srv, HttpSender(NoAuth(srv.url, {})) as s:
            return await s.deliver(batch(["a", "b"]))

    delivered = run(main())
    assert delivered.ok == ["a", "b"] and delivered.problems == []


@pytest.mark.parametrize("hook", ["prepare", "parse"])
def test_a_plugin_without_a_required_hook_is_told_which(hook):
    class Bare(Destination):
        type_name = "bare"

    call = {"prepare": lambda d: d.prepare(None, None), "parse": lambda d: d.parse(batch(["a"]), 200, {}, b"")}[hook]
    with pytest.raises(NotImplementedError, match=f"Bare\\) does not implement {hook}\\(\\)"):
        call(Bare("http://127.0.0.1:1", {}))


def test_a_per_record_rejection_keeps_the_field_it_names():
    """RecordResult.field (the field at fault) reaches the engine, which records it in `rejections`."""
    class FieldDestination(FakeDestination):
        def parse(self, request, status, headers, body):
            return Outcome("done", [RecordResult("b", "rejected", "age must be >= 0", "age")])

    async def main():
        async with Server() as srv, HttpSender(destination(srv, FieldDestination)) as s:
            return await s.deliver(batch(["a", "b"]))

    delivered = run(main())
    assert delivered.ok == ["a"] and delivered.problems == [RecordResult("b", "rejected", "age must be >= 0", "age")]


def test_429_retry_after_seconds_pauses_every_sender_of_the_endpoint():
    async def handler(request, hit):
        if hit.n == 0:
            return web.json_response({"error": "rate_limit_exceeded"}, status=429, headers={"Retry-After": "1"})
        return web.json_response({})

    async def main():
        async with Server(handler) as srv, HttpSender(destination(srv)) as s:
            first = asyncio.ensure_future(s.send(batch(["a"])))
            while s.stats.throttled == 0:  # the 429 is back: the endpoint is paused
                await asyncio.sleep(0.005)
            second = await s.send(batch(["b"]))  # never throttled itself, yet must wait too
            return srv, s, await first, second

    srv, s, first, second = run(main())
    assert first == [RecordResult("a", "ok")] and second == [RecordResult("b", "ok")]
    throttled_at = srv.hits[0].at
    assert len(srv.hits) == 3
    assert all(h.at - throttled_at >= 1.0 for h in srv.hits[1:])
    assert (s.stats.throttled, s.stats.retries, s.stats.requests) == (1, 1, 3)
    assert s.stats.endpoints["write"].throttled == 1


def test_503_retry_after_pauses_every_sender_of_the_endpoint():
    """RFC 9110: a 503's Retry-After says how long the service is expected to be unavailable.
    Before, only the request that got it waited; the others kept arriving during the pause."""
    async def handler(request, hit):
        if hit.n == 0:
            return web.Response(status=503, text="maintenance", headers={"Retry-After": "1"})
        return web.json_response({})

    async def main():
        async with Server(handler) as srv, HttpSender(destination(srv)) as s:
            first = asyncio.ensure_future(s.send(batch(["a"])))
            while s.stats.retries == 0:  # the 503 is back
                await asyncio.sleep(0.005)
            second = await s.send(batch(["b"]))  # never refused itself, yet must wait too
            return srv, s, await first, second

    srv, s, first, second = run(main())
    assert first == [RecordResult("a", "ok")] and second == [RecordResult("b", "ok")]
    refused_at = srv.hits[0].at
    assert len(srv.hits) == 3
    assert all(h.at - refused_at >= 1.0 for h in srv.hits[1:])
    assert (s.stats.throttled, s.stats.retries) == (0, 1)  # a 503 is not a 429


def test_429_retry_after_http_date_is_honoured():
    reset = {}

    async def handler(request, hit):
        if hit.n == 0:
            reset["at"] = math.ceil(time.time() + 0.5)  # Attio style: a whole-second HTTP date
            headers = {"Retry-After": formatdate(reset["at"], usegmt=True)}
            return web.json_response({"error": "rate_limit_exceeded"}, status=429, headers=headers)
        return web.json_response({})

    async def main():
        async with Server(handler) as srv, HttpSender(destination(srv)) as s:
            return srv, await s.send(batch(["a", "b"]))

    srv, results = run(main())
    assert statuses(results) == {"a": "ok", "b": "ok"}
    assert len(srv.hits) == 2
    assert srv.hits[1].wall >= reset["at"]  # not one moment before the date the server gave


def test_429_http_date_from_a_server_whose_clock_is_behind_ours_still_pauses():
    """The server's clock is 10 s behind ours: its Retry-After (its next whole second + 1) is in
    our past. Read against its Date header, the date still means ~1.5 s from now."""
    async def handler(request, hit):
        server_now = time.time() - 10.0
        if hit.n == 0:
            headers = {"Retry-After": formatdate(math.ceil(server_now) + 1, usegmt=True),
                       "Date": formatdate(server_now, usegmt=True)}
            return web.json_response({"error": "rate_limit_exceeded"}, status=429, headers=headers)
        return web.json_response({})

    async def main():
        async with Server(handler) as srv, HttpSender(destination(srv)) as s:
            return srv, await s.send(batch(["a", "b"]))

    srv, results = run(main())
    assert statuses(results) == {"a": "ok", "b": "ok"}
    assert srv.hits[1].at - srv.hits[0].at >= 1.0  # (read against our clock: back at once)


class _Highest:
    """An rng whose every draw is the top of its range: the backoff's delays are their ceilings."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.mark.parametrize("retry_after", ["0", "Tue, 23 May 2023 14:42:01 GMT", "-5"])
@pytest.mark.parametrize("status", [429, 503])
def test_an_answer_that_says_now_backs_off_as_without_a_hint(status, retry_after):
    """Retry-After 0 or a date in the past (a server clock behind ours, no Date header) names no
    wait. A storm of such 429s was hammered at the endpoint's full rate (724 429s in 30 s from a
    strict Attio), each request back within 0.25 s, and 80 rows used their 8 attempts in it; a 503
    (a maintenance, a load balancer with no backend) likewise: a request used its 8 attempts in
    about a second, and three such requests stopped the run as an outage, where the backoff rides
    out half a minute of it."""
    from dinsync.sender.ratelimit import FakeClock

    async def handler(request, hit):
        if hit.n < 3:
            return web.Response(status=status, text="busy", headers={"Retry-After": retry_after})
        return web.json_response({})

    clock = FakeClock()
    policy = RetryPolicy(base=2.0, cap=8.0, rng=_Highest())

    async def main():
        async with Server(handler) as srv, HttpSender(destination(srv), retry_policy=policy, clock=clock) as s:
            return s, await s.send(batch(["a"]))

    s, results = run(main())
    assert statuses(results) == {"a": "ok"}
    assert (s.stats.throttled if status == 429 else s.stats.retries) == 3
    assert clock.now() >= 2.0 + 4.0 + 8.0, clock.sleeps  # the backoff's ceilings (at once: 3 x 0.25 s)


@pytest.mark.parametrize("status,retry_after", [
    (429, "3600"), (429, "HTTP-DATE"), (503, "86400"), (429, "9" * 400), (429, "RESET 3600")])
def test_a_retry_after_longer_than_a_run_waits_is_not_cut_short(status, retry_after):
    """A server that says "not before an hour" (a 429, a 503 for maintenance) was asked again after
    120 s (the cap), against its word, 7 times a request; and 429s being answers, never an outage,
    every request of the run did so (hours). Now nothing more is sent: the request's records are
    failed (sent by the next run) and the next request raises, unsent. Splio says it with
    `rateLimit-reset` (seconds) and no Retry-After ("RESET 3600"): a reset over 120 s was taken for
    an epoch and ignored, and the sender's own backoff asked again after seconds, 429 after 429."""
    from dinsync.sender.ratelimit import FakeClock

    async def handler(request, hit):
        value = formatdate(time.time() + 3600, usegmt=True) if retry_after == "HTTP-DATE" else retry_after
        header = "Retry-After"
        if value.startswith("RESET "):
            header, value = "rateLimit-reset", value.split()[1]
        if hit.n == 0:
            return web.Response(status=status, text="come back later", headers={header: value})
        return web.json_response({})

    async def main():
        async with Server(handler) as srv, HttpSender(destination(srv), clock=FakeClock()) as s:
            first = await s.send(batch(["a"]))
            with pytest.raises(DestinationUnreachableError) as err:
                await s.send(batch(["b"]))
            return srv, first, err.value

    srv, (first,), err = run(main())
    assert first.status == "failed", first
    assert len(srv.hits) == 1  # neither a retry nor the next request came before the server's time
    assert "longer than a run waits" in first.reason and "sent by the next run" in err.message
    assert SECRET not in err.message and err.hint


def test_a_retry_after_longer_than_a_run_waits_holds_for_the_next_runs_of_the_process():
    """`dinsync serve` with `every: 1m` (or a `dinsync sync` of several syncs to one token): a
    platform answering 429 with Retry-After: 600 failed that run's rows, as it should, and the next
    run, a minute later in the same process, asked again at once, and again every minute, against
    the server's word. The wait now holds for the process's later runs too: they send nothing
    before the server's time (each fails at once, saying why), and the first one after it asks."""
    from dinsync.sender.ratelimit import FakeClock

    async def handler(request, hit):
        if hit.n == 0:
            return web.Response(status=429, text="come back later", headers={"Retry-After": "600"})
        return web.json_response({})

    clock = FakeClock()

    async def main():
        async with Server(handler) as srv:
            async with HttpSender(destination(srv), clock=clock) as s:
                (first,) = await s.send(batch(["a"]))
            await clock.sleep(60)  # the next tick of the service
            async with HttpSender(destination(srv), clock=clock) as s:
                with pytest.raises(DestinationUnreachableError) as err:
                    await s.send(batch(["a"]))
            hits_before = len(srv.hits)
            await clock.sleep(541)  # past the server's 600 s
            async with HttpSender(destination(srv), clock=clock) as s:
                (later,) = await s.send(batch(["a"]))
            return srv, first, err.value, hits_before, later

    srv, first, err, hits_before, later = run(main())
    assert first.status == "failed" and "longer than a run waits" in first.reason, first
    assert hits_before == 1, srv.hits  # the run a minute later did not ask
    assert "Retry-After" in err.message and "sent by the next run" in err.message, err.message
    assert SECRET not in err.message
    assert later.status == "ok" and len(srv.hits) == 2


def test_5xx_then_success():
    async def handler(request, hit):
        if hit.n < 2:
            return web.Response(status=503 if hit.n == 0 else 500, text="upstream unavailable")
        return web.json_response({})

    async def main():
        async with Server(handler) as srv, HttpSender(destination(srv), retry_policy=FAST) as s:
            return s, await s.send(batch(["a", "b"]))

    s, results = run(main())
    assert statuses(results) == {"a": "ok", "b": "ok"}
    assert (s.stats.requests, s.stats.retries, s.stats.throttled) == (3, 2, 0)


def test_connection_reset_then_success():
    async def handler(request, hit):
        if hit.n == 0:
            request.transport.abort()  # the server drops the connection without answering
            await asyncio.sleep(0.01)
        return web.json_response({})

    async def main():
        async with Server(handler) as srv, HttpSender(destination(srv), retry_policy=FAST) as s:
            return srv, s, await s.send(batch(["a"]))

    srv, s, results = run(main())
    assert results == [RecordResult("a", "ok")]
    assert len(srv.hits) == 2 and s.stats.retries == 1


class PacedPutDestination(FakeDestination):
    limits = {"write": EndpointLimit("write", rate=10.0, max_concurrency=1)}


# The two tests below pace RATE requests a second and delay one request's leave by SLOW past the
# moment a defect would count its rate slot from: the request RATE slots after it then arrives
# 1 - SLOW = 0.8 s after it. (SLOW stays under a slot, 0.25 s: a longer delay holds the following
# requests back too and hides the defect.) The server's arrival stamps, taken in a thread of the
# test's process, come late by the machine's scheduling: up to 35 ms seen with the tests on 2
# workers beside 2 busy processes on 2 cores, where these tests at 10/s with 80 ms delays, their
# defects giving 0.92 s, failed a 0.995 bound 4 times in 40 runs. WINDOW_SEEN leaves 100 ms for
# the stamps and is 100 ms above what either defect gives.
RATE = 4
SLOW = 0.2
WINDOW_SEEN = 0.9


def test_a_request_that_opened_a_slow_connection_counts_from_when_it_left(monkeypatch):
    """A request that must open a connection (after the server closed the last one: a reset, say)
    reaches the server after its rate slot, by the connection's set-up. Its slot counts from when
    its headers left, so the request a window after it cannot arrive within the same second (an
    auditor's strict 5/s server answered 429 after a reset). Here connections take SLOW to set up
    (a slow resolver) and the server closes the connection after its 8th answer."""
    import socket

    from aiohttp.abc import AbstractResolver

    class SlowResolver(AbstractResolver):
        async def resolve(self, host, port=0, family=socket.AF_INET):
            await asyncio.sleep(SLOW)
            return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET,
                     "proto": 0, "flags": socket.AI_NUMERICHOST}]

        async def close(self):
            pass

    real = aiohttp.TCPConnector
    monkeypatch.setattr(aiohttp, "TCPConnector",
                        lambda **kw: real(resolver=SlowResolver(), use_dns_cache=False, **kw))

    class Paced(FakeDestination):
        limits = {"write": EndpointLimit("write", rate=float(RATE), headroom=1.0, max_concurrency=1)}

    async def handler(request, hit):
        return web.json_response({}, headers={"Connection": "close"} if hit.n == 7 else {})

    async def main(url):
        dest = Paced(url.replace("127.0.0.1", "localhost"), {"api_key": SECRET})
        async with HttpSender(dest) as s:
            for n in range(16):
                await s.send(batch([f"k{n}"]))

    # The server stamps arrivals on a loop of its own, in a thread that takes the GIL back within
    # 0.5 ms: on the sender's loop, a stamp waited for whatever the sender's side was running, and
    # on a loaded machine two stamps 10 apart came 12 ms closer than the requests arrived.
    srv = Server(handler)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    try:
        with SandboxThread(srv) as served:
            run(main(served.url))
    finally:
        sys.setswitchinterval(interval)
    arrivals = [h.at for h in srv.hits]
    assert len(arrivals) == 16
    spans = [arrivals[i + RATE] - arrivals[i] for i in range(len(arrivals) - RATE)]
    assert min(spans) >= WINDOW_SEEN  # never RATE + 1 within a second; a slot counted from before the set-up: 1 - SLOW


def test_a_request_whose_body_left_a_loop_turn_late_counts_from_when_it_left(monkeypatch):
    """aiohttp reports a request's headers sent when it has only buffered them: they leave with
    the body, which a task of its own writes on a later turn of the loop (Python < 3.12), after
    whatever else the loop had ready (parsing an answer, mapping the next batch). A slot counted
    from the report let the request a window later reach a server counting per second within the
    same second (Attio's update scenario: one 429 in 750 writes, in every run). Here the loop has
    SLOW of work ready whenever every seventh request's headers are buffered."""
    from aiohttp import http_writer

    buffered = http_writer.StreamWriter.write_headers
    count = iter(range(10**6))

    async def busy_after_buffering(self, status_line, headers):
        await buffered(self, status_line, headers)
        if next(count) % 7 == 3:
            asyncio.get_running_loop().call_soon(time.sleep, SLOW)  # ready before the body's task

    monkeypatch.setattr(http_writer.StreamWriter, "write_headers", busy_after_buffering)

    class Paced(FakeDestination):
        limits = {"write": EndpointLimit("write", rate=float(RATE), headroom=1.0, max_concurrency=2)}

    async def handler(request, hit):
        return web.json_response({})

    async def main(url):
        async with HttpSender(Paced(url, {"api_key": SECRET})) as s:
            await asyncio.gather(*(s.send(batch([f"k{n}"])) for n in range(16)))

    srv = Server(handler)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)  # the server's thread stamps arrivals within 0.5 ms (see above)
    try:
        with SandboxThread(srv) as served:
            run(main(served.url))
    finally:
        sys.setswitchinterval(interval)
    arrivals = sorted(h.at for h in srv.hits)
    assert len(arrivals) == 16
    spans = [arrivals[i + RATE] - arrivals[i] for i in range(len(arrivals) - RATE)]
    assert min(spans) >= WINDOW_SEEN  # never RATE + 1 within a second; a slot counted from the buffering: 1 - SLOW


def test_reset_on_a_reused_connection_is_retried_by_us_not_behind_the_limiter():
    """aiohttp re-sends an idempotent request (PUT, PATCH, GET) at once, on a new connection,
    when a kept-alive one is reset: a request the limiter never paced, the retry policy never
    counted and the stats never saw. Before, a reset of the second PUT brought a third request
    ~3 ms later (Attio's asserts through a proxy resetting 5% of them: 3 429s from a strict
    25/s window); now every attempt the server sees is one of ours."""
    async def handler(request, hit):
        if hit.n == 1:  # on the connection the first request left open
            request.transport.abort()
            await asyncio.sleep(0.01)
        return web.json_response({})

    def put(key: str) -> Request:
        return Request("write", "PUT", "/records", orjson.dumps({"items": [{"key": key}]}), [key])

    async def main():
        async with Server(handler) as srv:
            async with HttpSender(destination(srv, PacedPutDestination), retry_policy=FAST) as s:
                results = [await s.send(put("a")), await s.send(put("b"))]
                return srv, s, results

    srv, s, results = run(main())
    assert results == [[RecordResult("a", "ok")], [RecordResult("b", "ok")]]
    assert len(srv.hits) == s.stats.requests == 3 and s.stats.retries == 1
    # each of the three took a start from the limiter (its window holds up to 10 at 10/s): the
    # retry was paced, as the others (not asserted on the server's arrival times, which a loaded
    # machine's event loop records late or early by more than the tolerance a spacing check has)
    assert len(s.limiter("write")._pace.window) == 3


def test_timeout_then_success():
    async def handler(request, hit):
        if hit.n == 0:
            await asyncio.sleep(0.5)
        return web.json_response({})

    async def main():
        async with Server(handler) as srv:
            async with HttpSender(destination(srv), retry_policy=FAST, timeout=0.1) as s:
                return s, await s.send(batch(["a"]))

    s, results = run(main())
    assert results == [RecordResult("a", "ok")]
    assert s.stats.retries == 1


def test_retries_exhausted_give_failed_results_not_an_exception():
    async def handler(request, hit):
        return web.Response(status=500, text=f"boom, key {SECRET} is fine but we are not")

    policy = RetryPolicy(max_attempts=3, base=0.01, cap=0.02)

    async def main():
        async with Server(handler) as srv, HttpSender(destination(srv), retry_policy=policy) as s:
            return srv, s, await s.send(batch(["a", "b"]))

    srv, s, results = run(main())
    assert [r.status for r in results] == ["failed", "failed"]
    assert "3 attempt" in results[0].reason and "HTTP 500" in results[0].reason
    assert SECRET not in results[0].reason and "***" in results[0].reason
    assert len(srv.hits) == 3
    assert (s.stats.retries, s.stats.failed_requests) == (2, 1)


def test_an_answer_echoing_the_start_of_the_key_shows_none_of_it():
    """A platform that answers "invalid key sk_live_T0P/SE..." echoes a prefix of the key, which no
    whole form of it matches: it reached reasons (and from there `runs`, `rejections`) as it was."""
    answers = {"/a": (500, f"internal error for key {SECRET[:12]}..."),
               "/b": (429, f"slow down, {SECRET[:-3]}"),
               "/c": (502, f"<html><title>Bad key {SECRET[:9]}</title></html>")}

    async def handler(request, hit):
        status, text = answers[request.path]
        return web.Response(status=status, text=text, headers={"Retry-After": "0"})

    policy = RetryPolicy(max_attempts=2, base=0.01, cap=0.02)

    async def main():
        async with Server(handler) as srv, HttpSender(destination(srv), retry_policy=policy) as s:
            return [r for path in answers for r in await s.send(batch(["k"], path=path))]

    reasons = [r.reason for r in run(main())]
    assert all("***" in reason for reason in reasons), reasons
    assert not any(SECRET[:8] in reason for reason in reasons), reasons
    assert "for key ***..." in reasons[0] and reasons[1].endswith("slow down, ***"), reasons


async def _send_to_a_closed_port():
    """One record sent, with 2 attempts, to a port nothing listens on any more."""
    async with Server() as srv:
        url = srv.url
    dest = FakeDestination(url, {"api_key": SECRET})  # the port is closed now
    async with HttpSender(dest, retry_policy=RetryPolicy(max_attempts=2, base=0.01, cap=0.01)) as s:
        return await s.send(batch(["a"]))


def test_unreachable_server_fails_records_after_retries():
    (result,) = run(_send_to_a_closed_port())
    assert result.status == "failed" and "2 attempt" in result.reason


def test_an_outage_stops_sending_after_a_few_requests_tried_to_the_end():
    """Every answer a 502 page: OUTAGE_REQUESTS requests in a row used all their attempts with no
    answer from the destination meanwhile, so the next request raises (without being sent)
    instead of retrying for its whole backoff; the failed requests' records are `failed`."""
    async def handler(request, hit):
        return web.Response(status=502, text="<html>Bad Gateway</html>")

    policy = RetryPolicy(max_attempts=3, base=0.01, cap=0.02)

    async def main():
        async with Server(handler) as srv, HttpSender(destination(srv), retry_policy=policy) as s:
            failed = [await s.send(batch([f"k{i}"])) for i in range(OUTAGE_REQUESTS)]
            hits = len(srv.hits)
            with pytest.raises(DestinationUnreachableError) as err:
                await s.send(batch(["next"]))
            return srv, hits, failed, err.value

    srv, hits, failed, err = run(main())
    assert [r.status for results in failed for r in results] == ["failed"] * OUTAGE_REQUESTS
    assert hits == 3 * OUTAGE_REQUESTS and len(srv.hits) == hits  # the next request was not sent
    assert "fake answered none of" in err.message and "HTTP 502" in err.message and err.hint
    assert SECRET not in err.message


def test_an_html_error_page_is_quoted_by_its_title_on_one_line():
    """A proxy's or load balancer's 5xx page (what a fault-injecting proxy or a gateway answers) is
    named by its title in the failed records' reason, not quoted as page source with its line
    breaks; a page without a title by its text without markup. A JSON error stays as it is."""
    pages = iter([
        web.Response(status=502, content_type="text/html", text=(
            "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\n<center><h1>502 Bad Gateway"
            "</h1></center>\n<hr><center>nginx</center>\n</body>\n</html>\n")),
        web.Response(status=503, content_type="text/html", text=(
            "<!DOCTYPE html><html><body><style>h1 {color: red}</style><h1>Service  Unavailable</h1>\n"
            "<p>Back soon &amp; thanks</p></body></html>")),
        web.Response(status=500, content_type="application/json", text='{"error": "<b>boom</b>"}'),
    ])

    async def handler(request, hit):
        return next(pages)

    policy = RetryPolicy(max_attempts=1, base=0.01, cap=0.02)

    async def main():
        async with Server(handler) as srv, HttpSender(destination(srv), retry_policy=policy) as s:
            return [(await s.send(batch([k])))[0] for k in ("a", "b", "c")]

    reasons = [r.reason for r in run(main())]
    assert reasons == ["failed after 1 attempt(s): HTTP 502: 502 Bad Gateway (HTML page)",
                       "failed after 1 attempt(s): HTTP 503: Service Unavailable Back soon & thanks (HTML page)",
                       'failed after 1 attempt(s): HTTP 500: {"error": "<b>boom</b>"}'], reasons


def test_sporadic_failures_never_add_up_to_an_outage():
    """Two requests in three use all their attempts, the third is answered: the answer starts the
    count again, so every request is sent and only the failed ones' records are `failed`."""
    async def handler(request, hit):
        key = hit.keys[0]
        if int(key[1:]) % 3 == 2:
            return web.json_response({})
        return web.Response(status=503, text="busy")

    policy = RetryPolicy(max_attempts=2, base=0.01, cap=0.02)

    async def main():
        async with Server(handler) as srv, HttpSender(destination(srv), retry_policy=policy) as s:
            return [(await s.send(batch([f"k{i}"])))[0].status for i in range(12)]

    assert run(main()) == ["failed", "failed", "ok"] * 4


def test_a_silent_destination_stops_sending_before_any_request_used_its_attempts():
    """A server that accepts and never answers in time: once it answered nothing for the limits'
    `silent_seconds` while 3 requests were each tried twice, sending stops (the requests waiting
    for their next attempt too) instead of each timing out 8 times; a server answering some
    requests meanwhile is not down: every request is tried to its end."""
    async def handler(request, hit):
        if hit.keys[0].startswith(("slow", "all")):
            await asyncio.sleep(2)
        return web.json_response({})

    policy = RetryPolicy(max_attempts=8, base=0.01, cap=0.02)
    limits = OutageLimits(silent_seconds=0.5)

    async def main(prefix):
        async with Server(handler) as srv, HttpSender(destination(srv), retry_policy=policy, timeout=0.2,
                                                      outage_limits=limits) as s:
            keys = [f"{prefix}{i}" if prefix or i % 2 else f"slow{i}" for i in range(8)]
            got = await asyncio.gather(*(s.send(batch([k])) for k in keys), return_exceptions=True)
            return srv, got

    srv, got = run(main("all"))
    assert all(isinstance(g, DestinationUnreachableError) or g[0].status == "failed" for g in got), got
    errors = [g for g in got if isinstance(g, DestinationUnreachableError)]
    assert errors and "fake answered no request for" in errors[0].message and "timeout after 0.2s" in errors[0].message
    assert len(srv.hits) < 8 * 8 / 2, len(srv.hits)
    srv, got = run(main(""))
    assert [g[0].status for g in got] == ["failed", "ok"] * 4, got  # the slow ones each used their 8 attempts


@pytest.mark.parametrize("alone", [1, 2])
def test_a_phase_of_one_or_two_requests_to_a_silent_destination_is_found_down_without_every_attempt(alone):
    """A phase that sends one request (Attentive's `GET /v1/me`, Attio's schema read, a job's status
    poll) or two (a run's last batches) to a server that accepts and never answers: the silence rule
    waited for 3 requests tried twice and the other for 3 tried to the end, so neither tripped and each
    request used its 8 attempts (~4.5 minutes at the default 30 s timeout). With fewer requests under
    way than that, every one of them tried twice through `silent_seconds` of silence is enough."""
    policy = RetryPolicy(max_attempts=8, base=0.01, cap=0.02)

    async def main():
        with MuteServer() as mute:
            dest = FakeDestination(mute.url, {"api_key": SECRET})
            async with HttpSender(dest, retry_policy=policy, timeout=0.2,
                                  outage_limits=OutageLimits(silent_seconds=0.5)) as s:
                got = await asyncio.wait_for(asyncio.gather(*(s.send(batch([f"k{i}"])) for i in range(alone))), 60)
                tried = mute.accepted
                with pytest.raises(DestinationUnreachableError) as err:
                    await s.send(batch(["next"]))
                return got, tried, mute.accepted, err.value

    got, tried, accepted, err = run(main())
    assert [r.status for results in got for r in results] == ["failed"] * alone, got
    assert tried < 8 * alone, f"{tried} attempts: every request used its 8 attempts"
    assert accepted == tried  # the next request was not sent
    assert "fake answered no request for" in err.message and "timeout after 0.2s" in err.message, err.message
    assert SECRET not in err.message


@pytest.mark.parametrize("answer", ["429", "503-retry-after"])
def test_a_lone_request_answered_once_between_silent_attempts_is_still_found_down(answer):
    """A lone request whose second attempt was answered (a 429, a 503 with a Retry-After) and whose
    others all time out: the silence rule counted a request as tried twice at its attempt number 2
    only, so this one never counted and used its 8 attempts. It counts its unanswered attempts in a
    row since its last answer: the two after the answer are enough."""
    async def handler(request, hit):
        if hit.n == 1:
            headers = {"Retry-After": "1"} if answer == "429" else {"Retry-After": "0.05"}
            return web.Response(status=int(answer[:3]), text="later", headers=headers)
        await asyncio.sleep(2)  # (past the 0.2 s timeout: no answer)
        return web.json_response({})

    policy = RetryPolicy(max_attempts=8, base=0.01, cap=0.02, retry_after_jitter=0.01)

    async def main():
        async with Server(handler) as srv, HttpSender(destination(srv), retry_policy=policy, timeout=0.2,
                                                      outage_limits=OutageLimits(silent_seconds=0.3)) as s:
            got = await asyncio.wait_for(s.send(batch(["k"])), 60)
            with pytest.raises(DestinationUnreachableError):
                await s.send(batch(["next"]))
            return got, len(srv.hits)

    got, attempts = run(main())
    assert [r.status for r in got] == ["failed"], got
    assert attempts < 8, f"{attempts} attempts: the request used every one of its 8"


def test_requests_waiting_for_the_one_place_in_flight_do_not_hide_a_silent_destination():
    """Six requests to an endpoint of one request in flight, to a server that never answers: five
    wait for the place, untried, so "3 requests tried twice" came only once three had used all
    their attempts one after the other (19 attempts; ~9.5 minutes at the default 30 s timeout).
    Under such a cap, the requests that can be in flight are what the endpoint could answer."""
    policy = RetryPolicy(max_attempts=8, base=0.01, cap=0.02)

    class OneAtATime(FakeDestination):
        limits = {"write": EndpointLimit("write", rate=None, max_concurrency=1)}

    async def main():
        with MuteServer() as mute:
            async with HttpSender(OneAtATime(mute.url, {"api_key": SECRET}), retry_policy=policy, timeout=0.2,
                                  outage_limits=OutageLimits(silent_seconds=0.3)) as s:
                got = await asyncio.wait_for(asyncio.gather(*(s.send(batch([f"k{i}"])) for i in range(6)),
                                                            return_exceptions=True), 60)
                return got, mute.accepted

    got, attempts = run(main())
    assert any(isinstance(g, DestinationUnreachableError) for g in got), got
    assert attempts < 8, f"{attempts} attempts before the destination was found down"


def test_a_lone_request_answered_on_its_second_attempt_is_not_an_outage():
    """One request whose first attempt outlives the timeout and whose second is answered (slow, not
    down), then another lone request: both delivered, nothing stops."""
    async def handler(request, hit):
        if hit.n == 0:
            await asyncio.sleep(1)
        return web.json_response({})

    async def main():
        async with Server(handler) as srv, HttpSender(destination(srv), retry_policy=FAST, timeout=0.3,
                                                      outage_limits=OutageLimits(silent_seconds=0.01)) as s:
            return [(await s.send(batch([k])))[0].status for k in ("a", "b")], len(srv.hits)

    assert run(main()) == (["ok", "ok"], 3)


def test_a_retry_waits_for_its_place_in_flight_ahead_of_untried_requests_so_silence_is_found_soon():
    """40 requests for an endpoint of 4 in flight, to a server that never answers in time: a retry
    queued again for a place, behind every request not yet tried, so the silence rule's 3 requests
    tried twice came only once all 40 had timed out once (Attentive's hundreds of lookups at
    `timeout_seconds: 5`: the run gave up 486 s after the network dropped). A request's next attempt
    now waits ahead of the requests not tried yet: sending stops before most of them were ever sent."""
    async def handler(request, hit):
        await asyncio.sleep(2)
        return web.json_response({})

    async def main():
        async with Server(handler) as srv, HttpSender(destination(srv), retry_policy=RetryPolicy(base=0.01, cap=0.02),
                                                      timeout=0.2, outage_limits=OutageLimits(silent_seconds=0.5)) as s:
            got = await asyncio.gather(*(s.send(batch([f"k{i}"])) for i in range(40)), return_exceptions=True)
            return srv, got

    srv, got = run(main())
    errors = [g for g in got if isinstance(g, DestinationUnreachableError)]
    assert errors and "fake answered no request for" in errors[0].message, got
    assert all(isinstance(g, DestinationUnreachableError) or g[0].status == "failed" for g in got), got
    sent = {h.keys[0] for h in srv.hits}
    assert len(sent) < 40, f"every request was sent before the destination was found down ({len(srv.hits)} attempts)"
    assert len(srv.hits) < 3 * 8  # no request used its 8 attempts


def test_a_server_saying_when_to_come_back_is_waited_for_not_taken_for_silent():
    """503s with a Retry-After within what a run waits (a short maintenance): the server says when,
    and is asked again then; the waits it asked for do not count as silence (they stopped the run
    once `silent_seconds` passed, though each request got through on its third attempt)."""
    async def handler(request, hit):
        tries = sum(1 for h in srv.hits if h.keys == hit.keys)
        if tries <= 2:
            return web.Response(status=503, text="maintenance", headers={"Retry-After": "0.3"})
        return web.json_response({})

    policy = RetryPolicy(max_attempts=4, base=0.01, cap=0.02, retry_after_jitter=0.01)

    async def main():
        async with HttpSender(destination(srv), retry_policy=policy,
                              outage_limits=OutageLimits(silent_seconds=0.2)) as s:
            return await asyncio.gather(*(s.send(batch([f"k{i}"])) for i in range(4)))

    async def serve():
        await srv.start()
        try:
            return await main()
        finally:
            await srv.stop()

    srv = Server(handler)
    got = run(serve())
    assert [r[0].status for r in got] == ["ok"] * 4, got
    assert len(srv.hits) == 3 * 4


def test_throttling_is_an_answer_not_an_outage():
    """429s all the way: the destination is up and says when to come back; requests fail after their
    attempts but sending goes on."""
    async def handler(request, hit):
        return web.Response(status=429, text="slow down", headers={"Retry-After": "0"})

    policy = RetryPolicy(max_attempts=2, base=0.01, cap=0.02, retry_after_jitter=0.01)

    async def main():
        async with Server(handler) as srv, HttpSender(destination(srv), retry_policy=policy) as s:
            statuses = [(await s.send(batch([f"k{i}"])))[0].status for i in range(OUTAGE_REQUESTS + 2)]
            return srv, statuses

    srv, got = run(main())
    assert got == ["failed"] * (OUTAGE_REQUESTS + 2) and len(srv.hits) == 2 * (OUTAGE_REQUESTS + 2)


def test_split_batch_isolates_the_bad_record():
    async def handler(request, hit):
        if "k5" in hit.keys:
            return web.json_response({"split": True, "error": "k5: invalid phone"}, status=400)
        return web.json_response({})

    keys = [f"k{i}" for i in range(8)]

    async def main():
        async with Server(handler) as srv, HttpSender(destination(srv)) as s:
            return srv, s, await s.send(batch(keys))

    srv, s, results = run(main())
    assert [r.key for r in results] == keys
    assert {r.key: (r.status, r.reason) for r in results if r.status != "ok"} == {
        "k5": ("rejected", "k5: invalid phone")
    }
    assert sorted(len(h.keys) for h in srv.hits) == [1, 1, 2, 2, 4, 4, 8]
    assert s.stats.splits == 3


def test_split_of_an_unsplittable_batch_parks_only_the_records_the_platform_judged():
    """A plugin's batch request without `rebuild` (and items) cannot be split: its records were
    all rejected (parked until their values change) though the platform judged none of them, or
    only the one its answer named. Now a record the answer names is rejected, the others fail
    (sent again next run, the reason saying why); a request of one record is still rejected."""
    class Namer(FakeDestination):
        def parse(self, request, status, headers, body):
            named = [RecordResult("y", "rejected", "y: bad phone")] if "y" in request.keys else []
            return Outcome("split", named, reason="bad batch", suspects=["z"] if "z" in request.keys else [])

    async def main():
        async with Server() as srv, HttpSender(destination(srv, Namer)) as s:
            alone = await s.send(Request("write", "POST", "/batch", b'{"items":[]}', ["w"]))
            blind = await s.send(Request("write", "POST", "/batch", b'{"items":[]}', ["a", "b"]))  # no rebuild
            named = await s.send(Request("write", "POST", "/batch", b'{"items":[]}', ["x", "y", "z"]))
            no_items = Request("write", "POST", "/batch", b'{"items":[]}', ["c", "d"], rebuild=lambda k, i: None)
            return srv, alone, blind, named, await s.send(no_items)

    srv, alone, blind, named, no_items = run(main())
    assert alone == [RecordResult("w", "rejected", "bad batch")]
    assert [(r.key, r.status) for r in blind + named + no_items] == [
        ("a", "failed"), ("b", "failed"), ("x", "failed"), ("y", "rejected"), ("z", "failed"),
        ("c", "failed"), ("d", "failed")]
    assert named[1].reason == "y: bad phone"
    assert blind[0].reason == ("bad batch; the destination asked to split this batch of 2 records to find the "
                               "refused one, but its request cannot be split (no rebuild() and items): "
                               "not judged, sent again by the next run")
    assert len(srv.hits) == 4  # nothing sent again within the run


def test_401_raises_auth_error_without_the_secret_and_stops_sending():
    async def handler(request, hit):
        return web.json_response({"error": f"invalid token {request.headers['Authorization']}"}, status=401)

    async def main():
        async with Server(handler) as srv, HttpSender(destination(srv)) as s:
            with pytest.raises(DestinationAuthError) as first:
                await s.send(batch(["a", "b"]))
            with pytest.raises(DestinationAuthError):
                await s.send(batch(["c"]))  # nothing more is sent once credentials are rejected
            return srv, first.value

    srv, err = run(main())
    assert SECRET not in str(err) and SECRET not in err.message
    assert "***" in err.message and "401" in err.message
    assert len(srv.hits) == 1


def test_rejection_reason_echoing_the_secret_is_redacted_and_truncated():
    async def handler(request, hit):
        return web.json_response({"failed": {
            "a": f"field api_key={SECRET} not allowed",
            "b": f"url https://x.test/?key={quote(SECRET, safe='')} " + "x" * 2000,
        }})

    async def main():
        async with Server(handler) as srv, HttpSender(destination(srv)) as s:
            return await s.send(batch(["a", "b"]))

    a, b = run(main())
    assert a.status == "rejected" and a.reason == "field api_key=*** not allowed"
    assert b.reason.startswith("url https://x.test/?key=*** ") and len(b.reason) <= 500
    assert SECRET not in b.reason and quote(SECRET, safe="") not in b.reason


def test_a_field_named_by_an_answer_echoing_the_secret_is_redacted_on_every_path():
    """The field of a rejection is the platform's word too: redacted like its reason, whether the
    answer names it per record, for an unsplittable request, or for records found guilty in a split."""
    class EchoField(FakeDestination):
        def parse(self, request, status, headers, body):
            if request.keys == ["a"]:
                return Outcome("done", [RecordResult("a", "rejected", "bad", f"proj:::{SECRET}")])
            if request.keys == ["b"]:
                return Outcome("split", reason="bad", field=f"f {SECRET}")
            if request.keys == ["d"]:  # the rest of the split below, sent again
                return Outcome("done")
            return Outcome("split", [RecordResult("c", "rejected", "bad", f"g {SECRET}")], reason="bad")

    async def main():
        async with Server() as srv, HttpSender(destination(srv, EchoField)) as s:
            # (a request of one record cannot be split: the split's reason and field reject it)
            return [await s.deliver(batch(["a"])), await s.deliver(batch(["b"])), await s.deliver(batch(["c", "d"]))]

    fields = [p.field for delivered in run(main()) for p in delivered.problems]
    assert fields == ["proj:::***", "f ***", "g ***"]


def test_invalid_url_fails_at_once_without_leaking_the_secret():
    dest = FakeDestination("http://", {"api_key": SECRET})  # no host: aiohttp refuses the URL

    async def main():
        async with HttpSender(dest, retry_policy=FAST) as s:
            return s, await s.send(Request("write", "GET", f"/users?api_key={quote(SECRET)}", None, ["a"]))

    s, (result,) = run(main())
    assert result.status == "failed" and "invalid URL" in result.reason
    assert SECRET not in result.reason and quote(SECRET) not in result.reason
    assert (s.stats.requests, s.stats.retries, s.stats.failed_requests) == (1, 0, 1)


class LimitedDestination(FakeDestination):
    limits = {"write": EndpointLimit("write", rate=20, max_concurrency=8)}


def test_rate_limit_respected_by_the_servers_sliding_window():
    """The server answers 429 whenever more than 20 requests arrived within the last second."""
    arrivals: list[float] = []

    async def handler(request, hit):
        arrivals.append(hit.at)
        in_window = len(arrivals) - bisect.bisect_left(arrivals, hit.at - 1.0)
        if in_window > 20:
            return web.json_response({"error": "too many"}, status=429, headers={"Retry-After": "1"})
        return web.json_response({})

    async def main():
        async with Server(handler) as srv, HttpSender(destination(srv, LimitedDestination)) as s:
            results = await asyncio.gather(*(s.send(batch([f"k{i}"])) for i in range(24)))
            return srv, s, results

    srv, s, results = run(main())
    assert all(r.status == "ok" for rs in results for r in rs)
    assert s.stats.throttled == 0 and len(srv.hits) == 24
    start = srv.hits[0].at
    per_second: dict[int, int] = {}
    for h in srv.hits:
        per_second[int(h.at - start)] = per_second.get(int(h.at - start), 0) + 1
    assert max(per_second.values()) <= 20


def test_concurrency_cap_per_endpoint():
    class Narrow(FakeDestination):
        limits = {"write": EndpointLimit("write", rate=None, max_concurrency=2)}

    async def handler(request, hit):
        await asyncio.sleep(0.02)
        return web.json_response({})

    async def main():
        async with Server(handler) as srv, HttpSender(destination(srv, Narrow)) as s:
            await asyncio.gather(*(s.send(batch([f"k{i}"])) for i in range(10)))
            return srv

    srv = run(main())
    assert len(srv.hits) == 10 and srv.max_in_flight == 2


def test_limits_from_destination_overrides_and_switch():
    class Dest(FakeDestination):
        limits = {
            "write": EndpointLimit("write", rate=25, burst=2),
            "read": EndpointLimit("read", rate=100),
        }

    dest = Dest("http://127.0.0.1:9", {"api_key": SECRET})
    s = HttpSender(dest, rate_overrides={"read": 50, "bulk": 5})
    assert (s.limiter("write").rate, s.limiter("write").burst) == (25, 2)
    assert s.limiter("read").rate == 50
    assert s.limiter("bulk").rate == 5  # an endpoint the destination did not declare
    assert s.limiter("other").rate is None
    assert s.limiter("write").effective_rate == pytest.approx(25 * 0.985)
    off = HttpSender(dest, limits_enabled=False)
    assert off.limiter("write").rate is None and off.limiter("read").rate is None


def test_redact_handles_every_form_of_every_secret():
    dest = FakeDestination("http://127.0.0.1:9", {"api_key": SECRET, "empty": ""})
    s = HttpSender(dest)
    text = f"a {SECRET} b {quote(SECRET, safe='')} c {quote(SECRET, safe='').replace('%2F', '/')}"
    out = s.redact(text)
    assert SECRET not in out and quote(SECRET, safe="") not in out
    assert out == "a *** b *** c ***"
    assert s.redact("nothing secret") == "nothing secret"


def test_destination_may_read_429_bodies_itself():
    class Reads429(FakeDestination):
        handles_statuses = frozenset({429})

        def parse(self, request, status, headers, body):
            if status == 429:
                return Outcome("retry", reason=f"quota: {orjson.loads(body)['quota']}", throttled=True)
            return super().parse(request, status, headers, body)

    async def handler(request, hit):
        return web.json_response({"quota": "daily"}, status=429, headers={"Retry-After": "0"})

    policy = RetryPolicy(max_attempts=2, retry_after_jitter=0.01)

    async def main():
        async with Server(handler) as srv, HttpSender(destination(srv, Reads429), retry_policy=policy) as s:
            return s, await s.send(batch(["a"]))

    s, (result,) = run(main())
    assert result.status == "failed" and "quota: daily" in result.reason
    assert s.stats.throttled == 2  # counted from the destination's outcome


def test_unreadable_response_fails_the_records_without_retrying():
    async def handler(request, hit):
        return web.Response(status=200, text="<html>not json</html>")

    async def main():
        async with Server(handler) as srv, HttpSender(destination(srv), retry_policy=FAST) as s:
            return srv, await s.send(batch(["a", "b"]))

    srv, results = run(main())
    assert [r.status for r in results] == ["failed", "failed"]
    assert "unreadable response (HTTP 200)" in results[0].reason
    assert len(srv.hits) == 1


def test_auth_error_raised_by_parse_is_redacted_too():
    class Raises(FakeDestination):
        def parse(self, request, status, headers, body):
            raise DestinationAuthError(f"key {SECRET} revoked")

    async def main():
        async with Server() as srv, HttpSender(destination(srv, Raises)) as s:
            with pytest.raises(DestinationAuthError) as err:
                await s.send(batch(["a"]))
            return err.value

    err = run(main())
    assert SECRET not in str(err) and "key *** revoked" in err.message


@pytest.mark.parametrize(
    "headers,expected",
    [
        ({"Retry-After": "2"}, 2.0),
        ({"Retry-After": "2", "RateLimit-Reset": "5"}, 2.0),
        ({"RateLimit-Reset": "5"}, 5.0),  # Splio: seconds until the window resets
        ({"RateLimit-Reset": "1700000000"}, None),  # an epoch timestamp: not a delay
        ({"RateLimit-Reset": "3600"}, 3600.0),  # a quota's reset an hour away: longer than a run waits
        ({"RateLimit-Reset": "-3"}, None),
        ({"Retry-After": "later"}, None),
        ({}, None),
    ],
)
def test_retry_after_hint_from_headers(headers, expected):
    from multidict import CIMultiDict

    s = HttpSender(FakeDestination("http://127.0.0.1:9", {"api_key": SECRET}))
    assert s.retry_after(CIMultiDict(headers)) == expected


def test_a_refused_connection_leaves_no_exception_cycle_behind():
    """aiohttp and aiohappyeyeballs keep the exception they raise in a local of the frame raising it:
    exception, traceback and frame made a cycle holding every frame under it (the sender's, the run's)
    after each refused attempt, until a full collection (~470 objects an attempt)."""
    import gc

    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        (result,) = run(_send_to_a_closed_port())
        gc.collect()
        left = sorted({type(o).__name__ for o in gc.garbage if issubclass(type(o), BaseException)})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert result.status == "failed" and left == []


@pytest.mark.parametrize("hook", ["parse", "auth_headers", "async auth_headers"])
def test_a_plugin_hook_that_never_returns_is_given_up_naming_it(hook):
    """A plugin's parse() or auth_headers() stuck in a loop (here: a sleep) blocked the event loop,
    and the run, forever; within Destination.hook_seconds, it is given up naming the hook."""
    from dinsync.destinations.hooks import HookTimeoutError

    class Stuck(FakeDestination):
        hook_seconds = 0.3

        def parse(self, request, status, headers, body):
            if hook == "parse":
                time.sleep(3)
            return super().parse(request, status, headers, body)

        def auth_headers(self):
            if hook == "auth_headers":
                time.sleep(3)
            if hook == "async auth_headers":
                return asyncio.sleep(3600)
            return super().auth_headers()

    async def main():
        async with Server() as srv, HttpSender(destination(srv, Stuck), retry_policy=FAST) as s:
            with pytest.raises(HookTimeoutError) as raised:
                await s.send(batch(["a", "b"]))
            return raised.value

    error = run(main())
    name = hook.split()[-1]
    assert error.message.startswith("destination plugin fake (tests.sender.test_http_sender.")
    assert error.message.endswith(f".Stuck): its {name}() did not return within 0.3 s, given up")
    assert "DINSYNC_HOOK_SECONDS" in error.hint


def test_results_given_as_a_generator_are_read_once_each_in_a_split():
    """A plugin's parse() may give its results as a generator: a split read them twice (the
    guilty keys, then their results), the second time empty, and the record the platform named
    came back with no outcome at all (neither rejected nor acknowledged)."""
    class Lazy(FakeDestination):
        def parse(self, request, status, headers, body):
            if request.keys == ["d"]:
                return Outcome("done", (r for r in []))
            return Outcome("split", (r for r in [RecordResult("c", "rejected", "c: bad")]), reason="bad")

    async def main():
        async with Server() as srv, HttpSender(destination(srv, Lazy)) as s:
            return await s.deliver(batch(["c", "d"]))

    delivered = run(main())
    assert (delivered.ok, [(p.key, p.status, p.reason) for p in delivered.problems]) == (["d"], [("c", "rejected", "c: bad")])
