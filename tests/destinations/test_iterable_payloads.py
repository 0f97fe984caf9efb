"""Iterable client: request building and response parsing, checked against the Swagger file."""
import orjson
import polars as pl
import pytest

from dinsync.destinations.base import SyncSpec
from dinsync.destinations.iterable import BULK_MAX_BYTES, IterableDestination
from dinsync.mapping import FieldMapping, KeyMapping, map_batch
from tests.spec_validation import validate_iterable_request

KEY = "secret-api-key-123"


def destination(**options):
    return IterableDestination("http://127.0.0.1:1", {"api_key": KEY}, {"bulk_max_users": 1000, **options})


def spec(mode="upsert", key_field="email"):
    return SyncSpec(name="s", service="users", mode=mode, key_field=key_field, fields=["plan", "ltv"])


def mapped(keys, ops=None, plans=None, ltvs=None, sent=(True, True), key_kind="email"):
    n = len(keys)
    frame = pl.DataFrame({
        "_key": keys, "_op": ops or ["added"] * n,
        "v0": plans or ["pro"] * n, "v1": ltvs or [1.5] * n,
        "x0": [sent[0]] * n, "x1": [sent[1]] * n,
    })
    key = KeyMapping(field="email", kind="email") if key_kind == "email" else KeyMapping(field="userId", kind="string")
    out = map_batch(frame, key, [FieldMapping(0, "plan"), FieldMapping(1, "ltv")])
    return out.frame


def test_bulk_body_follows_the_spec_and_carries_only_flagged_fields():
    frame = mapped(["a@x.com", "b@x.com"], ops=["added", "changed"], sent=(True, False))
    [req] = destination().prepare(frame, spec()).requests
    validate_iterable_request(req.method, req.path, req.body)
    body = orjson.loads(req.body)
    assert body["createNewFields"] is True
    assert body["users"] == [{"email": "a@x.com", "dataFields": {"plan": "pro"}},
                             {"email": "b@x.com", "dataFields": {"plan": "pro"}}]
    assert req.keys == ["a@x.com", "b@x.com"]


def test_create_new_fields_false_leaves_the_flag_out_for_the_projects_setting():
    """`create_new_fields: false` leaves new fields to the project's setting (README): the request
    must not say `"createNewFields": false`, which the spec reads as "drop them" whatever the project
    allows (a project accepting new fields had every user's fields dropped, every run)."""
    frame = mapped(["a@x.com"])
    [req] = destination(create_new_fields=False).prepare(frame, spec()).requests
    validate_iterable_request(req.method, req.path, req.body)
    body = orjson.loads(req.body)
    assert "createNewFields" not in body
    assert body["users"] == [{"email": "a@x.com", "dataFields": {"plan": "pro", "ltv": 1.5}}]


def test_merge_nested_objects_is_asked_per_user_only_when_set():
    """`merge_nested_objects: true` (README) sets the spec's per-user `mergeNestedObjects`, so an
    object field merges one level deep into the profile's; unset, the flag is left out (Iterable's
    default: the object replaces the stored one)."""
    frame = mapped(["a@x.com", "b@x.com"])
    [merged] = destination(merge_nested_objects=True).prepare(frame, spec()).requests
    [plain] = destination().prepare(frame, spec()).requests
    for req in (merged, plain):
        validate_iterable_request(req.method, req.path, req.body)
    assert [u.get("mergeNestedObjects") for u in orjson.loads(merged.body)["users"]] == [True, True]
    assert all("mergeNestedObjects" not in u for u in orjson.loads(plain.body)["users"])


def test_userid_upsert_sets_prefer_user_id_and_update_does_not():
    frame = mapped(["u-1"], key_kind="userId")
    [up] = destination().prepare(frame, spec("upsert", "userId")).requests
    [upd] = destination().prepare(frame, spec("update", "userId")).requests
    for req in (up, upd):
        validate_iterable_request(req.method, req.path, req.body)
    assert orjson.loads(up.body)["users"][0]["preferUserId"] is True
    assert "preferUserId" not in orjson.loads(upd.body)["users"][0]


