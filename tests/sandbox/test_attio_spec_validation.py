"""`validate_attio_request` (tests/spec_validation.py), which client tests use to hold every request they
send to Attio's OpenAPI file, and its agreement with the sandbox's own body checks."""
from __future__ import annotations

import pytest

from dinsync.sandbox import SandboxThread
from tests.spec_validation import validate_attio_request, validate_iterable_request

from .attio_helpers import ASSERT_PERSON, PEOPLE, start

RID = "891dcbfc-9141-415d-9b2a-2238a6cc012d"
GOOD = [
    ("PUT", ASSERT_PERSON, {"data": {"values": {"email_addresses": ["a@b.co"], "description": "single value",
                                                "name": [{"first_name": "A", "last_name": "B", "full_name": "A B"}]}}}),
    ("POST", PEOPLE, b'{"data": {"values": {"email_addresses": ["a@b.co"]}}}'),
    ("PATCH", f"{PEOPLE}/{RID}", {"data": {"values": {}}}),
    ("PUT", f"{PEOPLE}/{RID}", {"data": {"values": {"phone_numbers": []}}}),
    ("POST", f"{PEOPLE}/query", {"filter": {"email_addresses": "a@b.co"}, "limit": 10, "offset": 0,
                                 "sorts": [{"direction": "asc", "attribute": "name", "field": "last_name"}]}),
    ("POST", f"{PEOPLE}/query", {}),
    ("GET", f"{PEOPLE}/{RID}", None),
    ("GET", "/v2/objects/people/attributes?limit=10&offset=0&show_archived=true", None),
    ("GET", "/v2/objects/people/attributes/plan/options?show_archived=false", None),
    ("GET", "/v2/objects/people/attributes/stage/statuses", None),
    ("GET", "/v2/objects", None),
    ("GET", "/v2/self", None),
]
BAD = [
    ("PUT", ASSERT_PERSON, {"data": {"values": {}, "extra": True}}, "Additional properties"),
    ("PUT", ASSERT_PERSON, {"data": {"values": {}}, "mode": "x"}, "Additional properties"),
    ("POST", PEOPLE, {"values": {}}, "'data' is a required property"),
    ("POST", PEOPLE, {"data": {}}, "'values' is a required property"),
    ("POST", PEOPLE, {"data": {"values": []}}, "is not of type 'object'"),
    ("PUT", PEOPLE, {"data": {"values": {}}}, "matching_attribute is required"),
    ("PUT", ASSERT_PERSON + "&append=true", {"data": {"values": {}}}, "unknown query parameters"),
    ("GET", f"{PEOPLE}/not-a-uuid", None, "is not a 'uuid'"),
    ("GET", "/v2/objects/people/attributes?limit=ten", None, "is not of type 'integer'"),
    ("GET", "/v2/things/people/attributes", None, "is not one of"),
    ("POST", f"{PEOPLE}/query", {"limit": "10"}, "is not of type 'number'"),
    ("POST", f"{PEOPLE}/query", {"sorts": [{"direction": "up", "attribute": "name"}]}, "sorts"),
    ("POST", f"{PEOPLE}/query", {"page": 2}, "Additional properties"),
    ("GET", "/v2/objects", b'{"x": 1}', "takes no body"),
    ("PUT", ASSERT_PERSON, None, "needs a body"),
    ("POST", f"{PEOPLE}/query", None, "needs a body"),
    ("DELETE", "/v2/objects", None, "not in the spec"),
    ("GET", "/v2/nowhere", None, "not an Attio API path"),
    ("PUT", "/v2/batch/records", {"assertions": []}, "not an Attio API path"),  # Segment's private endpoint
]


@pytest.mark.parametrize("method,path,body", GOOD)
def test_requests_that_follow_the_spec_pass(method, path, body):
    validate_attio_request(method, path, body)


@pytest.mark.parametrize("method,path,body,message", BAD)
def test_requests_that_do_not_follow_the_spec_fail(method, path, body, message):
    with pytest.raises(AssertionError, match=message):
        validate_attio_request(method, path, body)


def test_values_can_be_held_to_the_literal_array_schema():
    body = {"data": {"values": {"description": "x"}}}
    validate_attio_request("PUT", ASSERT_PERSON, body)
    with pytest.raises(AssertionError, match="is not of type 'array'"):
        validate_attio_request("PUT", ASSERT_PERSON, body, values_must_be_arrays=True)


def test_the_iterable_validator_still_works():
    validate_iterable_request("POST", "/api/users/bulkUpdate", b'{"users": [{"email": "a@b.co"}]}')
    with pytest.raises(AssertionError):
        validate_iterable_request("POST", "/api/users/bulkUpdate", b'{"users": [{"email": "a@b.co", "x": 1}]}')


@pytest.fixture
def sandbox():
    threads: list[SandboxThread] = []
    yield start(threads)
    for thread in threads:
        thread.stop()


@pytest.mark.parametrize("method,path,body", [
    ("PUT", ASSERT_PERSON, {"data": {"values": {"email_addresses": ["ok@b.co"]}}}),
    ("PUT", ASSERT_PERSON, {"data": {"values": {}, "extra": True}}),
    ("PUT", ASSERT_PERSON, {"data": {"values": {"email_addresses": ["ok@b.co"]}}, "mode": "x"}),
    ("POST", PEOPLE, {"values": {}}),
    ("POST", PEOPLE, {"data": {}}),
    ("POST", PEOPLE, {"data": {"values": []}}),
    ("POST", PEOPLE, {"data": {"values": {"email_addresses": ["ok2@b.co"]}}}),
    ("PUT", PEOPLE, {"data": {"values": {}}}),
    ("POST", f"{PEOPLE}/query", {"limit": "10"}),
    ("POST", f"{PEOPLE}/query", {"page": 2}),
    ("POST", f"{PEOPLE}/query", {"sorts": [{"direction": "up", "attribute": "name"}]}),
    ("POST", f"{PEOPLE}/query", {"limit": 5}),
    ("POST", f"{PEOPLE}/query", None),
    ("GET", "/v2/objects/people/attributes?limit=ten", None),
    ("GET", "/v2/objects/people/attributes?limit=3", None),
])
def test_sandbox_and_validator_agree_on_request_shapes(sandbox, method, path, body):
    """The sandbox answers 400 validation_type exactly when the validator rejects the request."""
    thread, client = sandbox
    try:
        validate_attio_request(method, path, body)
        valid = True
    except AssertionError:
        valid = False
    resp = client.request(method, path, body)
    assert (resp.status != 400 or resp.code != "validation_type") == valid, (resp.status, resp.body)


def test_the_shared_recorder_validates_attio_requests(attio_sandbox, attio_requests):
    """The conftest fixtures client tests will use: requests made with session.request are recorded."""
    import asyncio

    import aiohttp

    from tests.conftest import ATTIO_TEST_TOKEN

    sandbox, runner = attio_sandbox

    async def go() -> int:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {ATTIO_TEST_TOKEN}"}) as session:
            async with session.request("PUT", runner.url + PEOPLE, params={"matching_attribute": "email_addresses"},
                                       json={"data": {"values": {"email_addresses": ["rec@acme.com"]}}}) as resp:
                return resp.status
    assert asyncio.run(go()) == 200
    assert attio_requests.requests == [("PUT", PEOPLE + "?matching_attribute=email_addresses",
                                        {"data": {"values": {"email_addresses": ["rec@acme.com"]}}})]
    assert runner.call(sandbox.count, "people") == 1
