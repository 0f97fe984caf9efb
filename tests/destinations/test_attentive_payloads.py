"""Attentive client, unit level: bodies per field kind (validated against the OpenAPI files),
value checks with reasons, response and bulk-job result parsing, tokens, the rate header."""
from __future__ import annotations

import asyncio

import datetime as dt

import orjson
import polars as pl
import pytest

from dinsync.destinations.attentive import STANDARD_FIELDS, AttentiveDestination
from dinsync.destinations.attentive.destination import (
    CONFIRM,
    USERS,
    BulkPart,
    JobStatus,
    Lookup,
    WriteBatch,
    job_token,
    parse_job_token,
)
from dinsync.destinations.attentive.payloads import build_rows, custom_name_problems
from dinsync.destinations.attentive.transport import AttentiveSender, job_results
from dinsync.destinations.base import Request, SyncSpec, TransportOptions
from dinsync.mapping import FieldMapping, KeyMapping, map_batch
from dinsync.sender import FakeClock, RateLimiter
from tests.spec_validation import validate_attentive_request

KEY = "attn-unit-key-51c0e9"


def destination(**options) -> AttentiveDestination:
    return AttentiveDestination("http://127.0.0.1:9", {"api_key": KEY}, options)


def spec(fields: list[tuple[str, bool]], key_field: str = "email") -> SyncSpec:
    return SyncSpec("attentive_users", "users", "update", key_field, [f for f, _ in fields], [c for _, c in fields])


def mapped(keys: list, columns: dict[str, list], sync: SyncSpec, region: str | None = None,
           sent: dict[str, list[bool]] | None = None) -> pl.DataFrame:
    """Plan rows through the engine's own mapping (kinds from the service), with `_t{n}` texts."""
    data = {"_key": keys, "_op": ["added"] * len(keys)}
    for i, name in enumerate(sync.fields):
        data[f"v{i}"] = columns[name]
        data[f"x{i}"] = (sent or {}).get(name, [True] * len(keys))
    key_kind = USERS.key_fields[sync.key_field].kind
    fields = [FieldMapping(i, f, USERS.field_kind(f, c)) for i, (f, c) in enumerate(zip(sync.fields, sync.custom))]
    out = map_batch(pl.DataFrame(data, strict=False), KeyMapping(sync.key_field, key_kind), fields,
                    phone_region=region, keep_field_text=True)
    assert out.rejections.height == 0, out.rejections.to_dicts()
    return out.frame


def v2_records(frame: pl.DataFrame, sync: SyncSpec, **kw) -> dict[str, dict]:
    built = build_rows(frame, sync, **kw)
    return {k: orjson.loads(v) for k, v in zip(built.frame["_key"], built.frame["_v2"]) if v is not None}


# --- bodies per field kind -------------------------------------------------------------------------

def test_every_standard_field_lands_where_the_v2_body_has_it_and_validates():
    sync = spec([(name, False) for name in STANDARD_FIELDS if name != "email"])
    values = {
        "firstName": ["Ada"], "lastName": ["Lovelace"], "phone": ["(201) 555-0123"], "language": ["English"],
        "dateOfBirth": [dt.date(1990, 1, 31)], "age": [35], "organization": ["Acme"], "title": ["Dr"],
        "website": ["https://ada.example.com"], "address": ["1 Main St"], "address2": ["Suite 2"],
        "city": ["Brooklyn"], "state": ["NY"], "zip": [2134], "country": ["us"], "region": ["au-nsw"],
        "latitude": [40.73061], "longitude": [-73.935242], "timezone": ["America/New_York"],
        "localeLanguage": ["fr"], "localeCountry": ["CA"],
    }
    frame = mapped(["ada@example.com"], values, sync, region="US")
    [record] = v2_records(frame, sync).values()
    assert record == {
        "identifiers": {"email": "ada@example.com", "phone": "+12015550123"},
        "attributes": {
            "firstName": "Ada", "lastName": "Lovelace",
            "demographic": {"language": "English", "dateOfBirth": "1990-01-31", "age": 35, "organization": "Acme",
                            "title": "Dr", "website": "https://ada.example.com"},
            "location": {"address1": "1 Main St", "address2": "Suite 2", "city": "Brooklyn", "state": "NY",
                         "zip": "2134", "country": "US", "region": "AU-NSW", "latitude": "40.73061",
                         "longitude": "-73.935242", "timezone": "America/New_York"},
            "locale": {"language": "fr", "country": "CA"}}}
    validate_attentive_request("POST", "/v2/user/attributes", record)
    validate_attentive_request("POST", "/v2/bulk/user/attributes", {"users": [record]})


def test_field_kinds_coerce_text_columns():
    sync = spec([("dateOfBirth", False), ("age", False), ("latitude", False), ("zip", False)])
    frame = mapped(["a@example.com"], {"dateOfBirth": [" 1990-01-31 "], "age": ["42"], "latitude": ["-12.5"],
                                       "zip": ["02134"]}, sync)
    [record] = v2_records(frame, sync).values()
    assert record["attributes"]["demographic"] == {"dateOfBirth": "1990-01-31", "age": 42}
    assert record["attributes"]["location"] == {"latitude": "-12.5", "zip": "02134"}


def test_coordinates_are_sent_in_decimal_notation_never_with_an_exponent():
    """The v2 spec types latitude / longitude as strings written in decimal ("40.730610"): a small
    DOUBLE came out in exponent form ("1e-10", "-1e-7"), which a server reading decimal text refuses."""
    sync = spec([("latitude", False), ("longitude", False)])
    frame = mapped(["a@example.com", "b@example.com", "c@example.com"],
                   {"latitude": [0.00001, -1e-7, 12.5], "longitude": [1e-10, 2.5e-5, -100.25]}, sync)
    locations = {k: r["attributes"]["location"] for k, r in v2_records(frame, sync).items()}
    assert locations == {"a@example.com": {"latitude": "0.00001", "longitude": "0.0000000001"},
                         "b@example.com": {"latitude": "-0.0000001", "longitude": "0.000025"},
                         "c@example.com": {"latitude": "12.5", "longitude": "-100.25"}}


