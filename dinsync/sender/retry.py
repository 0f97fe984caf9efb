"""When to try again: Retry-After parsing and exponential backoff with full jitter."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

MAX_RETRY_AFTER = 120.0  # seconds; a server asking for more is capped (the run must go on)
# An HTTP-date Retry-After is read against the server's clock (its Date header) when that clock is
# off ours by more than this: both are whole seconds, and the answer took a while to arrive.
CLOCK_SKEW = 2.0


def parse_retry_after(
    value: str | None,
    now: datetime | None = None,
    *,
    cap: float = MAX_RETRY_AFTER,
    server_date: str | None = None,
) -> float | None:
    """Seconds to wait from a `Retry-After` value, or None when absent or unreadable.

    Accepts delta-seconds ("1", leniently "1.5") and HTTP dates in the three RFC 9110 formats
    (IMF-fixdate, RFC 850, asctime; Attio sends IMF-fixdate). A date in the past means "now" (0).
    The result is capped at `cap`. `now` (aware datetime) defaults to the current UTC time.
    `server_date`: the answer's `Date` header. A date is the server's clock: when that clock is off
    ours by more than CLOCK_SKEW seconds, the date is read against it (a client clock 5 s ahead read
    Attio's "retry at the next second" as a date in the past, and came back at once, every time; one
    behind waited up to the cap after each 429).
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = None
    if seconds is not None:
        if not math.isfinite(seconds):  # "inf", "nan"; but RFC 9110's digits, however many, are a delay
            return cap if seconds > 0 and value.lstrip("+").isdigit() else None
        return min(max(0.0, seconds), cap)
    when = _http_date(value)
    if when is None:
        return None
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    server = _http_date(server_date)
    if server is not None and abs((now - server).total_seconds()) > CLOCK_SKEW:
        # the server's time cut to whole seconds: its clock read that and an unknown fraction more,
        # so a wait read from `Date` itself is never early, and at most a second late (read as
        # `Date` + 0.5 s, a retry came before the date whenever that fraction was under a half)
        now = server
    return min(max(0.0, (when - now).total_seconds()), cap)


def _http_date(value: str | None) -> datetime | None:
    """An HTTP date (any of RFC 9110's three formats) as an aware datetime; None when absent or
    unreadable."""
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:  # older Pythons return None for garbage
        return None
    # "-0000" / asctime: UTC per RFC 9110
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


@dataclass
class RetryPolicy:
    """How often and how long to back off on transient failures.

    Without a server hint: full jitter (a uniform delay in [0, min(cap, base * factor^(n-1))]),
    which spreads concurrent retriers best. With one (Retry-After): exactly that long plus a
    small jitter, never less, so we never come back before the server said we may.
    """

    max_attempts: int = 8  # attempts in total, the first one included
    base: float = 0.5
    factor: float = 2.0
    cap: float = 30.0
    retry_after_jitter: float = 0.25  # extra seconds, at most, added to a Retry-After
    max_retry_after: float = MAX_RETRY_AFTER
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")

    def backoff_ceiling(self, attempt: int) -> float:
        """Upper bound of the jittered delay after failed attempt number `attempt` (1-based)."""
        exponent = max(0, attempt - 1)
        try:
            return min(self.cap, self.base * self.factor**exponent)
        except OverflowError:
            return self.cap

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        if retry_after is not None:
            hint = min(max(0.0, retry_after), self.max_retry_after)
            return hint + self.rng.uniform(0.0, self.retry_after_jitter)
        return self.rng.uniform(0.0, self.backoff_ceiling(attempt))

    def should_retry(self, attempt: int) -> bool:
        """True when another attempt may follow failed attempt number `attempt`."""
        return attempt < self.max_attempts
