"""The Attentive sandbox over real loopback sockets, with hand-written aiohttp requests (not dinsync's client)."""
from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import jsonschema
import orjson
import pytest
from yarl import URL

from dinsync.sandbox import AttentiveOptions, AttentiveSandbox, Faults, SandboxThread, build_sandbox
from dinsync.sandbox.attentive import DEFAULT_RATE_LIMITS, ENDPOINT_SCOPES, ROUTES, valid_phone, value_kind
from dinsync.sandbox.attentive import options as attentive_options
from dinsync.sandbox.faults import error, reset, reset_after_apply, respond, throttle
from tests.spec_validation import validate_attentive_request

KEY = "attn-test-key-9b2e41"
SPECS = Path(__file__).parents[1] / "specs"
V1 = json.loads((SPECS / "attentive-v1-openapi.yaml").read_text())
V2 = json.loads((SPECS / "attentive-v2-openapi.yaml").read_text())
CUSTOM = "/v1/attributes/custom"
USER = "/v2/user/attributes"
BULK = "/v2/bulk/user/attributes"
ALICE, ALICE_PHONE = "alice@example.com", "+12015550101"
BOB, BOB_PHONE = "bob@example.com", "+12015550102"


class Resp(NamedTuple):
    status: int
    headers: dict
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


async def _send(session: aiohttp.ClientSession, base: str, method: str, path: str, body: Any = None, *,
                key: str | None = KEY, raw: bytes | None = None, headers: dict | None = None) -> Resp:
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    if key is not None:
        hdrs.setdefault("Authorization", f"Bearer {key}")
    data = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
    url = URL(path if path.startswith("http") else base + path, encoded=True)  # keep %2B and bare '+' as given
    async with session.request(method, url, data=data, headers=hdrs) as resp:
        return Resp(resp.status, {k.lower(): v for k, v in resp.headers.items()}, await resp.read())


class Client:
    """Blocking wrapper over aiohttp: one session per call, or a concurrent burst."""

    def __init__(self, url: str):
        self.url = url

    def request(self, method: str, path: str, body: Any = None, **kw: Any) -> Resp:
        async def run() -> Resp:
            async with aiohttp.ClientSession() as session:
                return await _send(session, self.url, method, path, body, **kw)
        return asyncio.run(run())

    def post(self, path: str, body: Any = None, **kw: Any) -> Resp:
        return self.request("POST", path, body, **kw)

    def get(self, path: str, **kw: Any) -> Resp:
        return self.request("GET", path, **kw)

    def burst(self, calls: list[tuple], **kw: Any) -> list[Resp]:
        """All (method, path, body) calls at once over one session."""
        async def run() -> list[Resp]:
            async with aiohttp.ClientSession() as session:
                return await asyncio.gather(*(_send(session, self.url, m, p, b, **kw) for m, p, b in calls))
        return asyncio.run(run())


@pytest.fixture
def make():
    """make(seed=True, keys=KEY, **options) -> (SandboxThread, Client); limits off unless asked for."""
    threads: list[SandboxThread] = []

    def _make(seed: bool = True, keys: Any = KEY, faults: Faults | None = None, **options: Any):
        options.setdefault("limits", False)
        options.setdefault("bulk_pending_seconds", 0.0)
        options.setdefault("bulk_job_seconds", 0.0)
        sandbox = AttentiveSandbox(keys, faults=faults, **options)
        if seed:
            sandbox.add_subscriber(ALICE, ALICE_PHONE, attributes={"firstName": "Alice"}, custom={"plan": "pro"})
            sandbox.add_subscriber(BOB, BOB_PHONE)
        thread = SandboxThread(sandbox)
        threads.append(thread)
        return thread, Client(thread.start())

    yield _make
    for thread in threads:
        thread.stop()


def sub(thread: SandboxThread, **key: str) -> dict | None:
    return thread.call(thread.sandbox.get_subscriber, **key)


def count(thread: SandboxThread) -> int:
    return thread.call(lambda: len(thread.sandbox.store))


def _schema_validator(spec: dict, name: str, patch=None) -> jsonschema.Draft4Validator:
    components = copy.deepcopy(spec["components"])
    if patch:
        patch(components["schemas"][name])
    return jsonschema.Draft4Validator({"$ref": f"#/components/schemas/{name}", "components": components})


def error_message(resp: Resp, status: int) -> str:
    """Asserts the status and that the body is the spec's ErrorResponseDto; returns its message."""
    assert resp.status == status, (resp.status, resp.body)
    body = resp.json()
    _schema_validator(V1, "ErrorResponseDto").validate(body)
    assert set(body) == {"error"} and set(body["error"]) == {"id", "message"}
    return body["error"]["message"]


def wait_for_job(client: Client, job_id: str, timeout: float = 15.0) -> tuple[dict, list[str]]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/v2/bulk/job/{job_id}").json()
        if not seen or seen[-1] != body["status"]:
            seen.append(body["status"])
        if body["status"] in ("COMPLETED", "FAILED") or time.monotonic() > deadline:
            return body, seen
        time.sleep(0.02)


# ------------------------------------------------------------------ agreement with the spec files
def _props(spec: dict, name: str) -> set[str]:
    return set(spec["components"]["schemas"][name]["properties"])


def test_request_keys_routes_and_scopes_come_from_the_specs():
    o = attentive_options
    v2 = V2["components"]["schemas"]["CreateUserAttributesRequestDtoV2"]["properties"]
    attrs = v2["attributes"]["properties"]
    assert o.CUSTOM_ATTRIBUTES_KEYS == _props(V1, "CustomAttributesRequest")
    assert o.EVENT_USER_KEYS == _props(V1, "EventUser")
    assert o.EXTERNAL_IDENTIFIERS_KEYS == _props(V1, "ExternalIdentifiers")
    assert o.IDENTIFY_KEYS == _props(V1, "IdentifyRequestDto")
    assert o.V1_CUSTOM_IDENTIFIER_KEYS == _props(V1, "CustomIdentifierDto1")
    assert o.V2_USER_KEYS == set(v2)
    assert o.V2_ATTRIBUTE_KEYS == set(attrs)
    assert o.V2_DEMOGRAPHIC_KEYS == set(attrs["demographic"]["properties"])
    assert o.V2_LOCATION_KEYS == set(attrs["location"]["properties"])
    assert o.V2_LOCALE_KEYS == set(attrs["locale"]["properties"])
    assert o.V2_SUBSCRIPTION_KEYS == set(v2["subscriptions"]["items"]["properties"])
    assert o.V2_IDENTIFIER_KEYS == set(v2["identifiers"]["properties"])
    assert o.V2_CUSTOM_IDENTIFIER_KEYS == _props(V2, "CustomIdentifier")
    assert o.BULK_KEYS == _props(V2, "UserAttributes")
    # the bulk schema is the single one, repeated
    assert V2["components"]["schemas"]["CreateUserAttributesRequestDtoV21"]["properties"].keys() == v2.keys()
    for (method, path), endpoint in ROUTES.items():
        spec, spec_path = (V1, path[len("/v1"):]) if path.startswith("/v1/") else (V2, path)
        operation = spec["paths"][spec_path][method.lower()]
        assert operation["operationId"] == endpoint
        oauth = [s["OAuthFlow"] for s in operation.get("security", []) if "OAuthFlow" in s]
        assert set(ENDPOINT_SCOPES[endpoint]) == set(oauth[0] if oauth else ()), endpoint
    assert set(DEFAULT_RATE_LIMITS) == set(ROUTES.values())
    assert DEFAULT_RATE_LIMITS["getSubscriptions"] == DEFAULT_RATE_LIMITS["identify"] == 10
    assert DEFAULT_RATE_LIMITS["postBulkUserAttributes"] == DEFAULT_RATE_LIMITS["getBulkJobStatus"] == 100
    assert {DEFAULT_RATE_LIMITS[e] for e in ("getMe", "postCustomAttributes", "getCustomAttributes",
                                             "postUserAttributes")} == {150}
    for endpoint in ("postBulkUserAttributes", "getBulkJobStatus", "postUserAttributes"):
        spec_path = next(p for (m, p), e in ROUTES.items() if e == endpoint)
        method = next(m for (m, p), e in ROUTES.items() if e == endpoint).lower()
        text = V2["paths"][spec_path][method]["description"]
        assert f"Default Rate Limit: {DEFAULT_RATE_LIMITS[endpoint]} requests per second" in text


