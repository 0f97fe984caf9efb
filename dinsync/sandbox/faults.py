"""Infrastructure behaviours shared by every platform sandbox: fault injection and rate limiting.

Nothing here knows a platform. A sandbox wraps each request in `run_with_faults`, giving it the
endpoint name, its `Faults`, the real handler and a function that builds the platform's own 429
(body shape and Retry-After format are platform-specific).

Faults emulate what sits in front of a real API (load balancer, proxy, flaky network):
    * latency: `latency` seconds plus a uniform jitter in [0, `jitter`];
    * error pages: `error_rate`, a 5xx with an HTML body like nginx would send;
    * resets: `reset_rate` drops the TCP connection (RST) before the request is applied,
      `reset_after_apply_rate` applies it and then drops the connection, so the client sees a
      connection error for a write that did happen;
    * throttling: `throttle_rate` answers 429 regardless of the platform's limiter.
Random faults draw from a seeded `random.Random`, so a run is reproducible. Tests can also
queue scripted faults: `faults.script("bulkUpdate", throttle(retry_after=1), times=2)`.
Scripted faults run before random ones, in order, endpoint queue first, then the "*" queue.

Holding: `faults.hold()` stops every request at the door (before latency and faults) until
`faults.release()`; `faults.held` counts the requests waiting. A test then knows a client is
mid-send for as long as it needs (e.g. while a second run meets the first one's lock), however
slow the machine, instead of guessing a latency. Released requests go on through faults, auth,
limits and validation as any other. The gate is an `asyncio.Event` of the sandbox's own loop:
call these there (`SandboxThread.hold()` / `release()` / `held()` do).
"""
from __future__ import annotations

import asyncio
import math
import random
import socket
import struct
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Literal, Mapping

import orjson
from aiohttp import web

FaultKind = Literal["respond", "error", "throttle", "reset", "reset_after_apply", "delay"]
ANY_ENDPOINT = "*"

_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Temporarily Unavailable",
            504: "Gateway Time-out"}


@dataclass(frozen=True)
class Fault:
    """One injected behaviour. Build them with the helpers below rather than by hand."""

    kind: FaultKind
    status: int = 500
    body: bytes | str | Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    retry_after: float | None = None  # throttle: seconds handed to the platform's 429 builder
    delay: float = 0.0  # delay: extra seconds before handling normally


def respond(status: int, body: bytes | str | Mapping[str, Any] | None = None,
            headers: Mapping[str, str] | None = None) -> Fault:
    """Answer exactly this (a dict body is sent as JSON), without running the handler."""
    return Fault("respond", status=status, body=body, headers=dict(headers or {}))


def error(status: int = 503) -> Fault:
    """A proxy-style HTML error page."""
    return Fault("error", status=status)


def throttle(retry_after: float | None = 1.0) -> Fault:
    """The platform's own 429 (its body and Retry-After format), whatever its limiter says."""
    return Fault("throttle", status=429, retry_after=retry_after)


def reset() -> Fault:
    """Drop the connection before the request has any effect."""
    return Fault("reset")


def reset_after_apply() -> Fault:
    """Apply the request, then drop the connection instead of answering."""
    return Fault("reset_after_apply")


def delay(seconds: float) -> Fault:
    """Wait, then handle normally (a slow answer, e.g. to trigger client timeouts)."""
    return Fault("delay", delay=seconds)


@dataclass
class Faults:
    """Fault settings of one sandbox; change attributes at run time (on the sandbox's loop)."""

    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (500, 502, 503)
    latency: float = 0.0
    jitter: float = 0.0
    reset_rate: float = 0.0
    reset_after_apply_rate: float = 0.0
    throttle_rate: float = 0.0
    throttle_retry_after: float | None = 1.0
    seed: int | None = 0
    injected: Counter = field(default_factory=Counter, init=False)  # kind -> count
    rng: random.Random = field(init=False, repr=False)
    _scripts: dict[str, deque[Fault]] = field(default_factory=dict, init=False, repr=False)
    held: int = field(default=0, init=False)  # requests waiting at the gate now (see `hold`)
    _gate: asyncio.Event | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._check()

    def _check(self) -> None:
        rates = (self.error_rate, self.reset_rate, self.reset_after_apply_rate, self.throttle_rate)
        if any(r < 0 or r > 1 for r in rates) or sum(rates) > 1 + 1e-9:
            raise ValueError("fault rates must be in [0, 1] and sum to at most 1")
        if self.latency < 0 or self.jitter < 0:
            raise ValueError("latency and jitter must be >= 0")
        if not self.error_statuses:
            raise ValueError("error_statuses must not be empty")

    def update(self, **changes: Any) -> "Faults":
        """Change several settings at once, all or none (e.g. `faults.update(error_rate=0.1)`)."""
        for name in changes:
            if name not in self.__dataclass_fields__ or name in ("injected", "rng", "_scripts", "held", "_gate"):
                raise AttributeError(f"unknown fault setting {name!r}")
        before = {name: getattr(self, name) for name in changes}
        for name, value in changes.items():
            setattr(self, name, value)
        try:
            self._check()
        except ValueError:
            for name, value in before.items():
                setattr(self, name, value)
            raise
        if "seed" in changes:
            self.rng = random.Random(self.seed)
        return self

    def script(self, endpoint: str | None, *faults: Fault, times: int = 1) -> None:
        """Queue faults for the next requests to `endpoint` (None: any endpoint), each `times` times."""
        queue = self._scripts.setdefault(endpoint or ANY_ENDPOINT, deque())
        for fault in faults:
            queue.extend([fault] * times)

    def pending(self, endpoint: str | None = None) -> int:
        """How many scripted faults are still queued (for one endpoint, or all)."""
        if endpoint is not None:
            return len(self._scripts.get(endpoint, ()))
        return sum(len(q) for q in self._scripts.values())

    def hold(self) -> None:
        """Keep every request from now on waiting at the door until `release` (on the sandbox's loop)."""
        if self._gate is None:
            self._gate = asyncio.Event()

    def release(self) -> None:
        """Let the held requests (and every later one) through."""
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.set()

    async def wait_at_gate(self) -> None:
        """Wait while requests are held (at once when they are not)."""
        gate = self._gate
        if gate is None:
            return
        self.held += 1
        try:
            await gate.wait()
        finally:
            self.held -= 1

    def clear(self) -> None:
        """Forget scripted faults and counters, restart the random sequence, release held requests."""
        self.release()
        self._scripts.clear()
        self.injected.clear()
        self.rng = random.Random(self.seed)

    def pick(self, endpoint: str) -> Fault | None:
        """The fault for this request, if any (scripted first, then random)."""
        for key in (endpoint, ANY_ENDPOINT):
            queue = self._scripts.get(key)
            if queue:
                return queue.popleft()
        if not (self.reset_rate or self.reset_after_apply_rate or self.throttle_rate or self.error_rate):
            return None
        draw = self.rng.random()
        for rate, make in ((self.reset_rate, reset), (self.reset_after_apply_rate, reset_after_apply),
                           (self.throttle_rate, lambda: throttle(self.throttle_retry_after)),
                           (self.error_rate, lambda: error(self.rng.choice(self.error_statuses)))):
            if draw < rate:
                return make()
            draw -= rate
        return None

    def latency_seconds(self) -> float:
        if not self.jitter:
            return self.latency
        return self.latency + self.rng.uniform(0.0, self.jitter)