def test_phone_key_is_sent_in_e164_in_both_bodies():
    sync = spec([("firstName", False), ("Tier", True)], key_field="phone")
    frame = mapped(["(201) 555-0123"], {"firstName": ["Ada"], "Tier": ["gold"]}, sync, region="US")
    built = build_rows(frame, sync)
    [v2], [v1] = built.frame["_v2"].to_list(), built.frame["_v1"].to_list()
    assert orjson.loads(v2) == {"identifiers": {"phone": "+12015550123"}, "attributes": {"firstName": "Ada"}}
    assert orjson.loads(v1) == {"properties": {"Tier": "gold"}, "user": {"phone": "+12015550123"}}
    validate_attentive_request("POST", "/v1/attributes/custom", v1)
    assert built.frame["_key"].to_list() == ["(201) 555-0123"]  # the plan's key is kept for commits


def test_custom_attribute_values_keep_their_json_type_and_validate():
    names = ["plan", "lucky number", "balance", "vip", "signed up", "seen at"]
    sync = spec([(n, True) for n in names])
    frame = mapped(["a@example.com"], {"plan": ["gold"], "lucky number": [6], "balance": [50.89], "vip": [True],
                                       "signed up": [dt.date(2021, 4, 23)],
                                       "seen at": [dt.datetime(2021, 4, 23, 16, 4, 33, tzinfo=dt.timezone.utc)]},
                   sync)
    built = build_rows(frame, sync)
    assert built.frame["_v2"].to_list() == [None]  # custom attributes only: no v2 record
    body = orjson.loads(built.frame["_v1"][0])
    assert body == {"properties": {"plan": "gold", "lucky number": 6, "balance": 50.89, "vip": True,
                                   "signed up": "2021-04-23", "seen at": "2021-04-23T16:04:33Z"},
                    "user": {"email": "a@example.com"}}
    validate_attentive_request("POST", "/v1/attributes/custom", body)


def test_custom_attributes_via_v2_go_into_the_bulk_record():
    sync = spec([("firstName", False), ("plan", True)])
    frame = mapped(["a@example.com"], {"firstName": ["Ada"], "plan": ["gold"]}, sync)
    built = build_rows(frame, sync, custom_via="v2")
    assert built.frame["_v1"].to_list() == [None]
    record = orjson.loads(built.frame["_v2"][0])
    assert record["attributes"] == {"firstName": "Ada", "custom": {"plan": "gold"}}
    validate_attentive_request("POST", "/v2/bulk/user/attributes", {"users": [record]})


def test_only_the_fields_sent_for_a_row_are_in_its_bodies():
    sync = spec([("firstName", False), ("city", False), ("plan", True)])
    frame = mapped(["a@example.com", "b@example.com", "c@example.com"],
                   {"firstName": ["A", "B", "C"], "city": ["X", "Y", "Z"], "plan": ["p", "q", "r"]}, sync,
                   sent={"firstName": [True, False, False], "city": [False, True, False], "plan": [False, False, True]})
    built = build_rows(frame, sync)
    rows = {r["_key"]: (r["_v2"] and orjson.loads(r["_v2"]), r["_v1"] and orjson.loads(r["_v1"]))
            for r in built.frame.to_dicts()}
    assert rows["a@example.com"] == ({"identifiers": {"email": "a@example.com"},
                                      "attributes": {"firstName": "A"}}, None)
    assert rows["b@example.com"] == ({"identifiers": {"email": "b@example.com"},
                                      "attributes": {"location": {"city": "Y"}}}, None)
    assert rows["c@example.com"] == (None, {"properties": {"plan": "r"}, "user": {"email": "c@example.com"}})


def test_nulls_and_empty_strings_are_not_sent_unless_asked():
    sync = spec([("firstName", False), ("city", False), ("plan", True)])
    frame = mapped(["a@example.com", "b@example.com"], {"firstName": [None, "B"], "city": ["", "Y"],
                                                        "plan": [None, None]}, sync)
    built = build_rows(frame, sync)
    rows = {r["_key"]: (r["_v2"], r["_v1"]) for r in built.frame.to_dicts()}
    assert rows["a@example.com"] == (None, None)  # nothing left to send: acknowledged as it is
    assert orjson.loads(rows["b@example.com"][0])["attributes"] == {"firstName": "B", "location": {"city": "Y"}}
    with_nulls = build_rows(frame, sync, send_nulls=True)
    first = {r["_key"]: r for r in with_nulls.frame.to_dicts()}["a@example.com"]
    # custom values may be null ("Object values can be any type"); the v2 standard fields are typed
    # strings: "" is one, null is not (the spec's schema refuses it), so a NULL there is not sent
    assert orjson.loads(first["_v2"])["attributes"] == {"location": {"city": ""}}
    assert orjson.loads(first["_v1"])["properties"] == {"plan": None}
    validate_attentive_request("POST", "/v2/bulk/user/attributes", {"users": [orjson.loads(first["_v2"])]})
    validate_attentive_request("POST", "/v1/attributes/custom", first["_v1"])


def test_send_nulls_never_puts_a_null_identifier_in_the_v2_body():
    """`send_nulls` is about attributes: an identifier the row lacks (a NULL email of a phone-matched
    sync) is omitted, as the v2 spec asks ("you should omit the field"); a null there is refused."""
    sync = spec([("firstName", False), ("email", False)], key_field="phone")
    frame = mapped(["+12015550001", "+12015550002"], {"firstName": ["A", None], "email": [None, "b@example.com"]},
                   sync)
    records = v2_records(frame, sync, send_nulls=True)
    assert records["+12015550001"] == {"identifiers": {"phone": "+12015550001"}, "attributes": {"firstName": "A"}}
    assert records["+12015550002"] == {"identifiers": {"phone": "+12015550002", "email": "b@example.com"}}
    validate_attentive_request("POST", "/v2/bulk/user/attributes", {"users": list(records.values())})