def _examples(schema: dict, spec: dict) -> Any:
    """A document made of the spec's own per-property `example`s."""
    if "$ref" in schema:
        return _examples(spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]], spec)
    if "example" in schema:
        return schema["example"]
    if schema.get("type") == "array":
        return [_examples(schema["items"], spec)]
    return {name: _examples(sub_schema, spec) for name, sub_schema in schema.get("properties", {}).items()}


def test_bodies_made_of_the_specs_examples_are_accepted(make):
    thread, client = make()
    v2_schema = V2["components"]["schemas"]["CreateUserAttributesRequestDtoV2"]
    body = _examples(v2_schema, V2)
    del body["subscriptions"]  # opting in is not what the sync does; tested separately
    validate_attentive_request("POST", USER, orjson.dumps(body))
    resp = client.post(USER, body)
    assert resp.status == 202
    _schema_validator(V2, "Success").validate(resp.json())
    assert resp.json()["success"] is True
    stored = sub(thread, email="jsmith@attentive.com")
    assert stored["attributes"]["location"]["region"] == "AU-NSW" and stored["custom"]["lucky number"] == 6
    assert stored["customIdentifiers"] == {"loyalty_points_id": "ADFK4D7D"}

    thread.call(thread.sandbox.add_subscriber, "test@gmail.com")
    v1_body = {"properties": V1["components"]["schemas"]["CustomAttributesRequest"]["properties"]["properties"]
               ["example"], "user": {"email": "test@gmail.com", "phone": "+13115552368"}}
    validate_attentive_request("POST", CUSTOM, orjson.dumps(v1_body))
    assert client.post(CUSTOM, v1_body).status == 200
    assert thread.stats()["created_users"] == 1  # the v2 example user


# ------------------------------------------------------------------ auth and scopes
def test_me_and_auth(make):
    thread, client = make()
    for path in ("/v1/me", "/v2/me"):
        resp = client.get(path)
        assert resp.status == 200
        _schema_validator(V1, "GetMeResponseDto").validate(resp.json())
        assert set(resp.json()) == _props(V1, "GetMeResponseDto")
    for kw in ({"key": None}, {"key": "wrong-key-77aa"}, {"key": None, "headers": {"Authorization": f"Basic {KEY}"}},
               {"key": None, "headers": {"Authorization": KEY}}):
        resp = client.post(CUSTOM, {"properties": {"x": "1"}, "user": {"email": ALICE}}, **kw)
        assert error_message(resp, 401) == "Unauthorized"
        assert b"wrong-key-77aa" not in resp.body and KEY.encode() not in resp.body
    assert client.get("/v1/me", key=None, headers={"Authorization": f"bearer {KEY}"}).status == 200
    assert "x" not in sub(thread, email=ALICE)["custom"]
    sandbox = thread.sandbox
    recorded = thread.call(lambda: repr(list(sandbox.log)) + repr(sandbox.stats()) + repr(sandbox))
    assert KEY not in recorded and "wrong-key-77aa" not in recorded


def test_missing_scopes_answer_403(make):
    keys = {"attrs-only": ["attributes:write"], "subs-write": ["subscriptions:write"],
            "both": ["attributes:write", "subscriptions:write"], "identity": ["identity:write"]}
    thread, client = make(keys=keys)
    v2_body = {"identifiers": {"email": ALICE}, "attributes": {"firstName": "A"}}
    assert client.post(CUSTOM, {"properties": {"x": "1"}, "user": {"email": ALICE}}, key="attrs-only").status == 200
    assert client.get(f"{CUSTOM}?email={ALICE}", key="attrs-only").status == 200
    assert "subscriptions:write" in error_message(client.post(USER, v2_body, key="attrs-only"), 403)
    assert "attributes:write" in error_message(client.post(USER, v2_body, key="subs-write"), 403)
    assert "attributes:write" in error_message(client.post(CUSTOM, {"properties": {}, "user": {"email": ALICE}},
                                                           key="subs-write"), 403)
    assert "subscriptions:read" in error_message(client.get(f"/v1/subscriptions?email={ALICE}", key="attrs-only"), 403)
    # "subscriptions:write: read and write subscriptions" -> write grants read, unless turned off
    assert client.get(f"/v1/subscriptions?email={ALICE}", key="subs-write").status == 200
    assert client.post(USER, v2_body, key="both").status == 202
    ident = {"email": ALICE, "clientUserId": "c-1"}
    assert "identity:write" in error_message(client.post("/v1/identity-resolution/user-identifiers", ident,
                                                         key="both"), 403)
    assert client.post("/v1/identity-resolution/user-identifiers", ident, key="identity").status == 202
    assert client.get("/v1/me", key="identity").status == 200  # no scope needed
    thread2, client2 = make(keys=keys, write_implies_read=False)
    assert client2.get(f"/v1/subscriptions?email={ALICE}", key="subs-write").status == 403
    # keys given as a list get the default scopes
    thread3, client3 = make()
    assert client3.get(f"/v1/subscriptions?email={ALICE}").status == 200
    assert client3.post("/v1/identity-resolution/user-identifiers", ident).status == 403


# ------------------------------------------------------------------ v1 custom attributes
def test_custom_attributes_update_a_subscriber_by_email_or_phone(make):
    thread, client = make()
    resp = client.post(CUSTOM, {"properties": {"favorite team": "Vikings", "VIP": "TRUE"}, "user": {"email": ALICE}})
    assert (resp.status, resp.body) == (200, b"")
    resp = client.post(CUSTOM, {"properties": {"Gift card balance": 50.89}, "user": {"phone": BOB_PHONE}})
    assert resp.status == 200
    assert sub(thread, email=ALICE)["custom"] == {"plan": "pro", "favorite team": "Vikings", "VIP": "TRUE"}
    assert sub(thread, email=BOB)["custom"] == {"Gift card balance": 50.89}
    # emails match case-insensitively by default; keys are case sensitive
    assert client.post(CUSTOM, {"properties": {"Plan": "x"}, "user": {"email": "ALICE@Example.com"}}).status == 200
    assert sub(thread, email=ALICE)["custom"]["plan"] == "pro" and sub(thread, email=ALICE)["custom"]["Plan"] == "x"
    got = client.get(f"{CUSTOM}?email={ALICE}")
    assert got.status == 200
    _schema_validator(V1, "GetCustomAttributesResponse",  # the spec requires "attribute" but lists "name"
                      lambda s: s["items"].update(required=["name", "value"])).validate(got.json())
    assert got.json() == [{"name": "plan", "value": "pro"}, {"name": "favorite team", "value": "Vikings"},
                          {"name": "VIP", "value": "TRUE"}, {"name": "Plan", "value": "x"}]
    assert client.get(f"{CUSTOM}?phone=%2B12015550102").json() == [{"name": "Gift card balance", "value": "50.89"}]
    assert thread.stats()["created_users"] == 0 and count(thread) == 2


