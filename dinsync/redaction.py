"""One process-wide redactor: every text that leaves the process goes through `redact`.

Secret values are registered once known: the loader registers every value it substitutes for
`${env:NAME}` in dinsync.yml and every secret setting of the validated configuration; the engine
and the sender register what a destination reports as secret (e.g. a token fetched mid-run).
`redact(text)` replaces each registered value, and the forms it takes in URLs, JSON, Python
reprs and HTML, by `***`. Values shorter than MIN_CHARS are not registered: masking "us" or "8" would
garble every message and hide nothing.

A secret registered with `partial=True` (a credential: an API key, a password, a token) is also
masked where only its start appears, from its first PREFIX_CHARS characters on: a platform that
answers "invalid key sk_live_9f3a7c21..." echoes a prefix of the key, which matches no whole form.
Only token-like values (no whitespace, no `://`) are masked so: a URL's or a DSN's start
(`https://hooks.slack.com/`, `host=127.0.0.1`) is not secret, and masking it would garble every
message naming the host.

    from dinsync import redaction
    redaction.register(api_key)
    safe = redaction.redact(message)
"""
from __future__ import annotations

import html
import json
import re
import threading
from typing import Any, Iterable, overload
from urllib.parse import quote, quote_plus

MASK = "***"
MIN_CHARS = 4  # shortest value registered as a secret
PREFIX_CHARS = 8  # a partial secret's start this long (or longer) is masked (see the docstring)

_lock = threading.Lock()
_values: set[str] = set()
_partial: set[str] = set()  # values whose prefixes are masked too
_prefixes: dict[str, list[str]] = {}  # a form's first PREFIX_CHARS characters -> forms starting so
_pattern: re.Pattern[str] | None = None  # rebuilt when a value is registered; read without the lock
_longest = 0  # characters of the longest form of a registered value
# Credentials obtained at run time (Splio's API token: one a run) are kept registered SESSION_KEEP
# at a time, newest last: a long-running `serve` fetched one a run, and the pattern was rebuilt
# from every one it had ever seen (after 1,000 runs, 0.3 s a registration, and growing).
SESSION_KEEP = 64
_session: list[str] = []


def forms(value: str) -> set[str]:
    """The texts `value` may appear as: itself, URL-escaped, JSON-escaped (also with `/` as `\\/`, as
    PHP's json_encode writes it), inside a repr, and HTML-escaped (Slack's messages escape `&`, `<`
    and `>`)."""
    in_json = {json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    out = {value, quote(value), quote(value, safe=""), quote_plus(value), repr(value)[1:-1],
           html.escape(value, quote=False), html.escape(value), *in_json, *(j.replace("/", "\\/") for j in in_json)}
    return {f for f in out if f}


def token_like(value: str) -> bool:
    """Whether a partial `value` is masked (see the module's docstring): no whitespace, no `://`."""
    return len(value) > PREFIX_CHARS and "://" not in value and not any(c.isspace() for c in value)


def register(*values: str | None, min_chars: int = MIN_CHARS, partial: bool = False) -> None:
    """Treat each value (at least `min_chars` long) as a secret from now on, in this process;
    with `partial`, its prefixes too (credentials, see the module's docstring)."""
    kept = {v for v in values if isinstance(v, str) and len(v) >= max(min_chars, 1)}
    new = kept - _values
    new_partial = {v for v in kept if token_like(v)} - _partial if partial else set()
    if _session and not kept.isdisjoint(_session):
        with _lock:  # registered for good now: never forgotten as a run-time value
            _session[:] = [v for v in _session if v not in kept]
    if not new and not new_partial:
        return
    with _lock:
        _values.update(new)
        _partial.update(new_partial)
        _rebuild()


def register_session(value: str | None) -> None:
    """A credential obtained at run time (a token), registered as `register(value, partial=True)`
    does; only the SESSION_KEEP latest of these stay registered (a value also registered otherwise
    stays)."""
    if not isinstance(value, str) or len(value) < MIN_CHARS or value in _values:
        return
    with _lock:
        _values.add(value)
        if token_like(value):
            _partial.add(value)
        _session.append(value)
        for old in _session[:-SESSION_KEEP]:
            _values.discard(old)
            _partial.discard(old)
        del _session[:-SESSION_KEEP]
        _rebuild()


def _rebuild() -> None:
    """The pattern of the registered values (under the lock)."""
    global _pattern, _longest
    texts = set().union(*(forms(v) for v in _values))
    _longest = max(map(len, texts), default=0)
    prefixes: dict[str, set[str]] = {}
    for value in _partial:
        for form in forms(value):
            if len(form) > PREFIX_CHARS:
                prefixes.setdefault(form[:PREFIX_CHARS], set()).add(form)
    _prefixes.clear()
    _prefixes.update({p: sorted(f, key=len, reverse=True) for p, f in prefixes.items()})
    # longest first: a secret that contains another is masked whole; then the prefixes of
    # partial ones (a whole form wins over its own prefix)
    alternatives = sorted(texts, key=len, reverse=True) + sorted(set(_prefixes) - texts)
    _pattern = re.compile("|".join(re.escape(t) for t in alternatives)) if alternatives else None


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
    pattern, prefixes = _pattern, _prefixes
    if pattern is None:
        return text
    if not prefixes:
        return pattern.sub(MASK, text)
    out, pos = [], 0
    while (match := pattern.search(text, pos)) is not None:
        start, end = match.span()
        if match.group(0) in prefixes:  # a partial secret: as far as it goes on as one
            end = max(end, start + max(_common(text, start, form) for form in prefixes[match.group(0)]))
        out += [text[pos:start], MASK]
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _common(text: str, start: int, form: str) -> int:
    """How many characters of `text` from `start` on are the start of `form`."""
    n = 0
    for a, b in zip(text[start:start + len(form)], form):
        if a != b:
            break
        n += 1
    return n


def redact_document(data: Any) -> Any:
    """`data` (dicts, lists, scalars) with each string masked, keys too: for a JSON document,
    masked before it is serialised. Masking the serialised text turned a number that holds a
    secret ("1234", a test database's password) into `***`, which is no JSON."""
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, dict):
        return {redact_document(k): redact_document(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [redact_document(v) for v in data]
    return data


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
        _partial.clear()
        _session.clear()
        _prefixes.clear()
        _pattern = None
        _longest = 0
