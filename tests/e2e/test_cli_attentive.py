"""Attentive end to end through the CLI: DuckDB model -> plan -> lookups and writes to the Attentive
sandbox over loopback -> snapshot. Every API request is validated against Attentive's OpenAPI files
(fixture teardown). The sandbox runs with its defaults unless a test says otherwise: its v1 and v2
writes create unknown users (the worst case for an update-only product)."""
from __future__ import annotations

import json
import time

import pytest

from dinsync.errors import ExitCode
from dinsync.sandbox.faults import delay, error, reset, reset_after_apply, respond, throttle
from tests.e2e.attentive_project import ATTENTIVE_KEY, attentive, make_attentive  # noqa: F401 (fixtures)


def by_email(users: list[dict]) -> dict[str, dict]:
    return {u["identifiers"]["email"]: u.get("attributes", {}) for u in users}


def test_first_sync_noop_changed_fields_only_and_rows_leaving(attentive):
    p = attentive
    first = p.run()
    assert (first["status"], first["added"], first["acknowledged"], first["not_found"]) == ("success", 20, 20, 0)
    assert p.subscriber("subscriber4@example.com")["attributes"] == {"firstName": "Name 4",
                                                                     "location": {"city": "City 1"}}
    assert p.subscriber("subscriber4@example.com")["custom"] == {"Tier": "gold"}
    assert len(p.snapshot_keys()) == 20 and p.stats()["created_users"] == 0
    assert len(p.lookups()) == 20  # the first run looks every row up

    p.requests.clear()
    second = p.run()
    assert (second["added"], second["changed"], second["removed"], second["sent"]) == (0, 0, 0, 0)
    assert p.requests.requests == []  # a no-op run sends nothing, not even a lookup

    p.sql("update main.customers set first_name = 'Renamed' where id = 1")
    p.sql("update main.customers set tier = 'platinum' where id = 2")
    p.sql("update main.customers set city = 'Paris', tier = 'bronze' where id = 3")
    p.sql("delete from main.customers where id in (18, 19)")
    p.requests.clear()
    third = p.run()
    assert (third["changed"], third["removed"], third["acknowledged"]) == (3, 2, 3)
    assert by_email(p.v2_users()) == {"subscriber1@example.com": {"firstName": "Renamed"},
                                      "subscriber3@example.com": {"location": {"city": "Paris"}}}
    assert {b["user"]["email"]: b["properties"] for b in p.v1_bodies()} == {
        "subscriber2@example.com": {"Tier": "platinum"}, "subscriber3@example.com": {"Tier": "bronze"}}
    assert sorted(p.lookups()) == sorted(f"/v1/attributes/custom?email=subscriber{i}%40example.com" for i in (1, 2, 3))
    assert p.subscriber("subscriber3@example.com")["attributes"]["location"] == {"city": "Paris"}
    assert p.subscriber("subscriber3@example.com")["custom"] == {"Tier": "bronze"}
    keys = p.snapshot_keys()
    assert len(keys) == 18 and "subscriber19@example.com" not in keys
    assert p.subscriber("subscriber19@example.com") is not None  # leaving the model deletes nothing

    p.sql("insert into main.customers values (19, 'subscriber19@example.com', NULL, 'Back', 'X', 'gold', NULL)")
    fourth = p.run()
    assert (fourth["added"], fourth["acknowledged"]) == (1, 1)
    assert p.stats()["created_users"] == 0


def test_newly_mapped_custom_attribute_is_sent_for_the_whole_segment(attentive):
    p = attentive
    p.write(fields=("first_name: firstName", "city: city"))
    assert p.run()["acknowledged"] == 20
    p.write(fields=("first_name: firstName", "city: city", "tier: {field: Tier, custom: true}"))
    p.requests.clear()
    run = p.run()
    assert (run["changed"], run["acknowledged"]) == (20, 20)
    assert p.v2_users() == []  # standard fields did not change
    assert sorted(b["user"]["email"] for b in p.v1_bodies()) == sorted(f"subscriber{i}@example.com" for i in range(20))
    assert all(set(b["properties"]) == {"Tier"} for b in p.v1_bodies())
    assert p.subscriber("subscriber7@example.com")["custom"] == {"Tier": "silver"}


def test_unknown_subscribers_are_reported_not_found_and_never_created(make_attentive):
    """The sandbox's v1 and v2 writes would create them: the lookups keep them from being written."""
    for extra in ("", "    standard_fields_via: single\n", "    custom_attributes_via: v2\n"):
        p = make_attentive(seeded=15)  # rows 15..19 name nobody
        p.write(extra=extra, max_rejected_pct=10)
        p.requests.clear()
        result = p.sync()
        [run] = result["runs"]
        assert (run["acknowledged"], run["not_found"]) == (15, 5), extra
        assert run["status"] == "warning" and result["exit_code"] == ExitCode.WARNINGS
        assert "5 of 20 rows (25.0%) were rejected or not found" in run["warnings"][0]
        stats = p.stats()
        assert (stats["created_users"], stats["subscribers"], stats["unknown_user_writes"]) == (0, 15, 0)
        rejections = p.rejections()
        assert {k for k, (s, _) in rejections.items() if s == "not_found"} == {
            f"subscriber{i}@example.com" for i in range(15, 20)}
        assert "never creates" in rejections["subscriber17@example.com"][1]
        assert all(u["identifiers"]["email"] not in rejections for u in p.v2_users())
        assert all(b["user"]["email"] not in rejections for b in p.v1_bodies())
        # looked up again next run (and still absent); once the subscriber exists, updated
        assert p.run()["not_found"] == 5
        p.thread.call(p.sandbox.add_subscriber, "subscriber17@example.com")
        again = p.run()
        assert (again["added"], again["acknowledged"], again["not_found"]) == (5, 1, 4)
        assert p.subscriber("subscriber17@example.com")["attributes"]["firstName"] == "Name 17"
        assert p.stats()["created_users"] == 0


def test_empty_attribute_lists_are_confirmed_when_unknown_users_get_one_too(make_attentive):
    """`unknown_attributes_lookup="empty"`: an unknown user's custom attributes are `[]`, like a known
    user's without any. The client learns it from its probe and confirms `[]` answers through
    GET /v1/subscriptions (404 for unknown subscribers)."""
    p = make_attentive(seeded=15, unknown_attributes_lookup="empty")
    p.thread.call(p.sandbox.add_subscriber, "vip@example.com", custom={"Tier": "gold"})
    p.sql("insert into main.customers values (100, 'vip@example.com', NULL, 'Vip', 'X', 'gold', NULL)")
    run = p.run()
    assert (run["acknowledged"], run["not_found"]) == (16, 5)
    confirmations = [path for path in p.lookups() if path.startswith("/v1/subscriptions?")]
    assert len(confirmations) == 20  # every empty answer; not the subscriber whose list was not empty
    assert "/v1/subscriptions?email=vip%40example.com" not in confirmations
    assert p.stats()["created_users"] == 0


