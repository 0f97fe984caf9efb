"""The Attio sandbox over real loopback sockets, with hand-written aiohttp requests (not dinsync's client).
Every 200 body is checked against the response schema of Attio's OpenAPI file (attio_helpers)."""
from __future__ import annotations

import base64

import pytest

from dinsync.sandbox import AttioSandbox, CustomAttribute, SandboxThread
from dinsync.sandbox.attio import parse_custom_attribute

from .attio_helpers import ASSERT_PERSON, COMPANIES, KEY, PEOPLE, start, values_body

CUSTOM = ["people:plan:select:free,pro,team", "people:customer_id:text:unique", "people:score:rating",
          "people:ltv:currency:currency=EUR", "people:birthday:date", "people:last_seen:timestamp",
          "people:vip:checkbox", "people:visits:number", "people:notes:text", "people:employer:record-reference:"
          "target=companies", "people:tags:select:a,b,c:multiselect", "people:old:text:archived",
          "people:stage:status:lead,won", "companies:tier:select:gold,silver"]


@pytest.fixture
def make():
    threads: list[SandboxThread] = []
    yield lambda **options: start(threads, **options)
    for thread in threads:
        thread.stop()


@pytest.fixture
def api(make):
    """(thread, client) with the custom attributes above, limits off."""
    return make(custom_attributes=CUSTOM, status_attributes_on_standard_objects=True)


def person(thread: SandboxThread, email: str) -> dict | None:
    found = thread.call(thread.sandbox.find_person, email)
    return None if found is None else thread.call(thread.sandbox.plain, found)


def count(thread: SandboxThread, obj: str = "people") -> int:
    return thread.call(thread.sandbox.count, obj)


# ------------------------------------------------------------------ auth and scopes
def test_bearer_and_basic_auth(api):
    thread, client = api
    assert client.get("/v2/objects").status == 200
    assert client.get("/v2/objects", scheme="bearer").status == 200  # the scheme is case-insensitive
    assert client.get("/v2/objects", scheme="Basic").status == 200  # token as username, blank password
    for token, scheme in ((None, "Bearer"), ("wrong", "Bearer"), ("wrong", "Basic"), (KEY, "Token")):
        resp = client.get("/v2/objects", token=token, scheme=scheme)
        assert (resp.status, resp.body["type"], resp.code) == (401, "auth_error", "unauthorized")
        assert KEY not in str(resp.body)
    # Basic with a password is refused (Attio: "the password is left blank"), and so is garbage
    for header in ("Basic " + base64.b64encode(f"{KEY}:secret".encode()).decode(), "Basic !!!", f"Bearer{KEY}"):
        assert client.get("/v2/objects", headers={"Authorization": header}).status == 401


def test_self_describes_the_token_and_unknown_tokens_are_inactive(make):
    thread, client = make(token_list=(KEY, "reader"), token_scopes={"reader": ("record_permission:read",)})
    me = client.get("/v2/self").body
    assert me["active"] is True and me["token_type"] == "Bearer" and me["iss"] == "attio.com"
    assert set(me["scope"].split()) == {"record_permission:read-write", "object_configuration:read"}
    assert client.get("/v2/self", token="reader").body["scope"] == "record_permission:read"
    assert client.get("/v2/self", token="nope").body == {"active": False}
    assert client.get("/v2/self", token=None).status == 401


def test_missing_scopes_answer_403_naming_them(make):
    thread, client = make(token_list=(KEY, "reader", "bare"),
                          token_scopes={"reader": ("record_permission:read", "object_configuration:read"),
                                        "bare": ()})
    resp = client.put(ASSERT_PERSON, values_body(email_addresses=["a@b.co"]), token="reader")
    assert (resp.status, resp.body["type"], resp.code) == (403, "auth_error", "missing_scopes")
    assert "record_permission:read-write" in resp.body["message"]
    assert client.post(PEOPLE + "/query", {}, token="reader").status == 200
    resp = client.get("/v2/objects/people/attributes", token="bare")
    assert resp.status == 403 and "object_configuration:read" in resp.body["message"]
    assert count(thread) == 0
    # the default token's record_permission:read-write also grants record_permission:read
    assert client.post(PEOPLE + "/query", {}).status == 200


