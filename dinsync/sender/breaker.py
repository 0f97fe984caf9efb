"""When a destination is down or refuses every request: the sender's circuit breaker.

A run sending 1M rows to an address that answers nothing, or answers every request with an error
that is not the platform's (a 404 of a wrong path, a 405, a 410, a proxy's 400 page), must notice
in about a minute (two timeouts of an attempt, 30 s each by default), stop sending and fail, not
retry or send every remaining request for hours.
Sporadic failures never add up to a trip: every answer (any answer, a 429 included) starts the
silence's count again, and a request with a row acknowledged or judged starts the refusals' again.
Each endpoint counts for itself (one breaker each): a destination whose writes all fail while its
lookups or job polls answer is as unable to take the run's rows (the lookups' answers started the
count of the writes' failures again, and every row was sent to fail; Attentive: 3,000 of 3,000).

The thresholds are data (`OutageLimits`), the same for every destination:
  * `requests`: requests in a row that used all their attempts without an answer (5xx, 408,
    timeouts, refused or reset connections, a name that does not resolve);
  * `silent_seconds` with `retried_requests`: no answer at all for that long since the first
    unanswered attempt, while that many distinct requests went unanswered `retried_attempts` times
    in a row each, or, when the endpoint has fewer requests under way (a phase of one request:
    Attentive's `GET /v1/me`, Attio's schema read, a job's status poll; the last requests of a run)
    or a lower cap of requests in flight (the others wait for a place, untried), as many as are under
    way or can be in flight (a lone request: itself tried twice through that silence; a slow request
    of a busy run is not alone, and the others' answers start the count again) (a server that never answers:
    8 attempts of 30 s each were ~6 minutes before the first rule tripped, ~4.5 minutes for a lone
    request, which neither rule could trip; an attempt answered with a Retry-After within what a
    run waits is not silence: the server said when);
    DINSYNC_OUTAGE_SECONDS sets `silent_seconds` (more to ride out longer blackouts in one run);
  * `refused_requests`: requests in a row answered with an error (not a 2xx) that failed every row
    of the request and judged none (the destination's word that the answer is not the platform's
    on the rows, e.g. a 404 page): each fails at once, so every row of the run was sent, one request
    a row for Attio (~1 hour for 100k rows), to fail them all. (Parts of a split batch are not
    counted: a platform's refusals of single records isolated by halving are its word on them.)
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OutageLimits:
    requests: int = 3
    silent_seconds: float = 30.0  # DINSYNC_OUTAGE_SECONDS (engine/options.py: OUTAGE_SECONDS, this default)
    retried_requests: int = 3
    retried_attempts: int = 2  # unanswered attempts that make a request count as retried
    refused_requests: int = 10

    @classmethod
    def from_env(cls) -> "OutageLimits":
        """The defaults, `silent_seconds` from DINSYNC_OUTAGE_SECONDS when set (read, and refused when
        unusable, as a run starts: engine/options.py)."""
        from ..engine.options import outage_seconds

        return cls(silent_seconds=outage_seconds(cls.silent_seconds))


class Silence:
    """How long a server has answered nothing: from the first attempt since its last answer that got
    none (`unanswered(at)`, `at` its start or its end), until an answer (`answered()`). The breaker's
    silence rule counts it, and so do Splio SFTP's connections and report polls."""

    def __init__(self, seconds: float):
        self.seconds = seconds  # how long is an outage
        self.since: float | None = None

    def answered(self) -> None:
        self.since = None

    def unanswered(self, at: float) -> None:
        if self.since is None:
            self.since = at

    def lasted(self, now: float) -> float:
        return 0.0 if self.since is None else now - self.since

    def over(self, now: float) -> bool:
        """Silent for `seconds` or more by `now`."""
        return self.since is not None and now - self.since >= self.seconds


class Breaker:
    """Counts the failures of one endpoint's requests since it last answered (or last judged a row);
    `trip_reason` is the sender's message once a limit is reached (None before)."""

    def __init__(self, limits: OutageLimits, name: str, endpoint: str, max_in_flight: int | None = None):
        self.limits, self.name, self.endpoint = limits, name, endpoint
        self.max_in_flight = max_in_flight  # the endpoint's cap of requests in flight (None: none)
        self.unanswered = 0  # requests that used all their attempts since the last answer
        self.retried = 0  # requests whose second attempt (or a later one) went unanswered since then
        self.silence = Silence(limits.silent_seconds)  # since the first unanswered attempt since then
        self.under_way = 0  # requests of the endpoint being delivered (trying, backing off or queued)
        self.refused = 0  # requests failed as a whole by an error answer since a row was last judged
        self.trip_reason: str | None = None

    def started(self) -> None:
        """A request is being delivered (until `ended`: its attempts, their waits and backoffs)."""
        self.under_way += 1

    def ended(self) -> None:
        self.under_way -= 1

    def answered(self) -> None:
        """The destination answered an attempt (its words may still be a failure)."""
        self.unanswered = self.retried = 0
        self.silence.answered()

    def judged(self) -> None:
        """A request came back with a row acknowledged, judged by the platform, or pending."""
        self.refused = 0

    def request_refused(self, why: str) -> None:
        """A request was answered with an error that failed all its rows and judged none."""
        self.refused += 1
        if self.refused >= self.limits.refused_requests:
            self._trip(f"{self.name} refused {self.refused} requests in a row as a whole ({self.endpoint}), with an "
                       f"answer that is not the platform's word on any row (last: {why})")

    def attempt_unanswered(self, silent_attempts: int, now: float, why: str) -> None:
        """An attempt of a request got no answer: its `silent_attempts`-th in a row (counted since the
        request's last attempt that was answered, a 429 or a Retry-After included)."""
        self.silence.unanswered(now)
        lim = self.limits
        if silent_attempts == lim.retried_attempts:
            self.retried += 1
        # (every request that can be in flight retried, when fewer than `retried_requests` can: a
        # lone request is the whole of what the endpoint could answer, and so are the ones in flight
        # under its cap while the others wait for a place; this one is under way, so at least 1)
        enough = min(lim.retried_requests, max(1, self.under_way), self.max_in_flight or lim.retried_requests)
        if self.retried >= enough and self.silence.over(now):
            times = "twice" if lim.retried_attempts == 2 else f"{lim.retried_attempts} times"
            requests = "request" if self.retried == 1 else "requests"
            self._trip(f"{self.name} answered no request for {self.silence.lasted(now):.0f} s ({self.endpoint}: "
                       f"{self.retried} "
                       f"{requests} tried {times} or more; last: {why})")

    def request_unanswered(self, why: str) -> None:
        """A request used all its attempts without an answer."""
        self.unanswered += 1
        if self.unanswered >= self.limits.requests:
            self._trip(f"{self.name} answered none of {self.limits.requests} requests in a row ({self.endpoint}), "
                       f"each tried to the end (last: {why})")

    def _trip(self, reason: str) -> None:
        if self.trip_reason is None:
            self.trip_reason = reason
