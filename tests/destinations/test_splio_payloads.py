"""Splio payloads from mapped rows: value texts, CSV files (read back with Splio's sandbox parser,
an independent implementation of the documented file rules) and API bodies (validated against
Splio's Swagger excerpt)."""
from __future__ import annotations

import csv
import datetime as dt
import io

import orjson
import polars as pl
import pytest

from dinsync.destinations.base import SyncSpec
from dinsync.destinations.splio import SplioDestination
from dinsync.destinations.splio.api import PATCH, BulkContext
from dinsync.destinations.splio.values import csv_header
from dinsync.mapping import FieldMapping, KeyMapping, map_batch
from dinsync.sandbox.splio.contacts import CustomField
from dinsync.sandbox.splio.importer import ImportRules, parse_contacts_file
from tests.spec_validation import validate_splio_request

SFTP = {"transport": "sftp", "universe": "acme",
        "sftp": {"host": "sftp.example.com", "username": "acme", "password": "pw-123456"}}
API = {"transport": "api"}
FIELDS = ["firstname", "cellphone", "plan", "signup", "ltv", "visits"]
CUSTOM = [False, False, True, True, True, True]
KINDS = {"firstname": "string", "cellphone": "phone", "plan": "auto", "signup": "auto", "ltv": "auto",
         "visits": "auto"}


def destination(options: dict, api_key: str | None = None) -> SplioDestination:
    creds = {"api_key": api_key} if api_key else {}
    return SplioDestination("http://127.0.0.1:1", creds, options)


def spec(mode: str = "insert") -> SyncSpec:
    return SyncSpec(name="people", service="contacts", mode=mode, key_field="email", fields=list(FIELDS),
                    custom=list(CUSTOM), kinds=dict(KINDS))


def mapped(rows: list[dict], sent: list[list[bool]] | None = None) -> pl.DataFrame:
    """Plan rows -> mapped frame (as the engine hands it to prepare)."""
    data: dict[str, list] = {"_key": [r["email"] for r in rows], "_op": [r.get("_op", "added") for r in rows]}
    for i, name in enumerate(FIELDS):
        data[f"v{i}"] = [r.get(name) for r in rows]
        data[f"x{i}"] = [True if sent is None else sent[n][i] for n in range(len(rows))]
    frame = pl.DataFrame(data, schema_overrides={"v3": pl.Datetime("us"), "v4": pl.Float64, "v5": pl.Int64},
                         strict=False)
    out = map_batch(frame, KeyMapping("email", "email", 100),
                    [FieldMapping(i, f, KINDS[f]) for i, f in enumerate(FIELDS)], keep_field_text=True)
    assert out.rejections.height == 0, out.rejections.to_dicts()
    return out.frame


ROW = {"email": "ann@example.com", "firstname": "Ann", "cellphone": "+33612345678", "plan": "pro",
       "signup": dt.datetime(2024, 1, 31, 10, 5, 7, 123456), "ltv": 12.5, "visits": 3}


# --- CSV files ---------------------------------------------------------------------------------
def read_back(header: tuple[str, ...], lines: bytes, separator: str = ";") -> list[dict]:
    """Parse a file the way the sandbox's Splio importer does; returns the parsed rows."""
    fields = [CustomField(3, "plan", "text"), CustomField(7, "signup", "date"), CustomField(5, "ltv", "double"),
              CustomField(4, "visits", "int")]
    rules = ImportRules(separator, 200_000, False, True, {f.name: f for f in fields})
    parsed = parse_contacts_file(csv_header(header, separator) + lines, rules)
    assert all(r.code == "" for r in parsed.rows), [(r.code, r.message) for r in parsed.rows]
    return [{"email": r.key, **r.values, **{f.name: r.custom[f.id] for f in fields if f.id in r.custom}}
            for r in parsed.rows]