def test_first_value_fixes_the_type_and_enumerated_properties_are_closed(make):
    thread, client = make(enum_properties={"size": ["Adult", "Teen", "Children's"]})

    def post(props: dict) -> Resp:
        return client.post(CUSTOM, {"properties": props, "user": {"email": ALICE}})

    assert post({"age": "24", "VIP": "TRUE", "birthday": "1986-11-16", "sign up": "2021-04-23T16:04:33Z"}).status == 200
    types = thread.call(lambda: dict(thread.sandbox.attribute_types))
    assert {k: types[k] for k in ("age", "VIP", "birthday", "sign up", "plan")} == {
        "age": "NUMBER", "VIP": "BOOLEAN", "birthday": "DATE", "sign up": "DATE", "plan": "STRING"}
    assert "properties.age" in error_message(post({"age": "twenty"}), 400)
    assert "properties.VIP" in error_message(post({"VIP": "maybe"}), 400)
    assert "properties.birthday" in error_message(post({"birthday": "soon"}), 400)
    assert post({"age": 30, "VIP": False, "birthday": "1986-11-17", "plan": 7}).status == 200  # STRING takes any scalar
    assert sub(thread, email=ALICE)["custom"]["age"] == 30
    assert post({"size": "Teen"}).status == 200
    assert "properties.size" in error_message(post({"size": "teen"}), 400)  # values are case sensitive
    assert "properties.size" in error_message(post({"size": "Senior"}), 400)
    assert sub(thread, email=ALICE)["custom"]["size"] == "Teen"
    thread.call(thread.sandbox.define_property, "tier", ["Gold"])
    assert post({"tier": "Gold"}).status == 200 and post({"tier": "Silver"}).status == 400
    thread2, client2 = make(type_mismatch="accept")
    client2.post(CUSTOM, {"properties": {"age": "24"}, "user": {"email": ALICE}})
    assert client2.post(CUSTOM, {"properties": {"age": "old"}, "user": {"email": ALICE}}).status == 200
    assert [value_kind(v) for v in ("24", "-1.5e3", "true", "2021-04-23T16:04:33Z", "x", 3, True, "")] == [
        "NUMBER", "NUMBER", "BOOLEAN", "DATE", "STRING", "NUMBER", "BOOLEAN", "STRING"]


@pytest.mark.parametrize("body, field", [
    ({"properties": {"cities": ["chicago", "new york"]}, "user": {"email": ALICE}}, "properties.cities"),
    ({"properties": {"address": {"city": "x"}}, "user": {"email": ALICE}}, "properties.address"),
    ({"properties": {"x" * 201: "1"}, "user": {"email": ALICE}}, "200 characters"),
    ({"properties": {"": "1"}, "user": {"email": ALICE}}, "name must not be empty"),
    ({"properties": {"n": None}, "user": {"email": ALICE}}, "properties.n"),
    ({"properties": [], "user": {"email": ALICE}}, "properties must be an object"),
    ({"user": {"email": ALICE}}, "properties is required"),
    ({"properties": {"x": "1"}}, "user is required"),
    ({"properties": {"x": "1"}, "user": {}}, "user needs"),
    ({"properties": {"x": "1"}, "user": {"email": ALICE, "userId": "u1"}}, "user has unknown field(s): userId"),
    ({"properties": {"x": "1"}, "user": {"phone": "19148440001"}}, "user.phone"),
    ({"properties": {"x": "1"}, "user": {"phone": "+1 914 844 0001"}}, "user.phone"),
    ({"properties": {"x": "1"}, "user": {"phone": "+1914844000"}}, "user.phone"),  # too short for +1
    ({"properties": {"x": "1"}, "user": {"email": "not-an-email"}}, "user.email"),
    ({"properties": {"x": "1"}, "user": {"email": 42}}, "user.email must be a string"),
    ({"properties": {"x": "1"}, "user": {"externalIdentifiers": {"customIdentifiers": [{"name": "a"}]}}},
     "customIdentifiers[0].value is required"),
    ({"properties": {"x": "1"}, "user": {"email": ALICE}, "event": "x"}, "request has unknown field(s): event"),
])
def test_custom_attributes_validation(make, body, field):
    thread, client = make()
    assert field in error_message(client.post(CUSTOM, body), 400)
    assert "x" not in sub(thread, email=ALICE)["custom"]


def test_name_length_limit_and_malformed_json(make):
    thread, client = make()
    assert client.post(CUSTOM, {"properties": {"n" * 200: "ok"}, "user": {"email": ALICE}}).status == 200
    for raw in (b"{not json", b"[1]", b""):
        assert "JSON" in error_message(client.post(CUSTOM, raw=raw), 400)


def test_request_bodies_must_be_sent_as_json(make):
    """The specs declare only `application/json` request bodies: another content type is refused
    (as JSON APIs answer it: 415), so a client that forgot its Content-Type is caught here."""
    thread, client = make()
    body = {"properties": {"plan": "other"}, "user": {"email": ALICE}}
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        for path, doc in ((CUSTOM, body), (USER, {"identifiers": {"email": ALICE}}),
                          (BULK, {"users": [{"identifiers": {"email": ALICE}}]})):
            resp = client.post(path, doc, headers={"Content-Type": content_type})
            assert "application/json" in error_message(resp, 415)
    assert sub(thread, email=ALICE)["custom"] == {"plan": "pro"}
    assert client.post(CUSTOM, body, headers={"Content-Type": "application/json; charset=utf-8"}).status == 200


@pytest.mark.parametrize("null_values, stored", [("ignore", {"plan": "pro"}), ("unset", {})])
def test_null_values_are_an_option(make, null_values, stored):
    thread, client = make(null_values=null_values)
    assert client.post(CUSTOM, {"properties": {"plan": None}, "user": {"email": ALICE}}).status == 200
    assert sub(thread, email=ALICE)["custom"] == stored
    assert client.post(USER, {"identifiers": {"email": ALICE}, "attributes": {"firstName": None}}).status == 202
    assert ("firstName" in sub(thread, email=ALICE)["attributes"]) == (null_values == "ignore")


@pytest.mark.parametrize("unknown_user", ["reject", "accept", "create"])
def test_unknown_users_on_v1_follow_the_option(make, unknown_user):
    thread, client = make(unknown_user=unknown_user)
    body = {"properties": {"score": "5"}, "user": {"email": "ghost@example.com", "phone": "+12015550199"}}
    resp = client.post(CUSTOM, body)
    stats = thread.stats()
    if unknown_user == "reject":
        assert "No subscriber" in error_message(resp, 404)
        assert (stats["created_users"], stats["unknown_user_writes"], count(thread)) == (0, 0, 2)
    elif unknown_user == "accept":
        assert (resp.status, resp.body) == (200, b"")
        assert (stats["created_users"], stats["unknown_user_writes"], count(thread)) == (0, 1, 2)
        assert sub(thread, email="ghost@example.com") is None
    else:
        assert resp.status == 200
        assert (stats["created_users"], stats["created_by_endpoint"], count(thread)) == (
            1, {"postCustomAttributes": 1}, 3)
        ghost = sub(thread, phone="+12015550199")
        assert ghost["email"] == "ghost@example.com" and ghost["custom"] == {"score": "5"}
        assert ghost["origin"] == "postCustomAttributes" and ghost["subscriptions"] == []
        assert [s["email"] for s in thread.call(thread.sandbox.created_subscribers)] == ["ghost@example.com"]
    # external identifiers must be linked through the identity API first: unknown ones never create
    ext = {"properties": {"score": "5"}, "user": {"externalIdentifiers": {"clientUserId": "nobody"}}}
    resp = client.post(CUSTOM, ext)
    assert resp.status == (200 if unknown_user == "accept" else 404)
    assert sub(thread, client_user_id="nobody") is None