def test_existence_check_through_subscriptions_only(make_attentive):
    p = make_attentive(seeded=15)
    p.write(extra="    existence_check: subscriptions\n")
    run = p.run()
    assert (run["acknowledged"], run["not_found"]) == (15, 5)
    assert all(path.startswith("/v1/subscriptions?") for path in p.lookups()) and len(p.lookups()) == 20
    assert p.stats()["requests_by_endpoint"].get("getCustomAttributes", 0) == 0


def test_bad_phones_dates_and_coordinates_are_rejected_with_reasons(make_attentive):
    p = make_attentive(phone_check="valid")  # an Attentive that refuses numbers in no assigned range
    p.sql("alter table main.customers add column birthday varchar")
    p.sql("alter table main.customers add column lat double")
    p.sql("update main.customers set birthday = '1990-01-' || lpad(cast(id + 1 as varchar), 2, '0'), lat = 40.5")
    p.sql("update main.customers set phone = '+1 201 200 00' || lpad(cast(id as varchar), 2, '0')")
    p.sql("update main.customers set phone = 'call me' where id = 1")
    p.sql("update main.customers set phone = '12' where id = 2")
    p.sql("update main.customers set birthday = '1990-02-31' where id = 3")
    p.sql("update main.customers set birthday = 'yesterday' where id = 4")
    p.sql("update main.customers set lat = 91 where id = 5")
    # shaped like a North American number, in no assigned range: sent, and this Attentive says no
    p.sql("update main.customers set phone = '+1 999 000 0000' where id = 7")
    p.write(fields=("first_name: firstName", "phone: phone", "birthday: dateOfBirth", "lat: latitude"),
            extra="    phone_region: US\n")
    run = p.run()
    assert (run["rejected"], run["acknowledged"]) == (6, 14)
    reasons = {k: r for k, (s, r) in p.rejections().items() if s == "rejected"}
    assert "invalid phone number 'call me'" in reasons["subscriber1@example.com"]
    assert "invalid phone number '12'" in reasons["subscriber2@example.com"]
    assert reasons["subscriber7@example.com"].startswith("Attentive HTTP 400"), reasons["subscriber7@example.com"]
    assert "phone" in reasons["subscriber7@example.com"]
    assert "'1990-02-31' to a date (YYYY-MM-DD)" in reasons["subscriber3@example.com"]
    assert "'yesterday' to a date" in reasons["subscriber4@example.com"]
    assert "'91.0' is not a latitude between -90 and 90" in reasons["subscriber5@example.com"]
    good = p.subscriber("subscriber6@example.com")
    assert good["attributes"]["demographic"] == {"dateOfBirth": "1990-01-07"}
    assert good["attributes"]["location"] == {"latitude": "40.5"}
    assert good["phone"] == "+12012000006"  # the E.164 form of the number it already had
    assert p.stats()["created_users"] == 0


def test_a_row_with_several_bad_values_counts_as_one_rejected_row(make_attentive):
    """The audit's row with an array and a struct as custom attributes (or here a bad country and
    a bad region): one rejection per field, and the run counted each, `rejected` 2 for one row
    ("4 of 2 rows (200.0%) were rejected", a warning over any threshold)."""
    p = make_attentive()
    p.sql("update main.customers set city = 'US', tier = 'AU-NSW'")
    p.sql("update main.customers set city = 'usa', tier = 'nowhere' where id = 3")
    p.write(fields=("first_name: firstName", "city: country", "tier: region"), max_rejected_pct=5)
    run = p.run()
    assert (run["rejected"], run["acknowledged"], run["status"]) == (1, 19, "success"), run
    fields = {f for (f,) in p.sql("select field from dinsync.rejections where key = 'subscriber3@example.com'")}
    assert fields == {"country", "region"}  # both reasons kept
    assert p.run()["parked"] == 1


def test_per_row_400s_become_rejections_with_attentives_message(make_attentive):
    """Values our checks let through but this company refuses: the row alone is rejected."""
    for bulk_validation in ("request", "record"):
        p = make_attentive(bulk_validation=bulk_validation)
        p.thread.call(p.sandbox.define_property, "Tier", ["gold", "silver"])
        p.sql("alter table main.customers add column region varchar")
        p.sql("update main.customers set region = 'US-NY'")
        p.sql("update main.customers set region = 'ZZ-1' where id = 6")  # the right shape, no such country
        p.sql("update main.customers set tier = 'diamond' where id = 9")  # not a value defined in the UI
        p.write(fields=("first_name: firstName", "region: region", "tier: {field: Tier, custom: true}"))
        run = p.run()
        assert (run["rejected"], run["acknowledged"], run["failed"]) == (2, 18, 0), bulk_validation
        reasons = p.rejections()
        assert reasons["subscriber6@example.com"][0] == "rejected"
        assert "ISO-3166-2" in reasons["subscriber6@example.com"][1]
        assert reasons["subscriber9@example.com"] == (
            "rejected", "Attentive HTTP 400: properties.Tier: the value is not one of the values defined for this "
                        "property")
        assert "subscriber6@example.com" not in p.snapshot_keys()
        assert p.subscriber("subscriber5@example.com")["attributes"]["location"]["region"] == "US-NY"


@pytest.mark.parametrize("endpoint", ["getCustomAttributes", "postCustomAttributes", "postBulkUserAttributes"])
@pytest.mark.parametrize("status", [400, 404])
def test_a_proxys_4xx_page_fails_the_rows_never_parks_them(make_attentive, endpoint, status):
    """A 4xx HTML page (a proxy's or gateway's) answering a lookup or a write says nothing about the
    users: their rows are failed and sent again by the next run. Before, a 400 page parked them as
    rejected (never sent again until they changed) and a 404 page made them `not_found`."""
    p = make_attentive(limits=False)
    p.write(extra="    limits_enabled: false\n")
    p.thread.script(endpoint, respond(status, "<html><head><title>%d Bad Request</title></head><body>"
                                              "<h1>nginx</h1></body></html>" % status,
                                      {"Content-Type": "text/html"}), times=3)
    run = p.run()
    assert (run["rejected"], run["parked"], run["not_found"]) == (0, 0, 0), run
    assert run["failed"] >= 1 and run["acknowledged"] == 20 - run["failed"]
    assert {s for s, _ in p.rejections().values()} == {"failed"}
    p.thread.call(p.sandbox.faults.clear)
    again = p.run()
    assert (again["acknowledged"], again["failed"], again["parked"]) == (run["failed"], 0, 0), again
    assert len(p.snapshot_keys()) == 20 and p.stats()["created_users"] == 0