def test_send_nulls_never_rejects_a_row_for_a_blank_checked_field():
    """A NULL or "" country, region, coordinate or age is not a malformed value: with `send_nulls` it
    does not reject its row (it did, and a blank country would have been sent as "NULL"); a NULL is
    not sent (the v2 schema types these fields), "" goes as unchecked fields send it."""
    fields = ["firstName", "country", "region", "latitude", "longitude", "age", "localeCountry"]
    sync = spec([(f, False) for f in fields])
    frame = mapped(["a@example.com", "b@example.com"],
                   {"firstName": ["A", "B"], "country": [None, ""], "region": [None, ""], "latitude": [None, None],
                    "longitude": [None, None], "age": [None, None], "localeCountry": [None, ""]}, sync)
    built = build_rows(frame, sync, send_nulls=True)
    assert built.rejections == []
    records = {k: orjson.loads(v) for k, v in zip(built.frame["_key"], built.frame["_v2"])}
    assert records["a@example.com"]["attributes"] == {"firstName": "A"}
    assert records["b@example.com"]["attributes"] == {"firstName": "B", "location": {"country": "", "region": ""},
                                                      "locale": {"country": ""}}


@pytest.mark.parametrize("field, value, reason", [
    ("latitude", 90.5, "is not a latitude between -90 and 90"),
    ("longitude", -180.01, "is not a longitude between -180 and 180"),
    ("country", "USA", "is not an ISO-3166-1 alpha-2 country code"),
    ("localeCountry", "F", "is not an ISO-3166-1 alpha-2 country code"),
    ("region", "NSW", "is not an ISO-3166-2 subdivision code"),
    ("age", -1, "is not a non-negative integer"),
])
def test_values_attentive_cannot_take_reject_their_row_with_a_reason(field, value, reason):
    sync = spec([("firstName", False), (field, False)])
    good = {"latitude": 1.0, "longitude": 1.0, "country": "FR", "localeCountry": "FR", "region": "FR-75", "age": 3}
    frame = mapped(["bad@example.com", "good@example.com"], {"firstName": ["B", "G"], field: [value, good[field]]},
                   sync)
    built = build_rows(frame, sync)
    [rejection] = built.rejections
    assert (rejection.key, rejection.field) == ("bad@example.com", field)
    assert reason in rejection.reason and f'field "{field}"' in rejection.reason and str(value) in rejection.reason
    assert built.frame["_key"].to_list() == ["good@example.com"]


@pytest.mark.parametrize("field, value", [
    ("country", "\ufb01"), ("country", "\u0131t"), ("localeCountry", "\u00df"), ("region", "\ufb00-NSW"),
    ("country", "\uff26\uff32"),
])
def test_letters_that_only_upper_case_into_a_code_are_rejected_not_sent_as_one(field, value):
    """Country and region codes are upper-cased before their shape is checked, and Unicode's upper
    case turns some non-ASCII letters into ASCII ones: the ligature 'ﬁ' became 'FI' (Finland), the
    dotless 'ıt' 'IT' (Italy), 'ß' 'SS', and were sent as those codes. A code holding anything but
    ASCII is rejected with the reason the check gives."""
    sync = spec([("firstName", False), (field, False)])
    good = {"country": "fr", "localeCountry": "FR", "region": "fr-75"}
    frame = mapped(["bad@example.com", "good@example.com"], {"firstName": ["B", "G"], field: [value, good[field]]},
                   sync)
    built = build_rows(frame, sync)
    assert [(r.key, r.field) for r in built.rejections] == [("bad@example.com", field)]
    assert "is not an ISO-3166" in built.rejections[0].reason
    assert built.frame["_key"].to_list() == ["good@example.com"]


def test_bad_dates_and_phones_are_rejected_by_the_mapping_with_reasons():
    plan = pl.DataFrame({"_key": ["a@example.com", "b@example.com"], "_op": ["added", "added"],
                         "v0": ["1990-02-31", "1990-02-28"], "x0": [True, True],
                         "v1": ["+1 201 555 0123", "call me"], "x1": [True, True]})
    fields = [FieldMapping(0, "dateOfBirth", "date"), FieldMapping(1, "phone", "phone")]
    out = map_batch(plan, KeyMapping("email", "email"), fields, keep_field_text=True)
    reasons = {(r["_key"], r["field"]): r["reason"] for r in out.rejections.to_dicts()}
    assert "cannot convert '1990-02-31' to a date (YYYY-MM-DD)" in reasons[("a@example.com", "dateOfBirth")]
    assert "invalid phone number 'call me'" in reasons[("b@example.com", "phone")]


def test_custom_arrays_and_objects_are_rejected_before_sending():
    sync = spec([("tags", True)])
    frame = mapped(["a@example.com", "b@example.com"], {"tags": [["x", "y"], ["z"]]}, sync)
    built = build_rows(frame, sync)
    assert {r.key for r in built.rejections} == {"a@example.com", "b@example.com"}
    assert "does not accept arrays or objects" in built.rejections[0].reason


def test_hostile_text_is_escaped():
    sync = spec([("firstName", False), ("note", True)])
    text = 'quote " back \\ newline \n emoji 🎉 </script>'
    frame = mapped(['o"brien@example.com'], {"firstName": [text], "note": [text]}, sync)
    built = build_rows(frame, sync)
    assert orjson.loads(built.frame["_v2"][0])["attributes"]["firstName"] == text
    body = orjson.loads(built.frame["_v1"][0])
    assert body == {"properties": {"note": text}, "user": {"email": 'o"brien@example.com'}}


def test_custom_attribute_names_over_200_characters_are_a_mapping_problem():
    sync = spec([("x" * 201, True), ("ok", True)])
    [(name, message)] = custom_name_problems(sync)
    assert name == "x" * 201 and "200" in message


