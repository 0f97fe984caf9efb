"""Splio's v3 data API: JWT authentication, the contact writes and the reading of their answers.

* `POST /authenticate {"api_key"}` -> `{"token": JWT}`, sent as `Authorization: Bearer`. The token
  is fetched once and renewed before it expires: at the JWT's `exp` minus a margin, and at the
  latest after `token_max_age_seconds` (default 50 minutes: Splio's docs give the lifetime as both
  1 h and 24 h, and recommend authenticating every 50 minutes). A 401 on a token that worked
  before means it expired early: it is dropped and the request retried with a new one; a 401 on a
  token that never worked, a refused API key or a 403 stops the run.
* `POST /data/contacts/bulk` creates up to 1,000 contacts and answers 207 with one item per
  contact; an item "already exists" is updated with `PATCH` instead. A whole-request 400 (one
  invalid contact makes Splio refuse the batch) names the contact (`error_key`
  `contacts[3].email`, from a base Splio does not document): the contacts it names are sent alone
  (rejected if refused alone) and the others again together (halved if they are refused again);
  an answer naming none is split in halves until the bad contact is alone.
* `PATCH /data/contacts/{email}` updates one contact (404, or Splio's `Contact not found for given
  identifier.` at `id` with another status: not found, never created; 413: its body is too large, for
  Splio or a proxy before it: rejected, as a bulk of that one contact is).
* A 400 / 422 / 404 is Splio's word about the contact only when its body is Splio's error envelope
  (`{"status", "errors": [...]}`): an HTML page, an empty body or a gateway's `{"message"}` (Kong's
  "no Route matched", a proxy's 400 page) fails the rows, which the next run sends again, instead
  of parking them or reporting them not found.
* Limits: 20 requests/s on the contact endpoints, 10/s on the others, per client IP; a 429 carries
  `rateLimit-reset` (seconds) and no Retry-After; the shared sender honours it (and a proxy's
  Retry-After, in seconds or as an HTTP date), on `POST /authenticate` too (`exception_outcome`).
"""
from __future__ import annotations

import asyncio
import base64
import contextvars
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

import aiohttp
import orjson
from yarl import URL

from ... import redaction
from ...errors import DestinationAuthError, DestinationUnreachableError, DinsyncError
from ...sender import HttpSender
from ...sender.http import GiveUp, read_body, redirect_reason
from ..base import Delivered, Outcome, RecordResult, Request, body_excerpt, email_form

if TYPE_CHECKING:
    from .destination import SplioDestination

EXISTS_REASON = "Splio: the contact already exists (updated with PATCH instead)"
# a 207 item's 4xx codes that say "try again" (timeout, too early, rate limited), not "this contact
# is wrong": failed (sent again by the next run), never parked as rejected
TRANSIENT_ITEM_CODES = frozenset({408, 425, 429})
# members of the contact Splio answers a PATCH with (its GET /data/contacts/{id} shape): one at least
CONTACT_MEMBERS = frozenset({"id", "email", "cellphone", "firstname", "lastname", "language", "creation_date",
                             "custom_fields", "lists"})
TOKEN_MARGIN = 300.0  # seconds before `exp` at which a token is renewed (at most 10% of its lifetime)
_token_generation: contextvars.ContextVar[int | None] = contextvars.ContextVar("splio_token", default=None)


# --- request contexts ------------------------------------------------------------------------
@dataclass
class BulkContext:
    """A bulk create: emails as sent -> keys, and each contact's fields for the PATCH fallback."""

    id_to_key: dict[str, str]
    fields: dict[str, tuple[str, str]]  # key -> (email as sent, fields JSON members)
    existing: set[str] = field(default_factory=set)


class PatchContext:
    """A per-contact PATCH."""


PATCH = PatchContext()


