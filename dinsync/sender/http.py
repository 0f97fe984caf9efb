"""Send a destination's requests over HTTP and turn every response into per-record results.

The destination says what its endpoints, limits and responses mean; this module does the generic
part: one aiohttp session per destination, one rate limiter and one in-flight cap per endpoint
(growing with the latency: inflight.py), retries with backoff (Retry-After aware, 429s pause the
whole endpoint), split-batch retries, and secret redaction of every message built from a
response, an exception or a URL.

`send()` never raises for a transient failure: records that could not be delivered come back as
`failed`. It raises `DestinationAuthError` when the destination says credentials are rejected, and
`DestinationUnreachableError` once the destination is found down (breaker.py: requests in a row
that used all their attempts, or no answer to any request for 30 s; retrying every request of a
1M-row sync for ~30 s each would take hours), or once it asks for a wait (Retry-After) longer than a
run waits.
"""
from __future__ import annotations

import asyncio
import contextvars
import functools
import math
import traceback
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from dinsync.destinations.base import (
    Delivered,
    Destination,
    EndpointLimit,
    Outcome,
    RecordResult,
    Request,
    TransportStats,
    body_excerpt,
)
from dinsync import redaction
from dinsync.errors import DestinationAuthError, DestinationUnreachableError, DinsyncError, SendingStopped

from ..destinations import hooks
from .breaker import Breaker, OutageLimits
from .inflight import InFlight
from .proxy import proxy_for
from .ratelimit import (COLD_MARGIN, DEFAULT_HEADROOM, STOP_POLL_SECONDS, Clock, MonotonicClock, RateLimiter,
                        shared_pace)
from .retry import MAX_RETRY_AFTER, RetryPolicy, parse_retry_after

EPOCH_LIKE = 1e8  # a RateLimit-Reset this large (3 years of seconds) is a timestamp, not a delay

MAX_REASON_CHARS = 500
# Bytes of an answer that is not a 2xx read at most: more than an error the platforms answer (Iterable's
# for a request of its 4 MB cap included); the rest of, say, a gateway's 50 MB page is not read.
MAX_ERROR_BODY = 4 * 2**20
# Bytes of a 2xx answer read at most, decompressed: well above the platforms' largest (an Attio records
# query of 500 records, a few MB). A longer one (a proxy's or CDN's endless 200, a gzip bomb) is no
# platform's answer: not read further, its request is retried (AnswerTooLarge, a transport failure).
MAX_ANSWER_BODY = 64 * 2**20
# When the destination is down and sending stops (breaker.py); OUTAGE_REQUESTS: requests in a row that
# used all their attempts while it answered nothing (no response but 5xx/408, timeouts, refused or
# reset connections; a 429 is an answer).
OUTAGE_REQUESTS = OutageLimits.requests
# A delivery that is a part of a split batch (its refusal as a whole is the platform's word on the
# records it isolates, not a sign that the destination refuses everything: see breaker.py)
_SPLIT_PART: contextvars.ContextVar[bool] = contextvars.ContextVar("split_part", default=False)
DEFAULT_MAX_CONCURRENCY = 8  # for an endpoint the destination did not declare
# What to do once sending stopped for a wait longer than a run waits, or for a TLS failure
WAIT_HINT = "run the sync again once the destination accepts requests"
TLS_HINT = ("check base_url's scheme (https:// to a server speaking plain HTTP fails the handshake) and host (the "
            "certificate's name); a private CA's certificates: SSL_CERT_FILE")
USER_AGENT = "dinsync/0.1"
_BAD_URL: tuple[type[Exception], ...] = (aiohttp.InvalidURL,) + (
    (aiohttp.NonHttpUrlClientError,) if hasattr(aiohttp, "NonHttpUrlClientError") else ()
)


@dataclass
class EndpointStats:
    requests: int = 0  # HTTP attempts made (retries included)
    retries: int = 0
    throttled: int = 0  # 429s received
    failed_requests: int = 0  # requests given up on: their records came back `failed`
    splits: int = 0  # batch requests split in two
    bytes_sent: int = 0
    first_request_at: float | None = None  # clock time of the first / last attempt started
    last_request_at: float | None = None

    def achieved_rate(self) -> float | None:
        """Requests per second between the first and the last attempt (None under 2 attempts)."""
        if self.requests < 2 or self.first_request_at is None or self.last_request_at is None:
            return None
        span = self.last_request_at - self.first_request_at
        return (self.requests - 1) / span if span > 0 else None


