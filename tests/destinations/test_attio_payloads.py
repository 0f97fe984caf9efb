"""Attio client: payloads per attribute type (validated against the OpenAPI file, then written to the
sandbox over loopback), the pre-flight check, and response parsing."""
from __future__ import annotations

import asyncio
import datetime as dt

import orjson
import polars as pl
import pytest

from dinsync.destinations.attio import AttioDestination, AttributeInfo, Schema, check_mapping
from dinsync.destinations.attio.destination import _Capture, _Lookup, _Plan, _Write, describe
from dinsync.destinations.attio.values import normalise_domain
from dinsync.destinations.base import Request, SyncSpec, TransportOptions
from dinsync.errors import DestinationAuthError
from dinsync.mapping import FieldMapping, KeyMapping, map_batch
from dinsync.sandbox import AttioSandbox, SandboxThread
from tests.spec_validation import validate_attio_request

TOKEN = "attio-unit-token-9f2c41"
CUSTOM = ["people:plan:select:free,pro,team", "people:customer_id:text:unique", "people:score:rating",
          "people:ltv:currency:currency=EUR", "people:birthday:date", "people:last_seen:timestamp",
          "people:vip:checkbox", "people:visits:number", "people:stage:status:lead,won",
          "people:tags:select:red,green,blue:multiselect", "people:old_field:text:archived",
          "companies:employees:number"]


@pytest.fixture(scope="module")
def workspace():
    sandbox = AttioSandbox([TOKEN], custom_attributes=CUSTOM, status_attributes_on_standard_objects=True,
                           limits=False)
    thread = SandboxThread(sandbox)
    thread.start()
    thread.sandbox = sandbox
    yield thread
    thread.stop()


@pytest.fixture
def fresh(workspace, attio_requests):
    """The workspace emptied; every request the client sends is checked against the spec at teardown."""
    workspace.reset()
    return workspace


def destination(thread) -> AttioDestination:
    return AttioDestination(thread.url, {"api_key": TOKEN}, {"phone_region": "FR"})


async def _with_transport(dest, fn):
    async with dest.make_transport(TransportOptions(concurrency=4)) as transport:
        return await fn(transport)


def run_preflight(dest, spec):
    return asyncio.run(_with_transport(dest, lambda t: dest.preflight(t, spec)))


def deliver_all(dest, requests):
    async def go(transport):
        return [await transport.deliver(r) for r in requests]
    return asyncio.run(_with_transport(dest, go))


def mapped(rows: list[dict], key_field: str, fields: list[str], kinds: dict[str, str], key_kind: str,
           key_column: str = "key") -> pl.DataFrame:
    """Rows -> what the engine hands to prepare() (map_batch with the kinds the pre-flight learned).
    A field missing from a row is not sent for it; None is a NULL value."""
    data: dict = {"_key": [r[key_column] for r in rows], "_op": ["added"] * len(rows)}
    for i, f in enumerate(fields):
        data[f"v{i}"] = [r.get(f) for r in rows]
        data[f"x{i}"] = [f in r for r in rows]
    frame = pl.DataFrame(data, strict=False)
    out = map_batch(frame, KeyMapping(key_field, key_kind), [FieldMapping(i, f, kinds.get(f, "auto"))
                                                              for i, f in enumerate(fields)],
                    phone_region="FR", keep_field_text=True)
    assert out.rejections.height == 0, out.rejections.to_dicts()
    return out.frame


def check_spec(requests):
    for r in requests:
        validate_attio_request(r.method, r.path, r.body, values_must_be_arrays=True)


PEOPLE_FIELDS = ["job_title", "visits", "vip", "ltv", "birthday", "last_seen", "score", "plan", "stage",
                 "phone_numbers", "name", "primary_location", "company", "tags", "customer_id"]


def test_every_people_type_is_shaped_validated_and_accepted(fresh):
    sandbox = fresh.sandbox
    dest = destination(fresh)
    spec = SyncSpec("s", "people", "upsert", "email_addresses", PEOPLE_FIELDS)
    pre = run_preflight(dest, spec)
    assert pre.issues == []
    assert pre.kinds == {"job_title": "string", "visits": "number", "vip": "boolean", "ltv": "number",
                         "birthday": "date", "last_seen": "datetime", "score": "integer", "plan": "string",
                         "stage": "string", "phone_numbers": "auto", "name": "auto", "primary_location": "auto",
                         "company": "auto", "tags": "auto", "customer_id": "string"}
    # the referenced company must exist in Attio
    company = Request("write", "PUT", "/v2/objects/companies/records?matching_attribute=domains",
                      b'{"data":{"values":{"domains":["acme.com"]}}}', keys=["acme"], context=_Write(False))
    assert deliver_all(dest, [company])[0].ok == ["acme"]
    rows = [
        {"key": " Ada@Example.com ", "job_title": "Engineer", "visits": 42, "vip": "yes", "ltv": 99.5,
         "birthday": dt.date(1990, 5, 17), "last_seen": "2024-03-01T10:00:00+02:00", "score": 4, "plan": "pro",
         "stage": "won", "phone_numbers": "01 23 45 67 89", "name": {"first_name": "Ada", "last_name": "Lovelace"},
         "primary_location": {"locality": "London", "country_code": "GB", "latitude": 51.5},
         "company": "https://ACME.com/about", "tags": ["red", "blue"], "customer_id": "c-1"},
        {"key": "bob@example.com", "job_title": None, "visits": None, "vip": None, "ltv": None, "birthday": None,
         "last_seen": None, "score": None, "plan": None, "stage": None, "phone_numbers": None, "name": None,
         "primary_location": None, "company": None, "tags": None, "customer_id": None},
    ]
    kinds = pre.kinds
    frame = mapped(rows, "email_addresses", PEOPLE_FIELDS, kinds, "email")
    prepared = dest.prepare(frame, spec)
    assert prepared.rejections == []
    check_spec(prepared.requests)
    ada, bob = (orjson.loads(r.body)["data"]["values"] for r in prepared.requests)
    assert prepared.requests[0].path == "/v2/objects/people/records?matching_attribute=email_addresses"
    assert ada == {
        "email_addresses": ["ada@example.com"], "job_title": ["Engineer"], "visits": [42], "vip": [True],
        "ltv": [{"currency_value": 99.5}], "birthday": ["1990-05-17"], "last_seen": ["2024-03-01T08:00:00Z"],
        "score": [4], "plan": ["pro"], "stage": ["won"], "phone_numbers": ["+33123456789"],
        "name": [{"first_name": "Ada", "last_name": "Lovelace", "full_name": "Ada Lovelace"}],
        "primary_location": [{"line_1": None, "line_2": None, "line_3": None, "line_4": None, "locality": "London",
                              "region": None, "postcode": None, "country_code": "GB", "latitude": "51.5",
                              "longitude": None}],
        "company": [{"target_object": "companies", "domains": [{"domain": "https://ACME.com/about"}]}],
        "tags": ["red", "blue"], "customer_id": ["c-1"]}
    # NULL clears every type with an empty array
    assert bob == {"email_addresses": ["bob@example.com"], **{f: [] for f in PEOPLE_FIELDS}}
    results = deliver_all(dest, prepared.requests)
    assert [r.problems for r in results] == [[], []]
    stored = fresh.call(lambda: sandbox.plain(sandbox.find_person("ada@example.com")))
    assert stored["plan"] == "pro" and stored["stage"] == "won" and stored["tags"] == ["red", "blue"]
    assert stored["phone_numbers"] == ["+33123456789"] and stored["ltv"] == 99.5
    assert stored["last_seen"].startswith("2024-03-01T08:00:00") and stored["birthday"] == "1990-05-17"
    assert stored["name"]["full_name"] == "Ada Lovelace" and stored["primary_location"]["locality"] == "London"
    acme = fresh.call(lambda: sandbox.find_company("acme.com"))["id"]["record_id"]
    assert stored["company"] == acme
    empty = fresh.call(lambda: sandbox.plain(sandbox.find_person("bob@example.com")))
    assert all(empty[f] in (None, []) for f in PEOPLE_FIELDS)


