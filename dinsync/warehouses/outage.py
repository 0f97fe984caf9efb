"""One retry budget per outage of a warehouse, shared by all its sessions and clients.

A request whose warehouse answers 5xx (or drops the connection) is retried for the adapter's
`retry_seconds`. Before, every request got the whole budget anew, also after an earlier one had
given up: each later write of a failed run (the checkpoint, the run log's end, the sync's state,
the lock's release) was retried for the budget again, and a run whose warehouse went away
(retry_seconds: 10) ended 70 s after it, about 14 minutes with the default 120 s. An adapter's
retry policy therefore asks `Outage.ongoing` before retrying: once a request gave up, failing
ones are tried once, until one gets through again (or one budget has passed)."""
from __future__ import annotations

import time


class Outage:
    """Whether a warehouse's requests gave up lately (a request retried for the whole budget, or a
    failing one not retried since)."""

    def __init__(self) -> None:
        self.since: float | None = None  # time.monotonic() of the last giving up
        self.cause: BaseException | None = None  # its error

    def ongoing(self, seconds: float) -> bool:
        since = self.since
        return since is not None and time.monotonic() - since < max(seconds, 1)

    def unanswered(self, seconds: float, timeouts: type | tuple[type, ...]) -> bool:
        """Whether it is ongoing and its requests got no answer at all: the last one gave up on one
        of `timeouts` (or on a retry error whose `cause` is one). While so, a request is not even
        sent: it would wait its socket timeout (60 s) for nothing, a failed run's every last write."""
        cause = self.cause
        while cause is not None and not isinstance(cause, timeouts):
            cause = getattr(cause, "cause", None)  # google.api_core's RetryError
        return cause is not None and self.ongoing(seconds)

    def gave_up(self, cause: BaseException | None = None) -> None:
        self.since, self.cause = time.monotonic(), cause

    def reached(self) -> None:
        """A request got through: the warehouse is reachable, the next failure has a budget again."""
        self.since = None
