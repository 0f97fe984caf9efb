"""The Iterable sandbox over real loopback sockets (stdlib http.client / aiohttp, not dinsync's client)."""
from __future__ import annotations

import asyncio
import copy
import http.client
import json
import os
import re
import select
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import jsonschema
import orjson
import pytest

from dinsync.sandbox import IterableOptions, IterableSandbox, SandboxThread, build_sandbox, serve
from dinsync.sandbox.iterable import (BULK_KEYS, BULK_USER_KEYS, FAILURE_LISTS, UPDATE_KEYS, valid_email,
                                      valid_user_id)

KEY = "test-key-5f1c"
SPEC = json.loads((Path(__file__).parents[1] / "specs" / "iterable-swagger.json").read_text())
BULK = "/api/users/bulkUpdate"
UPDATE = "/api/users/update"


class Resp(NamedTuple):
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class Client:
    """A tiny blocking HTTP client: one connection per request."""

    def __init__(self, url: str):
        self.url = url
        self.port = int(url.rsplit(":", 1)[1])

    def request(self, method: str, path: str, body: Any = None, *, key: str | None = KEY,
                raw: bytes | None = None, headers: dict | None = None) -> Resp:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            hdrs = {"Content-Type": "application/json", **(headers or {})}
            if key is not None:
                hdrs.setdefault("Api-Key", key)
            data = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            return Resp(resp.status, resp.headers, resp.read())
        finally:
            conn.close()

    def post(self, path: str, body: Any = None, **kw: Any) -> Resp:
        return self.request("POST", path, body, **kw)

    def get(self, path: str, **kw: Any) -> Resp:
        return self.request("GET", path, **kw)


@pytest.fixture
def make():
    """make(**options) -> (SandboxThread, Client); rate limits off unless asked for."""
    threads: list[SandboxThread] = []

    def _make(**options: Any) -> tuple[SandboxThread, Client]:
        options.setdefault("limits", False)
        faults = options.pop("faults", None)
        thread = SandboxThread(IterableSandbox(KEY, faults=faults, **options))
        threads.append(thread)
        return thread, Client(thread.start())

    yield _make
    for thread in threads:
        thread.stop()


def _definitions() -> dict:
    # Swagger 2.0 cannot say "nullable"; Iterable answers `"params": null` on errors.
    definitions = copy.deepcopy(SPEC["definitions"])
    definitions["IterableApiResponse"]["properties"]["params"]["type"] = ["object", "null"]
    return definitions


DEFINITIONS = _definitions()


def spec_validate(instance: Any, definition: str) -> None:
    schema = {"$ref": f"#/definitions/{definition}", "definitions": DEFINITIONS}
    jsonschema.Draft4Validator(schema).validate(instance)


def error_code(resp: Resp) -> str:
    body = resp.json()
    spec_validate(body, "IterableApiResponse")
    return body["code"]


def users_of(thread: SandboxThread) -> int:
    return thread.call(lambda: len(thread.sandbox.users))


def user(thread: SandboxThread, **key: str) -> dict | None:
    return thread.call(thread.sandbox.get_user, **key)


def fields_of(thread: SandboxThread) -> dict:
    return thread.call(lambda: dict(thread.sandbox.fields))


# ------------------------------------------------------------------ spec conformance
def test_request_keys_and_failure_lists_match_the_spec():
    def props(name: str) -> set[str]:
        return set(SPEC["definitions"][name]["properties"])

    def body_ref(path: str) -> str:
        return SPEC["paths"][path]["post"]["parameters"][0]["schema"]["$ref"].rsplit("/", 1)[1]

    assert UPDATE_KEYS == props(body_ref(UPDATE))
    assert BULK_KEYS == props(body_ref(BULK))
    assert BULK_USER_KEYS == props("OptionalApiUser")
    assert set(FAILURE_LISTS) == props("FailedUserUpdates")


def test_bulk_response_has_the_spec_shape(make):
    thread, client = make()
    resp = client.post(BULK, {"users": [{"email": "ada@example.com", "dataFields": {"plan": "pro"}}]})
    assert resp.status == 200
    body = resp.json()
    spec_validate(body, "UserBulkUpdateListResponse")
    assert set(body) == set(SPEC["definitions"]["UserBulkUpdateListResponse"]["properties"])
    assert set(body["failedUpdates"]) == set(FAILURE_LISTS)
    assert body["successCount"] == 1 and body["failCount"] == 0 and body["createdFields"] == ["plan"]


