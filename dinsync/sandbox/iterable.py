"""A local emulator of Iterable's user API (one project), over real sockets.

Written from Iterable's public Swagger 2.0 file (paths /api/users/update, bulkUpdate, getByEmail,
byUserId, {email}, byUserId/{userId}, getFields) and its support articles, never from dinsync's
client. Requests pass through: faults (what a proxy in front would do) -> auth (`Api-Key` or
`Api_Key` header) -> the per-endpoint rate limiter -> validation -> the write.

Documented behaviour it follows:
* update / bulkUpdate upsert; data is merged (omitted fields kept, `null` sets null);
  `mergeNestedObjects` merges top-level objects one level deep.
* A field's type is fixed by its first value; a mismatch rejects the WHOLE request with
  `RequestFieldsTypesMismatched` and `params.validationErrors` (nothing is written). A field is
  its name and position: the fields of an object (or of the objects of an array) are fields of
  their own, `address.zip`, typed and counted apart ("uniqueness determined by its name and
  position on the user profile"; "across all data fields in the project").
* `createNewFields` (default: the project's `allow_new_fields`) creates unknown fields
  (`createdFields`) or drops them (`filteredOutFields`).
* bulkUpdate body capped at 4 MB; per-user failures in `failedUpdates.*` + deprecated top-level
  `invalidEmails`/`invalidUserIds`.
* Project types: email-based (email unique; unknown email creates; userId-only unknown fails
  unless `preferUserId` creates `<userId>@placeholder.email`), userid-based (userId unique),
  hybrid (both unique). Lookups of an absent user answer 200 `{}`.
* Rate limits per endpoint: update 500/s, bulkUpdate 5/s, get 100/s, getFields 3/s.

Undocumented behaviour: our choices, all `IterableOptions` fields (default in brackets):
* users per bulkUpdate [`max_users_per_bulk=1000`] -> 400 `BatchTooLarge`; body over
  `max_body_bytes` [4,000,000: "4MB" read in decimal, as the reference notes do] ->
  [`body_too_large_status=413`] `BatchTooLarge`.
* where unknown userIds go with preferUserId false [`unknown_user_id_list="notFoundUserIds"`];
  single update answers 400 `UnknownUserIdError`.
* status of a type mismatch [`type_mismatch_status=400`].
* 429 body `{"msg": "Rate limit exceeded", "code": "RateLimitExceeded", "params": null}`;
  `Retry-After` [`retry_after="seconds"`, integer, at least 1; or "http-date" or "none"];
  window [`window="sliding"`, 1 s; or "fixed"].
* unknown keys in a body (top level or in a bulk user) [`reject_unknown_keys=True`] -> 400
  `BadParams`; the schema does not forbid them, but a strict sandbox catches client bugs.
* a POST body not sent as `Content-Type: application/json` (text, a form, no header)
  [`require_json_content_type=True`] -> 400 `BadJsonBody`: the Swagger file's request bodies are
  JSON schemas, and the Attio and Attentive sandboxes refuse such bodies too.
* email and userId together [`reject_both_identifiers=False`]: the spec says "not both", the
  support article says "email wins" in email-based projects and hybrid projects need both.
* userId uniqueness in email-based projects [`unique_user_id_in_email_projects=False`]: Iterable
  documents that email-based projects "do not enforce userId uniqueness" (a duplicate userId is
  no error; a lookup by userId finds the latest user given it); when on, a userId already on
  another email -> `conflictUserIds` (409 `UserIdAlreadyExists` for update).
* date detection [`detect_dates=False`]: strings are type "string"; when on, "YYYY-MM-DD",
  "YYYY-MM-DD HH:MM:SS[ +HH:MM]" and ISO-8601 strings are "date" (a date field refuses other
  strings; a string field accepts date-looking ones). A long is accepted in a double field.
* soft limit of unique fields, nested positions included [`max_fields=1000`] -> 400
  `UniqueFieldsLimitExceeded`.
* a bulk user without email and userId, or with wrongly typed members -> 400 `BadParams` for the
  whole request (failures are reported by identifier, so there is nothing to list it under).
* emails and userIds match exactly (case-sensitive, no normalisation).
* a malformed `email` / `userId` in dataFields fails its user like a malformed identifier, listed
  under the malformed value (the spec: found "at the top level ... or in dataFields").
* users counted in `failCount` but listed nowhere [`unlisted_failures=()`: emails / userIds whose
  bulk update fails that way; none by default]: the spec's `failCount` is the "Number of user
  profiles that could not be updated", `failedUpdates` only "Details": nothing says every failed
  profile is listed.
* a `null` email/userId/dataFields counts as absent. In a userid-based project a user sent with
  email only updates the latest user having that email, else fails in `notFoundEmails`
  (single: 400 `UnknownEmailError`). Users without email are returned without `email`.
* identity changes: email-based, email + userId sets (or changes) that email's userId; hybrid
  only adds a missing identifier: a userId owned by another user -> `conflictUserIds`, an email
  whose user has another userId -> `conflictEmails` (update: 409 `UserIdAlreadyExists` /
  `EmailAlreadyExists`).
* deprecated top-level `invalidEmails`/`invalidUserIds` mirror the `failedUpdates` lists.
* 401 body `{"msg": "Invalid API key", "code": "BadApiKey", "params": null}` (missing or wrong key).
* update's 200 `params`: `{"createdFields": [...], "filteredOutFields": [...]}`.
* faults run before auth and the limiter (they stand for the infrastructure in front).
Errors outside the spec's routes: 404 `NotFound` / 405 `BadParams`, JSON.
"""
from __future__ import annotations

