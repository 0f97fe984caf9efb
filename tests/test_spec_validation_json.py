"""The specification checks (tests/spec_validation.py) read request bodies as the platforms' parsers do:
a body Python's json module takes but RFC 8259 does not (NaN, Infinity, a repeated key, bytes that
are not UTF-8) fails every validator, or the recorders built on them would let it pass unseen."""
import pytest

from tests.spec_validation import (validate_attentive_request, validate_attio_request, validate_iterable_request,
                                   validate_splio_request)

VALID = {
    "iterable": ("POST", "/api/users/bulkUpdate", b'{"users":[{"email":"a@x.co","dataFields":{"v":%s}}]}'),
    "attio": ("PUT", "/v2/objects/people/records?matching_attribute=email_addresses",
              b'{"data":{"values":{"email_addresses":["a@x.co"],"visits":%s}}}'),
    "attentive": ("POST", "/v2/user/attributes",
                  b'{"identifiers":{"email":"a@x.co"},"attributes":{"custom":{"v":%s}}}'),
    "splio": ("PATCH", "/data/contacts/a@x.co", b'{"firstname":"x","custom_fields":[{"id":5,"value":"%s"}]}'),
}
VALIDATE = {"iterable": validate_iterable_request, "attio": validate_attio_request,
            "attentive": validate_attentive_request, "splio": validate_splio_request}


@pytest.mark.parametrize("platform", sorted(VALID))
def test_a_valid_body_passes(platform):
    method, path, body = VALID[platform]
    VALIDATE[platform](method, path, body % b"1")


@pytest.mark.parametrize("platform", sorted(VALID))
@pytest.mark.parametrize("value", [b"NaN", b"Infinity", b"-Infinity"])
def test_a_number_json_has_not_fails(platform, value):
    method, path, body = VALID[platform]
    if platform == "splio":  # custom field values are strings there: the constant goes in firstname
        body = b'{"firstname":%s}'
    with pytest.raises(AssertionError, match="not JSON"):
        VALIDATE[platform](method, path, body % value)


@pytest.mark.parametrize("platform", sorted(VALID))
def test_a_repeated_key_fails(platform):
    method, path, body = VALID[platform]
    text = body % b"1"
    repeated = text[:1] + text[1:text.index(b":") + 1] + b"null," + text[1:]
    with pytest.raises(AssertionError, match="repeats a key"):
        VALIDATE[platform](method, path, repeated)


@pytest.mark.parametrize("platform", sorted(VALID))
def test_a_body_not_in_utf8_fails(platform):
    method, path, body = VALID[platform]
    text = b'{"firstname":"\xe9"}' if platform == "splio" else body % b'"\xe9"'  # Latin-1 "é"
    with pytest.raises(UnicodeDecodeError):
        VALIDATE[platform](method, path, text)


def test_an_iterable_lookup_repeating_its_parameter_fails():
    validate_iterable_request("GET", "/api/users/getByEmail?email=a%40x.co", None)
    with pytest.raises(AssertionError, match="repeated query parameters"):
        validate_iterable_request("GET", "/api/users/getByEmail?email=a%40x.co&email=b%40x.co", None)
