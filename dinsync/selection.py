"""Which syncs a command acts on: `dinsync sync [NAME...] [--select S] [--exclude S]`.

- No selection: every enabled sync (status: every sync).
- A name selects that sync, even a disabled one (`enabled: false`), with a note saying so:
  naming it is a deliberate act. A glob (`*`, `?`, `[...]`) never selects a disabled sync.
- dbt-style methods: `tag:NAME` selects the syncs whose sync file lists the tag (`tags: [daily]`)
  or whose model reads a dbt model with that tag; `model:NAME` the syncs of that dinsync model, or
  of a model that reads the dbt model NAME. Their values may be globs (`tag:crm_*`); like globs,
  they never select a disabled sync.
- Every name, pattern or method must select something (a typo is a configuration error, exit 3),
  and so must a selection given at all: an empty one (`--select ""`) is not "no selection".
- `--exclude` (the same forms) removes syncs from the selection; excluding everything leaves
  nothing to do (a note, exit 0).
Items are repeated options and/or comma-separated lists; each item adds to the selection (a union,
unlike dbt's comma, which intersects).
"""
from __future__ import annotations

import difflib
import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from .errors import ConfigError, ConfigIssue

GLOB_CHARS = frozenset("*?[")
METHODS = ("tag", "model")


@dataclass
class Selection:
    names: list[str]
    notes: list[str] = field(default_factory=list)


def split_items(items: Iterable[str] | None) -> list[str]:
    return [p.strip() for item in items or () for p in item.split(",") if p.strip()]


def is_glob(pattern: str) -> bool:
    return any(c in GLOB_CHARS for c in pattern)