def test_more_than_100_custom_attributes_through_v2_are_a_mapping_problem():
    # v2 creates at most 100 custom attributes: with 110 mapped, validate said OK and Attentive
    # refused every row (`attributes.custom: there is a limit of 100`), each parked until it changed
    sync = spec([("firstName", False)] + [(f"Attr{i}", True) for i in range(110)])
    [(name, message)] = custom_name_problems(sync, "v2")
    assert name == "Attr100" and "110 custom attributes" in message and "v1" in message
    assert custom_name_problems(sync, "v1") == []  # v1 has no such limit
    assert custom_name_problems(spec([(f"Attr{i}", True) for i in range(100)]), "v2") == []
    import asyncio
    issues = asyncio.run(destination(custom_attributes_via="v2").preflight(None, sync)).issues
    assert [i.field for i in issues] == ["Attr100"]


# --- prepare: units of writes ---------------------------------------------------------------------

def test_prepare_splits_rows_into_units_and_bulk_requests_of_at_most_256_users():
    sync = spec([("firstName", False), ("plan", True)])
    n = 1500
    keys = [f"u{i}@example.com" for i in range(n)]
    frame = mapped(keys, {"firstName": [f"N{i}" for i in range(n)],
                          "plan": ["gold" if i % 3 == 0 else None for i in range(n)]}, sync)
    prepared = destination().prepare(frame, sync)
    assert [len(r.keys) for r in prepared.requests] == [1024, 476]
    first: WriteBatch = prepared.requests[0].context
    assert [len(r.keys) for r in first.v2] == [256, 256, 256, 256]
    assert len(first.v1) == len([k for k in keys[:1024] if int(k[1:].split("@")[0]) % 3 == 0])
    body = orjson.loads(first.v2[0].body)
    validate_attentive_request("POST", "/v2/bulk/user/attributes", body)
    assert [u["identifiers"]["email"] for u in body["users"]] == first.v2[0].keys
    half_a, half_b = first.v2[0].split()  # a bulk request splits into valid bulk requests
    assert len(orjson.loads(half_a.body)["users"]) == 128 and half_b.context is first.v2[0].context


def test_a_row_over_the_bulk_body_cap_is_rejected_with_a_reason_not_sent_alone_over_it():
    # batches_by_size gives a record larger than the cap a request of its own: a 5 MB firstName
    # went out as a 5 MB bulk request, over the 4 MB cap the README states
    sync = spec([("firstName", False), ("plan", True)])
    frame = mapped(["a@example.com", "big@example.com", "c@example.com"],
                   {"firstName": ["A", "x" * (5 << 20), "C"], "plan": ["p", "q", "r"]}, sync)
    prepared = destination().prepare(frame, sync)
    [rejection] = prepared.rejections
    assert rejection.key == "big@example.com"
    assert "over the 4,194,304-byte request cap" in rejection.reason
    [unit] = prepared.requests
    assert unit.keys == ["a@example.com", "c@example.com"]  # neither its custom attributes are written
    assert set(unit.context.v1) == {"a@example.com", "c@example.com"}
    assert max(len(r.body) for r in unit.context.v2) <= 4 << 20


def test_a_row_over_the_bulk_body_cap_names_its_largest_bulk_field():
    """The rejection named no field (`field` None, the reason only the row's size): which of the
    row's values to shorten was left to guess. The largest value the bulk record carries is named,
    not a larger custom attribute that goes through v1 (it is not in the bulk record)."""
    sync = spec([("firstName", False), ("city", False), ("plan", True)])
    frame = mapped(["a@example.com", "big@example.com"],
                   {"firstName": ["A", "x" * (3 << 20)], "city": ["P", "y" * (2 << 20)],
                    "plan": ["p", "z" * (6 << 20)]}, sync)
    [rejection] = destination().prepare(frame, sync).rejections
    assert rejection.key == "big@example.com"
    assert rejection.field == "firstName"
    assert rejection.reason.endswith('(largest field "firstName": 3,145,730 bytes)')
    # through v2, custom attributes are in the bulk record
    [rejection] = destination(custom_attributes_via="v2").prepare(frame, sync).rejections
    assert rejection.field == "plan" and '(largest field "plan": 6,291,458 bytes)' in rejection.reason


def test_prepare_single_mode_builds_one_request_per_row():
    sync = spec([("firstName", False)])
    frame = mapped(["a@example.com", "b@example.com"], {"firstName": ["A", "B"]}, sync)
    [unit] = destination(standard_fields_via="single").prepare(frame, sync).requests
    assert [(r.endpoint, r.path, r.keys) for r in unit.context.v2] == [
        ("user_attributes", "/v2/user/attributes", ["a@example.com"]),
        ("user_attributes", "/v2/user/attributes", ["b@example.com"])]
    for r in unit.context.v2:
        validate_attentive_request("POST", r.path, r.body)


def test_lookup_requests_encode_the_identifier_as_the_spec_asks():
    d = destination()
    [phone] = d.lookup_requests(["k1"], ["+12015550123"], spec([], key_field="phone"))
    [email] = d.lookup_requests(["k2"], ["a+tag@example.com"], spec([]))
    assert phone.path == "/v1/attributes/custom?phone=%2B12015550123"
    assert email.path == "/v1/attributes/custom?email=a%2Btag%40example.com"
    [subs] = destination(existence_check="subscriptions").lookup_requests(["k"], ["a@example.com"], spec([]))
    assert (subs.endpoint, subs.path) == ("get_subscriptions", "/v1/subscriptions?email=a%40example.com")
    for r in (phone, email, subs):
        validate_attentive_request("GET", r.path, None)


def test_service_looks_every_written_row_up_unless_told_to_trust_the_snapshot():
    assert destination().service("users").lookup_rows == "all"
    assert destination(lookup="new_rows").service("users").lookup_rows == "added"


# --- responses ------------------------------------------------------------------------------------

def parse(request: Request, status: int, body=None, headers=None):
    raw = body if isinstance(body, bytes) else (orjson.dumps(body) if body is not None else b"")
    return destination().parse(request, status, headers or {}, raw)


