"""What the engine does between planning and committing, for tests that commit a plan's keys."""
from __future__ import annotations


def stream_if_lazy(planner) -> list[str] | None:
    """Stream the plan's sendable rows when the plan is a first plan that is not written
    (Capabilities.lazy_first_plan), as the engine does before any commit: its commits take what
    the stream carried, and it is streamed once. Returns the keys streamed (None for other plans,
    left unread so that their commits look keys up in the plan table)."""
    if not planner.lazy:
        return None
    return [k for batch in planner.stream_sendable() for k in batch.column("_key").to_pylist()]