# ------------------------------------------------------------------ objects and attributes
def test_objects_by_slug_and_id(api):
    thread, client = api
    objects = client.get("/v2/objects").body["data"]
    assert [o["api_slug"] for o in objects] == ["people", "companies"]
    people_id = objects[0]["id"]["object_id"]
    assert client.get(f"/v2/objects/{people_id}").body["data"]["api_slug"] == "people"
    resp = client.get("/v2/objects/deals")
    assert (resp.status, resp.code, resp.body["message"]) == (404, "not_found", 'Object with slug/ID "deals" not found.')
    assert client.post(f"/v2/objects/{people_id}/records/query", {}).status == 200


def test_attribute_listing_flags_and_paging(api):
    thread, client = api
    attrs = {a["api_slug"]: a for a in client.get("/v2/objects/people/attributes").body["data"]}
    email = attrs["email_addresses"]
    assert (email["type"], email["is_unique"], email["is_multiselect"], email["is_writable"]) == (
        "email-address", True, True, True)
    assert attrs["avatar_url"]["is_writable"] is False and attrs["record_id"]["is_writable"] is False
    assert attrs["company"]["config"]["record_reference"]["allowed_object_ids"] == [
        client.get("/v2/objects/companies").body["data"]["id"]["object_id"]]
    assert attrs["company"]["relationship"] is not None and attrs["job_title"]["relationship"] is None
    assert attrs["ltv"]["config"]["currency"]["default_currency_code"] == "EUR"
    assert attrs["customer_id"]["is_unique"] and not attrs["customer_id"]["is_system_attribute"]
    assert "old" not in attrs  # archived
    with_archived = client.get("/v2/objects/people/attributes?show_archived=true").body["data"]
    assert "old" in [a["api_slug"] for a in with_archived]
    page = client.get("/v2/objects/people/attributes?limit=2&offset=1").body["data"]
    assert [a["api_slug"] for a in page] == list(attrs)[1:3]
    companies = {a["api_slug"]: a for a in client.get("/v2/objects/companies/attributes").body["data"]}
    assert companies["domains"]["is_unique"] and companies["domains"]["type"] == "domain"
    assert companies["logo_url"]["is_writable"] is False and companies["team"]["is_multiselect"]
    bad = client.get("/v2/objects/people/attributes?limit=ten")
    assert (bad.status, bad.code, bad.body["message"]) == (400, "validation_type", "Query params validation error.")
    assert bad.body["validation_errors"][0]["path"] == ["limit"]
    assert client.get("/v2/lists/people/attributes").status == 404


def test_a_query_parameter_given_twice_is_refused(api):
    """The spec declares each query parameter once, as a string, integer or boolean: given twice it is
    an array (`?matching_attribute=a&matching_attribute=b`), which Attio's validation refuses. The
    sandbox read the first value and wrote the record, so a client repeating a parameter passed."""
    thread, client = api
    resp = client.put(PEOPLE + "?matching_attribute=email_addresses&matching_attribute=email_addresses",
                      values_body(email_addresses=["twice@acme.com"]))
    assert resp.body == {"status_code": 400, "type": "invalid_request_error", "code": "validation_type",
                         "message": "Query params validation error.", "validation_errors": [
                             {"code": "invalid_type", "path": ["matching_attribute"],
                              "message": "Expected string, received array", "expected": "string",
                              "received": "array"}]}
    assert count(thread) == 0
    resp = client.get("/v2/objects/people/attributes?limit=2&limit=3")
    assert (resp.status, resp.code, resp.body["validation_errors"][0]["path"]) == (400, "validation_type", ["limit"])
    resp = client.get("/v2/objects/people/attributes?show_archived=true&show_archived=true")
    assert (resp.status, resp.body["validation_errors"][0]["received"]) == (400, "array")
    assert client.get("/v2/objects/people/attributes?limit=2&offset=1").status == 200