import copy
import math
import re
import time
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from email.utils import formatdate
from typing import Any, Literal

import orjson
from aiohttp import web

from .faults import Faults, RateLimiter, run_with_faults
from .loopback import LoopbackServer

ProjectType = Literal["email", "userid", "hybrid"]

DEFAULT_RATE_LIMITS = {"update": 500, "bulkUpdate": 5, "getByEmail": 100, "byUserId": 100, "getFields": 3}
FAILURE_LISTS = ("invalidEmails", "invalidUserIds", "conflictEmails", "conflictUserIds", "forgottenEmails",
                 "forgottenUserIds", "invalidDataEmails", "invalidDataUserIds", "notFoundEmails",
                 "notFoundUserIds")
# Request properties from the spec's schemas (ApiUserUpdateRequest, BulkUpdateUsersRequest, OptionalApiUser).
UPDATE_KEYS = frozenset({"email", "userId", "dataFields", "preferUserId", "mergeNestedObjects", "createNewFields"})
BULK_KEYS = frozenset({"users", "createNewFields"})
BULK_USER_KEYS = frozenset({"email", "userId", "dataFields", "preferUserId", "mergeNestedObjects"})
PLACEHOLDER_DOMAIN = "placeholder.email"

_EMAIL_RE = re.compile(r"[^@\s\x00-\x1f\x7f]+@(?:[^@\s\x00-\x1f\x7f.]+\.)+[^@\s\x00-\x1f\x7f.]+")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}(?: \d{2}:\d{2}:\d{2}(?: [+-]\d{2}:\d{2})?"
                      r"|T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?)?")
_TYPES = {str: "string", int: "long", float: "double", bool: "boolean", dict: "object", list: "array"}
# Per-request storage for the log: how many users the body held.
_USERS: Any = web.RequestKey("users", int) if hasattr(web, "RequestKey") else "dinsync_users"
_ROUTES = {  # path template -> endpoint (rate-limit bucket)
    "/api/users/update": "update", "/api/users/bulkUpdate": "bulkUpdate",
    "/api/users/getByEmail": "getByEmail", "/api/users/{email}": "getByEmail",
    "/api/users/byUserId": "byUserId", "/api/users/byUserId/{userId}": "byUserId",
    "/api/users/getFields": "getFields",
}


def valid_email(email: str) -> bool:
    """RFC-ish: one @, non-empty local part, dotted domain, no spaces/control chars, <= 254 chars."""
    return len(email) <= 254 and _EMAIL_RE.fullmatch(email) is not None