def test_csv_file_values_as_splio_stores_them():
    prepared = destination(SFTP).prepare(mapped([ROW]), spec())
    [request] = prepared.requests
    assert request.keys == ["ann@example.com"] and request.context.ids == ["ann@example.com"]
    assert request.context.header == ("email", "firstname", "cellphone", "plan", "signup", "ltv", "visits")
    assert request.body == b"ann@example.com;Ann;0033612345678;pro;2024-01-31 10:05:07;12.5;3\n"
    assert read_back(request.context.header, request.body) == [
        {"email": "ann@example.com", "firstname": "Ann", "cellphone": "0033612345678", "plan": "pro",
         "signup": "2024-01-31 10:05:07", "ltv": "12.50", "visits": "3"}]


def test_cellphone_in_e164_and_timezone_conversion():
    d = destination({**SFTP, "cellphone_format": "e164", "timezone": "Europe/Paris"})
    row = dict(ROW, signup=dt.datetime(2024, 7, 1, 10, 0, tzinfo=dt.timezone.utc))
    frame = pl.DataFrame({"_key": ["ann@example.com"], "_op": ["added"], "v0": ["+33612345678"], "x0": [True],
                          "v1": [row["signup"]], "x1": [True]})
    s = SyncSpec("people", "contacts", "insert", "email", ["cellphone", "signup"], [False, True],
                 {"cellphone": "phone", "signup": "auto"})
    out = map_batch(frame, KeyMapping("email", "email"), [FieldMapping(0, "cellphone", "phone"),
                                                           FieldMapping(1, "signup", "auto")], keep_field_text=True)
    [request] = d.prepare(out.frame, s).requests
    assert request.body == b"ann@example.com;+33612345678;2024-07-01 12:00:00\n"  # UTC 10:00 is 12:00 in Paris


@pytest.mark.parametrize("options", [SFTP, API])
@pytest.mark.parametrize("zone,instant,beyond", [
    ("Asia/Tokyo", dt.datetime(9999, 12, 31, 23, 0), True),  # 10000-01-01 08:00 in Tokyo
    ("America/New_York", dt.datetime(1, 1, 1, 0, 0), True),  # year 0 in New York
    ("Asia/Tokyo", dt.datetime(9999, 12, 31, 14, 0), False),  # 9999-12-31 23:00 there: still a date
])
def test_a_datetime_the_universes_zone_moves_beyond_the_calendar_rejects_its_row(options, zone, instant, beyond):
    # converted, it was written as "+10000-01-01 08:00:00" or "0000-12-31 19:03:58", no date Splio reads
    d = destination({**options, "timezone": zone}, api_key="k-123456" if options is API else None)
    d.custom_ids = {"signup": 7}
    frame = pl.DataFrame({"_key": ["far@example.com", "ann@example.com"], "_op": ["added"] * 2,
                          "v0": [instant.replace(tzinfo=dt.timezone.utc), dt.datetime(2024, 7, 1, tzinfo=dt.timezone.utc)],
                          "x0": [True, True]})
    s = SyncSpec("people", "contacts", "insert", "email", ["signup"], [True], {"signup": "auto"})
    out = map_batch(frame, KeyMapping("email", "email"), [FieldMapping(0, "signup", "auto")], keep_field_text=True)
    prepared = d.prepare(out.frame, s)
    sent = [k for r in prepared.requests for k in r.keys]
    if beyond:
        [rejection] = prepared.rejections
        assert (rejection.key, rejection.field) == ("far@example.com", "signup")
        assert f"outside the years 1 to 9999 in {zone}" in rejection.reason
        assert sent == ["ann@example.com"]
    else:
        assert prepared.rejections == [] and sent == ["far@example.com", "ann@example.com"]
        assert b"9999-12-31 23:00:00" in prepared.requests[0].body


def test_a_date_column_in_an_untyped_custom_field_is_written_as_a_splio_date():
    # A model DATE mapped to a custom field without `type:` went out as `2024-01-31`; Splio's date
    # fields take "YYYY-MM-DD HH:MM:SS" only ("must be of type date"), so every such row was parked.
    frame = pl.DataFrame({"_key": ["ann@example.com"], "_op": ["added"], "v0": [dt.date(2024, 1, 31)], "x0": [True]})
    s = SyncSpec("people", "contacts", "insert", "email", ["signup"], [True], {"signup": "auto"})
    out = map_batch(frame, KeyMapping("email", "email"), [FieldMapping(0, "signup", "auto")], keep_field_text=True)
    [request] = destination(SFTP).prepare(out.frame, s).requests
    assert request.body == b"ann@example.com;2024-01-31 00:00:00\n"
    assert read_back(request.context.header, request.body)[0]["signup"] == "2024-01-31 00:00:00"
    [bulk] = api_destination().prepare(out.frame, s).requests
    assert orjson.loads(bulk.body)["contacts"][0]["custom_fields"] == [{"id": 7, "value": "2024-01-31 00:00:00"}]