def test_single_attribute_options_and_statuses(api):
    thread, client = api
    plan = client.get("/v2/objects/people/attributes/plan").body["data"]
    by_id = client.get(f"/v2/objects/people/attributes/{plan['id']['attribute_id']}").body["data"]
    assert by_id["api_slug"] == "plan"
    options = client.get("/v2/objects/people/attributes/plan/options").body["data"]
    assert [o["title"] for o in options] == ["free", "pro", "team"]
    assert "SaaS" in [o["title"] for o in client.get("/v2/objects/companies/attributes/categories/options").body["data"]]
    statuses = client.get("/v2/objects/people/attributes/stage/statuses").body["data"]
    assert [s["title"] for s in statuses] == ["lead", "won"]
    resp = client.get("/v2/objects/people/attributes/plan/statuses")
    assert (resp.status, resp.body["message"]) == (400, "This attribute is not a status attribute.")
    resp = client.get("/v2/objects/people/attributes/nope")
    assert (resp.status, resp.body["message"]) == (404, 'Attribute with slug/ID "nope" not found.')


# ------------------------------------------------------------------ assert semantics
def test_assert_creates_then_updates_and_counts(api):
    thread, client = api
    first = client.assert_person("John.Smith@Attio.com", job_title="Engineer", phone_numbers=["+15558675309"])
    assert first.status == 200
    rid = first.body["data"]["id"]["record_id"]
    email = first.body["data"]["values"]["email_addresses"][0]
    assert (email["email_address"], email["original_email_address"], email["email_domain"]) == (
        "john.smith@attio.com", "John.Smith@Attio.com", "attio.com")
    second = client.assert_person("john.smith@attio.com", job_title="CTO", phone_numbers=["+447777777777"])
    assert second.body["data"]["id"]["record_id"] == rid
    stats = thread.stats()
    assert (stats["created"], stats["updated"], stats["records"]["people"]) == ({"people": 1}, {"people": 1}, 1)
    stored = person(thread, "john.smith@attio.com")
    assert stored["job_title"] == "CTO"
    assert stored["phone_numbers"] == ["+447777777777"]  # other multiselect attributes are overwritten


def test_multiselect_matching_attribute_adds_values(api):
    thread, client = api
    client.assert_person("a@acme.com")
    resp = client.assert_person(["a@acme.com", "a.alias@acme.com"])
    assert resp.status == 200 and count(thread) == 1
    assert sorted(person(thread, "a@acme.com")["email_addresses"]) == ["a.alias@acme.com", "a@acme.com"]
    client.assert_person("a.alias@acme.com", job_title="x")  # existing values are never deleted by assert
    assert len(person(thread, "a@acme.com")["email_addresses"]) == 2
    assert thread.stats()["updated"] == {"people": 2}


def test_assert_rules_on_the_matching_attribute(api):
    thread, client = api
    resp = client.put(PEOPLE + "?matching_attribute=name", values_body(name="Smith, John"))
    assert (resp.status, resp.code, resp.body["message"]) == (
        400, "matching_attribute_definition_not_unique", "The matching attribute specified is not a unique attribute.")
    resp = client.put(PEOPLE + "?matching_attribute=nope", values_body(name="Smith, John"))
    assert (resp.status, resp.code, resp.body["message"]) == (
        400, "value_not_found", 'No attribute was found for matching_attribute slug/ID "nope".')
    resp = client.put(PEOPLE, values_body(name="Smith, John"))
    assert resp.body == {"status_code": 400, "type": "invalid_request_error", "code": "validation_type",
                         "message": "Query params validation error.", "validation_errors": [
                             {"code": "invalid_type", "path": ["matching_attribute"], "message": "Required",
                              "expected": "string", "received": "undefined"}]}
    resp = client.put(ASSERT_PERSON, values_body(job_title="x"))
    assert (resp.status, resp.code) == (400, "missing_value")
    assert count(thread) == 0
    # a custom unique attribute, addressed by its attribute id, works as a matching attribute
    attr_id = client.get("/v2/objects/people/attributes/customer_id").body["data"]["id"]["attribute_id"]
    path = f"{PEOPLE}?matching_attribute={attr_id}"
    assert client.put(path, values_body(customer_id="c-1", job_title="a")).status == 200
    assert client.put(path, values_body(customer_id="c-1", job_title="b")).status == 200
    assert count(thread) == 1 and thread.stats()["created"] == {"people": 1}