def test_strings_scalars_and_lists_for_structured_and_multiselect_values(fresh):
    sandbox = fresh.sandbox
    dest = destination(fresh)
    fields = ["name", "phone_numbers", "tags", "primary_location"]
    spec = SyncSpec("s", "people", "upsert", "email_addresses", fields)
    pre = run_preflight(dest, spec)
    rows = [{"key": "x@example.com", "name": "Lovelace, Ada", "phone_numbers": ["+44 20 7946 0958", "06 12 34 56 78"],
             "tags": "green", "primary_location": "1 Infinite Loop, Cupertino"}]
    prepared = dest.prepare(mapped(rows, "email_addresses", fields, pre.kinds, "email"), spec)
    check_spec(prepared.requests)
    values = orjson.loads(prepared.requests[0].body)["data"]["values"]
    assert values["name"] == ["Lovelace, Ada"] and values["tags"] == ["green"]
    assert values["phone_numbers"] == ["+442079460958", "+33612345678"]
    assert values["primary_location"] == ["1 Infinite Loop, Cupertino"]
    assert deliver_all(dest, prepared.requests)[0].problems == []
    stored = fresh.call(lambda: sandbox.plain(sandbox.find_person("x@example.com")))
    assert stored["name"]["first_name"] == "Ada" and stored["phone_numbers"] == ["+442079460958", "+33612345678"]


def test_multiselect_phone_numbers_follow_the_mappings_phone_rule(fresh):
    """People's `phone_numbers` is multiselect (mapped as `auto`): its values were put in E.164 only
    when libphonenumber called them valid, else sent as written ("(555) 867-5309", "12345"), which
    Attio refuses (a phone string starts with + and the country code). They follow the phone kind's
    rule: plausible numbers in E.164 with the default region, the others reject the row, worded
    as the mapping words it."""
    sandbox = fresh.sandbox
    dest = AttioDestination(fresh.url, {"api_key": TOKEN}, {"phone_region": "US"})
    spec = SyncSpec("s", "people", "upsert", "email_addresses", ["phone_numbers"])
    pre = run_preflight(dest, spec)
    assert pre.kinds == {"phone_numbers": "auto"}
    rows = [{"key": "a@example.com", "phone_numbers": ["(555) 867-5309"]},
            {"key": "b@example.com", "phone_numbers": ["+44 20 7946 0958", "415 555 2671"]},
            {"key": "c@example.com", "phone_numbers": ["12345"]},
            {"key": "d@example.com", "phone_numbers": ["+14155552671", "not a phone"]}]
    prepared = dest.prepare(mapped(rows, "email_addresses", ["phone_numbers"], pre.kinds, "email"), spec)
    check_spec(prepared.requests)
    sent = {r.keys[0]: orjson.loads(r.body)["data"]["values"]["phone_numbers"] for r in prepared.requests}
    assert sent == {"a@example.com": ["+15558675309"], "b@example.com": ["+442079460958", "+14155552671"]}
    why = {r.key: r.reason for r in prepared.rejections}
    assert why == {"c@example.com": """field "phone_numbers": invalid phone number '12345' (default region US)""",
                   "d@example.com": """field "phone_numbers": invalid phone number 'not a phone' (default region US)"""}
    assert [r.problems for r in deliver_all(dest, prepared.requests)] == [[], []]
    stored = fresh.call(lambda: sandbox.plain(sandbox.find_person("a@example.com")))
    assert stored["phone_numbers"] == ["+15558675309"]


def test_phone_keys_pair_with_the_stored_number_in_e164():
    d = AttioDestination("http://127.0.0.1:9", {"api_key": "k"}, {"phone_region": "FR"})
    key = AttributeInfo("mobile", "m", "phone-number", is_unique=True)
    req = d._lookup("people", key, ["k-us", "k-fr"], [b'{"mobile":"+1 555 867 5309"}', b'{"mobile":"06 12 34 56 78"}'],
                    ["+1 555 867 5309", "06 12 34 56 78"])
    answer = {"data": [{"id": {"record_id": "rec-us"}, "values": {"mobile": [{"phone_number": "+15558675309"}]}},
                       {"id": {"record_id": "rec-fr"}, "values": {"mobile": [{"phone_number": "+33612345678"}]}}]}
    assert d.parse(req, 200, {}, orjson.dumps(answer)).results == []
    assert d._record_ids == {"k-us": "rec-us", "k-fr": "rec-fr"}


def test_phone_keys_are_sent_in_e164_and_one_number_is_written_once(fresh):
    """A unique phone-number matching attribute: Attio stores the number in E.164, so keys
    '+33 6 12 34 56 78' and '+33612345678' are one record. Both were asserted as written, both
    acknowledged, the last write winning; and a national key ('06 12 34 56 79', phone_region FR)
    was sent as written, which Attio cannot read without a country code. Keys go in E.164 (the
    default region for national ones; one that does not parse as written: Attio's answer decides),
    in the assert and in the lookup's filter; keys of a batch that are one number are withheld."""
    sandbox = fresh.sandbox
    fresh.call(sandbox.declare_attribute, "people:mobile:phone-number:unique")
    try:
        dest = destination(fresh)  # phone_region FR
        spec = SyncSpec("s", "people", "upsert", "mobile", ["job_title"])
        assert run_preflight(dest, spec).issues == []
        keys = ["+33 6 12 34 56 78", "+33612345678", "06 12 34 56 79", "+1 555 867 5309", "not a phone"]
        rows = [{"key": k, "job_title": f"row {k}"} for k in keys]
        prepared = dest.prepare(mapped(rows, "mobile", ["job_title"], {"job_title": "string"}, "string"), spec)
        check_spec(prepared.requests)
        sent = {r.keys[0]: orjson.loads(r.body)["data"]["values"]["mobile"] for r in prepared.requests}
        assert sent == {"06 12 34 56 79": ["+33612345679"], "+1 555 867 5309": ["+15558675309"],
                        "not a phone": ["not a phone"]}
        why = {r.key: r for r in prepared.rejections}
        assert sorted(why) == ["+33 6 12 34 56 78", "+33612345678"]
        for r in why.values():
            assert not r.park and "is the same phone number for Attio ('+33612345678')" in r.reason, r
        update = SyncSpec("s", "people", "update", "mobile", ["job_title"])
        run_preflight(dest, update)
        [lookup] = dest.lookup_requests(["k"], ["06 12 34 56 79"], update)
        assert orjson.loads(lookup.body)["filter"] == {"$or": [{"mobile": "+33612345679"}]}
    finally:
        fresh.call(lambda: sandbox.objects["people"].attributes.pop("mobile"))


def test_a_name_struct_with_every_part_empty_clears_the_name(fresh):
    """A struct whose parts are all NULL or empty was sent as one empty name
    (`[{"first_name": "", "last_name": "", "full_name": ""}]`); it is `[]`, as NULL is."""
    sandbox = fresh.sandbox
    dest = destination(fresh)
    spec = SyncSpec("s", "people", "upsert", "email_addresses", ["name"])
    pre = run_preflight(dest, spec)
    parts = [{"first_name": None, "last_name": None}, {"first_name": "", "last_name": "", "full_name": ""},
             {"first_name": " ", "last_name": None}, {"first_name": "Ada", "last_name": None}]
    rows = [{"key": f"n{i}@example.com", "name": p} for i, p in enumerate(parts)]
    prepared = dest.prepare(mapped(rows, "email_addresses", ["name"], pre.kinds, "email"), spec)
    check_spec(prepared.requests)
    assert [orjson.loads(r.body)["data"]["values"]["name"] for r in prepared.requests] == [
        [], [], [], [{"first_name": "Ada", "last_name": "", "full_name": "Ada"}]]
    assert [r.problems for r in deliver_all(dest, prepared.requests)] == [[]] * 4
    assert fresh.call(lambda: sandbox.plain(sandbox.find_person("n0@example.com")))["name"] is None


def test_coordinates_are_written_in_decimal_notation(fresh):
    sandbox = fresh.sandbox
    dest = destination(fresh)
    spec = SyncSpec("s", "people", "upsert", "email_addresses", ["primary_location"])
    pre = run_preflight(dest, spec)
    places = [(0.00001, -0.0000001), (51.5, -0.1278), (-90, 180)]  # near the equator / meridian: tiny floats
    rows = [{"key": f"g{i}@example.com", "primary_location": {"locality": "X", "latitude": lat, "longitude": lon}}
            for i, (lat, lon) in enumerate(places)]
    prepared = dest.prepare(mapped(rows, "email_addresses", ["primary_location"], pre.kinds, "email"), spec)
    check_spec(prepared.requests)
    sent = [orjson.loads(r.body)["data"]["values"]["primary_location"][0] for r in prepared.requests]
    assert [(s["latitude"], s["longitude"]) for s in sent] == [("0.00001", "-0.0000001"), ("51.5", "-0.1278"),
                                                                ("-90.0", "180.0")]
    assert [r.problems for r in deliver_all(dest, prepared.requests)] == [[], [], []]
    stored = fresh.call(lambda: sandbox.plain(sandbox.find_person("g0@example.com")))
    assert stored["primary_location"]["latitude"] == "0.00001"