# ------------------------------------------------------------------ auth
def test_auth_rejects_missing_and_wrong_keys_without_echoing_them(make):
    thread, client = make()
    for key in (None, "wrong-key-abc123"):
        resp = client.post(BULK, {"users": [{"email": "a@b.co"}]}, key=key)
        assert resp.status == 401
        assert resp.json() == {"msg": "Invalid API key", "code": "BadApiKey", "params": None}
        assert b"wrong-key-abc123" not in resp.body
    assert users_of(thread) == 0
    assert client.get("/api/users/getFields", key=None, headers={"Api_Key": KEY}).status == 200
    assert client.get("/api/users/getFields").status == 200
    sandbox = thread.sandbox
    recorded = thread.call(lambda: repr(list(sandbox.log)) + repr(sandbox.stats()) + repr(sandbox))
    assert KEY not in recorded and "wrong-key-abc123" not in recorded


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize("path, raw, code", [
    (BULK, b"{not json", "BadJsonBody"),
    (BULK, b"[1, 2]", "BadJsonBody"),
    (UPDATE, b"", "BadJsonBody"),
    (BULK, b'{"users": {"email": "a@b.co"}}', "BadParams"),
    (BULK, b'{"users": [{"email": "a@b.co"}], "preferUserId": true}', "BadParams"),  # not a bulk top-level key
    (BULK, b'{"users": [{"email": "a@b.co", "fields": {}}]}', "BadParams"),
    (BULK, b'{"users": [{"email": "a@b.co", "dataFields": [1]}]}', "BadParams"),
    (BULK, b'{"users": [{"email": 42}]}', "BadParams"),
    (BULK, b'{"users": [{"email": "a@b.co"}, {"dataFields": {"x": 1}}]}', "BadParams"),
    (BULK, b'{"users": [{"email": "a@b.co"}], "createNewFields": "yes"}', "BadParams"),
    (BULK, b'{"users": ["a@b.co"]}', "BadParams"),
    (UPDATE, b'{"dataFields": {"x": 1}}', "BadParams"),
    (UPDATE, b'{"email": "a@b.co", "users": []}', "BadParams"),
    (UPDATE, b'{"email": "a@b.co", "mergeNestedObjects": 1}', "BadParams"),
])
def test_malformed_bodies_are_rejected_whole(make, path, raw, code):
    thread, client = make()
    resp = client.post(path, raw=raw)
    assert resp.status == 400
    assert error_code(resp) == code
    assert users_of(thread) == 0


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_bodies_not_sent_as_json_are_refused(make, content_type):
    """A JSON body sent as text, as a form or without Content-Type is refused (400 BadJsonBody, nothing
    written), as the Attio and Attentive sandboxes refuse it: a client that dropped the header passed
    every test here while a server that reads bodies by their media type would not read its requests."""
    thread, client = make()
    headers = {"Content-Type": content_type} if content_type else {}
    for path, body in ((BULK, {"users": [{"email": "a@b.co", "dataFields": {"x": 1}}]}),
                       (UPDATE, {"email": "a@b.co", "dataFields": {"x": 1}})):
        conn = http.client.HTTPConnection("127.0.0.1", client.port, timeout=10)
        try:
            conn.putrequest("POST", path, skip_accept_encoding=True)
            data = orjson.dumps(body)
            for name, value in {"Api-Key": KEY, "Content-Length": str(len(data)), **headers}.items():
                conn.putheader(name, value)
            conn.endheaders(data)
            resp = conn.getresponse()
            got = Resp(resp.status, resp.headers, resp.read())
        finally:
            conn.close()
        assert got.status == 400, (path, got.status, got.body[:120])
        assert error_code(got) == "BadJsonBody"
    assert users_of(thread) == 0
    thread2, client2 = make(require_json_content_type=False)  # the lenient choice stays available
    assert client2.post(BULK, {"users": [{"email": "a@b.co"}]}, headers={"Content-Type": "text/plain"}).status == 200
    assert client.post(BULK, {"users": [{"email": "a@b.co"}]}, headers={
        "Content-Type": "application/json; charset=utf-8"}).status == 200


def test_both_identifiers_can_be_refused(make):
    thread, client = make(reject_both_identifiers=True)
    resp = client.post(UPDATE, {"email": "a@b.co", "userId": "u1"})
    assert (resp.status, error_code(resp)) == (400, "BadParams")
    thread2, client2 = make()  # default: allowed, email wins
    assert client2.post(UPDATE, {"email": "a@b.co", "userId": "u1"}).status == 200
    assert user(thread2, user_id="u1")["email"] == "a@b.co"