def test_throttling_server_errors_and_resets_are_retried_until_delivered(attentive):
    p = attentive
    p.thread.script("getCustomAttributes", throttle(None), throttle(None), error(503), reset())
    p.thread.script("postCustomAttributes", throttle(None), error(502), reset_after_apply())
    p.thread.script("postBulkUserAttributes", error(503), throttle(None))
    p.thread.script("getBulkJobStatus", error(500), reset())
    run = p.run()
    assert (run["status"], run["acknowledged"], run["failed"], run["throttled"]) == ("success", 20, 0, 4)
    stats = p.stats()
    assert stats["responses_429"] == 4 and stats["created_users"] == 0
    assert all(p.subscriber(f"subscriber{i}@example.com")["custom"] == {"Tier": "gold" if i % 2 == 0 else "silver"}
               for i in range(20))
    assert len(p.snapshot_keys()) == 20


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_retry_after_in_seconds_or_as_an_http_date_pauses_the_endpoint(make_attentive, form):
    """Attentive documents no Retry-After; one sent anyway (either RFC 9110 form) is honoured: the
    endpoint waits that long (not the 1 s its x-ratelimit headers alone would mean)."""
    p = make_attentive(retry_after=form)
    p.thread.script("postCustomAttributes", throttle(4))
    run = p.run()
    assert (run["status"], run["acknowledged"], run["throttled"]) == ("success", 20, 1)
    writes = [r for r in p.thread.call(lambda: list(p.sandbox.log)) if r.endpoint == "postCustomAttributes"]
    [refused] = [i for i, r in enumerate(writes) if r.status == 429]
    at = writes[refused].ts
    after = [r.ts - at for r in writes[refused + 1:]]  # (writes already in flight arrive at once)
    assert max(after) >= 2.9 and not [t for t in after if 0.5 < t < 2.9]  # an HTTP date counts whole seconds


def test_bursts_of_429s_and_random_server_errors(make_attentive):
    p = make_attentive(seeded=200)
    p.seed(200)
    p.thread.script("getCustomAttributes", *[throttle(None)] * 4)
    p.thread.script("postCustomAttributes", *[throttle(None)] * 3)
    p.thread.set_faults(error_rate=0.1, reset_rate=0.03, reset_after_apply_rate=0.03, seed=11)
    run = p.run()
    assert (run["status"], run["acknowledged"], run["failed"], run["not_found"]) == ("success", 200, 0, 0)
    assert run["throttled"] >= 7  # the scripted ones (the sandbox's own limiter may add one after a pause)
    stats = p.stats()
    assert stats["faults"]["error"] > 20 and stats["created_users"] == 0
    assert all(p.subscriber(f"subscriber{i}@example.com")["attributes"]["firstName"] == f"Name {i}"
               for i in range(200))
    assert len(p.snapshot_keys()) == 200


def test_job_statuses_that_never_answer_stop_the_run_while_lookups_answer(make_attentive, monkeypatch):
    """Every bulk job's status answered by a 500 page while lookups and submissions answer: the
    lookups' answers started the outage's count again, so every row was sent and failed ("status
    unreadable"), whatever the run's size. Each endpoint now counts for itself: the run stops once
    the job statuses answered nothing for DINSYNC_OUTAGE_SECONDS, saying so, nothing parked, and the
    next run delivers every row once (rows left pending: read, not sent again)."""
    import functools

    import dinsync.sender.http as http

    monkeypatch.setattr(http, "RetryPolicy", functools.partial(http.RetryPolicy, base=0.01, cap=0.02))
    monkeypatch.setenv("DINSYNC_OUTAGE_SECONDS", "0.5")
    p = make_attentive(limits=False, seeded=1500)
    p.write(extra="    limits_enabled: false\n")
    p.seed(1500)
    p.thread.script("getBulkJobStatus", error(500), times=100_000)
    result = p.sync()
    [run] = result["runs"]
    assert result["exit_code"] == ExitCode.RUN_FAILED and run["status"] == "failed", run
    # the breaker's silence rule or its requests-in-a-row rule, whichever the machine's pace trips first
    # (8 attempts 0.01-0.02 s apart may use up 3 requests before 0.5 s of silence), on the job statuses
    assert any(words in run["error"] for words in ("answered no request for", "answered none of 3 requests")), run
    assert "(bulk_job" in run["error"], run
    assert (run["acknowledged"], run["rejected"], run["parked"]) == (0, 0, 0), run
    assert p.snapshot_keys() == set() and {s for s, _ in p.rejections().values()} <= {"failed"}
    p.thread.call(p.sandbox.faults.clear)
    again = p.run()
    assert (again["status"], again["acknowledged"], again["failed"]) == ("success", 1500, 0), again
    assert again["sent"] == 1500 - run["pending"], again  # rows left pending are read, not sent again
    assert len(p.snapshot_keys()) == 1500 and p.stats()["created_users"] == 0
    assert p.subscriber("subscriber1234@example.com")["attributes"]["firstName"] == "Name 1234"


def test_lookups_that_never_answer_stop_the_run_before_every_row_was_looked_up(make_attentive, monkeypatch):
    """The network drops every lookup after the run's probe (`timeout_seconds` short): each lookup's
    retry queued for a place in flight behind every lookup not yet tried, so the breaker's 3 requests
    tried twice came only after every row of the slices under way had timed out once: 486 s after the
    cut at `timeout_seconds: 5`, where Iterable's writes stopped in ~40 s. A lookup's next attempt now
    waits ahead of the lookups not tried yet: the run stops on the lookups' silence before most rows
    were looked up, writes nothing, parks nothing, and the next run delivers every row."""
    import functools

    import dinsync.sender.http as http

    monkeypatch.setattr(http, "RetryPolicy", functools.partial(http.RetryPolicy, base=0.01, cap=0.02))
    monkeypatch.setenv("DINSYNC_OUTAGE_SECONDS", "0.5")
    p = make_attentive(seeded=300)
    p.write(extra="    limits_enabled: false\n    timeout_seconds: 0.2\n")
    p.seed(300)
    p.thread.script("getCustomAttributes", delay(0))  # the probe is answered
    p.thread.script("getCustomAttributes", delay(2), times=100_000)  # (never within timeout_seconds)
    result = p.sync()
    [run] = result["runs"]
    assert result["exit_code"] == ExitCode.RUN_FAILED and run["status"] == "failed", run
    assert "answered no request for" in run["error"] and "(get_custom_attributes" in run["error"], run
    looked_up = set(p.lookups())
    assert len(looked_up) < 300, f"all 300 rows were looked up before the lookups were found silent ({run})"
    assert (run["acknowledged"], run["rejected"], run["parked"]) == (0, 0, 0), run
    assert p.v1_bodies() == [] and p.v2_users() == [] and p.snapshot_keys() == set()
    p.thread.call(p.sandbox.faults.clear)
    again = p.run()
    assert (again["status"], again["acknowledged"], again["failed"]) == ("success", 300, 0), again
    assert p.stats()["created_users"] == 0


