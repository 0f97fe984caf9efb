"""Which syncs a command acts on: `dinsync sync [NAME...] [--select S] [--exclude S]`.

- No selection: every enabled sync (status: every sync).
- A name selects that sync, even a disabled one (`enabled: false`), with a note saying so:
  naming it is a deliberate act. A glob (`*`, `?`, `[...]`) never selects a disabled sync.
- Every name or pattern must select something (a typo is a configuration error, exit 3).
- `--exclude` (names or globs) removes syncs from the selection; excluding everything leaves
  nothing to do (a note, exit 0).
Items are repeated options and/or comma-separated lists.
"""
from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from .errors import ConfigError, ConfigIssue

GLOB_CHARS = frozenset("*?[")


@dataclass
class Selection:
    names: list[str]
    notes: list[str] = field(default_factory=list)


def split_items(items: Iterable[str] | None) -> list[str]:
    return [p.strip() for item in items or () for p in item.split(",") if p.strip()]


def is_glob(pattern: str) -> bool:
    return any(c in GLOB_CHARS for c in pattern)


def select_syncs(syncs: Mapping[str, Any], select: Iterable[str] | None = None,
                 exclude: Iterable[str] | None = None, *, include_disabled: bool = False) -> Selection:
    """`syncs`: name -> an object with an `enabled` attribute. Raises ConfigError for a name or
    pattern that selects nothing. `include_disabled`: plain selection and globs also take
    disabled syncs (for read-only commands such as `status`)."""
    patterns, excluded = split_items(select), split_items(exclude)
    usable = {n for n, s in syncs.items() if include_disabled or getattr(s, "enabled", True)}
    notes: list[str] = []
    issues: list[ConfigIssue] = []
    if not patterns:
        chosen = set(usable)
    else:
        chosen = set()
        for pattern in patterns:
            if is_glob(pattern):
                hits = {n for n in usable if fnmatch.fnmatchcase(n, pattern)}
                if not hits:
                    disabled = sorted(n for n in syncs if n not in usable and fnmatch.fnmatchcase(n, pattern))
                    hint = (f"it only matches disabled syncs ({', '.join(disabled)}); name one to run it"
                            if disabled else _listing(syncs))
                    issues.append(ConfigIssue(f"--select {pattern} matches no sync", hint=hint))
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
        hits = {n for n in syncs if fnmatch.fnmatchcase(n, pattern)}
        if not hits:
            notes.append(f"--exclude {pattern} matches no sync")
        chosen -= hits
    if not chosen:
        notes.append("nothing to do: no sync is selected" if syncs else "nothing to do: the project has no sync")
    return Selection(sorted(chosen), notes)


def _listing(syncs: Mapping[str, Any]) -> str:
    return f"syncs: {', '.join(sorted(syncs)) or 'none'}"