def test_currency_amounts_are_sent_with_at_most_4_decimals(fresh):
    sandbox = fresh.sandbox
    dest = destination(fresh)
    spec = SyncSpec("s", "people", "upsert", "email_addresses", ["ltv"])
    pre = run_preflight(dest, spec)
    # computed DOUBLEs (a third, a float sum), exponents, and amounts that are fine as they are
    amounts = [1 / 3, 0.1 + 0.2, -2.718281828, 1e-7, 12.5, 1999, 1234567.123456, 1.5e-3]
    rows = [{"key": f"c{i}@example.com", "ltv": a} for i, a in enumerate(amounts)]
    prepared = dest.prepare(mapped(rows, "email_addresses", ["ltv"], pre.kinds, "email"), spec)
    check_spec(prepared.requests)
    sent = [orjson.loads(r.body)["data"]["values"]["ltv"][0]["currency_value"] for r in prepared.requests]
    assert sent == [0.3333, 0.3, -2.7183, 0.0, 12.5, 1999, 1234567.1235, 0.0015]
    for request in prepared.requests:  # the text itself: no more than 4 digits after the point
        text = orjson.loads(request.body)["data"]["values"]["ltv"][0]
        assert len(repr(text["currency_value"]).partition(".")[2]) <= 4
    fresh.call(lambda: setattr(sandbox.options, "excess_decimals", "reject"))  # Attio's documented maximum
    try:
        assert [r.problems for r in deliver_all(dest, prepared.requests)] == [[]] * len(amounts)
    finally:
        fresh.call(lambda: setattr(sandbox.options, "excess_decimals", "round"))
    assert fresh.call(lambda: sandbox.plain(sandbox.find_person("c0@example.com")))["ltv"] == 0.3333


def test_companies_domains_multiselect_and_references_to_people(fresh):
    sandbox = fresh.sandbox
    dest = destination(fresh)
    person = Request("write", "PUT", "/v2/objects/people/records?matching_attribute=email_addresses",
                     b'{"data":{"values":{"email_addresses":["cto@acme.com"]}}}', keys=["p"], context=_Write(False))
    deliver_all(dest, [person])
    fields = ["name", "categories", "team", "employees"]
    spec = SyncSpec("c", "companies", "upsert", "domains", fields)
    pre = run_preflight(dest, spec)
    assert pre.issues == [] and pre.kinds["team"] == "auto" and pre.kinds["categories"] == "auto"
    rows = [{"key": "acme.com", "name": "Acme", "categories": ["SaaS", "B2B"], "team": ["CTO@acme.com"],
             "employees": 120}]
    prepared = dest.prepare(mapped(rows, "domains", fields, pre.kinds, "string"), spec)
    check_spec(prepared.requests)
    values = orjson.loads(prepared.requests[0].body)["data"]["values"]
    assert values["domains"] == ["acme.com"] and values["employees"] == [120]
    assert values["team"] == [{"target_object": "people", "email_addresses": [{"email_address": "CTO@acme.com"}]}]
    assert deliver_all(dest, prepared.requests)[0].problems == []
    company = fresh.call(lambda: sandbox.plain(sandbox.find_company("acme.com")))
    assert company["categories"] == ["SaaS", "B2B"] and len(company["team"]) == 1


def test_domains_attio_reads_as_the_same_company_are_withheld(fresh):
    dest = destination(fresh)
    spec = SyncSpec("c", "companies", "upsert", "domains", ["name"])
    pre = run_preflight(dest, spec)
    rows = [{"key": "Acme.com", "name": "a"}, {"key": "https://acme.com/x", "name": "b"},
            {"key": "other.com", "name": "c"}]
    prepared = dest.prepare(mapped(rows, "domains", ["name"], pre.kinds, "string"), spec)
    assert [r.keys for r in prepared.requests] == [["other.com"]]
    assert sorted(r.key for r in prepared.rejections) == ["Acme.com", "https://acme.com/x"]
    assert "same domain" in prepared.rejections[0].reason
    # each reason names the other row's domain as the model writes it (it named the normalised form,
    # so 'initech.com' was "the same domain as another row of the model ('initech.com')")
    why = {r.key: r.reason for r in prepared.rejections}
    assert "'https://acme.com/x' on another row" in why["Acme.com"], why
    assert "'Acme.com' on another row" in why["https://acme.com/x"], why
    assert normalise_domain("HTTPS://user@Sub.Acme.com:8080/path?q=1#f") == "sub.acme.com"


def test_emails_attio_stores_as_one_address_are_withheld_not_written_over_each_other(fresh):
    """Attio stores an email address normalised: its local part in NFC (`café` typed as `e` + a
    combining accent is `café`), its domain as Unicode (`xn--exmple-cua.com` is `exämple.com`).
    Both rows of such a pair were asserted, onto one person, the last write winning, and both
    acknowledged: the record held one row's values while the snapshot said both were delivered
    (update mode's lookup already withheld them as keys of one record)."""
    dest = destination(fresh)
    spec = SyncSpec("p", "people", "upsert", "email_addresses", ["job_title"])
    pre = run_preflight(dest, spec)
    keys = ["cafe\u0301@example.com", "caf\u00e9@example.com", "user@ex\u00e4mple.com", "user@xn--exmple-cua.com",
            "other@example.com", "caf\u00e9@example.org"]
    rows = [{"key": k, "job_title": f"t{i}"} for i, k in enumerate(keys)]
    prepared = dest.prepare(mapped(rows, "email_addresses", ["job_title"], pre.kinds, "email"), spec)
    assert sorted(k for r in prepared.requests for k in r.keys) == ["caf\u00e9@example.org", "other@example.com"]
    why = {r.key: r for r in prepared.rejections}
    assert sorted(why) == sorted(keys[:4]), why
    assert all(not r.park and r.field == "email_addresses" for r in why.values()), why
    assert "same email address for Attio ('caf\u00e9@example.com')" in why[keys[0]].reason, why
    assert f"{keys[3]!r} on another row" in why[keys[2]].reason, why
    deliver_all(dest, prepared.requests)
    assert len(fresh.call(fresh.sandbox.records, "people")) == 2


def test_rows_refused_for_their_key_name_the_matching_attribute_as_their_field(fresh):
    """Keys Attio reads as one domain or one number, a numeric key no float holds and a key that is
    not a number were refused with a reason naming the key, but no `field`: `dinsync rejections`
    showed it blank, where the model's duplicated keys and the mapping's key checks name it."""
    dest = destination(fresh)
    spec = SyncSpec("c", "companies", "upsert", "domains", ["name"])
    pre = run_preflight(dest, spec)
    rows = [{"key": "Acme.com", "name": "a"}, {"key": "https://acme.com/x", "name": "b"},
            {"key": "other.com", "name": "c"}]
    prepared = dest.prepare(mapped(rows, "domains", ["name"], pre.kinds, "string"), spec)
    assert {r.key: r.field for r in prepared.rejections} == {"Acme.com": "domains", "https://acme.com/x": "domains"}
    sandbox = fresh.sandbox
    fresh.call(sandbox.declare_attribute, "people:account_no:number:unique")
    try:
        spec = SyncSpec("s", "people", "upsert", "account_no", ["job_title"])
        assert run_preflight(dest, spec).issues == []
        rows = [{"key": k, "job_title": "x"} for k in ("1", "1.0", "9007199254740993", "n/a", "42")]
        prepared = dest.prepare(mapped(rows, "account_no", ["job_title"], {"job_title": "string"}, "string"), spec)
        assert [r.keys for r in prepared.requests] == [["42"]]
        assert {r.key: r.field for r in prepared.rejections} == {
            "1": "account_no", "1.0": "account_no", "9007199254740993": "account_no", "n/a": "account_no"}
    finally:
        fresh.call(lambda: sandbox.objects["people"].attributes.pop("account_no"))


