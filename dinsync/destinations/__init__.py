"""Destination platforms, looked up by the `type` in dinsync.yml.

Besides the built-in platforms, a destination may come from another package: through the
`dinsync.destinations` entry-point group (each entry point names a `Destination` subclass), or
from the modules listed in `DINSYNC_DESTINATION_MODULES` (comma-separated; each module's
`DESTINATIONS` list is registered). Plugins cannot replace a built-in type.
"""
from __future__ import annotations

import importlib
import os
from functools import lru_cache

from .base import Destination

BUILT_IN = {
    "iterable": "dinsync.destinations.iterable:IterableDestination",
    "attentive": "dinsync.destinations.attentive:AttentiveDestination",
    "attio": "dinsync.destinations.attio:AttioDestination",
    "splio": "dinsync.destinations.splio:SplioDestination",
}


@lru_cache(maxsize=1)
def _plugins() -> tuple[type[Destination], ...]:
    found: list[type[Destination]] = []
    from importlib.metadata import entry_points

    for ep in entry_points(group="dinsync.destinations"):
        found.append(ep.load())
    for module in filter(None, (m.strip() for m in os.environ.get("DINSYNC_DESTINATION_MODULES", "").split(","))):
        found.extend(importlib.import_module(module).DESTINATIONS)
    return tuple(found)


def registry() -> dict[str, type[Destination]]:
    types: dict[str, type[Destination]] = {}
    for cls in _plugins():
        if not (isinstance(cls, type) and issubclass(cls, Destination)) or not cls.type_name:
            raise TypeError(f"{cls!r} is not a Destination subclass with a type_name")
        types[cls.type_name] = cls
    for name, target in BUILT_IN.items():
        module, _, attr = target.partition(":")
        types[name] = getattr(importlib.import_module(module), attr)
    return types