def test_hostile_values_survive_the_csv_round_trip():
    values = ['semi;colon', 'quote "inside" and ""double""', "emoji 😀 é 中文", "x" * 1_000_000, "", None,
              "  spaced  ", "trailing;", '"', "tab\there", "back\\slash"]
    rows = [dict(ROW, email=f"u{i}@example.com", plan=v) for i, v in enumerate(values)]
    prepared = destination(SFTP).prepare(mapped(rows), spec())
    assert not prepared.rejections
    got = {}
    for request in prepared.requests:
        for r in read_back(request.context.header, request.body):
            got[r["email"]] = r["plan"]
    assert got == {f"u{i}@example.com": ("" if v is None else v) for i, v in enumerate(values)}
    # and the file is a valid RFC 4180 CSV for any other reader
    limit = csv.field_size_limit(2_000_000)
    try:
        for request in prepared.requests:
            text = (csv_header(request.context.header, ";") + request.body).decode()
            assert len(list(csv.reader(io.StringIO(text), delimiter=";", strict=True))) == len(request.keys) + 1
    finally:
        csv.field_size_limit(limit)



def test_numbers_are_written_digit_for_digit_never_in_exponent_form():
    # Polars' JSON text writes 1.5e-7 and -3e-9: Splio's double field refused them as "must be of
    # type double" (the row was parked although its value is a double). Strings are left as they are.
    ltvs = [1.5e-7, -3e-9, -2.5e-5, 12.5]
    rows = [dict(ROW, email=f"u{i}@example.com", ltv=v, plan="1e5") for i, v in enumerate(ltvs)]
    [request] = destination(SFTP).prepare(mapped(rows), spec()).requests
    got = {r["email"]: (r["ltv"], r["plan"]) for r in read_back(request.context.header, request.body)}
    assert got == {"u0@example.com": ("0.00", "1e5"), "u1@example.com": ("-0.00", "1e5"),
                   "u2@example.com": ("-0.00", "1e5"), "u3@example.com": ("12.50", "1e5")}
    assert b"0.00000015;" in request.body and b"e-" not in request.body and b"e+" not in request.body
    [bulk] = api_destination().prepare(mapped(rows), spec("insert")).requests
    values = [{f["id"]: f["value"] for f in c["custom_fields"]} for c in orjson.loads(bulk.body)["contacts"]]
    assert [(v[5], v[3]) for v in values] == [("0.00000015", "1e5"), ("-0.000000003", "1e5"),
                                             ("-0.000025", "1e5"), ("12.5", "1e5")]

@pytest.mark.parametrize("text", ["two\nlines", "carriage\rreturn", "crlf\r\n", "line\u2028separator",
                                  "paragraph\u2029separator", "next\x85line", "vertical\x0btab", "form\x0cfeed",
                                  "record\x1eseparator"])
def test_a_line_break_rejects_the_row_with_a_reason(text):
    """Unicode's line ends too: a reader splitting lines as Python's str.splitlines does (or as
    Unicode says) would see a multi-line value."""
    rows = [dict(ROW, email="ok@example.com"), dict(ROW, email="bad@example.com", plan=text)]
    prepared = destination(SFTP).prepare(mapped(rows), spec())
    [rejection] = prepared.rejections
    assert rejection.key == "bad@example.com" and rejection.field == "plan"
    assert "line break" in rejection.reason and "multi-line" in rejection.reason
    assert f"U+{ord(next(c for c in text if len(f'{c}x'.splitlines()) > 1)):04X}" in rejection.reason
    assert [k for r in prepared.requests for k in r.keys] == ["ok@example.com"]
    assert len(b"".join(r.body for r in prepared.requests).decode().splitlines()) == 1  # the good row