def test_a_failed_bulk_job_is_submitted_again(attentive):
    p = attentive
    p.thread.call(p.sandbox.script_job_failure, 1)
    run = p.run()
    assert (run["status"], run["acknowledged"]) == ("success", 20)
    assert p.stats()["jobs"] == {"FAILED": 1, "COMPLETED": 1}
    assert p.subscriber("subscriber3@example.com")["attributes"]["firstName"] == "Name 3"


def test_a_results_file_in_another_layout_still_acknowledges_each_row(make_attentive):
    """The `.jsonl` format is undocumented: lines in another order and without `index` used to leave
    every row `failed` (run after run); they are matched by the identifier each line carries."""
    p = make_attentive(results_order="reversed", results_index=False)
    p.thread.call(p.sandbox.define_property, "Tier", ["gold", "silver"])
    p.write(fields=("first_name: firstName", "city: city", "tier: {field: Tier, custom: true}"),
            extra="    custom_attributes_via: v2\n")
    p.sql("update main.customers set tier = 'diamond' where id = 3")
    run = p.run()
    assert (run["status"], run["acknowledged"], run["rejected"], run["failed"]) == ("success", 19, 1, 0)
    assert list(p.rejections()) == ["subscriber3@example.com"]
    assert p.snapshot_keys() == {f"subscriber{i}@example.com" for i in range(20)} - {"subscriber3@example.com"}
    assert p.subscriber("subscriber4@example.com")["attributes"]["firstName"] == "Name 4"
    assert p.subscriber("subscriber3@example.com")["attributes"] == {}  # its record was refused whole


def test_jobs_that_do_not_finish_in_time_leave_their_rows_pending(attentive, monkeypatch):
    p = attentive
    p.thread.call(setattr, p.sandbox.options, "bulk_job_seconds", 30.0)
    monkeypatch.setenv("DINSYNC_OUTCOME_TIMEOUT_SECONDS", "0.5")
    result = p.sync()
    [run] = result["runs"]
    assert (run["status"], run["pending"], run["acknowledged"]) == ("warning", 20, 0)
    assert any("next run reads their outcome" in w for w in run["warnings"])
    assert result["exit_code"] == ExitCode.WARNINGS
    assert p.snapshot_keys() == set()  # nothing committed before Attentive said so
    jobs_before = sum(p.stats()["jobs"].values())
    p.thread.call(p.sandbox.finish_jobs)
    monkeypatch.setenv("DINSYNC_OUTCOME_TIMEOUT_SECONDS", "60")
    p.thread.call(setattr, p.sandbox.options, "bulk_job_seconds", 0.05)
    # a dry run reads no outcome: it counts the pending rows as to send and says the sync reads them first
    plan = json.loads(p.cli("plan").stdout)["plans"][0]
    assert plan["added"] == 20
    assert any("20 rows an earlier run sent await their outcome" in n for n in plan["notes"]), plan["notes"]
    again = p.run()  # reads the finished jobs' outcomes under their stashed ids: nothing is sent again
    assert (again["status"], again["sent"], again["acknowledged"], again["pending"]) == ("success", 0, 20, 0)
    assert sum(p.stats()["jobs"].values()) == jobs_before and len(p.snapshot_keys()) == 20


def test_wrong_key_and_missing_scopes_stop_the_run_naming_the_scopes(make_attentive, monkeypatch):
    p = make_attentive(api_keys={ATTENTIVE_KEY: ["attributes:write"]})
    result = p.sync()
    [run] = result["runs"]
    assert result["exit_code"] == ExitCode.RUN_FAILED and run["status"] == "failed"
    assert "denied access (HTTP 403 on bulk_user_attributes" in run["error"]
    assert "attributes:write and subscriptions:write" in run["error"]
    assert p.stats()["created_users"] == 0

    wrong = "attn-wrong-key-0a1b2c3d"
    monkeypatch.setenv("ATTENTIVE_TEST_KEY", wrong)
    result = p.sync()  # the 403 paused the sync by itself: it is checked again, and still refused
    [run] = result["runs"]
    assert result["exit_code"] == ExitCode.RUN_FAILED and "paused by itself (credentials" in run["error"]
    result = p.sync("--force")
    [run] = result["runs"]
    assert result["exit_code"] == ExitCode.RUN_FAILED and "refused the API key (HTTP 401 on me" in run["error"]
    state = repr(p.sql("select * from dinsync.runs")) + repr(p.sql("select * from dinsync.rejections"))
    text = json.dumps(result) + state
    assert wrong not in text and ATTENTIVE_KEY not in text


def test_upsert_is_a_configuration_error_saying_why(attentive):
    p = attentive
    p.write(mode="upsert")
    result = p.cli("validate")
    assert result.exit_code == ExitCode.CONFIG_ERROR
    [issue] = json.loads(result.stdout)["issues"]
    assert issue["file"] == "syncs/attentive_users.yml" and issue["line"] == 4
    assert "does not support mode 'upsert'" in issue["message"] and "never creates" in issue["message"]
    assert p.stats()["requests"] == 0


def test_unknown_fields_point_at_custom_attributes(attentive):
    p = attentive
    p.write(fields=("first_name: firstName", "tier: loyaltyTier"))
    result = p.cli("validate")
    assert result.exit_code == ExitCode.CONFIG_ERROR
    [issue] = json.loads(result.stdout)["issues"]
    assert "has no field 'loyaltyTier'" in issue["message"] and "custom: true" in issue["hint"]


def test_the_matching_field_cannot_be_mapped_again(attentive):
    p = attentive
    p.write(fields=("first_name: firstName", "email: email"))
    result = p.cli("sync")
    assert result.exit_code == ExitCode.CONFIG_ERROR
    assert "is the matching field" in result.stdout
    assert p.stats()["requests"] == 0