def valid_user_id(user_id: str) -> bool:
    """Iterable: not empty, at most 52 chars, printable ASCII, no trailing space."""
    return (0 < len(user_id) <= 52 and user_id.isascii() and user_id.isprintable()
            and not user_id.endswith(" "))


@dataclass
class IterableOptions:
    """Project settings and the behaviours Iterable does not document (see module docstring)."""

    project_type: ProjectType = "email"
    project_id: int = 1
    allow_new_fields: bool = True
    limits: bool = True
    rate_limits: dict[str, float | None] = field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    window: Literal["sliding", "fixed"] = "sliding"
    retry_after: Literal["seconds", "http-date", "none"] = "seconds"
    max_body_bytes: int = 4_000_000
    body_too_large_status: int = 413
    max_users_per_bulk: int | None = 1000
    unknown_user_id_list: str = "notFoundUserIds"
    type_mismatch_status: int = 400
    reject_unknown_keys: bool = True
    require_json_content_type: bool = True
    reject_both_identifiers: bool = False
    unique_user_id_in_email_projects: bool = False
    detect_dates: bool = False
    max_fields: int | None = 1000
    log_size: int = 100_000
    unlisted_failures: tuple[str, ...] | frozenset[str] = ()

    def __post_init__(self) -> None:
        if self.project_type not in ("email", "userid", "hybrid"):
            raise ValueError("project_type must be 'email', 'userid' or 'hybrid'")
        if self.unknown_user_id_list not in FAILURE_LISTS:
            raise ValueError(f"unknown_user_id_list must be one of {FAILURE_LISTS}")
        if self.retry_after not in ("seconds", "http-date", "none"):
            raise ValueError("retry_after must be 'seconds', 'http-date' or 'none'")


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the sandbox saw it (never headers, so never the API key)."""

    ts: float
    method: str
    endpoint: str
    status: int | None  # None: the connection was reset instead of answered
    users: int | None  # users in the body (update: 1; reads: None)
    fault: str | None


class UserStore:
    """Users as dicts {"email", "userId", "dataFields"}, indexed by email and by userId."""

    def __init__(self) -> None:
        self.by_email: dict[str, dict] = {}
        self.by_user_id: dict[str, dict] = {}
        self._all: list[dict] = []

    def __len__(self) -> int:
        return len(self._all)

    def __iter__(self):
        return iter(self._all)

    def get(self, email: str | None = None, user_id: str | None = None) -> dict | None:
        if email is not None:
            return self.by_email.get(email)
        return self.by_user_id.get(user_id) if user_id is not None else None

    def create(self, email: str | None, user_id: str | None) -> dict:
        rec = {"email": email, "userId": user_id, "dataFields": {}}
        self._all.append(rec)
        if email is not None:
            self.by_email[email] = rec
        if user_id is not None:
            self.by_user_id[user_id] = rec
        return rec

    def set_user_id(self, rec: dict, user_id: str) -> None:
        old = rec["userId"]
        if old is not None and self.by_user_id.get(old) is rec:
            del self.by_user_id[old]
        rec["userId"] = user_id
        self.by_user_id[user_id] = rec

    def set_email(self, rec: dict, email: str) -> None:
        old = rec["email"]
        if old is not None and self.by_email.get(old) is rec:
            del self.by_email[old]
        rec["email"] = email
        self.by_email[email] = rec

    def clear(self) -> None:
        self.by_email.clear()
        self.by_user_id.clear()
        self._all.clear()


class BadRequest(Exception):
    """A whole-request failure, answered as Iterable's JSON error body."""

    def __init__(self, code: str, msg: str, status: int = 400, params: dict | None = None):
        super().__init__(msg)
        self.code, self.msg, self.status, self.params = code, msg, status, params


def api_response(status: int, code: str, msg: str, params: dict | None = None,
                 headers: dict[str, str] | None = None) -> web.Response:
    body = orjson.dumps({"msg": msg, "code": code, "params": params})
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