def test_numbers_are_persisted_as_64_bit_floats(make):
    """"Numbers are persisted as 64 bit floats" (spec `input-value`): keys distinct as JSON texts
    are one value for Attio's uniqueness, its matching and its filters."""
    thread, client = make(custom_attributes=["people:account_no:number:unique"])
    path = PEOPLE + "?matching_attribute=account_no"
    first = client.put(path, {"data": {"values": {"account_no": [9007199254740992], "job_title": ["a"]}}})
    assert first.status == 200
    resp = client.put(path, {"data": {"values": {"account_no": [9007199254740993], "job_title": ["b"]}}})
    assert resp.status == 200 and resp.body["data"]["id"] == first.body["data"]["id"]  # the same record
    assert resp.body["data"]["values"]["account_no"][0]["value"] == 9007199254740992
    for raw in (b'{"data":{"values":{"account_no":[1]}}}', b'{"data":{"values":{"account_no":[1.0]}}}',
                b'{"data":{"values":{"account_no":[1e0]}}}'):
        assert client.put(path, raw=raw).status == 200
    assert count(thread) == 2
    found = client.post(PEOPLE + "/query", {"filter": {"account_no": 9007199254740993}}).body["data"]
    assert [r["id"] for r in found] == [first.body["data"]["id"]]
    assert client.post(PEOPLE, values_body(account_no=[1.0])).code == "uniqueness_conflict"


def test_multiple_match_results(api):
    thread, client = api
    client.assert_person("one@acme.com")
    client.assert_person("two@acme.com")
    resp = client.assert_person(["one@acme.com", "two@acme.com"], job_title="x")
    assert (resp.status, resp.code) == (400, "multiple_match_results")
    assert person(thread, "one@acme.com")["job_title"] is None and count(thread) == 2


def test_create_refuses_unique_conflicts(make):
    thread, client = make()
    assert client.post(PEOPLE, values_body(email_addresses=["x@acme.com"])).status == 200
    resp = client.post(PEOPLE, values_body(email_addresses=["other@acme.com", "X@ACME.com"], job_title="dup"))
    assert (resp.status, resp.code) == (400, "uniqueness_conflict")
    assert resp.body["message"].startswith('The value "{"email_address":"x@acme.com"}" provided for attribute with ID')
    assert count(thread) == 1 and thread.call(thread.sandbox.find_person, "other@acme.com") is None
    thread2, client2 = make(uniqueness_conflict_status=409)
    client2.post(COMPANIES, values_body(domains=["acme.com"]))
    resp = client2.post(COMPANIES, values_body(domains=["https://ACME.com/pricing?x=1"]))
    assert (resp.status, resp.code) == (409, "uniqueness_conflict")


def test_patch_appends_and_put_overwrites_multiselect(api):
    thread, client = api
    rid = client.assert_person("p@acme.com", phone_numbers=["+447777777777"], tags=["a"]).body["data"]["id"]["record_id"]
    resp = client.patch(f"{PEOPLE}/{rid}", values_body(phone_numbers=["+15558675309"], tags=["b", "a"]))
    assert resp.status == 200
    stored = person(thread, "p@acme.com")
    assert stored["phone_numbers"] == ["+15558675309", "+447777777777"]  # new values prepended
    assert stored["tags"] == ["b", "a"]
    client.request("PUT", f"{PEOPLE}/{rid}", values_body(tags=["c"], phone_numbers=[]))
    stored = person(thread, "p@acme.com")
    assert (stored["tags"], stored["phone_numbers"]) == (["c"], [])
    assert thread.stats()["updated"] == {"people": 2}
    other = client.assert_person("q@acme.com").body["data"]["id"]["record_id"]
    resp = client.patch(f"{PEOPLE}/{other}", values_body(email_addresses=["p@acme.com"]))
    assert (resp.status, resp.code) == (400, "uniqueness_conflict")
    resp = client.patch(f"{PEOPLE}/891dcbfc-9141-415d-9b2a-2238a6cc012d", values_body(job_title="x"))
    assert (resp.status, resp.code, resp.body["message"]) == (
        404, "not_found", 'Record with ID "891dcbfc-9141-415d-9b2a-2238a6cc012d" not found.')
    got = client.get(f"{PEOPLE}/{rid}").body["data"]
    assert got["id"]["record_id"] == rid and got["values"]["tags"][0]["option"]["title"] == "c"