def test_a_nul_character_rejects_the_row_from_files_only():
    """Written raw into the CSV, a NUL ends the value for C-string readers; JSON escapes it, so the
    API sends the row as it is."""
    rows = [dict(ROW, email="ok@example.com"), dict(ROW, email="bad@example.com", plan="a\x00b")]
    prepared = destination(SFTP).prepare(mapped(rows), spec())
    [rejection] = prepared.rejections
    assert (rejection.key, rejection.field) == ("bad@example.com", "plan")
    assert rejection.reason.startswith('field "plan": the value contains a NUL character')
    assert [k for r in prepared.requests for k in r.keys] == ["ok@example.com"]
    assert b"\x00" not in b"".join(r.body for r in prepared.requests)
    api = api_destination().prepare(mapped(rows), spec("insert"))
    assert not api.rejections and b"a\\u0000b" in b"".join(r.body for r in api.requests)


def test_changed_rows_are_grouped_by_the_fields_they_send():
    rows = [dict(ROW, email=f"u{i}@example.com", _op="changed") for i in range(4)]
    only_plan = [False, False, True, False, False, False]
    only_name = [True, False, False, False, False, False]
    prepared = destination(SFTP).prepare(mapped(rows, [only_plan, only_name, only_plan, only_name]), spec())
    layouts = {r.context.header: r.keys for r in prepared.requests}
    assert layouts == {("email", "plan"): ["u0@example.com", "u2@example.com"],
                       ("email", "firstname"): ["u1@example.com", "u3@example.com"]}
    [plan_request] = [r for r in prepared.requests if r.context.header == ("email", "plan")]
    assert plan_request.body == b"u0@example.com;pro\nu2@example.com;pro\n"


def test_null_values_clear_the_field():
    prepared = destination(SFTP).prepare(mapped([dict(ROW, firstname=None, ltv=None)]), spec())
    assert prepared.requests[0].body == b"ann@example.com;;0033612345678;pro;2024-01-31 10:05:07;;3\n"


def test_rows_per_request_are_capped():
    d = destination({**SFTP, "sftp": {**SFTP["sftp"], "max_rows_per_file": 3}})
    rows = [dict(ROW, email=f"u{i}@example.com") for i in range(8)]
    sizes = [len(r.keys) for r in d.prepare(mapped(rows), spec()).requests]
    assert sizes == [3, 3, 2]


def test_a_file_request_fits_max_file_bytes_as_written_quotes_doubled_and_header_included():
    # a value of quotes is written twice its size ("" per "), and a file starts with its header: both
    # were left out of the estimate: a file of 1,364 bytes under max_file_bytes 1,024 (7,558 of 4,096 in a run)
    d = destination({**SFTP, "sftp": {**SFTP["sftp"], "max_file_bytes": 1024}})
    rows = [dict(ROW, email=f"u{i}@example.com", firstname='"' * 100) for i in range(10)]
    requests = d.prepare(mapped(rows), spec()).requests
    assert sum(len(r.keys) for r in requests) == 10
    sizes = [len(csv_header(r.context.header, ";")) + len(r.body) for r in requests]
    assert max(sizes) <= 1024, sizes
    assert read_back(requests[0].context.header, requests[0].body)[0]["firstname"] == '"' * 100


@pytest.mark.parametrize("email,path", [
    ("a+tag@example.com", "/data/contacts/a%2Btag@example.com"),  # "+" is not read as a space
    ("o'neil/x?y#z%@example.com", "/data/contacts/o%27neil%2Fx%3Fy%23z%25@example.com"),
    ("josé@exämple.com", "/data/contacts/jos%C3%A9@ex%C3%A4mple.com"),
])
def test_a_patch_path_escapes_the_email_whole(email, path):
    rows = [dict(ROW, email=email, _op="changed")]
    prepared = api_destination().prepare(mapped(rows, [[False, False, True, False, False, False]]), spec("insert"))
    patch, = prepared.requests
    assert (patch.method, patch.path, patch.keys) == ("PATCH", path, [email])


# --- API bodies -----------------------------------------------------------------------------------
def api_destination() -> SplioDestination:
    d = destination(API, api_key="k-123456")
    d.custom_ids.update({"plan": 3, "signup": 7, "ltv": 5, "visits": 4})
    return d


