"""One process-wide redactor: every text that leaves the process goes through `redact`.

Secret values are registered once known: the loader registers every value it substitutes for
`${env:NAME}` in dinsync.yml and every secret setting of the validated configuration; the engine
and the sender register what a destination reports as secret (e.g. a token fetched mid-run).
`redact(text)` replaces each registered value, and the forms it takes in URLs, JSON, Python
reprs and HTML, by `***`. Values shorter than MIN_CHARS are not registered: masking "us" or "8" would
garble every message and hide nothing.

    from dinsync import redaction
    redaction.register(api_key)
    safe = redaction.redact(message)
"""
from __future__ import annotations

import html
import json
import re
import threading
from typing import Iterable, overload
from urllib.parse import quote, quote_plus

MASK = "***"
MIN_CHARS = 4  # shortest value registered as a secret

_lock = threading.Lock()
_values: set[str] = set()
_pattern: re.Pattern[str] | None = None  # rebuilt when a value is registered; read without the lock
_longest = 0  # characters of the longest form of a registered value


def forms(value: str) -> set[str]:
    """The texts `value` may appear as: itself, URL-escaped, JSON-escaped, inside a repr, and
    HTML-escaped (Slack's messages escape `&`, `<` and `>`)."""
    out = {value, quote(value), quote(value, safe=""), quote_plus(value),
           json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1], repr(value)[1:-1],
           html.escape(value, quote=False), html.escape(value)}
    return {f for f in out if f}


def register(*values: str | None, min_chars: int = MIN_CHARS) -> None:
    """Treat each value (at least `min_chars` long) as a secret from now on, in this process."""
    global _pattern, _longest
    new = {v for v in values if isinstance(v, str) and len(v) >= max(min_chars, 1)} - _values
    if not new:
        return
    with _lock:
        _values.update(new)
        texts = set().union(*(forms(v) for v in _values))
        _longest = max(map(len, texts))
        # longest first: a secret that contains another is masked whole
        _pattern = re.compile("|".join(re.escape(t) for t in sorted(texts, key=len, reverse=True)))


def register_all(values: Iterable[str | None], min_chars: int = MIN_CHARS) -> None:
    register(*values, min_chars=min_chars)


@overload
def redact(text: None) -> None: ...
@overload
def redact(text: object) -> str: ...
def redact(text):  # noqa: E302 - overloads above
    """`text` (made a str) with every registered secret masked; None stays None."""
    if text is None:
        return None
    text = text if isinstance(text, str) else str(text)
    pattern = _pattern
    return pattern.sub(MASK, text) if pattern is not None else text


def shorten(text: str, chars: int, more: str = "...") -> str:
    """`text` redacted, then cut to at most `chars` characters (the last ones `more` when cut).
    Cut first, a secret at the cut kept its start, which no longer matches it."""
    text = redact(text)
    return text if len(text) <= chars else text[:max(chars - len(more), 0)] + more


def margin() -> int:
    """How many characters past a cut a secret's form may reach: read that many more than kept,
    redact, then cut (see `shorten`)."""
    return _longest


def registered() -> frozenset[str]:
    """The registered values (for tests and diagnostics; never print them)."""
    return frozenset(_values)


def clear() -> None:
    """Forget every registered value (tests)."""
    global _pattern, _longest
    with _lock:
        _values.clear()
        _pattern = None
        _longest = 0