def test_validate_checks_the_mapping_before_any_run(attentive):
    p = attentive
    long_name = "x" * 201
    p.write(fields=("first_name: firstName", "email: email", f"tier: {{field: {long_name}, custom: true}}"))
    result = p.cli("validate")
    assert result.exit_code == ExitCode.CONFIG_ERROR
    issues = {i["line"]: i["message"] for i in json.loads(result.stdout)["issues"]}
    assert "is the matching field" in issues[8]
    assert "201 characters; Attentive allows 200" in issues[9]
    # the mapping checks need no request; the key's check is one read
    assert p.stats()["requests"] == 1 and [m for m, _, _ in p.requests.requests] == ["GET"]


def test_trusting_the_snapshot_skips_lookups_of_known_rows(attentive):
    p = attentive
    p.write(extra="    lookup: new_rows\n")
    p.run()
    p.sql("update main.customers set first_name = 'Changed'")
    p.requests.clear()
    run = p.run()
    assert (run["changed"], run["acknowledged"]) == (20, 20) and p.lookups() == []


def _diff_normalises_phone_keys() -> bool:
    try:
        from dinsync.diff.keys import KEY_NORMALIZATIONS  # the diff branch
    except ImportError:
        from dinsync.diff.render import KEY_NORMALIZATIONS
    return "phone" in KEY_NORMALIZATIONS


@pytest.mark.skipif(not _diff_normalises_phone_keys(),
                    reason="phone matching keys need the warehouse diff's phone normalisation (branch diff)")
def test_match_on_phone_end_to_end(make_attentive):
    p = make_attentive(seeded=15)
    p.sql("update main.customers set phone = '(201) 200-' || lpad(cast(id as varchar), 4, '0')")  # national form
    p.sql("update main.customers set phone = '12' where id = 3")  # digits, but no valid number
    p.sql("insert into main.customers (id, email, phone) values (99, 'x@example.com', 'n/a')")  # no digit
    p.write(match_column="phone", match_field="phone", extra="    phone_region: US\n")
    result = p.cli("sync")
    [run] = json.loads(result.stdout)["runs"]
    assert (run["acknowledged"], run["not_found"], run["rejected"], run["null_keys"]) == (14, 5, 1, 1)
    assert "1 row with a NULL phone key (or no digit) was skipped" in result.stderr
    assert all(path.startswith("/v1/attributes/custom?phone=%2B1201200") for path in p.lookups())
    assert p.thread.call(p.sandbox.get_subscriber, phone="+12012000004")["attributes"]["firstName"] == "Name 4"
    assert {b["user"]["phone"] for b in p.v1_bodies()} >= {"+12012000004"}
    [(status, reason)] = [v for v in p.rejections().values() if v[0] == "rejected"]
    assert "is not a valid phone number (default region US)" in reason
    assert p.stats()["created_users"] == 0
    # another spelling of the same numbers is the same key: nothing to send
    p.sql("update main.customers set phone = '+1 201 200 ' || lpad(cast(id as varchar), 4, '0') where id != 3")
    assert p.run()["changed"] == 0


@pytest.mark.skipif(not _diff_normalises_phone_keys(),
                    reason="phone matching keys need the warehouse diff's phone normalisation (branch diff)")
def test_a_phone_key_holding_more_than_digits_and_separators_is_rejected_not_read_as_another_number(make_attentive):
    """The audit's keys: reduced to their ASCII digits by the diff, +1 201 200 0012\u0663 (an
    Arabic-Indic three) was +12012000012 and updated that subscriber, who is not in the model;
    +1 201 200 000\uff16 (a fullwidth six) was rejected quoting +1201200000, not the model's value.
    Now each is rejected quoting the model's value, parked, and nobody else is written."""
    p = make_attentive(seeded=20)
    p.sql("delete from main.customers where id >= 10")  # subscribers 10..19 exist, not in the model
    bad = {5: "+1 201 200 0012\u0663", 6: "+1 201 200 000\uff16", 7: "+1 800 FLOWERS"}
    for i, phone in bad.items():
        p.sql("update main.customers set phone = ? where id = ?", phone, i)
    p.write(match_column="phone", match_field="phone", extra="    phone_region: US\n")
    before = p.thread.call(p.sandbox.get_subscriber, phone="+12012000012")
    run = p.run()
    assert (run["acknowledged"], run["rejected"]) == (7, 3), run
    rejections = p.rejections()
    assert set(rejections) == set(bad.values()), rejections
    for phone in bad.values():
        status, reason = rejections[phone]
        assert status == "rejected" and f"\'{phone}\' is not read as a phone key" in reason, reason
    assert p.thread.call(p.sandbox.get_subscriber, phone="+12012000012") == before  # nobody else written
    assert p.thread.call(p.sandbox.get_subscriber, phone="+12012000004")["attributes"]["firstName"] == "Name 4"
    sent = {b["user"]["phone"] for b in p.v1_bodies()} | {u.get("phone") for u in p.v2_users()}
    assert "+12012000012" not in sent and not any(len(s or "") == 11 for s in sent), sent
    # parked: not sent again until they change
    p.requests.clear()
    again = p.run()
    assert (again["acknowledged"], again["rejected"], again["parked"]) == (0, 0, 3), again


@pytest.mark.skipif(not _diff_normalises_phone_keys(),
                    reason="phone matching keys need the warehouse diff's phone normalisation (branch diff)")
@pytest.mark.parametrize("records_left", ["key = 'phone_keys:attentive_users'", "key <> 'layout_version'"],
                         ids=["without-the-rule", "without-any-record"])
def test_phone_keys_read_by_the_older_rule_are_read_again_once(make_attentive, monkeypatch, records_left):
    """A snapshot written before the phone key rule: +1 201 200 0012\u0663 was delivered as
    +12012000012 (another subscriber). The next run reads every key again, once: that row is
    rejected quoting the model's value, the other number leaves the snapshot, nothing else is sent;
    `plan` says so first. Also where the older dinsync kept no record of the sync at all (before
    2026-12-04: no `destination:` record either), which the rule took for a sync that never ran."""
    from dinsync.diff.dialects import DIALECT_SQL

    monkeypatch.setenv("DINSYNC_CACHE_DIR", "")  # rendered SQL not cached: the older rule's is rendered
    p = make_attentive(seeded=20)
    p.sql("delete from main.customers where id >= 10")
    p.sql("update main.customers set phone = ? where id = 5", "+1 201 200 0012\u0663")
    p.write(match_column="phone", match_field="phone", extra="    phone_region: US\n")
    with monkeypatch.context() as m:  # the older rule: nothing but ASCII digits and '+' was read
        m.setitem(DIALECT_SQL["duckdb"], "DINSYNC_PHONEREST", "''")
        first = p.run()
    assert (first["acknowledged"], first["rejected"]) == (10, 0), p.rejections()
    assert "+12012000012" in p.snapshot_keys()
    p.sql(f"delete from dinsync.meta where {records_left}")  # as the older dinsync left it
    result = p.cli("plan", json_output=False)
    assert "phone keys were read by an older rule" in result.stdout + result.stderr
    p.requests.clear()
    run = p.run()
    assert (run["acknowledged"], run["rejected"]) == (0, 1), run
    assert "+12012000012" not in p.snapshot_keys() and len(p.snapshot_keys()) == 9
    [(status, reason)] = [p.rejections()["+1 201 200 0012\u0663"]]
    assert status == "rejected" and "is not read as a phone key" in reason
    p.requests.clear()
    again = p.run()  # once: the rule is recorded
    assert (again["acknowledged"], again["rejected"], again["parked"]) == (0, 0, 1), again
    assert p.lookups() == []


