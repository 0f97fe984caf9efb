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
from typing import Iterator, Mapping

from .base import Destination

BUILT_IN = {
    "iterable": "dinsync.destinations.iterable:IterableDestination",
    "attentive": "dinsync.destinations.attentive:AttentiveDestination",
    "attio": "dinsync.destinations.attio:AttioDestination",
    "splio": "dinsync.destinations.splio:SplioDestination",
}


class PluginError(Exception):
    """A destination plugin that cannot be loaded (a configuration error, not a crash)."""

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.hint = hint


@lru_cache(maxsize=1)
def _plugins() -> tuple[type[Destination], ...]:
    found: list[type[Destination]] = []
    from importlib.metadata import entry_points

    for ep in entry_points(group="dinsync.destinations"):
        dist = f" of package {ep.dist.name}" if getattr(ep, "dist", None) else ""
        try:
            found.append(ep.load())
        except Exception as exc:  # the plugin's own import failed
            raise PluginError(f"destination plugin {ep.value} (entry point {ep.name!r}{dist}) cannot be loaded: "
                              f"{type(exc).__name__}: {exc}",
                              "fix or uninstall that package (dinsync loads every installed destination "
                              "plugin when dinsync.yml names a type that is not built in)") from exc
    for module in filter(None, (m.strip() for m in os.environ.get("DINSYNC_DESTINATION_MODULES", "").split(","))):
        where = f"destination plugin module {module} (DINSYNC_DESTINATION_MODULES)"
        try:
            destinations = importlib.import_module(module).DESTINATIONS
        except AttributeError:
            raise PluginError(f"{where} has no DESTINATIONS list",
                              "list its Destination subclasses in a module-level DESTINATIONS") from None
        except Exception as exc:
            raise PluginError(f"{where} cannot be imported: {type(exc).__name__}: {exc}",
                              "check the module name and that its folder is on PYTHONPATH") from exc
        found.extend(destinations)
    return tuple(found)


def plugin_at_fault(exc: BaseException) -> str | None:
    """`destination plugin NAME (module.Class)` when a loaded plugin's code raised `exc` (the
    innermost frame of its traceback in a plugin's package), else None: an unexpected error then
    names who to ask, not just `ValueError: ...` with every installed plugin a suspect."""
    if not _plugins.cache_info().currsize:
        return None  # no plugin loaded
    try:
        plugins = [cls for cls in _plugins() if isinstance(cls, type)]
    except PluginError:
        return None
    packages = {cls.__module__.partition(".")[0]: cls for cls in plugins}
    found = None
    tb = exc.__traceback__
    while tb is not None:
        cls = packages.get(str(tb.tb_frame.f_globals.get("__name__", "")).partition(".")[0])
        found = cls or found
        tb = tb.tb_next
    if found is None:
        return None
    return f"destination plugin {getattr(found, 'type_name', '') or found.__name__} ({_qualname(found)})"


def describe_error(exc: BaseException) -> str:
    """`Type: message` of an unexpected error, said to be a destination plugin's when its code raised it."""
    text = f"{type(exc).__name__}: {exc}"
    plugin = plugin_at_fault(exc)
    return f"{plugin} raised {text}" if plugin else text


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class Registry(Mapping[str, type[Destination]]):
    """Destination types by name, imported on first use: a run loads only the platforms its
    project names (and looks for plugins only when a name is not built in, or all are listed)."""

    def __init__(self) -> None:
        self._loaded: dict[str, type[Destination]] = {}

    def _plugin_types(self) -> dict[str, type[Destination]]:
        types = {}
        for cls in _plugins():
            if not (isinstance(cls, type) and issubclass(cls, Destination)) or not cls.type_name:
                raise PluginError(f"destination plugin {cls!r} is not a Destination subclass with a type_name",
                                  "subclass dinsync.destinations.base.Destination and set type_name")
            if cls.type_name in BUILT_IN:  # plugins cannot replace a built-in type: said, not ignored
                raise PluginError(f"destination plugin {_qualname(cls)} declares type_name {cls.type_name!r}, "
                                  "a built-in destination type: a plugin cannot replace it",
                                  "give the plugin's class another type_name (and use it as `type:` in dinsync.yml)")
            other = types.get(cls.type_name)
            if other is not None and other is not cls:
                raise PluginError(f"destination plugins {_qualname(other)} and {_qualname(cls)} both declare "
                                  f"type_name {cls.type_name!r}",
                                  "uninstall one of them or give one another type_name")
            types[cls.type_name] = cls
        return types

    def __getitem__(self, name: str) -> type[Destination]:
        if name not in self._loaded:
            if name in BUILT_IN:
                module, _, attr = BUILT_IN[name].partition(":")
                self._loaded[name] = getattr(importlib.import_module(module), attr)
            else:
                self._loaded[name] = self._plugin_types()[name]  # KeyError: unknown type
        return self._loaded[name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in BUILT_IN or name in self._plugin_types())

    def __iter__(self) -> Iterator[str]:
        return iter([*BUILT_IN, *(n for n in self._plugin_types() if n not in BUILT_IN)])

    def __len__(self) -> int:
        return len(list(iter(self)))


def registry() -> Registry:
    return Registry()