def lookup(kind="custom_attributes") -> Request:
    return Request("get_custom_attributes", "GET", "/v1/attributes/custom?email=a%40b.co", None, ["a@b.co"],
                   context=Lookup(kind, "email"))


def test_lookup_answers():
    assert parse(lookup(), 200, [{"name": "Tier", "value": "gold"}]).results[0].status == "ok"
    empty = parse(lookup(), 200, [])
    assert (empty.kind, empty.results, empty.pending) == ("done", [], CONFIRM)  # the transport decides
    assert parse(lookup("subscriptions"), 200, {"subscriptionEligibilities": []}).results[0].status == "ok"
    missing = parse(lookup(), 404, {"error": {"id": 3, "message": "Subscriber not found"}}).results[0]
    assert missing.status == "not_found" and "never creates" in missing.reason
    bad = parse(lookup(), 400, {"error": {"id": 4, "message": "email is not a valid email address"}}).results[0]
    assert (bad.status, bad.reason) == ("rejected", "Attentive HTTP 400: email is not a valid email address")


def test_a_subscriptions_lookup_answered_with_json_that_is_no_object_is_asked_again():
    """`GET /v1/subscriptions` answers a known subscriber with an object (GetSubscriptionsResponseDto,
    `{"subscriptionEligibilities": [...]}`). A gateway's `[]`, `"ok"` or `true` was taken for a known
    subscriber: update mode wrote to a user the lookup never found, and acknowledged the row."""
    for body in ([], "ok", True, 1):
        outcome = parse(lookup("subscriptions"), 200, body)
        assert outcome.kind == "retry", body
        assert "without Attentive's answer" in outcome.reason
    assert parse(lookup("subscriptions"), 200, {}).results[0].status == "ok"  # (the DTO requires no member)


def test_a_2xx_that_is_not_attentives_answer_is_sent_again():
    """A proxy's or a captive portal's 200 page (or no JSON where Attentive answers with it): a
    glitch of one answer, retried like a 5xx. A subscriptions lookup took any 200 for a known
    subscriber (a write could then create one); a lookup or a bulk submission failed at once."""
    page = b"<html><head><title>Portal</title></head><body>sign in</body></html>"
    part = BulkPart("email", {"a@b.co": "a@b.co"})
    bulk = destination().bulk_request(["a@b.co"], [b"{}"], part)
    for request in (lookup(), lookup("subscriptions"), bulk, destination().job_request("job-1")):
        for body in (page, b""):
            assert parse(request, 200, body).kind == "retry", (request.path, body)
    v1 = Request("custom_attributes", "POST", "/v1/attributes/custom", b"{}", ["a@b.co"])
    assert parse(v1, 200, page).kind == "retry"
    assert parse(v1, 200).results[0].status == "ok"  # a write's empty 200: Attentive's own answer


def test_a_v1_custom_attributes_write_answered_with_text_that_is_no_answer_is_sent_again():
    """`POST /v1/attributes/custom` answers 200 with no body (none documented). A 2xx body that is
    neither empty nor a JSON object (a proxy's plain "OK", JSON cut short, `null`, `[]`) acknowledged
    the row: its custom attributes entered the snapshot though Attentive may never have got them
    (seen through a fault proxy: 3-15 of 120 rows acknowledged with Attentive holding no `Tier`).
    Such an answer is sent again; an empty body (and a JSON object) is still Attentive's answer."""
    v1 = Request("custom_attributes", "POST", "/v1/attributes/custom", b"{}", ["a@b.co"])
    for body in (b"OK", b"{", b'{"success": tr', b"null", b"[]", b'"ok"', b"true"):
        outcome = parse(v1, 200, body)
        assert outcome.kind == "retry", body
        assert "without Attentive's answer" in outcome.reason
    for body in (b"", b"  \r\n", b"{}"):
        assert parse(v1, 200, body).results[0].status == "ok", body


def test_a_custom_attributes_lookup_answered_200_json_that_is_not_a_list_is_sent_again():
    """`GET /v1/attributes/custom` answers a known subscriber with the list of their attributes. A
    200 JSON that is not a list (a gateway's `{}` or `{"message": "ok"}`) is not that answer: it is
    read again, as a page or an empty body is, where it failed the row at once ("unreadable lookup
    answer") and the run with it (exit 1) over a glitch of one answer."""
    for body in ({}, {"message": "ok"}, "ok", 3):
        outcome = parse(lookup(), 200, body)
        assert outcome.kind == "retry", body
        assert "without Attentive's answer" in outcome.reason
    assert parse(lookup(), 200, [{"name": "Tier", "value": "gold"}]).results[0].status == "ok"


def test_a_bulk_submission_answered_2xx_without_a_job_id_is_sent_again():
    """Attentive accepts a bulk submission with 202 `{"message", "batchJobId"}`. A 2xx JSON without
    the job's id (`{}`, a gateway's `{"message": "ok"}`, a list) is not its answer: a glitch of one
    answer, sent again like a portal's page (a job submitted twice applies the same values), where
    it failed every row of the request at once (the run failed, the rows waited for the next)."""
    part = BulkPart("email", {"a@b.co": "a@b.co", "c@d.co": "c@d.co"})
    bulk = destination().bulk_request(["a@b.co", "c@d.co"], [b"{}", b"{}"], part)
    for body in ({}, {"message": "ok"}, [], {"batchJobId": ""}, {"batchJobId": 7}):
        for status in (200, 202):
            outcome = parse(bulk, status, body)
            assert outcome.kind == "retry", (status, body)
            assert "without a job id" in outcome.reason
    accepted = parse(bulk, 202, {"message": "Bulk job accepted for processing", "batchJobId": "job-9"})
    assert (accepted.kind, accepted.pending) == ("done", "attentive-bulk:email:job-9")