def test_identity_links_external_identifiers(make):
    thread, client = make(keys={KEY: ["attributes:write", "identity:write"]})
    path = "/v1/identity-resolution/user-identifiers"
    body = {"email": ALICE, "clientUserId": "c-42", "customIdentifiers": [{"name": "loyaltyId", "value": "L1"}]}
    validate_attentive_request("POST", path, orjson.dumps(body))
    resp = client.post(path, body)
    assert (resp.status, resp.body) == (202, b"")
    alice = sub(thread, client_user_id="c-42")
    assert alice["email"] == ALICE and alice["customIdentifiers"] == {"loyaltyId": "L1"}
    upd = {"properties": {"linked": "yes"}, "user": {"externalIdentifiers": {
        "customIdentifiers": [{"name": "loyaltyId", "value": "L1"}]}}}
    assert client.post(CUSTOM, upd).status == 200
    assert sub(thread, email=ALICE)["custom"]["linked"] == "yes"
    # unknown email: accepted, nothing created
    assert client.post(path, {"email": "ghost@example.com", "clientUserId": "c-9"}).status == 202
    assert count(thread) == 2 and thread.stats()["created_users"] == 0
    assert "clientUserId or customIdentifiers" in error_message(client.post(path, {"email": ALICE}), 400)
    assert "at least one other" in error_message(client.post(path, {"clientUserId": "c-1"}), 400)
    assert "100 characters" in error_message(client.post(path, {"email": ALICE, "clientUserId": "c" * 101}), 400)
    assert error_message(client.post(path, raw=b""), 400)  # the body is optional in the spec, but needed


# ------------------------------------------------------------------ lookups
def test_custom_attribute_lookup_rules(make):
    thread, client = make()
    assert "exactly one" in error_message(client.get(f"{CUSTOM}?email={ALICE}&phone=%2B12015550101"), 400)
    assert "exactly one" in error_message(client.get(CUSTOM), 400)
    assert "%2B" in error_message(client.get(f"{CUSTOM}?phone=+12015550101"), 400)  # '+' decodes as a space
    assert "unknown query" in error_message(client.get(f"{CUSTOM}?email={ALICE}&limit=5"), 400)
    assert client.get(f"{CUSTOM}?phone=%2B12015550101").json() == [{"name": "plan", "value": "pro"}]
    assert client.get(f"{CUSTOM}?email={BOB}").json() == []  # known, no custom attributes
    assert "not found" in error_message(client.get(f"{CUSTOM}?email=ghost@example.com"), 404)
    thread2, client2 = make(unknown_attributes_lookup="empty")
    resp = client2.get(f"{CUSTOM}?email=ghost@example.com")
    assert (resp.status, resp.json()) == (200, [])


def test_the_specs_example_phones_are_accepted_by_default(make):
    """The specs ask for E.164 only; their own examples (+13115552368 in v1, +15008675309 in v2) are
    numbers libphonenumber calls unassigned or fictional: a default that refused them refused what
    the spec allows."""
    thread, client = make()
    thread.call(thread.sandbox.add_subscriber, phone="+13115552368")
    assert client.get(f"{CUSTOM}?phone=%2B13115552368").status == 200
    assert client.post(CUSTOM, {"properties": {"plan": "pro"}, "user": {"phone": "+13115552368"}}).status == 200
    assert client.post(USER, {"identifiers": {"phone": "+13115552368"}, "attributes": {"firstName": "A"}}).status == 202
    assert sub(thread, phone="+13115552368")["custom"] == {"plan": "pro"}
    assert "E.164" in error_message(client.post(USER, {"identifiers": {"phone": "13115552368"}}), 400)
    thread, client = make(phone_check="valid")  # the stricter option: assigned ranges only
    assert "user.phone" in error_message(client.post(CUSTOM, {"properties": {"x": "1"},
                                                              "user": {"phone": "+19990000000"}}), 400)


def test_subscription_lookup_answers_per_channel_and_404_for_unknown(make):
    thread, client = make()
    thread.call(thread.sandbox.add_subscriber, "carol@example.com", "+12015550103", subscriptions=[
        {"type": "MARKETING", "channel": "EMAIL", "eligible": False},
        {"type": "TRANSACTIONAL", "channel": "TEXT"}, {"type": "MARKETING", "channel": "TEXT"}])
    validator = _schema_validator(V1, "GetSubscriptionsResponseDto")
    resp = client.get("/v1/subscriptions?email=carol@example.com")
    validator.validate(resp.json())
    assert resp.json() == {"subscriptionEligibilities": [
        {"subscription": {"type": "MARKETING", "channel": "EMAIL"}, "eligibility": {"isEligible": False}}]}
    resp = client.get("/v1/subscriptions?phone=%2B12015550103")
    assert [e["subscription"]["type"] for e in resp.json()["subscriptionEligibilities"]] == [
        "TRANSACTIONAL", "MARKETING"]
    assert "not found" in error_message(client.get("/v1/subscriptions?email=ghost@example.com"), 404)
    assert "not found" in error_message(client.get("/v1/subscriptions?phone=%2B12015550199"), 404)
    assert error_message(client.get(f"/v1/subscriptions?email={ALICE}&phone=%2B12015550101"), 400)
    assert error_message(client.get("/v1/subscriptions?phone=12015550101"), 400)
    # a v2-created user exists but has no subscription
    client.post(USER, {"identifiers": {"email": "dan@example.com"}})
    assert client.get("/v1/subscriptions?email=dan@example.com").json() == {"subscriptionEligibilities": []}


# ------------------------------------------------------------------ v2 single user
def test_v2_updates_existing_subscribers_and_merges_attributes(make):
    thread, client = make()
    body = {"identifiers": {"email": ALICE}, "attributes": {
        "lastName": "Smith", "demographic": {"age": 29, "dateOfBirth": "1995-02-28"},
        "location": {"latitude": "40.730610", "longitude": "-73.935242", "country": "US", "region": "US-NY"},
        "locale": {"language": "French", "country": "CA"}, "custom": {"lucky number": 6, "has pets": True}}}
    validate_attentive_request("POST", USER, orjson.dumps(body))
    assert client.post(USER, body).status == 202
    body2 = {"identifiers": {"phone": ALICE_PHONE}, "attributes": {"demographic": {"title": "Dr"}}}
    assert client.post(USER, body2).status == 202
    alice = sub(thread, email=ALICE)
    assert alice["attributes"] == {"firstName": "Alice", "lastName": "Smith",
                                   "demographic": {"age": 29, "dateOfBirth": "1995-02-28", "title": "Dr"},
                                   "location": body["attributes"]["location"], "locale": {"language": "French",
                                                                                         "country": "CA"}}
    assert alice["custom"] == {"plan": "pro", "lucky number": 6, "has pets": True}
    stats = thread.stats()
    assert (stats["created_users"], stats["subscribers"], stats["opt_ins"]) == (0, 2, 0)