def test_reference_values_that_cannot_be_built_reject_the_row_only(fresh):
    dest = destination(fresh)
    fresh.call(fresh.sandbox.declare_attribute, "people:manager:record-reference:target=people")
    try:
        spec = SyncSpec("s", "people", "upsert", "email_addresses", ["manager"])
        pre = run_preflight(dest, spec)
        rows = [{"key": "a@example.com", "manager": 42}, {"key": "b@example.com", "manager": None}]
        prepared = dest.prepare(mapped(rows, "email_addresses", ["manager"], pre.kinds, "email"), spec)
        assert [r.keys for r in prepared.requests] == [["b@example.com"]]
        assert orjson.loads(prepared.requests[0].body)["data"]["values"]["manager"] == []
        [rejection] = prepared.rejections
        assert rejection.key == "a@example.com" and "record id" in rejection.reason
    finally:
        fresh.call(lambda: fresh.sandbox.objects["people"].attributes.pop("manager"))


def test_numeric_custom_unique_key(fresh):
    sandbox = fresh.sandbox
    fresh.call(sandbox.declare_attribute, "people:account_no:number:unique")
    try:
        dest = destination(fresh)
        spec = SyncSpec("s", "people", "upsert", "account_no", ["job_title"])
        assert run_preflight(dest, spec).issues == []
        rows = [{"key": "1042", "job_title": "x"}, {"key": "n/a", "job_title": "y"}]
        prepared = dest.prepare(mapped(rows, "account_no", ["job_title"], {"job_title": "string"}, "string"), spec)
        check_spec(prepared.requests)
        assert orjson.loads(prepared.requests[0].body)["data"]["values"]["account_no"] == [1042]
        assert [r.key for r in prepared.rejections] == ["n/a"] and "not a number" in prepared.rejections[0].reason
    finally:
        fresh.call(lambda: sandbox.objects["people"].attributes.pop("account_no"))


def test_numeric_keys_attio_stores_as_one_float_are_not_written_over_each_other(fresh):
    """Attio keeps numbers as 64-bit floats: 9007199254740993 is stored as 9007199254740992, and
    '1', '1.0', '1e0' (or '-0', '0') are one number. Such keys overwrote one record, every row
    acknowledged. A key no float holds is rejected (parked: no run can match it as written); keys
    of a batch that are one number for Attio are withheld (not parked), naming the other form."""
    sandbox = fresh.sandbox
    fresh.call(sandbox.declare_attribute, "people:account_no:number:unique")
    try:
        dest = destination(fresh)
        spec = SyncSpec("s", "people", "upsert", "account_no", ["job_title"])
        assert run_preflight(dest, spec).issues == []
        keys = ["9007199254740992", "9007199254740993", "1", "1.0", "1e0", "-0", "0", "0.1", "0.10000000000000001",
                "42", "1e400"]
        rows = [{"key": k, "job_title": f"row {k}"} for k in keys]
        prepared = dest.prepare(mapped(rows, "account_no", ["job_title"], {"job_title": "string"}, "string"), spec)
        check_spec(prepared.requests)
        assert sorted(r.keys[0] for r in prepared.requests) == ["0.1", "42", "9007199254740992"]
        why = {r.key: r for r in prepared.rejections}
        assert sorted(why) == sorted(set(keys) - {"0.1", "42", "9007199254740992"})
        for key in ("9007199254740993", "0.10000000000000001", "1e400"):
            assert why[key].park and "is not a 64-bit float" in why[key].reason, why[key]
        assert "would store it as 9007199254740992.0" in why["9007199254740993"].reason
        for key in ("1", "1.0", "1e0", "-0", "0"):
            assert not why[key].park and "is the same number for Attio as" in why[key].reason, why[key]
        assert "'1.0', '1e0'" in why["1"].reason and "'0'" in why["-0"].reason
        assert [r.problems for r in deliver_all(dest, prepared.requests)] == [[]] * 3
        stored = fresh.call(lambda: {sandbox.plain(r)["account_no"]: sandbox.plain(r)["job_title"]
                                     for r in sandbox.records("people")})
        assert stored == {9007199254740992: "row 9007199254740992", 0.1: "row 0.1", 42: "row 42"}
    finally:
        fresh.call(lambda: sandbox.objects["people"].attributes.pop("account_no"))


# ------------------------------------------------------------------ pre-flight
def test_preflight_names_unknown_read_only_archived_and_closest(fresh):
    dest = destination(fresh)
    spec = SyncSpec("s", "people", "upsert", "email_addresses",
                    ["job_titel", "avatar_url", "old_field", "Lifetime value", "last_interaction", "plan"])
    pre = run_preflight(dest, spec)
    by_field = {i.field: i for i in pre.issues}
    assert set(by_field) == {"job_titel", "avatar_url", "old_field", "Lifetime value", "last_interaction"}
    assert "no attribute 'job_titel'" in by_field["job_titel"].message
    assert "job_title" in by_field["job_titel"].hint and "created in Attio" in by_field["job_titel"].hint
    assert "read-only" in by_field["avatar_url"].message
    assert "archived" in by_field["old_field"].message
    assert "read-only" in by_field["last_interaction"].message
    assert pre.kinds == {"plan": "string"}


def test_preflight_refuses_a_non_unique_or_unknown_matching_attribute(fresh):
    dest = destination(fresh)
    [issue] = run_preflight(dest, SyncSpec("s", "people", "upsert", "job_title", [])).issues
    assert issue.field is None and "not unique" in issue.message and "email_addresses" in issue.hint
    [issue] = run_preflight(dest, SyncSpec("s", "people", "upsert", "email", [])).issues
    assert issue.field is None and "no attribute 'email'" in issue.message and "email_addresses" in issue.hint
    assert run_preflight(dest, SyncSpec("s", "people", "upsert", "customer_id", ["job_title"])).issues == []


def test_preflight_pages_through_attributes(fresh):
    sandbox = fresh.sandbox
    added = [f"extra_{i:03d}" for i in range(120)]
    for slug in added:
        fresh.call(sandbox.declare_attribute, f"people:{slug}:text")
    try:
        dest = destination(fresh)
        pre = run_preflight(dest, SyncSpec("s", "people", "upsert", "email_addresses", ["extra_119", "plan"]))
        assert pre.issues == [] and pre.kinds == {"extra_119": "string", "plan": "string"}
        assert fresh.call(lambda: sandbox.requests["list_attributes"]) >= 2
    finally:
        fresh.call(lambda: [sandbox.objects["people"].attributes.pop(s) for s in added])


def test_preflight_without_scopes_stops_naming_them(attio_requests):
    sandbox = AttioSandbox(["weak-token-1234"], token_scopes={"weak-token-1234": ("record_permission:read-write",)},
                           limits=False)
    with SandboxThread(sandbox) as thread:
        dest = AttioDestination(thread.url, {"api_key": "weak-token-1234"})
        with pytest.raises(DestinationAuthError) as info:
            run_preflight(dest, SyncSpec("s", "people", "upsert", "email_addresses", []))
        assert "object_configuration:read" in info.value.message
        assert "record_permission:read-write" in info.value.message and "weak-token" not in info.value.message
        bad = AttioDestination(thread.url, {"api_key": "wrong-token-5678"})
        with pytest.raises(DestinationAuthError) as info:
            run_preflight(bad, SyncSpec("s", "people", "upsert", "email_addresses", []))
        assert "401" in info.value.message and "wrong-token" not in info.value.message


def test_check_mapping_on_a_hand_written_schema():
    schema = Schema("people", [
        AttributeInfo("email_addresses", "a1", "email-address", is_unique=True, is_multiselect=True),
        AttributeInfo("plan", "a2", "select", title="Plan"),
        AttributeInfo("who", "a3", "actor-reference"),
    ])
    issues, found = check_mapping(schema, "email_addresses", ["plan", "a2", "who"])
    assert {i.field for i in issues} == {"a2", "who"}  # plan mapped twice (slug and id); actor refs unsupported
    assert set(found) == {"email_addresses", "plan"} and found["plan"].kind == "string"


# ------------------------------------------------------------------ response parsing
def _dest():
    return AttioDestination("http://127.0.0.1:9", {"api_key": "k"})


def _write(by_id=False):
    return Request("write", "PUT", "/v2/objects/people/records?matching_attribute=email_addresses", b"{}",
                   keys=["k1"], context=_Write(by_id))


def _body(status, code, message, **extra):
    return orjson.dumps({"status_code": status, "type": "invalid_request_error", "code": code, "message": message,
                         **extra})


