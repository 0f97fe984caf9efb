"""Attio's answers read for what they say about a request: whether a body is Attio's own JSON (an
error envelope, a written record) or someone else's page, and the reasons quoted in rejections.

Kept apart from the destination's flow (destination.py) because every outcome it decides rests on
these readings: a proxy's page must never count as Attio's verdict on a row, nor a portal's 200 as
Attio's acknowledgement.
"""
from __future__ import annotations

import re
from typing import Any

import orjson

from ..base import body_excerpt
from .schema import SCOPES

SCOPE_TEXT = " and ".join(SCOPES)


def read_json(body: bytes) -> Any:
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None


def attio_answer(data: Any) -> bool:
    """Whether an error body is Attio's JSON (its word on the request), not a proxy's page."""
    return isinstance(data, dict) and any(k in data for k in ("status_code", "code", "type"))


def written_record(data: Any) -> bool:
    """Whether a 2xx body is Attio's answer to a write (the assert and the PUT by record id both
    answer `{"data": {"id": {"record_id": ...}, ...}}`): only that acknowledges the row."""
    record = data.get("data") if isinstance(data, dict) else None
    ident = record.get("id") if isinstance(record, dict) else None
    return isinstance(ident, dict) and isinstance(ident.get("record_id"), str) and bool(ident["record_id"])


def record_missing(data: Any) -> bool:
    """Whether Attio's 404 to a write by record id says the record is gone (the spec's example for
    its record endpoints: `Record with ID "…" not found.`; other wordings of it count too), not
    that the object or an attribute is unknown (`Object with slug/ID "people" not found.`,
    `Cannot find attribute with slug/ID "x".`), which no later run can mend."""
    message = data.get("message") if isinstance(data, dict) else None
    if not isinstance(message, str) or data.get("code", "not_found") != "not_found":
        return False
    words = message.lower()
    return "record" in words and "attribute" not in words and not words.startswith("object")


def describe(status: int, data: Any, body: bytes = b"") -> str:
    """Attio's answer in a rejection reason: status, code, message and validation details; for an
    answer that is not Attio's JSON (e.g. a proxy's HTML page), the start of its text."""
    text = f"Attio HTTP {status}"
    if not isinstance(data, dict):
        words = body_excerpt(body, 2000, chars=200)
        return f"{text}: {words}" if words else text
    if data.get("code"):
        text += f" {data['code']}"
    if data.get("message"):
        text += f": {data['message']}"
    details = []
    for issue in data.get("validation_errors") or []:
        if isinstance(issue, dict) and issue.get("message"):
            path = ".".join(str(p) for p in issue.get("path") or [])
            details.append(f"{path}: {issue['message']}" if path else str(issue["message"]))
    if details:
        text += " (" + "; ".join(details[:3]) + ")"
    return text


# how Attio's messages name an attribute (`... attribute with slug "phone_numbers".`), or a select
# option the write sent (`Cannot find select attribute with select option title "platinum".`)
_NAMED_ATTRIBUTE = re.compile(r'attribute with (?:slug|slug/ID|ID) "([^"]+)"')
_OPTION_TITLE = 'select option title "{}"'


def _gave_option(message: str, values: Any) -> bool:
    """Whether an attribute's written values hold the select option an unknown-option message
    quotes. Attio writes the title as it was sent, its own double quotes included (`title ""q"".`),
    so each title written is looked for in the message whole (never the message cut at its quotes:
    a title of a megabyte of quotes would make a million candidates)."""
    titles = [v if isinstance(v, str) else v.get("option") if isinstance(v, dict) else None
              for v in (values if isinstance(values, list) else ())]
    return any(isinstance(t, str) and _OPTION_TITLE.format(t) in message for t in titles)


def named_fields(data: Any, body: bytes | None) -> str | None:
    """The attributes a rejected write sent that Attio's answer names, for the rejection's field:
    through its validation errors' paths (`data.values.<slug>...`) or its message (`attribute with
    slug "<slug>"`, or an unknown select option's title: the attributes the write gave that option).
    Only slugs the request wrote count (an attribute ID, or a message worded otherwise, names none):
    the reason keeps Attio's whole answer anyway."""
    if not isinstance(data, dict) or not body:
        return None
    try:
        written = orjson.loads(body)["data"]["values"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    if not isinstance(written, dict):
        return None
    named = [str(issue["path"][2]) for issue in data.get("validation_errors") or []
             if isinstance(issue, dict) and isinstance(issue.get("path"), list) and len(issue["path"]) > 2
             and issue["path"][:2] == ["data", "values"]]
    if isinstance(data.get("message"), str):
        named += _NAMED_ATTRIBUTE.findall(data["message"])
        if _OPTION_TITLE.format("")[:-1] in data["message"]:
            named += [slug for slug, values in written.items() if _gave_option(data["message"], values)]
    return ", ".join(sorted({n for n in named if n in written})) or None


def missing_reference(status: int, data: Any, body: bytes | None, references: frozenset) -> str | None:
    """The record-reference attributes (of `references`) whose referenced record a rejected write
    did not find: Attio's `value_not_found` for a write that gave one of them a value, naming no
    other attribute (an unknown select option names its attribute: rejected, as it is). None
    otherwise."""
    if status != 400 or not references or not isinstance(data, dict) or data.get("code") != "value_not_found" \
            or not body:
        return None
    try:
        written = orjson.loads(body)["data"]["values"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    sent = sorted(slug for slug in references if isinstance(written, dict) and written.get(slug))
    named = set((named_fields(data, body) or "").split(", ")) - {""}
    if not sent or not named <= set(sent):
        return None
    return ", ".join(sorted(named) or sent)


def auth_reason(status: int, data: Any, body: bytes = b"") -> str:
    """(An answer that is not Attio's JSON, a proxy's or a WAF's page, is quoted: the token may be fine.)"""
    what = "refused the access token" if status == 401 else "refused the request"
    return f"Attio {what} ({describe(status, data, body)}): the token needs the scopes {SCOPE_TEXT}"