def test_batches_respect_user_cap_and_body_cap():
    keys = [f"user{i}@x.com" for i in range(2500)]
    reqs = destination().prepare(mapped(keys), spec()).requests
    assert [len(r.keys) for r in reqs] == [1000, 1000, 500]
    big = "x" * 1_000_000
    reqs = destination().prepare(mapped(keys[:10], plans=[big] * 10), spec()).requests
    assert all(len(r.body) <= BULK_MAX_BYTES <= 4_000_000 for r in reqs)  # "4MB", read as decimal too
    assert sum(len(r.keys) for r in reqs) == 10 and len(reqs) >= 3
    for r in reqs:
        validate_iterable_request(r.method, r.path, r.body)


def test_split_halves_are_valid_requests_with_the_right_users():
    req = destination().prepare(mapped([f"u{i}@x.com" for i in range(5)]), spec()).requests[0]
    left, right = req.split()
    assert left.keys + right.keys == req.keys
    for part in (left, right):
        validate_iterable_request(part.method, part.path, part.body)
        assert [u["email"] for u in orjson.loads(part.body)["users"]] == part.keys


def test_a_request_holds_its_users_once():
    """Each bulk request kept its users twice: its body, and each user's JSON again (`items`, read
    only to split it or to tell which users an answer names): with 1 MB values, the requests queued
    and in flight held ~2 x 100 MB. The users are read from the body when they are needed."""
    import tracemalloc

    big = ["p" * 200_000 + str(i) for i in range(12)]
    frame = mapped([f"u{i}@x.com" for i in range(12)], plans=big)
    tracemalloc.start()
    try:
        requests = destination().prepare(frame, spec()).requests
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    bodies = sum(len(r.body) for r in requests)
    assert held < 1.3 * bodies, (held, bodies)
    [req] = requests
    users = [orjson.loads(item) for item in req.items]
    assert [u["email"] for u in users] == req.keys and [u["dataFields"]["plan"] for u in users] == big
    assert [orjson.loads(i)["email"] for i in req.items[3:5]] == req.keys[3:5] and len(req.items) == 12
    left, right = req.split()
    assert [u["email"] for part in (left, right) for u in orjson.loads(part.body)["users"]] == req.keys
    assert [orjson.loads(i)["email"] for i in right.items] == right.keys
    only = req.subset({"u7@x.com"})
    assert [u["dataFields"]["plan"] for u in orjson.loads(only.body)["users"]] == [big[7]]


def test_hostile_values_survive_as_valid_json():
    values = ['quote " backslash \\ newline \n', "emoji 🎉 and é", "tab\tnull\x00byte"]
    frame = mapped(["a@x.com", "b@x.com", "c@x.com"], plans=values)
    [req] = destination().prepare(frame, spec()).requests
    validate_iterable_request(req.method, req.path, req.body)
    assert [u["dataFields"]["plan"] for u in orjson.loads(req.body)["users"]] == values


def response(success, fail, **lists):
    failed = {name: [] for name in ("invalidEmails", "invalidUserIds", "conflictEmails", "conflictUserIds",
                                    "forgottenEmails", "forgottenUserIds", "invalidDataEmails",
                                    "invalidDataUserIds", "notFoundEmails", "notFoundUserIds")}
    failed.update(lists)
    return orjson.dumps({"successCount": success, "failCount": fail, "createdFields": [],
                         "filteredOutFields": [], "failedUpdates": failed})


def test_failed_updates_become_per_record_results():
    d = destination()
    req = d.prepare(mapped(["a@x.com", "b@x.com", "c@x.com"]), spec()).requests[0]
    out = d.parse(req, 200, {}, response(1, 2, invalidEmails=["b@x.com"], forgottenEmails=["C@X.COM"]))
    assert out.kind == "done"
    got = {r.key: (r.status, r.reason) for r in out.results}
    assert got["b@x.com"][0] == "rejected" and "invalid email" in got["b@x.com"][1]
    assert got["c@x.com"][0] == "rejected" and "forgotten" in got["c@x.com"][1]
    assert "a@x.com" not in got  # acknowledged
    # the identifier a list refuses is the rejection's field; a forgotten user names none
    assert {r.key: r.field for r in out.results} == {"b@x.com": "email", "c@x.com": None}
    out = d.parse(req, 200, {}, response(1, 2, conflictEmails=["b@x.com"], invalidDataEmails=["c@x.com"]))
    assert {r.key: r.field for r in out.results} == {"b@x.com": "email", "c@x.com": None}