def test_email_and_user_id_rules():
    assert valid_email("ada.lovelace+x@mail.example.co.uk")
    for bad in ("plain", "a@b", "@b.co", "a@@b.co", "a@b.co@c.co", "a b@c.co", "a@b..co", "a@.b.co",
                "a\x01@b.co", "a@b.co.", "x" * 250 + "@b.co"):
        assert not valid_email(bad), bad
    assert valid_user_id("u-42") and valid_user_id("x" * 52) and valid_user_id(" lead")
    for bad in ("", "x" * 53, "trailing ", "caf\u00e9", "tab\there", "nl\n"):
        assert not valid_user_id(bad), bad


# ------------------------------------------------------------------ upsert and identification
def test_upsert_by_email_merges_fields(make):
    thread, client = make()
    resp = client.post(UPDATE, {"email": "ada@example.com", "dataFields": {"plan": "pro", "ltv": 10}})
    assert resp.status == 200
    resp = client.post(BULK, {"users": [{"email": "ada@example.com", "dataFields": {"ltv": 12, "city": None}}]})
    assert resp.json()["successCount"] == 1
    got = client.get("/api/users/getByEmail?email=ada@example.com").json()
    spec_validate(got, "UserResponse")
    assert got == {"user": {"email": "ada@example.com", "dataFields": {"plan": "pro", "ltv": 12, "city": None}}}
    assert client.get("/api/users/ada@example.com").json() == got
    assert client.get("/api/users/getByEmail?email=nobody@example.com").json() == {}
    assert users_of(thread) == 1


def test_single_update_response_and_invalid_email(make):
    thread, client = make()
    resp = client.post(UPDATE, {"email": "a@b.co", "dataFields": {"x": 1}})
    assert resp.status == 200
    body = resp.json()
    spec_validate(body, "IterableApiResponse")
    assert body["code"] == "Success" and body["params"]["createdFields"] == ["x"]
    resp = client.post(UPDATE, {"email": "not-an-email", "dataFields": {"x": 1}})
    assert (resp.status, error_code(resp)) == (400, "InvalidEmailAddressError")
    resp = client.post(UPDATE, {"userId": "bad id ", "preferUserId": True})
    assert (resp.status, error_code(resp)) == (400, "InvalidUserIdError")
    assert users_of(thread) == 1


def test_user_id_only_in_email_project_needs_prefer_user_id(make):
    thread, client = make()
    body = client.post(BULK, {"users": [{"userId": "u-1", "dataFields": {"plan": "pro"}},
                                        {"email": "b@b.co", "dataFields": {"plan": "free"}}]}).json()
    assert (body["successCount"], body["failCount"]) == (1, 1)
    assert body["failedUpdates"]["notFoundUserIds"] == ["u-1"]
    assert user(thread, user_id="u-1") is None
    resp = client.post(UPDATE, {"userId": "u-1", "dataFields": {"plan": "pro"}})
    assert (resp.status, error_code(resp)) == (400, "UnknownUserIdError")

    prefer = {"userId": "u-1", "preferUserId": True, "dataFields": {"plan": "pro"}}
    body = client.post(BULK, {"users": [prefer]}).json()
    assert body["successCount"] == 1
    got = client.get("/api/users/byUserId?userId=u-1").json()
    assert got["user"]["email"] == "u-1@placeholder.email" and got["user"]["dataFields"] == {"plan": "pro"}
    assert client.get("/api/users/byUserId/u-1").json() == got
    # a known userId alone updates its user
    body = client.post(BULK, {"users": [{"userId": "u-1", "dataFields": {"plan": "free"}}]}).json()
    assert body["successCount"] == 1
    assert user(thread, email="u-1@placeholder.email")["dataFields"] == {"plan": "free"}


def test_unknown_user_id_list_is_configurable(make):
    thread, client = make(unknown_user_id_list="invalidUserIds")
    body = client.post(BULK, {"users": [{"userId": "ghost"}]}).json()
    assert body["failedUpdates"]["invalidUserIds"] == ["ghost"] and body["failedUpdates"]["notFoundUserIds"] == []
    with pytest.raises(ValueError):
        IterableOptions(unknown_user_id_list="nowhere")


def test_userid_project(make):
    thread, client = make(project_type="userid")
    body = client.post(BULK, {"users": [
        {"userId": "u1", "email": "same@b.co", "dataFields": {"n": 1}},
        {"userId": "u2", "email": "same@b.co", "dataFields": {"n": 2}},  # email is not unique here
        {"userId": "u1", "dataFields": {"n": 3}},
        {"email": "unknown@b.co", "dataFields": {"n": 4}},
    ]}).json()
    assert (body["successCount"], body["failCount"]) == (3, 1)
    assert body["failedUpdates"]["notFoundEmails"] == ["unknown@b.co"]
    assert users_of(thread) == 2
    assert user(thread, user_id="u1")["dataFields"] == {"n": 3}
    resp = client.post(UPDATE, {"email": "unknown@b.co"})
    assert (resp.status, error_code(resp)) == (400, "UnknownEmailError")


