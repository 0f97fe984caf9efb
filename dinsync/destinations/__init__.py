"""Destination platforms, looked up by the `type` in dinsync.yml."""
from __future__ import annotations

from .base import Destination


def registry() -> dict[str, type[Destination]]:
    from .iterable import IterableDestination

    return {cls.type_name: cls for cls in (IterableDestination,)}