@dataclass
class SenderStats(EndpointStats):
    endpoints: dict[str, EndpointStats] = field(default_factory=dict)


class AnswerTooLarge(aiohttp.ClientPayloadError):
    """A 2xx answer longer than MAX_ANSWER_BODY: not read to its end, nothing in it acknowledged."""


class _GiveUp(Exception):
    """A request that cannot succeed by retrying: all its records fail with `reason`."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


GiveUp = _GiveUp  # raised by a subclass's own exchanges (e.g. fetching a token) to fail the request


@dataclass
class _Endpoint:
    limit: EndpointLimit
    limiter: RateLimiter
    in_flight: InFlight
    stats: EndpointStats
    breaker: Breaker


async def _leaving(session, trace, params) -> None:
    """A request left: its rate slot counts from now (`trace_request_ctx`: the slot and the clock;
    None for a request a destination makes on the session itself, e.g. Splio's authentication)."""
    if trace.trace_request_ctx is not None:
        slot, clock = trace.trace_request_ctx
        RateLimiter.started(slot, clock.now())


def _clear_frames(exc: BaseException | None) -> None:
    """Empty the ended frames `exc` (and what caused it) went through. aiohttp and aiohappyeyeballs
    keep the exception they raise in a local of the frame raising it (`last_exc`, `first_exception`):
    exception, traceback and frame were a cycle holding every frame above it (the sender's, the
    run's) after each failed attempt, until a full collection. (A frame still running is skipped.)"""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        traceback.clear_frames(exc.__traceback__)
        exc = exc.__cause__ or exc.__context__


@functools.cache
def _leaving_trace() -> aiohttp.TraceConfig:
    """One TraceConfig for every session: aiohttp's TraceConfig and its signals refer to each other,
    so one made per session (with a bound method of the sender in it) kept the sender, its session
    and its connections in a cycle after every run, until a full collection."""
    leaving = aiohttp.TraceConfig()
    leaving.on_request_headers_sent.append(_leaving)
    leaving.on_request_chunk_sent.append(_leaving)
    return leaving


class HttpSender:
    """`async with HttpSender(destination) as s: results = await s.send(request)`.

    Safe to call `send` from many tasks at once; back-pressure is the caller's job.

    rate_overrides: endpoint name -> requests/s (None = unlimited), e.g. from dinsync.yml.
    limits_enabled: False turns every rate limit off (concurrency caps stay).
    timeout: seconds for one attempt (connect, send, read); connect_timeout: for the connect.
    connections: connector cap; None = no cap beyond the per-endpoint concurrency caps.
        Keep it >= the number of concurrent senders, or requests queue for a socket after taking
        their rate slot and then leave together.
    """

    def __init__(
        self,
        destination: Destination,
        *,
        rate_overrides: Mapping[str, float | None] | None = None,
        limits_enabled: bool = True,
        headroom: float = DEFAULT_HEADROOM,
        retry_policy: RetryPolicy | None = None,
        connections: int | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        clock: Clock | None = None,
        user_agent: str = USER_AGENT,
        stop: Callable[[], bool] | None = None,
        outage_limits: OutageLimits | None = None,
    ):
        self.destination = destination
        self.stop = stop  # the run is stopping: what has not left is not sent (SendingStopped)
        self.rate_overrides = dict(rate_overrides or {})
        self.limits_enabled = limits_enabled
        self.headroom = headroom
        self.policy = retry_policy or RetryPolicy()
        self.connections = connections
        self.timeout = aiohttp.ClientTimeout(total=timeout, connect=connect_timeout)
        self.clock: Clock = clock or MonotonicClock()
        self.user_agent = user_agent
        self.stats = SenderStats()
        self._endpoints: dict[str, _Endpoint] = {}
        self._session: aiohttp.ClientSession | None = None
        self._fatal: str | None = None  # once credentials are rejected, nothing more is sent
        self._outage_limits = outage_limits or OutageLimits.from_env()  # an endpoint's breaker trips: nothing more is sent
        self._proxies: dict[str, dict] = {}  # origin -> proxy arguments (_proxy)
        # (why, hint) once it asks for a wait longer than a run waits, or a TLS handshake or certificate
        # fails: nothing more is sent
        self._closed: tuple[str, str] | None = None
        for name in destination.limits:
            self._endpoint(name)

    # --- lifecycle ----------------------------------------------------------------------------
    async def __aenter__(self) -> "HttpSender":
        connector = aiohttp.TCPConnector(limit=self.connections or 0, keepalive_timeout=30)
        # A request's rate slot counts from when it left (see RateLimiter.started): a request that
        # had to open a connection first (the first ones, any after a reset) reaches the server tens
        # of milliseconds after its slot. Its headers are only buffered when aiohttp reports them
        # sent; they leave with the body, which a task of its own writes a loop turn or more later
        # (before Python 3.12), after whatever else the loop had ready: its write is the leave.
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self.timeout,
            auto_decompress=True,
            headers={"User-Agent": self.user_agent},
            trace_configs=[_leaving_trace()],
        )
        # aiohttp re-sends an idempotent request (PUT, PATCH, GET) at once on a new connection when
        # a kept-alive one is reset: an attempt outside the limiter, the retry policy and the stats
        # (bunched arrivals, 429s from a strict window). Every retry is ours. (A private switch, the
        # one aiohttp's own test client turns off; absent in versions without that retry.)
        if hasattr(self._session, "_retry_connection"):
            self._session._retry_connection = False
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- endpoints ----------------------------------------------------------------------------
    def _endpoint(self, name: str) -> _Endpoint:
        ep = self._endpoints.get(name)
        if ep is not None:
            return ep
        limit = self.destination.limits.get(name) or EndpointLimit(
            name, rate=None, max_concurrency=DEFAULT_MAX_CONCURRENCY, documented=False
        )
        rate = self.rate_overrides.get(name, limit.rate)
        if not self.limits_enabled:
            rate = None
        # One pace per platform counter in the process: syncs sending at once to one token (serve
        # --parallel) share it, as the platform counts them together; so do endpoints of one bucket.
        headroom = limit.headroom or self.headroom
        pace = shared_pace((self.destination.limit_key(), limit.bucket or name), rate, limit.burst,
                           headroom=headroom, clock=self.clock, cold_margin=COLD_MARGIN)
        limiter = RateLimiter(rate, limit.burst, headroom=headroom, clock=self.clock, pace=pace)
        stats = self.stats.endpoints.setdefault(name, EndpointStats())
        ep = _Endpoint(limit, limiter, InFlight(limit.max_concurrency, rate, sockets=self.connections), stats,
                       Breaker(self._outage_limits, self._name, name, limit.max_concurrency))
        self._endpoints[name] = ep
        return ep

    def limiter(self, endpoint: str) -> RateLimiter:
        return self._endpoint(endpoint).limiter

    def _count(self, ep: _Endpoint, name: str, n: int = 1) -> None:
        setattr(self.stats, name, getattr(self.stats, name) + n)
        setattr(ep.stats, name, getattr(ep.stats, name) + n)

    # --- redaction ----------------------------------------------------------------------------
    def redact(self, text: object) -> str:
        """`text` through the process-wide redactor, cut to ~500 chars. The destination's secrets
        are registered each time (cheap once known): a token fetched during the run is one too."""
        redaction.register(*self.destination.secrets(), partial=True)
        out = redaction.redact(text)
        if len(out) > MAX_REASON_CHARS:
            out = out[: MAX_REASON_CHARS - 3] + "..."
        return out

    # --- sending ------------------------------------------------------------------------------
    async def send(self, request: Request) -> list[RecordResult]:
        """Deliver `request`; exactly one result per key of the request, in key order."""
        delivered = await self.deliver(request)
        problems = {r.key: r for r in delivered.problems}
        return [problems.get(k) or RecordResult(k, "ok") for k in request.keys]

    async def deliver(self, request: Request) -> Delivered:
        """Deliver `request`: the acknowledged keys, and a result for every other key.

        The hot path of the engine: no per-record objects for acknowledged records."""
        ep = self._endpoint(request.endpoint)
        # (under way for the breaker while tried: a batch split in parts is its parts from then on)
        ep.breaker.started()
        try:
            tried = await self._tried(request, ep)
        finally:
            ep.breaker.ended()
        if isinstance(tried, Outcome):
            return await self._split(request, ep, tried)
        return tried

    async def _tried(self, request: Request, ep: _Endpoint) -> Delivered | Outcome:
        """`request` tried until answered or given up: its records' results, or the answer that asks
        to split it (an Outcome)."""
        reason = "not sent"
        attempt = 0
        unanswered = True  # (a request given up at once says nothing about an outage)
        silent_attempts = 0  # its attempts in a row that got no answer (for the breaker)
        while True:
            attempt += 1
            try:
                outcome = await self._attempt(request, ep, attempt)
            except _GiveUp as exc:
                reason, unanswered = exc.reason, False
                break
            if outcome.kind != "retry" or outcome.throttled:
                ep.breaker.answered()
            if outcome.kind == "done":
                return self._judged(ep, self._results(request, outcome), outcome.error_answer)
            if outcome.kind == "fatal":
                self._fatal = self._fatal or self.redact(outcome.reason or "credentials rejected")
                raise self._auth_error()
            if outcome.kind == "split":
                ep.breaker.judged()
                return outcome
            # retry
            reason = outcome.reason or "transient failure"
            hint = outcome.retry_after
            if hint is not None and hint > self.policy.max_retry_after:
                # "Not before an hour" (a 429, a 503 for maintenance): asking again at the cap came back
                # against the server's word, 7 times a request, and 429s being answers, for every
                # request of the run (hours). Nothing more is sent; the next run sends these records.
                if outcome.throttled:
                    self._count(ep, "throttled")
                wait = f"{hint:.0f} s" if math.isfinite(hint) else "indefinitely"
                reason = (f"{reason}; the destination asked to wait {wait} (Retry-After), longer than a run "
                          f"waits ({self.policy.max_retry_after:g} s)")
                self._close(reason, WAIT_HINT)
                if math.isfinite(hint):  # the later runs of this process (`serve`'s next ticks) wait too
                    ep.limiter.penalize(hint)
                reason += ": sent by the next run"
                unanswered = False
                break
            if outcome.throttled and hint is not None and hint <= 0:
                # A 429 that says "now" (Retry-After 0, a date in the past) names no wait: backoff as
                # without a hint. Coming back at once kept a throttled Attio at 24 requests/s through a
                # 30 s storm of such answers (724 429s), and 80 rows used their 8 attempts in it.
                hint = None
            if outcome.throttled:
                # Shared backoff: everyone waiting on this endpoint waits, not only us.
                self._count(ep, "throttled")
                ep.limiter.penalize(hint if hint is not None else self.policy.delay(attempt))
            elif hint is not None:
                # A server that says when to come back (e.g. 503 + Retry-After: "unavailable for
                # that long", RFC 9110) is not asked again by anyone before then.
                ep.limiter.penalize(hint)
            if not outcome.throttled and hint is None:  # no answer: enough of them and the destination is down
                # (a server saying when to come back, within what a run waits, is waited for: the
                # requests in a row that used all their attempts still count it)
                silent_attempts += 1
                ep.breaker.attempt_unanswered(silent_attempts, self.clock.now(),
                                              self.redact(f"attempt {attempt}: {reason}"))
            else:
                silent_attempts = 0
            if not self.policy.should_retry(attempt) or ep.breaker.trip_reason is not None:
                break
            delay = self.policy.delay(attempt, hint)
            self._count(ep, "retries")
            await self._unless_stopped(self.clock.sleep(delay))
        self._count(ep, "failed_requests")
        # (attempts left when the breaker tripped: the destination was found down, say so; for the last
        # request of a phase or a run, the only word of it the run has)
        down = ep.breaker.trip_reason if unanswered and self.policy.should_retry(attempt) else None
        why = self.redact(f"failed after {attempt} attempt(s): {reason}" if down is None else
                          f"failed after {attempt} attempt(s), not tried again: {down}")
        if unanswered:
            ep.breaker.request_unanswered(why)
        return Delivered([], [RecordResult(k, "failed", why) for k in request.keys])

    def _judged(self, ep: _Endpoint, delivered: Delivered, error_answer: bool) -> Delivered:
        """`delivered`, counted by the breaker: an error answer that failed every record of a request
        (not a part of a split batch) and judged none is a refusal; anything else, a judgement."""
        refused = error_answer and delivered.problems and not delivered.ok and not delivered.pending \
            and all(p.status == "failed" for p in delivered.problems)
        if not refused:
            ep.breaker.judged()
        elif not _SPLIT_PART.get():
            ep.breaker.request_refused(delivered.problems[0].reason or "failed")
        return delivered

    async def _split(self, request: Request, ep: _Endpoint, outcome: Outcome) -> Delivered:
        keys = set(request.keys)
        guilty = {r.key for r in outcome.results if r.key in keys}
        if not request.splittable:
            why = self.redact(outcome.reason or "rejected by the destination")
            if len(keys) == 1 and not guilty:  # a record refused alone: the platform's word on it
                field = None if outcome.field is None else self.redact(outcome.field)
                return Delivered([], [RecordResult(k, "rejected", why, field) for k in request.keys])
            # a batch a plugin built without rebuild() and items: only the records the answer named
            # were judged; rejecting the others parked them until their values changed, never sent
            why += (f"; the destination asked to split this batch of {len(request.keys)} records to find the refused "
                    "one, but its request cannot be split (no rebuild() and items): not judged, sent again by the "
                    "next run")
            told = [self._redacted(r) for r in outcome.results if r.key in guilty]
            return Delivered([], told + [RecordResult(k, "failed", why) for k in request.keys if k not in guilty])
        self._count(ep, "splits")
        suspects = [k for k in dict.fromkeys(outcome.suspects) if k in keys and k not in guilty]
        if not guilty and not suspects:
            return await self._halves(request)
        # the answer named them: the others go again together, or halved if they failed so; a
        # suspect is sent alone (only its own refusal rejects it)
        merged = Delivered([], [self._redacted(r) for r in outcome.results if r.key in guilty])
        rest = request.without(guilty | set(suspects))
        parts = [self.deliver(one) for one in (request.subset({k}) for k in suspects) if one is not None]
        if rest is not None:
            rest.resent = True
            parts.append(self._halves(rest) if request.resent and rest.splittable else self.deliver(rest))
        for part in await self._gather(parts):
            merged.merge(part)
        return merged

    @staticmethod
    async def _gather(coroutines) -> list[Delivered]:
        """Await deliveries together, the parts of a split batch; if one raises, the others are cancelled."""
        token = _SPLIT_PART.set(True)  # (each task runs in a copy of the context as it is here)
        try:
            tasks = [asyncio.ensure_future(c) for c in coroutines]
        finally:
            _SPLIT_PART.reset(token)
        try:
            return await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _halves(self, request: Request) -> Delivered:
        merged = Delivered([], [])
        for part in await self._gather([self.deliver(half) for half in request.split()]):
            merged.merge(part)
        return merged

    @property
    def _name(self) -> str:
        """The destination's name in errors."""
        return self.destination.type_name or type(self.destination).__name__

    @property
    def _down(self) -> str | None:
        """Why sending stopped, once an endpoint's breaker tripped (breaker.py)."""
        return next((ep.breaker.trip_reason for ep in self._endpoints.values() if ep.breaker.trip_reason), None)

    def _auth_error(self) -> DestinationAuthError:
        return DestinationAuthError(
            f"{self._name}: {self._fatal}", hint="check the destination's credentials and their scopes"
        )

    def _outage_error(self) -> DestinationUnreachableError:
        return DestinationUnreachableError(
            f"{self._down}: sending stopped; acknowledged rows were committed, the rest is sent "
            "by the next run",
            hint="check that the destination is reachable and up (its base_url, the network, the platform's status)",
        )

    async def _headers(self, request: Request) -> CIMultiDict[str]:
        # (awaited when it is a coroutine: a destination may need to fetch a token first)
        auth = await hooks.call(self.destination, "auth_headers", self.destination.auth_headers)
        headers: CIMultiDict[str] = CIMultiDict(auth)
        headers.update(request.headers)
        if request.body is not None and "Content-Type" not in headers:
            headers["Content-Type"] = "application/json"
        return headers

    async def _attempt(self, request: Request, ep: _Endpoint, attempt: int = 1) -> Outcome:
        """One HTTP exchange, classified. Transport failures become `retry` outcomes. A next attempt
        (`attempt` > 1) waits for a place in flight ahead of the requests not tried yet: behind them
        (Attentive's lookups, hundreds at once) requests reached the second unanswered attempt the
        breaker's silence rule waits for only once every one of those had timed out (a silent
        destination found down 486 s after the network dropped, at `timeout_seconds: 5`)."""
        if self._session is None:
            raise RuntimeError("HttpSender used outside `async with`")
        self._stop_if_refused_or_down()
        self._close_if_paused_long(ep)
        # concurrency first: a rate slot is only taken to be used now
        async with ep.in_flight.retrying() if attempt > 1 else ep.in_flight:
            # (the check inside the limiter's wait: a task around every acquire delayed each start by
            # a few loop turns, and a strict per-second window saw them bunched: 429s of ours)
            slot = await ep.limiter.acquire(check=lambda: self._check_wait(ep))
            self._stop_if_refused_or_down()
            if self.stop is not None and self.stop():  # a signal came while it waited for its slot
                raise SendingStopped()
            self._count(ep, "requests")
            self._count(ep, "bytes_sent", len(request.body or b""))
            now = self.clock.now()
            if ep.stats.first_request_at is None:
                ep.stats.first_request_at = now
            ep.stats.last_request_at = now
            try:
                # The destination escaped the path and query already: send them byte for byte
                # (yarl would otherwise re-quote, e.g. turn `%40` back into `@`).
                url = URL(self.destination.base_url + request.path, encoded=True)
                headers = await self._headers(request)
                sent_at = self.clock.now()
                ep.limiter.started(slot, sent_at)  # later than its slot when the loop was busy
                async with self._session.request(
                    request.method, url, data=request.body, headers=headers, allow_redirects=False,
                    trace_request_ctx=(slot, self.clock), **self._proxy(url),
                ) as resp:
                    body = await read_body(resp, getattr(self.destination, "max_answer_bytes", None))
                    status, resp_headers = resp.status, resp.headers
                ep.in_flight.observe(self.clock.now() - sent_at)
            except _BAD_URL as exc:  # a configuration problem: retrying won't help
                raise _GiveUp(f"invalid URL: {exc}") from None
            except aiohttp.ClientSSLError as exc:  # a certificate or handshake refused: no retry mends it
                # (was retried as a transport failure, ~30 s until the breaker found the destination
                # down, hinting at the network, not at the scheme or the certificate)
                why = self.redact(f"TLS with {url.host}:{url.port} failed: {exc}")
                self._close(why, TLS_HINT)
                _clear_frames(exc)
                raise _GiveUp(why) from None
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                outcome = self.exception_outcome(request, exc)
                _clear_frames(exc)
                return outcome
            except ValueError as exc:  # e.g. a header value aiohttp refuses to send
                raise _GiveUp(f"invalid request: {exc}") from None
        return await self.classify(request, status, resp_headers, body)

    def _proxy(self, url: URL) -> dict:
        """The environment's proxy for `url` (HTTPS_PROXY...: proxy.py), read once a host."""
        origin = f"{url.scheme}://{url.host}"
        if origin not in self._proxies:
            self._proxies[origin] = proxy_for(url)
        return self._proxies[origin]

    async def _unless_stopped(self, waiting: Any) -> Any:
        """Await a retry's backoff (up to 120 s), given up once the run stops (SendingStopped): its
        request would not be sent anyway, and the run waited for it the whole grace period meant
        for requests in flight; or once sending stopped (an outage found by another request, refused
        credentials): its next attempt would raise, after up to 30 s of backoff for nothing.
        (A rate slot's wait checks the stop itself: `acquire(check=...)`.)"""
        task = asyncio.ensure_future(waiting)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=STOP_POLL_SECONDS)
                if done:
                    return task.result()
                self._raise_if_stopped()
                self._stop_if_refused_or_down()
        finally:
            if not task.done():  # stopped, or this request cancelled: its wait goes with it
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    def _check_wait(self, ep: _Endpoint) -> None:
        self._raise_if_stopped()
        self._close_if_paused_long(ep)

    def _close_if_paused_long(self, ep: _Endpoint) -> None:
        """An endpoint paused longer than a run waits (a Retry-After of 10 minutes answered to an
        earlier run of this process, or to another run sending to the same token): nothing is sent
        before the server's time; the run stops as the run that was told does."""
        # (against what a run waits, also for the health check's short policy: a pause of seconds,
        # an everyday 429's, is waited for as before, within the check's own time)
        most = max(self.policy.max_retry_after, MAX_RETRY_AFTER)
        left = ep.limiter.paused_until - ep.limiter.clock.now()
        if left > most:
            if self._closed is None:
                folder = ep.limiter.shared_in
                asked = "this process" if folder is None else \
                    f"this process or another on this machine, which share it in {folder} until it ends"
                # (the wait is the pace folder's: where a user knows the platform takes requests again
                # sooner, say after a quota was raised, the hint names what ends it)
                hint = WAIT_HINT if folder is None else \
                    f"{WAIT_HINT}, or, if it already does, remove the files in {folder} (the wait is kept there)"
                self._close(f"the destination asked to wait {left:.0f} s more (Retry-After, answered to an earlier "
                            f"request of {asked}), longer than a run waits ({most:g} s)", hint)
            self._stop_if_refused_or_down()

    def _raise_if_stopped(self) -> None:
        if self.stop is not None and self.stop():
            raise SendingStopped()

    def _stop_if_refused_or_down(self) -> None:
        if self._fatal is not None:
            raise self._auth_error()
        if self._down is not None:
            raise self._outage_error()
        if self._closed is not None:
            why, hint = self._closed
            raise DestinationUnreachableError(
                f"{self._name}: {why}: sending stopped; acknowledged rows were committed, the rest is "
                "sent by the next run", hint=hint)

    def _close(self, why: str, hint: str) -> None:
        """Nothing more is sent (the first reason stays): `_stop_if_refused_or_down` raises."""
        self._closed = self._closed or (self.redact(why), hint)

    # --- the rest of the Transport protocol: HTTP answers at once, nothing stays pending -------
    async def settle(self, pending, timeout: float) -> Delivered:
        return await self.destination.settle_pending(self, pending, timeout)

    async def resolve(self, tokens) -> Delivered:
        return await self.destination.resolve_pending(self, tokens)

    def ready(self) -> Delivered:
        """Outcomes are read when settling (nothing arrives on its own meanwhile)."""
        return Delivered([], [])

    def transport_stats(self) -> TransportStats:
        rates = {}
        for name, ep in self.stats.endpoints.items():
            rate = ep.achieved_rate()
            if rate is not None:
                rates[name] = round(rate, 3)
        return TransportStats(requests=self.stats.requests, throttled=self.stats.throttled, rates=rates)

    # --- classification (override points) -----------------------------------------------------
    def exception_outcome(self, request: Request, exc: BaseException) -> Outcome:
        """Connection errors, resets, disconnects and timeouts are transient."""
        if isinstance(exc, asyncio.TimeoutError):
            text = f"timeout after {self.timeout.total}s"
        else:
            text = f"{type(exc).__name__}: {exc}"
        return Outcome("retry", reason=text)

    def retry_after(self, headers: Mapping[str, str]) -> float | None:
        """The server's wait hint: `Retry-After` (uncapped: one over the policy's cap stops sending),
        else `RateLimit-Reset` if given in seconds (as uncapped). One that says "now" (0, a date in
        the past) names no wait: none, the backoff's then, as without one (a 503 with `Retry-After:
        0` was asked again within 0.25 s each time, a request's 8 attempts in a second)."""
        hint = parse_retry_after(headers.get("Retry-After"), cap=math.inf, server_date=headers.get("Date"))
        if not hint:
            reset = headers.get("RateLimit-Reset")
            try:
                value = float(reset) if reset is not None else None
            except ValueError:
                value = None
            # Seconds until the window or quota resets (Splio; the IETF draft), uncapped as a
            # Retry-After: a reset longer than a run waits stops sending. Some APIs send an epoch
            # timestamp here instead (GitHub's 1.7e9...): not a delay, no hint.
            if value is not None and 0 <= value < EPOCH_LIKE:
                hint = value
        return hint or None

    def default_outcome(
        self, request: Request, status: int, headers: Mapping[str, str], body: bytes
    ) -> Outcome | None:
        """The sender's own reading of a response, before the destination's; None defers to it.

        429 is throttling and 408/5xx are transient on every platform. A destination that wants
        to read such responses itself lists the statuses in a `handles_statuses` attribute.
        """
        if status in getattr(self.destination, "handles_statuses", ()):
            return None
        if 300 <= status < 400:
            raise _GiveUp(redirect_reason(status, headers))
        if status == 429:
            return Outcome("retry", reason=f"HTTP 429 (rate limited): {_snippet(body)}", throttled=True)
        if status == 408 or status >= 500:
            return Outcome("retry", reason=f"HTTP {status}: {_snippet(body)}")
        return None

    def follow_announced_limits(self, endpoint: str, headers: Mapping[str, str]) -> None:
        """Pace `endpoint` at the lowest limit per second the answer announces in the destination's
        `announced_limits` headers (never above the documented rate; not when dinsync.yml sets it)."""
        windows = self.destination.announced_limits
        if not windows or not self.limits_enabled or endpoint in self.rate_overrides:
            return
        ep = self._endpoint(endpoint)
        rate = ep.limit.rate
        if rate is None:
            return
        seen = False
        for header, seconds in windows.items():
            try:
                value = float(headers.get(header) or "")
            except ValueError:
                continue
            if math.isfinite(value) and value >= 1.0:
                rate, seen = min(rate, value / seconds), True
        if seen and rate != ep.limiter.rate:
            ep.limiter.set_rate(rate)

    async def classify(
        self, request: Request, status: int, headers: Mapping[str, str], body: bytes
    ) -> Outcome:
        self.follow_announced_limits(request.endpoint, headers)
        outcome = self.default_outcome(request, status, headers, body)
        if outcome is None:
            try:  # (a plugin's parse within its time limit: hooks.py)
                outcome = await hooks.call(self.destination, "parse", self.destination.parse, request, status,
                                           headers, body)
                if not (isinstance(outcome.results, list) and isinstance(outcome.suspects, list)):
                    # (a generator, say: read once, here; a split reads its results twice)
                    outcome = replace(outcome, results=list(outcome.results), suspects=list(outcome.suspects))
            except DestinationAuthError as exc:
                self._fatal = self._fatal or self.redact(exc.message)
                raise self._auth_error() from None
            except DinsyncError:
                raise
            except Exception as exc:  # a body the destination could not read: not transient
                raise _GiveUp(f"unreadable response (HTTP {status}): {type(exc).__name__}: {exc}") from None
        if outcome.kind == "done" and not 200 <= status < 300:
            outcome = replace(outcome, error_answer=True)
        if outcome.kind == "retry" and outcome.retry_after is None:
            hint = self.retry_after(headers)
            if hint is not None:
                outcome = replace(outcome, retry_after=hint)
        return outcome

    def _redacted(self, r: RecordResult) -> RecordResult:
        """A destination's result with the platform's words redacted: its reason and the field it
        names (both may come from an answer that echoed the request's credentials)."""
        return replace(r, reason=None if r.reason is None else self.redact(r.reason),
                       field=None if r.field is None else self.redact(r.field))

    def _results(self, request: Request, outcome: Outcome) -> Delivered:
        """The destination's result where given (its first refusal of a key wins over any `ok` of
        it: a record said both acknowledged and refused is not acknowledged; unknown keys ignored);
        the others are `ok`, or pending under `outcome.pending` when the destination says their
        outcome comes later."""
        if not outcome.results:
            if outcome.pending is not None:
                return Delivered([], [], {outcome.pending: list(request.keys)})
            return Delivered(request.keys, [])
        wanted = set(request.keys)
        first: dict[str, RecordResult] = {}
        for r in outcome.results:
            if r.key in wanted and (r.key not in first or (first[r.key].status == "ok" and r.status != "ok")):
                first[r.key] = r
        problems = [self._redacted(r) for r in first.values() if r.status != "ok"]
        bad = {p.key for p in problems}
        rest = [k for k in request.keys if k not in bad]
        if outcome.pending is not None:
            return Delivered([], problems, {outcome.pending: rest} if rest else {})
        return Delivered(rest, problems)


