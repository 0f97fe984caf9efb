"""Destination platforms, looked up by the `type` in dinsync.yml.

Besides the built-in platforms, a destination may come from another package: through the
`dinsync.destinations` entry-point group (each entry point names a `Destination` subclass), or
from the modules listed in `DINSYNC_DESTINATION_MODULES` (comma-separated; each module's
`DESTINATIONS` list is registered). Plugins cannot replace a built-in type. Only the plugin a
project names is imported (see `_Plugins.find`): one broken package does not stop the others.
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


GROUP = "dinsync.destinations"
LOAD_HINT = "fix or uninstall that package (dinsync loads the destination plugin dinsync.yml names)"


class _Source:
    """Where destination plugins come from: one entry point, one DINSYNC_DESTINATION_MODULES
    module, or an installed package whose entry points cannot be read. Imported on first `load`;
    what goes wrong is kept as its `error` (a PluginError), raised only for the type asked for."""

    def __init__(self, where: str, name: str | None = None, load=None, error: PluginError | None = None,
                 module: bool = False):
        self.where = where
        self.name = name  # an entry point's name: the type it is expected to register
        self.module = module  # a module of DINSYNC_DESTINATION_MODULES (what it declares is unknown until imported)
        self._load = load
        self.error = error
        self.classes: tuple = ()
        self.loaded = load is None

    def load(self) -> "_Source":
        if not self.loaded:
            self.loaded = True
            try:
                self.classes = tuple(self._load())
            except PluginError as exc:
                self.error = exc
        return self

    def problem(self) -> PluginError | None:
        """Its load error, else the first of its classes that is no valid plugin."""
        if self.error is not None:
            return self.error
        for cls in self.classes:
            if not (isinstance(cls, type) and issubclass(cls, Destination)) or not cls.type_name:
                return PluginError(f"destination plugin {cls!r} ({self.where}) is not a Destination subclass "
                                   "with a type_name", "subclass dinsync.destinations.base.Destination and set type_name")
            if cls.type_name in BUILT_IN:  # plugins cannot replace a built-in type: said, not ignored
                return PluginError(f"destination plugin {_qualname(cls)} declares type_name {cls.type_name!r}, "
                                   "a built-in destination type: a plugin cannot replace it",
                                   "give the plugin's class another type_name (and use it as `type:` in dinsync.yml)")
        return None

    def declares(self, name: str) -> list[type[Destination]]:
        return [c for c in self.classes if isinstance(c, type) and getattr(c, "type_name", None) == name]


def _entry_point_source(ep) -> _Source:
    dist = getattr(ep, "dist", None)
    where = f"entry point {ep.name!r}" + (f" of package {dist.name}" if dist is not None and dist.name else "")
    what = f"destination plugin {ep.value} ({where})"

    def load():
        try:
            return [ep.load()]
        except Exception as exc:  # the plugin's own import failed
            raise PluginError(f"{what} cannot be loaded: {type(exc).__name__}: {exc}", LOAD_HINT) from exc

    return _Source(what, ep.name, load)


def _module_source(module: str) -> _Source:
    where = f"destination plugin module {module} (DINSYNC_DESTINATION_MODULES)"

    def load():
        try:
            return list(importlib.import_module(module).DESTINATIONS)
        except AttributeError:
            raise PluginError(f"{where} has no DESTINATIONS list",
                              "list its Destination subclasses in a module-level DESTINATIONS") from None
        except Exception as exc:
            raise PluginError(f"{where} cannot be imported: {type(exc).__name__}: {exc}",
                              "check the module name and that its folder is on PYTHONPATH") from exc

    return _Source(where, None, load, module=True)


def _entry_point_sources() -> list[_Source]:
    """The group's entry points, read package by package (importlib.metadata.entry_points() raises
    for all when one package's entry_points.txt cannot be parsed or decoded): such a package is a
    source of its own, holding its error."""
    from importlib.metadata import distributions

    sources: list[_Source] = []
    seen: set[str] = set()
    for dist in distributions():
        try:  # (read from the folder's name, as importlib.metadata's own dedup does: no METADATA parsed)
            normal = dist._normalized_name or ""
        except Exception:  # (a name neither the folder nor METADATA gives)
            normal = ""
        if normal and normal in seen:  # (the first on sys.path wins, as importlib.metadata has it)
            continue
        seen.add(normal)
        try:
            eps = list(dist.entry_points.select(group=GROUP))
        except Exception as exc:
            if f"[{GROUP}]".encode() not in (_raw_entry_points(dist) or b""):
                continue  # another tool's plugins (or none at all)
            try:
                label = dist.metadata["Name"] or normal
            except Exception:
                label = normal or "?"
            sources.append(_Source(f"package {label}", error=PluginError(
                f"package {label}: its entry points cannot be read ({type(exc).__name__}: {exc})", LOAD_HINT)))
            continue
        sources.extend(_entry_point_source(ep) for ep in eps)
    return sources


def _raw_entry_points(dist) -> bytes | None:
    """A package's entry_points.txt as it is (its text may not even decode)."""
    try:
        return (dist.read_text("entry_points.txt") or "").encode()
    except UnicodeDecodeError:
        info = getattr(dist, "_path", None)  # (a dist-info folder: read its bytes)
        try:
            return (info / "entry_points.txt").read_bytes() if info is not None else None
        except OSError:
            return None
    except Exception:
        return None


