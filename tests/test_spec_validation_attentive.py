"""validate_attentive_request: strict checks of requests against Attentive's OpenAPI files (tests/specs/)."""
from __future__ import annotations

import orjson
import pytest

from tests.spec_validation import attentive_spec, validate_attentive_request, validate_iterable_request

GOOD_V2_USER = {"identifiers": {"email": "a@example.com", "phone": "+19148440001", "clientUserId": "c1",
                                "customIdentifiers": [{"key": "loyalty", "value": "L1"}]},
                "attributes": {"firstName": "A", "lastName": "B",
                               "demographic": {"dateOfBirth": "1990-01-31", "age": 35, "title": "Dr"},
                               "location": {"city": "Brooklyn", "country": "US", "latitude": "40.7"},
                               "locale": {"language": "fr", "country": "CA"},
                               "custom": {"lucky number": 6, "has pets": True, "color": "green"}}}


def test_specs_load_and_are_the_openapi_3_files():
    for version in ("v1", "v2"):
        spec = attentive_spec(version)
        assert spec["openapi"].startswith("3.0")
    assert attentive_spec("v1")["servers"][0]["url"].endswith("/v1")


@pytest.mark.parametrize("method, path, body", [
    ("GET", "/v1/me", None),
    ("GET", "/v2/me", None),
    ("POST", "/v1/attributes/custom", {"properties": {"age": "24", "VIP": True}, "user": {"email": "a@example.com"}}),
    ("POST", "/v1/attributes/custom", {"properties": {}, "user": {"externalIdentifiers": {
        "clientUserId": "c1", "customIdentifiers": [{"name": "n", "value": "v"}]}}}),
    ("GET", "/v1/attributes/custom?email=a%40example.com", None),
    ("GET", "/v1/attributes/custom?phone=%2B19148440001", None),
    ("GET", "/v1/subscriptions?email=a@example.com", None),
    ("POST", "/v1/identity-resolution/user-identifiers", {"email": "a@example.com", "clientUserId": "c1"}),
    ("POST", "/v1/identity-resolution/user-identifiers", None),  # the body is optional in the spec
    ("POST", "/v2/user/attributes", GOOD_V2_USER),
    ("POST", "/v2/bulk/user/attributes", {"users": [GOOD_V2_USER] * 256}),
    ("GET", "/v2/bulk/job/2f0c6a1e-job", None),
])
def test_valid_requests_pass(method, path, body):
    validate_attentive_request(method, path, orjson.dumps(body) if body is not None else None)
    if body is not None:
        validate_attentive_request(method, path, body)  # a dict is accepted as well


@pytest.mark.parametrize("method, path, body, message", [
    ("GET", "/api/users/getByEmail", None, "not an Attentive API path"),
    ("GET", "/v1/users", None, "not in the Attentive v1 spec"),
    ("PUT", "/v1/attributes/custom", None, "PUT /v1/attributes/custom is not in"),
    ("GET", "/v1/me", {"x": 1}, "takes no body"),
    ("GET", "/v1/attributes/custom?email=a%40b.co&phone=%2B19148440001", None, "exactly one"),
    ("GET", "/v1/attributes/custom", None, "exactly one"),
    ("GET", "/v1/subscriptions?phone=+19148440001", None, "%2B"),
    ("GET", "/v1/subscriptions?email=a@b.co&cursor=1", None, "unknown query parameters ['cursor']"),
    ("POST", "/v1/attributes/custom", None, "requires a JSON body"),
    ("POST", "/v1/attributes/custom", {"properties": {"x": "1"}}, "'user' is a required property"),
    ("POST", "/v1/attributes/custom", {"properties": {"x": "1"}, "user": {}}, "should be non-empty"),
    ("POST", "/v1/attributes/custom", {"properties": {}, "user": {"email": "a@b.co", "id": 1}}, "'id' was unexpected"),
    ("POST", "/v1/attributes/custom", {"properties": {}, "user": {"email": "a@b.co"}, "x": 1}, "'x' was unexpected"),
    ("POST", "/v1/attributes/custom", {"properties": {"c": ["a"]}, "user": {"email": "a@b.co"}}, "properties.c"),
    ("POST", "/v1/attributes/custom", {"properties": {"n" * 201: "1"}, "user": {"email": "a@b.co"}}, "200"),
    ("POST", "/v1/attributes/custom", {"properties": {}, "user": {"phone": "19148440001"}}, "user.phone"),
    ("POST", "/v1/identity-resolution/user-identifiers", {"phone": "9148440001", "clientUserId": "c"}, "phone"),
    ("POST", "/v2/user/attributes", {"identifiers": {}}, "should be non-empty"),
    ("POST", "/v2/user/attributes", {"identifiers": {"email": "a@b.co"}, "attributes": {"age": 3}},
     "'age' was unexpected"),
    ("POST", "/v2/user/attributes", {"identifiers": {"email": "a@b.co"},
                                     "attributes": {"demographic": {"age": "3"}}}, "is not of type 'integer'"),
    ("POST", "/v2/user/attributes", {"identifiers": {"email": "a@b.co"},
                                     "attributes": {"demographic": {"dateOfBirth": "1990-02-30"}}}, "is not a 'date'"),
    ("POST", "/v2/user/attributes", {"identifiers": {"email": "a@b.co"},
                                     "attributes": {"custom": {"m": {"a": 1}}}}, "attributes.custom.m"),
    ("POST", "/v2/user/attributes", {"identifiers": {"phone": "+1 914 844 0001"}}, "identifiers.phone"),
    ("POST", "/v2/user/attributes", {"identifiers": {"customIdentifiers": [{"name": "a", "value": "b"}]}},
     "'key' is a required property"),
    ("POST", "/v2/bulk/user/attributes", {}, "users is required"),
    ("POST", "/v2/bulk/user/attributes", {"users": []}, "should be non-empty"),
    ("POST", "/v2/bulk/user/attributes", {"users": [GOOD_V2_USER] * 257}, "is too long"),
    ("POST", "/v2/bulk/user/attributes", {"users": [{"identifiers": {"phone": "1"}}]}, "users[0].identifiers.phone"),
    ("POST", "/v2/bulk/user/attributes", {"users": [GOOD_V2_USER], "async": True}, "'async' was unexpected"),
])
def test_invalid_requests_fail_with_a_reason(method, path, body, message):
    with pytest.raises(AssertionError) as info:
        validate_attentive_request(method, path, orjson.dumps(body) if body is not None else None)
    assert message in str(info.value)


def test_subscription_opt_ins_cannot_pass_strict_validation():
    # The spec requires `subscriptionType` in subscriptions[] without listing it: under strict
    # validation no opt-in passes, which suits a product that must never opt anyone in.
    item = {"signUpSourceId": "1", "channel": "EMAIL", "subscriptionType": "MARKETING"}
    with pytest.raises(AssertionError, match="subscriptionType"):
        validate_attentive_request("POST", "/v2/user/attributes",
                                   {"identifiers": {"email": "a@b.co"}, "subscriptions": [item]})


def test_iterable_validator_still_works():
    validate_iterable_request("POST", "/api/users/bulkUpdate", orjson.dumps({"users": [{"email": "a@b.co"}]}))
    with pytest.raises(AssertionError):
        validate_iterable_request("POST", "/api/users/bulkUpdate", orjson.dumps({"users": [{"mail": "a@b.co"}]}))