@dataclass
class ReadContext:
    """A GET whose JSON answer the destination keeps (`data`). `needs`: the member Splio's answer
    holds as a list (the fields list's `elements`): a JSON object without it is not Splio's answer
    (a gateway's `{}` read as "no fields" failed the run as a configuration error)."""

    what: str
    data: Any = None
    needs: str | None = None
    item: Callable[[Any], bool] | None = None  # what each item of that list must be (else: not Splio's)

    def answered(self, data: Any) -> bool:
        if not isinstance(data, dict) or self.needs is None:
            return isinstance(data, dict)
        items = data.get(self.needs)
        return isinstance(items, list) and (self.item is None or all(self.item(i) for i in items))


def field_element(element: Any) -> bool:
    """Whether an item of the fields list is a field as Splio lists one: an object whose `id` is a
    number (or its digits), with a text `name` and a scalar `is_system`."""
    if not isinstance(element, dict) or not isinstance(element.get("name"), str) \
            or not isinstance(element.get("is_system"), (bool, int, str, type(None))):
        return False
    ident = element.get("id")
    return (type(ident) is int) or (isinstance(ident, str) and ident.isdigit())


# --- answers ---------------------------------------------------------------------------------
def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None


def is_splio_error(body: bytes) -> bool:
    """Whether `body` is Splio's error envelope `{"status": ..., "errors": [...]}` (not a proxy's or a
    gateway's page): only then does a 400 / 404 speak about the contact itself."""
    data = _json(body)
    return isinstance(data, dict) and isinstance(data.get("errors"), list)


def _not_splio(key: str, status: int, body: bytes) -> RecordResult:
    return RecordResult(key, "failed", f"{describe(status, body)} (not Splio's error envelope: a proxy or gateway "
                                       "answered; sent again next run)")


def _describe_error(status: int, e: dict) -> str:
    text = f"Splio HTTP {status}"
    if e.get("error"):
        text += f" {e['error']}"
    if e.get("error_key"):
        text += f" at {e['error_key']}"
    if e.get("error_description"):
        text += f": {e['error_description']}"
    return text


