"""The REST side of the Splio sandbox: authentication and the contact endpoints of the v3 data API.

Requests pass through: faults (the infrastructure in front) -> JWT check (all but /authenticate)
-> the per-client-IP rate limiter -> validation -> the write. Every answer that went through the
limiter carries `rateLimit-limit`, `rateLimit-remaining` and `rateLimit-reset` (seconds, >= 1).
Errors use Splio's envelope `{"status", "errors": [{"error_key", "error", "error_description"}]}`,
except the 429, which is `{"message": "API rate limit exceeded"}` as documented.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Callable

import orjson
from aiohttp import web

from ..faults import Faults, RateLimiter, run_with_faults
from .contacts import (DATE_FORMAT, FIELD_TYPES, SYSTEM_FIELDS, ContactStore, FieldError, normalize_custom,
                       normalize_email, normalize_system)
from .options import SplioOptions

CONTACT_KEYS = frozenset({"email", "cellphone", "firstname", "lastname", "language", "creation_date", "lists",
                          "custom_fields", "double_optin", "tracking_consent"})
PATCH_KEYS = CONTACT_KEYS | {"key"}
CUSTOM_FIELD_KEYS = frozenset({"id", "name", "value"})  # the Swagger's CustomFields items
LIST_KEYS = frozenset({"id", "name"})  # and its Lists items
SYSTEM_FIELD_LABELS = {"email": "Email", "cellphone": "Cellphone", "firstname": "Firstname",
                       "lastname": "Lastname", "language": "Language", "creation_date": "Creation date"}
_CONTACTS: Any = web.RequestKey("contacts", int) if hasattr(web, "RequestKey") else "dinsync_contacts"


class ApiError(Exception):
    def __init__(self, status: int, error_key: str, error: str, description: str):
        super().__init__(description)
        self.status, self.error_key, self.error, self.description = status, error_key, error, description


def envelope(status: int, error_key: str, error: str, description: str,
             headers: dict[str, str] | None = None) -> web.Response:
    body = {"status": status, "errors": [{"error_key": error_key, "error": error, "error_description": description}]}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json", headers=headers)


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(obj), content_type="application/json")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the sandbox saw it (never headers, so never a key or token)."""

    ts: float
    method: str
    endpoint: str
    status: int | None  # None: the connection was reset instead of answered
    contacts: int | None  # contacts in the body (bulk: the list length)
    fault: str | None