def _json(obj: Any) -> web.Response:
    return web.Response(body=orjson.dumps(obj), content_type="application/json")


class IterableSandbox(LoopbackServer):
    """One Iterable project in memory. `app()` for aiohttp, or `await start()` / `await stop()`."""

    def __init__(self, api_keys: str | list[str] | tuple[str, ...] = ("sandbox-key",), *,
                 options: IterableOptions | None = None, faults: Faults | None = None, **overrides: Any):
        keys = [api_keys] if isinstance(api_keys, str) else list(api_keys)
        if not keys or not all(keys):
            raise ValueError("at least one non-empty API key is required")
        self._api_keys = frozenset(keys)
        self.options = replace(options or IterableOptions(), **overrides)
        self.faults = faults if faults is not None else Faults()
        self.users = UserStore()
        self.fields: dict[str, str] = {}
        self.requests: Counter = Counter()  # endpoint -> requests received
        self.responses_429 = 0
        self.log: deque[LoggedRequest] = deque(maxlen=self.options.log_size)
        self._limiter = RateLimiter(self.options.window)

    def __repr__(self) -> str:  # never show the keys
        return f"IterableSandbox(url={self.url!r}, project_type={self.options.project_type!r})"

    # ---------------------------------------------------------------- lifecycle / inspection
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware],
                              client_max_size=max(4 * self.options.max_body_bytes, 16 * 1024 * 1024))
        r = app.router
        r.add_post("/api/users/update", self._update)
        r.add_post("/api/users/bulkUpdate", self._bulk_update)
        r.add_get("/api/users/getByEmail", self._get_by_email)
        r.add_get("/api/users/getFields", self._get_fields)
        r.add_get("/api/users/byUserId", self._get_by_user_id)
        r.add_get("/api/users/byUserId/{userId:.+}", self._get_by_user_id)
        r.add_get("/api/users/{email:.+}", self._get_by_email)
        return app

    def reset(self) -> None:
        """Forget users, fields, the log, counters, limiter windows and scripted faults."""
        self.users.clear()
        self.fields.clear()
        self.requests.clear()
        self.responses_429 = 0
        self.log.clear()
        self._limiter.clear()
        self.faults.clear()

    def get_user(self, email: str | None = None, user_id: str | None = None) -> dict | None:
        """A copy of a stored user, by email or by userId."""
        rec = self.users.get(email, user_id)
        return copy.deepcopy(rec) if rec is not None else None

    def stats(self) -> dict:
        return {"requests": sum(self.requests.values()), "requests_by_endpoint": dict(self.requests),
                "responses_429": self.responses_429,
                "faults": dict(self.faults.injected), "users": len(self.users), "fields": len(self.fields)}

    # ---------------------------------------------------------------- pipeline
    @web.middleware
    async def _middleware(self, request: web.Request, handler) -> web.StreamResponse:
        route = request.match_info.route
        endpoint = _ROUTES.get(route.resource.canonical) if route.resource is not None else None
        if endpoint is None:
            status = getattr(request.match_info, "http_exception", web.HTTPNotFound()).status
            code, msg = ("NotFound", "Not found") if status == 404 else ("BadParams", "Method not allowed")
            return api_response(status, code, msg)
        self.requests[endpoint] += 1

        async def guarded() -> web.StreamResponse:
            return await self._guarded(request, handler, endpoint)

        resp, fault = await run_with_faults(request, endpoint, self.faults, guarded, self._too_many_requests)
        reset = fault in ("reset", "reset_after_apply")
        if resp.status == 429 and not reset:
            self.responses_429 += 1
        self.log.append(LoggedRequest(time.time(), request.method, endpoint, None if reset else resp.status,
                                      request.get(_USERS), fault))
        return resp

    async def _guarded(self, request: web.Request, handler, endpoint: str) -> web.StreamResponse:
        key = request.headers.get("Api-Key") or request.headers.get("Api_Key")
        if key not in self._api_keys:
            return api_response(401, "BadApiKey", "Invalid API key")
        opts = self.options
        if opts.limits:
            if self._limiter.window != opts.window:  # options changed at run time
                self._limiter = RateLimiter(opts.window)
            wait = self._limiter.acquire(endpoint, opts.rate_limits.get(endpoint))
            if wait is not None:
                return self._too_many_requests(wait)
        try:
            if (opts.require_json_content_type and request.method == "POST"
                    and request.content_type != "application/json"):
                raise BadRequest("BadJsonBody", f"Expecting an application/json body, got Content-Type "
                                 f"{request.headers.get('Content-Type', '(none)')[:100]!r}")
            return await handler(request)
        except BadRequest as exc:
            return api_response(exc.status, exc.code, exc.msg, exc.params)
        except web.HTTPRequestEntityTooLarge:  # beyond aiohttp's own cap (4x max_body_bytes)
            return api_response(opts.body_too_large_status, "BatchTooLarge", "Request body too large")

    def _too_many_requests(self, wait: float | None) -> web.Response:
        headers = {}
        if wait is not None and self.options.retry_after == "seconds":
            headers["Retry-After"] = str(max(1, math.ceil(wait)))
        elif wait is not None and self.options.retry_after == "http-date":
            headers["Retry-After"] = formatdate(math.ceil(time.time() + max(1.0, wait)), usegmt=True)  # whole seconds: round up
        return api_response(429, "RateLimitExceeded", "Rate limit exceeded", headers=headers)

    # ---------------------------------------------------------------- handlers
    async def _update(self, request: web.Request) -> web.Response:
        doc = _parse_object(await request.read())
        request[_USERS] = 1
        self._check_keys(doc, UPDATE_KEYS)
        create_new = _bool(doc, "createNewFields", self.options.allow_new_fields)
        email, user_id, data, merge, prefer = self._user_parts(doc)
        new_types: dict[str, str] = {}
        errors = self._check_types(data, create_new, new_types) if data else None
        if errors:
            raise self._mismatch(errors)
        self._check_field_count(new_types)
        outcome = _malformed_in_data(data) or self._resolve(email, user_id, prefer)
        if isinstance(outcome, tuple):
            raise _single_failure(*outcome)
        created: dict[str, None] = {}
        dropped: dict[str, None] = {}
        self._write(outcome, data, merge, create_new, new_types, created, dropped)
        return api_response(200, "Success", "User updated",
                            {"createdFields": list(created), "filteredOutFields": list(dropped)})

    async def _bulk_update(self, request: web.Request) -> web.Response:
        raw = await request.read()
        opts = self.options
        if len(raw) > opts.max_body_bytes:
            raise BadRequest("BatchTooLarge", f"Request body is {len(raw)} bytes; the maximum is "
                             f"{opts.max_body_bytes} bytes", status=opts.body_too_large_status)
        doc = _parse_object(raw)
        self._check_keys(doc, BULK_KEYS)
        users = doc.get("users")
        if not isinstance(users, list):
            raise BadRequest("BadParams", "'users' must be an array of users")
        request[_USERS] = len(users)
        if opts.max_users_per_bulk is not None and len(users) > opts.max_users_per_bulk:
            raise BadRequest("BatchTooLarge", f"Too many users: {len(users)}; the maximum is "
                             f"{opts.max_users_per_bulk} per request")
        create_new = _bool(doc, "createNewFields", opts.allow_new_fields)
        parsed = []
        new_types: dict[str, str] = {}
        errors: dict[str, dict] = {}
        # Users of one batch usually share field names and value types: check each shape once.
        shapes_ok: set[tuple] | None = None if opts.detect_dates else set()
        for i, user in enumerate(users):
            if type(user) is not dict:
                raise BadRequest("BadParams", f"users[{i}] must be an object")
            self._check_keys(user, BULK_USER_KEYS, i)
            parts = self._user_parts(user, i)
            parsed.append(parts)
            data = parts[2]
            if not data:
                continue
            if shapes_ok is not None:
                shape = (tuple(data), tuple(map(type, data.values())))
                if shape in shapes_ok:
                    continue
            found = self._check_types(data, create_new, new_types)
            if found:
                errors.update(found)
            elif shapes_ok is not None and dict not in shape[1] and list not in shape[1]:
                shapes_ok.add(shape)  # (an object's shape is not its fields' types: checked each time)
        if errors:
            raise self._mismatch(errors)
        self._check_field_count(new_types)

        failed: dict[str, list[str]] = {name: [] for name in FAILURE_LISTS}
        created: dict[str, None] = {}
        dropped: dict[str, None] = {}
        success = 0
        for email, user_id, data, merge, prefer in parsed:
            if email in opts.unlisted_failures or user_id in opts.unlisted_failures:
                continue  # counted in failCount, listed nowhere
            outcome = _malformed_in_data(data) or self._resolve(email, user_id, prefer)
            if isinstance(outcome, tuple):
                failed[self._failure_list(outcome[0])].append(outcome[1])
                continue
            if data:
                self._write(outcome, data, merge, create_new, new_types, created, dropped)
            success += 1
        return _json({"successCount": success, "failCount": len(parsed) - success,
                      "createdFields": list(created), "filteredOutFields": list(dropped),
                      "failedUpdates": failed,
                      "invalidEmails": list(failed["invalidEmails"]),
                      "invalidUserIds": list(failed["invalidUserIds"])})

    async def _get_by_email(self, request: web.Request) -> web.Response:
        email = request.match_info.get("email") or request.query.get("email")
        if not email:
            raise BadRequest("BadParams", "email is required")
        return _json(_user_body(self.users.by_email.get(email)))

    async def _get_by_user_id(self, request: web.Request) -> web.Response:
        user_id = request.match_info.get("userId") or request.query.get("userId")
        if not user_id:
            raise BadRequest("BadParams", "userId is required")
        return _json(_user_body(self.users.by_user_id.get(user_id)))

    async def _get_fields(self, request: web.Request) -> web.Response:
        return _json({"fields": dict(self.fields)})

    # ---------------------------------------------------------------- rules
    def _check_keys(self, doc: dict, allowed: frozenset, index: int | None = None) -> None:
        if self.options.reject_unknown_keys and not doc.keys() <= allowed:
            unknown = sorted(set(doc) - allowed)
            raise BadRequest("BadParams", f"Unknown field(s) in {_where(index)}: {', '.join(unknown)}")

    def _user_parts(self, doc: dict, index: int | None = None) -> tuple:
        """(email, userId, dataFields, mergeNestedObjects, preferUserId), type-checked."""
        email = doc.get("email")
        user_id = doc.get("userId")
        data = doc.get("dataFields")
        if email is not None and type(email) is not str:
            raise BadRequest("BadParams", f"{_where(index)}.email must be a string")
        if user_id is not None and type(user_id) is not str:
            raise BadRequest("BadParams", f"{_where(index)}.userId must be a string")
        if data is not None and type(data) is not dict:
            raise BadRequest("BadParams", f"{_where(index)}.dataFields must be an object")
        if email is None and user_id is None:
            raise BadRequest("BadParams", f"{_where(index)}: either email or userId must be provided")
        if (email is not None and user_id is not None and self.options.reject_both_identifiers
                and self.options.project_type != "hybrid"):
            raise BadRequest("BadParams", f"{_where(index)}: provide email or userId, not both")
        merge = doc.get("mergeNestedObjects", False)
        prefer = doc.get("preferUserId", False)
        if type(merge) is not bool or type(prefer) is not bool:  # rare: null or a wrong type
            merge, prefer = _bool(doc, "mergeNestedObjects", False), _bool(doc, "preferUserId", False)
        return email, user_id, data, merge, prefer

    def _check_types(self, data: dict, create_new: bool, new_types: dict[str, str]) -> dict | None:
        """Type errors of one user's dataFields; records first types of new fields in new_types.

        Hot path (runs for every field of every user): keep it to dict lookups.
        """
        return self._check_fields(data, create_new, new_types, "", None)

    def _check_fields(self, data: dict, create_new: bool, new_types: dict[str, str], prefix: str,
                      errors: dict | None) -> dict | None:
        """`_check_types` for the fields of one object, named by their position (`prefix`: the
        object's own path and a dot): a nested field is a field of its own ("a field's uniqueness
        determined by its name and position on the user profile"), with a type of its own."""
        known = self.fields
        dates = self.options.detect_dates
        for key, value in data.items():
            if value is None:  # a null matches any type
                continue
            name = prefix + key if prefix else key
            if type(value) is dict:
                errors = self._check_fields(value, create_new, new_types, name + ".", errors)
            elif type(value) is list:
                for item in value:
                    if type(item) is dict:  # an array of objects: their fields are positions too
                        errors = self._check_fields(item, create_new, new_types, name + ".", errors)
            incoming = _TYPES.get(type(value), "string")
            if dates and incoming == "string" and _DATE_RE.fullmatch(value):
                incoming = "date"
            expected = known.get(name)
            if expected is None:
                if not create_new:
                    continue
                expected = new_types.setdefault(name, incoming)
            if incoming == expected or (expected == "double" and incoming == "long") or (
                    expected == "string" and incoming == "date"):
                continue
            errors = errors or {}
            errors[f"project_{self.options.project_id}:::{name}"] = {
                "incomingTypes": ["string", "keyword"] if incoming == "string" else [incoming],
                "expectedType": expected, "category": "user", "offendingValue": value,
                "_type": "UnexpectedType"}
        return errors

    def _mismatch(self, errors: dict) -> BadRequest:
        msg = (f"Project {self.options.project_id}: The request does not have the same data types as the "
               "existing schema. Please ensure the data types of the fields in the request match.")
        return BadRequest("RequestFieldsTypesMismatched", msg, self.options.type_mismatch_status,
                          {"validationErrors": errors})

    def _check_field_count(self, new_types: dict[str, str]) -> None:
        limit = self.options.max_fields
        if limit is not None and new_types and len(self.fields) + len(new_types) > limit:
            raise BadRequest("UniqueFieldsLimitExceeded", f"The project would exceed {limit} unique fields")

    def _resolve(self, email: str | None, user_id: str | None, prefer: bool) -> dict | tuple[str, str]:
        """The record to write, or (failure reason, identifier) when the user cannot be written."""
        if email is not None and not valid_email(email):
            return "invalid_email", email
        if user_id is not None and not valid_user_id(user_id):
            return "invalid_user_id", user_id
        store = self.users
        kind = self.options.project_type
        if kind == "email":
            if email is None:
                rec = store.by_user_id.get(user_id)
                if rec is not None:
                    return rec
                if not prefer:
                    return "unknown_user_id", user_id
                email = f"{user_id}@{PLACEHOLDER_DOMAIN}"
            rec = store.by_email.get(email)
            if user_id is not None:
                holder = store.by_user_id.get(user_id)
                if holder is not None and holder is not rec and self.options.unique_user_id_in_email_projects:
                    return "conflict_user_id", user_id
            if rec is None:
                return store.create(email, user_id)
            if user_id is not None and rec["userId"] != user_id:
                store.set_user_id(rec, user_id)
            return rec
        if kind == "userid":
            if user_id is None:
                rec = store.by_email.get(email)
                return rec if rec is not None else ("unknown_email", email)
            rec = store.by_user_id.get(user_id)
            if rec is None:
                return store.create(email, user_id)
            if email is not None and rec["email"] != email:
                store.set_email(rec, email)
            return rec
        # hybrid: both identifiers unique; identities are only added, never changed here
        by_email = store.by_email.get(email) if email is not None else None
        by_id = store.by_user_id.get(user_id) if user_id is not None else None
        if email is None:
            return by_id if by_id is not None else store.create(None, user_id)
        if user_id is None:
            return by_email if by_email is not None else store.create(email, None)
        if by_email is by_id:
            return by_email if by_email is not None else store.create(email, user_id)
        if by_id is not None:
            if by_email is None and by_id["email"] is None:
                store.set_email(by_id, email)
                return by_id
            return "conflict_user_id", user_id
        if by_email["userId"] is None:
            store.set_user_id(by_email, user_id)
            return by_email
        return "conflict_email", email

    def _failure_list(self, reason: str) -> str:
        return _FAILURES[reason][0] or self.options.unknown_user_id_list

    def _write(self, rec: dict, data: dict | None, merge: bool, create_new: bool, new_types: dict[str, str],
               created: dict[str, None], dropped: dict[str, None]) -> None:
        if not data:
            return
        known = self.fields
        target = rec["dataFields"]
        if not merge and data.keys() <= known.keys() and not any(type(v) in (dict, list) for v in data.values()):
            target.update(data)  # the common case: plain overwrite of known fields
            return
        for name, value in data.items():
            if name not in known:
                if not create_new:
                    dropped[name] = None
                    continue
                kind = new_types.get(name)
                if kind is not None:  # a null alone does not give a field a type
                    known[name] = kind
                    created[name] = None
            if create_new and type(value) in (dict, list):
                for path in _nested_paths(name, value):
                    kind = new_types.get(path)
                    if path not in known and kind is not None:
                        known[path] = kind
                        created[path] = None
            if merge and type(value) is dict:
                old = target.get(name)
                if type(old) is dict:
                    value = {**old, **value}
            target[name] = value