def test_users_of_a_failed_updates_list_of_unknown_meaning_are_failed_not_parked():
    """A `failedUpdates` list the spec does not give bulkUpdate (Iterable's `validEmailFailures`, "not
    updated due to internal error" in its bulk subscription answer, or a list added later) rejected
    its users as if their data were wrong: parked until the row changed, though Iterable may only
    have failed to write them. They are failed (sent again next run); the known lists are read as before."""
    d = destination()
    req = d.prepare(mapped(["a@x.com", "b@x.com", "c@x.com"]), spec()).requests[0]
    out = d.parse(req, 200, {}, response(1, 2, validEmailFailures=["b@x.com"], someNewEmails=["c@x.com"]))
    got = {r.key: (r.status, r.reason) for r in out.results}
    assert got["b@x.com"][0] == "failed" and "validEmailFailures" in got["b@x.com"][1]
    assert got["c@x.com"][0] == "failed" and "someNewEmails" in got["c@x.com"][1]
    assert "a@x.com" not in got


def test_a_malformed_email_listed_from_datafields_rejects_its_user_only():
    """The spec's `invalidEmails`/`invalidUserIds` list malformed values "found either at the top
    level of a passed-in user object, or in dataFields": such a value is not the user's key. The
    user whose dataFields hold it is rejected; the others were applied and are acknowledged
    (before, every user of the batch was failed, and failed again by every run)."""
    d = destination()
    req = d.prepare(mapped(["u-1", "u-2", "u-3"], plans=["pro", "not an email", "free"], key_kind="userId"),
                    spec(key_field="userId")).requests[0]
    out = d.parse(req, 200, {}, response(2, 1, invalidEmails=["not an email"]))
    assert out.kind == "done"
    [bad] = out.results
    assert (bad.key, bad.status, bad.field) == ("u-2", "rejected", "plan")
    assert "invalid email" in bad.reason and "dataFields.plan" in bad.reason


def test_fields_iterable_filtered_out_fail_the_users_that_carried_them():
    """With `createNewFields` false the project may drop unknown fields: the spec says they are
    "included in filteredOutFields and not added to user profiles", while the users count as
    successes. Acknowledged, their values were recorded as delivered and never sent again, even
    once the field exists. The users that carried such a field fail (sent again next run)."""
    d = destination(create_new_fields=False)
    frame = mapped(["a@x.com", "b@x.com", "c@x.com"], ops=["added", "changed", "changed"])
    frame = frame.with_columns(pl.Series("_json", ['{"plan":"pro","ltv":1.5}', '{"ltv":2.5}', '{"plan":null}']))
    req = d.prepare(frame, spec()).requests[0]
    body = orjson.loads(response(3, 0))
    body["filteredOutFields"] = ["plan"]
    out = d.parse(req, 200, {}, orjson.dumps(body))
    assert out.kind == "done"
    got = {r.key: r for r in out.results}
    assert set(got) == {"a@x.com", "c@x.com"}  # b@x.com sent no dropped field: acknowledged
    assert all(r.status == "failed" and r.field == "plan" and "filteredOutFields" in r.reason
               for r in got.values())


def test_unlisted_failures_are_not_acknowledged_but_looked_for_in_parts():
    d = destination()
    req = d.prepare(mapped(["a@x.com", "b@x.com", "c@x.com"]), spec()).requests[0]
    out = d.parse(req, 200, {}, response(1, 2))  # two failures, none listed: split, nothing acknowledged
    assert (out.kind, out.results, out.reason) == ("split", [], "Iterable reported 2 failures but listed 0")
    out = d.parse(req, 200, {}, response(1, 2, invalidEmails=["b@x.com"]))  # the listed one is settled
    assert out.kind == "split" and [(r.key, r.status) for r in out.results] == [("b@x.com", "rejected")]
    out = d.parse(req, 200, {}, response(1, 2, invalidEmails=["b@x.com", "c@x.com"]))  # all listed
    assert out.kind == "done" and {r.key for r in out.results} == {"b@x.com", "c@x.com"}
    out = d.parse(req, 200, {}, response(0, 3, invalidEmails=["b@x.com", "c@x.com"]))  # one user left
    assert out.kind == "done" and {r.key: r.status for r in out.results} == {
        "b@x.com": "rejected", "c@x.com": "rejected", "a@x.com": "failed"}
    assert out.results[-1].reason == "Iterable reported 3 failures but listed 2"
    out = d.parse(req, 200, {}, response(0, 3))  # nobody succeeded: no parts (they would fail alike)
    assert out.kind == "done" and {r.key: r.status for r in out.results} == dict.fromkeys(req.keys, "failed")