def test_hybrid_project_keeps_both_identifiers_unique(make):
    thread, client = make(project_type="hybrid")
    body = client.post(BULK, {"users": [
        {"email": "a@b.co", "userId": "u1"},
        {"userId": "u2", "dataFields": {"x": 1}},   # hybrid: userId alone creates, no placeholder
        {"email": "c@b.co", "userId": "u1"},        # u1 already belongs to a@b.co
        {"email": "a@b.co", "userId": "u9"},        # a@b.co already has u1
        {"email": "d@b.co", "userId": "u2"},        # u2 has no email yet: attach it
    ]}).json()
    assert (body["successCount"], body["failCount"]) == (3, 2)
    assert body["failedUpdates"]["conflictUserIds"] == ["u1"]
    assert body["failedUpdates"]["conflictEmails"] == ["a@b.co"]
    assert users_of(thread) == 2
    assert client.get("/api/users/byUserId/u2").json()["user"]["email"] == "d@b.co"
    resp = client.post(UPDATE, {"email": "c@b.co", "userId": "u1"})
    assert (resp.status, error_code(resp)) == (409, "UserIdAlreadyExists")
    resp = client.post(UPDATE, {"email": "a@b.co", "userId": "u9"})
    assert (resp.status, error_code(resp)) == (409, "EmailAlreadyExists")


def test_user_id_conflict_in_email_project(make):
    """Iterable: "Email-based projects do not enforce userId uniqueness. This means you won't
    receive an error if you update a user to have a non-unique userId value" (and the reference
    notes: "userId not unique"). The sandbox refused it by default (conflictUserIds), so a sync
    keyed by email had rows rejected that Iterable accepts. Enforcing it stays an option."""
    thread, client = make()
    client.post(UPDATE, {"email": "a@b.co", "userId": "u1"})
    body = client.post(BULK, {"users": [{"email": "b@b.co", "userId": "u1"}]}).json()
    assert (body["successCount"], body["failCount"]) == (1, 0)
    assert users_of(thread) == 2
    assert [user(thread, email=e)["userId"] for e in ("a@b.co", "b@b.co")] == ["u1", "u1"]
    thread2, client2 = make(unique_user_id_in_email_projects=True)
    client2.post(UPDATE, {"email": "a@b.co", "userId": "u1"})
    body = client2.post(BULK, {"users": [{"email": "b@b.co", "userId": "u1"}]}).json()
    assert body["failedUpdates"]["conflictUserIds"] == ["u1"] and users_of(thread2) == 1


def test_invalid_identifiers_fail_alone(make):
    thread, client = make()
    body = client.post(BULK, {"users": [
        {"email": "good@b.co", "dataFields": {"x": 1}},
        {"email": "bad@@b.co", "dataFields": {"x": 1}},
        {"userId": "x" * 53, "preferUserId": True},
        {"userId": "trailing ", "preferUserId": True},
        {"userId": "ok-id", "preferUserId": True},
    ]}).json()
    assert (body["successCount"], body["failCount"]) == (2, 3)
    assert body["failedUpdates"]["invalidEmails"] == ["bad@@b.co"]
    assert body["failedUpdates"]["invalidUserIds"] == ["x" * 53, "trailing "]
    assert body["invalidEmails"] == ["bad@@b.co"] and body["invalidUserIds"] == ["x" * 53, "trailing "]
    assert users_of(thread) == 2


def test_a_malformed_email_or_user_id_in_data_fields_fails_its_user_listed_by_that_value(make):
    """FailedUserUpdates.invalidEmails / invalidUserIds: malformed values "found either at the top
    level of a passed-in user object, or in dataFields"."""
    thread, client = make()
    body = client.post(BULK, {"users": [
        {"email": "good@b.co", "dataFields": {"email": "alt@b.co"}},
        {"email": "one@b.co", "dataFields": {"email": "not an email"}},
        {"email": "two@b.co", "dataFields": {"userId": "trailing "}},
    ]}).json()
    assert (body["successCount"], body["failCount"]) == (1, 2)
    assert body["failedUpdates"]["invalidEmails"] == ["not an email"]
    assert body["failedUpdates"]["invalidUserIds"] == ["trailing "]
    assert users_of(thread) == 1
    single = client.post(UPDATE, {"email": "one@b.co", "dataFields": {"email": "x@"}})
    assert (single.status, error_code(single)) == (400, "InvalidEmailAddressError")