def redirect_reason(status: int, headers: Mapping[str, str], setting: str = "base_url") -> str:
    """Why a redirect is not followed. An API answers where it is asked; following a redirect
    would hand the credentials (a custom header such as Iterable's `Api-Key`, which aiohttp keeps
    across hosts, or a key in the body) and the rows to whatever host `Location` names."""
    return (f"HTTP {status}: redirect to {headers.get('Location') or '(no Location)'} not followed "
            f"(credentials are never sent to another address; set {setting} to the address it points to)")


async def read_body(resp: aiohttp.ClientResponse, most: int | None = None) -> bytes:
    """The answer's body (decompressed); of one that is not a 2xx, its first MAX_ERROR_BODY bytes.
    (Read whole, a 50 MB error page took that much memory for each request in flight, to quote 500
    characters; the connection of an answer not read to its end is closed, not reused.) A 2xx longer
    than MAX_ANSWER_BODY raises AnswerTooLarge once that much is read (read whole, a proxy's endless
    200 or a gzip bomb took gigabytes). A UTF-8 byte order mark before it is dropped: RFC 8259 lets a
    reader ignore one, the destinations' JSON reader refused it (every row of every run failed on a
    gateway adding one). `most`: a 2xx's cap when the answer is known to be smaller than any."""
    answer = 200 <= resp.status < 300
    most = (most or MAX_ANSWER_BODY) if answer else MAX_ERROR_BODY
    parts, size = [], 0
    async for chunk in resp.content.iter_chunked(2**16):
        parts.append(chunk)
        size += len(chunk)
        if size >= most and not answer:
            break
        if size > most:
            raise AnswerTooLarge(f"HTTP {resp.status} answer over {most / 2**20:g} MiB not read (no platform's "
                                 "answer is so long: a proxy's or a CDN's?)")
    body = b"".join(parts)[:most]
    return body[3:] if body.startswith(b"\xef\xbb\xbf") else body


def _snippet(body: bytes) -> str:
    return body_excerpt(body) or "(empty body)"