def test_a_single_v2_write_is_acknowledged_only_by_attentives_json_answer():
    """`POST /v2/user/attributes` answers 202 with a JSON object (`{"success": true, "message"}`):
    an empty, cut or unreadable 2xx may come from something between dinsync and Attentive that never
    passed the write on. Taken for an acknowledgement, the row entered the snapshot with values
    Attentive never got, and no later run sent them (it looked unchanged): it is sent again."""
    v2 = destination().single_request("a@b.co", b'{"user": {"email": "a@b.co"}}')
    for body in (b"", b"{not json", b'{"success": tr', b"null", b"[]", b"OK"):
        outcome = parse(v2, 202, body)
        assert outcome.kind == "retry", body
        assert "without Attentive's answer" in outcome.reason
    assert parse(v2, 202, {"success": True, "message": "User attributes accepted"}).results[0].status == "ok"
    assert parse(v2, 202, {"success": False, "message": "no"}).results[0].status == "rejected"


def test_a_single_v2_write_is_not_acknowledged_by_json_of_another_shape():
    """A JSON object without Attentive's `success` (a gateway's or a mock's `{}`, `{"message": "ok"}`,
    `{"data": null}`) acknowledged the row: it entered the snapshot with values Attentive may never
    have got. Only `success` says what became of the write; without it, the write is sent again."""
    v2 = destination().single_request("a@b.co", b'{"user": {"email": "a@b.co"}}')
    for body in ({}, {"message": "ok"}, {"data": None}, {"status": "ok"}, {"success": "true"}, {"success": None}):
        outcome = parse(v2, 202, body)
        assert outcome.kind == "retry", body
        assert "without Attentive's answer" in outcome.reason
    assert parse(v2, 202, {"success": True}).results[0].status == "ok"


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_stop_the_run_naming_the_scopes(status):
    write = Request("bulk_user_attributes", "POST", "/v2/bulk/user/attributes", b"{}", ["a"], context=None)
    outcome = parse(write, status, {"error": {"id": 1, "message": "Access denied"}})
    assert outcome.kind == "fatal"
    assert "attributes:write and subscriptions:write" in outcome.reason and "Access denied" in outcome.reason


def test_a_refused_key_on_an_endpoint_without_scopes_does_not_name_a_scope_called_none():
    outcome = parse(destination().me_request(), 401, {"error": {"id": 1, "message": "Unauthorized"}})
    assert outcome.kind == "fatal" and "needs the scope(s) none" not in outcome.reason
    assert "the key itself was refused" in outcome.reason and "HTTP 401 on me: Unauthorized" in outcome.reason


def test_429_without_retry_after_waits_a_second_on_the_rate_headers():
    outcome = parse(lookup(), 429, {"error": {"id": 1, "message": "Too many requests"}},
                    {"x-ratelimit-limit": "150", "x-ratelimit-remaining": "0"})
    assert (outcome.kind, outcome.throttled, outcome.retry_after) == ("retry", True, 1.0)
    with_hint = parse(lookup(), 429, b"", {"Retry-After": "3", "x-ratelimit-remaining": "0"})
    assert with_hint.retry_after is None  # the sender reads Retry-After itself
    assert parse(lookup(), 503, b"<html>").kind == "retry"


def test_single_writes_and_bulk_submissions():
    v1 = Request("custom_attributes", "POST", "/v1/attributes/custom", b"{}", ["a@b.co"])
    assert [(r.key, r.status) for r in parse(v1, 200).results] == [("a@b.co", "ok")]
    rejected = parse(v1, 400, {"error": {"id": 9, "message": "properties.Tier: the attribute has type NUMBER"}})
    assert rejected.results[0].reason == "Attentive HTTP 400: properties.Tier: the attribute has type NUMBER"
    assert parse(v1, 404, {"error": {"id": 9, "message": "No subscriber"}}).results[0].status == "not_found"
    part = BulkPart("email", {"a@b.co": "a@b.co", "c@d.co": "c@d.co"})
    bulk = destination().bulk_request(["a@b.co", "c@d.co"], [b"{}", b"{}"], part)
    accepted = parse(bulk, 202, {"message": "ok", "batchJobId": "job-1"})
    assert (accepted.kind, accepted.results, accepted.pending) == ("done", [], "attentive-bulk:email:job-1")
    assert part.jobs == [("job-1", ["a@b.co", "c@d.co"], [b"{}", b"{}"])]
    assert parse(bulk, 400, {"error": {"id": 2, "message": "users[1].identifiers.email ..."}}).kind == "split"


def test_a_rejection_names_the_identifier_or_custom_attribute_attentive_refused():
    """`dinsync rejections` showed no field for Attentive's refusals, where the other platforms'
    name the attribute their answer names: a lookup refused for its identifier (a trailing-dot
    email) names the key field; a custom attributes write names the properties sent that the
    message names (`properties.Tier`, a quoted name) or the identifier (`email is not ...`)."""
    bad = parse(lookup(), 400, {"error": {"id": 4, "message": "email is not a valid email address"}}).results[0]
    assert (bad.status, bad.field) == ("rejected", "email")
    body = orjson.dumps({"properties": {"Tier": "gold", "VIP": True, "T": 1}, "user": {"email": "a@b.co"}})
    v1 = Request("custom_attributes", "POST", "/v1/attributes/custom", body, ["a@b.co"])
    cases = {"properties.Tier: the attribute has type NUMBER": "Tier",
             "Invalid value for attribute 'VIP'": "VIP",
             "email is not a valid email address": "email",
             "the attribute has type NUMBER; a STRING value was sent": None,  # names none sent (not T)
             "properties.Unsent: nope": None}
    for message, field in cases.items():
        result = parse(v1, 400, {"error": {"id": 9, "message": message}}).results[0]
        assert (result.status, result.field) == ("rejected", field), (message, result)