def test_unknown_read_only_and_archived_attributes(make):
    thread, client = make(custom_attributes=["people:old:text:archived"])
    resp = client.assert_person("a@acme.com", customer_id="1")
    assert (resp.status, resp.code, resp.body["message"]) == (
        400, "value_not_found", 'Cannot find attribute with slug/ID "customer_id".')
    assert client.assert_person("a@acme.com", old="x").code == "value_not_found"
    resp = client.assert_person("a@acme.com", avatar_url="https://x.co/a.png")
    assert (resp.status, resp.code) == (400, "immutable_value")
    assert client.assert_company("acme.com", logo_url="https://x.co/l.png").code == "immutable_value"
    assert count(thread) == 0 and count(thread, "companies") == 0
    thread2, client2 = make(unknown_attribute_status=404)
    assert (client2.assert_person("a@acme.com", nope=1).status, client2.assert_person("a@acme.com", nope=1).code) == (
        404, "not_found")


def test_required_custom_attribute(make):
    thread, client = make(custom_attributes=["people:external_id:text:unique:required"])
    resp = client.post(PEOPLE, values_body(email_addresses=["a@acme.com"]))
    assert (resp.status, resp.code) == (400, "missing_value")
    rid = client.post(PEOPLE, values_body(email_addresses=["a@acme.com"], external_id="e1")).body["data"]["id"][
        "record_id"]
    assert client.patch(f"{PEOPLE}/{rid}", values_body(external_id=None)).code == "missing_value"
    assert client.patch(f"{PEOPLE}/{rid}", values_body(job_title="still fine")).status == 200


# ------------------------------------------------------------------ value validation per type
LOCATION = {"line_1": "1 Infinite Loop", "line_2": None, "line_3": None, "line_4": None, "locality": "Cupertino",
            "region": "CA", "postcode": "95014", "country_code": "US", "latitude": "37.331741",
            "longitude": "-122.030333"}