def _nested_paths(name: str, value: Any):
    """The positions of the fields inside an object (or an array of objects), `name.child...`."""
    for item in (value if type(value) is list else [value]):
        if type(item) is dict:
            for key, child in item.items():
                path = f"{name}.{key}"
                yield path
                if type(child) in (dict, list):
                    yield from _nested_paths(path, child)


def _malformed_in_data(data: dict | None) -> tuple[str, str] | None:
    """A malformed `email` or `userId` in dataFields: the spec's invalidEmails / invalidUserIds
    hold those "found either at the top level of a passed-in user object, or in dataFields",
    listed by the malformed value itself."""
    if not data:
        return None
    email, user_id = data.get("email"), data.get("userId")
    if type(email) is str and not valid_email(email):
        return "invalid_email", email
    if type(user_id) is str and not valid_user_id(user_id):
        return "invalid_user_id", user_id
    return None


def _where(index: int | None) -> str:
    return "request" if index is None else f"users[{index}]"


def _parse_object(raw: bytes) -> dict:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("BadJsonBody", "Could not parse the request body as JSON") from None
    if type(doc) is not dict:
        raise BadRequest("BadJsonBody", "The request body must be a JSON object")
    return doc


def _bool(doc: dict, key: str, default: bool) -> bool:
    value = doc.get(key)
    if value is None:
        return default
    if type(value) is not bool:
        raise BadRequest("BadParams", f"{key} must be a boolean")
    return value


# failure reason -> (failedUpdates list of bulkUpdate, status/code/msg of update)
_FAILURES = {
    "invalid_email": ("invalidEmails", 400, "InvalidEmailAddressError", "Invalid email address"),
    "invalid_user_id": ("invalidUserIds", 400, "InvalidUserIdError", "Invalid userId"),
    "conflict_user_id": ("conflictUserIds", 409, "UserIdAlreadyExists", "userId already belongs to another user"),
    "conflict_email": ("conflictEmails", 409, "EmailAlreadyExists", "email already belongs to another user"),
    "unknown_email": ("notFoundEmails", 400, "UnknownEmailError", "No user with this email"),
    "unknown_user_id": (None, 400, "UnknownUserIdError", "No user with this userId"),
}


def _single_failure(reason: str, identifier: str) -> BadRequest:
    _, status, code, msg = _FAILURES[reason]
    return BadRequest(code, msg, status)


def _user_body(rec: dict | None) -> dict:
    if rec is None:
        return {}
    user = {}
    if rec["email"] is not None:
        user["email"] = rec["email"]
    if rec["userId"] is not None:
        user["userId"] = rec["userId"]
    user["dataFields"] = rec["dataFields"]
    return {"user": user}
