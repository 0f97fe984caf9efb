"""The Attentive sandbox server: routing, auth and scopes, rate limits, handlers, inspection."""
from __future__ import annotations

import copy
import itertools
import math
import time
from collections import Counter, deque
from dataclasses import dataclass, replace
from email.utils import formatdate
from typing import Any, Iterable, Mapping

import orjson
from aiohttp import web

from ..faults import Faults, run_with_faults
from ..loopback import LoopbackServer
from .jobs import RESULTS_PATH, BulkJobs
from .limits import PerSecondLimiter
from .options import BULK_KEYS, RESULTS_ENDPOINT, ROUTES, AttentiveOptions
from .rules import (UNSET, ApiError, Identity, V2User, as_text, bad, fits, parse_custom_attributes_request,
                    parse_identify_request, parse_json_object, parse_v2_user, valid_email, valid_phone, value_kind)
from .store import SubscriberStore

_RECORDS: Any = web.RequestKey("records", int) if hasattr(web, "RequestKey") else "dinsync_records"


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the sandbox saw it (never headers, so never the API key)."""

    ts: float
    method: str
    endpoint: str
    status: int | None  # None: the connection was reset instead of answered
    records: int | None  # users in the body (writes), None for reads
    fault: str | None


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(obj), content_type="application/json")


class AttentiveSandbox(LoopbackServer):
    """One Attentive company in memory. `await start()` / `await stop()`, or `app()` for aiohttp.

    `api_keys`: a key, a list of keys (each gets `options.default_scopes`), or {key: scopes}.
    """

    def __init__(self, api_keys: str | Iterable[str] | Mapping[str, Iterable[str]] = ("sandbox-key",), *,
                 options: AttentiveOptions | None = None, faults: Faults | None = None, **overrides: Any):
        self.options = replace(options or AttentiveOptions(), **overrides)
        if isinstance(api_keys, str):
            api_keys = [api_keys]
        if isinstance(api_keys, Mapping):
            keys = {key: frozenset(scopes) for key, scopes in api_keys.items()}
        else:
            keys = {key: frozenset(self.options.default_scopes) for key in api_keys}
        if not keys or not all(keys):
            raise ValueError("at least one non-empty API key is required")
        self._keys = keys
        self._key_ids = {key: i for i, key in enumerate(keys)}  # limiter buckets never hold the key itself
        self.faults = faults if faults is not None else Faults()
        self.store = SubscriberStore(self.options.email_case_sensitive)
        self.attribute_types: dict[str, str] = {}  # custom attribute -> BOOLEAN | NUMBER | DATE | STRING
        self.jobs = BulkJobs(self._apply_v2_record, self._error_body)
        self.requests: Counter = Counter()
        self.responses_429: Counter = Counter()
        self.created_users = 0
        self.created_by_endpoint: Counter = Counter()
        self.unknown_user_writes = 0  # v1 writes answered 200 without effect (unknown_user="accept")
        self.opt_ins = 0  # subscriptions created through v2 `subscriptions`
        self.log: deque[LoggedRequest] = deque(maxlen=self.options.log_size)
        self.limiter = PerSecondLimiter(self.options.window)  # tests may replace its `clock`
        self._error_ids = itertools.count(1)

    def __repr__(self) -> str:  # never show the keys
        return f"AttentiveSandbox(url={self.url!r}, subscribers={len(self.store)})"

    # ---------------------------------------------------------------- lifecycle
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=self.options.max_body_bytes)
        r = app.router
        r.add_get("/v1/me", self._get_me)
        r.add_get("/v2/me", self._get_me)
        r.add_post("/v1/attributes/custom", self._post_custom_attributes)
        r.add_get("/v1/attributes/custom", self._get_custom_attributes)
        r.add_get("/v1/subscriptions", self._get_subscriptions)
        r.add_post("/v1/identity-resolution/user-identifiers", self._identify)
        r.add_post("/v2/user/attributes", self._post_user_attributes)
        r.add_post("/v2/bulk/user/attributes", self._post_bulk_user_attributes)
        r.add_get("/v2/bulk/job/{bulkJobId}", self._get_bulk_job)
        r.add_get(RESULTS_PATH, self._get_bulk_results)
        return app

    async def stop(self) -> None:
        self.jobs.cancel()
        await super().stop()

    # ---------------------------------------------------------------- seeding and inspection
    def add_subscriber(self, email: str | None = None, phone: str | None = None, *,
                       attributes: dict | None = None, custom: dict | None = None,
                       subscriptions: list[dict] | None = None, client_user_id: str | None = None,
                       custom_identifiers: dict[str, str] | None = None, shopify_id: str | None = None,
                       klaviyo_id: str | None = None) -> dict:
        """Add one existing subscriber (validated like a v2 body); returns a copy.

        `attributes` has the v2 shape (firstName, demographic{...}, ...); `subscriptions` is a list
        of {"type", "channel", "eligible"} (default: MARKETING on EMAIL / TEXT for the identifiers given).
        """
        ids = {k: v for k, v in (("email", email), ("phone", phone), ("clientUserId", client_user_id),
                                 ("shopifyId", shopify_id), ("klaviyoId", klaviyo_id)) if v is not None}
        if custom_identifiers:
            ids["customIdentifiers"] = [{"key": k, "value": v} for k, v in custom_identifiers.items()]
        doc: dict[str, Any] = {"identifiers": ids}
        if attributes or custom:
            doc["attributes"] = {**(attributes or {}), **({"custom": custom} if custom else {})}
        try:
            user = parse_v2_user(doc, "", self.options)
            if self.store.matches(user.identity):
                raise ApiError(409, "a subscriber with one of these identifiers already exists")
            new_types = self._check_custom(user.custom, "custom", v2=False)
        except ApiError as exc:
            raise ValueError(exc.message) from None
        rec = self.store.create(user.identity, "seed")
        self._write(rec, user, new_types)
        if subscriptions is None:
            subscriptions = [{"type": "MARKETING", "channel": channel}
                             for channel, given in (("EMAIL", email), ("TEXT", phone)) if given]
        rec["subscriptions"] = [{"type": s["type"], "channel": s["channel"], "eligible": s.get("eligible", True)}
                                for s in subscriptions]
        return copy.deepcopy(rec)

    def seed_subscribers(self, count: int, start: int = 0) -> int:
        """Add `count` subscribers `subscriber{i}@example.com` / `+1201{2000000+i}` (both channels, eligible)."""
        if start < 0 or start + count > 7_000_000:
            raise ValueError("seeded subscribers are numbered 0 .. 6,999,999")
        store = self.store
        for i in range(start, start + count):
            email, phone = f"subscriber{i}@example.com", f"+1201{2000000 + i:07d}"
            if store.find("email", email) is not None or store.find("phone", phone) is not None:
                raise ValueError(f"subscriber {i} is already there")
            store.add_seeded(email, phone, [{"type": "MARKETING", "channel": "EMAIL", "eligible": True},
                                            {"type": "MARKETING", "channel": "TEXT", "eligible": True}])
        return len(store)

    def define_property(self, name: str, values: list[str]) -> None:
        """A property created in the Attentive UI with enumerated values: the API accepts only these."""
        self.options.enum_properties[name] = list(values)

    def get_subscriber(self, email: str | None = None, phone: str | None = None,
                       client_user_id: str | None = None) -> dict | None:
        """A copy of the subscriber with this email, phone or clientUserId (first given wins)."""
        for key, value in (("email", email), ("phone", phone), ("clientUserId", client_user_id)):
            if value is not None:
                rec = self.store.find(key, value)
                return copy.deepcopy(rec) if rec is not None else None
        raise ValueError("give email, phone or client_user_id")

    def subscribers(self) -> list[dict]:
        return copy.deepcopy(list(self.store))

    def created_subscribers(self) -> list[dict]:
        """Copies of the subscribers the API created (v2 writes, or v1 with unknown_user="create")."""
        return [copy.deepcopy(rec) for rec in self.store if rec["origin"] != "seed"]

    def get_job(self, job_id: str) -> dict | None:
        job = self.jobs.jobs.get(job_id)
        return job.summary() if job is not None else None

    def script_job_failure(self, times: int = 1) -> None:
        """The next `times` bulk jobs end FAILED, with nothing applied and no results file."""
        self.jobs.fail_next += times

    def finish_jobs(self) -> None:
        """Complete every pending bulk job now."""
        self.jobs.finish_all()

    def stats(self) -> dict:
        return {"requests": sum(self.requests.values()), "requests_by_endpoint": dict(self.requests),
                "responses_429": sum(self.responses_429.values()),
                "responses_429_by_endpoint": dict(self.responses_429),
                "created_users": self.created_users, "created_by_endpoint": dict(self.created_by_endpoint),
                "unknown_user_writes": self.unknown_user_writes, "opt_ins": self.opt_ins,
                "subscribers": len(self.store), "custom_attributes": len(self.attribute_types),
                "jobs": dict(Counter(job.status for job in self.jobs.jobs.values())),
                "faults": dict(self.faults.injected)}

    def reset(self) -> None:
        """Forget subscribers, attribute types, jobs, the log, counters, limiter windows and scripted
        faults (enumerated UI properties are settings and stay)."""
        self.store.clear()
        self.attribute_types.clear()
        self.jobs.clear()
        self.requests.clear()
        self.responses_429.clear()
        self.created_users = self.unknown_user_writes = self.opt_ins = 0
        self.created_by_endpoint.clear()
        self.log.clear()
        self.limiter.clear()
        self.faults.clear()

    # ---------------------------------------------------------------- pipeline
    def _error_body(self, exc: ApiError) -> dict:
        return {"error": {"id": next(self._error_ids), "message": exc.message}}

    def _error(self, status: int, message: str) -> web.Response:
        return _json(self._error_body(ApiError(status, message)), status)

    @web.middleware
    async def _middleware(self, request: web.Request, handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        canonical = resource.canonical if resource is not None else None
        endpoint = RESULTS_ENDPOINT if canonical == RESULTS_PATH else ROUTES.get((request.method, canonical))
        if endpoint is None:
            http_exc = getattr(request.match_info, "http_exception", None)
            status = http_exc.status if http_exc is not None else 404
            return self._error(status, "Method not allowed" if status == 405 else "Not found")
        self.requests[endpoint] += 1

        async def guarded() -> web.StreamResponse:
            return await self._guarded(request, handler, endpoint)

        def throttled(retry_after: float | None) -> web.StreamResponse:
            return self._too_many(endpoint, retry_after)

        resp, fault = await run_with_faults(request, endpoint, self.faults, guarded, throttled)
        reset = fault in ("reset", "reset_after_apply")
        if resp.status == 429 and not reset:
            self.responses_429[endpoint] += 1
        self.log.append(LoggedRequest(time.time(), request.method, endpoint, None if reset else resp.status,
                                      request.get(_RECORDS), fault))
        return resp

    def _limit(self, endpoint: str) -> float | None:
        return self.options.rate_limits.get(endpoint) if self.options.limits else None

    async def _guarded(self, request: web.Request, handler, endpoint: str) -> web.StreamResponse:
        if endpoint == RESULTS_ENDPOINT:  # a pre-signed download: no bearer token, no API limits
            return await handler(request)
        limit = self._limit(endpoint)
        token = self._token(request)
        if token is None:  # nothing is charged to any token
            return _rate_headers(self._error(401, "Unauthorized"), limit, limit)
        remaining = None
        if limit is not None:
            allowed, remaining, wait = self.limiter.hit((self._key_ids[token], endpoint), limit)
            if not allowed:
                return self._too_many(endpoint, wait)
        missing = [s for s in self.options.endpoint_scopes.get(endpoint, ()) if not self._has_scope(token, s)]
        if missing:
            resp = self._error(403, f"Access denied: the API key lacks the scope(s) {', '.join(missing)}")
        elif request.method == "POST" and request.body_exists and request.content_type != "application/json":
            # the specs declare only application/json request bodies
            resp = self._error(415, f"Unsupported Media Type '{request.content_type}': send application/json")
        else:
            try:
                resp = await handler(request)
            except ApiError as exc:
                resp = _json(self._error_body(exc), exc.status)
            except web.HTTPRequestEntityTooLarge:
                resp = self._error(413, "Request body too large")
        return _rate_headers(resp, limit, remaining)

    def _token(self, request: web.Request) -> str | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        return token if scheme.lower() == "bearer" and token in self._keys else None

    def _has_scope(self, token: str, scope: str) -> bool:
        scopes = self._keys[token]
        if scope in scopes:
            return True
        return (self.options.write_implies_read and scope.endswith(":read")
                and scope[:-len("read")] + "write" in scopes)

    def _too_many(self, endpoint: str, wait: float | None) -> web.Response:
        resp = self._error(429, "Too many requests")
        if self.options.retry_after == "http-date":  # RFC 9110 allows either form
            resp.headers["Retry-After"] = formatdate(math.ceil(time.time() + max(1.0, math.ceil(wait or 1.0))),
                                                     usegmt=True)  # whole seconds: round up, never early
        elif self.options.retry_after:
            resp.headers["Retry-After"] = str(max(1, math.ceil(wait or 1.0)))
        return _rate_headers(resp, self._limit(endpoint), 0)

    # ---------------------------------------------------------------- handlers
    async def _get_me(self, request: web.Request) -> web.Response:
        return _json(self.options.me)

    async def _post_custom_attributes(self, request: web.Request) -> web.Response:
        doc = parse_json_object(await request.read())
        request[_RECORDS] = 1
        opts = self.options
        ident, properties = parse_custom_attributes_request(doc, opts)
        rec = self.store.resolve(ident, opts.identifier_conflict)
        new_types = self._check_custom(properties, "properties", v2=False)
        if rec is None:
            if opts.unknown_user == "accept":
                self.unknown_user_writes += 1
                return web.Response(status=200)
            if opts.unknown_user == "reject" or not (ident.email or ident.phone):
                raise ApiError(404, "No subscriber matches the user's identifiers")
            rec = self._create(ident, "postCustomAttributes")
        self._write(rec, V2User(ident, {}, properties, []), new_types)
        return web.Response(status=200)

    async def _get_custom_attributes(self, request: web.Request) -> web.Response:
        rec = self._lookup(request)
        if rec is None:
            if self.options.unknown_attributes_lookup == "404":
                raise ApiError(404, "Subscriber not found")
            return _json([])
        return _json([{"name": name, "value": as_text(value)} for name, value in rec["custom"].items()])

    async def _get_subscriptions(self, request: web.Request) -> web.Response:
        rec = self._lookup(request)
        if rec is None:
            raise ApiError(404, "Subscriber not found")
        channel = "EMAIL" if "email" in request.query else "TEXT"
        return _json({"subscriptionEligibilities": [
            {"subscription": {"type": s["type"], "channel": s["channel"]}, "eligibility": {"isEligible": s["eligible"]}}
            for s in rec["subscriptions"] if s["channel"] == channel]})

    async def _identify(self, request: web.Request) -> web.Response:
        raw = await request.read()
        doc = parse_json_object(raw) if raw.strip() else {}
        request[_RECORDS] = 1
        ident = parse_identify_request(doc, self.options)
        rec = self.store.resolve(ident, self.options.identifier_conflict)
        if rec is not None:
            self.store.attach(rec, ident)
        return web.Response(status=202)

    async def _post_user_attributes(self, request: web.Request) -> web.Response:
        doc = parse_json_object(await request.read())
        request[_RECORDS] = 1
        status, body = self._apply_v2(parse_v2_user(doc, "", self.options), "postUserAttributes")
        return _json(body, status)

    async def _post_bulk_user_attributes(self, request: web.Request) -> web.Response:
        opts = self.options
        doc = parse_json_object(await request.read())
        if opts.reject_unknown_keys and not doc.keys() <= BULK_KEYS:
            raise bad(f"request has unknown field(s): {', '.join(sorted(set(doc) - BULK_KEYS))}")
        users = doc.get("users")
        if type(users) is not list:
            raise bad("users is required and must be an array")
        request[_RECORDS] = len(users)
        if not 1 <= len(users) <= opts.bulk_max_users:
            raise bad(f"users must hold between 1 and {opts.bulk_max_users} records")
        parsed: list = []
        for i, user in enumerate(users):
            try:
                parsed.append(parse_v2_user(user, f"users[{i}].", opts))
            except ApiError as exc:
                if opts.bulk_validation == "request":
                    raise
                parsed.append(exc)
        job = self.jobs.submit(users, parsed, opts.bulk_pending_seconds, opts.bulk_job_seconds)
        return _json({"message": "Bulk job accepted for processing", "batchJobId": job.id}, 202)

    async def _get_bulk_job(self, request: web.Request) -> web.Response:
        job = self.jobs.jobs.get(request.match_info["bulkJobId"])
        if job is None:
            raise ApiError(404, "Bulk job not found")
        return _json(job.status_body(self.url or f"{request.scheme}://{request.host}", self.options.completed_status))

    async def _get_bulk_results(self, request: web.Request) -> web.Response:
        job = self.jobs.jobs.get(request.match_info["jobId"])
        if job is None or request.query.get("signature") != job.signature:
            return web.Response(status=403, text="AccessDenied", content_type="text/plain")
        if job.status != "COMPLETED":
            return web.Response(status=404, text="NoSuchKey", content_type="text/plain")
        return web.Response(body=job.results_file(self.options.results_order, self.options.results_index),
                            content_type="application/jsonl")

    # ---------------------------------------------------------------- rules that need the store
    def _lookup(self, request: web.Request) -> dict | None:
        """The subscriber named by exactly one of ?email= / ?phone= (GET endpoints)."""
        query = request.query
        if self.options.reject_unknown_keys and not set(query) <= {"email", "phone"}:
            raise bad(f"unknown query parameter(s): {', '.join(sorted(set(query) - {'email', 'phone'}))}")
        if ("email" in query) == ("phone" in query):
            raise bad("give exactly one query parameter: email or phone")
        if "email" in query:
            if not valid_email(query["email"]):
                raise bad("email is not a valid email address")
            return self.store.find("email", query["email"])
        if not valid_phone(query["phone"], self.options.phone_check):
            raise bad("phone must be a valid phone number in E.164 format, with '+' encoded as %2B")
        return self.store.find("phone", query["phone"])

    def _check_custom(self, values: dict[str, Any], where: str, v2: bool) -> dict[str, str]:
        """Enumerated values, types fixed by first values, the v2 limit; returns types of new attributes."""
        opts = self.options
        new: dict[str, str] = {}
        for name, value in values.items():
            if value is UNSET:
                continue
            allowed = opts.enum_properties.get(name)
            if allowed is not None:
                if type(value) is not str or value not in allowed:
                    raise bad(f"{where}.{name}: the value is not one of the values defined for this property")
                continue
            kind = self.attribute_types.get(name)
            if kind is None:
                new[name] = value_kind(value)
            elif opts.type_mismatch == "reject" and not fits(kind, value):
                raise bad(f"{where}.{name}: the attribute has type {kind}; a {value_kind(value)} value was sent")
        limit = opts.v2_custom_attribute_limit
        if v2 and new and limit is not None and len(self.attribute_types) + len(new) > limit:
            raise bad(f"{where}: there is a limit of {limit} custom attributes")
        return new

    def _apply_v2(self, user: V2User, endpoint: str) -> tuple[int, dict]:
        rec = self.store.resolve(user.identity, self.options.identifier_conflict)
        new_types = self._check_custom(user.custom, "attributes.custom", v2=True)
        if rec is None:
            rec = self._create(user.identity, endpoint)
        else:
            self.store.attach(rec, user.identity)
        self._write(rec, user, new_types)
        return 202, {"success": True, "message": "User attributes accepted"}

    def _apply_v2_record(self, user: V2User) -> tuple[int, dict]:
        return self._apply_v2(user, "postBulkUserAttributes")

    def _create(self, ident: Identity, endpoint: str) -> dict:
        self.created_users += 1
        self.created_by_endpoint[endpoint] += 1
        return self.store.create(ident, endpoint)

    def _write(self, rec: dict, user: V2User, new_types: dict[str, str]) -> None:
        attrs = rec["attributes"]
        for key, value in user.standard.items():
            if isinstance(value, dict):
                section = attrs.setdefault(key, {})
                for name, item in value.items():
                    if item is UNSET:
                        section.pop(name, None)
                    else:
                        section[name] = item
                if not section:
                    del attrs[key]
            elif value is UNSET:
                attrs.pop(key, None)
            else:
                attrs[key] = value
        self.attribute_types.update(new_types)
        custom = rec["custom"]
        for name, value in user.custom.items():
            if value is UNSET:
                custom.pop(name, None)
            else:
                custom[name] = value
        for sub in user.subscriptions:
            self.opt_ins += 1
            if not any(s["type"] == sub["type"] and s["channel"] == sub["channel"] for s in rec["subscriptions"]):
                rec["subscriptions"].append({**sub, "eligible": True})


def _rate_headers(resp: web.Response, limit: float | None, remaining: int | None) -> web.Response:
    if limit is not None:
        resp.headers["x-ratelimit-limit"] = str(int(limit)) if float(limit).is_integer() else str(limit)
        resp.headers["x-ratelimit-remaining"] = str(remaining if remaining is not None else int(limit))
    return resp
