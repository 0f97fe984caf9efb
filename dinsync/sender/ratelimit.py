"""Client-side rate limiting: evenly spaced request starts (GCRA) with a shared 429 pause.

We pace ourselves just under each endpoint's documented rate (`headroom`) so the platform never
has to throttle us, while still using >= 97% of what it allows. When it does throttle (429 +
Retry-After), the whole limiter pauses: every waiter waits, not only the request that got the 429.

The clock is injectable so tests run on virtual time (`FakeClock`).
"""
from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
import threading
import time
import weakref
from collections import deque
from typing import TYPE_CHECKING, Callable, Iterator, Protocol

if TYPE_CHECKING:
    from .pacefile import PaceFile

DEFAULT_HEADROOM = 0.985
# A sender's first starts open connections, which delays their arrival at the server by tens of
# milliseconds: more than the headroom's margin in the window check, so a server counting per second
# saw the start after them inside the same second (Attio's sliding window: a 429 in the first second
# of most 750-write upserts). The sender's limiters count their first window of starts as leaving
# this much later (`cold_margin`), which delays the next run of starts once.
COLD_MARGIN = 0.05
# How late a start may be for its slot and keep the schedule (see `_take`): a share of the
# interval, at least a few milliseconds (an event loop's wake-ups are 1-2 ms late).
KEPT_LATENESS = 0.25
KEPT_LATENESS_SECONDS = 0.005
_EPS = 1e-9  # float slack when comparing a wake-up time with a slot time
MAX_AHEAD_SECONDS = 60.0  # a shared pace file's next start further ahead than this (and a pace's own
# interval and tolerance) is no pace's: the file is corrupted (see _Pace._adopt)
STOP_POLL_SECONDS = 0.1  # how often a long wait (a rate slot with a `check`, a retry's backoff) looks at the stop


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    """Real time: `time.monotonic` (the clock asyncio's loop uses) and `asyncio.sleep`."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


_MONOTONIC = MonotonicClock()


class FakeClock:
    """Virtual time for tests.

    `auto_advance=True` (default): `sleep(s)` yields to the loop once, then moves time forward to
    the sleeper's deadline (never backwards), so code that sleeps runs instantly yet sees the time
    it would have seen. `auto_advance=False`: sleepers block until the test calls `advance()`,
    which lets a test stop the world in the middle of a wait (e.g. to cancel a waiter).
    """

    def __init__(self, start: float = 0.0, auto_advance: bool = True):
        self._now = float(start)
        self.auto_advance = auto_advance
        self.sleeps: list[float] = []  # every requested sleep, for inspection
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.sleeps.append(seconds)
        deadline = self._now + seconds
        if self.auto_advance:
            await asyncio.sleep(0)  # a cancellation point, as a real sleep would be
            self._now = max(self._now, deadline)
            return
        if deadline <= self._now:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (deadline, next(self._seq), fut))
        await fut

    def advance(self, seconds: float) -> None:
        """Move time forward and wake the sleepers whose deadline has come (manual mode)."""
        self._now += max(0.0, seconds)
        while self._sleepers and self._sleepers[0][0] <= self._now + _EPS:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    @property
    def sleeping(self) -> int:
        return sum(1 for _, _, f in self._sleepers if not f.done())


class _Pace:
    """The schedule of one server-side bucket: GCRA state, the window of recent starts, the pause.

    Every method runs under a threading lock and never awaits, so one pace may be shared by the
    limiters of several senders, each on an event loop of its own (syncs running at once under
    `dinsync serve --parallel`, each in its own thread, that write to one token: Attio counts its
    25 writes/s for the whole token, not per sync). Waiters stay with their own limiter."""

    def __init__(self, rate: float | None, burst: int, headroom: float, cold_margin: float, clock: "Clock",
                 file: "PaceFile | None" = None):
        self.lock = threading.Lock()
        self.file = file  # shared with the other processes of this machine (see pacefile); None: not
        self.clock = clock  # held: a shared pace is found by its clock's identity (see `shared_pace`)
        self.rate = rate
        self.burst = int(burst)
        self.headroom = headroom
        self.interval, self.window, self.tolerance = self._schedule(rate, ())
        self.tat = -math.inf  # theoretical arrival time of the next start (GCRA)
        self.cold_margin = cold_margin
        # the first window of starts counts as leaving `cold_margin` later (see COLD_MARGIN)
        self.cold = self.window.maxlen if self.window is not None and cold_margin > 0 else 0
        self.paused_until = -math.inf
        self.created = clock.now()  # (a pace kept for the next sync counts as used from then: `_keep`)

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        """The pace's lock, its state the latest of every process sharing its file (read under the
        file's lock and written back on leaving). A file that fails is let go: this process then
        paces alone, as before it was shared."""
        with self.lock:
            file = self.file
            if file is None:
                yield
                return
            try:
                file.lock()
            except OSError:
                self.file = None
                yield
                return
            done = False
            try:
                try:
                    state = file.read()
                except OSError:
                    state, self.file = None, None
                if state is not None and state is not file.UNCHANGED:
                    self._adopt(state)
                yield
                done = True
            finally:
                if done and self.file is not None:
                    try:
                        file.write(self.tat, self.paused_until, [s[0] for s in self.window or ()])
                    except OSError:
                        self.file = None
                elif not done:
                    file.forget()  # this process's state may differ from the file's
                try:
                    file.unlock()
                except OSError:
                    self.file = None

    def _adopt(self, state) -> None:
        # A next start or a start further ahead than any pace puts one is no pace's (a file
        # corrupted in place): kept, it held every process's sending until killed. This process's
        # own state stands and is written over it. (A pause may be long: a long one stops a run.)
        latest = self.clock.now() + max(self.tolerance + self.interval, MAX_AHEAD_SECONDS)
        if state.tat > latest or any(t > latest for t in state.window):
            return
        self.tat, self.paused_until = state.tat, state.paused_until
        if self.window is not None:
            self.window = deque((_Slot(t) for t in state.window[-self.window.maxlen:]), maxlen=self.window.maxlen)

    def pause_until(self, t: float) -> None:
        with self.shared():
            if t > self.paused_until:
                self.paused_until = t

    def moved(self, slot: "_Slot", t: float) -> None:
        """The start of `slot` left at `t`, later than its slot: counted from then (RateLimiter.started)."""
        with self.shared():
            if self.window is not None:
                for entry in reversed(self.window):
                    if entry[0] == slot[0]:
                        entry[0] = t
                        break
            slot[0] = t

    def set_rate(self, rate: float | None) -> None:
        with self.shared():
            if rate == self.rate:
                return
            self.rate = rate
            self.interval, self.window, self.tolerance = self._schedule(rate, list(self.window or ()))

    def _schedule(self, rate: float | None, recent) -> tuple[float, "deque[list[float]] | None", float]:
        """(interval between starts, window of the last starts holding `recent`, GCRA tolerance)
        at `rate` (None: unlimited, no window)."""
        if rate is None:
            interval, window = 0.0, None
        else:
            interval = 1.0 / (rate * self.headroom)
            window = deque(recent, maxlen=max(self.burst, math.ceil(rate)))
        return interval, window, (self.burst - 1) * interval

    def ready_at(self) -> float:
        t = max(self.tat - self.tolerance, self.paused_until)
        w = self.window
        if w is not None and len(w) == w.maxlen:
            t = max(t, w[0][0] + w.maxlen * self.interval)
        return t

    def try_take(self, now: float) -> tuple[list[float] | None, float]:
        """The next start slot if it is due at `now` (taken atomically), else (None, seconds to wait)."""
        with self.shared():
            wait = self.ready_at() - now
            if wait > _EPS:
                return None, wait
            return self._take(now), 0.0

    def _take(self, now: float) -> list[float]:
        # A start a little late for its slot (the loop woke us after the deadline, as real event
        # loops do by a millisecond or so) keeps the schedule: the next slot is one interval after
        # this one's, not after `now`, else every wake-up's lateness lowers the rate (with burst 1,
        # 1.3 ms per wake-up cost 13% of 100 requests/s). A start later than a whole interval (an
        # idle limiter, a pause) starts a new schedule, so idleness is never banked. The window
        # check of `ready_at` still caps the starts in any `maxlen` run.
        # Only a wake-up's lateness keeps it: a start held back longer (by the window check, after
        # a start that left late) starts a new schedule, else the next start would follow it
        # closely (17 ms apart at 5/s), bunching every window after.
        late = now - self.tat
        kept = 0 < late < min(self.interval, max(KEPT_LATENESS * self.interval, KEPT_LATENESS_SECONDS))
        self.tat = (self.tat if kept else max(self.tat, now)) + self.interval
        slot = _Slot(now, self if self.file is not None else None)
        if self.window is not None:
            if self.cold:
                self.cold -= 1
                slot[0] += self.cold_margin
            # a slot naming this pace is held by its caller only (`moved` finds it here by its time):
            # in the window too, it made the pace a cycle, its file kept open until a full collection
            self.window.append(slot if slot.pace is None else _Slot(slot[0]))
        return slot


class _Slot(list):
    """A start's slot: [its time], and the pace whose file holds it (None: a pace of this process
    alone, whose window holds the slot itself)."""

    __slots__ = ("pace",)

    def __init__(self, t: float, pace: "_Pace | None" = None):
        super().__init__((t,))
        self.pace = pace


_SHARED: "weakref.WeakValueDictionary[tuple, _Pace]" = weakref.WeakValueDictionary()
_SHARED_LOCK = threading.Lock()
# A pace outlives its limiters while the platform's window may still hold its starts: the next sync
# of a `dinsync sync` or `serve` to the same token starts ~40 ms after the last one's answers, and
# a pace of its own let 2 writes go at once onto a full window (27 in a second at Attio's 25).
KEEP_SECONDS = 2.0
KEEP_PACES = 64  # the most kept that way (a process has a few; a test run makes one per clock)
_KEPT: "dict[tuple, _Pace]" = {}


def _keep(full: tuple, pace: _Pace) -> None:
    """Hold `pace` strongly (until a later call finds it idle) and let go of the kept paces whose
    last start is KEEP_SECONDS old."""
    _KEPT.pop(full, None)
    for key, kept in list(_KEPT.items()):
        with kept.lock:
            last = max(kept.tat, kept.paused_until, kept.created)
        if last < kept.clock.now() - KEEP_SECONDS or len(_KEPT) >= KEEP_PACES:
            del _KEPT[key]
    _KEPT[full] = pace


def shared_pace(key: tuple, rate: float | None, burst: int = 1, *, headroom: float = DEFAULT_HEADROOM,
                clock: "Clock | None" = None, cold_margin: float = 0.0) -> _Pace:
    """The pace of the server-side bucket `key` (e.g. a destination's token and an endpoint), one per
    process while a limiter uses it: limiters made with it share their starts, their window and
    their 429 pauses. Real-time clocks share; another clock only with limiters given the same object."""
    clock = clock or _MONOTONIC
    full = (key, rate, int(burst), headroom, "monotonic" if isinstance(clock, MonotonicClock) else id(clock))
    with _SHARED_LOCK:
        pace = _SHARED.get(full)
        if pace is None:
            file = None
            if isinstance(clock, MonotonicClock):  # the system's clock: the same in every process
                from .pacefile import PaceFile

                file = PaceFile.open(full[:4])
            pace = _Pace(rate, burst, headroom, cold_margin, clock, file)
            _SHARED[full] = pace
        _keep(full, pace)
        return pace


class RateLimiter:
    """At most `rate` request starts per second, `burst` of them back to back, FIFO among waiters.

    Pacing is GCRA (a virtual-scheduling token bucket): one start every `1 / (rate * headroom)`
    seconds, up to `burst - 1` of them early. A bucket alone would let `burst` extra starts into
    a one-second window (the initial burst plus a full second of refills), which a server counting
    per second would throttle; so we also require that any `max(burst, ceil(rate))` consecutive
    starts span at least that many intervals. With `burst=1` this is plain even spacing.

    `rate=None` means unlimited, but the limiter still honours pauses (a 429 can come anyway).

    `pace` (from `shared_pace`): the schedule this limiter shares with others counting against the
    same server-side limit, in this thread or another; by default a schedule of its own.
    """

    def __init__(
        self,
        rate: float | None,
        burst: int = 1,
        *,
        headroom: float = DEFAULT_HEADROOM,
        clock: Clock | None = None,
        cold_margin: float = 0.0,
        pace: _Pace | None = None,
    ):
        if rate is not None and not rate > 0:
            raise ValueError(f"rate must be > 0 or None, got {rate!r}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst!r}")
        if not 0 < headroom <= 1:
            raise ValueError(f"headroom must be in (0, 1], got {headroom!r}")
        self.clock: Clock = clock or (pace.clock if pace is not None else MonotonicClock())
        self._pace = pace or _Pace(rate, burst, headroom, cold_margin, self.clock)
        self._waiters: deque[asyncio.Future[None]] = deque()

    # --- state ------------------------------------------------------------------------------
    @property
    def rate(self) -> float | None:
        return self._pace.rate

    @property
    def burst(self) -> int:
        return self._pace.burst

    @property
    def headroom(self) -> float:
        return self._pace.headroom

    @property
    def cold_margin(self) -> float:
        return self._pace.cold_margin

    @property
    def _interval(self) -> float:
        return self._pace.interval

    @property
    def effective_rate(self) -> float | None:
        """The rate we actually aim at (documented rate x headroom)."""
        return None if self.rate is None else self.rate * self.headroom

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @property
    def paused_until(self) -> float:
        return self._pace.paused_until

    @property
    def shared_in(self) -> str | None:
        """The folder of the file through which other processes share this pace (None: not shared)."""
        file = self._pace.file
        return None if file is None else str(file.path.parent)

    def pause_until(self, t: float) -> None:
        """No start before clock time `t` for anyone (pauses only ever get longer)."""
        self._pace.pause_until(t)

    def set_rate(self, rate: float | None) -> None:
        """Pace at `rate` from now on (e.g. the limit a server announces in its headers); waiters
        keep their place in line and the next start stays where the old pace put it."""
        if rate is not None and not rate > 0:
            raise ValueError(f"rate must be > 0 or None, got {rate!r}")
        self._pace.set_rate(rate)

    def penalize(self, seconds: float) -> None:
        """The server asked us to wait `seconds` (429 + Retry-After): pause the whole limiter."""
        self.pause_until(self.clock.now() + max(0.0, seconds))

    # --- acquiring --------------------------------------------------------------------------
    def _ready_at(self) -> float:
        with self._pace.shared():
            return self._pace.ready_at()

    @staticmethod
    def started(slot: list[float] | None, t: float) -> None:
        """The request of `slot` (what `acquire` returned) left at clock time `t`, later than its
        slot when the event loop was busy (a thread holding the GIL, say): the window check then
        counts it from `t`. Else the `maxlen`-th start after it could reach a server counting per
        second less than a second after it (Attio's sliding window: 1-2 429s in 750 writes, from
        sends 90 ms late)."""
        if slot is not None and t > slot[0]:
            pace = getattr(slot, "pace", None)
            if pace is None:
                slot[0] = t
            else:
                pace.moved(slot, t)

    async def acquire(self, check: Callable[[], None] | None = None,
                      poll: float = STOP_POLL_SECONDS) -> list[float] | None:
        """Wait for the next start slot; returns it, for `started`.

        Cancel-safe: the slot is taken synchronously right before returning, so a waiter that is
        cancelled never holds one, and the next waiter in line is woken in its place.

        `check` (e.g. "the run is stopping"), called before each wait and at least every `poll`
        seconds of one, gives the wait up by raising (a 429's pause lasts up to minutes); a slot
        that is free at once is taken without it, as before, on the hot path.
        """
        if not self._waiters:
            slot, _ = self._pace.try_take(self.clock.now())
            if slot is not None:
                return slot
        me: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(me)
        try:
            while True:
                if check is not None:
                    check()
                if self._waiters[0] is not me:
                    await me  # resolved when we reach the head of the line (or the head gave up)
                    continue
                slot, wait = self._pace.try_take(self.clock.now())
                if slot is not None:
                    return slot
                # Re-checked after waking: a pause may have been extended meanwhile, or a limiter
                # sharing the pace took the slot.
                await self.clock.sleep(wait if check is None else min(wait, poll))
        finally:
            was_head = bool(self._waiters) and self._waiters[0] is me
            self._waiters.remove(me)
            if was_head and self._waiters:
                head = self._waiters[0]
                if not head.done():
                    head.set_result(None)

    async def __aenter__(self) -> "RateLimiter":
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def __repr__(self) -> str:
        return f"RateLimiter(rate={self.rate!r}, burst={self.burst}, headroom={self.headroom})"