# ------------------------------------------------------------------ fields
def test_type_mismatch_rejects_the_whole_batch(make):
    thread, client = make()
    client.post(UPDATE, {"email": "a@b.co", "dataFields": {"ltv": 10, "score": 1.5}})
    resp = client.post(BULK, {"users": [
        {"email": "new@b.co", "dataFields": {"ltv": 5, "fresh": "x"}},
        {"email": "a@b.co", "dataFields": {"ltv": "ten"}},
    ]})
    assert resp.status == 400
    body = resp.json()
    spec_validate(body, "IterableApiResponse")
    assert body["code"] == "RequestFieldsTypesMismatched" and "same data types" in body["msg"]
    assert body["params"]["validationErrors"] == {"project_1:::ltv": {
        "incomingTypes": ["string", "keyword"], "expectedType": "long", "category": "user",
        "offendingValue": "ten", "_type": "UnexpectedType"}}
    assert users_of(thread) == 1 and "fresh" not in fields_of(thread)
    # a long fits a double field, a double does not fit a long field
    assert client.post(BULK, {"users": [{"email": "a@b.co", "dataFields": {"score": 2}}]}).status == 200
    assert client.post(BULK, {"users": [{"email": "a@b.co", "dataFields": {"ltv": 2.5}}]}).status == 400
    # two users disagreeing on a new field's type in one batch
    resp = client.post(BULK, {"users": [{"email": "a@b.co", "dataFields": {"flag": True}},
                                        {"email": "b@b.co", "dataFields": {"flag": "yes"}}]})
    assert (resp.status, error_code(resp)) == (400, "RequestFieldsTypesMismatched")
    resp = client.post(UPDATE, {"email": "a@b.co", "dataFields": {"ltv": [1]}})
    assert (resp.status, error_code(resp)) == (400, "RequestFieldsTypesMismatched")


def test_fields_are_typed_and_listed(make):
    thread, client = make()
    client.post(BULK, {"users": [{"email": "a@b.co", "dataFields": {
        "s": "x", "n": 1, "d": 1.5, "b": False, "o": {"k": 1}, "a": [1], "z": None}}]})
    fields = client.get("/api/users/getFields").json()
    spec_validate(fields, "GetUserFieldsResponse")
    assert fields == {"fields": {"s": "string", "n": "long", "d": "double", "b": "boolean", "o": "object",
                                 "o.k": "long", "a": "array"}}


def test_date_detection_is_optional(make):
    thread, client = make(detect_dates=True)
    client.post(UPDATE, {"email": "a@b.co", "dataFields": {"signup": "2024-01-02 03:04:05", "note": "x"}})
    assert fields_of(thread) == {"signup": "date", "note": "string"}
    resp = client.post(UPDATE, {"email": "a@b.co", "dataFields": {"signup": "2020-04-13 14:04:09.000"}})
    assert error_code(resp) == "RequestFieldsTypesMismatched"
    assert client.post(UPDATE, {"email": "a@b.co", "dataFields": {"note": "2024-01-02"}}).status == 200


def test_create_new_fields(make):
    thread, client = make()
    client.post(UPDATE, {"email": "a@b.co", "dataFields": {"known": 1}})
    body = client.post(BULK, {"createNewFields": False, "users": [
        {"email": "a@b.co", "dataFields": {"known": 2, "extra": "x"}}]}).json()
    assert body["filteredOutFields"] == ["extra"] and body["createdFields"] == [] and body["successCount"] == 1
    assert user(thread, email="a@b.co")["dataFields"] == {"known": 2}
    body = client.post(BULK, {"createNewFields": True,
                              "users": [{"email": "a@b.co", "dataFields": {"extra": "x"}}]}).json()
    assert body["createdFields"] == ["extra"] and body["filteredOutFields"] == []
    assert fields_of(thread) == {"known": "long", "extra": "string"}

    thread2, client2 = make(allow_new_fields=False)  # the project's setting applies when the flag is omitted
    body = client2.post(BULK, {"users": [{"email": "a@b.co", "dataFields": {"extra": "x"}}]}).json()
    assert body["filteredOutFields"] == ["extra"] and fields_of(thread2) == {}
    resp = client2.post(UPDATE, {"email": "a@b.co", "dataFields": {"extra": 1}, "createNewFields": True}).json()
    assert resp["params"]["createdFields"] == ["extra"]