def test_a_rejection_names_the_attributes_attio_names_among_those_sent():
    """The rejection's field is the attribute Attio's answer names (its validation errors' paths or
    its message), when the write sent it; else none (the reason quotes the whole answer)."""
    d = _dest()
    body = orjson.dumps({"data": {"values": {"email_addresses": ["a@example.com"], "visits": ["x"],
                                             "company": [{"target_object": "companies", "domains": ["b c"]}],
                                             "plan": ["platinum"], "tier": [{"option": "gold"}]}}})
    write = Request("write", "PUT", "/v2/objects/people/records?matching_attribute=email_addresses", body,
                    keys=["k1"], context=_Write(False))
    by_path = d.parse(write, 400, {}, _body(400, "validation_type", "Body payload validation error.", validation_errors=[
        {"code": "invalid_type", "path": ["data", "values", "visits", 0, "value"], "message": "Expected number"}]))
    by_message = d.parse(write, 400, {}, _body(400, "value_not_found", "No companies record was found with domains "
                                               'matching the value provided for attribute with slug "company".'))
    both = d.parse(write, 400, {}, _body(400, "validation_type", 'An invalid value was passed to attribute with slug '
                                         '"company".', validation_errors=[{"path": ["data", "values", "visits"],
                                                                           "message": "no"}]))
    options = [d.parse(write, 400, {}, _body(400, "value_not_found", "Cannot find select attribute with select "
                                            f'option title "{title}".')).results[0] for title in ("platinum", "gold")]
    assert [r.field for r in (*by_path.results, *by_message.results, *both.results, *options)] == [
        "visits", "company", "company, visits", "plan", "tier"]
    assert all(r.status == "rejected" for r in (*by_path.results, *by_message.results))
    # an attribute it did not send, an attribute ID, an option it did not send, a failure: no field
    for status, answer in ((400, _body(400, "validation_type", 'An invalid value was passed to attribute with slug '
                                       '"job_title".')),
                           (400, _body(400, "value_not_found", 'No attribute with ID "9f1c-77" was found.')),
                           (400, _body(400, "value_not_found", 'Cannot find select attribute with select option '
                                       'title "vip".')),
                           (400, b"<html>bad request</html>")):
        [r] = d.parse(write, status, {}, answer).results
        assert r.field is None, (answer, r)


def test_a_rejection_names_the_attribute_of_an_unknown_option_whose_title_holds_quotes():
    """Attio quotes an unknown option's title as it was sent, double quotes included (`title
    ""q"".`): the title was read up to its first inner quote, an empty title no attribute sent, and
    the rejection named no field."""
    d = _dest()
    for title in ('"q"', 'say "hi"', 'a"b', '"', '"' * 100_000):  # (a title of quotes: no candidate per quote)
        body = orjson.dumps({"data": {"values": {"email_addresses": ["a@example.com"], "tags": ["x", title],
                                                 "plan": [{"option": title}]}}})
        write = Request("write", "PUT", "/v2/objects/people/records?matching_attribute=email_addresses", body,
                        keys=["k1"], context=_Write(False))
        answer = _body(400, "value_not_found", f'Cannot find select attribute with select option title "{title}".')
        [r] = d.parse(write, 400, {}, answer).results
        assert (r.status, r.field) == ("rejected", "plan, tags"), (title, r)


def test_parse_write_answers():
    d = _dest()
    record = b'{"data":{"id":{"workspace_id":"w","object_id":"o","record_id":"r1"},"values":{}}}'
    for by_id in (False, True):
        assert d.parse(_write(by_id), 200, {}, record).kind == "done"
        assert d.parse(_write(by_id), 200, {}, record).results == []
    select = d.parse(_write(), 400, {}, _body(400, "value_not_found",
                                              'Cannot find select attribute with select option title "vip".'))
    [r] = select.results
    assert (r.status, r.key) == ("rejected", "k1") and 'option title "vip"' in r.reason and "value_not_found" in r.reason
    shape = d.parse(_write(), 400, {}, _body(400, "validation_type", 'An invalid value was passed to attribute with '
                                             'slug "visits".', validation_errors=[
                                                 {"code": "invalid_value", "path": ["data", "values", "visits", 0],
                                                  "message": "expected a number"}]))
    assert "data.values.visits.0: expected a number" in shape.results[0].reason
    conflict = d.parse(_write(), 409, {}, _body(409, "uniqueness_conflict", "conflicts with one already in the system"))
    assert conflict.results[0].status == "rejected" and "409" in conflict.results[0].reason
    unknown = d.parse(_write(), 404, {}, _body(404, "not_found", 'Cannot find attribute with slug/ID "x".'))
    assert unknown.results[0].status == "rejected"
    gone = d.parse(_write(by_id=True), 404, {}, _body(404, "not_found", 'Record with ID "r1" not found.'))
    assert gone.results[0].status == "not_found"
    # another wording of a missing record is one too (an independent server worded it so); an
    # unknown object or attribute is not
    for message, status in (("Record not found.", "not_found"), ('No record with ID "r1" exists.', "not_found"),
                            ('Object with slug/ID "people" not found.', "rejected"),
                            ('Cannot find attribute with slug/ID "x".', "rejected")):
        [r] = d.parse(_write(by_id=True), 404, {}, _body(404, "not_found", message)).results
        assert r.status == status, (message, r)
    for status in (401, 403):
        fatal = d.parse(_write(), status, {}, _body(status, "missing_scopes", "no"))
        assert fatal.kind == "fatal" and "record_permission:read-write and object_configuration:read" in fatal.reason
    assert describe(502, None) == "Attio HTTP 502"
    # a proxy's page instead of Attio's JSON: its words say what happened
    page = b"<html><head><title>413 Request Entity Too Large</title></head>\n<body><h1>413</h1> nginx</body></html>"
    [too_big] = d.parse(_write(), 413, {}, page).results
    # a proxy's 413 page (its cap, not Attio's): failed, sent again next run; it parked a valid row
    assert (too_big.status, too_big.reason) == ("failed", "Attio HTTP 413: 413 Request Entity Too Large (HTML page)")
    [refused] = d.parse(_write(), 413, {}, _body(413, "payload_too_large", "too large")).results
    assert refused.status == "rejected"  # Attio's own 413: its word on the record
    # other 4xx pages that are not Attio's answer (a gateway's 404, an empty 400): failed, sent again
    # next run, not parked as if Attio had refused the record's values
    for status, body in ((404, b"<html><body>404 Not Found</body></html>"), (400, b""), (400, b'{"error": "x"}')):
        [lost] = d.parse(_write(), status, {}, body).results
        assert lost.status == "failed" and lost.reason.startswith(f"Attio HTTP {status}")


def test_a_2xx_write_answer_that_is_not_attios_record_is_retried_not_acknowledged():
    """A captive portal's or a proxy's 200 page (or an empty or foreign JSON body) says nothing of
    the write: acknowledging it lost the row (never in Attio, never sent again). Only Attio's
    record (`data.id.record_id`) acknowledges it; anything else is retried, then failed."""
    d = _dest()
    portal = b"<html><head><title>Sign in to Wi-Fi</title></head><body>Accept the terms</body></html>"
    for by_id in (False, True):
        for status, body in ((200, portal), (200, b""), (204, b""), (200, b'{"ok": true}'), (200, b'{"data":{}}'),
                             (200, b'{"data":{"id":{"record_id":null}}}'), (201, b'{"data":[]}')):
            outcome = d.parse(_write(by_id), status, {}, body)
            assert (outcome.kind, outcome.results) == ("retry", []), (status, body, outcome)
            assert outcome.reason.startswith(f"Attio HTTP {status}") and "not Attio's answer" in outcome.reason
    assert "Sign in to Wi-Fi" in d.parse(_write(), 200, {}, portal).reason