def test_v2_creates_unknown_users_and_counts_them(make):
    thread, client = make()
    resp = client.post(USER, {"identifiers": {"email": "new@example.com", "phone": "+12015550150"},
                              "attributes": {"firstName": "New"}})
    assert resp.status == 202 and resp.json()["success"] is True  # indistinguishable from an update
    resp = client.post(USER, {"identifiers": {"clientUserId": "only-id"}})
    assert resp.status == 202
    stats = thread.stats()
    assert (stats["created_users"], stats["created_by_endpoint"], stats["subscribers"]) == (
        2, {"postUserAttributes": 2}, 4)
    created = thread.call(thread.sandbox.created_subscribers)
    assert [(c["email"], c["clientUserId"], c["origin"]) for c in created] == [
        ("new@example.com", None, "postUserAttributes"), (None, "only-id", "postUserAttributes")]


def test_v2_identifiers_attach_and_conflicts(make):
    thread, client = make()
    # a known email with a new phone: the phone is added to that subscriber
    assert client.post(USER, {"identifiers": {"email": BOB, "clientUserId": "bob-1"}}).status == 202
    assert sub(thread, client_user_id="bob-1")["email"] == BOB
    # identifiers naming two subscribers
    body = {"identifiers": {"email": ALICE, "phone": BOB_PHONE}, "attributes": {"firstName": "Mix"}}
    assert "different subscribers" in error_message(client.post(USER, body), 400)
    assert "different subscribers" in error_message(
        client.post(CUSTOM, {"properties": {"x": "1"}, "user": {"email": ALICE, "phone": BOB_PHONE}}), 400)
    assert sub(thread, email=ALICE)["attributes"]["firstName"] == "Alice"
    thread2, client2 = make(identifier_conflict="first")
    assert client2.post(USER, body).status == 202
    assert sub(thread2, email=ALICE)["attributes"]["firstName"] == "Mix"
    assert sub(thread2, email=BOB)["attributes"] == {}
    assert sub(thread2, email=ALICE)["phone"] == ALICE_PHONE  # identifiers are never moved


@pytest.mark.parametrize("attributes, identifiers, field, spec_catches", [
    ({}, {"phone": "19148440001"}, "identifiers.phone", True),
    ({}, {"phone": "+1---914---844---0001"}, "identifiers.phone", True),
    ({}, {"email": "a@b"}, "identifiers.email", False),
    ({}, {"email": ""}, "identifiers.email must not be empty", False),
    ({}, {"email": None}, "identifiers.email must be a string", True),
    ({}, {}, "identifiers must have at least one", True),
    ({}, {"clientUserId": "c" * 101}, "identifiers.clientUserId", False),
    ({}, {"customIdentifiers": [{"name": "x", "value": "1"}]}, "identifiers.customIdentifiers[0]", True),
    ({}, {"email": ALICE, "userId": "1"}, "identifiers has unknown field(s): userId", True),
    ({"demographic": {"dateOfBirth": "2022-13-08"}}, {"email": ALICE}, "attributes.demographic.dateOfBirth", True),
    ({"demographic": {"dateOfBirth": "11/08/2022"}}, {"email": ALICE}, "attributes.demographic.dateOfBirth", True),
    ({"demographic": {"age": "29"}}, {"email": ALICE}, "attributes.demographic.age", True),
    ({"demographic": {"age": 29.5}}, {"email": ALICE}, "attributes.demographic.age", True),
    ({"demographic": {"age": True}}, {"email": ALICE}, "attributes.demographic.age", True),
    ({"location": {"latitude": "91"}}, {"email": ALICE}, "attributes.location.latitude", False),
    ({"location": {"latitude": 40.7}}, {"email": ALICE}, "attributes.location.latitude must be a string", True),
    ({"location": {"longitude": "-180.5"}}, {"email": ALICE}, "attributes.location.longitude", False),
    ({"location": {"longitude": "east"}}, {"email": ALICE}, "attributes.location.longitude", False),
    ({"location": {"country": "USA"}}, {"email": ALICE}, "attributes.location.country", False),
    ({"location": {"country": "us"}}, {"email": ALICE}, "attributes.location.country", False),
    ({"location": {"region": "AUNSW"}}, {"email": ALICE}, "attributes.location.region", False),
    ({"location": {"region": "ZZ-1"}}, {"email": ALICE}, "attributes.location.region", False),
    ({"locale": {"country": "XX"}}, {"email": ALICE}, "attributes.locale.country", False),
    ({"locale": {"currency": "EUR"}}, {"email": ALICE}, "attributes.locale has unknown field(s): currency", True),
    ({"firstName": 5}, {"email": ALICE}, "attributes.firstName must be a string", True),
    ({"firstName": None}, {"email": ALICE}, "attributes.firstName must be a string", True),
    ({"nickname": "Al"}, {"email": ALICE}, "attributes has unknown field(s): nickname", True),
    ({"custom": {"cities": ["NYC"]}}, {"email": ALICE}, "attributes.custom.cities", True),
    ({"custom": {"fav": {"city": "Boston"}}}, {"email": ALICE}, "attributes.custom.fav", True),
    ({"custom": {"plan": None}}, {"email": ALICE}, "attributes.custom.plan", False),
    ({"demographic": None}, {"email": ALICE}, "attributes.demographic must be an object", True),
])
def test_v2_validation_names_the_field(make, attributes, identifiers, field, spec_catches):
    thread, client = make()
    body = {"identifiers": identifiers, "attributes": attributes}
    assert field in error_message(client.post(USER, body), 400)
    if spec_catches:  # the spec validator refuses it too; the others are formats the schema leaves to prose
        with pytest.raises(AssertionError):
            validate_attentive_request("POST", USER, orjson.dumps(body))
    else:
        validate_attentive_request("POST", USER, orjson.dumps(body))
    stats = thread.stats()
    assert (stats["created_users"], stats["subscribers"]) == (0, 2)
    assert sub(thread, email=ALICE)["attributes"] == {"firstName": "Alice"}


def test_v2_body_shape(make):
    thread, client = make()
    assert "identifiers is required" in error_message(client.post(USER, {"attributes": {"firstName": "x"}}), 400)
    assert "unknown field(s): user" in error_message(client.post(USER, {"identifiers": {"email": ALICE},
                                                                        "user": {}}), 400)
    assert "JSON" in error_message(client.post(USER, raw=b"nope"), 400)
    thread2, client2 = make(reject_unknown_keys=False, max_body_bytes=2000)
    assert client2.post(USER, {"identifiers": {"email": ALICE}, "user": {}}).status == 202
    big = {"identifiers": {"email": ALICE}, "attributes": {"custom": {"blob": "x" * 3000}}}
    assert "too large" in error_message(client2.post(USER, big), 413)


def test_v2_custom_attribute_limit(make):
    thread, client = make()  # Alice has "plan": one custom attribute exists
    many = {f"attr{i}": i for i in range(99)}
    assert client.post(USER, {"identifiers": {"email": ALICE}, "attributes": {"custom": many}}).status == 202
    assert thread.stats()["custom_attributes"] == 100
    resp = client.post(USER, {"identifiers": {"email": BOB}, "attributes": {"custom": {"one more": 1}}})
    assert "limit of 100" in error_message(resp, 400)
    assert client.post(USER, {"identifiers": {"email": BOB}, "attributes": {"custom": {"attr5": 7}}}).status == 202
    # v1 has no limit
    assert client.post(CUSTOM, {"properties": {"one more": "1"}, "user": {"email": BOB}}).status == 200
    thread2, client2 = make(v2_custom_attribute_limit=2)
    assert client2.post(USER, {"identifiers": {"email": BOB}, "attributes": {"custom": {"a": 1, "b": 2}}}).status == 400