def test_a_bulk_request_refused_with_422_is_split_as_its_400_is():
    """A single write refused with 422 (Unprocessable Entity) rejects its record as its 400 does; a
    bulk request refused with 422 failed all its users, again every run, where its 400 is split until
    the record refused is alone (rejected) and the others delivered."""
    part = BulkPart("email", {"a@b.co": "a@b.co", "c@d.co": "c@d.co"})
    bulk = destination().bulk_request(["a@b.co", "c@d.co"], [b"{}", b"{}"], part)
    refusal = {"error": {"id": 2, "message": "users[1].attributes.demographic.age must be an integer"}}
    outcome = parse(bulk, 422, refusal)
    assert outcome.kind == "split" and "HTTP 422" in outcome.reason
    assert parse(bulk, 422, b"<html><title>422</title></html>").kind == "done"  # a proxy's page: failed


def test_a_proxys_413_page_halves_a_bulk_request_and_fails_a_single_record():
    # a proxy capping bodies below ours answered every bulk request holding one large record with its
    # 413 page: all 256 users failed, again on every run; halves are smaller, and the record still
    # refused alone is failed (a proxy's cap is no verdict on the row: never parked)
    page = b"<html><head><title>413 Request Entity Too Large</title></head><body>nginx</body></html>"
    part = BulkPart("email", {"a@b.co": "a@b.co", "c@d.co": "c@d.co"})
    bulk = destination().bulk_request(["a@b.co", "c@d.co"], [b"{}", b"{}"], part)
    assert parse(bulk, 413, page).kind == "split"
    [half, _] = bulk.split()
    [r] = parse(half, 413, page).results
    assert (r.key, r.status) == ("a@b.co", "failed")
    assert parse(bulk, 400, b"<html><title>400 Bad Request</title></html>").kind == "done"  # other pages: failed


def test_job_status_answers_fill_the_context():
    request = destination().job_request("job-1")
    assert request.path == "/v2/bulk/job/job-1"
    validate_attentive_request("GET", request.path, None)
    parse(request, 200, {"bulkJobId": "job-1", "status": "COMPLETED", "totalRecords": 2, "url": "http://x/r.jsonl"})
    ctx: JobStatus = request.context
    assert (ctx.status, ctx.url) == ("COMPLETED", "http://x/r.jsonl")
    gone = destination().job_request("old")
    parse(gone, 404, {"error": {"id": 1, "message": "Bulk job not found"}})
    assert gone.context.status == "UNKNOWN"


@pytest.mark.parametrize(("status", "url", "phase"), [
    ("COMPLETED", "http://x/r.jsonl", "done"), ("IN_PROGRESS", None, "running"), ("PENDING", None, "running"),
    ("FAILED", None, "failed"), ("UNKNOWN", None, "failed"),
    # statuses the spec does not list ("common values include"): results when a url comes with it
    ("COMPLETED_WITH_ERRORS", "http://x/r.jsonl", "done"), ("FINISHED", "http://x/r.jsonl", "done"),
    ("QUEUED", None, "running"), ("CANCELLED", None, "failed"), ("ERROR", None, "failed"),
    ("PARTIALLY_FAILED", "http://x/r.jsonl", "done"), ("PARTIALLY_FAILED", None, "failed"), (None, None, None),
    ("", "http://x/r.jsonl", None), ("completed", None, "done"), ("failed", None, "failed"),
    ("in_progress", None, "running")])
def test_a_job_status_the_spec_does_not_list_is_read_by_what_comes_with_it(status, url, phase):
    assert JobStatus("job-1", status, url).phase == phase


def test_job_results_are_matched_by_index_and_checked_against_the_identifier_sent():
    lines = [
        {"index": 1, "request": {"identifiers": {"phone": "+12015550102"}},
         "response": {"statusCode": 400, "body": {"error": {"id": 5, "message": "identifiers.phone is invalid"}}}},
        {"index": 0, "request": {"identifiers": {"phone": "+12015550101"}},
         "response": {"statusCode": 202, "body": {"success": True, "message": "accepted"}}},
        {"index": 2, "request": {"identifiers": {"phone": "+19999999999"}},  # not what we sent as record 2
         "response": {"statusCode": 202, "body": {"success": True}}},
    ]
    keys = ["k0", "k1", "k2", "k3"]
    sent = {"k0": "+12015550101", "k1": "+12015550102", "k2": "+12015550103", "k3": "+12015550104"}
    results = job_results(lines, keys, sent, "phone", "job-9")
    assert results.ok == ["k0"] and results.pending == {}
    problems = {r.key: (r.status, r.reason) for r in results.problems}
    assert problems["k1"] == ("rejected", "Attentive HTTP 400: identifiers.phone is invalid")
    assert problems["k2"][0] == "failed" and problems["k3"][0] == "failed"  # never assumed delivered
    later = job_results(lines, None, None, "phone", "job-9")
    assert sorted(later.ok) == ["+12015550101", "+19999999999"]
    assert [(r.key, r.status) for r in later.problems] == [("+12015550102", "rejected")]


def test_job_results_in_another_order_without_index_are_matched_by_identifier():
    """The results file's layout is undocumented: lines naming our identifiers find their records
    whatever their order; a line without `index` or identifier falls back to its position."""
    keys = ["k0", "k1", "k2"]
    sent = {"k0": "a@example.com", "k1": "b@example.com", "k2": "c@example.com"}
    ok = {"statusCode": 202, "body": {"success": True}}
    lines = [{"request": {"identifiers": {"email": "c@example.com"}}, "response": ok},
             {"request": {"identifiers": {"email": "b@example.com"}},
              "response": {"statusCode": 400, "body": {"error": {"id": 3, "message": "b is refused"}}}},
             {"request": {"identifiers": {"email": "a@example.com"}}, "response": ok}]
    results = job_results(lines, keys, sent, "email", "job-3")
    assert sorted(results.ok) == ["k0", "k2"]
    assert [(r.key, r.status, r.reason) for r in results.problems] == [("k1", "rejected",
                                                                         "Attentive HTTP 400: b is refused")]
    # an identifier two records were sent with is not enough: the line's index decides, if it agrees
    shared = {"k0": "+442071838750", "k1": "+442071838750", "k2": "+12015550101"}
    lines = [{"index": 1, "request": {"identifiers": {"phone": "+442071838750"}}, "response": ok},
             {"request": {"identifiers": {"phone": "+442071838750"}}, "response": ok},  # position 1 again
             {"response": ok}]  # no identifier, no index: its position
    results = job_results(lines, keys, shared, "phone", "job-4")
    assert sorted(results.ok) == ["k1", "k2"] and [(r.key, r.status) for r in results.problems] == [("k0", "failed")]