def test_merge_semantics_and_nested_objects(make):
    thread, client = make()
    client.post(UPDATE, {"email": "a@b.co", "dataFields": {"keep": 1, "gone": "x", "prefs": {"mobile": True}}})
    client.post(BULK, {"users": [{"email": "a@b.co", "dataFields": {"gone": None, "prefs": {"email": True}}}]})
    data = user(thread, email="a@b.co")["dataFields"]
    assert data == {"keep": 1, "gone": None, "prefs": {"email": True}}  # objects overwritten by default
    merge = {"email": "a@b.co", "mergeNestedObjects": True, "dataFields": {"prefs": {"sms": False}}}
    client.post(BULK, {"users": [merge]})
    client.post(UPDATE, {"email": "a@b.co", "mergeNestedObjects": True, "dataFields": {"prefs": {"push": True}}})
    data = user(thread, email="a@b.co")["dataFields"]
    assert data["prefs"] == {"email": True, "sms": False, "push": True} and data["keep"] == 1


def test_unique_fields_soft_limit(make):
    thread, client = make(max_fields=2)
    assert client.post(UPDATE, {"email": "a@b.co", "dataFields": {"f1": 1, "f2": 2}}).status == 200
    resp = client.post(BULK, {"users": [{"email": "a@b.co", "dataFields": {"f3": 3}}]})
    assert (resp.status, error_code(resp)) == (400, "UniqueFieldsLimitExceeded")


def test_nested_fields_count_and_are_typed_by_their_position(make):
    """Iterable: the soft limit counts fields with "a field's uniqueness determined by its name and
    position on the user profile", and "Types of data fields must match the types sent in previous
    requests, across all data fields". The sandbox counted and typed top-level names only: an object
    of 5 fields was one field, and {"address": {"zip": "AB1 2CD"}} after {"address": {"zip": 75001}}
    was taken."""
    thread, client = make(max_fields=3)
    body = {"email": "a@b.co", "dataFields": {"address": {"zip": 75001, "city": "Paris"}}}
    assert client.post(UPDATE, body).json()["params"]["createdFields"] == ["address", "address.zip", "address.city"]
    assert fields_of(thread) == {"address": "object", "address.zip": "long", "address.city": "string"}
    resp = client.post(BULK, {"users": [{"email": "b@b.co", "dataFields": {"address": {"zip": "AB1 2CD"}}}]})
    assert (resp.status, error_code(resp)) == (400, "RequestFieldsTypesMismatched")
    assert list(resp.json()["params"]["validationErrors"]) == ["project_1:::address.zip"]
    assert client.post(BULK, {"users": [{"email": "b@b.co", "dataFields": {"address": {"zip": 75002}}}]}).status == 200
    resp = client.post(BULK, {"users": [{"email": "a@b.co", "dataFields": {"address": {"country": "FR"}}}]})
    assert (resp.status, error_code(resp)) == (400, "UniqueFieldsLimitExceeded")  # a 4th field
    # users of one batch with the same top-level shape, their objects' fields typed apart
    thread, client = make()
    resp = client.post(BULK, {"users": [{"email": "a@b.co", "dataFields": {"address": {"zip": 1}}},
                                        {"email": "b@b.co", "dataFields": {"address": {"zip": "x"}}}]})
    assert (resp.status, error_code(resp)) == (400, "RequestFieldsTypesMismatched")
    # the objects of an array hold positions too
    client.post(UPDATE, {"email": "a@b.co", "dataFields": {"orders": [{"sku": "x1", "qty": 2}]}})
    assert fields_of(thread) == {"orders": "array", "orders.sku": "string", "orders.qty": "long"}
    resp = client.post(BULK, {"users": [{"email": "a@b.co", "dataFields": {"orders": [{"qty": "two"}]}}]})
    assert (resp.status, error_code(resp)) == (400, "RequestFieldsTypesMismatched")


# ------------------------------------------------------------------ caps
def test_users_per_bulk_cap(make):
    thread, client = make()
    resp = client.post(BULK, {"users": [{"email": f"u{i}@b.co"} for i in range(1001)]})
    assert (resp.status, error_code(resp)) == (400, "BatchTooLarge")
    body = client.post(BULK, {"users": [{"email": f"u{i}@b.co"} for i in range(1000)]}).json()
    assert body["successCount"] == 1000
    thread2, client2 = make(max_users_per_bulk=3)
    resp = client2.post(BULK, {"users": [{"email": f"u{i}@b.co"} for i in range(4)]})
    assert error_code(resp) == "BatchTooLarge"
    assert users_of(thread2) == 0


