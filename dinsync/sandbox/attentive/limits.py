"""Per-token, per-endpoint requests-per-second windows that also say how many requests are left."""
from __future__ import annotations

import math
import time
from collections import deque
from typing import Callable, Hashable, Literal


class PerSecondLimiter:
    """`hit(key, limit)` -> (allowed, remaining, wait).

    `remaining` is what Attentive reports in `x-ratelimit-remaining`: the requests still allowed
    in the current second (fixed window, the default) or in the last second (sliding window).
    A refused request is not counted; `wait` is the seconds until one would be accepted.
    """

    def __init__(self, window: Literal["fixed", "sliding"] = "fixed", clock: Callable[[], float] = time.monotonic):
        if window not in ("fixed", "sliding"):
            raise ValueError("window must be 'fixed' or 'sliding'")
        self.window = window
        self.clock = clock
        self._fixed: dict[Hashable, tuple[float, int]] = {}
        self._hits: dict[Hashable, deque[float]] = {}

    def hit(self, key: Hashable, limit: float) -> tuple[bool, int, float]:
        now = self.clock()
        if self.window == "fixed":
            start = math.floor(now)
            seen, count = self._fixed.get(key, (start, 0))
            if seen != start:
                count = 0
            if count >= limit:
                return False, 0, start + 1.0 - now
            count += 1
            self._fixed[key] = (start, count)
            return True, max(0, math.ceil(limit - count)), 0.0
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - 1.0:
            hits.popleft()
        if len(hits) >= limit:
            return False, 0, hits[0] + 1.0 - now
        hits.append(now)
        return True, max(0, math.ceil(limit - len(hits))), 0.0

    def clear(self) -> None:
        self._fixed.clear()
        self._hits.clear()