def describe(status: int, body: bytes) -> str:
    """`Splio HTTP 400 wrong_email at contacts[3].email: ...` from Splio's error envelope."""
    data = _json(body)
    text = f"Splio HTTP {status}"
    errors = data.get("errors") if isinstance(data, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        text = _describe_error(status, errors[0])
    elif isinstance(data, dict) and data.get("message"):
        text += f": {data['message']}"
    elif body.strip():
        text += ": " + body_excerpt(body, 1000, chars=200)
    return text


def jwt_lifetime(token: str) -> float | None:
    """Seconds from `iat` to `exp` in the JWT's (unverified) payload, if both are there."""
    try:
        payload = token.split(".")[1]
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        life = float(claims["exp"]) - float(claims.get("iat", time.time()))
    except (IndexError, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        return None
    return life if life > 0 else None


class Tokens:
    """The current JWT, its renewal time and whether it has worked yet."""

    def __init__(self, max_age: float):
        self.max_age = max_age
        self.token: str | None = None
        self.generation = 0
        self.renew_at = 0.0
        self.confirmed = False
        self.issued = 0

    def store(self, token: str, now: float) -> None:
        redaction.register_session(token)  # a secret from now on (the latest tokens: see redaction)
        life = jwt_lifetime(token)
        ttl = self.max_age if life is None else min(self.max_age, life - min(TOKEN_MARGIN, life * 0.1))
        self.token, self.renew_at, self.confirmed = token, now + max(1.0, ttl), False
        self.generation += 1
        self.issued += 1

    def fresh(self, now: float) -> bool:
        return self.token is not None and now < self.renew_at

    def answered(self, generation: int | None) -> None:
        if generation == self.generation:
            self.confirmed = True

    def refused(self, generation: int | None) -> bool:
        """A 401 for a request sent with token `generation`: True when retrying with a new token
        makes sense (the token was replaced meanwhile, or it worked before and has expired)."""
        if generation is None:
            return False
        if generation != self.generation:
            return True
        if self.confirmed:
            self.token = None
            return True
        return False


def parse_answer(request: Request, status: int, body: bytes, tokens: Tokens,
                 custom_ids: Mapping[str, int] | None = None) -> Outcome:
    """What a Splio answer means for the records of `request` (429 / 5xx are the sender's).
    `custom_ids`: the sync's custom fields' ids by name, to name a custom field Splio refuses."""
    generation = _token_generation.get()
    if status == 401:
        if tokens.refused(generation):
            return Outcome("retry", reason="Splio: the API token expired (HTTP 401); authenticating again",
                           retry_after=0.0)
        return Outcome("fatal", reason=f"Splio refused the API token ({describe(status, body)}): check api_key")
    if status == 403:
        return Outcome("fatal", reason=f"Splio refused access ({describe(status, body)}): the API user of this key "
                                       "may lack the rights to read fields and write contacts")
    tokens.answered(generation)
    ctx = request.context
    if isinstance(ctx, ReadContext):
        data = _json(body)
        if status == 200 and ctx.answered(data):
            ctx.data = data
            return Outcome("done")
        if 200 <= status < 300:  # a proxy's or a portal's page: a glitch of one answer, read again
            return Outcome("retry", reason=f"reading {ctx.what}: {describe(status, body)} (not Splio's answer)")
        return Outcome("done", [RecordResult(k, "failed", f"reading {ctx.what}: {describe(status, body)}")
                                for k in request.keys])
    if isinstance(ctx, BulkContext):
        if 200 <= status < 300:
            data = _json(body)
            if not (isinstance(data, dict) and isinstance(data.get("items"), list)):
                # no items (a proxy's or a portal's page, an empty body): sent again; a create Splio
                # did apply answers "already exists" then, and its contacts are patched
                return Outcome("retry", reason=f"{describe(status, body)}: Splio's bulk answer has no items")
            return Outcome("done", _bulk_items(request, ctx, data, custom_ids))
        if status == 413 or (status in (400, 422) and is_splio_error(body)):
            # one bad contact refuses the whole batch: those the errors name are sent alone
            return Outcome("split", reason=describe(status, body), suspects=_named_contacts(request, body),
                           field=_named_field(request, body, custom_ids))
        if status in (400, 422):
            return Outcome("done", [_not_splio(k, status, body) for k in request.keys])
        return Outcome("done", [RecordResult(k, "failed", describe(status, body)) for k in request.keys])
    # a PATCH of one contact
    key = request.keys[0]
    if 200 <= status < 300 and not _patch_answer(status, body):  # a portal's page, not Splio's: sent again
        return Outcome("retry", reason=f"{describe(status, body)} (not Splio's answer to a PATCH)")
    if 200 <= status < 300:
        return Outcome("done")
    if status == 413:  # its body is too large, whoever says so: the same PATCH is refused again (as a bulk of one)
        return Outcome("done", [RecordResult(key, "rejected", describe(status, body))])
    if status in (400, 404, 422) and not is_splio_error(body):
        return Outcome("done", [_not_splio(key, status, body)])
    if status == 404 or contact_missing(body):
        return Outcome("done", [RecordResult(key, "not_found", "Splio: no contact with this email (not created: "
                                                                "update mode, or a changed row whose contact was "
                                                                "deleted in Splio)")])
    if status in (400, 422):
        return Outcome("done", [RecordResult(key, "rejected", describe(status, body),
                                             _patched_field(request, body, custom_ids))])
    return Outcome("done", [RecordResult(key, "failed", describe(status, body))])


def contact_missing(body: bytes) -> bool:
    """Whether Splio's envelope says the contact a PATCH names does not exist: `Contact not found for
    given identifier.` at error_key `id` (the path's identifier), documented with a 404 for the
    contact's sub-resources; for PATCH neither status nor body is listed, so a 400 or 422 saying so
    is read the same: not_found (sent again next run), not a rejection parked until the row changes."""
    data = _json(body)
    errors = data.get("errors") if isinstance(data, dict) else None
    return any(isinstance(e, dict) and e.get("error_key") == "id"
               and "not found" in str(e.get("error_description") or "").lower() for e in errors or ())


def _patch_answer(status: int, body: bytes) -> bool:
    """Whether a 2xx is Splio's answer to a PATCH: the contact it edited (a JSON object holding a
    contact's members; Splio documents no other answer, a 204 neither). Anything else (an empty 200
    or 204, JSON cut short or unreadable, `null`, `{}`, `{"message": "ok"}`, a proxy's or a portal's
    page) may come from something between dinsync and Splio that never passed the PATCH on: taken for
    an acknowledgement, the row entered the snapshot with values Splio never got, and no later run
    sent them (it looked unchanged)."""
    data = _json(body)
    # (a gateway's `{"message": "ok"}` or `{"status": "ok"}` is a JSON object too, but no contact)
    return isinstance(data, dict) and not CONTACT_MEMBERS.isdisjoint(data)


_CONTACT_AT = re.compile(r"contacts\[(\d+)\](?:\.([a-z_]+)$)?")
_CUSTOM_AT = re.compile(r"(?:contacts\[(\d+)\]\.)?custom_fields\[(\d+)\]")
# Splio's words for a refused custom field ("Custom field with id 5 and name ltv must be of type
# double.", "Custom field not found for id 145."): a 207 item names it so only
_CUSTOM_ID_IN = re.compile(r"\bCustom field (?:with id|not found for id) (\d+)\b")


def _first_error_key(body: bytes) -> str:
    """The `error_key` of the first error in Splio's envelope (`contacts[0].language`), or ""."""
    data = _json(body)
    errors = data.get("errors") if isinstance(data, dict) else None
    e = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    return str(e.get("error_key") or "")


def _named_field(request: Request, body: bytes, custom_ids: Mapping[str, int] | None) -> str | None:
    """The contact field the first error names (`contacts[0].language` -> language), if any: kept
    with the rejection of a contact refused alone."""
    name = _first_error_key(body)
    m = _CONTACT_AT.match(name)
    if m is not None and m.group(2) not in (None, "custom_fields"):
        return m.group(2)
    # only a contact refused alone keeps the field (a batch is split): its request is read then,
    # not each half of a 1,000-contact batch on the way down
    return _custom_field(request, name, custom_ids) if len(request.keys) == 1 else None


def _patched_field(request: Request, body: bytes, custom_ids: Mapping[str, int] | None) -> str | None:
    """The contact field a refused PATCH's first error names (`language`), when the PATCH sent it:
    kept with its rejection."""
    sent, name = _json(request.body or b""), _first_error_key(body)
    if isinstance(sent, dict) and name in sent and name != "custom_fields":
        return name
    return _custom_field(request, name, custom_ids)


def _custom_field_in(text: str, custom_ids: Mapping[str, int] | None) -> str | None:
    """The sync's custom field a refusal's text names by id (`_CUSTOM_ID_IN`), if any."""
    m = _CUSTOM_ID_IN.search(text) if custom_ids else None
    return None if m is None else next((n for n, i in custom_ids.items() if i == int(m.group(1))), None)


def _custom_field(request: Request, error_key: str, custom_ids: Mapping[str, int] | None) -> str | None:
    """The custom field an error names by its position (`contacts[0].custom_fields[1].value`,
    `custom_fields[1].value` of a PATCH): the id the request sent there, by the sync's name for it.
    Read only for a refusal (the request's body is parsed again then)."""
    m = _CUSTOM_AT.match(error_key)
    if m is None or not custom_ids:
        return None
    sent = _json(request.body or b"")
    if m.group(1) is not None:
        contacts = sent.get("contacts") if isinstance(sent, dict) else None
        at = int(m.group(1))
        sent = contacts[at] if isinstance(contacts, list) and at < len(contacts) else None
    items = sent.get("custom_fields") if isinstance(sent, dict) else None
    at = int(m.group(2))
    item = items[at] if isinstance(items, list) and at < len(items) else None
    field_id = item.get("id") if isinstance(item, dict) else None
    if type(field_id) is not int:
        return None
    return next((name for name, i in custom_ids.items() if i == field_id), None)


def _named_contacts(request: Request, body: bytes) -> list[str]:
    """The keys of the contacts a refused bulk's errors name by position (`contacts[3].email`).
    Suspects, not culprits: whether Splio counts from 0 is not documented (its examples say
    `contacts[1]` without saying of what), so each is sent alone and only its own refusal (whose
    error then names it for sure) rejects it; a wrong guess costs one request, not a parked row."""
    data = _json(body)
    errors = data.get("errors") if isinstance(data, dict) else None
    named: list[str] = []
    for e in errors if isinstance(errors, list) else ():
        m = _CONTACT_AT.match(str(e.get("error_key") or "")) if isinstance(e, dict) else None
        if m is not None and int(m.group(1)) < len(request.keys):
            named.append(request.keys[int(m.group(1))])
    return list(dict.fromkeys(named))


def same_address(named: Any, key: str) -> bool:
    """Whether a bulk item's `contact_id` is `key` written another way (Splio may give the domain
    in punycode, another Unicode form or case): that contact's, never another's."""
    return isinstance(named, str) and email_form(named.strip()) == email_form(key.strip())


def _bulk_items(request: Request, ctx: BulkContext, data: Any,
                custom_ids: Mapping[str, int] | None = None) -> list[RecordResult]:
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return [RecordResult(k, "failed", "Splio's bulk answer has no items") for k in request.keys]
    wanted = set(request.keys)
    positional = len(items) == len(request.keys)
    results: dict[str, RecordResult] = {}
    torn: set[str] = set()  # contacts the answer gave two different results: failed, whatever either said
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        contact = item.get("contact_id")
        key = None
        if isinstance(contact, str):
            key = ctx.id_to_key.get(contact, contact)
            if key not in wanted:
                key = ctx.id_to_key.get(contact.lower(), contact.lower())
        if positional and (key is None or key not in wanted and same_address(contact, request.keys[i])):
            # an item without a name, or naming the contact at its position in another spelling (an
            # item naming another contact says nothing of ours)
            key = request.keys[i]
        if key not in wanted or key in torn:
            continue
        earlier = results.get(key)
        code = item.get("code")
        if isinstance(code, str) and code.strip().isdigit():  # (Splio's examples give a number; read its digits too)
            code = int(code)
        text = str(item.get("description") or "")
        if type(code) is int and 200 <= code < 300:
            results[key] = RecordResult(key, "ok")
        elif code == 400 and "already exists" in text:
            ctx.existing.add(key)
            results[key] = RecordResult(key, "failed", EXISTS_REASON)
        elif type(code) is int and 400 <= code < 500 and code not in TRANSIENT_ITEM_CODES:
            results[key] = RecordResult(key, "rejected", f"Splio HTTP {code}: {text}".rstrip(": "),
                                        _custom_field_in(text, custom_ids))
        else:
            results[key] = RecordResult(key, "failed", f"Splio item status {code}: {text}".rstrip(": "))
        if earlier is not None and (earlier.status, earlier.reason) != (results[key].status, results[key].reason):
            torn.add(key)
            ctx.existing.discard(key)
            results[key] = RecordResult(key, "failed", "Splio's bulk answer gave this contact two different results")
    for key in wanted - results.keys():
        results[key] = RecordResult(key, "failed", "no result for this contact in Splio's bulk answer")
    return list(results.values())


# --- the transport -------------------------------------------------------------------------------
class SplioApiSender(HttpSender):
    """The shared HTTP sender plus Splio's JWT and the bulk -> PATCH fallback."""

    def __init__(self, destination: "SplioDestination", api_key: str, tokens: Tokens, **kwargs: Any):
        super().__init__(destination, **kwargs)
        self._api_key = api_key
        self.tokens = tokens
        self._auth_lock = asyncio.Lock()
        self.patch_fallbacks = 0

    async def bearer(self) -> dict[str, str]:
        """`Authorization` header with a valid token (authenticating first when needed)."""
        if not self.tokens.fresh(self.clock.now()):
            async with self._auth_lock:
                if not self.tokens.fresh(self.clock.now()):
                    await self._authenticate()
        _token_generation.set(self.tokens.generation)
        return {"Authorization": f"Bearer {self.tokens.token}"}

    async def _authenticate(self) -> None:
        """One `POST /authenticate`. A refused key raises DestinationAuthError; a transient failure
        raises a ClientError, which the sender retries like any request."""
        if self._session is None:
            raise RuntimeError("SplioApiSender used outside `async with`")
        await self.limiter("other").acquire()
        url = URL(self.destination.base_url + "/authenticate", encoded=True)
        async with self._session.request("POST", url, data=orjson.dumps({"api_key": self._api_key}),
                                         headers={"Content-Type": "application/json"}, allow_redirects=False,
                                         **self._proxy(url)) as resp:
            body = await read_body(resp)
            status = resp.status
        if 300 <= status < 400:  # the key is in the body: never posted again to where Location points
            raise GiveUp(f"POST /authenticate: {self.redact(redirect_reason(status, resp.headers))}")
        data = _json(body)
        if status == 200 and isinstance(data, dict) and isinstance(data.get("token"), str) and data["token"]:
            self.tokens.store(data["token"], self.clock.now())
            return
        if status in (400, 401, 403):
            raise DestinationAuthError(
                f"splio: Splio refused the API key ({self.redact(describe(status, body))})",
                hint="check api_key: an API key of the universe (Users > Users API in Splio's admin)")
        raise aiohttp.ClientResponseError(resp.request_info, (), status=status, headers=resp.headers,
                                          message=f"POST /authenticate: {self.redact(describe(status, body))}")

    def exception_outcome(self, request: Request, exc: BaseException) -> Outcome:
        """A 429 of `POST /authenticate` (raised by `_authenticate` while the request's headers are
        built) is throttling like any other: the wait Splio (`rateLimit-reset`) or a proxy
        (`Retry-After`, seconds or HTTP date) asks for is honoured, and authentication pauses; so is
        the Retry-After of a 408 or 5xx answered to it."""
        outcome = super().exception_outcome(request, exc)
        if isinstance(exc, aiohttp.ClientResponseError) and (exc.status in (408, 429) or exc.status >= 500):
            # (a 503's Retry-After too: "unavailable for that long", RFC 9110; it was asked again
            # after the short backoff)
            hint = self.retry_after(exc.headers or {})
            if hint is not None:  # (one longer than a run waits stops sending: HttpSender.deliver)
                self.limiter("other").penalize(min(hint, self.policy.max_retry_after))
            return Outcome("retry", reason=outcome.reason, retry_after=hint, throttled=exc.status == 429)
        return outcome

    async def deliver(self, request: Request) -> Delivered:
        delivered = await super().deliver(request)
        ctx = request.context
        if not isinstance(ctx, BulkContext) or not ctx.existing:
            return delivered
        existing = [p.key for p in delivered.problems if p.reason == EXISTS_REASON and p.key in ctx.existing]
        if not existing:
            return delivered
        self.patch_fallbacks += len(existing)
        rest = [p for p in delivered.problems if not (p.reason == EXISTS_REASON and p.key in ctx.existing)]
        builder = self.destination.patch_request
        answers = await asyncio.gather(*(super(SplioApiSender, self).deliver(builder(k, *ctx.fields[k]))
                                         for k in existing))
        return Delivered(delivered.ok + [k for a in answers for k in a.ok],
                         rest + [p for a in answers for p in a.problems])

    async def read(self, path: str, what: str, needs: str | None = None,
                   item: Callable[[Any], bool] | None = None) -> dict:
        """GET a JSON document (fields list, unique key) through the limits, retries and token;
        `needs`: the list its answer must hold, `item`: what each of its items must be (see ReadContext)."""
        ctx = ReadContext(what, needs=needs, item=item)
        delivered = await super().deliver(Request("other", "GET", path, None, [what], context=ctx))
        if delivered.problems or ctx.data is None:
            reason = delivered.problems[0].reason if delivered.problems else "no answer"
            # retried to the end without an answer (5xx, resets): nothing is known wrong
            failed = bool(delivered.problems) and delivered.problems[0].status == "failed"
            raise (DestinationUnreachableError if failed else DinsyncError)(
                f"Splio: could not read {what}: {reason}",
                               hint="check base_url and that the API user may read the universe's fields")
        return ctx.data