def test_body_size_cap(make):
    thread, client = make()
    big = {"users": [{"email": "a@b.co", "dataFields": {"blob": "x" * (4 * 1024 * 1024)}}]}
    resp = client.post(BULK, big)
    assert (resp.status, error_code(resp)) == (413, "BatchTooLarge")
    assert users_of(thread) == 0
    thread2, client2 = make(max_body_bytes=200, body_too_large_status=400)
    small = {"users": [{"email": f"u{i}@b.co"} for i in range(3)]}
    assert client2.post(BULK, small).status == 200
    resp = client2.post(BULK, {"users": [{"email": f"user{i}@example.com"} for i in range(10)]})
    assert (resp.status, error_code(resp)) == (400, "BatchTooLarge")


def test_body_cap_is_4mb_in_decimal_as_the_reference_reads_it(make):
    """"4MB" is ambiguous; the reference notes read it as 4,000,000 bytes (RudderStack's cap), and
    so does the client. At 4 MiB the sandbox let 4,000,001-4,194,304-byte bodies through."""
    thread, client = make()
    over = {"users": [{"email": "a@b.co", "dataFields": {"blob": "x" * 4_000_000}}]}
    resp = client.post(BULK, over)
    assert (resp.status, error_code(resp)) == (413, "BatchTooLarge")
    under = {"users": [{"email": "a@b.co", "dataFields": {"blob": "x" * 3_999_000}}]}
    assert client.post(BULK, under).status == 200


# ------------------------------------------------------------------ rate limits
async def _concurrent_bulks(url: str, count: int, users_each: int) -> list[tuple[int, dict, dict]]:
    async with aiohttp.ClientSession(headers={"Api-Key": KEY}) as session:
        async def one(n: int):
            body = {"users": [{"email": f"r{n}-{i}@b.co"} for i in range(users_each)]}
            async with session.post(url + BULK, json=body) as resp:
                return resp.status, dict(resp.headers), await resp.json()
        return await asyncio.gather(*(one(n) for n in range(count)))


def test_rate_limit_answers_429_with_retry_after_and_no_effect(make):
    thread, client = make(limits=True, rate_limits={"bulkUpdate": 2})
    results = asyncio.run(_concurrent_bulks(thread.url, 5, 3))
    statuses = [status for status, _, _ in results]
    assert set(statuses) <= {200, 429} and 429 in statuses and 200 in statuses
    for status, headers, body in results:
        if status == 429:
            assert body == {"msg": "Rate limit exceeded", "code": "RateLimitExceeded", "params": None}
            assert int(headers["Retry-After"]) >= 1
    ok = statuses.count(200)
    assert users_of(thread) == 3 * ok  # refused requests wrote nothing
    assert thread.stats()["responses_429"] == statuses.count(429)


def test_retry_after_as_http_date_or_absent(make):
    thread, client = make(limits=True, rate_limits={"bulkUpdate": 1}, retry_after="http-date")
    results = asyncio.run(_concurrent_bulks(thread.url, 4, 1))
    limited = [headers for status, headers, _ in results if status == 429]
    assert limited
    when = parsedate_to_datetime(limited[0]["Retry-After"])
    assert when.tzinfo is not None and when > datetime.now(timezone.utc) - timedelta(seconds=5)
    thread2, _ = make(limits=True, rate_limits={"bulkUpdate": 1}, retry_after="none")
    results = asyncio.run(_concurrent_bulks(thread2.url, 4, 1))
    limited = [headers for status, headers, _ in results if status == 429]
    assert limited and all("Retry-After" not in h for h in limited)


def test_retry_after_http_date_is_never_before_the_window_frees(monkeypatch):
    """An HTTP date has whole seconds: the sandbox must round the moment the limit frees up, not
    down. Before, at 100.9 s with the window freeing 1 s later (101.9), the date said 101: a client
    honouring it exactly came back into the same window and got another 429."""
    import dinsync.sandbox.iterable as module

    sandbox = IterableSandbox(KEY, limits=True, retry_after="http-date")
    monkeypatch.setattr(module.time, "time", lambda: 100.9)
    for wait in (0.05, 0.5, 1.0):
        resp = sandbox._too_many_requests(wait)
        when = parsedate_to_datetime(resp.headers["Retry-After"]).timestamp()
        assert when >= 100.9 + max(1.0, wait) and when == int(when)


def test_default_limits_cover_get_fields(make):
    thread, client = make(limits=True)  # documented default: getFields 3/s

    async def burst() -> list[int]:
        async with aiohttp.ClientSession(headers={"Api-Key": KEY}) as session:
            async def one() -> int:
                async with session.get(thread.url + "/api/users/getFields") as resp:
                    return resp.status
            return await asyncio.gather(*(one() for _ in range(8)))

    statuses = asyncio.run(burst())
    assert 429 in statuses and 200 in statuses
    thread.call(lambda: setattr(thread.sandbox.options, "limits", False))  # switch off at run time
    assert client.get("/api/users/getFields").status == 200