def test_counts_short_of_the_users_sent_acknowledge_nobody_on_a_guess():
    """A 200 whose successCount and failCount do not add up to the users sent says nothing of the
    users it left out: none is acknowledged (they would never be sent again). The others go again,
    then in halves; with nobody counted as updated, all of them fail (sent again next run)."""
    d = destination()
    req = d.prepare(mapped(["a@x.com", "b@x.com", "c@x.com"]), spec()).requests[0]
    out = d.parse(req, 200, {}, response(0, 0))
    assert out.kind == "done" and {r.key: r.status for r in out.results} == dict.fromkeys(req.keys, "failed")
    assert out.results[0].reason == "Iterable counted 0 updated and 0 failed of 3 users sent"
    out = d.parse(req, 200, {}, response(1, 1, invalidEmails=["b@x.com"]))  # one user unaccounted for
    assert out.kind == "split" and [(r.key, r.status) for r in out.results] == [("b@x.com", "rejected")]
    assert d.parse(req, 200, {}, response(2, 1, invalidEmails=["b@x.com"])).kind == "done"  # all counted
    assert d.parse(req, 200, {}, response(3, 0)).results == []


def test_type_mismatch_splits_and_bad_key_is_fatal():
    d = destination()
    req = d.prepare(mapped(["a@x.com", "b@x.com"]), spec()).requests[0]
    body = orjson.dumps({"msg": "The request does not have the same data types", "code":
                         "RequestFieldsTypesMismatched", "params": {"validationErrors": {}}})
    out = d.parse(req, 400, {}, body)
    assert out.kind == "split" and "RequestFieldsTypesMismatched" in out.reason
    out = d.parse(req, 401, {}, orjson.dumps({"msg": f"Invalid API key {KEY}", "code": "BadApiKey"}))
    assert out.kind == "fatal" and KEY not in out.reason


@pytest.mark.parametrize("key_field,path", [("email", "/api/users/getByEmail?email="),
                                            ("userId", "/api/users/byUserId?userId=")])
def test_lookups_escape_keys_and_follow_the_spec(key_field, path):
    d = destination()
    [req] = d.lookup_requests(["a+b/c?&=d@x.com"], ["a+b/c?&=d@x.com"], spec("update", key_field))
    assert req.path == path + "a%2Bb%2Fc%3F%26%3Dd%40x.com"
    validate_iterable_request(req.method, req.path, req.body)
    assert d.parse(req, 200, {}, b'{"user": {"email": "x"}}').results[0].status == "ok"
    assert d.parse(req, 200, {}, b"{}").results[0].status == "not_found"


def test_auth_header_and_secrets():
    d = destination()
    assert d.auth_headers() == {"Api-Key": KEY}
    assert KEY in d.secrets()


@pytest.mark.parametrize("status,body,kind", [
    (404, b"<html><body>Not Found</body></html>", "failed"),  # a wrong base URL, a proxy's page
    (200, b"<html>maintenance</html>", "retry"),  # a glitch of one answer: sent again (then failed)
    (204, b"", "retry"),
    (400, b"<html>Bad Request</html>", "failed"),
    (400, b"", "failed"),
    (400, b'{"msg": "?", "code": "SomethingNew"}', "failed"),  # a code this client does not know
    (200, b'{"msg": "ok", "code": "Success"}', "retry"),  # not a bulkUpdate answer
    (409, b'{"msg": "try again", "code": "GenericError"}', "retry"),
    (400, b'{"msg": "db", "code": "DatabaseError"}', "retry"),
    (400, b'{"msg": "slow down", "code": "RateLimitExceeded"}', "throttled"),
    (409, b'{"msg": "Contact is GDPR forgotten", "code": "ForgottenUserError"}', "split"),
    (400, b'{"msg": "bad", "code": "BadApiKey"}', "fatal"),
    (413, b"Request Entity Too Large", "split"),  # halved: smaller requests may pass a proxy's cap
])
def test_answers_that_say_nothing_about_the_users_data_do_not_reject_them(status, body, kind):
    """Only Iterable's own answer about the users (its per-user lists, or a whole-request code
    about their data, split down to the user) rejects a row, which then waits until it changes.
    Anything else fails the request's rows: sent again by the next run, never parked."""
    d = destination()
    req = d.prepare(mapped(["a@x.com", "b@x.com"]), spec()).requests[0]
    out = d.parse(req, status, {}, body)
    if kind == "failed":
        assert out.kind == "done" and {r.status for r in out.results} == {"failed"} and len(out.results) == 2
        assert f"HTTP {status}" in out.results[0].reason
    elif kind == "throttled":
        assert out.kind == "retry" and out.throttled
    else:
        assert out.kind == kind and not out.throttled