def _matches(value: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(value, pattern) if is_glob(pattern) else value == pattern


def sync_tags(sync: Any, models: Mapping[str, Any]) -> set[str]:
    """A sync's tags: its own, and those of the dbt models its model reads."""
    model = models.get(getattr(sync, "model", None))
    return set(getattr(sync, "tags", ()) or ()) | set(getattr(model, "tags", ()) or ())


def _method_hits(method: str, value: str, names: Iterable[str], syncs: Mapping[str, Any],
                 models: Mapping[str, Any]) -> set[str]:
    hits = set()
    for name in names:
        sync = syncs[name]
        if method == "tag":
            ok = any(_matches(t, value) for t in sync_tags(sync, models))
        else:
            model_name = getattr(sync, "model", None) or ""
            dbt_models = getattr(models.get(model_name), "dbt_models", ()) or ()
            ok = _matches(model_name, value) or any(_matches(d, value) for d in dbt_models)
        if ok:
            hits.add(name)
    return hits


def _known(method: str, syncs: Mapping[str, Any], models: Mapping[str, Any]) -> str:
    if method == "tag":
        tags = sorted({t for s in syncs.values() for t in sync_tags(s, models)})
        return _listing(tags, "tags")
    names = {getattr(s, "model", None) for s in syncs.values()} - {None}
    names |= {d for n in names for d in getattr(models.get(n), "dbt_models", ()) or ()}
    return _listing(names, "models")


def select_syncs(syncs: Mapping[str, Any], select: Iterable[str] | None = None,
                 exclude: Iterable[str] | None = None, *, include_disabled: bool = False,
                 models: Mapping[str, Any] | None = None, named: Iterable[str] = ()) -> Selection:
    """`syncs`: name -> an object with `enabled` (and, for methods, `model` and `tags`);
    `models`: model name -> an object with `tags` and `dbt_models`; `named`: those of `select`'s
    items given as the command's arguments, not `--select` (messages name them as written).
    Raises ConfigError for an item that selects nothing. `include_disabled`: plain selection, globs and methods also take
    disabled syncs (for read-only commands such as `status`)."""
    models = models or {}
    select = list(select or ())
    patterns, excluded = split_items(select), split_items(exclude)
    as_arguments = set(split_items(named))
    usable = {n for n, s in syncs.items() if include_disabled or getattr(s, "enabled", True)}
    notes: list[str] = []
    issues: list[ConfigIssue] = []
    if select and not patterns:  # `--select "$SYNCS"` with SYNCS unset: not "no selection", every sync
        raise ConfigError([ConfigIssue("--select names no sync (it is empty)",
                                       hint="name syncs, or leave out --select to run every enabled sync; "
                                            + _listing(syncs))])
    for item in patterns + excluded:
        issue = _check_item(item, syncs)
        if issue is not None:
            issues.append(issue)
    if issues:
        raise ConfigError(issues)
    if not patterns:
        chosen = set(usable)
    else:
        chosen = set()
        for pattern in patterns:
            method, value = _method(pattern)
            if method is not None or is_glob(pattern):
                hits = _hits(pattern, usable, syncs, models)
                if not hits:
                    disabled = sorted(_hits(pattern, set(syncs) - usable, syncs, models))
                    hint = (f"it only matches disabled syncs ({', '.join(disabled)}); name one to run it"
                            if disabled else _known(method, syncs, models) if method else _listing(syncs))
                    said = pattern if pattern in as_arguments else f"--select {pattern}"
                    issues.append(ConfigIssue(f"{said} matches no sync", hint=hint))
                chosen |= hits
            elif pattern in syncs:
                chosen.add(pattern)
                if pattern not in usable:
                    notes.append(f"sync {pattern} is disabled (enabled: false); running it because it was named")
            else:
                close = difflib.get_close_matches(pattern, list(syncs), n=1, cutoff=0.6)
                issues.append(ConfigIssue(f"no sync named {pattern!r}",
                                          hint=(f"did you mean '{close[0]}'? " if close else "") + _listing(syncs)))
    if issues:
        raise ConfigError(issues)
    for pattern in excluded:
        hits = _hits(pattern, set(syncs), syncs, models)
        if not hits:
            notes.append(f"--exclude {pattern} matches no sync")
        chosen -= hits
    if not chosen:
        notes.append("nothing to do: no sync is selected" if syncs else "nothing to do: the project has no sync")
    return Selection(sorted(chosen), notes)


def _method(item: str) -> tuple[str | None, str]:
    if ":" in item:
        method, value = item.split(":", 1)
        return method.strip(), value.strip()
    return None, item


def _check_item(item: str, syncs: Mapping[str, Any]) -> ConfigIssue | None:
    """An item that cannot be read at all: an unknown method, dbt's graph operators."""
    operators = GRAPH_OPERATORS.fullmatch(item)
    if item not in syncs and operators and (operators["before"] or operators["after"]) and operators["core"]:
        core = operators["core"]  # dbt's +tag:daily, 2+model:x, @x, tag:daily+ (read before the method)
        return ConfigIssue(f"graph operators (+, @) are not supported: {item!r}",
                           hint=f"let dbt build the graph (`dbt build --select {item}`), then select "
                                f"here without the operator: `{core}` (model:NAME picks the syncs of a "
                                "dbt model, tag:NAME those of the models' tags)")
    method, value = _method(item)
    if method is not None and method not in METHODS:
        return ConfigIssue(f"unknown selector method {method!r} in {item!r}",
                           hint="use a sync name or glob, tag:NAME or model:NAME")
    if method is not None and not value:
        return ConfigIssue(f"selector {item!r} names nothing", hint=f"write {method}:NAME")
    return None


GRAPH_OPERATORS = re.compile(r"(?P<before>@|\d*\+)?(?P<core>.*?)(?P<after>\+\d*)?")


def _hits(pattern: str, names: set[str], syncs: Mapping[str, Any], models: Mapping[str, Any]) -> set[str]:
    method, value = _method(pattern)
    if method is not None:
        return _method_hits(method, value, names, syncs, models)
    return {n for n in names if fnmatch.fnmatchcase(n, pattern)}


def _listing(names: Iterable[str], what: str = "syncs") -> str:
    from .config.yamlfile import listing

    names = sorted(names)
    return listing(names, what) if names else f"{what}: none"