def test_writes_begin_after_the_first_slice_of_lookups_not_after_all_of_them(make_attentive):
    """A row is written only once looked up, and lookups and v1 writes have the same rate (150/s): rows
    are looked up about a second's worth (150) at a time, and a slice's writes are queued as soon as
    it is looked up. They used to wait for 1000 lookups (two slices of 1000 sharing the endpoint:
    ~13 s at the start of a run, which writes paced at the same rate never made up). 450 rows: the
    first write now comes after fewer than two slices of lookups (it came after all 450)."""
    p = make_attentive(seeded=450)
    p.seed(450)
    run = p.run()
    assert (run["status"], run["acknowledged"], run["not_found"]) == ("success", 450, 0)
    calls = [m for m, path, _ in p.requests.requests
             if path.startswith("/v1/attributes/custom") and "dinsync-existence-probe" not in path]
    assert calls.count("GET") == 450 and calls.count("POST") == 450
    looked_up_first = calls.index("POST")
    assert 150 <= looked_up_first < 300, looked_up_first


def test_bulk_jobs_are_followed_as_soon_as_submitted_and_their_outcomes_wait_for_the_write(make_attentive,
                                                                                          monkeypatch):
    """A unit of writes holds several bulk requests (here units of 10 rows, 5 requests of 2 users).
    Each job is polled as soon as its submission is answered, not once the unit's last one is (which
    put every poll after every submission); an outcome that arrives before its unit's write has
    returned is handed over after, once the run knows the record is pending (another unit's worker
    collecting outcomes meanwhile would drop it, and the row would be left pending)."""
    monkeypatch.setattr("dinsync.destinations.attentive.destination.WRITE_BATCH_ROWS", 10)
    p = make_attentive(seeded=60, bulk_pending_seconds=0.0, bulk_job_seconds=0.01)
    p.seed(60)
    p.write(fields=("first_name: firstName", "city: city"),
            extra="    lookup: new_rows\n    bulk_max_users: 2\n    job_poll_seconds: 0.01\n")
    first = p.run()
    assert (first["status"], first["acknowledged"], first["pending"]) == ("success", 60, 0)
    p.sql("update main.customers set first_name = first_name || '!'")
    p.requests.clear()
    # the first unit's first submission is answered late: its other jobs, and the next units', are
    # done before that unit's write returns, while other units' workers collect outcomes
    p.thread.script("postBulkUserAttributes", delay(0.5))
    run = p.run()
    assert (run["status"], run["changed"], run["acknowledged"], run["pending"], run["failed"]) == \
        ("success", 60, 60, 0, 0)
    calls = [("poll" if "/bulk/job/" in path else "submit") for m, path, _ in p.requests.requests
             if path.startswith("/v2/bulk/")]
    assert calls.count("submit") == 30 and calls.count("poll") >= 30
    last_submission = len(calls) - 1 - calls[::-1].index("submit")
    assert calls.index("poll") < last_submission
    assert p.subscriber("subscriber42@example.com")["attributes"]["firstName"] == "Name 42!"


def test_rows_sharing_an_identifier_they_are_not_matched_on_are_not_bridged(make_attentive):
    """Two rows of an email sync with one phone: "Sending duplicate values could lead to
    unintentionally bridging users together" (the v2 spec). The first row of the run keeps it; the
    other is parked (sent once its values change: the model tells them apart), its subscriber untouched."""
    p = make_attentive()
    p.sql("update main.customers set phone = '+1 201 200 0002' where id in (2, 3)")
    p.sql("update main.customers set first_name = 'Row' || id")
    p.write(fields=("first_name: firstName", "phone: phone"), extra="    phone_region: US\n")
    run = p.run()
    withheld = {k: r for k, (s, r) in p.rejections().items() if s == "rejected"}
    assert list(withheld) == ["subscriber3@example.com"], p.rejections()
    assert "bridge the two subscribers" in withheld["subscriber3@example.com"]
    assert (run["acknowledged"], run["rejected"]) == (19, 1)
    assert p.subscriber("subscriber2@example.com")["attributes"]["firstName"] == "Row2"
    assert "firstName" not in p.subscriber("subscriber3@example.com")["attributes"]
    assert sum(u["identifiers"].get("phone") == "+12012000002" for u in p.v2_users()) == 1
    p.sql("update main.customers set phone = '+1 201 200 0003' where id = 3")  # told apart
    run = p.run()
    assert (run["acknowledged"], run["rejected"]) == (1, 0)
    assert p.subscriber("subscriber3@example.com")["attributes"]["firstName"] == "Row3"
    assert p.thread.stats()["created_users"] == 0


def test_a_row_withheld_for_another_rows_identifier_is_not_sent_by_a_later_run(make_attentive):
    """Rows 2 and 3 of an email sync share a phone: the run sends row 2's and withholds row 3. The
    next run, in which row 2 sends nothing (unchanged), must not send row 3's phone either: Attentive
    would bridge the two subscribers (the audit's strict server did). Row 3 waits until it changes."""
    p = make_attentive()
    p.sql("update main.customers set phone = '+1 201 200 0002' where id in (2, 3)")
    p.write(fields=("first_name: firstName", "phone: phone"), extra="    phone_region: US\n")
    p.run()
    p.requests.clear()
    again = p.run()
    assert [u for u in p.v2_users() if u["identifiers"].get("phone") == "+12012000002"] == []
    assert again["sent"] == 0, again
    assert p.thread.stats()["created_users"] == 0