# ------------------------------------------------------------------ inspection, routing, runner
def test_log_counters_and_reset(make):
    thread, client = make()
    client.post(BULK, {"users": [{"email": "a@b.co"}, {"email": "b@b.co"}]})
    client.get("/api/users/getByEmail?email=a@b.co")
    client.post(BULK, {"users": []}, key="nope")
    log = thread.call(lambda: list(thread.sandbox.log))
    assert [(e.endpoint, e.status, e.users) for e in log] == [
        ("bulkUpdate", 200, 2), ("getByEmail", 200, None), ("bulkUpdate", 401, None)]
    assert thread.stats()["requests_by_endpoint"] == {"bulkUpdate": 2, "getByEmail": 1}
    assert thread.stats()["requests"] == 3
    thread.reset()
    assert thread.stats() == {"requests": 0, "requests_by_endpoint": {}, "responses_429": 0, "faults": {},
                              "users": 0, "fields": 0}
    assert client.get("/api/users/getByEmail?email=a@b.co").json() == {}


def test_unknown_routes_answer_json(make):
    thread, client = make()
    resp = client.get("/api/nothing/here")
    assert (resp.status, error_code(resp)) == (404, "NotFound")
    assert client.request("DELETE", BULK).status == 405
    assert error_code(client.get("/api/users/getByEmail")) == "BadParams"


def test_thread_runner_lifecycle():
    sandbox = IterableSandbox(KEY)
    with SandboxThread(sandbox) as thread:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", thread.url)
        client = Client(thread.url)
        assert client.post(UPDATE, {"email": "a@b.co"}).status == 200
        assert thread.call(sandbox.get_user, email="a@b.co")["email"] == "a@b.co"

        async def coroutine():
            await asyncio.sleep(0)
            return len(sandbox.users)
        assert thread.call(coroutine) == 1
        port = client.port
        with pytest.raises(RuntimeError, match="failed to start"):
            SandboxThread(IterableSandbox(KEY), port=port).start()  # port taken
    with pytest.raises(ConnectionRefusedError):
        client.get("/api/users/getFields")
    thread.stop()  # idempotent
    with pytest.raises(RuntimeError):
        thread.call(lambda: None)


def test_build_sandbox_by_platform_name():
    sandbox = build_sandbox("iterable", api_key="k1", api_keys=["k2"], limits=False, project_type="hybrid")
    assert isinstance(sandbox, IterableSandbox)
    assert (sandbox.options.limits, sandbox.options.project_type) == (False, "hybrid")
    with SandboxThread(sandbox) as thread:
        assert thread.base_url == thread.url
        for key in ("k1", "k2"):
            assert Client(thread.url).get("/api/users/getFields", key=key).status == 200
    with pytest.raises(ValueError, match="unknown sandbox platform"):
        build_sandbox("nowhere", api_key="k")
    with pytest.raises(ValueError):
        build_sandbox("iterable")  # no key
    with pytest.raises(TypeError):
        serve(IterableSandbox(KEY), 0, api_key="k")  # options only go with a platform name


def _read_line(proc: subprocess.Popen, timeout: float = 10.0) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "the sandbox printed nothing"
    return proc.stdout.readline()


@pytest.mark.parametrize("key_in_env", [False, True])
def test_module_entry_point_prints_url_and_stops_on_sigterm(key_in_env):
    env = {**os.environ, "DINSYNC_SANDBOX_API_KEY": KEY} if key_in_env else dict(os.environ)
    args = [sys.executable, "-m", "dinsync.sandbox", "iterable", "--port", "0", "--project-type", "hybrid"]
    if not key_in_env:
        args += ["--api-key", KEY, "--no-limits"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = _read_line(proc)
        match = re.fullmatch(r"listening (http://127\.0\.0\.1:\d+)\n", line)
        assert match, line
        client = Client(match.group(1))
        assert client.post(UPDATE, {"userId": "u1"}).status == 200  # hybrid: userId alone creates
        assert client.get("/api/users/byUserId/u1").json()["user"]["userId"] == "u1"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert KEY not in out + err + line
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_module_entry_point_requires_a_key():
    env = {k: v for k, v in os.environ.items() if k != "DINSYNC_SANDBOX_API_KEY"}
    proc = subprocess.run([sys.executable, "-m", "dinsync.sandbox", "iterable", "--port", "0"],
                          capture_output=True, text=True, env=env, timeout=30)
    assert proc.returncode == 2 and "--api-key" in proc.stderr