def test_insert_mode_bulk_creates_added_rows_and_patches_changed_ones():
    rows = [dict(ROW, email=f"u{i}@example.com") for i in range(3)] + [dict(ROW, email="c@example.com",
                                                                            _op="changed")]
    sent = [[True] * 6] * 3 + [[False, False, True, False, False, False]]
    prepared = api_destination().prepare(mapped(rows, sent), spec("insert"))
    patch, bulk = prepared.requests
    assert (patch.method, patch.path, patch.keys) == ("PATCH", "/data/contacts/c@example.com", ["c@example.com"])
    assert orjson.loads(patch.body) == {"custom_fields": [{"id": 3, "value": "pro"}]}
    assert patch.context is PATCH
    assert (bulk.method, bulk.path) == ("POST", "/data/contacts/bulk")
    body = orjson.loads(bulk.body)
    assert body["contacts"][0] == {
        "email": "u0@example.com", "firstname": "Ann", "cellphone": "+33612345678",
        "custom_fields": [{"id": 3, "value": "pro"}, {"id": 7, "value": "2024-01-31 10:05:07"},
                          {"id": 5, "value": "12.5"}, {"id": 4, "value": "3"}]}
    assert isinstance(bulk.context, BulkContext) and set(bulk.context.fields) == set(bulk.keys)
    for request in prepared.requests:
        validate_splio_request(request.method, request.path, request.body)


def test_cellphone_format_follows_the_transport_unless_set():
    """The contacts API's own request example writes `"cellphone": "+331122334455"` (E.164); only
    the file imports document (and Splio displays) the `0033...` form. The API wrote `0033...`, a
    form its reference never shows; each transport now writes its documented form, and
    `cellphone_format` still chooses either for both."""
    def body_of(d: SplioDestination) -> dict:
        bulk = d.prepare(mapped([dict(ROW, email="u0@example.com")]), spec("insert")).requests[-1]
        return orjson.loads(bulk.body)["contacts"][0]

    d = destination(API, api_key="k")
    d.custom_ids.update({"plan": 3, "signup": 7, "ltv": 5, "visits": 4})
    assert body_of(d)["cellphone"] == "+33612345678"
    forced = destination({**API, "cellphone_format": "00"}, api_key="k")
    forced.custom_ids.update(d.custom_ids)
    assert body_of(forced)["cellphone"] == "0033612345678"
    [request] = destination(SFTP).prepare(mapped([ROW]), spec()).requests
    assert b";0033612345678;" in request.body


def test_update_mode_patches_every_row():
    rows = [dict(ROW, email=f"u{i}@example.com") for i in range(3)]
    prepared = api_destination().prepare(mapped(rows), spec("update"))
    assert [r.method for r in prepared.requests] == ["PATCH"] * 3
    assert all("email" not in orjson.loads(r.body) for r in prepared.requests)


def test_bulk_requests_hold_at_most_1000_contacts_and_split_in_halves():
    rows = [dict(ROW, email=f"u{i}@example.com") for i in range(2500)]
    requests = api_destination().prepare(mapped(rows), spec("insert")).requests
    assert [len(r.keys) for r in requests] == [1000, 1000, 500]
    first, second = requests[0].split()
    assert len(first.keys) == 500 and orjson.loads(first.body)["contacts"][0]["email"] == "u0@example.com"
    assert orjson.loads(second.body)["contacts"][0]["email"] == "u500@example.com"
    assert first.context is requests[0].context  # the PATCH fallback data stays reachable


def test_hostile_values_are_valid_json_strings():
    values = ["line\nbreak", 'quote"', "emoji 😀", "\\", "x" * 1_000_000, None]
    rows = [dict(ROW, email=f"u{i}@example.com", plan=v) for i, v in enumerate(values)]
    [bulk] = api_destination().prepare(mapped(rows), spec("insert")).requests
    validate_splio_request("POST", bulk.path, bulk.body)
    plans = [c["custom_fields"][0]["value"] if c["custom_fields"][0]["id"] == 3 else None
             for c in orjson.loads(bulk.body)["contacts"]]
    assert plans == values