def test_an_earlier_runs_job_still_running_is_waited_for_before_its_rows_are_sent_again(attentive, monkeypatch):
    """A run ended (or was killed) with a bulk job still running; the model then changed back. The
    next run must not send the row again while that job can still apply its older value after the
    newer one: Attentive does not promise to finish jobs in the order they were submitted."""
    p = attentive
    assert p.run()["status"] == "success"  # every row delivered: firstName 'Name i'
    p.sql("update main.customers set first_name = 'Changed 0' where id = 0")
    p.thread.call(setattr, p.sandbox.options, "bulk_job_seconds", 3.0)  # a slow job
    monkeypatch.setenv("DINSYNC_OUTCOME_TIMEOUT_SECONDS", "0.3")
    first = p.run()
    assert (first["status"], first["pending"]) == ("warning", 1)
    p.sql("update main.customers set first_name = 'Name 0' where id = 0")  # back to what Attentive held
    p.thread.call(setattr, p.sandbox.options, "bulk_job_seconds", 0.05)  # a quick one
    monkeypatch.setenv("DINSYNC_OUTCOME_TIMEOUT_SECONDS", "60")
    again = p.run()
    assert again["status"] == "success" and again["pending"] == 0
    deadline = time.monotonic() + 10
    while p.stats()["jobs"].get("COMPLETED", 0) < sum(p.stats()["jobs"].values()) and time.monotonic() < deadline:
        time.sleep(0.05)  # every job has finished (the slow one too)
    held = p.subscriber("subscriber0@example.com")["attributes"].get("firstName")
    print(f"Attentive holds firstName {held!r} for a model saying 'Name 0'")
    assert held == "Name 0"
    assert p.run()["sent"] == 0


def test_a_run_stopped_by_attentives_start_check_counts_its_requests(make_attentive):
    """`GET /v1/me` answered with another server's page fails the run before anything is sent: the
    run's log said `requests 0` though the check had asked (Attio's and Splio's runs counted theirs)."""
    p = make_attentive()
    p.thread.script("getMe", respond(404, "<html><body>Not Found</body></html>", {"Content-Type": "text/html"}))
    result = p.sync()
    [run] = result["runs"]
    assert result["exit_code"] == ExitCode.RUN_FAILED and "GET /v1/me did not answer" in run["error"]
    asked = p.stats()["requests_by_endpoint"]["getMe"]
    assert (run["requests"], asked) == (1, 1)


def test_a_start_check_to_a_server_that_never_answers_stops_within_the_outage_seconds(make_attentive, monkeypatch):
    """`GET /v1/me`, the run's only request until it is answered, to a server that accepts the
    connection and never answers: neither outage rule could trip on one request, so it used its 8
    attempts (~4.5 minutes at the default `timeout_seconds: 30`). Tried twice through
    DINSYNC_OUTAGE_SECONDS of silence it stops: the run fails naming Attentive's silence, nothing
    sent, and the next run, the server answering, delivers every row."""
    import functools

    import dinsync.sender.http as http
    from tests.mute_server import MuteServer

    monkeypatch.setattr(http, "RetryPolicy", functools.partial(http.RetryPolicy, base=0.01, cap=0.02))
    monkeypatch.setenv("DINSYNC_OUTAGE_SECONDS", "0.5")
    p = make_attentive()
    p.write(extra="    timeout_seconds: 0.2\n")
    config = p.root / "dinsync.yml"
    answering = config.read_text()
    with MuteServer() as mute:
        config.write_text(answering.replace(p.thread.url, mute.url))
        result = p.sync()
        accepted = mute.accepted
    [run] = result["runs"]
    assert result["exit_code"] == ExitCode.RUN_FAILED and run["status"] == "failed", run
    assert "could not reach Attentive (GET /v1/me" in run["error"], run
    assert "attentive answered no request for" in run["error"] and "timeout after 0.2s" in run["error"], run
    assert run["requests"] == accepted < 8, run  # tried twice or more, not 8 times
    assert p.v2_users() == [] and p.snapshot_keys() == set()
    config.write_text(answering)
    again = p.run()
    assert (again["status"], again["acknowledged"], again["failed"]) == ("success", 20, 0), again
    assert len(p.snapshot_keys()) == 20


@pytest.mark.parametrize("status, form", [(429, "seconds"), (503, "http-date")])
def test_a_results_file_answered_with_retry_after_is_fetched_again_no_sooner(attentive, status, form):
    """The job's `.jsonl` (a pre-signed link, fetched outside the API's sender) answered 429 or 503 with
    a Retry-After was fetched again after the sender's short backoff (0.5, 1, 2 s at most), before the
    time its host asked for: a few such answers and the job's rows were failed ("results file
    unreadable") and written again by the next run. The wait it names (seconds or an HTTP date) is honoured."""
    import email.utils

    p = attentive
    page = "<html><body><h1>Slow Down</h1></body></html>"
    value = "2" if form == "seconds" else email.utils.formatdate(time.time() + 5, usegmt=True)
    p.thread.script("bulkJobResults", respond(status, page, {"Retry-After": value, "Content-Type": "text/html"}))
    run = p.run()
    assert (run["status"], run["acknowledged"], run["failed"]) == ("success", 20, 0)
    fetches = [r for r in p.thread.call(lambda: list(p.sandbox.log)) if r.endpoint == "bulkJobResults"]
    assert [r.status for r in fetches] == [status, 200]
    assert fetches[1].ts - fetches[0].ts >= 1.9


def test_an_empty_results_file_is_fetched_again_not_read_as_no_result_for_every_record(attentive):
    """A job's `.jsonl` answered 200 with an empty body (a CDN's or a proxy's glitch: a job of records
    has a line for each) was read as a file without lines: every record of the job `failed` ("no result
    for this record"), the run failed and the next one wrote them all again. It is fetched again."""
    p = attentive
    p.thread.script("bulkJobResults", respond(200, b"", {"Content-Type": "application/octet-stream"}))
    run = p.run()
    assert (run["status"], run["acknowledged"], run["failed"]) == ("success", 20, 0)
    fetches = [r for r in p.thread.call(lambda: list(p.sandbox.log)) if r.endpoint == "bulkJobResults"]
    assert [(r.status, r.fault) for r in fetches] == [(200, "respond"), (200, None)]


