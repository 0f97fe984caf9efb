"""The async HTTP sender: rate limits, retries, split-batch retries, per-record results."""
from .http import EndpointStats, HttpSender, SenderStats
from .ratelimit import Clock, FakeClock, MonotonicClock, RateLimiter
from .retry import RetryPolicy, parse_retry_after

__all__ = [
    "Clock",
    "EndpointStats",
    "FakeClock",
    "HttpSender",
    "MonotonicClock",
    "RateLimiter",
    "RetryPolicy",
    "SenderStats",
    "parse_retry_after",
]
