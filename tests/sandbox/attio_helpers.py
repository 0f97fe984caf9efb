"""Hand-written aiohttp requests to the Attio sandbox, with every 200 body checked against the spec."""
from __future__ import annotations

import asyncio
import base64
import copy
import urllib.parse
from typing import Any, NamedTuple

import aiohttp
import jsonschema
import orjson

from dinsync.sandbox import AttioSandbox, SandboxThread
from tests.spec_validation import _ATTIO_URI, _attio_templates, _pointer, attio_spec

KEY = "attio-test-token-4e2b9c"
PEOPLE = "/v2/objects/people/records"
COMPANIES = "/v2/objects/companies/records"
ASSERT_PERSON = PEOPLE + "?matching_attribute=email_addresses"
ASSERT_COMPANY = COMPANIES + "?matching_attribute=domains"


class Resp(NamedTuple):
    status: int
    headers: dict
    body: Any

    @property
    def code(self) -> str:
        return self.body["code"]


def _nullable_enums(node):
    # OpenAPI 3.1 file quirk: `"type": ["string", "null"]` with an enum that omits null.
    if isinstance(node, dict):
        if isinstance(node.get("type"), list) and "null" in node["type"] and "enum" in node and None not in node["enum"]:
            node["enum"] = node["enum"] + [None]
        for value in node.values():
            _nullable_enums(value)
    elif isinstance(node, list):
        for value in node:
            _nullable_enums(value)
    return node


_RESPONSE_REGISTRY = None


def check_response(method: str, path: str, resp: Resp) -> None:
    """A 200 body must match the operation's response schema; every error must use Attio's envelope."""
    global _RESPONSE_REGISTRY
    if resp.status != 200:
        if isinstance(resp.body, dict):
            assert {"status_code", "type", "code", "message"} <= resp.body.keys(), resp.body
            assert resp.body["status_code"] == resp.status
        return
    if _RESPONSE_REGISTRY is None:
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT202012
        spec = _nullable_enums(copy.deepcopy(attio_spec()))
        _RESPONSE_REGISTRY = Registry().with_resource(_ATTIO_URI, Resource.from_contents(
            spec, default_specification=DRAFT202012))
    bare = urllib.parse.urlsplit(path).path
    spec = attio_spec()
    template = next(t for regex, t, _ in _attio_templates() if regex.match(bare) and method.lower() in spec["paths"][t])
    pointer = _pointer("paths", template, method.lower(), "responses", "200", "content", "application/json", "schema")
    validator = jsonschema.Draft202012Validator({"$ref": _ATTIO_URI + pointer}, registry=_RESPONSE_REGISTRY)
    errors = [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(resp.body)]
    assert not errors, f"{method} {template} 200 body off-spec: {errors[:3]}"


def auth_header(token: str | None, scheme: str = "Bearer") -> dict:
    if token is None:
        return {}
    if scheme == "Basic":
        return {"Authorization": "Basic " + base64.b64encode(f"{token}:".encode()).decode()}
    return {"Authorization": f"{scheme} {token}"}


async def send(session: aiohttp.ClientSession, url: str, method: str, path: str, body: Any = None,
               headers: dict | None = None, raw: bytes | None = None) -> Resp:
    data = raw
    if data is None and body is not None:
        data = orjson.dumps(body)
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    async with session.request(method, url + path, data=data, headers=hdrs) as r:
        text = await r.read()
        try:
            parsed = orjson.loads(text) if text else None
        except ValueError:
            parsed = text.decode(errors="replace")
        resp = Resp(r.status, dict(r.headers), parsed)
    check_response(method, path, resp)
    return resp


class Client:
    """Blocking calls over aiohttp (one session per call), for readable tests."""

    def __init__(self, url: str, token: str | None = KEY):
        self.url, self.token = url, token

    def request(self, method: str, path: str, body: Any = None, *, token: Any = "default", scheme: str = "Bearer",
                raw: bytes | None = None, timeout: float = 10, headers: dict | None = None) -> Resp:
        token = self.token if token == "default" else token
        hdrs = headers if headers is not None else auth_header(token, scheme)

        async def go() -> Resp:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
                return await send(session, self.url, method, path, body, hdrs, raw)
        return asyncio.run(go())

    def get(self, path: str, **kw: Any) -> Resp:
        return self.request("GET", path, **kw)

    def put(self, path: str, body: Any = None, **kw: Any) -> Resp:
        return self.request("PUT", path, body, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Resp:
        return self.request("POST", path, body, **kw)

    def patch(self, path: str, body: Any = None, **kw: Any) -> Resp:
        return self.request("PATCH", path, body, **kw)

    def burst(self, requests: list[tuple[str, str, Any]], token: str | None = None) -> list[Resp]:
        """Send all requests at once on one session (for rate-limit tests)."""
        async def go() -> list[Resp]:
            async with aiohttp.ClientSession() as session:
                hdrs = auth_header(token or self.token)
                return await asyncio.gather(*(send(session, self.url, m, p, b, hdrs) for m, p, b in requests))
        return asyncio.run(go())

    # conveniences
    def assert_person(self, email: str | list[str], **values: Any) -> Resp:
        emails = [email] if isinstance(email, str) else email
        return self.put(ASSERT_PERSON, {"data": {"values": {"email_addresses": emails, **values}}})

    def assert_company(self, domain: str, **values: Any) -> Resp:
        return self.put(ASSERT_COMPANY, {"data": {"values": {"domains": [domain], **values}}})


def values_body(**values: Any) -> dict:
    return {"data": {"values": values}}


def start(threads: list, token_list: tuple[str, ...] = (KEY,), **options: Any) -> tuple[SandboxThread, Client]:
    options.setdefault("limits", False)
    thread = SandboxThread(AttioSandbox(list(token_list), **options))
    threads.append(thread)
    return thread, Client(thread.start())