def test_parse_lookup_pairs_records_with_keys_as_attio_normalises_them():
    d = _dest()
    key = AttributeInfo("domains", "a", "domain", is_unique=True, is_multiselect=True)
    req = d._lookup("companies", key, ["k-acme", "k-other"], [b'{"domains":"Acme.com"}', b'{"domains":"other.com"}'],
                    ["https://Acme.com/home", "other.com"])
    assert isinstance(req.context, _Lookup)
    assert orjson.loads(req.body) == {"filter": {"$or": [{"domains": "Acme.com"}, {"domains": "other.com"}]},
                                      "limit": 2}
    validate_attio_request(req.method, req.path, req.body)
    answer = orjson.dumps({"data": [{"id": {"record_id": "rec-1"},
                                     "values": {"domains": [{"domain": "acme.com", "root_domain": "acme.com"}]}}]})
    outcome = d.parse(req, 200, {}, answer)
    assert [(r.key, r.status) for r in outcome.results] == [("k-other", "not_found")]
    assert d._record_ids == {"k-acme": "rec-1"}
    assert d.parse(req, 400, {}, _body(400, "filter_error", "bad")).kind == "split"
    # a 200 page that is no answer to a records query (a proxy's, an empty body): sent again (a
    # read), not every key failed at once
    for page in (b"<html>portal</html>", b""):
        assert d.parse(req, 200, {}, page).kind == "retry"
    halves = req.split()
    assert [h.keys for h in halves] == [["k-acme"], ["k-other"]]
    assert orjson.loads(halves[1].body)["filter"] == {"$or": [{"domains": "other.com"}]}


def test_a_lookup_attio_refuses_for_a_single_key_fails_it_and_never_parks_it():
    """A records query is a read: Attio refusing it (e.g. 400 filter_error while its API misbehaves)
    is no verdict on the row. A batch is still split to isolate a key, but a single key is failed
    (looked up again by the next run) with Attio's reason; it was rejected, so parked until its row
    changed. A key a numeric attribute can never match (not a number) is rejected: no run sends it."""
    d = _dest()
    refused = _body(400, "filter_error", "The filter could not be applied.")
    email = AttributeInfo("email_addresses", "a", "email-address", is_unique=True, is_multiselect=True)
    pair = d._lookup("people", email, ["k1", "k2"], [b'{"email_addresses":"a@b.co"}', b'{"email_addresses":"c@d.co"}'],
                     ["a@b.co", "c@d.co"])
    assert d.parse(pair, 400, {}, refused).kind == "split"
    for half in pair.split():
        outcome = d.parse(half, 400, {}, refused)
        [r] = outcome.results
        assert (outcome.kind, r.key, r.status) == ("done", half.keys[0], "failed")
        assert r.reason == "Attio HTTP 400 filter_error: The filter could not be applied."
    number = AttributeInfo("account_no", "n", "number", is_unique=True)
    one = d._lookup("people", number, ["k3"], [b'{"account_no":"n/a"}'], ["n/a"])
    [r] = d.parse(one, 400, {}, refused).results
    assert r.status == "rejected" and "'n/a' is not a number" in r.reason
    [r] = d.parse(d._lookup("people", number, ["k4"], [b'{"account_no":42}'], [" 42"]), 400, {}, refused).results
    assert r.status == "failed"


def test_a_lookup_refused_as_too_large_is_split_so_one_huge_key_fails_alone():
    """A query holding one 1 MB key, refused with a proxy's (or a server's plain) 413: all 50 keys
    of the query failed, and failed again every run while that key was in the model. The halves are
    smaller; the key that is still too large alone is failed (a cap is no verdict on the row)."""
    d = _dest()
    email = AttributeInfo("email_addresses", "a", "email-address", is_unique=True, is_multiselect=True)
    keys = ["k-big", "k1", "k2"]
    ids = ["a" * 1_000_000 + "@b.co", "c@d.co", "e@f.co"]
    req = d._lookup("people", email, keys, [orjson.dumps({"email_addresses": i}) for i in ids], ids)
    page = b"<html><head><title>413 Request Entity Too Large</title></head><body>nginx</body></html>"
    for body in (page, b"Maximum request body size 1048576 exceeded, actual body size 2000110"):
        assert d.parse(req, 413, {}, body).kind == "split"
    big = req.split()[0]
    assert big.keys == ["k-big"]
    [r] = d.parse(big, 413, {}, page).results
    assert (r.key, r.status) == ("k-big", "failed")


def test_update_mode_keys_withheld_for_one_record_name_the_matching_attribute():
    """Keys a lookup pairs with one record were withheld without a `field` (blank in `dinsync
    rejections`); they name the matching attribute, as the model's duplicated keys do."""
    d = _dest()
    email = AttributeInfo("email_addresses", "a", "email-address", is_unique=True, is_multiselect=True)
    d._plans[("people", "email_addresses", ("job_title",))] = _Plan(email, {"job_title": AttributeInfo(
        "job_title", "b", "text")})
    spec = SyncSpec("s", "people", "update", "email_addresses", ["job_title"])
    keys = ["a@x.co", "b@x.co"]
    req = d._lookup("people", email, keys, [orjson.dumps({"email_addresses": k}) for k in keys], keys)
    answer = {"id": {"record_id": "rec-1"}, "values": {"email_addresses": [{"email_address": k} for k in keys]}}
    assert d.parse(req, 200, {}, orjson.dumps({"data": [answer]})).results == []
    frame = mapped([{"key": k, "job_title": "x"} for k in keys], "email_addresses", ["job_title"],
                   {"job_title": "string"}, "email")
    prepared = d.prepare(frame, spec)
    assert {r.key: r.field for r in prepared.rejections} == {"a@x.co": "email_addresses", "b@x.co": "email_addresses"}


def test_update_mode_keys_resolving_to_one_record_are_withheld():
    """A person holding two of the model's emails: both rows were written by record id to that one
    record (the last write winning), both acknowledged. Keys one lookup answer (or one batch) pairs
    with one record are all withheld; a key whose record another key of the run was prepared for
    is withheld too. Not parked: the next run plans them again."""
    d = _dest()
    email = AttributeInfo("email_addresses", "a", "email-address", is_unique=True, is_multiselect=True)
    d._plans[("people", "email_addresses", ("job_title",))] = _Plan(email, {"job_title": AttributeInfo(
        "job_title", "b", "text")})
    spec = SyncSpec("s", "people", "update", "email_addresses", ["job_title"])

    def record(rid, *emails):
        return {"id": {"record_id": rid}, "values": {"email_addresses": [{"email_address": e} for e in emails]}}

    def lookup(keys, records):
        req = d._lookup("people", email, keys, [orjson.dumps({"email_addresses": k}) for k in keys], keys)
        assert d.parse(req, 200, {}, orjson.dumps({"data": records})).results == []

    def prepare(keys):
        frame = mapped([{"key": k, "job_title": "x"} for k in keys], "email_addresses", ["job_title"],
                       {"job_title": "string"}, "email")
        return d.prepare(frame, spec)

    lookup(["a@x.co", "b@x.co", "c@x.co"], [record("rec-1", "a@x.co", "b@x.co"), record("rec-2", "c@x.co")])
    first = prepare(["a@x.co"])  # the answer's two keys reach prepare() in different batches
    assert first.requests == [] and [(r.key, r.park) for r in first.rejections] == [("a@x.co", False)]
    assert "resolves to the same Attio record as key 'b@x.co' (record rec-1)" in first.rejections[0].reason
    second = prepare(["b@x.co", "c@x.co"])
    assert [r.path for r in second.requests] == ["/v2/objects/people/records/rec-2"]
    [withheld] = second.rejections
    assert (withheld.key, withheld.park) == ("b@x.co", False) and "'a@x.co'" in withheld.reason
    # a later lookup: d resolves to the record c was written to; e and f share one in its batch
    lookup(["d@x.co"], [record("rec-2", "c@x.co", "d@x.co")])
    lookup(["e@x.co"], [record("rec-3", "e@x.co")])
    lookup(["f@x.co"], [record("rec-3", "e@x.co", "f@x.co")])
    third = prepare(["d@x.co", "e@x.co", "f@x.co"])
    assert third.requests == []
    why = {r.key: r.reason for r in third.rejections}
    assert "as key 'c@x.co' (record rec-2)" in why["d@x.co"]
    assert "as key 'f@x.co'" in why["e@x.co"] and "as key 'e@x.co'" in why["f@x.co"]
    assert d._record_ids == {} and d._shared == {}