def test_v2_subscriptions_opt_users_in_and_are_counted(make):
    thread, client = make()
    body = {"identifiers": {"email": BOB}, "subscriptions": [
        {"signUpSourceId": "123", "channel": "EMAIL", "subscriptionType": "TRANSACTIONAL", "singleOptIn": True}]}
    assert client.post(USER, body).status == 202
    assert thread.stats()["opt_ins"] == 1
    assert {"type": "TRANSACTIONAL", "channel": "EMAIL", "eligible": True} in sub(thread, email=BOB)["subscriptions"]
    bad = {"identifiers": {"email": BOB}, "subscriptions": [{"signUpSourceId": "1", "channel": "EMAIL"}]}
    assert "subscriptionType is required" in error_message(client.post(USER, bad), 400)
    bad["subscriptions"][0].update(subscriptionType="MARKETING", channel="PUSH")
    assert "channel" in error_message(client.post(USER, bad), 400)


# ------------------------------------------------------------------ v2 bulk
def _bulk_users() -> list[dict]:
    return [{"identifiers": {"email": ALICE}, "attributes": {"custom": {"plan": "max"}}},
            {"identifiers": {"phone": BOB_PHONE}, "attributes": {"lastName": "Builder"}},
            {"identifiers": {"email": "new@example.com"}, "attributes": {"firstName": "Nu"}}]


def test_bulk_job_lifecycle_applies_on_completion(make):
    thread, client = make(bulk_pending_seconds=30, bulk_job_seconds=60)
    body = {"users": _bulk_users()}
    validate_attentive_request("POST", BULK, orjson.dumps(body))
    resp = client.post(BULK, body)
    assert resp.status == 202
    _schema_validator(V2, "BulkSuccessResponse").validate(resp.json())
    job_id = resp.json()["batchJobId"]
    status = client.get(f"/v2/bulk/job/{job_id}")
    _schema_validator(V2, "BulkJobStatusResponse").validate(status.json())
    assert status.json() == {"bulkJobId": job_id, "status": "PENDING", "totalRecords": 3}
    assert sub(thread, email=ALICE)["custom"]["plan"] == "pro"  # nothing applied yet
    assert thread.stats()["created_users"] == 0
    signature = thread.call(lambda: thread.sandbox.jobs.jobs[job_id].signature)
    early = client.get(f"/sandbox-downloads/bulk-jobs/{job_id}.jsonl?signature={signature}", key=None)
    assert early.status == 404  # no results file before the job completes
    thread.call(thread.sandbox.finish_jobs)
    status = client.get(f"/v2/bulk/job/{job_id}").json()
    assert status["status"] == "COMPLETED" and status["url"].startswith(thread.url)
    assert sub(thread, email=ALICE)["custom"]["plan"] == "max"
    assert sub(thread, email=BOB)["attributes"] == {"lastName": "Builder"}
    stats = thread.stats()
    assert (stats["created_users"], stats["created_by_endpoint"]) == (1, {"postBulkUserAttributes": 1})
    assert "not found" in error_message(client.get("/v2/bulk/job/no-such-job"), 404)


def test_bulk_job_moves_through_its_states_on_timers(make):
    thread, client = make(bulk_pending_seconds=0.05, bulk_job_seconds=0.3)
    job_id = client.post(BULK, {"users": _bulk_users()}).json()["batchJobId"]
    final, seen = wait_for_job(client, job_id)
    assert final["status"] == "COMPLETED"
    order = ["PENDING", "IN_PROGRESS", "COMPLETED"]
    assert seen == sorted(seen, key=order.index) and seen[-1] == "COMPLETED"
    thread2, client2 = make(bulk_pending_seconds=0.0, bulk_job_seconds=60)
    job_id = client2.post(BULK, {"users": _bulk_users()}).json()["batchJobId"]
    deadline = time.monotonic() + 10
    while client2.get(f"/v2/bulk/job/{job_id}").json()["status"] == "PENDING" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client2.get(f"/v2/bulk/job/{job_id}").json() == {"bulkJobId": job_id, "status": "IN_PROGRESS",
                                                            "totalRecords": 3}


def test_bulk_results_file_has_one_line_per_record(make):
    thread, client = make()
    users = _bulk_users() + [{"identifiers": {"email": ALICE}, "attributes": {"custom": {"plan": {"no": 1}}}}]
    users[3] = {"identifiers": {"email": ALICE, "phone": BOB_PHONE}}  # a conflict, known only when applied
    job_id = client.post(BULK, {"users": users}).json()["batchJobId"]
    final, _ = wait_for_job(client, job_id)
    results = client.get(final["url"], key=None)  # a pre-signed link: no bearer token
    assert results.status == 200 and results.headers["content-type"].startswith("application/jsonl")
    lines = [orjson.loads(line) for line in results.body.decode().splitlines()]
    assert [line["index"] for line in lines] == [0, 1, 2, 3]
    assert [line["request"] for line in lines] == users
    assert [line["response"]["statusCode"] for line in lines] == [202, 202, 202, 400]
    assert lines[0]["response"]["body"] == {"success": True, "message": "User attributes accepted"}
    assert "different subscribers" in lines[3]["response"]["body"]["error"]["message"]
    _schema_validator(V1, "ErrorResponseDto").validate(lines[3]["response"]["body"])
    assert thread.call(thread.sandbox.get_job, job_id)["statusCodes"] == [202, 202, 202, 400]
    tampered = final["url"].rsplit("=", 1)[0] + "=forged"
    assert client.get(tampered, key=None).status == 403


def test_results_file_layout_is_an_option(make):
    """The results file's format is undocumented: it can come in another order, without `index`."""
    thread, client = make(results_order="reversed", results_index=False)
    users = _bulk_users()
    users[2] = {"identifiers": {"email": ALICE, "phone": BOB_PHONE}}  # a conflict, known only when applied
    job_id = client.post(BULK, {"users": users}).json()["batchJobId"]
    final, _ = wait_for_job(client, job_id)
    lines = [orjson.loads(line) for line in client.get(final["url"], key=None).body.decode().splitlines()]
    assert [line["request"] for line in lines] == users[::-1]
    assert [line["response"]["statusCode"] for line in lines] == [400, 202, 202]
    assert all("index" not in line for line in lines)
    with pytest.raises(ValueError):
        AttentiveOptions(results_order="sorted")


def test_bulk_validation_whole_request_or_per_record(make):
    thread, client = make()
    users = _bulk_users()
    users[1] = {"identifiers": {"phone": "19148440001"}}
    resp = client.post(BULK, {"users": users})
    assert "users[1].identifiers.phone" in error_message(resp, 400)
    assert thread.stats()["jobs"] == {} and thread.stats()["created_users"] == 0
    thread2, client2 = make(bulk_validation="record")
    job_id = client2.post(BULK, {"users": users}).json()["batchJobId"]
    final, _ = wait_for_job(client2, job_id)
    lines = [orjson.loads(x) for x in client2.get(final["url"], key=None).body.splitlines()]
    assert [x["response"]["statusCode"] for x in lines] == [202, 400, 202]
    assert "users[1].identifiers.phone" in lines[1]["response"]["body"]["error"]["message"]