def test_a_type_mismatch_names_its_field_and_a_lookup_of_a_malformed_email_is_rejected():
    d = destination()
    req = d.prepare(mapped(["a@x.com"]), spec()).requests[0]
    body = orjson.dumps({"msg": "Project 3549: The request does not have the same data types", "code":
                         "RequestFieldsTypesMismatched", "params": {"validationErrors": {"my_project:::ltv": {
                             "incomingTypes": ["string"], "expectedType": "double", "offendingValue": "x"}}}})
    out = d.parse(req, 400, {}, body)
    assert out.kind == "split" and out.field == "ltv"
    [lookup] = d.lookup_requests(["no-at-sign"], ["no-at-sign"], spec("update"))
    out = d.parse(lookup, 400, {}, b'{"msg": "Invalid email", "code": "InvalidEmailAddressError"}')
    assert [(r.status, r.reason) for r in out.results] == [("rejected", "Iterable HTTP 400 InvalidEmailAddressError: Invalid email")]
    out = d.parse(lookup, 404, {}, b"<html>nope</html>")
    assert [r.status for r in out.results] == ["failed"]



def test_a_whole_request_failure_answered_with_http_200_is_read_as_with_400():
    """Iterable's answers carry their `code` whatever the status (the type mismatch's status is not
    documented): a 200 naming a code about the users splits the batch, and a lookup's 200 refusing
    the identifier rejects the row, as their 400s do (they were retried, then failed every run)."""
    d = destination()
    req = d.prepare(mapped(["a@x.com", "b@x.com"]), spec()).requests[0]
    body = orjson.dumps({"msg": "types", "code": "RequestFieldsTypesMismatched", "params": {"validationErrors": {
        "p:::ltv": {"incomingTypes": ["string"], "expectedType": "double", "offendingValue": "x"}}}})
    out = d.parse(req, 200, {}, body)
    assert out.kind == "split" and out.field == "ltv"
    [lookup] = d.lookup_requests(["no-at-sign"], ["no-at-sign"], spec("update"))
    out = d.parse(lookup, 200, {}, b'{"msg": "Invalid email", "code": "InvalidEmailAddressError"}')
    assert [(r.status, r.field) for r in out.results] == [("rejected", "email")]
    # a 200 with a code of no verdict on the users is still not an acknowledgement
    assert d.parse(req, 200, {}, b'{"msg": "?", "code": "GenericError"}').kind == "retry"

def test_a_type_mismatch_names_only_fields_the_request_sent():
    """The field of a rejection is Iterable's word: one no user of the request sent (an answer
    that echoed anything, the API key say) is not named, and the users are halved as usual."""
    d = destination()
    req = d.prepare(mapped(["a@x.com", "b@x.com"]), spec()).requests[0]
    body = orjson.dumps({"msg": "types", "code": "RequestFieldsTypesMismatched", "params": {"validationErrors": {
        f"p:::{KEY}": {"expectedType": "long", "offendingValue": "pro"}}}})
    out = d.parse(req, 400, {}, body)
    assert (out.kind, out.field, out.results) == ("split", None, [])
    body = orjson.dumps({"msg": "types", "code": "RequestFieldsTypesMismatched", "params": {"validationErrors": {
        f"p:::{KEY}": {"expectedType": "long"}, "p:::ltv.cents": {"expectedType": "long"}}}})
    assert d.parse(req, 400, {}, body).field == "ltv.cents"  # a nested field of one sent