def test_a_long_error_message_is_cut_in_the_reason_also_from_a_results_file():
    """A message quoting a refused 1 MB value stays a short reason (the results file's lines do not pass
    through the sender, which cuts the reasons of direct answers)."""
    big = "x" * 1_000_000
    line = {"index": 0, "request": {"identifiers": {"email": "a@example.com"}},
            "response": {"statusCode": 400, "body": {"error": {"id": 1, "message": "firstName too long: " + big}}}}
    out = job_results([line], ["a@example.com"], {}, "email", "job-1")
    (problem,) = out.problems
    assert problem.status == "rejected"
    assert problem.reason.startswith("Attentive HTTP 400: firstName too long: xxx")
    assert len(problem.reason) < 400
    answer = destination().parse(Request("custom_attributes", "POST", "/v1/attributes/custom", b"{}", ["k"]),
                                 400, {}, b'{"message": "' + big.encode() + b'"}')
    assert len(answer.results[0].reason) < 400


def test_job_tokens_round_trip():
    token = job_token("phone", "2f0c-6a1e")
    assert parse_job_token(token) == ("phone", "2f0c-6a1e")
    assert parse_job_token("outbox-file.jsonl") is None and parse_job_token("attentive-bulk:userId:x") is None


# --- pacing on the announced limit ----------------------------------------------------------------

def test_rate_limiter_set_rate_changes_the_pace():
    clock = FakeClock()
    limiter = RateLimiter(10.0, headroom=1.0, clock=clock)
    limiter.set_rate(100.0)
    assert limiter.effective_rate == 100.0 and limiter._interval == pytest.approx(0.01)
    with pytest.raises(ValueError):
        limiter.set_rate(0)


def test_sender_follows_x_ratelimit_limit_unless_the_user_set_the_rate():
    d = destination()
    sender = AttentiveSender(d)
    request = Request("get_subscriptions", "GET", "/v1/subscriptions?email=a%40b.co", None, ["a"],
                      context=Lookup("subscriptions", "email"))
    asyncio.run(sender.classify(request, 200, {"x-ratelimit-limit": "150", "x-ratelimit-remaining": "149"}, b"{}"))
    assert sender.limiter("get_subscriptions").rate == 150.0
    asyncio.run(sender.classify(request, 200, {"x-ratelimit-limit": "nonsense"}, b"{}"))
    assert sender.limiter("get_subscriptions").rate == 150.0
    pinned = AttentiveSender(d, rate_overrides={"get_subscriptions": 5.0})
    asyncio.run(pinned.classify(request, 200, {"x-ratelimit-limit": "150"}, b"{}"))
    assert pinned.limiter("get_subscriptions").rate == 5.0


def test_transport_options_reach_the_sender():
    transport = destination().make_transport(TransportOptions(rate_overrides={"bulk_job": 50.0}, timeout=7))
    assert transport.sender.limiter("bulk_job").rate == 50.0
    assert transport.sender.limiter("get_custom_attributes").rate == 150.0


def test_job_results_read_a_status_word_and_identifiers_at_the_top_of_a_line():
    """The results file's format is undocumented: a line naming its identifiers at its top (no
    `request`), or its status as a word meaning success, or only `{"success": true}`, was not read,
    so records Attentive applied failed, and were sent again, every run. A word that does not mean
    success (FAILED, ERROR) is still not read: the record fails and goes again, never assumed done."""
    keys = ["k0", "k1", "k2", "k3", "k4"]
    sent = {k: f"{k}@example.com" for k in keys}
    lines = [{"identifiers": {"email": "k0@example.com"}, "status": "SUCCESS"},
             {"request": {"identifiers": {"email": "k1@example.com"}}, "response": {"status": "Completed"}},
             {"identifiers": {"email": "k2@example.com"}, "response": {"body": {"success": True}}},
             {"identifiers": {"email": "k3@example.com"}, "status": "FAILED"},
             {"identifiers": {"email": "k4@example.com"}, "response": {"status": True, "body": {"success": False}}}]
    results = job_results(lines, keys, sent, "email", "job-5")
    assert sorted(results.ok) == ["k0", "k1", "k2"]
    assert sorted((r.key, r.status) for r in results.problems) == [("k3", "failed"), ("k4", "failed")]


def test_job_results_giving_one_record_two_results_acknowledge_it_on_neither():
    """A results file naming one record twice, applied then refused (a replayed or merged file),
    acknowledged it on its first line. A file that contradicts itself says nothing of that record:
    it fails and is sent again; a line repeated alike is read once."""
    keys = ["k0", "k1"]
    sent = {"k0": "a@example.com", "k1": "b@example.com"}
    ok = {"statusCode": 202, "body": {"success": True}}
    refused = {"statusCode": 400, "body": {"error": {"id": 3, "message": "a is refused"}}}
    lines = [{"request": {"identifiers": {"email": "a@example.com"}}, "response": ok},
             {"request": {"identifiers": {"email": "b@example.com"}}, "response": ok},
             {"request": {"identifiers": {"email": "a@example.com"}}, "response": refused},
             {"request": {"identifiers": {"email": "b@example.com"}}, "response": ok}]
    for later in (False, True):
        results = job_results(lines, None if later else keys, None if later else sent, "email", "job-5")
        a, b = ("a@example.com", "b@example.com") if later else ("k0", "k1")
        assert results.ok == [b], results
        [(key, status, reason)] = [(r.key, r.status, r.reason) for r in results.problems]
        assert (key, status) == (a, "failed") and "two different results" in reason