GOOD = [  # attribute, written value, stored (plain) value
    ("notes", "hello", "hello"), ("notes", {"value": "hi"}, "hi"), ("notes", ["one"], "one"),
    ("visits", 42, 42), ("visits", {"value": 3.14159}, 3.14159), ("visits", 0.1 + 0.2, 0.30000000000000004), ("visits", -1.5, -1.5),
    ("vip", True, True), ("vip", "false", False), ("vip", {"value": "true"}, True), ("vip", [True], True),
    ("ltv", 99, 99), ("ltv", "4.99", 4.99), ("ltv", {"currency_value": 12.5}, 12.5),
    ("birthday", "2023", "2023-01-01"), ("birthday", "2023-01-02T13:00", "2023-01-02"),
    ("birthday", "2023-01-02T23:00:00-10:00", "2023-01-03"), ("birthday", {"value": "2024-02-29"}, "2024-02-29"),
    ("last_seen", "2023-01-02", "2023-01-02T00:00:00.000000000Z"),
    ("last_seen", "2023-01-02T15:00:00.123456789+02:00", "2023-01-02T13:00:00.123456789Z"),
    ("last_seen", "0001-01-01T00:00:00", "0001-01-01T00:00:00.000000000Z"),  # four-digit years
    ("last_seen", "0999-12-31T23:59:59.5Z", "0999-12-31T23:59:59.500000000Z"), ("birthday", "0001-01-01", "0001-01-01"),
    ("score", 0, 0), ("score", {"value": 5}, 5),
    ("plan", "pro", "pro"), ("plan", {"option": "team"}, "team"),
    ("stage", "won", "won"), ("stage", {"status": "lead"}, "lead"),
    ("phone_numbers", ["+447777777777"], ["+447777777777"]),
    ("phone_numbers", [{"original_phone_number": "07234172834", "country_code": "GB"}], ["+447234172834"]),
    ("phone_numbers", [{"original_phone_number": "+15558675309", "country_code": None}], ["+15558675309"]),
    ("name", "Lovelace, Ada", {"first_name": "Ada", "last_name": "Lovelace", "full_name": "Ada Lovelace"}),
    ("name", {"first_name": "A", "last_name": "B", "full_name": "A B"}, {"first_name": "A", "last_name": "B",
                                                                           "full_name": "A B"}),
    ("tags", ["a", {"option": "b"}, "a"], ["a", "b"]),
    ("primary_location", {**LOCATION, "latitude": "-90", "longitude": "+180.000"},
     {**LOCATION, "latitude": "-90", "longitude": "+180.000"}),
]
BAD = [  # attribute, written value, error code
    ("notes", 5, "validation_type"), ("notes", {"text": "x"}, "validation_type"), ("notes", ["a", "b"], "validation_type"),
    ("visits", "42", "validation_type"), ("visits", True, "validation_type"),
    ("vip", "yes", "validation_type"), ("vip", 1, "validation_type"),
    ("ltv", "a lot", "validation_type"), ("ltv", {"currency_value": 1, "currency_code": "USD"}, "validation_type"),
    ("birthday", "02/01/2023", "validation_type"), ("birthday", "2023-13-01", "validation_type"),
    ("last_seen", "yesterday", "validation_type"),
    ("score", 6, "validation_type"), ("score", 2.5, "validation_type"), ("score", -1, "validation_type"),
    ("plan", "enterprise", "value_not_found"), ("plan", {"option": "nope"}, "value_not_found"),
    ("stage", "lost", "value_not_found"), ("tags", ["a", "zzz"], "value_not_found"),
    ("email_addresses", ["not-an-email"], "validation_type"), ("email_addresses", ["a@b"], "validation_type"),
    ("email_addresses", "solo@acme.com", "validation_type"),  # multiselect: must be an array
    ("phone_numbers", ["07234172834"], "validation_type"),  # local number without country
    ("phone_numbers", [{"original_phone_number": "07234172834"}], "validation_type"),
    ("phone_numbers", ["+1 23"], "validation_type"),
    ("phone_numbers", [{"original_phone_number": "+447777777777", "country_code": "XX"}], "validation_type"),
    ("name", {"first_name": "Ada", "last_name": "Lovelace"}, "validation_type"),
    ("primary_location", {k: v for k, v in LOCATION.items() if k != "latitude"}, "validation_type"),
    ("primary_location", {**LOCATION, "country_code": "USA"}, "validation_type"),
    ("primary_location", {**LOCATION, "latitude": "1e-05"}, "validation_type"),  # the spec's pattern
    ("primary_location", {**LOCATION, "latitude": "90.5"}, "validation_type"),
    ("primary_location", {**LOCATION, "longitude": "-180.01"}, "validation_type"),
    ("employer", [{"target_object": "people", "target_record_id": "891dcbfc-9141-415d-9b2a-2238a6cc012d"}],
     "validation_type"),
    ("employer", [{"target_object": "companies", "target_record_id": "891dcbfc-9141-415d-9b2a-2238a6cc012d"}],
     "value_not_found"),
    ("employer", "nowhere.example", "value_not_found"),
    ("employer", [{"target_object": "companies", "name": ["Acme"]}], "validation_type"),  # name is not unique
]


@pytest.mark.parametrize("slug,value,expected", GOOD, ids=[f"{g[0]}-{i}" for i, g in enumerate(GOOD)])
def test_good_values_are_normalised(api, slug, value, expected):
    thread, client = api
    resp = client.assert_person("t@acme.com", **{slug: value})
    assert resp.status == 200, resp.body
    assert person(thread, "t@acme.com")[slug] == expected