def test_update_mode_a_key_rejected_as_inexact_does_not_withhold_the_key_it_reads_as():
    """9007199254740993 and 9007199254740992 both pair with the record holding 9007199254740992:
    the first is rejected (no float holds it), so the second is that record's only key: written."""
    d = _dest()
    number = AttributeInfo("account_no", "n", "number", is_unique=True)
    d._plans[("people", "account_no", ("job_title",))] = _Plan(number, {"job_title": AttributeInfo(
        "job_title", "b", "text")})
    keys = ["9007199254740992", "9007199254740993"]
    req = d._lookup("people", number, keys, [orjson.dumps({"account_no": int(k)}) for k in keys], keys)
    answer = {"data": [{"id": {"record_id": "rec-1"}, "values": {"account_no": [{"value": 9007199254740992}]}}]}
    assert d.parse(req, 200, {}, orjson.dumps(answer)).results == []
    frame = mapped([{"key": k, "job_title": "x"} for k in keys], "account_no", ["job_title"],
                   {"job_title": "string"}, "string")
    prepared = d.prepare(frame, SyncSpec("s", "people", "update", "account_no", ["job_title"]))
    assert [(r.keys, r.path) for r in prepared.requests] == [(["9007199254740992"], "/v2/objects/people/records/rec-1")]
    [rejected] = prepared.rejections
    assert (rejected.key, rejected.park) == ("9007199254740993", True) and "not a 64-bit float" in rejected.reason


def test_parse_schema_read_keeps_the_body():
    d = _dest()
    capture = _Capture("attributes")
    req = Request("read", "GET", "/v2/objects/people/attributes", None, keys=["attributes"], context=capture)
    assert d.parse(req, 200, {}, b'{"data":[]}').kind == "done" and capture.data == {"data": []}
    missing = d.parse(req, 404, {}, _body(404, "not_found", 'Object with slug/ID "peeple" not found.'))
    assert missing.results[0].status == "rejected" and "peeple" in missing.results[0].reason


def test_a_2xx_schema_read_answer_that_is_not_attios_list_is_read_again():
    """A proxy's or a captive portal's 200 page to the attributes read failed the run at once (the
    same page to a lookup or a write is retried): it says nothing of the workspace."""
    d = _dest()
    capture = _Capture("the attributes of people")
    req = Request("read", "GET", "/v2/objects/people/attributes", None, keys=["attributes"], context=capture)
    portal = b"<html><body>Sign in to Wi-Fi</body></html>"
    for status, body in ((200, portal), (200, b""), (204, b""), (200, b'{"ok": true}')):
        outcome = d.parse(req, status, {}, body)
        assert (outcome.kind, outcome.results) == ("retry", []), (status, body, outcome)
        assert capture.data is None
    assert "Sign in to Wi-Fi" in d.parse(req, 200, {}, portal).reason


def test_limits_are_token_wide_buckets_paced_under_the_documented_rates():
    from dinsync.sender import HttpSender

    d = _dest()
    sender = HttpSender(d)
    assert sender.limiter("write").effective_rate == pytest.approx(25 * 0.975)  # Attio's own headroom
    assert sender.limiter("read").effective_rate == pytest.approx(100 * 0.985)  # the sender's default
    key = AttributeInfo("email_addresses", "a", "email-address", is_unique=True, is_multiselect=True)
    for mode in ("upsert", "update"):
        spec = SyncSpec("s", "people", mode, "email_addresses", ["job_title"])
        d._plans[("people", "email_addresses", ("job_title",))] = _Plan(key, {"job_title": AttributeInfo(
            "job_title", "b", "text")})
        d._record_ids["x@example.com"] = "4f0e6b1c-0000-4000-8000-000000000001"
        frame = mapped([{"key": "x@example.com", "job_title": "CTO"}], "email_addresses", ["job_title"],
                       {"job_title": "string"}, "email")
        [request] = d.prepare(frame, spec).requests
        assert (request.endpoint, request.method) == ("write", "PUT")
        validate_attio_request(request.method, request.path, request.body, values_must_be_arrays=True)
    lookup = d._lookup("people", AttributeInfo("email_addresses", "a", "email-address", is_unique=True),
                       ["k"], [b'{"email_addresses":"a@b.co"}'], ["a@b.co"])
    assert lookup.endpoint == "read"
    assert AttioDestination.default_concurrency >= sum(l.max_concurrency for l in AttioDestination.limits.values())