@pytest.mark.parametrize("body", ["404 page not found\n", ""])
def test_a_probe_answered_by_a_gateways_404_does_not_make_empty_lookups_known_subscribers(make_attentive, body):
    """The run's probe (an address nobody has) decides whether an empty attribute list names a known
    subscriber: a 404 means Attentive tells unknown users apart. A gateway's 404 in plain text or
    without a body (an HTML page was already ignored) counted as Attentive's: where Attentive answers
    `[]` for unknown users, every unknown row of the run was then written, and created."""
    p = make_attentive(seeded=10, unknown_attributes_lookup="empty")
    p.thread.script("getCustomAttributes", respond(404, body, {"Content-Type": "text/plain"}))
    run = p.run()
    assert (run["acknowledged"], run["not_found"], p.stats()["created_users"]) == (10, 10, 0)


def test_plan_samples_show_attentives_forms_and_its_client_side_refusals(make_attentive):
    """Attentive's standard fields have rules dinsync checks before sending (a country is an
    ISO-3166-1 alpha-2 code, an age a non-negative integer) and forms it sends (an age as a
    number): `plan` showed the model's "usa" as if it would go out, and "33" as text."""
    import json

    p = make_attentive(seeded=20)
    p.sql("alter table main.customers add column country varchar")
    p.sql("alter table main.customers add column age varchar")
    p.sql("update main.customers set country = case when id = 2 then 'usa' else 'US' end, age = cast(30 + id as varchar)")
    p.write(fields=("first_name: firstName", "country: country", "age: age"))
    result = p.cli("plan", "--samples", "20")
    assert result.exit_code == 0, result.stdout
    rows = {r["key"]: r for r in json.loads(result.stdout)["plans"][0]["samples"]["added"]}
    one = rows["subscriber1@example.com"]
    assert one["fields"] == {"firstName": "Name 1", "country": "US", "age": 31} and one["rejected"] == []
    [refused] = rows["subscriber2@example.com"]["rejected"]
    assert refused["field"] == "country" and "'usa' is not an ISO-3166-1 alpha-2 country code" in refused["reason"]
    run = p.run()
    assert (run["acknowledged"], run["rejected"]) == (19, 1), run
    assert p.rejections()["subscriber2@example.com"][1] == refused["reason"]


def test_plan_samples_show_a_null_standard_field_with_a_check_as_null(make_attentive):
    """A NULL is not sent (Attentive: "avoid sending null values"), and `plan` shows it as null:
    the fields with a check (country, region, latitude) showed `country="NULL"` and
    `latitude="null"`, texts the sync never sends."""
    import json

    p = make_attentive(seeded=4)
    p.sql("alter table main.customers add column country varchar")
    p.sql("alter table main.customers add column region varchar")
    p.sql("alter table main.customers add column lat double")
    p.sql("update main.customers set country = case when id = 2 then null else 'us' end, "
          "region = case when id = 2 then null else 'us-ca' end, lat = case when id = 2 then null else 40.5 end")
    p.write(fields=("first_name: firstName", "country: country", "region: region", "lat: latitude"))
    result = p.cli("plan", "--samples", "20")
    assert result.exit_code == 0, result.stdout
    rows = {r["key"]: r for r in json.loads(result.stdout)["plans"][0]["samples"]["added"]}
    assert rows["subscriber1@example.com"]["fields"] == {"firstName": "Name 1", "country": "US", "region": "US-CA",
                                                         "latitude": "40.5"}
    two = rows["subscriber2@example.com"]
    assert two["fields"] == {"firstName": "Name 2", "country": None, "region": None, "latitude": None}, two
    assert two["rejected"] == []
    run = p.run()
    assert (run["acknowledged"], run["rejected"]) == (4, 0), run


@pytest.mark.parametrize("send_nulls", [False, True])
def test_plan_samples_show_an_empty_string_attentive_is_not_sent_as_null(make_attentive, send_nulls):
    """An empty string is not sent (Attentive: "avoid sending ... empty strings"), unless `send_nulls`,
    and `plan` shows it as it shows a NULL: null, never sent. The samples said `firstName=""` and
    `Tier=""`, values the run left out of its requests (the subscriber kept its first name)."""
    import json

    p = make_attentive(seeded=4)
    p.sql("update main.customers set first_name = '', tier = '' where id = 2")
    p.sql("update main.customers set first_name = null, tier = null where id = 3")
    p.write(extra="    send_nulls: true\n" if send_nulls else "")
    result = p.cli("plan", "--samples", "20")
    assert result.exit_code == 0, result.stdout
    rows = {r["key"]: r for r in json.loads(result.stdout)["plans"][0]["samples"]["added"]}
    empty, null = rows["subscriber2@example.com"], rows["subscriber3@example.com"]
    # with send_nulls: "" in standard fields and custom attributes; a NULL custom attribute as null
    assert empty["fields"] == {"firstName": "" if send_nulls else None, "city": "City 2",
                               "Tier": "" if send_nulls else None}, empty
    assert null["fields"] == {"firstName": None, "city": "City 0", "Tier": None}, null
    p.run()
    sent = {u["identifiers"]["email"]: u.get("attributes", {}) for u in p.v2_users()}
    assert ("firstName" in sent["subscriber2@example.com"]) is send_nulls
    custom = {b["user"]["email"]: b["properties"] for b in p.v1_bodies()}
    assert ("Tier" in custom.get("subscriber2@example.com", {})) is send_nulls


def test_send_nulls_turned_on_clears_the_values_left_out_before(make_attentive):
    """A NULL and an empty string were left out of the requests (the subscriber kept "gold" and
    "Name 2") and recorded as delivered. Turning `send_nulls` on to clear them sent nothing, ever:
    the snapshot holds the same values. The fields it shapes are sent for every row once (not the
    identifiers), and turning it off again sends nothing."""
    p = make_attentive(seeded=4, null_values="unset")
    p.sql("delete from main.customers where id >= 4")
    assert p.run()["acknowledged"] == 4
    p.sql("update main.customers set tier = null, first_name = '' where id = 2")
    assert p.run()["acknowledged"] == 1
    assert p.subscriber("subscriber2@example.com")["custom"] == {"Tier": "gold"}  # left out: kept
    p.write(extra="    send_nulls: true\n")
    plan = json.loads(p.cli("plan").stdout)["plans"][0]
    assert any("send_nulls false -> true" in n and "firstName, city, Tier for every row" in n
               for n in plan["notes"]), plan["notes"]
    p.requests.requests.clear()
    run = p.run()
    assert (run["status"], run["changed"], run["acknowledged"]) == ("success", 4, 4), run
    subscriber = p.subscriber("subscriber2@example.com")
    assert subscriber["custom"] == {} and subscriber["attributes"]["firstName"] == "", subscriber
    p.requests.requests.clear()
    assert p.run()["sent"] == 0
    p.write()  # off again: what was sent stays; nothing to send
    assert (p.run()["sent"], p.v2_users(), p.v1_bodies()) == (0, [], [])