class SplioApi:
    """The HTTP endpoints over a shared ContactStore."""

    def __init__(self, api_keys: list[str], options: SplioOptions, store: ContactStore, faults: Faults):
        self._api_keys = [k.encode() for k in api_keys]
        self._secret = secrets.token_bytes(32)
        self.options = options
        self.store = store
        self.faults = faults
        self.requests: Counter = Counter()  # endpoint -> requests received
        self.statuses: Counter = Counter()  # (endpoint, status) -> answers
        self.responses_429 = 0
        self.tokens_issued = 0
        self.log: deque[LoggedRequest] = deque(maxlen=options.log_size)
        self.time_offset = 0.0  # added to the clock for token expiry (tests: advance_time)
        self.limiter = RateLimiter(options.window)

    def now(self) -> float:
        return time.time() + self.time_offset

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        r = app.router
        r.add_post("/authenticate", self._authenticate, name="authenticate")
        r.add_post("/data/contacts", self._create, name="contacts_create")
        r.add_post("/data/contacts/bulk", self._bulk, name="contacts_bulk")
        r.add_get("/data/contacts/{id:.+}", self._get, name="contacts_get", allow_head=False)
        r.add_patch("/data/contacts/{id:.+}", self._patch, name="contacts_patch")
        r.add_get("/data/fields/contacts", self._fields, name="fields_list", allow_head=False)
        r.add_post("/data/fields", self._create_field, name="fields_create")
        r.add_get("/universes/unique-key", self._unique_key, name="unique_key", allow_head=False)
        return app

    def reset(self) -> None:
        self.requests.clear()
        self.statuses.clear()
        self.responses_429 = 0
        self.tokens_issued = 0
        self.log.clear()
        self.time_offset = 0.0
        self.limiter.clear()

    # ---------------------------------------------------------------- pipeline
    @web.middleware
    async def _middleware(self, request: web.Request, handler) -> web.StreamResponse:
        route = request.match_info.route
        endpoint = route.name if route.resource is not None else None
        if endpoint is None:
            status = getattr(request.match_info, "http_exception", web.HTTPNotFound()).status
            return envelope(status, "route", "not_found" if status == 404 else "wrong_value",
                            "No route found." if status == 404 else "Method not allowed.")
        self.requests[endpoint] += 1

        async def guarded() -> web.StreamResponse:
            return await self._guarded(request, handler, endpoint)

        def throttled(retry_after: float | None) -> web.StreamResponse:
            return self._too_many(retry_after, self._limit(endpoint))

        resp, fault = await run_with_faults(request, endpoint, self.faults, guarded, throttled)
        reset = fault in ("reset", "reset_after_apply")
        if not reset:
            self.statuses[(endpoint, resp.status)] += 1
            if resp.status == 429:
                self.responses_429 += 1
        self.log.append(LoggedRequest(time.time(), request.method, endpoint, None if reset else resp.status,
                                      request.get(_CONTACTS), fault))
        return resp

    async def _guarded(self, request: web.Request, handler, endpoint: str) -> web.StreamResponse:
        if endpoint != "authenticate":
            failure = self._check_token(request.headers.get("Authorization", ""))
            if failure is not None:
                return envelope(401, "authorization", "authentication.failed", failure)
        headers: dict[str, str] = {}
        limit = self._limit(endpoint)
        if limit is not None:
            if self.limiter.window != self.options.window:  # options changed at run time
                self.limiter = RateLimiter(self.options.window, clock=self.limiter.clock)
            key = f"{request.remote}|{self._bucket(endpoint)}"
            wait = self.limiter.acquire(key, limit)
            if wait is not None:
                return self._too_many(wait, limit)
            remaining, reset = self.limiter.usage(key, limit)
            headers = _limit_headers(limit, remaining, reset)
        try:
            if (self.options.require_json_content_type and request.method in ("POST", "PATCH", "PUT")
                    and request.content_type != "application/json"):
                raise ApiError(415, "body", "wrong_value", "The request body must be sent as application/json.")
            resp = await handler(request)
        except ApiError as exc:
            resp = envelope(exc.status, exc.error_key, exc.error, exc.description)
        resp.headers.update(headers)
        return resp

    def _bucket(self, endpoint: str) -> str:
        if endpoint == "contacts_bulk" and not self.options.bulk_shares_contacts_limit:
            return "contacts_bulk"
        return "contacts" if endpoint.startswith("contacts") else endpoint

    def _limit(self, endpoint: str) -> float | None:
        if not self.options.limits:
            return None
        limits = self.options.rate_limits
        bucket = self._bucket(endpoint)
        if bucket in limits:
            return limits[bucket]
        return limits.get("contacts" if bucket.startswith("contacts") else "other")

    def _too_many(self, wait: float | None, limit: float | None) -> web.Response:
        reset = max(1, math.ceil(wait)) if wait is not None else 1
        headers = {"rateLimit-remaining": "0", "rateLimit-reset": str(reset)}
        if limit is not None:
            headers["rateLimit-limit"] = str(int(limit))
        if self.options.retry_after_header:
            headers["Retry-After"] = str(reset)
        return web.Response(status=429, body=orjson.dumps({"message": "API rate limit exceeded"}),
                            content_type="application/json", headers=headers)

    # ---------------------------------------------------------------- tokens (JWT, HS256)
    def issue_token(self) -> str:
        now = self.now()
        exp = now + self.options.token_lifetime
        header = _b64(orjson.dumps({"typ": "JWT", "alg": "HS256"}))
        payload = _b64(orjson.dumps({"iat": int(now), "exp": int(exp) if exp.is_integer() else exp,
                                     "universe": self.options.universe, "jti": secrets.token_hex(8)}))
        signature = _b64(hmac.new(self._secret, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        self.tokens_issued += 1
        return f"{header}.{payload}.{signature}"

    def _check_token(self, authorization: str) -> str | None:
        """None when the token is valid, else the error description."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or token.count(".") != 2:
            return "Authentication failed."
        header, payload, signature = token.strip().split(".")
        expected = _b64(hmac.new(self._secret, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            return "Authentication failed."
        try:
            claims = orjson.loads(_unb64(payload))
        except (ValueError, orjson.JSONDecodeError):
            return "Authentication failed."
        if not isinstance(claims.get("exp"), (int, float)) or claims["exp"] <= self.now():
            return "Authentication failed: the token has expired."
        return None

    # ---------------------------------------------------------------- handlers
    async def _authenticate(self, request: web.Request) -> web.Response:
        doc = await _object(request)
        key = doc.get("api_key")
        if key is None or key == "":
            raise ApiError(400, "api_key", "is_blank", "This value should not be blank.")
        if not isinstance(key, str) or not any(hmac.compare_digest(key.encode(), k) for k in self._api_keys):
            raise ApiError(400, "username", "authentication.failed", "User authentication failed.")
        return _json({"token": self.issue_token()})

    async def _create(self, request: web.Request) -> web.Response:
        doc = await _object(request)
        request[_CONTACTS] = 1
        email, values, custom, lists, creation = self._contact(doc, "")
        if self.store.get(email) is not None:
            raise ApiError(400, "email", "wrong_value", f"Contact with unique key {email} already exists")
        rec = self.store.create(email, values, custom, source="api", creation_date=creation, lists=lists)
        return _json(self._public(rec), 201)

    async def _bulk(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        doc = await _object(request)
        if self.options.reject_unknown_keys and set(doc) - {"contacts"}:
            raise ApiError(400, sorted(set(doc) - {"contacts"})[0], "wrong_value", "Unknown field.")
        contacts = doc.get("contacts")
        if not isinstance(contacts, list):
            raise ApiError(400, "contacts", "wrong_type", "contacts must be an array of contacts.")
        request[_CONTACTS] = len(contacts)
        if not 1 <= len(contacts) <= self.options.max_bulk_contacts:
            raise ApiError(400, "contacts", "wrong_value", "The number of contacts must be between 1 and "
                                                           f"{self.options.max_bulk_contacts}.")
        base = self.options.error_index_base
        parsed = [self._contact(item, f"contacts[{i + base}].") for i, item in enumerate(contacts)]
        items = []
        errors = 0
        for email, values, custom, lists, creation in parsed:
            if self.store.get(email) is not None:
                errors += 1
                items.append({"contact_id": email, "code": 400,
                              "description": f"Contact with unique key {email} already exists"})
                continue
            self.store.create(email, values, custom, source="api", creation_date=creation, lists=lists)
            items.append({"contact_id": email, "code": 201, "description": ""})
        elapsed = int((time.perf_counter() - started) * 1000)
        return _json({"time": elapsed, "errors": errors, "status": None, "items": items}, 207)

    async def _get(self, request: web.Request) -> web.Response:
        rec = self._find(request.match_info["id"], request.query.get("key"))
        return _json(self._public(rec))

    async def _patch(self, request: web.Request) -> web.Response:
        doc = await _object(request)
        request[_CONTACTS] = 1
        key = request.query.get("key", doc.get("key"))
        _, values, custom, lists, creation = self._contact(doc, "", patch=True)
        rec = self._find(request.match_info["id"], key)
        if "email" in doc:
            try:
                email = normalize_email(doc["email"], lowercase=self.options.lowercase_emails)
            except FieldError as exc:
                raise ApiError(400, "email", exc.error, exc.message) from None
            if email != rec["email"]:
                raise ApiError(400, "email", "wrong_contact_key", "The unique key (email) can't be modified.")
        self.store.update(rec, values, custom, source="api", creation_date=creation, lists=lists)
        return _json(self._public(rec))

    async def _fields(self, request: web.Request) -> web.Response:
        if self.options.fields_list_query == "refused":
            if request.query:
                raise ApiError(400, sorted(request.query)[0], "wrong_value", "Unknown query parameter.")
            per_page, page = 10_000, 1
        else:
            per_page = _int_query(request, "per_page", 100, 1, 1000)
            page = _int_query(request, "page_number", 1, 1, None)
        elements = [{"intid": None, "id": 0, "is_system": True, "filling": None, "unique_values": None, "name": name,
                     "translation_key": name, "label": label, "field_key": name}
                    for name, label in SYSTEM_FIELD_LABELS.items()]
        for f in self.store.fields:
            item = {"intid": f.id, "id": f.id, "is_system": False, "filling": None, "unique_values": None,
                    "name": f.name, "translation_key": f.name, "label": f.name, "field_key": f.column}
            if self.options.fields_data_type:
                item["data_type"] = f.type
            elements.append(item)
        start = (page - 1) * per_page
        return _json({"count_element": len(elements), "current_page": page, "per_page": per_page,
                      "sort": {"id": "DESC"}, "elements": elements[start:start + per_page]})

    async def _create_field(self, request: web.Request) -> web.Response:
        doc = await _object(request)
        for name in ("scope", "name", "type"):
            if doc.get(name) in (None, ""):
                raise ApiError(400, name, "is_blank", "This value should not be blank.")
            if not isinstance(doc[name], str):
                raise ApiError(400, name, "wrong_type", f"{name} must be a string.")
        if doc["scope"] != "contacts":
            raise ApiError(400, "scope", "wrong_value", "Only the contacts scope is emulated by this sandbox.")
        if doc["type"] not in FIELD_TYPES:
            raise ApiError(400, "type", "wrong_value", f"type must be one of {', '.join(FIELD_TYPES)}.")
        if doc["name"] in self.store.fields.by_name or doc["name"] in SYSTEM_FIELD_LABELS:
            raise ApiError(400, "name", "wrong_value", f"A field named {doc['name']} already exists.")
        try:
            field = self.store.fields.add(doc["name"], doc["type"])
        except ValueError as exc:
            raise ApiError(400, "name", "wrong_value", str(exc)) from None
        return _json({"id": field.id, "name": field.name, "data_type": field.type}, 201)

    async def _unique_key(self, request: web.Request) -> web.Response:
        return _json({"unique_key": self.options.unique_key})

    # ---------------------------------------------------------------- rules
    def _public(self, rec: dict) -> dict:
        return self.store.public(rec)

    def _find(self, ident: str, key: Any) -> dict:
        if key in (None, "unique_key"):
            rec = self.store.get(ident)
        elif key == "internal_id":
            rec = self.store.by_id.get(int(ident)) if ident.isdigit() else None
        else:
            raise ApiError(400, "key", "wrong_value", "key must be unique_key or internal_id.")
        if rec is None:
            raise ApiError(self.options.unknown_contact_status, "id", "wrong_value",
                           "Contact not found for given identifier.")
        return rec

    def _contact(self, doc: Any, prefix: str, patch: bool = False) -> tuple:
        """(email, system values, custom values by id, lists or None, creation_date or None); raises ApiError."""
        if type(doc) is not dict:
            raise ApiError(400, prefix.rstrip(".") or "body", "wrong_type", "A contact must be a JSON object.")
        allowed = PATCH_KEYS if patch else CONTACT_KEYS
        if self.options.reject_unknown_keys and not doc.keys() <= allowed:
            raise ApiError(400, prefix + sorted(set(doc) - allowed)[0], "wrong_value", "Unknown field.")
        email = None
        if not patch:
            if doc.get("email") in (None, ""):
                if self.options.missing_key_status == 503:
                    raise ApiError(503, "internal_error", "internal_error", "Internal error.")
                raise ApiError(400, prefix + "email", "is_blank", "The unique key email is mandatory.")
            email = self._field(prefix + "email", normalize_email, doc["email"], lowercase=self.options.lowercase_emails)
        values = {name: self._field(prefix + name, normalize_system, name, doc[name])
                  for name in SYSTEM_FIELDS if name in doc}
        creation = doc.get("creation_date")
        if creation is not None:
            creation = self._creation_date(prefix, creation)
        lists = self._lists(prefix, doc["lists"]) if doc.get("lists") is not None else None
        custom = self._custom_fields(prefix, doc.get("custom_fields"))
        if doc.get("double_optin") is not None and not isinstance(doc["double_optin"], dict):
            raise ApiError(400, prefix + "double_optin", "wrong_type", "double_optin must be an object.")
        if doc.get("tracking_consent") is not None and not isinstance(doc["tracking_consent"], list):
            raise ApiError(400, prefix + "tracking_consent", "wrong_type", "tracking_consent must be an array.")
        return email, values, custom, lists, creation

    @staticmethod
    def _field(error_key: str, normalize: Callable[..., str], *args: Any, **kwargs: Any) -> str:
        try:
            return normalize(*args, **kwargs)
        except FieldError as exc:
            raise ApiError(400, error_key, exc.error, exc.message) from None

    @staticmethod
    def _creation_date(prefix: str, value: Any) -> str:
        try:
            if not isinstance(value, str):
                raise ValueError
            time.strptime(value, DATE_FORMAT)
        except ValueError:
            raise ApiError(400, prefix + "creation_date", "wrong_value",
                           "creation_date must be a date at format YYYY-MM-DD HH:MM:SS.") from None
        return value

    def _unknown_item_keys(self, at: str, item: dict, allowed: frozenset[str]) -> None:
        """Keys the Swagger does not give a list or custom field item (`reject_unknown_keys`), refused
        as a contact's unknown keys are: read as absent, `{"id": 3, "value": "x", "field_key": "c3"}`
        passed here and a client sending such items passed every test."""
        if self.options.reject_unknown_keys and not item.keys() <= allowed:
            raise ApiError(400, f"{at}.{sorted(set(item) - allowed)[0]}", "wrong_value", "Unknown field.")

    def _lists(self, prefix: str, value: Any) -> list:
        if not isinstance(value, list):
            raise ApiError(400, prefix + "lists", "wrong_type", "lists must be an array.")
        out = []
        for i, item in enumerate(value):
            if type(item) is not dict or type(item.get("id")) is not int:
                raise ApiError(400, f"{prefix}lists[{i}].id", "wrong_type", "A list is an object with an integer id.")
            self._unknown_item_keys(f"{prefix}lists[{i}]", item, LIST_KEYS)
            out.append({"id": item["id"], "name": item.get("name", "")})
        return out

    def _custom_fields(self, prefix: str, value: Any) -> dict[int, str]:
        if value is None:
            return {}
        if not isinstance(value, list):
            raise ApiError(400, prefix + "custom_fields", "wrong_type", "custom_fields must be an array.")
        fields = self.store.fields
        out: dict[int, str] = {}
        for i, item in enumerate(value):
            at = f"{prefix}custom_fields[{i}]"
            if type(item) is not dict:
                raise ApiError(400, at, "wrong_type", "A custom field is an object {id, value}.")
            self._unknown_item_keys(at, item, CUSTOM_FIELD_KEYS)
            field_id, name = item.get("id"), item.get("name")
            if field_id is not None:
                if type(field_id) is not int:
                    raise ApiError(400, at + ".id", "wrong_type", "The custom field id must be an integer.")
                field = fields.by_id.get(field_id)
                if field is None:
                    raise ApiError(400, at + ".id", "wrong_value", f"Custom field not found for id {field_id}.")
                if name is not None and name != field.name:
                    raise ApiError(400, at + ".name", "wrong_value",
                                   f"Custom field with id {field_id} is named {field.name}, not {name}.")
            elif name is not None and self.options.custom_fields_by_name:
                field = fields.by_name.get(name) if isinstance(name, str) else None
                if field is None:
                    raise ApiError(400, at + ".name", "wrong_value", f"Custom field not found for name {name}.")
            else:
                raise ApiError(400, at + ".id", "is_blank", "The custom field id is mandatory.")
            if "value" not in item:
                raise ApiError(400, at + ".value", "is_blank", "The custom field value is mandatory.")
            out[field.id] = self._field(at + ".value", normalize_custom, field, item["value"])
        return out


def _limit_headers(limit: float, remaining: int, reset: float) -> dict[str, str]:
    return {"rateLimit-limit": str(int(limit)), "rateLimit-remaining": str(remaining),
            "rateLimit-reset": str(max(1, math.ceil(reset)))}


async def _object(request: web.Request) -> dict:
    raw = await request.read()
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(400, "body", "wrong_value", "The request body is not valid JSON.") from None
    if type(doc) is not dict:
        raise ApiError(400, "body", "wrong_type", "The request body must be a JSON object.")
    return doc


def _int_query(request: web.Request, name: str, default: int, low: int, high: int | None) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < low or (high is not None and int(raw) > high):
        raise ApiError(400, name, "wrong_value", f"{name} must be an integer from {low}"
                       + (f" to {high}." if high is not None else "."))
    return int(raw)