def proxy_error_page(status: int) -> web.Response:
    """An HTML error page as a reverse proxy would send it (not the platform's JSON)."""
    reason = _REASONS.get(status, "Error")
    html = (f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
            f"<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
            "</body>\r\n</html>\r\n")
    return web.Response(status=status, text=html, content_type="text/html")


def abort_connection(request: web.BaseRequest) -> web.Response:
    """Reset the TCP connection (RST, no response).

    The returned response is never sent: aiohttp notices the closed transport and drops it
    quietly, which is why this returns instead of raising (raising would log a traceback).
    """
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        transport.abort()
    return web.Response(status=500)


def _scripted_response(fault: Fault) -> web.Response:
    body = fault.body
    headers = dict(fault.headers)
    if isinstance(body, Mapping):
        headers.setdefault("Content-Type", "application/json")
        return web.Response(status=fault.status, body=orjson.dumps(body), headers=headers)
    if isinstance(body, str):
        body = body.encode()
    return web.Response(status=fault.status, body=body, headers=headers)


async def run_with_faults(
    request: web.BaseRequest,
    endpoint: str,
    faults: Faults,
    handle: Callable[[], Awaitable[web.StreamResponse]],
    throttled: Callable[[float | None], web.StreamResponse],
) -> tuple[web.StreamResponse, str | None]:
    """Handle one request through the fault settings; returns (response, fault kind or None)."""
    await faults.wait_at_gate()
    wait = faults.latency_seconds()
    if wait > 0:
        await asyncio.sleep(wait)
    fault = faults.pick(endpoint)
    if fault is None:
        return await handle(), None
    faults.injected[fault.kind] += 1
    kind = fault.kind
    if kind == "reset":
        return abort_connection(request), kind
    if kind == "reset_after_apply":
        await handle()
        return abort_connection(request), kind
    if kind == "throttle":
        return throttled(fault.retry_after), kind
    if kind == "error":
        return proxy_error_page(fault.status), kind
    if kind == "delay":
        await asyncio.sleep(fault.delay)
        return await handle(), kind
    return _scripted_response(fault), kind


class RateLimiter:
    """Requests per second per endpoint, as a sliding or a fixed 1-second window.

    `acquire` returns None when the request may proceed (and counts it), otherwise the number
    of seconds until it would be accepted; a refused request is not counted.
    """

    def __init__(self, window: Literal["sliding", "fixed"] = "sliding", period: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        if window not in ("sliding", "fixed"):
            raise ValueError("window must be 'sliding' or 'fixed'")
        self.window = window
        self.period = period
        self.clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._fixed: dict[str, tuple[float, int]] = {}

    def acquire(self, key: str, limit: float | None) -> float | None:
        if limit is None:
            return None
        now = self.clock()
        if self.window == "fixed":
            start = math.floor(now / self.period) * self.period
            seen_start, count = self._fixed.get(key, (start, 0))
            if seen_start != start:
                count = 0
            if count >= limit:
                return start + self.period - now
            self._fixed[key] = (start, count + 1)
            return None
        hits = self._hits.setdefault(key, deque())
        horizon = now - self.period
        while hits and hits[0] <= horizon:
            hits.popleft()
        if len(hits) >= limit:
            return hits[0] + self.period - now
        hits.append(now)
        return None

    def usage(self, key: str, limit: float) -> tuple[int, float]:
        """(requests left in the current window, seconds until a slot frees up), for rate-limit headers."""
        now = self.clock()
        if self.window == "fixed":
            start = math.floor(now / self.period) * self.period
            seen_start, count = self._fixed.get(key, (start, 0))
            used = count if seen_start == start else 0
            return max(0, int(limit) - used), start + self.period - now
        hits = self._hits.get(key, ())
        live = [t for t in hits if t > now - self.period]
        return max(0, int(limit) - len(live)), (live[0] + self.period - now) if live else self.period

    def clear(self) -> None:
        self._hits.clear()
        self._fixed.clear()