def test_a_type_mismatch_names_the_users_with_the_offending_value_of_the_same_type():
    d = destination()
    req = d.prepare(mapped(["a@x.com", "b@x.com", "c@x.com"], plans=["1", "x", "y"], ltvs=[1.5, 2.5, 1.0]),
                    spec()).requests[0]
    body = orjson.dumps({"msg": "types", "code": "RequestFieldsTypesMismatched", "params": {"validationErrors": {
        "p:::plan": {"expectedType": "long", "offendingValue": "x"},
        "p:::ltv": {"expectedType": "long", "offendingValue": 1}}}})  # 1 is not 1.0: not c's value
    out = d.parse(req, 400, {}, body)
    assert out.kind == "split" and out.field == "ltv, plan"
    assert [(r.key, r.status, r.field) for r in out.results] == [("b@x.com", "rejected", "plan")]  # b's own field
    assert [r.key for r in d.parse(req, 400, {}, orjson.dumps({"code": "BadParams"})).results] == []


def test_a_single_user_refused_by_a_proxys_413_is_failed_not_rejected():
    """Rows over Iterable's 4 MB cap never leave (mapping); a proxy's smaller cap is not the data's
    fault: a single user it still refuses is failed (sent again), not parked."""
    d = destination()
    req = d.prepare(mapped(["a@x.com"]), spec()).requests[0]
    out = d.parse(req, 413, {}, b"Request Entity Too Large")
    assert out.kind == "done" and [r.status for r in out.results] == ["failed"]
    assert d.parse(req, 413, {}, b'{"msg": "too big", "code": "BatchTooLarge"}').kind == "split"


def test_a_user_whose_request_would_pass_the_body_cap_is_rejected_not_sent():
    """`max_row_bytes` measures dataFields only; the key and the user's envelope come on top. A
    userId of 512 control characters is 3 KB as JSON: with a dataFields just under the row cap the
    request was 4,002,130 bytes, refused (413) by a server enforcing 4 MB, failed every run."""
    from dinsync.destinations.iterable import USERS

    uid = "\x01" * 512
    big = "x" * (USERS.max_row_bytes - len('{"plan":""}'))
    frame = pl.DataFrame({"_key": [uid, "u-2"], "_op": ["added"] * 2, "v0": [big, "ok"], "x0": [True] * 2})
    out = map_batch(frame, KeyMapping(field="userId", kind="string", max_length=512), [FieldMapping(0, "plan")],
                    max_row_bytes=USERS.max_row_bytes)
    assert out.frame.height == 2  # under the row cap: mapped
    sync = SyncSpec(name="s", service="users", mode="upsert", key_field="userId", fields=["plan"])
    prepared = destination().prepare(out.frame, sync)
    assert all(len(r.body) <= BULK_MAX_BYTES for r in prepared.requests)
    assert [k for r in prepared.requests for k in r.keys] == ["u-2"]
    [rejection] = prepared.rejections
    assert rejection.key == uid and rejection.park and "4000000" in rejection.reason.replace(",", "")


def test_a_user_over_the_body_cap_names_its_largest_field():
    """That rejection named no field (`field` None, the reason only the user's size), unlike the
    mapping's row cap: which value to shorten was left to guess."""
    from dinsync.destinations.iterable import USERS

    uid = "\x01" * 512
    big = "x" * (USERS.max_row_bytes - len('{"plan":"","note":"n"}'))
    frame = pl.DataFrame({"_key": [uid, "u-2"], "_op": ["added"] * 2, "v0": [big, "ok"], "x0": [True] * 2,
                          "v1": ["n", "m"], "x1": [True] * 2})
    out = map_batch(frame, KeyMapping(field="userId", kind="string", max_length=512),
                    [FieldMapping(0, "plan"), FieldMapping(1, "note")], max_row_bytes=USERS.max_row_bytes,
                    keep_field_text=True)  # as the engine maps
    sync = SyncSpec(name="s", service="users", mode="upsert", key_field="userId", fields=["plan", "note"])
    [rejection] = destination().prepare(out.frame, sync).rejections
    assert rejection.key == uid and rejection.field == "plan"
    assert rejection.reason.endswith(f'(largest field "plan": {len(big) + 2:,} bytes)')