def test_bulk_size_and_shape(make):
    thread, client = make()
    one = {"identifiers": {"email": ALICE}}
    assert client.post(BULK, {"users": [one] * 256}).status == 202
    assert "between 1 and 256" in error_message(client.post(BULK, {"users": [one] * 257}), 400)
    assert "between 1 and 256" in error_message(client.post(BULK, {"users": []}), 400)
    assert "users is required" in error_message(client.post(BULK, {}), 400)
    assert "unknown field(s): async" in error_message(client.post(BULK, {"users": [one], "async": True}), 400)
    thread2, client2 = make(bulk_max_users=2)
    assert client2.post(BULK, {"users": [one] * 3}).status == 400


def test_failed_jobs_apply_nothing(make):
    thread, client = make()
    thread.call(thread.sandbox.script_job_failure)
    job_id = client.post(BULK, {"users": _bulk_users()}).json()["batchJobId"]
    final, _ = wait_for_job(client, job_id)
    assert final == {"bulkJobId": job_id, "status": "FAILED", "totalRecords": 3}
    assert thread.stats()["created_users"] == 0 and sub(thread, email=ALICE)["custom"]["plan"] == "pro"
    job2 = client.post(BULK, {"users": _bulk_users()}).json()["batchJobId"]
    assert wait_for_job(client, job2)[0]["status"] == "COMPLETED"


# ------------------------------------------------------------------ rate limits
def test_burst_over_the_limit_gets_429_and_throttled_writes_have_no_effect(make):
    thread, client = make(limits=True, rate_limits={"postCustomAttributes": 5})
    calls = [("POST", CUSTOM, {"properties": {f"burst{i}": "1"}, "user": {"email": ALICE}}) for i in range(30)]
    started = time.monotonic()
    results = client.burst(calls)
    windows = int(time.monotonic() - started) + 2  # 1-second windows the burst can have touched
    statuses = [r.status for r in results]
    assert set(statuses) == {200, 429}
    for i, r in enumerate(results):
        assert r.headers["x-ratelimit-limit"] == "5"
        if r.status == 429:
            assert error_message(r, 429) == "Too many requests"
            assert r.headers["x-ratelimit-remaining"] == "0" and "retry-after" not in r.headers
    written = {name for name in sub(thread, email=ALICE)["custom"] if name.startswith("burst")}
    assert written == {f"burst{i}" for i, r in enumerate(results) if r.status == 200}
    stats = thread.stats()
    assert stats["responses_429"] == statuses.count(429) == stats["responses_429_by_endpoint"]["postCustomAttributes"]
    assert 1 <= statuses.count(200) <= 5 * windows


def test_a_burst_within_one_window_is_cut_at_the_limit(make):
    thread, client = make(limits=True, rate_limits={"postUserAttributes": 4})
    thread.call(lambda: setattr(thread.sandbox.limiter, "clock", lambda: 500.25))  # one frozen second
    calls = [("POST", USER, {"identifiers": {"email": f"b{i}@example.com"}}) for i in range(10)]
    results = client.burst(calls)
    assert sorted(r.status for r in results) == [202] * 4 + [429] * 6
    assert sorted(r.headers["x-ratelimit-remaining"] for r in results if r.status == 202) == ["0", "1", "2", "3"]
    assert thread.stats()["created_users"] == 4 and count(thread) == 6  # refused requests created nobody


def test_exhausted_budget_is_refused_then_restored(make):
    clock = [1000.0]
    thread, client = make(limits=True, keys=["key-a", "key-b"])
    thread.call(lambda: setattr(thread.sandbox.limiter, "clock", lambda: clock[0]))
    lookups = [client.get(f"/v1/subscriptions?email={ALICE}", key="key-a") for _ in range(11)]
    assert [r.status for r in lookups] == [200] * 10 + [429]
    assert [r.headers["x-ratelimit-remaining"] for r in lookups] == [str(9 - i) for i in range(10)] + ["0"]
    assert client.get(f"/v1/subscriptions?email={ALICE}", key="key-b").status == 200  # per token
    other = client.get(f"{CUSTOM}?email={ALICE}", key="key-a")  # per endpoint
    assert (other.status, other.headers["x-ratelimit-limit"], other.headers["x-ratelimit-remaining"]) == (
        200, "150", "149")
    clock[0] += 1.0
    assert client.get(f"/v1/subscriptions?email={ALICE}", key="key-a").status == 200
    # every answer of the API carries the headers, errors included
    for resp in (client.get("/v1/subscriptions?email=ghost@example.com", key="key-a"),
                 client.post(USER, {"identifiers": {}}, key="key-b"), client.get("/v1/me", key="nope")):
        assert resp.status in (400, 401, 404) and "x-ratelimit-limit" in resp.headers
        assert "x-ratelimit-remaining" in resp.headers


def test_under_the_limit_never_429(make):
    thread, client = make(limits=True, rate_limits={"getSubscriptions": 4})
    statuses = []
    for _ in range(6):  # at least 0.3 s apart: at most 4 in any second, whatever the window alignment
        statuses.append(client.get(f"/v1/subscriptions?email={ALICE}").status)
        time.sleep(0.3)
    assert statuses == [200] * 6 and thread.stats()["responses_429"] == 0


def test_retry_after_is_an_option_and_bulk_has_its_own_limit(make):
    thread, client = make(limits=True, retry_after=True, rate_limits={"postBulkUserAttributes": 2})
    results = client.burst([("POST", BULK, {"users": [{"identifiers": {"email": ALICE}}]})] * 6)
    limited = [r for r in results if r.status == 429]
    assert limited and all(int(r.headers["retry-after"]) >= 1 for r in limited)
    assert {r.headers["x-ratelimit-limit"] for r in results} == {"2"}
    accepted = [r for r in results if r.status == 202]
    assert len(thread.call(lambda: thread.sandbox.jobs.jobs)) == len(accepted)
    thread2, client2 = make()  # limits off: no limiting and no headers
    resp = client2.get("/v1/me")
    assert resp.status == 200 and "x-ratelimit-limit" not in resp.headers
    with pytest.raises(ValueError):
        AttentiveOptions(rate_limits={"nowhere": 1})


def test_retry_after_as_an_http_date(make):
    from email.utils import parsedate_to_datetime

    thread, client = make(limits=True, retry_after="http-date", rate_limits={"postBulkUserAttributes": 1})
    results = client.burst([("POST", BULK, {"users": [{"identifiers": {"email": ALICE}}]})] * 3)
    limited = [r for r in results if r.status == 429]
    assert limited
    for r in limited:
        ahead = parsedate_to_datetime(r.headers["retry-after"]).timestamp() - time.time()
        assert 0 <= ahead <= 2  # whole seconds: at most a second more than asked, never in the past
    with pytest.raises(ValueError):
        AttentiveOptions(retry_after="minutes")


def test_retry_after_http_date_is_never_before_the_window_frees(monkeypatch):
    """Whole-second dates round the moment the limit frees up, not down (before: at 100.9 s with
    a 1 s wait the date said 101, 0.9 s early)."""
    from email.utils import parsedate_to_datetime

    import dinsync.sandbox.attentive.server as module

    sandbox = AttentiveSandbox(KEY, limits=True, retry_after="http-date")
    monkeypatch.setattr(module.time, "time", lambda: 100.9)
    for wait in (0.05, 0.5, 1.0):
        resp = sandbox._too_many("postBulkUserAttributes", wait)
        when = parsedate_to_datetime(resp.headers["Retry-After"]).timestamp()
        assert when >= 100.9 + max(1.0, wait) and when == int(when)