@pytest.mark.parametrize("slug,value,code", BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_values_are_refused_and_nothing_is_written(api, slug, value, code):
    thread, client = api
    values = {"job_title": "must not be stored", slug: value}
    if slug != "email_addresses":
        values["email_addresses"] = ["t@acme.com"]
    resp = client.put(ASSERT_PERSON, values_body(**values))
    assert (resp.status, resp.code) == (400, code), resp.body
    if code == "validation_type":
        assert resp.body["message"] == f'An invalid value was passed to attribute with slug "{slug}".'
    assert count(thread) == 0


def test_text_values_are_limited_to_10_mb_of_utf_8(api):
    """The spec: "A raw text field. Values are limited to 10MB." Read in decimal, the stricter
    reading (as the Iterable sandbox reads "4MB"), counted in UTF-8 bytes: the sandbox took up to
    10 MiB (10,485,760 bytes), values Attio may refuse."""
    thread, client = api
    at_limit = "é" * 5_000_000  # 10,000,000 bytes
    assert client.assert_person("t@acme.com", job_title=at_limit).status == 200
    assert person(thread, "t@acme.com")["job_title"] == at_limit
    resp = client.assert_person("u@acme.com", job_title=at_limit + "a")
    assert resp.status == 400 and resp.code == "validation_type"
    assert "10 MB" in str(resp.body["validation_errors"]) and count(thread) == 1


def test_select_unknown_option_creates_no_option(api):
    thread, client = api
    resp = client.assert_person("s@acme.com", plan="enterprise")
    assert resp.body["message"] == 'Cannot find select attribute with select option title "enterprise".'
    titles = [o["title"] for o in client.get("/v2/objects/people/attributes/plan/options").body["data"]]
    assert titles == ["free", "pro", "team"]
    option_id = client.get("/v2/objects/people/attributes/plan/options").body["data"][1]["id"]["option_id"]
    assert client.assert_person("s@acme.com", plan={"option": option_id}).status == 200
    assert person(thread, "s@acme.com")["plan"] == "pro"


def test_locations_domains_and_clearing(api):
    thread, client = api
    assert client.assert_person("l@acme.com", primary_location=[LOCATION]).status == 200
    assert person(thread, "l@acme.com")["primary_location"] == LOCATION
    assert client.assert_person("l@acme.com", primary_location=None, job_title=[]).status == 200
    assert person(thread, "l@acme.com")["primary_location"] is None
    resp = client.assert_company("https://App.Attio.com/path?q=1#x")
    domain = resp.body["data"]["values"]["domains"][0]
    assert (domain["domain"], domain["root_domain"]) == ("app.attio.com", "attio.com")
    for bad in ("not a domain", "co.uk", "localhost"):
        assert client.assert_company(bad).code == "validation_type"


# ------------------------------------------------------------------ references and relationships
def test_record_references_and_the_company_team_relationship(api):
    thread, client = api
    acme = client.assert_company("acme.com", name="Acme").body["data"]["id"]["record_id"]
    globex = client.assert_company("globex.com").body["data"]["id"]["record_id"]
    client.assert_person("a@acme.com", company=[{"target_object": "companies", "domains": [{"domain": "acme.com"}]}])
    client.assert_person("b@acme.com", company="acme.com")
    client.assert_person("c@acme.com", employer=[{"target_object": "companies", "target_record_id": globex}])
    a = person(thread, "a@acme.com")
    assert a["company"] == acme and person(thread, "b@acme.com")["company"] == acme
    team = thread.call(thread.sandbox.plain, thread.call(thread.sandbox.find_company, "acme.com"))["team"]
    assert sorted(team) == sorted([a["record_id"], person(thread, "b@acme.com")["record_id"]])
    assert thread.call(thread.sandbox.plain, thread.call(thread.sandbox.find_company, "globex.com"))["team"] == []
    # moving a person updates both companies' teams
    client.assert_person("a@acme.com", company=[{"target_object": "companies", "target_record_id": globex}])
    find = lambda d: thread.call(thread.sandbox.plain, thread.call(thread.sandbox.find_company, d))  # noqa: E731
    assert find("globex.com")["team"] == [a["record_id"]]
    assert a["record_id"] not in find("acme.com")["team"]
    # overwriting a team from the company side clears the people it drops
    client.request("PUT", f"{COMPANIES}/{acme}", values_body(team=[]))
    assert person(thread, "b@acme.com")["company"] is None
    resp = client.assert_person("d@acme.com", company="unknown.example")
    assert (resp.status, resp.code) == (400, "value_not_found") and count(thread) == 3


def test_company_auto_creation_is_an_option(make):
    thread, client = make()
    client.assert_person("ann@initech.com")
    assert count(thread, "companies") == 0 and person(thread, "ann@initech.com")["company"] is None
    thread, client = make(auto_create_companies=True)
    client.assert_person("ann@initech.com")
    client.assert_person("bob@initech.com")
    client.assert_person("joe@gmail.com")
    company = thread.call(thread.sandbox.find_company, "initech.com")
    assert company is not None and count(thread, "companies") == 1
    assert person(thread, "bob@initech.com")["company"] == company["id"]["record_id"]
    assert person(thread, "joe@gmail.com")["company"] is None
    assert thread.stats()["auto_created"] == {"companies": 1} and thread.stats()["created"] == {"people": 3}


# ------------------------------------------------------------------ request bodies
@pytest.mark.parametrize("raw,path", [
    (b'{"data": {"values": {}}, "extra": 1}', ["extra"]),
    (b'{"data": {"values": {}, "mode": "x"}}', ["data"]),
    (b'{"values": {}}', ["data"]),
    (b'{"data": {"values": []}}', ["data", "values"]),
    (b'{"data": ', []),
    (b'[]', []),
])
def test_malformed_bodies(api, raw, path):
    thread, client = api
    resp = client.request("PUT", ASSERT_PERSON, raw=raw)
    assert (resp.status, resp.code, resp.body["message"]) == (400, "validation_type", "Body payload validation error.")
    issue = resp.body["validation_errors"][0]
    assert issue["path"] == path or issue.get("code") in ("invalid_json", "unrecognized_keys"), issue
    assert count(thread) == 0


@pytest.mark.parametrize("method,path", [("PUT", ASSERT_PERSON), ("POST", PEOPLE + "/query")])
@pytest.mark.parametrize("content_type", ["text/plain", "application/octet-stream"])
def test_a_json_body_not_sent_as_application_json_is_not_read(api, method, path, content_type):
    thread, client = api
    body = {"data": {"values": {"email_addresses": ["a@b.co"]}}} if method == "PUT" else {"limit": 1}
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": content_type}
    resp = client.request(method, path, body, headers=headers)
    assert (resp.status, resp.code) == (400, "validation_type")
    assert count(thread) == 0


def test_unknown_routes_and_methods_answer_json(api):
    thread, client = api
    resp = client.get("/v2/nothing")
    assert (resp.status, resp.code) == (404, "not_found")
    resp = client.request("DELETE", "/v2/objects")
    assert (resp.status, resp.code) == (405, "method_not_allowed")


# ------------------------------------------------------------------ custom attribute declarations
def test_custom_attribute_specs():
    assert parse_custom_attribute("people:plan:select:free,pro,team") == CustomAttribute(
        "people", "plan", "select", options=("free", "pro", "team"))
    assert parse_custom_attribute("people:ref:record-reference:target=companies:multiselect") == CustomAttribute(
        "people", "ref", "record-reference", multiselect=True, target="companies")
    assert parse_custom_attribute("people:id:text:unique:required").unique
    for bad in ("people:plan:select:a,b:unique", "companies:code:text:unique", "people:n:number:multiselect",
                "people:e:email-address", "people:s:status:a,b", "deals:x:text", "people:r:record-reference",
                "people:Bad Slug:text", "people:t:text:a,b", "people:m:currency:currency=XYZ", "people:x"):
        with pytest.raises(ValueError):
            AttioSandbox("k", custom_attributes=[bad])
    with pytest.raises(ValueError, match="already exists"):
        AttioSandbox("k", custom_attributes=["people:name:text"])
    sandbox = AttioSandbox("k")
    declared = sandbox.declare_attribute(CustomAttribute("companies", "tier", "select", options=("gold",)))
    assert declared["api_slug"] == "tier" and declared["type"] == "select"


def test_undocumented_behaviours_are_options(make):
    thread, client = make(custom_attributes=["people:visits:number", "people:ltv:currency"],
                          excess_decimals="reject", phone_validation="valid", lenient_filters=True)
    assert client.assert_person("o@acme.com", ltv=1.23456).code == "validation_type"
    assert client.assert_person("o@acme.com", ltv="1.00001").code == "validation_type"
    assert client.assert_person("o@acme.com", visits=1.23456, ltv=1.2345).status == 200  # numbers: 64-bit floats
    # +1 555 numbers are "possible" but not "valid" for libphonenumber
    assert client.assert_person("o@acme.com", phone_numbers=["+15558675309"]).code == "validation_type"
    assert client.assert_person("o@acme.com", phone_numbers=["+14155550100"]).status == 200
    flt = {"filter": {"email_addresses": {"$in": ["o@acme.com"]}}}  # $in on emails: not documented
    assert len(client.post(PEOPLE + "/query", flt).body["data"]) == 1
    thread2, client2 = make()
    assert client2.post(PEOPLE + "/query", flt).code == "filter_error"