class _Plugins:
    """The installed destination plugins, each loaded only when needed (see Registry)."""

    def __init__(self) -> None:
        modules = filter(None, (m.strip() for m in os.environ.get("DINSYNC_DESTINATION_MODULES", "").split(",")))
        self.sources = [*_entry_point_sources(), *map(_module_source, modules)]

    def loaded(self) -> list[type]:
        return [c for s in self.sources if s.loaded for c in s.classes]

    def find(self, name: str) -> type[Destination]:
        """The plugin class of type `name` (KeyError: none). The entry points named `name` and the
        modules are loaded first, the other entry points only if none of those declares it; a
        source that cannot be loaded, or holds a class that is no valid plugin, is an error only
        when it is the one asked for (or, for a module, when no other source declares the type)."""
        first = [s for s in self.sources if s.name == name or s.module]
        rest = [s for s in self.sources if s not in first]
        for group in (first, rest):
            found = [(s, c) for s in group for c in s.load().declares(name)]
            if found:
                break
        classes = list(dict.fromkeys(c for _, c in found))
        if len(classes) > 1:
            raise PluginError(f"destination plugins {_qualname(classes[0])} and {_qualname(classes[1])} both "
                              f"declare type_name {name!r}", "uninstall one of them or give one another type_name")
        if classes:
            problem = found[0][0].problem()
            if problem is not None:
                raise problem
            return classes[0]
        for source in first:  # not found: an entry point of that name, or a module, that cannot be loaded
            if source.problem() is not None:
                raise source.problem()
        raise KeyError(name)

    def types(self) -> dict[str, type[Destination]]:
        """Every valid plugin type (all sources loaded; those with a problem left out, see `broken`)."""
        types: dict[str, type[Destination]] = {}
        for source in self.sources:
            if source.load().problem() is None:
                for cls in source.classes:
                    types.setdefault(cls.type_name, cls)
        return types

    def broken(self) -> list[str]:
        """`where: error` of each source that cannot be loaded or holds an invalid class."""
        out = []
        for source in self.sources:
            problem = source.load().problem()
            if problem is not None:
                text = str(problem)
                out.append(text.replace(" cannot be loaded: ", ": ", 1) if text.startswith(source.where) else text)
        return out


@lru_cache(maxsize=1)
def _plugins() -> _Plugins:
    return _Plugins()


def plugin_at_fault(exc: BaseException) -> str | None:
    """`destination plugin NAME (module.Class)` when a loaded plugin's code raised `exc` (the
    innermost frame of its traceback in a plugin's package), else None: an unexpected error then
    names who to ask, not just `ValueError: ...` with every installed plugin a suspect."""
    if not _plugins.cache_info().currsize:
        return None  # no plugin loaded
    plugins = [cls for cls in _plugins().loaded() if isinstance(cls, type)]
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

    def __getitem__(self, name: str) -> type[Destination]:
        if name not in self._loaded:
            if name in BUILT_IN:
                module, _, attr = BUILT_IN[name].partition(":")
                self._loaded[name] = getattr(importlib.import_module(module), attr)
            else:
                self._loaded[name] = _plugins().find(name)  # KeyError: unknown type
        return self._loaded[name]

    def __contains__(self, name: object) -> bool:
        try:
            return isinstance(name, str) and (name in BUILT_IN or self[name] is not None)
        except KeyError:
            return False

    def __iter__(self) -> Iterator[str]:
        return iter([*BUILT_IN, *(n for n in _plugins().types() if n not in BUILT_IN)])

    def broken(self) -> list[str]:
        """The plugins that cannot be loaded, each with its error (listed beside the types)."""
        return _plugins().broken()

    def __len__(self) -> int:
        return len(list(iter(self)))


def registry() -> Registry:
    return Registry()