def test_registering_attio_loads_neither_polars_nor_aiohttp():
    """A no-op run (nothing to send) must stay cheap: the destination registry imports Attio's module."""
    import subprocess
    import sys

    code = ("import sys; from dinsync.destinations import registry; registry(); "
            "print('polars' in sys.modules, 'aiohttp' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_currency_amounts_are_rounded_exactly_not_through_a_float():
    """Amounts with more than 4 decimals were rounded as 64-bit floats: a DECIMAL(38,10) of
    12345678901234567.1234567891 went out as 12345678901234568.0 (its integer part changed), and a
    long amount in exponent form as 1.2345678901234568e+20. They are rounded to 4 decimals on their
    digits (half away from zero), the rest of the number kept."""
    from dinsync.destinations.attio.values import currency_json

    texts = ["12345678901234567.1234567891", "-0.00005", "0.12345", "1.234567890123456789e+20", "1e-7",
             "0.30000000000000004", "12.5", "null", "1.23456e+300"]
    out = pl.DataFrame({"t": texts}).select(currency_json(pl.col("t"))).to_series().to_list()
    assert out == ["12345678901234567.1235", "-0.0001", "0.1235", "123456789012345678900", "0",
                   "0.3", "12.5", "null", "1" + "23456" + "0" * 295]


def test_date_and_timestamp_keys_compare_as_attio_stores_them():
    """A warehouse's text of a key and the value Attio returns for it are one form (lookups pair them)."""
    from dinsync.destinations.attio.values import instant_form

    same = ["2024-01-01 10:00:00.5", "2024-01-01T10:00:00.500000000Z", "2024-01-01T12:00:00.5+02:00",
            "2024-01-01T05:00:00.5-0500"]
    assert {instant_form(t, "timestamp") for t in same} == {"2024-01-01T10:00:00.500000000Z"}
    assert instant_form("2024-01-01", "timestamp") == "2024-01-01T00:00:00.000000000Z"
    assert instant_form("2024-01-01T23:30:00-01:00", "date") == "2024-01-02"  # a datetime's UTC day
    assert [instant_form(t, "timestamp") for t in ("soon", "2024-13-01", "10:00", "")] == [None] * 4


def test_a_timestamp_key_with_an_impossible_offset_is_no_instant():
    """`+99:99` was read as an offset of 100 hours 39 minutes: a key written so was the same instant
    as another row's key of the model, and that good row was withheld with it on every run (and a
    lookup could pair it with the other key's record). An offset of 24 hours or more, or of 60
    minutes or more, is no offset: the key is compared as written."""
    from dinsync.destinations.attio.values import instant_form

    assert instant_form("2024-01-05T10:00:00+99:99", "timestamp") is None
    assert instant_form("2024-01-01T10:00:00-00:75", "timestamp") is None
    assert instant_form("2024-01-01T10:00:00+2400", "date") is None
    assert instant_form("2024-01-01T10:00:00+23:59", "timestamp") == "2023-12-31T10:01:00.000000000Z"
    from dinsync.destinations.attio.keys import same_instant

    keys = ["2024-01-05T10:00:00+99:99", "2024-01-01T05:21:00Z"]
    kept, withheld = same_instant(pl.DataFrame({"_key": keys, "_id": keys}), "signed_up_at", "timestamp")
    assert (kept["_key"].to_list(), withheld) == (keys, [])


def test_preflight_refuses_a_standard_matching_attribute_given_by_its_id(fresh):
    """The diff compares keys by the KeySpec of the name written in `match.field`: given by its ID,
    `email_addresses` was matched as plain text, so `Case@x.com` and `case@x.com` were two rows'
    keys asserted to one Attio person (both acknowledged, the last one's values kept)."""
    dest = destination(fresh)
    sandbox = fresh.sandbox
    email_id = fresh.call(lambda: sandbox.objects["people"].attributes["email_addresses"].id)
    [issue] = run_preflight(dest, SyncSpec("s", "people", "upsert", email_id, ["job_title"])).issues
    assert issue.field is None and "'email_addresses' given by its ID" in issue.message
    assert "field: email_addresses" in issue.hint
    customer_id = fresh.call(lambda: sandbox.objects["people"].attributes["customer_id"].id)
    assert run_preflight(dest, SyncSpec("s", "people", "upsert", customer_id, ["job_title"])).issues == []


def test_a_value_that_cannot_be_written_names_its_field_in_the_rejection(fresh):
    """A multiselect phone number that does not parse rejected the row with a reason naming the
    field but no `field`: `dinsync rejections` showed it blank (the mapping's rejections name it)."""
    dest = AttioDestination(fresh.url, {"api_key": TOKEN})
    spec = SyncSpec("s", "people", "upsert", "email_addresses", ["job_title", "phone_numbers"])
    pre = run_preflight(dest, spec)
    rows = [{"key": "a@example.com", "job_title": "x", "phone_numbers": ["0612345678"]},
            {"key": "b@example.com", "job_title": "y", "phone_numbers": ["+33612345678", "not a phone"]},
            {"key": "c@example.com", "job_title": "z", "phone_numbers": ["+33612345678"]}]
    frame = mapped(rows, "email_addresses", ["job_title", "phone_numbers"], pre.kinds, "email")
    prepared = dest.prepare(frame, spec)
    assert [r.keys for r in prepared.requests] == [["c@example.com"]]
    assert {r.key: r.field for r in prepared.rejections} == {"a@example.com": "phone_numbers",
                                                              "b@example.com": "phone_numbers"}


def test_attribute_pages_are_read_until_one_adds_nothing(fresh):
    """The spec gives the attribute listing's `limit` no maximum: a server holding pages to fewer
    attributes than asked (7 of 100 here) ended the read at its first page, which hid the other
    attributes (a mapping of one of them was a configuration error). A server ignoring `offset`
    (the same page again) ends the read too, instead of looping."""
    import dataclasses
    import re

    dest = destination(fresh)

    class Rewritten:
        def __init__(self, transport, rewrite):
            self.transport, self.rewrite, self.paths = transport, rewrite, []

        async def deliver(self, request):
            request = dataclasses.replace(request, path=self.rewrite(request.path))
            self.paths.append(request.path)
            return await self.transport.deliver(request)

    async def read(transport, rewrite):
        wrapped = Rewritten(transport, rewrite)
        return await dest.read_schema(wrapped, "people"), wrapped.paths

    whole, _ = asyncio.run(_with_transport(dest, lambda t: read(t, lambda p: p)))
    assert len(whole.attributes) > 14 and "old_field" in {a.slug for a in whole.attributes}
    capped, paths = asyncio.run(_with_transport(dest, lambda t: read(t, lambda p: p.replace("limit=100", "limit=7"))))
    assert [a.slug for a in capped.attributes] == [a.slug for a in whole.attributes]
    assert len(paths) == -(-len(whole.attributes) // 7) + 1  # and an empty one
    same, paths = asyncio.run(_with_transport(dest, lambda t: read(t, lambda p: re.sub(r"offset=\d+", "offset=0", p))))
    assert [a.slug for a in same.attributes] == [a.slug for a in whole.attributes] and len(paths) == 2


def test_a_person_whose_company_does_not_exist_yet_is_not_found_then_delivered(fresh):
    """A write whose referenced record does not exist (Attio's `value_not_found`) has nothing in the
    row's values to fix: it was parked until they changed, so people written before their company
    (`serve --parallel`, syncs selected apart) stayed unlinked for good. It is now `not_found`, sent
    again by the next run, which delivers it once the company exists."""
    dest = destination(fresh)
    spec = SyncSpec("s", "people", "upsert", "email_addresses", ["job_title", "company"])
    pre = run_preflight(dest, spec)
    assert pre.issues == []
    frame = mapped([{"key": "ada@example.com", "job_title": "CTO", "company": "newco.example"}],
                   "email_addresses", ["job_title", "company"], pre.kinds, "email")
    first = deliver_all(dest, dest.prepare(frame, spec).requests)[0]
    assert [(p.key, p.status, p.field) for p in first.problems] == [("ada@example.com", "not_found", "company")]
    assert "sent again by the next run" in first.problems[0].reason
    company = Request("write", "PUT", "/v2/objects/companies/records?matching_attribute=domains",
                      b'{"data":{"values":{"domains":["newco.example"]}}}', keys=["newco"], context=_Write(False))
    assert deliver_all(dest, [company])[0].ok == ["newco"]
    again = deliver_all(dest, dest.prepare(frame, spec).requests)[0]
    assert (again.ok, again.problems) == (["ada@example.com"], [])


def test_an_unknown_select_option_stays_a_rejection_beside_a_reference():
    """value_not_found naming another attribute (an unknown select option) is the row's content:
    rejected and parked, as before, even when the write also references a record."""
    d = _dest()
    body = orjson.dumps({"data": {"values": {"email_addresses": ["a@example.com"], "plan": ["platinum"],
                                             "company": [{"target_object": "companies", "domains": ["b.com"]}]}}})
    write = Request("write", "PUT", "/v2/objects/people/records?matching_attribute=email_addresses", body,
                    keys=["k1"], context=_Write(False, frozenset({"company"})))
    option = d.parse(write, 400, {}, _body(400, "value_not_found", 'Cannot find select attribute with select '
                                           'option title "platinum".')).results[0]
    missing = d.parse(write, 400, {}, _body(400, "value_not_found", "No companies record was found with domains "
                                            'matching the value provided for attribute with slug "company".')).results[0]
    by_id = d.parse(write, 400, {}, _body(400, "value_not_found", 'Record with ID "x" not found in companies.')).results[0]
    assert [(r.status, r.field) for r in (option, missing, by_id)] == [
        ("rejected", "plan"), ("not_found", "company"), ("not_found", "company")]


@pytest.mark.parametrize("junk", [{"data": [{"id": "x", "api_slug": "name"}]},
                                  {"data": [{"id": {"attribute_id": "a1"}, "api_slug": "email_addresses",
                                             "config": {"record_reference": "x"}}]},  # (read, without targets)
                                  {"data": [None, 1, "x"]}])
def test_a_schema_read_answered_with_items_of_another_shape_is_read_again(junk):
    """Attributes that are no attribute objects (`id` a string, a `record_reference` that is no object,
    items that are no objects), from a gateway or a cache between dinsync and Attio: the run failed as
    an unexpected error ("AttributeError: 'str' object has no attribute 'get'"), or took the workspace
    for one without attributes (a configuration error, exit 3). Such a page is read again."""
    from dinsync.sender import HttpSender, RetryPolicy
    from tests.sender.test_http_sender import Server

    good = {"data": [{"id": {"attribute_id": "a1"}, "api_slug": "email_addresses", "type": "email-address",
                      "is_unique": True, "is_multiselect": True}]}
    answers = [junk, good, {"data": []}]

    async def handler(request, hit):
        from aiohttp import web
        return web.json_response(answers.pop(0))

    async def main():
        async with Server(handler) as srv:
            d = AttioDestination(srv.url, {"api_key": "k"})
            async with HttpSender(d, retry_policy=RetryPolicy(base=0.01, cap=0.02)) as sender:
                return await d.read_schema(sender, "people")

    schema = asyncio.run(main())
    assert [a.slug for a in schema.attributes] == ["email_addresses"]


def test_a_401_or_403_that_is_not_attios_answer_is_quoted_in_the_error():
    """A proxy's or a WAF's 403 page stopped the run as "Attio refused the request (Attio HTTP 403)",
    quoting nothing of it (the token was blamed for a page Attio never sent): the page is quoted."""
    d = _dest()
    write = Request("write", "PUT", "/v2/objects/people/records?matching_attribute=email_addresses", b"{}",
                    keys=["k1"], context=_Write(False))
    page = b"<html><head><title>Access Denied by Corporate Policy</title></head><body>blocked</body></html>"
    out = d.parse(write, 403, {}, page)
    assert out.kind == "fatal" and "Access Denied by Corporate Policy (HTML page)" in out.reason, out.reason


def test_a_records_query_answered_with_records_of_another_shape_is_sent_again():
    """A 200 to a records query whose records are no Attio records (`id` a string, a record that is
    no object, `values` that is no object), from a gateway or a cache between dinsync and Attio:
    reading it raised, and every key of the query failed at once ("unreadable response (HTTP 200):
    AttributeError: 'str' object has no attribute 'get'"). It is sent again, as a page is (a read)."""
    d = _dest()
    key = AttributeInfo("domains", "a", "domain", is_unique=True, is_multiselect=True)
    req = d._lookup("companies", key, ["k-acme"], [b'{"domains":"acme.com"}'], ["acme.com"])
    for records in ([{"id": "rec-1", "values": {}}], [None], ["rec-1"], [{"id": {"record_id": "r"}, "values": []}]):
        outcome = d.parse(req, 200, {}, orjson.dumps({"data": records}))
        assert outcome.kind == "retry", records
        assert "not Attio's answer to a records query" in outcome.reason