# ------------------------------------------------------------------ faults
def test_faults_per_endpoint(make):
    thread, client = make(faults=Faults(seed=3))
    body = {"identifiers": {"email": "fault@example.com"}, "attributes": {"firstName": "F"}}
    thread.script("postUserAttributes", error(503))
    resp = client.post(USER, body)
    assert resp.status == 503 and b"nginx" in resp.body
    thread.script("postUserAttributes", reset())
    with pytest.raises(aiohttp.ClientError):
        client.post(USER, body)
    assert count(thread) == 2
    thread.script("postUserAttributes", reset_after_apply())
    with pytest.raises(aiohttp.ClientError):
        client.post(USER, body)
    assert sub(thread, email="fault@example.com")["attributes"] == {"firstName": "F"}
    assert thread.stats()["created_users"] == 1
    thread.script("postCustomAttributes", reset_after_apply())
    with pytest.raises(aiohttp.ClientError):
        client.post(CUSTOM, {"properties": {"after": "reset"}, "user": {"email": ALICE}})
    assert sub(thread, email=ALICE)["custom"]["after"] == "reset"
    thread.script("getSubscriptions", throttle())
    resp = client.get(f"/v1/subscriptions?email={ALICE}")
    assert error_message(resp, 429) == "Too many requests" and "retry-after" not in resp.headers
    thread.script("getBulkJobStatus", respond(500, {"error": {"id": 1, "message": "boom"}}))
    assert client.get("/v2/bulk/job/x").status == 500
    thread.script(None, error(502))  # any endpoint
    assert client.get("/v1/me").status == 502
    assert client.get("/v1/me").status == 200
    stats = thread.stats()
    assert stats["faults"] == {"error": 2, "reset": 1, "reset_after_apply": 2, "throttle": 1, "respond": 1}
    log = thread.call(lambda: list(thread.sandbox.log))
    assert [e.status for e in log if e.fault in ("reset", "reset_after_apply")] == [None, None, None]


def test_latency_fault(make):
    thread, client = make(faults=Faults(latency=0.2))
    start = time.monotonic()
    assert client.get("/v1/me").status == 200
    assert time.monotonic() - start >= 0.2


# ------------------------------------------------------------------ inspection, seeding, routing, runner
def test_log_counters_and_reset(make):
    thread, client = make()
    client.post(CUSTOM, {"properties": {"a": "1"}, "user": {"email": ALICE}})
    client.post(BULK, {"users": _bulk_users()})
    client.get(f"{CUSTOM}?email={ALICE}")
    client.post(USER, {"identifiers": {"email": "x@example.com"}}, key="bad")
    log = thread.call(lambda: list(thread.sandbox.log))
    assert [(e.method, e.endpoint, e.status, e.records) for e in log] == [
        ("POST", "postCustomAttributes", 200, 1), ("POST", "postBulkUserAttributes", 202, 3),
        ("GET", "getCustomAttributes", 200, None), ("POST", "postUserAttributes", 401, None)]
    stats = thread.stats()
    assert stats["requests"] == 4 and stats["requests_by_endpoint"]["postBulkUserAttributes"] == 1
    thread.reset()
    assert thread.stats() == {"requests": 0, "requests_by_endpoint": {}, "responses_429": 0,
                              "responses_429_by_endpoint": {}, "created_users": 0, "created_by_endpoint": {},
                              "unknown_user_writes": 0, "opt_ins": 0, "subscribers": 0, "custom_attributes": 0,
                              "jobs": {}, "faults": {}}
    assert "not found" in error_message(client.get(f"{CUSTOM}?email={ALICE}"), 404)


def test_seeding(make):
    sandbox = AttentiveSandbox(KEY)
    assert sandbox.seed_subscribers(1000) == 1000
    assert all(valid_phone(s["phone"]) for s in sandbox.subscribers()[::97])
    with pytest.raises(ValueError, match="already there"):
        sandbox.seed_subscribers(10, start=995)
    with pytest.raises(ValueError, match="phone"):
        sandbox.add_subscriber("z@example.com", "19148440001")
    with pytest.raises(ValueError, match="already exists"):
        sandbox.add_subscriber("subscriber5@example.com")
    with pytest.raises(ValueError, match="age"):
        sandbox.add_subscriber("y@example.com", attributes={"demographic": {"age": "old"}})
    seeded = sandbox.add_subscriber(None, "+12015550177", custom={"score": "10"}, client_user_id="c-77",
                                    custom_identifiers={"loyaltyId": "L77"})
    assert seeded["subscriptions"] == [{"type": "MARKETING", "channel": "TEXT", "eligible": True}]
    assert sandbox.attribute_types == {"score": "NUMBER"} and seeded["origin"] == "seed"
    with SandboxThread(sandbox) as thread:
        client = Client(thread.url)
        assert client.get("/v1/subscriptions?email=subscriber999@example.com").status == 200
        assert client.get("/v1/subscriptions?phone=%2B12012000999").status == 200
        assert client.post(CUSTOM, {"properties": {"score": 11}, "user": {"externalIdentifiers": {
            "customIdentifiers": [{"name": "loyaltyId", "value": "L77"}]}}}).status == 200
        assert thread.stats()["created_users"] == 0


def test_unknown_routes_and_methods(make):
    thread, client = make()
    assert error_message(client.get("/v1/users"), 404) == "Not found"
    assert error_message(client.request("DELETE", CUSTOM), 405) == "Method not allowed"
    assert client.get("/v2/user/attributes").status == 405


def test_build_sandbox_by_platform_name():
    sandbox = build_sandbox("attentive", api_key="k1", api_keys=["k2"], limits=False, unknown_user="reject")
    assert isinstance(sandbox, AttentiveSandbox)
    assert (sandbox.options.limits, sandbox.options.unknown_user) == (False, "reject")
    with SandboxThread(sandbox) as thread:
        for key in ("k1", "k2"):
            assert Client(thread.url).get("/v1/me", key=key).status == 200
    with pytest.raises(ValueError):
        build_sandbox("attentive")
    with pytest.raises(ValueError, match="unknown_user"):
        AttentiveOptions(unknown_user="maybe")


def _read_line(proc: subprocess.Popen, timeout: float = 15.0) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "the sandbox printed nothing"
    return proc.stdout.readline()


def test_module_entry_point_prints_url_seeds_and_stops_on_sigterm():
    args = [sys.executable, "-m", "dinsync.sandbox", "attentive", "--port", "0", "--api-key", KEY,
            "--seed-subscribers", "5", "--unknown-user", "reject", "--no-limits", "--latency", "0.01"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = _read_line(proc)
        match = re.fullmatch(r"listening (http://127\.0\.0\.1:\d+)\n", line)
        assert match, line
        client = Client(match.group(1))
        assert client.get("/v1/subscriptions?email=subscriber4@example.com").status == 200
        ghost = {"properties": {"x": "1"}, "user": {"email": "ghost@example.com"}}
        assert client.post(CUSTOM, ghost).status == 404
        resp = client.get("/v1/me")
        assert resp.status == 200 and "x-ratelimit-limit" not in resp.headers
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0
        assert KEY not in out + err + line
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_module_entry_point_with_limits_and_key_from_env():
    env = {**os.environ, "DINSYNC_SANDBOX_API_KEY": KEY}
    proc = subprocess.Popen([sys.executable, "-m", "dinsync.sandbox", "attentive", "--port", "0",
                             "--scope", "attributes:write"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        client = Client(re.fullmatch(r"listening (\S+)\n", _read_line(proc)).group(1))
        resp = client.get("/v1/me")
        assert resp.headers["x-ratelimit-limit"] == "150"
        assert client.post(USER, {"identifiers": {"email": ALICE}}).status == 403  # only attributes:write
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=15)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
