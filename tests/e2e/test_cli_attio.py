"""End to end through the CLI: DuckDB model -> plan -> Attio sandbox over loopback -> snapshot, for
"Synchronize People" and "Synchronize Companies". Every request the client sends is validated against
Attio's OpenAPI file (fixture `attio_requests`)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import orjson
import pytest
from typer.testing import CliRunner

from dinsync.config import load_project
from dinsync.engine import preflight_sync
from dinsync.errors import ExitCode
from dinsync.sandbox import AttioSandbox, SandboxThread
from dinsync.sandbox.faults import error, reset, reset_after_apply, respond, throttle

from tests.sandbox.attio_helpers import ASSERT_PERSON, Client

from .attio_project import CUSTOM_ATTRIBUTES, AttioProject

TOKEN = "attio-e2e-token-51c7a2f0"
WEAK = "weak-token-9e8d7c6b"  # a token without object_configuration:read
COMPANY_FIELDS = ("name: name", "employees: employees", "tier: tier")


@pytest.fixture
def attio(tmp_path, monkeypatch, attio_requests):
    sandbox = AttioSandbox([TOKEN], custom_attributes=CUSTOM_ATTRIBUTES, limits=False,
                           token_scopes={WEAK: ("record_permission:read-write",)})
    thread = SandboxThread(sandbox)
    thread.start()
    monkeypatch.setenv("ATTIO_TEST_TOKEN", TOKEN)
    monkeypatch.setenv("DINSYNC_CHECKPOINT_SECONDS", "0")
    p = AttioProject(tmp_path / "proj", thread.url, CliRunner())
    p.root.mkdir()
    p.sandbox, p.thread, p.requests = sandbox, thread, attio_requests
    p.write_config()
    p.write_sync()
    p.seed_people(20)
    p.seed_companies(6)
    yield p
    thread.stop()


def person(p, email: str) -> dict | None:
    return p.thread.call(lambda: (lambda r: None if r is None else p.sandbox.plain(r))(p.sandbox.find_person(email)))


def company(p, domain: str) -> dict | None:
    return p.thread.call(lambda: (lambda r: None if r is None else p.sandbox.plain(r))(p.sandbox.find_company(domain)))


def sent_values(p, method: str = "PUT", path_part: str = "matching_attribute") -> list[dict]:
    return [orjson.loads(b)["data"]["values"] for m, path, b in p.requests.requests
            if m == method and path_part in path and b]


def count(p, obj: str = "people") -> int:
    return p.thread.call(p.sandbox.count, obj)


# ------------------------------------------------------------------ upsert
def test_people_upsert_then_only_changes_then_rows_leaving(attio):
    p = attio
    first = p.run()
    assert (first["status"], first["added"], first["acknowledged"], first["exit_code"]) == ("success", 20, 20, 0)
    assert count(p) == 20
    assert person(p, "user7@example.com").items() >= {"job_title": "Name 7", "plan": "free", "lifetime_value": 10.5,
                                                      "email_addresses": ["user7@example.com"]}.items()
    assert len(p.snapshot_keys()) == 20

    p.requests.clear()
    second = p.run()
    assert (second["added"], second["changed"], second["sent"], second["requests"]) == (0, 0, 0, 0)
    assert p.requests.requests == []  # nothing to send: not even the pre-flight check

    p.sql("update main.people set plan = 'team' where id in (1, 2)")
    p.sql("update main.people set first_name = 'Renamed' where id = 3")
    p.sql("delete from main.people where id in (19, 20)")
    p.requests.clear()
    third = p.run()
    assert (third["added"], third["changed"], third["removed"], third["acknowledged"]) == (0, 3, 2, 3)
    by_email = {v["email_addresses"][0]: v for v in sent_values(p)}
    assert by_email == {"user1@example.com": {"email_addresses": ["user1@example.com"], "plan": ["team"]},
                        "user2@example.com": {"email_addresses": ["user2@example.com"], "plan": ["team"]},
                        "user3@example.com": {"email_addresses": ["user3@example.com"], "job_title": ["Renamed"]}}
    assert person(p, "user1@example.com")["plan"] == "team" and person(p, "user3@example.com")["job_title"] == "Renamed"
    # rows that left the model stop being updated: out of the snapshot, still in Attio
    assert "user19@example.com" not in p.snapshot_keys() and count(p) == 20
    p.sql("insert into main.people values (19, 'user19@example.com', 'Back', 'pro', 1, 'c-19')")
    fourth = p.run()
    assert (fourth["added"], fourth["changed"], fourth["acknowledged"]) == (1, 0, 1)
    assert person(p, "user19@example.com")["job_title"] == "Back"


def test_companies_upsert_custom_model_changed_fields_only(attio):
    p = attio
    p.write_sync("attio_companies", model="companies", service="companies", match_column="domain",
                 match_field="domains", fields=COMPANY_FIELDS)
    run = p.run()
    assert (run["status"], run["acknowledged"]) == ("success", 6)
    assert company(p, "company3.com").items() >= {"domains": ["company3.com"], "name": "Company 3", "employees": 30,
                                                  "tier": "gold"}.items()
    p.sql("update main.companies set tier = 'bronze' where domain = 'company2.com'")
    p.sql("update main.companies set employees = NULL where domain = 'company4.com'")
    p.requests.clear()
    run = p.run()
    assert (run["changed"], run["acknowledged"]) == (2, 2)
    assert sorted(sent_values(p), key=lambda v: v["domains"]) == [
        {"domains": ["company2.com"], "tier": ["bronze"]}, {"domains": ["company4.com"], "employees": []}]
    assert company(p, "company2.com")["tier"] == "bronze" and company(p, "company4.com")["employees"] is None
    assert p.thread.stats()["created"] == {"companies": 6}


def test_people_sync_refuses_a_custom_model(attio):
    p = attio
    p.write_sync(model="companies", match_column="domain", fields=("name: job_title",))
    result = p.cli("sync")
    assert result.exit_code == ExitCode.CONFIG_ERROR
    assert "takes models of type user" in result.stdout


# ------------------------------------------------------------------ update mode
def test_people_update_mode_never_creates(attio):
    p = attio
    p.sql("create or replace table main.first_five as select * from main.people where id <= 5")
    (p.root / "models" / "first_five.sql").write_text("-- primary_key: id\n-- model_type: user\n"
                                                     "select * from main.first_five\n")
    p.write_sync("seed_five", model="first_five")
    assert p.run()["acknowledged"] == 5
    p.sql("update main.people set plan = 'team'")
    p.write_sync("attio_people", mode="update")
    p.requests.clear()
    run = p.run()
    assert (run["acknowledged"], run["not_found"], run["rejected"], run["failed"]) == (5, 15, 0, 0)
    assert count(p) == 5 and p.thread.stats()["created"] == {"people": 5}
    assert person(p, "user3@example.com")["plan"] == "team"
    queries = [orjson.loads(b) for m, path, b in p.requests.requests if path.endswith("/records/query")]
    assert len(queries) == 1 and len(queries[0]["filter"]["$or"]) == 20 and queries[0]["limit"] == 20
    writes = [(path, orjson.loads(b)["data"]["values"]) for m, path, b in p.requests.requests
              if m == "PUT" and "/records/" in path]
    assert len(writes) == 5 and all("email_addresses" not in v for _, v in writes)  # written by record id only
    assert not [r for r in p.requests.requests if "matching_attribute" in r[1]]  # never an assert
    assert {s for s, _ in p.rejections().values()} == {"not_found"}
    assert len(p.snapshot_keys("attio_people")) == 5
    p.sql("update main.people set first_name = 'Changed' where id = 2")
    p.requests.clear()
    again = p.run()
    assert (again["added"], again["changed"], again["acknowledged"], again["not_found"]) == (15, 1, 1, 15)
    assert count(p) == 5 and person(p, "user2@example.com")["job_title"] == "Changed"
    [(path, values)] = [(path, orjson.loads(b)["data"]["values"]) for m, path, b in p.requests.requests
                        if m == "PUT" and "/records/" in path]
    assert values == {"job_title": ["Changed"]}  # only the changed attribute


def test_companies_update_mode_by_domain(attio):
    p = attio
    p.write_sync("attio_companies", model="companies", service="companies", match_column="domain",
                 match_field="domains", fields=COMPANY_FIELDS)
    p.run()
    p.sql("insert into main.companies values ('https://New-Co.com/about', 'New', 1, 'gold')")
    p.sql("update main.companies set name = 'Renamed ' || domain")
    p.write_sync("attio_companies", model="companies", service="companies", mode="update", match_column="domain",
                 match_field="domains", fields=COMPANY_FIELDS)
    run = p.run()
    assert (run["acknowledged"], run["not_found"]) == (6, 1)
    assert count(p, "companies") == 6 and company(p, "company1.com")["name"] == "Renamed company1.com"
    assert company(p, "company1.com")["domains"] == ["company1.com"]


def test_update_mode_two_keys_of_one_person_are_withheld_not_written_over_each_other(attio):
    """A person holding two emails that are both keys of the model: both rows were written to that
    one record by id (the last write winning), both acknowledged."""
    p = attio
    assert p.run()["acknowledged"] == 20
    p.sql("insert into main.people values (21, 'alias1@example.com', 'Alias', 'team', 1, 'c-21')")
    # the person user1 also gets the address alias1 (the assert adds it to the matching attribute)
    added = Client(p.base_url, TOKEN).put(ASSERT_PERSON, {"data": {"values": {
        "email_addresses": ["user1@example.com", "alias1@example.com"], "job_title": ["Original"]}}})
    assert added.status == 200 and count(p) == 20
    p.write_sync("attio_people_update", mode="update")
    run = p.run()
    assert (run["acknowledged"], run["not_found"], run["failed"]) == (19, 0, 0), run
    withheld = p.rejections()
    assert {k: s for k, (s, _) in withheld.items()} == {"user1@example.com": "duplicate",
                                                        "alias1@example.com": "duplicate"}
    assert "resolves to the same Attio record as key 'alias1@example.com'" in withheld["user1@example.com"][1]
    assert person(p, "alias1@example.com")["job_title"] == "Original"  # neither row was written to it
    p.sql("delete from main.people where id = 21")
    again = p.run()  # withheld, not parked: sent once the model holds one key for that person
    assert (again["acknowledged"], again["rejected"]) == (1, 0), again
    assert person(p, "alias1@example.com")["job_title"] == "Name 1"


@pytest.mark.parametrize("status", [400, 404, 409])
def test_update_mode_lookup_answered_by_a_proxy_page_fails_the_rows(attio, status):
    """A proxy's or gateway's 4xx page (not Attio's JSON) answering a records query says nothing
    about the keys: they are failed and looked up again by the next run. Before, the query was split
    down to single keys and each was parked as rejected, never sent again until its row changed."""
    p = attio
    p.write_sync(mode="update")
    p.thread.script("query", respond(status, "<html><body>Not Found</body></html>",
                                     {"Content-Type": "text/html"}), times=100)
    run = p.run()
    assert (run["failed"], run["rejected"], run["parked"], run["not_found"]) == (20, 0, 0, 0), run
    assert {s for s, _ in p.rejections().values()} == {"failed"}
    p.thread.call(p.sandbox.faults.clear)
    again = p.run()
    assert (again["failed"], again["rejected"], again["parked"], again["not_found"]) == (0, 0, 0, 20), again


def test_update_mode_lookups_attio_refuses_are_looked_up_again_next_run(attio):
    """Attio answering every records query 400 filter_error (its own JSON): the queries were split
    down to single keys and each key parked as rejected, so once the API was healthy again the
    rows were never sent (they wait for their values to change). A refused lookup fails them."""
    p = attio
    assert p.run()["acknowledged"] == 20
    p.sql("update main.people set plan = 'team'")
    p.write_sync("attio_people_update", mode="update")
    refused = {"status_code": 400, "type": "invalid_request_error", "code": "filter_error",
               "message": "The filter could not be applied."}
    p.thread.script("query", respond(400, refused), times=100)
    run = p.run()
    assert (run["failed"], run["rejected"], run["parked"], run["acknowledged"]) == (20, 0, 0, 0), run
    assert {s for s, _ in p.rejections().values()} == {"failed"}
    assert all("filter_error" in reason for _, reason in p.rejections().values())
    p.thread.call(p.sandbox.faults.clear)
    again = p.run()
    assert (again["acknowledged"], again["failed"], again["rejected"], again["not_found"]) == (20, 0, 0, 0), again
    assert [person(p, f"user{i}@example.com")["plan"] for i in range(1, 21)] == ["team"] * 20


def test_lookup_batches_follow_lookup_batch_size(attio):
    p = attio
    p.write_config(extra="    rate_limits: {write: null, read: null}\n    lookup_batch_size: 7\n")
    p.write_sync(mode="update")
    run = p.run()
    assert run["not_found"] == 20
    sizes = [len(orjson.loads(b)["filter"]["$or"]) for m, path, b in p.requests.requests
             if path.endswith("/records/query")]
    assert sorted(sizes) == [6, 7, 7]


# ------------------------------------------------------------------ configuration errors
def test_unknown_read_only_attributes_and_non_unique_match_stop_before_sending(attio):
    p = attio
    p.write_sync(fields=("first_name: job_title", "ltv: lifetime_valeu", "plan: twitter_follower_count"))
    result = p.cli("sync")
    assert result.exit_code == ExitCode.CONFIG_ERROR
    issues = json.loads(result.stdout)["runs"][0]["issues"]
    located = {(i["file"], i["line"]): i for i in issues}
    assert ("syncs/attio_people.yml", 10) in located  # the line mapping lifetime_valeu
    unknown = located[("syncs/attio_people.yml", 10)]
    assert "lifetime_valeu" in unknown["message"] and "lifetime_value" in unknown["hint"]
    assert any("read-only" in i["message"] for i in issues)
    stats = p.thread.stats()
    assert stats["records"]["people"] == 0 and "assert" not in stats["requests_by_endpoint"]

    p.write_sync(match_column="customer_id", match_field="job_title", fields=("plan: plan",))
    result = p.cli("sync")
    [issue] = json.loads(result.stdout)["runs"][0]["issues"]
    assert issue["line"] == 7 and "not unique" in issue["message"] and "email_addresses" in issue["hint"]
    assert "assert" not in p.thread.stats()["requests_by_endpoint"]

    # attributes documented as never writable are refused when the project loads, offline
    p.write_sync(fields=("first_name: avatar_url",))
    [issue] = json.loads(p.cli("validate").stdout)["issues"]
    assert issue["line"] == 9 and "read-only" in issue["message"]


def test_preflight_serves_dinsync_validate(attio):
    p = attio
    p.write_sync(fields=("first_name: job_title", "ltv: lifetime_valeu"))
    project = load_project(p.root)
    [issue] = preflight_sync(project, "attio_people")
    assert (issue.file, issue.line) == ("syncs/attio_people.yml", 10) and "lifetime_value" in issue.hint
    p.write_sync()
    assert preflight_sync(load_project(p.root), "attio_people") == []


def test_matching_on_a_custom_unique_attribute(attio):
    p = attio
    p.write_sync(match_column="customer_id", match_field="customer_id", fields=("email: email_addresses",
                                                                                "plan: plan"))
    run = p.run()
    assert run["acknowledged"] == 20
    assert person(p, "user4@example.com")["customer_id"] == "c-4"
    p.sql("update main.people set email = 'moved4@example.com' where id = 4")
    assert p.run()["acknowledged"] == 1
    assert person(p, "moved4@example.com")["customer_id"] == "c-4" and count(p) == 20


# ------------------------------------------------------------------ per-row answers
def test_unknown_select_option_rejects_that_row_and_delivers_the_others(attio):
    p = attio
    p.sql("update main.people set plan = 'platinum' where id = 3")
    run = p.run()
    assert (run["acknowledged"], run["rejected"], run["status"]) == (19, 1, "success")
    [(key, (status, reason))] = p.rejections().items()
    assert key == "user3@example.com" and status == "rejected"
    assert 'Cannot find select attribute with select option title "platinum"' in reason
    assert person(p, "user3@example.com") is None and count(p) == 19
    p.sql("update main.people set plan = 'pro' where id = 3")
    fixed = p.run()
    assert fixed["acknowledged"] == 1 and person(p, "user3@example.com")["plan"] == "pro"


def test_bad_values_are_rejected_per_row_with_attios_message(attio):
    p = attio
    p.sql("alter table main.people add column score integer")
    p.sql("update main.people set score = case when id = 5 then 9 else 3 end")
    p.write_sync(fields=("plan: plan", "score: score"))
    run = p.run()
    assert (run["acknowledged"], run["rejected"]) == (19, 1)
    [(key, (_, reason))] = p.rejections().items()
    assert key == "user5@example.com" and "Attio HTTP 400 validation_type" in reason and "rating" in reason


def test_text_columns_are_coerced_by_the_attribute_types_attio_lists(attio):
    # The pre-flight check reads each attribute's type; the values are mapped by it (README: "The
    # attribute types also decide how values are coerced"), not sent as the model's text.
    p = attio
    p.sql("create or replace table main.people as select id, 'user' || id || '@example.com' as email, "
          "case when id % 2 = 0 then 'yes' else '0' end as vip, '4' as score, ' 42 ' as visits, "
          "'12.5' as ltv, '+1 (415) 555-2671' as phone from range(1, 5) t(id)")
    p.write_sync(fields=("vip: vip", "score: score", "visits: visits", "ltv: lifetime_value",
                         "phone: phone_numbers"))
    run = p.run()
    assert (run["acknowledged"], run["rejected"]) == (4, 0), p.rejections()
    [values, *_] = sent_values(p)
    assert (values["vip"], values["score"], values["visits"], values["lifetime_value"], values["phone_numbers"]) == (
        [False], [4], [42], [{"currency_value": 12.5}], ["+14155552671"])
    assert person(p, "user2@example.com").items() >= {"vip": True, "score": 4, "visits": 42, "lifetime_value": 12.5,
                                                      "phone_numbers": ["+14155552671"]}.items()


def test_numbers_a_64_bit_float_would_change_are_rejected_not_stored_changed(attio):
    """Attio keeps numbers (and currency amounts) as 64-bit floats: a BIGINT id of 19 digits sent to a
    number attribute was acknowledged and stored as 1234567890123456768, another number, without a word.
    At the limit (2^53, and larger integers a float holds exactly) values are delivered; past it, the
    row is rejected naming the field, and the other rows go through."""
    p = attio
    p.sql("alter table main.people add column visits hugeint")
    p.sql("update main.people set visits = case id when 1 then 9007199254740992 when 2 then 9007199254740993 "
          "when 3 then 1234567890123456789 when 4 then 1152921504606846976 when 5 then -9007199254740993 "
          "else id end")
    p.sql("alter table main.people alter column ltv type decimal(38, 2)")
    p.sql("update main.people set ltv = case id when 6 then 12345678901234567.5 when 7 then 9007199254740992 "
          "else ltv end")
    p.write_sync(fields=("visits: visits", "ltv: lifetime_value"))
    run = p.run()
    assert (run["acknowledged"], run["rejected"]) == (16, 4), p.rejections()
    rejected = p.rejections()
    assert set(rejected) == {"user2@example.com", "user3@example.com", "user5@example.com", "user6@example.com"}
    assert 'field "visits": 1234567890123456789 is beyond what a 64-bit float holds exactly' \
        in rejected["user3@example.com"][1]
    assert "1234567890123456768" in rejected["user3@example.com"][1]
    assert 'field "lifetime_value": 12345678901234567.50 is beyond' in rejected["user6@example.com"][1]
    assert person(p, "user1@example.com")["visits"] == 9007199254740992
    assert person(p, "user4@example.com")["visits"] == 1152921504606846976
    assert person(p, "user7@example.com")["lifetime_value"] == 9007199254740992
    assert person(p, "user8@example.com")["visits"] == 8


def test_duplicate_matching_keys_are_withheld(attio):
    p = attio
    p.seed_people(60)
    p.sql("insert into main.people values (61, 'USER1@example.com ', 'Dup', 'pro', 1, 'c-61')")
    run = p.run()  # 2 rows of 61 share a key: under the 5% that would stop the run
    assert run["duplicate_keys"] == 1 and run["acknowledged"] == 59 and run["exit_code"] == ExitCode.WARNINGS
    assert person(p, "user1@example.com") is None
    p.sql("insert into main.people select 100 + i, 'user2@example.com', 'd', 'pro', 1, 'x' from range(3) t(i)")
    result = p.cli("sync")
    assert result.exit_code == ExitCode.RUN_FAILED
    assert "duplicated matching key" in json.loads(result.stdout)["runs"][0]["error"]


def test_domains_attio_reads_as_one_company_are_sent_once_the_model_holds_one(attio):
    p = attio
    p.write_sync("attio_companies", model="companies", service="companies", match_column="domain",
                 match_field="domains", fields=COMPANY_FIELDS)
    p.sql("insert into main.companies values ('https://company1.com/', 'Shouting', 1, 'gold')")
    run = p.run()
    # counted as duplicated keys, as the model's own are, not as rejected: they counted in `rejected`
    # (and so against max_rejected_pct) though nothing is parked
    assert (run["acknowledged"], run["rejected"], run["duplicate_keys"], run["parked"]) == (5, 0, 2, 0), run
    assert set(p.rejections()) == {"company1.com", "https://company1.com/"}
    # recorded as withheld for another row (`duplicate`), not as refused for their content (`rejected`:
    # parked until they change, which these are not)
    assert {status for status, _ in p.rejections().values()} == {"duplicate"}
    assert company(p, "company1.com") is None
    # a run that changes nothing plans them again: duplicated keys again, never `rejected 2`
    again = p.run()
    assert (again["added"], again["acknowledged"], again["rejected"], again["duplicate_keys"]) == (2, 0, 0, 2), again
    assert again["status"] == "warning" and not any("rejected or not found" in w for w in again["warnings"])
    assert any("2 keys (28.6% of the model's rows) were withheld as duplicates" in w
               and "over the 5% max_duplicate_pct" in w for w in again["warnings"]), again["warnings"]
    assert p.sql("select rejected, duplicate_keys from dinsync.runs where run_id = ?", again["run_id"]) == [(0, 2)]
    # the model is fixed: the row left standing never changed, yet it is sent (withheld, not parked)
    p.sql("delete from main.companies where domain = 'https://company1.com/'")
    fixed = p.run()
    assert (fixed["added"], fixed["acknowledged"], fixed["rejected"]) == (1, 1, 0)
    assert company(p, "company1.com")["name"] == "Company 1"
    assert p.snapshot_keys("attio_companies") == {f"company{i}.com" for i in range(1, 7)}


def test_numeric_keys_that_are_one_float_for_attio_are_withheld_or_rejected(attio):
    p = attio
    p.thread.call(p.sandbox.declare_attribute, "people:account_no:number:unique")
    p.sql("create or replace table main.people as select * from (values (1, '7', 'a'), (2, '7.0', 'b'), "
          "(3, '9007199254740993', 'c'), (4, '9007199254740992', 'd'), (5, '8', 'e')) t(id, acct, first_name)")
    p.write_sync(match_column="acct", match_field="account_no", fields=("first_name: job_title",))
    run = p.run()
    # 7 and 7.0 withheld (duplicated keys for Attio), 9007199254740993 rejected for its content (parked)
    assert (run["acknowledged"], run["rejected"], run["duplicate_keys"], run["parked"]) == (2, 1, 2, 1), run
    statuses = {k: s for k, (s, _) in p.rejections().items()}
    assert statuses == {"7": "duplicate", "7.0": "duplicate", "9007199254740993": "rejected"}
    titles = p.thread.call(lambda: {p.sandbox.plain(r)["account_no"]: p.sandbox.plain(r)["job_title"]
                                    for r in p.sandbox.records("people")})
    assert titles == {9007199254740992: "d", 8: "e"}  # 9007199254740993 did not overwrite 9007199254740992
    p.sql("delete from main.people where acct = '7.0'")
    fixed = p.run()  # withheld, not parked: sent once the model holds one of them
    assert (fixed["added"], fixed["acknowledged"], fixed["rejected"]) == (1, 1, 0), fixed
    assert p.thread.call(p.sandbox.count, "people") == 3


def test_update_mode_finds_records_by_a_timestamp_or_date_matching_attribute(attio):
    """A TIMESTAMP key's text is DuckDB's, `2024-01-01 10:00:00.5`; Attio returns the value it stores,
    `2024-01-01T10:00:00.500000000Z`: the lookup never paired them, and every row of an update sync
    matching on a timestamp attribute was `not_found` though its record existed. The key is sent in
    ISO 8601 (`T`), and a lookup's records are paired with keys as Attio reads both: one instant,
    one (UTC) day."""
    p = attio
    p.thread.call(p.sandbox.declare_attribute, "people:seen_at:timestamp:unique")
    p.thread.call(p.sandbox.declare_attribute, "people:signup_day:date:unique")
    p.sql("create or replace table main.people as select i as id, TIMESTAMP '2024-01-01 10:00:00' + i * "
          "interval 90 minute + i * interval 500 millisecond as seen_at, CAST(DATE '2024-01-01' + i * "
          "interval 1 day AS DATE) as day, 't' || i as first_name from range(1, 4) r(i)")
    p.write_sync("seed", match_column="seen_at", match_field="seen_at",
                 fields=("first_name: job_title", "day: signup_day"))
    assert p.run()["acknowledged"] == 3
    keys = sorted(orjson.loads(b)["data"]["values"]["seen_at"][0] for m, path, b in p.requests.requests
                  if "matching_attribute=seen_at" in path)
    assert keys == ["2024-01-01T11:30:00.5", "2024-01-01T13:00:01", "2024-01-01T14:30:01.5"]
    for match, field in (("seen_at", "seen_at"), ("day", "signup_day")):
        p.sql("update main.people set first_name = first_name || '!'")
        p.write_sync(f"by_{match}", mode="update", match_column=match, match_field=field,
                     fields=("first_name: job_title",))
        run = p.run()
        assert (run["acknowledged"], run["not_found"]) == (3, 0), (match, p.rejections())
    assert p.thread.call(p.sandbox.count, "people") == 3


def test_timestamp_keys_attio_reads_as_one_instant_are_withheld(attio):
    """`2024-01-01 10:00:00` and `2024-01-01T12:00:00+02:00` are two keys of the model and one instant
    for Attio: both rows were written to one record, each over the other, and both acknowledged."""
    p = attio
    p.thread.call(p.sandbox.declare_attribute, "people:seen_at:timestamp:unique")
    p.sql("create or replace table main.people as select * from (values (1, '2024-01-01 10:00:00', 'a'), "
          "(2, '2024-01-01T12:00:00+02:00', 'b'), (3, '2024-01-02 10:00:00', 'c')) t(id, seen, first_name)")
    p.write_sync(match_column="seen", match_field="seen_at", fields=("first_name: job_title",))
    run = p.run()
    assert (run["acknowledged"], run["rejected"], run["duplicate_keys"]) == (1, 0, 2), run
    assert {k: s for k, (s, _) in p.rejections().items()} == {
        "2024-01-01 10:00:00": "duplicate", "2024-01-01T12:00:00+02:00": "duplicate"}
    assert p.thread.call(p.sandbox.count, "people") == 1


def test_a_domain_added_later_in_another_case_does_not_overwrite_the_synced_company(attio):
    p = attio
    p.seed_companies(60)
    p.write_sync("attio_companies", model="companies", service="companies", match_column="domain",
                 match_field="domains", fields=COMPANY_FIELDS)
    assert p.run()["acknowledged"] == 60
    # not in the same batch as company1.com: only the model-wide duplicate check can see it
    p.sql("insert into main.companies values (' Company1.COM', 'Shouting', 1, 'gold')")
    run = p.run()
    assert (run["duplicate_keys"], run["acknowledged"]) == (1, 0)
    assert company(p, "company1.com")["name"] == "Company 1"


# ------------------------------------------------------------------ transient failures
def test_429_bursts_are_retried_after_the_http_date(attio):
    p = attio
    p.thread.call(lambda: (setattr(p.sandbox.options, "limits", True),
                           p.sandbox.options.rate_limits.update(write=5)))
    run = p.run()  # the client's own write limit is off here: it bursts into Attio's limit
    assert (run["status"], run["acknowledged"], run["failed"]) == ("success", 20, 0)
    assert run["throttled"] > 0 and run["throttled"] == p.thread.stats()["responses_429"]
    assert count(p) == 20


@pytest.mark.parametrize("mode", ["upsert", "update"])
def test_a_200_page_that_is_not_attios_answer_is_retried_not_acknowledged(attio, mode):
    """A captive portal's 200 HTML page answering writes: the rows were acknowledged though Attio
    never saw them (lost). They are sent again until Attio itself answers."""
    p = attio
    if mode == "update":
        assert p.run()["acknowledged"] == 20
        p.sql("update main.people set plan = 'team'")
        p.write_sync("attio_people_update", mode="update")
    endpoint = "assert" if mode == "upsert" else "update_overwrite"
    p.thread.script(endpoint, respond(200, "<html><body>Sign in to the Wi-Fi</body></html>",
                                      {"Content-Type": "text/html"}), times=3)
    run = p.run()
    assert (run["status"], run["acknowledged"], run["failed"]) == ("success", 20, 0), run
    assert p.thread.call(p.sandbox.faults.pending) == 0  # the three pages were served
    assert count(p) == 20  # upsert: every row's record was created
    if mode == "update":  # update: every row's record was written
        assert [person(p, f"user{i}@example.com")["plan"] for i in range(1, 21)] == ["team"] * 20


@pytest.mark.parametrize("status", [404, 405, 410, 400])
def test_writes_refused_by_a_page_that_is_not_attios_stop_the_run(attio, status):
    """Every write answered by a page that is not Attio's (a wrong path's 404, a 405, a 410, a
    proxy's 400) while reads work: each request failed its row at once and the run sent every row,
    one request each (~1 hour for 100k rows at 25/s), to fail them all. Now the run stops after 10
    such requests in a row, fails saying why, parks nothing, and the next run delivers every row."""
    p = attio
    p.seed_people(300)
    p.thread.script("assert", respond(status, "<html><body><h1>Not here</h1></body></html>",
                                      {"Content-Type": "text/html"}), times=10_000)
    run = p.run()
    assert run["exit_code"] == ExitCode.RUN_FAILED and run["status"] == "failed", run
    assert "refused 10 requests in a row" in run["error"] and f"HTTP {status}" in run["error"], run
    assert run["hint"] and (run["acknowledged"], run["rejected"], run["parked"]) == (0, 0, 0), run
    assert run["requests"] < 60, run  # not one request for each of the 300 rows
    assert {s for s, _ in p.rejections().values()} <= {"failed"} and p.snapshot_keys() == set()
    p.thread.call(p.sandbox.faults.clear)
    again = p.run()
    assert (again["status"], again["acknowledged"], again["sent"], again["failed"]) == ("success", 300, 300, 0), again
    assert count(p) == 300 and person(p, "user7@example.com")["job_title"] == "Name 7"


def test_retry_after_date_is_honoured(attio):
    p = attio
    p.write_config(extra="    rate_limits: {write: null, read: null}\n    concurrency: 1\n")  # one in flight
    p.thread.script("assert", throttle(1.0))
    run = p.run()
    assert (run["throttled"], run["acknowledged"]) == (1, 20)
    log = p.thread.call(lambda: list(p.sandbox.log))
    [throttled] = [e for e in log if e.status == 429]
    # Retry-After named the first whole second at least 1 s later; without it the sender's own backoff
    # (0.5 s at most for a first retry) would have come back sooner.
    later = [e.ts for e in log if e.endpoint == "assert" and e.ts > throttled.ts]
    assert later and min(later) >= throttled.ts + 0.95


def test_5xx_and_resets_are_retried_and_writes_applied_before_a_reset_are_not_doubled(attio):
    p = attio
    p.thread.script("assert", error(503), reset(), reset_after_apply(), error(502), reset_after_apply())
    run = p.run()
    assert (run["status"], run["acknowledged"], run["failed"]) == ("success", 20, 0)
    assert count(p) == 20 and p.thread.stats()["faults"]["reset_after_apply"] == 2
    assert all(person(p, f"user{i}@example.com")["email_addresses"] == [f"user{i}@example.com"] for i in range(1, 21))
    # update mode: lookups and writes by record id survive the same faults
    p.sql("update main.people set plan = 'team'")
    p.write_sync("attio_people_update", mode="update")
    p.thread.script("query", error(500), reset())
    p.thread.script("update_overwrite", reset_after_apply(), error(503))
    run = p.run()
    assert (run["acknowledged"], run["failed"], run["not_found"]) == (20, 0, 0)
    assert count(p) == 20 and all(person(p, f"user{i}@example.com")["plan"] == "team" for i in (1, 7, 20))


def test_documented_limits_on_both_sides_deliver_everything(attio):
    p = attio
    p.write_config(extra="")  # the client's documented defaults: 25 writes/s, 100 reads/s
    p.thread.call(lambda: setattr(p.sandbox.options, "limits", True))
    run = p.run()
    assert (run["status"], run["acknowledged"], run["failed"]) == ("success", 20, 0)
    p.sql("update main.people set plan = 'team'")
    p.write_sync("attio_people_update", mode="update")
    run = p.run()  # reads (pre-flight, lookups) and writes (PUT by record id) share the token's two buckets
    assert (run["status"], run["acknowledged"], run["failed"]) == ("success", 20, 0)
    assert set(run["request_rates"]) == {"write", "read"}
    assert person(p, "user20@example.com")["plan"] == "team"


# ------------------------------------------------------------------ credentials
def test_bad_token_and_missing_scopes_stop_the_run_naming_the_scopes(attio, monkeypatch, caplog):
    p = attio
    caplog.set_level("DEBUG")
    monkeypatch.setenv("ATTIO_TEST_TOKEN", "wrong-token-0a1b2c3d")
    result = p.cli("sync")
    assert result.exit_code == ExitCode.RUN_FAILED
    message = json.loads(result.stdout)["runs"][0]["error"]
    assert "401" in message and "record_permission:read-write" in message and "object_configuration:read" in message
    weak = WEAK
    monkeypatch.setenv("ATTIO_TEST_TOKEN", weak)
    result = p.cli("sync")
    message = json.loads(result.stdout)["runs"][0]["error"]
    assert result.exit_code == ExitCode.RUN_FAILED and "403" in message and "object_configuration:read" in message
    state = " ".join(str(r) for r in p.sql("select * from dinsync.runs")) + str(p.sql("select * from dinsync.rejections"))
    for text in (result.stdout, caplog.text, state, p.cli("status").stdout):
        assert "wrong-token" not in text and weak not in text and TOKEN not in text
    assert count(p) == 0


# ------------------------------------------------------------------ crash safety
def _sync_process(p) -> subprocess.Popen:
    env = dict(os.environ, ATTIO_TEST_TOKEN=TOKEN, DINSYNC_CHECKPOINT_ROWS="25", DINSYNC_CHECKPOINT_SECONDS="0.2")
    return subprocess.Popen([sys.executable, "-m", "dinsync.cli", "--project-dir", str(p.root), "--json", "sync"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_a_signal_while_the_pre_flight_check_is_retried_cancels_the_run(attio):
    """Attio answering 5xx to the run's pre-flight check (its attribute list, retried with backoff)
    when SIGTERM comes: the check gives up at the signal (SendingStopped) and the run is `cancelled`
    with the stop's message, nothing sent. It was recorded `failed`, its error the bare
    'SendingStopped: ' of an unexpected error."""
    p = attio
    assert p.run()["acknowledged"] == 20
    p.sql("update main.people set plan = 'team'")
    p.thread.set_faults(error_rate=1.0, seed=3)
    from tests.e2e.test_signals_and_locks import sigterm_while_retried

    before = p.thread.stats()["requests"]
    run = sigterm_while_retried(_sync_process(p), lambda: p.thread.stats()["requests"] - before)
    assert (run["status"], run["sent"], run["error"][:19]) == ("cancelled", 0, "stopped by SIGTERM:"), run


@pytest.mark.slow
@pytest.mark.parametrize("service,kill_after", [("people", 40), ("people", 150), ("companies", 60)])
def test_sigkill_mid_send_then_rerun_loses_nothing(attio, service, kill_after):
    p = attio
    rows = 600
    if service == "people":
        p.seed_people(rows)
        sync = "attio_people"
        expected = {e: {"job_title": f, "plan": pl, "lifetime_value": ltv}
                    for e, f, pl, ltv in p.sql("select email, first_name, plan, ltv from main.people")}
    else:
        p.seed_companies(rows)
        sync = "attio_companies"
        p.write_sync(sync, model="companies", service="companies", match_column="domain", match_field="domains",
                     fields=COMPANY_FIELDS)
        expected = {d: {"name": n, "employees": e, "tier": t}
                    for d, n, e, t in p.sql("select domain, name, employees, tier from main.companies")}
    p.thread.set_faults(latency=0.02, jitter=0.02, reset_after_apply_rate=0.05, seed=kill_after)

    def delivered() -> dict[str, dict]:
        obj = "people" if service == "people" else "companies"
        key = "email_addresses" if service == "people" else "domains"
        records = p.thread.call(lambda: [p.sandbox.plain(r) for r in p.sandbox.records(obj)])
        return {r[key][0]: {f: r[f] for f in next(iter(expected.values()))} for r in records}

    proc = _sync_process(p)
    deadline = time.monotonic() + 60
    while p.thread.stats()["requests_by_endpoint"].get("assert", 0) < kill_after:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the sync never reached the kill point"
        time.sleep(0.005)
    proc.kill()
    proc.wait(10)
    assert proc.returncode == -9
    committed = p.snapshot_keys(sync)
    now = delivered()
    assert committed <= set(now) and len(committed) < rows
    assert all(now[k] == expected[k] for k in committed)

    p.thread.set_faults(latency=0.0, jitter=0.0, reset_after_apply_rate=0.0)
    rerun = _sync_process(p)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, (out, err)
    [run] = json.loads(out)["runs"]
    assert run["status"] == "success" and run["failed"] == 0
    assert delivered() == expected
    assert p.snapshot_keys(sync) == set(expected)
    statuses = [r[0] for r in p.sql("select status from dinsync.runs order by started_at")]
    assert statuses == ["abandoned", "success"]


def test_validate_checks_the_mapping_against_attio_unless_offline(attio):
    p = attio
    p.write_sync(fields=("first_name: job_title", "ltv: lifetime_valeu"))
    result = p.cli("validate")
    assert result.exit_code == ExitCode.CONFIG_ERROR
    [issue] = json.loads(result.stdout)["issues"]
    assert (issue["file"], issue["line"]) == ("syncs/attio_people.yml", 10)
    assert "lifetime_valeu" in issue["message"] and "lifetime_value" in issue["hint"]
    assert p.thread.stats()["records"]["people"] == 0  # a check reads the schema, writes nothing
    assert p.cli("validate", "--offline").exit_code == 0


def test_a_run_whose_pre_flight_check_failed_counts_its_requests(attio, monkeypatch):
    """The pre-flight check's requests are the run's too: an Attio answering only 503s failed the
    run after 8 attempts at its attributes, and `runs.requests` said 0."""
    import functools

    import dinsync.sender.http as http

    monkeypatch.setattr(http, "RetryPolicy", functools.partial(http.RetryPolicy, base=0.01, cap=0.02))
    p = attio
    p.thread.set_faults(error_rate=1.0, seed=5)
    run = p.run()
    assert run["status"] == "failed" and run["exit_code"] != 0
    assert run["requests"] == p.thread.stats()["requests"] > 0
    [(logged,)] = p.sql("select requests from dinsync.runs")
    assert logged == run["requests"]


def test_a_mapping_typo_the_preflight_refuses_costs_no_resend_once_fixed(attio):
    """A field name only the platform can refuse (an attribute that does not exist) fails the run at
    the pre-flight check, "nothing was sent"; the run must not record that mapping, nor forget what
    was delivered: once the typo is fixed, the next run has nothing to send. (The run used to record
    the typo'd mapping and unsettle every row before the check, so the fixed mapping resent every
    row with every field.)"""
    p = attio
    assert p.run()["acknowledged"] == 20
    p.write_sync(fields=("first_name: job_title", "plan: plan", "ltv: lifetime_valeu"))
    failed = p.run()
    assert failed["exit_code"] == ExitCode.CONFIG_ERROR and failed["sent"] == 0
    assert "lifetime_valeu" in failed["error"]
    p.write_sync()  # fixed (the sync, paused by itself for the configuration error, resumes: its checks pass)
    p.requests.clear()
    after = p.run()
    assert (after["status"], after["added"], after["changed"], after["sent"]) == ("success", 0, 0, 0), after
    assert not any(m == "PUT" for m, _, _ in p.requests.requests)


def test_a_run_after_a_mapping_change_counts_the_early_checks_requests(attio):
    """A changed mapping is checked against Attio before the run records it, on a transport of its
    own, and again on the transport that sends: `runs.requests` counts both checks' requests and the
    writes (the send phase's figures used to replace the early check's)."""
    p = attio
    assert p.run()["acknowledged"] == 20
    p.write_sync(fields=("customer_id: job_title", "plan: plan", "ltv: lifetime_value"))  # another column
    before = p.thread.stats()["requests"]
    run = p.run()
    assert run["status"] == "success" and run["sent"] > 0, run
    assert run["requests"] == p.thread.stats()["requests"] - before
    [logged] = [r for (r,) in p.sql("select requests from dinsync.runs order by started_at desc limit 1")]
    assert logged == run["requests"]


def test_validate_that_cannot_reach_the_platform_is_a_failure_not_a_configuration_error(attio, monkeypatch):
    """An Attio answering only 503s leaves the mapping unchecked: `validate` exits 1 (it could not
    tell, try again), not 3, which says a file is wrong (it exited 3 with a hint calling it transient);
    a mapping the platform refuses is still 3, also next to an unreachable check."""
    import functools

    import dinsync.sender.http as http

    monkeypatch.setattr(http, "RetryPolicy", functools.partial(http.RetryPolicy, base=0.01, cap=0.02))
    p = attio
    p.thread.set_faults(error_rate=1.0, seed=5)
    result = p.cli("validate")
    assert result.exit_code == ExitCode.RUN_FAILED, result.stdout
    data = json.loads(result.stdout)
    assert data["exit_code"] == ExitCode.RUN_FAILED and "attio_people" in data["error"], data
    p.thread.set_faults(error_rate=0.0)
    p.write_sync(fields=("first_name: job_title", "ltv: lifetime_valeu"))
    assert p.cli("validate").exit_code == ExitCode.CONFIG_ERROR


def test_plan_samples_map_values_by_the_attributes_types(attio):
    """Attio's attribute types (the kinds a run learns in its pre-flight check) map the values a
    run sends: `plan` mapped its samples without them, showing a text column's "12" for a number
    attribute as the string "12" (sent as 12) and "many" as if it would go out (the run rejects it)."""
    p = attio
    p.sql("alter table main.people add column visits varchar")
    p.sql("update main.people set visits = case when id = 2 then 'many' else cast(id * 6 as varchar) end")
    p.write_sync(fields=("first_name: job_title", "visits: visits"))
    result = p.cli("plan", "--samples", "20")
    assert result.exit_code == 0, result.stdout
    rows = {r["key"]: r for r in json.loads(result.stdout)["plans"][0]["samples"]["added"]}
    assert rows["user1@example.com"]["fields"] == {"job_title": ["Name 1"], "visits": [6.0]}, rows["user1@example.com"]
    assert rows["user2@example.com"]["rejected"] == [
        {"field": "visits", "reason": "field \"visits\": cannot convert 'many' to a number"}]
    assert not [m for m, _, _ in p.requests.requests if m != "GET"]  # a preview: nothing written
    run = p.run()
    assert (run["acknowledged"], run["rejected"]) == (19, 1), run
    assert 'field "visits": cannot convert \'many\' to a number' in p.rejections()["user2@example.com"][1]


def test_plan_whose_schema_read_fails_still_shows_its_samples_with_a_note(attio, monkeypatch):
    """A token that cannot read the schema: `plan` (a preview) still plans, maps its samples
    without the attribute types, and says so; the sync is what stops on it."""
    p = attio
    monkeypatch.setenv("ATTIO_TEST_TOKEN", WEAK)
    result = p.cli("plan", "--samples", "1")
    assert result.exit_code == 0, result.stdout
    [plan] = json.loads(result.stdout)["plans"]
    assert plan["samples"]["added"][0]["fields"]["job_title"] == "Name 10"
    assert any("mapped without the types of the platform's schema" in n for n in plan["notes"]), plan["notes"]
    assert WEAK not in result.stdout


def test_plan_samples_are_the_values_attio_receives_and_its_refusals(attio):
    """Attio receives each value as the array of `values` (`{"plan": ["pro"]}`, a currency rounded
    to 4 places) and dinsync refuses client-side a value no attribute of that type takes (a phone
    attribute's `123`): `plan` showed the mapped JSON values and those rows as if they would go out."""
    p = attio
    p.sql("alter table main.people add column alt varchar")
    p.sql("update main.people set alt = case when id = 2 then '123' else '+1 201 555 01' || lpad(id::varchar, 2, '0') end")
    p.sql("update main.people set ltv = 1.234567 where id = 1")
    p.write_sync(fields=("first_name: job_title", "plan: plan", "ltv: lifetime_value", "alt: phone_numbers"),
                 match_column="customer_id", match_field="customer_id")
    result = p.cli("plan", "--samples", "20")
    assert result.exit_code == 0, result.stdout
    rows = {r["key"]: r for r in json.loads(result.stdout)["plans"][0]["samples"]["added"]}
    run = p.run()
    assert (run["acknowledged"], run["rejected"]) == (19, 1), run
    sent = {v["customer_id"][0]: v for v in sent_values(p)}
    shown = rows["c-1"]["fields"]
    assert shown == {k: v for k, v in sent["c-1"].items() if k != "customer_id"}, (shown, sent["c-1"])
    assert shown["plan"] == ["free"] and shown["job_title"] == ["Name 1"]
    assert shown["phone_numbers"] == ["+12015550101"]
    assert [r["field"] for r in rows["c-2"]["rejected"]] == ["phone_numbers"]
    assert rows["c-2"]["rejected"][0]["reason"] == p.rejections()["c-2"][1]


def test_plan_samples_with_every_kind_declared_are_attios_arrays_too(attio):
    """With a `type:` on every field, `plan` skipped the schema read that Attio's value shapes need,
    and showed `"Name 1"` where Attio receives `["Name 1"]`."""
    p = attio
    p.write_sync(fields=("first_name: {field: job_title, type: string}",))
    result = p.cli("plan", "--samples", "20")
    assert result.exit_code == 0, result.stdout
    rows = {r["key"]: r for r in json.loads(result.stdout)["plans"][0]["samples"]["added"]}
    assert rows["user1@example.com"]["fields"] == {"job_title": ["Name 1"]}


def test_a_person_whose_company_does_not_exist_is_listed_not_found_naming_the_attribute(attio):
    """The README: a row whose referenced record does not exist is reported `not_found` with that
    attribute. The destination named it (`company`), but the run recorded `not_found` and `failed`
    rows without their field: `dinsync rejections` showed none."""
    p = attio
    p.sql("create or replace table main.people as select 1 as id, 'ada@example.com' as email, "
          "'nowhere.example' as company_domain")
    p.write_sync(fields=("company_domain: company",))
    run = p.run()
    assert (run["not_found"], run["acknowledged"]) == (1, 0), run
    listed = p.cli("rejections", "attio_people")
    assert [(r["key"], r["status"], r["field"]) for r in json.loads(listed.stdout)["rejections"]] == [
        ("ada@example.com", "not_found", "company")]


def test_validate_asks_an_unreachable_platform_once_not_once_per_sync(attio, monkeypatch):
    """`validate` ran each sync's pre-flight check with a run's retries (8 attempts, backoff up to
    30 s), one sync after the other: a platform that does not answer made it wait them out for every
    sync of the destination (4 syncs against a host that accepts and never answers: over 14 minutes;
    300 syncs: hours). The first sync that finds it unreachable stands for the destination's others."""
    import functools

    import dinsync.sender.http as http

    monkeypatch.setattr(http, "RetryPolicy", functools.partial(http.RetryPolicy, base=0.01, cap=0.02))
    p = attio
    one = (p.root / "syncs" / "attio_people.yml").read_text()
    for i in range(5):
        (p.root / "syncs" / f"attio_people_{i}.yml").write_text(one)
    p.thread.set_faults(error_rate=1.0, seed=5)
    p.requests.clear()
    result = p.cli("validate")
    assert result.exit_code == ExitCode.RUN_FAILED, result.stdout
    attempts = len([r for r in p.requests.requests if r[1].startswith("/v2/")])
    assert attempts <= 8, attempts  # one sync's retries, not six syncs'
    assert "failed after 8 attempt(s)" in json.loads(result.stdout)["error"]
    text = " ".join(p.cli("validate", json_output=False).output.split())
    assert text.count("not run: destination attio could not be reached for sync attio_people") == 5, text