def test_a_type_mismatch_of_a_nested_field_names_the_users_holding_its_offending_value():
    """Iterable names a nested field by its path (`meta.a`): the users whose object holds the
    offending value there are rejected at once, not found by halving (one bad user in 7 of 2,023
    cost 2,159 requests, 7 minutes at 5/s, against a strict server)."""
    d = destination()
    frame = pl.DataFrame({"_key": ["a@x.com", "b@x.com", "c@x.com"], "_id": ["a@x.com", "b@x.com", "c@x.com"],
                          "_json": ['{"meta":{"a":1,"b":{"c":2}}}', '{"meta":{"a":"text","b":{"c":2}}}',
                                    '{"meta":{"a":"1"}}']})
    req = d.prepare(frame, spec()).requests[0]
    body = orjson.dumps({"msg": "types", "code": "RequestFieldsTypesMismatched", "params": {"validationErrors": {
        "p:::meta.a": {"expectedType": "long", "offendingValue": "text"}}}})
    out = d.parse(req, 400, {}, body)
    assert out.kind == "split" and out.field == "meta.a"
    assert [(r.key, r.status, r.field) for r in out.results] == [("b@x.com", "rejected", "meta.a")]


def test_a_lookup_refusing_the_identifier_names_it_as_the_rejections_field():
    """An update-mode lookup of a malformed email or userId is rejected naming that identifier,
    as the bulk answer's invalidEmails / invalidUserIds name theirs (`dinsync rejections`)."""
    d = destination()
    [by_email] = d.lookup_requests(["josé@example.com"], ["josé@example.com"], spec("update"))
    out = d.parse(by_email, 400, {}, b'{"msg": "Invalid email", "code": "InvalidEmailAddressError"}')
    assert [(r.status, r.field) for r in out.results] == [("rejected", "email")]
    [by_id] = d.lookup_requests(["u 1 "], ["u 1 "], spec("update", key_field="userId"))
    out = d.parse(by_id, 400, {}, b'{"msg": "Invalid userId", "code": "InvalidUserIdError"}')
    assert [(r.status, r.field) for r in out.results] == [("rejected", "userId")]


@pytest.mark.parametrize("a, b, same", [
    ("https://api.iterable.com", "https://API.Iterable.com:443/", True),
    ("https://api.iterable.com", "https://user:pw-5e1c@api.iterable.com", True),
    ("http://127.0.0.1:8765", "http://127.0.0.1:8765/?debug=1", True),
    ("https://api.iterable.com", "https://api.eu.iterable.com", False),
    ("http://127.0.0.1:8765", "http://127.0.0.1:8766", False),
    ("https://proxy.example.com/iterable", "https://proxy.example.com/other", False),
])
def test_the_account_a_sync_reaches_is_its_address_written_either_way_and_never_a_credential(a, b, same):
    """What a sync records as where its snapshot was delivered (another: every row is sent)."""
    accounts = [IterableDestination(url, {"api_key": KEY}).account() for url in (a, b)]
    assert (accounts[0] == accounts[1]) is same, accounts
    assert all("pw-5e1c" not in x and KEY not in x for x in accounts)


def test_a_401_or_403_that_is_not_iterables_answer_is_quoted_in_the_error():
    """A proxy's or a WAF's 403 page stopped the run as "Iterable refused the API key (HTTP 403)",
    quoting nothing: the user was sent to rotate a key Iterable never refused. The run still stops,
    and the error now quotes the page, saying it is not Iterable's answer."""
    d = destination()
    req = d.prepare(mapped(["a@x.com"]), spec()).requests[0]
    page = b"<html><head><title>Access Denied by Corporate Policy</title></head><body>blocked</body></html>"
    out = d.parse(req, 403, {}, page)
    assert out.kind == "fatal"
    assert "without Iterable's answer: 'Access Denied by Corporate Policy (HTML page)'" in out.reason, out.reason
    out = d.parse(req, 401, {}, orjson.dumps({"msg": "Invalid API key", "code": "BadApiKey"}))
    assert out.kind == "fatal" and "(HTTP 401, BadApiKey)" in out.reason and "without Iterable's answer" not in out.reason


def test_counts_over_the_users_sent_are_not_this_requests_answer():
    """A 200 counting more users than the request carried (`successCount` 5 for 2 users: another
    request's answer, replayed or cached by something in between) acknowledged every user of it.
    It is no answer to this request: sent again, then failed (sent again by the next run)."""
    d = destination()
    req = d.prepare(mapped(["a@x.com", "b@x.com"]), spec()).requests[0]
    for body in (response(5, 0), response(2, 1), response(2, 2, invalidEmails=["a@x.com"])):
        out = d.parse(req, 200, {}, body)
        assert out.kind == "retry", (body, out)
        assert "Iterable counted" in out.reason and "of 2 users sent" in out.reason
    assert d.parse(req, 200, {}, response(1, 1, invalidEmails=["a@x.com"])).kind == "done"  # all counted once