def test_a_bulk_create_leaves_empty_values_out_and_its_patch_fallback_clears_them():
    """A new contact has nothing to clear: an empty language, cellphone or int / date custom field
    in a bulk create is at best useless and at worst refused by Splio ("must be of type int"),
    which refuses the whole batch and parks the contact. The PATCH of a contact that already
    exists still sends them, to clear what Splio holds."""
    rows = [dict(ROW, email="n@example.com", firstname=None, cellphone=None, plan=None, visits=None, signup=None)]
    [bulk] = api_destination().prepare(mapped(rows), spec("insert")).requests
    validate_splio_request("POST", bulk.path, bulk.body)
    [contact] = orjson.loads(bulk.body)["contacts"]
    assert contact == {"email": "n@example.com", "custom_fields": [{"id": 5, "value": "12.5"}]}
    email, fields = bulk.context.fields["n@example.com"]
    fallback = orjson.loads(api_destination().patch_request("n@example.com", email, fields).body)
    assert fallback == {"firstname": "", "cellphone": "", "custom_fields": [
        {"id": 3, "value": ""}, {"id": 7, "value": ""}, {"id": 5, "value": "12.5"}, {"id": 4, "value": ""}]}


def test_api_prepare_refuses_to_guess_custom_field_ids():
    with pytest.raises(Exception, match="pre-flight"):
        destination(API, api_key="k-123456").prepare(mapped([ROW]), spec())


def test_wide_numbers_keep_every_digit():
    """The JSON text of each value was decoded by Polars' json_path_match, which reads numbers as
    64-bit floats: a DECIMAL(38,10) 1234567890123456789012345678.1234567890 became
    1.2345678901234567e+27, then "1234567890123456700000000000"; a HUGEINT or UBIGINT beyond 2^63
    lost its last digits the same way. Numbers are written from their own digits."""
    from dinsync.destinations.splio.values import Column, with_splio_text

    texts = ["1234567890123456789012345678.1234567890", "170141183460469231731687303715884105727",
             "18446744073709551615", "1.50", "1.5e-7", '"1.5e-7"', "true", "null", '"x"', "[1.50,2]"]
    frame = pl.DataFrame({"_t0": texts})
    out = with_splio_text(frame, [Column(0, "plan", True, "auto")])["_c0"].to_list()
    assert out == ["1234567890123456789012345678.1234567890", "170141183460469231731687303715884105727",
                   "18446744073709551615", "1.50", "0.00000015", "1.5e-7", "true", "", "x", "[1.50,2]"]


def test_the_language_is_sent_in_lowercase():
    """Splio documents its languages as 2-letter lowercase codes (en, fr, ...) and refuses others: a
    model's `FR` or ` De ` was sent as written, refused, and its row parked until it changed. A
    custom field named language is left as it is."""
    from dinsync.destinations.splio.values import Column, with_splio_text

    frame = pl.DataFrame({"_t0": ['"FR"', '" De "', '"en"', "null", None], "_t1": ['"FR"'] * 5})
    out = with_splio_text(frame, [Column(0, "language", False, "string"), Column(1, "language", True, "string")])
    assert out["_c0"].to_list() == ["fr", "de", "en", "", None] and out["_c1"].to_list() == ["FR"] * 5


@pytest.mark.parametrize("options", [SFTP, API], ids=["sftp", "api"])
def test_a_name_over_splios_length_limit_rejects_its_row_before_sending(options):
    """Splio documents firstname and lastname at most 255 characters: a longer one was found by
    Splio's answer only, a 400 that refuses the whole bulk (bisected down to the row) or a failed
    line of an import. Counted in characters: 255 emoji fit."""
    rows = [dict(ROW, email="ok@example.com", firstname="\U0001F600" * 255),
            dict(ROW, email="long@example.com", firstname="A" * 256)]
    d = api_destination() if options is API else destination(options)
    prepared = d.prepare(mapped(rows), spec())
    [rejection] = prepared.rejections
    assert (rejection.key, rejection.field) == ("long@example.com", "firstname")
    assert rejection.reason == 'field "firstname": 256 characters, over the 255 Splio accepts (shorten it in the model)'
    assert [k for r in prepared.requests for k in r.keys] == ["ok@example.com"]
