"""Retry-After parsing and the backoff policy."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from dinsync.sender import RetryPolicy, parse_retry_after

NOW = datetime(2023, 5, 23, 14, 42, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "value,expected",
    [
        ("1", 1.0),
        ("0", 0.0),
        (" 30 ", 30.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("100000", 120.0),  # capped
        # the three HTTP-date formats of RFC 9110, one second after NOW
        ("Tue, 23 May 2023 14:42:01 GMT", 1.0),  # IMF-fixdate (what Attio sends)
        ("Tuesday, 23-May-23 14:42:01 GMT", 1.0),  # RFC 850
        ("Tue May 23 14:42:01 2023", 1.0),  # asctime
        ("Tue, 23 May 2023 14:41:00 GMT", 0.0),  # in the past
        ("Tue, 23 May 2023 16:42:00 GMT", 120.0),  # far future: capped
    ],
)
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value, now=NOW) == pytest.approx(expected)


@pytest.mark.parametrize("value", [None, "", "   ", "soon", "nan", "inf", "Tue, 99 Foo 2023", "12abc", "1e400x"])
def test_parse_retry_after_garbage(value):
    assert parse_retry_after(value, now=NOW) is None


def test_parse_retry_after_custom_cap_and_default_now():
    assert parse_retry_after("90", cap=10) == 10
    soon = (datetime.now(timezone.utc) + timedelta(seconds=5)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert 3.0 <= parse_retry_after(soon) <= 5.0


def test_naive_now_is_taken_as_utc():
    assert parse_retry_after("Tue, 23 May 2023 14:42:02 GMT", now=NOW.replace(tzinfo=None)) == pytest.approx(2.0)


def test_defaults():
    p = RetryPolicy()
    assert (p.max_attempts, p.base, p.factor, p.cap) == (8, 0.5, 2.0, 30.0)


def test_backoff_is_full_jitter_under_an_exponential_capped_ceiling():
    p = RetryPolicy(rng=random.Random(42))
    assert [p.backoff_ceiling(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    for attempt in range(1, 12):
        delays = [p.delay(attempt) for _ in range(300)]
        ceiling = p.backoff_ceiling(attempt)
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > 0.8 * ceiling and min(delays) < 0.2 * ceiling  # spread over the range
    assert p.backoff_ceiling(10_000) == 30.0  # no overflow


def test_retry_after_wins_and_is_never_undercut():
    p = RetryPolicy(rng=random.Random(1))
    for hint in (0.0, 0.2, 1.0, 7.0):
        delays = [p.delay(5, hint) for _ in range(200)]
        assert all(hint <= d <= hint + p.retry_after_jitter for d in delays)
    assert p.delay(1, 10_000) <= p.max_retry_after + p.retry_after_jitter


def test_injected_rng_makes_delays_reproducible():
    a = RetryPolicy(rng=random.Random(7))
    b = RetryPolicy(rng=random.Random(7))
    assert [a.delay(n) for n in range(1, 9)] == [b.delay(n) for n in range(1, 9)]


def test_should_retry_counts_the_first_attempt():
    p = RetryPolicy(max_attempts=3)
    assert [p.should_retry(n) for n in (1, 2, 3)] == [True, True, False]
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


@pytest.mark.parametrize(
    "skew", [-3600.0, -5.0, 5.0, 3600.0],  # the server's clock behind / ahead of ours
)
def test_an_http_date_is_read_against_the_servers_clock_when_ours_is_off(skew):
    """Attio's Retry-After is the next second of *its* clock. Against our clock alone, one 5 s ahead
    read it as a date in the past (0: back at once, every 429 of a storm), one behind as a long wait."""
    server_now = NOW + timedelta(seconds=skew)
    date = server_now.strftime("%a, %d %b %Y %H:%M:%S GMT")
    retry_at = (server_now + timedelta(seconds=1)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(retry_at, NOW, server_date=date) == pytest.approx(1.0)


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.5, 0.7, 0.99])
@pytest.mark.parametrize("skew", [-600.0, 600.0])
def test_a_retry_read_against_the_servers_date_never_comes_before_the_date(fraction, skew):
    """`Date` is the server's time cut to whole seconds: when it answered, its clock read `Date` and
    a fraction more, unknown. Read as `Date` + 0.5 s, a retry came early whenever the fraction was
    under a half (Attio's "the next second": another 429); read as `Date`, never (at most a second late)."""
    server_now = NOW + timedelta(seconds=skew + fraction)
    date = server_now.strftime("%a, %d %b %Y %H:%M:%S GMT")
    retry_at = server_now.replace(microsecond=0) + timedelta(seconds=1)
    ours = NOW + timedelta(seconds=fraction)  # when the answer arrived, on our clock
    wait = parse_retry_after(retry_at.strftime("%a, %d %b %Y %H:%M:%S GMT"), ours, server_date=date)
    assert server_now + timedelta(seconds=wait) >= retry_at
    assert wait <= 1.0


def test_a_server_clock_close_to_ours_leaves_the_date_read_against_ours():
    # Date is whole seconds and the answer took its time: within CLOCK_SKEW, ours is the better reference
    assert parse_retry_after("Tue, 23 May 2023 14:42:01 GMT", NOW + timedelta(seconds=0.7),
                             server_date="Tue, 23 May 2023 14:41:59 GMT") == pytest.approx(0.3)
    assert parse_retry_after("Tue, 23 May 2023 14:42:01 GMT", NOW, server_date="garbage") == 1.0
    assert parse_retry_after("3", NOW, server_date="Tue, 23 May 2023 10:00:00 GMT") == 3.0  # seconds: no clock
